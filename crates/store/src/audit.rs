//! The audit trail's rows (`audit_events`, migration 0014): appended by the job whose effect
//! they record (`WriteTx::insert_audit_event`, set-wise with the rest of a batch decided in
//! memory) and read back by merchant, newest first, with filters. The same SQL on both
//! backends, bound on a backend's read pool by [`reads_on_pool!`].

use giftd_domain::{AuditEventId, MerchantId, Timestamp};

/// One row of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEventRow {
    pub id: AuditEventId,
    pub merchant_id: MerchantId,
    pub occurred_at: Timestamp,
    /// `api_key`, `staff` or `cli`.
    pub actor_type: String,
    /// The API key's or staff member's id (none for the command line).
    pub actor_id: Option<String>,
    pub request_id: Option<String>,
    pub client_address: Option<String>,
    pub method: String,
    /// The path as requested, without its query, a segment of many digits masked.
    pub path: String,
    /// What ran: the command's family and kind (`Command::Redeem`), or the route of a request
    /// refused before any command.
    pub operation: String,
    /// The ids the request named or the command made, space-separated.
    pub objects: String,
    /// `succeeded`, `refused`, `failed` or `replayed` (an idempotent retry answered again).
    pub outcome: String,
    /// The HTTP status answered.
    pub status: i64,
    /// Why it was refused, in words, when a command said so.
    pub reason: Option<String>,
}

/// Which rows a listing wants (all given ones must hold).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_id: Option<String>,
    pub actor_type: Option<String>,
    pub outcome: Option<String>,
    /// An id among the row's objects.
    pub object: Option<String>,
    /// Inclusive.
    pub from: Option<Timestamp>,
    /// Exclusive.
    pub to: Option<Timestamp>,
}

/// The head of an insert, the columns in the order [`values`] gives them.
pub(crate) const INSERT_HEAD: &str = "INSERT INTO audit_events (merchant_id, id, occurred_at, actor_type, \
     actor_id, request_id, client_address, method, path, operation, objects, outcome, status, reason) VALUES ";
/// One row, on the per-job path.
pub(crate) const INSERT_AUDIT_EVENT: &str = "INSERT INTO audit_events (merchant_id, id, occurred_at, actor_type, \
     actor_id, request_id, client_address, method, path, operation, objects, outcome, status, reason) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

/// The merchant's rows, newest first, after the cursor `$8` (an id), filtered.
pub(crate) const AUDIT_EVENTS: &str = "SELECT merchant_id, id, occurred_at, actor_type, actor_id, request_id, \
     client_address, method, path, operation, objects, outcome, status, reason FROM audit_events \
     WHERE merchant_id = $1 AND ($2 IS NULL OR actor_id = $2) AND ($3 IS NULL OR actor_type = $3) \
     AND ($4 IS NULL OR outcome = $4) AND ($5 IS NULL OR (' ' || objects || ' ') LIKE ('% ' || $5 || ' %')) \
     AND ($6 IS NULL OR occurred_at >= $6) AND ($7 IS NULL OR occurred_at < $7) \
     AND ($8 IS NULL OR id < $8) ORDER BY id DESC LIMIT $9";

pub(crate) fn row(row: &impl crate::rows::Columns) -> crate::StoreResult<AuditEventRow> {
    Ok(AuditEventRow {
        id: AuditEventId::new(row.text("id")?),
        merchant_id: MerchantId::new(row.text("merchant_id")?),
        occurred_at: Timestamp::from_unix_millis(row.integer("occurred_at")?),
        actor_type: row.text("actor_type")?,
        actor_id: row.optional_text("actor_id")?,
        request_id: row.optional_text("request_id")?,
        client_address: row.optional_text("client_address")?,
        method: row.text("method")?,
        path: row.text("path")?,
        operation: row.text("operation")?,
        objects: row.text("objects")?,
        outcome: row.text("outcome")?,
        status: row.integer("status")?,
        reason: row.optional_text("reason")?,
    })
}

/// The listing on a backend's read pool (`$pool`). Each backend invokes it once in a module of
/// its own and its `Store` implementation calls it.
macro_rules! reads_on_pool {
    ($pool:ty) => {
        pub(crate) async fn events(
            reads: &$pool,
            merchant: &giftd_domain::MerchantId,
            filter: &$crate::AuditFilter,
            page: &$crate::Page,
        ) -> $crate::StoreResult<Vec<$crate::AuditEventRow>> {
            let millis = |at: Option<giftd_domain::Timestamp>| at.map(giftd_domain::Timestamp::unix_millis);
            let rows = sqlx::query($crate::audit::AUDIT_EVENTS)
                .bind(merchant.as_str())
                .bind(filter.actor_id.as_deref())
                .bind(filter.actor_type.as_deref())
                .bind(filter.outcome.as_deref())
                .bind(filter.object.as_deref())
                .bind(millis(filter.from))
                .bind(millis(filter.to))
                .bind(page.cursor.as_deref())
                .bind(i64::from(page.limit))
                .fetch_all(reads)
                .await?;
            rows.iter().map($crate::audit::row).collect()
        }
    };
}

pub(crate) use reads_on_pool;
