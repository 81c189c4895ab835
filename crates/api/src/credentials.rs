//! The API key a request presents, read one way by every front-end: as a bearer token
//! (`Authorization: Bearer <key>`), as Basic credentials (the Stored Value API's: the password,
//! or the user name when there is none), or in a vendor's own header (Adyen's `X-API-Key`,
//! Clover's `apikey`), which each front-end names. An authentication scheme is
//! case-insensitive (RFC 9110, section 11.1), so `bearer`, `Bearer` and `BEARER` are one scheme.
//! Whether the key is valid is the service's question, not this module's.

use axum::http::{HeaderMap, header};
use base64::Engine;

/// The credentials of an `Authorization` header in `scheme`, trimmed; `None` when there is no
/// such header, it is not text, or it names another scheme.
pub(crate) fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim_start();
    let (given, credentials) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| credentials.trim())
}

/// The key of an `Authorization: Bearer <key>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    authorization(headers, "Bearer")
}

/// The key of an `Authorization: Basic <base64 of user:password>` header: the password, or the
/// user name when the password is empty (Adyen's clients send either).
pub(crate) fn basic(headers: &HeaderMap) -> Option<String> {
    let encoded = authorization(headers, "Basic")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':').unwrap_or((text.as_str(), ""));
    Some(if password.is_empty() { user } else { password }.to_owned())
}

/// The value of a vendor's own key header (`X-API-Key`, `apikey`), trimmed, when not empty.
pub(crate) fn key_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|key| !key.is_empty())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_bearer_scheme_is_read_in_any_case_and_the_key_trimmed() {
        for value in ["Bearer key_1", "bearer key_1", "BEARER  key_1 ", "BeArEr key_1"] {
            assert_eq!(bearer(&with_authorization(value)), Some("key_1"), "{value:?}");
        }
    }

    #[test]
    fn another_scheme_or_no_scheme_is_no_bearer_key() {
        for value in ["Basic a2V5XzE=", "key_1", "Bearerkey_1", ""] {
            assert_eq!(bearer(&with_authorization(value)), None, "{value:?}");
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn basic_credentials_give_the_password_or_else_the_user_name_in_any_case_of_the_scheme() {
        // base64("ws_user:key_1") and base64("key_1:")
        assert_eq!(
            basic(&with_authorization("Basic d3NfdXNlcjprZXlfMQ==")).as_deref(),
            Some("key_1")
        );
        assert_eq!(
            basic(&with_authorization("BASIC a2V5XzE6")).as_deref(),
            Some("key_1")
        );
        assert_eq!(basic(&with_authorization("basic not base64!")), None);
    }
}
