//! The payment record ([`EntryLog`]) against the three stores: memory,
//! SQLite (a file in a fresh temporary directory, reopened as after a
//! restart) and a real `redis-server` on a free loopback port.

mod common;

use common::now_ms;
use common::{make_store, open_limits, Backend, Redis, TempDir};
use khqr_server::ledger::{Cursor, Entry, EntryFilter, EntryLog, Payment, QrStatus};
use khqr_server::store::AnyStore;

const T0: u64 = 1_796_544_000_000;
/// 2100-01-01: kept for the whole test on every clock.
const KEEP: u64 = 4_102_444_800_000;

fn md5(n: u32) -> String {
    format!("{n:032x}")
}

fn entry(n: u32, merchant: &str, account: &str, created_ms: u64) -> Entry {
    Entry {
        md5: md5(n),
        tran: format!("T{n:07}"),
        merchant: merchant.into(),
        bakong_id: account.into(),
        username: format!("user {n}, \"x\""),
        amount: "1.25".into(),
        currency: "USD".into(),
        created_ms,
        expires_ms: created_ms + 600_000,
        status: QrStatus::Pending,
        updated_ms: created_ms,
        payment: None,
        test: false,
        callback_url: None,
    }
}

fn payment() -> Payment {
    Payment {
        amount: "1.25".into(),
        currency: "USD".into(),
        paid_at_ms: Some(T0 + 5),
        hash: "ab".repeat(32),
        from_account_id: Some("payer@abaa".into()),
    }
}

fn ids(list: &[Entry]) -> Vec<String> {
    list.iter().map(|e| e.md5.clone()).collect()
}

/// Every entry of `merchant` passing `filter`, paged `limit` at a time
/// (at most 100 pages).
async fn all_pages(s: &AnyStore, merchant: &str, filter: &EntryFilter, limit: usize) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let mut after: Option<Cursor> = None;
    for _ in 0..100 {
        let page = s
            .entry_list(merchant, filter, after.as_ref(), limit)
            .await
            .unwrap();
        assert!(page.len() <= limit);
        let full = page.len() == limit;
        out.extend(page);
        if !full {
            return out;
        }
        let last = out.last().unwrap();
        after = Some(Cursor::new(last.created_ms, &last.md5));
    }
    panic!("more than 100 pages");
}

