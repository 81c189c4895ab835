//! Retention on PostgreSQL: deletes of rows past their time (idempotency records, webhook
//! events with their deliveries and attempts, spent security-code attempts), a bounded batch
//! per call so that a write transaction stays short. No decisions here: the service says what
//! is old.

use giftd_domain::Timestamp;
use sqlx::PgConnection;

use crate::{StoreError, StoreResult};

pub(crate) async fn prune_idempotency_records(
    conn: &mut PgConnection,
    before: Timestamp,
    limit: u32,
) -> StoreResult<u64> {
    let done = sqlx::query(
        "DELETE FROM idempotency_records WHERE ctid = ANY(ARRAY( \
         SELECT ctid FROM idempotency_records WHERE created_at < $1 ORDER BY created_at LIMIT $2 \
         FOR UPDATE SKIP LOCKED))",
    )
    .bind(before.unix_millis())
    .bind(i64::from(limit))
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(done.rows_affected())
}

pub(crate) async fn prune_events(conn: &mut PgConnection, before: Timestamp, limit: u32) -> StoreResult<u64> {
    // Events no dispatcher is working on (none of their deliveries pending), oldest first; rows
    // another transaction holds are left for the next round.
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM events v WHERE created_at < $1 AND NOT EXISTS \
         (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = v.id AND d.state = 'pending') \
         ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(before.unix_millis())
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::from_write)?;
    if ids.is_empty() {
        return Ok(0);
    }
    // A delivery made pending meanwhile (a retry through the API) is not deleted, nor then its
    // event: the delete re-checks the state of a row another transaction changed.
    sqlx::query(
        "WITH gone AS (DELETE FROM webhook_deliveries WHERE event_id = ANY($1) AND state <> 'pending' \
         RETURNING id) DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM gone)",
    )
    .bind(&ids)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_write)?;
    let done = sqlx::query(
        "DELETE FROM events v WHERE id = ANY($1) \
         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = v.id)",
    )
    .bind(&ids)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(done.rows_affected())
}

pub(crate) async fn prune_code_attempts(
    conn: &mut PgConnection,
    window_before: Timestamp,
    unlocked_at: Timestamp,
    limit: u32,
) -> StoreResult<u64> {
    // A lookup holds its number's row (FOR UPDATE) while it runs: such rows are skipped.
    let done = sqlx::query(
        "DELETE FROM code_attempts WHERE ctid = ANY(ARRAY(SELECT ctid FROM code_attempts \
         WHERE (window_started_at IS NULL OR window_started_at < $1) \
         AND (locked_until IS NULL OR locked_until <= $2) LIMIT $3 FOR UPDATE SKIP LOCKED))",
    )
    .bind(window_before.unix_millis())
    .bind(unlocked_at.unix_millis())
    .bind(i64::from(limit))
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(done.rows_affected())
}
