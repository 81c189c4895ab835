//! Lookups that both the read pool and a job's transaction make, written once and run on
//! either executor.

use giftd_domain::{HoldId, MerchantId, Program, ProgramId, TransactionId};
use sqlx::{AssertSqlSafe, PgExecutor};

use crate::rows;
use crate::{HoldRecord, StoreResult, TransactionRecord};

pub(crate) async fn program<'e>(
    executor: impl PgExecutor<'e>,
    merchant: &MerchantId,
    id: &ProgramId,
) -> StoreResult<Option<Program>> {
    let sql = format!(
        "SELECT {} FROM programs WHERE merchant_id = $1 AND id = $2",
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
    executor: impl PgExecutor<'e>,
    merchant: &MerchantId,
    id: &HoldId,
) -> StoreResult<Option<HoldRecord>> {
    let sql = format!(
        "SELECT {} FROM holds WHERE merchant_id = $1 AND id = $2",
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
    executor: impl PgExecutor<'e>,
    merchant: &MerchantId,
    id: &TransactionId,
) -> StoreResult<Option<TransactionRecord>> {
    let sql = format!(
        "SELECT {} FROM transactions WHERE merchant_id = $1 AND id = $2",
        rows::TRANSACTION_COLUMNS
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(merchant.as_str())
        .bind(id.as_str())
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(rows::transaction).transpose()
}
