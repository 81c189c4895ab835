//! The native API's webhooks: endpoints (`/v1/webhook_endpoints...`), the events of the
//! outbox with their deliveries and attempts (`/v1/events...`), and a delivery's retry. Wire
//! types and handlers only; what an event is and how it is delivered is the service's.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use giftd_domain::{EventId, WebhookDeliveryId, WebhookEndpointId};
use giftd_service::views::{AttemptRow, DeliveryRow, EventRow};
use giftd_service::webhooks::{Endpoint, EventDetail, EventType, NewEndpoint, WebhookCommand};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{Body, Merchant, PageQuery, PathId, path_id, query};
use super::wire::{List, StateChangeRequest, rfc3339};
use super::{Answer, list, ok};
use crate::AppState;

// ---- wire types ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookEndpointRequest {
    /// Where events are POSTed: an `http` URL (https: see docs/WEBHOOKS.md).
    pub url: String,
    /// At least one of: card.activated, card.loaded, card.redeemed, card.refunded,
    /// card.cashed_out, card.low_balance, transaction.voided, hold.expired,
    /// checkout.authorized, checkout.captured, checkout.voided, checkout.failed.
    pub event_types: Vec<String>,
    /// Minor units: `card.low_balance` is sent when a card's balance falls from at least this
    /// to below it. Required with `card.low_balance`.
    pub low_balance_threshold: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpointResponse {
    pub object: &'static str,
    pub id: String,
    pub url: String,
    pub event_types: Vec<&'static str>,
    pub low_balance_threshold: Option<i64>,
    /// `false` once deleted: an endpoint is disabled, never forgotten, so its deliveries keep
    /// naming it.
    pub enabled: bool,
    /// The signing secret: only in the answer to the creation, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl WebhookEndpointResponse {
    pub(super) fn new(endpoint: &Endpoint, secret: Option<String>) -> Self {
        Self {
            object: "webhook_endpoint",
            id: endpoint.id.to_string(),
            url: endpoint.url.clone(),
            event_types: endpoint.event_types.iter().map(|t| t.as_str()).collect(),
            low_balance_threshold: endpoint.low_balance_threshold,
            enabled: endpoint.enabled,
            secret,
            created_at: rfc3339(endpoint.created_at),
            updated_at: rfc3339(endpoint.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventResponse {
    pub object: &'static str,
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created_at: String,
    /// The event as delivered: the exact JSON body that endpoints receive.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Only on `GET /v1/events/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<Vec<DeliveryResponse>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryResponse {
    pub object: &'static str,
    pub id: String,
    pub endpoint_id: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    /// When the next attempt is due, while `pending`.
    pub next_attempt_at: Option<String>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub attempt_log: Vec<AttemptResponse>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptResponse {
    pub attempted_at: String,
    /// The HTTP status the endpoint answered, or null when it did not (see `error`).
    pub status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

fn event_response(event: &EventRow, deliveries: Option<Vec<DeliveryResponse>>) -> EventResponse {
    EventResponse {
        object: "event",
        id: event.id.to_string(),
        event_type: event.event_type.clone(),
        created_at: rfc3339(event.created_at),
        payload: serde_json::from_str(&event.payload).unwrap_or(serde_json::Value::Null),
        deliveries,
    }
}

fn delivery_response(delivery: &DeliveryRow, attempts: &[AttemptRow]) -> DeliveryResponse {
    DeliveryResponse {
        object: "webhook_delivery",
        id: delivery.id.to_string(),
        endpoint_id: delivery.endpoint_id.to_string(),
        state: delivery.state.clone(),
        attempts: delivery.attempts,
        next_attempt_at: (delivery.state == "pending").then(|| rfc3339(delivery.next_attempt_at)),
        last_status: delivery.last_status,
        last_error: delivery.last_error.clone(),
        attempt_log: attempts
            .iter()
            .map(|a| AttemptResponse {
                attempted_at: rfc3339(a.attempted_at),
                status: a.status,
                error: a.error.clone(),
                duration_ms: a.duration_ms,
            })
            .collect(),
        created_at: rfc3339(delivery.created_at),
        updated_at: rfc3339(delivery.updated_at),
    }
}

fn event_detail(detail: &EventDetail) -> EventResponse {
    let deliveries = detail
        .deliveries
        .iter()
        .map(|(d, attempts)| delivery_response(d, attempts))
        .collect();
    event_response(&detail.event, Some(deliveries))
}

// ---- handlers ----

/// The answer carries the endpoint's signing `secret`, shown this once (and replayed, byte for
/// byte, to a retry with the same `Idempotency-Key`).
#[utoipa::path(post, path = "/v1/webhook_endpoints", tag = "webhooks", request_body = CreateWebhookEndpointRequest,
    responses((status = 201, description = "Created: the webhook endpoint.", body = WebhookEndpointResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn create_webhook_endpoint(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<CreateWebhookEndpointRequest>,
) -> Answer {
    let r = body.value;
    let event_types = r
        .event_types
        .iter()
        .map(|name| {
            EventType::parse(name).ok_or_else(|| {
                ApiError::invalid(
                    "event_types",
                    format!(
                        "`{}` is not an event type; see docs/WEBHOOKS.md.",
                        truncated(name)
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let new = NewEndpoint {
        url: r.url,
        event_types,
        low_balance_threshold: r.low_balance_threshold,
    };
    let command = app.service.webhook_endpoint_command(new)?;
    super::run(&app, merchant, command, body.idempotency, StatusCode::CREATED).await
}

fn truncated(text: &str) -> String {
    text.chars().take(64).collect()
}

#[utoipa::path(get, path = "/v1/webhook_endpoints", tag = "webhooks", params(PageQuery),
    responses((status = 200, description = "A page of webhook endpoints.", body = List<WebhookEndpointResponse>), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn list_webhook_endpoints(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    RawQuery(raw): RawQuery,
) -> Answer {
    let page = query::<PageQuery>(raw.as_deref())?.page()?;
    let endpoints = app.service.webhook_endpoints(&merchant, &page).await?;
    ok(&list(
        endpoints,
        &page,
        |e| e.id.to_string(),
        |e| WebhookEndpointResponse::new(e, None),
    ))
}

#[utoipa::path(get, path = "/v1/webhook_endpoints/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, description = "The webhook endpoint.", body = WebhookEndpointResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn get_webhook_endpoint(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
) -> Answer {
    let id = path_id(&id, WebhookEndpointId::parse, "webhook_endpoint")?;
    ok(&WebhookEndpointResponse::new(
        &app.service.webhook_endpoint(&merchant, &id).await?,
        None,
    ))
}

/// Disables the endpoint: no new deliveries, and its pending ones fail. It stays readable.
#[utoipa::path(delete, path = "/v1/webhook_endpoints/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, description = "The webhook endpoint.", body = WebhookEndpointResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn delete_webhook_endpoint(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
) -> Answer {
    let id = path_id(&id, WebhookEndpointId::parse, "webhook_endpoint")?;
    ok(&WebhookEndpointResponse::new(
        &app.service.disable_webhook_endpoint(&merchant, &id).await?,
        None,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct EventListQuery {
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/events", tag = "webhooks", params(EventListQuery),
    responses((status = 200, description = "A page of events.", body = List<EventResponse>), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn list_events(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q: EventListQuery = query(raw.as_deref())?;
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let event_type = q
        .event_type
        .map(|t| {
            EventType::parse(&t).ok_or_else(|| {
                ApiError::invalid("type", format!("`{}` is not an event type.", truncated(&t)))
            })
        })
        .transpose()?;
    let events = app.service.events(&merchant, event_type, &page).await?;
    ok(&list(
        events,
        &page,
        |e| e.id.to_string(),
        |e| event_response(e, None),
    ))
}

/// The event with each of its deliveries and every attempt of each.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, description = "The event with its deliveries.", body = EventResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn get_event(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
) -> Answer {
    let id = path_id(&id, EventId::parse, "event")?;
    ok(&event_detail(&app.service.event(&merchant, &id).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetryResponse {
    pub object: &'static str,
    pub id: String,
    pub state: &'static str,
}

/// Makes the delivery pending and due now, whatever its state: a delivered one is sent again,
/// a failed one gets one more attempt (the attempt count and its limit carry on).
#[utoipa::path(post, path = "/v1/webhook_deliveries/{id}/retry", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 202, description = "The delivery, due now.", body = RetryResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn retry_webhook_delivery(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<StateChangeRequest>,
) -> Answer {
    let id = path_id(&id, WebhookDeliveryId::parse, "webhook_delivery")?;
    super::run(
        &app,
        merchant,
        WebhookCommand::RetryDelivery { id },
        body.idempotency,
        StatusCode::ACCEPTED,
    )
    .await
}
