//! A batch decided in memory, written by the SQLite writer (`crate::batch`): each card with one
//! guarded `UPDATE`, and the appended rows with multi-row `INSERT`s, so that a batch of
//! redemptions costs a few statements per table instead of six per redemption.
//!
//! A statement is prepared once per number of rows, and only for [`CHUNKS`] (a batch of 37 rows
//! is written as 32 + 4 + 1), so the writer's statement cache holds them all.

use giftd_domain::Channel;
use rusqlite::Connection;
use rusqlite::types::Value;

use super::tx::SqliteTx;
use crate::batch::BatchWrites;
use crate::{StoreResult, WriteTx};

/// Rows per `INSERT`, largest first. 32 rows of the widest table (14 columns) bind 448
/// variables, far below SQLite's limit (32,766).
const CHUNKS: [usize; 6] = [32, 16, 8, 4, 2, 1];

const TRANSACTIONS: &str = "INSERT INTO transactions (id, merchant_id, card_id, type, amount, currency, \
    balance_before, balance_after, reference, reverses, hold_id, entry_id, created_at, channel) VALUES ";
const POSTINGS: &str =
    "INSERT INTO postings (transaction_id, entry_id, account_kind, owner_id, currency, amount) VALUES ";
const HOLDS: &str = "INSERT INTO holds (id, merchant_id, card_id, transaction_id, amount, state, \
    expires_at, created_at) VALUES ";
const EVENTS: &str = "INSERT INTO events (id, merchant_id, type, payload, created_at) VALUES ";
const DELIVERIES: &str = "INSERT INTO webhook_deliveries (id, merchant_id, event_id, endpoint_id, state, \
    attempts, next_attempt_at, last_status, last_error, created_at, updated_at) VALUES ";

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

fn optional_text(value: Option<&str>) -> Value {
    value.map_or(Value::Null, text)
}

fn optional_integer(value: Option<i64>) -> Value {
    value.map_or(Value::Null, Value::Integer)
}

/// Inserts `rows` (each `columns` values) with as few statements as [`CHUNKS`] allow.
fn insert_rows(conn: &Connection, head: &str, columns: usize, rows: &[Vec<Value>]) -> StoreResult<()> {
    let mut rest = rows;
    while !rest.is_empty() {
        let size = CHUNKS.into_iter().find(|size| *size <= rest.len()).unwrap_or(1);
        let (chunk, after) = rest.split_at(size);
        let row = format!("({})", vec!["?"; columns].join(", "));
        let sql = format!("{head}{}", vec![row.as_str(); size].join(", "));
        let mut statement = conn.prepare_cached(&sql)?;
        statement
            .execute(rusqlite::params_from_iter(chunk.iter().flatten()))
            .map_err(super::tx::write_error)?;
        rest = after;
    }
    Ok(())
}

