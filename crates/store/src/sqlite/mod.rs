//! The embedded default: SQLite in WAL mode, one writer connection fed by a channel, and a
//! small pool of read-only connections.
//!
//! The writer takes the jobs that are waiting (up to [`MAX_JOBS_PER_TRANSACTION`]) and runs them
//! in one `BEGIN IMMEDIATE` transaction: those that name their reads are decided in memory and
//! written together (`crate::batch`), the others each under a savepoint of its own. It commits
//! once, then finishes each job: group commit, so one fsync serves many requests while each
//! still gets its own result. With full durability the fsync is not the commit's own: a syncer
//! thread makes the log durable and answers the batch while the writer already runs the next
//! one ([`run_syncer`]).
//!
//! The writer is a thread of its own with a rusqlite connection: its statements run right
//! where the jobs run, without a hand-off to another thread for each (sqlx runs SQLite on a
//! worker thread of its own, which for the writer cost more than the statements themselves).
//! Reads, migrations, `verify` and backups use sqlx.

mod batch;
mod checkouts;
mod clover_reads;
#[cfg(test)]
mod lean_migration_tests;
mod queries;
mod reports;
mod retention;
mod stock;
mod telemetry;
mod tx;
mod wallet;
mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;

use async_trait::async_trait;
use futures::FutureExt;
use giftd_domain::wallet::{UserId, WalletCard};
use giftd_domain::{CardId, CheckoutId, HoldId, MerchantId, Program, ProgramId, Timestamp, TransactionId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row, SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::rows;
use crate::sql;
use crate::telemetry::Written;
use crate::{
    ActivityLine, ApiKeyRecord, CardFilter, CardRecord, ChannelLine, CheckoutRow, DormantCard, HoldRecord,
    IdempotencyRecord, LiabilityLine, Page, StockBatch, StockBatchRecord, Store, StoreError, StoreResult,
    TransactionRecord, VerifyReport, WriteJob,
};
use tx::SqliteTx;

/// Jobs waiting beyond this are taken by the next transaction; it bounds a transaction's
/// length, and so the latency the first job in it sees.
pub const MAX_JOBS_PER_TRANSACTION: usize = 256;
/// Jobs queued for the writer before `submit` waits: back-pressure instead of unbounded memory.
pub const WRITER_QUEUE_LENGTH: usize = 8192;
/// Read-only connections beside the writer.
pub const READ_POOL_SIZE: u32 = 4;
/// How long a connection waits for another process's write lock (the CLI, say) before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the checkpointer copies the write-ahead log into the database file. The writer
/// never checkpoints itself, so that a commit never waits for a checkpoint's writes and fsync;
/// but a restarting checkpoint holds the write lock while it copies what the passive one left
/// and syncs the file, and every commit waits that long. The more often the checkpointer runs,
/// the less each restart has to copy. Measured (`giftd-bench`, SQLite, open loop at 3,500/s,
/// four alternating pairs): every 500 ms, p99 63–117 ms (restarts took 13–109 ms); every
/// 100 ms, p99 29–40 ms; every 50 ms, no better than 100. Closed-loop throughput at 64 clients
/// moved by 1 %, within noise (docs/BENCHMARKS.md, run 11).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);
/// How long a restarting checkpoint waits for readers on older snapshots before giving up.
pub const CHECKPOINT_BUSY_TIMEOUT: Duration = Duration::from_millis(100);
/// How often the writer and the checkpointer try again for a lock the other holds. SQLite's
/// own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms and so on between tries, so a writer
/// kept out for 4 ms by a restarting checkpoint slept 8 ms, and one kept out for 9 ms slept 18:
/// every commit behind it waited that long. Trying this often, a blocked connection takes the
/// lock within a fraction of a millisecond of its release. Measured (`giftd-bench`, SQLite,
/// open loop at 5,000/s, four alternating pairs, together with a second passive pass before
/// each restart): p99 30–36 ms before, 16–21 ms after (docs/BENCHMARKS.md, run 12).
pub const BUSY_POLL: Duration = Duration::from_micros(100);
/// Passive passes before a restart, each followed by a sync of the database file that holds no
/// lock (see `run_checkpoints`). Measured (`giftd-bench`, SQLite, closed runs at 64 and 256
/// clients, then the open loop at half the best rate, two invocations each): open p99 39.6 and
/// 67.1 ms with a second passive pass and no sync of its own; 24.3 and 26.1 ms with one pass and
/// a sync; 16.9 and 21.0 ms with two.
const CATCH_UP_PASSES: usize = 2;
/// A log longer than this (4 KiB pages; 16 MiB) is started over by the checkpointer.
pub const CHECKPOINT_RESTART_FRAMES: i64 = 4096;
/// Committed batches waiting for the syncer at most; the writer waits beyond that.
const SYNC_QUEUE_LENGTH: usize = 64;
/// What the log file is cut back to when it starts over, if it grew past it.
const LOG_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;
/// The writer's page cache, in KiB. Measured (`giftd-bench`, SQLite, 64 clients, 10,000 cards,
/// alternating runs of one binary): 2 MiB 5,393/s, 4 MiB 4,821–5,784/s, 8 MiB 5,459–5,516/s,
/// 16 MiB 5,183/s, 64 MiB 4,355–4,565/s. With 64 MiB, 15 % of the writer's time went to
/// SQLite's page-cache truncation (`pcache1TruncateUnsafe`, which walks the cache's hash
/// table), so a bigger cache costs more than it saves; the operating system caches the file.
const WRITER_CACHE_KIB: u32 = 8_192;
/// Prepared statements the writer keeps: more than it has distinct statements, so that each is
/// prepared once.
const WRITER_STATEMENT_CACHE: usize = 128;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How much to trade durability for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: an answered request survives power loss. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives a crash of giftd but may lose the last commits on power
    /// loss. Faster; never the default.
    Normal,
}

