//! The real `giftd` binary, run as an operator would: `merchants create`, `serve` (start-up,
//! data folder, master key, logs, graceful shutdown, connections that send nothing or too
//! slowly under a lowered open-file limit), `verify` and `migrate`, each in a fresh temporary
//! folder. Every server started here is killed by a guard, even when a test fails.

use std::fs::File;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use giftd_store::sqlite::SqliteStore;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

/// How long a server may take to answer `/healthz` after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to exit after SIGTERM, or a command to finish.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// The `giftd` binary with no `GIFTD_*` or `RUST_LOG` setting inherited from the caller.
fn giftd() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_giftd"));
    without_inherited_settings(&mut command);
    command
}

/// `giftd` as [`giftd`] gives it, run by util-linux's `prlimit` with `open_files` as both its soft
/// and hard limit on open files (prlimit sets the limit, then runs giftd in its own place, so
/// the child's pid is giftd's).
fn giftd_with_open_file_limit(open_files: u64) -> Command {
    let mut command = Command::new("prlimit");
    command
        .arg(format!("--nofile={open_files}:{open_files}"))
        .arg(env!("CARGO_BIN_EXE_giftd"));
    without_inherited_settings(&mut command);
    command
}

fn without_inherited_settings(command: &mut Command) {
    for variable in [
        "GIFTD_DATA_DIR",
        "GIFTD_LISTEN",
        "GIFTD_MASTER_KEY",
        "GIFTD_DURABILITY",
        "GIFTD_DATABASE_URL",
        "GIFTD_PG_POOL_SIZE",
        "GIFTD_PG_ISOLATION",
        "GIFTD_CONFIG",
        "GIFTD_TLS_CERT",
        "GIFTD_TLS_KEY",
        "GIFTD_LOG_FORMAT",
        "GIFTD_METRICS_LISTEN",
        "GIFTD_CONSOLE_LISTEN",
        "GIFTD_PUBLIC_URL",
        "GIFTD_HEADER_READ_TIMEOUT_SECONDS",
        "GIFTD_IDLE_TIMEOUT_SECONDS",
        "GIFTD_MAX_CONNECTIONS",
        "RUST_LOG",
    ] {
        command.env_remove(variable);
    }
    command.stdin(Stdio::null());
}

/// A port that was free a moment ago.
fn free_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address")
}

/// Waits for `child` to exit, killing it after `timeout`.
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

