//! Merchants, API keys and per-merchant webhook secrets (issue 18, item 2),
//! and the "lock a merchant out" attack. Loopback only: distinct source
//! addresses 127.0.0.x are distinct clients to the server. Every loop is
//! bounded in count and in time.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bakong_khqr::webhook::{verify_webhook_signature, WebhookError, SIGNATURE_HEADER};
use common::now_ms;
use common::{backends, client, config_for, fake_bakong, get, make_store, start_app, start_server};
use khqr_server::merchant::{key_hash, run, MerchantCommand, MerchantStore, MerchantTable};
use khqr_server::store::{Limits, RedisStore};
use khqr_server::ServeConfig;
use serde_json::Value;

/// Victim's account in the attack.
const VICTIM: &str = "victim@abaa";

/// The stranger's side of the lock-out: from 127.0.0.2, 40 requests/s (under
/// its own per-client limit of 50/s) for at most 3 s (120 requests), each a
/// check of a `tran` or MD5 that does not exist, naming the victim's
/// `bakongid`. Returns (answers other than 404, how many it sent).
async fn stranger_checks(base: String, seed: u64) -> (Vec<u16>, u32) {
    let c = client(Some("127.0.0.2"));
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut odd = Vec::new();
    let mut sent = 0;
    for i in 0..120u64 {
        tick.tick().await;
        if Instant::now() > deadline {
            break;
        }
        let md5 = format!(
            "{:016x}{:016x}",
            seed,
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        );
        let url = if i % 2 == 0 {
            let tran = bakong_khqr::Md5::from_hex(&md5).unwrap().tran_id();
            format!("{base}/khqr/check/{}?bakongid={VICTIM}", tran.as_str())
        } else {
            format!("{base}/check_by_md5?md5={md5}&bakongid={VICTIM}")
        };
        let a = get(&c, &url).await;
        sent += 1;
        if a.status != 404 {
            odd.push(a.status);
        }
    }
    (odd, sent)
}

