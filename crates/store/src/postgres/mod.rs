//! PostgreSQL, for production and for several giftd processes sharing one database.
//!
//! Each job runs in its own transaction on a pooled connection, in a task of its own (so a
//! client that disconnects does not cut a transaction short). Correctness comes from the
//! database, never from this process: row locks taken card first, guarded updates, unique keys.
//! Serialization failures and deadlocks (SQLSTATE 40001, 40P01), guard conflicts and unique
//! violations roll the job back and run it again after a jittered backoff, so the same code
//! runs at READ COMMITTED, at SERIALIZABLE, and on PostgreSQL-compatible distributed engines.

mod checkouts;
mod ops;
mod queries;
mod tx;
mod wallet;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use giftd_domain::wallet::{UserId, WalletCard};
use giftd_domain::{CardId, CheckoutId, HoldId, MerchantId, Program, ProgramId, Timestamp, TransactionId};
use rand::RngExt;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgPool, Row};
use tokio::sync::Notify;
use tracing::Instrument;

use crate::ops::Written;
use crate::rows;
use crate::verify::{CARDS_SQL, CHECKS, COUNTS_SQL, ENTRIES_SQL, POSTINGS_SQL, Pass};
use crate::{
    CardFilter, CardRecord, CheckoutRow, HoldRecord, Page, Store, StoreError, StoreResult, TransactionRecord,
    VerifyReport, WriteJob,
};
use tx::PgTx;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per giftd process. Each write holds one for its transaction; reads borrow one
/// briefly. Several processes share the server's `max_connections` (100 by default).
pub const DEFAULT_POOL_SIZE: u32 = 16;
/// Attempts of one job before its conflict is reported as a failure.
pub const MAX_ATTEMPTS: u32 = 12;
/// Backoff before attempt n is random in [0, min(BASE · 2^n, CAP)] ("full jitter").
pub const BACKOFF_BASE: Duration = Duration::from_millis(2);
pub const BACKOFF_CAP: Duration = Duration::from_millis(250);
/// How long to wait for a pooled connection before failing the request.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The isolation level of write transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Row locks and guarded updates make it safe; the default.
    #[default]
    ReadCommitted,
    /// For engines that only offer it, and as a proof that retries work.
    Serializable,
}

#[derive(Debug, Clone)]
pub struct PgOptions {
    pub pool_size: u32,
    pub isolation: Isolation,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            pool_size: DEFAULT_POOL_SIZE,
            isolation: Isolation::default(),
        }
    }
}

pub struct PgStore {
    pool: PgPool,
    isolation: Isolation,
    jobs: Arc<Jobs>,
}

/// The jobs submitted and not yet finished, so that `close` can let them finish first.
#[derive(Default)]
struct Jobs {
    running: AtomicUsize,
    closed: AtomicBool,
    idle: Notify,
}

impl Jobs {
    fn done(&self) {
        if self.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Refuses new jobs, then waits until every job submitted before has finished.
    async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            // Registered before the count is read, so a job finishing in between still wakes us.
            idle.as_mut().enable();
            if self.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl PgStore {
    /// Connects, applies pending migrations (under PostgreSQL's advisory lock, so several
    /// processes starting at once do not collide) and returns the store.
    pub async fn open(url: &str, options: &PgOptions) -> StoreResult<Arc<Self>> {
        let connect: PgConnectOptions = url.parse()?;
        Self::open_with(connect, options).await
    }

    pub async fn open_with(connect: PgConnectOptions, options: &PgOptions) -> StoreResult<Arc<Self>> {
        let pool = PgPoolOptions::new()
            .max_connections(options.pool_size)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(connect)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Arc::new(Self {
            pool,
            isolation: options.isolation,
            jobs: Arc::default(),
        }))
    }

    pub async fn migrate(url: &str) -> StoreResult<()> {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        MIGRATOR.run(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }
}

/// Whether a failed attempt may succeed if run again.
fn is_retryable(error: &StoreError) -> bool {
    match error {
        StoreError::Conflict(_) | StoreError::UniqueViolation(_) => true,
        StoreError::Database(sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("40001" | "40P01"))
        }
        _ => false,
    }
}

fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE.saturating_mul(1 << attempt.min(16)).min(BACKOFF_CAP);
    ceiling.mul_f64(rand::rng().random_range(0.0..=1.0))
}

