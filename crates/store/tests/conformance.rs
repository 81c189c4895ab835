//! The conformance story of the store: every behaviour of [`Store`] and [`WriteTx`] that the
//! service relies on, written once and run with the same assertions against SQLite (a file in a
//! temporary folder) and PostgreSQL (a database of its own on the server named by
//! `GIFTD_TEST_PG_URL`, dropped afterwards): each story is two tests, `<story>::on_sqlite` and
//! `<story>::on_postgres`. The PostgreSQL ones are `#[ignore = "needs GIFTD_TEST_PG_URL, …"]`,
//! so `cargo test` passes on a machine without a database server and says what it left out;
//! run with `--include-ignored` (as CI does) they need the variable and a reachable server, and
//! fail without either rather than pass by not running.
//!
//! Decisions come from `giftd_domain::operations`, as they do in the service, so the store is
//! tested with the values it will really be given. This file must not reach past the store: no
//! service, no HTTP, no testkit (which depends on crates above this one), and no clock: every
//! `now` is a fixed [`Timestamp`] so that expiry and retention are exact.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use giftd_domain::lockout::Attempts;
use giftd_domain::operations::{self, CardSnapshot, Decision, HoldSnapshot, HoldState, OriginalTransaction};
use giftd_domain::{
    Amount, CardId, CardKind, CardState, Channel, Currency, HoldId, MerchantId, Program, ProgramId,
    Timestamp, TransactionId, TransactionType,
};
use giftd_store::postgres::{PgOptions, PgStore};
use giftd_store::sqlite::{Durability, SqliteStore};
use giftd_store::{
    BoxFuture, CardFilter, CardRecord, HoldRecord, IdempotencyRecord, Page, ReadSet, Store, StoreError,
    StoreResult, TransactionMeta, TransactionRecord, WriteJob, WriteTx,
};
use sqlx::Connection;
use tokio::sync::oneshot;

/// The story's "now". The store never reads a clock, so nothing here depends on the real time.
const T0: Timestamp = Timestamp::from_unix_millis(1_750_000_000_000);
/// How long closing a store may take before the run moves on (a failed run may leave work).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
const SECOND_MILLIS: i64 = 1000;
const DAY_MILLIS: i64 = 24 * 3600 * SECOND_MILLIS;
/// The service's idempotency retention (seven days), restated so this crate need not depend on it.
const RETENTION_MILLIS: i64 = 7 * DAY_MILLIS;

const ACME_KEY: &[u8] = b"hmac-of-acme-key";
const OTHER_KEY: &[u8] = b"hmac-of-other-key";

// ---------------------------------------------------------------------------------------------
// Running one body on every backend
// ---------------------------------------------------------------------------------------------

/// Where a raw connection goes, for tampering with the database behind the store's back.
#[derive(Clone)]
enum Raw {
    Sqlite(PathBuf),
    Postgres(String),
}

/// One backend under test: its store and a way around it.
#[derive(Clone)]
struct Backend {
    name: &'static str,
    store: Arc<dyn Store>,
    raw: Raw,
}

