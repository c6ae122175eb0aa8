//! The hosted service's flow against the reference server and a fake Bakong
//! Open API, both on 127.0.0.1 (port 0), with a real HTTP client. Every request
//! has a 10 s timeout and the test makes a fixed number of them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use bakong_khqr::{verify, Md5};
use serde_json::{json, Value};

const HASH: &str = "5f2a8c0e4b7d9136a1c3e5f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b";

/// The fake Bakong: which MD5s are paid (amount text, currency), which token is
/// valid, and the requests it saw (`User-Agent`, `Authorization`, how many
/// `User-Agent` headers).
#[derive(Default)]
struct Fake {
    paid: HashMap<String, (String, String)>,
    valid_token: String,
    seen: Vec<(String, String, usize)>,
}

type Shared = Arc<Mutex<Fake>>;

async fn fake_check_md5(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, String) {
    let mut fake = fake.lock().unwrap();
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let user_agents = headers.get_all("user-agent").iter().count();
    fake.seen
        .push((header("user-agent"), header("authorization"), user_agents));
    if header("authorization") != format!("Bearer {}", fake.valid_token) {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"error":"token expired"}"#.into(),
        );
    }
    let md5 = body["md5"].as_str().unwrap_or("");
    match fake.paid.get(md5) {
        Some((amount, currency)) => (
            StatusCode::OK,
            format!(
                r#"{{"responseCode":0,"responseMessage":"Getting transaction successfully.","errorCode":null,"data":{{"hash":"{HASH}","fromAccountId":"payer@abaa","toAccountId":"merchant@abaa","currency":"{currency}","amount":{amount},"description":"","createdDateMs":1700000000000,"acknowledgedDateMs":1700000001000}}}}"#
            ),
        ),
        None => (
            StatusCode::OK,
            r#"{"responseCode":1,"responseMessage":"Transaction could not be found. Please check and try again.","errorCode":1,"data":null}"#.into(),
        ),
    }
}

struct Harness {
    _runtime: tokio::runtime::Runtime,
    base: String,
    fake: Shared,
    client: ureq::Agent,
}

fn start() -> Harness {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fake: Shared = Arc::new(Mutex::new(Fake {
        valid_token: "good.token.sig".into(),
        ..Fake::default()
    }));
    let (fake_addr, server_addr): (SocketAddr, SocketAddr) = runtime.block_on(async {
        let fake_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake_addr = fake_listener.local_addr().unwrap();
        let server_addr = server_listener.local_addr().unwrap();
        // The fake sits behind a relay-style path prefix.
        let fake_app = Router::new()
            .route("/relay/v1/check_transaction_by_md5", post(fake_check_md5))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(fake_listener, fake_app).await });
        let mut config = khqr_server::Config::new(format!("http://{server_addr}"));
        config.bakong_base_url = format!("http://{fake_addr}/relay");
        config.token = Some("good.token.sig".into());
        config.upstream_timeout = Duration::from_secs(10);
        let app = khqr_server::router(&config).unwrap();
        tokio::spawn(async move { axum::serve(server_listener, app).await });
        (fake_addr, server_addr)
    });
    assert!(fake_addr.ip().is_loopback() && server_addr.ip().is_loopback());
    let client = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    Harness {
        _runtime: runtime,
        base: format!("http://{server_addr}"),
        fake,
        client,
    }
}

impl Harness {
    fn get(&self, path_and_query: &str) -> (u16, String, Vec<u8>) {
        let mut resp = self
            .client
            .get(format!("{}{path_and_query}", self.base))
            .call()
            .unwrap();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = resp.body_mut().read_to_vec().unwrap();
        (resp.status().as_u16(), ct, body)
    }

    fn get_json(&self, path_and_query: &str) -> (u16, Value) {
        let (status, ct, body) = self.get(path_and_query);
        assert_eq!(ct, "application/json", "{path_and_query}");
        (status, serde_json::from_slice(&body).unwrap())
    }

    fn post(&self, path: &str, content_type: &str, body: &str) -> (u16, String) {
        let mut resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header("Content-Type", content_type)
            .send(body)
            .unwrap();
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap(),
        )
    }
}

