//! Lookups that both the read pool and a job's transaction make, run on either executor (the
//! SQL is shared with SQLite, `sql.rs`).

use giftd_domain::{HoldId, MerchantId, Program, ProgramId, TransactionId};
use sqlx::{AssertSqlSafe, PgExecutor};

use crate::rows;
use crate::sql;
use crate::{HoldRecord, StoreResult, TransactionRecord};

pub(crate) async fn program<'e>(
    executor: impl PgExecutor<'e>,
    merchant: &MerchantId,
    id: &ProgramId,
) -> StoreResult<Option<Program>> {
    let sql = sql::program_by_id();
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
    let sql = sql::hold_by_id();
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
    let sql = sql::transaction_by_id();
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(merchant.as_str())
        .bind(id.as_str())
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(rows::transaction).transpose()
}
