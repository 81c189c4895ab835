//! Abuse protection at the edge, before any handler runs: a limit on the size of a request's
//! headers, and rate limits on the requests that try card numbers and security codes, per API
//! key and per client address, on top of the per-card lockout that the service keeps.
//!
//! Which requests count: the native `POST /v1/cards/lookup` and `PUT /v1/users/{user_id}/cards/
//! {card_id}` (saving a card by number and security code), a staff sign-in (`POST /v1/sessions`,
//! which presents no key: counted per address), a native checkout whose body presents
//! a `security_code`, and every request to a vendor facade whose JSON body presents a security
//! code (`passcode` under `/giftcard`, `security_code` or `foreign_access_code` under `/clover`,
//! `securityCode` under the Stored Value API, `SecurityCode` at the Terminal API's `/sync`,
//! `pin` under `/gr4vy`). A refused request answers 429 with
//! `Retry-After` (whole seconds) in the shape of the front-end it was sent to. Each front-end
//! declares these facts about itself (its `EDGE`: the paths it owns, its code fields, its
//! refusal shape) and `lib.rs` lists them in `FRONT_ENDS`: this module names none of them.
//!
//! The limits are kept in this process's memory (GCRA, from the `governor` crate): with several
//! giftd processes behind a load balancer each counts on its own. Nothing here logs or keeps a
//! key or a card number: API keys are counted by their SHA-256 digest.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use giftd_domain::Channel;
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};

/// Sizes and times every request is held to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// A request not answered by then gets 408; its work is abandoned (an effect already
    /// committed stays; a retry with the same Idempotency-Key gets its answer).
    pub request_timeout: Duration,
    /// The largest request body; larger is 413.
    pub max_body_bytes: usize,
    /// The largest total of a request's header names and values; larger is 431.
    pub max_header_bytes: usize,
}

pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: crate::REQUEST_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// How many card lookups and security-code checks a key and an address may make per period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Per API key (0: no limit).
    pub per_key: u32,
    /// Per client address (0: no limit).
    pub per_address: u32,
    /// The allowance comes back evenly over this period: a client that used all of it has all
    /// of it again one period later.
    pub period: Duration,
    /// Behind a proxy giftd trusts: the header that proxy writes the client's address in (the
    /// last address in it is used, the one the nearest proxy added). `None`: the connection's
    /// peer address.
    pub client_address_header: Option<HeaderName>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_key: 600,
            per_address: 120,
            period: Duration::from_secs(60),
            client_address_header: None,
        }
    }
}

/// What the edge needs to know of a front-end to guard it. Each front-end declares its own
/// (`EDGE` in its module: the paths it owns, where its bodies present a security code, the shape
/// of its refusals), and `lib.rs` lists them in [`crate::FRONT_ENDS`]; nothing here names one.
pub struct FrontEndEdge {
    /// Whether a request path is this front-end's.
    pub owns: fn(&str) -> bool,
    /// The body fields in which it takes a security code.
    pub code_fields: &'static [&'static str],
    /// Whether a request counts toward the rate limits whatever its body says (a lookup).
    pub counts: fn(&Method, &str) -> bool,
    /// Whether a request's body is read for [`FrontEndEdge::code_fields`].
    pub inspects_body: fn(&Method, &str) -> bool,
    /// A refusal in this front-end's shape: status, error code (for the shapes that carry
    /// one), message.
    pub refusal: fn(StatusCode, &'static str, String) -> Response,
    /// For a front-end that checks its own path segments (the native API: an id of the wrong
    /// shape is a 404 there), how it names a refused query parameter; `None`: the edge checks
    /// the whole path and answers with [`FrontEndEdge::refusal`].
    pub query_refusal: Option<fn(&str, String) -> Response>,
    /// The channel recorded on the ledger transactions its requests write.
    pub channel: Channel,
}

/// The front-ends a router serves, the first being the one for paths none of them owns.
pub type FrontEnds = &'static [&'static FrontEndEdge];

/// The front-end a path is for, if any owns it.
fn owner(front_ends: FrontEnds, path: &str) -> Option<&'static FrontEndEdge> {
    front_ends
        .iter()
        .copied()
        .find(|front_end| (front_end.owns)(path))
}

/// The channel of the front-end a path is for (the first front-end's for a path none owns: the
/// console's own pages, which write through the native API).
pub fn channel(front_ends: FrontEnds, path: &str) -> Channel {
    owner_or_first(front_ends, path).channel
}

/// The front-end a path is for, or the first one: every refusal has some front-end's shape.
fn owner_or_first(front_ends: FrontEnds, path: &str) -> &'static FrontEndEdge {
    owner(front_ends, path).unwrap_or(front_ends[0])
}

/// The facades' rule for which bodies to read: every write may present a security code.
pub fn every_write(method: &Method, _path: &str) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

/// The facades' rule for requests that count without a body: none.
pub fn none(_method: &Method, _path: &str) -> bool {
    false
}