/// The victim's side: from `from`, every 250 ms for 3 s (at most 12 rounds),
/// one create for its own `bakongid` and one check of that QR: 8 requests/s,
/// under every limit. `auth` is its API key, if any. Returns every status.
async fn victim_traffic(base: String, from: &'static str, auth: Option<String>) -> Vec<u16> {
    let c = client(Some(from));
    let deadline = Instant::now() + Duration::from_secs(3);
    let with = |r: reqwest::RequestBuilder| match &auth {
        Some(k) => r.bearer_auth(k),
        None => r,
    };
    let mut statuses = Vec::new();
    for _ in 0..12 {
        if Instant::now() > deadline {
            break;
        }
        let a = common::send(with(c.get(format!(
            "{base}/khqr/create?amount=1.5&bakongid={VICTIM}&merchantname=Victim"
        ))))
        .await;
        statuses.push(a.status);
        if a.status == 200 {
            let tran = a.json()["tran"].as_str().unwrap().to_owned();
            let check = common::send(with(
                c.get(format!("{base}/khqr/check/{tran}?bakongid={VICTIM}")),
            ))
            .await;
            statuses.push(check.status);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    statuses
}

/// Limits of the lock-out test: the per-client defaults (50/s, burst 200),
/// and a per-`bakongid` bucket of 10/s (burst 20) that the victim's own 8
/// requests/s fit in, but that 40 strangers' checks a second would drain.
fn lockout_limits(config: &mut khqr_server::Config) {
    let d = Limits::default();
    config.rate_per_client = d.client_per_sec;
    config.burst_per_client = d.client_burst;
    config.rate_per_account = 10;
    config.burst_per_account = 20;
}

/// The attack of issue 18 ("lock a merchant out"), anonymous victim: a
/// stranger checks `tran`s that do not exist with the victim's `bakongid`;
/// the victim's own creates and checks must get no 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_checks_never_lock_an_anonymous_victim_out_with_both_stores() {
    let (_redis, backends) = backends();
    let mut results = Vec::new();
    for (n, backend) in backends.into_iter().enumerate() {
        let fake = fake_bakong().await;
        let mut config = config_for(&fake);
        lockout_limits(&mut config);
        let store = make_store(&backend, config.limits()).await;
        let server = start_server(config, ServeConfig::default(), store).await;
        let stranger = tokio::spawn(stranger_checks(server.base.clone(), n as u64 + 1));
        let statuses = victim_traffic(server.base.clone(), "127.0.0.3", None).await;
        let (odd, sent) = stranger.await.unwrap();
        server.stop().await;
        results.push((backend, statuses, odd, sent));
    }
    assert_no_lockout(&results);
}

/// Every victim request answered 200 (no 429), the stranger sent at least
/// 100 checks and got 404 for each (it stayed under its own limit).
fn assert_no_lockout(results: &[(common::Backend, Vec<u16>, Vec<u16>, u32)]) {
    for (backend, statuses, odd, sent) in results {
        let refused = statuses.iter().filter(|&&s| s == 429).count();
        eprintln!(
            "{backend:?}: stranger sent {sent}, {} answered other than 404; victim: {refused} of {} got 429",
            odd.len(),
            statuses.len()
        );
    }
    for (backend, statuses, odd, sent) in results {
        let refused = statuses.iter().filter(|&&s| s == 429).count();
        assert_eq!(
            refused,
            0,
            "{backend:?}: the victim got {refused} 429s of {}: {statuses:?}",
            statuses.len()
        );
        assert!(statuses.len() >= 16, "{backend:?}: {statuses:?}");
        assert!(
            statuses.iter().all(|&s| s == 200),
            "{backend:?}: {statuses:?}"
        );
        assert!(*sent >= 100, "{backend:?}: the stranger sent only {sent}");
        assert!(odd.is_empty(), "{backend:?}: the stranger got {odd:?}");
    }
}

/// The same attack with a keyed victim: its requests are charged to its own
/// merchant bucket (10/s here, burst 20, which its 8 requests/s fit in), that
/// no stranger can reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_checks_never_lock_a_keyed_merchant_out_with_both_stores() {
    let (_redis, backends) = backends();
    let mut results = Vec::new();
    for (n, backend) in backends.into_iter().enumerate() {
        let fake = fake_bakong().await;
        let mut config = config_for(&fake);
        lockout_limits(&mut config);
        config.rate_per_merchant = 10;
        config.burst_per_merchant = 20;
        let store = make_store(&backend, config.limits()).await;
        let (server, app) = start_app(config, ServeConfig::default(), store).await;
        let added = run(app.store(), &add("victim", VICTIM), now_ms())
            .await
            .unwrap();
        let key = text(&added, "key");
        let stranger = tokio::spawn(stranger_checks(server.base.clone(), n as u64 + 11));
        let statuses = victim_traffic(server.base.clone(), "127.0.0.4", Some(key)).await;
        let (odd, sent) = stranger.await.unwrap();
        server.stop().await;
        results.push((backend, statuses, odd, sent));
    }
    assert_no_lockout(&results);
}

/// The operator's commands, through the store API, on both stores: a
/// `bakongid` belongs to one merchant, `list` shows no key or secret, a
/// rotated key replaces the old one in the index, two secrets are live
/// during a rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merchant_commands_keep_the_indexes_with_both_stores() {
    let redis = common::Redis::start();
    let table = MerchantTable::default();
    let store = RedisStore::connect(&redis.url, Limits::default())
        .await
        .unwrap();
    commands_on(&table).await;
    commands_on(&store).await;
    let dir = common::TempDir::new("merchants");
    let sqlite =
        khqr_server::store::SqliteStore::open(&dir.path.join("m.sqlite3"), Limits::default())
            .unwrap();
    commands_on(&sqlite).await;
}

