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
use crate::rows::Columns;

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
pub(crate) const CHECKS: &[(&str, &str)] = &[
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
    // The references of the append-only rows, which carry no foreign keys (migration 0009):
    // their writers check them; this finds a row that escaped or was forged.
    (
        "transaction names a card that does not exist or is another merchant's",
        "SELECT t.id || ' names card ' || t.card_id || ' of merchant ' || t.merchant_id \
         FROM transactions t LEFT JOIN cards c ON c.id = t.card_id \
         WHERE c.id IS NULL OR c.merchant_id <> t.merchant_id",
    ),
    (
        "transaction reverses a transaction that does not exist or is another merchant's",
        "SELECT t.id || ' reverses ' || t.reverses FROM transactions t \
         LEFT JOIN transactions o ON o.id = t.reverses \
         WHERE t.reverses IS NOT NULL AND (o.id IS NULL OR o.merchant_id <> t.merchant_id)",
    ),
    (
        "posting belongs to no transaction",
        "SELECT 'posting ' || p.id || ' names ' || p.transaction_id FROM postings p \
         LEFT JOIN transactions t ON t.id = p.transaction_id WHERE t.id IS NULL",
    ),
    (
        "event names a merchant that does not exist",
        "SELECT e.id || ' names ' || e.merchant_id FROM events e \
         LEFT JOIN merchants m ON m.id = e.merchant_id WHERE m.id IS NULL",
    ),
    (
        "hold captured more than it held",
        "SELECT id || ': held ' || amount || ', captured ' || captured_amount FROM holds \
         WHERE captured_amount > amount OR captured_amount < 0",
    ),
];

/// Every transaction with its postings (one row with NULL posting columns when it has none),
/// in the order they were written.
pub(crate) const POSTINGS_SQL: &str = "SELECT t.id AS transaction_id, t.card_id, t.balance_before, \
    t.balance_after, p.account_kind, p.owner_id, p.currency, p.amount \
    FROM transactions t LEFT JOIN postings p ON p.transaction_id = t.id ORDER BY t.seq, p.id";

/// Every posting by journal entry: each entry must sum to zero per currency. An entry may span
/// several transactions (a transfer's or a merge's cards).
pub(crate) const ENTRIES_SQL: &str =
    "SELECT entry_id, currency, amount FROM postings ORDER BY entry_id, currency";

/// Every card with its cached amounts and the sum of its pending holds.
pub(crate) const CARDS_SQL: &str = "SELECT c.id, c.balance, c.held, \
    CAST(COALESCE((SELECT SUM(h.amount) FROM holds h WHERE h.card_id = c.id AND h.state = 'pending'), 0) \
    AS BIGINT) AS pending FROM cards c ORDER BY c.seq";

pub(crate) const COUNTS_SQL: &str = "SELECT (SELECT COUNT(*) FROM transactions) AS transactions, \
    (SELECT COUNT(*) FROM holds WHERE state = 'pending') AS pending_holds";

/// One transaction as the pass sees it: its card's change and its postings to that card.
struct Entry {
    id: String,
    card_id: String,
    balance_change: i128,
    card_posted: i128,
}

impl Entry {
    fn close(self, violations: &mut Vec<String>) {
        if self.card_posted != self.balance_change {
            violations.push(format!(
                "transaction's balance change differs from its postings: {} changes the balance by {}, \
                 its postings to the card by {}",
                self.id, self.balance_change, self.card_posted
            ));
        }
    }
}

/// The verification as rows stream past; each backend feeds it the rows of the queries above.
#[derive(Default)]
pub(crate) struct Pass {
    report: VerifyReport,
    /// Per card: (available, held) from its accounts.
    cards: HashMap<String, (i128, i128)>,
    /// Per currency: value on cards.
    outstanding: BTreeMap<String, i128>,
    current: Option<Entry>,
    /// The journal entry being summed by [`Pass::entry_posting`], per currency.
    journal: Option<(String, BTreeMap<String, i128>)>,
}

