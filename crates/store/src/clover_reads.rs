//! The Clover facade's reads (`GET /v1/charges`, `GET /v1/refunds` and their single-object
//! forms): which ledger transactions are Clover charges and refunds, read back with what their
//! answers need, in pages by time. The SQL is written once, with PostgreSQL's `$N`
//! placeholders numbered in order of first appearance (as `sql.rs` does), and each backend's
//! `clover_reads.rs` runs it on its read pool; rows are decoded here, for both.
//!
//! What the sets are is docs/CLOVER.md's ("Reads"): every `redemption` and every `hold` of the
//! merchant is a charge; a refund is a `refund`, a `void` of anything but a refund (voiding a
//! refund cancels it, it is no refund of its own), or a `release` of a hold released on
//! request (not one that expired). Nothing here decides what a read shows; the service does,
//! from the facts a row carries.

use giftd_domain::operations::HoldState;
use giftd_domain::{HoldId, Timestamp, TransactionId};

use crate::rows::{self, Columns};
use crate::{StoreError, StoreResult, TransactionRecord};

/// Which of the two lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloverObject {
    Charge,
    Refund,
}

/// Where an object sits in its list, for a cursor: lists are ordered by creation time, ties
/// broken by insertion order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloverPosition {
    pub created_at: i64,
    pub seq: i64,
}

/// Which way a page runs from its cursor. Either way the cursor object itself is included
/// (when it passes the filters), as Clover's cursors include theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloverDirection {
    /// The cursor and what was created before it, newest first (`starting_after`, and the
    /// first page, which starts after nothing).
    Older(Option<CloverPosition>),
    /// The cursor and what was created after it, oldest first (`ending_before`).
    Newer(CloverPosition),
}

/// A page of one list: creation time within `[created_from, created_until]` (milliseconds,
/// both inclusive), from the cursor in `direction`, at most `limit` objects, for refunds
/// perhaps only those of one charge.
#[derive(Debug, Clone)]
pub struct CloverListQuery {
    pub created_from: i64,
    pub created_until: i64,
    pub direction: CloverDirection,
    /// Refunds only: the refunds of this Clover charge (a redemption, or a hold whose release,
    /// or whose capture's refunds and void, count as its refunds).
    pub charge: Option<TransactionId>,
    pub limit: u32,
}

/// The hold a row names (a `hold` transaction's own, or the one a `release` released).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloverHoldFacts {
    pub id: HoldId,
    pub amount: i64,
    pub captured_amount: i64,
    pub state: HoldState,
    pub expires_at: Timestamp,
    /// Its Clover `lock_id`, when the Clover facade placed it.
    pub lock_id: Option<i64>,
}

/// A Clover charge or refund as the ledger has it, with the facts its answer is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloverLedgerRow {
    pub transaction: TransactionRecord,
    pub position: CloverPosition,
    pub card_last4: String,
    /// The card's expiry now.
    pub card_expires_at: Option<Timestamp>,
    /// What the card held (in pending holds) just before and just after the transaction,
    /// from its `card_held` postings.
    pub held_before: i64,
    pub held_after: i64,
    pub hold: Option<CloverHoldFacts>,
    /// A charge: what is refunded of it (of a hold: of its capture) by refunds not cancelled.
    /// A refund: 0.
    pub refunded: i64,
    /// A charge: whether it (a hold: its capture) was voided. A refund: whether it was
    /// cancelled (voided).
    pub voided: bool,
    /// A refund: the Clover charge it reverses (of a capture, its hold's `hold` transaction;
    /// of a release, the released hold's). A charge: `None`.
    pub charge: Option<TransactionId>,
}

impl CloverLedgerRow {
    /// Available value (balance less held) before and after the transaction.
    pub fn available_before(&self) -> i64 {
        self.transaction.balance_before - self.held_before
    }

    pub fn available_after(&self) -> i64 {
        self.transaction.balance_after - self.held_after
    }
}