pub struct SqliteStore {
    /// The file and its settings, for connections of their own (bulk card stock writes).
    path: std::path::PathBuf,
    durability: Durability,
    reads: SqlitePool,
    jobs: std::sync::Mutex<Option<mpsc::Sender<Box<dyn WriteJob>>>>,
    /// Answered when the writer thread has finished the queue and closed its connection.
    writer: Mutex<Option<oneshot::Receiver<()>>>,
}

fn options(path: &Path, durability: Durability) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
        })
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, applies pending migrations and starts
    /// the writer.
    pub async fn open(path: &Path, durability: Durability) -> StoreResult<Arc<Self>> {
        Self::migrate_with(path, durability).await?;
        // With full durability the writer's commits do not wait for the disk themselves: the
        // syncer thread makes the log durable and only then answers (see `run_syncer`).
        let writer = writer_connection(path.to_path_buf(), "NORMAL").await?;
        let checkpoints = writer_connection(path.to_path_buf(), durability.synchronous()).await?;
        // A restarting checkpoint holds new writes back while it waits for readers of old
        // snapshots: it gives up soon rather than stall the writer (it runs again next round).
        checkpoints.busy_handler(Some(checkpointer_busy))?;
        let reads = SqlitePoolOptions::new()
            .max_connections(READ_POOL_SIZE)
            .connect_with(options(path, durability).read_only(true))
            .await?;
        let (sender, receiver) = mpsc::channel(WRITER_QUEUE_LENGTH);
        let (stopped, writer_stopped) = oneshot::channel();
        // Jobs may use tokio (timers, channels): the writer thread enters this runtime.
        let runtime = tokio::runtime::Handle::current();
        let (stop_checkpoints, checkpoints_stopping) = std::sync::mpsc::channel::<()>();
        let checkpointer = std::thread::Builder::new()
            .name("giftd-sqlite-checkpoints".into())
            .spawn({
                let database = path.to_path_buf();
                move || run_checkpoints(&checkpoints, &database, &checkpoints_stopping)
            })
            .map_err(sqlx::Error::Io)?;
        let (syncer, to_sync) = match durability {
            Durability::Full => {
                let (to_sync, committed) = std::sync::mpsc::sync_channel::<Committed>(SYNC_QUEUE_LENGTH);
                let log = log_path(path);
                let syncer = std::thread::Builder::new()
                    .name("giftd-sqlite-syncer".into())
                    .spawn(move || run_syncer(&log, &committed))
                    .map_err(sqlx::Error::Io)?;
                (Some(syncer), Some(to_sync))
            }
            Durability::Normal => (None, None),
        };
        std::thread::Builder::new()
            .name("giftd-sqlite-writer".into())
            .spawn(move || {
                let _runtime = runtime.enter();
                futures::executor::block_on(run_writer(writer, receiver, to_sync));
                if let Some(syncer) = syncer {
                    let _ = syncer.join();
                }
                drop(stop_checkpoints);
                let _ = checkpointer.join();
                let _ = stopped.send(());
            })
            .map_err(sqlx::Error::Io)?;
        Ok(Arc::new(Self {
            path: path.to_path_buf(),
            durability,
            reads,
            jobs: std::sync::Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer_stopped)),
        }))
    }

    /// Applies pending migrations and returns; for `giftd migrate`.
    pub async fn migrate(path: &Path) -> StoreResult<()> {
        Self::migrate_with(path, Durability::Full).await
    }

    async fn migrate_with(path: &Path, durability: Durability) -> StoreResult<()> {
        // SQLite changes a constraint by rebuilding the table (0009_lean_ledger.sql), which
        // needs foreign key enforcement off, and that cannot change inside the transaction each
        // migration runs in; so the migrating connection goes without, and checks afterwards.
        let mut conn = options(path, durability).foreign_keys(false).connect().await?;
        MIGRATOR.run(&mut conn).await?;
        let broken: Vec<(String, String)> =
            sqlx::query_as("SELECT \"table\", parent FROM pragma_foreign_key_check")
                .fetch_all(&mut conn)
                .await?;
        conn.close().await?;
        if let Some((table, parent)) = broken.first() {
            return Err(StoreError::Corrupt(format!(
                "after migrating, {} rows name missing parents (first: {table} -> {parent})",
                broken.len()
            )));
        }
        Ok(())
    }

    /// A plain connection to the same file, for tests that inspect or tamper with the
    /// database behind the store's back.
    pub async fn raw_connection(path: &Path) -> StoreResult<SqliteConnection> {
        Ok(options(path, Durability::Full).connect().await?)
    }
}

/// The log beside a database file (`giftd.db-wal`).
fn log_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// A connection for the writer or the checkpointer: WAL, `synchronous` as given, foreign keys,
/// the busy timeout.
async fn writer_connection(path: PathBuf, synchronous: &'static str) -> StoreResult<rusqlite::Connection> {
    let open = move || -> StoreResult<rusqlite::Connection> {
        let conn = rusqlite::Connection::open(&path)?;
        conn.busy_handler(Some(writer_busy))?;
        conn.set_prepared_statement_cache_capacity(WRITER_STATEMENT_CACHE);
        // temp_store: a savepoint keeps the pages it changes in a journal of its own, which
        // would otherwise spill to a temporary file; cache_size: a batch's changed pages stay in
        // memory until its commit instead of spilling into the log half-way.
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON; \
             PRAGMA wal_autocheckpoint = 0; PRAGMA temp_store = MEMORY; \
             PRAGMA cache_size = -{WRITER_CACHE_KIB}; PRAGMA journal_size_limit = {LOG_SIZE_LIMIT_BYTES};"
        ))?;
        Ok(conn)
    };
    tokio::task::spawn_blocking(open)
        .await
        .map_err(|error| StoreError::TransactionFailed(format!("opening the writer failed: {error}")))?
}