/// Refuses a request whose header names and values add up to more than the limit (431).
pub async fn limit_header_size(
    State((max_header_bytes, front_ends)): State<(usize, FrontEnds)>,
    request: Request,
    next: Next,
) -> Response {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size > max_header_bytes {
        let front_end = owner_or_first(front_ends, request.uri().path());
        return (front_end.refusal)(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "invalid_request",
            format!("The request's headers are larger than {max_header_bytes} bytes."),
        );
    }
    next.run(request).await
}

/// Refuses a request whose path or query holds, once percent-decoded, a character that no
/// text of any front-end may hold (`crate::text`): 400, in the front-end's shape.
///
/// The native API names the query parameter, and leaves its path to its handlers: a native id
/// of the wrong shape, control characters included, is a 404 before it reaches the database.
pub async fn refuse_unsafe_uri(
    State(front_ends): State<FrontEnds>,
    request: Request,
    next: Next,
) -> Response {
    let uri = request.uri();
    let front_end = owner_or_first(front_ends, uri.path());
    if let Err((param, refused)) = crate::text::check_query(uri.query().unwrap_or_default()) {
        return match front_end.query_refusal {
            Some(query_refusal) => query_refusal(&param, refused.to_string()),
            None => (front_end.refusal)(StatusCode::BAD_REQUEST, "invalid_request", refused.to_string()),
        };
    }
    if front_end.query_refusal.is_none()
        && let Err(refused) = crate::text::check_uri(uri.path())
    {
        return (front_end.refusal)(StatusCode::BAD_REQUEST, "invalid_request", refused.to_string());
    }
    next.run(request).await
}

type KeyedLimiter<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// Checks between two sweeps of keys that have regained their whole allowance.
const SWEEP_EVERY: u64 = 4096;

/// The rate limiters of one app.
pub struct Guard {
    per_key: Option<KeyedLimiter<[u8; 32]>>,
    per_address: Option<KeyedLimiter<IpAddr>>,
    client_address_header: Option<HeaderName>,
    max_body_bytes: usize,
    front_ends: FrontEnds,
    clock: DefaultClock,
    checks: AtomicU64,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(count: u32, period: Duration) -> Option<KeyedLimiter<K>> {
    let count = NonZeroU32::new(count)?;
    let interval = (period / count.get()).max(Duration::from_nanos(1));
    let quota = Quota::with_period(interval)?.allow_burst(count);
    Some(RateLimiter::keyed(quota))
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy)]
enum Exceeded {
    Key,
    Address,
}

impl Guard {
    pub fn new(limits: &RateLimits, max_body_bytes: usize, front_ends: FrontEnds) -> Arc<Self> {
        Arc::new(Self {
            per_key: limiter(limits.per_key, limits.period),
            per_address: limiter(limits.per_address, limits.period),
            client_address_header: limits.client_address_header.clone(),
            max_body_bytes,
            front_ends,
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        })
    }

    fn client_address(&self, request: &Request) -> Option<IpAddr> {
        let from_header = self.client_address_header.as_ref().and_then(|name| {
            let value = request.headers().get(name)?.to_str().ok()?;
            value.rsplit(',').next()?.trim().parse::<IpAddr>().ok()
        });
        from_header.or_else(|| {
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(address)| address.ip())
        })
    }

    /// Takes one from each allowance the request falls under, or says which is spent and how
    /// long until it has one again.
    fn check(&self, key: Option<[u8; 32]>, address: Option<IpAddr>) -> Result<(), (Exceeded, Duration)> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            for limiter in self.per_key.iter() {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
            for limiter in self.per_address.iter() {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
        if let (Some(limiter), Some(address)) = (&self.per_address, address) {
            limiter
                .check_key(&address)
                .map_err(|not_until| (Exceeded::Address, not_until.wait_time_from(self.clock.now())))?;
        }
        if let (Some(limiter), Some(key)) = (&self.per_key, key) {
            limiter
                .check_key(&key)
                .map_err(|not_until| (Exceeded::Key, not_until.wait_time_from(self.clock.now())))?;
        }
        Ok(())
    }
}

/// The digest of the API key a request presents (as a bearer token, Basic credentials, or in
/// Adyen's `X-API-Key` or Clover's `apikey` header), whether or not it turns out to be valid. The
/// same key counts as one however it is sent.
fn credential_digest(headers: &HeaderMap) -> Option<[u8; 32]> {
    let digest = |key: &[u8]| Some(Sha256::digest(key.trim_ascii()).into());
    if let Some(key) = ["x-api-key", "apikey"]
        .iter()
        .find_map(|name| crate::credentials::key_header(headers, name))
        .or_else(|| crate::credentials::bearer(headers))
    {
        return digest(key.as_bytes());
    }
    if let Some(key) = crate::credentials::basic(headers) {
        return digest(key.as_bytes());
    }
    // Not a key any front-end reads, but counted all the same, whole.
    digest(headers.get(header::AUTHORIZATION)?.as_bytes())
}

