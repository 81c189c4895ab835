//! PostgreSQL, for production and for several giftd processes sharing one database.
//!
//! Group commit: a few committer tasks (at most [`MAX_COMMITTERS`]) take the jobs waiting in
//! their queues, up to [`MAX_JOBS_PER_TRANSACTION`] at a time, and run them in ONE transaction
//! on a pooled connection: the jobs that name their reads decided in memory and written
//! set-wise (`crate::batch`, `batch.rs` here), the others each under its own savepoint; the
//! commit answers them all, so one WAL flush serves many requests while each keeps its own
//! result. Jobs run in these tasks, not in the
//! request's, so a client that disconnects does not cut a transaction short. Each committer has
//! a queue of its own, and jobs on the same card (their [`WriteJob::affinity`]) always go to
//! the same one: a batch holds its cards' row locks until it commits, so two committers sharing
//! a card would make one batch wait for the other's whole transaction (or deadlock with it, and
//! wait for PostgreSQL's deadlock timeout). Correctness comes
//! from the database, never from this process: row locks taken card first, guarded updates,
//! unique keys. A job whose guard conflicts or whose unique key is taken (another process won a
//! race) is rolled back to its savepoint and queued again after a jittered backoff; a
//! serialization failure or deadlock (SQLSTATE 40001, 40P01) anywhere, or a failed commit,
//! queues the whole batch again. So the same code runs at READ COMMITTED, at SERIALIZABLE, and
//! on PostgreSQL-compatible distributed engines.

mod batch;
mod checkouts;
mod clover_reads;
pub mod hosts;
mod queries;
mod reports;
mod retention;
mod stock;
mod telemetry;
mod tx;
mod wallet;
mod webhooks;

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
use tokio::sync::{Notify, mpsc};
use tracing::Instrument;

use crate::rows;
use crate::sql;
use crate::telemetry::Written;
use crate::verify::{CARDS_SQL, CHECKS, COUNTS_SQL, ENTRIES_SQL, POSTINGS_SQL, Pass};
use crate::{
    ActivityLine, ApiKeyRecord, CardFilter, CardRecord, ChannelLine, CheckoutRow, DormantCard, HoldRecord,
    IdempotencyRecord, LiabilityLine, Page, StockBatch, StockBatchRecord, Store, StoreError, StoreResult,
    TransactionRecord, VerifyReport, WriteJob,
};
use hosts::Hosts;
use tx::PgTx;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per giftd process. Each write holds one for its transaction; reads borrow one
/// briefly. Several processes share the server's `max_connections` (100 by default).
pub const DEFAULT_POOL_SIZE: u32 = 16;
/// `backend_flush_after` for giftd's sessions, unless the URL's `options` set it: once a session
/// has written this much of the table data it evicts from PostgreSQL's buffers, the kernel is
/// told to write it out now. Left at the server's default (0 on Linux), those pages pile up in
/// the page cache until the kernel's periodic writeback sends a few hundred megabytes at once,
/// and every commit's WAL flush waits behind that burst: the open loop at half the maximum rate
/// stalled for 50–70 ms at a time. Measured (`giftd-bench`, PostgreSQL, a closed run then two
/// open runs at half its rate): p99 10–60 ms at 0, 9.5–10 ms at 256 kB, the value PostgreSQL
/// gives its own checkpointer; closed-loop throughput unchanged (docs/BENCHMARKS.md, run 12).
pub const BACKEND_FLUSH_AFTER: &str = "256kB";
/// Attempts of one job before its conflict is reported as a failure.
pub const MAX_ATTEMPTS: u32 = 12;
/// Backoff before attempt n is random in [0, min(BASE · 2^n, CAP)] ("full jitter").
pub const BACKOFF_BASE: Duration = Duration::from_millis(2);
pub const BACKOFF_CAP: Duration = Duration::from_millis(250);
/// How long to wait for a pooled connection before failing the request.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Jobs one write transaction takes at most. A batch's jobs decided in memory take no
/// savepoint; each job on the per-job path takes two or three, which are subtransactions, and
/// PostgreSQL keeps only 64 of a transaction's subtransactions in shared memory (past that every
/// other session's visibility checks look them up on disk, `pg_subtrans`). 32 keeps a batch
/// with a few jobs falling back well under that, and still bounds the latency of the first.
pub const MAX_JOBS_PER_TRANSACTION: usize = 32;
/// Committer tasks per process, each with its own queue and connection. Two, not four: with
/// fewer committers each batch is larger, and PostgreSQL's per-statement set-up (the larger part
/// of its time once a batch is one write statement) is paid once for more jobs. Three
/// alternating pairs at 64 clients (docs/BENCHMARKS.md, run 10): +8 % to +25 %, p99 lower in
/// each.
pub const MAX_COMMITTERS: u32 = 2;
/// Jobs waiting for one committer at most; `submit` waits when its queue is full.
pub const QUEUE_CAPACITY: usize = 2048;

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
    jobs: Arc<Jobs>,
    queues: Arc<Queues>,
}

