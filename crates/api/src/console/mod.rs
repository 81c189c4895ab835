//! The merchant console (`/console`, docs/CONSOLE.md): pages a merchant's staff use in a
//! browser, served by giftd itself with every asset embedded. Server-rendered HTML (askama
//! templates, escaped by extension) and plain forms: every action is a `POST` answered by a
//! redirect, so the console works without JavaScript, from the keyboard, on a counter tablet.
//!
//! The console is a front-end over the native API, like the vendor facades: each page and each
//! action is one or more native requests made in-process ([`Console::call`]) with the staff
//! member's session token, through the whole application with its layers. So a role is checked,
//! a refusal worded, an action audited and a sign-in rate limited exactly as through the API,
//! and the console holds no rule of its own. What it adds is the browser's side: the session in
//! a cookie (`HttpOnly`, `SameSite=Strict`, `Secure` with `__Host-` over TLS), a token against
//! cross-site requests in every form, checked with the `Sec-Fetch-Site`/`Origin` headers on
//! every unsafe request, and strict headers on every answer (`Content-Security-Policy` without
//! inline script or style, `no-store`, no framing).

mod admin;
mod pages;

pub(crate) use pages::stylesheet_response;

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

/// The session cookie over TLS: `__Host-` makes the browser insist on `Secure`, `Path=/` and no
/// `Domain`.
pub const SECURE_SESSION_COOKIE: &str = "__Host-giftd";
/// The session cookie over plain HTTP (a browser drops `Secure` cookies there, but for
/// `localhost`).
pub const PLAIN_SESSION_COOKIE: &str = "giftd_console";
/// The sign-in form's own token against cross-site requests, before there is a session.
const SIGN_IN_COOKIE_SUFFIX: &str = "-sign-in";
/// The largest form a console page posts.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// The largest native answer a page reads.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// Every console answer's policy: only the console's own stylesheet, no script at all (and
/// requests only to itself, should one ever run), forms only to itself, never in a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How the console is served.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsoleConfig {
    /// Served over TLS: the session cookie is `Secure` (and named `__Host-giftd`).
    pub tls: bool,
}

impl ConsoleConfig {
    fn session_cookie(self) -> &'static str {
        if self.tls {
            SECURE_SESSION_COOKIE
        } else {
            PLAIN_SESSION_COOKIE
        }
    }

    fn sign_in_cookie(self) -> String {
        format!("{}{SIGN_IN_COOKIE_SUFFIX}", self.session_cookie())
    }

    /// A `Set-Cookie` value for `name`; an empty `value` deletes it.
    fn cookie(self, name: &str, value: &str) -> HeaderValue {
        let secure = if self.tls { "; Secure" } else { "" };
        let expiry = if value.is_empty() { "; Max-Age=0" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Strict{secure}{expiry}"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("giftd_console=; Max-Age=0"))
    }
}

/// The console's state: the whole application its pages call, and how it is served.
#[derive(Clone)]
pub struct Console {
    api: Router,
    config: ConsoleConfig,
    /// For the time only (what "today" is): everything else goes through `api`.
    service: giftd_service::Service,
}

impl Console {
    /// Today, by the service's clock.
    pub(crate) fn today(&self) -> giftd_domain::Date {
        giftd_domain::Date::of(self.service.now())
    }
}

/// The console's routes under `/console`, over `api` (the whole application).
pub fn router(api: Router, config: ConsoleConfig, service: giftd_service::Service) -> Router {
    pages::routes()
        .with_state(Console { api, config, service })
        .layer(axum::middleware::map_response(strict_headers))
}

