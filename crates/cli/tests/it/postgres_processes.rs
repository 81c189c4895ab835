//! Several real `giftd serve` processes sharing one PostgreSQL database, as stateless nodes behind a
//! load balancer would: correctness must come from the database, never from one process's memory.
//!
//! Every test creates a database of its own (dropped at the end), a merchant with
//! `giftd merchants create`, and two servers on different ports; all of them share one
//! `GIFTD_MASTER_KEY`, so that an API key made by the CLI authenticates on either server. Every
//! process started here is killed by a guard, even when a test fails, and every wait is bounded.
//!
//! The tests need `GIFTD_TEST_PG_URL` (e.g. `postgres://postgres@127.0.0.1:5432/postgres`), so
//! they are ignored with the reason (`#[ignore = "needs …"]`): `cargo test -- --include-ignored`
//! runs them (CI does), and then a missing variable or an unreachable server fails them.
//! They run one at a time (a shared lock) so that the PostgreSQL connections and the CPU they use
//! do not add up across tests, and so that the timing of the hold race is not skewed by the others.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use futures::future::join_all;
use giftd_testkit::{PgTestDatabase, test_pg_url};
use serde_json::{Value, json};
use sqlx::Connection;
use tempfile::TempDir;

/// The master key every process of a test shares (64 hex digits).
const MASTER_KEY: &str = "5f1c0b9a8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170605f4e3";
/// PostgreSQL connections per server: two servers stay well below the server's 100.
const POOL_SIZE: &str = "8";
/// How long a server may take to answer `/readyz` after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a CLI command (`merchants create`, `verify`) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one HTTP request may take (a thousand of them queue for connections at once).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a killed server may take to be reaped.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// `GIFTD_*` settings that must not leak from the caller's environment into the processes.
const INHERITED_SETTINGS: [&str; 8] = [
    "GIFTD_DATA_DIR",
    "GIFTD_LISTEN",
    "GIFTD_MASTER_KEY",
    "GIFTD_DURABILITY",
    "GIFTD_DATABASE_URL",
    "GIFTD_PG_POOL_SIZE",
    "GIFTD_PG_ISOLATION",
    "RUST_LOG",
];

/// One test at a time (see the module documentation).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Why every test here is ignored unless asked for.
const NEEDS_POSTGRES: &str = "needs GIFTD_TEST_PG_URL, a PostgreSQL server";

/// The PostgreSQL server to test against; a test asked to run without one fails.
fn postgres(test: &str) -> String {
    test_pg_url().unwrap_or_else(|| panic!("{test} {NEEDS_POSTGRES}: set it to run the test"))
}

fn free_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address")
}

fn now_millis() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since_epoch.as_millis()).expect("milliseconds fit in i64")
}

/// Milliseconds since the epoch of an RFC 3339 UTC time as the API writes it
/// (`2024-01-31T12:00:00.123Z`).
fn rfc3339_millis(text: &str) -> i64 {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("not an RFC 3339 time ({e}): {text:?}"));
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).expect("milliseconds fit in i64")
}

/// Runs a `giftd` CLI command to its end, bounded by [`COMMAND_TIMEOUT`]. The data folder is
/// `dir/cli-data` (the CLI creates one even with a database URL).
async fn giftd_cli(dir: &Path, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_giftd"));
    for variable in INHERITED_SETTINGS {
        command.env_remove(variable);
    }
    command
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("cli-data"))
        .env("GIFTD_MASTER_KEY", MASTER_KEY)
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    tokio::time::timeout(COMMAND_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "`giftd {}` did not finish within {COMMAND_TIMEOUT:?}",
                args.join(" ")
            )
        })
        .expect("run giftd")
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running `giftd serve`; dropping it kills the process.
struct Server {
    name: String,
    child: Child,
    base_url: String,
    log_path: PathBuf,
    client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// An HTTP answer: status, body text and the body as JSON (`Null` when not JSON).
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    text: String,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    fn is_error(&self, status: u16, code: &str) -> bool {
        self.status == status && self.code() == code
    }
}

