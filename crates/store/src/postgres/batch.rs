//! A batch decided in memory, read and written set-wise (`crate::batch`): its cards locked in
//! one statement, its idempotency records read in another, and each table written with one
//! `UNNEST` statement, so a batch of jobs costs a handful of round trips instead of a dozen a job.
//!
//! Plans must not depend on how big PostgreSQL believes a table or an array is: its estimates
//! lag a fast-growing table (autovacuum analyzes at most once a minute), and a plan made while
//! `idempotency_records` looked small joined the keys by hashing a sequential scan of the whole
//! table, for every batch (measured: most of PostgreSQL's CPU). So every lookup is shaped to
//! use its unique index whatever the estimates: the keys are probed one by one (`LATERAL …
//! OFFSET 0`, which the planner cannot turn into a hash join) and the cards are named by
//! `id = ANY(…)`.

use giftd_domain::{CardId, CloseReason, HoldId, MerchantId, Timestamp, TransactionId};
use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::batch::BatchWrites;
use crate::rows;
use crate::{CardRecord, IdempotencyRecord, StoreError, StoreResult};

/// The cards, locked in id order (the order every batch locks in), each with the soonest expiry
/// of its pending holds.
pub(super) async fn cards(
    conn: &mut PgConnection,
    ids: &[CardId],
) -> StoreResult<Vec<(CardRecord, Option<Timestamp>)>> {
    let sql = format!(
        "SELECT {}, (SELECT MIN(h.expires_at) FROM holds h WHERE h.card_id = cards.id \
         AND h.state = 'pending') AS next_hold_expiry \
         FROM cards WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        rows::CARD_COLUMNS
    );
    let ids: Vec<&str> = ids.iter().map(CardId::as_str).collect();
    let found = sqlx::query(AssertSqlSafe(sql))
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    found
        .iter()
        .map(|row| {
            let expiry: Option<i64> = row.try_get("next_hold_expiry")?;
            Ok((rows::card(row)?, expiry.map(Timestamp::from_unix_millis)))
        })
        .collect()
}

pub(super) async fn idempotency_records(
    conn: &mut PgConnection,
    keys: &[(MerchantId, String, String)],
) -> StoreResult<Vec<((MerchantId, String, String), IdempotencyRecord)>> {
    let merchants: Vec<&str> = keys.iter().map(|(m, _, _)| m.as_str()).collect();
    let scopes: Vec<&str> = keys.iter().map(|(_, s, _)| s.as_str()).collect();
    let names: Vec<&str> = keys.iter().map(|(_, _, k)| k.as_str()).collect();
    let found = sqlx::query(
        "SELECT r.merchant_id, r.scope, r.key, r.request_hash, r.status, r.body, r.created_at \
         FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[]) AS k(merchant_id, scope, key) \
         CROSS JOIN LATERAL (SELECT * FROM idempotency_records i WHERE i.merchant_id = k.merchant_id \
         AND i.scope = k.scope AND i.key = k.key OFFSET 0) AS r",
    )
    .bind(merchants)
    .bind(scopes)
    .bind(names)
    .fetch_all(&mut *conn)
    .await?;
    found
        .iter()
        .map(|row| {
            let status: i64 = row.try_get("status")?;
            Ok((
                (
                    MerchantId::new(row.try_get::<String, _>("merchant_id")?),
                    row.try_get("scope")?,
                    row.try_get("key")?,
                ),
                IdempotencyRecord {
                    request_hash: row.try_get("request_hash")?,
                    status: u16::try_from(status)
                        .map_err(|_| StoreError::Corrupt(format!("idempotency status {status}")))?,
                    body: row.try_get("body")?,
                    created_at: Timestamp::from_unix_millis(row.try_get("created_at")?),
                },
            ))
        })
        .collect()
}

/// One statement per table. The order is the foreign keys': cards, transactions, postings,
/// holds, events, deliveries; the audit trail, and idempotency records last.
pub(super) async fn write(conn: &mut PgConnection, writes: &BatchWrites) -> StoreResult<()> {
    update_cards(conn, writes).await?;
    insert_transactions(conn, writes).await?;
    insert_postings(conn, writes).await?;
    insert_holds(conn, writes).await?;
    insert_events(conn, writes).await?;
    insert_deliveries(conn, writes).await?;
    insert_audit_events(conn, writes).await?;
    insert_idempotency_records(conn, writes).await
}

