//! Webhooks on SQLite: the SQL behind the webhook methods of [`crate::WriteTx`] and
//! [`crate::Store`] (endpoints, the event outbox, deliveries and their attempts): the writer's
//! side over its rusqlite connection, the reads over sqlx's pool, rows decoded once for both.
//! No decisions here.

use giftd_domain::{MerchantId, Timestamp};
use rusqlite::{Connection, params};
use sqlx::SqliteExecutor;

use super::tx::{execute, query_all};
use crate::webhooks::{attempt_row, claimed_delivery, delivery_row, endpoint_row, event_row};

use crate::sql::{self, ENDPOINT_COLUMNS, EVENT_COLUMNS};
use crate::{
    AttemptRow, ClaimedDelivery, DeliveryRow, DeliveryUpdate, EventRow, Page, StoreResult, WebhookEndpointRow,
};

// ---- the writer's side ----

pub(crate) fn insert_endpoint(conn: &Connection, row: &WebhookEndpointRow) -> StoreResult<()> {
    execute(
        conn,
        sql::INSERT_WEBHOOK_ENDPOINT,
        params![
            row.id.as_str(),
            row.merchant_id.as_str(),
            row.url,
            row.secret,
            row.event_types,
            row.low_balance_threshold,
            row.enabled,
            row.created_at.unix_millis(),
            row.updated_at.unix_millis(),
        ],
    )?;
    Ok(())
}

pub(crate) fn disable_endpoint(
    conn: &Connection,
    merchant: &MerchantId,
    id: &str,
    now: Timestamp,
) -> StoreResult<bool> {
    let done = execute(
        conn,
        sql::SET_WEBHOOK_ENDPOINT_ENABLED,
        params![false, now.unix_millis(), merchant.as_str(), id, true],
    )?;
    if done != 1 {
        return Ok(false);
    }
    // Nothing will be sent to a disabled endpoint: say so rather than leave them pending.
    execute(
        conn,
        sql::FAIL_DELIVERIES_OF_DISABLED_ENDPOINT,
        params![now.unix_millis(), id],
    )?;
    Ok(true)
}

pub(crate) fn enabled_endpoints(
    conn: &Connection,
    merchant: &MerchantId,
) -> StoreResult<Vec<WebhookEndpointRow>> {
    let sql = sql::enabled_webhook_endpoints();
    query_all(conn, &sql, params![merchant.as_str(), true], |row| {
        endpoint_row(row)
    })
}

pub(crate) fn insert_event(conn: &Connection, event: &EventRow) -> StoreResult<()> {
    execute(
        conn,
        sql::INSERT_EVENT,
        params![
            event.id.as_str(),
            event.merchant_id.as_str(),
            event.event_type,
            event.payload,
            event.created_at.unix_millis(),
        ],
    )?;
    Ok(())
}

pub(crate) fn insert_delivery(conn: &Connection, delivery: &DeliveryRow) -> StoreResult<()> {
    execute(
        conn,
        sql::INSERT_WEBHOOK_DELIVERY,
        params![
            delivery.id.as_str(),
            delivery.merchant_id.as_str(),
            delivery.event_id.as_str(),
            delivery.endpoint_id.as_str(),
            delivery.state,
            delivery.attempts,
            delivery.next_attempt_at.unix_millis(),
            delivery.last_status,
            delivery.last_error,
            delivery.created_at.unix_millis(),
            delivery.updated_at.unix_millis(),
        ],
    )?;
    Ok(())
}

pub(crate) fn claim_deliveries(
    conn: &Connection,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
    skip_endpoints: &[String],
) -> StoreResult<Vec<ClaimedDelivery>> {
    // The single writer runs this: no other claim can interleave between the read and the
    // updates that move the claimed rows out of reach.
    // One placeholder per endpoint to skip, after the three fixed ones (SQLite takes `IN ()`).
    let skip_marks: Vec<String> = (0..skip_endpoints.len()).map(|i| format!("?{}", i + 4)).collect();
    let sql = format!(
        "SELECT d.id AS delivery_id, d.merchant_id, d.event_id, v.type, v.payload, d.endpoint_id, e.url, \
         e.secret, d.attempts FROM webhook_deliveries d \
         JOIN webhook_endpoints e ON e.id = d.endpoint_id JOIN events v ON v.id = d.event_id \
         WHERE d.state = 'pending' AND d.next_attempt_at <= ?1 AND e.enabled = ?2 \
         AND d.endpoint_id NOT IN ({}) ORDER BY d.next_attempt_at, d.seq LIMIT ?3",
        skip_marks.join(", ")
    );
    let (now_millis, limit) = (now.unix_millis(), i64::from(limit));
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&now_millis, &true, &limit];
    values.extend(
        skip_endpoints
            .iter()
            .map(|endpoint| endpoint as &dyn rusqlite::ToSql),
    );
    let claimed = query_all(conn, &sql, values.as_slice(), |row| claimed_delivery(row))?;
    for delivery in &claimed {
        execute(
            conn,
            sql::POSTPONE_WEBHOOK_DELIVERY,
            params![
                lease_until.unix_millis(),
                now.unix_millis(),
                delivery.delivery_id.as_str()
            ],
        )?;
    }
    Ok(claimed)
}