impl Server {
    /// Starts `giftd serve` on `database_url` with a data folder and a log file of its own in
    /// `dir`; [`Server::wait_ready`] waits for it.
    fn spawn(name: &str, database_url: &str, dir: &Path, extra_args: &[&str]) -> Self {
        let address = free_address();
        let log_path = dir.join(format!("{name}.log"));
        let log = File::create(&log_path).expect("create the log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_giftd"));
        for variable in INHERITED_SETTINGS {
            command.env_remove(variable);
        }
        command
            .args(["serve", "--listen", &address.to_string()])
            .args(["--database-url", database_url, "--pg-pool-size", POOL_SIZE])
            .arg("--data-dir")
            .arg(dir.join(format!("{name}-data")))
            .args(extra_args)
            .env("GIFTD_MASTER_KEY", MASTER_KEY)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let child = command.spawn().expect("start giftd serve");
        Self {
            name: name.to_owned(),
            child,
            base_url: format!("http://{address}"),
            log_path,
            client: giftd_testkit::http_client_builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .expect("an HTTP client"),
        }
    }

    /// Waits (bounded) until `/readyz` answers 200, i.e. the database is reachable.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server") {
                panic!(
                    "giftd serve ({}) exited with {status} before it was ready; log:\n{}",
                    self.name,
                    self.log()
                );
            }
            let answer = self
                .client
                .get(format!("{}/readyz", self.base_url))
                .timeout(Duration::from_millis(500))
                .send()
                .await;
            if answer.is_ok_and(|response| response.status() == reqwest::StatusCode::OK) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "giftd serve ({}) was not ready within {START_TIMEOUT:?}; log:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// What a failure report needs from the log: errors, warnings and panics, then its end.
    fn log_excerpt(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let notable: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|line| line.contains("ERROR") || line.contains("WARN") || line.contains("panicked"))
            .take(30)
            .collect();
        let tail = &lines[lines.len().saturating_sub(10)..];
        format!(
            "--- {} ({} lines): errors, warnings, panics ---\n{}\n--- {}: last lines ---\n{}\n",
            self.name,
            lines.len(),
            notable.join("\n"),
            self.name,
            tail.join("\n")
        )
    }

    /// `kill -9` of the process: no graceful shutdown, no chance to finish anything.
    fn kill_minus_nine(&self) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill")
            .args(["-9", &pid])
            .status()
            .expect("run kill");
        assert!(killed.success(), "kill -9 {pid} failed");
    }

    /// Waits (bounded) for the process to end and reaps it.
    async fn wait_for_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not end within {EXIT_TIMEOUT:?}",
                self.name
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn try_send(&self, request: reqwest::RequestBuilder) -> Result<Answer, reqwest::Error> {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer { status, text, body })
    }

    async fn try_post(
        &self,
        api_key: &str,
        path: &str,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Answer, reqwest::Error> {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(api_key)
            .json(body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        self.try_send(request).await
    }

    async fn post_idempotent(
        &self,
        api_key: &str,
        path: &str,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Answer {
        self.try_post(api_key, path, body, idempotency_key)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "POST {path} to {} got no answer: {error}\n{}",
                    self.name,
                    self.log_excerpt()
                )
            })
    }

    async fn post(&self, api_key: &str, path: &str, body: Value) -> Answer {
        self.post_idempotent(api_key, path, &body, None).await
    }

    async fn get(&self, api_key: &str, path: &str) -> Answer {
        let request = self
            .client
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(api_key);
        self.try_send(request).await.unwrap_or_else(|error| {
            panic!(
                "GET {path} from {} got no answer: {error}\n{}",
                self.name,
                self.log_excerpt()
            )
        })
    }
}

/// One test database, a merchant, and two servers `a` and `b` on it. Fields drop in order: the
/// servers are killed before the folder and the database go.
struct Cluster {
    a: Server,
    b: Server,
    api_key: String,
    dir: TempDir,
    database: PgTestDatabase,
}

impl Cluster {
    async fn start(admin_url: &str, serve_args: &[&str]) -> Self {
        let database = PgTestDatabase::create(admin_url).await;
        let dir = tempfile::tempdir().expect("temporary folder");
        let created = giftd_cli(
            dir.path(),
            &[
                "merchants",
                "create",
                "Two Node Merchant",
                "--json",
                "--database-url",
                &database.url,
            ],
        )
        .await;
        assert!(
            created.status.success(),
            "merchants create failed: {}",
            text_of(&created.stderr)
        );
        let printed: Value = serde_json::from_str(text_of(&created.stdout).trim()).unwrap_or_else(|e| {
            panic!(
                "merchants create printed no JSON ({e}): {}",
                text_of(&created.stdout)
            )
        });
        let api_key = printed["api_key"].as_str().expect("api_key").to_owned();

        let mut a = Server::spawn("a", &database.url, dir.path(), serve_args);
        let mut b = Server::spawn("b", &database.url, dir.path(), serve_args);
        a.wait_ready().await;
        b.wait_ready().await;
        let cluster = Self {
            a,
            b,
            api_key,
            dir,
            database,
        };
        // The CLI's key authenticates on both: the processes derived the same keys.
        for server in [&cluster.a, &cluster.b] {
            let answer = server.get(&cluster.api_key, "/v1/programs").await;
            cluster.expect(&answer, 200, "GET /v1/programs with the CLI's API key");
        }
        cluster
    }

    /// Server `a` for even `i`, `b` for odd: requests alternate between the processes.
    fn server(&self, i: usize) -> &Server {
        if i.is_multiple_of(2) { &self.a } else { &self.b }
    }

    fn logs(&self) -> String {
        format!("{}{}", self.a.log_excerpt(), self.b.log_excerpt())
    }

    #[track_caller]
    fn expect<'a>(&self, answer: &'a Answer, status: u16, what: &str) -> &'a Value {
        if answer.status != status {
            panic!(
                "{what}: expected {status}, got {} {}\n{}",
                answer.status,
                answer.text,
                self.logs()
            );
        }
        &answer.body
    }

    async fn program(&self) -> String {
        let answer = self
            .a
            .post(
                &self.api_key,
                "/v1/programs",
                json!({"name": "Race", "currency": "USD"}),
            )
            .await;
        self.expect(&answer, 201, "create a program")["id"]
            .as_str()
            .expect("program id")
            .to_owned()
    }

    /// Issues `count` virtual cards of `amount` each, alternating between the servers.
    async fn cards(&self, program_id: &str, count: usize, amount: i64) -> Vec<String> {
        let body = json!({"program_id": program_id, "kind": "virtual", "amount": amount});
        let answers: Vec<Answer> = futures::stream::iter(0..count)
            .map(|i| self.server(i).post(&self.api_key, "/v1/cards", body.clone()))
            .buffered(16)
            .collect()
            .await;
        answers
            .iter()
            .map(|answer| {
                let card = self.expect(answer, 201, "issue a card");
                assert_eq!(card["balance"], amount, "{card}");
                card["id"].as_str().expect("card id").to_owned()
            })
            .collect()
    }

    /// GETs every path through `server`, 32 at a time, in order.
    async fn get_all(&self, server: &Server, paths: &[String]) -> Vec<Answer> {
        futures::stream::iter(paths)
            .map(|path| server.get(&self.api_key, path))
            .buffered(32)
            .collect()
            .await
    }

    /// `giftd verify --database-url ...` must exit 0.
    async fn assert_verify_passes(&self) -> String {
        let output = giftd_cli(self.dir.path(), &["verify", "--database-url", &self.database.url]).await;
        let stdout = text_of(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "giftd verify failed\nstdout:\n{stdout}\nstderr:\n{}\n{}",
            text_of(&output.stderr),
            self.logs()
        );
        assert!(stdout.contains("ledger OK"), "stdout: {stdout}");
        stdout
    }

    /// No server panicked; errors in the logs are printed for the report.
    fn check_logs(&self, servers: &[&Server]) {
        for server in servers {
            let log = server.log();
            assert!(
                !log.contains("panicked"),
                "{} panicked:\n{}",
                server.name,
                server.log_excerpt()
            );
            let errors = log.lines().filter(|line| line.contains("ERROR")).count();
            if errors > 0 {
                eprintln!(
                    "note: {} logged {errors} ERROR line(s):\n{}",
                    server.name,
                    server.log_excerpt()
                );
            }
        }
    }

    async fn raw_connection(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.database.url)
            .await
            .expect("connect to the test database")
    }
}