/// Runs a short command to its end (bounded: a command that hangs fails the test).
fn run(command: &mut Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start giftd");
    // The outputs of these commands are small: they fit in the pipes while we wait.
    let finished = wait_with_deadline(&mut child, EXIT_TIMEOUT);
    let output = child.wait_with_output().expect("collect the output");
    assert!(
        finished.is_some(),
        "the command did not finish within {EXIT_TIMEOUT:?}; stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `giftd merchants create NAME --json` in `data_dir`: the merchant id and API key.
fn create_merchant(data_dir: &Path, master_key: Option<&str>) -> (String, String) {
    let mut command = giftd();
    command
        .args(["merchants", "create", "Corner Bakery", "--json"])
        .env("GIFTD_DATA_DIR", data_dir);
    if let Some(key) = master_key {
        command.env("GIFTD_MASTER_KEY", key);
    }
    let output = run(&mut command);
    assert!(
        output.status.success(),
        "merchants create failed: {}",
        stderr_of(&output)
    );
    let created: Value = serde_json::from_str(stdout_of(&output).trim())
        .unwrap_or_else(|e| panic!("stdout is JSON ({e}): {}", stdout_of(&output)));
    let merchant_id = created["merchant_id"].as_str().expect("merchant_id").to_owned();
    let api_key = created["api_key"].as_str().expect("api_key").to_owned();
    (merchant_id, api_key)
}

/// A running `giftd serve`; dropping it kills the process.
struct Server {
    child: Child,
    address: SocketAddr,
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

impl Server {
    /// Starts `giftd serve` with the data folder given by `GIFTD_DATA_DIR` and waits until
    /// `/healthz` answers. Stderr goes to `log_path`.
    async fn start(data_dir: &Path, log_path: &Path, master_key: Option<&str>) -> Self {
        let mut command = giftd();
        if let Some(key) = master_key {
            command.env("GIFTD_MASTER_KEY", key);
        }
        Self::start_command(command, data_dir, log_path).await
    }

    /// Starts `command` (`giftd`, possibly under `prlimit`) as `giftd serve` with the data folder
    /// `data_dir` and waits until `/healthz` answers. Stderr goes to `log_path`.
    async fn start_command(mut command: Command, data_dir: &Path, log_path: &Path) -> Self {
        let address = free_address();
        let log = File::create(log_path).expect("create the log file");
        command
            .args(["serve", "--listen", &address.to_string()])
            .env("GIFTD_DATA_DIR", data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {:?} serve: {e}", command.get_program()));
        let mut server = Self {
            child,
            address,
            base_url: format!("http://{address}"),
            log_path: log_path.to_owned(),
            client: giftd_testkit::http_client(),
        };
        server.wait_until_healthy().await;
        server
    }

    async fn wait_until_healthy(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server") {
                panic!(
                    "giftd serve exited with {status} before answering; log:\n{}",
                    self.log()
                );
            }
            let answer = self
                .client
                .get(self.url("/healthz"))
                .timeout(Duration::from_millis(500))
                .send()
                .await;
            if let Ok(response) = answer
                && response.status() == StatusCode::OK
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "giftd serve did not answer /healthz within {START_TIMEOUT:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    fn terminate(&mut self) -> ExitStatus {
        let signalled = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(signalled.success(), "kill -TERM failed");
        wait_with_deadline(&mut self.child, EXIT_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "giftd serve did not exit within {EXIT_TIMEOUT:?} of SIGTERM; log:\n{}",
                self.log()
            )
        })
    }

    async fn post(&self, api_key: &str, path: &str, body: Value) -> Answer {
        Answer::from(
            self.client
                .post(self.url(path))
                .bearer_auth(api_key)
                .json(&body)
                .send()
                .await
                .expect("the request reaches the server"),
        )
        .await
    }

    async fn get(&self, api_key: &str, path: &str) -> Answer {
        Answer::from(
            self.client
                .get(self.url(path))
                .bearer_auth(api_key)
                .send()
                .await
                .expect("the request reaches the server"),
        )
        .await
    }
}

/// A response with its request id.
struct Answer {
    status: u16,
    request_id: String,
    body: Value,
    text: String,
}

impl Answer {
    async fn from(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            request_id,
            body,
            text,
        }
    }

    #[track_caller]
    fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        &self.body
    }
}

/// A data folder with a merchant, a funded card and a redemption, served once and stopped.
async fn populated_data_dir() -> (TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("temporary folder");
    let data_dir = temp.path().join("data");
    let (_, api_key) = create_merchant(&data_dir, None);
    let mut server = Server::start(&data_dir, &temp.path().join("serve.log"), None).await;
    let program = server
        .post(
            &api_key,
            "/v1/programs",
            json!({"name": "Gift", "currency": "USD"}),
        )
        .await;
    let program_id = program.expect(201)["id"].as_str().unwrap().to_owned();
    let card = server
        .post(
            &api_key,
            "/v1/cards",
            json!({"program_id": program_id, "kind": "virtual", "amount": 5000}),
        )
        .await;
    let card_id = card.expect(201)["id"].as_str().unwrap().to_owned();
    server
        .post(
            &api_key,
            &format!("/v1/cards/{card_id}/redeem"),
            json!({"amount": 1200}),
        )
        .await
        .expect(200);
    assert!(server.terminate().success(), "log:\n{}", server.log());
    (temp, data_dir)
}

fn database(data_dir: &Path) -> PathBuf {
    data_dir.join("giftd.db")
}

fn verify(data_dir: &Path) -> Output {
    run(giftd().arg("verify").arg("--data-dir").arg(data_dir))
}

const MASTER_KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

