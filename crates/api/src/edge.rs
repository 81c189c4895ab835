//! The edge kit: what every front-end does to a request the same way, whatever shape its errors
//! take. Read a JSON body within the size limit with its `Idempotency-Key` and the request's
//! digest ([`read_json`]), deserialize it naming the field at fault ([`deserialize`]), and the
//! small wording helpers (a sentence from an error's text, RFC 3339 times). Each front-end
//! turns a [`BodyRefusal`] or a [`FieldError`] into its own error shape; the rules and the
//! words stay here, in one place.

use axum::extract::Request;
use axum::http::request::Parts;
use giftd_domain::Timestamp;
use giftd_service::IdempotencyKey;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::AppState;
use crate::text::UnsafeText;

/// How a front-end reads its bodies.
#[derive(Debug, Clone, Copy)]
pub struct BodyRules {
    /// The idempotency scope: one key means different things to different front-ends.
    pub scope: &'static str,
    /// Whether an empty (or all-whitespace) body reads as `{}`, for endpoints whose fields are
    /// all optional.
    pub empty_is_object: bool,
    /// Where refused text is looked for.
    pub text: TextCheck,
}

/// Where a body's refused characters (NUL, controls, overlong strings: `text.rs`) are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextCheck {
    /// In the raw bytes, before parsing: the refusal names the body.
    Bytes,
    /// In the parsed strings: the refusal names the field (`items[0].name`).
    Fields,
}

/// Why a body was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRefusal {
    /// The `Idempotency-Key` header is empty, too long or not printable ASCII.
    BadIdempotencyKey,
    /// The body is larger than the limit (413).
    TooLarge { limit: usize },
    /// A string of the body holds a refused character or is too long; `param` names the field
    /// when the rules look in fields.
    UnsafeText {
        param: Option<String>,
        refused: UnsafeText,
    },
    /// Not JSON, with the parser's reason.
    NotJson(String),
    /// JSON, but not an object.
    NotAnObject,
}

impl BodyRefusal {
    /// The refusal in words, as every front-end puts it.
    pub fn message(&self) -> String {
        match self {
            BodyRefusal::BadIdempotencyKey => {
                "The Idempotency-Key header must be 1 to 255 printable ASCII characters.".to_owned()
            }
            BodyRefusal::TooLarge { limit } => format!("The request body is larger than {limit} bytes."),
            BodyRefusal::UnsafeText { refused, .. } => refused.to_string(),
            BodyRefusal::NotJson(reason) => format!("The body is not valid JSON: {reason}."),
            BodyRefusal::NotAnObject => "The body must be a JSON object.".to_owned(),
        }
    }
}

/// A body read by [`read_json`]: the request's head, its JSON object and its idempotency key.
pub struct JsonBody {
    pub parts: Parts,
    pub json: serde_json::Value,
    pub idempotency: Option<IdempotencyKey>,
}

/// Reads a request's JSON object body under `rules`: the `Idempotency-Key` checked first, the
/// body read up to the configured limit, its text checked, parsed (with the depth limit of
/// `json.rs`), and the key paired with a digest of method, path and canonical body.
pub async fn read_json(
    request: Request,
    state: &AppState,
    rules: BodyRules,
) -> Result<JsonBody, BodyRefusal> {
    let (parts, body) = request.into_parts();
    let key = crate::idempotency::header_key(&parts).map_err(|_| BodyRefusal::BadIdempotencyKey)?;
    let limit = state.limits.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| BodyRefusal::TooLarge { limit })?;
    let json = if rules.empty_is_object && bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        if rules.text == TextCheck::Bytes {
            crate::text::check_json(&bytes)
                .map_err(|refused| BodyRefusal::UnsafeText { param: None, refused })?;
        }
        let json: serde_json::Value =
            crate::json::from_slice(&bytes).map_err(|e| BodyRefusal::NotJson(e.to_string()))?;
        if rules.text == TextCheck::Fields {
            crate::text::check_value(&json).map_err(|(param, refused)| BodyRefusal::UnsafeText {
                param: Some(param),
                refused,
            })?;
        }
        if !json.is_object() {
            return Err(BodyRefusal::NotAnObject);
        }
        json
    };
    let idempotency = key.map(|key| IdempotencyKey {
        scope: rules.scope,
        key,
        request_hash: crate::idempotency::request_hash(&parts.method, parts.uri.path(), &json),
    });
    Ok(JsonBody {
        parts,
        json,
        idempotency,
    })
}

