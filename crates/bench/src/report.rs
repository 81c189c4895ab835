//! The results of a benchmark invocation: what was measured (serialised as the `--json`
//! document, which `giftd-bench chart` reads back) and the table printed for people. It only
//! describes results; it measures nothing and judges nothing.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// One invocation: the machine, the settings and one section per backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub tool: String,
    pub started_at_unix_seconds: u64,
    pub machine: Machine,
    pub settings: Settings,
    pub backends: Vec<BackendReport>,
    /// Every correctness failure seen (empty when all checks passed).
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_total_kib: u64,
    pub load_average_at_start: String,
    pub load_average_at_end: String,
    pub kernel: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub smoke: bool,
    pub cards: u32,
    pub starting_balance_minor: i64,
    pub amount_minor: i64,
    pub duration_seconds: f64,
    pub warmup_seconds: f64,
    pub concurrency: Vec<u32>,
    pub durability: String,
    pub idempotency_keys: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackendReport {
    /// `sqlite`, `postgres` or `external`.
    pub backend: String,
    pub runs: Vec<RunResult>,
    /// pgbench with the script doing one redemption's SQL per transaction (`bench_*` tables).
    pub pgbench: Vec<PgbenchResult>,
    /// giftd's closed-loop spread throughput over pgbench's, per concurrency.
    pub ratios: Vec<Ratio>,
    /// PostgreSQL only: pgbench's built-in simple-update script (`pgbench -N`) on its own
    /// `pgbench -i` tables, at each concurrency.
    #[serde(default)]
    pub pgbench_simple_update: Vec<PgbenchResult>,
    /// PostgreSQL only: pgbench with the batched script, several redemptions set-wise per
    /// transaction on the `bench_*` tables: the database's own ceiling for giftd's work done as
    /// giftd's batches do it (`redemptions_per_second` = tps × redemptions per transaction).
    #[serde(default)]
    pub pgbench_batched: Vec<PgbenchResult>,
    /// SQLite only: one bare SQLite connection doing a redemption's minimal writes per commit.
    #[serde(default)]
    pub sqlite_baseline: Option<SqliteBaselineResult>,
    /// giftd's closed-loop spread throughput over each baseline's redemptions (or transactions)
    /// per second: pgbench -N and the batched ceiling at the same concurrency, the bare SQLite
    /// connection against giftd's best concurrency.
    #[serde(default)]
    pub baseline_ratios: Vec<BaselineRatio>,
    /// What was shortened or skipped, and why (e.g. in `--smoke`).
    #[serde(default)]
    pub notes: Vec<String>,
    /// How long preparing the program and cards took.
    pub setup_seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// `spread` (redemptions over all cards), `hot` (one card), `holds` (place then capture),
    /// `drain` (one small card redeemed past empty: a correctness check, not a figure).
    pub scenario: String,
    /// `closed` (fixed concurrency) or `open` (fixed arrival rate).
    pub mode: String,
    pub concurrency: Option<u32>,
    pub rate_per_second: Option<f64>,
    /// The measured window (warm-up excluded).
    pub measured_seconds: f64,
    /// Operations (a redemption; or a hold and its capture) answered with success.
    pub ok: u64,
    /// Refused with 4xx (e.g. `insufficient_funds` in the drain check).
    pub client_errors: u64,
    pub server_errors: u64,
    /// No HTTP answer: connection error or timeout.
    pub transport_errors: u64,
    pub throughput_per_second: f64,
    pub latency_ms: Latency,
    /// HTTP requests one operation takes.
    pub requests_per_operation: u32,
    /// A few error answers, for diagnosis.
    pub error_samples: Vec<String>,
    /// The outcome of the checks after the run: `giftd verify` and the card balances.
    pub checks: Vec<String>,
    /// PostgreSQL only: WAL flushes and commits during the run (warm-up included).
    #[serde(default)]
    pub wal: Option<WalUse>,
}

/// What PostgreSQL flushed: write operations per WAL flush is the group-commit factor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WalUse {
    /// WAL flushes of the whole cluster during the run.
    pub wal_syncs: u64,
    /// Transactions committed in the database, read-only ones included.
    pub commits: u64,
    /// Write operations (redemptions, holds, captures; pgbench transactions) during the run.
    pub writes: u64,
    pub writes_per_wal_sync: f64,
}

