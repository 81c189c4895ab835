//! SQLite's bulk write of card stock: a whole batch in one `BEGIN IMMEDIATE` transaction on a
//! connection of its own, with multi-row `INSERT`s ([`STOCK_ROWS_PER_STATEMENT`] rows each),
//! so 100,000 cards are a few hundred statements and one fsync.
//!
//! It runs beside the writer task, not through it: a batch is far too large for one job of the
//! group commit. Made by a running server (`POST /v1/card_batches`), the writer waits for this
//! transaction (up to its busy timeout, far longer than a batch of the server's size takes);
//! made by the CLI, the CLI holds the data folder's lock. Plain functions over a connection, so that
//! the writer (`tx.rs`) can change underneath without touching this file.

use giftd_domain::{Channel, HoldId, MerchantId, Timestamp, TransactionId};
use sqlx::{AssertSqlSafe, SqliteConnection, SqlitePool};

use crate::card_batches::{self, card_batch_reads, extras, run_extras};
use crate::reports::{STOCK_ROWS_PER_STATEMENT, stock_batch};
use crate::sql;
use crate::{AuditEventRow, StockBatch, StockBatchRecord, StoreError, StoreResult};

const CARD_COLUMNS: &str = "id, merchant_id, program_id, kind, state, currency, balance, held, \
    expires_at, last4, number_ciphertext, number_fingerprint, security_code_hash, created_at, updated_at";
const TRANSACTION_COLUMNS: &str = "id, merchant_id, card_id, type, amount, currency, balance_before, \
    balance_after, reference, reverses, hold_id, entry_id, created_at, channel";
const POSTING_COLUMNS: &str = "transaction_id, entry_id, account_kind, owner_id, currency, amount";

/// `INSERT INTO table (columns) VALUES (?, ...), (?, ...)` for `rows` rows.
fn insert_sql(table: &str, columns: &str, rows: usize) -> String {
    let width = columns.split(',').count();
    let row = format!("({})", vec!["?"; width].join(", "));
    format!(
        "INSERT INTO {table} ({columns}) VALUES {}",
        vec![row; rows].join(", ")
    )
}

pub(super) async fn insert(conn: &mut SqliteConnection, batch: &StockBatch) -> StoreResult<()> {
    sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    match write(conn, batch).await {
        Ok(()) => {
            sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
            Ok(())
        }
        Err(error) => {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            Err(error)
        }
    }
}

async fn write(conn: &mut SqliteConnection, batch: &StockBatch) -> StoreResult<()> {
    let value: i64 = batch
        .cards
        .iter()
        .filter_map(|card| card.issue.as_ref().map(|(t, _)| t.amount))
        .sum();
    sqlx::query(sql::INSERT_STOCK_BATCH)
        .bind(&batch.id)
        .bind(batch.merchant_id.as_str())
        .bind(batch.program_id.as_str())
        .bind(batch.source.as_str())
        .bind(&batch.source_digest)
        .bind(i64::try_from(batch.cards.len()).unwrap_or(i64::MAX))
        .bind(value)
        .bind(batch.now.unix_millis())
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from_write)?;

    for chunk in batch.cards.chunks(STOCK_ROWS_PER_STATEMENT) {
        let sql = insert_sql("cards", CARD_COLUMNS, chunk.len());
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for card in chunk {
            let record = &card.record;
            let s = &record.snapshot;
            query = query
                .bind(s.id.as_str())
                .bind(record.merchant_id.as_str())
                .bind(s.program_id.as_str())
                .bind(s.kind.as_str())
                .bind(s.state.as_str())
                .bind(s.currency.code())
                .bind(s.balance)
                .bind(s.held)
                .bind(s.expires_at.map(Timestamp::unix_millis))
                .bind(&record.last4)
                .bind(&record.number_ciphertext)
                .bind(&record.number_fingerprint)
                .bind(&record.security_code_hash)
                .bind(record.created_at.unix_millis())
                .bind(record.created_at.unix_millis());
        }
        query.execute(&mut *conn).await.map_err(StoreError::from_write)?;
    }

    let issues: Vec<_> = batch
        .cards
        .iter()
        .filter_map(|card| card.issue.as_ref())
        .collect();
    for chunk in issues.chunks(STOCK_ROWS_PER_STATEMENT) {
        let sql = insert_sql("transactions", TRANSACTION_COLUMNS, chunk.len());
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (record, _) in chunk {
            query = query
                .bind(record.id.as_str())
                .bind(record.merchant_id.as_str())
                .bind(record.card_id.as_str())
                .bind(record.transaction_type.as_str())
                .bind(record.amount)
                .bind(&record.currency)
                .bind(record.balance_before)
                .bind(record.balance_after)
                .bind(&record.reference)
                .bind(record.reverses.as_ref().map(TransactionId::as_str))
                .bind(record.hold_id.as_ref().map(HoldId::as_str))
                .bind(record.id.as_str())
                .bind(record.created_at.unix_millis())
                .bind(record.channel.map(Channel::as_str));
        }
        query.execute(&mut *conn).await.map_err(StoreError::from_write)?;
    }

    let postings: Vec<_> = issues
        .iter()
        .flat_map(|(record, postings)| postings.iter().map(move |posting| (&record.id, posting)))
        .collect();
    for chunk in postings.chunks(STOCK_ROWS_PER_STATEMENT) {
        let sql = insert_sql("postings", POSTING_COLUMNS, chunk.len());
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (transaction_id, posting) in chunk {
            query = query
                .bind(transaction_id.as_str())
                .bind(transaction_id.as_str())
                .bind(posting.account.kind())
                .bind(posting.account.owner_id())
                .bind(posting.currency.code())
                .bind(posting.amount);
        }
        query.execute(&mut *conn).await.map_err(StoreError::from_write)?;
    }
    run_extras!(&mut *conn, extras(batch))
}

