//! `giftd verify`: recompute every cached balance from the postings and check the ledger's
//! invariants. Read-only. Each check is one query so that a large ledger is checked by the
//! database, not by loading it into memory.

use sqlx::{Row, SqliteConnection};

use crate::StoreResult;

/// What verification found. `violations` is empty when the ledger is sound.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub cards: i64,
    pub transactions: i64,
    pub postings: i64,
    pub pending_holds: i64,
    /// Outstanding value on cards per currency (the program's liability), from the postings.
    pub outstanding: Vec<(String, i64)>,
    pub violations: Vec<String>,
}

impl VerifyReport {
    pub fn is_sound(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Each check: a query returning one row per violation, and how to describe such a row.
const CHECKS: &[(&str, &str)] = &[
    (
        "journal entry does not balance",
        "SELECT transaction_id || ' ' || currency || ' sums to ' || SUM(amount) FROM postings \
         GROUP BY transaction_id, currency HAVING SUM(amount) <> 0",
    ),
    (
        "card balance differs from its ledger accounts",
        "SELECT id || ': cached ' || balance || ', ledger ' || ledger FROM (SELECT c.id, c.balance, \
         (SELECT COALESCE(SUM(p.amount), 0) FROM postings p WHERE p.owner_id = c.id \
          AND p.account_kind IN ('card_available', 'card_held')) AS ledger FROM cards c) \
         WHERE balance <> ledger",
    ),
    (
        "card held amount differs from its held account",
        "SELECT id || ': cached ' || held || ', ledger ' || ledger FROM (SELECT c.id, c.held, \
         (SELECT COALESCE(SUM(p.amount), 0) FROM postings p WHERE p.owner_id = c.id \
          AND p.account_kind = 'card_held') AS ledger FROM cards c) WHERE held <> ledger",
    ),
    (
        "card held amount differs from its pending holds",
        "SELECT id || ': cached ' || held || ', pending holds ' || pending FROM (SELECT c.id, c.held, \
         (SELECT COALESCE(SUM(h.amount), 0) FROM holds h WHERE h.card_id = c.id \
          AND h.state = 'pending') AS pending FROM cards c) WHERE held <> pending",
    ),
    (
        "card available balance is negative",
        "SELECT id || ': balance ' || balance || ', held ' || held FROM cards \
         WHERE held < 0 OR balance - held < 0",
    ),
    (
        "card account posted in another currency than the card's",
        "SELECT p.transaction_id || ' posts ' || p.currency || ' to ' || c.id || ' in ' || c.currency \
         FROM postings p JOIN cards c ON c.id = p.owner_id \
         WHERE p.account_kind IN ('card_available', 'card_held') AND p.currency <> c.currency",
    ),
    (
        "transaction's balance change differs from its postings",
        "SELECT id || ': ' || balance_before || ' -> ' || balance_after || ', postings ' || posted FROM \
         (SELECT t.id, t.balance_before, t.balance_after, (SELECT COALESCE(SUM(p.amount), 0) FROM postings p \
          WHERE p.transaction_id = t.id AND p.owner_id = t.card_id \
          AND p.account_kind IN ('card_available', 'card_held')) AS posted FROM transactions t) \
         WHERE balance_after - balance_before <> posted",
    ),
    (
        "refunds exceed the original transaction",
        "SELECT o.id || ': amount ' || o.amount || ', refunded ' || SUM(r.amount) FROM transactions o \
         JOIN transactions r ON r.reverses = o.id AND r.type = 'refund' \
         WHERE NOT EXISTS (SELECT 1 FROM transactions v WHERE v.reverses = r.id AND v.type = 'void') \
         GROUP BY o.id, o.amount HAVING SUM(r.amount) > o.amount",
    ),
    (
        "hold captured more than it held",
        "SELECT id || ': held ' || amount || ', captured ' || captured_amount FROM holds \
         WHERE captured_amount > amount OR captured_amount < 0",
    ),
];

pub(crate) async fn run_sqlite(conn: &mut SqliteConnection) -> StoreResult<VerifyReport> {
    let mut report = VerifyReport::default();
    for (what, sql) in CHECKS {
        let rows = sqlx::query(*sql).fetch_all(&mut *conn).await?;
        for row in rows {
            let detail: String = row.try_get(0)?;
            report.violations.push(format!("{what}: {detail}"));
        }
    }
    let counts = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM cards), (SELECT COUNT(*) FROM transactions), \
         (SELECT COUNT(*) FROM postings), (SELECT COUNT(*) FROM holds WHERE state = 'pending')",
    )
    .fetch_one(&mut *conn)
    .await?;
    report.cards = counts.try_get(0)?;
    report.transactions = counts.try_get(1)?;
    report.postings = counts.try_get(2)?;
    report.pending_holds = counts.try_get(3)?;
    let outstanding = sqlx::query(
        "SELECT currency, SUM(amount) FROM postings \
         WHERE account_kind IN ('card_available', 'card_held') GROUP BY currency ORDER BY currency",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in outstanding {
        report.outstanding.push((row.try_get(0)?, row.try_get(1)?));
    }
    Ok(report)
}
