//! `giftd-bench`: how many durable redemptions per second giftd serves over HTTP, at what
//! latency, compared with baselines measured in the same invocation (on PostgreSQL, pgbench
//! doing the same SQL work one redemption per transaction and batched, and pgbench's built-in
//! simple-update; on SQLite, one bare SQLite connection), and whether every run left the books
//! right.
//!
//! By default it starts the `giftd` binary itself on a free port of 127.0.0.1 with a fresh data
//! folder (SQLite, durability full) or a fresh PostgreSQL database (dropped afterwards),
//! prepares a program and N cards with large balances, and runs the scenarios: redemptions
//! spread over all cards at fixed concurrencies (closed loop) and at a fixed arrival rate (open
//! loop), a hot card, holds placed then captured, a drain check (one small card redeemed past
//! empty from many clients at once), on PostgreSQL the pgbench baselines and on SQLite the
//! bare-connection baseline. After every run it runs `giftd verify` and compares every card's
//! balance with the debits giftd acknowledged (and each baseline checks its own books), failing
//! loudly on any difference. `--smoke` runs it all for a few seconds at small N and asserts
//! correctness only, never speed.
//!
//! It must not target anything but 127.0.0.1 (and the PostgreSQL server it is given), and every
//! loop in it is bounded in count and time.

mod api;
mod chart;
mod load;
mod machine;
mod pgbench;
mod report;
mod server;
mod sqlite_baseline;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::api::{Api, Cards};
use crate::load::{Pace, Pick, Plan, Workload};
use crate::pgbench::Script;
use crate::report::{
    BackendReport, BaselineRatio, Latency, Ratio, Report, RunResult, Settings, SqliteBaselineResult, WalUse,
};
use crate::server::{GiftdServer, PgDatabase, ServeOptions, Storage};

/// The drain check: a card of `DRAIN_AMOUNT × DRAIN_SUCCESSES` redeemed `DRAIN_AMOUNT` at a time,
/// `DRAIN_ATTEMPTS` times from many clients at once: exactly `DRAIN_SUCCESSES` must succeed.
const DRAIN_AMOUNT: i64 = 7;
const DRAIN_SUCCESSES: u64 = 500;
const DRAIN_ATTEMPTS: u64 = 1000;
const DRAIN_CONCURRENCY: u32 = 16;
/// A bound on the drain check's time; it normally takes a second or two.
const DRAIN_TIME_LIMIT: Duration = Duration::from_secs(120);
/// Clients of each pgbench baseline in `--smoke`.
const SMOKE_PGBENCH_CONCURRENCY: u32 = 2;
/// The default PostgreSQL server for `--backend postgres`.
const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Parser)]
#[command(
    name = "giftd-bench",
    version,
    about = "Benchmark giftd: durable redemptions over HTTP, holds, a hot card, against baselines (pgbench doing the same SQL work one by one and batched, pgbench -N, a bare SQLite connection); checks the books after every run",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Commands>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Commands {
    /// Draw throughput and p99 against concurrency (SVG) from `--json` results.
    Chart {
        /// Results written by `giftd-bench --json` or `--out`; several may be given.
        #[arg(long = "input", required = true)]
        inputs: Vec<PathBuf>,
        /// The SVG file to write.
        #[arg(long)]
        out: PathBuf,
        #[arg(
            long,
            default_value = "giftd: durable redemptions over HTTP against concurrency"
        )]
        title: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendChoice {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Closed loop, redemptions spread over all cards, at each --concurrency.
    Spread,
    /// Open loop, redemptions spread over all cards, at --rate (default: half the best spread
    /// throughput just measured).
    Open,
    /// Closed loop, every redemption on one card, at each --concurrency.
    Hot,
    /// Closed loop, a hold then its capture, at each --concurrency.
    Holds,
    /// One small card redeemed past empty by many clients at once (correctness only).
    Drain,
    /// pgbench baselines at each --concurrency (PostgreSQL only): the same SQL work one
    /// redemption per transaction, pgbench -N on its own tables, and 16 redemptions batched
    /// set-wise per transaction (the database's ceiling). With `spread`, they run right after
    /// giftd's spread run at the same concurrency.
    Pgbench,
    /// One bare SQLite connection (WAL, synchronous=FULL, one thread) doing one UPDATE and two
    /// INSERTs per commit on random cards of a fresh file (SQLite only).
    SqliteBaseline,
}

