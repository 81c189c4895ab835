//! The SQLite baseline: one bare SQLite connection (rusqlite, WAL, `synchronous=FULL`, nothing
//! else set) on a fresh file in a temporary folder, one thread, doing the least a durable
//! redemption writes: a guarded `UPDATE` of a random card and two `INSERT`s (the transaction
//! row and its posting), one transaction and one commit (one fsync of the log) per redemption,
//! for the same warm-up and measured window as giftd's runs. It is what giftd's throughput on
//! SQLite is compared with; afterwards it checks its own books (every card's balance equals its
//! starting balance plus its postings, one row per redemption), and it never touches giftd's
//! data.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use rusqlite::{Connection, params};

use crate::load::Rng;
use crate::report::{Latency, SqliteBaselineResult};

/// A bound on the redemptions of one run, whatever the window: far above what one connection
/// commits durably in the longest window allowed.
const MAX_REDEMPTIONS: u64 = 100_000_000;

/// How long a statement may wait for a lock; nothing else opens the file, so this only bounds
/// a surprise.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct BaselineOptions {
    /// Where the temporary folder of the database file is made.
    pub parent_dir: PathBuf,
    pub cards: u32,
    pub balance: i64,
    pub amount: i64,
    pub warmup: Duration,
    pub duration: Duration,
    pub seed: u64,
}

/// What a run found wrong with its own books (empty when right), besides its figures.
pub struct Outcome {
    pub result: SqliteBaselineResult,
    pub problems: Vec<String>,
}

const SCHEMA: &str = "CREATE TABLE cards (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
CREATE TABLE transactions (id TEXT PRIMARY KEY, card_id INTEGER NOT NULL, amount INTEGER NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE postings (id INTEGER PRIMARY KEY, transaction_id TEXT NOT NULL, amount INTEGER NOT NULL);";

/// Runs the baseline; blocking (run it on a blocking thread).
pub fn run(options: &BaselineOptions) -> anyhow::Result<Outcome> {
    if options.cards == 0 || options.amount <= 0 {
        bail!("the SQLite baseline needs cards and a positive amount");
    }
    let dir = tempfile::Builder::new()
        .prefix("giftd-bench-sqlite-baseline-")
        .tempdir_in(&options.parent_dir)
        .context("cannot create the SQLite baseline's folder")?;
    let mut conn = Connection::open(dir.path().join("baseline.sqlite3"))
        .context("cannot open the SQLite baseline's database")?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let journal_mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        bail!("SQLite refused WAL (journal_mode = {journal_mode})");
    }
    conn.execute_batch("PRAGMA synchronous = FULL")?;
    let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
    if synchronous != 2 {
        bail!("SQLite refused synchronous = FULL (it is {synchronous})");
    }
    conn.execute_batch(SCHEMA)?;
    {
        let fill = conn.transaction()?;
        {
            let mut insert = fill.prepare("INSERT INTO cards (id, balance) VALUES (?1, ?2)")?;
            for id in 1..=i64::from(options.cards) {
                insert.execute(params![id, options.balance])?;
            }
        }
        fill.commit()?;
    }

    let mut rng = Rng(options.seed);
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let started = Instant::now();
    let measure_from = started + options.warmup;
    let end = measure_from + options.duration;
    let mut total = 0u64;
    let mut measured = 0u64;
    let mut measured_start: Option<Instant> = None;
    let mut last_commit = started;
    while total < MAX_REDEMPTIONS {
        let begun = Instant::now();
        if begun >= end {
            break;
        }
        let card = 1 + rng.below(options.cards as usize) as i64;
        let id = format!("txn_{:016x}{:016x}", rng.next_u64(), rng.next_u64());
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        redeem(&mut conn, card, &id, options.amount, now_ms)?;
        let done = Instant::now();
        total += 1;
        last_commit = done;
        if begun >= measure_from {
            measured_start.get_or_insert(begun);
            measured += 1;
            histogram.saturating_record((done - begun).as_micros().max(1) as u64);
        }
    }
    // The window: from the first measured redemption's start to the last commit.
    let measured_seconds = measured_start.map_or(0.0, |from| (last_commit - from).as_secs_f64());
    let problems = check(&conn, options.balance, total)?;
    let checks = if problems.is_empty() {
        vec![format!(
            "{total} redemptions, every card's balance equals its postings"
        )]
    } else {
        problems.iter().map(|p| format!("FAILED {p}")).collect()
    };
    drop(conn);
    let _ = dir.close();
    Ok(Outcome {
        result: SqliteBaselineResult {
            journal_mode: journal_mode.to_ascii_lowercase(),
            synchronous: "full".into(),
            connections: 1,
            cards: options.cards,
            measured_seconds,
            redemptions: measured,
            redemptions_per_second: if measured_seconds > 0.0 {
                measured as f64 / measured_seconds
            } else {
                0.0
            },
            latency_ms: Latency::from_histogram(&histogram),
            checks,
        },
        problems,
    })
}