/// Put, get, the order and pages (30 entries, 20 of them in one ms), the
/// filters, another merchant's entries, compare-and-set, due lists, pruning.
async fn suite(s: &AnyStore) {
    // 20 entries at T0 + 10 (md5 3..=22, put in reverse), 10 spread out.
    for n in (3..=22).rev() {
        assert!(s
            .entry_put(&entry(n, "shop", "a@abaa", T0 + 10), KEEP)
            .await
            .unwrap());
    }
    for n in 23..=32 {
        let account = if n % 2 == 0 { "a@abaa" } else { "b@abaa" };
        let created = T0 + u64::from(n) * 100;
        assert!(s
            .entry_put(&entry(n, "shop", account, created), KEEP)
            .await
            .unwrap());
    }
    assert!(s
        .entry_put(&entry(1, "other", "o@abaa", T0 + 10), KEEP)
        .await
        .unwrap());
    assert!(s
        .entry_put(&entry(2, "other", "a@abaa", T0 + 10), KEEP)
        .await
        .unwrap());
    // A second put of an MD5 files nothing and changes nothing.
    let mut again = entry(3, "shop", "z@abaa", T0);
    again.username = "changed".into();
    assert!(!s.entry_put(&again, KEEP).await.unwrap());
    assert_eq!(
        s.entry_get(&md5(3)).await.unwrap(),
        Some(entry(3, "shop", "a@abaa", T0 + 10))
    );
    assert_eq!(s.entry_get(&md5(999)).await.unwrap(), None);

    // Order: (created_ms, md5); every page size gives the same 30, once each.
    let want: Vec<String> = (3..=32).map(md5).collect();
    let none = EntryFilter::default();
    for limit in [1, 3, 7, 20, 30, 1000] {
        assert_eq!(
            ids(&all_pages(s, "shop", &none, limit).await),
            want,
            "limit {limit}"
        );
    }
    assert_eq!(
        ids(&all_pages(s, "other", &none, 10).await),
        vec![md5(1), md5(2)]
    );
    assert!(all_pages(s, "nobody", &none, 10).await.is_empty());
    // A cursor in the middle of the equal ms.
    let page = s
        .entry_list("shop", &none, Some(&Cursor::new(T0 + 10, &md5(12))), 4)
        .await
        .unwrap();
    assert_eq!(ids(&page), (13..=16).map(md5).collect::<Vec<_>>());

    // Filters.
    let account_b = EntryFilter {
        bakong_id: Some("b@abaa".into()),
        ..EntryFilter::default()
    };
    let odd: Vec<String> = (23..=32).filter(|n| n % 2 == 1).map(md5).collect();
    assert_eq!(ids(&all_pages(s, "shop", &account_b, 2).await), odd);
    let range = EntryFilter {
        from_ms: Some(T0 + 2_500),
        to_ms: Some(T0 + 2_900),
        ..EntryFilter::default()
    };
    assert_eq!(
        ids(&all_pages(s, "shop", &range, 2).await),
        vec![md5(25), md5(26), md5(27), md5(28)]
    );
    let from_equal = EntryFilter {
        from_ms: Some(T0 + 10),
        to_ms: Some(T0 + 11),
        ..EntryFilter::default()
    };
    assert_eq!(all_pages(s, "shop", &from_equal, 6).await.len(), 20);
    // A cursor before `from` starts at `from`.
    let page = s
        .entry_list("shop", &range, Some(&Cursor::new(T0, &md5(1))), 10)
        .await
        .unwrap();
    assert_eq!(page.len(), 4);

    // Compare-and-set.
    let paid = s
        .entry_settle(
            &md5(24),
            &[QrStatus::Pending],
            QrStatus::Paid,
            Some(&payment()),
            T0 + 50,
        )
        .await
        .unwrap()
        .expect("pending -> paid");
    assert_eq!((paid.status, paid.updated_ms), (QrStatus::Paid, T0 + 50));
    assert_eq!(paid.payment, Some(payment()));
    assert_eq!(s.entry_get(&md5(24)).await.unwrap(), Some(paid.clone()));
    assert_eq!(
        s.entry_settle(
            &md5(24),
            &[QrStatus::Pending],
            QrStatus::Paid,
            None,
            T0 + 60
        )
        .await
        .unwrap(),
        None,
        "already moved on"
    );
    assert_eq!(
        s.entry_settle(&md5(999), &[QrStatus::Pending], QrStatus::Paid, None, T0)
            .await
            .unwrap(),
        None
    );
    // Two at once: exactly one wins.
    let m26 = md5(26);
    let (a, b) = tokio::join!(
        s.entry_settle(&m26, &[QrStatus::Pending], QrStatus::Expired, None, T0 + 70),
        s.entry_settle(&m26, &[QrStatus::Pending], QrStatus::Expired, None, T0 + 71),
    );
    assert_eq!(
        u8::from(a.unwrap().is_some()) + u8::from(b.unwrap().is_some()),
        1
    );
    let late = s
        .entry_settle(
            &md5(26),
            &[QrStatus::Pending, QrStatus::Expired],
            QrStatus::PaidLate,
            Some(&payment()),
            T0 + 80,
        )
        .await
        .unwrap()
        .expect("expired -> paid_late");
    assert_eq!(late.status, QrStatus::PaidLate);
    let by_status = |st: QrStatus, account: Option<&str>| EntryFilter {
        status: Some(st),
        bakong_id: account.map(str::to_owned),
        ..EntryFilter::default()
    };
    assert_eq!(
        ids(&all_pages(s, "shop", &by_status(QrStatus::Paid, None), 1).await),
        vec![md5(24)]
    );
    assert_eq!(
        ids(&all_pages(s, "shop", &by_status(QrStatus::PaidLate, None), 1).await),
        vec![md5(26)]
    );
    assert!(all_pages(s, "shop", &by_status(QrStatus::Expired, None), 5)
        .await
        .is_empty());
    assert_eq!(
        all_pages(s, "shop", &by_status(QrStatus::Pending, None), 4)
            .await
            .len(),
        28
    );
    assert_eq!(
        ids(&all_pages(s, "shop", &by_status(QrStatus::Paid, Some("a@abaa")), 1).await),
        vec![md5(24)]
    );
    assert!(
        all_pages(s, "shop", &by_status(QrStatus::Paid, Some("b@abaa")), 1)
            .await
            .is_empty()
    );
    assert!(all_pages(s, "other", &by_status(QrStatus::Paid, None), 1)
        .await
        .is_empty());

    // Due: pending by expires_ms across merchants, paged.
    let mut due = Vec::new();
    let mut after: Option<Cursor> = None;
    for _ in 0..20 {
        let page = s
            .entry_due(
                QrStatus::Pending,
                T0 + 600_010,
                T0 + 602_600,
                after.as_ref(),
                3,
            )
            .await
            .unwrap();
        let full = page.len() == 3;
        due.extend(page);
        if !full {
            break;
        }
        let last = due.last().unwrap();
        after = Some(Cursor::new(last.expires_ms, &last.md5));
    }
    let mut want: Vec<String> = vec![md5(1), md5(2)];
    want.extend((3..=22).map(md5));
    want.extend([23, 25].map(md5));
    assert_eq!(ids(&due), want);
    let paid_due = s
        .entry_due(QrStatus::Paid, 0, u64::MAX / 2, None, 10)
        .await
        .unwrap();
    assert_eq!(ids(&paid_due), vec![md5(24)]);

    // Pruning: the entries kept until before `now` go, from every list.
    // (Kept until a time to come: Redis lets a key lapse on its own clock.)
    let keep = now_ms() + 60_000;
    let mut short = entry(40, "shop", "b@abaa", T0 + 20);
    assert!(s.entry_put(&short, keep).await.unwrap());
    short.md5 = md5(41);
    assert!(s.entry_put(&short, keep).await.unwrap());
    s.entry_settle(
        &md5(41),
        &[QrStatus::Pending],
        QrStatus::Paid,
        Some(&payment()),
        T0 + 30,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(all_pages(s, "shop", &none, 1000).await.len(), 32);
    assert_eq!(s.entry_prune(keep - 1).await.unwrap(), 0);
    assert_eq!(s.entry_prune(keep).await.unwrap(), 2);
    assert_eq!(s.entry_get(&md5(40)).await.unwrap(), None);
    assert_eq!(all_pages(s, "shop", &none, 1000).await.len(), 30);
    assert_eq!(
        ids(&all_pages(s, "shop", &by_status(QrStatus::Paid, None), 5).await),
        vec![md5(24)]
    );
    assert_eq!(ids(&all_pages(s, "shop", &account_b, 5).await), odd);
    assert_eq!(s.entry_prune(keep).await.unwrap(), 0);
}

/// What a store wrote, another store on the same data (a restart, or
/// another instance) reads and settles.
async fn restarted(backend: &Backend) {
    {
        let a = make_store(backend, open_limits()).await;
        assert!(a
            .entry_put(&entry(100, "keep", "k@abaa", T0), KEEP)
            .await
            .unwrap());
    }
    let b = make_store(backend, open_limits()).await;
    assert_eq!(
        b.entry_get(&md5(100)).await.unwrap(),
        Some(entry(100, "keep", "k@abaa", T0))
    );
    let settled = b
        .entry_settle(
            &md5(100),
            &[QrStatus::Pending],
            QrStatus::Paid,
            Some(&payment()),
            T0 + 1,
        )
        .await
        .unwrap()
        .unwrap();
    drop(b);
    let c = make_store(backend, open_limits()).await;
    let listed = c
        .entry_list("keep", &EntryFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(listed, vec![settled]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_entries() {
    suite(&make_store(&Backend::Memory, open_limits()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_entries_and_restart() {
    let dir = TempDir::new("entries");
    let backend = Backend::Sqlite(dir.path.clone());
    suite(&make_store(&backend, open_limits()).await).await;
    restarted(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_entries_and_restart() {
    let redis = Redis::start();
    let backend = Backend::Redis(redis.url.clone());
    suite(&make_store(&backend, open_limits()).await).await;
    restarted(&backend).await;
}
