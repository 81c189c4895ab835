//! Request extraction for the Stored Value API facade: the merchant behind the credentials
//! (`X-API-Key`, or HTTP Basic as Adyen's web service users send it), the JSON body (lenient:
//! unknown fields are ignored), and the `Idempotency-Key` with a digest of the request, in the
//! facade's own idempotency scope.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use giftd_domain::MerchantId;
use giftd_service::IdempotencyKey;
use giftd_service::adyen::STORED_VALUE_SCOPE;
use serde::de::DeserializeOwned;

use super::error::{AdyenSvError, codes};
use crate::AppState;
use crate::edge::{self, BodyRefusal, BodyRules, TextCheck};

/// The header Adyen takes an API key in (any case: Python's client sends `x-api-key` or
/// `X-API-KEY`, depending on its HTTP library).
pub const API_KEY_HEADER: &str = "x-api-key";

/// The authenticated merchant: a giftd merchant API key, sent as `X-API-Key: <key>` or as the
/// password of HTTP Basic (`Authorization: Basic base64(user:key)`; the user name, Adyen's
/// `ws@Company.X`, is not checked; a key given as the user with an empty password works too).
pub struct AdyenSvMerchant(pub MerchantId);

impl FromRequestParts<AppState> for AdyenSvMerchant {
    type Rejection = AdyenSvError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let key = crate::credentials::key_header(&parts.headers, API_KEY_HEADER)
            .map(str::to_owned)
            .or_else(|| crate::credentials::basic(&parts.headers))
            .unwrap_or_default();
        Ok(Self(
            state.service.authenticate(&key, crate::access::of(parts)).await?,
        ))
    }
}

/// A JSON body of type `T` and the request's idempotency key, if any.
pub struct AdyenSvBody<T> {
    pub value: T,
    pub idempotency: Option<IdempotencyKey>,
}

/// How the Stored Value API facade reads bodies: its own idempotency scope, a body always
/// (an empty one is not JSON), refused text named as the body's.
const RULES: BodyRules = BodyRules {
    scope: STORED_VALUE_SCOPE,
    empty_is_object: false,
    text: TextCheck::Bytes,
};

impl<T: DeserializeOwned> FromRequest<AppState> for AdyenSvBody<T> {
    type Rejection = AdyenSvError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let body = edge::read_json(request, state, RULES).await?;
        let value = edge::deserialize(body.json).map_err(|error| {
            AdyenSvError::validation(
                codes::STRUCTURE,
                format!("Invalid `{}`: {}.", error.path, error.reason),
            )
        })?;
        Ok(Self {
            value,
            idempotency: body.idempotency,
        })
    }
}

impl From<BodyRefusal> for AdyenSvError {
    fn from(refusal: BodyRefusal) -> Self {
        let error = AdyenSvError::validation(codes::STRUCTURE, refusal.message());
        match refusal {
            BodyRefusal::TooLarge { .. } => AdyenSvError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                ..error
            },
            BodyRefusal::BadIdempotencyKey
            | BodyRefusal::UnsafeText { .. }
            | BodyRefusal::NotJson(_)
            | BodyRefusal::NotAnObject => error,
        }
    }
}