pub(crate) fn record_attempt(
    conn: &Connection,
    attempt: &AttemptRow,
    update: &DeliveryUpdate,
) -> StoreResult<bool> {
    execute(
        conn,
        sql::INSERT_WEBHOOK_ATTEMPT,
        params![
            attempt.delivery_id.as_str(),
            attempt.attempted_at.unix_millis(),
            attempt.status,
            attempt.error,
            attempt.duration_ms,
        ],
    )?;
    let done = execute(
        conn,
        sql::RECORD_WEBHOOK_DELIVERY_ATTEMPT,
        params![
            update.state,
            update.next_attempt_at.unix_millis(),
            update.last_status,
            update.last_error,
            update.now.unix_millis(),
            update.delivery_id.as_str(),
            update.claimed_attempts,
        ],
    )?;
    Ok(done == 1)
}

pub(crate) fn retry_delivery(
    conn: &Connection,
    merchant: &MerchantId,
    id: &str,
    now: Timestamp,
) -> StoreResult<bool> {
    let done = execute(
        conn,
        sql::RETRY_WEBHOOK_DELIVERY,
        params![now.unix_millis(), merchant.as_str(), id, true],
    )?;
    Ok(done == 1)
}

// ---- reads ----

pub(crate) async fn endpoints<'e>(
    executor: impl SqliteExecutor<'e>,
    merchant: &MerchantId,
    page: &Page,
) -> StoreResult<Vec<WebhookEndpointRow>> {
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE merchant_id = ?1 \
         AND (?2 IS NULL OR seq < (SELECT seq FROM webhook_endpoints WHERE id = ?2 AND merchant_id = ?1)) \
         ORDER BY seq DESC LIMIT ?3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant.as_str())
        .bind(page.cursor.as_deref())
        .bind(i64::from(page.limit))
        .fetch_all(executor)
        .await?;
    rows.iter().map(endpoint_row).collect()
}

pub(crate) async fn endpoint<'e>(
    executor: impl SqliteExecutor<'e>,
    merchant: &MerchantId,
    id: &str,
) -> StoreResult<Option<WebhookEndpointRow>> {
    let sql = sql::webhook_endpoint_by_id();
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant.as_str())
        .bind(id)
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(endpoint_row).transpose()
}

pub(crate) async fn events<'e>(
    executor: impl SqliteExecutor<'e>,
    merchant: &MerchantId,
    event_type: Option<&str>,
    page: &Page,
) -> StoreResult<Vec<EventRow>> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE merchant_id = ?1 AND (?2 IS NULL OR type = ?2) \
         AND (?3 IS NULL OR seq < (SELECT seq FROM events WHERE id = ?3 AND merchant_id = ?1)) \
         ORDER BY seq DESC LIMIT ?4"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant.as_str())
        .bind(event_type)
        .bind(page.cursor.as_deref())
        .bind(i64::from(page.limit))
        .fetch_all(executor)
        .await?;
    rows.iter().map(event_row).collect()
}

pub(crate) async fn event<'e>(
    executor: impl SqliteExecutor<'e>,
    merchant: &MerchantId,
    id: &str,
) -> StoreResult<Option<EventRow>> {
    let sql = sql::event_by_id();
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant.as_str())
        .bind(id)
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(event_row).transpose()
}

pub(crate) async fn deliveries<'e>(
    executor: impl SqliteExecutor<'e> + Copy,
    merchant: &MerchantId,
    event_id: &str,
) -> StoreResult<(Vec<DeliveryRow>, Vec<AttemptRow>)> {
    let sql = sql::deliveries_of_event();
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant.as_str())
        .bind(event_id)
        .fetch_all(executor)
        .await?;
    let deliveries = rows.iter().map(delivery_row).collect::<StoreResult<Vec<_>>>()?;
    let rows = sqlx::query(sql::WEBHOOK_ATTEMPTS_OF_EVENT)
        .bind(merchant.as_str())
        .bind(event_id)
        .fetch_all(executor)
        .await?;
    let attempts = rows.iter().map(attempt_row).collect::<StoreResult<Vec<_>>>()?;
    Ok((deliveries, attempts))
}
