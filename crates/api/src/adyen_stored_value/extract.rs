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

use super::error::{SvError, codes};
use crate::AppState;

/// The header Adyen takes an API key in (any case: Python's client sends `x-api-key` or
/// `X-API-KEY`, depending on its HTTP library).
pub const API_KEY_HEADER: &str = "x-api-key";

/// The authenticated merchant: a giftd merchant API key, sent as `X-API-Key: <key>` or as the
/// password of HTTP Basic (`Authorization: Basic base64(user:key)`; the user name, Adyen's
/// `ws@Company.X`, is not checked; a key given as the user with an empty password works too).
pub struct SvMerchant(pub MerchantId);

impl FromRequestParts<AppState> for SvMerchant {
    type Rejection = SvError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let key = crate::credentials::key_header(&parts.headers, API_KEY_HEADER)
            .map(str::to_owned)
            .or_else(|| crate::credentials::basic(&parts.headers))
            .unwrap_or_default();
        Ok(Self(state.service.authenticate(&key).await?))
    }
}

/// A JSON body of type `T` and the request's idempotency key, if any.
pub struct SvBody<T> {
    pub value: T,
    pub idempotency: Option<IdempotencyKey>,
}

impl<T: DeserializeOwned> FromRequest<AppState> for SvBody<T> {
    type Rejection = SvError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let key = idempotency_key(&parts)?;
        let max_body_bytes = state.limits.max_body_bytes;
        let bytes = axum::body::to_bytes(body, max_body_bytes)
            .await
            .map_err(|_| SvError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                ..SvError::validation(
                    codes::STRUCTURE,
                    format!("The request body is larger than {max_body_bytes} bytes."),
                )
            })?;
        crate::text::check_json(&bytes)
            .map_err(|refused| SvError::validation(codes::STRUCTURE, refused.to_string()))?;
        let json: serde_json::Value = crate::json::from_slice(&bytes).map_err(|e| {
            SvError::validation(codes::STRUCTURE, format!("The body is not valid JSON: {e}."))
        })?;
        if !json.is_object() {
            return Err(SvError::validation(
                codes::STRUCTURE,
                "The body must be a JSON object.",
            ));
        }
        let idempotency = key.map(|key| IdempotencyKey {
            scope: STORED_VALUE_SCOPE,
            key,
            request_hash: crate::idempotency::request_hash(&parts.method, parts.uri.path(), &json),
        });
        let value = serde_path_to_error::deserialize(json).map_err(|error| {
            let path = error.path().to_string();
            SvError::validation(
                codes::STRUCTURE,
                format!("Invalid `{path}`: {}.", error.into_inner()),
            )
        })?;
        Ok(Self { value, idempotency })
    }
}

fn idempotency_key(parts: &Parts) -> Result<Option<String>, SvError> {
    crate::idempotency::header_key(parts).map_err(|_| {
        SvError::validation(
            codes::STRUCTURE,
            "The Idempotency-Key header must be 1 to 255 printable ASCII characters.",
        )
    })
}
