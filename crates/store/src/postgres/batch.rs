//! A batch decided in memory, read and written set-wise (`crate::batch`): its cards locked in
//! one statement, its idempotency records read in another, and every table it writes in one
//! statement of `UNNEST`s (a data-modifying `WITH` clause per table), so a batch of jobs costs
//! a handful of round trips instead of a dozen a job.
//!
//! Plans must not depend on how big PostgreSQL believes a table or an array is: its estimates
//! lag a fast-growing table (autovacuum analyzes at most once a minute), and a plan made while
//! `idempotency_records` looked small joined the keys by hashing a sequential scan of the whole
//! table, for every batch (measured: most of PostgreSQL's CPU). So every lookup is shaped to
//! use its unique index whatever the estimates: the keys are probed one by one (`LATERAL …
//! OFFSET 0`, which the planner cannot turn into a hash join) and the cards are named by
//! `id = ANY(…)`.

use giftd_domain::{CardId, Channel, CloseReason, HoldId, MerchantId, Timestamp, TransactionId};
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

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// One table's rows of a batch: an `UPDATE` or `INSERT` numbering its parameters from `$1`,
/// and what binds them.
struct Part<'q> {
    sql: &'static str,
    bind: Box<dyn FnOnce(PgQuery<'q>) -> PgQuery<'q> + Send + 'q>,
}

/// The whole batch in ONE statement: each table's rows are a data-modifying `WITH` clause, so a
/// batch's write is one round trip however many tables it touches. The clauses see one
/// snapshot and no two touch the same table; the foreign keys (deliveries to events, holds to
/// cards) are checked at the end of the statement, when every row is in. Two clauses are
/// counted: the guarded card update (fewer cards than the batch changed is a conflict) and the
/// new idempotency keys (`ON CONFLICT DO NOTHING`: fewer stored means another process stored
/// one since the batch read it); either way the caller gives the whole transaction up and the
/// batch runs again. Only a key reused after its window (its old record replaced) costs a
/// statement of its own.
pub(super) async fn write(conn: &mut PgConnection, writes: &BatchWrites) -> StoreResult<()> {
    let (replacing, new): (Vec<_>, Vec<_>) = writes.idempotency.iter().partition(|w| w.replaces);
    let new_keys = new.len();
    // The two clauses whose rows are counted: the cards updated, the new keys stored.
    let counted = [
        (writes.cards.len(), cards_part(writes)),
        (new_keys, new_keys_part(new)),
    ];
    let mut parts: Vec<(Option<usize>, Part<'_>)> = Vec::new();
    let mut expected = [0usize; 2];
    for (which, (rows, part)) in counted.into_iter().enumerate() {
        expected[which] = rows;
        if let Some(part) = part {
            parts.push((Some(which), part));
        }
    }
    for part in [
        transactions_part(writes),
        postings_part(writes),
        holds_part(writes),
        events_part(writes),
        deliveries_part(writes),
        audit_part(writes),
    ]
    .into_iter()
    .flatten()
    {
        parts.push((None, part));
    }
    if !parts.is_empty() {
        let mut sql = String::from("WITH ");
        let mut first = 1;
        let mut counts = ["0::BIGINT".to_owned(), "0::BIGINT".to_owned()];
        for (n, (counted, part)) in parts.iter().enumerate() {
            if n > 0 {
                sql.push_str(", ");
            }
            let (numbered, count) = renumbered(part.sql, first);
            first += count;
            let returning = match counted {
                Some(which) => {
                    counts[*which] = format!("(SELECT count(*) FROM w{n})");
                    " RETURNING 1"
                }
                None => "",
            };
            sql.push_str(&format!("w{n} AS ({numbered}{returning})"));
        }
        sql.push_str(&format!(" SELECT {}, {}", counts[0], counts[1]));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (_, part) in parts {
            query = (part.bind)(query);
        }
        let row = query
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::from_write)?;
        let (updated, stored): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        if updated != expected[0] as i64 {
            return Err(StoreError::Conflict("card balance"));
        }
        // A key some other process stored since the batch read it: the batch runs again.
        if stored != expected[1] as i64 {
            return Err(StoreError::Conflict("idempotency key"));
        }
    }
    replace_idempotency_records(conn, &replacing).await
}