/// `count` cards of 1000 each, `per_card` simultaneous redemptions of the full balance on each,
/// alternating between two servers started with `serve_args`: exactly one succeeds per card.
async fn full_balance_race(test: &str, serve_args: &[&str], count: usize, per_card: usize) {
    const BALANCE: i64 = 1000;
    let admin_url = postgres(test);
    let _one_at_a_time = SERIAL.lock().await;
    let started = Instant::now();
    let cluster = Cluster::start(&admin_url, serve_args).await;
    let program = cluster.program().await;
    let cards = cluster.cards(&program, count, BALANCE).await;
    let prepared = started.elapsed();

    let requests: Vec<(usize, usize)> = (0..count)
        .flat_map(|card| (0..per_card).map(move |n| (card, n)))
        .collect();
    let race = Instant::now();
    let answers = join_all(requests.iter().enumerate().map(|(i, &(card, _))| {
        let path = format!("/v1/cards/{}/redeem", cards[card]);
        let cluster = &cluster;
        async move {
            cluster
                .server(i)
                .post(&cluster.api_key, &path, json!({"amount": BALANCE}))
                .await
        }
    }))
    .await;
    let race = race.elapsed();

    let mut wins: Vec<Vec<&Answer>> = vec![Vec::new(); count];
    let mut problems = Vec::new();
    for (&(card, n), answer) in requests.iter().zip(&answers) {
        if answer.status == 200 {
            wins[card].push(answer);
        } else if !answer.is_error(422, "insufficient_funds") {
            problems.push(format!(
                "card {} request {n}: {} {}",
                cards[card], answer.status, answer.text
            ));
        }
    }
    for (card, won) in wins.iter().enumerate() {
        if won.len() != 1 {
            problems.push(format!(
                "card {}: {} successful redemptions of its full balance (expected exactly 1)",
                cards[card],
                won.len()
            ));
        }
        for answer in won {
            let body = &answer.body;
            if body["type"] != "redemption" || body["amount"] != BALANCE || body["balance_after"] != 0 {
                problems.push(format!(
                    "card {}: unexpected success {}",
                    cards[card], answer.text
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) in {} answers, first ones:\n{}\n{}",
        problems.len(),
        answers.len(),
        problems[..problems.len().min(20)].join("\n"),
        cluster.logs()
    );

    let card_paths: Vec<String> = cards.iter().map(|id| format!("/v1/cards/{id}")).collect();
    for answer in cluster.get_all(&cluster.b, &card_paths).await {
        let card = cluster.expect(&answer, 200, "GET a card");
        assert_eq!(
            (&card["balance"], &card["held"], &card["available"]),
            (&json!(0), &json!(0), &json!(0)),
            "{card}"
        );
    }
    let history_paths: Vec<String> = cards
        .iter()
        .map(|id| format!("/v1/cards/{id}/transactions?limit=100"))
        .collect();
    for (answer, won) in cluster
        .get_all(&cluster.a, &history_paths)
        .await
        .iter()
        .zip(&wins)
    {
        let list = cluster.expect(answer, 200, "GET a card's transactions");
        let redemptions: Vec<&Value> = list["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter(|t| t["type"] == "redemption")
            .collect();
        assert_eq!(redemptions.len(), 1, "{list}");
        assert_eq!(redemptions[0]["id"], won[0].body["id"], "{list}");
    }

    let summary = cluster.assert_verify_passes().await;
    assert!(
        summary.contains(&format!("checked {count} cards, {} transactions", 2 * count)),
        "one issue and one redemption per card: {summary}"
    );
    cluster.check_logs(&[&cluster.a, &cluster.b]);
    eprintln!(
        "{test}: {} redemptions on {count} cards over two processes in {race:.2?} \
         (setup {prepared:.2?}, total {:.2?}); {count} succeeded, {} refused",
        answers.len(),
        started.elapsed(),
        answers.len() - count
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs GIFTD_TEST_PG_URL, a PostgreSQL server"]
async fn a_thousand_concurrent_full_balance_redemptions_over_two_processes_succeed_once_per_card() {
    full_balance_race(
        "a_thousand_concurrent_full_balance_redemptions_over_two_processes_succeed_once_per_card",
        &[],
        250,
        4,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs GIFTD_TEST_PG_URL, a PostgreSQL server"]
async fn serializable_isolation_keeps_the_same_guarantees() {
    full_balance_race(
        "serializable_isolation_keeps_the_same_guarantees",
        &["--pg-isolation", "serializable"],
        50,
        4,
    )
    .await;
}

/// How one hold's race ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Winner {
    Capture,
    Release,
    Expiry,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs GIFTD_TEST_PG_URL, a PostgreSQL server"]
async fn the_hold_race_capture_release_and_expiry_have_exactly_one_winner() {
    const TEST: &str = "the_hold_race_capture_release_and_expiry_have_exactly_one_winner";
    const HOLDS: usize = 30;
    const BALANCE: i64 = 1000;
    const HELD: i64 = 400;
    const EXPIRES_IN_SECONDS: i64 = 2;
    /// The pairs of requests are fired from SPREAD/2 before to SPREAD/2 after their hold's expiry,
    /// most of them within a few milliseconds of it.
    const SPREAD_MILLIS: i64 = 1000;
    let admin_url = postgres(TEST);
    let _one_at_a_time = SERIAL.lock().await;
    let started = Instant::now();
    let cluster = Cluster::start(&admin_url, &[]).await;
    let program = cluster.program().await;
    let cards = cluster.cards(&program, HOLDS, BALANCE).await;

    let placed = join_all(cards.iter().enumerate().map(|(i, card)| {
        let path = format!("/v1/cards/{card}/holds");
        let body = json!({"amount": HELD, "expires_in_seconds": EXPIRES_IN_SECONDS});
        let cluster = &cluster;
        async move { cluster.server(i).post(&cluster.api_key, &path, body).await }
    }))
    .await;
    let holds: Vec<(String, i64)> = placed
        .iter()
        .map(|answer| {
            let hold = cluster.expect(answer, 201, "place a hold");
            assert_eq!(hold["state"], "pending", "{hold}");
            let expires_at = rfc3339_millis(hold["expires_at"].as_str().expect("expires_at"));
            let created_at = rfc3339_millis(hold["created_at"].as_str().expect("created_at"));
            assert_eq!(expires_at - created_at, EXPIRES_IN_SECONDS * 1000, "{hold}");
            let skew = (created_at - now_millis()).abs();
            assert!(
                skew < 5000,
                "the server's clock is {skew} ms away from ours: {hold}"
            );
            (hold["id"].as_str().expect("hold id").to_owned(), expires_at)
        })
        .collect();
    let latest_expiry = holds.iter().map(|h| h.1).max().expect("holds");
    assert!(
        holds.iter().all(|h| h.1 - now_millis() > SPREAD_MILLIS / 2),
        "placing the holds took too long for the race to start before their expiry"
    );

    // Capture through `a` and release through `b`, fired together, around each hold's expiry;
    // the sweepers of both processes expire what is left.
    // x runs evenly over [-1, 1]; x³ packs the offsets around the moment of expiry.
    let offsets: Vec<i64> = (0..HOLDS)
        .map(|i| {
            let x = 2.0 * i as f64 / (HOLDS - 1) as f64 - 1.0;
            (x.powi(3) * (SPREAD_MILLIS / 2) as f64).round() as i64
        })
        .collect();
    let race = join_all(holds.iter().zip(&offsets).map(|((hold, expires_at), &offset)| {
        let capture_path = format!("/v1/holds/{hold}/capture");
        let release_path = format!("/v1/holds/{hold}/release");
        let cluster = &cluster;
        async move {
            let wait = expires_at + offset - now_millis();
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())).await;
            }
            let (capture, release) = tokio::join!(
                cluster.a.post(&cluster.api_key, &capture_path, json!({})),
                cluster.b.post(&cluster.api_key, &release_path, json!({})),
            );
            (offset, capture, release)
        }
    }))
    .await;

    // The sweepers run every second: every hold leaves `pending` in the database soon.
    let mut connection = cluster.raw_connection().await;
    let sweep_deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (pending,): (i64,) = sqlx::query_as("SELECT count(*) FROM holds WHERE state = 'pending'")
            .fetch_one(&mut connection)
            .await
            .expect("count pending holds");
        if pending == 0 {
            break;
        }
        assert!(
            Instant::now() < sweep_deadline,
            "{pending} hold(s) still pending in the database {}s after their expiry: the sweepers \
             did not expire them\n{}",
            (now_millis() - latest_expiry) / 1000,
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored: HashMap<String, (String, i64)> =
        sqlx::query_as::<_, (String, String, i64)>("SELECT id, state, captured_amount FROM holds")
            .fetch_all(&mut connection)
            .await
            .expect("read the holds")
            .into_iter()
            .map(|(id, state, captured)| (id, (state, captured)))
            .collect();
    let _ = connection.close().await;

    let hold_paths: Vec<String> = holds.iter().map(|(id, _)| format!("/v1/holds/{id}")).collect();
    let card_paths: Vec<String> = cards.iter().map(|id| format!("/v1/cards/{id}")).collect();
    let history_paths: Vec<String> = cards
        .iter()
        .map(|id| format!("/v1/cards/{id}/transactions?limit=100"))
        .collect();
    let hold_answers = cluster.get_all(&cluster.b, &hold_paths).await;
    let card_answers = cluster.get_all(&cluster.a, &card_paths).await;
    let history_answers = cluster.get_all(&cluster.b, &history_paths).await;

    let mut problems = Vec::new();
    let mut outcomes: BTreeMap<Winner, Vec<i64>> = BTreeMap::new();
    for (i, (offset, capture, release)) in race.iter().enumerate() {
        let (hold_id, expires_at) = &holds[i];
        let card_id = &cards[i];
        let winner = match (capture.status, release.status) {
            (200, _) if release.is_error(409, "hold_not_pending") => Winner::Capture,
            (_, 200) if capture.is_error(409, "hold_not_pending") => Winner::Release,
            _ if capture.is_error(409, "hold_not_pending") && release.is_error(409, "hold_not_pending") => {
                Winner::Expiry
            }
            _ => {
                problems.push(format!(
                    "hold {hold_id} (fired {offset:+} ms from expiry): capture {} {} / release {} {}{}",
                    capture.status,
                    capture.text,
                    release.status,
                    release.text,
                    if capture.status == 200 && release.status == 200 {
                        "  <- TWO WINNERS"
                    } else {
                        ""
                    }
                ));
                continue;
            }
        };
        outcomes.entry(winner).or_default().push(*offset);

        let (state, captured, balance) = match winner {
            Winner::Capture => ("captured", HELD, BALANCE - HELD),
            Winner::Release => ("released", 0, BALANCE),
            Winner::Expiry => ("expired", 0, BALANCE),
        };
        let mut check = |ok: bool, what: String| {
            if !ok {
                problems.push(format!(
                    "hold {hold_id} ({winner:?} won, fired {offset:+} ms): {what}"
                ));
            }
        };
        let in_database = stored.get(hold_id).cloned().unwrap_or_default();
        check(
            in_database == (state.to_owned(), captured),
            format!("stored as {in_database:?}, expected ({state}, {captured})"),
        );
        let hold = &hold_answers[i].body;
        check(
            hold["state"] == state && hold["captured_amount"] == captured,
            format!("GET hold: {hold}"),
        );
        let card = &card_answers[i].body;
        check(
            card["balance"] == balance && card["held"] == 0 && card["available"] == balance,
            format!("GET card: {card}"),
        );
        let history = history_answers[i].body["data"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let captures: Vec<&Value> = history.iter().filter(|t| t["type"] == "capture").collect();
        check(
            captures.len() == usize::from(winner == Winner::Capture),
            format!("{} capture transaction(s) in the card's history", captures.len()),
        );
        check(
            !history.iter().any(|t| t["type"] == "redemption"),
            "a redemption in the card's history".to_owned(),
        );
        match winner {
            Winner::Capture => {
                let body = &capture.body;
                check(
                    body["type"] == "capture"
                        && body["amount"] == HELD
                        && body["hold_id"] == hold_id.as_str()
                        && body["card_id"] == card_id.as_str()
                        && body["balance_after"] == BALANCE - HELD,
                    format!("capture answer {body}"),
                );
                let at = rfc3339_millis(body["created_at"].as_str().unwrap_or("?"));
                check(
                    at < *expires_at,
                    format!("captured at {at}, not before the hold's expiry {expires_at}"),
                );
                check(
                    captures.first().is_some_and(|t| t["id"] == body["id"]),
                    "the capture answered is not in the history".to_owned(),
                );
            }
            Winner::Release => check(
                release.body["state"] == "released" && release.body["id"] == hold_id.as_str(),
                format!("release answer {}", release.text),
            ),
            Winner::Expiry => {}
        }
    }
    let distribution: Vec<String> = outcomes
        .iter()
        .map(|(winner, offsets)| {
            format!(
                "{winner:?} {} (fired {:+}..{:+} ms from expiry)",
                offsets.len(),
                offsets.iter().min().unwrap_or(&0),
                offsets.iter().max().unwrap_or(&0)
            )
        })
        .collect();
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}\noutcomes: {distribution:?}\n{}",
        problems.len(),
        problems.join("\n"),
        cluster.logs()
    );
    // The race is only a race if some holds were still pending when asked and some were not.
    let requests_won = outcomes.get(&Winner::Capture).map_or(0, Vec::len)
        + outcomes.get(&Winner::Release).map_or(0, Vec::len);
    assert!(requests_won > 0, "no request won before expiry: {distribution:?}");
    assert!(
        outcomes.contains_key(&Winner::Expiry),
        "no hold expired before its requests: {distribution:?}"
    );

    cluster.assert_verify_passes().await;
    cluster.check_logs(&[&cluster.a, &cluster.b]);
    eprintln!(
        "{TEST}: {HOLDS} holds, outcomes {distribution:?}; total {:.2?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs GIFTD_TEST_PG_URL, a PostgreSQL server"]
async fn idempotency_races_across_two_processes_yield_one_effect() {
    const TEST: &str = "idempotency_races_across_two_processes_yield_one_effect";
    const CARDS: usize = 6;
    const COPIES: usize = 20;
    const BALANCE: i64 = 1000;
    const AMOUNT: i64 = 300;
    let admin_url = postgres(TEST);
    let _one_at_a_time = SERIAL.lock().await;
    let started = Instant::now();
    let cluster = Cluster::start(&admin_url, &[]).await;
    let program = cluster.program().await;
    let cards = cluster.cards(&program, CARDS, BALANCE).await;

    // Per card, two keys raced at once: one for a redemption that succeeds, one for a redemption
    // that is refused (a refusal is an answer too, replayed byte for byte). Each is sent
    // COPIES times at once, alternating between the processes.
    let keyed: Vec<(usize, String, Value)> = (0..CARDS)
        .flat_map(|card| {
            [
                (card, format!("redeem-{card}-ok"), json!({"amount": AMOUNT})),
                (
                    card,
                    format!("redeem-{card}-too-much"),
                    json!({"amount": BALANCE * 5}),
                ),
            ]
        })
        .collect();
    let sends: Vec<(usize, usize)> = (0..keyed.len())
        .flat_map(|k| (0..COPIES).map(move |copy| (k, copy)))
        .collect();
    let answers = join_all(sends.iter().map(|&(k, copy)| {
        let (card, key, body) = &keyed[k];
        let path = format!("/v1/cards/{}/redeem", cards[*card]);
        let cluster = &cluster;
        async move {
            cluster
                .server(copy)
                .post_idempotent(&cluster.api_key, &path, body, Some(key))
                .await
        }
    }))
    .await;

    let mut by_key: Vec<Vec<&Answer>> = vec![Vec::new(); keyed.len()];
    for (&(k, _), answer) in sends.iter().zip(&answers) {
        by_key[k].push(answer);
    }
    let mut problems = Vec::new();
    for (k, answers) in by_key.iter().enumerate() {
        let key = &keyed[k].1;
        let first = answers[0];
        let different: Vec<String> = answers
            .iter()
            .filter(|a| (a.status, &a.text) != (first.status, &first.text))
            .map(|a| format!("{} {}", a.status, a.text))
            .collect();
        if !different.is_empty() {
            problems.push(format!(
                "key {key}: answers differ; first {} {}, others {different:?}",
                first.status, first.text
            ));
        }
        let expected = if k % 2 == 0 {
            first.status == 200 && first.body["type"] == "redemption" && first.body["amount"] == AMOUNT
        } else {
            first.is_error(422, "insufficient_funds")
        };
        if !expected {
            problems.push(format!(
                "key {key}: unexpected answer {} {}",
                first.status, first.text
            ));
        }
    }
    assert!(problems.is_empty(), "{}\n{}", problems.join("\n"), cluster.logs());

    // Same key, other body: refused on both processes, and nothing changes.
    for (k, (card, key, body)) in keyed.iter().enumerate() {
        let other = json!({"amount": body["amount"].as_i64().expect("amount") + 1});
        let path = format!("/v1/cards/{}/redeem", cards[*card]);
        for server in [&cluster.a, &cluster.b] {
            let answer = server
                .post_idempotent(&cluster.api_key, &path, &other, Some(key))
                .await;
            assert!(
                answer.is_error(409, "idempotency_key_reused"),
                "key {key} (#{k}) with another body on {}: {} {}",
                server.name,
                answer.status,
                answer.text
            );
        }
        // And the first answer is still what the key replays.
        let again = cluster
            .b
            .post_idempotent(&cluster.api_key, &path, body, Some(key))
            .await;
        assert_eq!(
            (again.status, &again.text),
            (by_key[k][0].status, &by_key[k][0].text),
            "key {key} replays another answer"
        );
    }

    for (card, card_id) in cards.iter().enumerate() {
        let history = cluster
            .a
            .get(
                &cluster.api_key,
                &format!("/v1/cards/{card_id}/transactions?limit=100"),
            )
            .await;
        let list = cluster.expect(&history, 200, "GET a card's transactions");
        let redemptions: Vec<&Value> = list["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter(|t| t["type"] == "redemption")
            .collect();
        assert_eq!(
            redemptions.len(),
            1,
            "card {card_id}: one transaction per key expected: {list}"
        );
        assert_eq!(redemptions[0]["id"], by_key[2 * card][0].body["id"], "{list}");
        let fetched = cluster
            .b
            .get(&cluster.api_key, &format!("/v1/cards/{card_id}"))
            .await;
        let fetched = cluster.expect(&fetched, 200, "GET a card");
        assert_eq!(fetched["balance"], BALANCE - AMOUNT, "{fetched}");
    }
    let summary = cluster.assert_verify_passes().await;
    assert!(
        summary.contains(&format!("checked {CARDS} cards, {} transactions", 2 * CARDS)),
        "{summary}"
    );
    cluster.check_logs(&[&cluster.a, &cluster.b]);
    eprintln!(
        "{TEST}: {} requests on {} keys, one effect each; total {:.2?}",
        answers.len(),
        keyed.len(),
        started.elapsed()
    );
}

/// A transaction the load client saw acknowledged (200).
struct Acknowledged {
    body: Value,
}

#[derive(Default)]
struct Load {
    acknowledged: Mutex<Vec<Acknowledged>>,
    /// Non-200 answers, and transport errors before the kill.
    problems: Mutex<Vec<String>>,
    killed: AtomicBool,
    in_flight: AtomicUsize,
    sent: AtomicUsize,
    unanswered: AtomicUsize,
}

impl Load {
    fn acknowledged_count(&self) -> usize {
        self.acknowledged.lock().expect("lock").len()
    }
}

/// One load worker: redemptions and loads of 1.00 on the cards, one after another, through
/// `server`, until the kill (or a bounded number of requests).
async fn load_worker(worker: usize, server: &Server, api_key: &str, cards: &[String], load: &Load) {
    const MAX_REQUESTS: usize = 10_000;
    for n in 0..MAX_REQUESTS {
        if load.killed.load(Ordering::SeqCst) {
            return;
        }
        let card = &cards[(worker * 7 + n * 13) % cards.len()];
        let operation = if (worker + n).is_multiple_of(2) {
            "redeem"
        } else {
            "load"
        };
        let path = format!("/v1/cards/{card}/{operation}");
        load.sent.fetch_add(1, Ordering::SeqCst);
        load.in_flight.fetch_add(1, Ordering::SeqCst);
        let answer = server
            .try_post(api_key, &path, &json!({"amount": 100}), None)
            .await;
        load.in_flight.fetch_sub(1, Ordering::SeqCst);
        match answer {
            Ok(answer) if answer.status == 200 => {
                load.acknowledged
                    .lock()
                    .expect("lock")
                    .push(Acknowledged { body: answer.body });
            }
            Ok(answer) => load
                .problems
                .lock()
                .expect("lock")
                .push(format!("POST {path}: {} {}", answer.status, answer.text)),
            Err(error) => {
                if load.killed.load(Ordering::SeqCst) {
                    load.unanswered.fetch_add(1, Ordering::SeqCst);
                } else {
                    load.problems
                        .lock()
                        .expect("lock")
                        .push(format!("POST {path} before the kill: {error}"));
                }
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs GIFTD_TEST_PG_URL, a PostgreSQL server"]
async fn kill_minus_nine_under_load_loses_no_acknowledged_redemption() {
    const TEST: &str = "kill_minus_nine_under_load_loses_no_acknowledged_redemption";
    const CARDS: usize = 40;
    const WORKERS: usize = 48;
    /// The kill comes once this many requests were acknowledged, or after KILL_AFTER at most.
    const KILL_AT_ACKNOWLEDGED: usize = 400;
    const KILL_AFTER: Duration = Duration::from_secs(8);
    let admin_url = postgres(TEST);
    let _one_at_a_time = SERIAL.lock().await;
    let started = Instant::now();
    let mut cluster = Cluster::start(&admin_url, &[]).await;
    let program = cluster.program().await;
    let cards = cluster.cards(&program, CARDS, 1_000_000).await;

    let load = Load::default();
    let load_started = Instant::now();
    let workers =
        join_all((0..WORKERS).map(|worker| load_worker(worker, &cluster.a, &cluster.api_key, &cards, &load)));
    let killer = async {
        while load.acknowledged_count() < KILL_AT_ACKNOWLEDGED && load_started.elapsed() < KILL_AFTER {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        load.killed.store(true, Ordering::SeqCst);
        let in_flight = load.in_flight.load(Ordering::SeqCst);
        cluster.a.kill_minus_nine();
        (in_flight, load_started.elapsed())
    };
    let (_, (in_flight_at_kill, killed_after)) =
        tokio::time::timeout(Duration::from_secs(40), async { tokio::join!(workers, killer) })
            .await
            .expect("the load ends soon after the kill");
    let status = cluster.a.wait_for_exit().await;
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "server a ended with {status}");
    }

    let problems = load.problems.lock().expect("lock").clone();
    let acknowledged = std::mem::take(&mut *load.acknowledged.lock().expect("lock"));
    assert!(
        problems.is_empty(),
        "{} failed request(s) before the kill, first ones:\n{}\n{}",
        problems.len(),
        problems[..problems.len().min(20)].join("\n"),
        cluster.a.log_excerpt()
    );
    assert!(
        acknowledged.len() >= 50,
        "the load hardly ran: {} acknowledged",
        acknowledged.len()
    );
    assert!(
        in_flight_at_kill > 0,
        "no request was in flight when the server was killed"
    );

    // A new process on the same database; `b` never stopped.
    let mut restarted = Server::spawn("a-restarted", &cluster.database.url, cluster.dir.path(), &[]);
    restarted.wait_ready().await;
    let killed_server = std::mem::replace(&mut cluster.a, restarted);
    let summary = cluster.assert_verify_passes().await;

    let paths: Vec<String> = acknowledged
        .iter()
        .map(|ack| {
            format!(
                "/v1/transactions/{}",
                ack.body["id"].as_str().unwrap_or("missing")
            )
        })
        .collect();
    let mut missing = Vec::new();
    for server in [&cluster.a, &cluster.b] {
        for (ack, found) in acknowledged.iter().zip(cluster.get_all(server, &paths).await) {
            let same = [
                "id",
                "type",
                "card_id",
                "amount",
                "balance_before",
                "balance_after",
                "created_at",
            ]
            .iter()
            .all(|field| found.body[field] == ack.body[field]);
            if found.status != 200 || !same {
                missing.push(format!(
                    "via {}: acknowledged {} but found {} {}",
                    server.name, ack.body, found.status, found.text
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged transaction(s) lost or changed, first ones:\n{}\n{}{}",
        missing.len(),
        missing[..missing.len().min(20)].join("\n"),
        killed_server.log_excerpt(),
        cluster.logs()
    );

    // The restarted process serves writes on the same cards.
    let redeemed = cluster
        .a
        .post(
            &cluster.api_key,
            &format!("/v1/cards/{}/redeem", cards[0]),
            json!({"amount": 100}),
        )
        .await;
    cluster.expect(&redeemed, 200, "redeem through the restarted server");
    cluster.assert_verify_passes().await;
    cluster.check_logs(&[&cluster.a, &cluster.b]);
    eprintln!(
        "{TEST}: killed after {killed_after:.2?} with {in_flight_at_kill} request(s) in flight; \
         {} sent, {} acknowledged (all found after the restart), {} unanswered; {}; total {:.2?}",
        load.sent.load(Ordering::SeqCst),
        acknowledged.len(),
        load.unanswered.load(Ordering::SeqCst),
        summary.lines().next().unwrap_or_default(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs GIFTD_TEST_PG_URL, a PostgreSQL server"]
async fn the_postgres_ledger_refuses_updates_deletes_and_truncates() {
    const TEST: &str = "the_postgres_ledger_refuses_updates_deletes_and_truncates";
    let admin_url = postgres(TEST);
    let _one_at_a_time = SERIAL.lock().await;
    let started = Instant::now();
    let cluster = Cluster::start(&admin_url, &[]).await;
    let program = cluster.program().await;
    let cards = cluster.cards(&program, 4, 5000).await;
    for (i, card) in cards.iter().enumerate() {
        let server = cluster.server(i);
        let redeemed = server
            .post(
                &cluster.api_key,
                &format!("/v1/cards/{card}/redeem"),
                json!({"amount": 1200}),
            )
            .await;
        cluster.expect(&redeemed, 200, "redeem");
        let loaded = cluster
            .server(i + 1)
            .post(
                &cluster.api_key,
                &format!("/v1/cards/{card}/load"),
                json!({"amount": 300}),
            )
            .await;
        cluster.expect(&loaded, 200, "load");
        let hold = server
            .post(
                &cluster.api_key,
                &format!("/v1/cards/{card}/holds"),
                json!({"amount": 500}),
            )
            .await;
        cluster.expect(&hold, 201, "place a hold");
    }

    let mut connection = cluster.raw_connection().await;
    const LEDGER: &str = "SELECT \
        (SELECT count(*) FROM transactions), \
        (SELECT count(*) FROM postings), \
        (SELECT md5(COALESCE(string_agg(CAST(t AS TEXT), ',' ORDER BY seq), '')) FROM transactions t), \
        (SELECT md5(COALESCE(string_agg(CAST(p AS TEXT), ',' ORDER BY id), '')) FROM postings p)";
    let before: (i64, i64, String, String) = sqlx::query_as(LEDGER)
        .fetch_one(&mut connection)
        .await
        .expect("read the ledger");
    assert!(
        before.0 >= 12 && before.1 >= 24,
        "activity reached the ledger: {before:?}"
    );

    for statement in [
        "UPDATE transactions SET amount = amount + 1",
        "DELETE FROM postings",
        "TRUNCATE postings",
        "UPDATE postings SET amount = -amount",
        "DELETE FROM transactions WHERE type = 'redemption'",
        "TRUNCATE transactions CASCADE",
    ] {
        let refused = sqlx::raw_sql(statement)
            .execute(&mut connection)
            .await
            .map(|done| done.rows_affected());
        match refused {
            Ok(rows) => panic!("`{statement}` was accepted ({rows} rows): the ledger is not append-only"),
            Err(error) => assert!(
                error.to_string().contains("append-only"),
                "`{statement}` failed, but not for being append-only: {error}"
            ),
        }
    }

    let after: (i64, i64, String, String) = sqlx::query_as(LEDGER)
        .fetch_one(&mut connection)
        .await
        .expect("read the ledger");
    let _ = connection.close().await;
    assert_eq!(after, before, "the ledger changed");
    cluster.assert_verify_passes().await;
    // The servers still work on the untouched ledger.
    let card = cluster
        .b
        .get(&cluster.api_key, &format!("/v1/cards/{}", cards[0]))
        .await;
    let card = cluster.expect(&card, 200, "GET a card");
    assert_eq!(
        (&card["balance"], &card["held"]),
        (&json!(4100), &json!(500)),
        "{card}"
    );
    cluster.check_logs(&[&cluster.a, &cluster.b]);
    eprintln!(
        "{TEST}: {} transactions and {} postings left untouched; total {:.2?}",
        before.0,
        before.1,
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs GIFTD_TEST_PG_URL, a PostgreSQL server"]
async fn checkouts_racing_over_two_processes_never_overdraw_a_gift_card() {
    const TEST: &str = "checkouts_racing_over_two_processes_never_overdraw_a_gift_card";
    const CHECKOUTS: usize = 60;
    const BALANCE: i64 = 1000;
    const AMOUNT: i64 = 100;
    let admin_url = postgres(TEST);
    let _one_at_a_time = SERIAL.lock().await;
    let cluster = Cluster::start(&admin_url, &[]).await;
    let program = cluster.program().await;
    let card = cluster.cards(&program, 1, BALANCE).await.remove(0);

    // Each checkout charges a simulated card and takes AMOUNT from the one gift card; half go
    // to each process. The gift card can pay for BALANCE / AMOUNT of them.
    let answers = join_all((0..CHECKOUTS).map(|i| {
        let cluster = &cluster;
        let card = &card;
        async move {
            let body = json!({
                "amount": AMOUNT + 500, "currency": "USD", "intent": "capture",
                "gift_cards": [{"card_id": card, "amount": AMOUNT}],
                "payment_method": {"type": "card", "number": "4242424242424242"},
            });
            cluster
                .server(i)
                .post(&cluster.api_key, "/v1/checkouts", body)
                .await
        }
    }))
    .await;
    let mut succeeded = 0;
    for (i, answer) in answers.iter().enumerate() {
        let checkout = cluster.expect(answer, 201, "POST /v1/checkouts");
        let payment = checkout["tenders"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "card"))
            .expect("a card tender");
        let sim = cluster
            .server(i + 1)
            .get(
                &cluster.api_key,
                &format!("/v1/simulator/payments/{}", payment["id"].as_str().expect("id")),
            )
            .await;
        let sim = cluster.expect(&sim, 200, "GET the simulated payment");
        match checkout["intent_outcome"].as_str() {
            Some("succeeded") => {
                succeeded += 1;
                assert_eq!(
                    (sim["captured_amount"].as_i64(), sim["refunded_amount"].as_i64()),
                    (Some(500), Some(0))
                );
            }
            Some("failed") => {
                assert_eq!(payment["status"], "refunded", "{checkout}");
                assert_eq!(
                    (sim["captured_amount"].as_i64(), sim["refunded_amount"].as_i64()),
                    (Some(500), Some(500))
                );
            }
            other => panic!("checkout {i} ended {other:?}: {checkout}"),
        }
    }
    assert_eq!(succeeded as i64, BALANCE / AMOUNT, "{}", cluster.logs());
    let answer = cluster
        .a
        .get(&cluster.api_key, &format!("/v1/cards/{card}"))
        .await;
    let after = cluster.expect(&answer, 200, "GET the gift card");
    assert_eq!(
        (after["balance"].as_i64(), after["available"].as_i64()),
        (Some(0), Some(0))
    );
    cluster.assert_verify_passes().await;
}