/// SQLite's busy handler for the writer: tries again every [`BUSY_POLL`] for up to
/// [`BUSY_TIMEOUT`].
fn writer_busy(attempt: i32) -> bool {
    wait_while_busy(attempt, BUSY_TIMEOUT)
}

/// SQLite's busy handler for the checkpointer: tries again every [`BUSY_POLL`] for up to
/// [`CHECKPOINT_BUSY_TIMEOUT`].
fn checkpointer_busy(attempt: i32) -> bool {
    wait_while_busy(attempt, CHECKPOINT_BUSY_TIMEOUT)
}

/// Sleeps [`BUSY_POLL`] and answers `true` (try again) until `limit` has passed since this
/// thread's first `attempt` (0) of the current wait; then `false`, and the statement fails as
/// busy. A busy handler is a plain function, and each of these connections is used by one
/// thread, so the wait's start is kept per thread.
fn wait_while_busy(attempt: i32, limit: Duration) -> bool {
    thread_local! {
        static WAITING_SINCE: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
    }
    let now = std::time::Instant::now();
    let since = WAITING_SINCE.with(|since| {
        let started = match since.get() {
            Some(started) if attempt > 0 => started,
            _ => now,
        };
        since.set(Some(started));
        started
    });
    if now.duration_since(since) >= limit {
        return false;
    }
    std::thread::sleep(BUSY_POLL);
    true
}

/// Copies the write-ahead log into the database file every [`CHECKPOINT_INTERVAL`] until the
/// writer stops, on a connection of its own. A passive checkpoint never blocks the writer or a
/// reader, but under a steady stream of commits it never catches up with the end of the log,
/// and SQLite only starts the log over once a checkpoint has: so once the log is longer than
/// [`CHECKPOINT_RESTART_FRAMES`], a restarting checkpoint waits for the current commit, copies
/// the little that the passive ones left, and makes the next commit write from the log's start
/// again (over pages the file already has) instead of growing the file for ever.
///
/// The restart holds the write lock while it copies and syncs the database file, and every
/// commit waits that long. A passive checkpoint that did not reach the end of the log leaves
/// the pages it copied unsynced (SQLite syncs the file only once it has all of the log), so the
/// restart's sync used to write everything copied since the last restart: 17–20 ms with the
/// writer held. So before the restart the checkpointer syncs the file itself, without the lock,
/// and runs another passive pass for what was committed meanwhile ([`CATCH_UP_PASSES`]); the
/// restart is left with the last few milliseconds' pages.
fn run_checkpoints(conn: &rusqlite::Connection, database: &Path, stopping: &std::sync::mpsc::Receiver<()>) {
    let mut file: Option<std::fs::File> = None;
    let checkpoint = |mode: &str| -> Result<i64, String> {
        // Answers (busy, frames in the log, frames copied).
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| row.get(1))
            .map_err(|error| format!("{mode} checkpoint: {error}"))
    };
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopping.recv_timeout(CHECKPOINT_INTERVAL) {
        let mut round = || -> Result<(), String> {
            if checkpoint("PASSIVE")? <= CHECKPOINT_RESTART_FRAMES {
                return Ok(());
            }
            for pass in 1..=CATCH_UP_PASSES {
                if pass > 1 {
                    checkpoint("PASSIVE")?;
                }
                // Only a head start for the restart, which syncs the file itself: should this
                // fail, the restart still runs (and fails too, if the disk is failing).
                if let Err(error) = sync_file(&mut file, database) {
                    tracing::debug!(error = %error, "syncing the database file before a restart failed");
                }
            }
            checkpoint("RESTART").map(|_| ())
        };
        if let Err(error) = round() {
            tracing::debug!(error = %error, "checkpoint did not run; trying again");
        }
    }
    // The last one: leave the log empty for whoever opens the database next.
    if let Err(error) = checkpoint("TRUNCATE") {
        tracing::debug!(error = %error, "final checkpoint did not run");
    }
}

/// A batch whose transaction has ended, waiting to be answered.
struct Committed {
    jobs: Vec<Box<dyn WriteJob>>,
    outcome: Result<Vec<StoreResult<()>>, StoreError>,
}

impl Committed {
    /// Answers each job: its own result, unless the transaction failed or its log could not be
    /// made durable (`unsynced`).
    fn answer(self, unsynced: Option<&std::io::Error>) {
        match (self.outcome, unsynced) {
            (Ok(results), None) => {
                for (job, result) in self.jobs.into_iter().zip(results) {
                    job.finish(result);
                }
            }
            (Ok(results), Some(error)) => {
                tracing::error!(error = %error, jobs = self.jobs.len(), "the write-ahead log could not be made durable; answering the batch with an error");
                // The volume failed under the log: a storage outage. The batch's effects may
                // be visible, its idempotency records with them, so a retry with the same key
                // learns what happened.
                let message = format!(
                    "the write-ahead log could not be made durable (retry with the same Idempotency-Key to learn the outcome): {error}"
                );
                for (job, result) in self.jobs.into_iter().zip(results) {
                    // A job that failed kept nothing: its own error is still the truth.
                    job.finish(result.and(Err(StoreError::Unavailable(message.clone()))));
                }
            }
            (Err(error), _) => {
                tracing::error!(error = %error, jobs = self.jobs.len(), "write transaction failed; nothing of it was kept");
                for job in self.jobs {
                    job.finish(Err(StoreError::failed_whole(&error)));
                }
            }
        }
    }
}