#[derive(Args, Clone)]
struct RunArgs {
    /// A few seconds at small N, on SQLite and (when GIFTD_TEST_PG_URL is set) PostgreSQL;
    /// asserts correctness only (verify passes, no overdraw, no 5xx), never speed.
    #[arg(long)]
    smoke: bool,
    /// The giftd binary to start (default target/release/giftd; target/debug/giftd with
    /// --smoke).
    #[arg(long)]
    giftd: Option<PathBuf>,
    /// Which database giftd runs on (default sqlite; with --smoke, sqlite plus postgres when
    /// GIFTD_TEST_PG_URL is set).
    #[arg(long, value_enum)]
    backend: Option<BackendChoice>,
    /// PostgreSQL server on which a fresh database is created for the run and dropped after it
    /// (default GIFTD_TEST_PG_URL, else postgres://postgres@127.0.0.1:5432/postgres).
    #[arg(long, env = "GIFTD_BENCH_PG_URL", hide_env_values = true)]
    pg_url: Option<String>,
    /// Benchmark a giftd already running at this URL (127.0.0.1 only) instead of starting one.
    #[arg(long, requires = "api_key")]
    url: Option<String>,
    /// The API key of a merchant of the server given by --url.
    #[arg(long, env = "GIFTD_BENCH_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// With --url: the server's data folder, so that `giftd verify` can run.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// With --url: the server's PostgreSQL database, for `giftd verify` and pgbench.
    #[arg(long)]
    database_url: Option<String>,
    /// Cards to prepare.
    #[arg(long, default_value_t = 10_000)]
    cards: u32,
    /// Starting balance of each card, in minor units.
    #[arg(long, default_value_t = 1_000_000_000)]
    balance: i64,
    /// Amount of each redemption or hold, in minor units.
    #[arg(long, default_value_t = 1)]
    amount: i64,
    /// Closed-loop concurrencies, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    concurrency: Vec<u32>,
    /// Measured seconds of each run.
    #[arg(long, default_value_t = 10.0)]
    duration_seconds: f64,
    /// Seconds of each run before measuring starts.
    #[arg(long, default_value_t = 1.0)]
    warmup_seconds: f64,
    /// Open-loop arrival rate per second (default: half the best spread throughput measured).
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: operations in flight at most (beyond it, sends wait and that wait is counted
    /// in the latency).
    #[arg(long, default_value_t = 256)]
    max_in_flight: u32,
    /// Scenarios to run, comma-separated, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "spread,open,hot,holds,drain,pgbench,sqlite-baseline"
    )]
    scenarios: Vec<Scenario>,
    /// giftd's --durability.
    #[arg(long, default_value = "full")]
    durability: String,
    /// giftd's --pg-pool-size (default: giftd's own).
    #[arg(long)]
    pg_pool_size: Option<u32>,
    /// RUST_LOG for the giftd started (default: giftd's own, `info,sqlx=warn`).
    #[arg(long)]
    giftd_log: Option<String>,
    /// Seconds before a request without an answer counts as a transport error.
    #[arg(long, default_value_t = 30)]
    request_timeout_seconds: u64,
    /// The pgbench binary.
    #[arg(long, default_value = "pgbench")]
    pgbench: PathBuf,
    /// Send no `Idempotency-Key` with the operations (by default every one carries a unique
    /// key, as a real point of sale sends), to measure what the keys cost.
    #[arg(long)]
    no_idempotency_keys: bool,
    /// Write each operation of a measured window that took at least --slow-ms to this CSV file
    /// (the run, when the operation was meant to start in Unix seconds, its latency in ms):
    /// stalls show up as bursts at one moment, to set beside the database's and the kernel's
    /// logs.
    #[arg(long)]
    slow_log: Option<PathBuf>,
    /// What --slow-log counts as slow, in milliseconds.
    #[arg(long, default_value_t = 20.0)]
    slow_ms: f64,
    /// Print the results as JSON on standard output (the table goes to standard error).
    #[arg(long)]
    json: bool,
    /// Also write the JSON results to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // reqwest is built without a TLS provider of its own (giftd's webhooks bring ring); every
    // client this process builds needs one installed first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("giftd-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Commands::Chart { inputs, out, title }) => draw_chart(&inputs, &out, &title),
        None => runtime.block_on(run(cli.run)),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("giftd-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn draw_chart(inputs: &[PathBuf], out: &Path, title: &str) -> anyhow::Result<ExitCode> {
    let mut reports = Vec::new();
    for input in inputs {
        let text =
            std::fs::read_to_string(input).with_context(|| format!("cannot read {}", input.display()))?;
        let report: Report = serde_json::from_str(&text)
            .with_context(|| format!("{} is not giftd-bench JSON", input.display()))?;
        reports.push(report);
    }
    let series = chart::series(&reports);
    if series.is_empty() {
        bail!("no closed-loop spread runs or pgbench runs in the input");
    }
    std::fs::write(out, chart::svg(&series, title))
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
    External,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::External => "external",
        }
    }
}

/// What one invocation runs, after `--smoke` and the defaults are applied.
struct Config {
    args: RunArgs,
    giftd: PathBuf,
    backends: Vec<Backend>,
    pg_url: String,
    concurrency: Vec<u32>,
    warmup: Duration,
    duration: Duration,
    pgbench_duration: Duration,
    rate: Option<f64>,
    cards: u32,
    /// `--slow-ms`, when there is a `--slow-log` to write to.
    slow_after: Option<Duration>,
}

