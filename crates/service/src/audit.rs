//! The audit trail: every state-changing request leaves a row saying who made it (an API key,
//! a staff member, the command line), what ran (the command, the method and path, the ids it
//! named or made), from where (the client's address, the request id), when, and how it ended.
//!
//! A request's context ([`RequestContext`]) is set by the HTTP edge around the whole request
//! ([`within`]) and completed by authentication ([`identify`]). `Service::execute` takes it into
//! the command's job, which writes the row in the same transaction as the command's effect:
//! a committed effect always has its row, and a refused command leaves only the row of its
//! refusal (written after the command's writes were rolled back), never an effect. A request
//! refused before any command ran (a role that does not allow it, a malformed body) or that
//! failed is recorded on its own afterwards ([`Service::audit_unrecorded`]), when its caller is
//! known. Card stock written beside the job queue (`stock.rs`) writes its request's row in its
//! own transaction the same way, and handing out a printer's file is recorded though it changes
//! nothing (`Service::audit_read`). Any other request that succeeded without a command changed
//! nothing, and is not recorded. The body
//! of a request is never kept, and a path segment of many digits (a card number, where a path
//! holds one) is masked to its last 4, so no secret enters the trail.
//!
//! The context travels as a task-local value: jobs spawned off the request's task (the record
//! of a key's last use, say) are not the request's and are not audited.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use giftd_domain::{ApiKeyId, Channel, MerchantId, StaffId, Timestamp};
use giftd_store::{AuditEventRow, AuditFilter, BoxFuture, Page, StoreResult, WriteTx};

use crate::Service;
use crate::error::ServiceError;
use crate::job::{TxWork, run_answered};

/// Longest path kept; a longer one is cut (and says so with a trailing `…`).
pub const MAX_AUDIT_PATH_CHARS: usize = 512;
/// Most ids kept of one request.
pub const MAX_AUDIT_OBJECTS: usize = 16;
/// Longest refusal reason kept.
pub const MAX_AUDIT_REASON_CHARS: usize = 500;
/// Digits from which a path segment made only of digits is masked to its last 4: shorter
/// than any card number, longer than any amount or date in a path.
pub const MASKED_DIGIT_RUN: usize = 12;
/// Most rows a listing answers at once.
pub const MAX_AUDIT_PAGE: u32 = 100;

tokio::task_local! {
    static REQUEST: Arc<RequestContext>;
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    ApiKey(ApiKeyId),
    Staff(StaffId),
    /// An operator at the command line (`giftd staff create`, `giftd api-keys ...`).
    Cli,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ApiKey(_) => "api_key",
            Self::Staff(_) => "staff",
            Self::Cli => "cli",
        }
    }

    pub fn id(&self) -> Option<String> {
        match self {
            Self::ApiKey(id) => Some(id.to_string()),
            Self::Staff(id) => Some(id.to_string()),
            Self::Cli => None,
        }
    }
}

/// One request as the audit trail sees it.
#[derive(Debug)]
pub struct RequestContext {
    request_id: Option<String>,
    client_address: Option<String>,
    method: String,
    path: String,
    /// The front-end the request came in through, recorded on every ledger transaction its
    /// commands write.
    channel: Channel,
    /// The merchant and actor, once authentication said who.
    caller: OnceLock<(MerchantId, Actor)>,
    /// A command of the request wrote its row, and committed.
    audited: AtomicBool,
}

impl RequestContext {
    /// A request: its id, its client's address, its method and path (without the query), and
    /// the front-end whose path it is.
    pub fn new(
        request_id: Option<String>,
        client_address: Option<String>,
        method: &str,
        path: &str,
        channel: Channel,
    ) -> Arc<Self> {
        Arc::new(Self {
            request_id,
            client_address,
            method: method.to_owned(),
            path: masked_path(path),
            channel,
            caller: OnceLock::new(),
            audited: AtomicBool::new(false),
        })
    }

    /// A command-line action of `merchant`, `command` naming it (`giftd staff create`).
    pub fn cli(merchant: &MerchantId, command: &str) -> Arc<Self> {
        let context = Self::new(None, None, "CLI", command, Channel::System);
        let _ = context.caller.set((merchant.clone(), Actor::Cli));
        context
    }

