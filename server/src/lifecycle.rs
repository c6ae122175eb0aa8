//! A merchant QR's life after its creation: paid, expired, or paid late.
//!
//! Every move of an [`Entry`]'s status goes through the record's
//! compare-and-set ([`EntryLog::entry_settle`]), and only the caller whose
//! compare-and-set moved it emits the event ([`Events::emit`]): so however
//! many instances, watchers, checks and reconciliation jobs see the same
//! payment, `khqr.paid` (or `khqr.paid_late`, or `khqr.expired`) is filed
//! once. (The event's stable id makes a second filing a no-op as well.)
//!
//! | from | seen | to | event |
//! |---|---|---|---|
//! | pending or expired | a payment Bakong acknowledged at or before `expires_ms` | paid | `khqr.paid` |
//! | pending or expired | a payment acknowledged after `expires_ms` | paid late | `khqr.paid_late` |
//! | pending | a payment without a time | paid | `khqr.paid` |
//! | expired | a payment without a time | paid late | `khqr.paid_late` |
//! | pending | the reconciliation job finds it unpaid after expiry and grace | expired | `khqr.expired` |
//!
//! Paid and paid-late are final. Test QRs (made with a test key, see
//! [`crate::merchant::Caller::Test`]) follow the same moves, but their
//! payments come only from `POST /khqr/merchant/test/pay/{tran}`
//! ([`test_payment`]) and their status is read from the record
//! ([`test_status`]), never from Bakong.
//!
//! A crash between the compare-and-set and the event's filing loses that
//! event (the status has moved; nobody emits again): the window is one store
//! call wide.

use bakong_khqr::status::{parse_transaction, HttpResponse, Transaction, TransactionStatus};

use crate::events::Events;
use crate::ledger::{Entry, EntryLog, EventKind, Payment, QrStatus};
use crate::store::{AnyStore, Record, StoreError};

/// Whether Bakong's transaction `t` pays the entry `e`: the same currency
/// and exactly its amount in minor units ([`bakong_khqr::Amount::read_minor_units`]).
/// The list call (`check_transaction_by_md5_list`) reports a payment under
/// the QR's MD5 without comparing it with the QR, as
/// [`bakong_khqr::status::Transaction::pays`] does for a single check; a
/// payment of another amount is not a payment of this QR.
#[must_use]
pub fn pays(t: &Transaction, e: &Entry) -> bool {
    let Ok(currency) = bakong_khqr::Currency::parse(&e.currency) else {
        return false;
    };
    let want = bakong_khqr::Amount::read_minor_units(&e.amount, currency).ok();
    t.currency() == Some(currency) && want.is_some() && t.minor_units() == want
}

/// The [`Payment`] of a transaction Bakong reported: its amount and currency
/// as sent, its hash and payer, and its time (acknowledged, else created).
#[must_use]
pub fn payment_of(t: &Transaction) -> Payment {
    Payment {
        amount: t.amount.clone(),
        currency: t.currency.clone(),
        paid_at_ms: t.acknowledged_ms.or(t.created_ms),
        hash: t.hash.clone(),
        from_account_id: t.from_account_id.clone(),
    }
}

/// Where a payment moves an entry that is now `status` and expires at
/// `expires_ms` (ms since the Unix epoch): `None` if it is paid already
/// (final), else paid or paid late (see the module's table).
#[must_use]
pub fn settled_status(
    status: QrStatus,
    expires_ms: u64,
    paid_at_ms: Option<u64>,
) -> Option<QrStatus> {
    let late = match (status, paid_at_ms) {
        (QrStatus::Paid | QrStatus::PaidLate, _) => return None,
        (_, Some(at)) => at > expires_ms,
        (s, None) => s == QrStatus::Expired,
    };
    Some(if late {
        QrStatus::PaidLate
    } else {
        QrStatus::Paid
    })
}

/// The event of a move to `to`.
fn event_of(to: QrStatus) -> EventKind {
    match to {
        QrStatus::Paid => EventKind::Paid,
        QrStatus::PaidLate => EventKind::PaidLate,
        QrStatus::Expired => EventKind::Expired,
        QrStatus::Pending => EventKind::Created,
    }
}

