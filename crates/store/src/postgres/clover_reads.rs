//! The Clover facade's reads on PostgreSQL's pool: the statements of `crate::clover_reads`,
//! bound and run here, their rows decoded there.

use giftd_domain::{MerchantId, TransactionId};
use sqlx::{AssertSqlSafe, PgPool};

use crate::StoreResult;
use crate::clover_reads::{self, CloverLedgerRow, CloverListQuery, CloverObject};

pub(crate) async fn object(
    reads: &PgPool,
    merchant: &MerchantId,
    object: CloverObject,
    id: &TransactionId,
) -> StoreResult<Option<CloverLedgerRow>> {
    let sql = clover_reads::object_by_id(object);
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(merchant.as_str())
        .bind(id.as_str())
        .fetch_optional(reads)
        .await?;
    row.as_ref().map(clover_reads::row).transpose()
}

pub(crate) async fn page(
    reads: &PgPool,
    merchant: &MerchantId,
    object: CloverObject,
    query: &CloverListQuery,
) -> StoreResult<Vec<CloverLedgerRow>> {
    let sql = clover_reads::page(object, query.direction, query.charge.is_some());
    let (cursor_created_at, cursor_seq) = clover_reads::cursor_parameters(query.direction);
    let mut statement = sqlx::query(AssertSqlSafe(sql))
        .bind(merchant.as_str())
        .bind(query.created_from)
        .bind(query.created_until)
        .bind(cursor_created_at)
        .bind(cursor_seq);
    if let Some(charge) = &query.charge {
        statement = statement.bind(charge.as_str());
    }
    let rows = statement.bind(i64::from(query.limit)).fetch_all(reads).await?;
    rows.iter().map(clover_reads::row).collect()
}
