//! The native API's audit trail (`GET /v1/audit_events`): who did what, from where, when and
//! how it ended, newest first, filtered by actor, outcome, object and time (docs/STAFF.md
//! "Audit trail"). Wire types and the handler only; the rows are written by the service
//! (`giftd_service::audit`).

use axum::extract::{RawQuery, State};
use giftd_service::views::{AuditEventRow, AuditFilter};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{Merchant, PageQuery, query};
use super::wire::{List, rfc3339};
use super::{Answer, list, ok};
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditActor {
    /// `api_key`, `staff` or `cli`.
    #[serde(rename = "type")]
    pub actor_type: String,
    /// The API key's (`key_…`) or staff member's (`stf_…`) id; null for the command line.
    pub id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventResponse {
    pub object: &'static str,
    pub id: String,
    pub occurred_at: String,
    pub actor: AuditActor,
    /// The request's `X-Request-Id`.
    pub request_id: Option<String>,
    pub client_address: Option<String>,
    pub method: String,
    /// Without its query; a segment of 12 digits or more is masked to its last 4.
    pub path: String,
    /// The command that ran (`Command::Redeem`), or the route of a request refused before one.
    pub operation: String,
    /// The ids the request named or the command made.
    pub object_ids: Vec<String>,
    /// `succeeded`, `refused`, `failed` or `replayed` (a retry with the same Idempotency-Key).
    pub outcome: String,
    /// The HTTP status answered.
    pub status: i64,
    /// Why a command refused, in words.
    pub reason: Option<String>,
}

impl From<&AuditEventRow> for AuditEventResponse {
    fn from(row: &AuditEventRow) -> Self {
        Self {
            object: "audit_event",
            id: row.id.to_string(),
            occurred_at: rfc3339(row.occurred_at),
            actor: AuditActor {
                actor_type: row.actor_type.clone(),
                id: row.actor_id.clone(),
            },
            request_id: row.request_id.clone(),
            client_address: row.client_address.clone(),
            method: row.method.clone(),
            path: row.path.clone(),
            operation: row.operation.clone(),
            object_ids: row.objects.split_whitespace().map(str::to_owned).collect(),
            outcome: row.outcome.clone(),
            status: row.status,
            reason: row.reason.clone(),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditListQuery {
    /// Only rows of this API key or staff member (`key_…`, `stf_…`).
    actor_id: Option<String>,
    /// Only rows of `api_key`, `staff` or `cli`.
    actor_type: Option<String>,
    /// Only `succeeded`, `refused`, `failed` or `replayed` rows.
    outcome: Option<String>,
    /// Only rows that name this id (a card, a transaction, a staff member, ...).
    object_id: Option<String>,
    /// RFC 3339: rows at or after.
    created_from: Option<String>,
    /// RFC 3339: rows before.
    created_to: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// One of `allowed`, or refused naming `param`.
fn one_of(value: Option<String>, param: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(ApiError::invalid(
            param,
            format!("`{param}` must be one of {}.", allowed.join(", ")),
        )),
        other => Ok(other),
    }
}

/// An id-shaped value (letters, digits, `_`), or refused naming `param`.
fn id_like(value: Option<String>, param: &str) -> Result<Option<String>, ApiError> {
    match value {
        Some(v)
            if v.is_empty()
                || v.len() > 100
                || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            Err(ApiError::invalid(param, format!("`{param}` is not an id.")))
        }
        other => Ok(other),
    }
}

fn instant(value: Option<String>, param: &str) -> Result<Option<giftd_domain::Timestamp>, ApiError> {
    value
        .map(|v| {
            crate::edge::parse_rfc3339(&v)
                .ok_or_else(|| ApiError::invalid(param, format!("`{param}` must be an RFC 3339 date-time.")))
        })
        .transpose()
}

#[utoipa::path(get, path = "/v1/audit_events", tag = "audit", params(AuditListQuery),
    responses((status = 200, description = "A page of the audit trail, newest first.", body = List<AuditEventResponse>), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn list_audit_events(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q: AuditListQuery = query(raw.as_deref())?;
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let filter = AuditFilter {
        actor_id: id_like(q.actor_id, "actor_id")?,
        actor_type: one_of(q.actor_type, "actor_type", &["api_key", "staff", "cli"])?,
        outcome: one_of(
            q.outcome,
            "outcome",
            &["succeeded", "refused", "failed", "replayed"],
        )?,
        object: id_like(q.object_id, "object_id")?,
        from: instant(q.created_from, "created_from")?,
        to: instant(q.created_to, "created_to")?,
    };
    let rows = app.service.audit_events(&merchant, &filter, &page).await?;
    ok(&list(
        rows,
        &page,
        |row| row.id.to_string(),
        |row| AuditEventResponse::from(row),
    ))
}