async fn run_job(pool: PgPool, isolation: Isolation, mut job: Box<dyn WriteJob>) {
    let mut attempt = 1;
    let result = loop {
        match attempt_job(&pool, isolation, job.as_mut()).await {
            Err(error) if is_retryable(&error) && attempt < MAX_ATTEMPTS => {
                tracing::debug!(error = %error, attempt, "write conflicted; running it again");
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            other => break other,
        }
    };
    job.finish(result);
}

async fn attempt_job(pool: &PgPool, isolation: Isolation, job: &mut dyn WriteJob) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    if isolation == Isolation::Serializable {
        sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
            .execute(&mut *tx)
            .await?;
    }
    let mut job_tx = PgTx {
        conn: &mut tx,
        written: Written::default(),
    };
    let outcome = job.run(&mut job_tx).await;
    let written = job_tx.written;
    match outcome {
        Ok(()) => {
            tx.commit().await.map_err(StoreError::from_write)?;
            written.count_committed();
            Ok(())
        }
        Err(error) => {
            // Dropping the transaction would roll back too; doing it here returns the connection
            // clean before the retry.
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

/// Held value of expired but not yet swept holds; `$1` is `now`.
const EXPIRED_HELD: &str = "CAST((SELECT COALESCE(SUM(h.amount), 0) FROM holds h \
    WHERE h.card_id = c.id AND h.state = 'pending' AND h.expires_at <= $1) AS BIGINT) AS expired_held";

fn card_as_of(row: &sqlx::postgres::PgRow) -> StoreResult<CardRecord> {
    let mut card = rows::card(row)?;
    let expired: i64 = row.try_get("expired_held")?;
    card.snapshot.held -= expired;
    Ok(card)
}

#[async_trait]
impl Store for PgStore {
    async fn submit(&self, job: Box<dyn WriteJob>) {
        // Counted before the check, so `close` either sees this job or this job sees `closed`.
        self.jobs.running.fetch_add(1, Ordering::SeqCst);
        if self.jobs.closed.load(Ordering::SeqCst) {
            self.jobs.done();
            job.finish(Err(StoreError::Closed));
            return;
        }
        let jobs = Arc::clone(&self.jobs);
        let (pool, isolation) = (self.pool.clone(), self.isolation);
        // The job runs in a task of its own, inside the submitting request's span, so its log
        // lines carry that request's id.
        tokio::spawn(
            async move {
                run_job(pool, isolation, job).await;
                jobs.done();
            }
            .instrument(tracing::Span::current()),
        );
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn merchant_for_api_key(&self, key_hash: &[u8]) -> StoreResult<Option<MerchantId>> {
        let row = sqlx::query("SELECT merchant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|r| r.try_get::<String, _>("merchant_id"))
            .transpose()?
            .map(MerchantId::new))
    }

    async fn program(&self, merchant: &MerchantId, id: &ProgramId) -> StoreResult<Option<Program>> {
        queries::program(&self.pool, merchant, id).await
    }

    async fn programs(&self, merchant: &MerchantId, page: &Page) -> StoreResult<Vec<Program>> {
        let sql = format!(
            "SELECT {} FROM programs WHERE merchant_id = $1 \
             AND ($2::TEXT IS NULL OR seq < (SELECT seq FROM programs WHERE id = $2 AND merchant_id = $1)) \
             ORDER BY seq DESC LIMIT $3",
            rows::PROGRAM_COLUMNS
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(merchant.as_str())
            .bind(page.cursor.as_deref())
            .bind(i64::from(page.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::program).collect()
    }

    async fn card(
        &self,
        merchant: &MerchantId,
        id: &CardId,
        now: Timestamp,
    ) -> StoreResult<Option<CardRecord>> {
        let sql = format!(
            "SELECT {}, {} FROM cards c WHERE merchant_id = $2 AND id = $3",
            rows::CARD_COLUMNS,
            EXPIRED_HELD
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(now.unix_millis())
            .bind(merchant.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(card_as_of).transpose()
    }

    async fn cards(
        &self,
        merchant: &MerchantId,
        filter: &CardFilter,
        page: &Page,
        now: Timestamp,
    ) -> StoreResult<Vec<CardRecord>> {
        let sql = format!(
            "SELECT {}, {} FROM cards c WHERE merchant_id = $2 \
             AND ($3::TEXT IS NULL OR state = $3) AND ($4::TEXT IS NULL OR program_id = $4) \
             AND ($5::TEXT IS NULL OR seq < (SELECT seq FROM cards WHERE id = $5 AND merchant_id = $2)) \
             ORDER BY seq DESC LIMIT $6",
            rows::CARD_COLUMNS,
            EXPIRED_HELD
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now.unix_millis())
            .bind(merchant.as_str())
            .bind(filter.state.map(|s| s.as_str()))
            .bind(filter.program_id.as_ref().map(ProgramId::as_str))
            .bind(page.cursor.as_deref())
            .bind(i64::from(page.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(card_as_of).collect()
    }

    async fn hold(&self, merchant: &MerchantId, id: &HoldId) -> StoreResult<Option<HoldRecord>> {
        queries::hold(&self.pool, merchant, id).await
    }

    async fn transaction(
        &self,
        merchant: &MerchantId,
        id: &TransactionId,
    ) -> StoreResult<Option<TransactionRecord>> {
        queries::transaction(&self.pool, merchant, id).await
    }

    async fn card_transactions(
        &self,
        merchant: &MerchantId,
        card: &CardId,
        page: &Page,
    ) -> StoreResult<Vec<TransactionRecord>> {
        let sql = format!(
            "SELECT {} FROM transactions WHERE merchant_id = $1 AND card_id = $2 \
             AND ($3::TEXT IS NULL OR seq < (SELECT seq FROM transactions WHERE id = $3 AND card_id = $2)) \
             ORDER BY seq DESC LIMIT $4",
            rows::TRANSACTION_COLUMNS
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(merchant.as_str())
            .bind(card.as_str())
            .bind(page.cursor.as_deref())
            .bind(i64::from(page.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::transaction).collect()
    }

    async fn checkout(&self, merchant: &MerchantId, id: &CheckoutId) -> StoreResult<Option<CheckoutRow>> {
        checkouts::get(&self.pool, merchant, id, false).await
    }

    async fn open_checkouts(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<(MerchantId, CheckoutId)>> {
        checkouts::open(&self.pool, now, limit).await
    }

    async fn wallet_cards(&self, merchant: &MerchantId, user: &UserId) -> StoreResult<Vec<WalletCard>> {
        wallet::cards(&self.pool, merchant, user).await
    }

    async fn due_holds(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<(MerchantId, HoldId)>> {
        let rows = sqlx::query(
            "SELECT merchant_id, id FROM holds WHERE state = 'pending' AND expires_at <= $1 \
             ORDER BY expires_at LIMIT $2",
        )
        .bind(now.unix_millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    MerchantId::new(r.try_get::<String, _>("merchant_id")?),
                    HoldId::new(r.try_get::<String, _>("id")?),
                ))
            })
            .collect()
    }

    async fn verify(&self) -> StoreResult<VerifyReport> {
        let mut tx = self.pool.begin().await?;
        // One snapshot for every check, and no writes from this transaction.
        sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let mut pass = Pass::default();
        {
            let mut rows = sqlx::query(POSTINGS_SQL).fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                pass.posting(&row)?;
            }
        }
        {
            let mut rows = sqlx::query(ENTRIES_SQL).fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                pass.entry_posting(&row)?;
            }
        }
        {
            let mut rows = sqlx::query(CARDS_SQL).fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                pass.card(&row)?;
            }
        }
        for (what, sql) in CHECKS {
            for row in sqlx::query(*sql).fetch_all(&mut *tx).await? {
                pass.violation(what, row.try_get(0)?);
            }
        }
        let counts = sqlx::query(COUNTS_SQL).fetch_one(&mut *tx).await?;
        let report = pass.finish(&counts);
        let _ = tx.rollback().await;
        report
    }

    async fn close(&self) {
        // Jobs already submitted finish (and commit) first; later ones are refused.
        self.jobs.close().await;
        self.pool.close().await;
    }

    async fn pending_hold_count(&self, now: Timestamp) -> StoreResult<i64> {
        ops::pending_hold_count(&self.pool, now).await
    }

    fn pool_stats(&self) -> crate::PoolStats {
        ops::pool_stats(&self.pool)
    }
}