/// Reads the QR in a PNG back to its text (rqrr on the decoded pixels).
fn scan(png_bytes: &[u8]) -> Vec<String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let mut img =
        rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[(y * w + x) * channels]);
    img.detect_grids()
        .into_iter()
        .map(|g| g.decode().unwrap().1)
        .collect()
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[test]
fn seed_flow_create_png_check_pay_unauthorized() {
    let h = start();

    // create
    let (status, created) = h.get_json(
        "/khqr/create?amount=10&bakongid=merchant@abaa&merchantname=My%20Store&username=john",
    );
    assert_eq!(status, 200, "{created}");
    let tran = created["tran"].as_str().unwrap().to_owned();
    let md5 = created["md5"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], true);
    assert_eq!(created["message"], "success");
    assert_eq!(tran.len(), 8);
    assert_eq!(created["qr"], format!("{}/khqr/qr/{tran}", h.base));
    assert_eq!(
        created["qr_stand"],
        format!("{}/khqr/qr/stand/{tran}", h.base)
    );
    let mut keys: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut expected = vec!["md5", "message", "qr", "qr_stand", "status", "tran"];
    expected.sort_unstable();
    assert_eq!(keys, expected);

    // PNG → payload
    let qr_path = created["qr"]
        .as_str()
        .unwrap()
        .strip_prefix(&h.base)
        .unwrap()
        .to_owned();
    let (status, ct, png) = h.get(&qr_path);
    assert_eq!((status, ct.as_str()), (200, "image/png"));
    let texts = scan(&png);
    assert_eq!(texts.len(), 1);
    let payload = &texts[0];
    assert_eq!(Md5::of(payload).to_string(), md5);
    assert_eq!(Md5::of(payload).tran_id().as_str(), tran);
    let decoded = verify(payload, now_ms()).unwrap();
    assert_eq!(decoded.bakong_account_id(), Some("merchant@abaa"));
    assert_eq!(decoded.merchant_name(), Some("My Store"));
    assert_eq!(decoded.transaction_amount(), Some("10"));
    assert_eq!(decoded.transaction_currency(), Some("840"));
    let expires = decoded.expiration_timestamp_ms().unwrap();
    let created_at = decoded.creation_timestamp_ms().unwrap();
    assert_eq!(expires - created_at, 600_000);

    // stand card PNG: same QR, larger image with the card around it
    let stand_path = created["qr_stand"]
        .as_str()
        .unwrap()
        .strip_prefix(&h.base)
        .unwrap()
        .to_owned();
    let (status, ct, card) = h.get(&stand_path);
    assert_eq!((status, ct.as_str()), (200, "image/png"));
    assert_ne!(card, png);
    assert_eq!(scan(&card), std::slice::from_ref(payload));

    // check by tran: pending
    let (status, ct, body) = h.get(&format!("/khqr/check/{tran}?bakongid=merchant@abaa"));
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    assert_eq!(
        String::from_utf8(body).unwrap(),
        r#"{"responseCode":1,"responseMessage":"Transaction not found","data":null}"#
    );

    // the fake marks it paid; check by md5 (POST, JSON body): paid
    h.fake
        .lock()
        .unwrap()
        .paid
        .insert(md5.clone(), ("10".into(), "USD".into()));
    let paid = format!(
        r#"{{"responseCode":0,"responseMessage":"Success","data":{{"status":"SUCCESS","amount":10.00,"currency":"USD","hash":"{HASH}"}}}}"#
    );
    let (status, body) = h.post(
        "/check_by_md5",
        "application/json",
        &json!({"md5": md5, "bakongid": "merchant@abaa"}).to_string(),
    );
    assert_eq!((status, body.as_str()), (200, paid.as_str()));
    // ... and by tran with a form body, and with GET by md5.
    let (status, body) = h.post(
        &format!("/khqr/check/{tran}"),
        "application/x-www-form-urlencoded",
        "bakongid=merchant%40abaa",
    );
    assert_eq!((status, body.as_str()), (200, paid.as_str()));
    let (status, _, body) = h.get(&format!("/check_by_md5?md5={md5}&bakongid=merchant@abaa"));
    assert_eq!(
        (status, String::from_utf8(body).unwrap()),
        (200, paid.clone())
    );

    // the token expires: the fake answers 401, surfaced as unauthorized
    h.fake.lock().unwrap().valid_token = "renewed.token.sig".into();
    let (status, err) = h.get_json(&format!("/check_by_md5?md5={md5}&bakongid=merchant@abaa"));
    assert_eq!(status, 502, "{err}");
    assert_eq!(err["error"], "unauthorized");
    assert_eq!(err["errorCode"], 6);
    assert_eq!(err["responseCode"], 1);
    assert_eq!(err["data"], Value::Null);
    assert!(err["responseMessage"].as_str().unwrap().contains("renew"));

    // what the fake saw: our User-Agent, the configured token, behind the prefix
    let seen = h.fake.lock().unwrap().seen.clone();
    assert_eq!(seen.len(), 5);
    for (ua, auth, user_agents) in &seen {
        assert!(ua.starts_with("bakong-khqr-rust/"), "{ua}");
        assert_eq!(*user_agents, 1, "one User-Agent header, ours");
        assert_eq!(auth, "Bearer good.token.sig");
    }
}