async fn insert_audit_events(conn: &mut PgConnection, writes: &BatchWrites) -> StoreResult<()> {
    let rows = &writes.audit;
    if rows.is_empty() {
        return Ok(());
    }
    let texts = |field: fn(&crate::AuditEventRow) -> &str| rows.iter().map(field).collect::<Vec<_>>();
    let optional =
        |field: fn(&crate::AuditEventRow) -> Option<&str>| rows.iter().map(field).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO audit_events (merchant_id, id, occurred_at, actor_type, actor_id, request_id, \
         client_address, method, path, operation, objects, outcome, status, reason) \
         SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], \
         $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::TEXT[], $13::BIGINT[], $14::TEXT[])",
    )
    .bind(texts(|a| a.merchant_id.as_str()))
    .bind(texts(|a| a.id.as_str()))
    .bind(rows.iter().map(|a| a.occurred_at.unix_millis()).collect::<Vec<_>>())
    .bind(texts(|a| a.actor_type.as_str()))
    .bind(optional(|a| a.actor_id.as_deref()))
    .bind(optional(|a| a.request_id.as_deref()))
    .bind(optional(|a| a.client_address.as_deref()))
    .bind(texts(|a| a.method.as_str()))
    .bind(texts(|a| a.path.as_str()))
    .bind(texts(|a| a.operation.as_str()))
    .bind(texts(|a| a.objects.as_str()))
    .bind(texts(|a| a.outcome.as_str()))
    .bind(rows.iter().map(|a| a.status).collect::<Vec<_>>())
    .bind(optional(|a| a.reason.as_deref()))
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

async fn update_cards(conn: &mut PgConnection, writes: &BatchWrites) -> StoreResult<()> {
    let cards = &writes.cards;
    if cards.is_empty() {
        return Ok(());
    }
    let updated = sqlx::query(
        "UPDATE cards SET balance = u.balance, held = u.held, state = u.state, \
         closed_reason = u.closed_reason, expires_at = u.expires_at, updated_at = u.updated_at \
         FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[], $6::TEXT[], \
         $7::TEXT[], $8::BIGINT[], $9::BIGINT[]) \
         AS u(id, read_balance, read_held, balance, held, state, closed_reason, expires_at, updated_at) \
         WHERE cards.id = ANY($1) AND cards.id = u.id AND cards.balance = u.read_balance \
         AND cards.held = u.read_held",
    )
    .bind(cards.iter().map(|c| c.read.id.as_str()).collect::<Vec<_>>())
    .bind(cards.iter().map(|c| c.read.balance).collect::<Vec<_>>())
    .bind(cards.iter().map(|c| c.read.held).collect::<Vec<_>>())
    .bind(cards.iter().map(|c| c.now.balance).collect::<Vec<_>>())
    .bind(cards.iter().map(|c| c.now.held).collect::<Vec<_>>())
    .bind(cards.iter().map(|c| c.now.state.as_str()).collect::<Vec<_>>())
    .bind(
        cards
            .iter()
            .map(|c| c.closed_reason.map(CloseReason::as_str))
            .collect::<Vec<_>>(),
    )
    .bind(
        cards
            .iter()
            .map(|c| c.now.expires_at.map(Timestamp::unix_millis))
            .collect::<Vec<_>>(),
    )
    .bind(
        cards
            .iter()
            .map(|c| c.updated_at.unix_millis())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_write)?;
    if updated.rows_affected() != cards.len() as u64 {
        return Err(StoreError::Conflict("card balance"));
    }
    Ok(())
}

async fn insert_transactions(conn: &mut PgConnection, writes: &BatchWrites) -> StoreResult<()> {
    let rows = &writes.transactions;
    if rows.is_empty() {
        return Ok(());
    }
    // WITH ORDINALITY ... ORDER BY: rows take their `seq` in the order the jobs wrote them.
    sqlx::query(
        "INSERT INTO transactions (id, merchant_id, card_id, type, amount, currency, balance_before, \
         balance_after, reference, reverses, hold_id, entry_id, created_at) \
         SELECT id, merchant_id, card_id, type, amount, currency, balance_before, balance_after, \
         reference, reverses, hold_id, entry_id, created_at \
         FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::TEXT[], \
         $7::BIGINT[], $8::BIGINT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::TEXT[], $13::BIGINT[]) \
         WITH ORDINALITY AS u(id, merchant_id, card_id, type, amount, currency, balance_before, \
         balance_after, reference, reverses, hold_id, entry_id, created_at, n) ORDER BY n",
    )
    .bind(rows.iter().map(|(t, _)| t.id.as_str()).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|(t, _)| t.merchant_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|(t, _)| t.card_id.as_str()).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|(t, _)| t.transaction_type.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|(t, _)| t.amount).collect::<Vec<_>>())
    .bind(rows.iter().map(|(t, _)| t.currency.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|(t, _)| t.balance_before).collect::<Vec<_>>())
    .bind(rows.iter().map(|(t, _)| t.balance_after).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|(t, _)| t.reference.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|(t, _)| t.reverses.as_ref().map(TransactionId::as_str))
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|(t, _)| t.hold_id.as_ref().map(HoldId::as_str))
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|(_, entry)| entry.as_str()).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|(t, _)| t.created_at.unix_millis())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

async fn insert_postings(conn: &mut PgConnection, writes: &BatchWrites) -> StoreResult<()> {
    let rows = &writes.postings;
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO postings (transaction_id, entry_id, account_kind, owner_id, currency, amount) \
         SELECT transaction_id, entry_id, account_kind, owner_id, currency, amount \
         FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[]) \
         WITH ORDINALITY AS u(transaction_id, entry_id, account_kind, owner_id, currency, amount, n) \
         ORDER BY n",
    )
    .bind(rows.iter().map(|(t, _, _)| t.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, e, _)| e.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, _, p)| p.account.kind()).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|(_, _, p)| p.account.owner_id())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|(_, _, p)| p.currency.code()).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, _, p)| p.amount).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

