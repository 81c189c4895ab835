//! The `giftd` binary: `serve`, `migrate`, `verify`, `backup`, `merchants create`, `report`,
//! `cards generate|import` and `config`. It wires
//! configuration (flags, then `GIFTD_*` environment variables, then the `--config` file, then
//! defaults: see `config.rs`) to the store, the service and the HTTP app; it holds no business
//! logic of its own.

mod config;
mod listener;
mod remote;
mod serve;
mod stock;

/// mimalloc instead of glibc's malloc: under load, glibc's `malloc`, `free` and their
/// consolidation were about a quarter of the server's CPU, and a fifth of the SQLite writer
/// thread's, which every write waits for (docs/BENCHMARKS.md, run 10).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use giftd_service::{MasterKey, Service, SystemClock};
use giftd_store::Backend;
use giftd_store::postgres::PgOptions;

use config::{Config, Layers, LogFormat, Storage};

#[derive(Parser)]
#[command(
    name = "giftd",
    version,
    about = "A self-hosted gift card platform over a double-entry ledger"
)]
struct Cli {
    /// A TOML configuration file (`giftd config example` prints one). Flags and `GIFTD_*`
    /// variables override it.
    #[arg(long, global = true, env = "GIFTD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Serve the HTTP API (migrations are applied first).
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(StorageArgs),
    /// Recompute every balance from the ledger and check its invariants; exit 1 on any violation.
    Verify(StorageArgs),
    /// Copy the embedded SQLite database to a new file while giftd may be serving (online,
    /// consistent). Keep the master key (GIFTD_MASTER_KEY or master.key) with it, apart.
    Backup {
        /// The new file to write.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Manage merchants (tenants).
    Merchants {
        #[command(subcommand)]
        command: MerchantCommands,
    },
    /// A merchant's API keys: create (shown once), list, revoke.
    ApiKeys {
        #[command(subcommand)]
        command: ApiKeyCommands,
    },
    /// A merchant's staff accounts: create one (the first owner, say) with a temporary password.
    Staff {
        #[command(subcommand)]
        command: StaffCommands,
    },
    /// The audit trail: who did what, from where, when.
    Audit {
        #[command(subcommand)]
        command: AuditCommands,
    },
    /// Finance reports from the ledger (not the cached balances), as JSON or --csv.
    Report {
        #[command(subcommand)]
        command: ReportCommands,
    },
    /// Card stock in bulk: generate inactive cards for a printer, or import migrated cards.
    Cards {
        #[command(subcommand)]
        command: CardCommands,
    },
    /// Print an example configuration file, or the configuration in effect.
    Config {
        #[command(subcommand)]
        command: ConfigCommands,
    },
}

#[derive(Subcommand)]
enum ConfigCommands {
    /// Print a commented example configuration file with every setting and its default.
    Example,
    /// Print the configuration `giftd serve` would run with (same flags), secrets redacted,
    /// each setting with where its value came from.
    Show(Box<ServeArgs>),
}

#[derive(Subcommand)]
enum MerchantCommands {
    /// Create a merchant and print its API key (shown once, stored hashed).
    Create {
        name: String,
        /// Print `{"merchant_id", "api_key"}` as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommands {
    /// Create a key and print it (shown once, stored hashed).
    Create {
        /// The merchant's id (`mer_...`).
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        name: String,
        /// `full`, `pos` or `read_only`.
        #[arg(long, default_value = "full")]
        scope: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// List the merchant's keys as JSON (never the keys themselves).
    List {
        #[arg(long)]
        merchant: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Revoke a key: it stops working (within a minute on a running server).
    Revoke {
        #[arg(long)]
        merchant: String,
        /// The key's id (`key_...`).
        id: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Subcommand)]
enum AuditCommands {
    /// Print a merchant's audit trail as CSV with a header line, newest first.
    Export {
        /// The merchant's id (`mer_...`).
        #[arg(long)]
        merchant: String,
        /// YYYY-MM-DD (UTC): rows from the start of that day.
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// YYYY-MM-DD (UTC): rows up to the end of that day.
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Subcommand)]
enum StaffCommands {
    /// Create a staff account and print it as JSON with its temporary password (shown once,
    /// stored hashed; it must be changed at the first sign-in, and stops working after 7 days).
    Create {
        /// The merchant's id (`mer_...`).
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        email: String,
        /// `owner`, `admin`, `support`, `finance`, `developer` or `viewer`.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Subcommand)]
enum ReportCommands {
    /// Outstanding liability per program and currency at the end of a day (UTC).
    Liability {
        /// YYYY-MM-DD; default today.
        #[arg(long, value_name = "DATE")]
        as_of: Option<String>,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Transactions per day (UTC), program, currency and type, FROM to TO included.
    Activity {
        #[arg(long, value_name = "DATE")]
        from: String,
        #[arg(long, value_name = "DATE")]
        to: String,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Cards with value and no transaction for MONTHS months before the day: breakage and
    /// escheatment candidates.
    Dormant {
        #[arg(long, value_name = "MONTHS")]
        months: u32,
        /// YYYY-MM-DD; default today.
        #[arg(long, value_name = "DATE")]
        as_of: Option<String>,
        #[command(flatten)]
        report: ReportArgs,
    },
}

#[derive(Args, Clone, Default)]
struct ReportArgs {
    /// CSV with a header line instead of JSON.
    #[arg(long)]
    csv: bool,
    /// Only this merchant's cards (default: every merchant).
    #[arg(long, value_name = "ID")]
    merchant: Option<String>,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Subcommand)]
enum CardCommands {
    /// Create COUNT inactive physical cards of a program and write their numbers and security
    /// codes, once, to a new CSV file (mode 0600). Without --server: in one transaction on the
    /// database (all or nothing; on SQLite only while no server runs). With --server: through
    /// the running server, in batches of up to 10,000 cards, each whole.
    Generate {
        #[arg(long, value_name = "PROGRAM_ID")]
        program: String,
        #[arg(long, value_name = "N")]
        count: usize,
        /// The new file for the card printer.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Import cards migrated from another processor, with their balances as ledger entries:
    /// every row is checked first, then all are written in one transaction (all or nothing);
    /// the same file imported again is recognised and not written twice.
    Import {
        /// CSV with a header: number, security_code, and optionally balance, currency, state,
        /// kind, expires_at (docs/OPERATIONS.md).
        file: PathBuf,
        #[arg(long, value_name = "PROGRAM_ID")]
        program: String,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Fetch the printer's file a running server still keeps for a batch (a `generate
    /// --server` run cut short), write it to a new file (mode 0600), and have the server drop
    /// it.
    Collect {
        #[arg(long, value_name = "BATCH_ID")]
        batch: String,
        /// The new file for the card printer.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The running giftd, `http://host:port` [GIFTD_SERVER]; the credential comes from
        /// GIFTD_API_KEY.
        #[arg(long, env = "GIFTD_SERVER", value_name = "URL")]
        server: String,
    },
}

/// Where a card stock command sends its work instead of writing the database itself.
#[derive(Args, Clone, Default)]
struct ServerArgs {
    /// Make the batch through the running giftd at this address (`http://host:port`) instead
    /// of writing the database: no downtime [GIFTD_SERVER]. The credential comes from
    /// GIFTD_API_KEY (an API key of scope full, or an owner's or admin's session token).
    #[arg(long, env = "GIFTD_SERVER", value_name = "URL")]
    server: Option<String>,
}

/// Storage flags, on every command that opens the database. Each overrides its `GIFTD_*`
/// variable and the configuration file (see `giftd config example` for the settings).
#[derive(Args, Clone, Default)]
struct StorageArgs {
    /// Folder for the embedded database and the generated master key [GIFTD_DATA_DIR; default
    /// giftd-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// `postgres://user:password@host:port/database` to use PostgreSQL instead of SQLite in the
    /// data folder [GIFTD_DATABASE_URL]. Never printed with its password.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// PostgreSQL connections this process may open [GIFTD_PG_POOL_SIZE; default 16].
    #[arg(long, value_name = "N")]
    pg_pool_size: Option<String>,
    /// Isolation of PostgreSQL write transactions: `read-committed` (default) or
    /// `serializable` (conflicts are retried) [GIFTD_PG_ISOLATION].
    #[arg(long, value_name = "LEVEL")]
    pg_isolation: Option<String>,
    /// `full` (default): an answered request survives power loss. `normal`: faster, but the
    /// last commits may be lost on power loss (never on a crash of giftd alone)
    /// [GIFTD_DURABILITY].
    #[arg(long, value_name = "MODE")]
    durability: Option<String>,
}

impl StorageArgs {
    fn flags(&self) -> Vec<(&'static str, Option<String>)> {
        vec![
            ("data_dir", self.data_dir.clone()),
            ("database_url", self.database_url.clone()),
            ("postgres.pool_size", self.pg_pool_size.clone()),
            ("postgres.isolation", self.pg_isolation.clone()),
            ("sqlite.durability", self.durability.clone()),
        ]
    }
}

/// `giftd serve`'s flags. Each overrides its `GIFTD_*` variable and the configuration file.
#[derive(Args, Clone, Default)]
struct ServeArgs {
    /// Address to listen on [GIFTD_LISTEN; default 127.0.0.1:8080].
    #[arg(long, value_name = "ADDRESS")]
    listen: Option<String>,
    /// How long a lock of the Clover facade (a charge with `capture: false`) reserves value,
    /// in seconds, 1 to 604800 [GIFTD_CLOVER_LOCK_SECONDS; default 900].
    #[arg(long, value_name = "SECONDS")]
    clover_lock_seconds: Option<String>,
    /// How long the checkout recovery loop leaves a checkout to the request driving it, in
    /// seconds, 1 to 3600; after that, a checkout left mid-way (giftd stopped) is resumed or
    /// compensated. Keep it above the payment processor's longest call
    /// [GIFTD_CHECKOUT_LEASE_SECONDS].
    #[arg(long, value_name = "SECONDS")]
    checkout_lease_seconds: Option<String>,
    /// PEM certificate chain; with --tls-key, giftd serves HTTPS [GIFTD_TLS_CERT].
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<String>,
    /// PEM private key of --tls-cert [GIFTD_TLS_KEY].
    #[arg(long, value_name = "FILE")]
    tls_key: Option<String>,
    /// `text` (default) or `json`, one object per line [GIFTD_LOG_FORMAT].
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Serve GET /metrics on this address only (plain HTTP) instead of on --listen
    /// [GIFTD_METRICS_LISTEN].
    #[arg(long, value_name = "ADDRESS")]
    metrics_listen: Option<String>,
    /// Serve the staff console (/console) on this address only instead of on --listen; keep it
    /// on loopback or a private network [GIFTD_CONSOLE_LISTEN].
    #[arg(long, value_name = "ADDRESS")]
    console_listen: Option<String>,
    /// Where cardholders reach this server, e.g. https://gift.example.com: cardholder links
    /// point there [GIFTD_PUBLIC_URL; default: the scheme served and the request's Host].
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Seconds before an unanswered request gets 408 [GIFTD_REQUEST_TIMEOUT_SECONDS; default 30].
    #[arg(long, value_name = "SECONDS")]
    request_timeout_seconds: Option<String>,
    /// Largest request body in bytes [GIFTD_MAX_BODY_BYTES; default 65536].
    #[arg(long, value_name = "BYTES")]
    max_body_bytes: Option<String>,
    /// Largest total of header names and values in bytes [GIFTD_MAX_HEADER_BYTES; default 16384].
    #[arg(long, value_name = "BYTES")]
    max_header_bytes: Option<String>,
    /// Seconds a connection has to send a whole request head, TLS handshake included
    /// [GIFTD_HEADER_READ_TIMEOUT_SECONDS; default 10].
    #[arg(long, value_name = "SECONDS")]
    header_read_timeout_seconds: Option<String>,
    /// Seconds a kept-alive connection may wait for its next request
    /// [GIFTD_IDLE_TIMEOUT_SECONDS; default 75].
    #[arg(long, value_name = "SECONDS")]
    idle_timeout_seconds: Option<String>,
    /// Connections held at once; more are closed at once [GIFTD_MAX_CONNECTIONS; default: what
    /// the open-file limit leaves, at most 10000].
    #[arg(long, value_name = "N")]
    max_connections: Option<String>,
    /// Card lookups and security-code checks per API key per period, 0 for none
    /// [GIFTD_RATE_LIMIT_PER_KEY; default 600].
    #[arg(long, value_name = "N")]
    rate_limit_per_key: Option<String>,
    /// Card lookups and security-code checks per client address per period, 0 for none
    /// [GIFTD_RATE_LIMIT_PER_ADDRESS; default 120].
    #[arg(long, value_name = "N")]
    rate_limit_per_address: Option<String>,
    /// The rate limits' period in seconds [GIFTD_RATE_LIMIT_PERIOD_SECONDS; default 60].
    #[arg(long, value_name = "SECONDS")]
    rate_limit_period_seconds: Option<String>,
    /// Header a trusted proxy puts the client address in, e.g. x-forwarded-for
    /// [GIFTD_CLIENT_ADDRESS_HEADER].
    #[arg(long, value_name = "NAME")]
    client_address_header: Option<String>,
    #[command(flatten)]
    storage: StorageArgs,
}

impl ServeArgs {
    fn flags(&self) -> Vec<(&'static str, Option<String>)> {
        let mut flags = vec![
            ("listen", self.listen.clone()),
            ("clover.lock_seconds", self.clover_lock_seconds.clone()),
            ("checkout.lease_seconds", self.checkout_lease_seconds.clone()),
            ("tls.cert", self.tls_cert.clone()),
            ("tls.key", self.tls_key.clone()),
            ("log.format", self.log_format.clone()),
            ("metrics.listen", self.metrics_listen.clone()),
            ("console.listen", self.console_listen.clone()),
            ("public_url", self.public_url.clone()),
            (
                "limits.request_timeout_seconds",
                self.request_timeout_seconds.clone(),
            ),
            ("limits.max_body_bytes", self.max_body_bytes.clone()),
            ("limits.max_header_bytes", self.max_header_bytes.clone()),
            (
                "limits.header_read_timeout_seconds",
                self.header_read_timeout_seconds.clone(),
            ),
            ("limits.idle_timeout_seconds", self.idle_timeout_seconds.clone()),
            ("limits.max_connections", self.max_connections.clone()),
            ("rate_limit.per_key", self.rate_limit_per_key.clone()),
            ("rate_limit.per_address", self.rate_limit_per_address.clone()),
            (
                "rate_limit.period_seconds",
                self.rate_limit_period_seconds.clone(),
            ),
            (
                "rate_limit.client_address_header",
                self.client_address_header.clone(),
            ),
        ];
        flags.extend(self.storage.flags());
        flags
    }
}

impl Commands {
    /// The flags given that set a configuration setting.
    fn flags(&self) -> Vec<(&'static str, Option<String>)> {
        match self {
            Self::Serve(args) => args.flags(),
            Self::Config {
                command: ConfigCommands::Show(args),
            } => args.flags(),
            Self::Migrate(storage)
            | Self::Verify(storage)
            | Self::Backup { storage, .. }
            | Self::Merchants {
                command: MerchantCommands::Create { storage, .. },
            }
            | Self::ApiKeys {
                command:
                    ApiKeyCommands::Create { storage, .. }
                    | ApiKeyCommands::List { storage, .. }
                    | ApiKeyCommands::Revoke { storage, .. },
            }
            | Self::Staff {
                command: StaffCommands::Create { storage, .. },
            }
            | Self::Audit {
                command: AuditCommands::Export { storage, .. },
            }
            | Self::Cards {
                command: CardCommands::Generate { storage, .. } | CardCommands::Import { storage, .. },
            } => storage.flags(),
            Self::Cards {
                command: CardCommands::Collect { .. },
            } => Vec::new(),
            Self::Report {
                command:
                    ReportCommands::Liability { report, .. }
                    | ReportCommands::Activity { report, .. }
                    | ReportCommands::Dormant { report, .. },
            } => report.storage.flags(),
            Self::Config {
                command: ConfigCommands::Example,
            } => Vec::new(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Commands::Config {
        command: ConfigCommands::Example,
    } = &cli.command
    {
        print!("{}", config::example());
        return ExitCode::SUCCESS;
    }
    // Every setting is checked before anything starts: a bad one stops giftd here, named.
    let checked = Layers::resolve(
        cli.config.as_deref(),
        |name| std::env::var(name).ok(),
        &cli.command.flags(),
    )
    .and_then(|layers| Config::from_layers(&layers).map(|config| (layers, config)));
    let (layers, config) = match checked {
        Ok(checked) => checked,
        Err(error) => {
            eprintln!("giftd: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Commands::Config {
        command: ConfigCommands::Show(_),
    } = &cli.command
    {
        print!("{}", layers.show());
        return ExitCode::SUCCESS;
    }
    init_logs(config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("giftd: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("giftd: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Log lines go to stderr, as text or as one JSON object per line. Each line written while a
/// request is handled carries its `request_id` (text: in the `request{...}` prefix; JSON: in
/// `span` and `spans`).
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).init(),
    }
}

async fn run(command: Commands, config: Config) -> anyhow::Result<ExitCode> {
    let storage = &config.storage;
    match command {
        Commands::Serve(_) => serve(&config).await,
        // Handled before the runtime starts.
        Commands::Config { .. } => Ok(ExitCode::SUCCESS),
        Commands::Migrate(_) => {
            let backend = backend(storage)?;
            if matches!(backend, Backend::Sqlite { .. }) {
                prepare_data_dir(&storage.data_dir)?;
            }
            backend.migrate().await?;
            println!("migrations applied to {}", backend.describe());
            Ok(ExitCode::SUCCESS)
        }
        Commands::Verify(_) => verify(storage).await,
        Commands::Backup { out, .. } => {
            let backend = backend(storage)?;
            backend.backup(&out).await?;
            println!("backed up {} to {}", backend.describe(), out.display());
            println!(
                "keep the master key with the backup, stored apart: without it card numbers cannot be read"
            );
            Ok(ExitCode::SUCCESS)
        }
        Commands::Report { command } => {
            let service = open(storage).await?;
            let done = report(&service, command).await;
            service.store().close().await;
            done?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Cards { command } => {
            match &command {
                CardCommands::Generate {
                    program,
                    count,
                    out,
                    server: ServerArgs { server: Some(server) },
                    ..
                } => return remote::generate(&remote::Remote::new(server)?, program, *count, out).await,
                CardCommands::Import {
                    file,
                    program,
                    server: ServerArgs { server: Some(server) },
                    ..
                } => return remote::import(&remote::Remote::new(server)?, program, file).await,
                CardCommands::Collect { batch, out, server } => {
                    return remote::collect(&remote::Remote::new(server)?, batch, out).await;
                }
                CardCommands::Generate { .. } | CardCommands::Import { .. } => {}
            }
            let _lock = claim_sqlite_folder(storage, "giftd cards").context(
                "or leave it running and make the batch through it: add --server http://HOST:PORT, with GIFTD_API_KEY set",
            )?;
            let service = open(storage).await?;
            let done = match command {
                CardCommands::Generate {
                    program, count, out, ..
                } => stock::generate(&service, &program, count, &out).await,
                CardCommands::Import { file, program, .. } => stock::import(&service, &program, &file).await,
                CardCommands::Collect { .. } => unreachable!("answered above, through the server"),
            };
            service.store().close().await;
            done
        }
        Commands::ApiKeys { command } => {
            let service = open(storage).await?;
            let done = api_keys(&service, command).await;
            service.store().close().await;
            done?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Staff {
            command:
                StaffCommands::Create {
                    merchant,
                    email,
                    role,
                    ..
                },
        } => {
            let service = open(storage).await?;
            let done = create_staff(&service, &merchant, email, &role).await;
            service.store().close().await;
            done?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Audit {
            command: AuditCommands::Export {
                merchant, from, to, ..
            },
        } => {
            let merchant = giftd_domain::MerchantId::parse(&merchant)
                .ok_or_else(|| anyhow::anyhow!("--merchant must be a merchant id (mer_...)"))?;
            let from = from
                .as_deref()
                .map(|d| stock::date(Some(d), "from"))
                .transpose()?;
            let to = to.as_deref().map(|d| stock::date(Some(d), "to")).transpose()?;
            let service = open(storage).await?;
            let exported = service
                .export_audit_csv(
                    &merchant,
                    from.map(giftd_domain::Date::start),
                    to.map(|day| day.end().plus_millis(1)),
                    std::io::stdout().lock(),
                )
                .await;
            service.store().close().await;
            let rows = exported?;
            eprintln!("{rows} rows");
            Ok(ExitCode::SUCCESS)
        }
        Commands::Merchants {
            command: MerchantCommands::Create { name, json, .. },
        } => {
            let service = open(storage).await?;
            let created = service.create_merchant(&name).await;
            service.store().close().await;
            let created = created?;
            if json {
                let out = serde_json::json!({ "merchant_id": created.merchant_id.as_str(), "api_key": created.api_key });
                println!("{out}");
            } else {
                println!(
                    "merchant_id: {}\napi_key:     {}\n(the key is shown only now; giftd keeps only its hash)",
                    created.merchant_id, created.api_key
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `giftd api-keys ...`: each a service call, its answer printed as JSON.
async fn api_keys(service: &Service, command: ApiKeyCommands) -> anyhow::Result<()> {
    use giftd_service::api_keys::{ApiKeyOutcome, NewApiKey};
    let merchant_of = |id: &str| {
        giftd_domain::MerchantId::parse(id)
            .ok_or_else(|| anyhow::anyhow!("--merchant must be a merchant id (mer_...)"))
    };
    let key_json = |key: &giftd_service::views::ApiKeyRecord, secret: Option<&str>| {
        serde_json::json!({
            "id": key.id.as_str(), "name": key.name, "scope": key.scope.as_str(), "prefix": key.prefix,
            "key": secret, "created_at": key.created_at.unix_millis(),
            "expires_at": key.expires_at.map(|at| at.unix_millis()),
            "revoked_at": key.revoked_at.map(|at| at.unix_millis()),
            "last_used_at": key.last_used_at.map(|at| at.unix_millis()),
        })
    };
    let printed = move |result: &Result<ApiKeyOutcome, giftd_service::Refusal>| {
        let body = match result {
            Ok(ApiKeyOutcome::Created { key, secret }) => key_json(key, Some(secret.expose())),
            Ok(ApiKeyOutcome::Key(key)) => key_json(key, None),
            Ok(ApiKeyOutcome::Touched) => serde_json::json!({}),
            Err(refusal) => serde_json::json!({"error": refusal.to_string()}),
        };
        giftd_service::Rendered {
            status: if result.is_ok() { 200 } else { 400 },
            body: body.to_string().into_bytes(),
        }
    };
    let rendered = match command {
        ApiKeyCommands::Create {
            merchant,
            name,
            scope,
            ..
        } => {
            let scope = giftd_domain::Scope::parse(&scope)
                .ok_or_else(|| anyhow::anyhow!("--scope must be full, pos or read_only"))?;
            let new = NewApiKey {
                name,
                scope,
                expires_at: None,
            };
            let merchant = merchant_of(&merchant)?;
            let context = giftd_service::audit::RequestContext::cli(&merchant, "giftd api-keys create");
            giftd_service::audit::within(
                context,
                service.create_api_key(merchant, new, None, Box::new(printed)),
            )
            .await?
        }
        ApiKeyCommands::Revoke { merchant, id, .. } => {
            let id =
                giftd_domain::ApiKeyId::parse(&id).ok_or_else(|| anyhow::anyhow!("the key id is key_..."))?;
            let merchant = merchant_of(&merchant)?;
            let context = giftd_service::audit::RequestContext::cli(&merchant, "giftd api-keys revoke");
            giftd_service::audit::within(
                context,
                service.revoke_api_key(merchant, id, None, Box::new(printed)),
            )
            .await?
        }
        ApiKeyCommands::List { merchant, .. } => {
            let keys = service.api_keys(&merchant_of(&merchant)?).await?;
            let list: Vec<_> = keys.iter().map(|key| key_json(key, None)).collect();
            println!("{}", serde_json::Value::Array(list));
            return Ok(());
        }
    };
    println!("{}", String::from_utf8_lossy(&rendered.body));
    if rendered.status != 200 {
        anyhow::bail!("refused");
    }
    Ok(())
}

/// `giftd staff create`: the account as JSON, with its temporary password.
async fn create_staff(service: &Service, merchant: &str, email: String, role: &str) -> anyhow::Result<()> {
    use giftd_service::staff::{NewStaff, StaffOutcome};
    let merchant = giftd_domain::MerchantId::parse(merchant)
        .ok_or_else(|| anyhow::anyhow!("--merchant must be a merchant id (mer_...)"))?;
    let role = giftd_domain::Role::parse(role).ok_or_else(|| {
        anyhow::anyhow!("--role must be owner, admin, support, finance, developer or viewer")
    })?;
    let printed = |result: &Result<StaffOutcome, giftd_service::Refusal>| {
        let (status, body) = match result {
            Ok(StaffOutcome::WithTemporaryPassword {
                member,
                temporary_password,
            }) => (
                200,
                serde_json::json!({
                    "id": member.id.as_str(), "merchant_id": member.merchant_id.as_str(),
                    "email": member.email, "role": member.role.as_str(),
                    "temporary_password": temporary_password.expose(),
                }),
            ),
            Ok(_) => (500, serde_json::json!({"error": "unexpected outcome"})),
            Err(refusal) => (400, serde_json::json!({"error": refusal.to_string()})),
        };
        giftd_service::Rendered {
            status,
            body: body.to_string().into_bytes(),
        }
    };
    // Recorded in the audit trail as the command line's.
    let context = giftd_service::audit::RequestContext::cli(&merchant, "giftd staff create");
    let rendered = giftd_service::audit::within(
        context,
        service.create_staff(merchant, NewStaff { email, role }, None, Box::new(printed)),
    )
    .await?;
    println!("{}", String::from_utf8_lossy(&rendered.body));
    if rendered.status != 200 {
        anyhow::bail!("refused");
    }
    eprintln!("(the temporary password is shown only now; it must be changed at the first sign-in)");
    Ok(())
}

async fn report(service: &Service, command: ReportCommands) -> anyhow::Result<()> {
    match command {
        ReportCommands::Liability { as_of, report } => {
            let merchant = stock::merchant(report.merchant.as_deref())?;
            let as_of = stock::date(as_of.as_deref(), "as-of")?;
            stock::liability(service, merchant.as_ref(), as_of, report.csv).await
        }
        ReportCommands::Activity { from, to, report } => {
            let merchant = stock::merchant(report.merchant.as_deref())?;
            let from = stock::date(Some(&from), "from")?;
            let to = stock::date(Some(&to), "to")?;
            stock::activity(service, merchant.as_ref(), from, to, report.csv).await
        }
        ReportCommands::Dormant {
            months,
            as_of,
            report,
        } => {
            let merchant = stock::merchant(report.merchant.as_deref())?;
            let as_of = stock::date(as_of.as_deref(), "as-of")?;
            stock::dormant(service, merchant.as_ref(), months, as_of, report.csv).await
        }
    }
}

fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data folder {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The folder holds the database and, unless GIFTD_MASTER_KEY is set, the master key.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict the data folder {}", dir.display()))?;
    }
    Ok(())
}

fn backend(storage: &Storage) -> anyhow::Result<Backend> {
    let options = PgOptions {
        pool_size: storage.pg_pool_size,
        isolation: storage.pg_isolation,
    };
    Ok(Backend::choose(
        storage
            .database_url
            .as_ref()
            .map(giftd_store::DatabaseUrl::expose),
        &storage.data_dir,
        storage.durability,
        options,
    )?)
}

/// The lock file in a SQLite data folder: held by `giftd serve` and the card stock commands
/// while they run, so that only one of them writes the database at a time.
const LOCK_FILE: &str = "giftd.lock";

/// On SQLite, takes the data folder's lock for as long as the answer lives, or says who holds
/// it; on PostgreSQL (where processes share the database) there is nothing to take.
fn claim_sqlite_folder(storage: &Storage, command: &str) -> anyhow::Result<Option<std::fs::File>> {
    if !matches!(backend(storage)?, Backend::Sqlite { .. }) {
        return Ok(None);
    }
    prepare_data_dir(&storage.data_dir)?;
    let path = storage.data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another giftd (giftd serve, or giftd cards) is using the SQLite database in {}; \
             stop it before {command}: one process at a time writes the embedded database",
            storage.data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

async fn open(storage: &Storage) -> anyhow::Result<Service> {
    let configured_key = storage.master_key.as_ref().map(|key| key.0.as_str());
    let backend = backend(storage)?;
    // The data folder holds the SQLite database and, without a configured master key, the key
    // file; PostgreSQL with the key configured needs no folder at all.
    if matches!(backend, Backend::Sqlite { .. }) || configured_key.is_none() {
        prepare_data_dir(&storage.data_dir)?;
    }
    let master_key = MasterKey::load(configured_key, &storage.data_dir)?;
    let store = backend
        .open()
        .await
        .with_context(|| format!("cannot open the database ({})", backend.describe()))?;
    Ok(Service::new(store, &master_key, Arc::new(SystemClock)))
}

async fn serve(config: &Config) -> anyhow::Result<ExitCode> {
    // Checked before anything is opened: a limit that does not fit stops the start.
    let max_connections = listener::max_connections(
        config.serve.max_connections,
        files_besides_connections(config),
        listener::open_file_limit(),
    )?;
    // Webhook deliveries go out on this client (docs/WEBHOOKS.md).
    let client = giftd_service::webhooks::delivery_client(&config.serve.webhook_roots)
        .context("cannot build the webhook HTTP client")?;
    let _lock = claim_sqlite_folder(&config.storage, "giftd serve")?;
    let service = open(&config.storage)
        .await?
        .with_checkout_lease_seconds(config.serve.checkout_lease_seconds)
        .with_idempotency_retention_days(config.serve.idempotency_retention_days);
    let (stop_sweeper, sweeper_stopped) = tokio::sync::oneshot::channel::<()>();
    let sweeper = tokio::spawn(service.clone().run_hold_sweeper(async {
        let _ = sweeper_stopped.await;
    }));
    // Resumes checkouts a stopped giftd left mid-way, and retries failed processor calls.
    let (stop_recovery, recovery_stopped) = tokio::sync::oneshot::channel::<()>();
    let recovery = tokio::spawn(service.clone().run_checkout_recovery(async {
        let _ = recovery_stopped.await;
    }));
    // Delivers webhook events from the outbox (docs/WEBHOOKS.md).
    let (stop_webhooks, webhooks_stopped) = tokio::sync::oneshot::channel::<()>();
    let webhooks = tokio::spawn(service.clone().run_webhook_dispatcher(
        client,
        config.serve.webhooks.clone(),
        async {
            let _ = webhooks_stopped.await;
        },
    ));
    // Deletes what retention no longer keeps (docs/OPERATIONS.md#retention).
    let (stop_pruner, pruner_stopped) = tokio::sync::oneshot::channel::<()>();
    let pruner = tokio::spawn(service.clone().run_pruner(config.serve.retention, async {
        let _ = pruner_stopped.await;
    }));
    let description = backend(&config.storage)?.describe();
    let served = serve::run(
        service.clone(),
        &config.serve,
        max_connections,
        &description,
        shutdown_signal(),
    )
    .await;
    let _ = stop_sweeper.send(());
    let _ = stop_recovery.send(());
    let _ = sweeper.await;
    let _ = recovery.await;
    let _ = stop_webhooks.send(());
    let _ = webhooks.await;
    let _ = stop_pruner.send(());
    let _ = pruner.await;
    // Lets the writer finish what is queued before the process ends.
    service.store().close().await;
    served?;
    tracing::info!("giftd stopped");
    Ok(ExitCode::SUCCESS)
}

/// Files `giftd serve` holds open besides its connections and [`listener::FILE_RESERVE`]: the
/// database's (PostgreSQL: one socket per pooled connection; SQLite: the read pool, the writer
/// and the checkpointer, each with the database, its write-ahead log and its shared memory open,
/// and the syncer's handle on the log), one socket per webhook attempt under way, and the
/// console's connections on its own listener.
fn files_besides_connections(config: &Config) -> u64 {
    let database = if config.storage.database_url.is_some() {
        u64::from(config.storage.pg_pool_size)
    } else {
        (u64::from(giftd_store::sqlite::READ_POOL_SIZE) + 2) * 3 + 1
    };
    // One socket for each webhook attempt under way, and the console's own connections when it
    // has a listener of its own.
    let console = match config.serve.console_listen {
        Some(_) => listener::CONSOLE_MAX_CONNECTIONS as u64,
        None => 0,
    };
    database + giftd_service::webhooks::MAX_DELIVERIES_IN_FLIGHT as u64 + console
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

async fn verify(storage: &Storage) -> anyhow::Result<ExitCode> {
    let service = open(storage).await?;
    let report = service.verify().await;
    service.store().close().await;
    let report = report?;
    println!(
        "checked {} cards, {} transactions, {} postings, {} pending holds",
        report.cards, report.transactions, report.postings, report.pending_holds
    );
    for (currency, amount) in &report.outstanding {
        println!("outstanding {currency}: {amount} (minor units)");
    }
    if report.is_sound() {
        println!("ledger OK: every entry balances and every cached balance matches the ledger");
        Ok(ExitCode::SUCCESS)
    } else {
        for violation in &report.violations {
            println!("VIOLATION {violation}");
        }
        println!("ledger FAILED: {} violation(s)", report.violations.len());
        Ok(ExitCode::from(1))
    }
}
