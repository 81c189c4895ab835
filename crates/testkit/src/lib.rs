//! Test helpers (dev-only): [`TestApp::spawn`] starts the whole HTTP app on port 0 with a fresh
//! database, a merchant and its API key, and a [`ManualClock`] that tests move forward instead
//! of sleeping. Typed helpers keep tests short.
//!
//! The database is SQLite in a temporary folder, or, with `GIFTD_TEST_BACKEND=postgres`, a new
//! PostgreSQL database on the server named by `GIFTD_TEST_PG_URL`, dropped when the test ends.
//! That is how one HTTP suite proves both backends behave the same.
//!
//! [`receiver`] is a webhook receiver over HTTP or HTTPS, with the certificates for the latter.

pub mod receiver;

use std::path::PathBuf;
use std::sync::Arc;

use giftd_service::{ManualClock, MasterKey, Service};
use giftd_store::postgres::{PgOptions, PgStore};
use giftd_store::sqlite::{Durability, SqliteStore};
use giftd_store::{Store, VerifyReport};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const DATABASE_FILE: &str = "giftd.db";

/// A reqwest client builder, after installing the TLS provider every giftd process uses (reqwest
/// is built without one of its own and panics without it).
pub fn http_client_builder() -> reqwest::ClientBuilder {
    giftd_service::webhooks::install_tls_provider();
    reqwest::Client::builder()
}

/// A default reqwest client; see [`http_client_builder`].
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().expect("a reqwest client")
}

/// The PostgreSQL server for tests, when `GIFTD_TEST_BACKEND=postgres` or for PostgreSQL-only
/// tests: `GIFTD_TEST_PG_URL`, e.g. `postgres://postgres@127.0.0.1:5432/postgres`.
pub fn test_pg_url() -> Option<String> {
    std::env::var("GIFTD_TEST_PG_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// Whether the HTTP suite runs on PostgreSQL.
pub fn testing_postgres() -> bool {
    std::env::var("GIFTD_TEST_BACKEND").is_ok_and(|backend| backend == "postgres")
}

/// A database of its own on the test PostgreSQL server, dropped (with its connections) on drop.
pub struct PgTestDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl PgTestDatabase {
    /// Creates a fresh database. Panics when the server cannot be reached: a PostgreSQL test
    /// that was asked for must not pass by not running.
    pub async fn create(admin_url: &str) -> Self {
        use sqlx::Connection;
        let name = format!("giftd_test_{}", uuid_like());
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL server: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        Self {
            url: with_database(admin_url, &name),
            name,
            admin_url: admin_url.to_owned(),
        }
    }
}

impl Drop for PgTestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; the cleanup gets a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async move {
                    use sqlx::Connection;
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
                        let _ = admin.close().await;
                    }
                });
            }
        });
        let _ = cleanup.join();
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}_{nanos}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The same server URL with another database name.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{host_part}/{database}?{query}"),
        None => format!("{host_part}/{database}"),
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub api_key: String,
    pub merchant_id: String,
    pub clock: ManualClock,
    pub service: Service,
    pub data_dir: TempDir,
    /// The PostgreSQL database, when the suite runs on PostgreSQL.
    pub postgres: Option<PgTestDatabase>,
    server: tokio::task::JoinHandle<()>,
}

/// A response with its status, headers and JSON body (`Null` when the body is not JSON).
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub body: Value,
}

impl TestResponse {
    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> &Self {
        self.assert_status(status);
        assert_eq!(self.code(), code, "unexpected error code; body: {}", self.text);
        self
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(giftd_api::ApiConfig::default()).await
    }

    /// Like [`TestApp::spawn`], with the front-ends configured (limits, rate limits, ...).
    pub async fn spawn_with(config: giftd_api::ApiConfig) -> Self {
        Self::spawn_configured(config, |service| service).await
    }

    /// Like [`TestApp::spawn_with`], with the service configured too (`with_...` settings).
    pub async fn spawn_configured(
        config: giftd_api::ApiConfig,
        configure: impl FnOnce(Service) -> Service,
    ) -> Self {
        let data_dir = tempfile::tempdir().expect("temporary folder");
        let (store, postgres): (Arc<dyn Store>, _) = if testing_postgres() {
            let admin_url = test_pg_url().expect("GIFTD_TEST_BACKEND=postgres needs GIFTD_TEST_PG_URL");
            let database = PgTestDatabase::create(&admin_url).await;
            let store = PgStore::open(&database.url, &PgOptions::default())
                .await
                .expect("open the PostgreSQL database");
            (store, Some(database))
        } else {
            let path = data_dir.path().join(DATABASE_FILE);
            let store = SqliteStore::open(&path, Durability::Full)
                .await
                .expect("open the database");
            (store, None)
        };
        let clock = ManualClock::default();
        let service = configure(Service::new(
            store,
            &MasterKey::generate(),
            Arc::new(clock.clone()),
        ));
        let merchant = service
            .create_merchant("Test Merchant")
            .await
            .expect("create a merchant");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let address = format!("http://{}", listener.local_addr().expect("local address"));
        let app = giftd_api::app_with_config(service.clone(), config);
        let server = tokio::spawn(async move {
            axum_serve(listener, app).await;
        });
        Self {
            address,
            client: http_client(),
            api_key: merchant.api_key,
            merchant_id: merchant.merchant_id.to_string(),
            clock,
            service,
            data_dir,
            postgres,
            server,
        }
    }