/// Why a JSON object did not deserialize into a request type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where, as serde names it (`items[0].amount`; `.` or empty at the top level).
    pub path: String,
    /// The deserializer's reason (`invalid type: string "x", expected i64`).
    pub reason: String,
}

impl FieldError {
    /// The top-level field the error is in, if it is in one.
    pub fn field(&self) -> Option<&str> {
        let field = self.path.split(['.', '[']).next().unwrap_or_default();
        (!field.is_empty() && field != "?").then_some(field)
    }

    /// The field a `deny_unknown_fields` type refused.
    pub fn unknown_field(&self) -> Option<&str> {
        quoted_after(&self.reason, "unknown field `")
    }

    /// The required field that was missing.
    pub fn missing_field(&self) -> Option<&str> {
        quoted_after(&self.reason, "missing field `")
    }
}

fn quoted_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.strip_prefix(prefix).and_then(|rest| rest.split('`').next())
}

/// Deserializes a JSON object into `T`, saying where it failed.
pub fn deserialize<T: DeserializeOwned>(json: serde_json::Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(json).map_err(|error| FieldError {
        path: error.path().to_string(),
        reason: error.into_inner().to_string(),
    })
}

/// An error's text as a sentence: capitalized, ending with a full stop.
pub fn sentence(message: String) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => {
            let mut out: String = first.to_uppercase().chain(chars).collect();
            if !out.ends_with('.') {
                out.push('.');
            }
            out
        }
        None => message,
    }
}

const RFC3339_MILLIS: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// An instant as RFC 3339 in UTC with milliseconds (`2026-12-07T06:19:15.000Z`).
pub fn rfc3339(at: Timestamp) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.unix_millis()) * 1_000_000)
        .ok()
        .and_then(|t| t.format(RFC3339_MILLIS).ok())
        .unwrap_or_default()
}

/// An RFC 3339 date-time from a request (any offset) as an instant; `None` when it is not one.
pub fn parse_rfc3339(value: &str) -> Option<Timestamp> {
    OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|at| i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok())
        .map(Timestamp::from_unix_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rfc3339_date_time_in_any_offset_reads_as_its_instant() {
        let at = parse_rfc3339("2026-12-07T07:19:15.5+01:00").unwrap();
        assert_eq!(rfc3339(at), "2026-12-07T06:19:15.500Z");
        assert_eq!(parse_rfc3339("2026-12-07"), None);
        assert_eq!(parse_rfc3339("tomorrow"), None);
    }

    #[test]
    fn a_sentence_starts_upper_case_and_ends_with_one_full_stop() {
        assert_eq!(sentence("card is frozen".into()), "Card is frozen.");
        assert_eq!(sentence("Already one.".into()), "Already one.");
        assert_eq!(sentence(String::new()), "");
    }

    #[test]
    fn a_field_error_names_its_top_level_field_and_what_was_unknown_or_missing() {
        let error =
            deserialize::<std::collections::BTreeMap<String, i64>>(serde_json::json!({"amount": "x"}))
                .expect_err("a string is not an i64");
        assert_eq!(error.field(), Some("amount"));
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)] // read only by serde
        struct Strict {
            amount: i64,
        }
        let unknown = deserialize::<Strict>(serde_json::json!({"amount": 1, "zzz": 2})).expect_err("unknown");
        assert_eq!(unknown.unknown_field(), Some("zzz"));
        let missing = deserialize::<Strict>(serde_json::json!({})).expect_err("missing");
        assert_eq!(missing.missing_field(), Some("amount"));
        assert_eq!(missing.field(), None);
    }

    #[test]
    fn instants_are_written_in_utc_with_milliseconds() {
        assert_eq!(
            rfc3339(Timestamp::from_unix_millis(0)),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339(Timestamp::from_unix_millis(1_796_624_355_123)),
            "2026-12-07T06:19:15.123Z"
        );
    }
}
