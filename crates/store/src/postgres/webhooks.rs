//! Webhooks on PostgreSQL: the SQL behind the webhook methods of [`crate::WriteTx`] and
//! [`crate::Store`] (endpoints, the event outbox, deliveries and their attempts). Each
//! statement is a small function over one connection or executor. Claims lock with
//! `FOR UPDATE SKIP LOCKED`, so dispatchers in several processes share the work. No decisions here.

use giftd_domain::{MerchantId, Timestamp};
use sqlx::{PgConnection, PgExecutor};

use crate::sql::{self, ENDPOINT_COLUMNS, EVENT_COLUMNS};
use crate::webhooks::{attempt_row, claimed_delivery, delivery_row, endpoint_row, event_row};
use crate::{
    AttemptRow, ClaimedDelivery, DeliveryRow, DeliveryUpdate, EventRow, Page, StoreError, StoreResult,
    WebhookEndpointRow,
};

// ---- the writer's side ----

pub(crate) async fn insert_endpoint(conn: &mut PgConnection, row: &WebhookEndpointRow) -> StoreResult<()> {
    sqlx::query(sql::INSERT_WEBHOOK_ENDPOINT)
        .bind(row.id.as_str())
        .bind(row.merchant_id.as_str())
        .bind(&row.url)
        .bind(&row.secret)
        .bind(&row.event_types)
        .bind(row.low_balance_threshold)
        .bind(row.enabled)
        .bind(row.created_at.unix_millis())
        .bind(row.updated_at.unix_millis())
        .execute(conn)
        .await
        .map_err(StoreError::from_write)?;
    Ok(())
}

pub(crate) async fn disable_endpoint(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    id: &str,
    now: Timestamp,
) -> StoreResult<bool> {
    let done = sqlx::query(sql::SET_WEBHOOK_ENDPOINT_ENABLED)
        .bind(false)
        .bind(now.unix_millis())
        .bind(merchant.as_str())
        .bind(id)
        .bind(true)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from_write)?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    // Nothing will be sent to a disabled endpoint: say so rather than leave them pending.
    sqlx::query(sql::FAIL_DELIVERIES_OF_DISABLED_ENDPOINT)
        .bind(now.unix_millis())
        .bind(id)
        .execute(conn)
        .await
        .map_err(StoreError::from_write)?;
    Ok(true)
}

pub(crate) async fn enabled_endpoints(
    conn: &mut PgConnection,
    merchant: &MerchantId,
) -> StoreResult<Vec<WebhookEndpointRow>> {
    let sql = sql::enabled_webhook_endpoints();
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant.as_str())
        .bind(true)
        .fetch_all(conn)
        .await?;
    rows.iter().map(endpoint_row).collect()
}

pub(crate) async fn insert_event(conn: &mut PgConnection, event: &EventRow) -> StoreResult<()> {
    sqlx::query(sql::INSERT_EVENT)
        .bind(event.id.as_str())
        .bind(event.merchant_id.as_str())
        .bind(&event.event_type)
        .bind(&event.payload)
        .bind(event.created_at.unix_millis())
        .execute(conn)
        .await
        .map_err(StoreError::from_write)?;
    Ok(())
}

pub(crate) async fn insert_delivery(conn: &mut PgConnection, delivery: &DeliveryRow) -> StoreResult<()> {
    sqlx::query(sql::INSERT_WEBHOOK_DELIVERY)
        .bind(delivery.id.as_str())
        .bind(delivery.merchant_id.as_str())
        .bind(delivery.event_id.as_str())
        .bind(delivery.endpoint_id.as_str())
        .bind(&delivery.state)
        .bind(delivery.attempts)
        .bind(delivery.next_attempt_at.unix_millis())
        .bind(delivery.last_status)
        .bind(&delivery.last_error)
        .bind(delivery.created_at.unix_millis())
        .bind(delivery.updated_at.unix_millis())
        .execute(conn)
        .await
        .map_err(StoreError::from_write)?;
    Ok(())
}

