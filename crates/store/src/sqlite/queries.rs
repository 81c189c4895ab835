//! Lookups of the read pool; the writer's transaction makes the same ones through rusqlite, with
//! the same SQL (`sql.rs`, shared with PostgreSQL too).

use giftd_domain::{HoldId, MerchantId, Program, ProgramId, TransactionId};
use sqlx::{AssertSqlSafe, SqliteExecutor};

use crate::rows;
use crate::sql;
use crate::{HoldRecord, StoreResult, TransactionRecord};

pub(crate) async fn program<'e>(
    executor: impl SqliteExecutor<'e>,
    merchant: &MerchantId,
    id: &ProgramId,
) -> StoreResult<Option<Program>> {
    let row = sqlx::query(AssertSqlSafe(sql::program_by_id()))
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
    let row = sqlx::query(AssertSqlSafe(sql::hold_by_id()))
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
    let row = sqlx::query(AssertSqlSafe(sql::transaction_by_id()))
        .bind(merchant.as_str())
        .bind(id.as_str())
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(rows::transaction).transpose()
}