/// The keys new to the batch, each stored unless another process stored it since the batch
/// read it (then `ON CONFLICT DO NOTHING` stores nothing, and the count tells).
fn new_keys_part(new: Vec<&crate::batch::IdempotencyWrite>) -> Option<Part<'_>> {
    if new.is_empty() {
        return None;
    }
    let merchants: Vec<&str> = new.iter().map(|w| w.merchant.as_str()).collect();
    let scopes: Vec<&str> = new.iter().map(|w| w.scope.as_str()).collect();
    let keys: Vec<&str> = new.iter().map(|w| w.key.as_str()).collect();
    let hashes: Vec<&[u8]> = new.iter().map(|w| w.record.request_hash.as_slice()).collect();
    let statuses: Vec<i64> = new.iter().map(|w| i64::from(w.record.status)).collect();
    let bodies: Vec<&[u8]> = new.iter().map(|w| w.record.body.as_slice()).collect();
    let created: Vec<i64> = new.iter().map(|w| w.record.created_at.unix_millis()).collect();
    Some(Part {
        sql: "INSERT INTO idempotency_records (merchant_id, scope, key, request_hash, status, body, created_at) \
             SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BYTEA[], $5::BIGINT[], \
             $6::BYTEA[], $7::BIGINT[]) \
             ON CONFLICT (merchant_id, scope, key) DO NOTHING",
        bind: Box::new(move |q| {
            q.bind(merchants)
                .bind(scopes)
                .bind(keys)
                .bind(hashes)
                .bind(statuses)
                .bind(bodies)
                .bind(created)
        }),
    })
}

/// `sql` with its parameters `$1`, `$2`, … renumbered from `$first`, and how many it has.
fn renumbered(sql: &str, first: usize) -> (String, usize) {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut highest = 0;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
            digits.push(d);
            chars.next();
        }
        match digits.parse::<usize>() {
            Ok(n) => {
                highest = highest.max(n);
                out.push_str(&format!("${}", n + first - 1));
            }
            Err(_) => out.push('$'),
        }
    }
    (out, highest)
}

fn audit_part(writes: &BatchWrites) -> Option<Part<'_>> {
    let rows = &writes.audit;
    if rows.is_empty() {
        return None;
    }
    let texts = |field: fn(&crate::AuditEventRow) -> &str| rows.iter().map(field).collect::<Vec<_>>();
    let optional =
        |field: fn(&crate::AuditEventRow) -> Option<&str>| rows.iter().map(field).collect::<Vec<_>>();
    let (merchants, ids, methods, paths, operations, objects, outcomes) = (
        texts(|a| a.merchant_id.as_str()),
        texts(|a| a.id.as_str()),
        texts(|a| a.method.as_str()),
        texts(|a| a.path.as_str()),
        texts(|a| a.operation.as_str()),
        texts(|a| a.objects.as_str()),
        texts(|a| a.outcome.as_str()),
    );
    let actor_types = texts(|a| a.actor_type.as_str());
    let (actor_ids, request_ids, addresses, reasons) = (
        optional(|a| a.actor_id.as_deref()),
        optional(|a| a.request_id.as_deref()),
        optional(|a| a.client_address.as_deref()),
        optional(|a| a.reason.as_deref()),
    );
    let occurred: Vec<i64> = rows.iter().map(|a| a.occurred_at.unix_millis()).collect();
    let statuses: Vec<i64> = rows.iter().map(|a| a.status).collect();
    Some(Part {
        sql: "INSERT INTO audit_events (merchant_id, id, occurred_at, actor_type, actor_id, request_id, \
         client_address, method, path, operation, objects, outcome, status, reason) \
         SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], \
         $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::TEXT[], $13::BIGINT[], $14::TEXT[])",
        bind: Box::new(move |q| {
            q.bind(merchants)
                .bind(ids)
                .bind(occurred)
                .bind(actor_types)
                .bind(actor_ids)
                .bind(request_ids)
                .bind(addresses)
                .bind(methods)
                .bind(paths)
                .bind(operations)
                .bind(objects)
                .bind(outcomes)
                .bind(statuses)
                .bind(reasons)
        }),
    })
}

