//! giftd's HTTP front-ends: the native API under `/v1` and the vendor facades beside it (the
//! Clover Gift Card API under `/clover`, Adyen's Terminal API at `/sync` and its Stored Value
//! API under `/pal/servlet/StoredValue/v46`), the OpenAPI document (of the native API only), health
//! checks, and the middleware every request passes: request ids, one log line per request,
//! timeouts.
//!
//! Handlers parse, call `giftd-service` and render. No SQL and no business rules live here,
//! and no request body, card number or key is ever logged.

pub mod access;
pub mod adyen_stored_value;
pub mod adyen_terminal;
mod audit;
pub mod cardholder;
pub mod clover;
pub mod console;
mod credentials;
pub mod edge;
pub mod giftcard;
pub mod gr4vy;
pub mod guard;
pub mod idempotency;
mod json;
pub mod native;
pub mod telemetry;
pub mod text;

pub use guard::{Limits, RateLimits};

/// Every front-end as the edge guards it (`guard.rs`), each declared in its own module; the
/// native API first, whose shape answers for paths no front-end owns.
pub const FRONT_ENDS: guard::FrontEnds = &[
    &native::EDGE,
    &giftcard::EDGE,
    &clover::EDGE,
    &adyen_terminal::EDGE,
    &adyen_stored_value::EDGE,
    &gr4vy::EDGE,
    &cardholder::EDGE,
];

use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use giftd_service::Service;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

use native::error::ApiError;

/// A request that has not been answered by then gets 408 and its work is abandoned (an effect
/// already committed stays; a retry with the same Idempotency-Key gets its answer). The default
/// of [`Limits::request_timeout`].
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const REQUEST_ID_HEADER: &str = "x-request-id";

#[derive(Clone)]
pub struct AppState {
    pub service: Service,
    /// The Terminal API messages being processed now, for its TransactionStatus.
    pub terminal_in_flight: adyen_terminal::status::InFlight,
    pub clover: clover::CloverConfig,
    pub limits: Limits,
    /// Where cardholder links point ([`cardholder::PublicBase`]).
    pub public: cardholder::PublicOrigin,
}

/// What the front-ends may be told at start-up.
#[derive(Debug, Clone, Default)]
pub struct ApiConfig {
    pub clover: clover::CloverConfig,
    pub console: console::ConsoleConfig,
    pub limits: Limits,
    pub rate_limits: RateLimits,
    /// The configured `public_url`: where cardholders reach this server.
    pub public_url: Option<String>,
}

/// The whole HTTP application, with the default configuration.
pub fn app(service: Service) -> Router {
    app_with_config(service, ApiConfig::default())
}

/// The API and the console as separate routers.
pub fn apps(service: Service, config: ApiConfig) -> Apps {
    let (router, mut openapi) = native::router().split_for_parts();
    native::complete_document(&mut openapi);
    let openapi_json = openapi.to_json().expect("the OpenAPI document serializes");
    let request_id = header::HeaderName::from_static(REQUEST_ID_HEADER);
    let audit_service = service.clone();
    let console_config = config.console;
    let console_service = service.clone();
    let api = router
        .route(
            "/openapi.json",
            get(move || async move { json_response(StatusCode::OK, openapi_json.into_bytes()) }),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(cardholder::routes())
        .nest("/clover", clover::router())
        .nest("/giftcard", giftcard::router())
        .nest("/gr4vy", gr4vy::router())
        .merge(adyen_terminal::router())
        .nest("/pal/servlet/StoredValue/v46", adyen_stored_value::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(AppState {
            service,
            terminal_in_flight: Default::default(),
            clover: config.clover,
            limits: config.limits.clone(),
            public: cardholder::PublicOrigin {
                url: config.public_url.map(Into::into),
                tls: console_config.tls,
            },
        })
        .layer(axum::middleware::from_fn_with_state(audit_service, audit::record))
        .layer(axum::middleware::from_fn_with_state(
            guard::Guard::new(&config.rate_limits, config.limits.max_body_bytes, FRONT_ENDS),
            guard::rate_limit,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.limits.request_timeout,
        ))
        .layer(axum::middleware::map_response(timeout_as_json))
        .layer(axum::middleware::map_response(retry_after_unavailable))
        .layer(axum::middleware::from_fn_with_state(
            FRONT_ENDS,
            guard::refuse_unsafe_uri,
        ))
        .layer(axum::middleware::from_fn_with_state(
            (config.limits.max_header_bytes, FRONT_ENDS),
            guard::limit_header_size,
        ))
        .layer(axum::middleware::from_fn(telemetry::record))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let route = request
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or("unmatched", MatchedPath::as_str)
                        .to_owned();
                    let request_id = request
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    tracing::info_span!("request", method = %request.method(), route, request_id)
                })
                .on_request(())
                .on_response(|response: &Response, latency: Duration, _span: &Span| {
                    tracing::info!(
                        status = response.status().as_u16(),
                        duration_ms = latency.as_secs_f64() * 1000.0,
                        "answered"
                    );
                })
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_unusable_request_id));
    // The console's pages make their native requests through `api`, with all its layers.
    let console = console::router(api.clone(), console_config, console_service);
    Apps { api, console }
}

