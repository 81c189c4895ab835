//! giftd's configuration: every setting, where it may come from and how it is checked.
//!
//! A setting has one name (`postgres.pool_size`), used in the TOML file given by `--config` or
//! `GIFTD_CONFIG`, one environment variable (`GIFTD_PG_POOL_SIZE`) and usually one flag
//! (`--pg-pool-size`). Flags win over the environment, the environment over the file, the file
//! over the defaults. Everything is checked before giftd does anything: an unknown key in the
//! file or a value that does not parse stops the start with a message naming the setting and
//! where its value came from. Secrets (the database password, the master key) are never shown:
//! `giftd config show` and every log line print them redacted.
//!
//! This module only reads and checks; it opens no database and binds no socket.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use giftd_api::{Limits, RateLimits};
use giftd_store::DatabaseUrl;
use giftd_store::postgres::{DEFAULT_POOL_SIZE, Isolation};
use giftd_store::sqlite::Durability;

/// How a value is written in TOML: quoted or bare.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
}

/// One setting: its name in the file, its environment variable, its flag, its default.
pub struct Setting {
    pub key: &'static str,
    pub env: &'static str,
    /// The flag of `giftd serve` (storage flags are on every command that opens the database).
    pub flag: Option<&'static str>,
    default: Option<&'static str>,
    /// For the example file when there is no default.
    example: Option<&'static str>,
    kind: Kind,
    secret: bool,
    help: &'static str,
}

const fn setting(key: &'static str, env: &'static str, flag: Option<&'static str>, kind: Kind) -> Setting {
    Setting {
        key,
        env,
        flag,
        default: None,
        example: None,
        kind,
        secret: false,
        help: "",
    }
}

impl Setting {
    const fn default(mut self, value: &'static str) -> Self {
        self.default = Some(value);
        self
    }

    const fn example(mut self, value: &'static str) -> Self {
        self.example = Some(value);
        self
    }

    const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    const fn help(mut self, help: &'static str) -> Self {
        self.help = help;
        self
    }
}