/// The committers' queues, and which one a job goes to.
struct Queues {
    senders: Vec<mpsc::Sender<Queued>>,
    /// For jobs without an affinity: taken in turn.
    next: AtomicUsize,
}

impl Queues {
    fn route(&self, job: &dyn WriteJob) -> &mpsc::Sender<Queued> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let index = match job.affinity() {
            // A fixed hasher: the same card goes to the same committer for the process's life.
            Some(key) => BuildHasherDefault::<DefaultHasher>::default().hash_one(key) as usize,
            None => self.next.fetch_add(1, Ordering::Relaxed),
        };
        &self.senders[index % self.senders.len()]
    }

    /// Queues a job; `Err` gives it back when the committers have stopped.
    async fn send(&self, queued: Queued) -> Result<(), Queued> {
        let sender = self.route(queued.job.as_ref()).clone();
        sender
            .send(queued)
            .await
            .map_err(|mpsc::error::SendError(queued)| queued)
    }
}

/// A job waiting for a committer, with the attempts it has had.
struct Queued {
    job: Box<dyn WriteJob>,
    attempt: u32,
    /// Run in a transaction of its own: its batch failed as a whole, and only a failure of its
    /// own should count against its attempts.
    alone: bool,
    /// The submitting request's span, so the job's log lines carry that request's id.
    span: tracing::Span,
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
    /// The URL may name several hosts (see [`hosts`]): the store then follows the one that
    /// serves.
    pub async fn open(url: &str, options: &PgOptions) -> StoreResult<Arc<Self>> {
        let hosts = Hosts::parse(url)?;
        let store = Self::open_with(hosts.first().await?, options).await?;
        if hosts.needs_watching() {
            tokio::spawn(hosts.watch(store.pool.clone()));
        }
        Ok(store)
    }

    async fn open_with(connect: PgConnectOptions, options: &PgOptions) -> StoreResult<Arc<Self>> {
        let pool = PgPoolOptions::new()
            .max_connections(options.pool_size)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // No `SELECT 1` before each checkout: a connection that broke while idle fails the
            // transaction it is given, whose clients get an error (as when the database restarts
            // under them; nothing of it was kept), and the pool replaces it.
            .test_before_acquire(false)
            .connect_with(connect)
            .await?;
        MIGRATOR.run(&pool).await?;
        let jobs: Arc<Jobs> = Arc::default();
        // A few committers (at most half the pool; the rest serves reads): a batch is decided in
        // memory and written in a handful of statements, so more committers would only make
        // smaller batches.
        let committers = (options.pool_size / 2).clamp(1, MAX_COMMITTERS);
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..committers).map(|_| mpsc::channel(QUEUE_CAPACITY)).unzip();
        let queues = Arc::new(Queues {
            senders,
            next: AtomicUsize::new(0),
        });
        for receiver in receivers {
            let committer = Committer {
                pool: pool.clone(),
                isolation: options.isolation,
                receiver,
                queues: Arc::clone(&queues),
                jobs: Arc::clone(&jobs),
            };
            tokio::spawn(committer.run());
        }
        Ok(Arc::new(Self { pool, jobs, queues }))
    }

    pub async fn migrate(url: &str) -> StoreResult<()> {
        let connect = Hosts::parse(url)?.first().await?;
        let mut conn = sqlx::PgConnection::connect_with(&connect).await?;
        MIGRATOR.run(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }
}

