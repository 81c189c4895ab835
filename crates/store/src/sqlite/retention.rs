//! Retention on SQLite: the writer's deletes of rows past their time (idempotency records,
//! webhook events with their deliveries and attempts, spent security-code attempts), a bounded
//! batch per call so that a write transaction stays short. No decisions here: the service says
//! what is old.

use giftd_domain::Timestamp;
use rusqlite::{Connection, params};

use super::tx::{execute, query_all};
use crate::StoreResult;

pub(crate) fn prune_idempotency_records(
    conn: &Connection,
    before: Timestamp,
    limit: u32,
) -> StoreResult<u64> {
    let deleted = execute(
        conn,
        "DELETE FROM idempotency_records WHERE rowid IN \
         (SELECT rowid FROM idempotency_records WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)",
        params![before.unix_millis(), limit],
    )?;
    Ok(deleted as u64)
}

pub(crate) fn prune_events(conn: &Connection, before: Timestamp, limit: u32) -> StoreResult<u64> {
    let ids: Vec<String> = query_all(
        conn,
        "SELECT id FROM events v WHERE created_at < ?1 AND NOT EXISTS \
         (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = v.id AND d.state = 'pending') \
         ORDER BY created_at LIMIT ?2",
        params![before.unix_millis(), limit],
        |row| Ok(row.get(0)?),
    )?;
    for id in &ids {
        execute(
            conn,
            "DELETE FROM webhook_attempts WHERE delivery_id IN \
             (SELECT id FROM webhook_deliveries WHERE event_id = ?1)",
            params![id],
        )?;
        execute(
            conn,
            "DELETE FROM webhook_deliveries WHERE event_id = ?1",
            params![id],
        )?;
        execute(conn, "DELETE FROM events WHERE id = ?1", params![id])?;
    }
    Ok(ids.len() as u64)
}

pub(crate) fn prune_code_attempts(
    conn: &Connection,
    window_before: Timestamp,
    unlocked_at: Timestamp,
    limit: u32,
) -> StoreResult<u64> {
    let deleted = execute(
        conn,
        "DELETE FROM code_attempts WHERE rowid IN (SELECT rowid FROM code_attempts \
         WHERE (window_started_at IS NULL OR window_started_at < ?1) \
         AND (locked_until IS NULL OR locked_until <= ?2) LIMIT ?3)",
        params![window_before.unix_millis(), unlocked_at.unix_millis(), limit],
    )?;
    Ok(deleted as u64)
}