async fn commands_on<S: MerchantStore>(s: &S) {
    let add = |id: &str, b: &[&str]| MerchantCommand::Add {
        id: id.into(),
        name: format!("Shop {id}"),
        bakong_ids: b.iter().map(|b| (*b).to_owned()).collect(),
    };
    let a = run(s, &add("a", &["x@abaa", "y@abaa"]), 1_000)
        .await
        .unwrap();
    let key_a = a["key"].as_str().unwrap().to_owned();
    let secret_a = a["secret"].as_str().unwrap().to_owned();
    let err = run(s, &add("b", &["z@abaa", "y@abaa"]), 1_000)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"bakongid "y@abaa" belongs to merchant "a""#
    );
    assert_eq!(
        s.bakong_id_owner("z@abaa").await.unwrap(),
        None,
        "nothing saved"
    );
    run(s, &add("b", &["z@abaa"]), 1_000).await.unwrap();
    let err = run(s, &add("b", &["w@abaa"]), 1_000).await.unwrap_err();
    assert_eq!(err.to_string(), r#"merchant "b" exists already"#);
    let list = run(s, &MerchantCommand::List, 2_000).await.unwrap();
    let text = list.to_string();
    assert!(
        !text.contains(&key_a) && !text.contains(&secret_a),
        "{text}"
    );
    assert_eq!(list.as_array().unwrap().len(), 2, "{text}");
    assert_eq!(list[1]["id"], "b");
    let found = s.merchant_by_key(&key_hash(&key_a)).await.unwrap().unwrap();
    assert_eq!(found.id, "a");
    assert_eq!(found.bakong_ids, vec!["x@abaa", "y@abaa"]);
    let r = run(s, &MerchantCommand::RotateKey { id: "a".into() }, 3_000)
        .await
        .unwrap();
    let key_a2 = r["key"].as_str().unwrap();
    assert!(s
        .merchant_by_key(&key_hash(&key_a))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        s.merchant_by_key(&key_hash(key_a2))
            .await
            .unwrap()
            .unwrap()
            .id,
        "a"
    );
    let cmd = MerchantCommand::RotateSecret {
        id: "a".into(),
        grace_secs: 10,
    };
    let r = run(s, &cmd, 4_000).await.unwrap();
    let m = s.merchant_get("a").await.unwrap().unwrap();
    let live: Vec<&str> = m.live_secrets(13_999).collect();
    assert_eq!(live, vec![r["secret"].as_str().unwrap(), secret_a.as_str()]);
    assert_eq!(m.live_secrets(14_000).count(), 1);
    run(s, &MerchantCommand::Disable { id: "a".into() }, 5_000)
        .await
        .unwrap();
    let m = s.merchant_by_key(&key_hash(key_a2)).await.unwrap().unwrap();
    assert!(m.disabled);
    assert_eq!(
        s.bakong_id_owner("x@abaa").await.unwrap().as_deref(),
        Some("a")
    );
}
// ---- keyed end to end (draft; compiled in phase B) ----

/// A webhook receiver on 127.0.0.1: keeps each delivery's signature header
/// and raw body, answers 204.
type Seen = Arc<Mutex<Vec<(String, Bytes)>>>;