/// The session settings giftd's connections start with ([`BACKEND_FLUSH_AFTER`]), each unless
/// the URL's `options` already name it. `Hosts::parse` gives them to every host a URL names, so
/// the pool's connections have them after a failover too.
fn with_session_settings(connect: PgConnectOptions) -> PgConnectOptions {
    let named = connect
        .get_options()
        .is_some_and(|options| options.contains("backend_flush_after"));
    if named {
        connect
    } else {
        connect.options([("backend_flush_after", BACKEND_FLUSH_AFTER)])
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

/// One committer: takes waiting jobs in batches and runs each batch in one transaction.
struct Committer {
    pool: PgPool,
    isolation: Isolation,
    receiver: mpsc::Receiver<Queued>,
    /// To queue a job again after a conflict (past `close`'s check: it was submitted before).
    queues: Arc<Queues>,
    jobs: Arc<Jobs>,
}

/// What became of one job of a batch.
enum Ran {
    Done(StoreResult<()>),
    Again,
}

/// Whether an error leaves the transaction unusable past the job's savepoint.
fn breaks_transaction(error: &StoreError) -> bool {
    matches!(error, StoreError::Database(sqlx::Error::Database(db))
        if matches!(db.code().as_deref(), Some("40001" | "40P01")))
}

impl Committer {
    async fn run(mut self) {
        let mut batch = Vec::with_capacity(MAX_JOBS_PER_TRANSACTION);
        loop {
            let received = self
                .receiver
                .recv_many(&mut batch, MAX_JOBS_PER_TRANSACTION)
                .await;
            if received == 0 {
                return;
            }
            let (alone, grouped): (Vec<Queued>, Vec<Queued>) =
                std::mem::take(&mut batch).into_iter().partition(|q| q.alone);
            if !grouped.is_empty() {
                self.run_batch(grouped).await;
            }
            for queued in alone {
                self.run_batch(vec![queued]).await;
            }
        }
    }

    async fn run_batch(&self, mut batch: Vec<Queued>) {
        let outcome = match self.attempt(&mut batch).await {
            Ok(ran) => ran,
            // The transaction failed as a whole: nothing of it was kept. Each job of a batch
            // runs again alone, without the failure counting against it.
            Err(error) if (is_retryable(&error) || breaks_transaction(&error)) && batch.len() > 1 => {
                tracing::debug!(error = %error, jobs = batch.len(), "write transaction conflicted; running its jobs again, alone");
                for queued in batch {
                    self.requeue(Queued {
                        alone: true,
                        ..queued
                    });
                }
                return;
            }
            Err(error) if is_retryable(&error) || breaks_transaction(&error) => {
                tracing::debug!(error = %error, "write conflicted; running it again");
                batch.iter().map(|_| Ran::Again).collect()
            }
            Err(error) => {
                tracing::error!(error = %error, jobs = batch.len(), "write transaction failed; nothing of it was kept");
                batch
                    .iter()
                    .map(|_| Ran::Done(Err(StoreError::failed_whole(&error))))
                    .collect()
            }
        };
        for (queued, ran) in batch.into_iter().zip(outcome) {
            match ran {
                Ran::Again if queued.attempt < MAX_ATTEMPTS => self.again(queued),
                Ran::Again => {
                    queued
                        .job
                        .finish(Err(StoreError::Conflict("write conflicted too often")));
                    self.jobs.done();
                }
                Ran::Done(result) => {
                    queued.job.finish(result);
                    self.jobs.done();
                }
            }
        }
    }

    /// Queues a job again after a jittered backoff, counting the attempt it failed.
    fn again(&self, mut queued: Queued) {
        queued.attempt += 1;
        self.requeue(queued);
    }

    fn requeue(&self, queued: Queued) {
        let queues = Arc::clone(&self.queues);
        let jobs = Arc::clone(&self.jobs);
        let delay = backoff(queued.attempt);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Err(queued) = queues.send(queued).await {
                queued.job.finish(Err(StoreError::Closed));
                jobs.done();
            }
        });
    }

    /// Runs the batch in one transaction and commits it; answers what became of each job.
    async fn attempt(&self, batch: &mut [Queued]) -> StoreResult<Vec<Ran>> {
        let mut tx = self.pool.begin().await?;
        if self.isolation == Isolation::Serializable {
            sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                .execute(&mut *tx)
                .await?;
        }
        let mut ran: Vec<Option<Ran>> = batch.iter().map(|_| None).collect();
        let mut written = Vec::with_capacity(batch.len());
        // Decided in memory and written set-wise, unless the job runs alone after its batch
        // failed: then it takes the per-job path, so that only its own failure counts.
        let mut in_memory = 0;
        if !batch.iter().all(|queued| queued.alone) {
            let mut jobs: Vec<&mut dyn WriteJob> = batch.iter_mut().map(|q| q.job.as_mut()).collect();
            let mut batch_tx = PgTx {
                conn: &mut tx,
                written: Written::default(),
            };
            let (done, batch_written) = crate::batch::run(&mut batch_tx, &mut jobs).await?;
            written.push(batch_written);
            in_memory = done.iter().filter(|done| **done).count();
            for (ran, done) in ran.iter_mut().zip(done) {
                if done {
                    *ran = Some(Ran::Done(Ok(())));
                }
            }
        }
        for (queued, ran) in batch.iter_mut().zip(ran.iter_mut()) {
            if ran.is_some() {
                continue;
            }
            sqlx::raw_sql("SAVEPOINT giftd_job").execute(&mut *tx).await?;
            let mut job_tx = PgTx {
                conn: &mut tx,
                written: Written::default(),
            };
            let outcome = queued.job.run(&mut job_tx).instrument(queued.span.clone()).await;
            let job_written = job_tx.written;
            match outcome {
                Ok(()) => {
                    sqlx::raw_sql("RELEASE SAVEPOINT giftd_job")
                        .execute(&mut *tx)
                        .await?;
                    written.push(job_written);
                    *ran = Some(Ran::Done(Ok(())));
                }
                Err(error) if breaks_transaction(&error) => return Err(error),
                Err(error) => {
                    sqlx::raw_sql("ROLLBACK TO SAVEPOINT giftd_job; RELEASE SAVEPOINT giftd_job")
                        .execute(&mut *tx)
                        .await?;
                    *ran = Some(if is_retryable(&error) {
                        Ran::Again
                    } else {
                        Ran::Done(Err(error))
                    });
                }
            }
        }
        tx.commit().await.map_err(StoreError::from_write)?;
        // Counted only now that the commit kept them.
        for job_written in written {
            job_written.count_committed();
        }
        crate::telemetry::count_jobs(in_memory, batch.len() - in_memory);
        Ok(ran
            .into_iter()
            .map(|ran| ran.unwrap_or_else(|| Ran::Done(Err(StoreError::Corrupt("a job was not run".into())))))
            .collect())
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
        let queued = Queued {
            job,
            attempt: 1,
            alone: false,
            span: tracing::Span::current(),
        };
        if let Err(queued) = self.queues.send(queued).await {
            self.jobs.done();
            queued.job.finish(Err(StoreError::Closed));
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn api_key_by_hash(&self, key_hash: &[u8]) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query(sql::API_KEY_BY_HASH)
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::api_key).transpose()
    }

    async fn working_api_key_count(&self, merchant: &MerchantId, now: Timestamp) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(sql::WORKING_API_KEY_COUNT)
            .bind(merchant.as_str())
            .bind(now.unix_millis())
            .fetch_one(&self.pool)
            .await?)
    }

    async fn adjustment(
        &self,
        merchant: &MerchantId,
        id: &giftd_domain::AdjustmentId,
    ) -> StoreResult<Option<crate::AdjustmentRecord>> {
        adjustment_reads::one(&self.pool, merchant, id).await
    }

    async fn adjustments(
        &self,
        merchant: &MerchantId,
        state: Option<giftd_domain::adjustment::AdjustmentState>,
        card: Option<&CardId>,
        page: &Page,
    ) -> StoreResult<Vec<crate::AdjustmentRecord>> {
        adjustment_reads::page(&self.pool, merchant, state, card, page).await
    }

    async fn cardholder_link_by_token_hash(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<crate::CardholderLinkRecord>> {
        cardholder_link_reads::by_token_hash(&self.pool, token_hash).await
    }

    async fn cardholder_links(
        &self,
        merchant: &MerchantId,
        card: &CardId,
    ) -> StoreResult<Vec<crate::CardholderLinkRecord>> {
        cardholder_link_reads::of_card(&self.pool, merchant, card).await
    }

    async fn cards_due_for_breakage(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(MerchantId, CardId)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(sql::CARDS_DUE_FOR_BREAKAGE)
            .bind(now.unix_millis())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(merchant, card)| (MerchantId::new(merchant), CardId::new(card)))
            .collect())
    }

    async fn adjustment_threshold(&self, merchant: &MerchantId) -> StoreResult<i64> {
        adjustment_reads::threshold(&self.pool, merchant).await
    }

    async fn audit_events(
        &self,
        merchant: &MerchantId,
        filter: &crate::AuditFilter,
        page: &Page,
    ) -> StoreResult<Vec<crate::AuditEventRow>> {
        audit_reads::events(&self.pool, merchant, filter, page).await
    }

    async fn staff_by_email(&self, email: &str) -> StoreResult<Option<crate::StaffRecord>> {
        staff_reads::by_email(&self.pool, email).await
    }

    async fn staff_member(
        &self,
        merchant: &MerchantId,
        id: &giftd_domain::StaffId,
    ) -> StoreResult<Option<crate::StaffRecord>> {
        staff_reads::member(&self.pool, merchant, id).await
    }

    async fn staff_members(&self, merchant: &MerchantId, limit: u32) -> StoreResult<Vec<crate::StaffRecord>> {
        staff_reads::members(&self.pool, merchant, limit).await
    }

    async fn open_staff_sessions(
        &self,
        staff: &giftd_domain::StaffId,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<crate::StaffSessionRecord>> {
        staff_reads::open_sessions(&self.pool, staff, now, limit).await
    }

    async fn staff_session_by_hash(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<crate::StaffSessionRecord>> {
        staff_reads::session_by_hash(&self.pool, token_hash).await
    }

    async fn api_keys(&self, merchant: &MerchantId, limit: u32) -> StoreResult<Vec<ApiKeyRecord>> {
        let rows = sqlx::query(sql::API_KEYS_OF_MERCHANT)
            .bind(merchant.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::api_key).collect()
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
             AND ($7::TEXT IS NULL OR last4 = $7) ORDER BY seq DESC LIMIT $6",
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
            .bind(filter.last4.as_deref())
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

    async fn checkouts(
        &self,
        merchant: &MerchantId,
        before: Option<&CheckoutId>,
        limit: u32,
    ) -> StoreResult<Vec<CheckoutRow>> {
        checkouts::page(&self.pool, merchant, before, limit).await
    }

    async fn checkout_with_refund(
        &self,
        merchant: &MerchantId,
        refund_id_prefix: &str,
    ) -> StoreResult<Option<CheckoutRow>> {
        checkouts::with_refund(&self.pool, merchant, refund_id_prefix).await
    }

    async fn open_checkouts(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<(MerchantId, CheckoutId)>> {
        checkouts::open(&self.pool, now, limit).await
    }

    async fn wallet_user_by_public_id(
        &self,
        merchant: &MerchantId,
        public_id: &str,
    ) -> StoreResult<Option<UserId>> {
        let user: Option<String> = sqlx::query_scalar(sql::WALLET_USER_BY_PUBLIC_ID)
            .bind(merchant.as_str())
            .bind(public_id)
            .fetch_optional(&self.pool)
            .await?;
        user.as_deref().map(rows::user_id).transpose()
    }

    async fn wallet_cards(&self, merchant: &MerchantId, user: &UserId) -> StoreResult<Vec<WalletCard>> {
        wallet::cards(&self.pool, merchant, user).await
    }

    async fn due_holds(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<(MerchantId, HoldId)>> {
        let rows = sqlx::query(sql::DUE_HOLDS)
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

    async fn webhook_endpoints(
        &self,
        merchant: &MerchantId,
        page: &crate::Page,
    ) -> StoreResult<Vec<crate::WebhookEndpointRow>> {
        webhooks::endpoints(&self.pool, merchant, page).await
    }

    async fn webhook_endpoint(
        &self,
        merchant: &MerchantId,
        id: &giftd_domain::WebhookEndpointId,
    ) -> StoreResult<Option<crate::WebhookEndpointRow>> {
        webhooks::endpoint(&self.pool, merchant, id.as_str()).await
    }

    async fn events(
        &self,
        merchant: &MerchantId,
        event_type: Option<&str>,
        page: &crate::Page,
    ) -> StoreResult<Vec<crate::EventRow>> {
        webhooks::events(&self.pool, merchant, event_type, page).await
    }

    async fn event(
        &self,
        merchant: &MerchantId,
        id: &giftd_domain::EventId,
    ) -> StoreResult<Option<crate::EventRow>> {
        webhooks::event(&self.pool, merchant, id.as_str()).await
    }

    async fn event_deliveries(
        &self,
        merchant: &MerchantId,
        event_id: &giftd_domain::EventId,
    ) -> StoreResult<(Vec<crate::DeliveryRow>, Vec<crate::AttemptRow>)> {
        webhooks::deliveries(&self.pool, merchant, event_id.as_str()).await
    }

    async fn liability(
        &self,
        merchant: Option<&MerchantId>,
        as_of: Timestamp,
    ) -> StoreResult<Vec<LiabilityLine>> {
        reports::liability(&self.pool, merchant, as_of).await
    }

    async fn activity(
        &self,
        merchant: Option<&MerchantId>,
        from: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Vec<ActivityLine>> {
        reports::activity(&self.pool, merchant, from, until).await
    }

    async fn channel_activity(
        &self,
        merchant: Option<&MerchantId>,
        from: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Vec<ChannelLine>> {
        reports::channel_activity(&self.pool, merchant, from, until).await
    }

    async fn dormant_cards(
        &self,
        merchant: Option<&MerchantId>,
        quiet_since: Timestamp,
        as_of: Timestamp,
        page: &Page,
    ) -> StoreResult<Vec<DormantCard>> {
        reports::dormant(&self.pool, merchant, quiet_since, as_of, page).await
    }

    async fn insert_card_stock(&self, batch: &StockBatch) -> StoreResult<()> {
        stock::insert(&self.pool, batch).await
    }

    async fn stored_answer(
        &self,
        merchant: &MerchantId,
        scope: &str,
        key: &str,
        not_before: Timestamp,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        let row = sqlx::query(sql::IDEMPOTENCY_RECORD)
            .bind(merchant.as_str())
            .bind(scope)
            .bind(key)
            .bind(not_before.unix_millis())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::idempotency_record).transpose()
    }

    async fn stored_answers_by_prefix(
        &self,
        merchant: &MerchantId,
        scope: &str,
        key_prefix: &str,
        not_before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(String, IdempotencyRecord)>> {
        let rows = sqlx::query(sql::STORED_ANSWERS_BY_PREFIX)
            .bind(merchant.as_str())
            .bind(scope)
            .bind(key_prefix)
            .bind(not_before.unix_millis())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::keyed_idempotency_record).collect()
    }

    async fn program_owner(&self, program: &ProgramId) -> StoreResult<Option<MerchantId>> {
        stock::program_owner(&self.pool, program).await
    }

    async fn card_stock_batch(
        &self,
        merchant: &MerchantId,
        source_digest: &[u8],
    ) -> StoreResult<Option<StockBatchRecord>> {
        stock::batch_by_digest(&self.pool, merchant, source_digest).await
    }

    async fn existing_fingerprints(
        &self,
        merchant: &MerchantId,
        fingerprints: &[Vec<u8>],
    ) -> StoreResult<Vec<Vec<u8>>> {
        stock::existing_fingerprints(&self.pool, merchant, fingerprints).await
    }

    async fn card_batches(
        &self,
        merchant: &MerchantId,
        page: &Page,
    ) -> StoreResult<Vec<crate::CardBatchRow>> {
        stock::batches(&self.pool, merchant, page).await
    }

    async fn card_batch(&self, merchant: &MerchantId, id: &str) -> StoreResult<Option<crate::CardBatchRow>> {
        stock::batch(&self.pool, merchant, id).await
    }

    async fn card_batch_file(&self, merchant: &MerchantId, id: &str) -> StoreResult<Option<Option<Vec<u8>>>> {
        stock::file(&self.pool, merchant, id).await
    }

    async fn collect_card_batch_file(
        &self,
        merchant: &MerchantId,
        id: &str,
        sha256: &[u8],
        at: Timestamp,
        audit: Option<&crate::AuditEventRow>,
    ) -> StoreResult<bool> {
        stock::collect(&self.pool, merchant, id, sha256, at, audit).await
    }

    async fn clover_object(
        &self,
        merchant: &MerchantId,
        object: crate::CloverObject,
        id: &TransactionId,
    ) -> StoreResult<Option<crate::CloverLedgerRow>> {
        clover_reads::object(&self.pool, merchant, object, id).await
    }

    async fn clover_objects(
        &self,
        merchant: &MerchantId,
        object: crate::CloverObject,
        query: &crate::CloverListQuery,
    ) -> StoreResult<Vec<crate::CloverLedgerRow>> {
        clover_reads::page(&self.pool, merchant, object, query).await
    }

    async fn close(&self) {
        // Jobs already submitted finish (and commit) first; later ones are refused.
        self.jobs.close().await;
        self.pool.close().await;
    }

    async fn pending_hold_count(&self, now: Timestamp) -> StoreResult<i64> {
        telemetry::pending_hold_count(&self.pool, now).await
    }

    async fn pending_webhook_delivery_count(&self) -> StoreResult<i64> {
        telemetry::pending_webhook_delivery_count(&self.pool).await
    }

    fn pool_stats(&self) -> crate::PoolStats {
        telemetry::pool_stats(&self.pool)
    }
}

/// The staff reads (`crate::staff`), bound on this backend's pool.
mod staff_reads {
    crate::staff::reads_on_pool!(sqlx::PgPool);
}

/// The audit trail's listing (`crate::audit`), bound on this backend's pool.
mod audit_reads {
    crate::audit::reads_on_pool!(sqlx::PgPool);
}

/// The adjustments' reads (`crate::adjustments`), bound on this backend's pool.
mod cardholder_link_reads {
    crate::cardholder_links::reads_on_pool!(sqlx::PgPool);
}

mod adjustment_reads {
    crate::adjustments::reads_on_pool!(sqlx::PgPool);
}

#[cfg(test)]
mod session_tests {
    use std::str::FromStr;

    use sqlx::Connection;

    use super::*;

    #[test]
    fn giftd_sessions_flush_evicted_pages_early_unless_the_url_says_otherwise() {
        let plain = PgConnectOptions::from_str("postgres://giftd@db/giftd").expect("a URL");
        let options = with_session_settings(plain).get_options().map(str::to_owned);
        assert_eq!(options.as_deref(), Some("-c backend_flush_after=256kB"));
        let named =
            PgConnectOptions::from_str("postgres://giftd@db/giftd?options=-c%20backend_flush_after%3D0")
                .expect("a URL");
        let options = with_session_settings(named).get_options().map(str::to_owned);
        assert_eq!(options.as_deref(), Some("-c backend_flush_after=0"));
    }

    #[tokio::test]
    #[ignore = "needs GIFTD_TEST_PG_URL, a PostgreSQL server"]
    async fn postgresql_accepts_the_session_settings_and_a_session_runs_with_them() {
        let url = std::env::var("GIFTD_TEST_PG_URL").expect("this test needs GIFTD_TEST_PG_URL");
        // Where giftd's pool connects, as `PgStore::open` finds it.
        let connect = Hosts::parse(&url)
            .expect("a URL")
            .first()
            .await
            .expect("a host that answers");
        let mut conn = sqlx::PgConnection::connect_with(&connect)
            .await
            .expect("a session with giftd's settings");
        let value: String = sqlx::query_scalar("SHOW backend_flush_after")
            .fetch_one(&mut conn)
            .await
            .expect("the setting");
        let _ = conn.close().await;
        assert_eq!(value, BACKEND_FLUSH_AFTER);
    }
}