/// The application's two faces, for a server that gives the console an address of its own.
pub struct Apps {
    /// The native API, the vendor facades, the cardholder page, health and the OpenAPI document.
    pub api: Router,
    /// The staff console under `/console`, which calls `api` in-process.
    pub console: Router,
}

/// The whole HTTP application: the console beside the API.
pub fn app_with_config(service: Service, config: ApiConfig) -> Router {
    let Apps { api, console } = apps(service, config);
    console.merge(api)
}

/// The longest request id a client may choose. It is echoed and written into every log line
/// of its request, so it is kept only when short and plain; anything else is replaced by a
/// fresh one, as if none had been sent.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

async fn drop_unusable_request_id(mut request: axum::extract::Request) -> axum::extract::Request {
    let mut ids = request.headers().get_all(REQUEST_ID_HEADER).iter();
    let usable = match (ids.next(), ids.next()) {
        (None, _) => true,
        (Some(id), None) => usable_request_id(id.as_bytes()),
        (Some(_), Some(_)) => false,
    };
    if !usable {
        request.headers_mut().remove(REQUEST_ID_HEADER);
    }
    request
}

/// Between 1 and [`MAX_REQUEST_ID_CHARS`] of `A-Z a-z 0-9 . _ -`.
fn usable_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_CHARS).contains(&id.len())
        && id
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

/// A JSON response with the given status and body bytes.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn healthz() -> Response {
    json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
}

/// How long `/readyz` waits for the database before it answers 503: well below the store's
/// own wait for a connection, so that a load balancer's check sees an outage at once.
pub const READINESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn readyz(State(app): State<AppState>) -> Response {
    match app.service.ping(READINESS_TIMEOUT).await {
        Ok(()) => json_response(StatusCode::OK, br#"{"status":"ready"}"#.to_vec()),
        Err(error) => {
            tracing::warn!(error = %error, "database not reachable");
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                br#"{"status":"database unreachable"}"#.to_vec(),
            )
        }
    }
}

/// The timeout layer answers with an empty body; clients get the usual error shape instead.
async fn timeout_as_json(response: Response) -> Response {
    if response.status() == StatusCode::REQUEST_TIMEOUT {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "The request took too long. If it carried an Idempotency-Key, retry it to learn its outcome.",
        )
        .into_response()
    } else {
        response
    }
}

/// Seconds a client is told to wait after a 503 (the database unavailable) before retrying.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// Every front-end's 503 says when to try again.
async fn retry_after_unavailable(mut response: Response) -> Response {
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .entry(header::RETRY_AFTER)
            .or_insert(HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    response
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such endpoint.")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        "This endpoint does not take that method.",
    )
}
