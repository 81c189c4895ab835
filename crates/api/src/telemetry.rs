//! Prometheus metrics: the recorder, the middleware that counts and times every request, and
//! `GET /metrics`, which reads the gauges that live in the database (pending holds) and the
//! pools at scrape time, then renders the text exposition format.
//!
//! Labels are route templates (`/v1/cards/{id}`, never a concrete path), methods, statuses,
//! transaction types and backend names: nothing that names a card, a merchant or a key.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use giftd_service::Service;
use giftd_service::views::PoolStats;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS_TOTAL: &str = "giftd_http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "giftd_http_request_duration_seconds";
pub const RATE_LIMITED_TOTAL: &str = "giftd_rate_limited_total";
pub const HOLDS_PENDING: &str = "giftd_holds_pending";
pub const WEBHOOK_DELIVERIES_PENDING: &str = "giftd_webhook_deliveries_pending";
pub const DB_CONNECTIONS: &str = "giftd_db_connections";
pub const DB_CONNECTIONS_IDLE: &str = "giftd_db_connections_idle";
pub const DB_CONNECTIONS_MAX: &str = "giftd_db_connections_max";
pub const SQLITE_WRITER_QUEUE_DEPTH: &str = "giftd_sqlite_writer_queue_depth";
pub const SQLITE_WRITER_QUEUE_CAPACITY: &str = "giftd_sqlite_writer_queue_capacity";

/// Latency buckets, in seconds: from a cached read to the request timeout.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the process-wide Prometheus recorder; call once, before serving.
pub fn install_recorder() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(HTTP_REQUEST_DURATION_SECONDS.into()),
            DURATION_BUCKETS,
        )?
        .install_recorder()?;
    metrics::describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests answered, by method, route template and status."
    );
    metrics::describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time to answer an HTTP request, by method and route template."
    );
    metrics::describe_counter!(
        RATE_LIMITED_TOTAL,
        "Requests refused with 429 by the lookup rate limits, by limit (key or address)."
    );
    metrics::describe_counter!(
        giftd_service::views::LEDGER_TRANSACTIONS_TOTAL,
        "Ledger transactions committed, by transaction type."
    );
    metrics::describe_counter!(
        giftd_service::views::WRITE_JOBS_TOTAL,
        "Write jobs committed, by path: decided in memory with their batch, or on their own."
    );
    metrics::describe_gauge!(
        HOLDS_PENDING,
        "Holds pending now (read from the database at scrape time)."
    );
    metrics::describe_gauge!(
        WEBHOOK_DELIVERIES_PENDING,
        "Webhook deliveries waiting for an attempt or a retry (read from the database at scrape time)."
    );
    metrics::describe_gauge!(DB_CONNECTIONS, "Database connections open, by backend and pool.");
    metrics::describe_gauge!(
        DB_CONNECTIONS_IDLE,
        "Database connections idle, by backend and pool."
    );
    metrics::describe_gauge!(
        DB_CONNECTIONS_MAX,
        "Database connections allowed, by backend and pool."
    );
    metrics::describe_gauge!(
        SQLITE_WRITER_QUEUE_DEPTH,
        "Write jobs waiting for the SQLite writer."
    );
    metrics::describe_gauge!(
        SQLITE_WRITER_QUEUE_CAPACITY,
        "Write jobs the SQLite writer's queue holds before submitters wait."
    );
    Ok(handle)
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts and times every request by its route template.
pub async fn record(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS_TOTAL, "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

#[derive(Clone)]
struct MetricsState {
    service: Service,
    handle: PrometheusHandle,
}

/// `GET /metrics`, for the API's listener or a listener of its own.
pub fn router(service: Service, handle: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(MetricsState { service, handle })
}

async fn scrape(State(state): State<MetricsState>) -> Response {
    let service = &state.service;
    match service.pending_hold_count().await {
        #[allow(clippy::cast_precision_loss)] // a count of holds is far below 2^52
        Ok(pending) => metrics::gauge!(HOLDS_PENDING).set(pending as f64),
        // The other metrics are still worth serving; the gauge keeps its last value.
        Err(error) => tracing::warn!(error = %error, "cannot count pending holds for /metrics"),
    }
    match service.pending_webhook_delivery_count().await {
        #[allow(clippy::cast_precision_loss)] // as for holds
        Ok(pending) => metrics::gauge!(WEBHOOK_DELIVERIES_PENDING).set(pending as f64),
        Err(error) => tracing::warn!(error = %error, "cannot count pending webhook deliveries for /metrics"),
    }
    record_pools(service.pool_stats());
    state.handle.run_upkeep();
    let mut response = (StatusCode::OK, state.handle.render()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

#[allow(clippy::cast_precision_loss)] // connection and queue counts are small
fn record_pools(stats: PoolStats) {
    match stats {
        PoolStats::Sqlite {
            writer_queue_depth,
            writer_queue_capacity,
            read_connections,
            read_connections_idle,
            read_connections_max,
        } => {
            metrics::gauge!(SQLITE_WRITER_QUEUE_DEPTH).set(writer_queue_depth as f64);
            metrics::gauge!(SQLITE_WRITER_QUEUE_CAPACITY).set(writer_queue_capacity as f64);
            let labels = [("backend", "sqlite"), ("pool", "read")];
            metrics::gauge!(DB_CONNECTIONS, &labels).set(f64::from(read_connections));
            metrics::gauge!(DB_CONNECTIONS_IDLE, &labels).set(read_connections_idle as f64);
            metrics::gauge!(DB_CONNECTIONS_MAX, &labels).set(f64::from(read_connections_max));
        }
        PoolStats::Postgres {
            connections,
            connections_idle,
            connections_max,
        } => {
            let labels = [("backend", "postgres"), ("pool", "main")];
            metrics::gauge!(DB_CONNECTIONS, &labels).set(f64::from(connections));
            metrics::gauge!(DB_CONNECTIONS_IDLE, &labels).set(connections_idle as f64);
            metrics::gauge!(DB_CONNECTIONS_MAX, &labels).set(f64::from(connections_max));
        }
    }
}