fn cards_part(writes: &BatchWrites) -> Option<Part<'_>> {
    let cards = &writes.cards;
    if cards.is_empty() {
        return None;
    }
    let ids: Vec<&str> = cards.iter().map(|c| c.read.id.as_str()).collect();
    let read_balances: Vec<i64> = cards.iter().map(|c| c.read.balance).collect();
    let read_held: Vec<i64> = cards.iter().map(|c| c.read.held).collect();
    let balances: Vec<i64> = cards.iter().map(|c| c.now.balance).collect();
    let held: Vec<i64> = cards.iter().map(|c| c.now.held).collect();
    let states: Vec<&str> = cards.iter().map(|c| c.now.state.as_str()).collect();
    let reasons: Vec<Option<&str>> = cards
        .iter()
        .map(|c| c.closed_reason.map(CloseReason::as_str))
        .collect();
    let expiries: Vec<Option<i64>> = cards
        .iter()
        .map(|c| c.now.expires_at.map(Timestamp::unix_millis))
        .collect();
    let updated: Vec<i64> = cards.iter().map(|c| c.updated_at.unix_millis()).collect();
    Some(Part {
        sql: "UPDATE cards SET balance = u.balance, held = u.held, state = u.state, \
         closed_reason = u.closed_reason, expires_at = u.expires_at, updated_at = u.updated_at \
         FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[], $6::TEXT[], \
         $7::TEXT[], $8::BIGINT[], $9::BIGINT[]) \
         AS u(id, read_balance, read_held, balance, held, state, closed_reason, expires_at, updated_at) \
         WHERE cards.id = ANY($1) AND cards.id = u.id AND cards.balance = u.read_balance \
         AND cards.held = u.read_held",
        bind: Box::new(move |q| {
            q.bind(ids)
                .bind(read_balances)
                .bind(read_held)
                .bind(balances)
                .bind(held)
                .bind(states)
                .bind(reasons)
                .bind(expiries)
                .bind(updated)
        }),
    })
}

fn transactions_part(writes: &BatchWrites) -> Option<Part<'_>> {
    let rows = &writes.transactions;
    if rows.is_empty() {
        return None;
    }
    let ids: Vec<&str> = rows.iter().map(|(t, _)| t.id.as_str()).collect();
    let merchants: Vec<&str> = rows.iter().map(|(t, _)| t.merchant_id.as_str()).collect();
    let cards: Vec<&str> = rows.iter().map(|(t, _)| t.card_id.as_str()).collect();
    let types: Vec<&str> = rows.iter().map(|(t, _)| t.transaction_type.as_str()).collect();
    let amounts: Vec<i64> = rows.iter().map(|(t, _)| t.amount).collect();
    let currencies: Vec<&str> = rows.iter().map(|(t, _)| t.currency.as_str()).collect();
    let before: Vec<i64> = rows.iter().map(|(t, _)| t.balance_before).collect();
    let after: Vec<i64> = rows.iter().map(|(t, _)| t.balance_after).collect();
    let references: Vec<Option<&str>> = rows.iter().map(|(t, _)| t.reference.as_deref()).collect();
    let reverses: Vec<Option<&str>> = rows
        .iter()
        .map(|(t, _)| t.reverses.as_ref().map(TransactionId::as_str))
        .collect();
    let holds: Vec<Option<&str>> = rows
        .iter()
        .map(|(t, _)| t.hold_id.as_ref().map(HoldId::as_str))
        .collect();
    let entries: Vec<&str> = rows.iter().map(|(_, entry)| entry.as_str()).collect();
    let created: Vec<i64> = rows.iter().map(|(t, _)| t.created_at.unix_millis()).collect();
    let channels: Vec<Option<&str>> = rows.iter().map(|(t, _)| t.channel.map(Channel::as_str)).collect();
    // WITH ORDINALITY ... ORDER BY: rows take their `seq` in the order the jobs wrote them.
    Some(Part {
        sql: "INSERT INTO transactions (id, merchant_id, card_id, type, amount, currency, balance_before, \
         balance_after, reference, reverses, hold_id, entry_id, created_at, channel) \
         SELECT id, merchant_id, card_id, type, amount, currency, balance_before, balance_after, \
         reference, reverses, hold_id, entry_id, created_at, channel \
         FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::TEXT[], \
         $7::BIGINT[], $8::BIGINT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::TEXT[], $13::BIGINT[], \
         $14::TEXT[]) \
         WITH ORDINALITY AS u(id, merchant_id, card_id, type, amount, currency, balance_before, \
         balance_after, reference, reverses, hold_id, entry_id, created_at, channel, n) ORDER BY n",
        bind: Box::new(move |q| {
            q.bind(ids)
                .bind(merchants)
                .bind(cards)
                .bind(types)
                .bind(amounts)
                .bind(currencies)
                .bind(before)
                .bind(after)
                .bind(references)
                .bind(reverses)
                .bind(holds)
                .bind(entries)
                .bind(created)
                .bind(channels)
        }),
    })
}