#[test]
fn merchants_create_json_prints_the_merchant_id_and_api_key() {
    let temp = tempfile::tempdir().expect("temporary folder");
    let data_dir = temp.path().join("data");
    let output = run(giftd()
        .args(["merchants", "create", "Corner Bakery", "--json", "--data-dir"])
        .arg(&data_dir));
    assert!(output.status.success(), "stderr: {}", stderr_of(&output));

    let printed: Value = serde_json::from_str(stdout_of(&output).trim()).expect("stdout is JSON");
    let object = printed.as_object().expect("a JSON object");
    let mut fields: Vec<&str> = object.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["api_key", "merchant_id"]);
    assert!(
        printed["merchant_id"]
            .as_str()
            .is_some_and(|id| id.starts_with(giftd_domain::MerchantId::PREFIX)),
        "{printed}"
    );
    let api_key = printed["api_key"].as_str().expect("api_key");
    assert!(
        api_key.len() >= 32,
        "an API key this short is guessable: {api_key}"
    );
    assert!(database(&data_dir).exists());
    assert!(!stderr_of(&output).contains(api_key));

    let second = create_merchant(&data_dir, None);
    assert_ne!(second.1, api_key);
}

#[tokio::test]
async fn staff_create_bootstraps_an_owner_who_signs_in_to_the_served_api_and_no_secret_is_logged() {
    let temp = tempfile::tempdir().expect("temporary folder");
    let data_dir = temp.path().join("data");
    let (merchant_id, _) = create_merchant(&data_dir, None);
    let output = run(giftd()
        .args(["staff", "create", "--merchant", &merchant_id, "--role", "owner"])
        .args(["--email", "Owner@Example.com"])
        .env("GIFTD_DATA_DIR", &data_dir));
    assert!(output.status.success(), "stderr: {}", stderr_of(&output));
    let printed: Value = serde_json::from_str(stdout_of(&output).trim()).expect("stdout is JSON");
    assert_eq!(printed["email"], "owner@example.com", "kept in lower case");
    assert_eq!(printed["role"], "owner");
    assert_eq!(printed["merchant_id"], merchant_id.as_str());
    let password = printed["temporary_password"]
        .as_str()
        .expect("a temporary password")
        .to_owned();
    assert_eq!(password.len(), 20);

    // The same email again is refused.
    let again = run(giftd()
        .args(["staff", "create", "--merchant", &merchant_id, "--role", "viewer"])
        .args(["--email", "owner@example.com"])
        .env("GIFTD_DATA_DIR", &data_dir));
    assert!(!again.status.success());
    assert!(
        stderr_of(&again).contains("already exists"),
        "{}",
        stderr_of(&again)
    );

    let log_path = temp.path().join("serve.log");
    let server = Server::start(&data_dir, &log_path, None).await;
    let signed_in = server
        .post(
            "",
            "/v1/sessions",
            json!({"email": "owner@example.com", "password": password}),
        )
        .await;
    let session = signed_in.expect(201).clone();
    assert_eq!(session["staff"]["role"], "owner");
    assert_eq!(session["staff"]["password_change_required"], true);
    let token = session["token"].as_str().expect("a session token").to_owned();
    server.get(&token, "/v1/staff/me").await.expect(200);
    // Until the temporary password is changed, nothing else answers.
    let refused = server.get(&token, "/v1/programs").await;
    assert_eq!(refused.expect(403)["error"]["code"], "password_change_required");

    let log = std::fs::read_to_string(&log_path).expect("the log");
    assert!(!log.contains(&password), "the password is never logged");
    assert!(!log.contains(&token), "the session token is never logged");

    // The audit trail, exported beside the running server: the command line's creation of
    // the owner, then the owner's sign-in, newest first (reads, the refused one included, are
    // not recorded).
    let export = run(giftd()
        .args(["audit", "export", "--merchant", &merchant_id])
        .env("GIFTD_DATA_DIR", &data_dir));
    assert!(export.status.success(), "stderr: {}", stderr_of(&export));
    let csv = stdout_of(&export);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "id,occurred_at,actor_type,actor_id,request_id,client_address,method,path,operation,object_ids,outcome,status,reason,occurred_at_unix_ms"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[2].contains(",cli,,,,CLI,giftd staff create,StaffCommand::Create,"),
        "{csv}"
    );
    assert!(
        lines[1].contains(",staff,")
            && lines[1].contains(",127.0.0.1,POST,/v1/sessions,StaffCommand::SignIn,"),
        "{csv}"
    );
    assert!(!csv.contains(&password) && !csv.contains(&token));
}

