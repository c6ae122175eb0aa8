//! Merchants, API keys and per-merchant webhook secrets (issue 18, item 2),
//! and the "lock a merchant out" attack. Loopback only: distinct source
//! addresses 127.0.0.x are distinct clients to the server. Every loop is
//! bounded in count and in time.

mod common;

use std::time::{Duration, Instant};

use common::{backends, client, config_for, fake_bakong, get, make_store, start_server};
use khqr_server::merchant::{key_hash, run, MerchantCommand, MerchantStore, MerchantTable};
use khqr_server::store::{Limits, RedisStore};
use khqr_server::ServeConfig;

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
/// requests/s fit in, but that 40 strangers' checks a second drain.
fn lockout_limits() -> Limits {
    Limits {
        account_per_sec: 10,
        account_burst: 20,
        ..Limits::default()
    }
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
        config.limits = lockout_limits();
        let store = make_store(&backend, config.limits.clone()).await;
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
