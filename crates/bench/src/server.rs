//! The giftd under test: a `giftd serve` child process on a free port of 127.0.0.1 with a fresh
//! data folder (SQLite) or a fresh PostgreSQL database created for the run and dropped after
//! it, plus `giftd merchants create` and `giftd verify` run against the same storage. It never
//! talks to anything but 127.0.0.1 and the PostgreSQL server it is given.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::Connection;
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// How long `giftd serve` may take to answer `/readyz` (PostgreSQL migrations included).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping giftd may take to finish what it has in flight.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// `giftd verify` reads the whole ledger; after long runs on PostgreSQL that is seconds.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(300);
/// `giftd merchants create`.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a giftd keeps its data: what `giftd verify` and `giftd merchants create` are given.
#[derive(Debug, Clone, Default)]
pub struct Storage {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
}

impl Storage {
    fn apply(&self, command: &mut Command) {
        if let Some(dir) = &self.data_dir {
            command.arg("--data-dir").arg(dir);
        }
        // Through the environment, so that a password never shows in the process list.
        match &self.database_url {
            Some(url) => command.env("GIFTD_DATABASE_URL", url),
            None => command.env_remove("GIFTD_DATABASE_URL"),
        };
    }
}

/// A database URL with its password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!("{}{}:***{}", &url[..scheme_end], &rest[..colon], &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The URL without its password, and the password: for tools that would otherwise show it in
/// the process list (libpq reads `PGPASSWORD`).
pub fn split_password(url: &str) -> (String, Option<String>) {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return (url.to_owned(), None);
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return (url.to_owned(), None);
    };
    match rest[..at].find(':') {
        Some(colon) => (
            format!("{}{}{}", &url[..scheme_end], &rest[..colon], &rest[at..]),
            Some(rest[colon + 1..at].to_owned()),
        ),
        None => (url.to_owned(), None),
    }
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

/// A database of the benchmark's own on a PostgreSQL server. [`PgDatabase::drop_now`] removes
/// it; the caller calls it on every path, failures included.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl PgDatabase {
    pub async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let name = format!("giftd_bench_{}_{millis}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("cannot reach PostgreSQL at {}", redact(admin_url)))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .with_context(|| format!("cannot create the database {name}"))?;
        let _ = admin.close().await;
        Ok(Self {
            url: with_database(admin_url, &name),
            name,
            admin_url: admin_url.to_owned(),
        })
    }

    pub async fn drop_now(self) -> anyhow::Result<()> {
        let mut admin = sqlx::PgConnection::connect(&self.admin_url).await?;
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .with_context(|| format!("cannot drop the database {}", self.name))?;
        let _ = admin.close().await;
        Ok(())
    }
}

/// How to start giftd.
pub struct ServeOptions<'a> {
    pub giftd: &'a Path,
    pub database_url: Option<&'a str>,
    pub durability: &'a str,
    pub pg_pool_size: Option<u32>,
    /// `RUST_LOG` for giftd; `None` keeps giftd's own default.
    pub log_filter: Option<&'a str>,
}

/// A running `giftd serve`, killed if dropped without [`GiftdServer::stop`].
pub struct GiftdServer {
    child: Child,
    pub base_url: String,
    pub storage: Storage,
    pub log_path: PathBuf,
    _data_dir: TempDir,
}