#[test]
fn bad_input_is_a_400_with_the_library_codes() {
    let h = start();
    let cases: &[(&str, u16, u64)] = &[
        (
            "/khqr/create?bakongid=merchant@abaa&merchantname=Shop",
            400,
            4,
        ),
        (
            "/khqr/create?amount=1.234&bakongid=merchant@abaa&merchantname=Shop",
            400,
            4,
        ),
        (
            "/khqr/create?amount=0&bakongid=merchant@abaa&merchantname=Shop",
            400,
            4,
        ),
        (
            "/khqr/create?amount=1e3&bakongid=merchant@abaa&merchantname=Shop",
            400,
            4,
        ),
        ("/khqr/create?amount=5&merchantname=Shop", 400, 1),
        (
            "/khqr/create?amount=5&bakongid=merchant&merchantname=Shop",
            400,
            3,
        ),
        ("/khqr/create?amount=5&bakongid=merchant@abaa", 400, 2),
        (
            "/khqr/create?amount=5&bakongid=merchant@abaa&merchantname=Shop&currency=EURO",
            400,
            19,
        ),
        (
            "/khqr/create?amount=5&bakongid=merchant@abaa&merchantname=Shop&currency=764",
            400,
            28,
        ),
        (
            "/khqr/create?amount=%zz&bakongid=merchant@abaa&merchantname=Shop",
            400,
            4,
        ),
        ("/khqr/check/NOSUCH00?bakongid=merchant@abaa", 404, 60),
        ("/khqr/check/NOSUCH00", 400, 1),
        ("/check_by_md5?bakongid=merchant@abaa&md5=xyz", 400, 60),
        ("/check_by_md5?md5=0123456789abcdef0123456789abcdef", 400, 1),
        ("/khqr/qr/NOSUCH00", 404, 60),
        ("/khqr/qr/stand/NOSUCH00", 404, 60),
        ("/nowhere", 404, 60),
    ];
    for (path, want_status, want_code) in cases {
        let (status, body) = h.get_json(path);
        assert_eq!(status, *want_status, "{path}: {body}");
        assert_eq!(body["status"], false, "{path}");
        assert_eq!(body["errorCode"], *want_code, "{path}: {body}");
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    // A KHR QR made for one account is not found under another.
    let (status, created) =
        h.get_json("/khqr/create?amount=5000&currency=KHR&bakongid=a@abaa&merchantname=Shop");
    assert_eq!(status, 200, "{created}");
    let tran = created["tran"].as_str().unwrap();
    let (status, body) = h.get_json(&format!("/khqr/check/{tran}?bakongid=b@abaa"));
    assert_eq!(status, 404, "{body}");
    // Nothing reached the fake Bakong.
    assert!(h.fake.lock().unwrap().seen.is_empty());
}