async fn insert_holds(conn: &mut PgConnection, writes: &BatchWrites) -> StoreResult<()> {
    let rows = &writes.holds;
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO holds (id, merchant_id, card_id, transaction_id, amount, state, expires_at, created_at) \
         SELECT id, merchant_id, card_id, transaction_id, amount, state, expires_at, created_at \
         FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::TEXT[], \
         $7::BIGINT[], $8::BIGINT[]) \
         WITH ORDINALITY AS u(id, merchant_id, card_id, transaction_id, amount, state, expires_at, \
         created_at, n) ORDER BY n",
    )
    .bind(rows.iter().map(|h| h.hold.id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|h| h.merchant.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|h| h.hold.card_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|h| h.transaction_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|h| h.hold.amount).collect::<Vec<_>>())
    .bind(rows.iter().map(|h| h.hold.state.as_str()).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|h| h.hold.expires_at.unix_millis())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|h| h.created_at.unix_millis())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

async fn insert_events(conn: &mut PgConnection, writes: &BatchWrites) -> StoreResult<()> {
    let rows = &writes.events;
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO events (id, merchant_id, type, payload, created_at) \
         SELECT id, merchant_id, type, payload, created_at \
         FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[]) \
         WITH ORDINALITY AS u(id, merchant_id, type, payload, created_at, n) ORDER BY n",
    )
    .bind(rows.iter().map(|e| e.id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|e| e.merchant_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|e| e.payload.as_str()).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|e| e.created_at.unix_millis())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

async fn insert_deliveries(conn: &mut PgConnection, writes: &BatchWrites) -> StoreResult<()> {
    let rows = &writes.deliveries;
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, merchant_id, event_id, endpoint_id, state, attempts, \
         next_attempt_at, last_status, last_error, created_at, updated_at) \
         SELECT id, merchant_id, event_id, endpoint_id, state, attempts, next_attempt_at, last_status, \
         last_error, created_at, updated_at \
         FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[], \
         $7::BIGINT[], $8::BIGINT[], $9::TEXT[], $10::BIGINT[], $11::BIGINT[]) \
         WITH ORDINALITY AS u(id, merchant_id, event_id, endpoint_id, state, attempts, next_attempt_at, \
         last_status, last_error, created_at, updated_at, n) ORDER BY n",
    )
    .bind(rows.iter().map(|d| d.id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|d| d.merchant_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|d| d.event_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|d| d.endpoint_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|d| d.state.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|d| d.attempts).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|d| d.next_attempt_at.unix_millis())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|d| d.last_status).collect::<Vec<_>>())
    .bind(rows.iter().map(|d| d.last_error.as_deref()).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|d| d.created_at.unix_millis())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|d| d.updated_at.unix_millis())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

/// New keys in one statement; a key some other process stored since the batch read it is a
/// conflict (the batch runs again). A key whose old record is past its window is replaced row by
/// row, as the per-job path does.
async fn insert_idempotency_records(conn: &mut PgConnection, writes: &BatchWrites) -> StoreResult<()> {
    let (replacing, new): (Vec<_>, Vec<_>) = writes.idempotency.iter().partition(|w| w.replaces);
    if !new.is_empty() {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_records (merchant_id, scope, key, request_hash, status, body, created_at) \
             SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BYTEA[], $5::BIGINT[], \
             $6::BYTEA[], $7::BIGINT[]) \
             ON CONFLICT (merchant_id, scope, key) DO NOTHING",
        )
        .bind(new.iter().map(|w| w.merchant.as_str()).collect::<Vec<_>>())
        .bind(new.iter().map(|w| w.scope.as_str()).collect::<Vec<_>>())
        .bind(new.iter().map(|w| w.key.as_str()).collect::<Vec<_>>())
        .bind(new.iter().map(|w| w.record.request_hash.as_slice()).collect::<Vec<_>>())
        .bind(new.iter().map(|w| i64::from(w.record.status)).collect::<Vec<_>>())
        .bind(new.iter().map(|w| w.record.body.as_slice()).collect::<Vec<_>>())
        .bind(new.iter().map(|w| w.record.created_at.unix_millis()).collect::<Vec<_>>())
    .execute(&mut *conn)
        .await
        .map_err(StoreError::from_write)?;
        if inserted.rows_affected() != new.len() as u64 {
            return Err(StoreError::Conflict("idempotency key"));
        }
    }
    for write in replacing {
        let done = sqlx::query(
            "UPDATE idempotency_records SET request_hash = $4, status = $5, body = $6, created_at = $7 \
             WHERE merchant_id = $1 AND scope = $2 AND key = $3 AND created_at < $8",
        )
        .bind(write.merchant.as_str())
        .bind(&write.scope)
        .bind(&write.key)
        .bind(&write.record.request_hash)
        .bind(i64::from(write.record.status))
        .bind(&write.record.body)
        .bind(write.record.created_at.unix_millis())
        .bind(write.replace_older_than.unix_millis())
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from_write)?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Conflict("idempotency key"));
        }
    }
    Ok(())
}