impl GiftdServer {
    pub async fn start(options: &ServeOptions<'_>) -> anyhow::Result<Self> {
        if !options.giftd.is_file() {
            bail!(
                "no giftd binary at {} (build it with `cargo build --release -p giftd`, or pass --giftd)",
                options.giftd.display()
            );
        }
        let data_dir = tempfile::Builder::new()
            .prefix("giftd-bench-")
            .tempdir()
            .context("cannot create a temporary data folder")?;
        let storage = Storage {
            data_dir: Some(data_dir.path().to_owned()),
            database_url: options.database_url.map(str::to_owned),
        };
        let port = free_port()?;
        let log_path = data_dir.path().join("giftd.log");
        let log = std::fs::File::create(&log_path).context("cannot create giftd's log file")?;
        let mut command = Command::new(options.giftd);
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--durability")
            .arg(options.durability);
        if let Some(size) = options.pg_pool_size {
            command.arg("--pg-pool-size").arg(size.to_string());
        }
        storage.apply(&mut command);
        if let Some(filter) = options.log_filter {
            command.env("RUST_LOG", filter);
        }
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", options.giftd.display()))?;
        let mut server = Self {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            storage,
            log_path,
            _data_dir: data_dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let started = Instant::now();
        let url = format!("{}/readyz", self.base_url);
        while started.elapsed() < READY_TIMEOUT {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "giftd exited before it was ready ({status}); its log:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            // Polling, bounded by READY_TIMEOUT: giftd has no other way to say it is ready.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "giftd was not ready after {} s; its log:\n{}",
            READY_TIMEOUT.as_secs(),
            self.log_tail()
        )
    }

    /// The last lines giftd wrote.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM (giftd finishes requests in flight and closes the database), then SIGKILL if it
    /// takes too long.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
            if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
                .await
                .is_ok()
            {
                return Ok(());
            }
        }
        self.child.kill().await.context("cannot stop giftd")?;
        Ok(())
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// `giftd merchants create NAME --json` on the given storage: (merchant id, API key).
pub async fn create_merchant(giftd: &Path, storage: &Storage) -> anyhow::Result<(String, String)> {
    let mut command = Command::new(giftd);
    command.args(["merchants", "create", "Benchmark merchant", "--json"]);
    storage.apply(&mut command);
    command.kill_on_drop(true);
    let output = tokio::time::timeout(CLI_TIMEOUT, command.output())
        .await
        .context("giftd merchants create took too long")??;
    if !output.status.success() {
        bail!(
            "giftd merchants create failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let created: serde_json::Value = serde_json::from_slice(&output.stdout)
        .context("giftd merchants create --json printed something other than JSON")?;
    let field = |name: &str| {
        created[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("giftd merchants create --json printed no {name}"))
    };
    Ok((field("merchant_id")?, field("api_key")?))
}

/// What `giftd verify` said.
pub struct Verified {
    pub passed: bool,
    /// Its first line (counts), or its violations when it failed.
    pub summary: String,
    pub seconds: f64,
}

/// `giftd verify` on the given storage.
pub async fn verify(giftd: &Path, storage: &Storage) -> anyhow::Result<Verified> {
    let started = Instant::now();
    let mut command = Command::new(giftd);
    command.arg("verify");
    storage.apply(&mut command);
    command.env("RUST_LOG", "warn").kill_on_drop(true);
    let output = tokio::time::timeout(VERIFY_TIMEOUT, command.output())
        .await
        .context("giftd verify took too long")??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let passed = output.status.success();
    let summary = if passed {
        stdout.lines().next().unwrap_or_default().to_owned()
    } else {
        let mut text = stdout.lines().take(20).collect::<Vec<_>>().join("\n");
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        text
    };
    Ok(Verified {
        passed,
        summary,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            redact("postgres://giftd:secret@db:5432/giftd"),
            "postgres://giftd:***@db:5432/giftd"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
    }

    #[test]
    fn split_password_takes_the_password_out() {
        assert_eq!(
            split_password("postgres://giftd:secret@db:5432/giftd"),
            (
                "postgres://giftd@db:5432/giftd".to_owned(),
                Some("secret".to_owned())
            )
        );
        assert_eq!(
            split_password("postgres://postgres@127.0.0.1/postgres"),
            ("postgres://postgres@127.0.0.1/postgres".to_owned(), None)
        );
    }

    #[test]
    fn with_database_keeps_host_and_options() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres?sslmode=disable", "b"),
            "postgres://u@h:5432/b?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "b"), "postgres://u@h/b");
    }
}
