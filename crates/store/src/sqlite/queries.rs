//! Lookups that both the read pool and the writer's transaction make, written once and run on
//! either executor.

use giftd_domain::{HoldId, MerchantId, Program, ProgramId, TransactionId};
use sqlx::{AssertSqlSafe, SqliteExecutor};

use crate::rows;
use crate::{HoldRecord, StoreResult, TransactionRecord};

pub(crate) async fn program<'e>(
    executor: impl SqliteExecutor<'e>,
    merchant: &MerchantId,
    id: &ProgramId,
) -> StoreResult<Option<Program>> {
    let sql = format!(
        "SELECT {} FROM programs WHERE merchant_id = ? AND id = ?",
        rows::PROGRAM_COLUMNS
    );
    let row = sqlx::query(AssertSqlSafe(sql))
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
    let sql = format!(
        "SELECT {} FROM holds WHERE merchant_id = ? AND id = ?",
        rows::HOLD_COLUMNS
    );
    let row = sqlx::query(AssertSqlSafe(sql))
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
    let sql = format!(
        "SELECT {} FROM transactions WHERE merchant_id = ? AND id = ?",
        rows::TRANSACTION_COLUMNS
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(merchant.as_str())
        .bind(id.as_str())
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(rows::transaction).transpose()
}