/// One redemption: its own transaction, committed (`BEGIN IMMEDIATE` takes the write lock at
/// once, as a writer does).
fn redeem(conn: &mut Connection, card: i64, id: &str, amount: i64, now_ms: i64) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let debited = tx
        .prepare_cached("UPDATE cards SET balance = balance - ?1 WHERE id = ?2 AND balance >= ?1")?
        .execute(params![amount, card])?;
    if debited != 1 {
        // The transaction rolls back when dropped.
        bail!("the SQLite baseline's card {card} cannot cover {amount}");
    }
    tx.prepare_cached("INSERT INTO transactions (id, card_id, amount, created_at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![id, card, amount, now_ms])?;
    tx.prepare_cached("INSERT INTO postings (transaction_id, amount) VALUES (?1, ?2)")?
        .execute(params![id, -amount])?;
    tx.commit()?;
    Ok(())
}

/// Its books: one transaction row and one posting per redemption done, and every card's
/// balance equal to its starting balance plus its postings, never negative.
fn check(conn: &Connection, balance: i64, redemptions: u64) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let transactions: i64 = conn.query_row("SELECT count(*) FROM transactions", [], |r| r.get(0))?;
    let postings: i64 = conn.query_row("SELECT count(*) FROM postings", [], |r| r.get(0))?;
    if u64::try_from(transactions).ok() != Some(redemptions) || transactions != postings {
        problems.push(format!(
            "sqlite baseline: {redemptions} redemptions committed, but {transactions} transaction rows and {postings} postings"
        ));
    }
    let bad: i64 = conn.query_row(
        "SELECT count(*) FROM cards c LEFT JOIN \
         (SELECT t.card_id, sum(p.amount) AS total FROM postings p JOIN transactions t ON t.id = p.transaction_id GROUP BY t.card_id) s \
         ON s.card_id = c.id WHERE c.balance < 0 OR c.balance <> ?1 + COALESCE(s.total, 0)",
        params![balance],
        |r| r.get(0),
    )?;
    if bad != 0 {
        problems.push(format!(
            "sqlite baseline: {bad} card(s) overdrawn or out of step with their postings"
        ));
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_commits_and_keeps_its_books() {
        let parent = tempfile::tempdir().unwrap();
        let outcome = run(&BaselineOptions {
            parent_dir: parent.path().to_owned(),
            cards: 20,
            balance: 1_000_000,
            amount: 3,
            warmup: Duration::from_millis(20),
            duration: Duration::from_millis(200),
            seed: 42,
        })
        .unwrap();
        assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
        let result = outcome.result;
        assert_eq!(result.journal_mode, "wal");
        assert!(result.redemptions > 0);
        assert!(result.redemptions_per_second > 0.0);
        assert!(result.measured_seconds > 0.0 && result.measured_seconds < 1.0);
    }
}