/// Writes the batch: cards row by row through the guarded update, the rest in chunks.
/// Idempotency records go one by one, since each may replace an expired record.
pub(super) async fn write(tx: &mut SqliteTx<'_>, writes: &BatchWrites) -> StoreResult<()> {
    for card in &writes.cards {
        tx.update_card(&card.read, &card.effect(), card.updated_at)
            .await?;
    }
    let transactions: Vec<Vec<Value>> = writes
        .transactions
        .iter()
        .map(|(t, entry)| {
            vec![
                text(t.id.as_str()),
                text(t.merchant_id.as_str()),
                text(t.card_id.as_str()),
                text(t.transaction_type.as_str()),
                Value::Integer(t.amount),
                text(&t.currency),
                Value::Integer(t.balance_before),
                Value::Integer(t.balance_after),
                optional_text(t.reference.as_deref()),
                optional_text(t.reverses.as_ref().map(|id| id.as_str())),
                optional_text(t.hold_id.as_ref().map(|id| id.as_str())),
                text(entry.as_str()),
                Value::Integer(t.created_at.unix_millis()),
                optional_text(t.channel.map(Channel::as_str)),
            ]
        })
        .collect();
    insert_rows(tx.conn, TRANSACTIONS, 14, &transactions)?;
    let postings: Vec<Vec<Value>> = writes
        .postings
        .iter()
        .map(|(transaction, entry, p)| {
            vec![
                text(transaction.as_str()),
                text(entry.as_str()),
                text(p.account.kind()),
                text(p.account.owner_id()),
                text(p.currency.code()),
                Value::Integer(p.amount),
            ]
        })
        .collect();
    insert_rows(tx.conn, POSTINGS, 6, &postings)?;
    let holds: Vec<Vec<Value>> = writes
        .holds
        .iter()
        .map(|h| {
            vec![
                text(h.hold.id.as_str()),
                text(h.merchant.as_str()),
                text(h.hold.card_id.as_str()),
                text(h.transaction_id.as_str()),
                Value::Integer(h.hold.amount),
                text(h.hold.state.as_str()),
                Value::Integer(h.hold.expires_at.unix_millis()),
                Value::Integer(h.created_at.unix_millis()),
            ]
        })
        .collect();
    insert_rows(tx.conn, HOLDS, 8, &holds)?;
    let events: Vec<Vec<Value>> = writes
        .events
        .iter()
        .map(|e| {
            vec![
                text(e.id.as_str()),
                text(e.merchant_id.as_str()),
                text(&e.event_type),
                text(&e.payload),
                Value::Integer(e.created_at.unix_millis()),
            ]
        })
        .collect();
    insert_rows(tx.conn, EVENTS, 5, &events)?;
    let deliveries: Vec<Vec<Value>> = writes
        .deliveries
        .iter()
        .map(|d| {
            vec![
                text(d.id.as_str()),
                text(d.merchant_id.as_str()),
                text(d.event_id.as_str()),
                text(d.endpoint_id.as_str()),
                text(&d.state),
                Value::Integer(d.attempts),
                Value::Integer(d.next_attempt_at.unix_millis()),
                optional_integer(d.last_status),
                optional_text(d.last_error.as_deref()),
                Value::Integer(d.created_at.unix_millis()),
                Value::Integer(d.updated_at.unix_millis()),
            ]
        })
        .collect();
    insert_rows(tx.conn, DELIVERIES, 11, &deliveries)?;
    let audit: Vec<Vec<Value>> = writes
        .audit
        .iter()
        .map(|a| {
            vec![
                text(a.merchant_id.as_str()),
                text(a.id.as_str()),
                Value::Integer(a.occurred_at.unix_millis()),
                text(&a.actor_type),
                optional_text(a.actor_id.as_deref()),
                optional_text(a.request_id.as_deref()),
                optional_text(a.client_address.as_deref()),
                text(&a.method),
                text(&a.path),
                text(&a.operation),
                text(&a.objects),
                text(&a.outcome),
                Value::Integer(a.status),
                optional_text(a.reason.as_deref()),
            ]
        })
        .collect();
    insert_rows(tx.conn, crate::audit::INSERT_HEAD, 14, &audit)?;
    for write in &writes.idempotency {
        tx.put_idempotency_record(
            &write.merchant,
            &write.scope,
            &write.key,
            &write.record,
            write.replace_older_than,
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreError;

    #[test]
    fn rows_are_split_into_the_fewest_chunks_of_the_sizes_allowed() {
        let conn = Connection::open_in_memory().expect("memory database");
        conn.execute_batch("CREATE TABLE t (a INTEGER, b TEXT)")
            .expect("table");
        let rows: Vec<Vec<Value>> = (0..37)
            .map(|n| vec![Value::Integer(n), text(&format!("row {n}"))])
            .collect();
        insert_rows(&conn, "INSERT INTO t (a, b) VALUES ", 2, &rows).expect("inserted");
        let (count, sum): (i64, i64) = conn
            .query_row("SELECT count(*), sum(a) FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("counted");
        assert_eq!((count, sum), (37, (0..37).sum()));
        assert!(insert_rows(&conn, "INSERT INTO t (a, b) VALUES ", 2, &[]).is_ok());
    }

    #[test]
    fn a_refused_row_is_a_unique_violation_as_on_the_per_job_path() {
        let conn = Connection::open_in_memory().expect("memory database");
        conn.execute_batch("CREATE TABLE t (a INTEGER PRIMARY KEY)")
            .expect("table");
        let rows = vec![vec![Value::Integer(1)], vec![Value::Integer(1)]];
        let refused = insert_rows(&conn, "INSERT INTO t (a) VALUES ", 1, &rows);
        assert!(
            matches!(refused, Err(StoreError::UniqueViolation(_))),
            "{refused:?}"
        );
    }
}