/// Every setting giftd reads, in the order of the example file.
pub const SETTINGS: &[Setting] = &[
    setting("data_dir", "GIFTD_DATA_DIR", Some("--data-dir"), Kind::Text)
        .default("giftd-data")
        .help("Folder for the embedded SQLite database and the generated master key (mode 0700)."),
    setting("database_url", "GIFTD_DATABASE_URL", Some("--database-url"), Kind::Text)
        .example("postgres://giftd:PASSWORD@db.internal:5432/giftd")
        .secret()
        .help("PostgreSQL instead of SQLite in the data folder. Shown only with its password redacted."),
    setting("master_key", "GIFTD_MASTER_KEY", None, Kind::Text)
        .example("64 hex digits")
        .secret()
        .help("The 32-byte master key in hex; without it, master.key in the data folder is used (or created). Never shown."),
    setting("listen", "GIFTD_LISTEN", Some("--listen"), Kind::Text)
        .default("127.0.0.1:8080")
        .help("Address the API listens on."),
    setting("public_url", "GIFTD_PUBLIC_URL", Some("--public-url"), Kind::Text)
        .example("https://gift.example.com")
        .help("Where cardholders reach this server: cardholder links (gifts, Gr4vy issuances) are this and /g/TOKEN. Unset: the scheme giftd serves and the request's Host."),
    setting("postgres.pool_size", "GIFTD_PG_POOL_SIZE", Some("--pg-pool-size"), Kind::Integer)
        .default(DEFAULT_POOL_SIZE_TEXT)
        .help("PostgreSQL connections this process may open (1 or more)."),
    setting("postgres.isolation", "GIFTD_PG_ISOLATION", Some("--pg-isolation"), Kind::Text)
        .default("read-committed")
        .help("Isolation of write transactions: read-committed or serializable (conflicts are retried)."),
    setting("sqlite.durability", "GIFTD_DURABILITY", Some("--durability"), Kind::Text)
        .default("full")
        .help("full: an answered request survives power loss. normal: faster, may lose the last commits on power loss."),
    setting("clover.lock_seconds", "GIFTD_CLOVER_LOCK_SECONDS", Some("--clover-lock-seconds"), Kind::Integer)
        .default(CLOVER_LOCK_SECONDS_TEXT)
        .help("How long a Clover lock (a charge with capture: false) reserves value, 1 to 604800 seconds."),
    setting("checkout.lease_seconds", "GIFTD_CHECKOUT_LEASE_SECONDS", Some("--checkout-lease-seconds"), Kind::Integer)
        .default(CHECKOUT_LEASE_SECONDS_TEXT)
        .help("How long checkout recovery leaves a checkout to the request driving it, 1 to 3600 seconds; keep it above the payment processor's longest call."),
    setting("idempotency.retention_days", "GIFTD_IDEMPOTENCY_RETENTION_DAYS", None, Kind::Integer)
        .default("7")
        .help("Days an Idempotency-Key replays its first answer (Adyen Terminal ServiceIDs: 48 h regardless), 1 to 3650."),
    setting("webhooks.max_attempts", "GIFTD_WEBHOOKS_MAX_ATTEMPTS", None, Kind::Integer)
        .default("15")
        .help("Attempts of a webhook delivery before it is failed, 1 to 100."),
    setting("webhooks.first_retry_seconds", "GIFTD_WEBHOOKS_FIRST_RETRY_SECONDS", None, Kind::Integer)
        .default("1")
        .help("Wait before a webhook delivery's first retry, 1 to 3600 seconds; each next wait doubles."),
    setting("webhooks.max_retry_seconds", "GIFTD_WEBHOOKS_MAX_RETRY_SECONDS", None, Kind::Integer)
        .default("3600")
        .help("Longest wait between two attempts of a webhook delivery, 1 to 86400 seconds."),
    setting("webhooks.retention_days", "GIFTD_WEBHOOKS_RETENTION_DAYS", None, Kind::Integer)
        .default("30")
        .help("Days webhook events, their deliveries and attempts are kept once none is pending, 1 to 3650."),
    setting("webhooks.ca_file", "GIFTD_WEBHOOKS_CA_FILE", None, Kind::Text)
        .example("/etc/giftd/webhook-ca.pem")
        .help("PEM certificates trusted for https webhook endpoints besides the system's roots (a private CA)."),
    setting("tls.cert", "GIFTD_TLS_CERT", Some("--tls-cert"), Kind::Text)
        .example("/etc/giftd/cert.pem")
        .help("PEM certificate chain: with tls.key, giftd serves HTTPS itself."),
    setting("tls.key", "GIFTD_TLS_KEY", Some("--tls-key"), Kind::Text)
        .example("/etc/giftd/key.pem")
        .help("PEM private key of tls.cert (PKCS#8, PKCS#1 or SEC1)."),
    setting("log.format", "GIFTD_LOG_FORMAT", Some("--log-format"), Kind::Text)
        .default("text")
        .help("text or json (one JSON object per line). Levels come from RUST_LOG (default info,sqlx=warn)."),
    setting("metrics.listen", "GIFTD_METRICS_LISTEN", Some("--metrics-listen"), Kind::Text)
        .example("127.0.0.1:9464")
        .help("Serve GET /metrics (Prometheus) on this address only, plain HTTP, instead of on the API's address."),
    setting("console.listen", "GIFTD_CONSOLE_LISTEN", Some("--console-listen"), Kind::Text)
        .example("127.0.0.1:8081")
        .help("Serve the staff console (/console) on this address only, instead of on the API's: keep it on loopback or a private network. Same TLS as the API."),
    setting("limits.request_timeout_seconds", "GIFTD_REQUEST_TIMEOUT_SECONDS", Some("--request-timeout-seconds"), Kind::Integer)
        .default("30")
        .help("A request not answered by then gets 408 (1 to 3600)."),
    setting("limits.max_body_bytes", "GIFTD_MAX_BODY_BYTES", Some("--max-body-bytes"), Kind::Integer)
        .default("65536")
        .help("Largest request body, in bytes (1024 to 16777216); larger is 413."),
    setting("limits.max_header_bytes", "GIFTD_MAX_HEADER_BYTES", Some("--max-header-bytes"), Kind::Integer)
        .default("16384")
        .help("Largest total size of a request's header names and values, in bytes (1024 to 1048576); larger is 431."),
    setting("limits.header_read_timeout_seconds", "GIFTD_HEADER_READ_TIMEOUT_SECONDS", Some("--header-read-timeout-seconds"), Kind::Integer)
        .default(HEADER_READ_TIMEOUT_SECONDS_TEXT)
        .help("Time a connection has to send a whole request head (1 to 3600 seconds): from its accept, TLS handshake included, and on a kept-alive connection from the next request's first byte. Then it is closed."),
    setting("limits.idle_timeout_seconds", "GIFTD_IDLE_TIMEOUT_SECONDS", Some("--idle-timeout-seconds"), Kind::Integer)
        .default(IDLE_TIMEOUT_SECONDS_TEXT)
        .help("Time a kept-alive connection may wait for its next request before it is closed (1 to 3600 seconds); behind a load balancer, keep it above the balancer's idle timeout."),
    setting("limits.max_connections", "GIFTD_MAX_CONNECTIONS", Some("--max-connections"), Kind::Integer)
        .example("1000")
        .help("Connections the API's address holds at once (1 to 1000000); more are closed as soon as they are accepted. Unset: what the open-file limit leaves after giftd's own files, at most 10000. A value that does not fit under the open-file limit stops the start."),
    setting("rate_limit.per_key", "GIFTD_RATE_LIMIT_PER_KEY", Some("--rate-limit-per-key"), Kind::Integer)
        .default("600")
        .help("Card lookups and security-code checks one API key may make per period (0: no limit)."),
    setting("rate_limit.per_address", "GIFTD_RATE_LIMIT_PER_ADDRESS", Some("--rate-limit-per-address"), Kind::Integer)
        .default("120")
        .help("Card lookups and security-code checks one client address may make per period (0: no limit)."),
    setting("rate_limit.period_seconds", "GIFTD_RATE_LIMIT_PERIOD_SECONDS", Some("--rate-limit-period-seconds"), Kind::Integer)
        .default("60")
        .help("The period of both rate limits, 1 to 86400 seconds; allowance comes back evenly over it."),
    setting("rate_limit.client_address_header", "GIFTD_CLIENT_ADDRESS_HEADER", Some("--client-address-header"), Kind::Text)
        .example("x-forwarded-for")
        .help("Behind a proxy you trust: the header it puts the client's address in (its last address is used). Unset: the connection's address."),
];