pub(crate) async fn claim_deliveries(
    conn: &mut PgConnection,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
    skip_endpoints: &[String],
) -> StoreResult<Vec<ClaimedDelivery>> {
    // Several giftd processes claim at once: each locks the rows it reads and skips the rows
    // another has locked, so a due delivery goes to one dispatcher; the lease it then writes
    // keeps it there after this transaction commits.
    let rows = sqlx::query(
        "SELECT d.id AS delivery_id, d.merchant_id, d.event_id, v.type, v.payload, d.endpoint_id, e.url, \
         e.secret, d.attempts FROM webhook_deliveries d \
         JOIN webhook_endpoints e ON e.id = d.endpoint_id JOIN events v ON v.id = d.event_id \
         WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND e.enabled = $2 \
         AND NOT (d.endpoint_id = ANY($4)) \
         ORDER BY d.next_attempt_at, d.seq LIMIT $3 FOR UPDATE OF d SKIP LOCKED",
    )
    .bind(now.unix_millis())
    .bind(true)
    .bind(i64::from(limit))
    .bind(skip_endpoints)
    .fetch_all(&mut *conn)
    .await?;
    let claimed = rows
        .iter()
        .map(claimed_delivery)
        .collect::<StoreResult<Vec<_>>>()?;
    for delivery in &claimed {
        sqlx::query(sql::POSTPONE_WEBHOOK_DELIVERY)
            .bind(lease_until.unix_millis())
            .bind(now.unix_millis())
            .bind(delivery.delivery_id.as_str())
            .execute(&mut *conn)
            .await
            .map_err(StoreError::from_write)?;
    }
    Ok(claimed)
}

pub(crate) async fn record_attempt(
    conn: &mut PgConnection,
    attempt: &AttemptRow,
    update: &DeliveryUpdate,
) -> StoreResult<bool> {
    sqlx::query(sql::INSERT_WEBHOOK_ATTEMPT)
        .bind(attempt.delivery_id.as_str())
        .bind(attempt.attempted_at.unix_millis())
        .bind(attempt.status)
        .bind(&attempt.error)
        .bind(attempt.duration_ms)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from_write)?;
    let done = sqlx::query(sql::RECORD_WEBHOOK_DELIVERY_ATTEMPT)
        .bind(&update.state)
        .bind(update.next_attempt_at.unix_millis())
        .bind(update.last_status)
        .bind(&update.last_error)
        .bind(update.now.unix_millis())
        .bind(update.delivery_id.as_str())
        .bind(update.claimed_attempts)
        .execute(conn)
        .await
        .map_err(StoreError::from_write)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn retry_delivery(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    id: &str,
    now: Timestamp,
) -> StoreResult<bool> {
    let done = sqlx::query(sql::RETRY_WEBHOOK_DELIVERY)
        .bind(now.unix_millis())
        .bind(merchant.as_str())
        .bind(id)
        .bind(true)
        .execute(conn)
        .await
        .map_err(StoreError::from_write)?;
    Ok(done.rows_affected() == 1)
}

// ---- reads ----

pub(crate) async fn endpoints<'e>(
    executor: impl PgExecutor<'e>,
    merchant: &MerchantId,
    page: &Page,
) -> StoreResult<Vec<WebhookEndpointRow>> {
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE merchant_id = $1 \
         AND ($2::TEXT IS NULL OR seq < (SELECT seq FROM webhook_endpoints WHERE id = $2 AND merchant_id = $1)) \
         ORDER BY seq DESC LIMIT $3"
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
    executor: impl PgExecutor<'e>,
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
    executor: impl PgExecutor<'e>,
    merchant: &MerchantId,
    event_type: Option<&str>,
    page: &Page,
) -> StoreResult<Vec<EventRow>> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE merchant_id = $1 AND ($2::TEXT IS NULL OR type = $2) \
         AND ($3::TEXT IS NULL OR seq < (SELECT seq FROM events WHERE id = $3 AND merchant_id = $1)) \
         ORDER BY seq DESC LIMIT $4"
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
    executor: impl PgExecutor<'e>,
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
    executor: impl PgExecutor<'e> + Copy,
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
