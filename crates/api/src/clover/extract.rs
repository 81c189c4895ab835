//! Request extraction for the Clover facade: the merchant behind the API key (Clover's
//! `apiKey` header, or `Authorization: Bearer`), the JSON body (lenient: unknown fields are
//! ignored, every error names its field), and the Idempotency-Key with a digest of the
//! request, in the facade's own idempotency scope.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use giftd_domain::{Amount, Currency, MerchantId};
use giftd_service::IdempotencyKey;
use serde::de::DeserializeOwned;

use super::error::CloverError;
use super::wire::WireAmount;
use crate::AppState;

/// The idempotency scope of the Clover facade: a key means nothing to the native API.
pub const SCOPE: &str = "clover";
/// Clover refuses amounts above $999,999.99 with `amount_too_large`; giftd keeps that limit,
/// in the card currency's minor units.
pub const MAX_AMOUNT_MINOR: i64 = 99_999_999;
/// The header Clover's token endpoint takes its key in.
pub const API_KEY_HEADER: &str = "apikey";

/// The authenticated merchant: its giftd API key, sent as `apiKey: <key>` (as Clover's token
/// endpoint takes it) or `Authorization: Bearer <key>` (as Clover's other endpoints do). Either
/// header works on every endpoint.
pub struct CloverMerchant(pub MerchantId);

impl FromRequestParts<AppState> for CloverMerchant {
    type Rejection = CloverError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let key = crate::credentials::key_header(&parts.headers, API_KEY_HEADER)
            .or_else(|| crate::credentials::bearer(&parts.headers))
            .unwrap_or_default();
        Ok(Self(state.service.authenticate(key).await?))
    }
}

/// A JSON body of type `T` and the request's idempotency key, if any. An empty body reads as
/// `{}`.
pub struct CloverBody<T> {
    pub value: T,
    pub idempotency: Option<IdempotencyKey>,
}

impl<T: DeserializeOwned> FromRequest<AppState> for CloverBody<T> {
    type Rejection = CloverError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let key = idempotency_key(&parts)?;
        let max_body_bytes = state.limits.max_body_bytes;
        let bytes = axum::body::to_bytes(body, max_body_bytes)
            .await
            .map_err(|_| CloverError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                ..CloverError::invalid(
                    "body",
                    format!("The request body is larger than {max_body_bytes} bytes."),
                )
            })?;
        let json = parse_json(&bytes)?;
        let idempotency = key.map(|key| IdempotencyKey {
            scope: SCOPE,
            key,
            request_hash: crate::idempotency::request_hash(&parts.method, parts.uri.path(), &json),
        });
        let value = deserialize(json)?;
        Ok(Self { value, idempotency })
    }
}

fn idempotency_key(parts: &Parts) -> Result<Option<String>, CloverError> {
    crate::idempotency::header_key(parts).map_err(|_| {
        CloverError::invalid(
            "Idempotency-Key",
            "The Idempotency-Key header must be 1 to 255 printable ASCII characters.",
        )
    })
}

fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, CloverError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Object(serde_json::Map::new()));
    }
    crate::text::check_json(bytes).map_err(|refused| CloverError::invalid("body", refused.to_string()))?;
    let value: serde_json::Value = crate::json::from_slice(bytes)
        .map_err(|e| CloverError::invalid("body", format!("The body is not valid JSON: {e}.")))?;
    if !value.is_object() {
        return Err(CloverError::invalid("body", "The body must be a JSON object."));
    }
    Ok(value)
}

/// Fields whose errors are about an amount, answered with `invalid_charge_amount`.
const AMOUNT_FIELDS: &[&str] = &["amount"];

fn deserialize<T: DeserializeOwned>(json: serde_json::Value) -> Result<T, CloverError> {
    serde_path_to_error::deserialize(json).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        let field = path.split(['[']).next().unwrap_or_default().to_owned();
        if field.is_empty() || field == "?" || field == "." {
            return CloverError::invalid("body", format!("Invalid request: {inner}."));
        }
        let message = format!("Invalid `{path}`: {inner}.");
        if AMOUNT_FIELDS.contains(&field.as_str()) {
            CloverError::invalid_amount(&field, message)
        } else {
            CloverError::invalid(&field, message)
        }
    })
}

/// A required field, or 400 naming it.
pub fn required<T>(value: Option<T>, param: &str) -> Result<T, CloverError> {
    value.ok_or_else(|| CloverError::invalid(param, format!("`{param}` is required.")))
}

/// A strictly positive amount within Clover's limit.
pub fn positive_amount(value: WireAmount, param: &str) -> Result<Amount, CloverError> {
    if value.0 > MAX_AMOUNT_MINOR {
        return Err(CloverError::amount_too_large(
            param,
            format!("`{param}` exceeds the {MAX_AMOUNT_MINOR} cents allowed."),
        ));
    }
    Amount::new(value.0).map_err(|_| {
        CloverError::invalid_amount(
            param,
            format!("`{param}` must be a positive whole number of cents."),
        )
    })
}

pub fn optional_positive_amount(
    value: Option<WireAmount>,
    param: &str,
) -> Result<Option<Amount>, CloverError> {
    value.map(|v| positive_amount(v, param)).transpose()
}

/// A currency as Clover sends it (`usd`, lower case; upper case is taken too).
pub fn currency(code: &str) -> Result<Currency, CloverError> {
    Currency::parse(&code.to_ascii_uppercase()).ok_or_else(|| {
        CloverError::invalid(
            "currency",
            "`currency` must be a three-letter ISO 4217 code, e.g. usd.",
        )
    })
}

pub fn optional_currency(code: Option<&str>) -> Result<Option<Currency>, CloverError> {
    code.map(currency).transpose()
}

/// The `{id}` segment of a path. An undecodable one cannot name anything: 404, in Clover's shape.
pub struct CloverPathId(pub String);

impl FromRequestParts<AppState> for CloverPathId {
    type Rejection = CloverError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(id)| Self(id))
            .map_err(|_| CloverError::missing("id", "No such object."))
    }
}
