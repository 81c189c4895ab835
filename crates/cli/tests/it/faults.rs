//! Faults survived, with real processes: PostgreSQL restarted under a redemption load, the
//! primary lost and its synchronous standby promoted, the SQLite volume full, and a webhook
//! receiver that never answers (on SQLite, or on PostgreSQL with `GIFTD_TEST_BACKEND=postgres`).
//!
//! Each PostgreSQL test runs a cluster of its own (`initdb` into a temporary folder, on a free
//! port, as the `postgres` user when the test runs as root), so that stopping, killing or
//! promoting it disturbs no other test; the server binaries are found under
//! `/usr/lib/postgresql/<version>/bin`. The full-volume test mounts a small tmpfs, which needs
//! root. So these tests are ignored with what they need (`#[ignore = "needs …"]`); `cargo test --
//! --include-ignored` runs them (CI does, as root). Every process started here is stopped by a
//! guard, even when a test fails, and every wait is bounded.
//!
//! Under load, every request carries an Idempotency-Key. An answer of 200 is an acknowledged
//! redemption; a 503 is the clean refusal an outage must give; any other answer fails the test.
//! Afterwards every request that got a 503 (or no answer) is sent again with its key until it is
//! answered, and each card's balance must equal its first value less exactly the redemptions
//! acknowledged: nothing acknowledged was lost and nothing was applied twice. `giftd verify`
//! must pass on the database that remains.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

const MASTER_KEY: &str = "7c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d";
/// How long a server may take to answer `/readyz` after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a CLI command or a PostgreSQL tool may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Longer than the store's wait for a database connection (10 s), after which an outage is
/// answered with 503.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(25);
/// How long giftd may take to serve again once the database is back.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Clients redeeming at once during a fault.
const LOAD_CLIENTS: usize = 8;
/// Cards the load spreads over, and the value each starts with (minor units).
const CARDS: usize = 8;
const CARD_VALUE: i64 = 10_000_000;
/// Load before and after each fault.
const STEADY_LOAD: Duration = Duration::from_secs(2);
/// How long an outage lasts once giftd has reported it.
const OUTAGE: Duration = Duration::from_secs(2);
/// The PostgreSQL pool of a giftd under test.
const POOL_SIZE: &str = "6";

/// One fault test at a time: each starts PostgreSQL clusters or mounts, and loads the CPU.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---- processes ----

/// The `giftd` binary with no `GIFTD_*` or `RUST_LOG` setting inherited from the caller.
fn giftd() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_giftd"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("GIFTD_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command.env("GIFTD_MASTER_KEY", MASTER_KEY);
    command
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address").port()
}

/// Runs a command to its end within [`COMMAND_TIMEOUT`]; its output.
fn run(command: &mut Command) -> Output {
    let described = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {described}: {e}"));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    while child.try_wait().expect("poll a command").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{described} did not finish within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    child.wait_with_output().expect("collect a command's output")
}