impl Pass {
    /// One row of [`POSTINGS_SQL`].
    pub(crate) fn posting(&mut self, row: &impl Columns) -> StoreResult<()> {
        let id = row.text("transaction_id")?;
        if self.current.as_ref().is_none_or(|entry| entry.id != id) {
            if let Some(done) = self.current.take() {
                done.close(&mut self.report.violations);
            }
            self.current = Some(Entry {
                id,
                card_id: row.text("card_id")?,
                balance_change: i128::from(row.integer("balance_after")?)
                    - i128::from(row.integer("balance_before")?),
                card_posted: 0,
            });
        }
        let Some(kind) = row.optional_text("account_kind")? else {
            return Ok(());
        };
        let entry = self.current.as_mut().expect("set above");
        let owner = row.text("owner_id")?;
        let currency = row.text("currency")?;
        let amount = i128::from(row.integer("amount")?);
        self.report.postings += 1;
        let held = match kind.as_str() {
            "card_available" => false,
            "card_held" => true,
            _ => return Ok(()),
        };
        if owner == entry.card_id {
            entry.card_posted += amount;
        }
        *self.outstanding.entry(currency).or_default() += amount;
        let card = self.cards.entry(owner).or_default();
        if held {
            card.1 += amount;
        } else {
            card.0 += amount;
        }
        Ok(())
    }

    /// One row of [`ENTRIES_SQL`].
    pub(crate) fn entry_posting(&mut self, row: &impl Columns) -> StoreResult<()> {
        let entry_id = row.text("entry_id")?;
        if self.journal.as_ref().is_none_or(|(id, _)| *id != entry_id) {
            self.close_journal();
            self.journal = Some((entry_id, BTreeMap::new()));
        }
        let (_, sums) = self.journal.as_mut().expect("set above");
        *sums.entry(row.text("currency")?).or_default() += i128::from(row.integer("amount")?);
        Ok(())
    }

    fn close_journal(&mut self) {
        if let Some((id, sums)) = self.journal.take() {
            for (currency, sum) in sums {
                if sum != 0 {
                    self.report.violations.push(format!(
                        "journal entry does not balance: {id} {currency} sums to {sum}"
                    ));
                }
            }
        }
    }

    /// One row of [`CARDS_SQL`], after every posting.
    pub(crate) fn card(&mut self, row: &impl Columns) -> StoreResult<()> {
        if let Some(done) = self.current.take() {
            done.close(&mut self.report.violations);
        }
        let id = row.text("id")?;
        let balance = i128::from(row.integer("balance")?);
        let held = i128::from(row.integer("held")?);
        let pending = i128::from(row.integer("pending")?);
        let (ledger_available, ledger_held) = self.cards.remove(&id).unwrap_or_default();
        let violations = &mut self.report.violations;
        self.report.cards += 1;
        if balance != ledger_available + ledger_held {
            violations.push(format!(
                "card balance differs from its ledger accounts: {id}: cached {balance}, ledger {}",
                ledger_available + ledger_held
            ));
        }
        if held != ledger_held {
            violations.push(format!(
                "card held amount differs from its held account: {id}: cached {held}, ledger {ledger_held}"
            ));
        }
        if held != pending {
            violations.push(format!(
                "card held amount differs from its pending holds: {id}: cached {held}, pending holds {pending}"
            ));
        }
        Ok(())
    }

    /// A violation found by one of [`CHECKS`].
    pub(crate) fn violation(&mut self, what: &str, detail: String) {
        self.report.violations.push(format!("{what}: {detail}"));
    }

    /// The report, given the row of [`COUNTS_SQL`].
    pub(crate) fn finish(mut self, counts: &impl Columns) -> StoreResult<VerifyReport> {
        if let Some(done) = self.current.take() {
            done.close(&mut self.report.violations);
        }
        self.close_journal();
        for orphan in self.cards.keys() {
            self.report.violations.push(format!(
                "postings to card accounts of a card that does not exist: {orphan}"
            ));
        }
        self.report.transactions = counts.integer("transactions")?;
        self.report.pending_holds = counts.integer("pending_holds")?;
        self.report.outstanding = self.outstanding.into_iter().collect();
        Ok(self.report)
    }
}

pub(crate) async fn run_sqlite(conn: &mut SqliteConnection) -> StoreResult<VerifyReport> {
    let mut pass = Pass::default();
    let mut rows = sqlx::query(POSTINGS_SQL).fetch(&mut *conn);
    while let Some(row) = rows.try_next().await? {
        pass.posting(&row)?;
    }
    drop(rows);
    let mut rows = sqlx::query(ENTRIES_SQL).fetch(&mut *conn);
    while let Some(row) = rows.try_next().await? {
        pass.entry_posting(&row)?;
    }
    drop(rows);
    let mut rows = sqlx::query(CARDS_SQL).fetch(&mut *conn);
    while let Some(row) = rows.try_next().await? {
        pass.card(&row)?;
    }
    drop(rows);
    for (what, sql) in CHECKS {
        for row in sqlx::query(*sql).fetch_all(&mut *conn).await? {
            pass.violation(what, row.try_get(0)?);
        }
    }
    let counts = sqlx::query(COUNTS_SQL).fetch_one(&mut *conn).await?;
    pass.finish(&counts)
}
