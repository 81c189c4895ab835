//! `giftd-bench`: how many durable redemptions per second giftd serves over HTTP, at what
//! latency, compared with PostgreSQL's own pgbench doing the same SQL work, and whether every
//! run left the books right.
//!
//! By default it starts the `giftd` binary itself on a free port of 127.0.0.1 with a fresh data
//! folder (SQLite, durability full) or a fresh PostgreSQL database (dropped afterwards),
//! prepares a program and N cards with large balances, and runs the scenarios: redemptions
//! spread over all cards at fixed concurrencies (closed loop) and at a fixed arrival rate (open
//! loop), a hot card, holds placed then captured, a drain check (one small card redeemed past
//! empty from many clients at once) and, on PostgreSQL, pgbench. After every run it runs
//! `giftd verify` and compares every card's balance with the debits giftd acknowledged,
//! failing loudly on any difference. `--smoke` runs it all for a few seconds at small N and
//! asserts correctness only, never speed.
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

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::api::{Api, Cards};
use crate::load::{Pace, Pick, Plan, Workload};
use crate::report::{BackendReport, Latency, Ratio, Report, RunResult, Settings, WalUse};
use crate::server::{GiftdServer, PgDatabase, ServeOptions, Storage};

/// The drain check: a card of `DRAIN_AMOUNT × DRAIN_SUCCESSES` redeemed `DRAIN_AMOUNT` at a time,
/// `DRAIN_ATTEMPTS` times from many clients at once: exactly `DRAIN_SUCCESSES` must succeed.
const DRAIN_AMOUNT: i64 = 7;
const DRAIN_SUCCESSES: u64 = 500;
const DRAIN_ATTEMPTS: u64 = 1000;
const DRAIN_CONCURRENCY: u32 = 16;
/// A bound on the drain check's time; it normally takes a second or two.
const DRAIN_TIME_LIMIT: Duration = Duration::from_secs(120);
/// The default PostgreSQL server for `--backend postgres`.
const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Parser)]
#[command(
    name = "giftd-bench",
    version,
    about = "Benchmark giftd: durable redemptions over HTTP, holds, a hot card, and pgbench doing the same SQL work; checks the books after every run",
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
    /// pgbench doing the same SQL work, at each --concurrency (PostgreSQL only). With `spread`,
    /// each pgbench run comes right after giftd's spread run at the same concurrency.
    Pgbench,
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
        default_value = "spread,open,hot,holds,drain,pgbench"
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
            idempotency_keys: true,
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
        setup_seconds,
    };
    // On PostgreSQL, pgbench runs right after giftd's spread run at each concurrency, so that
    // both see the same background load on a shared machine.
    let pgbench_merchant = if backend != Backend::Sqlite && args.scenarios.contains(&Scenario::Pgbench) {
        bench.pgbench_prepare().await?
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
                    };
                    let run = bench.measure(name, plan, failures).await?;
                    result.runs.push(run);
                    if *scenario == Scenario::Spread
                        && !args.smoke
                        && let Some(merchant_id) = &pgbench_merchant
                    {
                        let run = bench.pgbench_run(merchant_id, concurrency, failures).await?;
                        result.pgbench.push(run);
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
                };
                let run = bench.measure("drain", plan, failures).await?;
                result.runs.push(run);
            }
            Scenario::Pgbench => {
                let Some(merchant_id) = &pgbench_merchant else {
                    continue;
                };
                // The concurrencies not already run right after giftd's spread runs.
                let concurrencies = if args.smoke {
                    vec![2]
                } else {
                    config.concurrency.clone()
                };
                for concurrency in concurrencies {
                    if result.pgbench.iter().any(|p| p.concurrency == concurrency) {
                        continue;
                    }
                    let run = bench.pgbench_run(merchant_id, concurrency, failures).await?;
                    result.pgbench.push(run);
                }
                bench.pgbench_check(failures).await?;
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
    Ok(result)
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

    /// Prepares pgbench's tables when pgbench is to run here: the merchant their rows belong to,
    /// or `None` when there is no PostgreSQL database (or, in smoke mode, no pgbench).
    async fn pgbench_prepare(&self) -> anyhow::Result<Option<String>> {
        let Some(database_url) = self.database_url() else {
            eprintln!("pgbench skipped: no PostgreSQL database");
            return Ok(None);
        };
        let args = &self.config.args;
        if !pgbench::available(&args.pgbench).await {
            let text = format!("pgbench not found at {}", args.pgbench.display());
            if args.smoke {
                eprintln!("pgbench skipped: {text}");
                return Ok(None);
            }
            bail!(text);
        }
        let merchant_id = pgbench::prepare(
            database_url,
            self.merchant_id.as_deref(),
            &self.cards.program_id,
            self.config.cards,
            args.balance,
        )
        .await?;
        Ok(Some(merchant_id))
    }

    /// One pgbench run at this concurrency; a failed pgbench transaction is a failure.
    async fn pgbench_run(
        &self,
        merchant_id: &str,
        concurrency: u32,
        failures: &mut Vec<String>,
    ) -> anyhow::Result<report::PgbenchResult> {
        let args = &self.config.args;
        let database_url = self.database_url().context("pgbench needs PostgreSQL")?;
        let wal_before = self.wal_counters().await;
        let mut result = pgbench::run(&pgbench::PgbenchRun {
            pgbench: &args.pgbench,
            database_url,
            merchant_id,
            program_id: &self.cards.program_id,
            cards: self.config.cards,
            amount: args.amount,
            concurrency,
            duration: self.config.pgbench_duration,
            work_dir: self.work_dir.path(),
        })
        .await?;
        result.wal = self.wal_since(wal_before, result.transactions).await;
        eprintln!(
            "{:>28}: {:>8.0} tps    p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  failed {}",
            format!("pgbench c={concurrency}"),
            result.tps,
            result.latency_ms.p50,
            result.latency_ms.p99,
            result.latency_ms.p999,
            result.failed
        );
        if result.failed > 0 || result.transactions == 0 {
            let text = format!(
                "pgbench c={concurrency}: {} failed, {} done",
                result.failed, result.transactions
            );
            eprintln!("FAILED {text}");
            failures.push(text);
        }
        Ok(result)
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