impl Config {
    fn new(args: RunArgs) -> anyhow::Result<Self> {
        let test_pg_url = std::env::var("GIFTD_TEST_PG_URL").ok().filter(|u| !u.is_empty());
        let pg_url = args
            .pg_url
            .clone()
            .or_else(|| test_pg_url.clone())
            .unwrap_or_else(|| DEFAULT_PG_URL.to_owned());
        let backends = if args.url.is_some() {
            vec![Backend::External]
        } else {
            match (args.backend, args.smoke) {
                (Some(BackendChoice::Sqlite), _) => vec![Backend::Sqlite],
                (Some(BackendChoice::Postgres), _) => vec![Backend::Postgres],
                (Some(BackendChoice::Both), _) => vec![Backend::Sqlite, Backend::Postgres],
                (None, true) if test_pg_url.is_some() => vec![Backend::Sqlite, Backend::Postgres],
                (None, _) => vec![Backend::Sqlite],
            }
        };
        if let Some(url) = &args.url {
            let host_ok = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|prefix| url.starts_with(prefix));
            if !host_ok {
                bail!("--url must be a server on this machine (http://127.0.0.1:PORT)");
            }
        }
        if args.amount <= 0 || args.balance <= 0 {
            bail!("--amount and --balance must be positive");
        }
        if args.concurrency.is_empty() || args.concurrency.contains(&0) {
            bail!("--concurrency needs positive numbers");
        }
        let seconds = |s: f64, what: &str| {
            if s.is_finite() && (0.0..=3600.0).contains(&s) {
                Ok(Duration::from_secs_f64(s))
            } else {
                bail!("{what} must be between 0 and 3600 seconds")
            }
        };
        let slow_after = match &args.slow_log {
            Some(path) => {
                let after = seconds(args.slow_ms / 1000.0, "--slow-ms")?;
                let mut log = csv::Writer::from_path(path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                log.write_record(["run", "intended_unix_seconds", "latency_ms"])?;
                log.flush()?;
                Some(after)
            }
            None => None,
        };
        let default_giftd = if args.smoke {
            "target/debug/giftd"
        } else {
            "target/release/giftd"
        };
        let config = if args.smoke {
            // Small and short: correctness, not speed. Two concurrencies so that both the
            // one-at-a-time path and batching are exercised.
            Self {
                giftd: args.giftd.clone().unwrap_or_else(|| default_giftd.into()),
                backends,
                pg_url,
                concurrency: vec![1, 8],
                warmup: Duration::from_millis(300),
                duration: Duration::from_secs(2),
                pgbench_duration: Duration::from_secs(1),
                rate: Some(args.rate.unwrap_or(200.0)),
                cards: args.cards.min(200),
                slow_after,
                args,
            }
        } else {
            Self {
                giftd: args.giftd.clone().unwrap_or_else(|| default_giftd.into()),
                backends,
                pg_url,
                concurrency: args.concurrency.clone(),
                warmup: seconds(args.warmup_seconds, "--warmup-seconds")?,
                duration: seconds(args.duration_seconds, "--duration-seconds")?,
                pgbench_duration: seconds(args.duration_seconds.max(1.0), "--duration-seconds")?,
                rate: args.rate,
                cards: args.cards,
                slow_after,
                args,
            }
        };
        if config.cards == 0 {
            bail!("--cards must be at least 1");
        }
        Ok(config)
    }