#[tokio::test]
async fn serve_with_only_a_data_dir_creates_it_with_a_wal_database_and_an_owner_only_master_key() {
    let temp = tempfile::tempdir().expect("temporary folder");
    let data_dir = temp.path().join("fresh").join("data");
    assert!(!data_dir.exists());

    let mut server = Server::start(&data_dir, &temp.path().join("serve.log"), None).await;

    let ready = server.get("", "/readyz").await;
    ready.expect(200);
    let database_file = database(&data_dir);
    assert!(database_file.is_file(), "no database in {}", data_dir.display());
    assert!(
        data_dir.join("giftd.db-wal").is_file(),
        "a database in WAL mode has a -wal file while it is open"
    );
    // Bytes 18 and 19 of the header are 2 when the file is in WAL mode (sqlite.org/fileformat).
    let header = std::fs::read(&database_file).expect("read the database");
    assert_eq!(&header[..16], b"SQLite format 3\0");
    assert_eq!(
        (header[18], header[19]),
        (2, 2),
        "the database is not in WAL mode"
    );

    let key_file = data_dir.join("master.key");
    assert!(key_file.is_file(), "no master.key in {}", data_dir.display());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "master.key mode is {:o}", mode & 0o777);
    }
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(key.trim().len(), 64);
    assert!(key.trim().chars().all(|c| c.is_ascii_hexdigit()));
    assert!(!server.log().contains(key.trim()), "the master key is logged");

    assert!(server.terminate().success());
}

#[tokio::test]
async fn a_full_flow_over_http_logs_one_line_per_request_without_secrets_and_stops_cleanly_on_sigterm() {
    let temp = tempfile::tempdir().expect("temporary folder");
    let data_dir = temp.path().join("data");
    let (_, api_key) = create_merchant(&data_dir, None);
    let mut server = Server::start(&data_dir, &temp.path().join("serve.log"), None).await;
    let mut answers: Vec<(&str, &str, Answer)> = Vec::new();

    let program = server
        .post(
            &api_key,
            "/v1/programs",
            json!({"name": "Gift", "currency": "USD"}),
        )
        .await;
    let program_id = program.expect(201)["id"].as_str().unwrap().to_owned();
    answers.push(("POST", "/v1/programs", program));

    let card = server
        .post(
            &api_key,
            "/v1/cards",
            json!({"program_id": program_id, "kind": "virtual", "amount": 5000}),
        )
        .await;
    let created = card.expect(201).clone();
    let card_id = created["id"].as_str().unwrap().to_owned();
    let number = created["number"].as_str().expect("number").to_owned();
    let code = created["security_code"]
        .as_str()
        .expect("security_code")
        .to_owned();
    answers.push(("POST", "/v1/cards", card));

    let redeemed = server
        .post(
            &api_key,
            &format!("/v1/cards/{card_id}/redeem"),
            json!({"amount": 1200}),
        )
        .await;
    assert_eq!(redeemed.expect(200)["amount"], 1200);
    assert_eq!(redeemed.body["balance_after"], 3800);
    answers.push(("POST", "/v1/cards/{id}/redeem", redeemed));

    let found = server
        .post(
            &api_key,
            "/v1/cards/lookup",
            json!({"number": number, "security_code": code}),
        )
        .await;
    assert_eq!(found.expect(200)["balance"], 3800);
    answers.push(("POST", "/v1/cards/lookup", found));

    let wrong = server
        .post(
            &api_key,
            "/v1/cards/lookup",
            json!({"number": number, "security_code": "00000000"}),
        )
        .await;
    wrong.expect(404);
    answers.push(("POST", "/v1/cards/lookup", wrong));

    // A body that fails to parse, with the number and code in it.
    let malformed = server
        .post(
            &api_key,
            "/v1/cards/lookup",
            json!({"number": number, "security_code": code.parse::<u64>().ok(), "extra": number}),
        )
        .await;
    malformed.expect(400);
    answers.push(("POST", "/v1/cards/lookup", malformed));

    let fetched = server.get(&api_key, &format!("/v1/cards/{card_id}")).await;
    assert_eq!(fetched.expect(200)["balance"], 3800);
    answers.push(("GET", "/v1/cards/{id}", fetched));

    let unauthorized = server.get("gk_not_a_real_key", "/v1/cards").await;
    unauthorized.expect(401);
    answers.push(("GET", "/v1/cards", unauthorized));

    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log());

    let log = server.log();
    for secret in [number.as_str(), code.as_str(), api_key.as_str()] {
        assert!(!log.contains(secret), "the log holds a secret ({secret}):\n{log}");
    }
    let key_secret = api_key.rsplit('_').next().unwrap();
    assert!(!log.contains(key_secret), "the log holds the API key:\n{log}");
    for (method, route, answer) in &answers {
        assert!(
            !answer.request_id.is_empty(),
            "no x-request-id on {method} {route}"
        );
        let lines: Vec<&str> = log
            .lines()
            .filter(|line| line.contains(&answer.request_id))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one log line for {method} {route} ({}); log:\n{log}",
            answer.request_id
        );
        let line = lines[0];
        let status = answer.status.to_string();
        assert!(line.contains(method), "no method in: {line}");
        assert!(line.contains(route), "no route {route} in: {line}");
        assert!(
            line.contains(&format!("status={status}")) || line.contains(&format!("\"status\":{status}")),
            "no status {status} in: {line}"
        );
    }
}

