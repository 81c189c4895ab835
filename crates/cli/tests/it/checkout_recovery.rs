//! A real `giftd serve` killed in the middle of a checkout, at each step, then started again:
//! the restarted giftd finishes the checkout or gives back what it took, and the ledger, the
//! checkout and the simulated processor agree.
//!
//! The kill comes from `GIFTD_FAILPOINT=<name>`, which makes giftd abort (as `kill -9` would)
//! when a checkout reaches that point: `checkout.after_begin` (persisted, nothing sent),
//! `checkout.after_call_<step>` (the processor answered, the answer not yet recorded) and
//! `checkout.after_<step>` (recorded, the next step not begun). Failpoints exist only in debug
//! builds (the ones `cargo test` builds); a release build ignores the variable. The restarted process has a
//! one-second lease, so its recovery loop picks the checkout up within a few seconds.
//!
//! On SQLite by default; with `GIFTD_TEST_BACKEND=postgres` (and `GIFTD_TEST_PG_URL`), each test
//! uses a database of its own on that server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use giftd_testkit::{PgTestDatabase, test_pg_url, testing_postgres};
use serde_json::{Value, json};
use tempfile::TempDir;

const MASTER_KEY: &str = "0c1d2e3f405162738495a6b7c8d9eafb0c1d2e3f405162738495a6b7c8d9eafb";
const APPROVE: &str = "4242424242424242";
const FAIL_REVERSAL: &str = "4000000000000259";
const TIMEOUT: Duration = Duration::from_secs(30);

const INHERITED_SETTINGS: [&str; 10] = [
    "GIFTD_DATA_DIR",
    "GIFTD_LISTEN",
    "GIFTD_MASTER_KEY",
    "GIFTD_DURABILITY",
    "GIFTD_DATABASE_URL",
    "GIFTD_PG_POOL_SIZE",
    "GIFTD_PG_ISOLATION",
    "GIFTD_FAILPOINT",
    "GIFTD_CHECKOUT_LEASE_SECONDS",
    "RUST_LOG",
];

/// A data folder and, on PostgreSQL, a database of the test's own.
struct Setup {
    dir: TempDir,
    database: Option<PgTestDatabase>,
    api_key: String,
}

fn giftd(setup_dir: &Path, database_url: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_giftd"));
    for variable in INHERITED_SETTINGS {
        command.env_remove(variable);
    }
    command
        .env("GIFTD_DATA_DIR", setup_dir.join("data"))
        .env("GIFTD_MASTER_KEY", MASTER_KEY)
        .stdin(Stdio::null());
    if let Some(url) = database_url {
        command
            .env("GIFTD_DATABASE_URL", url)
            .env("GIFTD_PG_POOL_SIZE", "4");
    }
    command
}

impl Setup {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let database = if testing_postgres() {
            let admin = test_pg_url().expect("GIFTD_TEST_BACKEND=postgres needs GIFTD_TEST_PG_URL");
            Some(PgTestDatabase::create(&admin).await)
        } else {
            None
        };
        let url = database.as_ref().map(|d| d.url.clone());
        let output = giftd(dir.path(), url.as_deref())
            .args(["merchants", "create", "Recovery", "--json"])
            .output()
            .expect("run giftd merchants create");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let created: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        Self {
            dir,
            database,
            api_key: created["api_key"].as_str().expect("api key").to_owned(),
        }
    }

    fn url(&self) -> Option<String> {
        self.database.as_ref().map(|d| d.url.clone())
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `giftd serve`, with a failpoint armed or not, and waits until it is ready.
    async fn serve(&self, failpoint: Option<&str>, log: &str) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("address")
            .port();
        let log_file = std::fs::File::create(self.log(log)).expect("log file");
        let mut command = giftd(self.dir.path(), self.url().as_deref());
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--checkout-lease-seconds", "1"])
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file);
        if let Some(name) = failpoint {
            command.env("GIFTD_FAILPOINT", name);
        }
        let server = Server {
            child: command.spawn().expect("start giftd"),
            base: format!("http://127.0.0.1:{port}"),
            api_key: self.api_key.clone(),
            client: giftd_testkit::http_client(),
        };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(response) = server.client.get(format!("{}/readyz", server.base)).send().await
                && response.status().is_success()
            {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "giftd did not become ready: {}",
                self.read_log(log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn read_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log(name)).unwrap_or_default()
    }

    /// `giftd verify` on the stopped database: the ledger balances.
    fn verify(&self) {
        let output = giftd(self.dir.path(), self.url().as_deref())
            .arg("verify")
            .output()
            .expect("run giftd verify");
        assert!(
            output.status.success(),
            "verify failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

struct Server {
    child: Child,
    base: String,
    api_key: String,
    client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Option<(u16, Value)> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.api_key)
            .timeout(TIMEOUT);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        let text = response.text().await.ok()?;
        Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body))
            .await
            .unwrap_or_else(|| panic!("POST {path} got no answer"))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None)
            .await
            .unwrap_or_else(|| panic!("GET {path} got no answer"))
    }

    /// A request that reaches the armed failpoint: giftd dies before answering.
    async fn post_and_die(&mut self, path: &str, body: Value) {
        let answer = self.send(reqwest::Method::POST, path, Some(body)).await;
        assert!(answer.is_none(), "giftd answered instead of dying: {answer:?}");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(!status.success(), "giftd was aborted");
                return;
            }
            assert!(Instant::now() < deadline, "giftd did not die");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn card(&self, program: &str, amount: i64) -> String {
        let (status, card) = self
            .post(
                "/v1/cards",
                json!({"program_id": program, "kind": "virtual", "amount": amount}),
            )
            .await;
        assert_eq!(status, 201, "{card}");
        card["id"].as_str().expect("card id").to_owned()
    }

    async fn program(&self) -> String {
        let (status, program) = self
            .post("/v1/programs", json!({"name": "P", "currency": "USD"}))
            .await;
        assert_eq!(status, 201, "{program}");
        program["id"].as_str().expect("program id").to_owned()
    }

    async fn balance(&self, card: &str) -> (i64, i64) {
        let (_, card) = self.get(&format!("/v1/cards/{card}")).await;
        (
            card["balance"].as_i64().expect("balance"),
            card["available"].as_i64().expect("available"),
        )
    }

    /// Polls the checkout until `done` says so (the recovery loop has run).
    async fn wait_for(&self, checkout: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let (status, body) = self.get(&format!("/v1/checkouts/{checkout}")).await;
            assert_eq!(status, 200, "{body}");
            if done(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "the checkout was not resumed: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn processor(&self, checkout: &Value) -> Option<Value> {
        let reference = tender(checkout, "card")["id"]
            .as_str()
            .expect("tender id")
            .to_owned();
        match self.get(&format!("/v1/simulator/payments/{reference}")).await {
            (200, body) => Some(body),
            (404, _) => None,
            (status, body) => panic!("simulator answered {status}: {body}"),
        }
    }
}