    fn settings(&self) -> Settings {
        Settings {
            smoke: self.args.smoke,
            cards: self.cards,
            starting_balance_minor: self.args.balance,
            amount_minor: self.args.amount,
            duration_seconds: self.duration.as_secs_f64(),
            warmup_seconds: self.warmup.as_secs_f64(),
            concurrency: self.concurrency.clone(),
            durability: self.args.durability.clone(),
            idempotency_keys: !self.args.no_idempotency_keys,
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = Config::new(args)?;
    let started_at_unix_seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut report = Report {
        tool: format!("giftd-bench {}", env!("CARGO_PKG_VERSION")),
        started_at_unix_seconds,
        machine: machine::describe(),
        settings: config.settings(),
        backends: Vec::new(),
        failures: Vec::new(),
    };
    let mut run_id = 0u64;
    for &backend in &config.backends {
        eprintln!("== {}", backend.name());
        match bench_backend(&config, backend, &mut run_id, &mut report.failures).await {
            Ok(result) => report.backends.push(result),
            Err(error) => {
                let failure = format!("{}: {error:#}", backend.name());
                eprintln!("FAILED {failure}");
                report.failures.push(failure);
            }
        }
    }
    report.machine.load_average_at_end = machine::load_average();

    let json = serde_json::to_string_pretty(&report)?;
    if let Some(out) = &config.args.out {
        std::fs::write(out, &json).with_context(|| format!("cannot write {}", out.display()))?;
    }
    let table = report::table(&report);
    if config.args.json {
        eprint!("{table}");
        println!("{json}");
    } else {
        print!("{table}");
    }
    Ok(if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What the pgbench baselines run with, once prepared.
struct PgbenchPlan {
    /// The merchant the `bench_*` rows belong to.
    merchant_id: String,
    /// Whether the batched script can run (pgbench with `permute()`, enough cards).
    batched: bool,
}

/// Everything one backend's runs share.
struct Bench<'a> {
    config: &'a Config,
    api: Api,
    cards: Arc<Cards>,
    storage: Option<Storage>,
    merchant_id: Option<String>,
    /// The small card of the drain check (after the large ones).
    drain_card: usize,
    work_dir: tempfile::TempDir,
}

/// Appends a run's slow operations to the `--slow-log` file, whose header `Config::new` wrote.
fn append_slow(path: &Path, label: &str, slow: &[load::SlowOperation]) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new().append(true).open(path)?;
    let mut log = csv::WriterBuilder::new().has_headers(false).from_writer(file);
    for operation in slow {
        let at = operation
            .intended
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        log.write_record([
            label,
            &format!("{:.3}", at.as_secs_f64()),
            &format!("{:.1}", operation.latency.as_secs_f64() * 1000.0),
        ])?;
    }
    log.flush()?;
    Ok(())
}

async fn bench_backend(
    config: &Config,
    backend: Backend,
    run_id: &mut u64,
    failures: &mut Vec<String>,
) -> anyhow::Result<BackendReport> {
    let args = &config.args;
    fn serve<'a>(config: &'a Config, database_url: Option<&'a str>) -> ServeOptions<'a> {
        ServeOptions {
            giftd: &config.giftd,
            database_url,
            durability: &config.args.durability,
            pg_pool_size: config.args.pg_pool_size,
            log_filter: config.args.giftd_log.as_deref(),
        }
    }
    match backend {
        Backend::External => {
            let url = args.url.as_deref().context("--url is missing")?;
            let key = args.api_key.as_deref().context("--api-key is missing")?;
            let storage = (args.data_dir.is_some() || args.database_url.is_some()).then(|| Storage {
                data_dir: args.data_dir.clone(),
                database_url: args.database_url.clone(),
            });
            if storage.is_none() {
                eprintln!("note: without --data-dir or --database-url, `giftd verify` cannot run");
            }
            let target = Target {
                base_url: url.to_owned(),
                api_key: key.to_owned(),
                merchant_id: None,
                storage,
            };
            suite(config, backend, target, run_id, failures).await
        }
        Backend::Sqlite => {
            let server = GiftdServer::start(&serve(config, None)).await?;
            let result = serve_and_run(config, backend, &server, run_id, failures).await;
            let stopped = server.stop().await;
            let result = result?;
            stopped?;
            Ok(result)
        }
        Backend::Postgres => {
            let database = PgDatabase::create(&config.pg_url).await?;
            eprintln!("database {} on {}", database.name, server::redact(&config.pg_url));
            let result = async {
                let server = GiftdServer::start(&serve(config, Some(&database.url))).await?;
                let result = serve_and_run(config, backend, &server, run_id, failures).await;
                let stopped = server.stop().await;
                let result = result?;
                stopped?;
                Ok::<_, anyhow::Error>(result)
            }
            .await;
            let dropped = database.drop_now().await;
            let result = result?;
            dropped?;
            Ok(result)
        }
    }
}

async fn serve_and_run(
    config: &Config,
    backend: Backend,
    server: &GiftdServer,
    run_id: &mut u64,
    failures: &mut Vec<String>,
) -> anyhow::Result<BackendReport> {
    let (merchant_id, api_key) = server::create_merchant(&config.giftd, &server.storage).await?;
    let target = Target {
        base_url: server.base_url.clone(),
        api_key,
        merchant_id: Some(merchant_id),
        storage: Some(server.storage.clone()),
    };
    let result = suite(config, backend, target, run_id, failures).await;
    if result.is_err() {
        eprintln!("giftd's last log lines:\n{}", server.log_tail());
    }
    result
}

/// The giftd a suite runs against.
struct Target {
    base_url: String,
    api_key: String,
    /// Known when the benchmark created the merchant.
    merchant_id: Option<String>,
    /// Where its data is, when known: for `giftd verify` and pgbench.
    storage: Option<Storage>,
}

/// Prepares the cards, then runs the scenarios in order.
async fn suite(
    config: &Config,
    backend: Backend,
    target: Target,
    run_id: &mut u64,
    failures: &mut Vec<String>,
) -> anyhow::Result<BackendReport> {
    let args = &config.args;
    let api = Api::new(
        &target.base_url,
        &target.api_key,
        Duration::from_secs(args.request_timeout_seconds),
    )?;
    let setup_started = Instant::now();
    let program_id = api.create_program().await?;
    let spread_cards = config.cards as usize;
    eprintln!("preparing {spread_cards} cards of {} ...", args.balance);
    let mut ids = api.create_cards(&program_id, spread_cards, args.balance).await?;
    let drain_balance = DRAIN_AMOUNT * DRAIN_SUCCESSES as i64;
    ids.extend(api.create_cards(&program_id, 1, drain_balance).await?);
    let mut starting = vec![args.balance; spread_cards];
    starting.push(drain_balance);
    let setup_seconds = setup_started.elapsed().as_secs_f64();
    eprintln!("prepared in {setup_seconds:.1} s");
    let bench = Bench {
        config,
        api,
        cards: Arc::new(Cards::new(program_id, ids, starting)),
        storage: target.storage,
        merchant_id: target.merchant_id,
        drain_card: spread_cards,
        work_dir: tempfile::Builder::new()
            .prefix("giftd-bench-pgbench-")
            .tempdir()?,
    };
    let mut result = BackendReport {
        backend: backend.name().into(),
        runs: Vec::new(),
        pgbench: Vec::new(),
        ratios: Vec::new(),
        pgbench_simple_update: Vec::new(),
        pgbench_batched: Vec::new(),
        sqlite_baseline: None,
        baseline_ratios: Vec::new(),
        notes: Vec::new(),
        setup_seconds,
    };
    // On PostgreSQL, the pgbench baselines run right after giftd's spread run at each
    // concurrency, so that both see the same background load on a shared machine.
    let pgbench_plan = if backend != Backend::Sqlite && args.scenarios.contains(&Scenario::Pgbench) {
        bench.pgbench_prepare(&mut result.notes).await?
    } else {
        None
    };
    for scenario in &args.scenarios {
        match scenario {
            Scenario::Spread | Scenario::Hot | Scenario::Holds => {
                for &concurrency in &config.concurrency {
                    let (name, workload, pick) = match scenario {
                        Scenario::Hot => ("hot", Workload::Redeem, Pick::One(0)),
                        Scenario::Holds => (
                            "holds",
                            Workload::HoldThenCapture,
                            Pick::Spread { count: spread_cards },
                        ),
                        _ => ("spread", Workload::Redeem, Pick::Spread { count: spread_cards }),
                    };
                    *run_id += 1;
                    let plan = Plan {
                        label: format!("{} {name} c={concurrency}", backend.name()),
                        workload,
                        pick,
                        pace: Pace::Closed { concurrency },
                        amount: args.amount,
                        warmup: config.warmup,
                        duration: config.duration,
                        budget: None,
                        run_id: *run_id,
                        idempotency_keys: !args.no_idempotency_keys,
                        slow_after: config.slow_after,
                    };
                    let run = bench.measure(name, plan, failures).await?;
                    result.runs.push(run);
                    if *scenario == Scenario::Spread
                        && !args.smoke
                        && let Some(plan) = &pgbench_plan
                    {
                        bench
                            .pgbench_baselines(plan, concurrency, &mut result, failures)
                            .await?;
                    }
                }
            }
            Scenario::Open => {
                let best = result
                    .runs
                    .iter()
                    .filter(|r| r.scenario == "spread" && r.mode == "closed")
                    .map(|r| r.throughput_per_second)
                    .fold(0.0, f64::max);
                let rate = match config.rate {
                    Some(rate) => rate,
                    None if best > 0.0 => (best / 2.0).round().max(1.0),
                    None => {
                        eprintln!("open loop skipped: give --rate, or run the spread scenario first");
                        continue;
                    }
                };
                *run_id += 1;
                let plan = Plan {
                    label: format!("{} open {rate:.0}/s", backend.name()),
                    workload: Workload::Redeem,
                    pick: Pick::Spread { count: spread_cards },
                    pace: Pace::Open {
                        rate_per_second: rate,
                        max_in_flight: args.max_in_flight,
                    },
                    amount: args.amount,
                    warmup: config.warmup,
                    duration: config.duration,
                    budget: None,
                    run_id: *run_id,
                    idempotency_keys: !args.no_idempotency_keys,
                    slow_after: config.slow_after,
                };
                let run = bench.measure("spread", plan, failures).await?;
                result.runs.push(run);
            }
            Scenario::Drain => {
                *run_id += 1;
                let plan = Plan {
                    label: format!("{} drain", backend.name()),
                    workload: Workload::Redeem,
                    pick: Pick::One(bench.drain_card),
                    pace: Pace::Closed {
                        concurrency: DRAIN_CONCURRENCY,
                    },
                    amount: DRAIN_AMOUNT,
                    warmup: Duration::ZERO,
                    duration: DRAIN_TIME_LIMIT,
                    budget: Some(DRAIN_ATTEMPTS),
                    run_id: *run_id,
                    idempotency_keys: !args.no_idempotency_keys,
                    slow_after: config.slow_after,
                };
                let run = bench.measure("drain", plan, failures).await?;
                result.runs.push(run);
            }
            Scenario::Pgbench => {
                let Some(plan) = &pgbench_plan else {
                    continue;
                };
                // The concurrencies not already run right after giftd's spread runs.
                let concurrencies = if args.smoke {
                    let note = format!(
                        "smoke: pgbench baselines at {SMOKE_PGBENCH_CONCURRENCY} clients for {} s each, not after the spread runs (correctness only)",
                        config.pgbench_duration.as_secs()
                    );
                    eprintln!("{note}");
                    result.notes.push(note);
                    vec![SMOKE_PGBENCH_CONCURRENCY]
                } else {
                    config.concurrency.clone()
                };
                for concurrency in concurrencies {
                    if result.pgbench.iter().any(|p| p.concurrency == concurrency) {
                        continue;
                    }
                    bench
                        .pgbench_baselines(plan, concurrency, &mut result, failures)
                        .await?;
                }
                bench.pgbench_check(failures).await?;
            }
            Scenario::SqliteBaseline => {
                if backend != Backend::Sqlite {
                    eprintln!("sqlite-baseline skipped: SQLite backend only");
                    continue;
                }
                if args.smoke {
                    let note = format!(
                        "smoke: bare SQLite baseline for {:.1} s (correctness only)",
                        config.duration.as_secs_f64()
                    );
                    eprintln!("{note}");
                    result.notes.push(note);
                }
                *run_id += 1;
                result.sqlite_baseline = Some(bench.sqlite_baseline(*run_id, failures).await?);
            }
        }
    }
    for pg in &result.pgbench {
        let giftd = result
            .runs
            .iter()
            .find(|r| r.scenario == "spread" && r.mode == "closed" && r.concurrency == Some(pg.concurrency));
        if let Some(giftd) = giftd
            && pg.tps > 0.0
        {
            result.ratios.push(Ratio {
                concurrency: pg.concurrency,
                giftd_per_second: giftd.throughput_per_second,
                pgbench_tps: pg.tps,
                ratio: giftd.throughput_per_second / pg.tps,
            });
        }
    }
    result.baseline_ratios = baseline_ratios(&result);
    Ok(result)
}

/// giftd's closed-loop spread throughput over each baseline: pgbench -N and the batched
/// ceiling at the same concurrency, the bare SQLite connection against giftd's best.
fn baseline_ratios(result: &BackendReport) -> Vec<BaselineRatio> {
    let spread: Vec<(u32, f64)> = result
        .runs
        .iter()
        .filter(|r| r.scenario == "spread" && r.mode == "closed")
        .filter_map(|r| Some((r.concurrency?, r.throughput_per_second)))
        .collect();
    let ratio = |baseline: &str, (concurrency, giftd): (u32, f64), per_second: f64| {
        (per_second > 0.0).then(|| BaselineRatio {
            baseline: baseline.into(),
            giftd_concurrency: concurrency,
            giftd_per_second: giftd,
            baseline_per_second: per_second,
            ratio: giftd / per_second,
        })
    };
    let mut out = Vec::new();
    for (name, runs) in [
        ("pgbench_simple_update", &result.pgbench_simple_update),
        ("pgbench_batched_ceiling", &result.pgbench_batched),
    ] {
        for pg in runs {
            if let Some(&giftd) = spread.iter().find(|(c, _)| *c == pg.concurrency) {
                out.extend(ratio(name, giftd, pg.per_second()));
            }
        }
    }
    let best = spread.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1));
    if let (Some(baseline), Some(best)) = (&result.sqlite_baseline, best) {
        out.extend(ratio(
            "sqlite_bare_connection",
            best,
            baseline.redemptions_per_second,
        ));
    }
    out
}