async fn receiver() -> (Seen, String) {
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(seen): State<Seen>, headers: HeaderMap, body: Bytes| async move {
                    let sig = headers
                        .get(SIGNATURE_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    seen.lock().unwrap().push((sig, body));
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (seen, format!("http://{addr}/hook"))
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A create for `bakongid` with `extra` query text, keyed with `key` if given.
async fn create_as(base: &str, key: Option<&str>, bakongid: &str, extra: &str) -> common::Answer {
    let url =
        format!("{base}/khqr/create?amount=2.50&bakongid={bakongid}&merchantname=Shop{extra}");
    let req = client(None).get(url);
    common::send(match key {
        Some(k) => req.bearer_auth(k),
        None => req,
    })
    .await
}

/// Waits (at most 10 s) for the `n`th delivery of a `khqr.paid` event and
/// returns it.
async fn delivery(seen: &Seen, n: usize) -> (String, Bytes) {
    let started = Instant::now();
    loop {
        let paid = |d: &&(String, Bytes)| d.1.windows(18).any(|w| w == br#""type":"khqr.paid""#);
        if let Some(d) = seen.lock().unwrap().iter().filter(paid).nth(n - 1).cloned() {
            return d;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no delivery {n} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pay(fake: &common::Fake, md5: &str) {
    fake.state
        .paid
        .lock()
        .unwrap()
        .insert(md5.to_owned(), ("2.5".into(), "USD".into()));
}

/// A 401: JSON body, `WWW-Authenticate: Bearer`.
fn assert_unauthorized(a: &common::Answer, what: &str) {
    assert_eq!(a.status, 401, "{what}: {}", a.text());
    let v = a.json();
    assert_eq!(v["status"], false, "{what}");
    assert!(
        a.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer")),
        "{what}: {:?}",
        a.headers
    );
}

fn add(id: &str, bakongid: &str) -> MerchantCommand {
    MerchantCommand::Add {
        id: id.into(),
        name: format!("Shop {id}"),
        bakong_ids: vec![bakongid.into()],
    }
}

fn text(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap().to_owned()
}

/// Keys, per-merchant secrets and rotation, end to end on both stores: a
/// receiver verifies each event with its merchant's secret (another
/// merchant's fails), and across a secret rotation with the old and the new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_secrets_and_rotation_end_to_end_with_both_stores() {
    let (_redis, backends) = backends();
    for backend in backends {
        let fake = fake_bakong().await;
        let mut config = config_for(&fake);
        config.pending_cache_ms = 100;
        config.poll_interval_ms = 100;
        config.webhook_backoff_ms = 50;
        config.callback_allow_private = true;
        config.callback_allow_http = true;
        let store = make_store(&backend, config.limits()).await;
        let (server, app) = start_app(config, ServeConfig::default(), store).await;
        let store = app.store();
        let b = server.base.clone();
        let shop = run(store, &add("shop", "shop@abaa"), now_ms())
            .await
            .unwrap();
        let other = run(store, &add("other", "other@abaa"), now_ms())
            .await
            .unwrap();
        let (key, secret, other_secret) = (
            text(&shop, "key"),
            text(&shop, "secret"),
            text(&other, "secret"),
        );
        let (seen, hook) = receiver().await;
        let callback = format!("&callback_url={}", enc(&hook));
        // A keyed create with a callback; the payment's event is signed with
        // the shop's secret only.
        let a = create_as(&b, Some(&key), "shop@abaa", &callback).await;
        assert_eq!(a.status, 200, "{backend:?}: {}", a.text());
        pay(&fake, &text(&a.json(), "md5"));
        let (sig, body) = delivery(&seen, 1).await;
        assert_eq!(sig.matches("v1=").count(), 1, "{sig}");
        let event: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(event["md5"], a.json()["md5"]);
        assert!(verify_webhook_signature(secret.as_bytes(), &sig, &body, now_ms()).is_ok());
        assert_eq!(
            verify_webhook_signature(other_secret.as_bytes(), &sig, &body, now_ms()),
            Err(WebhookError::Mismatch),
            "{backend:?}: another merchant's secret must not verify"
        );
        // Rotation: two live secrets, two v1 values, each verifies.
        let cmd = MerchantCommand::RotateSecret {
            id: "shop".into(),
            grace_secs: 3_600,
        };
        let rotated = run(store, &cmd, now_ms()).await.unwrap();
        let new_secret = text(&rotated, "secret");
        let a = create_as(&b, Some(&key), "shop@abaa", &callback).await;
        assert_eq!(a.status, 200, "{}", a.text());
        pay(&fake, &text(&a.json(), "md5"));
        let (sig, body) = delivery(&seen, 2).await;
        assert_eq!(sig.matches("v1=").count(), 2, "{backend:?}: {sig}");
        for s in [&secret, &new_secret] {
            assert!(verify_webhook_signature(s.as_bytes(), &sig, &body, now_ms()).is_ok());
        }
        assert!(verify_webhook_signature(other_secret.as_bytes(), &sig, &body, now_ms()).is_err());
        // What a key may do and what the anonymous may not.
        let a = create_as(&b, Some(&key), "other@abaa", "").await;
        assert_eq!(
            (a.status, a.json()["error"].as_str()),
            (403, Some("bakongid_not_allowed")),
            "{backend:?}"
        );
        let a = create_as(&b, None, "free@abaa", &callback).await;
        assert_eq!(
            (a.status, a.json()["error"].as_str()),
            (400, Some("callback_needs_key")),
            "{backend:?}"
        );
        for held in ["shop@abaa", "Shop@ABAA"] {
            let a = create_as(&b, None, held, "").await;
            assert_eq!(
                (a.status, a.json()["error"].as_str()),
                (403, Some("bakongid_claimed")),
                "{backend:?}: anonymous create for {held}"
            );
        }
        assert_eq!(create_as(&b, None, "free@abaa", "").await.status, 200);
        // A key of the right shape that is nobody's, and a malformed header: 401.
        assert_unauthorized(
            &create_as(&b, Some(&khqr_server::merchant::new_key()), "shop@abaa", "").await,
            "unknown key",
        );
        let a = common::send(
            client(None)
                .get(format!("{b}/healthz"))
                .header("authorization", "Basic abc"),
        )
        .await;
        assert_unauthorized(&a, "another scheme");
        // rotate-key: the old key is refused at once, the new one works.
        let r = run(
            store,
            &MerchantCommand::RotateKey { id: "shop".into() },
            now_ms(),
        )
        .await
        .unwrap();
        let new_key = text(&r, "key");
        assert_unauthorized(&create_as(&b, Some(&key), "shop@abaa", "").await, "old key");
        let a = create_as(&b, Some(&new_key), "shop@abaa", "").await;
        assert_eq!(a.status, 200, "{}", a.text());
        let tran = text(&a.json(), "tran");
        let check = common::send(
            client(None)
                .get(format!("{b}/khqr/check/{tran}?bakongid=shop@abaa"))
                .bearer_auth(&new_key),
        )
        .await;
        assert_eq!(check.status, 200, "{}", check.text());
        // disable: its key is refused everywhere.
        run(
            store,
            &MerchantCommand::Disable { id: "shop".into() },
            now_ms(),
        )
        .await
        .unwrap();
        assert_unauthorized(
            &create_as(&b, Some(&new_key), "shop@abaa", "").await,
            "disabled",
        );
        let check = common::send(
            client(None)
                .get(format!("{b}/khqr/check/{tran}?bakongid=shop@abaa"))
                .bearer_auth(&new_key),
        )
        .await;
        assert_unauthorized(&check, "disabled check");
        server.stop().await;
    }
}

/// `--require-key`: anonymous creates and checks get 401; keyed ones pass;
/// what payers open (the QR image, the checkout page) stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_key_turns_anonymous_use_off() {
    let fake = fake_bakong().await;
    let mut config = config_for(&fake);
    config.require_key = true;
    let store = make_store(&common::Backend::Memory, config.limits()).await;
    let (server, app) = start_app(config, ServeConfig::default(), store).await;
    let shop = run(app.store(), &add("shop", "shop@abaa"), now_ms())
        .await
        .unwrap();
    let key = text(&shop, "key");
    let b = &server.base;
    assert_unauthorized(
        &create_as(b, None, "free@abaa", "").await,
        "anonymous create",
    );
    let a = create_as(b, Some(&key), "shop@abaa", "").await;
    assert_eq!(a.status, 200, "{}", a.text());
    let tran = text(&a.json(), "tran");
    let c = client(None);
    assert_unauthorized(
        &get(&c, &format!("{b}/khqr/check/{tran}?bakongid=shop@abaa")).await,
        "anonymous check",
    );
    let keyed = common::send(
        c.get(format!("{b}/khqr/check/{tran}?bakongid=shop@abaa"))
            .bearer_auth(&key),
    )
    .await;
    assert_eq!(keyed.status, 200, "{}", keyed.text());
    assert_eq!(get(&c, &format!("{b}/khqr/qr/{tran}")).await.status, 200);
    assert_eq!(get(&c, &format!("{b}/khqr/pay/{tran}")).await.status, 200);
    server.stop().await;
}

/// The operator's binary on Redis: `merchant add` prints the key and secret
/// once, `list` never does; a running server on that Redis takes the key at
/// once and refuses it after `rotate-key`. With `--store memory` the
/// command refuses with one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_merchant_commands_of_the_binary() {
    let redis = common::Redis::start();
    let cli = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_khqr-server"));
        cmd.args(args).env_remove("KHQR_STORE").kill_on_drop(true);
        async move {
            let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
                .await
                .expect("the command ends within 20 s")
                .unwrap();
            (
                out.status.code(),
                String::from_utf8(out.stdout).unwrap(),
                String::from_utf8(out.stderr).unwrap(),
            )
        }
    };
    let store = ["--store", redis.url.as_str()];
    let (code, out, err) = cli(&[
        &store[..],
        &[
            "merchant",
            "add",
            "shop",
            "--name",
            "Shop",
            "--bakongid",
            "shop@abaa",
        ],
    ]
    .concat())
    .await;
    assert_eq!(code, Some(0), "{err}");
    let added: Value = serde_json::from_str(&out).unwrap();
    let key = text(&added, "key");
    assert!(text(&added, "secret").starts_with("whsec_"));
    let (code, out, _) = cli(&[&store[..], &["merchant", "list"]].concat()).await;
    assert_eq!(code, Some(0));
    assert!(
        !out.contains(&key) && !out.contains(&text(&added, "secret")),
        "{out}"
    );
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["id"], "shop");
    // A server on the same Redis.
    let fake = fake_bakong().await;
    let config = config_for(&fake);
    let backend = common::Backend::Redis(redis.url.clone());
    let server = start_server(
        config.clone(),
        ServeConfig::default(),
        make_store(&backend, config.limits()).await,
    )
    .await;
    let a = create_as(&server.base, Some(&key), "shop@abaa", "").await;
    assert_eq!(a.status, 200, "{}", a.text());
    let (code, out, err) = cli(&[&store[..], &["merchant", "rotate-key", "shop"]].concat()).await;
    assert_eq!(code, Some(0), "{err}");
    let new_key = text(&serde_json::from_str(&out).unwrap(), "key");
    assert_unauthorized(
        &create_as(&server.base, Some(&key), "shop@abaa", "").await,
        "rotated key",
    );
    assert_eq!(
        create_as(&server.base, Some(&new_key), "shop@abaa", "")
            .await
            .status,
        200
    );
    let (code, out, err) = cli(&[
        &store[..],
        &["merchant", "rotate-secret", "shop", "--grace-secs", "60"],
    ]
    .concat())
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        serde_json::from_str::<Value>(&out).unwrap()["previousUntilMs"].is_u64(),
        "{out}"
    );
    let (code, _, err) = cli(&[&store[..], &["merchant", "disable", "shop"]].concat()).await;
    assert_eq!(code, Some(0), "{err}");
    assert_unauthorized(
        &create_as(&server.base, Some(&new_key), "shop@abaa", "").await,
        "disabled",
    );
    let (code, _, err) = cli(&[
        &store[..],
        &[
            "merchant",
            "add",
            "again",
            "--name",
            "A",
            "--bakongid",
            "shop@abaa",
        ],
    ]
    .concat())
    .await;
    assert_ne!(code, Some(0));
    assert!(err.contains("belongs to merchant"), "{err}");
    // With the memory store, one clear line and a failure.
    let (code, out, err) = cli(&["--store", "memory", "merchant", "list"]).await;
    assert_ne!(code, Some(0));
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("memory"), "{err}");
    server.stop().await;
}