/// Most compare-and-set rounds of one [`settle`]: a round fails only when
/// another caller moved the entry meanwhile, which can happen once
/// (pending to expired) before the status is final.
const SETTLE_ROUNDS: usize = 3;

/// `payment` was seen for the QR `md5` at `now_ms` (ms since the Unix
/// epoch): moves its entry from pending or expired to paid or paid late
/// ([`settled_status`]) and, if this call moved it, emits `khqr.paid` or
/// `khqr.paid_late`. The entry as moved, or `None`: no entry (an anonymous
/// QR, or past retention), already paid, or moved by another caller.
///
/// # Errors
/// [`StoreError`] if the record or the event log cannot be read or written.
pub async fn settle(
    store: &AnyStore,
    events: &Events,
    md5: &str,
    payment: &Payment,
    now_ms: u64,
) -> Result<Option<Entry>, StoreError> {
    for _ in 0..SETTLE_ROUNDS {
        let Some(entry) = store.entry_get(md5).await? else {
            return Ok(None);
        };
        let Some(to) = settled_status(entry.status, entry.expires_ms, payment.paid_at_ms) else {
            return Ok(None);
        };
        let moved = store
            .entry_settle(md5, &[entry.status], to, Some(payment), now_ms)
            .await?;
        if let Some(moved) = moved {
            events.emit(event_of(to), &moved, now_ms).await?;
            return Ok(Some(moved));
        }
    }
    Ok(None)
}

/// Bakong's `status` of the QR `record`, seen at `now_ms` by a watcher or a
/// check: if it is a payment of a merchant's QR, [`settle`]s it. Never fails
/// the caller: a store error is logged (the reconciliation job sees the
/// payment again later).
pub async fn seen(
    store: &AnyStore,
    events: &Events,
    record: &Record,
    status: &TransactionStatus,
    now_ms: u64,
) {
    let TransactionStatus::Paid(t) = status else {
        return;
    };
    if record.merchant.is_none() {
        // Anonymous QRs are not in the record.
        return;
    }
    if let Err(e) = settle(store, events, &record.md5, &payment_of(t), now_ms).await {
        tracing::warn!(detail = e.detail(), "cannot settle a paid QR in the record");
    }
}

/// The QR `md5` was found unpaid after its expiry: moves its entry from
/// pending to expired at `now_ms` and, if this call moved it, emits
/// `khqr.expired`. The entry as moved, or `None` (no entry, or not pending).
///
/// # Errors
/// [`StoreError`] if the record or the event log cannot be written.
pub async fn expire(
    store: &AnyStore,
    events: &Events,
    md5: &str,
    now_ms: u64,
) -> Result<Option<Entry>, StoreError> {
    let moved = store
        .entry_settle(md5, &[QrStatus::Pending], QrStatus::Expired, None, now_ms)
        .await?;
    if let Some(entry) = &moved {
        events.emit(EventKind::Expired, entry, now_ms).await?;
    }
    Ok(moved)
}

/// A test payment of `entry` at `now_ms`: the QR's amount and currency, a
/// hash `test_` and 64 random hex digits, paid now, from nobody.
#[must_use]
pub fn test_payment(entry: &Entry, now_ms: u64) -> Payment {
    Payment {
        amount: entry.amount.clone(),
        currency: entry.currency.clone(),
        paid_at_ms: Some(now_ms),
        hash: format!("test_{}", hex::encode(rand::random::<[u8; 32]>())),
        from_account_id: None,
    }
}

/// What a status check says of the test QR `md5`, from the record alone:
/// paid (its test payment, as Bakong would report it) once paid, else
/// pending. A record that cannot be read says pending (logged).
pub async fn test_status(store: &AnyStore, md5: &str) -> TransactionStatus {
    match store.entry_get(md5).await {
        Ok(Some(Entry {
            payment: Some(p), ..
        })) => status_of_payment(&p),
        Ok(_) => TransactionStatus::Pending,
        Err(e) => {
            tracing::warn!(detail = e.detail(), "test QR: cannot read the record");
            TransactionStatus::Pending
        }
    }
}