/// Runs batch after batch. With full durability each committed batch goes to the syncer, which
/// answers it once the log is on disk, while this thread already runs the next batch; without,
/// it is answered at once.
async fn run_writer(
    mut conn: rusqlite::Connection,
    mut receiver: mpsc::Receiver<Box<dyn WriteJob>>,
    syncer: Option<std::sync::mpsc::SyncSender<Committed>>,
) {
    let mut batch: Vec<Box<dyn WriteJob>> = Vec::with_capacity(MAX_JOBS_PER_TRANSACTION);
    while receiver.recv_many(&mut batch, MAX_JOBS_PER_TRANSACTION).await > 0 {
        let outcome = run_batch(&mut conn, &mut batch).await;
        let committed = Committed {
            jobs: std::mem::replace(&mut batch, Vec::with_capacity(MAX_JOBS_PER_TRANSACTION)),
            outcome,
        };
        match &syncer {
            Some(syncer) => {
                if let Err(std::sync::mpsc::SendError(committed)) = syncer.send(committed) {
                    let gone = std::io::Error::other("the syncer has stopped");
                    committed.answer(Some(&gone));
                }
            }
            None => committed.answer(None),
        }
    }
    // The syncer answers what it holds, then stops.
    drop(syncer);
    if let Err((_, error)) = conn.close() {
        tracing::warn!(error = %error, "closing the SQLite writer failed");
    }
}

/// Makes the log durable for the batches the writer committed, and answers them. The writer
/// commits with `synchronous=NORMAL` (its commit writes the log but does not wait for the disk);
/// this thread then calls `fsync` on the log file, which covers every commit written before the
/// call, and only then answers their jobs: every batch committed while one `fsync` ran is
/// covered by the next, so the disk's latency is paid once per round rather than once per
/// batch, and the writer never waits for it. A commit's pages are visible to readers before
/// they are durable (as with an asynchronous commit); an answer never comes before they are.
/// SQLite's log is a chain of checksummed frames, so after a power loss it keeps a prefix of
/// the commits: none that was answered is lost, and none after a lost one survives.
fn run_syncer(log: &Path, committed: &std::sync::mpsc::Receiver<Committed>) {
    let mut file: Option<std::fs::File> = None;
    while let Ok(first) = committed.recv() {
        let mut round = vec![first];
        while round.len() < SYNC_QUEUE_LENGTH
            && let Ok(more) = committed.try_recv()
        {
            round.push(more);
        }
        let synced = sync_file(&mut file, log);
        for committed in round {
            committed.answer(synced.as_ref().err());
        }
    }
}

/// `fdatasync` of the log or the database file, opened on first use (the log exists once the
/// first commit wrote it). On Linux it writes the file's pages whichever descriptor wrote them.
fn sync_file(file: &mut Option<std::fs::File>, path: &Path) -> std::io::Result<()> {
    if file.is_none() {
        *file = Some(std::fs::OpenOptions::new().read(true).write(true).open(path)?);
    }
    match file {
        Some(file) => file.sync_data(),
        None => Ok(()),
    }
}

/// Runs the jobs in one transaction. `Ok` holds each job's own result after a commit; `Err`
/// means the transaction as a whole failed and nothing of it was kept.
///
/// The jobs that name their reads are decided in memory and written together (`batch.rs`);
/// the others run each under its own savepoint after them. Should the batch's own writes fail,
/// the transaction is rolled back and every job runs again on the per-job path.
async fn run_batch(
    conn: &mut rusqlite::Connection,
    batch: &mut [Box<dyn WriteJob>],
) -> Result<Vec<StoreResult<()>>, StoreError> {
    match run_transaction(conn, batch, true).await {
        Err(Failed::InMemory(error)) => {
            tracing::debug!(error = %error, jobs = batch.len(), "a batch's writes failed; running its jobs one by one");
            run_transaction(conn, batch, false)
                .await
                .map_err(Failed::into_error)
        }
        result => result.map_err(Failed::into_error),
    }
}

/// How a write transaction failed; nothing of it was kept either way.
enum Failed {
    /// In the part decided in memory: the jobs may still run one by one.
    InMemory(StoreError),
    Transaction(StoreError),
}

impl Failed {
    fn into_error(self) -> StoreError {
        match self {
            Failed::InMemory(error) | Failed::Transaction(error) => error,
        }
    }
}

async fn run_transaction(
    conn: &mut rusqlite::Connection,
    batch: &mut [Box<dyn WriteJob>],
    in_memory: bool,
) -> Result<Vec<StoreResult<()>>, Failed> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| Failed::Transaction(e.into()))?;
    let mut results: Vec<Option<StoreResult<()>>> = batch.iter().map(|_| None).collect();
    let mut written = Vec::with_capacity(batch.len());
    let mut in_memory_jobs = 0;
    if in_memory {
        let mut jobs: Vec<&mut dyn WriteJob> = batch.iter_mut().map(|job| job.as_mut()).collect();
        let mut tx = SqliteTx {
            conn: &mut *conn,
            written: Written::default(),
        };
        // A panic in a job (a bug) must not kill the writer: the batch then runs job by job.
        let outcome = AssertUnwindSafe(crate::batch::run(&mut tx, &mut jobs))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(StoreError::Corrupt("a write job panicked in memory".into())));
        match outcome {
            Ok((done, batch_written)) => {
                written.push(batch_written);
                in_memory_jobs = done.iter().filter(|done| **done).count();
                for (result, done) in results.iter_mut().zip(done) {
                    if done {
                        *result = Some(Ok(()));
                    }
                }
            }
            Err(error) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(Failed::InMemory(error));
            }
        }
    }
    for (job, result) in batch.iter_mut().zip(results.iter_mut()) {
        if result.is_some() {
            continue;
        }
        match run_job(conn, job.as_mut()).await {
            Ok((job_result, job_written)) => {
                if job_result.is_ok() {
                    written.push(job_written);
                }
                *result = Some(job_result);
            }
            Err(fatal) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(Failed::Transaction(fatal));
            }
        }
    }
    if let Err(error) = conn.execute_batch("COMMIT") {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(Failed::Transaction(error.into()));
    }
    for job_written in written {
        job_written.count_committed();
    }
    crate::telemetry::count_jobs(in_memory_jobs, batch.len() - in_memory_jobs);
    Ok(results
        .into_iter()
        .map(|result| result.unwrap_or_else(|| Err(StoreError::Corrupt("a job was not run".into()))))
        .collect())
}