fn tender<'a>(checkout: &'a Value, kind: &str) -> &'a Value {
    checkout["tenders"]
        .as_array()
        .expect("tenders")
        .iter()
        .find(|t| t["type"] == kind)
        .expect("a tender of that type")
}

fn settled(checkout: &Value) -> bool {
    !matches!(
        checkout["status"].as_str(),
        Some("processing" | "capturing" | "voiding")
    ) && tender(checkout, "card")["status"] != "void_pending"
        && tender(checkout, "card")["refund_pending"] == 0
}

/// Creates a checkout on a server armed with `failpoint`, lets it die there, and starts a
/// plain server on the same database. Answers the new server and the gift card.
async fn die_during_checkout(
    setup: &Setup,
    failpoint: &str,
    intent: &str,
    gift: i64,
    pay: &str,
) -> (Server, String) {
    let mut first = setup.serve(Some(failpoint), "first.log").await;
    let program = first.program().await;
    let card = first.card(&program, 1000).await;
    first
        .post_and_die(
            "/v1/checkouts",
            json!({
                "amount": gift + 2000, "currency": "USD", "intent": intent,
                "gift_cards": [{"card_id": card, "amount": gift}],
                "payment_method": {"type": "card", "number": pay},
            }),
        )
        .await;
    assert!(
        setup.read_log("first.log").contains(failpoint),
        "{}",
        setup.read_log("first.log")
    );
    drop(first);
    (setup.serve(None, "second.log").await, card)
}

/// The checkout the first server died in, as its failpoint line names it.
fn checkout_id_from_log(setup: &Setup) -> Option<String> {
    let log = setup.read_log("first.log");
    log.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .find(|word| word.starts_with("chk_"))
        .map(str::to_owned)
}

#[tokio::test]
async fn killed_after_the_checkout_was_recorded_it_fails_without_touching_anything() {
    let setup = Setup::new().await;
    let (server, card) = die_during_checkout(&setup, "checkout.after_begin", "capture", 600, APPROVE).await;
    let id = checkout_id_from_log(&setup).expect("the failpoint names the checkout");
    let checkout = server.wait_for(&id, settled).await;
    assert_eq!(checkout["intent_outcome"], "failed");
    assert_eq!(checkout["failure"]["code"], "processor_unavailable");
    assert_eq!(tender(&checkout, "gift_card")["status"], "skipped");
    assert_eq!(tender(&checkout, "card")["status"], "voided");
    // The processor never saw it.
    assert_eq!(server.processor(&checkout).await, None);
    assert_eq!(server.balance(&card).await, (1000, 1000));
    drop(server);
    setup.verify();
}

#[tokio::test]
async fn killed_after_the_processor_charged_it_the_charge_is_voided() {
    let setup = Setup::new().await;
    let (server, card) = die_during_checkout(
        &setup,
        "checkout.after_call_send_payment",
        "capture",
        600,
        APPROVE,
    )
    .await;
    let id = checkout_id_from_log(&setup).expect("the failpoint names the checkout");
    let checkout = server.wait_for(&id, settled).await;
    assert_eq!(checkout["intent_outcome"], "failed");
    assert_eq!(tender(&checkout, "card")["status"], "voided");
    let sim = server
        .processor(&checkout)
        .await
        .expect("the processor has the payment");
    assert_eq!(
        sim["status"], "voided",
        "the charge giftd never recorded is reversed"
    );
    assert_eq!(server.balance(&card).await, (1000, 1000));
    drop(server);
    setup.verify();
}

