//! Lookups that both the read pool and the writer's transaction make: the SQL is written once,
//! and run through sqlx on the read pool or through rusqlite on the writer's connection.

use giftd_domain::{HoldId, MerchantId, Program, ProgramId, TransactionId};
use sqlx::{AssertSqlSafe, SqliteExecutor};

use crate::rows;
use crate::{HoldRecord, StoreResult, TransactionRecord};

/// A program by merchant and id.
pub(crate) fn program_sql() -> String {
    format!(
        "SELECT {} FROM programs WHERE merchant_id = ? AND id = ?",
        rows::PROGRAM_COLUMNS
    )
}

/// A hold by merchant and id.
pub(crate) fn hold_sql() -> String {
    format!(
        "SELECT {} FROM holds WHERE merchant_id = ? AND id = ?",
        rows::HOLD_COLUMNS
    )
}

/// A transaction by merchant and id.
pub(crate) fn transaction_sql() -> String {
    format!(
        "SELECT {} FROM transactions WHERE merchant_id = ? AND id = ?",
        rows::TRANSACTION_COLUMNS
    )
}

pub(crate) async fn program<'e>(
    executor: impl SqliteExecutor<'e>,
    merchant: &MerchantId,
    id: &ProgramId,
) -> StoreResult<Option<Program>> {
    let row = sqlx::query(AssertSqlSafe(program_sql()))
        .bind(merchant.as_str())
        .bind(id.as_str())
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(rows::program).transpose()
}

pub(crate) async fn hold<'e>(
    executor: impl SqliteExecutor<'e>,
    merchant: &MerchantId,
    id: &HoldId,
) -> StoreResult<Option<HoldRecord>> {
    let row = sqlx::query(AssertSqlSafe(hold_sql()))
        .bind(merchant.as_str())
        .bind(id.as_str())
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(rows::hold).transpose()
}

pub(crate) async fn transaction<'e>(
    executor: impl SqliteExecutor<'e>,
    merchant: &MerchantId,
    id: &TransactionId,
) -> StoreResult<Option<TransactionRecord>> {
    let row = sqlx::query(AssertSqlSafe(transaction_sql()))
        .bind(merchant.as_str())
        .bind(id.as_str())
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(rows::transaction).transpose()
}
