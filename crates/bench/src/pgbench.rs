//! PostgreSQL's own `pgbench` as the baselines giftd's throughput is compared with, three
//! scripts: the SQL work of one redemption per transaction (the guarded card `UPDATE`, the
//! `INSERT` of the transaction row, the `INSERT` of its two postings and the `INSERT` of the
//! idempotency record, one transaction and one commit per redemption); the same work for
//! `BATCH_REDEMPTIONS` redemptions done set-wise in one transaction, one statement per table,
//! as giftd's batches do it (the database's own ceiling for giftd's work); and pgbench's
//! built-in simple-update (`pgbench -N`) on its own `pgbench -i` tables.
//!
//! The redemption scripts work on tables of their own (`bench_*`) in the database giftd uses,
//! copied from giftd's tables with `LIKE … INCLUDING ALL` (columns, checks, defaults, indexes),
//! so each insert maintains the same indexes and checks that giftd's does (giftd's ledger rows
//! carry no foreign keys since migration 0009, so the copies need none); `pgbench -i` adds its `pgbench_*` tables to the same database. It never touches
//! giftd's own tables.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use sqlx::Connection;

use crate::report::{Latency, PgbenchResult};

/// Bytes of the stored answer in an idempotency record: about what giftd stores for a
/// redemption (the encrypted JSON transaction).
const IDEMPOTENCY_BODY_BYTES: usize = 420;

/// Redemptions in one transaction of the batched script.
pub const BATCH_REDEMPTIONS: u32 = 16;

/// The oldest pgbench with `permute()`, which the batched script picks its cards with.
pub const BATCHED_MIN_PGBENCH_MAJOR: u32 = 14;

/// `pgbench -i` scale for `pgbench -N` (100,000 accounts a unit), and in `--smoke`.
pub const SIMPLE_UPDATE_SCALE: u32 = 10;
pub const SIMPLE_UPDATE_SMOKE_SCALE: u32 = 1;

/// A bound on `pgbench -i`; scale 10 takes a few seconds.
const INIT_TIME_LIMIT: Duration = Duration::from_secs(600);

/// Which pgbench script a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// One redemption's SQL per transaction, on the `bench_*` tables.
    SameSql,
    /// `BATCH_REDEMPTIONS` redemptions set-wise per transaction, on the `bench_*` tables.
    Batched,
    /// pgbench's built-in simple-update (`-N`) on its own `pgbench -i` tables.
    SimpleUpdate,
}

impl Script {
    /// Its name in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Self::SameSql => "same_sql",
            Self::Batched => "batched",
            Self::SimpleUpdate => "simple_update",
        }
    }

    /// Its name in the lines printed.
    pub fn label(self) -> &'static str {
        match self {
            Self::SameSql => "pgbench",
            Self::Batched => "pgbench batched",
            Self::SimpleUpdate => "pgbench -N",
        }
    }

    /// Redemptions one transaction does; none for the built-in script.
    pub fn redemptions_per_transaction(self) -> Option<u32> {
        match self {
            Self::SameSql => Some(1),
            Self::Batched => Some(BATCH_REDEMPTIONS),
            Self::SimpleUpdate => None,
        }
    }
}

