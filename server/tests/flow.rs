//! The hosted service's flow against the server and a fake Bakong Open API,
//! all on 127.0.0.1, with both stores. Every request has a 10 s timeout and the
//! test makes a fixed number of them.

mod common;

use bakong_khqr::{verify, Md5};
use common::now_ms;
use common::{
    backends, client, config_for, fake_bakong, get, make_store, send, start_server, Backend, HASH,
};
use khqr_server::ServeConfig;
use serde_json::{json, Value};

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

async fn flow(backend: Backend) {
    let fake = fake_bakong().await;
    let config = config_for(&fake);
    let store = make_store(&backend, config.limits()).await;
    let server = start_server(config, ServeConfig::default(), store).await;
    let c = client(None);
    let base = &server.base;

    // create (USD by default)
    let a = get(
        &c,
        &format!("{base}/khqr/create?amount=10&bakongid=merchant@abaa&merchantname=My%20Store&username=john"),
    )
    .await;
    let created = a.json();
    assert_eq!(a.status, 200, "{created}");
    let tran = created["tran"].as_str().unwrap().to_owned();
    let md5 = created["md5"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], true);
    assert_eq!(created["message"], "success");
    assert_eq!(tran.len(), 8);
    assert_eq!(created["qr"], format!("{base}/khqr/qr/{tran}"));
    assert_eq!(created["qr_stand"], format!("{base}/khqr/qr/stand/{tran}"));
    let mut keys: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["checkout", "md5", "message", "qr", "qr_stand", "status", "tran"]
    );
    assert_eq!(created["checkout"], format!("{base}/khqr/pay/{tran}"));

    // PNG → payload, with ETag and a Cache-Control that follows the QR's life
    let qr = get(&c, created["qr"].as_str().unwrap()).await;
    assert_eq!((qr.status, qr.content_type.as_str()), (200, "image/png"));
    let etag = qr.header("etag").unwrap();
    assert_eq!(etag, format!("\"{md5}-q\""));
    let max_age: u64 = qr
        .header("cache-control")
        .unwrap()
        .strip_prefix("public, max-age=")
        .unwrap()
        .parse()
        .unwrap();
    assert!((590..=600).contains(&max_age), "{max_age}");
    let texts = scan(&qr.body);
    assert_eq!(texts.len(), 1);
    let payload = &texts[0];
    assert_eq!(Md5::of(payload).to_string(), md5);
    assert_eq!(Md5::of(payload).tran_id().as_str(), tran);
    let decoded = verify(payload, now_ms()).unwrap();
    assert_eq!(decoded.bakong_account_id(), Some("merchant@abaa"));
    assert_eq!(decoded.merchant_name(), Some("My Store"));
    assert_eq!(decoded.transaction_amount(), Some("10"));
    assert_eq!(decoded.transaction_currency(), Some("840"));
    assert_eq!(
        decoded.expiration_timestamp_ms().unwrap() - decoded.creation_timestamp_ms().unwrap(),
        600_000
    );
    // The same bytes again; If-None-Match answers 304 without a body.
    let again = get(&c, created["qr"].as_str().unwrap()).await;
    assert_eq!(again.body, qr.body);
    let not_modified = send(
        c.get(created["qr"].as_str().unwrap())
            .header("if-none-match", &etag),
    )
    .await;
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag").unwrap(), etag);

    // stand card PNG: same QR, larger image with the card around it
    let card = get(&c, created["qr_stand"].as_str().unwrap()).await;
    assert_eq!(
        (card.status, card.content_type.as_str()),
        (200, "image/png")
    );
    assert_eq!(card.header("etag").unwrap(), format!("\"{md5}-s\""));
    assert_ne!(card.body, qr.body);
    assert_eq!(scan(&card.body), std::slice::from_ref(payload));

    // check by tran: pending, with the username stored at creation
    let a = get(
        &c,
        &format!("{base}/khqr/check/{tran}?bakongid=merchant@abaa"),
    )
    .await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (200, "application/json")
    );
    assert_eq!(
        a.text(),
        r#"{"responseCode":1,"responseMessage":"Transaction not found","data":null,"username":"john"}"#
    );

    // the fake marks it paid; check by md5 (POST, JSON body): paid. (A new
    // server reads fresh statuses: the pending answer above is cached 3 s.)
    fake.state
        .paid
        .lock()
        .unwrap()
        .insert(md5.clone(), ("10".into(), "USD".into()));
    let paid = format!(
        r#"{{"responseCode":0,"responseMessage":"Success","data":{{"status":"SUCCESS","amount":10.00,"currency":"USD","hash":"{HASH}"}},"username":"john"}}"#
    );
    tokio::time::sleep(std::time::Duration::from_millis(3_200)).await;
    let a = send(
        c.post(format!("{base}/check_by_md5"))
            .header("content-type", "application/json")
            .body(json!({"md5": md5, "bakongid": "merchant@abaa"}).to_string()),
    )
    .await;
    assert_eq!((a.status, a.text()), (200, paid.clone()));
    // ... and by tran with a form body, and with GET by md5: from the cache.
    let calls = fake.state.calls.load(std::sync::atomic::Ordering::SeqCst);
    let a = send(
        c.post(format!("{base}/khqr/check/{tran}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("bakongid=merchant%40abaa"),
    )
    .await;
    assert_eq!((a.status, a.text()), (200, paid.clone()));
    let a = get(
        &c,
        &format!("{base}/check_by_md5?md5={md5}&bakongid=merchant@abaa"),
    )
    .await;
    assert_eq!((a.status, a.text()), (200, paid.clone()));
    assert_eq!(
        fake.state.calls.load(std::sync::atomic::Ordering::SeqCst),
        calls,
        "a paid status is served from the cache"
    );

    // what the fake saw: our User-Agent, the configured token, behind the prefix
    let seen = fake.state.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for (ua, auth, user_agents) in &seen {
        assert!(ua.starts_with("bakong-khqr-rust/"), "{ua}");
        assert_eq!(*user_agents, 1, "one User-Agent header, ours");
        assert_eq!(auth, "Bearer good.token.sig");
    }

    // A new QR while the token has expired: the fake answers 401.
    *fake.state.valid_token.lock().unwrap() = "renewed.token.sig".into();
    let (tran2, _) = common::create(&c, base, "merchant@abaa").await;
    let a = get(
        &c,
        &format!("{base}/khqr/check/{tran2}?bakongid=merchant@abaa"),
    )
    .await;
    let err: Value = a.json();
    assert_eq!(a.status, 502, "{err}");
    assert_eq!(err["error"], "unauthorized");
    assert_eq!(err["errorCode"], 6);
    assert_eq!(err["responseCode"], 1);
    assert_eq!(err["data"], Value::Null);
    assert!(err["responseMessage"].as_str().unwrap().contains("renew"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_flow_with_both_stores() {
    let (_redis, backends) = backends();
    for b in backends {
        flow(b).await;
    }
}