fn postings_part(writes: &BatchWrites) -> Option<Part<'_>> {
    let rows = &writes.postings;
    if rows.is_empty() {
        return None;
    }
    let transactions: Vec<&str> = rows.iter().map(|(t, _, _)| t.as_str()).collect();
    let entries: Vec<&str> = rows.iter().map(|(_, e, _)| e.as_str()).collect();
    let kinds: Vec<&str> = rows.iter().map(|(_, _, p)| p.account.kind()).collect();
    let owners: Vec<&str> = rows.iter().map(|(_, _, p)| p.account.owner_id()).collect();
    let currencies: Vec<&str> = rows.iter().map(|(_, _, p)| p.currency.code()).collect();
    let amounts: Vec<i64> = rows.iter().map(|(_, _, p)| p.amount).collect();
    Some(Part {
        sql: "INSERT INTO postings (transaction_id, entry_id, account_kind, owner_id, currency, amount) \
         SELECT transaction_id, entry_id, account_kind, owner_id, currency, amount \
         FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[]) \
         WITH ORDINALITY AS u(transaction_id, entry_id, account_kind, owner_id, currency, amount, n) \
         ORDER BY n",
        bind: Box::new(move |q| {
            q.bind(transactions)
                .bind(entries)
                .bind(kinds)
                .bind(owners)
                .bind(currencies)
                .bind(amounts)
        }),
    })
}

fn holds_part(writes: &BatchWrites) -> Option<Part<'_>> {
    let rows = &writes.holds;
    if rows.is_empty() {
        return None;
    }
    let ids: Vec<&str> = rows.iter().map(|h| h.hold.id.as_str()).collect();
    let merchants: Vec<&str> = rows.iter().map(|h| h.merchant.as_str()).collect();
    let cards: Vec<&str> = rows.iter().map(|h| h.hold.card_id.as_str()).collect();
    let transactions: Vec<&str> = rows.iter().map(|h| h.transaction_id.as_str()).collect();
    let amounts: Vec<i64> = rows.iter().map(|h| h.hold.amount).collect();
    let states: Vec<&str> = rows.iter().map(|h| h.hold.state.as_str()).collect();
    let expiries: Vec<i64> = rows.iter().map(|h| h.hold.expires_at.unix_millis()).collect();
    let created: Vec<i64> = rows.iter().map(|h| h.created_at.unix_millis()).collect();
    Some(Part {
        sql: "INSERT INTO holds (id, merchant_id, card_id, transaction_id, amount, state, expires_at, created_at) \
         SELECT id, merchant_id, card_id, transaction_id, amount, state, expires_at, created_at \
         FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::TEXT[], \
         $7::BIGINT[], $8::BIGINT[]) \
         WITH ORDINALITY AS u(id, merchant_id, card_id, transaction_id, amount, state, expires_at, \
         created_at, n) ORDER BY n",
        bind: Box::new(move |q| {
            q.bind(ids)
                .bind(merchants)
                .bind(cards)
                .bind(transactions)
                .bind(amounts)
                .bind(states)
                .bind(expiries)
                .bind(created)
        }),
    })
}

