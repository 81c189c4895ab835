//! `giftd verify`: recompute every cached balance from the postings and check the ledger's
//! invariants. Read-only.
//!
//! Sums are taken in Rust as `i128` while the postings stream past, never with SQL `SUM`: a
//! program's funding account, or the outstanding total of a currency, may legitimately pass
//! what 64 bits hold, and SQL `SUM` would fail (SQLite) or change type (PostgreSQL) there. The
//! checks that need no sum stay queries, each returning one row per violation.

use std::collections::{BTreeMap, HashMap};

use futures::TryStreamExt;
use sqlx::{Row, SqliteConnection};

use crate::StoreResult;

/// What verification found. `violations` is empty when the ledger is sound.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub cards: i64,
    pub transactions: i64,
    pub postings: i64,
    pub pending_holds: i64,
    /// Outstanding value on cards per currency (the programs' liability), from the postings.
    pub outstanding: Vec<(String, i128)>,
    pub violations: Vec<String>,
}

impl VerifyReport {
    pub fn is_sound(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Checks that need no sums: a query returning one description per violation.
const CHECKS: &[(&str, &str)] = &[
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
        "refunds exceed the original transaction",
        "SELECT o.id || ': amount ' || o.amount || ', refunded more' FROM transactions o \
         WHERE o.amount < (SELECT COALESCE(SUM(r.amount), 0) FROM transactions r \
           WHERE r.reverses = o.id AND r.type = 'refund' \
           AND NOT EXISTS (SELECT 1 FROM transactions v WHERE v.reverses = r.id AND v.type = 'void'))",
    ),
    (
        "hold captured more than it held",
        "SELECT id || ': held ' || amount || ', captured ' || captured_amount FROM holds \
         WHERE captured_amount > amount OR captured_amount < 0",
    ),
];

/// The running sums of one pass over the postings, in transaction order.
#[derive(Default)]
struct Sums {
    /// Per card: (available, held) from its accounts.
    cards: HashMap<String, (i128, i128)>,
    /// Per currency: value on cards.
    outstanding: BTreeMap<String, i128>,
    postings: i64,
}

/// One transaction as the pass sees it: its own entry's sums per currency and its card's change.
struct Entry {
    id: String,
    card_id: String,
    balance_change: i128,
    per_currency: BTreeMap<String, i128>,
    card_posted: i128,
}

impl Entry {
    fn close(self, violations: &mut Vec<String>) {
        for (currency, sum) in &self.per_currency {
            if *sum != 0 {
                violations.push(format!(
                    "journal entry does not balance: {} {currency} sums to {sum}",
                    self.id
                ));
            }
        }
        if self.card_posted != self.balance_change {
            violations.push(format!(
                "transaction's balance change differs from its postings: {} changes the balance by {}, \
                 its postings to the card by {}",
                self.id, self.balance_change, self.card_posted
            ));
        }
    }
}

pub(crate) async fn run_sqlite(conn: &mut SqliteConnection) -> StoreResult<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut sums = Sums::default();

    // One pass over every transaction with its postings (a transaction without postings
    // comes once, with NULLs), in the order they were written.
    {
        let mut rows = sqlx::query(
            "SELECT t.id, t.card_id, t.balance_before, t.balance_after, \
             p.account_kind, p.owner_id, p.currency, p.amount \
             FROM transactions t LEFT JOIN postings p ON p.transaction_id = t.id \
             ORDER BY t.seq, p.id",
        )
        .fetch(&mut *conn);
        let mut current: Option<Entry> = None;
        while let Some(row) = rows.try_next().await? {
            let id: String = row.try_get(0)?;
            if current.as_ref().is_none_or(|entry| entry.id != id) {
                if let Some(done) = current.take() {
                    done.close(&mut report.violations);
                }
                let before: i64 = row.try_get(2)?;
                let after: i64 = row.try_get(3)?;
                current = Some(Entry {
                    id,
                    card_id: row.try_get(1)?,
                    balance_change: i128::from(after) - i128::from(before),
                    per_currency: BTreeMap::new(),
                    card_posted: 0,
                });
            }
            let Some(kind) = row.try_get::<Option<String>, _>(4)? else {
                continue;
            };
            let entry = current.as_mut().expect("set above");
            let owner: String = row.try_get(5)?;
            let currency: String = row.try_get(6)?;
            let amount = i128::from(row.try_get::<i64, _>(7)?);
            sums.postings += 1;
            *entry.per_currency.entry(currency.clone()).or_default() += amount;
            let held = match kind.as_str() {
                "card_available" => false,
                "card_held" => true,
                _ => continue,
            };
            if owner == entry.card_id {
                entry.card_posted += amount;
            }
            *sums.outstanding.entry(currency).or_default() += amount;
            let card = sums.cards.entry(owner).or_default();
            if held {
                card.1 += amount;
            } else {
                card.0 += amount;
            }
        }
        if let Some(done) = current.take() {
            done.close(&mut report.violations);
        }
    }

    // Every card against its ledger accounts and its pending holds.
    {
        let mut rows = sqlx::query(
            "SELECT c.id, c.balance, c.held, \
             (SELECT COALESCE(SUM(h.amount), 0) FROM holds h WHERE h.card_id = c.id AND h.state = 'pending') \
             FROM cards c ORDER BY c.seq",
        )
        .fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            let id: String = row.try_get(0)?;
            let balance = i128::from(row.try_get::<i64, _>(1)?);
            let held = i128::from(row.try_get::<i64, _>(2)?);
            let pending = i128::from(row.try_get::<i64, _>(3)?);
            let (ledger_available, ledger_held) = sums.cards.remove(&id).unwrap_or_default();
            report.cards += 1;
            if balance != ledger_available + ledger_held {
                report.violations.push(format!(
                    "card balance differs from its ledger accounts: {id}: cached {balance}, ledger {}",
                    ledger_available + ledger_held
                ));
            }
            if held != ledger_held {
                report.violations.push(format!(
                    "card held amount differs from its held account: {id}: cached {held}, ledger {ledger_held}"
                ));
            }
            if held != pending {
                report.violations.push(format!(
                    "card held amount differs from its pending holds: {id}: cached {held}, pending holds {pending}"
                ));
            }
        }
    }
    for orphan in sums.cards.keys() {
        report.violations.push(format!(
            "postings to card accounts of a card that does not exist: {orphan}"
        ));
    }

    for (what, sql) in CHECKS {
        let rows = sqlx::query(*sql).fetch_all(&mut *conn).await?;
        for row in rows {
            let detail: String = row.try_get(0)?;
            report.violations.push(format!("{what}: {detail}"));
        }
    }
    let counts = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM transactions), (SELECT COUNT(*) FROM holds WHERE state = 'pending')",
    )
    .fetch_one(&mut *conn)
    .await?;
    report.transactions = counts.try_get(0)?;
    report.pending_holds = counts.try_get(1)?;
    report.postings = sums.postings;
    report.outstanding = sums.outstanding.into_iter().collect();
    Ok(report)
}