/// The script: one redemption of `:amount` from a random card among `:cards`. The ids are made
/// unique per client with a random 63-bit number, as giftd's are random too. A redemption's
/// journal entry is its own (`entry_id` = its transaction id), as in giftd. It must follow
/// giftd's schema: a new `NOT NULL` column makes pgbench fail, which `--smoke` catches.
fn script() -> String {
    format!(
        r#"\set card random(1, :cards)
\set r random(1, 9000000000000000000)
\set negative_amount -1 * :amount
BEGIN;
UPDATE bench_cards SET balance = balance - :amount, updated_at = (extract(epoch FROM clock_timestamp()) * 1000)::bigint WHERE id = 'bcard_' || :card AND balance - held >= :amount RETURNING balance AS balance_after \gset
\set balance_before :balance_after + :amount
INSERT INTO bench_transactions (id, merchant_id, card_id, type, amount, currency, balance_before, balance_after, reference, reverses, hold_id, entry_id, created_at) VALUES ('btxn_' || :client_id || '_' || :r, :merchant, 'bcard_' || :card, 'redemption', :amount, 'USD', :balance_before, :balance_after, NULL, NULL, NULL, 'btxn_' || :client_id || '_' || :r, (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
INSERT INTO bench_postings (transaction_id, entry_id, account_kind, owner_id, currency, amount) VALUES ('btxn_' || :client_id || '_' || :r, 'btxn_' || :client_id || '_' || :r, 'card_available', 'bcard_' || :card, 'USD', :negative_amount);
INSERT INTO bench_postings (transaction_id, entry_id, account_kind, owner_id, currency, amount) VALUES ('btxn_' || :client_id || '_' || :r, 'btxn_' || :client_id || '_' || :r, 'program_redemption', :program, 'USD', :amount);
INSERT INTO bench_idempotency_records (merchant_id, scope, key, request_hash, status, body, created_at) VALUES (:merchant, 'native', 'bkey_' || :client_id || '_' || :r, sha256(convert_to('bkey_' || :client_id || '_' || :r, 'UTF8')), 200, convert_to(repeat('x', {IDEMPOTENCY_BODY_BYTES}), 'UTF8'), (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
END;
"#
    )
}

/// The batched script: `BATCH_REDEMPTIONS` redemptions of `:amount` from distinct random cards
/// among `:cards` (consecutive positions of pgbench's pseudorandom permutation from a random
/// start, so distinct while `:cards` ≥ `BATCH_REDEMPTIONS`), in one transaction of one
/// statement per table, as giftd writes a batch: the cards locked in id order (as giftd's
/// batches lock them, so no deadlock) and debited by one `UPDATE … FROM` guarded by the
/// available balance, which must debit them all (else `\gset` finds no row and pgbench stops
/// the client, its transaction rolled back); then one `INSERT … SELECT FROM unnest` each for
/// the transaction rows (balances read back after the debit), their postings (card_available
/// −amount, program_redemption +amount: each transaction's sum to zero) and the idempotency
/// records. Ids are unique per client and transaction as in the one-redemption script.
fn batched_script() -> String {
    let n = BATCH_REDEMPTIONS;
    let mut script = String::from("\\set base random(0, :cards - 1)\n");
    for k in 1..=n {
        script.push_str(&format!(
            "\\set c{k} 1 + permute((:base + {}) % :cards, :cards)\n",
            k - 1
        ));
    }
    let ids = (1..=n)
        .map(|k| format!("'bcard_' || :c{k}"))
        .collect::<Vec<_>>()
        .join(", ");
    let now = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";
    let txn = "'btxnb_' || :client_id || '_' || :r || '_' || b.k";
    let key = "'bkeyb_' || :client_id || '_' || :r || '_' || k";
    script.push_str(&format!(
        r#"\set r random(1, 9000000000000000000)
BEGIN;
WITH debited AS (UPDATE bench_cards SET balance = bench_cards.balance - CAST(:amount AS bigint), updated_at = {now} FROM (SELECT c.id FROM bench_cards c JOIN unnest(ARRAY[{ids}]) AS b(card_id) ON c.id = b.card_id ORDER BY c.id FOR UPDATE OF c) AS batch WHERE bench_cards.id = batch.id AND bench_cards.balance - bench_cards.held >= CAST(:amount AS bigint) RETURNING bench_cards.id) SELECT count(*) AS debited FROM debited HAVING count(*) = {n} \gset
INSERT INTO bench_transactions (id, merchant_id, card_id, type, amount, currency, balance_before, balance_after, reference, reverses, hold_id, entry_id, created_at) SELECT {txn}, :merchant, c.id, 'redemption', CAST(:amount AS bigint), 'USD', c.balance + CAST(:amount AS bigint), c.balance, NULL, NULL, NULL, {txn}, {now} FROM unnest(ARRAY[{ids}]) WITH ORDINALITY AS b(card_id, k) JOIN bench_cards c ON c.id = b.card_id ORDER BY b.k;
INSERT INTO bench_postings (transaction_id, entry_id, account_kind, owner_id, currency, amount) SELECT {txn}, {txn}, p.kind, CASE p.kind WHEN 'card_available' THEN b.card_id ELSE CAST(:program AS text) END, 'USD', p.sign * CAST(:amount AS bigint) FROM unnest(ARRAY[{ids}]) WITH ORDINALITY AS b(card_id, k) CROSS JOIN (VALUES ('card_available', -1), ('program_redemption', 1)) AS p(kind, sign) ORDER BY b.k, p.sign;
INSERT INTO bench_idempotency_records (merchant_id, scope, key, request_hash, status, body, created_at) SELECT :merchant, 'native', {key}, sha256(convert_to({key}, 'UTF8')), 200, convert_to(repeat('x', {IDEMPOTENCY_BODY_BYTES}), 'UTF8'), {now} FROM generate_series(1, {n}) AS k;
END;
"#
    ));
    script
}

/// Creates and fills the `bench_*` tables: `cards` cards of `balance` each. Returns the
/// merchant their rows belong to: the one given, or else the first in the database.
pub async fn prepare(
    database_url: &str,
    merchant_id: Option<&str>,
    program_id: &str,
    cards: u32,
    balance: i64,
) -> anyhow::Result<String> {
    let mut conn = sqlx::PgConnection::connect(database_url)
        .await
        .context("pgbench setup: cannot connect")?;
    let merchant_id: String = match merchant_id {
        Some(id) => id.to_owned(),
        None => sqlx::query_scalar("SELECT id FROM merchants ORDER BY created_at LIMIT 1")
            .fetch_optional(&mut conn)
            .await?
            .context("pgbench setup: the database has no merchant")?,
    };
    let statements = [
        "DROP TABLE IF EXISTS bench_idempotency_records, bench_postings, bench_transactions, bench_cards",
        "CREATE TABLE bench_cards (LIKE cards INCLUDING ALL)",
        "CREATE TABLE bench_transactions (LIKE transactions INCLUDING ALL)",
        "CREATE TABLE bench_postings (LIKE postings INCLUDING ALL)",
        "CREATE TABLE bench_idempotency_records (LIKE idempotency_records INCLUDING ALL)",
    ];
    for statement in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .with_context(|| format!("pgbench setup: {statement}"))?;
    }
    sqlx::query(
        "INSERT INTO bench_cards (id, merchant_id, program_id, kind, state, currency, balance, held, \
         expires_at, last4, number_ciphertext, number_fingerprint, security_code_hash, created_at, updated_at) \
         SELECT 'bcard_' || i, $1, $2, 'virtual', 'active', 'USD', $3, 0, NULL, '0000', \
         sha256(convert_to('n' || i, 'UTF8')) || sha256(convert_to('m' || i, 'UTF8')), \
         sha256(convert_to('f' || i, 'UTF8')), sha256(convert_to('s' || i, 'UTF8')), 0, 0 \
         FROM generate_series(1, $4) AS i",
    )
    .bind(&merchant_id)
    .bind(program_id)
    .bind(balance)
    .bind(i64::from(cards))
    .execute(&mut conn)
    .await
    .context("pgbench setup: filling bench_cards")?;
    sqlx::raw_sql("VACUUM ANALYZE bench_cards")
        .execute(&mut conn)
        .await
        .context("pgbench setup: VACUUM ANALYZE")?;
    let _ = conn.close().await;
    Ok(merchant_id)
}

/// The totals of the `bench_*` tables after pgbench: transactions, and cards overdrawn or with
/// a cached balance that disagrees with their postings (both must be zero).
pub async fn check(database_url: &str, balance: i64) -> anyhow::Result<Vec<String>> {
    let mut conn = sqlx::PgConnection::connect(database_url).await?;
    let bad: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bench_cards c LEFT JOIN \
         (SELECT owner_id, sum(amount) AS total FROM bench_postings WHERE account_kind = 'card_available' GROUP BY owner_id) p \
         ON p.owner_id = c.id WHERE c.balance < 0 OR c.balance <> $1 + COALESCE(p.total, 0)",
    )
    .bind(balance)
    .fetch_one(&mut conn)
    .await?;
    let _ = conn.close().await;
    Ok(if bad == 0 {
        Vec::new()
    } else {
        vec![format!(
            "pgbench: {bad} bench card(s) overdrawn or out of step with their postings"
        )]
    })
}

/// PostgreSQL's cumulative WAL flushes (`pg_stat_wal.wal_sync`, cluster-wide, PostgreSQL 14
/// to 17) and commits of this database (`pg_stat_database.xact_commit`). `None` where the
/// server does not have them. Their differences over a run give the group-commit factor:
/// commits per WAL flush.
pub async fn wal_counters(database_url: &str) -> Option<WalCounters> {
    let mut conn = sqlx::PgConnection::connect(database_url).await.ok()?;
    // The statistics are sent at transaction end and read from a snapshot: take a fresh one.
    let _ = sqlx::raw_sql("SELECT pg_stat_clear_snapshot()")
        .execute(&mut conn)
        .await;
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT (SELECT wal_sync FROM pg_stat_wal)::bigint, \
         (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())::bigint",
    )
    .fetch_one(&mut conn)
    .await
    .ok();
    let _ = conn.close().await;
    let (wal_syncs, commits) = row?;
    Some(WalCounters {
        wal_syncs: u64::try_from(wal_syncs).ok()?,
        commits: u64::try_from(commits).ok()?,
    })
}

#[derive(Debug, Clone, Copy)]
pub struct WalCounters {
    pub wal_syncs: u64,
    pub commits: u64,
}

impl WalCounters {
    /// (WAL flushes, commits) between two readings.
    pub fn since(self, before: Self) -> (u64, u64) {
        (
            self.wal_syncs.saturating_sub(before.wal_syncs),
            self.commits.saturating_sub(before.commits),
        )
    }
}

pub struct PgbenchRun<'a> {
    pub script: Script,
    pub pgbench: &'a Path,
    pub database_url: &'a str,
    pub merchant_id: &'a str,
    pub program_id: &'a str,
    pub cards: u32,
    pub amount: i64,
    pub concurrency: u32,
    pub duration: Duration,
    pub work_dir: &'a Path,
}

