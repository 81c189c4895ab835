//! What every front-end does with an `Idempotency-Key`: read the header (1 to 255 printable
//! ASCII characters) and digest the request it came with. Each front-end words the refusal of a
//! malformed key in its own error shape.

use axum::http::Method;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

pub const MAX_IDEMPOTENCY_KEY_LENGTH: usize = 255;
pub const HEADER: &str = "idempotency-key";

/// The header was sent but is not 1 to 255 printable ASCII characters.
#[derive(Debug)]
pub struct MalformedKey;

/// The request's key, if it carries one.
pub fn header_key(parts: &Parts) -> Result<Option<String>, MalformedKey> {
    let Some(value) = parts.headers.get(HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|v| !v.is_empty() && v.len() <= MAX_IDEMPOTENCY_KEY_LENGTH)
        .filter(|v| v.bytes().all(|b| (0x20..0x7f).contains(&b)))
        .map(|key| Some(key.to_owned()))
        .ok_or(MalformedKey)
}

/// The digest that tells a retry (same request) from a reused key (another request): method,
/// path and the body in canonical form (keys sorted, whitespace dropped).
pub fn request_hash(method: &Method, path: &str, body: &serde_json::Value) -> Vec<u8> {
    let mut digest = Sha256::new();
    digest.update(method.as_str().as_bytes());
    digest.update(b"\n");
    digest.update(path.as_bytes());
    digest.update(b"\n");
    digest.update(body.to_string().as_bytes());
    digest.finalize().to_vec()
}
