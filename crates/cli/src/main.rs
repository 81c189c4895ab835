//! The `giftd` binary: `serve`, `migrate`, `verify` and `merchants create`. It wires
//! configuration (flags, then `GIFTD_*` environment variables, then defaults) to the store,
//! the service and the HTTP app; it holds no business logic of its own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use giftd_service::{MasterKey, Service, SystemClock};
use giftd_store::Backend;
use giftd_store::postgres::{DEFAULT_POOL_SIZE, Isolation, PgOptions};
use giftd_store::sqlite::Durability;
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(
    name = "giftd",
    version,
    about = "A self-hosted gift card platform over a double-entry ledger"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Serve the HTTP API (migrations are applied first).
    Serve(ServeArgs),
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

#[derive(Args, Clone)]
struct StorageArgs {
    /// Folder for the embedded database and the generated master key.
    #[arg(long, env = "GIFTD_DATA_DIR", default_value = "giftd-data")]
    data_dir: PathBuf,
    /// `postgres://user:password@host:port/database` to use PostgreSQL instead of SQLite in the
    /// data folder. Never printed with its password.
    #[arg(long, env = "GIFTD_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// PostgreSQL connections this process may open.
    #[arg(long, env = "GIFTD_PG_POOL_SIZE", default_value_t = DEFAULT_POOL_SIZE)]
    pg_pool_size: u32,
    /// Isolation of PostgreSQL write transactions: `read-committed` (default) or
    /// `serializable` (conflicts are retried).
    #[arg(long, env = "GIFTD_PG_ISOLATION", default_value = "read-committed")]
    pg_isolation: Isolation,
    /// `full` (default): an answered request survives power loss. `normal`: faster, but the
    /// last commits may be lost on power loss (never on a crash of giftd alone).
    #[arg(long, env = "GIFTD_DURABILITY", default_value = "full")]
    durability: Durability,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "GIFTD_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// How long a lock of the Clover facade (a charge with `capture: false`) reserves value,
    /// in seconds (1 to 604800).
    #[arg(
        long,
        env = "GIFTD_CLOVER_LOCK_SECONDS",
        default_value_t = giftd_api::clover::DEFAULT_LOCK_SECONDS,
        value_parser = clap::value_parser!(i64).range(1..=giftd_api::clover::MAX_LOCK_SECONDS)
    )]
    clover_lock_seconds: i64,
    /// How long the checkout recovery loop leaves a checkout to the request driving it, in
    /// seconds; after that, a checkout left mid-way (giftd stopped) is resumed or compensated.
    /// Keep it above the payment processor's longest call.
    #[arg(
        long,
        env = "GIFTD_CHECKOUT_LEASE_SECONDS",
        default_value_t = giftd_service::checkout::DEFAULT_LEASE_SECONDS,
        value_parser = clap::value_parser!(i64).range(1..=3600)
    )]
    checkout_lease_seconds: i64,
    #[command(flatten)]
    storage: StorageArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("giftd: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("giftd: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Commands::Serve(args) => serve(args).await,
        Commands::Migrate(storage) => {
            let backend = storage.backend()?;
            if matches!(backend, Backend::Sqlite { .. }) {
                prepare_data_dir(&storage.data_dir)?;
            }
            backend.migrate().await?;
            println!("migrations applied to {}", backend.describe());
            Ok(ExitCode::SUCCESS)
        }
        Commands::Verify(storage) => verify(storage).await,
        Commands::Backup { out, storage } => {
            let backend = storage.backend()?;
            backend.backup(&out).await?;
            println!("backed up {} to {}", backend.describe(), out.display());
            println!(
                "keep the master key with the backup, stored apart: without it card numbers cannot be read"
            );
            Ok(ExitCode::SUCCESS)
        }
        Commands::Merchants {
            command: MerchantCommands::Create { name, json, storage },
        } => {
            let service = open(&storage).await?;
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

impl StorageArgs {
    fn backend(&self) -> anyhow::Result<Backend> {
        let options = PgOptions {
            pool_size: self.pg_pool_size,
            isolation: self.pg_isolation,
        };
        Ok(Backend::choose(
            self.database_url.as_deref(),
            &self.data_dir,
            self.durability,
            options,
        )?)
    }
}

async fn open(storage: &StorageArgs) -> anyhow::Result<Service> {
    let environment_key = std::env::var("GIFTD_MASTER_KEY").ok().filter(|k| !k.is_empty());
    let backend = storage.backend()?;
    // The data folder holds the SQLite database and, without GIFTD_MASTER_KEY, the key file;
    // PostgreSQL with the key in the environment needs no folder at all.
    if matches!(backend, Backend::Sqlite { .. }) || environment_key.is_none() {
        prepare_data_dir(&storage.data_dir)?;
    }
    let master_key = MasterKey::load(environment_key.as_deref(), &storage.data_dir)?;
    let store = backend
        .open()
        .await
        .with_context(|| format!("cannot open the database ({})", backend.describe()))?;
    Ok(Service::new(store, &master_key, Arc::new(SystemClock)))
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let service = open(&args.storage)
        .await?
        .with_checkout_lease_seconds(args.checkout_lease_seconds);
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(
        address = %listener.local_addr()?,
        database = %args.storage.backend()?.describe(),
        "giftd is serving"
    );
    let (stop_sweeper, sweeper_stopped) = tokio::sync::oneshot::channel::<()>();
    let sweeper = tokio::spawn(service.clone().run_hold_sweeper(async {
        let _ = sweeper_stopped.await;
    }));
    // Resumes checkouts a stopped giftd left mid-way, and retries failed processor calls.
    let (stop_recovery, recovery_stopped) = tokio::sync::oneshot::channel::<()>();
    let recovery = tokio::spawn(service.clone().run_checkout_recovery(async {
        let _ = recovery_stopped.await;
    }));
    let config = giftd_api::ApiConfig {
        clover: giftd_api::clover::CloverConfig {
            lock_seconds: args.clover_lock_seconds,
        },
    };
    axum::serve(listener, giftd_api::app_with_config(service.clone(), config))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    let _ = stop_sweeper.send(());
    let _ = stop_recovery.send(());
    let _ = sweeper.await;
    let _ = recovery.await;
    // Lets the writer finish what is queued before the process ends.
    service.store().close().await;
    tracing::info!("giftd stopped");
    Ok(ExitCode::SUCCESS)
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

async fn verify(storage: StorageArgs) -> anyhow::Result<ExitCode> {
    let service = open(&storage).await?;
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
