//! Request extraction for the native API: the merchant behind the bearer key or staff session,
//! the signed-in staff member, the JSON body
//! (strict: unknown fields refused, every error naming its field), the Idempotency-Key with a
//! digest of the request, ids from paths and list paging.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use giftd_domain::{Amount, Currency, MerchantId};
use giftd_service::IdempotencyKey;
use giftd_service::staff::{SESSION_TOKEN_PREFIX, StaffCaller};
use giftd_service::views::Page;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::AppState;
use crate::edge::{self, BodyRefusal, BodyRules, FieldError, TextCheck};

/// List pages: `?limit=` from 1 to 100, 20 when not given.
pub const MAX_PAGE_LIMIT: u32 = 100;
pub const DEFAULT_PAGE_LIMIT: u32 = 20;
/// Free-text references are kept short.
pub const MAX_REFERENCE_LENGTH: usize = 255;
/// The idempotency scope of the native API.
pub const SCOPE: &str = "native";

/// The authenticated merchant: behind an API key, or behind a staff member's session (whose
/// caller is then kept in the request's extensions for [`Staff`]).
pub struct Merchant(pub MerchantId);

impl FromRequestParts<AppState> for Merchant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let credential = crate::credentials::bearer(&parts.headers).unwrap_or_default();
        let access = crate::access::of(parts);
        if credential.starts_with(SESSION_TOKEN_PREFIX) {
            let caller = state.service.authenticate_staff(credential, access).await?;
            let merchant = caller.merchant.clone();
            parts.extensions.insert(caller);
            return Ok(Self(merchant));
        }
        Ok(Self(state.service.authenticate(credential, access).await?))
    }
}

/// The signed-in staff member, for what only a person has (their own password, second factor
/// and session): an API key is refused with 403 `insufficient_scope`.
pub struct Staff(pub StaffCaller);

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<StaffCaller>() {
            return Ok(Self(caller.clone()));
        }
        let credential = crate::credentials::bearer(&parts.headers).unwrap_or_default();
        let access = crate::access::of(parts);
        if credential.starts_with(SESSION_TOKEN_PREFIX) {
            return Ok(Self(state.service.authenticate_staff(credential, access).await?));
        }
        // A key that works has no account of its own: its scope says so (`Scope::allows`).
        let _merchant = state.service.authenticate(credential, access).await?;
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "An API key has no account of its own; sign in as a staff member (POST /v1/sessions).",
        ))
    }
}

/// A JSON body of type `T` and the request's idempotency key, if any. An empty body reads as
/// `{}`, so that endpoints whose fields are all optional can be called without one.
pub struct Body<T> {
    pub value: T,
    pub idempotency: Option<IdempotencyKey>,
}

/// How the native API reads bodies: its own idempotency scope, an empty body as `{}`, refused
/// text named by its field.
const RULES: BodyRules = BodyRules {
    scope: SCOPE,
    empty_is_object: true,
    text: TextCheck::Fields,
};

impl<T: DeserializeOwned> FromRequest<AppState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let body = edge::read_json(request, state, RULES).await?;
        let value = edge::deserialize(body.json).map_err(field_error)?;
        Ok(Self {
            value,
            idempotency: body.idempotency,
        })
    }
}

impl From<BodyRefusal> for ApiError {
    fn from(refusal: BodyRefusal) -> Self {
        let message = refusal.message();
        match refusal {
            BodyRefusal::BadIdempotencyKey => ApiError::invalid("Idempotency-Key", message),
            BodyRefusal::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", message)
            }
            BodyRefusal::UnsafeText {
                param: Some(ref param),
                ..
            } => ApiError::invalid(param, message),
            BodyRefusal::UnsafeText { param: None, .. }
            | BodyRefusal::NotJson(_)
            | BodyRefusal::NotAnObject => ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message),
        }
    }
}

/// Fields whose errors are about an amount, answered with `invalid_amount`.
const AMOUNT_FIELDS: &[&str] = &["amount", "min_load", "max_load", "max_balance", "denominations"];