/// The charges: every redemption and every hold (a Clover lock, or a hold placed through
/// another API).
const CHARGES: &str = "t.type IN ('redemption', 'hold')";
/// The refunds: refunds of a charge (a merchandise return, a refund of nothing, is none);
/// voids of anything but a refund (a void of a refund cancels it); releases of holds released
/// on request (an expired hold's release is no refund).
const REFUNDS: &str = "((t.type = 'refund' AND t.reverses IS NOT NULL) \
     OR (t.type = 'void' AND o.type <> 'refund') \
     OR (t.type = 'release' AND EXISTS (SELECT 1 FROM holds rh WHERE rh.id = t.hold_id AND \
     rh.state = 'released')))";

/// The set predicate of a list, on `t` (with `o`, the transaction `t` reverses, joined).
fn set(object: CloverObject) -> &'static str {
    match object {
        CloverObject::Charge => CHARGES,
        CloverObject::Refund => REFUNDS,
    }
}

/// The transactions a page is read from, `t` with what it reverses as `o`, and two computed
/// columns: `target_id`, whose refunds and void count for a charge (a hold's capture, else the
/// transaction itself), and `clover_charge`, the Clover charge a refund reverses.
const FROM: &str = "SELECT t.id, t.merchant_id, t.card_id, t.type, t.amount, t.currency, \
     t.balance_before, t.balance_after, t.reference, t.reverses, t.hold_id, t.channel, t.created_at, t.seq, \
     CASE WHEN t.type = 'hold' THEN (SELECT cap.id FROM transactions cap WHERE cap.card_id = \
     t.card_id AND cap.hold_id = t.hold_id AND cap.type = 'capture' AND cap.seq > t.seq) ELSE t.id \
     END AS target_id, \
     CASE WHEN t.type = 'release' THEN (SELECT rh.transaction_id FROM holds rh WHERE rh.id = \
     t.hold_id) WHEN o.type = 'capture' THEN (SELECT ch.transaction_id FROM holds ch WHERE ch.id = \
     o.hold_id) ELSE t.reverses END AS clover_charge \
     FROM transactions t LEFT JOIN transactions o ON o.id = t.reverses";

/// What every row adds to its transaction (`q`): the card, the held amounts around it, its
/// hold and lock number, and the refunds and void of its target.
const FACTS: &str = "SELECT q.*, c.last4 AS card_last4, c.expires_at AS card_expires_at, \
     c.held AS card_held, \
     (SELECT CAST(COALESCE(SUM(p.amount), 0) AS BIGINT) FROM transactions l JOIN postings p ON \
     p.transaction_id = l.id WHERE l.card_id = q.card_id AND l.seq > q.seq AND p.owner_id = \
     q.card_id AND p.account_kind = 'card_held') AS held_later, \
     (SELECT CAST(COALESCE(SUM(p.amount), 0) AS BIGINT) FROM postings p WHERE p.transaction_id = \
     q.id AND p.owner_id = q.card_id AND p.account_kind = 'card_held') AS held_own, \
     h.id AS hold_row_id, h.amount AS hold_amount, h.captured_amount AS hold_captured_amount, \
     h.state AS hold_state, h.expires_at AS hold_expires_at, k.lock_id AS lock_id, \
     (SELECT CAST(COALESCE(SUM(r.amount), 0) AS BIGINT) FROM transactions r WHERE r.reverses = \
     q.target_id AND r.type = 'refund' AND NOT EXISTS (SELECT 1 FROM transactions v WHERE \
     v.reverses = r.id AND v.type = 'void')) AS refunded, \
     (SELECT CAST(COUNT(*) AS BIGINT) FROM transactions v WHERE v.reverses = q.target_id AND \
     v.type = 'void') AS voids \
     FROM (";

/// Closes [`FACTS`] around a page (`q`).
const FACTS_JOINS: &str = ") q JOIN cards c ON c.id = q.card_id \
     LEFT JOIN holds h ON h.id = q.hold_id \
     LEFT JOIN clover_locks k ON k.hold_id = q.hold_id";

