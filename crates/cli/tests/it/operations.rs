//! Running giftd in production, with the real binary: the configuration file and its checks,
//! HTTPS with a certificate made here, the header-read timeout on every listener, JSON logs that carry the request id, the Prometheus
//! metrics, webhooks to HTTPS endpoints trusted through `webhooks.ca_file`, and one writer per
//! SQLite data folder. The database is SQLite in a temporary folder, or a fresh PostgreSQL
//! database with `GIFTD_TEST_BACKEND=postgres`. Every server started here is killed by a guard.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use giftd_testkit::receiver::{Identity, PrivateCa, Receiver};
use giftd_testkit::{PgTestDatabase, test_pg_url, testing_postgres};
use serde_json::{Value, json};
use tempfile::TempDir;

const START_TIMEOUT: Duration = Duration::from_secs(15);
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(25);
const MASTER_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// The `giftd` binary with no `GIFTD_*` or `RUST_LOG` setting inherited from the caller.
fn giftd() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_giftd"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("GIFTD_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command.stdin(Stdio::null());
    command
}

fn free_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address")
}

fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Runs a short command to its end (bounded).
fn run(command: &mut Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start giftd");
    let finished = wait_with_deadline(&mut child, EXIT_TIMEOUT);
    let output = child.wait_with_output().expect("collect the output");
    assert!(
        finished.is_some(),
        "the command did not finish within {EXIT_TIMEOUT:?}; stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Where the server keeps its data: a temporary folder, and PostgreSQL when the suite runs on it.
struct Storage {
    data_dir: TempDir,
    postgres: Option<PgTestDatabase>,
}

impl Storage {
    async fn new() -> Self {
        let postgres = if testing_postgres() {
            let url = test_pg_url().expect("GIFTD_TEST_BACKEND=postgres needs GIFTD_TEST_PG_URL");
            Some(PgTestDatabase::create(&url).await)
        } else {
            None
        };
        Self {
            data_dir: tempfile::tempdir().expect("temporary folder"),
            postgres,
        }
    }

    /// `command` pointed at this storage.
    fn apply(&self, command: &mut Command) {
        command
            .env("GIFTD_DATA_DIR", self.data_dir.path())
            .env("GIFTD_MASTER_KEY", MASTER_KEY);
        if let Some(database) = &self.postgres {
            command.env("GIFTD_DATABASE_URL", &database.url);
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.data_dir.path().join(name)
    }

    fn create_merchant(&self) -> String {
        let mut command = giftd();
        command.args(["merchants", "create", "Corner Bakery", "--json"]);
        self.apply(&mut command);
        let output = run(&mut command);
        assert!(
            output.status.success(),
            "merchants create failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let created: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        created["api_key"].as_str().expect("api_key").to_owned()
    }
}

/// A running `giftd serve`; dropping it kills the process.
struct Server {
    child: Child,
    address: SocketAddr,
    log_path: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `giftd serve --listen <free port> ARGS` and waits until `ready` says it answers.
    async fn start(storage: &Storage, args: &[&str], ready: impl AsyncFn(SocketAddr) -> bool) -> Self {
        Self::start_with_environment(storage, args, &[], ready).await
    }

    /// [`Server::start`] with `environment` (`GIFTD_*` settings) set for the server.
    async fn start_with_environment(
        storage: &Storage,
        args: &[&str],
        environment: &[(&str, &str)],
        ready: impl AsyncFn(SocketAddr) -> bool,
    ) -> Self {
        let address = free_address();
        let log_path = storage.path(&format!("serve-{}.log", address.port()));
        let log = File::create(&log_path).expect("create the log file");
        let mut command = giftd();
        command
            .args(["serve", "--listen", &address.to_string()])
            .args(args)
            .envs(environment.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        storage.apply(&mut command);
        let mut server = Self {
            child: command.spawn().expect("start giftd serve"),
            address,
            log_path,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = server.child.try_wait().expect("poll the server") {
                panic!("giftd serve exited with {status}; log:\n{}", server.log());
            }
            if ready(address).await {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "giftd serve did not answer within {START_TIMEOUT:?}; log:\n{}",
                server.log()
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn start_plain(storage: &Storage, args: &[&str]) -> Self {
        Self::start(storage, args, async |address| {
            healthy(&format!("http://{address}")).await
        })
        .await
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn terminate(&mut self) -> ExitStatus {
        let signalled = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(signalled.success(), "kill -TERM failed");
        wait_with_deadline(&mut self.child, EXIT_TIMEOUT)
            .unwrap_or_else(|| panic!("giftd did not exit after SIGTERM; log:\n{}", self.log()))
    }
}

async fn healthy(base: &str) -> bool {
    let answer = giftd_testkit::http_client()
        .get(format!("{base}/healthz"))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    answer.is_ok_and(|response| response.status() == reqwest::StatusCode::OK)
}

// ---- configuration ----

#[test]
fn the_example_configuration_is_accepted_and_show_redacts_secrets_and_names_sources() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let example = run(giftd().args(["config", "example"]));
    assert!(example.status.success());
    let path = folder.path().join("giftd.toml");
    let text = String::from_utf8(example.stdout).expect("UTF-8");
    assert!(
        text.contains("[rate_limit]") && text.contains("# database_url = "),
        "{text}"
    );
    std::fs::write(
        &path,
        text.replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:7001\""),
    )
    .expect("write the file");

    let shown = run(giftd()
        .args(["--config"])
        .arg(&path)
        .args(["config", "show", "--pg-pool-size", "7"])
        .env("GIFTD_DATABASE_URL", "postgres://giftd:s3cret@db.internal/giftd")
        .env("GIFTD_MASTER_KEY", MASTER_KEY)
        .env("GIFTD_LOG_FORMAT", "json"));
    let stdout = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(
        stdout.contains("database_url = \"postgres://giftd:***@db.internal/giftd\""),
        "{stdout}"
    );
    assert!(stdout.contains("master_key = \"***\""), "{stdout}");
    assert!(
        !stdout.contains("s3cret") && !stdout.contains(MASTER_KEY),
        "{stdout}"
    );
    assert!(stdout.contains("listen = \"127.0.0.1:7001\"  # file"), "{stdout}");
    assert!(
        stdout.contains("log.format = \"json\"  # environment variable GIFTD_LOG_FORMAT"),
        "{stdout}"
    );
    assert!(
        stdout.contains("postgres.pool_size = 7  # flag --pg-pool-size"),
        "{stdout}"
    );
    assert!(
        stdout.contains("sqlite.durability = \"full\"  # file"),
        "{stdout}"
    );

    let defaults = run(giftd().args(["config", "show"]));
    let stdout = String::from_utf8_lossy(&defaults.stdout);
    assert!(
        stdout.contains("data_dir = \"giftd-data\"  # default"),
        "{stdout}"
    );
    assert!(!stdout.contains("database_url"), "{stdout}");
}

#[test]
fn an_unknown_or_invalid_setting_stops_giftd_at_start_naming_the_setting() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let path = folder.path().join("giftd.toml");
    std::fs::write(&path, "[postgres]\npool_sise = 3\n").expect("write the file");
    let data_dir = folder.path().join("data");
    let output = run(giftd()
        .arg("--config")
        .arg(&path)
        .arg("serve")
        .env("GIFTD_DATA_DIR", &data_dir));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown setting postgres.pool_sise"), "{stderr}");
    assert!(
        !data_dir.exists(),
        "nothing may start before the configuration is checked"
    );

    let output = run(giftd()
        .args(["serve", "--max-body-bytes", "12"])
        .env("GIFTD_DATA_DIR", &data_dir));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("limits.max_body_bytes = 12 (from flag --max-body-bytes)"),
        "{stderr}"
    );

    let output = run(giftd()
        .args(["verify"])
        .env("GIFTD_DATA_DIR", &data_dir)
        .env("GIFTD_DATABASE_URL", "postgres://giftd:s3cret@db/giftd")
        .env("GIFTD_PG_ISOLATION", "snapshot"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("postgres.isolation") && stderr.contains("GIFTD_PG_ISOLATION"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

// ---- TLS ----

/// One HTTP/1.1 request over TLS, trusting only `certificate`: the status and the headers.
async fn https_get(
    address: SocketAddr,
    certificate: &rcgen::Certificate,
    path: &str,
) -> std::io::Result<(u16, String)> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(certificate.der().clone())
        .map_err(std::io::Error::other)?;
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let mut stream = connector.connect(name, tcp).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await?;
    let mut answer = Vec::new();
    // A server may close without TLS close_notify after `Connection: close`; what was read counts.
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    Ok((status, text))
}

#[tokio::test]
async fn giftd_serves_https_with_the_given_certificate_and_still_stops_gracefully() {
    let storage = Storage::new().await;
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a certificate");
    let (cert_path, key_path) = (storage.path("cert.pem"), storage.path("key.pem"));
    std::fs::write(&cert_path, generated.cert.pem()).expect("write the certificate");
    std::fs::write(&key_path, generated.signing_key.serialize_pem()).expect("write the key");
    let certificate = generated.cert;

    let cert_arg = cert_path.to_string_lossy().into_owned();
    let key_arg = key_path.to_string_lossy().into_owned();
    let mut server = Server::start(
        &storage,
        &["--tls-cert", &cert_arg, "--tls-key", &key_arg],
        async |address| {
            https_get(address, &certificate, "/healthz")
                .await
                .is_ok_and(|(status, _)| status == 200)
        },
    )
    .await;

    let (status, answer) = https_get(server.address, &certificate, "/readyz")
        .await
        .expect("an HTTPS answer");
    assert_eq!(status, 200, "{answer}");
    assert!(answer.to_ascii_lowercase().contains("x-request-id: "), "{answer}");
    // Plain HTTP on the HTTPS port gets no answer.
    assert!(!healthy(&format!("http://{}", server.address)).await);
    assert!(server.log().contains("scheme=\"https\""), "{}", server.log());

    let status = server.terminate();
    assert!(status.success(), "exit {status}; log:\n{}", server.log());
    assert!(server.log().contains("giftd stopped"), "{}", server.log());
}

/// Whether the server closes `stream` (end of file, a reset, or a TLS error) before `timeout`.
async fn closed_by_server_within(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    timeout: Duration,
) -> bool {
    let mut buffer = [0_u8; 1024];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, tokio::io::AsyncReadExt::read(stream, &mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn every_listener_closes_a_connection_that_sends_no_request_within_the_header_read_timeout() {
    // A short header-read timeout and a long idle one: only the former can close in time.
    const HEADER_READ_TIMEOUT_SECONDS: u64 = 2;
    const CUT_OFF_MARGIN: Duration = Duration::from_secs(6);
    let storage = Storage::new().await;
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a certificate");
    let (cert_path, key_path) = (storage.path("cert.pem"), storage.path("key.pem"));
    std::fs::write(&cert_path, generated.cert.pem()).expect("write the certificate");
    std::fs::write(&key_path, generated.signing_key.serialize_pem()).expect("write the key");
    let certificate = generated.cert;
    let metrics_address = free_address().to_string();
    let cert_arg = cert_path.to_string_lossy().into_owned();
    let key_arg = key_path.to_string_lossy().into_owned();
    let header_read_timeout = HEADER_READ_TIMEOUT_SECONDS.to_string();
    let mut server = Server::start_with_environment(
        &storage,
        &["--tls-cert", &cert_arg, "--tls-key", &key_arg],
        &[
            ("GIFTD_METRICS_LISTEN", &metrics_address),
            ("GIFTD_HEADER_READ_TIMEOUT_SECONDS", &header_read_timeout),
            ("GIFTD_IDLE_TIMEOUT_SECONDS", "120"),
        ],
        async |address| {
            https_get(address, &certificate, "/healthz")
                .await
                .is_ok_and(|(status, _)| status == 200)
        },
    )
    .await;
    let within = Duration::from_secs(HEADER_READ_TIMEOUT_SECONDS) + CUT_OFF_MARGIN;

    // On the HTTPS address: a client that never starts the TLS handshake...
    let mut silent = tokio::net::TcpStream::connect(server.address)
        .await
        .expect("connect");
    // ...and one that completes it, then sends no request.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate.der().clone()).expect("a root");
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(server.address)
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a server name");
    let mut handshaken = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("a TLS handshake");
    // On the metrics address: a client that sends nothing.
    let mut silent_on_metrics = tokio::net::TcpStream::connect(&metrics_address)
        .await
        .expect("connect to the metrics listener");

    let (silent, handshaken, silent_on_metrics) = tokio::join!(
        closed_by_server_within(&mut silent, within),
        closed_by_server_within(&mut handshaken, within),
        closed_by_server_within(&mut silent_on_metrics, within),
    );
    assert!(
        silent && handshaken && silent_on_metrics,
        "still open after {within:?}: no TLS handshake {}, TLS but no request {}, nothing on the \
         metrics listener {}; log:\n{}",
        !silent,
        !handshaken,
        !silent_on_metrics,
        server.log()
    );
    let status = server.terminate();
    assert!(status.success(), "exit {status}; log:\n{}", server.log());
}

#[test]
fn a_certificate_without_its_key_is_refused_at_start() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let output = run(giftd()
        .args(["serve", "--tls-cert", "cert.pem"])
        .env("GIFTD_DATA_DIR", folder.path()));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("tls.key"));
}

// ---- logs ----

#[tokio::test]
async fn json_logs_carry_the_request_id_on_every_line_written_for_a_request() {
    let storage = Storage::new().await;
    let api_key = storage.create_merchant();
    let server = Server::start_plain(
        &storage,
        &[
            "--log-format",
            "json",
            "--rate-limit-per-address",
            "1",
            "--rate-limit-period-seconds",
            "3600",
        ],
    )
    .await;
    let client = giftd_testkit::http_client();
    let lookup = || {
        client
            .post(server.url("/v1/cards/lookup"))
            .bearer_auth(&api_key)
            .json(&json!({"number": "6036000011112222", "security_code": "12345678"}))
            .send()
    };
    let first = lookup().await.expect("an answer");
    assert_eq!(first.status(), 404);
    let refused = lookup().await.expect("an answer");
    assert_eq!(refused.status(), 429);
    let request_id = refused
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("a request id")
        .to_owned();

    // The log is written as requests finish; wait (bounded) until the answer's line is there.
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let lines: Vec<Value> = loop {
        let log = server.log();
        let lines: Vec<Value> = log
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
            .collect();
        let answered = lines.iter().any(|line| {
            line["fields"]["message"] == "answered" && line["span"]["request_id"] == request_id.as_str()
        });
        if answered {
            break lines;
        }
        assert!(
            Instant::now() < deadline,
            "no answered line for {request_id}; log:\n{log}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    let of_request: Vec<&Value> = lines
        .iter()
        .filter(|line| line["span"]["request_id"] == request_id.as_str())
        .collect();
    let messages: Vec<&str> = of_request
        .iter()
        .filter_map(|line| line["fields"]["message"].as_str())
        .collect();
    assert!(
        messages.contains(&"rate limited") && messages.contains(&"answered"),
        "{messages:?}"
    );
    // Every line written inside a request span carries that request's id.
    for line in &lines {
        if let Some(spans) = line["spans"].as_array()
            && spans.iter().any(|span| span["name"] == "request")
        {
            assert!(
                line["span"]["request_id"]
                    .as_str()
                    .is_some_and(|id| !id.is_empty()),
                "{line}"
            );
        }
    }
    assert!(!server.log().contains("12345678"), "a security code was logged");
}

// ---- metrics ----

/// The value of the sample `name{labels}` (labels as rendered), if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

#[tokio::test]
async fn metrics_count_requests_ledger_operations_and_pending_holds_without_card_data() {
    let storage = Storage::new().await;
    let api_key = storage.create_merchant();
    let server = Server::start_plain(&storage, &[]).await;
    let client = giftd_testkit::http_client();
    let post = |path: &str, body: Value| {
        client
            .post(server.url(path))
            .bearer_auth(&api_key)
            .json(&body)
            .send()
    };

    let program: Value = post("/v1/programs", json!({"name": "Bakery", "currency": "USD"}))
        .await
        .expect("an answer")
        .json()
        .await
        .expect("JSON");
    let card: Value = post(
        "/v1/cards",
        json!({"program_id": program["id"], "kind": "virtual", "amount": 5000}),
    )
    .await
    .expect("an answer")
    .json()
    .await
    .expect("JSON");
    let card_id = card["id"].as_str().expect("card id");
    // A load for an endpoint nobody listens on: its delivery stays pending (retried later).
    let endpoint = post(
        "/v1/webhook_endpoints",
        json!({"url": "http://127.0.0.1:9/hook", "event_types": ["card.loaded"]}),
    )
    .await
    .expect("an answer");
    assert_eq!(endpoint.status(), 201);
    let load = post(&format!("/v1/cards/{card_id}/load"), json!({"amount": 100}))
        .await
        .expect("an answer");
    assert_eq!(load.status(), 200);
    for amount in [1000, 500] {
        let hold = post(&format!("/v1/cards/{card_id}/holds"), json!({"amount": amount}))
            .await
            .expect("an answer");
        assert_eq!(hold.status(), 201);
    }
    let refused = post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 999_999}))
        .await
        .expect("an answer");
    assert_eq!(refused.status(), 422);

    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain")),
    );
    let text = metrics.text().await.expect("text");
    let requests = |route: &str, status: u16| {
        sample(
            &text,
            &format!("giftd_http_requests_total{{method=\"POST\",route=\"{route}\",status=\"{status}\"}}"),
        )
    };
    assert_eq!(requests("/v1/cards/{id}/holds", 201), Some(2.0), "{text}");
    assert_eq!(requests("/v1/cards", 201), Some(1.0), "{text}");
    assert_eq!(requests("/v1/cards/{id}/redeem", 422), Some(1.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "giftd_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/cards/{id}/holds\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert!(
        text.contains("giftd_http_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "giftd_ledger_transactions_total{type=\"hold\"}"),
        Some(2.0),
        "{text}"
    );
    // The refused redemption committed nothing, so it is not counted.
    assert_eq!(
        sample(&text, "giftd_ledger_transactions_total{type=\"redemption\"}"),
        None,
        "{text}"
    );
    assert_eq!(sample(&text, "giftd_holds_pending"), Some(2.0), "{text}");
    // The load, both holds and the refused redemption were decided in memory and written with
    // their batch (the delivery pending below is the load's, written set-wise); creating the
    // program, the card and the endpoint took the per-job path.
    assert_eq!(
        sample(&text, "giftd_write_jobs_total{path=\"in_memory\"}"),
        Some(4.0),
        "{text}"
    );
    assert!(
        sample(&text, "giftd_write_jobs_total{path=\"per_job\"}").is_some_and(|n| n >= 3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "giftd_webhook_deliveries_pending"),
        Some(1.0),
        "{text}"
    );
    if storage.postgres.is_some() {
        assert!(
            sample(
                &text,
                "giftd_db_connections_max{backend=\"postgres\",pool=\"main\"}"
            )
            .is_some(),
            "{text}"
        );
    } else {
        assert!(
            sample(&text, "giftd_sqlite_writer_queue_depth").is_some(),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "giftd_db_connections_max{backend=\"sqlite\",pool=\"read\"}"
            ),
            Some(4.0),
            "{text}"
        );
    }
    // No card number, id or key reaches a label.
    let number = card["number"].as_str().expect("number");
    for secret in [number, card_id, api_key.as_str()] {
        assert!(!text.contains(secret), "{secret} in /metrics");
    }
}

#[tokio::test]
async fn metrics_listen_serves_metrics_on_its_own_address_only() {
    let storage = Storage::new().await;
    let metrics_address = free_address();
    let server = Server::start_plain(&storage, &["--metrics-listen", &metrics_address.to_string()]).await;
    let client = giftd_testkit::http_client();
    let on_api = client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(on_api.status(), 404);
    let on_own = client
        .get(format!("http://{metrics_address}/metrics"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(on_own.status(), 200);
    let text = on_own.text().await.expect("text");
    assert!(text.contains("giftd_holds_pending 0"), "{text}");
}

#[tokio::test]
async fn console_listen_serves_the_console_on_its_own_address_only() {
    let storage = Storage::new().await;
    let console_address = free_address();
    let server = Server::start_plain(&storage, &["--console-listen", &console_address.to_string()]).await;
    let client = giftd_testkit::http_client();
    let on_api = client
        .get(server.url("/console/sign_in"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(on_api.status(), 404);
    let console = |path: &str| format!("http://{console_address}{path}");
    let sign_in = client
        .get(console("/console/sign_in"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(sign_in.status(), 200);
    assert!(sign_in.text().await.expect("HTML").contains("<h1>Sign in</h1>"));
    let css = client
        .get(console("/console/assets/console.css"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(css.status(), 200);
    // The API stays where it was, and is not on the console's address.
    assert_eq!(
        client
            .get(server.url("/healthz"))
            .send()
            .await
            .expect("an answer")
            .status(),
        200
    );
    assert_eq!(
        client
            .get(console("/v1/programs"))
            .send()
            .await
            .expect("an answer")
            .status(),
        404
    );
    // The console's pages call the API in-process: a sign-in with a wrong password is
    // refused by the API's own rule, on the console's address.
    let page = client
        .get(console("/console/sign_in"))
        .send()
        .await
        .expect("the page");
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .expect("a cookie")
        .split(';')
        .next()
        .expect("its pair")
        .to_owned();
    let html = page.text().await.expect("HTML");
    let token = html
        .split("name=\"form_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form token")
        .to_owned();
    let refused = client
        .post(console("/console/sign_in"))
        .header("cookie", cookie)
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "form_token={token}&email=nobody%40example.com&password=wrong-password"
        ))
        .send()
        .await
        .expect("an answer");
    let status = refused.status();
    let text = refused.text().await.expect("HTML");
    assert!(status.is_client_error(), "{status} {text}");
    assert!(
        text.to_lowercase().contains("wrong email, password or code"),
        "{text}"
    );
}

#[tokio::test]
async fn the_server_delivers_webhooks_to_https_endpoints_its_ca_file_trusts_and_no_others() {
    let storage = Storage::new().await;
    let ca = PrivateCa::new();
    let ca_file = storage.path("webhook-ca.pem");
    std::fs::write(&ca_file, &ca.root_pem).expect("write the CA file");
    let config_file = storage.path("giftd.toml");
    std::fs::write(
        &config_file,
        format!("[webhooks]\nca_file = {:?}\n", ca_file.to_string_lossy()),
    )
    .expect("write the configuration");
    let trusted = Receiver::start_https(0, &ca.identity).await;
    let untrusted = Receiver::start_https(0, &Identity::self_signed()).await;
    let api_key = storage.create_merchant();
    let config_arg = config_file.to_string_lossy().into_owned();
    let server = Server::start_plain(&storage, &["--config", &config_arg]).await;
    let client = giftd_testkit::http_client();
    let post = async |path: &str, body: Value| -> Value {
        let answer = client
            .post(server.url(path))
            .bearer_auth(&api_key)
            .json(&body)
            .send()
            .await
            .expect("an answer");
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        answer.json().await.expect("JSON")
    };
    for receiver in [&trusted, &untrusted] {
        post(
            "/v1/webhook_endpoints",
            json!({"url": receiver.url, "event_types": ["card.redeemed"]}),
        )
        .await;
    }
    let program = post("/v1/programs", json!({"name": "Bakery", "currency": "USD"})).await;
    let card = post(
        "/v1/cards",
        json!({"program_id": program["id"], "kind": "virtual", "amount": 5000}),
    )
    .await;
    let card_id = card["id"].as_str().expect("card id");
    post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 1200})).await;

    // The dispatcher looks every second; give it a few.
    let deadline = Instant::now() + Duration::from_secs(15);
    while trusted.received().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no delivery to the trusted endpoint; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(trusted.types(), ["card.redeemed"]);
    assert!(
        untrusted.received().is_empty(),
        "nothing reaches a certificate that does not verify"
    );

    // Both attempts are on record: delivered, and refused for the certificate (to be retried).
    let get = async |path: &str| -> Value {
        client
            .get(server.url(path))
            .bearer_auth(&api_key)
            .send()
            .await
            .expect("an answer")
            .json()
            .await
            .expect("JSON")
    };
    let events = get("/v1/events").await;
    assert_eq!(events["data"].as_array().map(Vec::len), Some(1), "{events}");
    let event_path = format!("/v1/events/{}", events["data"][0]["id"].as_str().expect("an id"));
    let states = loop {
        let event = get(&event_path).await;
        let deliveries = event["deliveries"].as_array().cloned().unwrap_or_default();
        let mut states: Vec<(String, String)> = deliveries
            .iter()
            .filter(|d| d["attempts"].as_i64() >= Some(1))
            .map(|d| {
                let error = d["attempt_log"][0]["error"].as_str().unwrap_or_default();
                (
                    d["state"].as_str().unwrap_or_default().to_owned(),
                    error.to_owned(),
                )
            })
            .collect();
        if states.len() == 2 {
            states.sort();
            break states;
        }
        assert!(Instant::now() < deadline, "attempts not recorded: {event}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(states[0].0, "delivered");
    assert_eq!(states[1].0, "pending");
    assert!(states[1].1.contains("certificate"), "{states:?}");
}

#[tokio::test]
async fn one_process_at_a_time_writes_a_sqlite_folder() {
    if testing_postgres() {
        // Processes share a PostgreSQL database by design (tests/postgres_processes.rs).
        return;
    }
    let storage = Storage::new().await;
    let api_key = storage.create_merchant();
    let mut server = Server::start_plain(&storage, &[]).await;
    let program: Value = giftd_testkit::http_client()
        .post(server.url("/v1/programs"))
        .bearer_auth(&api_key)
        .json(&json!({"name": "Bakery", "currency": "USD"}))
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("JSON");
    let program_id = program["id"].as_str().expect("a program id").to_owned();
    let out = storage.path("cards.csv");
    let generate = |storage: &Storage| {
        let mut command = giftd();
        command
            .args([
                "cards",
                "generate",
                "--program",
                &program_id,
                "--count",
                "3",
                "--out",
            ])
            .arg(&out);
        storage.apply(&mut command);
        run(&mut command)
    };

    // While giftd serve runs: a second server and a card stock command are refused, naming why.
    let mut second = giftd();
    second.args(["serve", "--listen", &free_address().to_string()]);
    storage.apply(&mut second);
    let refused = [run(&mut second), generate(&storage)];
    for output in &refused {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(
            stderr.contains("another giftd") && stderr.contains("is using the SQLite database"),
            "{stderr}"
        );
    }
    assert!(!out.exists(), "no card file from a refused run");
    let stderr = String::from_utf8_lossy(&refused[1].stderr);
    assert!(
        stderr.contains("--server"),
        "the refusal names the way that needs no downtime: {stderr}"
    );

    // Through the running server, the same batch is made with no downtime.
    let served_out = storage.path("served-cards.csv");
    let mut served = giftd();
    served
        .args([
            "cards",
            "generate",
            "--program",
            &program_id,
            "--count",
            "3",
            "--server",
        ])
        .arg(server.url(""))
        .arg("--out")
        .arg(&served_out)
        .env("GIFTD_API_KEY", &api_key);
    storage.apply(&mut served);
    let output = run(&mut served);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let file = std::fs::read_to_string(&served_out).expect("the card file");
    assert_eq!(file.lines().count(), 4, "a header and three cards: {file}");
    let health = giftd_testkit::http_client()
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("the first server still answers");
    assert_eq!(health.status(), 200);

    // Once it stops, the command runs.
    assert!(server.terminate().success());
    let output = generate(&storage);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let file = std::fs::read_to_string(&out).expect("the card file");
    assert_eq!(file.lines().count(), 4, "a header and three cards: {file}");
}
