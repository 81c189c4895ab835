//! Test helpers (dev-only): [`TestApp::spawn`] starts the whole HTTP app on port 0 with a fresh
//! SQLite database in a temporary folder, a merchant and its API key, and a [`ManualClock`]
//! that tests move forward instead of sleeping. Typed helpers keep tests short.

use std::path::PathBuf;
use std::sync::Arc;

use giftd_service::{ManualClock, MasterKey, Service};
use giftd_store::VerifyReport;
use giftd_store::sqlite::{Durability, SqliteStore};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const DATABASE_FILE: &str = "giftd.db";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub api_key: String,
    pub merchant_id: String,
    pub clock: ManualClock,
    pub service: Service,
    pub data_dir: TempDir,
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
        let data_dir = tempfile::tempdir().expect("temporary folder");
        let store = SqliteStore::open(&data_dir.path().join(DATABASE_FILE), Durability::Full)
            .await
            .expect("open the database");
        let clock = ManualClock::default();
        let service = Service::new(store, &MasterKey::generate(), Arc::new(clock.clone()));
        let merchant = service
            .create_merchant("Test Merchant")
            .await
            .expect("create a merchant");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let address = format!("http://{}", listener.local_addr().expect("local address"));
        let app = giftd_api::app(service.clone());
        let server = tokio::spawn(async move {
            axum_serve(listener, app).await;
        });
        Self {
            address,
            client: reqwest::Client::new(),
            api_key: merchant.api_key,
            merchant_id: merchant.merchant_id.to_string(),
            clock,
            service,
            data_dir,
            server,
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
    let _ = axum::serve(listener, app).await;
}
