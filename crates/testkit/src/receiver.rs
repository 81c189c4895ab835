//! A webhook receiver for tests: an endpoint on port 0, over HTTP or HTTPS, that records every
//! request and answers 500 to the first few; and the certificates an HTTPS receiver serves
//! (a private CA and a certificate it signed, or a self-signed one).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
}

/// The PEM certificate chain and private key an HTTPS receiver serves with.
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Identity {
    /// A self-signed certificate for `127.0.0.1`: nobody's root trusts it.
    pub fn self_signed() -> Self {
        let generated =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("a certificate");
        Self {
            cert_pem: generated.cert.pem(),
            key_pem: generated.signing_key.serialize_pem(),
        }
    }
}

/// A private certificate authority and a receiver's identity it signed.
pub struct PrivateCa {
    /// The CA's own certificate, PEM: what `webhooks.ca_file` holds.
    pub root_pem: String,
    /// A certificate for `127.0.0.1` and `localhost` the CA signed.
    pub identity: Identity,
}

impl PrivateCa {
    pub fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("parameters");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "giftd test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().expect("a key"))
            .expect("a CA certificate");
        let key = rcgen::KeyPair::generate().expect("a key");
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("parameters")
            .signed_by(&key, &ca)
            .expect("a certificate");
        Self {
            root_pem: ca.pem(),
            identity: Identity {
                cert_pem: leaf.pem(),
                key_pem: key.serialize_pem(),
            },
        }
    }

    /// The root as a reqwest client is given it.
    pub fn root(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.root_pem.as_bytes()).expect("the CA as a root")
    }
}

impl Default for PrivateCa {
    fn default() -> Self {
        Self::new()
    }
}

/// An endpoint at `url` (path `/hook`) that answers 500 to its first `failures` requests, then
/// 200; stopped when dropped.
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    pub failures_left: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Over plain HTTP.
    pub async fn start(failures: usize) -> Self {
        Self::serve(failures, None).await
    }

    /// Over HTTPS with `identity`'s certificate.
    pub async fn start_https(failures: usize, identity: &Identity) -> Self {
        Self::serve(failures, Some(identity)).await
    }

    async fn serve(failures: usize, tls: Option<&Identity>) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let failures_left = Arc::new(AtomicUsize::new(failures));
        let (log, left) = (Arc::clone(&received), Arc::clone(&failures_left));
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (log, left) = (Arc::clone(&log), Arc::clone(&left));
                async move {
                    log.lock().expect("the log").push(Received { headers, body });
                    let failing = left
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    if failing {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let address = listener.local_addr().expect("local address");
        let (url, server) = match tls {
            None => {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                let server = tokio::spawn(async move {
                    let _ = axum::serve(listener, app).await;
                });
                (format!("http://{address}/hook"), server)
            }
            Some(identity) => {
                giftd_service::webhooks::install_tls_provider();
                let config = axum_server::tls_rustls::RustlsConfig::from_pem(
                    identity.cert_pem.clone().into_bytes(),
                    identity.key_pem.clone().into_bytes(),
                )
                .await
                .expect("a TLS configuration");
                let server = axum_server::from_tcp_rustls(listener, config).expect("an HTTPS server");
                let server = tokio::spawn(async move {
                    let _ = server.serve(app.into_make_service()).await;
                });
                (format!("https://{address}/hook"), server)
            }
        };
        Self {
            url,
            received,
            failures_left,
            server,
        }
    }

    /// Every request so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("the log").clone()
    }

    /// The `type` of every event received so far, in order.
    pub fn types(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| {
                serde_json::from_str::<Value>(&r.body).expect("a JSON body")["type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}