    /// Whether the request changes something (every method but the reads).
    pub fn writes(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS")
    }

    /// Whether a command of the request recorded it, in the transaction that committed.
    pub fn audited(&self) -> bool {
        self.audited.load(Ordering::Acquire)
    }

    /// Who the request came from, once known.
    pub fn caller(&self) -> Option<&(MerchantId, Actor)> {
        self.caller.get()
    }
}

/// Runs `work` (a whole request) with its context, for the commands it runs to record.
pub async fn within<F: Future>(context: Arc<RequestContext>, work: F) -> F::Output {
    REQUEST.scope(context, work).await
}

/// Says who the current request comes from (its first authentication counts).
pub(crate) fn identify(merchant: &MerchantId, actor: Actor) {
    let _ = REQUEST.try_with(|context| context.caller.set((merchant.clone(), actor)));
}

/// The front-end the current request came through; [`Channel::System`] for work with no
/// request behind it (the sweeper, the checkout recovery loop).
pub(crate) fn current_channel() -> Channel {
    REQUEST
        .try_with(|context| context.channel)
        .unwrap_or(Channel::System)
}

/// Who the current request comes from, once authentication said so.
pub(crate) fn current_caller() -> Option<(MerchantId, Actor)> {
    REQUEST
        .try_with(|context| context.caller.get().cloned())
        .ok()
        .flatten()
}

/// What a command's job needs to write its request's row: taken when the command is submitted,
/// for a request whose caller is `merchant`'s.
pub(crate) fn draft_for(merchant: &MerchantId) -> Option<AuditDraft> {
    REQUEST
        .try_with(|context| {
            let (of, actor) = context.caller.get()?;
            (of == merchant).then(|| AuditDraft {
                context: Arc::clone(context),
                merchant: of.clone(),
                actor: actor.clone(),
            })
        })
        .ok()
        .flatten()
}

/// A request's row, short of what its command decides.
#[derive(Debug, Clone)]
pub(crate) struct AuditDraft {
    context: Arc<RequestContext>,
    merchant: MerchantId,
    actor: Actor,
}

/// How a request ended, for its row.
pub(crate) struct Ending {
    pub operation: String,
    pub objects: Vec<String>,
    pub status: u16,
    pub reason: Option<String>,
    pub replayed: bool,
    pub at: Timestamp,
}

impl AuditDraft {
    pub(crate) fn row(&self, ending: Ending) -> AuditEventRow {
        let mut objects = path_ids(&self.context.path);
        for id in ending.objects {
            if !objects.contains(&id) {
                objects.push(id);
            }
        }
        objects.truncate(MAX_AUDIT_OBJECTS);
        let outcome = match ending.status {
            _ if ending.replayed => "replayed",
            0..400 => "succeeded",
            400..500 => "refused",
            _ => "failed",
        };
        AuditEventRow {
            id: crate::ids::audit_event(),
            merchant_id: self.merchant.clone(),
            occurred_at: ending.at,
            actor_type: self.actor.kind().to_owned(),
            actor_id: self.actor.id(),
            request_id: self.context.request_id.clone(),
            client_address: self.context.client_address.clone(),
            method: self.context.method.clone(),
            path: self.context.path.clone(),
            operation: ending.operation,
            objects: objects.join(" "),
            outcome: outcome.to_owned(),
            status: i64::from(ending.status),
            reason: ending
                .reason
                .map(|reason| reason.chars().take(MAX_AUDIT_REASON_CHARS).collect()),
        }
    }

    /// Notes that the request's row committed with its command.
    pub(crate) fn committed(&self) {
        self.context.audited.store(true, Ordering::Release);
    }
}

/// A command's family and kind, `Command::Redeem` say: the type's name and the first word of
/// its `Debug` output (the variant), without formatting the rest.
pub(crate) fn operation_name<O: fmt::Debug>(command: &O) -> String {
    /// Keeps the first identifier written, then stops the formatting.
    struct FirstWord(String);
    impl fmt::Write for FirstWord {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            for c in text.chars() {
                if c.is_alphanumeric() || c == '_' {
                    self.0.push(c);
                } else {
                    return Err(fmt::Error);
                }
            }
            Ok(())
        }
    }
    let family = std::any::type_name::<O>().rsplit("::").next().unwrap_or_default();
    let mut variant = FirstWord(String::new());
    let _ = write!(variant, "{command:?}");
    format!("{family}::{}", variant.0)
}

