//! One test suite, run against the three stores: the in-memory store, the
//! SQLite store (a file in a fresh temporary directory) and a real
//! `redis-server` (started on a free loopback port, stopped by PID). The
//! durable stores also keep everything over a reopen (a restart).

mod common;

use std::time::Duration;

use common::now_ms;
use common::{make_store, Backend, Redis, TempDir};
use khqr_server::idempotency::{fingerprint, Idempotency};
use khqr_server::ledger::{
    event_id, Attempt, Cursor, DeliveryState, Event, EventFilter, EventKind, EventLog,
};
use khqr_server::store::{AnyStore, Created, Delivery, Limits, Record, SqliteStore, Store};

fn record(md5: &str, account: &str, expires_ms: u64) -> Record {
    Record {
        md5: md5.into(),
        bakong_id: account.into(),
        username: "john".into(),
        payload: format!("payload-{md5}"),
        expires_ms,
        success_url: None,
        callback_url: None,
        merchant: None,
        test: false,
    }
}

fn md5(n: u32) -> String {
    format!("{n:032x}")
}

/// Idempotency keys: stored with the QR, replayed with the same
/// fingerprint, refused with another, scoped, not filed when the tran was
/// taken, and at most the quota (3) per scope.
async fn idempotency(store: &AnyStore, now: u64) {
    let key = |scope: &str, k: &str, params: &str| {
        Idempotency::new(scope, k, fingerprint(&[Some(params)]))
    };
    let k1 = key("c:10.7.0.1", "order-1", "a");
    let r1 = record(&md5(501), "i@abaa", now + 60_000);
    let create = |tran: &'static str, r: Record, k: Idempotency| async move {
        store
            .create_keyed("10.7.0.1", tran, &r, now, Some(&k))
            .await
            .unwrap()
    };
    assert_eq!(
        create("TI000001", r1.clone(), k1.clone()).await,
        Created::Stored
    );
    let replay = Created::Replayed {
        tran: "TI000001".into(),
        md5: md5(501),
    };
    let r2 = record(&md5(502), "i@abaa", now + 60_000);
    assert_eq!(create("TI000002", r2.clone(), k1.clone()).await, replay);
    assert_eq!(
        store
            .fetch("10.7.0.1", None, "TI000002", now)
            .await
            .unwrap(),
        Ok(None),
        "a replay stores nothing"
    );
    let other = key("c:10.7.0.1", "order-1", "b");
    assert_eq!(
        create("TI000002", r2.clone(), other).await,
        Created::KeyReused
    );
    // Another scope's equal key is its own.
    let theirs = key("c:10.7.0.2", "order-1", "a");
    assert_eq!(
        create("TI000003", r2.clone(), theirs).await,
        Created::Stored
    );
    // A taken tran: nothing filed, so the retry with another tran stores.
    let k2 = key("c:10.7.0.1", "order-2", "a");
    let r4 = record(&md5(504), "i@abaa", now + 60_000);
    assert_eq!(
        create("TI000001", r4.clone(), k2.clone()).await,
        Created::Collision
    );
    assert_eq!(
        create("TI000004", r4.clone(), k2.clone()).await,
        Created::Stored
    );
    // Three keys per scope: a fourth forgets the oldest (order-1).
    for (i, tran) in [(5, "TI000005"), (6, "TI000006")] {
        let k = key("c:10.7.0.1", &format!("order-{i}"), "a");
        let r = record(&md5(500 + i), "i@abaa", now + 60_000);
        assert_eq!(create(tran, r, k).await, Created::Stored);
    }
    let r7 = record(&md5(507), "i@abaa", now + 60_000);
    assert_eq!(create("TI000007", r7, k1).await, Created::Stored);
}