#[tokio::test]
async fn killed_after_the_payment_was_recorded_the_gift_card_step_is_finished() {
    let setup = Setup::new().await;
    let (server, card) =
        die_during_checkout(&setup, "checkout.after_send_payment", "capture", 600, APPROVE).await;
    let id = checkout_id_from_log(&setup).expect("the failpoint names the checkout");
    let checkout = server.wait_for(&id, settled).await;
    assert_eq!(checkout["status"], "captured");
    assert_eq!(checkout["intent_outcome"], "succeeded");
    assert_eq!(tender(&checkout, "gift_card")["status"], "redeemed");
    assert_eq!(
        server.processor(&checkout).await.expect("payment")["status"],
        "captured"
    );
    assert_eq!(server.balance(&card).await, (400, 400));
    drop(server);
    setup.verify();
}

#[tokio::test]
async fn killed_after_a_gift_card_failed_the_captured_payment_is_refunded() {
    let setup = Setup::new().await;
    // 1500 from a card of 1000: the gift card step fails, the payment is owed back.
    let (server, card) =
        die_during_checkout(&setup, "checkout.after_use_gift_cards", "capture", 1500, APPROVE).await;
    let id = checkout_id_from_log(&setup).expect("the failpoint names the checkout");
    let checkout = server.wait_for(&id, settled).await;
    assert_eq!(checkout["intent_outcome"], "failed");
    assert_eq!(tender(&checkout, "gift_card")["error_code"], "insufficient_funds");
    assert_eq!(tender(&checkout, "card")["status"], "refunded");
    let sim = server.processor(&checkout).await.expect("payment");
    assert_eq!(sim["refunded_amount"], sim["captured_amount"]);
    assert_eq!(server.balance(&card).await, (1000, 1000));
    drop(server);
    setup.verify();
}

#[tokio::test]
async fn killed_while_voiding_the_void_is_completed_and_retried_until_the_processor_takes_it() {
    let setup = Setup::new().await;
    let mut first = setup
        .serve(Some("checkout.after_release_gift_cards"), "first.log")
        .await;
    let program = first.program().await;
    let card = first.card(&program, 1000).await;
    let (status, created) = first
        .post(
            "/v1/checkouts",
            json!({
                "amount": 2600, "currency": "USD", "intent": "authorize",
                "gift_cards": [{"card_id": card, "amount": 600}],
                "payment_method": {"type": "card", "number": FAIL_REVERSAL},
            }),
        )
        .await;
    assert_eq!(
        (status, created["status"].as_str()),
        (201, Some("authorized")),
        "{created}"
    );
    let id = created["id"].as_str().expect("id").to_owned();
    first
        .post_and_die(&format!("/v1/checkouts/{id}/void"), json!({}))
        .await;
    drop(first);
    let server = setup.serve(None, "second.log").await;
    // The processor refuses the first two voids; the backoff (1 s, 2 s) gets the third through.
    let checkout = server.wait_for(&id, |c| c["status"] == "voided").await;
    assert_eq!(tender(&checkout, "card")["status"], "voided");
    assert_eq!(tender(&checkout, "gift_card")["status"], "released");
    let sim = server.processor(&checkout).await.expect("payment");
    assert_eq!(
        (sim["status"].as_str(), sim["failed_reversals"].as_i64()),
        (Some("voided"), Some(2))
    );
    assert_eq!(server.balance(&card).await, (1000, 1000));
    drop(server);
    setup.verify();
}

#[tokio::test]
async fn killed_after_the_processor_captured_the_capture_is_finished() {
    let setup = Setup::new().await;
    let mut first = setup
        .serve(Some("checkout.after_call_capture_payment"), "first.log")
        .await;
    let program = first.program().await;
    let card = first.card(&program, 1000).await;
    let (_, created) = first
        .post(
            "/v1/checkouts",
            json!({
                "amount": 2600, "currency": "USD", "intent": "authorize",
                "gift_cards": [{"card_id": card, "amount": 600}],
                "payment_method": {"type": "card", "number": APPROVE},
            }),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    first
        .post_and_die(&format!("/v1/checkouts/{id}/capture"), json!({}))
        .await;
    drop(first);
    let server = setup.serve(None, "second.log").await;
    let checkout = server.wait_for(&id, |c| c["status"] == "captured").await;
    assert_eq!(tender(&checkout, "gift_card")["status"], "redeemed");
    assert_eq!(
        server.processor(&checkout).await.expect("payment")["captured_amount"],
        2000
    );
    assert_eq!(server.balance(&card).await, (400, 400));
    drop(server);
    setup.verify();
}