/// The path with every segment of [`MASKED_DIGIT_RUN`] digits or more (a card number where a
/// path holds one) masked to its last 4, cut to [`MAX_AUDIT_PATH_CHARS`]. Digits inside a
/// segment (an id's hex) are left alone.
fn masked_path(path: &str) -> String {
    let mut out = path
        .split('/')
        .map(|segment| {
            if segment.len() >= MASKED_DIGIT_RUN && segment.bytes().all(|b| b.is_ascii_digit()) {
                format!("****{}", &segment[segment.len() - 4..])
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    if out.chars().count() > MAX_AUDIT_PATH_CHARS {
        out = out.chars().take(MAX_AUDIT_PATH_CHARS - 1).collect();
        out.push('…');
    }
    out
}

/// The segments of a path that are giftd ids (`card_…`, `txn_…`): what the request named.
fn path_ids(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|segment| {
            segment.split_once('_').is_some_and(|(prefix, rest)| {
                (2..=5).contains(&prefix.len())
                    && prefix.bytes().all(|b| b.is_ascii_lowercase())
                    && !rest.is_empty()
                    && rest.bytes().all(|b| b.is_ascii_alphanumeric())
            })
        })
        .map(str::to_owned)
        .collect()
}

/// Writes one row on its own (a request no command recorded).
struct AuditWork(AuditEventRow);

impl TxWork for AuditWork {
    type Answer = ();
    fn run<'a>(&'a mut self, tx: &'a mut dyn WriteTx) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move { tx.insert_audit_event(&self.0).await })
    }
}

impl Service {
    /// Records a state-changing request that no command recorded and that was refused or
    /// failed (`status`; `route`: the route it matched, if any), when its caller is known. A request nobody
    /// could be named for (no credential, a wrong one) is left to the logs: rows are per
    /// merchant, and anyone could fill them.
    pub async fn audit_unrecorded(&self, context: &Arc<RequestContext>, status: u16, route: Option<&str>) {
        // Every effect is a command's, recorded with it: a request that ran none and succeeded
        // changed nothing (a balance inquiry sent by POST, say).
        if !context.writes() || context.audited() || status < 400 {
            return;
        }
        let Some((merchant, actor)) = context.caller() else {
            return;
        };
        let draft = AuditDraft {
            context: Arc::clone(context),
            merchant: merchant.clone(),
            actor: actor.clone(),
        };
        let row = draft.row(Ending {
            operation: format!("{} {}", context.method, route.unwrap_or("(no route)")),
            objects: Vec::new(),
            status,
            reason: None,
            replayed: false,
            at: self.now(),
        });
        if let Err(error) = run_answered(self.store().as_ref(), AuditWork(row)).await {
            tracing::error!(%error, "a refused request's audit row was not written");
        }
    }

    /// Records that the current request is handed something secret (a printer's file), in its
    /// own transaction and before the answer leaves: a read the trail must show, though it
    /// changes nothing. A failure to record refuses the read.
    pub(crate) async fn audit_read(
        &self,
        merchant: &MerchantId,
        operation: &str,
        objects: Vec<String>,
    ) -> Result<(), ServiceError> {
        let Some(draft) = draft_for(merchant) else {
            return Ok(());
        };
        let row = draft.row(Ending {
            operation: operation.to_owned(),
            objects,
            status: 200,
            reason: None,
            replayed: false,
            at: self.now(),
        });
        run_answered(self.store().as_ref(), AuditWork(row)).await?;
        Ok(())
    }

    /// The merchant's audit trail, newest first.
    pub async fn audit_events(
        &self,
        merchant: &MerchantId,
        filter: &AuditFilter,
        page: &Page,
    ) -> Result<Vec<AuditEventRow>, ServiceError> {
        Ok(self.store().audit_events(merchant, filter, page).await?)
    }
}

/// The columns of the CSV export, in order.
pub const CSV_HEADER: [&str; 14] = [
    "id",
    "occurred_at",
    "actor_type",
    "actor_id",
    "request_id",
    "client_address",
    "method",
    "path",
    "operation",
    "object_ids",
    "outcome",
    "status",
    "reason",
    "occurred_at_unix_ms",
];

/// A cell as a spreadsheet may show it: one that starts like a formula (`=`, `+`, `-`, `@`, a
/// tab, a carriage return) is prefixed with `'` so that it is shown, not run.
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

impl Service {
    /// Writes the merchant's whole audit trail between `from` (inclusive) and `to` (exclusive)
    /// as CSV with a header line, newest first.
    pub async fn export_audit_csv(
        &self,
        merchant: &MerchantId,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        out: impl std::io::Write,
    ) -> Result<usize, ServiceError> {
        let csv_error = |error: csv::Error| {
            ServiceError::Internal(giftd_store::StoreError::Corrupt(format!("CSV export: {error}")))
        };
        let mut writer = csv::Writer::from_writer(out);
        writer.write_record(CSV_HEADER).map_err(csv_error)?;
        let filter = AuditFilter {
            from,
            to,
            ..AuditFilter::default()
        };
        let mut cursor = None;
        let mut written = 0;
        loop {
            let page = Page {
                limit: MAX_AUDIT_PAGE,
                cursor,
            };
            let rows = self.audit_events(merchant, &filter, &page).await?;
            for row in &rows {
                let record = [
                    row.id.to_string(),
                    crate::webhooks::rfc3339(row.occurred_at),
                    row.actor_type.clone(),
                    row.actor_id.clone().unwrap_or_default(),
                    row.request_id.clone().unwrap_or_default(),
                    row.client_address.clone().unwrap_or_default(),
                    row.method.clone(),
                    row.path.clone(),
                    row.operation.clone(),
                    row.objects.clone(),
                    row.outcome.clone(),
                    row.status.to_string(),
                    row.reason.clone().unwrap_or_default(),
                    row.occurred_at.unix_millis().to_string(),
                ];
                writer
                    .write_record(record.iter().map(|text| cell(text)))
                    .map_err(csv_error)?;
            }
            written += rows.len();
            match rows.last() {
                Some(last) if rows.len() == MAX_AUDIT_PAGE as usize => cursor = Some(last.id.to_string()),
                _ => break,
            }
        }
        writer.flush().map_err(|error| csv_error(error.into()))?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_that_starts_like_a_formula_is_shown_not_run() {
        assert_eq!(cell("=1+1"), "'=1+1");
        assert_eq!(cell("-2"), "'-2");
        assert_eq!(cell("@sum"), "'@sum");
        assert_eq!(cell("POST"), "POST");
    }

    #[test]
    fn a_long_run_of_digits_is_masked_to_its_last_four() {
        assert_eq!(masked_path("/v1/cards/6036281234567890"), "/v1/cards/****7890");
        assert_eq!(masked_path("/v1/reports/2026-12-31"), "/v1/reports/2026-12-31");
        assert_eq!(masked_path("/x/12345678901"), "/x/12345678901");
        // An id whose hex holds a long run of digits is an id, not a number.
        assert_eq!(
            masked_path("/v1/cards/card_01a250783196702a841fb0455716a893/redeem"),
            "/v1/cards/card_01a250783196702a841fb0455716a893/redeem"
        );
        let long = format!("/{}", "a".repeat(600));
        assert_eq!(masked_path(&long).chars().count(), MAX_AUDIT_PATH_CHARS);
    }

    #[test]
    fn the_ids_a_path_names_are_its_objects() {
        assert_eq!(path_ids("/v1/cards/card_0192ab/redeem"), ["card_0192ab"]);
        assert_eq!(
            path_ids("/v1/users/user_1/cards/card_2/share"),
            ["user_1", "card_2"]
        );
        assert!(path_ids("/v1/webhook_endpoints").is_empty());
        assert!(path_ids("/pal/servlet/StoredValue/v46/load").is_empty());
    }

    #[test]
    fn an_operation_is_named_by_its_family_and_variant_alone() {
        #[derive(Debug)]
        #[allow(dead_code)]
        enum Family {
            Redeem { secret: String },
            Touch,
        }
        let name = operation_name(&Family::Redeem {
            secret: "never formatted".into(),
        });
        assert_eq!(name, "Family::Redeem");
        assert_eq!(operation_name(&Family::Touch), "Family::Touch");
    }
}