#[tokio::test]
async fn verify_passes_a_sound_ledger_and_exits_one_with_a_violation_after_tampering() {
    let (_temp, data_dir) = populated_data_dir().await;

    let sound = verify(&data_dir);
    assert_eq!(
        sound.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout_of(&sound),
        stderr_of(&sound)
    );
    assert!(!stdout_of(&sound).contains("VIOLATION"));

    let mut connection = SqliteStore::raw_connection(&database(&data_dir))
        .await
        .expect("open the database");
    let changed = sqlx::query("UPDATE cards SET balance = balance + 1")
        .execute(&mut connection)
        .await
        .expect("tamper with a cached balance");
    assert_eq!(changed.rows_affected(), 1);
    drop(connection);

    let tampered = verify(&data_dir);
    assert_eq!(
        tampered.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout_of(&tampered),
        stderr_of(&tampered)
    );
    assert!(
        stdout_of(&tampered).contains("VIOLATION"),
        "stdout: {}",
        stdout_of(&tampered)
    );
}

#[tokio::test]
async fn the_database_refuses_to_update_transactions_or_delete_postings() {
    let (_temp, data_dir) = populated_data_dir().await;
    let mut connection = SqliteStore::raw_connection(&database(&data_dir))
        .await
        .expect("open the database");

    let update = sqlx::query("UPDATE transactions SET amount = amount + 1")
        .execute(&mut connection)
        .await
        .expect_err("updating a transaction must fail");
    assert!(update.to_string().contains("append-only"), "{update}");

    let delete = sqlx::query("DELETE FROM postings")
        .execute(&mut connection)
        .await
        .expect_err("deleting postings must fail");
    assert!(delete.to_string().contains("append-only"), "{delete}");

    let (postings,): (i64,) = sqlx::query_as("SELECT count(*) FROM postings")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert!(postings >= 4, "the postings are still there: {postings}");
    drop(connection);
    assert_eq!(verify(&data_dir).status.code(), Some(0));
}

#[tokio::test]
async fn migrate_prepares_an_empty_folder_and_can_run_again() {
    let temp = tempfile::tempdir().expect("temporary folder");
    let data_dir = temp.path().join("empty");

    for _ in 0..2 {
        let output = run(giftd().arg("migrate").env("GIFTD_DATA_DIR", &data_dir));
        assert!(
            output.status.success(),
            "stdout: {}\nstderr: {}",
            stdout_of(&output),
            stderr_of(&output)
        );
    }

    let mut connection = SqliteStore::raw_connection(&database(&data_dir))
        .await
        .expect("open the database");
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    let tables: Vec<&str> = tables.iter().map(|(name,)| name.as_str()).collect();
    for expected in ["cards", "merchants", "postings", "programs", "transactions"] {
        assert!(tables.contains(&expected), "no table {expected} in {tables:?}");
    }
}

#[tokio::test]
async fn serve_with_giftd_master_key_set_uses_it_and_writes_no_key_file() {
    let temp = tempfile::tempdir().expect("temporary folder");
    let data_dir = temp.path().join("data");
    let (_, api_key) = create_merchant(&data_dir, Some(MASTER_KEY_HEX));

    let mut server = Server::start(&data_dir, &temp.path().join("serve.log"), Some(MASTER_KEY_HEX)).await;

    // The key created under the same master key authenticates: its hash matches.
    server.get(&api_key, "/v1/programs").await.expect(200);
    assert!(
        !data_dir.join("master.key").exists(),
        "master.key was written although GIFTD_MASTER_KEY is set"
    );
    assert!(!server.log().contains(MASTER_KEY_HEX), "the master key is logged");
    assert!(server.terminate().success());
}

