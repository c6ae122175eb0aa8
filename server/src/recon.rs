//! The reconciliation job: finds what nobody watched. Every
//! [`Config::reconcile_every_secs`], the one instance holding the store lease
//! `recon` runs one cycle of two passes over the payment record:
//!
//! 1. **Pending past expiry.** Merchant QRs still pending whose `expires_ms`
//!    plus the grace period ([`Config::grace_secs`]) has passed, soonest expiry
//!    first, 50 at a time: one `check_transaction_by_md5_list` call per 50
//!    ([`Upstream::check_md5_list`]); each paid one settles (paid, or paid
//!    late: [`lifecycle::settle`]), each other one expires (`khqr.expired`,
//!    [`lifecycle::expire`]).
//! 2. **Expired, looking for late payments.** Merchant QRs expired within
//!    [`Config::reconcile_window_hours`] of now are checked again the same way,
//!    oldest first, continuing each cycle where the last stopped (a cursor
//!    shared through the store) and starting over at the oldest when done; a
//!    paid one becomes paid late (`khqr.paid_late`). A QR is checked at most
//!    once per cycle.
//!
//! Each pass makes at most [`Config::reconcile_batches`] list calls per cycle.
//! Every call takes a token of the Bakong call budget at the lowest priority
//! ([`Priority::Reconcile`]): when the budget is short the cycle ends there
//! and the next one goes on. Test QRs are never sent to Bakong: pass 1
//! expires them unpaid, pass 2 leaves them (their late payment is the test
//! route's). Counted in `khqr_reconcile_checked_total` (QRs asked about) and
//! `khqr_reconcile_late_payments_total`.
//!
//! [`Priority::Reconcile`]: crate::upstream::budget::Priority::Reconcile

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bakong_khqr::status::{TransactionStatus, MAX_MD5_LIST_LEN};
use bakong_khqr::Md5;

use crate::config::Config;
use crate::events::Events;
use crate::ledger::{Cursor, Entry, EntryLog, QrStatus};
use crate::lifecycle;
use crate::store::{AnyStore, Store, StoreError};
use crate::time::now_ms;
use crate::upstream::{Upstream, UpstreamFail};

/// The store lease held by the instance that reconciles.
pub const LEASE_KEY: &str = "recon";
/// The shared value holding pass 2's position (a [`Cursor`]).
pub const CURSOR_KEY: &str = "recon-late-cursor";

/// What one cycle did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cycle {
    /// Whether this instance held the lease (else it did nothing).
    pub leader: bool,
    /// List calls made to Bakong.
    pub calls: u32,
    /// QRs asked about.
    pub checked: u64,
    /// Pending QRs moved to expired.
    pub expired: u64,
    /// QRs moved to paid (paid before expiry, seen only now).
    pub paid: u64,
    /// QRs moved to paid late.
    pub paid_late: u64,
    /// Whether a call was skipped or failed (the cycle stopped there).
    pub stopped: bool,
}

/// The job (see the module's docs).
pub struct Reconciler {
    config: Arc<Config>,
    store: Arc<AnyStore>,
    upstream: Arc<Upstream>,
    events: Arc<Events>,
}

/// A batch's outcome: go on, or stop the cycle.
enum Step {
    More,
    Done,
    Stop,
}

impl Reconciler {
    /// The job for `config`, on `store`, asking Bakong through `upstream`,
    /// emitting through `events`.
    pub fn new(
        config: Arc<Config>,
        store: Arc<AnyStore>,
        upstream: Arc<Upstream>,
        events: Arc<Events>,
    ) -> Self {
        Reconciler {
            config,
            store,
            upstream,
            events,
        }
    }

    /// One cycle at `now_ms` (ms since the Unix epoch), if this instance
    /// holds (or takes) the lease: both passes, each at most
    /// [`Config::reconcile_batches`] list calls.
    ///
    /// # Errors
    /// [`StoreError`] if the record cannot be read or written (the cycle stops).
    pub async fn cycle(&self, now_ms: u64) -> Result<Cycle, StoreError> {
        let mut out = Cycle::default();
        let lease_ms = self
            .config
            .reconcile_every_ms()
            .saturating_mul(2)
            .saturating_add(self.config.upstream_timeout_ms);
        let instance = self.upstream.instance();
        if !self
            .store
            .lease(LEASE_KEY, instance, lease_ms, now_ms)
            .await?
        {
            return Ok(out);
        }
        out.leader = true;
        self.pending_pass(now_ms, &mut out).await?;
        if !out.stopped {
            self.late_pass(now_ms, &mut out).await?;
        }
        Ok(out)
    }

