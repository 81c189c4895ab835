//! What a card batch made by a running server (`POST /v1/card_batches`) writes besides its
//! cards, and how it is read back: the printer's file (encrypted, in `card_batch_files`, until
//! its caller says it has it), the request's audit row and its idempotency record, all in the
//! batch's one transaction. The statements are shared; each backend binds them ([`Param`]) on
//! the connection of its bulk write (`sqlite/stock.rs`, `postgres/stock.rs`).

use giftd_domain::{MerchantId, Timestamp};

use crate::reports::stock_batch;
use crate::rows::Columns;
use crate::{AuditEventRow, IdempotencyRecord, StockBatch, StockBatchRecord, StoreResult};

/// The printer's file of a generated batch: its digest and size, and the file encrypted under
/// the master key with the batch id as associated data.
#[derive(Debug, Clone)]
pub struct StockFile {
    pub sha256: Vec<u8>,
    pub size: i64,
    pub ciphertext: Vec<u8>,
}

/// The idempotency record a batch's request leaves, so that a retry gets the batch it made.
#[derive(Debug, Clone)]
pub struct StockIdempotency {
    pub scope: &'static str,
    pub key: String,
    pub record: IdempotencyRecord,
    /// A record older than this is expired and may be replaced.
    pub not_before: Timestamp,
}

/// A file's state as the batch listing shows it; never its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockFileState {
    pub sha256: Vec<u8>,
    pub size: i64,
    /// When its caller said it had it; the content is gone from then on.
    pub collected_at: Option<Timestamp>,
}

/// A batch with its file's state (none for an import, or a batch made by the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardBatchRow {
    pub batch: StockBatchRecord,
    pub file: Option<StockFileState>,
}

/// A value bound to a statement, for either backend.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(Option<String>),
    Integer(Option<i64>),
    Bytes(Option<Vec<u8>>),
}

/// A statement and its values, and whether it must change exactly one row.
pub(crate) struct Extra {
    pub sql: &'static str,
    pub params: Vec<Param>,
    /// The idempotency record: taking a key another request holds changes no row, and the
    /// whole batch is then refused as a conflict (its caller answers with what is stored).
    pub must_change_one: bool,
}

const INSERT_FILE: &str = "INSERT INTO card_batch_files (batch_id, merchant_id, sha256, size, ciphertext) \
     VALUES ($1, $2, $3, $4, $5)";

/// The merchant's batches, newest first, after the cursor `$2` (an id).
pub(crate) const BATCHES_OF_MERCHANT: &str = "SELECT b.id, b.merchant_id, b.program_id, b.source, b.cards, \
     b.value, b.created_at, f.sha256, f.size, f.collected_at FROM card_stock_batches b LEFT JOIN \
     card_batch_files f ON f.batch_id = b.id WHERE b.merchant_id = $1 AND ($2 IS NULL OR b.id < $2) \
     ORDER BY b.id DESC LIMIT $3";

pub(crate) const BATCH_BY_ID: &str = "SELECT b.id, b.merchant_id, b.program_id, b.source, b.cards, b.value, \
     b.created_at, f.sha256, f.size, f.collected_at FROM card_stock_batches b LEFT JOIN \
     card_batch_files f ON f.batch_id = b.id WHERE b.merchant_id = $1 AND b.id = $2";

pub(crate) const FILE_OF_BATCH: &str =
    "SELECT ciphertext FROM card_batch_files WHERE merchant_id = $1 AND batch_id = $2";

/// Drops a file's content once its caller has it, if the digest it names is the file's.
pub(crate) const COLLECT_FILE: &str = "UPDATE card_batch_files SET ciphertext = NULL, collected_at = $1 \
     WHERE merchant_id = $2 AND batch_id = $3 AND sha256 = $4 AND ciphertext IS NOT NULL";

fn text(value: &str) -> Param {
    Param::Text(Some(value.to_owned()))
}

/// The statements a batch writes after its cards, in order.
pub(crate) fn extras(batch: &StockBatch) -> Vec<Extra> {
    let mut extras = Vec::new();
    if let Some(file) = &batch.file {
        extras.push(Extra {
            sql: INSERT_FILE,
            params: vec![
                text(&batch.id),
                text(batch.merchant_id.as_str()),
                Param::Bytes(Some(file.sha256.clone())),
                Param::Integer(Some(file.size)),
                Param::Bytes(Some(file.ciphertext.clone())),
            ],
            must_change_one: true,
        });
    }
    if let Some(key) = &batch.idempotency {
        extras.push(Extra {
            sql: crate::sql::PUT_IDEMPOTENCY_RECORD,
            params: vec![
                text(batch.merchant_id.as_str()),
                text(key.scope),
                text(&key.key),
                Param::Bytes(Some(key.record.request_hash.clone())),
                Param::Integer(Some(i64::from(key.record.status))),
                Param::Bytes(Some(key.record.body.clone())),
                Param::Integer(Some(key.record.created_at.unix_millis())),
                Param::Integer(Some(key.not_before.unix_millis())),
            ],
            must_change_one: true,
        });
    }
    if let Some(row) = &batch.audit {
        extras.push(audit_extra(row));
    }
    extras
}

