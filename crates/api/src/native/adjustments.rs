//! The native API's adjustments (docs/STAFF.md "Adjustments"): asked on a card
//! (`POST /v1/cards/{id}/adjustments`, applied at once within the merchant's threshold, pending
//! above it), listed and read, approved or rejected by a second person; and the merchant's
//! settings (`/v1/settings`: the approval threshold). Wire types and handlers only; the rules
//! are the service's (`giftd_service::adjustments`) and the domain's.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use giftd_domain::adjustment::{AdjustmentReason, AdjustmentState};
use giftd_domain::{AdjustmentId, CardId};
use giftd_service::Renderer;
use giftd_service::adjustments::{AdjustmentOutcome, NewAdjustment};
use giftd_service::views::AdjustmentRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{Body, Merchant, PageQuery, PathId, path_id, query};
use super::wire::{List, rfc3339};
use super::{Answer, NativeBody, answer, list, ok, render};
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct AdjustmentActor {
    /// `api_key`, `staff` or `cli`.
    #[serde(rename = "type")]
    pub actor_type: String,
    pub id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdjustmentResponse {
    pub object: &'static str,
    pub id: String,
    pub card_id: String,
    /// Signed minor units of the card's currency: positive put value on.
    pub amount: i64,
    /// `goodwill`, `correction`, `fraud`, `migration` or `other`.
    pub reason: &'static str,
    pub note: Option<String>,
    /// `pending`, `applied`, `rejected` or `expired`.
    pub state: &'static str,
    pub requested_by: AdjustmentActor,
    pub requested_at: String,
    /// A pending adjustment not decided by then expires and moves nothing.
    pub expires_at: String,
    pub decided_by: Option<AdjustmentActor>,
    pub decided_at: Option<String>,
    /// The `adjustment` transaction on the card, once applied.
    pub transaction_id: Option<String>,
}

impl From<&AdjustmentRecord> for AdjustmentResponse {
    fn from(a: &AdjustmentRecord) -> Self {
        Self {
            object: "adjustment",
            id: a.id.to_string(),
            card_id: a.card_id.to_string(),
            amount: a.amount,
            reason: a.reason.as_str(),
            note: a.note.clone(),
            state: a.state.as_str(),
            requested_by: AdjustmentActor {
                actor_type: a.requested_by_type.clone(),
                id: a.requested_by_id.clone(),
            },
            requested_at: rfc3339(a.requested_at),
            expires_at: rfc3339(a.expires_at),
            decided_by: a.decided_by_type.as_ref().map(|kind| AdjustmentActor {
                actor_type: kind.clone(),
                id: a.decided_by_id.clone(),
            }),
            decided_at: a.decided_at.map(rfc3339),
            transaction_id: a.transaction_id.as_ref().map(ToString::to_string),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsResponse {
    pub object: &'static str,
    /// Adjustments larger than this (minor units, either way) wait for a second person's
    /// approval; at or below it they apply at once.
    pub adjustment_approval_threshold: i64,
}

impl NativeBody for AdjustmentOutcome {
    fn native_body(&self) -> Option<serde_json::Result<Vec<u8>>> {
        Some(match self {
            AdjustmentOutcome::Adjustment { adjustment, .. } => {
                serde_json::to_vec(&AdjustmentResponse::from(&**adjustment))
            }
            AdjustmentOutcome::Threshold(threshold) => serde_json::to_vec(&SettingsResponse {
                object: "settings",
                adjustment_approval_threshold: *threshold,
            }),
        })
    }
}

/// An applied adjustment is 201, a pending one 202 (accepted, not yet done).
fn renderer(success: StatusCode) -> Renderer<AdjustmentOutcome> {
    Box::new(move |result| match result {
        Ok(AdjustmentOutcome::Adjustment { adjustment, .. })
            if success == StatusCode::CREATED && adjustment.state == AdjustmentState::Pending =>
        {
            render(result, StatusCode::ACCEPTED)
        }
        _ => render(result, success),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAdjustmentRequest {
    /// Signed minor units: positive puts value on, negative takes it off; never 0.
    pub amount: i64,
    /// `goodwill`, `correction`, `fraud`, `migration` or `other`.
    pub reason: String,
    /// Up to 500 characters, for whoever approves it and the auditor.
    pub note: Option<String>,
}

#[utoipa::path(post, path = "/v1/cards/{id}/adjustments", tag = "adjustments", params(("id" = String, Path)),
    request_body = CreateAdjustmentRequest,
    responses((status = 201, description = "Applied at once (within the merchant's threshold): its transaction is on the card.", body = AdjustmentResponse), (status = 202, description = "Pending: larger than the threshold, it waits for a second person's approval.", body = AdjustmentResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn create_adjustment(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<CreateAdjustmentRequest>,
) -> Answer {
    let card_id = path_id(&id, CardId::parse, "card")?;
    let r = body.value;
    if r.amount == 0 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_amount",
            "`amount` must be a non-zero integer of minor units; negative takes value off.",
        )
        .with_param("amount"));
    }
    let reason = AdjustmentReason::parse(&r.reason).ok_or_else(|| {
        ApiError::invalid(
            "reason",
            "`reason` must be `goodwill`, `correction`, `fraud`, `migration` or `other`.",
        )
    })?;
    let new = NewAdjustment {
        card_id,
        amount: r.amount,
        reason,
        note: r.note,
    };
    let rendered = app
        .service
        .request_adjustment(merchant, new, body.idempotency, renderer(StatusCode::CREATED))
        .await?;
    answer(rendered)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AdjustmentListQuery {
    /// Only `pending`, `applied`, `rejected` or `expired` ones.
    state: Option<String>,
    /// Only this card's.
    card_id: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/adjustments", tag = "adjustments", params(AdjustmentListQuery),
    responses((status = 200, description = "A page of adjustments, newest first.", body = List<AdjustmentResponse>), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn list_adjustments(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q: AdjustmentListQuery = query(raw.as_deref())?;
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let state = q
        .state
        .map(|s| {
            AdjustmentState::parse(&s).ok_or_else(|| {
                ApiError::invalid(
                    "state",
                    "`state` must be `pending`, `applied`, `rejected` or `expired`.",
                )
            })
        })
        .transpose()?;
    let card = q
        .card_id
        .map(|c| CardId::parse(&c).ok_or_else(|| ApiError::invalid("card_id", "`card_id` is not a card id.")))
        .transpose()?;
    let rows = app
        .service
        .adjustments(&merchant, state, card.as_ref(), &page)
        .await?;
    ok(&list(
        rows,
        &page,
        |a| a.id.to_string(),
        |a| AdjustmentResponse::from(a),
    ))
}

#[utoipa::path(get, path = "/v1/adjustments/{id}", tag = "adjustments", params(("id" = String, Path)),
    responses((status = 200, description = "The adjustment.", body = AdjustmentResponse), (status = "4XX", description = "Refused: `error.code` says why.", body = ErrorBody)))]
pub(super) async fn get_adjustment(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
) -> Answer {
    let id = path_id(&id, AdjustmentId::parse, "adjustment")?;
    ok(&AdjustmentResponse::from(
        &app.service.adjustment(&merchant, &id).await?,
    ))
}

/// `POST /v1/adjustments/{id}/approve` and `/reject` take no fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {}

async fn decide(
    app: AppState,
    merchant: giftd_domain::MerchantId,
    id: &str,
    body: Body<DecisionRequest>,
    approve: bool,
) -> Answer {
    let id = path_id(id, AdjustmentId::parse, "adjustment")?;
    let rendered = app
        .service
        .decide_adjustment(merchant, id, approve, body.idempotency, renderer(StatusCode::OK))
        .await?;
    answer(rendered)
}

#[utoipa::path(post, path = "/v1/adjustments/{id}/approve", tag = "adjustments", params(("id" = String, Path)),
    responses((status = 200, description = "Applied now, on the card as it is now (or `expired`, past its 7 days, moving nothing).", body = AdjustmentResponse), (status = "4XX", description = "Refused: `own_adjustment` (403) for the one who asked, `insufficient_role` for a role that does not approve, `invalid_request` for one already decided, or the card's refusal (`insufficient_funds`, ...).", body = ErrorBody)))]
pub(super) async fn approve_adjustment(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<DecisionRequest>,
) -> Answer {
    decide(app, merchant, &id, body, true).await
}

#[utoipa::path(post, path = "/v1/adjustments/{id}/reject", tag = "adjustments", params(("id" = String, Path)),
    responses((status = 200, description = "Rejected: it moves nothing.", body = AdjustmentResponse), (status = "4XX", description = "Refused: `error.code` says why.", body = ErrorBody)))]
pub(super) async fn reject_adjustment(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<DecisionRequest>,
) -> Answer {
    decide(app, merchant, &id, body, false).await
}

#[utoipa::path(get, path = "/v1/settings", tag = "settings",
    responses((status = 200, description = "The merchant's settings.", body = SettingsResponse), (status = "4XX", description = "Refused: `error.code` says why.", body = ErrorBody)))]
pub(super) async fn get_settings(State(app): State<AppState>, Merchant(merchant): Merchant) -> Answer {
    ok(&SettingsResponse {
        object: "settings",
        adjustment_approval_threshold: app.service.adjustment_threshold(&merchant).await?,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettingsRequest {
    /// 0 (every adjustment waits for approval) to 1000000000.
    pub adjustment_approval_threshold: Option<i64>,
}

#[utoipa::path(patch, path = "/v1/settings", tag = "settings", request_body = UpdateSettingsRequest,
    responses((status = 200, description = "The settings as changed.", body = SettingsResponse), (status = "4XX", description = "Refused: `error.code` says why.", body = ErrorBody)))]
pub(super) async fn update_settings(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<UpdateSettingsRequest>,
) -> Answer {
    let Some(threshold) = body.value.adjustment_approval_threshold else {
        return get_settings(State(app), Merchant(merchant)).await;
    };
    let rendered = app
        .service
        .set_adjustment_threshold(merchant, threshold, renderer(StatusCode::OK))
        .await?;
    answer(rendered)
}