#[test]
fn serve_refuses_to_start_with_a_malformed_giftd_master_key() {
    let temp = tempfile::tempdir().expect("temporary folder");
    let data_dir = temp.path().join("data");
    for malformed in [
        "not-hex",
        "00112233",
        &format!("{MASTER_KEY_HEX}00"),
        &"zz".repeat(32),
    ] {
        let output = run(giftd()
            .args(["serve", "--listen", &free_address().to_string()])
            .env("GIFTD_DATA_DIR", &data_dir)
            .env("GIFTD_MASTER_KEY", malformed));
        assert!(
            !output.status.success(),
            "serve started with GIFTD_MASTER_KEY={malformed}"
        );
        assert!(
            stderr_of(&output).contains("GIFTD_MASTER_KEY"),
            "the message does not name GIFTD_MASTER_KEY: {}",
            stderr_of(&output)
        );
        assert!(!stderr_of(&output).contains(malformed), "the bad key is echoed");
        assert!(!data_dir.join("master.key").exists());
    }
}

#[tokio::test]
async fn backup_copies_a_served_database_into_a_file_that_verifies_on_its_own() {
    let (temp, data_dir) = populated_data_dir().await;
    let (_, api_key) = create_merchant(&data_dir, None);
    // The copy is taken while a server is up: backups are online.
    let mut server = Server::start(&data_dir, &temp.path().join("serve-2.log"), None).await;
    server.get(&api_key, "/v1/programs").await.expect(200);
    let restored = temp.path().join("restored");
    std::fs::create_dir_all(&restored).expect("create the restore folder");
    let output = run(giftd()
        .arg("backup")
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--out")
        .arg(restored.join("giftd.db")));
    assert!(output.status.success(), "backup failed: {}", stderr_of(&output));
    assert!(
        stdout_of(&output).contains("master key"),
        "{}",
        stdout_of(&output)
    );

    // A second backup to the same file is refused rather than overwriting it.
    let again = run(giftd()
        .arg("backup")
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--out")
        .arg(restored.join("giftd.db")));
    assert!(!again.status.success());
    assert!(
        stderr_of(&again).contains("already exists"),
        "{}",
        stderr_of(&again)
    );
    assert!(server.terminate().success(), "log:\n{}", server.log());

    let output = verify(&restored);
    assert!(
        output.status.success(),
        "verify of the copy failed: {}",
        stdout_of(&output)
    );
    assert!(
        stdout_of(&output).contains("checked 1 cards, 2 transactions"),
        "{}",
        stdout_of(&output)
    );
}

// ---- connections that send nothing, or too slowly ----

/// giftd's open-file limit in these tests: low enough that a flood a test can open exceeds it.
const OPEN_FILE_LIMIT: u64 = 256;
/// Idle sockets in the flood: more than giftd could hold open if it accepted them all.
const FLOOD_SOCKETS: usize = 300;
/// A short timeout, so that the tests are quick; the timeout a test does not exercise is set to
/// [`LONG_TIMEOUT_SECONDS`] so that only the one under test can close a connection in time.
const SHORT_TIMEOUT_SECONDS: u64 = 2;
const LONG_TIMEOUT_SECONDS: u64 = 120;
/// How long after its timeout a connection may still be open: generous, for a loaded machine.
const CUT_OFF_MARGIN: Duration = Duration::from_secs(10);
/// A trickling client's pause between two header lines: well inside any read-inactivity limit.
const TRICKLE_INTERVAL: Duration = Duration::from_millis(500);

/// `giftd serve` under [`OPEN_FILE_LIMIT`] with the given header-read and idle timeouts, set
/// through the environment as an operator would.
async fn start_with_timeouts(temp: &TempDir, header_read_seconds: u64, idle_seconds: u64) -> Server {
    let mut command = giftd_with_open_file_limit(OPEN_FILE_LIMIT);
    command
        .env(
            "GIFTD_HEADER_READ_TIMEOUT_SECONDS",
            header_read_seconds.to_string(),
        )
        .env("GIFTD_IDLE_TIMEOUT_SECONDS", idle_seconds.to_string());
    Server::start_command(command, &temp.path().join("data"), &temp.path().join("serve.log")).await
}