card_batch_reads!(SqlitePool);

/// Drops a file's content with the request's audit row, in one `BEGIN IMMEDIATE`
/// transaction on `conn` (a connection of its own, as a batch's): whether it did.
pub(super) async fn collect(
    conn: &mut SqliteConnection,
    merchant: &MerchantId,
    id: &str,
    sha256: &[u8],
    at: Timestamp,
    audit: Option<&AuditEventRow>,
) -> StoreResult<bool> {
    sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let mut statements = vec![card_batches::collect_extra(merchant, id, sha256, at)];
    statements.extend(audit.map(card_batches::audit_extra));
    match run_extras!(&mut *conn, statements) {
        Ok(()) => {
            sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
            Ok(true)
        }
        Err(error) => {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            match error {
                StoreError::Conflict(_) => Ok(false),
                error => Err(error),
            }
        }
    }
}

pub(super) async fn batch_by_digest(
    pool: &sqlx::SqlitePool,
    merchant: &giftd_domain::MerchantId,
    digest: &[u8],
) -> StoreResult<Option<StockBatchRecord>> {
    let row = sqlx::query(sql::STOCK_BATCH_BY_DIGEST)
        .bind(merchant.as_str())
        .bind(digest)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(stock_batch).transpose()
}

/// Fingerprints are looked up in chunks: one query per [`STOCK_ROWS_PER_STATEMENT`] numbers.
pub(super) async fn existing_fingerprints(
    pool: &sqlx::SqlitePool,
    merchant: &giftd_domain::MerchantId,
    fingerprints: &[Vec<u8>],
) -> StoreResult<Vec<Vec<u8>>> {
    let mut found = Vec::new();
    for chunk in fingerprints.chunks(STOCK_ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT number_fingerprint FROM cards WHERE merchant_id = ? AND number_fingerprint IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut query = sqlx::query_scalar::<_, Vec<u8>>(AssertSqlSafe(sql)).bind(merchant.as_str());
        for fingerprint in chunk {
            query = query.bind(fingerprint);
        }
        found.extend(query.fetch_all(pool).await?);
    }
    Ok(found)
}

pub(super) async fn program_owner(
    pool: &sqlx::SqlitePool,
    program: &giftd_domain::ProgramId,
) -> StoreResult<Option<giftd_domain::MerchantId>> {
    let merchant: Option<String> = sqlx::query_scalar(sql::PROGRAM_OWNER)
        .bind(program.as_str())
        .fetch_optional(pool)
        .await?;
    Ok(merchant.map(giftd_domain::MerchantId::new))
}
