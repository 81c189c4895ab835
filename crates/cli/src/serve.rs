//! `giftd serve`'s listeners: the API over plain HTTP or over HTTPS (rustls, from PEM files),
//! and `/metrics` either beside the API or on a listener of its own, each on the accept loop of
//! [`crate::listener`] with its timeouts and connection limit. All of them stop together on the
//! shutdown signal, after finishing the requests in flight.

use std::future::Future;

use anyhow::Context as _;
use giftd_api::ApiConfig;
use giftd_service::Service;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{ServeConfig, Tls};
use crate::listener::{self, Limits, Listener};

/// Serves until `shutdown` completes and every listener has finished its requests. The API's
/// listener takes up to `max_connections` connections at once.
pub async fn run(
    service: Service,
    config: &ServeConfig,
    max_connections: usize,
    database: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = giftd_api::telemetry::install_recorder().context("cannot install the metrics recorder")?;
    let api = ApiConfig {
        clover: giftd_api::clover::CloverConfig {
            lock_seconds: config.clover_lock_seconds,
        },
        // Over TLS the console's session cookie is `Secure` (`__Host-giftd`).
        console: giftd_api::console::ConsoleConfig {
            tls: config.tls.is_some(),
        },
        limits: config.limits.clone(),
        rate_limits: config.rate_limits.clone(),
        public_url: config.public_url.clone(),
    };
    let giftd_api::Apps {
        api: api_app,
        console,
    } = giftd_api::apps(service.clone(), api);
    // The console on the API's address, unless it has one of its own.
    let (mut app, console) = match config.console_listen {
        None => (console.merge(api_app), None),
        Some(address) => (api_app, Some((address, console))),
    };
    let metrics_router = giftd_api::telemetry::router(service, metrics);
    let limits = Limits {
        header_read_timeout: config.header_read_timeout,
        idle_timeout: config.idle_timeout,
        max_connections,
    };

    // One signal, several listeners: each waits on the same flag.
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });

    let metrics_server = match config.metrics_listen {
        None => {
            app = app.merge(metrics_router);
            None
        }
        Some(address) => {
            let tcp = TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (metrics.listen)"))?;
            tracing::info!(address = %tcp.local_addr()?, "serving /metrics");
            let listener = Listener {
                name: "metrics",
                tcp,
                tls: None,
                limits: Limits {
                    max_connections: listener::METRICS_MAX_CONNECTIONS,
                    ..limits
                },
            };
            Some(tokio::spawn(listener::serve(
                listener,
                metrics_router,
                stopped.clone(),
            )))
        }
    };

    let tls = match &config.tls {
        None => None,
        Some(tls) => Some(tls_acceptor(tls).await?),
    };
    let console_server = match console {
        None => None,
        Some((address, console)) => {
            let tcp = TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (console.listen)"))?;
            tracing::info!(address = %tcp.local_addr()?, "serving the console");
            let listener = Listener {
                name: "console",
                tcp,
                tls: tls.clone(),
                limits: Limits {
                    max_connections: listener::CONSOLE_MAX_CONNECTIONS,
                    ..limits
                },
            };
            Some(tokio::spawn(listener::serve(listener, console, stopped.clone())))
        }
    };
    let tcp = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        address = %tcp.local_addr()?,
        scheme,
        database,
        max_connections,
        header_read_timeout_seconds = limits.header_read_timeout.as_secs(),
        idle_timeout_seconds = limits.idle_timeout.as_secs(),
        "giftd is serving"
    );
    let listener = Listener {
        name: "api",
        tcp,
        tls,
        limits,
    };
    listener::serve(listener, app, stopped).await;
    if let Some(metrics_server) = metrics_server {
        metrics_server.await.context("the metrics listener panicked")?;
    }
    if let Some(console_server) = console_server {
        console_server.await.context("the console listener panicked")?;
    }
    Ok(())
}

/// The TLS side of HTTPS: the certificate chain and key from their PEM files, HTTP/2 and
/// HTTP/1.1 offered by ALPN.
async fn tls_acceptor(tls: &Tls) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
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
    Ok(tokio_rustls::TlsAcceptor::from(rustls.get_inner()))
}
