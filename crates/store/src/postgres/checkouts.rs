//! Checkouts and the simulated processor on PostgreSQL: the SQL behind the checkout methods of
//! [`crate::WriteTx`] and [`crate::Store`]. A write job locks the checkout row (`FOR UPDATE`)
//! before changing it, and writes only over the version it read, so drivers in several
//! processes never both apply a step. No decisions here.

use giftd_domain::{CheckoutId, MerchantId, Timestamp};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgExecutor, Row};

use crate::sql;
use crate::{CheckoutRow, StoreError, StoreResult};

const COLUMNS: &str =
    "id, merchant_id, state::text AS state, version, open, lease_until, created_at, updated_at";

fn checkout_row(row: &PgRow) -> StoreResult<CheckoutRow> {
    let id: String = row.try_get("id")?;
    Ok(CheckoutRow {
        id: CheckoutId::parse(&id).ok_or_else(|| StoreError::Corrupt(format!("checkout id {id}")))?,
        merchant_id: MerchantId::new(row.try_get::<String, _>("merchant_id")?),
        state: row.try_get("state")?,
        version: row.try_get("version")?,
        open: row.try_get("open")?,
        lease_until: Timestamp::from_unix_millis(row.try_get("lease_until")?),
        created_at: Timestamp::from_unix_millis(row.try_get("created_at")?),
        updated_at: Timestamp::from_unix_millis(row.try_get("updated_at")?),
    })
}

/// With `lock`, the row stays locked until the transaction ends.
pub(crate) async fn get<'e>(
    executor: impl PgExecutor<'e>,
    merchant: &MerchantId,
    id: &CheckoutId,
    lock: bool,
) -> StoreResult<Option<CheckoutRow>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {COLUMNS} FROM checkouts WHERE merchant_id = $1 AND id = $2{lock}");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant.as_str())
        .bind(id.as_str())
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(checkout_row).transpose()
}

/// A merchant's checkouts, newest first (ids are UUIDv7: they sort by creation), after `before`.
pub(crate) async fn page<'e>(
    executor: impl PgExecutor<'e>,
    merchant: &MerchantId,
    before: Option<&CheckoutId>,
    limit: u32,
) -> StoreResult<Vec<CheckoutRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM checkouts WHERE merchant_id = $1 AND ($2::text IS NULL OR id < $2) \
         ORDER BY id DESC LIMIT $3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant.as_str())
        .bind(before.map(CheckoutId::as_str))
        .bind(i64::from(limit))
        .fetch_all(executor)
        .await?;
    rows.iter().map(checkout_row).collect()
}

/// The merchant's newest checkout with a refund whose id starts with `prefix`.
pub(crate) async fn with_refund<'e>(
    executor: impl PgExecutor<'e>,
    merchant: &MerchantId,
    prefix: &str,
) -> StoreResult<Option<CheckoutRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM checkouts WHERE merchant_id = $1 AND EXISTS (SELECT 1 FROM \
         jsonb_array_elements(checkouts.state -> 'refunds') AS r WHERE r ->> 'id' LIKE $2 ESCAPE '\\') \
         ORDER BY id DESC LIMIT 1"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant.as_str())
        .bind(sql::like_prefix(prefix))
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(checkout_row).transpose()
}

pub(crate) async fn open<'e>(
    executor: impl PgExecutor<'e>,
    now: Timestamp,
    limit: u32,
) -> StoreResult<Vec<(MerchantId, CheckoutId)>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM checkouts WHERE open AND lease_until <= $1 ORDER BY lease_until LIMIT $2"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now.unix_millis())
        .bind(i64::from(limit))
        .fetch_all(executor)
        .await?;
    rows.iter()
        .map(|row| checkout_row(row).map(|c| (c.merchant_id, c.id)))
        .collect()
}

pub(crate) async fn insert(conn: &mut PgConnection, row: &CheckoutRow) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO checkouts (id, merchant_id, state, version, open, lease_until, created_at, updated_at) \
         VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8)",
    )
    .bind(row.id.as_str())
    .bind(row.merchant_id.as_str())
    .bind(&row.state)
    .bind(row.version)
    .bind(row.open)
    .bind(row.lease_until.unix_millis())
    .bind(row.created_at.unix_millis())
    .bind(row.updated_at.unix_millis())
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

pub(crate) async fn update(conn: &mut PgConnection, row: &CheckoutRow) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE checkouts SET state = $1::jsonb, version = $2, open = $3, lease_until = $4, updated_at = $5 \
         WHERE merchant_id = $6 AND id = $7 AND version = $8",
    )
    .bind(&row.state)
    .bind(row.version)
    .bind(row.open)
    .bind(row.lease_until.unix_millis())
    .bind(row.updated_at.unix_millis())
    .bind(row.merchant_id.as_str())
    .bind(row.id.as_str())
    .bind(row.version - 1)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict("checkout"));
    }
    Ok(())
}

pub(crate) async fn seal_idempotency_record(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    scope: &str,
    key: &str,
    expected: u16,
    status: u16,
    body: &[u8],
) -> StoreResult<bool> {
    let done = sqlx::query(sql::SEAL_IDEMPOTENCY_RECORD)
        .bind(i64::from(status))
        .bind(body)
        .bind(merchant.as_str())
        .bind(scope)
        .bind(key)
        .bind(i64::from(expected))
        .execute(conn)
        .await
        .map_err(StoreError::from_write)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn simulated_payment(
    conn: &mut PgConnection,
    reference: &str,
) -> StoreResult<Option<String>> {
    let row =
        sqlx::query("SELECT state::text AS state FROM simulated_payments WHERE reference = $1 FOR UPDATE")
            .bind(reference)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|row| row.try_get("state")).transpose()?)
}

pub(crate) async fn put_simulated_payment(
    conn: &mut PgConnection,
    reference: &str,
    state: &str,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO simulated_payments (reference, state, created_at, updated_at) VALUES ($1, $2::jsonb, $3, $4) \
         ON CONFLICT (reference) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
    )
    .bind(reference)
    .bind(state)
    .bind(now.unix_millis())
    .bind(now.unix_millis())
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}
