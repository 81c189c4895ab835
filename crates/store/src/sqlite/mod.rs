//! The embedded default: SQLite in WAL mode with `synchronous=FULL`, one writer connection fed
//! by a channel, and a small pool of read-only connections.
//!
//! The writer takes the jobs that are waiting (up to [`MAX_JOBS_PER_TRANSACTION`]), runs them
//! in one `BEGIN IMMEDIATE` transaction with a savepoint each, commits once, then finishes each
//! job: group commit, so one fsync serves many requests while each still gets its own result.

mod checkouts;
mod ops;
mod queries;
mod reports;
mod stock;
mod tx;
mod wallet;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use std::panic::AssertUnwindSafe;

use async_trait::async_trait;
use futures::FutureExt;
use giftd_domain::wallet::{UserId, WalletCard};
use giftd_domain::{CardId, CheckoutId, HoldId, MerchantId, Program, ProgramId, Timestamp, TransactionId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row, SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, mpsc};

use crate::ops::Written;
use crate::rows;
use crate::{
    ActivityLine, CardFilter, CardRecord, CheckoutRow, DormantCard, HoldRecord, LiabilityLine, Page,
    StockBatch, StockBatchRecord, Store, StoreError, StoreResult, TransactionRecord, VerifyReport, WriteJob,
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
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
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
        let mut writer = options(path, durability).connect().await?;
        MIGRATOR.run(&mut writer).await?;
        let reads = SqlitePoolOptions::new()
            .max_connections(READ_POOL_SIZE)
            .connect_with(options(path, durability).read_only(true))
            .await?;
        let (sender, receiver) = mpsc::channel(WRITER_QUEUE_LENGTH);
        let handle = tokio::spawn(run_writer(writer, receiver));
        Ok(Arc::new(Self {
            path: path.to_path_buf(),
            durability,
            reads,
            jobs: std::sync::Mutex::new(Some(sender)),
            writer: Mutex::new(Some(handle)),
        }))
    }

    /// Applies pending migrations and returns; for `giftd migrate`.
    pub async fn migrate(path: &Path) -> StoreResult<()> {
        let mut conn = options(path, Durability::Full).connect().await?;
        MIGRATOR.run(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }

    /// A plain connection to the same file, for tests that inspect or tamper with the
    /// database behind the store's back.
    pub async fn raw_connection(path: &Path) -> StoreResult<SqliteConnection> {
        Ok(options(path, Durability::Full).connect().await?)
    }
}

async fn run_writer(mut conn: SqliteConnection, mut receiver: mpsc::Receiver<Box<dyn WriteJob>>) {
    let mut batch: Vec<Box<dyn WriteJob>> = Vec::with_capacity(MAX_JOBS_PER_TRANSACTION);
    while receiver.recv_many(&mut batch, MAX_JOBS_PER_TRANSACTION).await > 0 {
        let outcomes = run_batch(&mut conn, &mut batch).await;
        match outcomes {
            Ok(results) => {
                for (job, result) in batch.drain(..).zip(results) {
                    job.finish(result);
                }
            }
            Err(error) => {
                tracing::error!(error = %error, jobs = batch.len(), "write transaction failed; nothing of it was kept");
                for job in batch.drain(..) {
                    job.finish(Err(StoreError::TransactionFailed(error.to_string())));
                }
            }
        }
    }
    let _ = conn.close().await;
}

/// Runs the jobs in one transaction. `Ok` holds each job's own result after a commit; `Err`
/// means the transaction as a whole failed and nothing of it was kept.
async fn run_batch(
    conn: &mut SqliteConnection,
    batch: &mut [Box<dyn WriteJob>],
) -> Result<Vec<StoreResult<()>>, StoreError> {
    sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let mut results = Vec::with_capacity(batch.len());
    let mut written = Vec::with_capacity(batch.len());
    for job in batch.iter_mut() {
        match run_job(conn, job.as_mut()).await {
            Ok((result, job_written)) => {
                if result.is_ok() {
                    written.push(job_written);
                }
                results.push(result);
            }
            Err(fatal) => {
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                return Err(fatal);
            }
        }
    }
    if let Err(error) = sqlx::raw_sql("COMMIT").execute(&mut *conn).await {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
        return Err(error.into());
    }
    for job_written in written {
        job_written.count_committed();
    }
    Ok(results)
}

/// Runs one job under its own savepoint. The inner result is the job's; the outer `Err` means
/// the savepoint itself could not be opened or closed, which happens only when SQLite has
/// rolled back the whole transaction on its own (disk full, I/O error): the batch must stop
/// there, before any later statement runs outside a transaction.
async fn run_job(
    conn: &mut SqliteConnection,
    job: &mut dyn WriteJob,
) -> Result<(StoreResult<()>, Written), StoreError> {
    sqlx::raw_sql("SAVEPOINT job").execute(&mut *conn).await?;
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
    sqlx::raw_sql(end).execute(&mut *conn).await?;
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

    async fn merchant_for_api_key(&self, key_hash: &[u8]) -> StoreResult<Option<MerchantId>> {
        let row = sqlx::query("SELECT merchant_id FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL")
            .bind(key_hash)
            .fetch_optional(&self.reads)
            .await?;
        Ok(row
            .map(|r| r.try_get::<String, _>("merchant_id"))
            .transpose()?
            .map(MerchantId::new))
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
             ORDER BY seq DESC LIMIT ?6",
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

    async fn open_checkouts(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<(MerchantId, CheckoutId)>> {
        checkouts::open(&self.reads, now, limit).await
    }

    async fn wallet_cards(&self, merchant: &MerchantId, user: &UserId) -> StoreResult<Vec<WalletCard>> {
        wallet::cards(&self.reads, merchant, user).await
    }

    async fn due_holds(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<(MerchantId, HoldId)>> {
        let rows = sqlx::query(
            "SELECT merchant_id, id FROM holds WHERE state = 'pending' AND expires_at <= ? \
             ORDER BY expires_at LIMIT ?",
        )
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

    async fn close(&self) {
        // Dropping the sender lets the writer drain what is queued and stop.
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(handle) = self.writer.lock().await.take() {
            let _ = handle.await;
        }
        self.reads.close().await;
    }

    async fn pending_hold_count(&self, now: Timestamp) -> StoreResult<i64> {
        ops::pending_hold_count(&self.reads, now).await
    }

    fn pool_stats(&self) -> crate::PoolStats {
        let free = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(mpsc::Sender::capacity);
        ops::pool_stats(&self.reads, free)
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