fn events_part(writes: &BatchWrites) -> Option<Part<'_>> {
    let rows = &writes.events;
    if rows.is_empty() {
        return None;
    }
    let ids: Vec<&str> = rows.iter().map(|e| e.id.as_str()).collect();
    let merchants: Vec<&str> = rows.iter().map(|e| e.merchant_id.as_str()).collect();
    let types: Vec<&str> = rows.iter().map(|e| e.event_type.as_str()).collect();
    let payloads: Vec<&str> = rows.iter().map(|e| e.payload.as_str()).collect();
    let created: Vec<i64> = rows.iter().map(|e| e.created_at.unix_millis()).collect();
    Some(Part {
        sql: "INSERT INTO events (id, merchant_id, type, payload, created_at) \
         SELECT id, merchant_id, type, payload, created_at \
         FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[]) \
         WITH ORDINALITY AS u(id, merchant_id, type, payload, created_at, n) ORDER BY n",
        bind: Box::new(move |q| {
            q.bind(ids)
                .bind(merchants)
                .bind(types)
                .bind(payloads)
                .bind(created)
        }),
    })
}

fn deliveries_part(writes: &BatchWrites) -> Option<Part<'_>> {
    let rows = &writes.deliveries;
    if rows.is_empty() {
        return None;
    }
    let ids: Vec<&str> = rows.iter().map(|d| d.id.as_str()).collect();
    let merchants: Vec<&str> = rows.iter().map(|d| d.merchant_id.as_str()).collect();
    let events: Vec<&str> = rows.iter().map(|d| d.event_id.as_str()).collect();
    let endpoints: Vec<&str> = rows.iter().map(|d| d.endpoint_id.as_str()).collect();
    let states: Vec<&str> = rows.iter().map(|d| d.state.as_str()).collect();
    let attempts: Vec<i64> = rows.iter().map(|d| d.attempts).collect();
    let next: Vec<i64> = rows.iter().map(|d| d.next_attempt_at.unix_millis()).collect();
    let statuses: Vec<Option<i64>> = rows.iter().map(|d| d.last_status).collect();
    let errors: Vec<Option<&str>> = rows.iter().map(|d| d.last_error.as_deref()).collect();
    let created: Vec<i64> = rows.iter().map(|d| d.created_at.unix_millis()).collect();
    let updated: Vec<i64> = rows.iter().map(|d| d.updated_at.unix_millis()).collect();
    Some(Part {
        sql: "INSERT INTO webhook_deliveries (id, merchant_id, event_id, endpoint_id, state, attempts, \
         next_attempt_at, last_status, last_error, created_at, updated_at) \
         SELECT id, merchant_id, event_id, endpoint_id, state, attempts, next_attempt_at, last_status, \
         last_error, created_at, updated_at \
         FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[], \
         $7::BIGINT[], $8::BIGINT[], $9::TEXT[], $10::BIGINT[], $11::BIGINT[]) \
         WITH ORDINALITY AS u(id, merchant_id, event_id, endpoint_id, state, attempts, next_attempt_at, \
         last_status, last_error, created_at, updated_at, n) ORDER BY n",
        bind: Box::new(move |q| {
            q.bind(ids)
                .bind(merchants)
                .bind(events)
                .bind(endpoints)
                .bind(states)
                .bind(attempts)
                .bind(next)
                .bind(statuses)
                .bind(errors)
                .bind(created)
                .bind(updated)
        }),
    })
}

/// Keys whose old record is past its window: replaced row by row, as the per-job path does
/// (rare: a key used again after its window).
async fn replace_idempotency_records(
    conn: &mut PgConnection,
    replacing: &[&crate::batch::IdempotencyWrite],
) -> StoreResult<()> {
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