/// Whether the server closes `stream` (end of file, or a reset) before `deadline`. Whatever
/// the server sends before closing is read and dropped.
fn closed_by_server_before(mut stream: &TcpStream, deadline: Instant) -> bool {
    let mut buffer = [0_u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream
            .set_read_timeout(Some(left.min(Duration::from_millis(200))))
            .expect("set a read timeout");
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// One `GET /healthz` over a connection of its own, bounded: whether it answered 200.
async fn healthz_on_a_fresh_connection(server: &Server) -> bool {
    let client = giftd_testkit::http_client_builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(1))
        .build()
        .expect("a client");
    client
        .get(server.url("/healthz"))
        .send()
        .await
        .is_ok_and(|response| response.status() == StatusCode::OK)
}

#[tokio::test]
async fn an_idle_flood_beyond_the_open_file_limit_is_cut_off_while_healthz_still_answers() {
    let temp = tempfile::tempdir().expect("temporary folder");
    let mut server = start_with_timeouts(&temp, SHORT_TIMEOUT_SECONDS, LONG_TIMEOUT_SECONDS).await;

    // The attacker connects and sends nothing, and keeps every socket until the end.
    let flooded = Instant::now();
    let mut flood = Vec::with_capacity(FLOOD_SOCKETS);
    for _ in 0..FLOOD_SOCKETS {
        let stream = TcpStream::connect_timeout(&server.address, Duration::from_secs(5))
            .expect("the kernel completes a connection to a listening socket");
        flood.push(stream);
    }

    // A fresh client gets its answer while the flood is held.
    let deadline = Instant::now() + Duration::from_secs(SHORT_TIMEOUT_SECONDS) + CUT_OFF_MARGIN;
    let mut answered = false;
    while !answered && Instant::now() < deadline {
        answered = healthz_on_a_fresh_connection(&server).await;
        if !answered {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(
        answered,
        "/healthz did not answer within {:?} while {FLOOD_SOCKETS} idle sockets were held; log:\n{}",
        deadline - flooded,
        tail(&server.log())
    );

    // Every idle socket of the flood has been closed by the server, none left hanging.
    let deadline = flooded + Duration::from_secs(SHORT_TIMEOUT_SECONDS) + CUT_OFF_MARGIN;
    let open = flood
        .iter()
        .filter(|stream| !closed_by_server_before(stream, deadline))
        .count();
    assert_eq!(
        open,
        0,
        "{open} of {FLOOD_SOCKETS} idle sockets were still open {:?} after they connected; log:\n{}",
        deadline - flooded,
        tail(&server.log())
    );
    let log = server.log();
    assert!(
        !log.contains("Too many open files"),
        "giftd ran out of file descriptors:\n{}",
        tail(&log)
    );

    assert!(healthz_on_a_fresh_connection(&server).await);
    let status = server.terminate();
    assert!(status.success(), "exit {status}; log:\n{}", tail(&server.log()));
    drop(flood);
}

#[tokio::test]
async fn a_client_trickling_header_lines_is_cut_off_at_the_header_read_timeout() {
    let temp = tempfile::tempdir().expect("temporary folder");
    let mut server = start_with_timeouts(&temp, SHORT_TIMEOUT_SECONDS, LONG_TIMEOUT_SECONDS).await;

    let mut stream = TcpStream::connect(server.address).expect("connect");
    let started = Instant::now();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: giftd\r\n")
        .expect("send the request line");
    // One more header line every TRICKLE_INTERVAL, never the blank line that ends the head.
    let deadline = started + Duration::from_secs(SHORT_TIMEOUT_SECONDS) + CUT_OFF_MARGIN;
    let mut lines = 0_u32;
    let cut_off = loop {
        if closed_by_server_before(&stream, (Instant::now() + TRICKLE_INTERVAL).min(deadline)) {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        lines += 1;
        if stream
            .write_all(format!("X-Trickle-{lines}: a\r\n").as_bytes())
            .is_err()
        {
            break true;
        }
    };
    assert!(
        cut_off,
        "a client that sent {lines} header lines, one every {TRICKLE_INTERVAL:?}, was still \
         connected {:?} after it started; log:\n{}",
        deadline - started,
        tail(&server.log())
    );
    assert!(
        lines >= 1,
        "the server closed the connection before the trickle began"
    );
    assert!(healthz_on_a_fresh_connection(&server).await);
    assert!(server.terminate().success(), "log:\n{}", tail(&server.log()));
}

#[tokio::test]
async fn a_keep_alive_connection_left_idle_after_a_request_is_closed_after_the_idle_timeout() {
    let temp = tempfile::tempdir().expect("temporary folder");
    let mut server = start_with_timeouts(&temp, LONG_TIMEOUT_SECONDS, SHORT_TIMEOUT_SECONDS).await;

    let mut stream = TcpStream::connect(server.address).expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: giftd\r\n\r\n")
        .expect("send a request");
    let answer = read_one_response(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("connection: close"),
        "the server did not keep the connection alive: {answer}"
    );
    let answered = Instant::now();

    let deadline = answered + Duration::from_secs(SHORT_TIMEOUT_SECONDS) + CUT_OFF_MARGIN;
    assert!(
        closed_by_server_before(&stream, deadline),
        "an idle keep-alive connection was still open {:?} after its answer; log:\n{}",
        deadline - answered,
        tail(&server.log())
    );
    assert!(server.terminate().success(), "log:\n{}", tail(&server.log()));
}

#[test]
fn serve_refuses_a_connection_limit_that_leaves_no_room_under_the_open_file_limit() {
    let temp = tempfile::tempdir().expect("temporary folder");
    let mut command = giftd_with_open_file_limit(OPEN_FILE_LIMIT);
    command
        .args(["serve", "--listen", &free_address().to_string()])
        .env("GIFTD_DATA_DIR", temp.path().join("data"))
        .env("GIFTD_MAX_CONNECTIONS", OPEN_FILE_LIMIT.to_string());
    let output = run(&mut command);
    assert!(!output.status.success(), "serve started");
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("limits.max_connections") && stderr.contains(&OPEN_FILE_LIMIT.to_string()),
        "the message names neither the setting nor the open-file limit: {stderr}"
    );
}

/// One HTTP/1.1 response with a `Content-Length` body, read whole from `stream`.
fn read_one_response(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(EXIT_TIMEOUT))
        .expect("set a read timeout");
    let mut received = Vec::new();
    let mut buffer = [0_u8; 1024];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .expect("a Content-Length");
            if received.len() >= end + 4 + length {
                return text;
            }
        }
        let read = stream.read(&mut buffer).expect("read the response");
        assert!(read > 0, "the connection closed mid-response: {text}");
        received.extend_from_slice(&buffer[..read]);
    }
}