    /// Pass 1: pending QRs past expiry and grace.
    async fn pending_pass(&self, now_ms: u64, out: &mut Cycle) -> Result<(), StoreError> {
        let due = now_ms.saturating_sub(self.config.grace_ms());
        let mut after: Option<Cursor> = None;
        for _ in 0..self.config.reconcile_batches {
            let list = self
                .store
                .entry_due(QrStatus::Pending, 0, due, after.as_ref(), MAX_MD5_LIST_LEN)
                .await?;
            after = list.last().map(|e| Cursor::new(e.expires_ms, &e.md5));
            match self.batch(&list, true, now_ms, out).await? {
                Step::More => {}
                Step::Done => return Ok(()),
                Step::Stop => {
                    out.stopped = true;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Pass 2: expired QRs within the window, from the shared cursor on.
    async fn late_pass(&self, now_ms: u64, out: &mut Cycle) -> Result<(), StoreError> {
        let from = now_ms.saturating_sub(self.config.reconcile_window_ms());
        let keep = self
            .config
            .reconcile_window_ms()
            .max(self.config.reconcile_every_ms())
            .max(1);
        let mut after: Option<Cursor> = match self.store.shared_get(CURSOR_KEY, now_ms).await? {
            Some(text) => text.parse().ok(),
            None => None,
        };
        for _ in 0..self.config.reconcile_batches {
            let list = self
                .store
                .entry_due(
                    QrStatus::Expired,
                    from,
                    now_ms,
                    after.as_ref(),
                    MAX_MD5_LIST_LEN,
                )
                .await?;
            // Not again in the cycle that expired them.
            let fresh: Vec<Entry> = list
                .iter()
                .filter(|e| e.updated_ms < now_ms)
                .cloned()
                .collect();
            let step = self.batch(&fresh, false, now_ms, out).await?;
            if matches!(step, Step::Stop) {
                out.stopped = true;
                return Ok(());
            }
            // A short page is the end: the next cycle starts at the oldest.
            after = list
                .last()
                .filter(|_| list.len() == MAX_MD5_LIST_LEN)
                .map(|e| Cursor::new(e.expires_ms, &e.md5));
            let text = after.as_ref().map(ToString::to_string).unwrap_or_default();
            self.store
                .shared_put(CURSOR_KEY, &text, keep, now_ms)
                .await?;
            if after.is_none() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// One batch (at most 50 entries): test QRs are never asked about
    /// (expired unpaid if `expire_unpaid`), the others in one list call;
    /// paid ones settle, unpaid ones expire if `expire_unpaid`. `Done` when
    /// `list` was the last page.
    async fn batch(
        &self,
        list: &[Entry],
        expire_unpaid: bool,
        now_ms: u64,
        out: &mut Cycle,
    ) -> Result<Step, StoreError> {
        let (tests, live): (Vec<&Entry>, Vec<&Entry>) = list.iter().partition(|e| e.test);
        if expire_unpaid {
            for e in tests {
                out.expired += u64::from(self.expire(e, now_ms).await?);
            }
        }
        let md5s: Vec<Md5> = live.iter().filter_map(|e| Md5::from_hex(&e.md5)).collect();
        let answers = match self.ask(&md5s).await {
            Ok(a) => a,
            Err(e) => {
                log_failure(&e);
                return Ok(Step::Stop);
            }
        };
        if !md5s.is_empty() {
            out.calls += 1;
            out.checked += md5s.len() as u64;
            metrics::counter!("khqr_reconcile_checked_total").increment(md5s.len() as u64);
        }
        for e in live {
            match answers.get(&e.md5) {
                Some(TransactionStatus::Paid(t)) if lifecycle::pays(t, e) => {
                    let payment = lifecycle::payment_of(t);
                    let moved =
                        lifecycle::settle(&self.store, &self.events, &e.md5, &payment, now_ms)
                            .await?;
                    match moved.map(|m| m.status) {
                        Some(QrStatus::PaidLate) => {
                            out.paid_late += 1;
                            metrics::counter!("khqr_reconcile_late_payments_total").increment(1);
                        }
                        Some(_) => out.paid += 1,
                        None => {}
                    }
                }
                _ if expire_unpaid => out.expired += u64::from(self.expire(e, now_ms).await?),
                _ => {}
            }
        }
        Ok(if list.len() < MAX_MD5_LIST_LEN {
            Step::Done
        } else {
            Step::More
        })
    }

    async fn expire(&self, e: &Entry, now_ms: u64) -> Result<bool, StoreError> {
        let moved = lifecycle::expire(&self.store, &self.events, &e.md5, now_ms).await?;
        Ok(moved.is_some())
    }

    /// Bakong's answer for `md5s` (one list call; none for an empty list),
    /// by MD5 (lowercase hex).
    async fn ask(&self, md5s: &[Md5]) -> Result<HashMap<String, TransactionStatus>, UpstreamFail> {
        if md5s.is_empty() {
            return Ok(HashMap::new());
        }
        let items = self.upstream.check_md5_list(md5s).await?;
        Ok(items
            .into_iter()
            .map(|i| (i.md5.to_ascii_lowercase(), i.status))
            .collect())
    }
}

fn log_failure(e: &UpstreamFail) {
    match e {
        UpstreamFail::Skipped => {
            tracing::debug!("reconciliation: the call budget is short; next cycle");
        }
        UpstreamFail::Check(c) => {
            let (_, kind, message) = crate::upstream::upstream_kind(c);
            tracing::warn!(kind, message, "reconciliation: Bakong's list call failed");
        }
        UpstreamFail::Busy | UpstreamFail::OverBudget(_) => {
            tracing::warn!("reconciliation: no call slot or budget; next cycle");
        }
    }
}

/// Runs a cycle every [`Config::reconcile_every_secs`] while `recon` lives.
pub fn spawn(recon: Weak<Reconciler>) {
    tokio::spawn(async move {
        loop {
            let every = match recon.upgrade() {
                Some(r) => r.config.reconcile_every_ms(),
                None => return,
            };
            tokio::time::sleep(Duration::from_millis(every.max(1))).await;
            let Some(r) = recon.upgrade() else { return };
            match r.cycle(now_ms()).await {
                Ok(c) if c.calls > 0 || c.expired > 0 => {
                    tracing::info!(
                        calls = c.calls,
                        checked = c.checked,
                        expired = c.expired,
                        paid = c.paid,
                        paid_late = c.paid_late,
                        "reconciliation cycle"
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(detail = e.detail(), "reconciliation: store unavailable");
                }
            }
        }
    });
}