async fn suite(backend: Backend) {
    let open = Limits {
        client_per_sec: 0,
        account_per_sec: 0,
        quota_per_client: 3,
        grace_ms: 0,
        ..Limits::default()
    };
    let store = make_store(&backend, open.clone()).await;
    let now = now_ms();
    store.ping().await.unwrap();

    // Round trip; a taken tran is refused even for the same QR (two
    // creates never share one); collision.
    let a = record(&md5(1), "a@abaa", now + 60_000);
    assert_eq!(
        store.create("10.0.0.1", "T0000001", &a, now).await.unwrap(),
        Created::Stored
    );
    assert_eq!(
        store
            .fetch("10.0.0.1", None, "T0000001", now)
            .await
            .unwrap(),
        Ok(Some(a.clone()))
    );
    assert_eq!(
        store.create("10.0.0.9", "T0000001", &a, now).await.unwrap(),
        Created::Collision
    );
    let other = record(&md5(2), "a@abaa", now + 60_000);
    assert_eq!(
        store
            .create("10.0.0.1", "T0000001", &other, now)
            .await
            .unwrap(),
        Created::Collision
    );
    assert_eq!(
        store
            .fetch("10.0.0.9", Some("x@abaa"), "NOPE0000", now)
            .await
            .unwrap(),
        Ok(None)
    );

    idempotency(&store, now).await;

    // Quota 3 per client: the 4th create of 10.0.0.1 displaces its own oldest;
    // another client's QR is untouched.
    let b = record(&md5(3), "b@abaa", now + 60_000);
    store.create("10.0.0.2", "TB000001", &b, now).await.unwrap();
    for i in 2..=4 {
        let r = record(&md5(100 + i), "a@abaa", now + 60_000);
        assert_eq!(
            store
                .create("10.0.0.1", &format!("T000000{i}"), &r, now)
                .await
                .unwrap(),
            Created::Stored
        );
    }
    assert_eq!(
        store
            .fetch("10.0.0.1", None, "T0000001", now)
            .await
            .unwrap(),
        Ok(None),
        "the oldest QR of the client over its quota is displaced"
    );
    for t in ["T0000002", "T0000003", "T0000004"] {
        assert!(store
            .fetch("10.0.0.1", None, t, now)
            .await
            .unwrap()
            .unwrap()
            .is_some());
    }
    assert_eq!(
        store
            .fetch("10.0.0.2", None, "TB000001", now)
            .await
            .unwrap(),
        Ok(Some(b))
    );
    assert!(store.size().await.unwrap() >= 4);

    // Keys expire with the QR (grace 0 here).
    let short = record(&md5(7), "c@abaa", now_ms() + 300);
    store
        .create("10.0.0.3", "TSHORT01", &short, now_ms())
        .await
        .unwrap();
    assert!(store
        .fetch("10.0.0.3", None, "TSHORT01", now_ms())
        .await
        .unwrap()
        .unwrap()
        .is_some());
    let mut gone = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if store
            .fetch("10.0.0.3", None, "TSHORT01", now_ms())
            .await
            .unwrap()
            .unwrap()
            .is_none()
        {
            gone = true;
            break;
        }
    }
    assert!(gone, "an expired QR is gone within 4 s");

    // Rate limits: client 1/s burst 3, account 1/s burst 2.
    let tight = Limits {
        client_per_sec: 1,
        client_burst: 3,
        account_per_sec: 1,
        account_burst: 2,
        ..open
    };
    let store = make_store(&backend, tight).await;
    let now = now_ms();
    for _ in 0..3 {
        assert!(store
            .fetch("10.1.0.1", None, "X", now)
            .await
            .unwrap()
            .is_ok());
    }
    let limited = store
        .fetch("10.1.0.1", None, "X", now)
        .await
        .unwrap()
        .unwrap_err();
    assert!((1..=1000).contains(&limited.retry_after_ms), "{limited:?}");
    // Another client is not affected. The account limit applies across
    // clients, but a check is charged to it only when it finds a QR of that
    // account: checks of a tran that does not exist cost the account nothing.
    for c in ["10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.2"] {
        assert!(store
            .fetch(c, Some("z@abaa"), "X", now)
            .await
            .unwrap()
            .unwrap()
            .is_none());
    }
    // A create and a check that finds its QR take the account's 2 tokens.
    let r = record(&md5(9), "z@abaa", now + 60_000);
    assert_eq!(
        store.create("10.1.0.5", "TZ000001", &r, now).await.unwrap(),
        Created::Stored
    );
    let found = store.fetch("10.1.0.6", Some("z@abaa"), "TZ000001", now);
    assert_eq!(found.await.unwrap().unwrap(), Some(r.clone()));
    // The same QR asked with another account is not charged to z@abaa.
    let other = store.fetch("10.1.0.8", Some("y@abaa"), "TZ000001", now);
    assert!(other.await.unwrap().is_ok());
    assert!(store
        .fetch("10.1.0.7", Some("z@abaa"), "TZ000001", now)
        .await
        .unwrap()
        .is_err());
    let r2 = record(&md5(10), "z@abaa", now + 60_000);
    assert!(matches!(
        store
            .create("10.1.0.9", "TZ000002", &r2, now)
            .await
            .unwrap(),
        Created::Limited(_)
    ));
    // Tokens come back with time.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(store
        .fetch("10.1.0.1", None, "X", now_ms())
        .await
        .unwrap()
        .is_ok());
}

