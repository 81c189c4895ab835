//! The native API's keys (`/v1/api_keys`): a merchant's keys, each named and scoped (`full`,
//! `pos`, `read_only`), with an optional expiry, a visible prefix and the time it was last
//! used; created (the key shown once), rotated (a new key; the old one keeps working for the
//! grace period asked) and revoked. Only a `full` key manages keys (`crate::access`). Wire
//! types and handlers only; the keys are the service's (`giftd_service::api_keys`).

use axum::extract::State;
use axum::http::StatusCode;
use giftd_domain::{ApiKeyId, Scope, Timestamp};
use giftd_service::Renderer;
use giftd_service::api_keys::{ApiKeyOutcome, NewApiKey};
use giftd_service::views::ApiKeyRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{Body, Merchant, PathId, path_id};
use super::wire::{List, rfc3339};
use super::{Answer, NativeBody, answer, ok, render};
use crate::AppState;

/// A rotation's default grace period: the old key keeps working one day.
pub const DEFAULT_ROTATION_GRACE_SECONDS: i64 = 24 * 3600;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// 1 to 100 characters, e.g. `till 4` or `reporting`.
    pub name: String,
    /// `full` (the default), `pos` or `read_only`.
    pub scope: Option<String>,
    /// RFC 3339: the key stops working then. None: it works until revoked.
    pub expires_at: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateApiKeyRequest {
    /// How long the old key keeps working, 0 to 2592000 (30 days); default 86400 (a day).
    pub grace_seconds: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyResponse {
    pub object: &'static str,
    pub id: String,
    pub name: String,
    pub scope: &'static str,
    /// The key's first characters, to tell keys apart; null for keys made before they were kept.
    pub prefix: Option<String>,
    /// The key itself: only in the answer that made it, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    /// Within a minute (uses are recorded at most once a minute per key and process).
    pub last_used_at: Option<String>,
}

impl ApiKeyResponse {
    fn new(key: &ApiKeyRecord, secret: Option<&str>) -> Self {
        Self {
            object: "api_key",
            id: key.id.to_string(),
            name: key.name.clone(),
            scope: key.scope.as_str(),
            prefix: key.prefix.clone(),
            key: secret.map(str::to_owned),
            created_at: rfc3339(key.created_at),
            expires_at: key.expires_at.map(rfc3339),
            revoked_at: key.revoked_at.map(rfc3339),
            last_used_at: key.last_used_at.map(rfc3339),
        }
    }
}

impl NativeBody for ApiKeyOutcome {
    fn native_body(&self) -> Option<serde_json::Result<Vec<u8>>> {
        match self {
            ApiKeyOutcome::Created { key, secret } => Some(serde_json::to_vec(&ApiKeyResponse::new(
                key,
                Some(secret.expose()),
            ))),
            ApiKeyOutcome::Key(key) => Some(serde_json::to_vec(&ApiKeyResponse::new(key, None))),
            // The service's own record of a use: no route asks for it.
            ApiKeyOutcome::Touched => None,
        }
    }
}

fn renderer(success: StatusCode) -> Renderer<ApiKeyOutcome> {
    Box::new(move |result| render(result, success))
}

fn scope(value: Option<&str>) -> Result<Scope, ApiError> {
    match value {
        None => Ok(Scope::Full),
        Some(name) => Scope::parse(name)
            .ok_or_else(|| ApiError::invalid("scope", "`scope` must be `full`, `pos` or `read_only`.")),
    }
}

fn timestamp(value: &str, param: &str) -> Result<Timestamp, ApiError> {
    crate::edge::parse_rfc3339(value)
        .ok_or_else(|| ApiError::invalid(param, format!("`{param}` must be an RFC 3339 date-time.")))
}

#[utoipa::path(post, path = "/v1/api_keys", tag = "api_keys", request_body = CreateApiKeyRequest,
    responses((status = 201, description = "Created: the key, with the key itself shown this once.", body = ApiKeyResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn create_api_key(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<CreateApiKeyRequest>,
) -> Answer {
    let r = body.value;
    let new = NewApiKey {
        name: r.name,
        scope: scope(r.scope.as_deref())?,
        expires_at: r
            .expires_at
            .as_deref()
            .map(|at| timestamp(at, "expires_at"))
            .transpose()?,
    };
    let rendered = app
        .service
        .create_api_key(merchant, new, body.idempotency, renderer(StatusCode::CREATED))
        .await?;
    answer(rendered)
}

#[utoipa::path(get, path = "/v1/api_keys", tag = "api_keys",
    responses((status = 200, description = "The merchant's keys, newest first (at most 100; never the keys themselves).", body = List<ApiKeyResponse>), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn list_api_keys(State(app): State<AppState>, Merchant(merchant): Merchant) -> Answer {
    let keys = app.service.api_keys(&merchant).await?;
    ok(&List {
        object: "list",
        data: keys.iter().map(|key| ApiKeyResponse::new(key, None)).collect(),
        next_cursor: None,
    })
}

#[utoipa::path(post, path = "/v1/api_keys/{id}/rotate", tag = "api_keys", params(("id" = String, Path)),
    request_body = RotateApiKeyRequest,
    responses((status = 201, description = "Created: the new key, with the key itself shown this once; the old one works until the grace period ends.", body = ApiKeyResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn rotate_api_key(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<RotateApiKeyRequest>,
) -> Answer {
    let id = path_id(&id, ApiKeyId::parse, "API key")?;
    let grace = body.value.grace_seconds.unwrap_or(DEFAULT_ROTATION_GRACE_SECONDS);
    let rendered = app
        .service
        .rotate_api_key(
            merchant,
            id,
            grace,
            body.idempotency,
            renderer(StatusCode::CREATED),
        )
        .await?;
    answer(rendered)
}

#[utoipa::path(post, path = "/v1/api_keys/{id}/revoke", tag = "api_keys", params(("id" = String, Path)),
    responses((status = 200, description = "The key, revoked: it stops working at once (within a minute on other giftd processes).", body = ApiKeyResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn revoke_api_key(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<RevokeApiKeyRequest>,
) -> Answer {
    let id = path_id(&id, ApiKeyId::parse, "API key")?;
    let rendered = app
        .service
        .revoke_api_key(merchant, id, body.idempotency, renderer(StatusCode::OK))
        .await?;
    answer(rendered)
}

/// `POST /v1/api_keys/{id}/revoke` takes no fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeApiKeyRequest {}