impl Bench<'_> {
    /// Runs one plan, then the checks; failures are recorded and printed at once.
    async fn measure(
        &self,
        scenario: &str,
        plan: Plan,
        failures: &mut Vec<String>,
    ) -> anyhow::Result<RunResult> {
        let label = plan.label.clone();
        let (mode, concurrency, rate) = match plan.pace {
            Pace::Closed { concurrency } => ("closed", Some(concurrency), None),
            Pace::Open { rate_per_second, .. } => ("open", None, Some(rate_per_second)),
        };
        let requests_per_operation = match plan.workload {
            Workload::Redeem => 1,
            Workload::HoldThenCapture => 2,
        };
        let wal_before = self.wal_counters().await;
        let measured = load::run(&self.api, &self.cards, plan).await;
        let writes = measured.operations_total * u64::from(requests_per_operation);
        let wal = self.wal_since(wal_before, writes).await;
        if let Some(path) = &self.config.args.slow_log {
            append_slow(path, &label, &measured.slow)
                .with_context(|| format!("cannot write to {}", path.display()))?;
        }
        let latency = Latency::from_histogram(&measured.histogram);
        eprintln!(
            "{label:>28}: {:>8.0} ops/s  p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  ok {}  4xx {}  5xx {}  net {}",
            measured.throughput(),
            latency.p50,
            latency.p99,
            latency.p999,
            measured.ok,
            measured.client_errors,
            measured.server_errors,
            measured.transport_errors
        );
        let mut checks = Vec::new();
        let fail = |failures: &mut Vec<String>, checks: &mut Vec<String>, text: String| {
            eprintln!("FAILED {label}: {text}");
            checks.push(format!("FAILED {text}"));
            failures.push(format!("{label}: {text}"));
        };
        if measured.unclean_total > 0 {
            let text = format!(
                "{} operation(s) answered 5xx or not at all: {:?}",
                measured.unclean_total, measured.error_samples
            );
            if self.config.args.smoke {
                fail(failures, &mut checks, text);
            } else {
                eprintln!("warning {label}: {text}");
                checks.push(format!("warning: {} 5xx/unanswered", measured.unclean_total));
            }
        }
        let unexpected_refusals: u64 = measured
            .refusal_codes
            .iter()
            .filter(|(code, _)| !(scenario == "drain" && code == "insufficient_funds"))
            .map(|(_, n)| n)
            .sum();
        if unexpected_refusals > 0 {
            fail(
                failures,
                &mut checks,
                format!(
                    "unexpected refusals {:?}: {:?}",
                    measured.refusal_codes, measured.error_samples
                ),
            );
        }
        if scenario == "drain" {
            // Every attempt ran in the window (no warm-up), so `ok` counts all successes.
            let refused = measured.client_errors;
            if measured.ok == DRAIN_SUCCESSES && refused == DRAIN_ATTEMPTS - DRAIN_SUCCESSES {
                checks.push(format!("drain exact: {DRAIN_SUCCESSES} taken, {refused} refused"));
            } else if measured.unclean_total == 0 {
                fail(
                    failures,
                    &mut checks,
                    format!(
                        "drain: {} redemptions of {DRAIN_AMOUNT} succeeded and {refused} were refused on a card of {}; expected exactly {DRAIN_SUCCESSES} and {}",
                        measured.ok,
                        DRAIN_AMOUNT * DRAIN_SUCCESSES as i64,
                        DRAIN_ATTEMPTS - DRAIN_SUCCESSES
                    ),
                );
            }
        }
        match &self.storage {
            Some(storage) => match server::verify(&self.config.giftd, storage).await {
                Ok(verified) if verified.passed => {
                    checks.push(format!("verify ok ({:.1} s)", verified.seconds))
                }
                Ok(verified) => fail(
                    failures,
                    &mut checks,
                    format!("giftd verify: {}", verified.summary),
                ),
                Err(error) => fail(
                    failures,
                    &mut checks,
                    format!("giftd verify could not run: {error:#}"),
                ),
            },
            None => checks.push("verify not run".into()),
        }
        match self.api.card_balances(&self.cards.program_id).await {
            Ok(balances) => {
                let problems = self.cards.check(&balances);
                if problems.is_empty() {
                    checks.push(format!("{} balances ok, no overdraw", balances.len()));
                } else {
                    fail(failures, &mut checks, problems.join("; "));
                }
            }
            Err(error) => fail(
                failures,
                &mut checks,
                format!("cannot read the balances back: {error:#}"),
            ),
        }
        Ok(RunResult {
            scenario: scenario.into(),
            mode: mode.into(),
            concurrency,
            rate_per_second: rate,
            measured_seconds: measured.measured_seconds,
            ok: measured.ok,
            client_errors: measured.client_errors,
            server_errors: measured.server_errors,
            transport_errors: measured.transport_errors,
            throughput_per_second: measured.throughput(),
            latency_ms: latency,
            requests_per_operation,
            error_samples: measured.error_samples,
            checks,
            wal,
        })
    }

    fn database_url(&self) -> Option<&str> {
        self.storage.as_ref().and_then(|s| s.database_url.as_deref())
    }

    async fn wal_counters(&self) -> Option<pgbench::WalCounters> {
        pgbench::wal_counters(self.database_url()?).await
    }

    async fn wal_since(&self, before: Option<pgbench::WalCounters>, writes: u64) -> Option<WalUse> {
        let (wal_syncs, commits) = self.wal_counters().await?.since(before?);
        Some(WalUse::new(wal_syncs, commits, writes))
    }

    /// Prepares pgbench's tables when pgbench is to run here (the `bench_*` tables, and
    /// `pgbench -i`'s for `pgbench -N`): what the baselines run with, or `None` when there is
    /// no PostgreSQL database (or, in smoke mode, no pgbench).
    async fn pgbench_prepare(&self, notes: &mut Vec<String>) -> anyhow::Result<Option<PgbenchPlan>> {
        let Some(database_url) = self.database_url() else {
            eprintln!("pgbench skipped: no PostgreSQL database");
            return Ok(None);
        };
        let args = &self.config.args;
        let Some(version) = pgbench::major_version(&args.pgbench).await else {
            let text = format!("pgbench not found at {}", args.pgbench.display());
            if args.smoke {
                eprintln!("pgbench skipped: {text}");
                return Ok(None);
            }
            bail!(text);
        };
        let merchant_id = pgbench::prepare(
            database_url,
            self.merchant_id.as_deref(),
            &self.cards.program_id,
            self.config.cards,
            args.balance,
        )
        .await?;
        let mut note = |text: String| {
            eprintln!("{text}");
            notes.push(text);
        };
        let batched = if version < pgbench::BATCHED_MIN_PGBENCH_MAJOR {
            note(format!(
                "batched ceiling skipped: pgbench {version} has no permute() (needs {})",
                pgbench::BATCHED_MIN_PGBENCH_MAJOR
            ));
            false
        } else if self.config.cards < pgbench::BATCH_REDEMPTIONS {
            note(format!(
                "batched ceiling skipped: it needs at least {} cards",
                pgbench::BATCH_REDEMPTIONS
            ));
            false
        } else {
            true
        };
        let scale = if args.smoke {
            note(format!(
                "smoke: pgbench -N on scale {} instead of {}",
                pgbench::SIMPLE_UPDATE_SMOKE_SCALE,
                pgbench::SIMPLE_UPDATE_SCALE
            ));
            pgbench::SIMPLE_UPDATE_SMOKE_SCALE
        } else {
            pgbench::SIMPLE_UPDATE_SCALE
        };
        eprintln!("pgbench -i -s {scale} (tables for pgbench -N) ...");
        let seconds = pgbench::init_simple_update(&args.pgbench, database_url, scale).await?;
        eprintln!("pgbench -i done in {seconds:.1} s");
        Ok(Some(PgbenchPlan { merchant_id, batched }))
    }

    /// The pgbench baselines at this concurrency, one after the other: the same SQL work one
    /// redemption per transaction, pgbench -N, and the batched ceiling.
    async fn pgbench_baselines(
        &self,
        plan: &PgbenchPlan,
        concurrency: u32,
        result: &mut BackendReport,
        failures: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        let run = self
            .pgbench_run(plan, Script::SameSql, concurrency, failures)
            .await?;
        result.pgbench.push(run);
        let run = self
            .pgbench_run(plan, Script::SimpleUpdate, concurrency, failures)
            .await?;
        result.pgbench_simple_update.push(run);
        if plan.batched {
            let run = self
                .pgbench_run(plan, Script::Batched, concurrency, failures)
                .await?;
            result.pgbench_batched.push(run);
        }
        Ok(())
    }

    /// One pgbench run at this concurrency; a failed pgbench transaction is a failure.
    async fn pgbench_run(
        &self,
        plan: &PgbenchPlan,
        script: Script,
        concurrency: u32,
        failures: &mut Vec<String>,
    ) -> anyhow::Result<report::PgbenchResult> {
        let args = &self.config.args;
        let database_url = self.database_url().context("pgbench needs PostgreSQL")?;
        let wal_before = self.wal_counters().await;
        let mut result = pgbench::run(&pgbench::PgbenchRun {
            script,
            pgbench: &args.pgbench,
            database_url,
            merchant_id: &plan.merchant_id,
            program_id: &self.cards.program_id,
            cards: self.config.cards,
            amount: args.amount,
            concurrency,
            duration: self.config.pgbench_duration,
            work_dir: self.work_dir.path(),
        })
        .await?;
        // Writes are redemptions where the script does redemptions, else pgbench transactions.
        let writes = result.transactions * u64::from(script.redemptions_per_transaction().unwrap_or(1));
        result.wal = self.wal_since(wal_before, writes).await;
        let label = format!("{} c={concurrency}", script.label());
        match result.redemptions_per_second {
            Some(per_second) if script == Script::Batched => eprintln!(
                "{label:>28}: {per_second:>8.0} redemptions/s ({:.0} tps)  p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  failed {}",
                result.tps,
                result.latency_ms.p50,
                result.latency_ms.p99,
                result.latency_ms.p999,
                result.failed
            ),
            _ => eprintln!(
                "{label:>28}: {:>8.0} tps    p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  failed {}",
                result.tps,
                result.latency_ms.p50,
                result.latency_ms.p99,
                result.latency_ms.p999,
                result.failed
            ),
        }
        if result.failed > 0 || result.transactions == 0 {
            let text = format!("{label}: {} failed, {} done", result.failed, result.transactions);
            eprintln!("FAILED {text}");
            failures.push(text);
        }
        Ok(result)
    }

    /// The bare SQLite connection for giftd's warm-up and measured window, then its own books.
    async fn sqlite_baseline(
        &self,
        run_id: u64,
        failures: &mut Vec<String>,
    ) -> anyhow::Result<SqliteBaselineResult> {
        let options = sqlite_baseline::BaselineOptions {
            parent_dir: std::env::temp_dir(),
            cards: self.config.cards,
            balance: self.config.args.balance,
            amount: self.config.args.amount,
            warmup: self.config.warmup,
            duration: self.config.duration,
            seed: run_id.wrapping_mul(0x9E37_79B9),
        };
        let outcome = tokio::task::spawn_blocking(move || sqlite_baseline::run(&options))
            .await
            .context("the SQLite baseline's thread failed")??;
        let b = &outcome.result;
        eprintln!(
            "{:>28}: {:>8.0} ops/s  p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  ok {}",
            "sqlite bare connection c=1",
            b.redemptions_per_second,
            b.latency_ms.p50,
            b.latency_ms.p99,
            b.latency_ms.p999,
            b.redemptions
        );
        for problem in outcome.problems {
            eprintln!("FAILED {problem}");
            failures.push(problem);
        }
        Ok(outcome.result)
    }

    /// No bench card overdrawn or out of step with its postings after pgbench.
    async fn pgbench_check(&self, failures: &mut Vec<String>) -> anyhow::Result<()> {
        if let Some(database_url) = self.database_url() {
            for problem in pgbench::check(database_url, self.config.args.balance).await? {
                eprintln!("FAILED {problem}");
                failures.push(problem);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(concurrency: u32, per_second: f64) -> RunResult {
        RunResult {
            scenario: "spread".into(),
            mode: "closed".into(),
            concurrency: Some(concurrency),
            rate_per_second: None,
            measured_seconds: 1.0,
            ok: 0,
            client_errors: 0,
            server_errors: 0,
            transport_errors: 0,
            throughput_per_second: per_second,
            latency_ms: Latency::default(),
            requests_per_operation: 1,
            error_samples: Vec::new(),
            checks: Vec::new(),
            wal: None,
        }
    }

    #[test]
    fn baseline_ratios_pair_concurrencies_and_take_giftds_best_for_sqlite() {
        let batched = report::PgbenchResult {
            script: "batched".into(),
            concurrency: 16,
            measured_seconds: 1.0,
            transactions: 100,
            failed: 0,
            tps: 100.0,
            latency_ms: Latency::default(),
            redemptions_per_transaction: Some(16),
            redemptions_per_second: Some(1600.0),
            wal: None,
        };
        let result = BackendReport {
            backend: "x".into(),
            runs: vec![spread(4, 300.0), spread(16, 800.0)],
            pgbench: Vec::new(),
            ratios: Vec::new(),
            pgbench_simple_update: Vec::new(),
            pgbench_batched: vec![batched],
            sqlite_baseline: Some(SqliteBaselineResult {
                journal_mode: "wal".into(),
                synchronous: "full".into(),
                connections: 1,
                cards: 1,
                measured_seconds: 1.0,
                redemptions: 1000,
                redemptions_per_second: 1000.0,
                latency_ms: Latency::default(),
                checks: Vec::new(),
            }),
            baseline_ratios: Vec::new(),
            notes: Vec::new(),
            setup_seconds: 0.0,
        };
        let ratios = baseline_ratios(&result);
        assert_eq!(ratios.len(), 2);
        assert_eq!(ratios[0].baseline, "pgbench_batched_ceiling");
        assert_eq!((ratios[0].giftd_concurrency, ratios[0].ratio), (16, 0.5));
        assert_eq!(ratios[1].baseline, "sqlite_bare_connection");
        assert_eq!((ratios[1].giftd_concurrency, ratios[1].ratio), (16, 0.8));
    }
}