/// An audit row as a statement of a bulk write's transaction.
pub(crate) fn audit_extra(row: &AuditEventRow) -> Extra {
    Extra {
        sql: crate::audit::INSERT_AUDIT_EVENT,
        params: vec![
            text(row.merchant_id.as_str()),
            text(row.id.as_str()),
            Param::Integer(Some(row.occurred_at.unix_millis())),
            text(&row.actor_type),
            Param::Text(row.actor_id.clone()),
            Param::Text(row.request_id.clone()),
            Param::Text(row.client_address.clone()),
            text(&row.method),
            text(&row.path),
            text(&row.operation),
            text(&row.objects),
            text(&row.outcome),
            Param::Integer(Some(row.status)),
            Param::Text(row.reason.clone()),
        ],
        must_change_one: true,
    }
}

/// The statement that drops a file's content, for [`COLLECT_FILE`]'s parameters.
pub(crate) fn collect_extra(merchant: &MerchantId, batch_id: &str, sha256: &[u8], at: Timestamp) -> Extra {
    Extra {
        sql: COLLECT_FILE,
        params: vec![
            Param::Integer(Some(at.unix_millis())),
            text(merchant.as_str()),
            text(batch_id),
            Param::Bytes(Some(sha256.to_vec())),
        ],
        must_change_one: true,
    }
}

pub(crate) fn card_batch_row(row: &impl Columns) -> StoreResult<CardBatchRow> {
    let file = match row.optional_bytes("sha256")? {
        Some(sha256) => Some(StockFileState {
            sha256,
            size: row.integer("size")?,
            collected_at: row
                .optional_integer("collected_at")?
                .map(Timestamp::from_unix_millis),
        }),
        None => None,
    };
    Ok(CardBatchRow {
        batch: stock_batch(row)?,
        file,
    })
}

/// Runs [`Extra`]s on a backend's connection (`$conn`: an expression giving `&mut` to it):
/// the statements are shared, the connection types are not.
macro_rules! run_extras {
    ($conn:expr, $extras:expr) => {{
        let mut result: $crate::StoreResult<()> = Ok(());
        for extra in $extras {
            let mut query = sqlx::query(extra.sql);
            for param in extra.params {
                query = match param {
                    $crate::card_batches::Param::Text(value) => query.bind(value),
                    $crate::card_batches::Param::Integer(value) => query.bind(value),
                    $crate::card_batches::Param::Bytes(value) => query.bind(value),
                };
            }
            match query.execute($conn).await {
                Ok(done) if extra.must_change_one && done.rows_affected() != 1 => {
                    result = Err($crate::StoreError::Conflict("card batch"));
                    break;
                }
                Ok(_) => {}
                Err(error) => {
                    result = Err($crate::StoreError::from_write(error));
                    break;
                }
            }
        }
        result
    }};
}
pub(crate) use run_extras;

/// The reads of card batches on a backend's pool (`$pool`: its type), as `batches`, `batch` and
/// `file` in the module that invokes it: the statements and decoding are shared, the pool
/// types are not.
macro_rules! card_batch_reads {
    ($pool:ty) => {
        /// The merchant's batches, newest first, with their files' states.
        pub(super) async fn batches(
            pool: &$pool,
            merchant: &giftd_domain::MerchantId,
            page: &$crate::Page,
        ) -> $crate::StoreResult<Vec<$crate::CardBatchRow>> {
            let rows = sqlx::query($crate::card_batches::BATCHES_OF_MERCHANT)
                .bind(merchant.as_str())
                .bind(page.cursor.as_deref())
                .bind(i64::from(page.limit))
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map($crate::card_batches::card_batch_row)
                .collect()
        }

        pub(super) async fn batch(
            pool: &$pool,
            merchant: &giftd_domain::MerchantId,
            id: &str,
        ) -> $crate::StoreResult<Option<$crate::CardBatchRow>> {
            let row = sqlx::query($crate::card_batches::BATCH_BY_ID)
                .bind(merchant.as_str())
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.as_ref()
                .map($crate::card_batches::card_batch_row)
                .transpose()
        }

        /// A batch's encrypted file: `None` without one, `Some(None)` once collected.
        pub(super) async fn file(
            pool: &$pool,
            merchant: &giftd_domain::MerchantId,
            id: &str,
        ) -> $crate::StoreResult<Option<Option<Vec<u8>>>> {
            use $crate::rows::Columns as _;
            let row = sqlx::query($crate::card_batches::FILE_OF_BATCH)
                .bind(merchant.as_str())
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.as_ref()
                .map(|row| row.optional_bytes("ciphertext"))
                .transpose()
        }
    };
}
pub(crate) use card_batch_reads;