/// Runs one job under its own savepoint. The inner result is the job's; the outer `Err` means
/// the savepoint itself could not be opened or closed, which happens only when SQLite has
/// rolled back the whole transaction on its own (disk full, I/O error): the batch must stop
/// there, before any later statement runs outside a transaction.
async fn run_job(
    conn: &mut rusqlite::Connection,
    job: &mut dyn WriteJob,
) -> Result<(StoreResult<()>, Written), StoreError> {
    conn.execute_batch("SAVEPOINT job")?;
    let mut tx = SqliteTx {
        conn: &mut *conn,
        written: Written::default(),
    };
    // A panic in a job (a bug) fails that job alone instead of killing the writer.
    let result = AssertUnwindSafe(job.run(&mut tx))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(StoreError::Corrupt("a write job panicked".into())));
    let written = tx.written;
    let end = if result.is_ok() {
        "RELEASE SAVEPOINT job"
    } else {
        "ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job"
    };
    conn.execute_batch(end)?;
    Ok((result, written))
}

#[async_trait]
impl Store for SqliteStore {
    async fn submit(&self, job: Box<dyn WriteJob>) {
        let sender = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match sender {
            Some(sender) => {
                if let Err(mpsc::error::SendError(job)) = sender.send(job).await {
                    job.finish(Err(StoreError::Closed));
                }
            }
            None => job.finish(Err(StoreError::Closed)),
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reads).await?;
        Ok(())
    }