/// `payment` as the library reads a Bakong answer that reports it (the only
/// way to make a [`Transaction`]: Bakong's answer, through
/// [`parse_transaction`]).
#[must_use]
pub fn status_of_payment(payment: &Payment) -> TransactionStatus {
    let body = serde_json::json!({
        "responseCode": 0,
        "responseMessage": "Getting transaction successfully.",
        "errorCode": null,
        "data": {
            "hash": payment.hash,
            "fromAccountId": payment.from_account_id,
            "currency": payment.currency,
            "amount": payment.amount,
            "createdDateMs": payment.paid_at_ms,
            "acknowledgedDateMs": payment.paid_at_ms,
        },
    });
    let resp = HttpResponse::new(200, body.to_string().into_bytes());
    parse_transaction(&resp).unwrap_or(TransactionStatus::Pending)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::ledger::{EventFilter, EventLog};
    use crate::store::{Limits, MemoryStore};

    fn paid(body: &str) -> Transaction {
        let resp = HttpResponse::new(200, body.as_bytes().to_vec());
        match parse_transaction(&resp) {
            Ok(TransactionStatus::Paid(t)) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_list_payment_pays_only_its_amount_and_currency() {
        let e = |amount: &str, currency: &str| Entry {
            md5: "0".repeat(32),
            tran: "T".into(),
            merchant: "m".into(),
            bakong_id: "a@b".into(),
            username: "u".into(),
            amount: amount.into(),
            currency: currency.into(),
            created_ms: 0,
            expires_ms: 1,
            status: QrStatus::Pending,
            updated_ms: 0,
            payment: None,
            test: false,
            callback_url: None,
        };
        let body = |amount: &str, currency: &str| {
            format!(
                r#"{{"responseCode":0,"responseMessage":"ok","errorCode":null,"data":{{"hash":"h","currency":"{currency}","amount":{amount}}}}}"#
            )
        };
        assert!(pays(&paid(&body("1.5", "USD")), &e("1.50", "USD")));
        assert!(pays(&paid(&body("5000", "KHR")), &e("5000", "KHR")));
        assert!(!pays(&paid(&body("0.01", "USD")), &e("100", "USD")));
        assert!(!pays(&paid(&body("1.5", "KHR")), &e("1.5", "USD")));
        assert!(!pays(&paid(&body("100.001", "USD")), &e("100", "USD")));
    }

    const MD5: &str = "0123456789abcdef0123456789abcdef";

    fn entry(expires_ms: u64) -> Entry {
        Entry {
            md5: MD5.into(),
            tran: "t1".into(),
            merchant: "shop".into(),
            bakong_id: "shop@abaa".into(),
            username: "john".into(),
            amount: "1.25".into(),
            currency: "USD".into(),
            created_ms: 1_000,
            expires_ms,
            status: QrStatus::Pending,
            updated_ms: 1_000,
            payment: None,
            test: false,
            callback_url: None,
        }
    }

    fn paid_at(at: Option<u64>) -> Payment {
        Payment {
            amount: "1.25".into(),
            currency: "USD".into(),
            paid_at_ms: at,
            hash: "ab".repeat(32),
            from_account_id: Some("payer@abaa".into()),
        }
    }

    /// The application's store and event writer, `e` filed.
    async fn setup(e: &Entry) -> (Arc<AnyStore>, Arc<Events>) {
        let store = AnyStore::Memory(MemoryStore::new(Limits::default()));
        let config = Arc::new(Config::new("http://x"));
        let state = crate::state::AppState::start(config, store).unwrap();
        state.store.entry_put(e, u64::MAX).await.unwrap();
        (state.store.clone(), state.events.clone())
    }

    async fn kinds(store: &AnyStore) -> Vec<EventKind> {
        let list = store
            .event_list("shop", &EventFilter::default(), None, 100)
            .await
            .unwrap();
        list.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn the_table() {
        use QrStatus::*;
        assert_eq!(settled_status(Pending, 100, Some(100)), Some(Paid));
        assert_eq!(settled_status(Pending, 100, Some(101)), Some(PaidLate));
        assert_eq!(settled_status(Expired, 100, Some(50)), Some(Paid));
        assert_eq!(settled_status(Expired, 100, Some(101)), Some(PaidLate));
        assert_eq!(settled_status(Pending, 100, None), Some(Paid));
        assert_eq!(settled_status(Expired, 100, None), Some(PaidLate));
        assert_eq!(settled_status(Paid, 100, Some(1)), None);
        assert_eq!(settled_status(PaidLate, 100, None), None);
    }

    #[tokio::test]
    async fn a_late_payment_settles_once_as_paid_late() {
        let (store, events) = setup(&entry(5_000)).await;
        assert!(expire(&store, &events, MD5, 6_000).await.unwrap().is_some());
        assert!(expire(&store, &events, MD5, 6_001).await.unwrap().is_none());
        let p = paid_at(Some(7_000));
        let moved = settle(&store, &events, MD5, &p, 8_000).await.unwrap();
        let moved = moved.expect("moved");
        assert_eq!(moved.status, QrStatus::PaidLate);
        assert_eq!(moved.payment.as_ref(), Some(&p));
        assert_eq!(moved.updated_ms, 8_000);
        assert!(settle(&store, &events, MD5, &p, 9_000)
            .await
            .unwrap()
            .is_none());
        assert!(expire(&store, &events, MD5, 9_000).await.unwrap().is_none());
        assert_eq!(
            kinds(&store).await,
            [EventKind::Expired, EventKind::PaidLate]
        );
    }

    #[tokio::test]
    async fn concurrent_settles_move_it_once() {
        let (store, events) = setup(&entry(5_000)).await;
        let mut tasks = Vec::new();
        for i in 0..16u64 {
            let (store, events) = (store.clone(), events.clone());
            tasks.push(tokio::spawn(async move {
                let p = paid_at(Some(4_000));
                settle(&store, &events, MD5, &p, 4_500 + i).await.unwrap()
            }));
        }
        let mut moved = 0;
        for t in tasks {
            moved += usize::from(t.await.unwrap().is_some());
        }
        assert_eq!(moved, 1);
        assert_eq!(kinds(&store).await, [EventKind::Paid]);
        let e = store.entry_get(MD5).await.unwrap().unwrap();
        assert_eq!(e.status, QrStatus::Paid);
    }

    #[tokio::test]
    async fn no_entry_no_move() {
        let (store, events) = setup(&entry(5_000)).await;
        let other = "f".repeat(32);
        let p = paid_at(None);
        assert!(settle(&store, &events, &other, &p, 1)
            .await
            .unwrap()
            .is_none());
        assert!(expire(&store, &events, &other, 1).await.unwrap().is_none());
        assert!(kinds(&store).await.is_empty());
    }

    #[tokio::test]
    async fn a_test_payment_reads_back_as_bakong_would_report_it() {
        let mut e = entry(5_000);
        e.test = true;
        let (store, events) = setup(&e).await;
        assert_eq!(test_status(&store, MD5).await, TransactionStatus::Pending);
        let p = test_payment(&e, 4_000);
        assert!(p.hash.starts_with("test_") && p.hash.len() == 69);
        let moved = settle(&store, &events, MD5, &p, 4_000)
            .await
            .unwrap()
            .unwrap();
        assert!(moved.test);
        match test_status(&store, MD5).await {
            TransactionStatus::Paid(t) => {
                assert_eq!(t.amount, "1.25");
                assert_eq!(t.currency, "USD");
                assert_eq!(t.hash, p.hash);
                assert_eq!(t.acknowledged_ms, Some(4_000));
                assert_eq!(payment_of(&t), p);
            }
            other => panic!("{other:?}"),
        }
        let list = store
            .event_list("shop", &EventFilter::default(), None, 10)
            .await
            .unwrap();
        assert_eq!(list.len(), 1);
        assert!(list[0].test);
        assert!(list[0].body.contains(r#""test":true"#), "{}", list[0].body);
    }
}
