//! `giftd serve`'s listeners: the API over plain HTTP or over HTTPS (rustls, from PEM files),
//! and `/metrics` either beside the API or on a listener of its own. All of them stop together
//! on the shutdown signal, after finishing the requests in flight.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context as _;
use axum::Router;
use giftd_api::ApiConfig;
use giftd_service::Service;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{ServeConfig, Tls};

/// Serves until `shutdown` completes and every listener has finished its requests.
pub async fn run(
    service: Service,
    config: &ServeConfig,
    database: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = giftd_api::telemetry::install_recorder().context("cannot install the metrics recorder")?;
    let api = ApiConfig {
        clover: giftd_api::clover::CloverConfig {
            lock_seconds: config.clover_lock_seconds,
        },
        limits: config.limits.clone(),
        rate_limits: config.rate_limits.clone(),
    };
    let mut app = giftd_api::app_with_config(service.clone(), api);
    let metrics_router = giftd_api::telemetry::router(service, metrics);

    // One signal, several listeners: each waits on the same flag.
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };

    let metrics_server = match config.metrics_listen {
        None => {
            app = app.merge(metrics_router);
            None
        }
        Some(address) => {
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (metrics.listen)"))?;
            tracing::info!(address = %listener.local_addr()?, "serving /metrics");
            let signal = until_stopped(stopped.clone());
            Some(tokio::spawn(async move {
                axum::serve(listener, metrics_router)
                    .with_graceful_shutdown(signal)
                    .await
            }))
        }
    };

    let served = match &config.tls {
        None => serve_plain(app, config.listen, database, until_stopped(stopped.clone())).await,
        Some(tls) => serve_tls(app, config.listen, tls, database, until_stopped(stopped.clone())).await,
    };
    if let Some(metrics_server) = metrics_server {
        metrics_server
            .await
            .context("the metrics listener panicked")?
            .context("the metrics listener failed")?;
    }
    served
}

async fn serve_plain(
    app: Router,
    listen: SocketAddr,
    database: &str,
    signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, scheme = "http", database, "giftd is serving");
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(signal)
        .await
        .context("the HTTP server failed")
}

async fn serve_tls(
    app: Router,
    listen: SocketAddr,
    tls: &Tls,
    database: &str,
    signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // giftd links one rustls provider (ring); installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rustls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
        .await
        .with_context(|| {
            format!(
                "cannot use the TLS certificate {} with the key {} (tls.cert, tls.key)",
                tls.cert.display(),
                tls.key.display()
            )
        })?;
    let listener =
        std::net::TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    listener.set_nonblocking(true)?;
    tracing::info!(address = %listener.local_addr()?, scheme = "https", database, "giftd is serving");
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        signal.await;
        // No deadline, as for plain HTTP: requests in flight are bounded by the request timeout.
        stopper.graceful_shutdown(None);
    });
    axum_server::from_tcp_rustls(listener, rustls)?
        .handle(handle)
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await
        .context("the HTTPS server failed")
}