/// One object by id: `$1` merchant, `$2` id.
pub(crate) fn object_by_id(object: CloverObject) -> String {
    format!(
        "{FACTS}{FROM} WHERE t.merchant_id = $1 AND t.id = $2 AND {set}{FACTS_JOINS}",
        set = set(object)
    )
}

/// A page: `$1` merchant, `$2`/`$3` the creation range, `$4`/`$5` the cursor's position,
/// then for the refunds of one charge `$6` its id, and last the limit (`$6`, or `$7` after a
/// charge).
pub(crate) fn page(object: CloverObject, direction: CloverDirection, of_charge: bool) -> String {
    let (from_cursor, order) = match direction {
        CloverDirection::Older(_) => (
            "(t.created_at < $4 OR (t.created_at = $4 AND t.seq <= $5))",
            "created_at DESC, seq DESC",
        ),
        CloverDirection::Newer(_) => (
            "(t.created_at > $4 OR (t.created_at = $4 AND t.seq >= $5))",
            "created_at ASC, seq ASC",
        ),
    };
    // The refunds of one charge, found through indexes: what reverses it (a redemption's
    // refunds and void), the release of its hold, and what reverses its hold's capture.
    let charge = if of_charge {
        " AND t.id IN (SELECT r.id FROM transactions r WHERE r.reverses = $6 \
         UNION ALL SELECT r.id FROM transactions x JOIN transactions r ON r.card_id = x.card_id \
         AND r.hold_id = x.hold_id AND r.type = 'release' WHERE x.id = $6 AND x.type = 'hold' \
         UNION ALL SELECT r.id FROM transactions x JOIN transactions cap ON cap.card_id = x.card_id \
         AND cap.hold_id = x.hold_id AND cap.type = 'capture' JOIN transactions r ON r.reverses = \
         cap.id WHERE x.id = $6 AND x.type = 'hold')"
    } else {
        ""
    };
    let limit = if of_charge { "$7" } else { "$6" };
    format!(
        "{FACTS}{FROM} WHERE t.merchant_id = $1 AND {set} AND t.created_at >= $2 AND \
         t.created_at <= $3 AND {from_cursor}{charge} ORDER BY t.{order_t} LIMIT {limit}{FACTS_JOINS} \
         ORDER BY q.{order_q}",
        set = set(object),
        order_t = order.replace(", ", ", t."),
        order_q = order.replace(", ", ", q."),
    )
}

/// The cursor parameters (`$4`, `$5`) of a direction: the first page starts after nothing.
pub(crate) fn cursor_parameters(direction: CloverDirection) -> (i64, i64) {
    match direction {
        CloverDirection::Older(Some(at)) | CloverDirection::Newer(at) => (at.created_at, at.seq),
        CloverDirection::Older(None) => (i64::MAX, i64::MAX),
    }
}

fn corrupt(what: &str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {value}"))
}

/// Decodes a row of [`object_by_id`] or [`page`].
pub(crate) fn row(row: &impl Columns) -> StoreResult<CloverLedgerRow> {
    let transaction = rows::transaction(row)?;
    let held_after = row.integer("card_held")? - row.integer("held_later")?;
    let held_before = held_after - row.integer("held_own")?;
    let hold = match row.optional_text("hold_row_id")? {
        None => None,
        Some(id) => {
            let state: String = row.text("hold_state")?;
            Some(CloverHoldFacts {
                id: HoldId::new(id),
                amount: row.integer("hold_amount")?,
                captured_amount: row.integer("hold_captured_amount")?,
                state: HoldState::parse(&state).ok_or_else(|| corrupt("hold state", &state))?,
                expires_at: Timestamp::from_unix_millis(row.integer("hold_expires_at")?),
                lock_id: row.optional_integer("lock_id")?,
            })
        }
    };
    let charge = match transaction.transaction_type {
        giftd_domain::TransactionType::Redemption | giftd_domain::TransactionType::Hold => None,
        _ => Some(
            row.optional_text("clover_charge")?
                .map(TransactionId::new)
                .ok_or_else(|| corrupt("refund without its charge", &transaction.id))?,
        ),
    };
    Ok(CloverLedgerRow {
        position: CloverPosition {
            created_at: transaction.created_at.unix_millis(),
            seq: row.integer("seq")?,
        },
        card_last4: row.text("card_last4")?,
        card_expires_at: row
            .optional_integer("card_expires_at")?
            .map(Timestamp::from_unix_millis),
        held_before,
        held_after,
        hold,
        refunded: row.integer("refunded")?,
        voided: row.integer("voids")? > 0,
        charge,
        transaction,
    })
}