/// pgbench's major version (`pgbench (PostgreSQL) 15.4` → 15), or `None` when it cannot run.
pub async fn major_version(pgbench: &Path) -> Option<u32> {
    let output = tokio::process::Command::new(pgbench)
        .arg("--version")
        .output()
        .await
        .ok()
        .filter(|o| o.status.success())?;
    parse_major_version(&String::from_utf8_lossy(&output.stdout))
}

/// The major version in `pgbench (PostgreSQL) 15.4 (Debian 15.4-1)` or `pgbench (PostgreSQL)
/// 17beta1`: the first number after the closing parenthesis.
fn parse_major_version(text: &str) -> Option<u32> {
    let rest = text.trim().strip_prefix("pgbench")?;
    let rest = rest.split_once(')').map_or(rest, |(_, after)| after).trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `pgbench -i -s scale` into the database: pgbench's own tables for `pgbench -N` (generated
/// server-side, vacuumed, with primary keys). Returns the seconds it took.
pub async fn init_simple_update(pgbench: &Path, database_url: &str, scale: u32) -> anyhow::Result<f64> {
    let started = std::time::Instant::now();
    let mut command = tokio::process::Command::new(pgbench);
    command
        .arg("--initialize")
        .args(["--scale", &scale.to_string()])
        .args(["--init-steps", "dtGvp"])
        .arg("--quiet")
        .kill_on_drop(true);
    let (url, password) = crate::server::split_password(database_url);
    command.arg(url);
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    let output = tokio::time::timeout(INIT_TIME_LIMIT, command.output())
        .await
        .context("pgbench -i did not finish in time")?
        .context("cannot run pgbench -i")?;
    if !output.status.success() {
        bail!(
            "pgbench -i failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Runs pgbench for the duration; latency percentiles come from its per-transaction log.
pub async fn run(options: &PgbenchRun<'_>) -> anyhow::Result<PgbenchResult> {
    let script = options.script;
    let log_dir = options
        .work_dir
        .join(format!("log-{}-c{}", script.name(), options.concurrency));
    let _ = std::fs::remove_dir_all(&log_dir);
    std::fs::create_dir_all(&log_dir)?;
    let seconds = options.duration.as_secs().max(1);
    let threads = options.concurrency.clamp(1, 2);
    let mut command = tokio::process::Command::new(options.pgbench);
    command
        .arg("--no-vacuum")
        .args(["--protocol", "prepared"])
        .args(["--client", &options.concurrency.to_string()])
        .args(["--jobs", &threads.to_string()])
        .args(["--time", &seconds.to_string()])
        .args(["--define", &format!("cards={}", options.cards)])
        .args(["--define", &format!("amount={}", options.amount)])
        .args(["--define", &format!("merchant={}", options.merchant_id)])
        .args(["--define", &format!("program={}", options.program_id)])
        .arg("--log")
        .arg(format!("--log-prefix={}", log_dir.join("tx").display()))
        .kill_on_drop(true);
    let text = match script {
        Script::SameSql => Some(self::script()),
        Script::Batched => Some(batched_script()),
        Script::SimpleUpdate => None,
    };
    match text {
        Some(text) => {
            let script_path = options.work_dir.join(format!("{}.sql", script.name()));
            std::fs::write(&script_path, text).context("cannot write the pgbench script")?;
            command.arg("--file").arg(script_path);
        }
        None => {
            command.args(["--builtin", "simple-update"]);
        }
    }
    // The password goes through the environment, never the command line.
    let (url, password) = crate::server::split_password(options.database_url);
    command.arg(url);
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    // Bounded: pgbench stops by itself after --time; this is in case it cannot.
    let limit = options.duration + Duration::from_secs(60);
    let output = tokio::time::timeout(limit, command.output())
        .await
        .context("pgbench did not finish in time")?
        .context("cannot run pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("pgbench failed ({}):\n{stdout}\n{stderr}", output.status);
    }
    let summary = parse_summary(&stdout)
        .with_context(|| format!("cannot read pgbench's summary:\n{stdout}\n{stderr}"))?;
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for entry in std::fs::read_dir(&log_dir)? {
        let text = std::fs::read_to_string(entry?.path())?;
        for line in text.lines() {
            if let Some(us) = parse_log_line(line) {
                histogram.saturating_record(us.max(1));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&log_dir);
    let redemptions_per_transaction = script.redemptions_per_transaction();
    Ok(PgbenchResult {
        script: script.name().into(),
        concurrency: options.concurrency,
        measured_seconds: seconds as f64,
        transactions: summary.transactions,
        failed: summary.failed,
        tps: summary.tps,
        latency_ms: Latency::from_histogram(&histogram),
        redemptions_per_transaction,
        redemptions_per_second: redemptions_per_transaction.map(|n| summary.tps * f64::from(n)),
        wal: None,
    })
}

#[derive(Debug, PartialEq)]
struct Summary {
    transactions: u64,
    failed: u64,
    tps: f64,
}

/// Reads `number of transactions actually processed: N`, `number of failed transactions: N`
/// and `tps = X (without initial connection time)` from pgbench's report.
fn parse_summary(text: &str) -> Option<Summary> {
    let mut transactions = None;
    let mut failed = 0;
    let mut tps = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("number of transactions actually processed:") {
            transactions = rest.split_whitespace().next()?.split('/').next()?.parse().ok();
        } else if let Some(rest) = line.strip_prefix("number of failed transactions:") {
            failed = rest.split_whitespace().next()?.parse().ok()?;
        } else if let Some(rest) = line.strip_prefix("tps =")
            && line.contains("without initial connection time")
        {
            tps = rest.split_whitespace().next()?.parse().ok();
        }
    }
    Some(Summary {
        transactions: transactions?,
        failed,
        tps: tps?,
    })
}

/// A line of pgbench's per-transaction log: `client_id transaction_no time script_no
/// time_epoch time_us ...`, where `time` is the latency in microseconds (or `failed`).
fn parse_log_line(line: &str) -> Option<u64> {
    line.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_summary_reads_pgbench_15() {
        let text = "transaction type: redeem.sql\nscaling factor: 1\nquery mode: prepared\n\
            number of clients: 16\nnumber of threads: 2\nmaximum number of tries: 1\n\
            duration: 10 s\nnumber of transactions actually processed: 28330\n\
            number of failed transactions: 0 (0.000%)\nlatency average = 5.6 ms\n\
            initial connection time = 12.3 ms\ntps = 2833.012345 (without initial connection time)\n";
        assert_eq!(
            parse_summary(text),
            Some(Summary {
                transactions: 28330,
                failed: 0,
                tps: 2833.012345
            })
        );
    }

    #[test]
    fn parse_log_line_reads_the_latency() {
        assert_eq!(parse_log_line("3 41 5612 0 1700000000 123456"), Some(5612));
        assert_eq!(parse_log_line("3 41 failed 0 1700000000 123456"), None);
    }

    #[test]
    fn the_script_does_one_transaction_of_the_four_writes() {
        let script = script();
        assert_eq!(script.matches("BEGIN;").count(), 1);
        assert_eq!(script.matches("UPDATE bench_cards").count(), 1);
        assert_eq!(script.matches("INSERT INTO bench_transactions").count(), 1);
        assert_eq!(script.matches("INSERT INTO bench_postings").count(), 2);
        assert_eq!(script.matches("INSERT INTO bench_idempotency_records").count(), 1);
        assert!(script.contains("balance - held >= :amount"));
    }

    #[test]
    fn the_batched_script_does_one_statement_per_table_for_the_whole_batch() {
        let script = batched_script();
        assert_eq!(script.matches("BEGIN;").count(), 1);
        assert_eq!(script.matches("END;").count(), 1);
        assert_eq!(script.matches("UPDATE bench_cards").count(), 1);
        assert_eq!(script.matches("INSERT INTO bench_transactions").count(), 1);
        assert_eq!(script.matches("INSERT INTO bench_postings").count(), 1);
        assert_eq!(script.matches("INSERT INTO bench_idempotency_records").count(), 1);
        // Every card of the batch is picked, and named in each statement that needs them.
        for k in 1..=BATCH_REDEMPTIONS {
            assert!(script.contains(&format!("\\set c{k} ")), "c{k}");
            assert_eq!(
                script.matches(&format!("'bcard_' || :c{k},")).count()
                    + script.matches(&format!("'bcard_' || :c{k}]")).count(),
                3,
                "c{k}"
            );
        }
        // Guarded, all or nothing, locked in id order; postings balanced.
        assert!(script.contains("bench_cards.balance - bench_cards.held >= CAST(:amount AS bigint)"));
        assert!(script.contains(&format!("HAVING count(*) = {BATCH_REDEMPTIONS} \\gset")));
        assert!(script.contains("ORDER BY c.id FOR UPDATE"));
        assert!(script.contains("('card_available', -1), ('program_redemption', 1)"));
        assert!(script.contains(&format!("generate_series(1, {BATCH_REDEMPTIONS})")));
    }

    #[test]
    fn parse_major_version_reads_pgbench_version_lines() {
        assert_eq!(
            parse_major_version("pgbench (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(parse_major_version("pgbench (PostgreSQL) 13.4"), Some(13));
        assert_eq!(parse_major_version("pgbench (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_major_version("psql (PostgreSQL) 15.2"), None);
        assert_eq!(parse_major_version(""), None);
    }

    #[test]
    fn parse_summary_reads_the_builtin_simple_update() {
        let text = "pgbench (15.20 (Debian 15.20-0+deb12u1))\n\
            transaction type: <builtin: simple update>\nscaling factor: 10\n\
            query mode: prepared\nnumber of clients: 16\nnumber of threads: 2\n\
            maximum number of tries: 1\nduration: 3 s\n\
            number of transactions actually processed: 5324\n\
            number of failed transactions: 0 (0.000%)\nlatency average = 8.6 ms\n\
            initial connection time = 20.1 ms\ntps = 1850.584425 (without initial connection time)\n";
        assert_eq!(
            parse_summary(text),
            Some(Summary {
                transactions: 5324,
                failed: 0,
                tps: 1850.584425
            })
        );
    }
}