const DEFAULT_POOL_SIZE_TEXT: &str = "16";
const CLOVER_LOCK_SECONDS_TEXT: &str = "900";
const CHECKOUT_LEASE_SECONDS_TEXT: &str = "30";
/// A client on a slow mobile link sends a request head (a few hundred bytes) in well under a
/// second; ten leave room for a TLS handshake over a bad link and still free, soon, a connection
/// held by a client that sends nothing.
const HEADER_READ_TIMEOUT_SECONDS_TEXT: &str = "10";
/// Above the 60 s idle timeout of common load balancers (AWS's, nginx's upstream keep-alive),
/// so that the balancer, not giftd, closes an idle connection, and never sends a request on one
/// giftd has just closed.
const IDLE_TIMEOUT_SECONDS_TEXT: &str = "75";

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Environment(&'static str),
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Environment(name) => write!(f, "environment variable {name}"),
            Self::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// Raw values from every layer, before they are checked.
#[derive(Default)]
pub struct Layers {
    values: BTreeMap<&'static str, (String, Source)>,
}

impl Layers {
    /// Resolves the layers: defaults, then the file (when given), then `GIFTD_*` variables
    /// (`environment` says how to read one; empty counts as unset), then `flags` (setting key
    /// and value, for the flags given).
    pub fn resolve(
        file: Option<&Path>,
        environment: impl Fn(&str) -> Option<String>,
        flags: &[(&'static str, Option<String>)],
    ) -> anyhow::Result<Self> {
        let mut layers = Self::default();
        for setting in SETTINGS {
            if let Some(default) = setting.default {
                layers
                    .values
                    .insert(setting.key, (default.to_owned(), Source::Default));
            }
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
            for (key, value) in
                parse_file(&text).with_context(|| format!("in the configuration file {}", path.display()))?
            {
                layers.values.insert(key, (value, Source::File(path.to_owned())));
            }
        }
        for setting in SETTINGS {
            if let Some(value) = environment(setting.env).filter(|v| !v.is_empty()) {
                layers
                    .values
                    .insert(setting.key, (value, Source::Environment(setting.env)));
            }
        }
        for (key, value) in flags {
            let setting = find(key).with_context(|| format!("no setting is called {key}"))?;
            if let Some(value) = value {
                let flag = setting.flag.unwrap_or(setting.key);
                layers
                    .values
                    .insert(setting.key, (value.clone(), Source::Flag(flag)));
            }
        }
        Ok(layers)
    }

    fn raw(&self, key: &str) -> Option<&(String, Source)> {
        self.values.get(key)
    }

    /// The setting parsed as `T`, or an error naming it and the source of its value.
    fn parse<T>(&self, key: &'static str) -> anyhow::Result<Option<T>>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.raw(key) {
            None => Ok(None),
            Some((value, source)) => value.trim().parse::<T>().map(Some).map_err(|error| {
                let shown = if find(key).is_some_and(|s| s.secret) {
                    "***"
                } else {
                    value.as_str()
                };
                anyhow::anyhow!("invalid setting {key} = {shown:?} (from {source}): {error}")
            }),
        }
    }

    fn required<T>(&self, key: &'static str) -> anyhow::Result<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.parse(key)?
            .with_context(|| format!("the setting {key} has no value"))
    }

    /// An integer setting within `range`, or an error naming the setting.
    fn ranged(&self, key: &'static str, range: std::ops::RangeInclusive<u64>) -> anyhow::Result<u64> {
        let value: u64 = self.required(key)?;
        if !range.contains(&value) {
            let source = self.raw(key).map(|(_, s)| s.to_string()).unwrap_or_default();
            bail!(
                "invalid setting {key} = {value} (from {source}): must be from {} to {}",
                range.start(),
                range.end()
            );
        }
        Ok(value)
    }

    /// Every setting with a value, redacted, with where the value came from.
    pub fn show(&self) -> String {
        let mut out = String::new();
        for setting in SETTINGS {
            if let Some((value, source)) = self.raw(setting.key) {
                let shown = if setting.key == "database_url" {
                    DatabaseUrl::new(value.clone()).to_string()
                } else if setting.secret {
                    "***".to_owned()
                } else {
                    value.clone()
                };
                let _ = writeln!(
                    out,
                    "{} = {}  # {source}",
                    setting.key,
                    quote(setting.kind, &shown)
                );
            }
        }
        out
    }
}

fn find(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

fn quote(kind: Kind, value: &str) -> String {
    match kind {
        Kind::Integer => value.to_owned(),
        Kind::Text => toml::Value::String(value.to_owned()).to_string(),
    }
}

/// The settings a TOML file sets, by dotted key. Unknown keys and values of the wrong type are
/// errors that name the key.
fn parse_file(text: &str) -> anyhow::Result<Vec<(&'static str, String)>> {
    let table: toml::Table = text.parse().context("not valid TOML")?;
    let mut out = Vec::new();
    flatten("", &table, &mut out)?;
    Ok(out)
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(&'static str, String)>) -> anyhow::Result<()> {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if let toml::Value::Table(inner) = value
            && SETTINGS.iter().any(|s| s.key.starts_with(&format!("{key}.")))
        {
            flatten(&key, inner, out)?;
            continue;
        }
        let setting = find(&key).with_context(|| format!("unknown setting {key}"))?;
        let text = match (setting.kind, value) {
            (Kind::Text, toml::Value::String(text)) => text.clone(),
            (Kind::Integer, toml::Value::Integer(number)) => number.to_string(),
            (Kind::Text, _) => bail!("invalid setting {key}: expected a string"),
            (Kind::Integer, _) => bail!("invalid setting {key}: expected an integer"),
        };
        out.push((setting.key, text));
    }
    Ok(())
}

/// A commented example configuration file: every setting with its default, or commented out
/// with an example value when it has none.
pub fn example() -> String {
    let mut out = String::from(
        "# giftd configuration (TOML). Pass it with --config FILE or GIFTD_CONFIG=FILE.\n\
         # Precedence: flags, then GIFTD_* environment variables, then this file, then defaults.\n\
         # Unknown keys and invalid values stop giftd at start with a message naming the setting.\n",
    );
    let mut section = "";
    for setting in SETTINGS {
        let (table, name) = setting.key.rsplit_once('.').unwrap_or(("", setting.key));
        if table != section {
            let _ = write!(out, "\n[{table}]\n");
            section = table;
        } else {
            out.push('\n');
        }
        let _ = writeln!(out, "# {}", setting.help);
        let flag = setting.flag.map(|f| format!(", flag {f}")).unwrap_or_default();
        let _ = writeln!(out, "# (environment variable {}{flag})", setting.env);
        match (setting.default, setting.example) {
            (Some(default), _) => {
                let _ = writeln!(out, "{name} = {}", quote(setting.kind, default));
            }
            (None, Some(example)) => {
                let _ = writeln!(out, "# {name} = {}", quote(setting.kind, example));
            }
            (None, None) => {}
        }
    }
    out
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown log format {other:?}: use text or json")),
        }
    }
}

/// Where the database is and how to use it: what every command that opens it needs.
#[derive(Debug, Clone)]
pub struct Storage {
    pub data_dir: PathBuf,
    pub database_url: Option<DatabaseUrl>,
    pub master_key: Option<MasterKeyText>,
    pub pg_pool_size: u32,
    pub pg_isolation: Isolation,
    pub durability: Durability,
}

/// The master key as configured, in hex; `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKeyText(pub String);

impl Drop for MasterKeyText {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for MasterKeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKeyText(***)")
    }
}