/// Webhook delivery state: one lease holder at a time, attempts carried over,
/// done is final; the list of owed webhooks.
async fn delivery_suite(backend: Backend) {
    let store = make_store(&backend, Limits::default()).await;
    let now = now_ms();
    let m = md5(77);
    assert_eq!(
        store.delivery(&m, "one", 300).await.unwrap(),
        Delivery::Leased { attempts: 0 }
    );
    assert_eq!(
        store.delivery(&m, "two", 300).await.unwrap(),
        Delivery::Busy
    );
    store.delivery_update(&m, false, 2, 60_000).await.unwrap();
    assert_eq!(
        store.delivery(&m, "one", 300).await.unwrap(),
        Delivery::Leased { attempts: 2 },
        "the holder renews its lease"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        store.delivery(&m, "two", 300).await.unwrap(),
        Delivery::Leased { attempts: 2 },
        "an expired lease passes to another owner, with the attempts so far"
    );
    store.delivery_update(&m, true, 3, 60_000).await.unwrap();
    assert_eq!(
        store.delivery(&m, "one", 300).await.unwrap(),
        Delivery::Done
    );
    assert_eq!(
        store.delivery(&m, "two", 300).await.unwrap(),
        Delivery::Done
    );
    // Owed webhooks.
    let r = record(&md5(78), "w@abaa", now + 60_000);
    assert_eq!(
        store.create("10.9.0.1", "TW000001", &r, now).await.unwrap(),
        Created::Stored
    );
    store.watch_add("TW000001", now + 60_000).await.unwrap();
    store.watch_add("TW000002", now + 60_000).await.unwrap(); // no record: skipped
    store.watch_add("TW000003", now - 1).await.unwrap(); // past: dropped
    assert_eq!(
        store.watch_list(now, 100).await.unwrap(),
        vec![("TW000001".to_owned(), r.clone())]
    );
    store.watch_remove("TW000001").await.unwrap();
    assert!(store.watch_list(now, 100).await.unwrap().is_empty());
}

