//! Retention: what giftd forgets, and when. Idempotency records go once no lookup can use them
//! any more (past the longest window: the configured one, 7 days by default, or the Adyen
//! Terminal API's 48 hours if that is longer); webhook events, with their deliveries and
//! attempts, after [`RetentionPolicy::events_days`] unless a delivery is still pending;
//! security-code attempt records once their window has closed and their lock ended (they then
//! count for nothing). The ledger, cards and everything else are kept for ever.
//!
//! The pruner deletes in batches of [`PRUNE_BATCH`] rows, each batch a write job of its own,
//! so the writer is never held for long.

use std::time::Duration;

use giftd_domain::{Timestamp, lockout};
use giftd_store::{BoxFuture, StoreResult, WriteTx};

use crate::job::{TxWork, run_answered};
use crate::{Service, ServiceError};

/// Rows one prune job deletes at most, of each kind.
pub const PRUNE_BATCH: u32 = 1000;
/// How often `giftd serve` prunes.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(600);
const DAY_MILLIS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Days a webhook event (and its deliveries and attempts) is kept, once none of its
    /// deliveries is pending.
    pub events_days: i64,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self { events_days: 30 }
    }
}

/// What one prune deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub idempotency_records: u64,
    pub events: u64,
    /// Security-code attempt records that count for nothing any more.
    pub code_attempts: u64,
}

struct PruneJob {
    now: Timestamp,
    idempotency_before: Timestamp,
    events_before: Timestamp,
}

impl PruneJob {
    async fn execute(&mut self, tx: &mut dyn WriteTx) -> StoreResult<Pruned> {
        let idempotency_records = tx
            .prune_idempotency_records(self.idempotency_before, PRUNE_BATCH)
            .await?;
        let events = tx.prune_events(self.events_before, PRUNE_BATCH).await?;
        // Failures whose window has closed and locks that have ended count for nothing: such a
        // record and no record at all mean the same to the lockout.
        let window_before = Timestamp::from_unix_millis(self.now.unix_millis() - lockout::WINDOW_MILLIS);
        let code_attempts = tx
            .prune_code_attempts(window_before, self.now, PRUNE_BATCH)
            .await?;
        Ok(Pruned {
            idempotency_records,
            events,
            code_attempts,
        })
    }
}

impl TxWork for PruneJob {
    type Answer = Pruned;

    fn run<'a>(&'a mut self, tx: &'a mut dyn WriteTx) -> BoxFuture<'a, StoreResult<Pruned>> {
        Box::pin(self.execute(tx))
    }
}

impl Service {
    /// Deletes what retention no longer keeps, a batch per write job until a batch comes back
    /// short; answers what it deleted in all.
    pub async fn prune(&self, policy: &RetentionPolicy) -> Result<Pruned, ServiceError> {
        let now = self.now().unix_millis();
        let window = self
            .idempotency_retention_millis()
            .max(crate::adyen::SERVICE_ID_RETENTION_MILLIS);
        let idempotency_before = Timestamp::from_unix_millis(now - window);
        let events_before = Timestamp::from_unix_millis(now - policy.events_days.max(1) * DAY_MILLIS);
        let mut total = Pruned::default();
        loop {
            let job = PruneJob {
                now: Timestamp::from_unix_millis(now),
                idempotency_before,
                events_before,
            };
            let batch = run_answered(self.store().as_ref(), job).await?;
            total.idempotency_records += batch.idempotency_records;
            total.events += batch.events;
            total.code_attempts += batch.code_attempts;
            let full = u64::from(PRUNE_BATCH);
            if batch.idempotency_records < full && batch.events < full && batch.code_attempts < full {
                return Ok(total);
            }
        }
    }

    /// Prunes every [`PRUNE_INTERVAL`] (and once at start) until `shutdown` resolves.
    pub async fn run_pruner(self, policy: RetentionPolicy, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut interval = tokio::time::interval(PRUNE_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = interval.tick() => match self.prune(&policy).await {
                    Ok(pruned) if pruned != Pruned::default() => tracing::info!(
                        idempotency_records = pruned.idempotency_records,
                        events = pruned.events,
                        code_attempts = pruned.code_attempts,
                        "pruned what retention no longer keeps"
                    ),
                    Ok(_) => {}
                    Err(error) => tracing::error!(error = %error, "pruning failed"),
                },
            }
        }
    }
}