/// A merchant's requests (`Payer::Merchant`) spend its own bucket and quota,
/// not its client address's nor the `bakongid`'s, on both stores: burst 3 at
/// 1/s and a quota of 2 QRs here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchants_bucket_and_quota_are_its_own_with_both_stores() {
    use khqr_server::store::{Created, Payer, Record, Store};
    let (_redis, backends) = backends();
    for backend in backends {
        let limits = Limits {
            client_per_sec: 1,
            client_burst: 1,
            account_per_sec: 1,
            account_burst: 1,
            merchant_per_sec: 1,
            merchant_burst: 3,
            quota_per_merchant: 2,
            ..Limits::default()
        };
        let store = make_store(&backend, limits).await;
        let now = now_ms();
        let record = |n: u32| Record {
            md5: format!("{n:032x}"),
            bakong_id: "shop@abaa".into(),
            username: "u".into(),
            payload: format!("p{n}"),
            expires_ms: now + 60_000,
            success_url: None,
            callback_url: None,
            merchant: Some("shop".into()),
            test: false,
        };
        let m = Payer::Merchant("shop");
        for n in 1..=3 {
            let created = store.create(m, &format!("TM{n:06}"), &record(n), now).await;
            assert_eq!(created.unwrap(), Created::Stored, "{backend:?}: create {n}");
        }
        // The third displaced the first (quota 2); the bucket is empty now.
        let fourth = store.fetch(m, None, "TM000001", now).await.unwrap();
        assert!(fourth.is_err(), "{backend:?}: the 4th request is limited");
        // Neither the account's bucket (burst 1) nor a client's was spent.
        let anon = store.fetch("10.9.0.1", Some("shop@abaa"), "TM000003", now);
        assert_eq!(anon.await.unwrap().unwrap(), Some(record(3)), "{backend:?}");
        let anon = store.fetch("10.9.0.2", Some("shop@abaa"), "TM000001", now);
        assert_eq!(anon.await.unwrap().unwrap(), None, "{backend:?}: displaced");
        let again = store.create("10.9.0.3", "TM000009", &record(9), now).await;
        assert!(
            matches!(again.unwrap(), Created::Limited(_)),
            "{backend:?}: the anonymous check that found shop@abaa's QR spent its one token"
        );
    }
}