    /// Everything the database holds at rest, as bytes: the SQLite files (database, write-ahead
    /// log, shared memory), or every row of every PostgreSQL table as JSON text (binary columns
    /// appear there as hex).
    pub async fn stored_bytes(&self) -> Vec<u8> {
        match &self.postgres {
            Some(database) => {
                use sqlx::{Connection, Row};
                let mut conn = sqlx::PgConnection::connect(&database.url).await.expect("connect");
                let tables = sqlx::query(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
                )
                .fetch_all(&mut conn)
                .await
                .expect("list tables");
                let mut bytes = Vec::new();
                for table in tables {
                    let name: String = table.get(0);
                    let sql = format!("SELECT CAST(row_to_json(t) AS TEXT) FROM \"{name}\" t");
                    for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                        .fetch_all(&mut conn)
                        .await
                        .expect("dump")
                    {
                        bytes.extend(row.get::<String, _>(0).into_bytes());
                        bytes.push(b'\n');
                    }
                }
                bytes
            }
            None => {
                let mut bytes = Vec::new();
                let mut names = Vec::new();
                for entry in std::fs::read_dir(self.data_dir.path()).expect("read the data folder") {
                    let path = entry.expect("a folder entry").path();
                    let name = path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or_default()
                        .to_owned();
                    if name.starts_with(DATABASE_FILE) {
                        bytes.extend(std::fs::read(&path).expect("read a database file"));
                        names.push(name);
                    }
                }
                assert!(
                    names.iter().any(|n| n == DATABASE_FILE) && names.iter().any(|n| n.ends_with("-wal")),
                    "expected the database and its write-ahead log, found {names:?}"
                );
                bytes
            }
        }
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.path().join(DATABASE_FILE)
    }

    /// Another tenant: its API key.
    pub async fn another_merchant(&self) -> String {
        self.service
            .create_merchant("Other Merchant")
            .await
            .expect("create a merchant")
            .api_key
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> TestResponse {
        let response = request.send().await.expect("the request reaches the server");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        TestResponse {
            status,
            headers,
            text,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.get_as(path, &self.api_key).await
    }

    pub async fn get_as(&self, path: &str, api_key: &str) -> TestResponse {
        self.send(self.client.get(self.url(path)).bearer_auth(api_key))
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> TestResponse {
        self.post_as(path, body, &self.api_key, None).await
    }

    pub async fn post_idempotent(&self, path: &str, body: Value, key: &str) -> TestResponse {
        self.post_as(path, body, &self.api_key, Some(key)).await
    }

    pub async fn post_as(
        &self,
        path: &str,
        body: Value,
        api_key: &str,
        idempotency_key: Option<&str>,
    ) -> TestResponse {
        let mut request = self.client.post(self.url(path)).bearer_auth(api_key).json(&body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        self.send(request).await
    }

    /// Posts raw bytes, for malformed-input tests.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> TestResponse {
        self.send(
            self.client
                .post(self.url(path))
                .bearer_auth(&self.api_key)
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    /// Creates a program from `body` and returns its id.
    pub async fn program(&self, body: Value) -> String {
        let response = self.post("/v1/programs", body).await;
        response.assert_status(201);
        response.body["id"].as_str().expect("program id").to_owned()
    }

    /// A plain USD program: no limits, no expiry.
    pub async fn usd_program(&self) -> String {
        self.program(json!({"name": "Test USD", "currency": "USD"})).await
    }

    /// Issues a virtual card with `amount` on a new USD program; returns the card as created
    /// (with its number and security code).
    pub async fn funded_card(&self, amount: i64) -> Value {
        let program_id = self.usd_program().await;
        self.card(&program_id, amount).await
    }

    pub async fn card(&self, program_id: &str, amount: i64) -> Value {
        let response = self
            .post(
                "/v1/cards",
                json!({"program_id": program_id, "kind": "virtual", "amount": amount}),
            )
            .await;
        response.assert_status(201);
        response.body
    }

    /// Every transaction of a card, newest first. One page of up to 100: a longer history
    /// fails the test rather than being cut short.
    pub async fn card_transactions(&self, card_id: &str) -> Vec<Value> {
        let response = self
            .get(&format!("/v1/cards/{card_id}/transactions?limit=100"))
            .await;
        response.assert_status(200);
        assert_eq!(response.body["next_cursor"], Value::Null, "{}", response.text);
        response.body["data"].as_array().expect("a data array").clone()
    }

    /// A card's transactions of one `type` (`"redemption"`, `"expiry"`, …), newest first.
    pub async fn card_transactions_of_type(&self, card_id: &str, kind: &str) -> Vec<Value> {
        let mut transactions = self.card_transactions(card_id).await;
        transactions.retain(|t| t["type"] == kind);
        transactions
    }

    pub async fn verify(&self) -> VerifyReport {
        self.service.verify().await.expect("verify runs")
    }

    #[track_caller]
    pub fn assert_sound(report: &VerifyReport) {
        assert!(report.is_sound(), "ledger violations: {:#?}", report.violations);
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn axum_serve(listener: tokio::net::TcpListener, app: axum::Router) {
    // With the peer address, as `giftd serve` runs it: the per-address rate limit needs it.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let _ = axum::serve(listener, app).await;
}