impl WalUse {
    pub fn new(wal_syncs: u64, commits: u64, writes: u64) -> Self {
        Self {
            wal_syncs,
            commits,
            writes,
            writes_per_wal_sync: if wal_syncs == 0 {
                0.0
            } else {
                writes as f64 / wal_syncs as f64
            },
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    /// From a histogram of microseconds.
    pub fn from_histogram(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
            mean: histogram.mean() / 1000.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PgbenchResult {
    /// `same_sql` (one redemption's SQL per transaction), `simple_update` (`pgbench -N`) or
    /// `batched` (several redemptions set-wise per transaction). Empty in older reports, where
    /// it was always `same_sql`.
    #[serde(default)]
    pub script: String,
    pub concurrency: u32,
    pub measured_seconds: f64,
    pub transactions: u64,
    pub failed: u64,
    /// pgbench transactions per second.
    pub tps: f64,
    /// Latency of one pgbench transaction (of all its redemptions, for `batched`).
    pub latency_ms: Latency,
    /// Redemptions one pgbench transaction does (none for `simple_update`).
    #[serde(default)]
    pub redemptions_per_transaction: Option<u32>,
    /// tps × redemptions per transaction (none for `simple_update`).
    #[serde(default)]
    pub redemptions_per_second: Option<f64>,
    /// For `batched`, `writes` counts redemptions, not pgbench transactions.
    #[serde(default)]
    pub wal: Option<WalUse>,
}

impl PgbenchResult {
    /// What giftd's redemptions are compared with: redemptions per second where the script
    /// does redemptions, else pgbench transactions per second.
    pub fn per_second(&self) -> f64 {
        self.redemptions_per_second.unwrap_or(self.tps)
    }
}

/// One bare SQLite connection (WAL, `synchronous=FULL`) on a fresh file, one thread, one
/// transaction and one commit per redemption: a guarded `UPDATE` of the card and two
/// `INSERT`s (the transaction and its posting).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SqliteBaselineResult {
    pub journal_mode: String,
    pub synchronous: String,
    pub connections: u32,
    pub cards: u32,
    pub measured_seconds: f64,
    /// Redemptions committed in the measured window.
    pub redemptions: u64,
    pub redemptions_per_second: f64,
    pub latency_ms: Latency,
    /// The checks on its own tables afterwards.
    pub checks: Vec<String>,
}

/// giftd against a baseline measured in the same invocation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineRatio {
    /// `pgbench_simple_update` (`pgbench -N`, transactions per second),
    /// `pgbench_batched_ceiling` (redemptions per second) or `sqlite_bare_connection`
    /// (redemptions per second).
    pub baseline: String,
    /// The concurrency of giftd's closed-loop spread run compared (the baseline's too, except
    /// for the single-connection SQLite baseline, compared with giftd's best concurrency).
    pub giftd_concurrency: u32,
    pub giftd_per_second: f64,
    pub baseline_per_second: f64,
    /// giftd_per_second / baseline_per_second.
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ratio {
    pub concurrency: u32,
    pub giftd_per_second: f64,
    pub pgbench_tps: f64,
    pub ratio: f64,
}

/// The table people read.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let m = &report.machine;
    let _ = writeln!(
        out,
        "machine: {} cpus ({}), {} MiB, load {} -> {}",
        m.cpus,
        m.cpu_model,
        m.memory_total_kib / 1024,
        m.load_average_at_start,
        m.load_average_at_end
    );
    let s = &report.settings;
    let _ = writeln!(
        out,
        "settings: {} cards of {} minor units, {} per operation, {} s measured after {} s warm-up, durability {}{}",
        s.cards,
        s.starting_balance_minor,
        s.amount_minor,
        s.duration_seconds,
        s.warmup_seconds,
        s.durability,
        if s.smoke { ", SMOKE (correctness only)" } else { "" }
    );
    for backend in &report.backends {
        let _ = writeln!(
            out,
            "\n== {} (setup {:.1} s)",
            backend.backend, backend.setup_seconds
        );
        let _ = writeln!(
            out,
            "{:<8} {:<6} {:>5} {:>8} {:>9} {:>8} {:>8} {:>9} {:>8} {:>8} {:>6} {:>5} {:>5}  checks",
            "scenario",
            "mode",
            "conc",
            "rate/s",
            "ops/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "ok",
            "4xx",
            "5xx",
            "net"
        );
        for run in &backend.runs {
            let _ = writeln!(
                out,
                "{:<8} {:<6} {:>5} {:>8} {:>9.0} {:>8.2} {:>8.2} {:>9.2} {:>8.1} {:>8} {:>6} {:>5} {:>5}  {}",
                run.scenario,
                run.mode,
                run.concurrency.map_or("-".into(), |c| c.to_string()),
                run.rate_per_second.map_or("-".into(), |r| format!("{r:.0}")),
                run.throughput_per_second,
                run.latency_ms.p50,
                run.latency_ms.p99,
                run.latency_ms.p999,
                run.latency_ms.max,
                run.ok,
                run.client_errors,
                run.server_errors,
                run.transport_errors,
                wal_note(run.wal.as_ref()) + &run.checks.join("; ")
            );
        }
        if !backend.pgbench.is_empty() {
            let _ = writeln!(out, "pgbench, same SQL work per transaction:");
            for p in &backend.pgbench {
                let _ = writeln!(
                    out,
                    "  concurrency {:>3}: {:>8.0} tps, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, failed {}; {}",
                    p.concurrency,
                    p.tps,
                    p.latency_ms.p50,
                    p.latency_ms.p99,
                    p.latency_ms.p999,
                    p.failed,
                    wal_note(p.wal.as_ref())
                );
            }
        }
        for r in &backend.ratios {
            let _ = writeln!(
                out,
                "  giftd / pgbench at concurrency {:>3}: {:.0} / {:.0} = {:.2}x",
                r.concurrency, r.giftd_per_second, r.pgbench_tps, r.ratio
            );
        }
        if !backend.pgbench_simple_update.is_empty() {
            let _ = writeln!(
                out,
                "pgbench -N (built-in simple-update, its own pgbench -i tables):"
            );
            for p in &backend.pgbench_simple_update {
                let _ = writeln!(
                    out,
                    "  concurrency {:>3}: {:>8.0} tps, p50 {:.2} ms, p99 {:.2} ms, failed {}; {}",
                    p.concurrency,
                    p.tps,
                    p.latency_ms.p50,
                    p.latency_ms.p99,
                    p.failed,
                    wal_note(p.wal.as_ref())
                );
            }
        }
        if !backend.pgbench_batched.is_empty() {
            let _ = writeln!(
                out,
                "batched ceiling, pgbench with {} redemptions set-wise per transaction (bench_* tables):",
                backend.pgbench_batched[0]
                    .redemptions_per_transaction
                    .unwrap_or(1)
            );
            for p in &backend.pgbench_batched {
                let _ = writeln!(
                    out,
                    "  concurrency {:>3}: {:>8.0} redemptions/s ({:.0} tps), p50 {:.2} ms, p99 {:.2} ms per transaction, failed {}; {}",
                    p.concurrency,
                    p.per_second(),
                    p.tps,
                    p.latency_ms.p50,
                    p.latency_ms.p99,
                    p.failed,
                    wal_note(p.wal.as_ref())
                );
            }
        }
        if let Some(b) = &backend.sqlite_baseline {
            let _ = writeln!(
                out,
                "bare SQLite connection ({} journal, synchronous={}, {} thread, 1 UPDATE + 2 INSERT per commit):\n  {:>8.0} redemptions/s, p50 {:.2} ms, p99 {:.2} ms, {} in {:.1} s; {}",
                b.journal_mode,
                b.synchronous,
                b.connections,
                b.redemptions_per_second,
                b.latency_ms.p50,
                b.latency_ms.p99,
                b.redemptions,
                b.measured_seconds,
                b.checks.join("; ")
            );
        }
        for r in &backend.baseline_ratios {
            let _ = writeln!(
                out,
                "  giftd spread c={} / {}: {:.0} / {:.0} = {:.2}x",
                r.giftd_concurrency,
                baseline_label(&r.baseline),
                r.giftd_per_second,
                r.baseline_per_second,
                r.ratio
            );
        }
        for note in &backend.notes {
            let _ = writeln!(out, "  note: {note}");
        }
    }
    if report.failures.is_empty() {
        let _ = writeln!(out, "\nall checks passed");
    } else {
        let _ = writeln!(out, "\nFAILED: {} check(s)", report.failures.len());
        for failure in &report.failures {
            let _ = writeln!(out, "  FAILED {failure}");
        }
    }
    out
}

/// How a baseline is named in the table.
fn baseline_label(baseline: &str) -> &str {
    match baseline {
        "pgbench_simple_update" => "pgbench -N",
        "pgbench_batched_ceiling" => "batched ceiling",
        "sqlite_bare_connection" => "bare SQLite",
        other => other,
    }
}

fn wal_note(wal: Option<&WalUse>) -> String {
    wal.map_or(String::new(), |w| {
        format!(
            "{:.1} writes/WAL flush ({} flushes); ",
            w.writes_per_wal_sync, w.wal_syncs
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_reads_quantiles_in_milliseconds() {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for us in 1..=1000u64 {
            histogram.record(us * 10).unwrap();
        }
        let latency = Latency::from_histogram(&histogram);
        assert!((latency.p50 - 5.0).abs() < 0.05, "{latency:?}");
        assert!((latency.p99 - 9.9).abs() < 0.05, "{latency:?}");
        assert!((latency.max - 10.0).abs() < 0.05, "{latency:?}");
    }

    fn pgbench_result(script: &str, tps: f64, per_transaction: Option<u32>) -> PgbenchResult {
        PgbenchResult {
            script: script.into(),
            concurrency: 16,
            measured_seconds: 3.0,
            transactions: (tps * 3.0) as u64,
            failed: 0,
            tps,
            latency_ms: Latency::default(),
            redemptions_per_transaction: per_transaction,
            redemptions_per_second: per_transaction.map(|n| tps * f64::from(n)),
            wal: None,
        }
    }

    #[test]
    fn per_second_counts_redemptions_where_the_script_does_them() {
        assert_eq!(pgbench_result("batched", 400.0, Some(16)).per_second(), 6400.0);
        assert_eq!(pgbench_result("simple_update", 1800.0, None).per_second(), 1800.0);
    }

    #[test]
    fn a_report_without_the_baselines_still_reads_and_the_table_shows_them() {
        let old = r#"{"tool":"giftd-bench 0.1.0","started_at_unix_seconds":1,
            "machine":{"cpus":2,"cpu_model":"x","memory_total_kib":1024,"load_average_at_start":"0",
              "load_average_at_end":"0","kernel":"k"},
            "settings":{"smoke":false,"cards":10,"starting_balance_minor":100,"amount_minor":1,
              "duration_seconds":1.0,"warmup_seconds":1.0,"concurrency":[16],"durability":"full",
              "idempotency_keys":true},
            "backends":[{"backend":"postgres","runs":[],"ratios":[],"setup_seconds":1.0,
              "pgbench":[{"concurrency":16,"measured_seconds":1.0,"transactions":5,"failed":0,
                "tps":5.0,"latency_ms":{"p50":1.0,"p90":1.0,"p99":1.0,"p999":1.0,"max":1.0,"mean":1.0}}]}],
            "failures":[]}"#;
        let mut report: Report = serde_json::from_str(old).unwrap();
        let backend = &mut report.backends[0];
        assert!(backend.pgbench_batched.is_empty() && backend.sqlite_baseline.is_none());
        assert_eq!(backend.pgbench[0].script, "");
        backend
            .pgbench_batched
            .push(pgbench_result("batched", 400.0, Some(16)));
        backend
            .pgbench_simple_update
            .push(pgbench_result("simple_update", 1800.0, None));
        backend.baseline_ratios.push(BaselineRatio {
            baseline: "pgbench_batched_ceiling".into(),
            giftd_concurrency: 16,
            giftd_per_second: 3200.0,
            baseline_per_second: 6400.0,
            ratio: 0.5,
        });
        let table = table(&report);
        assert!(table.contains("6400 redemptions/s (400 tps)"), "{table}");
        assert!(table.contains("pgbench -N"), "{table}");
        assert!(
            table.contains("giftd spread c=16 / batched ceiling: 3200 / 6400 = 0.50x"),
            "{table}"
        );
    }

    #[test]
    fn latency_of_nothing_is_zero() {
        let histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        assert_eq!(Latency::from_histogram(&histogram).p99, 0.0);
    }
}
