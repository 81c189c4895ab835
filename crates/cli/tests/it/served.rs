//! The real `giftd` binary for the suites that drive it with a vendor's own client (Adyen's
//! Python and Node libraries, Gr4vy's Python SDK): a [`Deployment`] (a fresh data folder, on
//! the embedded SQLite or on a fresh PostgreSQL database), a merchant made by the CLI,
//! `giftd serve` on a free port, and `giftd verify` at the end.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long the server may take to answer `/healthz`, and the script to finish.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Where a suite's `giftd` keeps its data: a temporary data folder, and on PostgreSQL a fresh
/// database of the test server (`GIFTD_TEST_PG_URL`), dropped with it.
pub struct Deployment {
    temp: tempfile::TempDir,
    database: Option<giftd_testkit::PgTestDatabase>,
}

impl Deployment {
    pub fn sqlite() -> Self {
        Self {
            temp: tempfile::tempdir().expect("a temporary folder"),
            database: None,
        }
    }

    /// Fails (never skips) without `GIFTD_TEST_PG_URL`: a PostgreSQL run that was asked for
    /// must not pass unrun.
    pub async fn postgres() -> Self {
        let admin = giftd_testkit::test_pg_url().expect("GIFTD_TEST_PG_URL: a PostgreSQL server to test on");
        Self {
            temp: tempfile::tempdir().expect("a temporary folder"),
            database: Some(giftd_testkit::PgTestDatabase::create(&admin).await),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.temp.path().join("data")
    }

    /// The binary, on this deployment's storage.
    pub fn giftd(&self) -> Command {
        let mut command = giftd(&self.data_dir());
        if let Some(database) = &self.database {
            command.env("GIFTD_DATABASE_URL", &database.url);
        }
        command
    }

    /// A new merchant, made by `giftd merchants create`: its API key.
    pub fn create_merchant(&self, name: &str) -> String {
        let created = run(
            self.giftd().args(["merchants", "create", name, "--json"]),
            START_TIMEOUT,
        );
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        let created: Value = serde_json::from_slice(&created.stdout).expect("JSON from merchants create");
        created["api_key"].as_str().expect("an API key").to_owned()
    }

    pub async fn serve(&self) -> Server {
        Server::start(self.giftd(), self.temp.path().join("serve.log")).await
    }

    /// `giftd verify` (the server stopped) must find the ledger sound.
    pub fn assert_verified(&self) {
        let verified = run(self.giftd().arg("verify"), START_TIMEOUT);
        assert!(
            verified.status.success(),
            "giftd verify failed:\n{}\n{}",
            String::from_utf8_lossy(&verified.stdout),
            String::from_utf8_lossy(&verified.stderr)
        );
    }
}

/// The `giftd` binary with no `GIFTD_*` or `RUST_LOG` setting inherited from the caller.
fn giftd(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_giftd"));
    for (variable, _) in std::env::vars() {
        if variable.starts_with("GIFTD_") || variable == "RUST_LOG" {
            command.env_remove(variable);
        }
    }
    command.env("GIFTD_DATA_DIR", data_dir).stdin(Stdio::null());
    command
}

/// Runs a command to its end, killing it after `timeout`.
pub fn run(command: &mut Command, timeout: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    let deadline = Instant::now() + timeout;
    while child.try_wait().expect("poll the command").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    child.wait_with_output().expect("collect the output")
}

/// A running `giftd serve`; dropping it kills the process.
pub struct Server {
    child: Child,
    pub base_url: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `giftd` (a command on some storage) as `giftd serve` on a free port.
    async fn start(mut giftd: Command, log: PathBuf) -> Self {
        let address = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let child = giftd
            .args(["serve", "--listen", &address.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("the log file"))
            .spawn()
            .expect("start giftd serve");
        let mut server = Self {
            child,
            base_url: format!("http://{address}"),
            log,
        };
        let client = giftd_testkit::http_client();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = server.child.try_wait().expect("poll the server") {
                panic!("giftd serve exited with {status}; log:\n{}", server.log());
            }
            let healthy = client
                .get(format!("{}/healthz", server.base_url))
                .timeout(Duration::from_millis(500))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
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

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn post(&self, api_key: &str, path: &str, body: Value) -> Value {
        let response = giftd_testkit::http_client()
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(api_key)
            .json(&body)
            .send()
            .await
            .expect("the request reaches the server");
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON answer");
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }
}

/// Runs a vendor client's script to its end and returns its step lines, parsed, after checking
/// that it exited 0 with `ALL OK` as its last line. `what` names the script in failures.
pub fn script_steps(output: &Output, server: &Server, what: &str) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        output.status,
        server.log()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.last(), Some(&"ALL OK"), "{stdout}");
    lines[..lines.len() - 1]
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}