/// Headers on every console answer.
async fn strict_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("x-frame-options", "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// What a page knows of its request: the session token (from the cookie), the client's
/// address and the request id, passed on to the native requests it makes.
pub(crate) struct Visit {
    pub token: Option<String>,
    /// The page's path and query, without the host.
    pub path: String,
    pub query: Option<String>,
    connect: Option<ConnectInfo<SocketAddr>>,
    forwarded: HeaderMap,
}

impl Visit {
    /// The first value of `name` in the page's query, or `""` when it has none.
    pub(crate) fn query_field(&self, name: &str) -> String {
        self.query
            .as_deref()
            .and_then(|query| serde_urlencoded::from_str::<Vec<(String, String)>>(query).ok())
            .and_then(|pairs| pairs.into_iter().find(|(n, _)| n == name))
            .map(|(_, value)| value)
            .unwrap_or_default()
    }
}

/// Headers a native request inherits from the page's request: the request id, what a proxy
/// says of the client's address (the guard reads the one it is configured to trust), and the
/// host the page was asked of (where a cardholder link made from the page points, without a
/// configured `public_url`).
const PASSED_ON: [&str; 5] = [
    "x-request-id",
    "x-forwarded-for",
    "forwarded",
    "x-real-ip",
    "host",
];

impl Visit {
    pub(crate) fn of(request: &Request, config: ConsoleConfig) -> Self {
        Self::new(request.headers(), request.uri(), request.extensions(), config)
    }

    fn new(
        headers: &HeaderMap,
        uri: &axum::http::Uri,
        extensions: &axum::http::Extensions,
        config: ConsoleConfig,
    ) -> Self {
        let mut forwarded = HeaderMap::new();
        for name in PASSED_ON {
            if let Some(value) = headers.get(name) {
                forwarded.insert(name, value.clone());
            }
        }
        Self {
            token: cookie(headers, config.session_cookie()),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            connect: extensions.get::<ConnectInfo<SocketAddr>>().copied(),
            forwarded,
        }
    }

    /// The token every form of this session carries against cross-site requests: a digest of
    /// the session token, which no other site can read.
    pub(crate) fn form_token(&self) -> String {
        self.token.as_deref().map(form_token).unwrap_or_default()
    }
}

/// A session's form token.
fn form_token(secret: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(b"giftd console form token\0");
    digest.update(secret.as_bytes());
    hex::encode(&digest.finalize()[..16])
}

/// Whether two tokens are equal, taking the same time wherever they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && !a.is_empty()
        && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A cookie of the request by name.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

/// Whether an unsafe request comes from the console's own pages, by what the browser says of
/// it: `Sec-Fetch-Site` when sent (it is by every current browser), else `Origin` against
/// `Host`. A request that says neither (not a browser's) is left to the form token.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// A native request's answer: its status and JSON body (null when it had none).
pub(crate) struct Answer {
    pub status: StatusCode,
    pub json: serde_json::Value,
}

impl Answer {
    pub(crate) fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The rows of a list or report the API answered (its `data`); none for a refusal.
    pub(crate) fn rows(&self) -> impl Iterator<Item = &serde_json::Value> {
        self.json["data"].as_array().into_iter().flatten()
    }

    /// The refusal's sentence, for the page.
    pub(crate) fn message(&self) -> String {
        self.json["error"]["message"]
            .as_str()
            .map_or_else(|| format!("The request failed ({}).", self.status), str::to_owned)
    }
}

impl Console {
    /// Makes a native request in-process, as the visit's staff member, through the whole
    /// application (authentication, roles, rate limits, audit).
    pub(crate) async fn call(
        &self,
        visit: &Visit,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = &visit.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in &visit.forwarded {
            request = request.header(name, value);
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let mut request = match request.body(body) {
            Ok(request) => request,
            Err(_) => {
                return Answer {
                    status: StatusCode::BAD_REQUEST,
                    json: serde_json::json!({"error": {"message": "That is not a valid address."}}),
                };
            }
        };
        if let Some(connect) = visit.connect {
            request.extensions_mut().insert(connect);
        }
        let response = match self.api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .unwrap_or_default();
        Answer {
            status,
            json: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// A redirect after a form (`303 See Other`: the browser follows with a `GET`).
pub(crate) fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Reads a posted form (URL-encoded, at most [`MAX_FORM_BYTES`]) after checking that it comes
/// from the console's own page: same origin, and the form token of `expected`. `None` refuses.
pub(crate) async fn form(request: Request, expected: &str) -> Option<Vec<(String, String)>> {
    if !same_origin(request.headers()) {
        return None;
    }
    let bytes = axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES)
        .await
        .ok()?;
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).ok()?;
    let sent = fields
        .iter()
        .find(|(name, _)| name == "form_token")
        .map(|(_, value)| value.as_str())?;
    same(sent, expected).then_some(fields)
}

/// A field of a posted form, trimmed; empty when absent.
pub(crate) fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map_or("", |(_, value)| value.trim())
}

/// Minor units as the console shows money: `25.00 USD`, `-3.50 EUR`, `1000 JPY`.
pub(crate) fn money(minor: i64, currency: &str) -> String {
    let exponent = giftd_domain::Currency::parse(currency).map_or(2, giftd_domain::Currency::exponent);
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    if exponent == 0 {
        return format!("{sign}{magnitude} {currency}");
    }
    let unit = 10u64.pow(exponent);
    format!(
        "{sign}{}.{:0width$} {currency}",
        magnitude / unit,
        magnitude % unit,
        width = exponent as usize
    )
}

/// An amount typed in major units (`25`, `25.50`, `-3.5` where `signed`) as minor units of
/// `currency`; `None` when it is not one.
pub(crate) fn minor_units(text: &str, currency: &str, signed: bool) -> Option<i64> {
    let currency = giftd_domain::Currency::parse(currency)?;
    let (negative, digits) = match text.trim().strip_prefix('-') {
        Some(rest) if signed => (true, rest),
        Some(_) => return None,
        None => (false, text.trim()),
    };
    if digits.contains(['e', 'E']) {
        return None;
    }
    let minor = giftd_domain::major_units::MajorUnits::parse(digits)?
        .to_minor(currency)
        .ok()?;
    Some(if negative { -minor } else { minor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_shown_with_every_place_of_its_currency() {
        assert_eq!(money(2_500, "USD"), "25.00 USD");
        assert_eq!(money(-350, "EUR"), "-3.50 EUR");
        assert_eq!(money(1_000, "JPY"), "1000 JPY");
        assert_eq!(money(5, "USD"), "0.05 USD");
    }

    #[test]
    fn amounts_are_typed_in_major_units_and_only_adjustments_take_a_sign() {
        assert_eq!(minor_units("25", "USD", false), Some(2_500));
        assert_eq!(minor_units("25.5", "USD", false), Some(2_550));
        assert_eq!(minor_units("-3.50", "EUR", true), Some(-350));
        assert_eq!(minor_units("-3.50", "EUR", false), None);
        assert_eq!(minor_units("1.005", "USD", false), None);
        assert_eq!(minor_units("1e3", "USD", false), None);
    }

    #[test]
    fn an_unsafe_request_from_another_site_is_told_apart_from_the_consoles_own() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(same_origin(&headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(same_origin(&headers(&[])));
    }

    #[test]
    fn over_tls_the_session_cookie_is_secure_and_host_only_and_a_deleted_one_expires() {
        let tls = ConsoleConfig { tls: true };
        assert_eq!(tls.session_cookie(), "__Host-giftd");
        assert_eq!(
            tls.cookie(tls.session_cookie(), "gs_x"),
            "__Host-giftd=gs_x; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        let plain = ConsoleConfig { tls: false };
        assert_eq!(
            plain.cookie(plain.session_cookie(), ""),
            "giftd_console=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        );
        assert_eq!(plain.sign_in_cookie(), "giftd_console-sign-in");
    }

    #[test]
    fn form_tokens_compare_whole_and_never_empty() {
        assert!(same(&form_token("gs_a"), &form_token("gs_a")));
        assert!(!same(&form_token("gs_a"), &form_token("gs_b")));
        assert!(!same("", ""));
    }
}