/// The last lines of a log, enough to see why a test failed without drowning it.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[tokio::test]
async fn the_per_address_rate_limit_counts_each_connection_by_the_address_it_comes_from() {
    let temp = tempfile::tempdir().expect("temporary folder");
    let data_dir = temp.path().join("data");
    let (_, api_key) = create_merchant(&data_dir, None);
    let mut command = giftd();
    command.env("GIFTD_RATE_LIMIT_PER_ADDRESS", "1");
    let mut server = Server::start_command(command, &data_dir, &temp.path().join("serve.log")).await;
    let lookup = async |from: [u8; 4], key: &str| {
        let client = giftd_testkit::http_client_builder()
            .local_address(std::net::IpAddr::from(from))
            .build()
            .expect("a client");
        let response = client
            .post(server.url("/v1/cards/lookup"))
            .bearer_auth(key)
            .json(&json!({"number": "6000000000000000", "security_code": "1234"}))
            .send()
            .await
            .expect("the request reaches the server");
        Answer::from(response).await
    };

    let first = lookup([127, 0, 0, 2], &api_key).await;
    assert_ne!(first.status, 429, "{}", first.text);
    // Another key from the same address: the address's allowance is spent.
    let refused = lookup([127, 0, 0, 2], "gk_another_key").await;
    refused.expect(429);
    assert!(refused.text.contains("client address"), "{}", refused.text);
    // The same key from another address is not refused.
    let elsewhere = lookup([127, 0, 0, 3], &api_key).await;
    assert_ne!(elsewhere.status, 429, "{}", elsewhere.text);
    assert!(server.terminate().success(), "log:\n{}", tail(&server.log()));
}
