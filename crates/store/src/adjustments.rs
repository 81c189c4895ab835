//! Adjustment requests (`adjustments`, migration 0015) and each merchant's approval threshold:
//! the rows, the SQL both backends run as written, and the reads bound on a backend's pool by
//! [`reads_on_pool!`]. The writes are `WriteTx`'s, inside the jobs that decide them.

use giftd_domain::adjustment::{AdjustmentReason, AdjustmentState};
use giftd_domain::{AdjustmentId, CardId, MerchantId, Timestamp, TransactionId};

/// An adjustment as asked, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdjustmentRecord {
    pub id: AdjustmentId,
    pub merchant_id: MerchantId,
    pub card_id: CardId,
    /// Signed minor units of the card's currency: positive puts value on.
    pub amount: i64,
    pub reason: AdjustmentReason,
    pub note: Option<String>,
    pub state: AdjustmentState,
    /// `api_key`, `staff` or `cli`, and its id.
    pub requested_by_type: String,
    pub requested_by_id: Option<String>,
    pub requested_at: Timestamp,
    /// A pending request not decided by then moves nothing.
    pub expires_at: Timestamp,
    pub decided_by_type: Option<String>,
    pub decided_by_id: Option<String>,
    pub decided_at: Option<Timestamp>,
    /// The `adjustment` transaction, once applied.
    pub transaction_id: Option<TransactionId>,
}

const COLUMNS: &str = "id, merchant_id, card_id, amount, reason, note, state, requested_by_type, \
     requested_by_id, requested_at, expires_at, decided_by_type, decided_by_id, decided_at, transaction_id";

pub(crate) const INSERT_ADJUSTMENT: &str = "INSERT INTO adjustments (id, merchant_id, card_id, amount, reason, \
     note, state, requested_by_type, requested_by_id, requested_at, expires_at, decided_by_type, decided_by_id, \
     decided_at, transaction_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";
/// What a decision changes.
pub(crate) const UPDATE_ADJUSTMENT: &str = "UPDATE adjustments SET state = $1, decided_by_type = $2, \
     decided_by_id = $3, decided_at = $4, transaction_id = $5 WHERE merchant_id = $6 AND id = $7";
pub(crate) const THRESHOLD: &str = "SELECT adjustment_approval_threshold FROM merchants WHERE id = $1";
pub(crate) const SET_THRESHOLD: &str =
    "UPDATE merchants SET adjustment_approval_threshold = $1 WHERE id = $2";

pub(crate) fn by_id() -> String {
    format!("SELECT {COLUMNS} FROM adjustments WHERE merchant_id = $1 AND id = $2")
}

/// The merchant's adjustments, newest first (ids are time-ordered), of one state if `$2`.
pub(crate) fn page() -> String {
    format!(
        "SELECT {COLUMNS} FROM adjustments WHERE merchant_id = $1 AND ($2 IS NULL OR state = $2) \
         AND ($3 IS NULL OR card_id = $3) AND ($4 IS NULL OR id < $4) ORDER BY id DESC LIMIT $5"
    )
}

pub(crate) fn row(row: &impl crate::rows::Columns) -> crate::StoreResult<AdjustmentRecord> {
    let corrupt = |what: &str, value: &str| crate::StoreError::Corrupt(format!("{what} {value:?}"));
    let reason = row.text("reason")?;
    let state = row.text("state")?;
    let at = |column: &str| {
        row.optional_integer(column)
            .map(|v| v.map(Timestamp::from_unix_millis))
    };
    Ok(AdjustmentRecord {
        id: AdjustmentId::new(row.text("id")?),
        merchant_id: MerchantId::new(row.text("merchant_id")?),
        card_id: CardId::new(row.text("card_id")?),
        amount: row.integer("amount")?,
        reason: AdjustmentReason::parse(&reason).ok_or_else(|| corrupt("adjustment reason", &reason))?,
        note: row.optional_text("note")?,
        state: AdjustmentState::parse(&state).ok_or_else(|| corrupt("adjustment state", &state))?,
        requested_by_type: row.text("requested_by_type")?,
        requested_by_id: row.optional_text("requested_by_id")?,
        requested_at: Timestamp::from_unix_millis(row.integer("requested_at")?),
        expires_at: Timestamp::from_unix_millis(row.integer("expires_at")?),
        decided_by_type: row.optional_text("decided_by_type")?,
        decided_by_id: row.optional_text("decided_by_id")?,
        decided_at: at("decided_at")?,
        transaction_id: row.optional_text("transaction_id")?.map(TransactionId::new),
    })
}

/// The reads on a backend's read pool (`$pool`).
macro_rules! reads_on_pool {
    ($pool:ty) => {
        pub(crate) async fn one(
            reads: &$pool,
            merchant: &giftd_domain::MerchantId,
            id: &giftd_domain::AdjustmentId,
        ) -> $crate::StoreResult<Option<$crate::AdjustmentRecord>> {
            let row = sqlx::query(sqlx::AssertSqlSafe($crate::adjustments::by_id()))
                .bind(merchant.as_str())
                .bind(id.as_str())
                .fetch_optional(reads)
                .await?;
            row.as_ref().map($crate::adjustments::row).transpose()
        }

        pub(crate) async fn page(
            reads: &$pool,
            merchant: &giftd_domain::MerchantId,
            state: Option<giftd_domain::adjustment::AdjustmentState>,
            card: Option<&giftd_domain::CardId>,
            page: &$crate::Page,
        ) -> $crate::StoreResult<Vec<$crate::AdjustmentRecord>> {
            let rows = sqlx::query(sqlx::AssertSqlSafe($crate::adjustments::page()))
                .bind(merchant.as_str())
                .bind(state.map(giftd_domain::adjustment::AdjustmentState::as_str))
                .bind(card.map(giftd_domain::CardId::as_str))
                .bind(page.cursor.as_deref())
                .bind(i64::from(page.limit))
                .fetch_all(reads)
                .await?;
            rows.iter().map($crate::adjustments::row).collect()
        }

        pub(crate) async fn threshold(
            reads: &$pool,
            merchant: &giftd_domain::MerchantId,
        ) -> $crate::StoreResult<i64> {
            let found: Option<i64> = sqlx::query_scalar($crate::adjustments::THRESHOLD)
                .bind(merchant.as_str())
                .fetch_optional(reads)
                .await?;
            Ok(found.unwrap_or(giftd_domain::adjustment::DEFAULT_APPROVAL_THRESHOLD))
        }
    };
}

pub(crate) use reads_on_pool;