/// The two reads on a backend's read pool (`$pool`): the statements above, bound and run, their
/// rows decoded here. Each backend's `clover_reads.rs` is this macro on its pool type, so that
/// the binding is written once.
macro_rules! reads_on_pool {
    ($pool:ty) => {
        pub(crate) async fn object(
            reads: &$pool,
            merchant: &giftd_domain::MerchantId,
            object: $crate::clover_reads::CloverObject,
            id: &giftd_domain::TransactionId,
        ) -> $crate::StoreResult<Option<$crate::clover_reads::CloverLedgerRow>> {
            let sql = $crate::clover_reads::object_by_id(object);
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(merchant.as_str())
                .bind(id.as_str())
                .fetch_optional(reads)
                .await?;
            row.as_ref().map($crate::clover_reads::row).transpose()
        }

        pub(crate) async fn page(
            reads: &$pool,
            merchant: &giftd_domain::MerchantId,
            object: $crate::clover_reads::CloverObject,
            query: &$crate::clover_reads::CloverListQuery,
        ) -> $crate::StoreResult<Vec<$crate::clover_reads::CloverLedgerRow>> {
            let sql = $crate::clover_reads::page(object, query.direction, query.charge.is_some());
            let (cursor_created_at, cursor_seq) = $crate::clover_reads::cursor_parameters(query.direction);
            let mut statement = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(merchant.as_str())
                .bind(query.created_from)
                .bind(query.created_until)
                .bind(cursor_created_at)
                .bind(cursor_seq);
            if let Some(charge) = &query.charge {
                statement = statement.bind(charge.as_str());
            }
            let rows = statement
                .bind(i64::from(query.limit))
                .fetch_all(reads)
                .await?;
            rows.iter().map($crate::clover_reads::row).collect()
        }
    };
}
pub(crate) use reads_on_pool;

#[cfg(test)]
mod tests {
    use super::*;

    /// The parameter numbers of a statement in the order they first appear.
    fn first_appearances(sql: &str) -> Vec<u32> {
        let mut seen = Vec::new();
        let mut rest = sql;
        while let Some(at) = rest.find('$') {
            rest = &rest[at + 1..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse::<u32>()
                && !seen.contains(&n)
            {
                seen.push(n);
            }
        }
        seen
    }

    #[test]
    fn every_clover_read_numbers_its_parameters_in_the_order_they_first_appear() {
        let at = CloverPosition {
            created_at: 0,
            seq: 0,
        };
        let mut statements = vec![
            object_by_id(CloverObject::Charge),
            object_by_id(CloverObject::Refund),
        ];
        for object in [CloverObject::Charge, CloverObject::Refund] {
            for direction in [CloverDirection::Older(None), CloverDirection::Newer(at)] {
                statements.push(page(object, direction, false));
            }
        }
        statements.push(page(CloverObject::Refund, CloverDirection::Older(None), true));
        for sql in &statements {
            let seen = first_appearances(sql);
            let expected: Vec<u32> = (1..=u32::try_from(seen.len()).expect("few")).collect();
            assert_eq!(seen, expected, "{sql}");
            assert!(!sql.contains('?'), "a SQLite-only placeholder in {sql}");
        }
    }
}
