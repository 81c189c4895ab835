//! Checkouts and the simulated processor on SQLite: the SQL behind the checkout methods of
//! [`crate::WriteTx`] and [`crate::Store`]. The single writer serializes every change; the
//! version guard keeps the code path the same as PostgreSQL's. No decisions here.

use giftd_domain::{CheckoutId, MerchantId, Timestamp};
use rusqlite::{Connection, params};
use sqlx::SqliteExecutor;

use super::tx::{execute, query_optional};
use crate::rows::Columns;
use crate::sql;
use crate::{CheckoutRow, StoreError, StoreResult};

const COLUMNS: &str = "id, merchant_id, state, version, open, lease_until, created_at, updated_at";

fn get_sql() -> String {
    format!("SELECT {COLUMNS} FROM checkouts WHERE merchant_id = ? AND id = ?")
}

fn checkout_row(row: &impl Columns) -> StoreResult<CheckoutRow> {
    let id = row.text("id")?;
    Ok(CheckoutRow {
        id: CheckoutId::parse(&id).ok_or_else(|| StoreError::Corrupt(format!("checkout id {id}")))?,
        merchant_id: MerchantId::new(row.text("merchant_id")?),
        state: row.text("state")?,
        version: row.integer("version")?,
        open: row.boolean("open")?,
        lease_until: Timestamp::from_unix_millis(row.integer("lease_until")?),
        created_at: Timestamp::from_unix_millis(row.integer("created_at")?),
        updated_at: Timestamp::from_unix_millis(row.integer("updated_at")?),
    })
}

pub(crate) async fn get<'e>(
    executor: impl SqliteExecutor<'e>,
    merchant: &MerchantId,
    id: &CheckoutId,
) -> StoreResult<Option<CheckoutRow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(get_sql()))
        .bind(merchant.as_str())
        .bind(id.as_str())
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(checkout_row).transpose()
}

/// A merchant's checkouts, newest first (ids are UUIDv7: they sort by creation), after `before`.
pub(crate) async fn page<'e>(
    executor: impl SqliteExecutor<'e>,
    merchant: &MerchantId,
    before: Option<&CheckoutId>,
    limit: u32,
) -> StoreResult<Vec<CheckoutRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM checkouts WHERE merchant_id = ? AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?"
    );
    let before = before.map(CheckoutId::as_str);
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant.as_str())
        .bind(before)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(executor)
        .await?;
    rows.iter().map(checkout_row).collect()
}

/// The merchant's newest checkout with a refund whose id starts with `prefix`.
pub(crate) async fn with_refund<'e>(
    executor: impl SqliteExecutor<'e>,
    merchant: &MerchantId,
    prefix: &str,
) -> StoreResult<Option<CheckoutRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM checkouts WHERE merchant_id = ? AND EXISTS (SELECT 1 FROM \
         json_each(checkouts.state, '$.refunds') WHERE json_extract(value, '$.id') LIKE ? ESCAPE '\\') \
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
    executor: impl SqliteExecutor<'e>,
    now: Timestamp,
    limit: u32,
) -> StoreResult<Vec<(MerchantId, CheckoutId)>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM checkouts WHERE open = 1 AND lease_until <= ? ORDER BY lease_until LIMIT ?"
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

/// The checkout, in the writer's transaction (the single writer is its lock).
pub(crate) fn get_for_update(
    conn: &Connection,
    merchant: &MerchantId,
    id: &CheckoutId,
) -> StoreResult<Option<CheckoutRow>> {
    query_optional(conn, &get_sql(), params![merchant.as_str(), id.as_str()], |row| {
        checkout_row(row)
    })
}

pub(crate) fn insert(conn: &Connection, row: &CheckoutRow) -> StoreResult<()> {
    execute(
        conn,
        "INSERT INTO checkouts (id, merchant_id, state, version, open, lease_until, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            row.id.as_str(),
            row.merchant_id.as_str(),
            row.state,
            row.version,
            row.open,
            row.lease_until.unix_millis(),
            row.created_at.unix_millis(),
            row.updated_at.unix_millis(),
        ],
    )?;
    Ok(())
}

pub(crate) fn update(conn: &Connection, row: &CheckoutRow) -> StoreResult<()> {
    let done = execute(
        conn,
        "UPDATE checkouts SET state = ?, version = ?, open = ?, lease_until = ?, updated_at = ? \
         WHERE merchant_id = ? AND id = ? AND version = ?",
        params![
            row.state,
            row.version,
            row.open,
            row.lease_until.unix_millis(),
            row.updated_at.unix_millis(),
            row.merchant_id.as_str(),
            row.id.as_str(),
            row.version - 1,
        ],
    )?;
    if done != 1 {
        return Err(StoreError::Conflict("checkout"));
    }
    Ok(())
}

pub(crate) fn seal_idempotency_record(
    conn: &Connection,
    merchant: &MerchantId,
    scope: &str,
    key: &str,
    expected: u16,
    status: u16,
    body: &[u8],
) -> StoreResult<bool> {
    let done = execute(
        conn,
        sql::SEAL_IDEMPOTENCY_RECORD,
        params![
            i64::from(status),
            body,
            merchant.as_str(),
            scope,
            key,
            i64::from(expected),
        ],
    )?;
    Ok(done == 1)
}

pub(crate) fn simulated_payment(conn: &Connection, reference: &str) -> StoreResult<Option<String>> {
    query_optional(
        conn,
        "SELECT state FROM simulated_payments WHERE reference = ?",
        params![reference],
        |row| Ok(row.get("state")?),
    )
}

pub(crate) fn put_simulated_payment(
    conn: &Connection,
    reference: &str,
    state: &str,
    now: Timestamp,
) -> StoreResult<()> {
    execute(
        conn,
        "INSERT INTO simulated_payments (reference, state, created_at, updated_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (reference) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        params![reference, state, now.unix_millis(), now.unix_millis()],
    )?;
    Ok(())
}