/// The PostgreSQL server for the story, if any.
fn pg_admin_url() -> Option<String> {
    std::env::var("GIFTD_TEST_PG_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// The two backends every story runs on.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Sqlite,
    Postgres,
}

/// Runs `body` against a fresh database of `kind`. PostgreSQL needs `GIFTD_TEST_PG_URL`: its
/// tests are ignored by default and fail when run without it, never pass by not running.
async fn on_backend<F, Fut>(kind: Kind, test: &str, body: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    match kind {
        Kind::Sqlite => {
            let folder = tempfile::tempdir().expect("a temporary folder");
            let path = folder.path().join("giftd.db");
            let store: Arc<dyn Store> = SqliteStore::open(&path, Durability::Full)
                .await
                .expect("open the SQLite store");
            let backend = Backend {
                name: "sqlite",
                store: store.clone(),
                raw: Raw::Sqlite(path),
            };
            println!("── {test} on sqlite");
            let outcome = AssertUnwindSafe(body(backend)).catch_unwind().await;
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, store.close()).await;
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
        }
        Kind::Postgres => {
            let admin_url = pg_admin_url().expect("the PostgreSQL stories need GIFTD_TEST_PG_URL");
            let database = PgDatabase::create(&admin_url).await;
            let store: Arc<dyn Store> = PgStore::open(&database.url, &PgOptions::default())
                .await
                .unwrap_or_else(|e| panic!("open the PostgreSQL store: {e}"));
            let backend = Backend {
                name: "postgres",
                store: store.clone(),
                raw: Raw::Postgres(database.url.clone()),
            };
            println!("── {test} on postgres");
            let outcome = AssertUnwindSafe(body(backend)).catch_unwind().await;
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, store.close()).await;
            drop(database);
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// A story as two tests, `<story>::on_sqlite` and `<story>::on_postgres`, with the same body;
/// the PostgreSQL one is ignored unless asked for (`--include-ignored`, as CI does).
macro_rules! on_both_backends {
    ($story:ident, $label:literal, |$b:ident| $body:block) => {
        mod $story {
            use super::*;

            #[tokio::test]
            async fn on_sqlite() {
                on_backend(Kind::Sqlite, $label, |$b| async move $body).await;
            }

            #[tokio::test]
            #[ignore = "needs GIFTD_TEST_PG_URL, a PostgreSQL server"]
            async fn on_postgres() {
                on_backend(Kind::Postgres, $label, |$b| async move $body).await;
            }
        }
    };
}

/// A database of its own on the test server, dropped with its connections when this is
/// dropped, panic or not.
struct PgDatabase {
    name: String,
    url: String,
    admin_url: String,
}

impl PgDatabase {
    async fn create(admin_url: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "giftd_conf_{}_{nanos}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        // Asked for and not there is a failure, never a skip.
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("GIFTD_TEST_PG_URL is set but the server cannot be reached: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("create the test database {name}: {e}"));
        let _ = admin.close().await;
        Self {
            url: with_database(admin_url, &name),
            name,
            admin_url: admin_url.to_owned(),
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on; the cleanup gets a
        // thread and a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// The same server URL with another database name (query string kept).
fn with_database(url: &str, database: &str) -> String {
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

// ---------------------------------------------------------------------------------------------
// A write step as a job
// ---------------------------------------------------------------------------------------------

/// One write step: an async closure over the writer's transaction. It gets its own copy of a
/// context each time it runs, since PostgreSQL runs a job again after a conflict.
type Step<C, T> = dyn for<'a> FnMut(&'a mut dyn WriteTx, C) -> BoxFuture<'a, StoreResult<T>> + Send;

/// The test's [`WriteJob`]: runs a step and hands its value over only after `finish`, that is
/// once the transaction holding it has committed (or with the error that undid it).
struct StepJob<C, T> {
    context: C,
    step: Box<Step<C, T>>,
    /// What the step declares it reads: the runner may then decide it in memory with its batch.
    read_set: Option<ReadSet>,
    output: Option<T>,
    reply: Option<oneshot::Sender<StoreResult<T>>>,
}

impl<C, T> WriteJob for StepJob<C, T>
where
    C: Clone + Send + 'static,
    T: Send + 'static,
{
    fn run<'a>(&'a mut self, tx: &'a mut dyn WriteTx) -> BoxFuture<'a, StoreResult<()>> {
        // A rerun starts afresh: what an undone attempt produced must not leak out.
        self.output = None;
        let step = (self.step)(tx, self.context.clone());
        Box::pin(async move {
            self.output = Some(step.await?);
            Ok(())
        })
    }

    fn read_set(&self) -> Option<ReadSet> {
        self.read_set.clone()
    }

    /// Steps on one card go to one PostgreSQL committer, as the service's do, so they batch.
    fn affinity(&self) -> Option<&str> {
        self.read_set.as_ref().map(|set| set.card.as_str())
    }

    fn finish(mut self: Box<Self>, committed: StoreResult<()>) {
        let result = committed.and_then(|()| {
            self.output
                .take()
                .ok_or_else(|| StoreError::Corrupt("a committed step left no output".into()))
        });
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(result);
        }
    }
}

impl Backend {
    /// Queues a step without waiting for it, so several can share a transaction (SQLite) or run
    /// side by side (PostgreSQL).
    async fn queue<C, T, F>(&self, context: C, step: F) -> oneshot::Receiver<StoreResult<T>>
    where
        C: Clone + Send + 'static,
        T: Send + 'static,
        F: for<'a> FnMut(&'a mut dyn WriteTx, C) -> BoxFuture<'a, StoreResult<T>> + Send + 'static,
    {
        self.queue_reading(None, context, step).await
    }

    /// Queues a step that declares what it reads (`read_set`), as the service's commands do.
    async fn queue_reading<C, T, F>(
        &self,
        read_set: Option<ReadSet>,
        context: C,
        step: F,
    ) -> oneshot::Receiver<StoreResult<T>>
    where
        C: Clone + Send + 'static,
        T: Send + 'static,
        F: for<'a> FnMut(&'a mut dyn WriteTx, C) -> BoxFuture<'a, StoreResult<T>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.store
            .submit(Box::new(StepJob {
                context,
                step: Box::new(step),
                read_set,
                output: None,
                reply: Some(reply),
            }))
            .await;
        answer
    }

    /// Runs a step and returns its value once it is committed.
    async fn write<C, T, F>(&self, context: C, step: F) -> StoreResult<T>
    where
        C: Clone + Send + 'static,
        T: Send + 'static,
        F: for<'a> FnMut(&'a mut dyn WriteTx, C) -> BoxFuture<'a, StoreResult<T>> + Send + 'static,
    {
        outcome(self.queue(context, step).await).await
    }

    /// Another store on the same database, as after a restart.
    async fn reopen(&self) -> Backend {
        let store: Arc<dyn Store> = match &self.raw {
            Raw::Sqlite(path) => SqliteStore::open(path, Durability::Full)
                .await
                .expect("reopen the SQLite store"),
            Raw::Postgres(url) => PgStore::open(url, &PgOptions::default())
                .await
                .unwrap_or_else(|e| panic!("reopen the PostgreSQL store: {e}")),
        };
        Backend {
            store,
            ..self.clone()
        }
    }

    /// Executes SQL on a connection of its own, around the store; `Err` is the database's message.
    async fn raw_execute(&self, sql: &'static str) -> Result<u64, String> {
        match &self.raw {
            Raw::Sqlite(path) => {
                let mut conn = SqliteStore::raw_connection(path)
                    .await
                    .expect("a raw SQLite connection");
                let done = sqlx::raw_sql(sql).execute(&mut conn).await;
                let _ = conn.close().await;
                done.map(|d| d.rows_affected()).map_err(|e| e.to_string())
            }
            Raw::Postgres(url) => {
                let mut conn = sqlx::PgConnection::connect(url)
                    .await
                    .expect("a raw PostgreSQL connection");
                let done = sqlx::raw_sql(sql).execute(&mut conn).await;
                let _ = conn.close().await;
                done.map(|d| d.rows_affected()).map_err(|e| e.to_string())
            }
        }
    }
}

async fn outcome<T>(answer: oneshot::Receiver<StoreResult<T>>) -> StoreResult<T> {
    answer
        .await
        .expect("the store dropped a job without finishing it (did the step panic?)")
}

/// Ends a savepoint opened around a write that may fail: kept when it worked, undone when it
/// did not. A failed statement aborts a whole PostgreSQL transaction until rolled back to a
/// savepoint, so a step that goes on after an expected failure must do this.
async fn settle(tx: &mut dyn WriteTx, name: &'static str, failed: bool) -> StoreResult<()> {
    if failed {
        tx.rollback_to_savepoint(name).await
    } else {
        tx.release_savepoint(name).await
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn usd() -> Currency {
    Currency::parse("USD").expect("USD")
}

fn amount(minor: i64) -> Amount {
    Amount::new(minor).expect("a positive amount")
}

fn at_seconds(seconds: i64) -> Timestamp {
    T0.plus_seconds(seconds)
}

fn page(limit: u32, cursor: Option<&str>) -> Page {
    Page {
        limit,
        cursor: cursor.map(str::to_owned),
    }
}

fn meta(id: &str, now: Timestamp) -> TransactionMeta {
    TransactionMeta {
        id: TransactionId::new(id),
        reference: None,
        reverses: None,
        hold_id: None,
        channel: Channel::Native,
        now,
    }
}

/// A program with every optional field set.
fn full_program(id: &str) -> Program {
    Program {
        id: ProgramId::new(id),
        name: "Holiday 2025".into(),
        currency: usd(),
        denominations: Some(vec![amount(2500), amount(5000), amount(10_000)]),
        min_load: Some(amount(500)),
        max_load: Some(amount(50_000)),
        max_balance: Some(amount(100_000)),
        reloadable: true,
        expiry_months: Some(60),
        promotional: false,
        number_prefix: "6036".into(),
        number_length: 16,
        security_code_length: 8,
        promotion_code: Some("SPRING-25".into()),
        active: true,
        breakage_on_expiry: false,
        created_at: T0,
    }
}

/// A program with every optional field unset.
/// A program with no rules but its currency: its value ceilings lifted as far as 64 bits go.
fn bare_program(id: &str, currency: Currency) -> Program {
    let unlimited = Some(Amount::new(i64::MAX).expect("a positive amount"));
    Program {
        id: ProgramId::new(id),
        name: "Promo".into(),
        currency,
        denominations: None,
        min_load: None,
        max_load: unlimited,
        max_balance: unlimited,
        reloadable: false,
        expiry_months: None,
        promotional: true,
        number_prefix: String::new(),
        number_length: 19,
        security_code_length: 4,
        promotion_code: None,
        active: true,
        breakage_on_expiry: false,
        created_at: at_seconds(1),
    }
}

/// Bytes that a text column would mangle: NUL, high bytes, every value once.
fn awkward_bytes(seed: u8) -> Vec<u8> {
    let mut bytes = vec![0x00, 0xff, seed, 0x00, b'\'', b'\\'];
    bytes.extend((0..=255u8).map(|b| b.wrapping_add(seed)));
    bytes
}

fn card_record(
    merchant: &MerchantId,
    program: &Program,
    id: &str,
    fingerprint: &[u8],
    kind: CardKind,
    state: CardState,
    expires_at: Option<Timestamp>,
) -> CardRecord {
    CardRecord {
        merchant_id: merchant.clone(),
        snapshot: CardSnapshot {
            id: CardId::new(id),
            program_id: program.id.clone(),
            kind,
            state,
            currency: program.currency,
            balance: 0,
            held: 0,
            expires_at,
        },
        closed_reason: None,
        last4: "0042".into(),
        number_ciphertext: awkward_bytes(fingerprint.first().copied().unwrap_or(7)),
        number_fingerprint: fingerprint.to_vec(),
        security_code_hash: vec![0xaa; 32],
        created_at: T0,
    }
}

/// Two merchants with an API key each; the first with a full and a bare program, the second
/// with a program of its own.
#[derive(Clone)]
struct Fixture {
    merchant: MerchantId,
    other: MerchantId,
    program: Program,
    bare: Program,
    other_program: Program,
}

async fn setup(b: &Backend) -> Fixture {
    let fx = Fixture {
        merchant: MerchantId::new("mer_acme"),
        other: MerchantId::new("mer_other"),
        program: full_program("prog_full"),
        // Inactive, so that `active` round-trips both ways; no chapter issues a card of it.
        bare: Program {
            active: false,
            breakage_on_expiry: false,
            ..bare_program("prog_bare", usd())
        },
        other_program: bare_program("prog_other", Currency::parse("EUR").expect("EUR")),
    };
    b.write(fx.clone(), |tx, fx| {
        Box::pin(async move {
            tx.insert_merchant(&fx.merchant, "Acme", T0).await?;
            tx.insert_api_key(&key_of(&fx.merchant, "key_acme"), ACME_KEY)
                .await?;
            tx.insert_merchant(&fx.other, "Other", T0).await?;
            tx.insert_api_key(&key_of(&fx.other, "key_other"), OTHER_KEY)
                .await?;
            tx.insert_program(&fx.merchant, &fx.program).await?;
            tx.insert_program(&fx.merchant, &fx.bare).await?;
            tx.insert_program(&fx.other, &fx.other_program).await
        })
    })
    .await
    .expect("merchants and programs are written");
    fx
}

/// The card, as the writer sees it (locked, on PostgreSQL).
async fn locked_card(
    tx: &mut dyn WriteTx,
    merchant: &MerchantId,
    card: &CardId,
) -> StoreResult<CardSnapshot> {
    let record = tx.card(merchant, card).await?;
    Ok(record.unwrap_or_else(|| panic!("card {card} exists")).snapshot)
}

/// Issues a virtual card of the full program with `value` on it, as the service does: insert
/// the card, then append the issue decision.
async fn issue_card(
    b: &Backend,
    fx: &Fixture,
    card: &str,
    fingerprint: &[u8],
    value: i64,
) -> (CardSnapshot, TransactionRecord) {
    let record = card_record(
        &fx.merchant,
        &fx.program,
        card,
        fingerprint,
        CardKind::Virtual,
        CardState::Active,
        None,
    );
    let transaction = format!("txn_issue_{card}");
    b.write(
        (fx.clone(), record, transaction),
        move |tx, (fx, mut record, transaction)| {
            Box::pin(async move {
                let card_id = record.snapshot.id.clone();
                let issued =
                    operations::issue(&fx.program, &card_id, CardKind::Virtual, Some(amount(value)), T0)
                        .expect("the program allows the issue");
                record.snapshot.state = issued.state;
                record.snapshot.expires_at = issued.expires_at;
                tx.insert_card(&record).await?;
                let decision = issued.value.expect("a virtual card issued with value");
                let appended = tx
                    .append(&fx.merchant, &record.snapshot, &decision, &meta(&transaction, T0))
                    .await?;
                let mut card = record.snapshot;
                card.apply(&decision.card);
                Ok((card, appended))
            })
        },
    )
    .await
    .expect("the card is issued")
}

type Decide = Arc<dyn Fn(&CardSnapshot) -> Decision + Send + Sync>;

/// Reads the card in the writer's transaction, lets `decide` decide on it and appends the
/// decision; returns the transaction and the card as the writer sees it afterwards.
async fn append_on_card(
    b: &Backend,
    merchant: &MerchantId,
    card: &CardId,
    meta: TransactionMeta,
    decide: impl Fn(&CardSnapshot) -> Decision + Send + Sync + 'static,
) -> StoreResult<(TransactionRecord, CardSnapshot)> {
    let decide: Decide = Arc::new(decide);
    b.write(
        (merchant.clone(), card.clone(), meta, decide),
        |tx, (merchant, card, meta, decide)| {
            Box::pin(async move {
                let before = locked_card(tx, &merchant, &card).await?;
                let decision = decide(&before);
                let record = tx.append(&merchant, &before, &decision, &meta).await?;
                let after = locked_card(tx, &merchant, &card).await?;
                Ok((record, after))
            })
        },
    )
    .await
}

async fn redeem(b: &Backend, fx: &Fixture, card: &CardId, value: i64, txn: &str) -> TransactionRecord {
    append_on_card(b, &fx.merchant, card, meta(txn, T0), move |card| {
        operations::redeem(card, amount(value), false, None, T0).expect("the card covers the redemption")
    })
    .await
    .expect("the redemption is appended")
    .0
}

/// Places a hold as the service does: append the hold decision, then insert the hold.
async fn place_hold(
    b: &Backend,
    merchant: &MerchantId,
    card: &CardId,
    hold: &str,
    value: i64,
    expires_at: Timestamp,
) -> (TransactionRecord, HoldSnapshot) {
    b.write(
        (merchant.clone(), card.clone(), HoldId::new(hold), expires_at),
        move |tx, (merchant, card, hold_id, expires_at)| {
            Box::pin(async move {
                let card = locked_card(tx, &merchant, &card).await?;
                let decision = operations::place_hold(&card, amount(value), false, None, T0)
                    .expect("the card covers the hold");
                let hold = HoldSnapshot {
                    id: hold_id.clone(),
                    card_id: card.id.clone(),
                    amount: decision.amount,
                    state: HoldState::Pending,
                    expires_at,
                };
                let meta = TransactionMeta {
                    hold_id: Some(hold_id.clone()),
                    ..meta(&format!("txn_{hold_id}"), T0)
                };
                let record = tx.append(&merchant, &card, &decision, &meta).await?;
                tx.insert_hold(&merchant, &hold, &record.id, T0).await?;
                Ok((record, hold))
            })
        },
    )
    .await
    .expect("the hold is placed")
}

/// How a pending hold ends.
#[derive(Clone, Copy)]
enum Ending {
    Capture(Option<i64>),
    Release,
}

/// Ends a hold as the service does: finish it (guarded), then append the decision.
async fn end_hold(
    b: &Backend,
    fx: &Fixture,
    hold: &HoldId,
    ending: Ending,
    txn: &str,
) -> StoreResult<TransactionRecord> {
    b.write(
        (fx.merchant.clone(), hold.clone(), txn.to_owned()),
        move |tx, (merchant, hold_id, txn)| {
            Box::pin(async move {
                let hold = tx.hold(&merchant, &hold_id).await?.expect("the hold exists");
                let card = locked_card(tx, &merchant, &hold.snapshot.card_id).await?;
                let (decision, state) = match ending {
                    Ending::Capture(value) => {
                        let decision = operations::capture(&card, &hold.snapshot, value, T0)
                            .expect("the hold can be captured");
                        let state = if decision.amount > 0 {
                            HoldState::Captured
                        } else {
                            HoldState::Released
                        };
                        (decision, state)
                    }
                    Ending::Release => (
                        operations::release_requested(&card, &hold.snapshot, T0)
                            .expect("the hold can be released"),
                        HoldState::Released,
                    ),
                };
                let captured = match state {
                    HoldState::Captured => decision.amount,
                    HoldState::Pending | HoldState::Released | HoldState::Expired => 0,
                };
                tx.finish_hold(&hold_id, state, captured, T0).await?;
                let meta = TransactionMeta {
                    hold_id: Some(hold_id.clone()),
                    ..meta(&txn, T0)
                };
                tx.append(&merchant, &card, &decision, &meta).await
            })
        },
    )
    .await
}

#[derive(Clone, Copy)]
enum Reversal {
    Refund(Option<i64>),
    Void,
}

/// Refunds or voids an earlier transaction as the service does: read it, lock its card, sum
/// its reversals, decide, append.
async fn reverse(
    b: &Backend,
    fx: &Fixture,
    original: &TransactionId,
    reversal: Reversal,
    txn: &str,
) -> StoreResult<TransactionRecord> {
    b.write(
        (fx.merchant.clone(), original.clone(), txn.to_owned()),
        move |tx, (merchant, original, txn)| {
            Box::pin(async move {
                let original = tx
                    .transaction(&merchant, &original)
                    .await?
                    .expect("the original transaction exists");
                let card = locked_card(tx, &merchant, &original.card_id).await?;
                let (refunded, voided) = tx.reversal_totals(&original.id).await?;
                let original = OriginalTransaction {
                    id: original.id,
                    card_id: original.card_id,
                    transaction_type: original.transaction_type,
                    amount: original.amount,
                    refunded,
                    voided,
                };
                let decision = match reversal {
                    Reversal::Refund(value) => operations::refund(&card, &original, value.map(amount)),
                    Reversal::Void => operations::void(&card, &original),
                }
                .expect("the domain allows the reversal");
                let meta = TransactionMeta {
                    reverses: Some(original.id.clone()),
                    ..meta(&txn, T0)
                };
                tx.append(&merchant, &card, &decision, &meta).await
            })
        },
    )
    .await
}

async fn reversal_totals(b: &Backend, original: &TransactionId) -> (i64, bool) {
    b.write(original.clone(), |tx, original| {
        Box::pin(async move { tx.reversal_totals(&original).await })
    })
    .await
    .expect("reversal totals are read")
}

/// The card as a reader sees it at `now`.
async fn read_card(b: &Backend, merchant: &MerchantId, card: &CardId, now: Timestamp) -> CardSnapshot {
    b.store
        .card(merchant, card, now)
        .await
        .expect("the card is read")
        .unwrap_or_else(|| panic!("card {card} exists"))
        .snapshot
}

async fn transaction_ids(b: &Backend, merchant: &MerchantId, card: &CardId, page: &Page) -> Vec<String> {
    b.store
        .card_transactions(merchant, card, page)
        .await
        .expect("the card's transactions are read")
        .into_iter()
        .map(|t| t.id.as_str().to_owned())
        .collect()
}

async fn card_ids(b: &Backend, merchant: &MerchantId, filter: &CardFilter, page: &Page) -> Vec<String> {
    b.store
        .cards(merchant, filter, page, T0)
        .await
        .expect("cards are listed")
        .into_iter()
        .map(|c| c.snapshot.id.as_str().to_owned())
        .collect()
}

async fn assert_sound(b: &Backend) {
    let report = b.store.verify().await.expect("verify runs");
    assert!(
        report.is_sound(),
        "{}: the ledger should be sound: {:?}",
        b.name,
        report.violations
    );
}

fn assert_same_card(actual: &CardRecord, expected: &CardRecord) {
    assert_eq!(actual.merchant_id, expected.merchant_id);
    assert_eq!(actual.snapshot, expected.snapshot);
    assert_eq!(actual.last4, expected.last4);
    assert_eq!(actual.number_ciphertext, expected.number_ciphertext);
    assert_eq!(actual.number_fingerprint, expected.number_fingerprint);
    assert_eq!(actual.security_code_hash, expected.security_code_hash);
    assert_eq!(actual.created_at, expected.created_at);
}

fn assert_same_program(actual: &Program, expected: &Program) {
    // `Program` has no `PartialEq`; its `Debug` shows every field.
    assert_eq!(format!("{actual:?}"), format!("{expected:?}"));
}

fn assert_same_idempotency_record(actual: &IdempotencyRecord, expected: &IdempotencyRecord) {
    assert_eq!(actual.request_hash, expected.request_hash);
    assert_eq!(actual.status, expected.status);
    assert_eq!(actual.body, expected.body);
    assert_eq!(actual.created_at, expected.created_at);
}

fn is_unique_violation<T>(result: &StoreResult<T>) -> bool {
    matches!(result, Err(StoreError::UniqueViolation(_)))
}

fn is_conflict<T>(result: &StoreResult<T>) -> bool {
    matches!(result, Err(StoreError::Conflict(_)))
}

/// What the money story leaves: one card taken through every kind of value movement.
struct Story {
    card: CardId,
    transactions: Vec<TransactionRecord>,
}

/// Issue 5000, load 2000, redeem 1500, hold 3000, capture 2000 of it, refund 500 of the
/// redemption, void the load: 7 transactions, 2000 left on the card, nothing held. Every id
/// carries `tag`, so that several stories can share a database.
async fn money_story(b: &Backend, fx: &Fixture, tag: &str) -> Story {
    let id = |what: &str| format!("txn_{tag}_{what}");
    let fingerprint = format!("fp-{tag}");
    let (card, issue) = issue_card(b, fx, &format!("card_{tag}"), fingerprint.as_bytes(), 5000).await;
    let program = fx.program.clone();
    let (load, _) = append_on_card(
        b,
        &fx.merchant,
        &card.id,
        TransactionMeta {
            reference: Some("till-7 receipt 12".into()),
            ..meta(&id("load"), at_seconds(1))
        },
        move |card| {
            operations::load(&program, card, amount(2000), Some(usd()), at_seconds(1))
                .expect("the program allows the load")
        },
    )
    .await
    .expect("the load is appended");
    let redemption = redeem(b, fx, &card.id, 1500, &id("redeem")).await;
    let hold = format!("hold_{tag}");
    let (hold, hold_snapshot) = place_hold(b, &fx.merchant, &card.id, &hold, 3000, at_seconds(600)).await;
    let capture = end_hold(
        b,
        fx,
        &hold_snapshot.id,
        Ending::Capture(Some(2000)),
        &id("capture"),
    )
    .await
    .expect("the capture is appended");
    let refund = reverse(b, fx, &redemption.id, Reversal::Refund(Some(500)), &id("refund"))
        .await
        .expect("the refund is appended");
    let void = reverse(b, fx, &load.id, Reversal::Void, &id("void_load"))
        .await
        .expect("the void is appended");
    Story {
        card: card.id,
        transactions: vec![issue, load, redemption, hold, capture, refund, void],
    }
}

/// Marks where a run is, so that a failure's output says which chapter on which backend.
/// A `full` API key of `merchant`, as a merchant's first key is made.
fn key_of(merchant: &MerchantId, id: &str) -> giftd_store::ApiKeyRecord {
    giftd_store::ApiKeyRecord {
        id: giftd_domain::ApiKeyId::new(id),
        merchant_id: merchant.clone(),
        name: "default".into(),
        scope: giftd_domain::Scope::Full,
        prefix: Some("gk_test0".into()),
        created_at: T0,
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    }
}

fn chapter(b: &Backend, name: &str) {
    println!("── {}: {name}", b.name);
}

// ---------------------------------------------------------------------------------------------
// The story
// ---------------------------------------------------------------------------------------------

async fn a_merchant_is_found_by_its_api_key_hash(b: &Backend, fx: &Fixture) {
    chapter(b, "a_merchant_is_found_by_its_api_key_hash");
    let store = &b.store;
    let acme = store
        .api_key_by_hash(ACME_KEY)
        .await
        .unwrap()
        .expect("acme's key");
    assert_eq!(acme, key_of(&fx.merchant, "key_acme"));
    assert_eq!(
        store
            .api_key_by_hash(OTHER_KEY)
            .await
            .unwrap()
            .map(|k| k.merchant_id),
        Some(fx.other.clone())
    );
    assert_eq!(store.api_key_by_hash(b"no such key").await.unwrap(), None);
    assert_eq!(store.api_keys(&fx.merchant, 10).await.unwrap(), [acme]);

    // Merchant ids and key hashes are keys: a second of either is refused.
    let (merchant_again, key_again) = b
        .write(fx.clone(), |tx, fx| {
            Box::pin(async move {
                tx.savepoint("attempt").await?;
                let merchant_again = tx.insert_merchant(&fx.merchant, "Acme again", T0).await;
                settle(tx, "attempt", merchant_again.is_err()).await?;
                tx.savepoint("attempt").await?;
                let key_again = tx.insert_api_key(&key_of(&fx.other, "key_again"), ACME_KEY).await;
                settle(tx, "attempt", key_again.is_err()).await?;
                Ok((merchant_again, key_again))
            })
        })
        .await
        .expect("the step commits");
    assert!(is_unique_violation(&merchant_again), "{merchant_again:?}");
    assert!(is_unique_violation(&key_again), "{key_again:?}");
    assert_eq!(
        store
            .api_key_by_hash(ACME_KEY)
            .await
            .unwrap()
            .map(|k| k.merchant_id),
        Some(fx.merchant.clone())
    );
    b.store.ping().await.expect("the store answers");
}

async fn a_program_round_trips_every_field(b: &Backend, fx: &Fixture) {
    chapter(b, "a_program_round_trips_every_field");
    let store = &b.store;
    for expected in [&fx.program, &fx.bare] {
        let read = store.program(&fx.merchant, &expected.id).await.unwrap();
        assert_same_program(read.as_ref().expect("the program is read"), expected);
    }
    // The writer reads the same.
    let in_writer = b
        .write(fx.clone(), |tx, fx| {
            Box::pin(async move {
                let full = tx.program(&fx.merchant, &fx.program.id).await?;
                let bare = tx.program(&fx.merchant, &fx.bare.id).await?;
                let foreign = tx.program(&fx.other, &fx.program.id).await?;
                Ok((full, bare, foreign))
            })
        })
        .await
        .unwrap();
    assert_same_program(in_writer.0.as_ref().expect("full program"), &fx.program);
    assert_same_program(in_writer.1.as_ref().expect("bare program"), &fx.bare);
    assert!(in_writer.2.is_none(), "a program is only its merchant's");

    // A change writes every changeable field, `active` included, and is read back; then the
    // program is put back as the other chapters expect it.
    let mut changed = fx.bare.clone();
    changed.name = "Promo, renamed".into();
    changed.active = !fx.bare.active;
    for program in [changed, fx.bare.clone()] {
        let read = b
            .write((fx.clone(), program.clone()), |tx, (fx, program)| {
                Box::pin(async move {
                    tx.update_program(&fx.merchant, &program).await?;
                    tx.program(&fx.merchant, &program.id).await
                })
            })
            .await
            .unwrap();
        assert_same_program(read.as_ref().expect("the changed program"), &program);
    }

    // Listed newest first, a page at a time.
    let first = store.programs(&fx.merchant, &page(1, None)).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_same_program(&first[0], &fx.bare);
    let second = store
        .programs(&fx.merchant, &page(1, Some(fx.bare.id.as_str())))
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_same_program(&second[0], &fx.program);
    let past_end = store
        .programs(&fx.merchant, &page(1, Some(fx.program.id.as_str())))
        .await
        .unwrap();
    assert!(past_end.is_empty());
    let all = store.programs(&fx.merchant, &page(10, None)).await.unwrap();
    assert_eq!(all.len(), 2);

    // A program id is unique across merchants.
    let again = b
        .write(fx.clone(), |tx, fx| {
            Box::pin(async move {
                tx.savepoint("attempt").await?;
                let again = tx.insert_program(&fx.other, &fx.program).await;
                settle(tx, "attempt", again.is_err()).await?;
                Ok(again)
            })
        })
        .await
        .unwrap();
    assert!(is_unique_violation(&again), "{again:?}");
}

async fn a_card_round_trips_its_bytes_and_is_found_by_fingerprint(b: &Backend, fx: &Fixture) {
    chapter(b, "a_card_round_trips_its_bytes_and_is_found_by_fingerprint");
    let stock = card_record(
        &fx.merchant,
        &fx.program,
        "card_stock",
        &awkward_bytes(1),
        CardKind::Physical,
        CardState::Inactive,
        None,
    );
    let mut live = card_record(
        &fx.merchant,
        &fx.bare,
        "card_live",
        &awkward_bytes(2),
        CardKind::Virtual,
        CardState::Active,
        Some(at_seconds(86_400)),
    );
    live.last4 = "9999".into();
    live.security_code_hash = awkward_bytes(3);
    live.created_at = at_seconds(5);
    let found = b
        .write(
            (fx.clone(), stock.clone(), live.clone()),
            |tx, (fx, stock, live)| {
                Box::pin(async move {
                    tx.insert_card(&stock).await?;
                    tx.insert_card(&live).await?;
                    let by_id = tx.card(&fx.merchant, &live.snapshot.id).await?;
                    let by_fingerprint = tx
                        .card_by_fingerprint(&fx.merchant, &stock.number_fingerprint)
                        .await?;
                    let unknown = tx.card_by_fingerprint(&fx.merchant, b"unknown").await?;
                    let foreign = tx
                        .card_by_fingerprint(&fx.other, &stock.number_fingerprint)
                        .await?;
                    Ok((by_id, by_fingerprint, unknown, foreign))
                })
            },
        )
        .await
        .expect("the cards are inserted");
    assert_same_card(found.0.as_ref().expect("found by id"), &live);
    assert_same_card(found.1.as_ref().expect("found by fingerprint"), &stock);
    assert!(found.2.is_none(), "an unknown fingerprint finds nothing");
    assert!(
        found.3.is_none(),
        "a fingerprint is looked up within its merchant"
    );

    for expected in [&stock, &live] {
        let read = b
            .store
            .card(&fx.merchant, &expected.snapshot.id, T0)
            .await
            .unwrap()
            .expect("the card is read");
        assert_same_card(&read, expected);
    }
}

async fn a_card_number_is_unique_within_a_merchant(b: &Backend, fx: &Fixture) {
    chapter(b, "a_card_number_is_unique_within_a_merchant");
    let first = card_record(
        &fx.merchant,
        &fx.program,
        "card_first",
        b"same-number",
        CardKind::Virtual,
        CardState::Active,
        None,
    );
    let twin = card_record(
        &fx.merchant,
        &fx.program,
        "card_twin",
        b"same-number",
        CardKind::Virtual,
        CardState::Active,
        None,
    );
    let elsewhere = card_record(
        &fx.other,
        &fx.other_program,
        "card_elsewhere",
        b"same-number",
        CardKind::Virtual,
        CardState::Active,
        None,
    );
    let same_id = card_record(
        &fx.merchant,
        &fx.program,
        "card_first",
        b"another-number",
        CardKind::Virtual,
        CardState::Active,
        None,
    );
    let (twin_result, elsewhere_result, same_id_result) = b
        .write(
            (first.clone(), twin, elsewhere, same_id),
            |tx, (first, twin, elsewhere, same_id)| {
                Box::pin(async move {
                    tx.insert_card(&first).await?;
                    tx.savepoint("attempt").await?;
                    let twin = tx.insert_card(&twin).await;
                    settle(tx, "attempt", twin.is_err()).await?;
                    tx.savepoint("attempt").await?;
                    let elsewhere = tx.insert_card(&elsewhere).await;
                    settle(tx, "attempt", elsewhere.is_err()).await?;
                    tx.savepoint("attempt").await?;
                    let same_id = tx.insert_card(&same_id).await;
                    settle(tx, "attempt", same_id.is_err()).await?;
                    Ok((twin, elsewhere, same_id))
                })
            },
        )
        .await
        .expect("the step commits");
    assert!(is_unique_violation(&twin_result), "{twin_result:?}");
    assert!(
        elsewhere_result.is_ok(),
        "another merchant may hold the same number"
    );
    assert!(is_unique_violation(&same_id_result), "{same_id_result:?}");
    let store = &b.store;
    assert!(
        store
            .card(&fx.merchant, &CardId::new("card_twin"), T0)
            .await
            .unwrap()
            .is_none()
    );
    let kept = store.card(&fx.merchant, &first.snapshot.id, T0).await.unwrap();
    assert_same_card(&kept.expect("the first card stays"), &first);
    assert!(
        store
            .card(&fx.other, &CardId::new("card_elsewhere"), T0)
            .await
            .unwrap()
            .is_some()
    );
}

async fn appended_decisions_move_balance_and_held_and_record_before_and_after(b: &Backend, fx: &Fixture) {
    chapter(
        b,
        "appended_decisions_move_balance_and_held_and_record_before_and_after",
    );
    let story = money_story(b, fx, "story").await;
    let [issue, load, redemption, hold, capture, refund, void] = &story.transactions[..] else {
        panic!("seven transactions");
    };
    let expected = [
        (issue, TransactionType::Issue, 5000, 0, 5000),
        (load, TransactionType::Load, 2000, 5000, 7000),
        (redemption, TransactionType::Redemption, 1500, 7000, 5500),
        (hold, TransactionType::Hold, 3000, 5500, 5500),
        (capture, TransactionType::Capture, 2000, 5500, 3500),
        (refund, TransactionType::Refund, 500, 3500, 4000),
        (void, TransactionType::Void, 2000, 4000, 2000),
    ];
    for (record, kind, value, before, after) in expected {
        assert_eq!(
            (
                record.transaction_type,
                record.amount,
                record.balance_before,
                record.balance_after
            ),
            (kind, value, before, after),
            "{}",
            record.id
        );
        assert_eq!(record.currency, "USD");
        assert_eq!(record.card_id, story.card);
        assert_eq!(record.merchant_id, fx.merchant);
        // What append returned is what was stored.
        let stored = b.store.transaction(&fx.merchant, &record.id).await.unwrap();
        assert_eq!(stored.as_ref(), Some(record));
    }
    assert_eq!(load.reference.as_deref(), Some("till-7 receipt 12"));
    assert_eq!(load.created_at, at_seconds(1));
    assert_eq!(hold.hold_id, Some(HoldId::new("hold_story")));
    assert_eq!(capture.hold_id, Some(HoldId::new("hold_story")));
    assert_eq!(refund.reverses, Some(redemption.id.clone()));
    assert_eq!(void.reverses, Some(load.id.clone()));
    assert_eq!(issue.reverses, None);

    let card = read_card(b, &fx.merchant, &story.card, T0).await;
    assert_eq!((card.balance, card.held), (2000, 0));
    // The issue set the program's expiry; the load pushed it from its own time.
    assert_eq!(card.expires_at, Some(at_seconds(1).plus_months(60)));
    let hold = b
        .store
        .hold(&fx.merchant, &HoldId::new("hold_story"))
        .await
        .unwrap()
        .expect("the hold is read");
    assert_eq!(hold.snapshot.state, HoldState::Captured);
    assert_eq!(hold.captured_amount, 2000);

    let report = b.store.verify().await.unwrap();
    assert!(report.is_sound(), "{:?}", report.violations);
    assert_eq!(
        (report.cards, report.transactions, report.pending_holds),
        (1, 7, 0)
    );
    assert_eq!(report.outstanding, vec![("USD".to_owned(), 2000)]);
}

async fn a_stale_snapshot_is_refused_by_the_guard(b: &Backend, fx: &Fixture) {
    chapter(b, "a_stale_snapshot_is_refused_by_the_guard");
    let (card, _) = issue_card(b, fx, "card_stale", b"fp-stale", 5000).await;
    let (fresh, stale, stale_held, seen) = b
        .write((fx.clone(), card.id.clone()), |tx, (fx, card_id)| {
            Box::pin(async move {
                let snapshot = locked_card(tx, &fx.merchant, &card_id).await?;
                let first = operations::redeem(&snapshot, amount(1000), false, None, T0).unwrap();
                let fresh = tx
                    .append(&fx.merchant, &snapshot, &first, &meta("txn_fresh", T0))
                    .await;
                // The same decision again, on the snapshot the first one already changed.
                let second = operations::redeem(&snapshot, amount(1000), false, None, T0).unwrap();
                let stale = tx
                    .append(&fx.merchant, &snapshot, &second, &meta("txn_stale", T0))
                    .await;
                // Right balance, wrong held amount: stale too.
                let mut now = locked_card(tx, &fx.merchant, &card_id).await?;
                now.held += 100;
                let third = operations::redeem(&now, amount(100), false, None, T0).unwrap();
                let stale_held = tx
                    .append(&fx.merchant, &now, &third, &meta("txn_stale_held", T0))
                    .await;
                let seen = locked_card(tx, &fx.merchant, &card_id).await?;
                Ok((fresh, stale, stale_held, seen))
            })
        })
        .await
        .expect("the step commits");
    assert_eq!(fresh.expect("the fresh decision is appended").balance_after, 4000);
    assert!(is_conflict(&stale), "{stale:?}");
    assert!(is_conflict(&stale_held), "{stale_held:?}");
    assert_eq!(
        (seen.balance, seen.held),
        (4000, 0),
        "a refused append changes nothing"
    );

    // A job that returns the conflict: the caller gets it (PostgreSQL first retries the
    // job, which stays stale, until it gives up), and nothing of the job is kept.
    let returned = b
        .write((fx.clone(), card.clone()), |tx, (fx, issued)| {
            Box::pin(async move {
                let ghost = MerchantId::new("mer_ghost");
                tx.insert_merchant(&ghost, "Ghost", T0).await?;
                tx.insert_api_key(&key_of(&ghost, "key_ghost"), b"ghost-key")
                    .await?;
                let decision = operations::redeem(&issued, amount(1000), false, None, T0).unwrap();
                tx.append(&fx.merchant, &issued, &decision, &meta("txn_returned", T0))
                    .await
            })
        })
        .await;
    assert!(is_conflict(&returned), "{returned:?}");
    assert_eq!(b.store.api_key_by_hash(b"ghost-key").await.unwrap(), None);

    let store = &b.store;
    let card_now = read_card(b, &fx.merchant, &card.id, T0).await;
    assert_eq!((card_now.balance, card_now.held), (4000, 0));
    for id in ["txn_stale", "txn_stale_held", "txn_returned"] {
        let found = store
            .transaction(&fx.merchant, &TransactionId::new(id))
            .await
            .unwrap();
        assert!(found.is_none(), "{id} must not be written");
    }
    let all = transaction_ids(b, &fx.merchant, &card.id, &page(50, None)).await;
    assert_eq!(all, ["txn_fresh", "txn_issue_card_stale"]);
    assert_sound(b).await;
}

async fn a_decision_that_would_leave_available_negative_is_refused_by_the_guard(b: &Backend, fx: &Fixture) {
    chapter(
        b,
        "a_decision_that_would_leave_available_negative_is_refused_by_the_guard",
    );
    let (card, _) = issue_card(b, fx, "card_guard", b"fp-guard", 5000).await;
    let results = b
        .write((fx.clone(), card.clone()), |tx, (fx, card)| {
            Box::pin(async move {
                // Decisions taken on a card that claims more than it has, applied to the
                // real card: the snapshot matches, only the guard on available stands.
                let rich = CardSnapshot {
                    balance: 10_000,
                    ..card.clone()
                };
                let overdraw = operations::redeem(&rich, amount(8000), false, None, T0).unwrap();
                let redeem = tx
                    .append(&fx.merchant, &card, &overdraw, &meta("txn_overdraw", T0))
                    .await;
                let overhold = operations::place_hold(&rich, amount(8000), false, None, T0).unwrap();
                let hold = tx
                    .append(&fx.merchant, &card, &overhold, &meta("txn_overhold", T0))
                    .await;
                // Releasing more than is held would leave held negative.
                let phantom = HoldSnapshot {
                    id: HoldId::new("hold_phantom"),
                    card_id: card.id.clone(),
                    amount: 1000,
                    state: HoldState::Pending,
                    expires_at: at_seconds(60),
                };
                let release = operations::release(&card, &phantom);
                let release = tx
                    .append(&fx.merchant, &card, &release, &meta("txn_overrelease", T0))
                    .await;
                // Spending exactly what is available is allowed.
                let exact = operations::redeem(&card, amount(5000), false, None, T0).unwrap();
                let exact = tx
                    .append(&fx.merchant, &card, &exact, &meta("txn_exact", T0))
                    .await;
                Ok((redeem, hold, release, exact))
            })
        })
        .await
        .expect("the step commits");
    assert!(
        is_conflict(&results.0),
        "redeem beyond available: {:?}",
        results.0
    );
    assert!(is_conflict(&results.1), "hold beyond available: {:?}", results.1);
    assert!(is_conflict(&results.2), "release beyond held: {:?}", results.2);
    assert_eq!(
        results.3.expect("spending all that is available").balance_after,
        0
    );
    let card_now = read_card(b, &fx.merchant, &card.id, T0).await;
    assert_eq!((card_now.balance, card_now.held), (0, 0));
    let all = transaction_ids(b, &fx.merchant, &card.id, &page(50, None)).await;
    assert_eq!(all, ["txn_exact", "txn_issue_card_guard"]);
    assert_sound(b).await;
}

async fn a_hold_is_listed_while_pending_and_finishes_only_once(b: &Backend, fx: &Fixture) {
    chapter(b, "a_hold_is_listed_while_pending_and_finishes_only_once");
    let (card, _) = issue_card(b, fx, "card_holds", b"fp-holds", 10_000).await;
    let (_, h1) = place_hold(b, &fx.merchant, &card.id, "hold_one", 1000, at_seconds(60)).await;
    let (_, h2) = place_hold(b, &fx.merchant, &card.id, "hold_two", 2000, at_seconds(600)).await;
    let (_, h3) = place_hold(b, &fx.merchant, &card.id, "hold_three", 500, at_seconds(30)).await;

    let listed = b
        .write(card.id.clone(), |tx, card| {
            Box::pin(async move {
                Ok((
                    tx.pending_holds(&card, None).await?,
                    tx.pending_holds(&card, Some(at_seconds(60))).await?,
                    tx.pending_holds(&card, Some(T0)).await?,
                ))
            })
        })
        .await
        .unwrap();
    assert_eq!(
        listed.0,
        [h3.clone(), h1.clone(), h2.clone()],
        "all pending, soonest first"
    );
    assert_eq!(listed.1, [h3.clone(), h1.clone()], "due by then, expiry included");
    assert!(listed.2.is_empty());

    let read: HoldRecord = b.store.hold(&fx.merchant, &h1.id).await.unwrap().expect("read");
    assert_eq!(read.snapshot, h1);
    assert_eq!(
        (read.merchant_id, read.captured_amount, read.created_at),
        (fx.merchant.clone(), 0, T0)
    );

    let due = b.store.due_holds(at_seconds(60), 10).await.unwrap();
    assert_eq!(
        due,
        [
            (fx.merchant.clone(), h3.id.clone()),
            (fx.merchant.clone(), h1.id.clone())
        ]
    );
    let first_due = b.store.due_holds(at_seconds(60), 1).await.unwrap();
    assert_eq!(first_due, [(fx.merchant.clone(), h3.id.clone())]);
    assert!(b.store.due_holds(T0, 10).await.unwrap().is_empty());

    end_hold(b, fx, &h3.id, Ending::Release, "txn_release_three")
        .await
        .expect("the hold is released");
    // A second ending of the same hold loses the race, whatever it is.
    let again = b
        .write(h3.id.clone(), |tx, hold| {
            Box::pin(async move {
                let capture = tx.finish_hold(&hold, HoldState::Captured, 500, T0).await;
                let expire = tx.finish_hold(&hold, HoldState::Expired, 0, T0).await;
                Ok((capture, expire))
            })
        })
        .await
        .unwrap();
    assert!(is_conflict(&again.0), "{:?}", again.0);
    assert!(is_conflict(&again.1), "{:?}", again.1);
    let released = b.store.hold(&fx.merchant, &h3.id).await.unwrap().expect("read");
    assert_eq!(
        (released.snapshot.state, released.captured_amount),
        (HoldState::Released, 0)
    );

    // A zero capture releases the whole hold.
    let zero = end_hold(b, fx, &h2.id, Ending::Capture(Some(0)), "txn_capture_zero")
        .await
        .expect("a zero capture");
    assert_eq!(
        (zero.amount, zero.balance_before, zero.balance_after),
        (0, 10_000, 10_000)
    );
    let h2_read = b.store.hold(&fx.merchant, &h2.id).await.unwrap().expect("read");
    assert_eq!(h2_read.snapshot.state, HoldState::Released);

    let remaining = b
        .write(card.id.clone(), |tx, card| {
            Box::pin(async move { tx.pending_holds(&card, None).await })
        })
        .await
        .unwrap();
    assert_eq!(remaining, std::slice::from_ref(&h1));
    assert_eq!(
        b.store.due_holds(at_seconds(600), 10).await.unwrap(),
        [(fx.merchant.clone(), h1.id.clone())]
    );
    let card_now = read_card(b, &fx.merchant, &card.id, T0).await;
    assert_eq!((card_now.balance, card_now.held), (10_000, 1000));
    let report = b.store.verify().await.unwrap();
    assert!(report.is_sound(), "{:?}", report.violations);
    assert_eq!(report.pending_holds, 1);
}

async fn a_card_read_counts_only_holds_still_pending_at_now(b: &Backend, fx: &Fixture) {
    chapter(b, "a_card_read_counts_only_holds_still_pending_at_now");
    let (card, _) = issue_card(b, fx, "card_asof", b"fp-asof", 10_000).await;
    place_hold(b, &fx.merchant, &card.id, "hold_short", 1000, at_seconds(60)).await;
    place_hold(b, &fx.merchant, &card.id, "hold_long", 2000, at_seconds(600)).await;

    for (now, held) in [
        (T0, 3000),
        (at_seconds(59), 3000),
        (at_seconds(60), 2000),
        (at_seconds(600), 0),
    ] {
        let read = read_card(b, &fx.merchant, &card.id, now).await;
        assert_eq!(
            (read.balance, read.held),
            (10_000, held),
            "at {}",
            now.unix_millis()
        );
        let listed = b
            .store
            .cards(&fx.merchant, &CardFilter::default(), &page(1, None), now)
            .await
            .unwrap();
        // The newest card comes first: this one.
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].snapshot.id, card.id);
        assert_eq!(listed[0].snapshot.held, held, "listed at {}", now.unix_millis());
    }
    // The writer sees the cached amount: expiring a hold is a write of its own.
    let cached = b
        .write((fx.clone(), card.id.clone()), |tx, (fx, card)| {
            Box::pin(async move { locked_card(tx, &fx.merchant, &card).await })
        })
        .await
        .unwrap();
    assert_eq!(cached.held, 3000);
    assert_sound(b).await;
}

async fn reversal_totals_count_refunds_not_voided_and_a_transaction_is_voided_once(
    b: &Backend,
    fx: &Fixture,
) {
    chapter(
        b,
        "reversal_totals_count_refunds_not_voided_and_a_transaction_is_voided_once",
    );
    let (card, _) = issue_card(b, fx, "card_rev", b"fp-rev", 10_000).await;
    let r1 = redeem(b, fx, &card.id, 3000, "txn_r1").await;
    assert_eq!(reversal_totals(b, &r1.id).await, (0, false));
    reverse(b, fx, &r1.id, Reversal::Refund(Some(1000)), "txn_f1")
        .await
        .unwrap();
    let f2 = reverse(b, fx, &r1.id, Reversal::Refund(Some(500)), "txn_f2")
        .await
        .unwrap();
    assert_eq!(reversal_totals(b, &r1.id).await, (1500, false));
    // A voided refund no longer counts as refunded.
    reverse(b, fx, &f2.id, Reversal::Void, "txn_void_f2")
        .await
        .unwrap();
    assert_eq!(reversal_totals(b, &r1.id).await, (1000, false));
    assert_eq!(reversal_totals(b, &f2.id).await, (0, true));

    let r2 = redeem(b, fx, &card.id, 2000, "txn_r2").await;
    let void = reverse(b, fx, &r2.id, Reversal::Void, "txn_void_r2")
        .await
        .unwrap();
    assert_eq!((void.balance_before, void.balance_after), (6000, 8000));
    assert_eq!(reversal_totals(b, &r2.id).await, (0, true));
    assert_eq!(
        reversal_totals(b, &TransactionId::new("txn_unknown")).await,
        (0, false)
    );

    // A second void of the same transaction, decided as if the first had not happened
    // (two racing voids): the unique index refuses it and the card is left as it was.
    let (second, card_after) = b
        .write(
            (fx.clone(), card.id.clone(), r2.clone()),
            |tx, (fx, card_id, r2)| {
                Box::pin(async move {
                    let card = locked_card(tx, &fx.merchant, &card_id).await?;
                    let original = OriginalTransaction {
                        id: r2.id.clone(),
                        card_id: r2.card_id.clone(),
                        transaction_type: r2.transaction_type,
                        amount: r2.amount,
                        refunded: 0,
                        voided: false,
                    };
                    let decision = operations::void(&card, &original).unwrap();
                    let meta = TransactionMeta {
                        reverses: Some(r2.id.clone()),
                        ..meta("txn_void_r2_again", T0)
                    };
                    tx.savepoint("attempt").await?;
                    let second = tx.append(&fx.merchant, &card, &decision, &meta).await;
                    settle(tx, "attempt", second.is_err()).await?;
                    Ok((second, locked_card(tx, &fx.merchant, &card_id).await?))
                })
            },
        )
        .await
        .expect("the step commits");
    assert!(is_unique_violation(&second), "{second:?}");
    assert_eq!(card_after.balance, 8000);
    let read = read_card(b, &fx.merchant, &card.id, T0).await;
    assert_eq!(read.balance, 8000);
    let found = b
        .store
        .transaction(&fx.merchant, &TransactionId::new("txn_void_r2_again"))
        .await
        .unwrap();
    assert!(found.is_none());
    assert_eq!(reversal_totals(b, &r2.id).await, (0, true));
    assert_sound(b).await;
}

async fn an_idempotency_record_is_kept_until_its_retention_ends(b: &Backend, fx: &Fixture) {
    chapter(b, "an_idempotency_record_is_kept_until_its_retention_ends");
    let retention_start = Timestamp::from_unix_millis(T0.unix_millis() - RETENTION_MILLIS);
    let first = IdempotencyRecord {
        request_hash: vec![1, 2, 3, 0, 255],
        status: 201,
        body: awkward_bytes(9),
        created_at: T0,
    };
    b.write((fx.clone(), first.clone()), move |tx, (fx, first)| {
        Box::pin(async move {
            tx.put_idempotency_record(&fx.merchant, "native", "key-1", &first, retention_start)
                .await
        })
    })
    .await
    .expect("the record is stored");

    let reads = b
        .write(fx.clone(), move |tx, fx| {
            Box::pin(async move {
                let m = &fx.merchant;
                Ok([
                    tx.idempotency_record(m, "native", "key-1", retention_start)
                        .await?,
                    tx.idempotency_record(m, "native", "key-1", T0).await?,
                    tx.idempotency_record(m, "native", "key-1", T0.plus_millis(1))
                        .await?,
                    tx.idempotency_record(m, "clover", "key-1", retention_start)
                        .await?,
                    tx.idempotency_record(m, "native", "key-2", retention_start)
                        .await?,
                    tx.idempotency_record(&fx.other, "native", "key-1", retention_start)
                        .await?,
                ])
            })
        })
        .await
        .unwrap();
    let [
        before_retention,
        at_creation,
        after_creation,
        other_scope,
        other_key,
        other_merchant,
    ] = reads;
    assert_same_idempotency_record(&before_retention.expect("within retention"), &first);
    assert_same_idempotency_record(&at_creation.expect("not_before is inclusive"), &first);
    assert!(after_creation.is_none(), "created before not_before");
    assert!(other_scope.is_none() && other_key.is_none() && other_merchant.is_none());

    // Another request with the same key, while the first is still remembered: conflict,
    // and the first stays.
    let second = IdempotencyRecord {
        request_hash: vec![9],
        status: 200,
        body: b"second".to_vec(),
        created_at: at_seconds(1),
    };
    let (refused, still) = b
        .write((fx.clone(), second.clone()), |tx, (fx, second)| {
            Box::pin(async move {
                let replace_older_than = T0;
                let refused = tx
                    .put_idempotency_record(&fx.merchant, "native", "key-1", &second, replace_older_than)
                    .await;
                let still = tx
                    .idempotency_record(&fx.merchant, "native", "key-1", Timestamp::from_unix_millis(0))
                    .await?;
                Ok((refused, still))
            })
        })
        .await
        .unwrap();
    assert!(is_conflict(&refused), "{refused:?}");
    assert_same_idempotency_record(&still.expect("the first record stays"), &first);

    // Past retention the key may be used again: the old record is replaced.
    let later = IdempotencyRecord {
        request_hash: vec![7, 7],
        status: 409,
        body: b"later".to_vec(),
        created_at: T0.plus_millis(8 * DAY_MILLIS),
    };
    let read = b
        .write((fx.clone(), later.clone()), |tx, (fx, later)| {
            Box::pin(async move {
                let replace_older_than =
                    Timestamp::from_unix_millis(later.created_at.unix_millis() - RETENTION_MILLIS);
                tx.put_idempotency_record(&fx.merchant, "native", "key-1", &later, replace_older_than)
                    .await?;
                // The same key is free for another merchant all along.
                tx.put_idempotency_record(&fx.other, "native", "key-1", &later, replace_older_than)
                    .await?;
                tx.idempotency_record(&fx.merchant, "native", "key-1", replace_older_than)
                    .await
            })
        })
        .await
        .expect("an expired key is reused");
    assert_same_idempotency_record(&read.expect("the new record"), &later);
}

async fn idempotency_records_are_pruned_oldest_first_a_batch_at_a_time(b: &Backend, fx: &Fixture) {
    chapter(b, "idempotency_records_are_pruned_oldest_first_a_batch_at_a_time");
    // Records of both merchants made 9 and 8 days before T0 + 10 days, and one made at its
    // cut-off exactly (kept: the cut-off is exclusive), and one a day old.
    let base = T0.plus_millis(10 * DAY_MILLIS);
    let cut_off = Timestamp::from_unix_millis(base.unix_millis() - RETENTION_MILLIS);
    let made = [
        ("prune-a", &fx.merchant, base.unix_millis() - 9 * DAY_MILLIS),
        ("prune-b", &fx.other, base.unix_millis() - 8 * DAY_MILLIS),
        ("prune-c", &fx.merchant, cut_off.unix_millis()),
        ("prune-d", &fx.merchant, base.unix_millis() - DAY_MILLIS),
    ];
    for (key, merchant, at) in made {
        let record = IdempotencyRecord {
            request_hash: vec![4],
            status: 200,
            body: key.as_bytes().to_vec(),
            created_at: Timestamp::from_unix_millis(at),
        };
        let merchant = merchant.clone();
        b.write((merchant, record), move |tx, (merchant, record)| {
            Box::pin(async move {
                tx.put_idempotency_record(&merchant, "native", key, &record, Timestamp::from_unix_millis(0))
                    .await
            })
        })
        .await
        .expect("the record is stored");
    }
    // The chapter before left key-1 (of both merchants) made at T0 + 8 days: younger, kept.
    let mut pruned = Vec::new();
    loop {
        let deleted = b
            .write((), move |tx, ()| {
                Box::pin(async move { tx.prune_idempotency_records(cut_off, 1).await })
            })
            .await
            .expect("a prune");
        if deleted == 0 {
            break;
        }
        assert_eq!(deleted, 1, "at most the batch");
        pruned.push(deleted);
    }
    assert_eq!(pruned.len(), 2, "prune-a and prune-b, one per batch");
    let kept = b
        .write(fx.clone(), |tx, fx| {
            Box::pin(async move {
                let any_age = Timestamp::from_unix_millis(0);
                let mut kept = Vec::new();
                for (key, merchant) in [
                    ("prune-a", &fx.merchant),
                    ("prune-b", &fx.other),
                    ("prune-c", &fx.merchant),
                    ("prune-d", &fx.merchant),
                    ("key-1", &fx.merchant),
                ] {
                    if tx
                        .idempotency_record(merchant, "native", key, any_age)
                        .await?
                        .is_some()
                    {
                        kept.push(key);
                    }
                }
                Ok(kept)
            })
        })
        .await
        .unwrap();
    assert_eq!(
        kept,
        ["prune-c", "prune-d", "key-1"],
        "only what was made at or after the cut-off"
    );
}

async fn security_code_attempts_round_trip_per_merchant(b: &Backend, fx: &Fixture) {
    chapter(b, "security_code_attempts_round_trip_per_merchant");
    let counting = Attempts {
        failures: 3,
        window_started_at: Some(T0),
        locked_until: None,
    };
    let locked = Attempts {
        failures: 0,
        window_started_at: None,
        locked_until: Some(at_seconds(1800)),
    };
    let reads = b
        .write(fx.clone(), move |tx, fx| {
            Box::pin(async move {
                let fingerprint = awkward_bytes(4);
                let unknown = tx.attempts(&fx.merchant, &fingerprint).await?;
                tx.put_attempts(&fx.merchant, &fingerprint, &counting).await?;
                let first = tx.attempts(&fx.merchant, &fingerprint).await?;
                tx.put_attempts(&fx.merchant, &fingerprint, &locked).await?;
                let second = tx.attempts(&fx.merchant, &fingerprint).await?;
                let foreign = tx.attempts(&fx.other, &fingerprint).await?;
                Ok((unknown, first, second, foreign))
            })
        })
        .await
        .unwrap();
    assert_eq!(reads.0, Attempts::default());
    assert_eq!(reads.1, counting);
    assert_eq!(reads.2, locked);
    assert_eq!(reads.3, Attempts::default(), "attempts are counted per merchant");
    // And they were committed.
    let committed = b
        .write(fx.clone(), |tx, fx| {
            Box::pin(async move { tx.attempts(&fx.merchant, &awkward_bytes(4)).await })
        })
        .await
        .unwrap();
    assert_eq!(committed, locked);
}

async fn spent_security_code_attempts_are_pruned_and_live_ones_kept(b: &Backend, fx: &Fixture) {
    chapter(b, "spent_security_code_attempts_are_pruned_and_live_ones_kept");
    let now = T0.plus_millis(DAY_MILLIS);
    let minutes = |m: i64| m * 60 * SECOND_MILLIS;
    /// Prunes what is spent at `now` (a 30-minute window).
    async fn prune(tx: &mut dyn WriteTx, now: Timestamp) -> StoreResult<u64> {
        let window_before = Timestamp::from_unix_millis(now.unix_millis() - 30 * 60 * SECOND_MILLIS);
        tx.prune_code_attempts(window_before, now, 1000).await
    }
    // What earlier chapters left that is spent by `now` goes first (PostgreSQL also keeps an
    // empty row for every number looked up), so the count below is this chapter's alone.
    b.write((), move |tx, ()| Box::pin(async move { prune(tx, now).await }))
        .await
        .expect("a prune");
    let at = |offset: i64| Some(Timestamp::from_unix_millis(now.unix_millis() + offset));
    let rows = [
        (
            20,
            Attempts {
                failures: 3,
                window_started_at: at(-minutes(10)),
                locked_until: None,
            },
            true,
        ),
        (
            21,
            Attempts {
                failures: 9,
                window_started_at: at(-minutes(31)),
                locked_until: None,
            },
            false,
        ),
        (
            22,
            Attempts {
                failures: 0,
                window_started_at: None,
                locked_until: at(minutes(1)),
            },
            true,
        ),
        (
            23,
            Attempts {
                failures: 0,
                window_started_at: None,
                locked_until: at(0),
            },
            false,
        ),
        (24, Attempts::default(), false),
    ];
    b.write((fx.clone(), rows), |tx, (fx, rows)| {
        Box::pin(async move {
            for (seed, attempts, _) in rows {
                tx.put_attempts(&fx.merchant, &awkward_bytes(seed), &attempts)
                    .await?;
            }
            Ok(())
        })
    })
    .await
    .expect("the records are stored");
    let (pruned, again) = b
        .write((), move |tx, ()| {
            Box::pin(async move { Ok((prune(&mut *tx, now).await?, prune(tx, now).await?)) })
        })
        .await
        .expect("two prunes");
    assert_eq!(
        (pruned, again),
        (3, 0),
        "the closed window, the ended lock, the empty record"
    );
    let kept = b
        .write(fx.clone(), move |tx, fx| {
            Box::pin(async move {
                let mut kept = Vec::new();
                for (seed, _, _) in rows.iter().filter(|(_, _, live)| *live) {
                    kept.push(tx.attempts(&fx.merchant, &awkward_bytes(*seed)).await?);
                }
                Ok(kept)
            })
        })
        .await
        .unwrap();
    assert_eq!(kept, [rows[0].1, rows[2].1], "live records are untouched");
}

async fn rolling_back_to_a_savepoint_undoes_only_its_writes(b: &Backend, fx: &Fixture) {
    chapter(b, "rolling_back_to_a_savepoint_undoes_only_its_writes");
    let (card, _) = issue_card(b, fx, "card_sp", b"fp-sp", 10_000).await;
    let seen = b
        .write((fx.clone(), card.id.clone()), |tx, (fx, card_id)| {
            Box::pin(async move {
                let card = locked_card(tx, &fx.merchant, &card_id).await?;
                let kept = operations::redeem(&card, amount(1000), false, None, T0).unwrap();
                tx.append(&fx.merchant, &card, &kept, &meta("txn_kept", T0))
                    .await?;

                tx.savepoint("undone").await?;
                let card = locked_card(tx, &fx.merchant, &card_id).await?;
                let undone = operations::redeem(&card, amount(2000), false, None, T0).unwrap();
                tx.append(&fx.merchant, &card, &undone, &meta("txn_undone", T0))
                    .await?;
                let ghost = MerchantId::new("mer_ghost");
                tx.insert_merchant(&ghost, "Ghost", T0).await?;
                tx.insert_api_key(&key_of(&ghost, "key_ghost"), b"ghost-key")
                    .await?;
                tx.rollback_to_savepoint("undone").await?;

                tx.savepoint("released").await?;
                tx.put_attempts(
                    &fx.merchant,
                    b"fp-sp",
                    &Attempts {
                        failures: 1,
                        window_started_at: Some(T0),
                        locked_until: None,
                    },
                )
                .await?;
                tx.release_savepoint("released").await?;
                locked_card(tx, &fx.merchant, &card_id).await
            })
        })
        .await
        .expect("the job commits");
    assert_eq!(
        seen.balance, 9000,
        "inside the job, the rollback is already visible"
    );

    let store = &b.store;
    assert_eq!(read_card(b, &fx.merchant, &card.id, T0).await.balance, 9000);
    assert!(
        store
            .transaction(&fx.merchant, &TransactionId::new("txn_kept"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .transaction(&fx.merchant, &TransactionId::new("txn_undone"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.api_key_by_hash(b"ghost-key").await.unwrap(), None);
    let attempts = b
        .write(fx.clone(), |tx, fx| {
            Box::pin(async move { tx.attempts(&fx.merchant, b"fp-sp").await })
        })
        .await
        .unwrap();
    assert_eq!(attempts.failures, 1, "the released savepoint's write is kept");
    assert_sound(b).await;
}

async fn a_failing_job_leaves_no_trace_while_the_jobs_beside_it_commit(b: &Backend, fx: &Fixture) {
    chapter(b, "a_failing_job_leaves_no_trace_while_the_jobs_beside_it_commit");
    let (card, _) = issue_card(b, fx, "card_fail", b"fp-fail", 10_000).await;
    // Queued together, so that SQLite runs them in one transaction.
    let before = b
        .queue((fx.clone(), card.id.clone()), |tx, (fx, card_id)| {
            Box::pin(async move {
                let card = locked_card(tx, &fx.merchant, &card_id).await?;
                let decision = operations::redeem(&card, amount(1000), false, None, T0).unwrap();
                tx.append(&fx.merchant, &card, &decision, &meta("txn_before", T0))
                    .await
            })
        })
        .await;
    let failing = b
        .queue((fx.clone(), card.id.clone()), |tx, (fx, card_id)| {
            Box::pin(async move {
                let ghost = MerchantId::new("mer_ghost");
                tx.insert_merchant(&ghost, "Ghost", T0).await?;
                tx.insert_api_key(&key_of(&ghost, "key_ghost"), b"ghost-key")
                    .await?;
                let card = locked_card(tx, &fx.merchant, &card_id).await?;
                let decision = operations::redeem(&card, amount(500), false, None, T0).unwrap();
                tx.append(&fx.merchant, &card, &decision, &meta("txn_failing", T0))
                    .await?;
                // Not retryable, so every backend reports it at once.
                Err::<(), _>(StoreError::Corrupt("the step gives up".into()))
            })
        })
        .await;
    let after = b
        .queue(fx.clone(), |tx, fx| {
            Box::pin(async move {
                tx.put_attempts(&fx.merchant, b"fp-after", &Attempts::default())
                    .await?;
                tx.insert_merchant(&MerchantId::new("mer_after"), "After", T0)
                    .await?;
                tx.insert_api_key(&key_of(&MerchantId::new("mer_after"), "key_after"), b"after-key")
                    .await
            })
        })
        .await;
    let before = outcome(before).await.expect("the job before commits");
    let failing = outcome(failing).await;
    outcome(after).await.expect("the job after commits");
    assert!(
        matches!(&failing, Err(StoreError::Corrupt(message)) if message == "the step gives up"),
        "{failing:?}"
    );

    let store = &b.store;
    assert_eq!(read_card(b, &fx.merchant, &card.id, T0).await.balance, 9000);
    assert_eq!(before.balance_after, 9000);
    assert!(
        store
            .transaction(&fx.merchant, &TransactionId::new("txn_failing"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.api_key_by_hash(b"ghost-key").await.unwrap(), None);
    assert_eq!(
        store
            .api_key_by_hash(b"after-key")
            .await
            .unwrap()
            .map(|k| k.merchant_id),
        Some(MerchantId::new("mer_after"))
    );
    assert_sound(b).await;
}

async fn cards_are_listed_newest_first_by_state_and_program_a_page_at_a_time(b: &Backend, fx: &Fixture) {
    chapter(
        b,
        "cards_are_listed_newest_first_by_state_and_program_a_page_at_a_time",
    );
    let records = vec![
        card_record(
            &fx.merchant,
            &fx.program,
            "card_1",
            b"f1",
            CardKind::Virtual,
            CardState::Active,
            None,
        ),
        card_record(
            &fx.merchant,
            &fx.bare,
            "card_2",
            b"f2",
            CardKind::Physical,
            CardState::Inactive,
            None,
        ),
        card_record(
            &fx.merchant,
            &fx.program,
            "card_3",
            b"f3",
            CardKind::Virtual,
            CardState::Active,
            None,
        ),
        card_record(
            &fx.merchant,
            &fx.program,
            "card_4",
            b"f4",
            CardKind::Physical,
            CardState::Inactive,
            None,
        ),
        card_record(
            &fx.merchant,
            &fx.bare,
            "card_5",
            b"f5",
            CardKind::Virtual,
            CardState::Active,
            None,
        ),
        card_record(
            &fx.other,
            &fx.other_program,
            "card_x",
            b"f1",
            CardKind::Virtual,
            CardState::Active,
            None,
        ),
    ];
    let wrong_from = b
        .write(records, |tx, records| {
            Box::pin(async move {
                for record in &records {
                    tx.insert_card(record).await?;
                }
                tx.set_card_state(&CardId::new("card_3"), CardState::Active, CardState::Frozen, T0)
                    .await?;
                // The guard: card_4 is not active, so this changes nothing.
                Ok(tx
                    .set_card_state(&CardId::new("card_4"), CardState::Active, CardState::Frozen, T0)
                    .await)
            })
        })
        .await
        .expect("the cards are inserted");
    assert!(is_conflict(&wrong_from), "{wrong_from:?}");
    let m = &fx.merchant;
    let all = CardFilter::default();
    let by_state = |state| CardFilter {
        state: Some(state),
        ..CardFilter::default()
    };
    let by_program = |program: &Program| CardFilter {
        program_id: Some(program.id.clone()),
        ..CardFilter::default()
    };

    assert_eq!(
        card_ids(b, m, &all, &page(10, None)).await,
        ["card_5", "card_4", "card_3", "card_2", "card_1"]
    );
    assert_eq!(
        card_ids(b, m, &by_state(CardState::Active), &page(10, None)).await,
        ["card_5", "card_1"]
    );
    assert_eq!(
        card_ids(b, m, &by_state(CardState::Frozen), &page(10, None)).await,
        ["card_3"]
    );
    assert_eq!(
        card_ids(b, m, &by_state(CardState::Inactive), &page(10, None)).await,
        ["card_4", "card_2"]
    );
    assert!(
        card_ids(b, m, &by_state(CardState::Closed), &page(10, None))
            .await
            .is_empty()
    );
    assert_eq!(
        card_ids(b, m, &by_program(&fx.program), &page(10, None)).await,
        ["card_4", "card_3", "card_1"]
    );
    let both = CardFilter {
        state: Some(CardState::Inactive),
        program_id: Some(fx.bare.id.clone()),
        last4: None,
    };
    assert_eq!(card_ids(b, m, &both, &page(10, None)).await, ["card_2"]);
    let by_last4 = |digits: &str| CardFilter {
        last4: Some(digits.to_owned()),
        ..CardFilter::default()
    };
    assert_eq!(
        card_ids(b, m, &by_last4("0042"), &page(10, None)).await,
        ["card_5", "card_4", "card_3", "card_2", "card_1"]
    );
    assert!(
        card_ids(b, m, &by_last4("0043"), &page(10, None))
            .await
            .is_empty()
    );

    assert_eq!(card_ids(b, m, &all, &page(2, None)).await, ["card_5", "card_4"]);
    assert_eq!(
        card_ids(b, m, &all, &page(2, Some("card_4"))).await,
        ["card_3", "card_2"]
    );
    assert_eq!(card_ids(b, m, &all, &page(2, Some("card_2"))).await, ["card_1"]);
    assert!(card_ids(b, m, &all, &page(2, Some("card_1"))).await.is_empty());
    let full = by_program(&fx.program);
    assert_eq!(card_ids(b, m, &full, &page(2, None)).await, ["card_4", "card_3"]);
    assert_eq!(card_ids(b, m, &full, &page(2, Some("card_3"))).await, ["card_1"]);

    assert_eq!(card_ids(b, &fx.other, &all, &page(10, None)).await, ["card_x"]);
    let frozen = read_card(b, m, &CardId::new("card_3"), T0).await;
    assert_eq!(frozen.state, CardState::Frozen);
    let untouched = read_card(b, m, &CardId::new("card_4"), T0).await;
    assert_eq!(untouched.state, CardState::Inactive);
}

async fn a_cards_transactions_are_paged_newest_first(b: &Backend, fx: &Fixture) {
    chapter(b, "a_cards_transactions_are_paged_newest_first");
    let (card, issue) = issue_card(b, fx, "card_pages", b"fp-pages", 10_000).await;
    for n in 1..=4 {
        redeem(b, fx, &card.id, 100, &format!("txn_r{n}")).await;
    }
    // Another card's transactions never show.
    let (other_card, _) = issue_card(b, fx, "card_pages_other", b"fp-pages-other", 2500).await;
    redeem(b, fx, &other_card.id, 100, "txn_other").await;

    let m = &fx.merchant;
    assert_eq!(
        transaction_ids(b, m, &card.id, &page(2, None)).await,
        ["txn_r4", "txn_r3"]
    );
    assert_eq!(
        transaction_ids(b, m, &card.id, &page(2, Some("txn_r3"))).await,
        ["txn_r2", "txn_r1"]
    );
    assert_eq!(
        transaction_ids(b, m, &card.id, &page(2, Some("txn_r1"))).await,
        [issue.id.as_str()]
    );
    assert!(
        transaction_ids(b, m, &card.id, &page(2, Some(issue.id.as_str())))
            .await
            .is_empty()
    );
    let all = b
        .store
        .card_transactions(m, &card.id, &page(10, None))
        .await
        .unwrap();
    let balances: Vec<_> = all.iter().map(|t| (t.balance_before, t.balance_after)).collect();
    assert_eq!(
        balances,
        [
            (9700, 9600),
            (9800, 9700),
            (9900, 9800),
            (10_000, 9900),
            (0, 10_000)
        ]
    );
}

async fn another_merchant_sees_none_of_a_merchants_rows(b: &Backend, fx: &Fixture) {
    chapter(b, "another_merchant_sees_none_of_a_merchants_rows");
    let (card, issue) = issue_card(b, fx, "card_scoped", b"fp-scoped", 10_000).await;
    let (_, hold) = place_hold(b, &fx.merchant, &card.id, "hold_scoped", 1000, at_seconds(600)).await;
    let store = &b.store;
    let other = &fx.other;
    assert!(store.program(other, &fx.program.id).await.unwrap().is_none());
    assert!(
        store
            .programs(other, &page(10, None))
            .await
            .unwrap()
            .iter()
            .all(|p| p.id != fx.program.id)
    );
    assert!(store.card(other, &card.id, T0).await.unwrap().is_none());
    assert!(
        store
            .cards(other, &CardFilter::default(), &page(100, None), T0)
            .await
            .unwrap()
            .iter()
            .all(|c| c.merchant_id == *other && c.snapshot.id != card.id)
    );
    // Its own program's filter finds nothing of the other merchant's.
    let by_program = CardFilter {
        program_id: Some(fx.program.id.clone()),
        ..CardFilter::default()
    };
    assert!(
        store
            .cards(other, &by_program, &page(100, None), T0)
            .await
            .unwrap()
            .is_empty()
    );
    // A cursor from another merchant's list leads nowhere.
    assert!(
        store
            .cards(
                other,
                &CardFilter::default(),
                &page(100, Some(card.id.as_str())),
                T0
            )
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.hold(other, &hold.id).await.unwrap().is_none());
    assert!(store.transaction(other, &issue.id).await.unwrap().is_none());
    assert!(
        store
            .card_transactions(other, &card.id, &page(10, None))
            .await
            .unwrap()
            .is_empty()
    );
    let in_writer = b
        .write(
            (fx.clone(), card.id.clone(), hold.id.clone(), issue.id.clone()),
            |tx, (fx, card, hold, issue)| {
                Box::pin(async move {
                    let other = &fx.other;
                    Ok([
                        tx.card(other, &card).await?.is_some(),
                        tx.card_by_fingerprint(other, b"fp-scoped").await?.is_some(),
                        tx.program(other, &fx.program.id).await?.is_some(),
                        tx.hold(other, &hold).await?.is_some(),
                        tx.transaction(other, &issue).await?.is_some(),
                    ])
                })
            },
        )
        .await
        .unwrap();
    assert_eq!(
        in_writer, [false; 5],
        "card, fingerprint, program, hold, transaction"
    );
    // The owner still sees them all.
    assert!(store.card(&fx.merchant, &card.id, T0).await.unwrap().is_some());
    assert!(store.hold(&fx.merchant, &hold.id).await.unwrap().is_some());
}

async fn verify_finds_the_story_sound_and_a_tampered_balance_unsound(b: &Backend, fx: &Fixture) {
    chapter(b, "verify_finds_the_story_sound_and_a_tampered_balance_unsound");
    let before = b.store.verify().await.unwrap();
    let story = money_story(b, fx, "verify").await;
    // A pending hold too, so the held checks have something to check.
    place_hold(
        b,
        &fx.merchant,
        &story.card,
        "hold_verify_pending",
        700,
        at_seconds(600),
    )
    .await;
    let report = b.store.verify().await.unwrap();
    assert!(report.is_sound(), "{:?}", report.violations);
    // What this chapter added, whatever ran before it in the same database: one card, eight
    // transactions with 2 + 2 + 2 + 2 + 3 + 2 + 2 + 2 postings, one hold still pending.
    assert_eq!(
        (
            report.cards - before.cards,
            report.transactions - before.transactions,
            report.postings - before.postings,
            report.pending_holds - before.pending_holds,
        ),
        (1, 8, 17, 1)
    );

    // Behind the store's back, on a connection of its own.
    let changed = b
        .raw_execute("UPDATE cards SET balance = balance + 1 WHERE id = 'card_verify'")
        .await
        .expect("cards are not append-only");
    assert_eq!(changed, 1);
    let report = b.store.verify().await.unwrap();
    assert!(!report.is_sound(), "a tampered balance must be found");
    assert_eq!(
        report.violations,
        ["card balance differs from its ledger accounts: card_verify: cached 2001, ledger 2000"],
        "exactly the tampered card, and nothing else"
    );

    // Inserting is all the append-only rule leaves; verify finds forged rows too: a posting in
    // another currency than the card's, and a refund beyond what it refunds.
    b.raw_execute(
        "INSERT INTO postings (transaction_id, entry_id, account_kind, owner_id, currency, amount) \
         VALUES ('txn_verify_load', 'txn_verify_load', 'card_available', 'card_verify', 'EUR', 5)",
    )
    .await
    .expect("a forged posting is inserted");
    b.raw_execute(
        "INSERT INTO transactions (id, merchant_id, card_id, type, amount, currency, balance_before, \
         balance_after, reverses, entry_id, created_at) VALUES ('txn_forged', 'mer_acme', 'card_verify', \
         'refund', 5000, 'USD', 2000, 2000, 'txn_verify_redeem', 'txn_forged', 0)",
    )
    .await
    .expect("a forged refund is inserted");
    // The ledger's append-only rows carry no foreign keys (migration 0009): verify checks
    // their references instead, and finds rows that name nothing.
    b.raw_execute(
        "INSERT INTO transactions (id, merchant_id, card_id, type, amount, currency, balance_before, \
         balance_after, reverses, entry_id, created_at) VALUES ('txn_orphan', 'mer_acme', 'card_nowhere', \
         'void', 0, 'USD', 0, 0, 'txn_nowhere', 'txn_orphan', 0)",
    )
    .await
    .expect("a transaction of no card is inserted");
    b.raw_execute(
        "INSERT INTO postings (transaction_id, entry_id, account_kind, owner_id, currency, amount) \
         VALUES ('txn_nowhere', 'txn_nowhere', 'program_funding', 'prg_nowhere', 'USD', 1)",
    )
    .await
    .expect("a posting of no transaction is inserted");
    b.raw_execute(
        "INSERT INTO events (id, merchant_id, type, payload, created_at) \
         VALUES ('evt_orphan', 'mer_nowhere', 'card.redeemed', '{}', 0)",
    )
    .await
    .expect("an event of no merchant is inserted");
    let report = b.store.verify().await.unwrap();
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.starts_with("posting belongs to no transaction: posting ")
                && v.ends_with(" names txn_nowhere")),
        "missing the orphan posting in {:?}",
        report.violations
    );
    for expected in [
        "card account posted in another currency than the card's: txn_verify_load posts EUR to card_verify in USD",
        "journal entry does not balance: txn_verify_load EUR sums to 5",
        "refunds exceed the original transaction: txn_verify_redeem: amount 1500, refunded more",
        "transaction names a card that does not exist or is another merchant's: txn_orphan names card \
         card_nowhere of merchant mer_acme",
        "transaction reverses a transaction that does not exist or is another merchant's: txn_orphan reverses \
         txn_nowhere",
        "event names a merchant that does not exist: evt_orphan names mer_nowhere",
    ] {
        assert!(
            report.violations.iter().any(|v| v == expected),
            "missing {expected:?} in {:?}",
            report.violations
        );
    }
}

async fn verify_sums_outstanding_value_beyond_64_bits(b: &Backend, fx: &Fixture) {
    chapter(b, "verify_sums_outstanding_value_beyond_64_bits");
    // Two cards of the other merchant's unlimited EUR program, each holding all that 64 bits
    // hold: together more than any i64 (or SQL SUM on SQLite) can carry.
    let cards = b
        .write(fx.clone(), |tx, fx| {
            Box::pin(async move {
                let mut cards = Vec::new();
                for (id, fingerprint) in [("card_huge_1", b"fp-huge-1"), ("card_huge_2", b"fp-huge-2")] {
                    let mut record = card_record(
                        &fx.other,
                        &fx.other_program,
                        id,
                        fingerprint,
                        CardKind::Virtual,
                        CardState::Active,
                        None,
                    );
                    let issued = operations::issue(
                        &fx.other_program,
                        &record.snapshot.id,
                        CardKind::Virtual,
                        Some(amount(i64::MAX)),
                        T0,
                    )
                    .expect("an unlimited program takes any amount");
                    record.snapshot.state = issued.state;
                    tx.insert_card(&record).await?;
                    let decision = issued.value.expect("issued with value");
                    let txn = format!("txn_issue_{id}");
                    tx.append(&fx.other, &record.snapshot, &decision, &meta(&txn, T0))
                        .await?;
                    cards.push(record.snapshot.id);
                }
                Ok(cards)
            })
        })
        .await
        .expect("the cards are issued");
    // A hold of everything on one of them, and a spend of one unit on the other.
    place_hold(b, &fx.other, &cards[0], "hold_huge", i64::MAX, at_seconds(600)).await;
    append_on_card(b, &fx.other, &cards[1], meta("txn_huge_redeem", T0), |card| {
        operations::redeem(card, amount(1), false, None, T0).expect("the card covers it")
    })
    .await
    .expect("one unit is spent");

    let first = read_card(b, &fx.other, &cards[0], T0).await;
    assert_eq!((first.balance, first.held), (i64::MAX, i64::MAX));
    let expired = read_card(b, &fx.other, &cards[0], at_seconds(600)).await;
    assert_eq!(
        expired.held, 0,
        "an expired hold of i64::MAX is subtracted as of now"
    );
    let second = read_card(b, &fx.other, &cards[1], T0).await;
    assert_eq!(second.balance, i64::MAX - 1);

    let report = b.store.verify().await.unwrap();
    assert!(report.is_sound(), "{:?}", report.violations);
    let eur = report
        .outstanding
        .iter()
        .find(|(currency, _)| currency == "EUR")
        .map(|(_, value)| *value);
    assert_eq!(eur, Some(2 * i128::from(i64::MAX) - 1));
}

async fn closing_the_store_finishes_queued_jobs_and_refuses_later_ones(b: &Backend, fx: &Fixture) {
    chapter(b, "closing_the_store_finishes_queued_jobs_and_refuses_later_ones");
    let counted = Attempts {
        failures: 2,
        window_started_at: Some(T0),
        locked_until: None,
    };
    let queued = b
        .queue(fx.clone(), move |tx, fx| {
            Box::pin(async move { tx.put_attempts(&fx.merchant, b"fp-closing", &counted).await })
        })
        .await;
    b.store.close().await;
    let queued = outcome(queued).await;
    let late = b
        .write(fx.clone(), |tx, fx| {
            Box::pin(async move { tx.attempts(&fx.merchant, b"fp-closing").await })
        })
        .await;
    // What a restart finds: the queued job's effect, committed.
    let restarted = b.reopen().await;
    let kept = restarted
        .write(fx.clone(), |tx, fx| {
            Box::pin(async move { tx.attempts(&fx.merchant, b"fp-closing").await })
        })
        .await;
    restarted.store.close().await;

    // Every broken promise is reported at once: they have one cause.
    let mut broken = Vec::new();
    if let Err(error) = &queued {
        broken.push(format!(
            "a job queued before close failed instead of being finished: {error:?}"
        ));
    }
    match kept {
        Ok(attempts) if attempts == counted => {}
        other => broken.push(format!(
            "after a restart the queued job's effect is missing: {other:?}"
        )),
    }
    if !matches!(late, Err(StoreError::Closed)) {
        broken.push(format!(
            "a job submitted after close got {late:?}, not Err(StoreError::Closed)"
        ));
    }
    assert!(broken.is_empty(), "{}: {}", b.name, broken.join("; "));
}

async fn the_ledger_refuses_raw_updates_and_deletes(b: &Backend, fx: &Fixture) {
    chapter(b, "the_ledger_refuses_raw_updates_and_deletes");
    let story = money_story(b, fx, "sealed").await;
    for sql in [
        "UPDATE transactions SET amount = amount + 1",
        "UPDATE transactions SET reference = 'rewritten'",
        "DELETE FROM transactions",
        "UPDATE postings SET amount = amount * 2",
        "DELETE FROM postings",
    ] {
        let refused = b.raw_execute(sql).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|message| message.contains("append-only")),
            "{sql}: {refused:?}"
        );
    }
    let all = b
        .store
        .card_transactions(&fx.merchant, &story.card, &page(50, None))
        .await
        .unwrap();
    let mut expected = story.transactions.clone();
    expected.reverse();
    assert_eq!(all, expected, "the ledger is as it was");
    assert_sound(b).await;
}

// ---------------------------------------------------------------------------------------------
// The tests: each runs its chapters in order on a fresh database per backend. Chapters that
// share a database use ids of their own; creating and dropping a PostgreSQL database costs
// most of a second, so chapters are grouped rather than given a database each.
// ---------------------------------------------------------------------------------------------

on_both_backends! {
    merchants_programs_and_cards_round_trip_and_keep_their_keys_unique, "rows round trip", |b| {
        let fx = setup(&b).await;
        a_merchant_is_found_by_its_api_key_hash(&b, &fx).await;
        a_program_round_trips_every_field(&b, &fx).await;
        a_card_round_trips_its_bytes_and_is_found_by_fingerprint(&b, &fx).await;
        a_card_number_is_unique_within_a_merchant(&b, &fx).await;
    }
}

on_both_backends! {
    appended_decisions_move_balance_and_held_and_list_newest_first, "append", |b| {
        let fx = setup(&b).await;
        appended_decisions_move_balance_and_held_and_record_before_and_after(&b, &fx).await;
        a_cards_transactions_are_paged_newest_first(&b, &fx).await;
    }
}

on_both_backends! {
    a_stale_snapshot_is_refused_by_the_guard, "guard", |b| {
        let fx = setup(&b).await;
        a_stale_snapshot_is_refused_by_the_guard(&b, &fx).await;
        a_decision_that_would_leave_available_negative_is_refused_by_the_guard(&b, &fx).await;
    }
}

on_both_backends! {
    holds_reserve_value_until_they_expire_or_finish_once, "holds", |b| {
        let fx = setup(&b).await;
        a_hold_is_listed_while_pending_and_finishes_only_once(&b, &fx).await;
        a_card_read_counts_only_holds_still_pending_at_now(&b, &fx).await;
    }
}

on_both_backends! {
    reversal_totals_count_refunds_not_voided_and_a_transaction_is_voided_once, "reversals", |b| {
        let fx = setup(&b).await;
        reversal_totals_count_refunds_not_voided_and_a_transaction_is_voided_once(&b, &fx).await;
    }
}

on_both_backends! {
    idempotency_records_and_code_attempts_are_kept_per_merchant, "idempotency and attempts", |b| {
        let fx = setup(&b).await;
        an_idempotency_record_is_kept_until_its_retention_ends(&b, &fx).await;
        idempotency_records_are_pruned_oldest_first_a_batch_at_a_time(&b, &fx).await;
        security_code_attempts_round_trip_per_merchant(&b, &fx).await;
        spent_security_code_attempts_are_pruned_and_live_ones_kept(&b, &fx).await;
    }
}

on_both_backends! {
    a_failed_job_or_rolled_back_savepoint_leaves_no_trace, "rollback", |b| {
        let fx = setup(&b).await;
        rolling_back_to_a_savepoint_undoes_only_its_writes(&b, &fx).await;
        a_failing_job_leaves_no_trace_while_the_jobs_beside_it_commit(&b, &fx).await;
    }
}

on_both_backends! {
    reads_are_filtered_paged_and_scoped_to_their_merchant, "reads", |b| {
        let fx = setup(&b).await;
        cards_are_listed_newest_first_by_state_and_program_a_page_at_a_time(&b, &fx).await;
        another_merchant_sees_none_of_a_merchants_rows(&b, &fx).await;
    }
}

on_both_backends! {
    closing_the_store_finishes_queued_jobs_and_refuses_later_ones, "close", |b| {
        let fx = setup(&b).await;
        closing_the_store_finishes_queued_jobs_and_refuses_later_ones(&b, &fx).await;
    }
}

on_both_backends! {
    the_ledger_is_append_only_and_verify_finds_a_tampered_balance, "ledger integrity", |b| {
        let fx = setup(&b).await;
        the_ledger_refuses_raw_updates_and_deletes(&b, &fx).await;
        verify_sums_outstanding_value_beyond_64_bits(&b, &fx).await;
        verify_finds_the_story_sound_and_a_tampered_balance_unsound(&b, &fx).await;
    }
}

async fn adyen_references_name_their_transactions_per_merchant_and_api(b: &Backend, fx: &Fixture) {
    chapter(b, "adyen_references_name_their_transactions_per_merchant_and_api");
    let (card, issued) = issue_card(b, fx, "card_adyen", b"fp-adyen", 10_000).await;
    let first = redeem(b, fx, &card.id, 100, "txn_adyen_b").await;
    let second = redeem(b, fx, &card.id, 200, "txn_adyen_a").await;
    let reads = b
        .write(
            (fx.clone(), issued.id.clone(), first.id.clone(), second.id.clone()),
            |tx, (fx, issued, first, second)| {
                Box::pin(async move {
                    // One reference may name several transactions, recorded in any order.
                    let reference = "REF0000000000001";
                    tx.insert_adyen_reference(&fx.merchant, "terminal", reference, &second, T0)
                        .await?;
                    tx.insert_adyen_reference(&fx.merchant, "terminal", reference, &first, T0)
                        .await?;
                    tx.insert_adyen_reference(&fx.merchant, "stored_value", "REF0000000000002", &issued, T0)
                        .await?;
                    let named = tx
                        .adyen_reference_transactions(&fx.merchant, "terminal", reference)
                        .await?;
                    let other_api = tx
                        .adyen_reference_transactions(&fx.merchant, "stored_value", reference)
                        .await?;
                    let other_merchant = tx
                        .adyen_reference_transactions(&fx.other, "terminal", reference)
                        .await?;
                    let unknown = tx
                        .adyen_reference_transactions(&fx.merchant, "terminal", "REF9999999999999")
                        .await?;
                    Ok((named, other_api, other_merchant, unknown))
                })
            },
        )
        .await
        .unwrap();
    let ids: Vec<&str> = reads.0.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(
        ids,
        ["txn_adyen_b", "txn_adyen_a"],
        "in the order the transactions were written"
    );
    assert_eq!(reads.0[1], second);
    assert!(reads.1.is_empty(), "a reference belongs to one API");
    assert!(reads.2.is_empty(), "a reference belongs to one merchant");
    assert!(reads.3.is_empty());
    // And they were committed.
    let committed = b
        .write(fx.clone(), |tx, fx| {
            Box::pin(async move {
                tx.adyen_reference_transactions(&fx.merchant, "stored_value", "REF0000000000002")
                    .await
            })
        })
        .await
        .unwrap();
    assert_eq!(committed, vec![issued]);
}

on_both_backends! {
    adyen_references_round_trip_per_merchant_and_api, "adyen references", |b| {
        let fx = setup(&b).await;
        adyen_references_name_their_transactions_per_merchant_and_api(&b, &fx).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Batches decided in memory
// ---------------------------------------------------------------------------------------------

/// What a redemption step did: its transaction, or the refusal it answered without writing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Redeemed {
    Done(TransactionRecord),
    Refused,
    Replayed(Vec<u8>),
}

#[derive(Clone)]
struct RedeemStep {
    merchant: MerchantId,
    card: CardId,
    value: i64,
    now: Timestamp,
    key: Option<String>,
    /// Asks for a hold too, which a batch never reads: the step must then fall back.
    also_read_a_hold: bool,
    /// The transaction's id, when the story needs one that collides; else a fresh one per run.
    transaction_id: Option<String>,
    /// Counts the step's runs: once when decided in memory, twice when it fell back.
    runs: Arc<AtomicU64>,
}

impl RedeemStep {
    fn new(fx: &Fixture, card: &CardId, value: i64) -> Self {
        Self {
            merchant: fx.merchant.clone(),
            card: card.clone(),
            value,
            now: T0,
            key: None,
            also_read_a_hold: false,
            transaction_id: None,
            runs: Arc::new(AtomicU64::new(0)),
        }
    }

    fn read_set(&self) -> ReadSet {
        ReadSet {
            merchant: self.merchant.clone(),
            card: self.card.clone(),
            program: false,
            idempotency: self.key.clone().map(|key| ("conformance".to_owned(), key)),
        }
    }
}

/// A redemption as the service runs one: the idempotency record first, the card, the domain's
/// decision under a savepoint (rolled back when refused), the record of the answer.
async fn queue_redemption(b: &Backend, step: RedeemStep) -> oneshot::Receiver<StoreResult<Redeemed>> {
    b.queue_reading(Some(step.read_set()), step, |tx, step| {
        Box::pin(async move {
            step.runs.fetch_add(1, Ordering::SeqCst);
            let not_before = Timestamp::from_unix_millis(step.now.unix_millis() - RETENTION_MILLIS);
            if let Some(key) = &step.key
                && let Some(record) = tx
                    .idempotency_record(&step.merchant, "conformance", key, not_before)
                    .await?
            {
                return Ok(Redeemed::Replayed(record.body));
            }
            if step.also_read_a_hold {
                tx.hold(&step.merchant, &HoldId::new("hold_none")).await?;
            }
            let card = locked_card(tx, &step.merchant, &step.card).await?;
            if !tx.pending_holds(&card.id, Some(step.now)).await?.is_empty() {
                // Not retryable: the step reports it at once.
                return Err(StoreError::Corrupt("the step expires no hold".into()));
            }
            tx.savepoint("command").await?;
            let redeemed = match operations::redeem(&card, amount(step.value), false, None, step.now) {
                Ok(decision) => {
                    let id = step
                        .transaction_id
                        .clone()
                        .unwrap_or_else(|| format!("txn_{}", fresh_transaction_id(&step.runs)));
                    let record = tx
                        .append(&step.merchant, &card, &decision, &meta(&id, step.now))
                        .await?;
                    tx.release_savepoint("command").await?;
                    Redeemed::Done(record)
                }
                Err(_) => {
                    tx.rollback_to_savepoint("command").await?;
                    Redeemed::Refused
                }
            };
            if let Some(key) = &step.key {
                let body = format!("{redeemed:?}").into_bytes();
                let record = IdempotencyRecord {
                    request_hash: b"hash".to_vec(),
                    status: 200,
                    body,
                    created_at: step.now,
                };
                tx.put_idempotency_record(&step.merchant, "conformance", key, &record, not_before)
                    .await?;
            }
            Ok(redeemed)
        })
    })
    .await
}

/// A transaction id of its own for each run of each step.
fn fresh_transaction_id(runs: &AtomicU64) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}_{}",
        NEXT.fetch_add(1, Ordering::SeqCst),
        runs.load(Ordering::SeqCst)
    )
}

async fn jobs_on_one_card_fold_in_memory_and_never_overdraw(b: &Backend, fx: &Fixture) {
    chapter(b, "jobs_on_one_card_fold_in_memory_and_never_overdraw");
    let (card, _) = issue_card(b, fx, "card_fold", b"fp-fold", 5_000).await;
    let steps: Vec<RedeemStep> = (0..20).map(|_| RedeemStep::new(fx, &card.id, 500)).collect();
    let mut answers = Vec::new();
    for step in &steps {
        answers.push(queue_redemption(b, step.clone()).await);
    }
    let mut done = Vec::new();
    let mut refused = 0;
    for answer in answers {
        match outcome(answer).await.expect("a redemption commits") {
            Redeemed::Done(record) => done.push(record),
            Redeemed::Refused => refused += 1,
            Redeemed::Replayed(_) => panic!("no key, no replay"),
        }
    }
    assert_eq!((done.len(), refused), (10, 10));
    // Each one was decided once: in memory, never falling back.
    for step in &steps {
        assert_eq!(step.runs.load(Ordering::SeqCst), 1);
    }
    // The balances chain in the order the jobs were decided.
    let mut afters: Vec<i64> = done.iter().map(|t| t.balance_after).collect();
    afters.sort_unstable();
    assert_eq!(afters, (0..10).map(|n| n * 500).collect::<Vec<_>>());
    for t in &done {
        assert_eq!(t.balance_before - t.balance_after, 500);
    }
    assert_eq!(read_card(b, &fx.merchant, &card.id, T0).await.balance, 0);
    let listed = transaction_ids(b, &fx.merchant, &card.id, &page(100, None)).await;
    assert_eq!(listed.len(), 11, "the issue and ten redemptions");
    assert_sound(b).await;
}

async fn a_job_that_needs_more_than_its_batch_read_falls_back_and_is_written_once(b: &Backend, fx: &Fixture) {
    chapter(
        b,
        "a_job_that_needs_more_than_its_batch_read_falls_back_and_is_written_once",
    );
    let (card, _) = issue_card(b, fx, "card_back", b"fp-back", 10_000).await;
    let plain = RedeemStep::new(fx, &card.id, 1_000);
    let needy = RedeemStep {
        also_read_a_hold: true,
        ..RedeemStep::new(fx, &card.id, 2_000)
    };
    let after = RedeemStep::new(fx, &card.id, 3_000);
    let answers = [
        queue_redemption(b, plain.clone()).await,
        queue_redemption(b, needy.clone()).await,
        queue_redemption(b, after.clone()).await,
    ];
    for answer in answers {
        assert!(matches!(outcome(answer).await, Ok(Redeemed::Done(_))));
    }
    assert_eq!(plain.runs.load(Ordering::SeqCst), 1);
    assert_eq!(needy.runs.load(Ordering::SeqCst), 2, "in memory, then on its own");
    assert_eq!(read_card(b, &fx.merchant, &card.id, T0).await.balance, 4_000);
    let listed = transaction_ids(b, &fx.merchant, &card.id, &page(100, None)).await;
    assert_eq!(listed.len(), 4, "the issue and three redemptions, none twice");

    // A card with a hold due by the job's time: the job falls back to expire it on its own.
    place_hold(b, &fx.merchant, &card.id, "hold_due", 500, at_seconds(5)).await;
    let late = RedeemStep {
        now: at_seconds(10),
        ..RedeemStep::new(fx, &card.id, 100)
    };
    let answer = queue_redemption(b, late.clone()).await;
    // The step itself expires nothing, so on the per-job path it finds the hold still due.
    let fell_back = outcome(answer).await;
    assert!(fell_back.is_err(), "{fell_back:?}");
    assert_eq!(late.runs.load(Ordering::SeqCst), 2, "in memory, then on its own");
    assert_sound(b).await;
}

async fn one_idempotency_key_twice_in_a_batch_is_decided_once(b: &Backend, fx: &Fixture) {
    chapter(b, "one_idempotency_key_twice_in_a_batch_is_decided_once");
    let (card, _) = issue_card(b, fx, "card_key", b"fp-key", 10_000).await;
    let first = RedeemStep {
        key: Some("key-twice".into()),
        ..RedeemStep::new(fx, &card.id, 700)
    };
    let second = RedeemStep {
        runs: Arc::new(AtomicU64::new(0)),
        ..first.clone()
    };
    let answers = [
        queue_redemption(b, first).await,
        queue_redemption(b, second).await,
    ];
    let mut results = Vec::new();
    for answer in answers {
        results.push(outcome(answer).await.expect("both commit"));
    }
    let done = results.iter().filter(|r| matches!(r, Redeemed::Done(_))).count();
    let replayed = results
        .iter()
        .filter(|r| matches!(r, Redeemed::Replayed(_)))
        .count();
    assert_eq!((done, replayed), (1, 1), "{results:?}");
    assert_eq!(read_card(b, &fx.merchant, &card.id, T0).await.balance, 9_300);
    // A key whose record is past its window is used again, and its record replaced.
    let later = RedeemStep {
        key: Some("key-twice".into()),
        now: Timestamp::from_unix_millis(T0.unix_millis() + RETENTION_MILLIS + DAY_MILLIS),
        ..RedeemStep::new(fx, &card.id, 300)
    };
    let again = outcome(queue_redemption(b, later.clone()).await).await;
    assert!(matches!(again, Ok(Redeemed::Done(_))), "{again:?}");
    assert_eq!(later.runs.load(Ordering::SeqCst), 1);
    assert_eq!(read_card(b, &fx.merchant, &card.id, T0).await.balance, 9_000);
    assert_sound(b).await;
}

async fn a_batch_whose_write_is_refused_runs_its_jobs_again_one_by_one(b: &Backend, fx: &Fixture) {
    chapter(b, "a_batch_whose_write_is_refused_runs_its_jobs_again_one_by_one");
    let (card, _) = issue_card(b, fx, "card_clash", b"fp-clash", 10_000).await;
    // Two redemptions that write the same transaction id: nothing in memory checks it, so the
    // batch's write is refused by the unique key, and nothing of the batch may stay.
    let clashing = |value| RedeemStep {
        transaction_id: Some("txn_clash".into()),
        ..RedeemStep::new(fx, &card.id, value)
    };
    let (first, second) = (clashing(1_000), clashing(2_000));
    let plain = RedeemStep::new(fx, &card.id, 500);
    let answers = [
        queue_redemption(b, first.clone()).await,
        queue_redemption(b, plain.clone()).await,
        queue_redemption(b, second.clone()).await,
    ];
    let mut results = Vec::new();
    for answer in answers {
        results.push(outcome(answer).await);
    }
    // The plain one and exactly one of the clashing ones commit; the other fails by itself.
    assert!(matches!(results[1], Ok(Redeemed::Done(_))), "{results:?}");
    let clash: Vec<_> = [&results[0], &results[2]]
        .into_iter()
        .map(|r| matches!(r, Ok(Redeemed::Done(_))))
        .collect();
    assert_eq!(clash.iter().filter(|done| **done).count(), 1, "{results:?}");
    let taken = if clash[0] { 1_000 } else { 2_000 };
    assert_eq!(
        read_card(b, &fx.merchant, &card.id, T0).await.balance,
        10_000 - 500 - taken
    );
    let listed = transaction_ids(b, &fx.merchant, &card.id, &page(100, None)).await;
    assert_eq!(listed.len(), 3, "the issue and two redemptions: {listed:?}");
    assert_sound(b).await;
}

on_both_backends! {
    batches_are_decided_in_memory_fold_fall_back_and_keep_keys_once, "batches in memory", |b| {
        let fx = setup(&b).await;
        jobs_on_one_card_fold_in_memory_and_never_overdraw(&b, &fx).await;
        a_job_that_needs_more_than_its_batch_read_falls_back_and_is_written_once(&b, &fx).await;
        one_idempotency_key_twice_in_a_batch_is_decided_once(&b, &fx).await;
        a_batch_whose_write_is_refused_runs_its_jobs_again_one_by_one(&b, &fx).await;
    }
}

/// A redemption changes a card's `balance` and `updated_at` (a hold its `held`, a load its
/// `expires_at` too). PostgreSQL updates a row in place, without a new entry in each of its
/// indexes (a HOT update), only when no column an index covers changes value, the columns
/// an index's predicate or expressions read included (migration 0021). So no index of `cards`
/// may name the columns every redemption changes.
#[tokio::test]
#[ignore = "needs GIFTD_TEST_PG_URL, a PostgreSQL server"]
async fn no_index_of_cards_covers_a_column_every_redemption_changes_on_postgres() {
    const CHANGED_BY_EVERY_REDEMPTION: [&str; 2] = ["balance", "updated_at"];
    let admin_url = pg_admin_url().expect("this test needs GIFTD_TEST_PG_URL");
    let database = PgDatabase::create(&admin_url).await;
    let store = PgStore::open(&database.url, &PgOptions::default())
        .await
        .unwrap_or_else(|e| panic!("open the PostgreSQL store: {e}"));
    store.close().await;
    let mut conn = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("a raw PostgreSQL connection");
    // Each index: its name, the columns it names, and its predicate and expressions as text.
    let indexes: Vec<(String, Vec<String>, String)> = sqlx::query_as(
        "SELECT c.relname::TEXT, \
           ARRAY(SELECT a.attname::TEXT FROM pg_attribute a \
                 WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)), \
           COALESCE(pg_get_expr(i.indpred, i.indrelid), '') || ' ' || \
             COALESCE(pg_get_expr(i.indexprs, i.indrelid), '') \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid = 'cards'::regclass ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .expect("the indexes of cards");
    let _ = conn.close().await;
    assert!(
        indexes
            .iter()
            .any(|(name, _, predicate)| name == "cards_by_expiry" && predicate.contains("holds_value")),
        "the sweeper's index is there, partial on holds_value: {indexes:?}"
    );
    for (name, columns, expressions) in &indexes {
        for column in CHANGED_BY_EVERY_REDEMPTION {
            let in_text = expressions
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|word| word == column);
            assert!(
                !columns.iter().any(|c| c == column) && !in_text,
                "index {name} covers {column}: {columns:?} {expressions}"
            );
        }
    }
}