/// A body that did not fit its request type, the native way: an unknown or missing field named,
/// an amount's error as `invalid_amount`.
fn field_error(error: FieldError) -> ApiError {
    if let Some(field) = error.unknown_field() {
        return ApiError::invalid(field, format!("Unknown field `{field}`."));
    }
    let Some(field) = error.field() else {
        // A missing field is reported at the top level: name it from the message.
        return match error.missing_field() {
            Some(name) => ApiError::invalid(name, format!("The field `{name}` is required.")),
            None => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("Invalid request: {}.", error.reason),
            ),
        };
    };
    let code = if AMOUNT_FIELDS.contains(&field) {
        "invalid_amount"
    } else {
        "invalid_request"
    };
    ApiError::new(
        StatusCode::BAD_REQUEST,
        code,
        format!("Invalid `{}`: {}.", error.path, error.reason),
    )
    .with_param(field)
}

/// A positive amount of minor units from a request field.
pub fn amount(value: i64, param: &str) -> Result<Amount, ApiError> {
    Amount::new(value).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_amount",
            format!("`{param}` must be a positive integer of minor units."),
        )
        .with_param(param)
    })
}

pub fn optional_amount(value: Option<i64>, param: &str) -> Result<Option<Amount>, ApiError> {
    value.map(|v| amount(v, param)).transpose()
}

pub fn currency(code: &str) -> Result<Currency, ApiError> {
    Currency::parse(code).ok_or_else(|| {
        ApiError::invalid(
            "currency",
            "`currency` must be an upper-case ISO 4217 code, e.g. USD.",
        )
    })
}

pub fn optional_currency(code: Option<&str>) -> Result<Option<Currency>, ApiError> {
    code.map(currency).transpose()
}

pub fn reference(value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(text) if text.len() > MAX_REFERENCE_LENGTH || text.chars().any(char::is_control) => {
            Err(ApiError::invalid(
                "reference",
                "`reference` must be at most 255 characters, without control characters.",
            ))
        }
        other => Ok(other),
    }
}

/// The `{id}` segment of a path. axum answers an undecodable segment (invalid UTF-8 in its
/// percent-encoding) in plain text; such an id cannot exist, so it is a JSON 404 here.
pub struct PathId(pub String);

impl FromRequestParts<AppState> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(Self(id)),
            Err(_) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "No such object.",
            )),
        }
    }
}

/// A route's named path segments, for an extractor of several ids: a route that does not
/// match them is 404, as an unknown object is.
pub struct PathParams(Vec<(String, String)>);

impl PathParams {
    pub async fn read(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let axum::extract::Path(params) =
            axum::extract::Path::<Vec<(String, String)>>::from_request_parts(parts, state)
                .await
                .map_err(|_| no_such_object())?;
        Ok(Self(params))
    }

    /// The segment `name`, if the route has one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The segment `name`, which the route must have.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(no_such_object)
    }
}

fn no_such_object() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such object.")
}

/// An id from the path. One of the wrong type or shape cannot exist: 404, as if unknown.
pub fn path_id<T>(value: &str, parse: fn(&str) -> Option<T>, what: &str) -> Result<T, ApiError> {
    parse(value).ok_or_else(|| ApiError::not_found(what))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 100; default 20.
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = match &self.limit {
            None => DEFAULT_PAGE_LIMIT,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|l| (1..=MAX_PAGE_LIMIT).contains(l))
                .ok_or_else(|| ApiError::invalid("limit", "`limit` must be an integer from 1 to 100."))?,
        };
        let cursor = match &self.cursor {
            Some(c)
                if c.is_empty()
                    || c.len() > 100
                    || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                return Err(ApiError::invalid(
                    "cursor",
                    "`cursor` is not a cursor this API gave.",
                ));
            }
            other => other.clone(),
        };
        // One more than asked, to learn whether there is a next page.
        Ok(Page {
            limit: limit + 1,
            cursor,
        })
    }
}

/// Parses a query string strictly (unknown parameters refused), with errors in our shape.
pub fn query<T: DeserializeOwned>(raw: Option<&str>) -> Result<T, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or_default()).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The query string is malformed.",
        )
    })?;
    let object = pairs
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect::<serde_json::Map<_, _>>();
    edge::deserialize(serde_json::Value::Object(object)).map_err(field_error)
}
