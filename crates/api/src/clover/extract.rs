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
use crate::edge::{self, BodyRefusal, BodyRules, FieldError, TextCheck};

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
        Ok(Self(
            state.service.authenticate(key, crate::access::of(parts)).await?,
        ))
    }
}

/// A JSON body of type `T` and the request's idempotency key, if any. An empty body reads as
/// `{}`.
pub struct CloverBody<T> {
    pub value: T,
    pub idempotency: Option<IdempotencyKey>,
}

/// How the Clover facade reads bodies: its own idempotency scope, an empty body as `{}`,
/// refused text named as the body's.
const RULES: BodyRules = BodyRules {
    scope: SCOPE,
    empty_is_object: true,
    text: TextCheck::Bytes,
};

impl<T: DeserializeOwned> FromRequest<AppState> for CloverBody<T> {
    type Rejection = CloverError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let body = edge::read_json(request, state, RULES).await?;
        let value = edge::deserialize(body.json).map_err(field_error)?;
        Ok(Self {
            value,
            idempotency: body.idempotency,
        })
    }
}

impl From<BodyRefusal> for CloverError {
    fn from(refusal: BodyRefusal) -> Self {
        let message = refusal.message();
        match refusal {
            BodyRefusal::BadIdempotencyKey => CloverError::invalid("Idempotency-Key", message),
            BodyRefusal::TooLarge { .. } => CloverError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                ..CloverError::invalid("body", message)
            },
            BodyRefusal::UnsafeText { .. } | BodyRefusal::NotJson(_) | BodyRefusal::NotAnObject => {
                CloverError::invalid("body", message)
            }
        }
    }
}

/// Fields whose errors are about an amount, answered with `invalid_charge_amount`.
const AMOUNT_FIELDS: &[&str] = &["amount"];

/// A body that did not fit its request type, Clover's way: the field named, an amount's error
/// as `invalid_charge_amount`.
fn field_error(error: FieldError) -> CloverError {
    let field = error.path.split(['[']).next().unwrap_or_default().to_owned();
    if field.is_empty() || field == "?" || field == "." {
        return CloverError::invalid("body", format!("Invalid request: {}.", error.reason));
    }
    let message = format!("Invalid `{}`: {}.", error.path, error.reason);
    if AMOUNT_FIELDS.contains(&field.as_str()) {
        CloverError::invalid_amount(&field, message)
    } else {
        CloverError::invalid(&field, message)
    }
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