    async fn api_key_by_hash(&self, key_hash: &[u8]) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query(sql::API_KEY_BY_HASH)
            .bind(key_hash)
            .fetch_optional(&self.reads)
            .await?;
        row.as_ref().map(rows::api_key).transpose()
    }

    async fn working_api_key_count(&self, merchant: &MerchantId, now: Timestamp) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(sql::WORKING_API_KEY_COUNT)
            .bind(merchant.as_str())
            .bind(now.unix_millis())
            .fetch_one(&self.reads)
            .await?)
    }

    async fn adjustment(
        &self,
        merchant: &MerchantId,
        id: &giftd_domain::AdjustmentId,
    ) -> StoreResult<Option<crate::AdjustmentRecord>> {
        adjustment_reads::one(&self.reads, merchant, id).await
    }

    async fn adjustments(
        &self,
        merchant: &MerchantId,
        state: Option<giftd_domain::adjustment::AdjustmentState>,
        card: Option<&CardId>,
        page: &Page,
    ) -> StoreResult<Vec<crate::AdjustmentRecord>> {
        adjustment_reads::page(&self.reads, merchant, state, card, page).await
    }

    async fn cardholder_link_by_token_hash(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<crate::CardholderLinkRecord>> {
        cardholder_link_reads::by_token_hash(&self.reads, token_hash).await
    }

    async fn cardholder_links(
        &self,
        merchant: &MerchantId,
        card: &CardId,
    ) -> StoreResult<Vec<crate::CardholderLinkRecord>> {
        cardholder_link_reads::of_card(&self.reads, merchant, card).await
    }

    async fn cards_due_for_breakage(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(MerchantId, CardId)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(sql::CARDS_DUE_FOR_BREAKAGE)
            .bind(now.unix_millis())
            .bind(i64::from(limit))
            .fetch_all(&self.reads)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(merchant, card)| (MerchantId::new(merchant), CardId::new(card)))
            .collect())
    }

    async fn adjustment_threshold(&self, merchant: &MerchantId) -> StoreResult<i64> {
        adjustment_reads::threshold(&self.reads, merchant).await
    }

    async fn audit_events(
        &self,
        merchant: &MerchantId,
        filter: &crate::AuditFilter,
        page: &Page,
    ) -> StoreResult<Vec<crate::AuditEventRow>> {
        audit_reads::events(&self.reads, merchant, filter, page).await
    }

    async fn staff_by_email(&self, email: &str) -> StoreResult<Option<crate::StaffRecord>> {
        staff_reads::by_email(&self.reads, email).await
    }

    async fn staff_member(
        &self,
        merchant: &MerchantId,
        id: &giftd_domain::StaffId,
    ) -> StoreResult<Option<crate::StaffRecord>> {
        staff_reads::member(&self.reads, merchant, id).await
    }

    async fn staff_members(&self, merchant: &MerchantId, limit: u32) -> StoreResult<Vec<crate::StaffRecord>> {
        staff_reads::members(&self.reads, merchant, limit).await
    }

    async fn open_staff_sessions(
        &self,
        staff: &giftd_domain::StaffId,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<crate::StaffSessionRecord>> {
        staff_reads::open_sessions(&self.reads, staff, now, limit).await
    }

    async fn staff_session_by_hash(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<crate::StaffSessionRecord>> {
        staff_reads::session_by_hash(&self.reads, token_hash).await
    }

    async fn api_keys(&self, merchant: &MerchantId, limit: u32) -> StoreResult<Vec<ApiKeyRecord>> {
        let rows = sqlx::query(sql::API_KEYS_OF_MERCHANT)
            .bind(merchant.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.reads)
            .await?;
        rows.iter().map(rows::api_key).collect()
    }

    async fn program(&self, merchant: &MerchantId, id: &ProgramId) -> StoreResult<Option<Program>> {
        queries::program(&self.reads, merchant, id).await
    }

    async fn programs(&self, merchant: &MerchantId, page: &Page) -> StoreResult<Vec<Program>> {
        let sql = format!(
            "SELECT {} FROM programs WHERE merchant_id = ?1 \
             AND (?2 IS NULL OR seq < (SELECT seq FROM programs WHERE id = ?2 AND merchant_id = ?1)) \
             ORDER BY seq DESC LIMIT ?3",
            rows::PROGRAM_COLUMNS
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(merchant.as_str())
            .bind(page.cursor.as_deref())
            .bind(i64::from(page.limit))
            .fetch_all(&self.reads)
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
            "SELECT {}, {} FROM cards c WHERE merchant_id = ? AND id = ?",
            rows::CARD_COLUMNS,
            EXPIRED_HELD
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(now.unix_millis())
            .bind(merchant.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.reads)
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
            "SELECT {}, {} FROM cards c WHERE merchant_id = ?2 \
             AND (?3 IS NULL OR state = ?3) AND (?4 IS NULL OR program_id = ?4) \
             AND (?5 IS NULL OR seq < (SELECT seq FROM cards WHERE id = ?5 AND merchant_id = ?2)) \
             AND (?7 IS NULL OR last4 = ?7) ORDER BY seq DESC LIMIT ?6",
            rows::CARD_COLUMNS,
            EXPIRED_HELD.replace('?', "?1")
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now.unix_millis())
            .bind(merchant.as_str())
            .bind(filter.state.map(|s| s.as_str()))
            .bind(filter.program_id.as_ref().map(ProgramId::as_str))
            .bind(page.cursor.as_deref())
            .bind(i64::from(page.limit))
            .bind(filter.last4.as_deref())
            .fetch_all(&self.reads)
            .await?;
        rows.iter().map(card_as_of).collect()
    }

    async fn hold(&self, merchant: &MerchantId, id: &HoldId) -> StoreResult<Option<HoldRecord>> {
        queries::hold(&self.reads, merchant, id).await
    }

    async fn transaction(
        &self,
        merchant: &MerchantId,
        id: &TransactionId,
    ) -> StoreResult<Option<TransactionRecord>> {
        queries::transaction(&self.reads, merchant, id).await
    }

    async fn card_transactions(
        &self,
        merchant: &MerchantId,
        card: &CardId,
        page: &Page,
    ) -> StoreResult<Vec<TransactionRecord>> {
        let sql = format!(
            "SELECT {} FROM transactions WHERE merchant_id = ?1 AND card_id = ?2 \
             AND (?3 IS NULL OR seq < (SELECT seq FROM transactions WHERE id = ?3 AND card_id = ?2)) \
             ORDER BY seq DESC LIMIT ?4",
            rows::TRANSACTION_COLUMNS
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(merchant.as_str())
            .bind(card.as_str())
            .bind(page.cursor.as_deref())
            .bind(i64::from(page.limit))
            .fetch_all(&self.reads)
            .await?;
        rows.iter().map(rows::transaction).collect()
    }

    async fn checkout(&self, merchant: &MerchantId, id: &CheckoutId) -> StoreResult<Option<CheckoutRow>> {
        checkouts::get(&self.reads, merchant, id).await
    }

    async fn checkouts(
        &self,
        merchant: &MerchantId,
        before: Option<&CheckoutId>,
        limit: u32,
    ) -> StoreResult<Vec<CheckoutRow>> {
        checkouts::page(&self.reads, merchant, before, limit).await
    }

    async fn checkout_with_refund(
        &self,
        merchant: &MerchantId,
        refund_id_prefix: &str,
    ) -> StoreResult<Option<CheckoutRow>> {
        checkouts::with_refund(&self.reads, merchant, refund_id_prefix).await
    }

    async fn open_checkouts(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<(MerchantId, CheckoutId)>> {
        checkouts::open(&self.reads, now, limit).await
    }

    async fn wallet_user_by_public_id(
        &self,
        merchant: &MerchantId,
        public_id: &str,
    ) -> StoreResult<Option<UserId>> {
        let user: Option<String> = sqlx::query_scalar(sql::WALLET_USER_BY_PUBLIC_ID)
            .bind(merchant.as_str())
            .bind(public_id)
            .fetch_optional(&self.reads)
            .await?;
        user.as_deref().map(rows::user_id).transpose()
    }

    async fn wallet_cards(&self, merchant: &MerchantId, user: &UserId) -> StoreResult<Vec<WalletCard>> {
        wallet::cards(&self.reads, merchant, user).await
    }

    async fn due_holds(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<(MerchantId, HoldId)>> {
        let rows = sqlx::query(sql::DUE_HOLDS)
            .bind(now.unix_millis())
            .bind(i64::from(limit))
            .fetch_all(&self.reads)
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
        let mut conn = self.reads.acquire().await?;
        // One read transaction, so every check sees the same snapshot of the ledger.
        sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
        let report = crate::verify::run_sqlite(&mut conn).await;
        let _ = sqlx::raw_sql("COMMIT").execute(&mut *conn).await;
        report
    }

    async fn webhook_endpoints(
        &self,
        merchant: &MerchantId,
        page: &crate::Page,
    ) -> StoreResult<Vec<crate::WebhookEndpointRow>> {
        webhooks::endpoints(&self.reads, merchant, page).await
    }

    async fn webhook_endpoint(
        &self,
        merchant: &MerchantId,
        id: &giftd_domain::WebhookEndpointId,
    ) -> StoreResult<Option<crate::WebhookEndpointRow>> {
        webhooks::endpoint(&self.reads, merchant, id.as_str()).await
    }

    async fn events(
        &self,
        merchant: &MerchantId,
        event_type: Option<&str>,
        page: &crate::Page,
    ) -> StoreResult<Vec<crate::EventRow>> {
        webhooks::events(&self.reads, merchant, event_type, page).await
    }

    async fn event(
        &self,
        merchant: &MerchantId,
        id: &giftd_domain::EventId,
    ) -> StoreResult<Option<crate::EventRow>> {
        webhooks::event(&self.reads, merchant, id.as_str()).await
    }

    async fn event_deliveries(
        &self,
        merchant: &MerchantId,
        event_id: &giftd_domain::EventId,
    ) -> StoreResult<(Vec<crate::DeliveryRow>, Vec<crate::AttemptRow>)> {
        webhooks::deliveries(&self.reads, merchant, event_id.as_str()).await
    }

    async fn liability(
        &self,
        merchant: Option<&MerchantId>,
        as_of: Timestamp,
    ) -> StoreResult<Vec<LiabilityLine>> {
        reports::liability(&self.reads, merchant, as_of).await
    }

    async fn activity(
        &self,
        merchant: Option<&MerchantId>,
        from: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Vec<ActivityLine>> {
        reports::activity(&self.reads, merchant, from, until).await
    }

    async fn channel_activity(
        &self,
        merchant: Option<&MerchantId>,
        from: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Vec<ChannelLine>> {
        reports::channel_activity(&self.reads, merchant, from, until).await
    }

    async fn dormant_cards(
        &self,
        merchant: Option<&MerchantId>,
        quiet_since: Timestamp,
        as_of: Timestamp,
        page: &Page,
    ) -> StoreResult<Vec<DormantCard>> {
        reports::dormant(&self.reads, merchant, quiet_since, as_of, page).await
    }

    async fn insert_card_stock(&self, batch: &StockBatch) -> StoreResult<()> {
        let mut conn = options(&self.path, self.durability).connect().await?;
        let written = stock::insert(&mut conn, batch).await;
        let _ = conn.close().await;
        written
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
            .fetch_optional(&self.reads)
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
            .fetch_all(&self.reads)
            .await?;
        rows.iter().map(rows::keyed_idempotency_record).collect()
    }

    async fn program_owner(&self, program: &ProgramId) -> StoreResult<Option<MerchantId>> {
        stock::program_owner(&self.reads, program).await
    }

    async fn card_stock_batch(
        &self,
        merchant: &MerchantId,
        source_digest: &[u8],
    ) -> StoreResult<Option<StockBatchRecord>> {
        stock::batch_by_digest(&self.reads, merchant, source_digest).await
    }

    async fn existing_fingerprints(
        &self,
        merchant: &MerchantId,
        fingerprints: &[Vec<u8>],
    ) -> StoreResult<Vec<Vec<u8>>> {
        stock::existing_fingerprints(&self.reads, merchant, fingerprints).await
    }

    async fn card_batches(
        &self,
        merchant: &MerchantId,
        page: &Page,
    ) -> StoreResult<Vec<crate::CardBatchRow>> {
        stock::batches(&self.reads, merchant, page).await
    }

    async fn card_batch(&self, merchant: &MerchantId, id: &str) -> StoreResult<Option<crate::CardBatchRow>> {
        stock::batch(&self.reads, merchant, id).await
    }

    async fn card_batch_file(&self, merchant: &MerchantId, id: &str) -> StoreResult<Option<Option<Vec<u8>>>> {
        stock::file(&self.reads, merchant, id).await
    }

    async fn collect_card_batch_file(
        &self,
        merchant: &MerchantId,
        id: &str,
        sha256: &[u8],
        at: Timestamp,
        audit: Option<&crate::AuditEventRow>,
    ) -> StoreResult<bool> {
        let mut conn = options(&self.path, self.durability).connect().await?;
        let collected = stock::collect(&mut conn, merchant, id, sha256, at, audit).await;
        let _ = conn.close().await;
        collected
    }

    async fn clover_object(
        &self,
        merchant: &MerchantId,
        object: crate::CloverObject,
        id: &TransactionId,
    ) -> StoreResult<Option<crate::CloverLedgerRow>> {
        clover_reads::object(&self.reads, merchant, object, id).await
    }

    async fn clover_objects(
        &self,
        merchant: &MerchantId,
        object: crate::CloverObject,
        query: &crate::CloverListQuery,
    ) -> StoreResult<Vec<crate::CloverLedgerRow>> {
        clover_reads::page(&self.reads, merchant, object, query).await
    }

    async fn close(&self) {
        // Dropping the sender lets the writer drain what is queued and stop.
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(stopped) = self.writer.lock().await.take() {
            let _ = stopped.await;
        }
        self.reads.close().await;
    }

    async fn pending_hold_count(&self, now: Timestamp) -> StoreResult<i64> {
        telemetry::pending_hold_count(&self.reads, now).await
    }

    async fn pending_webhook_delivery_count(&self) -> StoreResult<i64> {
        telemetry::pending_webhook_delivery_count(&self.reads).await
    }

    fn pool_stats(&self) -> crate::PoolStats {
        let free = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(mpsc::Sender::capacity);
        telemetry::pool_stats(&self.reads, free)
    }
}

/// Held value of expired but not yet swept holds; the first `?` is `now`.
const EXPIRED_HELD: &str = "(SELECT COALESCE(SUM(h.amount), 0) FROM holds h \
    WHERE h.card_id = c.id AND h.state = 'pending' AND h.expires_at <= ?) AS expired_held";

/// A card as of `now`: a hold past its expiry no longer counts as held.
fn card_as_of(row: &sqlx::sqlite::SqliteRow) -> StoreResult<CardRecord> {
    let mut card = rows::card(row)?;
    let expired: i64 = row.try_get("expired_held")?;
    card.snapshot.held -= expired;
    Ok(card)
}

impl Durability {
    /// SQLite's `synchronous` setting for connections that wait for the disk themselves.
    fn synchronous(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

impl FromStr for Durability {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "full" => Ok(Self::Full),
            "normal" => Ok(Self::Normal),
            other => Err(format!("unknown durability {other:?}: use full or normal")),
        }
    }
}

/// The staff reads (`crate::staff`), bound on this backend's pool.
mod staff_reads {
    crate::staff::reads_on_pool!(sqlx::SqlitePool);
}

/// The audit trail's listing (`crate::audit`), bound on this backend's pool.
mod audit_reads {
    crate::audit::reads_on_pool!(sqlx::SqlitePool);
}

/// The adjustments' reads (`crate::adjustments`), bound on this backend's pool.
mod cardholder_link_reads {
    crate::cardholder_links::reads_on_pool!(sqlx::SqlitePool);
}

mod adjustment_reads {
    crate::adjustments::reads_on_pool!(sqlx::SqlitePool);
}

#[cfg(test)]
mod lock_and_checkpoint_tests {
    use super::*;

    /// The log's checkpoint sequence number (bytes 12–15 of its header, big-endian), which
    /// SQLite increments each time the log starts over.
    fn log_generation(database: &Path) -> u32 {
        let header = std::fs::read(log_path(database)).expect("the log");
        u32::from_be_bytes(header[12..16].try_into().expect("four bytes"))
    }

    #[test]
    fn the_checkpointer_starts_a_long_log_over_while_a_writer_keeps_writing_and_empties_it_at_the_end() {
        restarts_the_log_under_a_writer_that_never_pauses(|database| database.to_path_buf());
    }

    #[test]
    fn a_checkpointer_that_cannot_sync_the_file_itself_still_starts_the_log_over() {
        // Its own sync is a head start only: the restart syncs the file anyway.
        restarts_the_log_under_a_writer_that_never_pauses(|database| database.with_extension("missing"));
    }

    /// Runs the checkpointer, told to sync the file `sync_path` gives for the database, beside
    /// a writer that commits without a pause, until the log starts over; then stops both.
    fn restarts_the_log_under_a_writer_that_never_pauses(sync_path: impl Fn(&Path) -> PathBuf) {
        let dir = tempfile::tempdir().expect("temporary folder");
        let database = dir.path().join("checkpoints.db");
        let writer = rusqlite::Connection::open(&database).expect("opened");
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; PRAGMA synchronous = OFF; \
                 CREATE TABLE t (b BLOB)",
            )
            .expect("set up");
        writer.busy_handler(Some(writer_busy)).expect("handler set");
        let write = |writer: &rusqlite::Connection| {
            writer
                .execute("INSERT INTO t VALUES (zeroblob(3000))", [])
                .expect("a commit")
        };
        // A log past the restart threshold before the checkpointer starts.
        let frame_bytes = 4096 + 24;
        let past_threshold = (CHECKPOINT_RESTART_FRAMES as u64 + 64) * frame_bytes;
        while std::fs::metadata(log_path(&database)).map_or(0, |m| m.len()) < past_threshold {
            write(&writer);
        }
        let generation = log_generation(&database);
        let checkpoints = rusqlite::Connection::open(&database).expect("opened");
        checkpoints
            .busy_handler(Some(checkpointer_busy))
            .expect("handler set");
        let (stop, stopping) = std::sync::mpsc::channel::<()>();
        let checkpointer = std::thread::spawn({
            let synced = sync_path(&database);
            move || run_checkpoints(&checkpoints, &synced, &stopping)
        });
        // A writer that never pauses, so that no passive checkpoint reaches the log's end and
        // only a restart can start it over.
        let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let stream = std::thread::spawn({
            let writing = writing.clone();
            move || {
                let mut commits = 0_u64;
                while writing.load(std::sync::atomic::Ordering::Relaxed) {
                    write(&writer);
                    commits += 1;
                }
                (writer, commits)
            }
        });
        let give_up = std::time::Instant::now() + CHECKPOINT_INTERVAL * 50;
        while log_generation(&database) == generation {
            assert!(std::time::Instant::now() < give_up, "the log never started over");
            std::thread::sleep(CHECKPOINT_INTERVAL / 10);
        }
        writing.store(false, std::sync::atomic::Ordering::Relaxed);
        let (writer, commits) = stream.join().expect("the writer stopped");
        assert!(commits > 0);
        drop(stop);
        checkpointer.join().expect("the checkpointer stopped");
        let rows: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .expect("counted");
        assert!(rows > 0);
        assert_eq!(
            std::fs::metadata(log_path(&database))
                .map(|m| m.len())
                .expect("the log"),
            0,
            "the last checkpoint empties the log"
        );
    }

    #[test]
    fn a_busy_wait_tries_again_until_its_limit_has_passed_then_gives_up() {
        let limit = Duration::from_millis(20);
        let started = std::time::Instant::now();
        let mut attempt = 0;
        while wait_while_busy(attempt, limit) {
            attempt += 1;
        }
        assert!(
            started.elapsed() >= limit,
            "gave up after {:?}",
            started.elapsed()
        );
        // Each try sleeps BUSY_POLL, not SQLite's milliseconds: a 20 ms wait holds many.
        assert!(attempt > 2, "only {attempt} tries in {limit:?}");
        // A new wait (attempt 0) starts its own clock.
        assert!(wait_while_busy(0, limit));
    }

    #[test]
    fn a_writer_kept_out_by_another_connection_s_lock_takes_it_once_released() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("busy.db");
        let holder = rusqlite::Connection::open(&path).expect("opened");
        holder
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (a INTEGER); BEGIN IMMEDIATE; INSERT INTO t VALUES (1)")
            .expect("lock taken");
        let waiter = std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&path).expect("opened");
            conn.busy_handler(Some(writer_busy)).expect("handler set");
            conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (2); COMMIT")
        });
        std::thread::sleep(Duration::from_millis(30));
        holder.execute_batch("COMMIT").expect("released");
        waiter
            .join()
            .expect("no panic")
            .expect("the waiter wrote once the lock was free");
        let count: i64 = holder
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .expect("counted");
        assert_eq!(count, 2);
    }
}