/// Runs a command that must succeed; its standard output.
fn run_ok(command: &mut Command) -> String {
    let described = format!("{command:?}");
    let output = run(command);
    assert!(
        output.status.success(),
        "{described} failed with {}:\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `giftd merchants create` against `database` (a URL, or the data folder's SQLite when
/// `None`); the API key it printed.
fn create_merchant(data_dir: &Path, database: Option<&str>) -> String {
    let mut command = giftd();
    command.args([
        "merchants",
        "create",
        "Fault Tolerant Bakery",
        "--json",
        "--data-dir",
    ]);
    command.arg(data_dir);
    if let Some(url) = database {
        command.args(["--database-url", url]);
    }
    let printed: Value =
        serde_json::from_str(run_ok(&mut command).trim()).expect("merchants create prints JSON");
    printed["api_key"].as_str().expect("an api_key").to_owned()
}

/// `giftd verify` must pass.
fn assert_verify_passes(data_dir: &Path, database: Option<&str>) {
    let mut command = giftd();
    command.args(["verify", "--data-dir"]).arg(data_dir);
    if let Some(url) = database {
        command.args(["--database-url", url]);
    }
    let printed = run_ok(&mut command);
    assert!(printed.contains("ledger OK"), "giftd verify printed:\n{printed}");
}

/// A running `giftd serve`; dropping it kills the process.
struct Server {
    child: Child,
    base: String,
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

/// An HTTP answer, or none (the connection failed or the client timed out).
type Answer = Result<(u16, Value), String>;

impl Server {
    /// Starts `giftd serve` with `args` and waits until `/readyz` answers 200.
    async fn start(dir: &Path, args: &[&str]) -> Self {
        let port = free_port();
        let log_path = dir.join(format!("serve-{port}.log"));
        let log = File::create(&log_path).expect("create the log file");
        let child = giftd()
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start giftd serve");
        let mut server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log_path,
            client: giftd_testkit::http_client_builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .expect("an HTTP client"),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while server.ready().await != Some(200) {
            if let Some(status) = server.child.try_wait().expect("poll the server") {
                panic!("giftd serve exited with {status}; log:\n{}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "giftd serve was not ready within {START_TIMEOUT:?}; log:\n{}",
                server.log()
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `/readyz`'s status, or `None` when it did not answer within 3 seconds (it waits at
    /// most 2 for the database).
    async fn ready(&self) -> Option<u16> {
        self.client
            .get(format!("{}/readyz", self.base))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .ok()
            .map(|response| response.status().as_u16())
    }

    /// Polls `/readyz` until it answers `status`, for at most `within`.
    async fn wait_for_readyz(&self, status: u16, within: Duration) {
        let deadline = Instant::now() + within;
        while self.ready().await != Some(status) {
            assert!(
                Instant::now() < deadline,
                "/readyz did not answer {status} within {within:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    async fn post(&self, key: &str, path: &str, body: &Value, idempotency_key: Option<&str>) -> Answer {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(body);
        if let Some(idempotency_key) = idempotency_key {
            request = request.header("Idempotency-Key", idempotency_key);
        }
        self.send(request).await
    }

    async fn get(&self, key: &str, path: &str) -> Answer {
        self.send(self.client.get(format!("{}{path}", self.base)).bearer_auth(key))
            .await
    }

    /// A POST that must answer `status`; its body.
    async fn post_expecting(&self, key: &str, path: &str, body: Value, status: u16) -> Value {
        match self.post(key, path, &body, None).await {
            Ok((got, answer)) if got == status => answer,
            other => panic!(
                "POST {path} answered {other:?}, not {status}; log:\n{}",
                self.log()
            ),
        }
    }

    async fn balance(&self, key: &str, card: &str) -> i64 {
        match self.get(key, &format!("/v1/cards/{card}")).await {
            Ok((200, body)) => body["balance"].as_i64().expect("a balance"),
            other => panic!("GET card {card} answered {other:?}; log:\n{}", self.log()),
        }
    }

    /// A redemption of 1 from card `n` (of `cards`, round the list) with its own key.
    async fn redeem_one(
        &self,
        key: &str,
        cards: &[String],
        idempotency_key: String,
        n: usize,
    ) -> (Redemption, Answer) {
        let redemption = Redemption {
            card: n % cards.len(),
            amount: 1,
            idempotency_key,
        };
        let answer = self
            .post(
                key,
                &format!("/v1/cards/{}/redeem", cards[redemption.card]),
                &json!({"amount": redemption.amount}),
                Some(&redemption.idempotency_key),
            )
            .await;
        (redemption, answer)
    }

    /// `CARDS` cards of `CARD_VALUE` each on a new program; their ids.
    async fn funded_cards(&self, key: &str) -> Vec<String> {
        let program = self
            .post_expecting(
                key,
                "/v1/programs",
                json!({"name": "Outage Proof", "currency": "USD"}),
                201,
            )
            .await;
        let program = program["id"].as_str().expect("a program id").to_owned();
        let mut cards = Vec::with_capacity(CARDS);
        for _ in 0..CARDS {
            let card = self
                .post_expecting(
                    key,
                    "/v1/cards",
                    json!({"program_id": program, "kind": "virtual", "amount": CARD_VALUE}),
                    201,
                )
                .await;
            cards.push(card["id"].as_str().expect("a card id").to_owned());
        }
        cards
    }
}

// ---- a private PostgreSQL cluster ----

/// A PostgreSQL server binary (`initdb`, `pg_ctl`, ...) of the newest version installed.
fn postgres_tool(tool: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries under /usr/lib/postgresql (Debian's postgresql package)")
        .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin").join(tool)))
        .filter(|path| path.exists())
        .collect();
    versions.sort_by_key(|path| {
        path.components()
            .nth(3)
            .and_then(|version| version.as_os_str().to_string_lossy().parse::<u32>().ok())
    });
    versions
        .pop()
        .unwrap_or_else(|| panic!("no {tool} under /usr/lib/postgresql/*/bin"))
}

fn running_as_root() -> bool {
    run_ok(Command::new("id").arg("-u")).trim() == "0"
}

/// A PostgreSQL cluster in a folder of its own, on its own port. PostgreSQL refuses to run as
/// root, so as root its tools run as the `postgres` user.
struct Cluster {
    data: PathBuf,
    port: u16,
    _folder: TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = run(&mut self.pg_ctl(&["stop", "-m", "immediate"]));
    }
}

impl Cluster {
    /// A command running a PostgreSQL tool as the user that owns the cluster.
    fn tool(tool: &str) -> Command {
        if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(postgres_tool(tool));
            command
        } else {
            Command::new(postgres_tool(tool))
        }
    }

    /// A folder the cluster's user may write.
    fn folder() -> TempDir {
        let folder = tempfile::tempdir().expect("a temporary folder");
        if running_as_root() {
            run_ok(Command::new("chown").arg("postgres:postgres").arg(folder.path()));
        }
        folder
    }

    /// A new cluster (trust authentication, user `postgres`), started.
    fn primary() -> Self {
        let folder = Self::folder();
        let data = folder.path().join("data");
        run_ok(
            Self::tool("initdb")
                .args([
                    "--username",
                    "postgres",
                    "--auth",
                    "trust",
                    "--no-sync",
                    "--encoding",
                    "UTF8",
                ])
                .arg("-D")
                .arg(&data),
        );
        let cluster = Self {
            data,
            port: free_port(),
            _folder: folder,
        };
        cluster.start();
        cluster
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`), started.
    fn standby_of(primary: &Cluster) -> Self {
        let folder = Self::folder();
        let data = folder.path().join("data");
        run_ok(
            Self::tool("pg_basebackup")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &primary.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .args(["-X", "stream", "-R", "-D"])
                .arg(&data),
        );
        let standby = Self {
            data,
            port: free_port(),
            _folder: folder,
        };
        standby.start();
        standby
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut command = Self::tool("pg_ctl");
        command.arg("-D").arg(&self.data).args(args);
        command
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=40 -c shared_buffers=32MB \
             -c max_wal_senders=4 -c wal_level=replica -c hot_standby=on",
            self.port,
            self.data.parent().expect("the cluster's folder").display()
        );
        let log = self
            .data
            .parent()
            .expect("the cluster's folder")
            .join("postgres.log");
        run_ok(
            self.pg_ctl(&["-w", "-t", "60", "-o", &options, "-l"])
                .arg(&log)
                .arg("start"),
        );
    }

    /// `pg_ctl stop` in `mode`: `fast` is a clean shutdown, `immediate` is a crash.
    fn stop(&self, mode: &str) {
        run_ok(&mut self.pg_ctl(&["-w", "-t", "60", "-m", mode, "stop"]));
    }

    fn promote(&self) {
        run_ok(&mut self.pg_ctl(&["-w", "-t", "60", "promote"]));
    }

    fn psql(&self, sql: &str) -> String {
        run_ok(
            Self::tool("psql")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"])
                .args([
                    "-d",
                    "postgres",
                    "-X",
                    "-A",
                    "-t",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    sql,
                ]),
        )
        .trim()
        .to_owned()
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

// ---- load ----

/// A redemption as the load sent it.
#[derive(Debug, Clone)]
struct Redemption {
    card: usize,
    amount: i64,
    idempotency_key: String,
}

/// What a load saw.
#[derive(Debug, Default)]
struct Tally {
    /// Answered 200.
    acknowledged: Vec<Redemption>,
    /// Answered 503 (or not at all): their outcome is settled by sending them again.
    unsettled: Vec<Redemption>,
    /// Answers counted by status, for the outage's refusals.
    statuses: BTreeMap<u16, usize>,
    /// Requests that got no answer, with why.
    unanswered: Vec<String>,
    /// Answers an outage must never give.
    unexpected: Vec<String>,
}

/// Redeems from `LOAD_CLIENTS` clients until `stop` is set; every request has its own key.
async fn redeem_until(
    server: Arc<Server>,
    key: Arc<String>,
    cards: Arc<Vec<String>>,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    label: &'static str,
) {
    let clients = (0..LOAD_CLIENTS).map(|client| {
        let (server, key, cards, stop, tally) = (
            Arc::clone(&server),
            Arc::clone(&key),
            Arc::clone(&cards),
            Arc::clone(&stop),
            Arc::clone(&tally),
        );
        tokio::spawn(async move {
            let mut n = 0_usize;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let redemption = Redemption {
                    card: (client + n) % cards.len(),
                    amount: i64::try_from(n % 7 + 1).expect("a small amount"),
                    idempotency_key: format!("{label}-{client}-{n}"),
                };
                let answer = server
                    .post(
                        &key,
                        &format!("/v1/cards/{}/redeem", cards[redemption.card]),
                        &json!({"amount": redemption.amount}),
                        Some(&redemption.idempotency_key),
                    )
                    .await;
                let refused = matches!(answer, Ok((503, _)) | Err(_));
                {
                    let mut seen = tally.lock().expect("the tally");
                    match answer {
                        Ok((200, _)) => seen.acknowledged.push(redemption),
                        Ok((503, body)) => {
                            *seen.statuses.entry(503).or_default() += 1;
                            if body["error"]["code"] != "unavailable" {
                                seen.unexpected.push(format!("503 with {body}"));
                            }
                            seen.unsettled.push(redemption);
                        }
                        Ok((status, body)) => seen.unexpected.push(format!("{status} {body}")),
                        Err(why) => {
                            seen.unanswered.push(why);
                            seen.unsettled.push(redemption);
                        }
                    }
                }
                if refused {
                    // As a client should: wait a little before the next request.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        })
    });
    for client in futures::future::join_all(clients).await {
        client.expect("a load client");
    }
}

/// A load running in the background until [`Load::finish`].
struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    running: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(server: &Arc<Server>, key: &str, cards: &[String], label: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let running = tokio::spawn(redeem_until(
            Arc::clone(server),
            Arc::new(key.to_owned()),
            Arc::new(cards.to_vec()),
            Arc::clone(&stop),
            Arc::clone(&tally),
            label,
        ));
        Self { stop, tally, running }
    }

    fn acknowledged(&self) -> usize {
        self.tally.lock().expect("the tally").acknowledged.len()
    }

    fn answered_503(&self) -> usize {
        self.tally
            .lock()
            .expect("the tally")
            .statuses
            .get(&503)
            .copied()
            .unwrap_or(0)
    }

    async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        self.running.await.expect("the load");
        Arc::into_inner(self.tally)
            .expect("the load's clients have ended")
            .into_inner()
            .expect("the tally")
    }
}

/// Waits until the load has `count` more acknowledged redemptions than `before`.
async fn wait_for_acknowledged(load: &Load, before: usize, count: usize, server: &Server, what: &str) {
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    while load.acknowledged() < before + count {
        assert!(
            Instant::now() < deadline,
            "{what}: fewer than {count} redemptions acknowledged within {RECOVERY_TIMEOUT:?}; log:\n{}",
            server.log()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Sends every unsettled redemption again with its key until it is answered 200, then checks
/// that each card lost exactly what was acknowledged.
async fn settle_and_check_balances(server: &Server, key: &str, cards: &[String], mut tally: Tally) {
    assert!(
        tally.unexpected.is_empty(),
        "answers an outage must not give: {:?}\nlog:\n{}",
        &tally.unexpected[..tally.unexpected.len().min(10)],
        server.log()
    );
    for redemption in std::mem::take(&mut tally.unsettled) {
        let path = format!("/v1/cards/{}/redeem", cards[redemption.card]);
        let body = json!({"amount": redemption.amount});
        match server
            .post(key, &path, &body, Some(&redemption.idempotency_key))
            .await
        {
            Ok((200, _)) => tally.acknowledged.push(redemption),
            other => panic!(
                "a redemption sent again with its key after the fault answered {other:?}; log:\n{}",
                server.log()
            ),
        }
    }
    let mut spent = vec![0_i64; cards.len()];
    for redemption in &tally.acknowledged {
        spent[redemption.card] += redemption.amount;
    }
    for (card, spent) in cards.iter().zip(spent) {
        assert_eq!(
            server.balance(key, card).await,
            CARD_VALUE - spent,
            "card {card}: its balance must be its value less exactly the redemptions acknowledged"
        );
    }
}

// ---- PostgreSQL restarted ----

/// giftd on `url` with a merchant and its cards, under a redemption load that has run steadily
/// for a while: the server, its API key, the cards and the load.
async fn serve_under_load(
    dir: &Path,
    url: &str,
    label: &'static str,
) -> (Arc<Server>, String, Vec<String>, Load) {
    let key = create_merchant(dir, Some(url));
    let data_dir = dir.to_string_lossy();
    let server = Arc::new(
        Server::start(
            dir,
            &[
                "--database-url",
                url,
                "--pg-pool-size",
                POOL_SIZE,
                "--data-dir",
                &data_dir,
            ],
        )
        .await,
    );
    let cards = server.funded_cards(&key).await;
    let load = Load::start(&server, &key, &cards, label);
    wait_for_acknowledged(&load, 0, 50, &server, label).await;
    tokio::time::sleep(STEADY_LOAD).await;
    (server, key, cards, load)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL server binaries under /usr/lib/postgresql (and root or the postgres user)"]
async fn postgres_restarted_under_load_is_a_503_outage_then_service_resumes_losing_nothing() {
    let _serial = SERIAL.lock().await;
    let database = Cluster::primary();
    let url = format!("postgres://postgres@{}/postgres", database.host());
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (server, key, cards, load) = serve_under_load(dir.path(), &url, "restart").await;

    database.stop("fast");
    server.wait_for_readyz(503, Duration::from_secs(10)).await;
    let before_outage = load.answered_503();
    tokio::time::sleep(OUTAGE).await;
    let acknowledged_during = load.acknowledged();
    database.start();

    server.wait_for_readyz(200, RECOVERY_TIMEOUT).await;
    wait_for_acknowledged(&load, acknowledged_during, 50, &server, "after the restart").await;
    tokio::time::sleep(STEADY_LOAD).await;
    let outage_503s = load.answered_503() - before_outage;
    let tally = load.finish().await;
    eprintln!(
        "restart: {} acknowledged, {} answered 503 ({outage_503s} once /readyz said so), {} without an answer",
        tally.acknowledged.len(),
        tally.statuses.get(&503).copied().unwrap_or(0),
        tally.unanswered.len()
    );
    assert!(
        outage_503s > 0 || tally.statuses.get(&503).is_some_and(|n| *n > 0),
        "requests during the outage are answered 503; saw {:?}",
        tally.statuses
    );
    assert!(
        tally.unanswered.is_empty(),
        "every request got an answer during the outage: {:?}",
        &tally.unanswered[..tally.unanswered.len().min(5)]
    );
    settle_and_check_balances(&server, &key, &cards, tally).await;
    assert!(
        !server.log().contains("panicked"),
        "giftd panicked:\n{}",
        server.log()
    );
    assert_verify_passes(dir.path(), Some(&url));
}

// ---- PostgreSQL failover ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL server binaries under /usr/lib/postgresql (and root or the postgres user)"]
async fn the_primary_lost_under_load_and_its_synchronous_standby_promoted_giftd_follows_without_a_restart() {
    let _serial = SERIAL.lock().await;
    let primary = Cluster::primary();
    let standby = Cluster::standby_of(&primary);
    // Every commit waits until the standby has it: what the primary acknowledged survives it.
    primary.psql("ALTER SYSTEM SET synchronous_standby_names = '*'");
    primary.psql("SELECT pg_reload_conf()");
    let deadline = Instant::now() + START_TIMEOUT;
    while primary.psql("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") != "1" {
        assert!(
            Instant::now() < deadline,
            "the standby did not become synchronous"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
    let url = format!(
        "postgres://postgres@{},{}/postgres?target_session_attrs=read-write",
        primary.host(),
        standby.host()
    );
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (server, key, cards, load) = serve_under_load(dir.path(), &url, "failover").await;

    // The primary crashes (no shutdown), then the standby is promoted.
    primary.stop("immediate");
    let acknowledged_before = load.acknowledged();
    tokio::time::sleep(OUTAGE).await;
    standby.promote();

    server.wait_for_readyz(200, RECOVERY_TIMEOUT).await;
    wait_for_acknowledged(&load, acknowledged_before, 50, &server, "after the failover").await;
    tokio::time::sleep(STEADY_LOAD).await;
    let tally = load.finish().await;
    eprintln!(
        "failover: {} acknowledged, {} answered 503, {} without an answer",
        tally.acknowledged.len(),
        tally.statuses.get(&503).copied().unwrap_or(0),
        tally.unanswered.len()
    );
    assert!(
        tally.statuses.get(&503).is_some_and(|n| *n > 0),
        "requests while no primary was there are answered 503; saw {:?}",
        tally.statuses
    );
    settle_and_check_balances(&server, &key, &cards, tally).await;
    assert!(
        server.log().contains("the database host changed"),
        "giftd logs that it moved to the promoted standby; log:\n{}",
        server.log()
    );
    assert!(
        !server.log().contains("panicked"),
        "giftd panicked:\n{}",
        server.log()
    );
    let promoted = format!("postgres://postgres@{}/postgres", standby.host());
    assert_verify_passes(dir.path(), Some(&promoted));
}

// ---- the SQLite volume full ----

/// The size of the tmpfs the SQLite test's data folder lives on.
const VOLUME_BYTES: u64 = 8 << 20;
/// Redemptions sent at most, one after another, before the full volume must refuse one.
const MAX_WRITES_UNTIL_FULL: usize = 5_000;

/// A tmpfs of `bytes` mounted on a temporary folder (needs root); unmounted when dropped.
struct Volume {
    folder: TempDir,
}

impl Volume {
    fn mount(bytes: u64) -> Self {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let mounted = run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "giftd-test"])
            .arg(folder.path()));
        assert!(
            mounted.status.success(),
            "mounting a tmpfs needs root (CI runs as root): {}",
            String::from_utf8_lossy(&mounted.stderr)
        );
        Self { folder }
    }

    fn path(&self) -> &Path {
        self.folder.path()
    }

    /// Writes `file` until the volume has no byte left.
    fn fill(&self, file: &Path) {
        use std::io::Write;
        let mut filler = File::create(file).expect("create the filler");
        for chunk in [1 << 16, 1 << 12, 1 << 9, 1] {
            let bytes = vec![0xA5_u8; chunk];
            while filler.write_all(&bytes).is_ok() {}
        }
        let _ = filler.sync_all();
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = run(Command::new("umount").arg("-l").arg(self.folder.path()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs root, to mount a tmpfs"]
async fn a_full_sqlite_volume_refuses_writes_with_503_keeps_reads_and_writes_again_once_space_is_freed() {
    let _serial = SERIAL.lock().await;
    let volume = Volume::mount(VOLUME_BYTES);
    let data = volume.path().join("data");
    let logs = tempfile::tempdir().expect("a temporary folder");
    let key = create_merchant(&data, None);
    let server = Server::start(logs.path(), &["--data-dir", &data.to_string_lossy()]).await;
    let cards = server.funded_cards(&key).await;

    let filler = volume.path().join("filler");
    volume.fill(&filler);
    // The log may still have room it allocated before; the volume refuses soon after.
    let mut tally = Tally::default();
    let mut refusal = None;
    for n in 0..MAX_WRITES_UNTIL_FULL {
        let (redemption, answer) = server.redeem_one(&key, &cards, format!("full-{n}"), n).await;
        match answer {
            Ok((200, _)) => tally.acknowledged.push(redemption),
            Ok((503, body)) => {
                tally.unsettled.push(redemption);
                refusal = Some(body);
                break;
            }
            other => panic!(
                "a write to a full volume answered {other:?}; log:\n{}",
                server.log()
            ),
        }
    }
    let refusal = refusal.unwrap_or_else(|| {
        panic!(
            "{MAX_WRITES_UNTIL_FULL} redemptions on a full volume were all accepted; log:\n{}",
            server.log()
        )
    });
    assert_eq!(refusal["error"]["code"], "unavailable", "{refusal}");
    eprintln!(
        "full volume: {} redemptions accepted before the first 503: {refusal}",
        tally.acknowledged.len()
    );

    // Reads go on while the volume is full.
    for card in &cards {
        for path in [
            format!("/v1/cards/{card}"),
            format!("/v1/cards/{card}/transactions"),
        ] {
            let answer = server.get(&key, &path).await;
            assert!(
                matches!(answer, Ok((200, _))),
                "GET {path} on a full volume answered {answer:?}"
            );
        }
    }
    // And writes still fail cleanly, however many.
    for n in 0..20 {
        let (redemption, answer) = server
            .redeem_one(&key, &cards, format!("still-full-{n}"), n)
            .await;
        match answer {
            Ok((503, _)) => tally.unsettled.push(redemption),
            Ok((200, _)) => tally.acknowledged.push(redemption),
            other => panic!(
                "a write to a full volume answered {other:?}; log:\n{}",
                server.log()
            ),
        }
    }

    std::fs::remove_file(&filler).expect("remove the filler");
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    for n in 0.. {
        let (redemption, answer) = server.redeem_one(&key, &cards, format!("freed-{n}"), n).await;
        match answer {
            Ok((200, _)) => {
                tally.acknowledged.push(redemption);
                break;
            }
            Ok((503, _)) => tally.unsettled.push(redemption),
            other => panic!(
                "a write after space was freed answered {other:?}; log:\n{}",
                server.log()
            ),
        }
        assert!(
            Instant::now() < deadline,
            "writes did not resume within {RECOVERY_TIMEOUT:?} of space being freed; log:\n{}",
            server.log()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    settle_and_check_balances(&server, &key, &cards, tally).await;
    assert!(
        !server.log().contains("panicked"),
        "giftd panicked:\n{}",
        server.log()
    );
    drop(server);

    assert_verify_passes(&data, None);
    let database = format!("sqlite://{}", data.join("giftd.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&database)
        .await
        .expect("open the database");
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .expect("an integrity check");
    assert_eq!(
        integrity, "ok",
        "SQLite's integrity check after the volume was full"
    );
}

// ---- a webhook receiver that never answers ----

/// Accepts connections and never answers; keeps them open until dropped.
struct SilentReceiver {
    url: String,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentReceiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let url = format!("http://{}/hook", listener.local_addr().expect("local address"));
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        Self { url, accepted, task }
    }
}

impl Drop for SilentReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// giftd's timeout for one webhook attempt (docs/OPERATIONS.md).
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts to one endpoint under way before giftd claims no more of its deliveries.
const PER_ENDPOINT: usize = giftd_service::webhooks::MAX_DELIVERIES_IN_FLIGHT_PER_ENDPOINT;
/// Events sent at once to fill the silent receiver's places.
const BURST: usize = PER_ENDPOINT + 4;

/// Waits until `receiver` has `n` events, for at most half an attempt's timeout from `since`.
async fn wait_for_events(
    receiver: &giftd_testkit::receiver::Receiver,
    n: usize,
    since: Instant,
    server: &Server,
) {
    let deadline = since + WEBHOOK_TIMEOUT / 2;
    while receiver.received().len() < n {
        assert!(
            Instant::now() < deadline,
            "the answering receiver had {} of {n} events after {:?} (the silent one holds each \
             attempt for {WEBHOOK_TIMEOUT:?}); log:\n{}",
            receiver.received().len(),
            WEBHOOK_TIMEOUT / 2,
            server.log()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_receiver_that_never_answers_holds_up_no_other_delivery() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let data = dir.path().join("data");
    // On the backend the HTTP suite runs on (GIFTD_TEST_BACKEND), so that both claim queries
    // are exercised.
    let database = if giftd_testkit::testing_postgres() {
        let admin =
            giftd_testkit::test_pg_url().expect("GIFTD_TEST_BACKEND=postgres needs GIFTD_TEST_PG_URL");
        Some(giftd_testkit::PgTestDatabase::create(&admin).await)
    } else {
        None
    };
    let url = database.as_ref().map(|database| database.url.clone());
    let key = create_merchant(&data, url.as_deref());
    let data_dir = data.to_string_lossy();
    let mut args = vec!["--data-dir", &*data_dir];
    if let Some(url) = &url {
        args.extend(["--database-url", url.as_str()]);
    }
    let server = Server::start(dir.path(), &args).await;
    let card = server.funded_cards(&key).await.remove(0);
    let silent = SilentReceiver::start().await;
    let answering = giftd_testkit::receiver::Receiver::start(0).await;
    for url in [&silent.url, &answering.url] {
        server
            .post_expecting(
                &key,
                "/v1/webhook_endpoints",
                json!({"url": url, "event_types": ["card.redeemed"]}),
                201,
            )
            .await;
    }
    let redeem_path = format!("/v1/cards/{card}/redeem");
    // Redeems, then waits until the answering receiver has `n` events in all.
    let redeem = async |n: usize| {
        let started = Instant::now();
        server
            .post_expecting(&key, &redeem_path, json!({"amount": 1}), 200)
            .await;
        wait_for_events(&answering, n, started, &server).await;
        started.elapsed()
    };
    let first = redeem(1).await;
    let deadline = Instant::now() + WEBHOOK_TIMEOUT / 2;
    while silent.accepted.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the silent receiver was never tried");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    // A burst: the silent receiver soon holds as many attempts as one endpoint may.
    let burst = Instant::now();
    for _ in 0..BURST {
        server
            .post_expecting(&key, &redeem_path, json!({"amount": 1}), 200)
            .await;
    }
    wait_for_events(&answering, 1 + BURST, burst, &server).await;
    let deadline = Instant::now() + WEBHOOK_TIMEOUT / 2;
    while silent.accepted.load(Ordering::SeqCst) < PER_ENDPOINT {
        assert!(
            Instant::now() < deadline,
            "the silent receiver got {} attempts, not {PER_ENDPOINT}",
            silent.accepted.load(Ordering::SeqCst)
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    let held = silent.accepted.load(Ordering::SeqCst);
    // While it holds them, the next events reach the other receiver, and none is attempted at
    // the silent one: its deliveries wait, unclaimed, for a place.
    let mut later = Vec::new();
    for n in 2 + BURST..=4 + BURST {
        later.push(redeem(n).await);
    }
    assert_eq!(
        silent.accepted.load(Ordering::SeqCst),
        held,
        "no attempt goes to an endpoint that already has {PER_ENDPOINT} under way"
    );
    eprintln!(
        "delivered to the answering receiver after {first:?}, then {later:?}; {held} attempts held by the silent one"
    );

    // The silent receiver's attempt ends at the timeout and is recorded as one.
    let deadline = Instant::now() + WEBHOOK_TIMEOUT * 2;
    loop {
        let events = match server.get(&key, "/v1/events?limit=100").await {
            Ok((200, body)) => body["data"].as_array().cloned().unwrap_or_default(),
            other => panic!("GET /v1/events answered {other:?}"),
        };
        let oldest = events
            .last()
            .and_then(|event| event["id"].as_str())
            .expect("an event");
        let detail = match server.get(&key, &format!("/v1/events/{oldest}")).await {
            Ok((200, body)) => body,
            other => panic!("GET /v1/events/{oldest} answered {other:?}"),
        };
        let timed_out = detail.to_string().contains("timeout");
        if timed_out {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the silent receiver's attempt was not recorded as timed out; event: {detail}\nlog:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