/// Whether the JSON has a non-null field with one of these names, at any depth.
fn presents_field(value: &serde_json::Value, names: &[&str]) -> bool {
    match value {
        serde_json::Value::Object(map) => map.iter().any(|(name, inner)| {
            (names.contains(&name.as_str()) && !inner.is_null()) || presents_field(inner, names)
        }),
        serde_json::Value::Array(items) => items.iter().any(|item| presents_field(item, names)),
        _ => false,
    }
}

/// The client's address as the edge decided it (the peer, or the trusted proxy's header), for
/// the handlers and the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// The rate limit middleware. It also leaves the client's address in the request's extensions
/// ([`ClientAddress`]).
pub async fn rate_limit(State(guard): State<Arc<Guard>>, mut request: Request, next: Next) -> Response {
    if let Some(address) = guard.client_address(&request) {
        request.extensions_mut().insert(ClientAddress(address));
    }
    let Some(front_end) = owner(guard.front_ends, request.uri().path()) else {
        return next.run(request).await;
    };
    if guard.per_key.is_none() && guard.per_address.is_none() {
        return next.run(request).await;
    }
    let (counts, request) = if (front_end.counts)(request.method(), request.uri().path()) {
        (true, request)
    } else if (front_end.inspects_body)(request.method(), request.uri().path()) {
        let (parts, body) = request.into_parts();
        match axum::body::to_bytes(body, guard.max_body_bytes).await {
            Ok(bytes) => {
                let counts = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .is_ok_and(|json| presents_field(&json, front_end.code_fields));
                (counts, Request::from_parts(parts, Body::from(bytes)))
            }
            // Too large (or cut short): the front-end's own extractor answers it, as it would
            // without this layer, from a body that fails the same way.
            Err(_) => (
                false,
                Request::from_parts(parts, Body::from_stream(failing_body())),
            ),
        }
    } else {
        (false, request)
    };
    if !counts {
        return next.run(request).await;
    }
    let key = credential_digest(request.headers());
    let address = request
        .extensions()
        .get::<ClientAddress>()
        .map(|ClientAddress(ip)| *ip);
    match guard.check(key, address) {
        Ok(()) => next.run(request).await,
        Err((exceeded, wait)) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let seconds = seconds.max(1);
            let whom = match exceeded {
                Exceeded::Key => "this API key",
                Exceeded::Address => "this client address",
            };
            let limit = match exceeded {
                Exceeded::Key => "key",
                Exceeded::Address => "address",
            };
            tracing::warn!(limit, retry_after_seconds = seconds, "rate limited");
            ::metrics::counter!(crate::telemetry::RATE_LIMITED_TOTAL, "limit" => limit).increment(1);
            let mut response = (front_end.refusal)(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "Too many card lookups, sign-ins and security-code checks from {whom}; retry after {seconds} s."
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
    }
}

/// A body that fails at once, standing in for one that was too large to buffer.
fn failing_body() -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::once(async { Err(std::io::Error::other("the request body is too large")) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_fields_are_found_at_any_depth_and_null_does_not_count() {
        let json: serde_json::Value =
            serde_json::from_str(r#"{"gift_card":{"number":"6036","security_code":"1234"}}"#).expect("json");
        assert!(presents_field(&json, crate::clover::EDGE.code_fields));
        let json: serde_json::Value =
            serde_json::from_str(r#"{"giftCardId":"c_1","passcode":null}"#).expect("json");
        assert!(!presents_field(&json, crate::giftcard::EDGE.code_fields));
    }

    #[test]
    fn every_request_path_of_a_front_end_is_owned_by_it_alone() {
        for (path, owner_code_fields) in [
            ("/v1/cards/lookup", crate::native::EDGE.code_fields),
            ("/giftcard/v1/balance", crate::giftcard::EDGE.code_fields),
            ("/clover/v1/charges", crate::clover::EDGE.code_fields),
            ("/sync", crate::adyen_terminal::EDGE.code_fields),
            (
                "/pal/servlet/StoredValue/v46/issue",
                crate::adyen_stored_value::EDGE.code_fields,
            ),
            ("/gr4vy/gift-cards", crate::gr4vy::EDGE.code_fields),
        ] {
            let owners: Vec<_> = crate::FRONT_ENDS.iter().filter(|f| (f.owns)(path)).collect();
            assert_eq!(owners.len(), 1, "{path}");
            assert_eq!(owners[0].code_fields, owner_code_fields, "{path}");
        }
        assert!(owner(crate::FRONT_ENDS, "/healthz").is_none());
    }

    #[test]
    fn native_lookups_saves_and_sign_ins_count_and_imports_do_not() {
        let counts = crate::native::EDGE.counts;
        assert!(counts(&Method::POST, "/v1/cards/lookup"));
        assert!(counts(&Method::POST, "/v1/sessions"));
        assert!(counts(&Method::PUT, "/v1/users/u1/cards/card_1"));
        assert!(!counts(&Method::POST, "/v1/cards"));
        assert!(!counts(&Method::GET, "/v1/users/u1/cards"));
    }
}