/// Named leases (one holder at a time, renewed by the holder, given up by a
/// 1 ms renewal, passed on once run out) and shared values (kept for their
/// time, replaced by the next).
async fn lease_suite(backend: Backend) {
    let store = make_store(&backend, Limits::default()).await;
    assert!(store.lease("job", "one", 300, now_ms()).await.unwrap());
    assert!(!store.lease("job", "two", 300, now_ms()).await.unwrap());
    assert!(store.lease("other", "two", 300, now_ms()).await.unwrap());
    assert!(
        store.lease("job", "one", 300, now_ms()).await.unwrap(),
        "renewed"
    );
    assert!(store.lease("job", "one", 1, now_ms()).await.unwrap());
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(
        store.lease("job", "two", 300, now_ms()).await.unwrap(),
        "given up"
    );
    assert!(!store.lease("job", "one", 300, now_ms()).await.unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        store.lease("job", "one", 300, now_ms()).await.unwrap(),
        "a lease that ran out passes on"
    );

    let now = now_ms();
    assert_eq!(store.shared_get("bakong-token", now).await.unwrap(), None);
    store
        .shared_put("bakong-token", "aaa.bbb.ccc", 60_000, now)
        .await
        .unwrap();
    assert_eq!(
        store
            .shared_get("bakong-token", now)
            .await
            .unwrap()
            .as_deref(),
        Some("aaa.bbb.ccc")
    );
    assert_eq!(store.shared_get("other", now).await.unwrap(), None);
    store
        .shared_put("bakong-token", "ddd.eee.fff", 300, now)
        .await
        .unwrap();
    assert_eq!(
        store
            .shared_get("bakong-token", now)
            .await
            .unwrap()
            .as_deref(),
        Some("ddd.eee.fff")
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        store.shared_get("bakong-token", now_ms()).await.unwrap(),
        None,
        "kept for its time only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_suite() {
    suite(Backend::Memory).await;
    delivery_suite(Backend::Memory).await;
    lease_suite(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_suite() {
    let dir = TempDir::new("sqlite-suite");
    let backend = Backend::Sqlite(dir.path.clone());
    suite(backend.clone()).await;
    delivery_suite(backend.clone()).await;
    lease_suite(backend.clone()).await;
    shared_and_restarted(&backend).await;
    assert!(dir.path.join("khqr.sqlite3").is_file());
    // The schema's version is checked at open: a file from a newer server is
    // refused, not misread.
    let newer = dir.path.join("newer.sqlite3");
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 2")
        .unwrap();
    let e = SqliteStore::open(&newer, Limits::default())
        .err()
        .expect("a newer schema is refused");
    assert!(e.detail().contains("schema version 2"), "{}", e.detail());
    // A file that is no database is refused too.
    let junk = dir.path.join("junk.sqlite3");
    std::fs::write(&junk, b"not a database, just some bytes that go on and on").unwrap();
    assert!(SqliteStore::open(&junk, Limits::default()).is_err());
}

/// What one store wrote, another store on the same data (another instance, or
/// this one restarted) reads: a QR, an owed webhook, a delivery's attempts and
/// its done mark.
async fn shared_and_restarted(backend: &Backend) {
    let now = now_ms();
    let r = record(&md5(42), "s@abaa", now + 60_000);
    let m = md5(43);
    {
        let a = make_store(backend, Limits::default()).await;
        a.create("10.2.0.1", "TSHARED1", &r, now).await.unwrap();
        a.watch_add("TSHARED1", now + 60_000).await.unwrap();
        assert_eq!(
            a.delivery(&m, "dead", 60_000).await.unwrap(),
            Delivery::Leased { attempts: 0 }
        );
        a.delivery_update(&m, false, 1, 60_000).await.unwrap();
        a.delivery_update(&md5(44), true, 1, 60_000).await.unwrap();
    }
    let b = make_store(backend, Limits::default()).await;
    assert_eq!(
        b.fetch("10.2.0.2", None, "TSHARED1", now).await.unwrap(),
        Ok(Some(r.clone()))
    );
    assert!(b
        .watch_list(now, 100)
        .await
        .unwrap()
        .contains(&("TSHARED1".to_owned(), r)));
    assert_eq!(
        b.delivery(&m, "alive", 300).await.unwrap(),
        Delivery::Busy,
        "the dead owner's lease still runs"
    );
    assert_eq!(
        b.delivery(&md5(44), "alive", 300).await.unwrap(),
        Delivery::Done
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_suite() {
    let redis = Redis::start();
    suite(Backend::Redis(redis.url.clone())).await;
    delivery_suite(Backend::Redis(redis.url.clone())).await;
    shared_and_restarted(&Backend::Redis(redis.url.clone())).await;
    lease_suite(Backend::Redis(redis.url.clone())).await;
}

// ---- the event log (issue 19, item 3) ----

fn event(merchant: &str, n: u32, kind: EventKind, created_ms: u64) -> Event {
    let m = md5(n);
    Event {
        id: event_id(kind, &m),
        kind,
        merchant: merchant.into(),
        md5: m.clone(),
        tran: format!("TE{n:06}"),
        created_ms,
        test: false,
        body: format!(r#"{{"md5":"{m}","n":{n}}}"#),
        callback_url: Some("https://shop.example/hook".into()),
        delivery: DeliveryState::Pending,
        attempts: 0,
    }
}

fn attempt(id: &str, n: u32) -> Attempt {
    Attempt {
        event_id: id.into(),
        n,
        at_ms: 1_700_000_000_000 + u64::from(n),
        duration_ms: u64::from(n) * 3,
        status: if n.is_multiple_of(2) {
            Some(204)
        } else {
            Some(500)
        },
        error: None,
        ok: n.is_multiple_of(2),
    }
}

/// Every id of `merchant`'s events passing `filter`, walked `page` at a time.
async fn walk(store: &AnyStore, merchant: &str, filter: &EventFilter, page: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut after: Option<Cursor> = None;
    for _ in 0..100 {
        let got = store
            .event_list(merchant, filter, after.as_ref(), page)
            .await
            .unwrap();
        out.extend(got.iter().map(|e| e.id.clone()));
        match got.last() {
            Some(last) if got.len() == page => after = Some(Cursor::new(last.created_ms, &last.id)),
            _ => break,
        }
    }
    out
}

/// The event log: filed once, per merchant, paged by `(created_ms, id)`
/// with neither repeats nor gaps when many share one ms, filtered; delivery
/// state; attempts bounded (first 50, last 50); the outbox; pruning; and,
/// on the durable stores, all of it read again by another store on the same
/// data (a restart).
async fn event_log_suite(backend: Backend) {
    let store = make_store(&backend, Limits::default()).await;
    let t0 = now_ms();
    let keep = t0 + 3_600_000;
    let mut want = Vec::new();
    for n in 0..30u32 {
        let kind = if n % 3 == 0 {
            EventKind::Paid
        } else {
            EventKind::Created
        };
        let e = event("m1", 1_000 + n, kind, t0 + u64::from(n / 8));
        assert!(store.event_put(&e, keep).await.unwrap(), "{backend:?}");
        want.push((e.created_ms, e.id));
    }
    want.sort();
    let other = event("m2", 2_000, EventKind::Created, t0);
    assert!(store.event_put(&other, keep).await.unwrap());
    // Filed once: a second put (even with another body) changes nothing.
    let mut again = event("m1", 1_000, EventKind::Paid, t0);
    again.body = "{}".into();
    assert!(!store.event_put(&again, keep).await.unwrap(), "{backend:?}");
    let first = store.event_get("m1", &again.id).await.unwrap().unwrap();
    assert_eq!(first, event("m1", 1_000, EventKind::Paid, t0));
    assert_eq!(store.event_get("m2", &again.id).await.unwrap(), None);

    let all: Vec<String> = want.iter().map(|w| w.1.clone()).collect();
    for page in [1, 4, 7, 30, 100] {
        let filter = EventFilter::default();
        assert_eq!(
            walk(&store, "m1", &filter, page).await,
            all,
            "{backend:?} page {page}"
        );
    }
    let paid = EventFilter {
        kind: Some(EventKind::Paid),
        ..EventFilter::default()
    };
    assert_eq!(walk(&store, "m1", &paid, 3).await.len(), 10);
    let mid = EventFilter {
        from_ms: Some(t0 + 1),
        to_ms: Some(t0 + 3),
        ..EventFilter::default()
    };
    let want_mid: Vec<String> = want
        .iter()
        .filter(|w| (t0 + 1..t0 + 3).contains(&w.0))
        .map(|w| w.1.clone())
        .collect();
    assert_eq!(want_mid.len(), 16);
    assert_eq!(walk(&store, "m1", &mid, 5).await, want_mid, "{backend:?}");
    assert_eq!(
        walk(&store, "m2", &EventFilter::default(), 5).await,
        std::slice::from_ref(&other.id)
    );

    // Delivery state and attempts.
    let id = first.id.clone();
    store
        .event_delivery(&id, DeliveryState::Failed, 120)
        .await
        .unwrap();
    for n in 1..=120 {
        store.attempt_add(&attempt(&id, n)).await.unwrap();
    }
    store
        .attempt_add(&attempt("evt_nosuchevent", 1))
        .await
        .unwrap();
    assert!(store
        .attempt_list("evt_nosuchevent", 10)
        .await
        .unwrap()
        .is_empty());
    let e = store.event_get("m1", &id).await.unwrap().unwrap();
    assert_eq!((e.delivery, e.attempts), (DeliveryState::Failed, 120));
    let kept = store.attempt_list(&id, 1_000).await.unwrap();
    let ns: Vec<u32> = kept.iter().map(|a| a.n).collect();
    let want_ns: Vec<u32> = (1..=50).chain(71..=120).collect();
    assert_eq!(ns, want_ns, "{backend:?}: the first 50 and the last 50");
    assert_eq!(kept[1], attempt(&id, 2));
    assert_eq!(store.attempt_list(&id, 3).await.unwrap().len(), 3);

    // The outbox: live entries with their events; past ones dropped.
    store.outbox_add(&id, t0 + 60_000).await.unwrap();
    store.outbox_add(&other.id, t0 - 1).await.unwrap();
    let owed = store.outbox_list(t0, 100).await.unwrap();
    assert_eq!(owed.len(), 1, "{backend:?}");
    assert_eq!(owed[0].id, id);
    assert_eq!(owed[0].attempts, 120);

    // Another store on the same data (another instance, or a restart).
    if !matches!(backend, Backend::Memory) {
        let b = make_store(&backend, Limits::default()).await;
        assert_eq!(b.outbox_list(t0, 100).await.unwrap()[0].id, id);
        assert_eq!(walk(&b, "m1", &EventFilter::default(), 9).await, all);
        assert_eq!(b.attempt_list(&id, 1_000).await.unwrap().len(), 100);
    }
    store.outbox_remove(&id).await.unwrap();
    assert!(store.outbox_list(t0, 100).await.unwrap().is_empty());

    // Pruning: an event past its keep time goes with its attempts and its
    // outbox entry; the others stay.
    let short = event("m1", 3_000, EventKind::Expired, t0 + 10);
    assert!(store.event_put(&short, t0 + 1_500).await.unwrap());
    store.attempt_add(&attempt(&short.id, 1)).await.unwrap();
    store.outbox_add(&short.id, t0 + 60_000).await.unwrap();
    assert_eq!(
        store.event_prune(t0 + 2_000).await.unwrap(),
        1,
        "{backend:?}"
    );
    assert_eq!(store.event_get("m1", &short.id).await.unwrap(), None);
    assert!(store.attempt_list(&short.id, 10).await.unwrap().is_empty());
    assert!(store.outbox_list(t0, 100).await.unwrap().is_empty());
    assert_eq!(walk(&store, "m1", &EventFilter::default(), 50).await, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_log_suite_memory() {
    event_log_suite(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_log_suite_sqlite() {
    let dir = TempDir::new("sqlite-events");
    event_log_suite(Backend::Sqlite(dir.path.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_log_suite_redis() {
    let redis = Redis::start();
    event_log_suite(Backend::Redis(redis.url.clone())).await;
}