/// A certificate chain and its key, both PEM files.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `public_url` as links are built from it: `http` or `https`, a host, perhaps a path, no
/// query or fragment; the trailing slash is dropped.
fn public_url(text: &str) -> anyhow::Result<String> {
    let invalid = |why: &str| anyhow::anyhow!("invalid setting public_url = {text:?}: {why}");
    let url = reqwest::Url::parse(text.trim()).map_err(|_| invalid("not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("use http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) || url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "give a scheme and host, perhaps a path, and no query or fragment",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("no user or password in it"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The certificates of `webhooks.ca_file`: at least one, each a PEM `CERTIFICATE`.
fn webhook_roots(path: &std::path::Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let invalid =
        |why: String| anyhow::anyhow!("invalid setting webhooks.ca_file = {}: {why}", path.display());
    let pem = std::fs::read(path).map_err(|error| invalid(format!("cannot read it ({error})")))?;
    let roots =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| invalid("not PEM certificates".into()))?;
    if roots.is_empty() {
        return Err(invalid("it holds no PEM certificate".into()));
    }
    Ok(roots)
}

/// Everything `giftd serve` needs, checked.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub clover_lock_seconds: i64,
    pub checkout_lease_seconds: i64,
    pub webhooks: giftd_service::webhooks::DeliveryPolicy,
    /// Extra roots for https webhook endpoints, read from `webhooks.ca_file`.
    pub webhook_roots: Vec<reqwest::Certificate>,
    pub retention: giftd_service::retention::RetentionPolicy,
    pub idempotency_retention_days: i64,
    pub tls: Option<Tls>,
    pub metrics_listen: Option<SocketAddr>,
    /// The console's own address; `None`: the console is on `listen`.
    pub console_listen: Option<SocketAddr>,
    /// `public_url`, checked, without a trailing slash.
    pub public_url: Option<String>,
    pub limits: Limits,
    /// See [`crate::listener::Limits`].
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// `None`: derived from the open-file limit when giftd serves
    /// ([`crate::listener::max_connections`]).
    pub max_connections: Option<u64>,
    pub rate_limits: RateLimits,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub storage: Storage,
    pub log_format: LogFormat,
    pub serve: ServeConfig,
}

impl Config {
    pub fn from_layers(layers: &Layers) -> anyhow::Result<Self> {
        let pool_size = layers.ranged("postgres.pool_size", 1..=10_000)?;
        let storage = Storage {
            data_dir: layers.required("data_dir")?,
            database_url: layers.parse::<String>("database_url")?.map(DatabaseUrl::new),
            master_key: layers.parse::<String>("master_key")?.map(MasterKeyText),
            pg_pool_size: u32::try_from(pool_size).unwrap_or(DEFAULT_POOL_SIZE),
            pg_isolation: layers.required("postgres.isolation")?,
            durability: layers.required("sqlite.durability")?,
        };
        let max_lock = u64::try_from(giftd_api::clover::MAX_LOCK_SECONDS).unwrap_or(u64::MAX);
        let clover_lock_seconds = layers.ranged("clover.lock_seconds", 1..=max_lock)?;
        let checkout_lease_seconds = layers.ranged("checkout.lease_seconds", 1..=3600)?;
        let first_retry_seconds = layers.ranged("webhooks.first_retry_seconds", 1..=3600)?;
        let max_retry_seconds = layers.ranged("webhooks.max_retry_seconds", 1..=86_400)?;
        if max_retry_seconds < first_retry_seconds {
            bail!("the setting webhooks.max_retry_seconds is below webhooks.first_retry_seconds");
        }
        let webhooks = giftd_service::webhooks::DeliveryPolicy {
            max_attempts: i64::try_from(layers.ranged("webhooks.max_attempts", 1..=100)?).unwrap_or(100),
            first_retry_millis: i64::try_from(first_retry_seconds * 1000).unwrap_or(i64::MAX),
            max_retry_millis: i64::try_from(max_retry_seconds * 1000).unwrap_or(i64::MAX),
            ..giftd_service::webhooks::DeliveryPolicy::default()
        };
        let retention = giftd_service::retention::RetentionPolicy {
            events_days: i64::try_from(layers.ranged("webhooks.retention_days", 1..=3650)?).unwrap_or(3650),
        };
        let webhook_roots = match layers.parse::<PathBuf>("webhooks.ca_file")? {
            None => Vec::new(),
            Some(path) => webhook_roots(&path)?,
        };
        let tls = match (
            layers.parse::<PathBuf>("tls.cert")?,
            layers.parse::<PathBuf>("tls.key")?,
        ) {
            (Some(cert), Some(key)) => Some(Tls { cert, key }),
            (None, None) => None,
            (Some(_), None) => bail!("the setting tls.cert is set but tls.key is not: give both or neither"),
            (None, Some(_)) => bail!("the setting tls.key is set but tls.cert is not: give both or neither"),
        };
        let limits = Limits {
            request_timeout: Duration::from_secs(layers.ranged("limits.request_timeout_seconds", 1..=3600)?),
            max_body_bytes: to_usize(layers.ranged("limits.max_body_bytes", 1024..=16 * 1024 * 1024)?),
            max_header_bytes: to_usize(layers.ranged("limits.max_header_bytes", 1024..=1024 * 1024)?),
        };
        let client_address_header = match layers.parse::<String>("rate_limit.client_address_header")? {
            None => None,
            Some(name) => Some(
                axum::http::HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                    anyhow::anyhow!(
                        "invalid setting rate_limit.client_address_header = {name:?}: not a header name"
                    )
                })?,
            ),
        };
        let rate_limits = RateLimits {
            per_key: u32::try_from(layers.ranged("rate_limit.per_key", 0..=1_000_000)?).unwrap_or(u32::MAX),
            per_address: u32::try_from(layers.ranged("rate_limit.per_address", 0..=1_000_000)?)
                .unwrap_or(u32::MAX),
            period: Duration::from_secs(layers.ranged("rate_limit.period_seconds", 1..=86_400)?),
            client_address_header,
        };
        Ok(Self {
            storage,
            log_format: layers.required("log.format")?,
            serve: ServeConfig {
                listen: layers.required("listen")?,
                clover_lock_seconds: i64::try_from(clover_lock_seconds).unwrap_or(i64::MAX),
                checkout_lease_seconds: i64::try_from(checkout_lease_seconds).unwrap_or(i64::MAX),
                webhooks,
                webhook_roots,
                retention,
                idempotency_retention_days: i64::try_from(
                    layers.ranged("idempotency.retention_days", 1..=3650)?,
                )
                .unwrap_or(3650),
                tls,
                metrics_listen: layers.parse("metrics.listen")?,
                console_listen: layers.parse("console.listen")?,
                public_url: match layers.parse::<String>("public_url")? {
                    None => None,
                    Some(url) => Some(public_url(&url)?),
                },
                limits,
                header_read_timeout: Duration::from_secs(
                    layers.ranged("limits.header_read_timeout_seconds", 1..=3600)?,
                ),
                idle_timeout: Duration::from_secs(layers.ranged("limits.idle_timeout_seconds", 1..=3600)?),
                max_connections: match layers.raw("limits.max_connections") {
                    None => None,
                    Some(_) => Some(layers.ranged("limits.max_connections", 1..=1_000_000)?),
                },
                rate_limits,
            },
        })
    }
}

fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_environment(_: &str) -> Option<String> {
        None
    }

    fn resolve(
        file: &str,
        environment: &[(&str, &str)],
        flags: &[(&'static str, Option<String>)],
    ) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("giftd.toml");
        std::fs::write(&path, file).expect("write the file");
        let environment: BTreeMap<String, String> = environment
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let layers = Layers::resolve(Some(&path), |name| environment.get(name).cloned(), flags)?;
        Config::from_layers(&layers)
    }

    #[test]
    fn the_example_parses_and_gives_the_defaults() {
        let config = resolve(&example(), &[], &[]).expect("the example parses");
        let defaults = Config::from_layers(&Layers::resolve(None, no_environment, &[]).expect("defaults"))
            .expect("defaults parse");
        assert_eq!(config.serve.listen, defaults.serve.listen);
        assert_eq!(config.storage.pg_pool_size, DEFAULT_POOL_SIZE);
        assert_eq!(
            config.serve.clover_lock_seconds,
            giftd_api::clover::DEFAULT_LOCK_SECONDS
        );
        assert_eq!(
            config.serve.checkout_lease_seconds,
            giftd_service::checkout::DEFAULT_LEASE_SECONDS
        );
        assert_eq!(config.serve.limits, Limits::default());
        assert_eq!(config.serve.header_read_timeout, Duration::from_secs(10));
        assert_eq!(config.serve.idle_timeout, Duration::from_secs(75));
        assert_eq!(
            config.serve.max_connections, None,
            "by default the limit comes from the open-file limit"
        );
    }

    #[test]
    fn the_example_with_every_line_uncommented_parses() {
        let uncommented: String = example()
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if rest.contains(" = ") => format!("{rest}\n"),
                _ => format!("{line}\n"),
            })
            .collect::<String>()
            .replace("\"64 hex digits\"", &format!("\"{}\"", "ab".repeat(32)));
        // The CA file is read at start: point the example's at a real one.
        let dir = tempfile::tempdir().expect("a temporary folder");
        let ca_file = dir.path().join("webhook-ca.pem");
        let ca = rcgen::generate_simple_self_signed(vec!["ca.example".to_owned()]).expect("a certificate");
        std::fs::write(&ca_file, ca.cert.pem()).expect("write the CA file");
        let uncommented = uncommented.replace("/etc/giftd/webhook-ca.pem", &ca_file.to_string_lossy());
        let config = resolve(&uncommented, &[], &[]).expect("the uncommented example parses");
        assert_eq!(config.serve.webhook_roots.len(), 1);
        assert!(config.serve.tls.is_some());
        assert!(config.serve.metrics_listen.is_some());
        assert!(config.serve.console_listen.is_some());
        assert_eq!(
            config.serve.public_url.as_deref(),
            Some("https://gift.example.com")
        );
        assert!(config.storage.database_url.is_some());
        assert_eq!(config.serve.max_connections, Some(1000));
    }

    #[test]
    fn a_public_url_is_a_plain_http_or_https_base_and_loses_its_trailing_slash() {
        let config = resolve(
            "",
            &[("GIFTD_PUBLIC_URL", "https://gift.example.com/cards/")],
            &[],
        )
        .expect("parses");
        assert_eq!(
            config.serve.public_url.as_deref(),
            Some("https://gift.example.com/cards")
        );
        for refused in [
            "gift.example.com",
            "ftp://gift.example.com",
            "https://gift.example.com/?a=1",
            "https://gift.example.com/#top",
            "https://user:pw@gift.example.com",
        ] {
            let error = resolve("", &[("GIFTD_PUBLIC_URL", refused)], &[]).expect_err(refused);
            assert!(
                format!("{error:#}").contains("invalid setting public_url"),
                "{error:#}"
            );
        }
    }

    #[test]
    fn connection_timeouts_and_the_connection_limit_are_read_from_every_layer_and_refuse_zero() {
        let config = resolve(
            "[limits]\nheader_read_timeout_seconds = 5\n",
            &[("GIFTD_IDLE_TIMEOUT_SECONDS", "30")],
            &[("limits.max_connections", Some("200".into()))],
        )
        .expect("parses");
        assert_eq!(config.serve.header_read_timeout, Duration::from_secs(5));
        assert_eq!(config.serve.idle_timeout, Duration::from_secs(30));
        assert_eq!(config.serve.max_connections, Some(200));
        for (key, environment) in [
            (
                "limits.header_read_timeout_seconds",
                "GIFTD_HEADER_READ_TIMEOUT_SECONDS",
            ),
            ("limits.idle_timeout_seconds", "GIFTD_IDLE_TIMEOUT_SECONDS"),
            ("limits.max_connections", "GIFTD_MAX_CONNECTIONS"),
        ] {
            let error = resolve("", &[(environment, "0")], &[]).expect_err("zero is refused");
            let message = format!("{error:#}");
            assert!(
                message.contains(&format!("{key} = 0")) && message.contains("must be from 1"),
                "{message}"
            );
        }
    }

    #[test]
    fn flags_win_over_the_environment_which_wins_over_the_file() {
        let file =
            "listen = \"127.0.0.1:1001\"\n[postgres]\npool_size = 3\n[sqlite]\ndurability = \"normal\"\n";
        let config = resolve(
            file,
            &[("GIFTD_LISTEN", "127.0.0.1:1002"), ("GIFTD_PG_POOL_SIZE", "4")],
            &[
                ("listen", Some("127.0.0.1:1003".into())),
                ("postgres.pool_size", None),
            ],
        )
        .expect("parses");
        assert_eq!(config.serve.listen.port(), 1003);
        assert_eq!(config.storage.pg_pool_size, 4);
        assert_eq!(config.storage.durability, Durability::Normal);
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        let error = resolve("[postgres]\npool_sise = 3\n", &[], &[]).expect_err("refused");
        assert!(
            format!("{error:#}").contains("unknown setting postgres.pool_sise"),
            "{error:#}"
        );
        let error = resolve("colour = \"blue\"\n", &[], &[]).expect_err("refused");
        assert!(
            format!("{error:#}").contains("unknown setting colour"),
            "{error:#}"
        );
    }

    #[test]
    fn an_invalid_value_is_refused_naming_the_setting_and_its_source() {
        let error = resolve("", &[("GIFTD_PG_ISOLATION", "snapshot")], &[]).expect_err("refused");
        let message = format!("{error:#}");
        assert!(
            message.contains("postgres.isolation") && message.contains("GIFTD_PG_ISOLATION"),
            "{message}"
        );
        let error = resolve("[clover]\nlock_seconds = 0\n", &[], &[]).expect_err("refused");
        assert!(
            format!("{error:#}").contains("clover.lock_seconds = 0"),
            "{error:#}"
        );
        let error = resolve("[postgres]\npool_size = \"many\"\n", &[], &[]).expect_err("refused");
        assert!(format!("{error:#}").contains("postgres.pool_size"), "{error:#}");
        let error = resolve("[tls]\ncert = \"c.pem\"\n", &[], &[]).expect_err("refused");
        assert!(format!("{error:#}").contains("tls.key"), "{error:#}");
        let dir = tempfile::tempdir().expect("a temporary folder");
        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "hello").expect("write the file");
        for path in [dir.path().join("missing.pem"), not_pem] {
            let file = format!("[webhooks]\nca_file = {:?}\n", path.to_string_lossy());
            let error = resolve(&file, &[], &[]).expect_err("refused");
            assert!(format!("{error:#}").contains("webhooks.ca_file"), "{error:#}");
        }
    }

    #[test]
    fn secrets_are_redacted_when_shown() {
        let environment = BTreeMap::from([
            (
                "GIFTD_DATABASE_URL".to_owned(),
                "postgres://giftd:s3cret@db/giftd".to_owned(),
            ),
            ("GIFTD_MASTER_KEY".to_owned(), "cd".repeat(32)),
        ]);
        let layers = Layers::resolve(None, |name| environment.get(name).cloned(), &[]).expect("resolves");
        let shown = layers.show();
        assert!(shown.contains("postgres://giftd:***@db/giftd"), "{shown}");
        assert!(
            !shown.contains("s3cret") && !shown.contains(&"cd".repeat(32)),
            "{shown}"
        );
        let config = Config::from_layers(&layers).expect("parses");
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains(&"cd".repeat(32)),
            "{debug}"
        );
    }
}
