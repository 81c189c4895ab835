//! giftd's persistence: the [`Store`] trait that the service calls, the records it reads and
//! writes, and its SQLite implementation (PostgreSQL follows the same trait).
//!
//! Every mutation is a [`WriteJob`] that the store runs inside a database transaction under
//! its own savepoint. A backend may run many jobs in one transaction (group commit) and answers
//! each job only after the commit that holds its effect. The store owns SQL and migrations; it
//! takes no business decisions (the domain does) and never sees a clear card number or secret.

mod adjustments;
mod audit;
mod backend;
pub mod batch;
mod card_batches;
mod cardholder_links;
mod clover_reads;
pub mod postgres;
mod records;
pub mod reports;
mod rows;
mod sql;
pub mod sqlite;
mod staff;
mod telemetry;
mod verify;
mod webhooks;

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use giftd_domain::ledger::{Account, JournalEntry, Posting};
use giftd_domain::lockout::Attempts;
use giftd_domain::operations::{CardEffect, CardSnapshot, Decision, HoldSnapshot, HoldState};
use giftd_domain::wallet::{UserId, WalletCard};
use giftd_domain::{
    CardId, CardState, CheckoutId, HoldId, MerchantId, Program, ProgramId, Timestamp, TransactionId,
    TransactionType,
};

pub use adjustments::AdjustmentRecord;
pub use audit::{AuditEventRow, AuditFilter};
pub use backend::{Backend, BackupError, DatabaseUrl, SQLITE_FILE, UnsupportedUrl};
pub use batch::{BatchWrites, ReadSet};
pub use card_batches::{CardBatchRow, StockFile, StockFileState, StockIdempotency};
pub use cardholder_links::{CardholderLinkRecord, MAX_LINKS_LISTED};
pub use clover_reads::{
    CloverDirection, CloverHoldFacts, CloverLedgerRow, CloverListQuery, CloverObject, CloverPosition,
};
pub use records::{
    ApiKeyRecord, CardFilter, CardRecord, CheckoutRow, HoldRecord, IdempotencyRecord, Page, StaffRecord,
    StaffSessionRecord, TransactionMeta, TransactionRecord,
};
pub use reports::{
    ActivityLine, ChannelLine, DormantCard, LiabilityLine, StockBatch, StockBatchRecord, StockCard,
    StockSource,
};
pub use telemetry::{LEDGER_TRANSACTIONS_TOTAL, PoolStats, WRITE_JOBS_TOTAL};
pub use verify::VerifyReport;
pub use webhooks::{AttemptRow, ClaimedDelivery, DeliveryRow, DeliveryUpdate, EventRow, WebhookEndpointRow};

/// One card's side of a journal entry, as `WriteTx::append_entry` takes it.
#[derive(Debug, Clone, Copy)]
pub struct LegRef<'a> {
    /// The card as the decision saw it.
    pub card: &'a CardSnapshot,
    pub transaction_type: TransactionType,
    pub amount: i64,
    pub effect: &'a CardEffect,
    pub meta: &'a TransactionMeta,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// An error of the SQLite writer's connection (rusqlite; reads go through sqlx).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A unique key refused the write (for example a card number already issued).
    #[error("unique constraint violated: {0}")]
    UniqueViolation(String),
    /// A guarded update matched no row: the state changed under the writer. Retryable.
    #[error("conflicting concurrent update of {0}")]
    Conflict(&'static str),
    /// A stored value that cannot be read back into the domain: a bug or a tampered database.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The write transaction that held the job failed as a whole; nothing of it was kept.
    #[error("write transaction failed: {0}")]
    TransactionFailed(String),
    /// The writer has stopped (the store is shutting down).
    #[error("the store is closed")]
    Closed,
    /// The database could not take the write (down, restarting, unreachable, out of space,
    /// read-only after a failover); nothing of it was kept, except where the outage struck the
    /// commit itself (a connection lost during PostgreSQL's `COMMIT`, a SQLite log that could
    /// not be made durable after it): then a retry with the same Idempotency-Key tells. See
    /// [`StoreError::is_unavailable`].
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A job decided in memory asked for what its batch did not read; the runner runs it on
    /// the per-job path instead (`batch.rs`). Never reaches a job's `finish`.
    #[error("not in the batch's memory: {0}")]
    NotInMemory(&'static str),
}

impl StoreError {
    /// Whether the database could not serve the request rather than refused it: the server is
    /// down, restarting or unreachable, its disk is full, or it is a standby that cannot write.
    /// Front-ends answer 503 and the client retries later (see [`StoreError::Unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Database(error) => unavailable_sqlx(error),
            Self::Sqlite(error) => unavailable_sqlite(error),
            Self::Migrate(_)
            | Self::UniqueViolation(_)
            | Self::Conflict(_)
            | Self::Corrupt(_)
            | Self::TransactionFailed(_)
            | Self::Closed
            | Self::NotInMemory(_) => false,
        }
    }

    /// What each job of a write transaction that failed as a whole is answered: unavailable
    /// when the database was, otherwise a failed transaction.
    pub(crate) fn failed_whole(error: &StoreError) -> StoreError {
        if error.is_unavailable() {
            Self::Unavailable(error.to_string())
        } else {
            Self::TransactionFailed(error.to_string())
        }
    }

    pub(crate) fn from_write(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::UniqueViolation(db.message().to_owned())
            }
            _ => Self::Database(error),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// PostgreSQL SQLSTATEs of a server that cannot serve: `08…` connection exceptions, `57P01`–
/// `57P03` (shut down, crashed, starting up), `53100` disk full, `53300` too many connections,
/// `58030` I/O error, and `25006` (a read-only transaction: a standby, as after a failover).
/// SQLite (through sqlx) reports its primary result codes as numbers: `10` I/O error, `13`
/// database or disk full, `14` cannot open.
fn unavailable_sqlx(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || matches!(
                    &*code,
                    "57P01" | "57P02" | "57P03" | "53100" | "53300" | "58030" | "25006"
                )
                || code
                    .parse::<i32>()
                    .is_ok_and(|sqlite| matches!(sqlite & 0xff, 10 | 13 | 14))
        }),
        _ => false,
    }
}

/// The SQLite writer's errors of a volume that cannot take the write.
fn unavailable_sqlite(error: &rusqlite::Error) -> bool {
    use rusqlite::ffi::ErrorCode;
    matches!(error, rusqlite::Error::SqliteFailure(failure, _)
        if matches!(failure.code, ErrorCode::DiskFull | ErrorCode::SystemIoFailure | ErrorCode::CannotOpen))
}

/// A unit of work for the writer. `run` executes inside an open transaction, under a savepoint
/// the runner manages: an `Err` rolls back only this job's writes. `finish` is called exactly
/// once, after the transaction committed (`Ok`) or failed (`Err`), and is where the job hands
/// its result to whoever waits for it.
pub trait WriteJob: Send + 'static {
    fn run<'a>(&'a mut self, tx: &'a mut dyn WriteTx) -> BoxFuture<'a, StoreResult<()>>;
    fn finish(self: Box<Self>, committed: StoreResult<()>);
    /// What the job mostly locks (a card's id, say), if it knows: a backend with several
    /// writers gives jobs with the same affinity to the same writer, so that in one process
    /// they share a transaction instead of waiting for each other's row locks. Only a hint:
    /// correctness never depends on it.
    fn affinity(&self) -> Option<&str> {
        None
    }
    /// What the job reads, when that is one card (and perhaps its program) and its idempotency
    /// key: the runner may then read it for many jobs at once, decide the job in memory and
    /// write it with them set-wise (`batch.rs`). `None`: the job runs on the per-job path.
    fn read_set(&self) -> Option<ReadSet> {
        None
    }
}

/// The operations a job may perform inside the writer's transaction. Reads here see the
/// transaction's own writes and, on backends with row locks, lock what they read for update.
#[async_trait]
pub trait WriteTx: Send {
    /// Savepoints nest inside the runner's per-job savepoint. `name` is a fixed identifier.
    async fn savepoint(&mut self, name: &'static str) -> StoreResult<()>;
    async fn release_savepoint(&mut self, name: &'static str) -> StoreResult<()>;
    async fn rollback_to_savepoint(&mut self, name: &'static str) -> StoreResult<()>;

    async fn idempotency_record(
        &mut self,
        merchant: &MerchantId,
        scope: &str,
        key: &str,
        not_before: Timestamp,
    ) -> StoreResult<Option<IdempotencyRecord>>;
    /// Stores the answer to an idempotent request. A record for the same key created before
    /// `replace_older_than` (past retention) is replaced; a younger one means another request
    /// with this key committed first: `StoreError::Conflict`, and the job should run again.
    async fn put_idempotency_record(
        &mut self,
        merchant: &MerchantId,
        scope: &str,
        key: &str,
        record: &IdempotencyRecord,
        replace_older_than: Timestamp,
    ) -> StoreResult<()>;

    async fn insert_merchant(&mut self, id: &MerchantId, name: &str, now: Timestamp) -> StoreResult<()>;
    /// Stores a new API key (its keyed hash, and what it may do).
    async fn insert_api_key(&mut self, key: &ApiKeyRecord, key_hash: &[u8]) -> StoreResult<()>;
    /// The merchant's API key, for a change.
    async fn api_key(
        &mut self,
        merchant: &MerchantId,
        id: &giftd_domain::ApiKeyId,
    ) -> StoreResult<Option<ApiKeyRecord>>;
    /// Writes when a key stops working: `expires_at` (a rotation's grace) and `revoked_at`.
    async fn end_api_key(&mut self, key: &ApiKeyRecord) -> StoreResult<()>;
    /// Records that a key was used at `at` (never moving the time back).
    async fn touch_api_key(&mut self, id: &giftd_domain::ApiKeyId, at: Timestamp) -> StoreResult<()>;

    /// Appends a row to the audit trail.
    async fn insert_audit_event(&mut self, event: &AuditEventRow) -> StoreResult<()>;

    async fn insert_adjustment(&mut self, adjustment: &AdjustmentRecord) -> StoreResult<()>;
    /// The merchant's adjustment, locked for the rest of the transaction (an approval and a
    /// rejection of it are decided one after the other).
    async fn adjustment(
        &mut self,
        merchant: &MerchantId,
        id: &giftd_domain::AdjustmentId,
    ) -> StoreResult<Option<AdjustmentRecord>>;
    /// Writes a decision: state, who decided and when, the transaction applied.
    async fn update_adjustment(&mut self, adjustment: &AdjustmentRecord) -> StoreResult<()>;
    async fn set_adjustment_threshold(&mut self, merchant: &MerchantId, threshold: i64) -> StoreResult<()>;

    /// Stores a new cardholder link (its token hash must be unused).
    async fn insert_cardholder_link(&mut self, link: &CardholderLinkRecord) -> StoreResult<()>;
    /// The card's links, newest first, revoked ones too (at most [`MAX_LINKS_LISTED`]).
    async fn cardholder_links(
        &mut self,
        merchant: &MerchantId,
        card: &CardId,
    ) -> StoreResult<Vec<CardholderLinkRecord>>;
    /// Revokes the card's link `id` at `at`: `false` when it is not the card's or already revoked.
    async fn revoke_cardholder_link(
        &mut self,
        merchant: &MerchantId,
        card: &CardId,
        id: &giftd_domain::CardholderLinkId,
        at: Timestamp,
    ) -> StoreResult<bool>;

    /// Stores a new staff member (their email must be unused: `StoreError::Conflict` if not).
    async fn insert_staff(&mut self, staff: &StaffRecord) -> StoreResult<()>;
    /// The merchant's staff member, locked for the rest of the transaction.
    async fn staff(
        &mut self,
        merchant: &MerchantId,
        id: &giftd_domain::StaffId,
    ) -> StoreResult<Option<StaffRecord>>;
    /// Writes what changes of a staff member (role, password, second factor, lockout, disabling,
    /// last sign-in).
    async fn update_staff(&mut self, staff: &StaffRecord) -> StoreResult<()>;
    /// How many of the merchant's owners are not disabled.
    async fn active_owner_count(&mut self, merchant: &MerchantId) -> StoreResult<i64>;
    /// Stores a new session (the keyed hash of its token, never the token).
    async fn insert_staff_session(
        &mut self,
        session: &StaffSessionRecord,
        token_hash: &[u8],
    ) -> StoreResult<()>;
    /// Ends the staff member's open sessions at `at`: only `only` when given, all but `except`
    /// when given.
    async fn end_staff_sessions(
        &mut self,
        staff: &giftd_domain::StaffId,
        only: Option<&giftd_domain::StaffSessionId>,
        except: Option<&giftd_domain::StaffSessionId>,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Records that a session was used at `at` (never moving the time back).
    async fn touch_staff_session(
        &mut self,
        id: &giftd_domain::StaffSessionId,
        at: Timestamp,
    ) -> StoreResult<()>;

    async fn insert_program(&mut self, merchant: &MerchantId, program: &Program) -> StoreResult<()>;
    /// Writes a program's changeable fields (its name, limits, reloadability, expiry and
    /// promotion code); the rest never changes.
    async fn update_program(&mut self, merchant: &MerchantId, program: &Program) -> StoreResult<()>;
    async fn program(&mut self, merchant: &MerchantId, id: &ProgramId) -> StoreResult<Option<Program>>;

    /// The card, locked for the rest of the transaction.
    async fn card(&mut self, merchant: &MerchantId, id: &CardId) -> StoreResult<Option<CardRecord>>;
    async fn card_by_fingerprint(
        &mut self,
        merchant: &MerchantId,
        fingerprint: &[u8],
    ) -> StoreResult<Option<CardRecord>>;
    async fn insert_card(&mut self, card: &CardRecord) -> StoreResult<()>;
    /// Moves a card between lifecycle states; `from` guards against a concurrent change.
    async fn set_card_state(
        &mut self,
        id: &CardId,
        from: CardState,
        to: CardState,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// Applies one card's part of a decision with a guarded update: the card must still be as
    /// `card` says, and may not end with negative available value (else `Conflict`).
    async fn update_card(
        &mut self,
        card: &CardSnapshot,
        effect: &CardEffect,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Appends a transaction row, part of journal entry `entry_id`.
    async fn insert_transaction(
        &mut self,
        record: &TransactionRecord,
        entry_id: &TransactionId,
    ) -> StoreResult<()>;
    /// Appends one posting of journal entry `entry_id`, recorded under `transaction_id`.
    async fn insert_posting(
        &mut self,
        transaction_id: &TransactionId,
        entry_id: &TransactionId,
        posting: &Posting,
    ) -> StoreResult<()>;

    /// Appends one journal entry that touches one or more cards: each leg's card is updated
    /// (guarded) and gets its transaction; each posting is recorded under the transaction of
    /// the card whose account it moves (program accounts: under the first leg's). The entry is
    /// named after the first leg's transaction. All of it or none of it, with the job.
    async fn append_entry(
        &mut self,
        merchant: &MerchantId,
        entry: &JournalEntry,
        legs: &[LegRef<'_>],
    ) -> StoreResult<Vec<TransactionRecord>> {
        let Some(first) = legs.first() else {
            return Ok(Vec::new());
        };
        let entry_id = first.meta.id.clone();
        let mut records = Vec::with_capacity(legs.len());
        for leg in legs {
            self.update_card(leg.card, leg.effect, leg.meta.now).await?;
            let record = TransactionRecord {
                id: leg.meta.id.clone(),
                merchant_id: merchant.clone(),
                card_id: leg.card.id.clone(),
                transaction_type: leg.transaction_type,
                amount: leg.amount,
                currency: leg.card.currency.code().to_owned(),
                balance_before: leg.card.balance,
                balance_after: leg.card.balance + leg.effect.balance_delta,
                reference: leg.meta.reference.clone(),
                reverses: leg.meta.reverses.clone(),
                hold_id: leg.meta.hold_id.clone(),
                channel: Some(leg.meta.channel),
                created_at: leg.meta.now,
            };
            self.insert_transaction(&record, &entry_id).await?;
            records.push(record);
        }
        for posting in entry.postings() {
            let owner = match &posting.account {
                Account::CardAvailable(card) | Account::CardHeld(card) => {
                    legs.iter().find(|leg| &leg.card.id == card)
                }
                Account::ProgramFunding(_)
                | Account::ProgramRedemption(_)
                | Account::ProgramCashout(_)
                | Account::ProgramAdjustment(_)
                | Account::ProgramBreakage(_) => None,
            };
            let transaction_id = &owner.unwrap_or(first).meta.id;
            self.insert_posting(transaction_id, &entry_id, posting).await?;
        }
        Ok(records)
    }

    /// Appends a single-card decision: its transaction and its journal entry.
    async fn append(
        &mut self,
        merchant: &MerchantId,
        card: &CardSnapshot,
        decision: &Decision,
        meta: &TransactionMeta,
    ) -> StoreResult<TransactionRecord> {
        let leg = LegRef {
            card,
            transaction_type: decision.transaction_type,
            amount: decision.amount,
            effect: &decision.card,
            meta,
        };
        let mut records = self.append_entry(merchant, &decision.entry, &[leg]).await?;
        Ok(records.remove(0))
    }

    async fn insert_hold(
        &mut self,
        merchant: &MerchantId,
        hold: &HoldSnapshot,
        transaction_id: &TransactionId,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// The hold, locked for the rest of the transaction.
    async fn hold(&mut self, merchant: &MerchantId, id: &HoldId) -> StoreResult<Option<HoldRecord>>;
    /// Ends a pending hold; guarded so that only one of capture, release and expiry wins.
    async fn finish_hold(
        &mut self,
        id: &HoldId,
        state: HoldState,
        captured_amount: i64,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Pending holds of a card, soonest expiry first; with `due_at`, only those expired by then.
    async fn pending_holds(
        &mut self,
        card: &CardId,
        due_at: Option<Timestamp>,
    ) -> StoreResult<Vec<HoldSnapshot>>;

    async fn transaction(
        &mut self,
        merchant: &MerchantId,
        id: &TransactionId,
    ) -> StoreResult<Option<TransactionRecord>>;
    /// Sum of refunds of `original` that have not been voided, and whether it was voided.
    async fn reversal_totals(&mut self, original: &TransactionId) -> StoreResult<(i64, bool)>;

    async fn attempts(&mut self, merchant: &MerchantId, fingerprint: &[u8]) -> StoreResult<Attempts>;
    async fn put_attempts(
        &mut self,
        merchant: &MerchantId,
        fingerprint: &[u8],
        attempts: &Attempts,
    ) -> StoreResult<()>;

    /// The merchant's programs with this promotion code, oldest first, at most `limit`.
    async fn programs_by_promotion_code(
        &mut self,
        merchant: &MerchantId,
        promotion_code: &str,
        limit: u32,
    ) -> StoreResult<Vec<Program>>;
    /// The first transaction of `transaction_type` that concerns a hold of `card`: the one that
    /// placed it (`hold`), or captured it (`capture`, a zero capture included), ...
    async fn transaction_of_hold(
        &mut self,
        merchant: &MerchantId,
        card: &CardId,
        hold: &HoldId,
        transaction_type: TransactionType,
    ) -> StoreResult<Option<TransactionRecord>>;

    // ---- customer wallets ----

    /// Locks a user's wallet for the rest of the transaction (creating it on first use), drops
    /// the closed cards it still names, and returns its cards, oldest first. Every write that
    /// changes a user's cards calls this first (several wallets: in user-id order), so that the
    /// limit of 10 cards holds under concurrency.
    async fn lock_wallet(
        &mut self,
        merchant: &MerchantId,
        user: &UserId,
        now: Timestamp,
    ) -> StoreResult<Vec<WalletCard>>;
    /// Puts a card in its user's wallet, or changes its access when it is there already.
    async fn put_wallet_card(&mut self, merchant: &MerchantId, card: &WalletCard) -> StoreResult<()>;
    /// Takes a card out of one user's wallet, or with `user` None out of every wallet; answers
    /// how many wallets held it.
    async fn remove_wallet_card(
        &mut self,
        merchant: &MerchantId,
        user: Option<&UserId>,
        card: &CardId,
    ) -> StoreResult<u64>;
    /// Makes `card` the user's one preferred card; `false` when the wallet does not hold it.
    async fn prefer_wallet_card(
        &mut self,
        merchant: &MerchantId,
        user: &UserId,
        card: &CardId,
    ) -> StoreResult<bool>;

    // ---- the Clover facade ----

    /// Stores a Clover card token, by its keyed hash only.
    async fn insert_clover_token(
        &mut self,
        merchant: &MerchantId,
        token_hash: &[u8],
        card: &CardId,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// The card a merchant's token stands for, unless the token was revoked. Not locked: the
    /// caller locks the card next.
    async fn clover_token_card(
        &mut self,
        merchant: &MerchantId,
        token_hash: &[u8],
    ) -> StoreResult<Option<CardId>>;
    /// Revokes a merchant's token; `false` when there is no such token or it was revoked.
    async fn revoke_clover_token(
        &mut self,
        merchant: &MerchantId,
        token_hash: &[u8],
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Numbers a new hold as a Clover lock: the card's next `lock_id` (1, 2, ...). Called under
    /// the card's lock; a unique key on (card, lock_id) backs it.
    async fn insert_clover_lock(
        &mut self,
        merchant: &MerchantId,
        card: &CardId,
        hold: &HoldId,
        now: Timestamp,
    ) -> StoreResult<i64>;
    /// The `lock_id` of a hold placed through the Clover facade.
    async fn clover_lock_id(&mut self, hold: &HoldId) -> StoreResult<Option<i64>>;

    // ---- the Adyen facades ----

    /// Records that the reference an Adyen client was given (`api` is `terminal` for a
    /// Terminal API `POITransactionID`, `stored_value` for a `pspReference`) names `transaction`.
    async fn insert_adyen_reference(
        &mut self,
        merchant: &MerchantId,
        api: &str,
        reference: &str,
        transaction: &TransactionId,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// The transactions a reference names, in the order they were written. Not locked: the
    /// caller locks their cards next.
    async fn adyen_reference_transactions(
        &mut self,
        merchant: &MerchantId,
        api: &str,
        reference: &str,
    ) -> StoreResult<Vec<TransactionRecord>>;

    // ---- checkouts ----

    /// Replaces the answer of an idempotent request if it still has status `expected` (a
    /// placeholder written while the request's work went on); `false` if it does not.
    async fn seal_idempotency_record(
        &mut self,
        merchant: &MerchantId,
        scope: &str,
        key: &str,
        expected: u16,
        status: u16,
        body: &[u8],
    ) -> StoreResult<bool>;
    async fn insert_checkout(&mut self, row: &CheckoutRow) -> StoreResult<()>;
    /// The checkout, locked for the rest of the transaction.
    async fn checkout(&mut self, merchant: &MerchantId, id: &CheckoutId) -> StoreResult<Option<CheckoutRow>>;
    /// Writes `row` over the stored checkout if that is still at `row.version - 1` (else
    /// `Conflict`).
    async fn update_checkout(&mut self, row: &CheckoutRow) -> StoreResult<()>;
    /// The simulated processor's payment with this reference (its JSON state), locked.
    async fn simulated_payment(&mut self, reference: &str) -> StoreResult<Option<String>>;
    async fn put_simulated_payment(
        &mut self,
        reference: &str,
        state: &str,
        now: Timestamp,
    ) -> StoreResult<()>;

    // ---- webhooks (`sqlite/webhooks.rs`, `postgres/webhooks.rs`) ----

    async fn insert_webhook_endpoint(&mut self, row: &WebhookEndpointRow) -> StoreResult<()>;
    /// Disables an enabled endpoint of the merchant and fails its pending deliveries; `false`
    /// when there is no such enabled endpoint.
    async fn disable_webhook_endpoint(
        &mut self,
        merchant: &MerchantId,
        id: &giftd_domain::WebhookEndpointId,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// The merchant's enabled endpoints, oldest first: whom a new event fans out to.
    async fn enabled_webhook_endpoints(
        &mut self,
        merchant: &MerchantId,
    ) -> StoreResult<Vec<WebhookEndpointRow>>;
    /// Appends an event to the outbox.
    async fn insert_event(&mut self, event: &EventRow) -> StoreResult<()>;
    async fn insert_webhook_delivery(&mut self, delivery: &DeliveryRow) -> StoreResult<()>;
    /// Claims up to `limit` pending deliveries due by `now` whose endpoint is enabled and not one
    /// of `skip_endpoints`, soonest first, by moving their `next_attempt_at` to `lease_until`:
    /// until then no other dispatcher (in any process) takes them. Rows another transaction
    /// holds are skipped.
    async fn claim_webhook_deliveries(
        &mut self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
        skip_endpoints: &[String],
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Records an attempt and, if the delivery is still pending with the attempts its claim
    /// saw, applies `update` to it; answers whether it did.
    async fn record_webhook_attempt(
        &mut self,
        attempt: &AttemptRow,
        update: &DeliveryUpdate,
    ) -> StoreResult<bool>;
    /// Makes a delivery of the merchant whose endpoint is enabled pending and due at `now`
    /// again; `false` when there is no such delivery.
    async fn retry_webhook_delivery(
        &mut self,
        merchant: &MerchantId,
        id: &giftd_domain::WebhookDeliveryId,
        now: Timestamp,
    ) -> StoreResult<bool>;

    // ---- retention ----

    /// Deletes up to `limit` of the oldest idempotency records created before `before`;
    /// answers how many.
    async fn prune_idempotency_records(&mut self, before: Timestamp, limit: u32) -> StoreResult<u64>;
    /// Deletes up to `limit` of the oldest events created before `before` none of whose
    /// deliveries is pending, with their deliveries and those deliveries' attempts; answers how
    /// many events.
    async fn prune_events(&mut self, before: Timestamp, limit: u32) -> StoreResult<u64>;
    /// Deletes up to `limit` security-code attempt records that count for nothing any more:
    /// their window started before `window_before` (or never) and their lock, if any, ended by
    /// `unlocked_at`. Answers how many.
    async fn prune_code_attempts(
        &mut self,
        window_before: Timestamp,
        unlocked_at: Timestamp,
        limit: u32,
    ) -> StoreResult<u64>;

    // ---- batches decided in memory (`batch.rs`) ----

    /// The cards with these ids, whoever their merchant, locked for the rest of the
    /// transaction (in id order), each with the soonest expiry of its pending holds.
    async fn batch_cards(&mut self, ids: &[CardId]) -> StoreResult<Vec<(CardRecord, Option<Timestamp>)>>;
    /// The idempotency records of these keys (merchant, scope, key), whatever their age.
    async fn batch_idempotency_records(
        &mut self,
        keys: &[(MerchantId, String, String)],
    ) -> StoreResult<Vec<((MerchantId, String, String), IdempotencyRecord)>>;
    /// Writes what a batch's jobs decided in memory. All of it or, as an `Err`, a transaction
    /// the runner must give up: a card not as read or an idempotency key another process took
    /// first is `Conflict`.
    async fn write_batch(&mut self, writes: &BatchWrites) -> StoreResult<()>;
}

/// The storage that the service uses: reads straight from the database, writes through jobs.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Queues a job for the writer. The job's `finish` reports the outcome.
    async fn submit(&self, job: Box<dyn WriteJob>);

    /// Reachable and answering: for readiness checks.
    async fn ping(&self) -> StoreResult<()>;

    /// The API key with this keyed hash, revoked or expired ones too (the caller decides).
    async fn api_key_by_hash(&self, key_hash: &[u8]) -> StoreResult<Option<ApiKeyRecord>>;
    /// At most `limit` of the merchant's API keys, newest first.
    async fn api_keys(&self, merchant: &MerchantId, limit: u32) -> StoreResult<Vec<ApiKeyRecord>>;
    /// How many of the merchant's API keys still work at `now` (neither revoked nor expired).
    async fn working_api_key_count(&self, merchant: &MerchantId, now: Timestamp) -> StoreResult<i64>;

    async fn adjustment(
        &self,
        merchant: &MerchantId,
        id: &giftd_domain::AdjustmentId,
    ) -> StoreResult<Option<AdjustmentRecord>>;
    /// The merchant's adjustments, newest first, of one state and card when given.
    async fn adjustments(
        &self,
        merchant: &MerchantId,
        state: Option<giftd_domain::adjustment::AdjustmentState>,
        card: Option<&CardId>,
        page: &Page,
    ) -> StoreResult<Vec<AdjustmentRecord>>;
    /// The cardholder link whose token has this keyed hash, revoked or not (the caller decides).
    async fn cardholder_link_by_token_hash(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<CardholderLinkRecord>>;
    /// The card's links, newest first, revoked ones too (at most [`MAX_LINKS_LISTED`]).
    async fn cardholder_links(
        &self,
        merchant: &MerchantId,
        card: &CardId,
    ) -> StoreResult<Vec<CardholderLinkRecord>>;
    /// At most `limit` cards whose value expiry moves to breakage at `now`, longest expired
    /// first, each with its merchant.
    async fn cards_due_for_breakage(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(MerchantId, CardId)>>;
    /// Above how much (minor units, either way) the merchant's adjustments wait for approval.
    async fn adjustment_threshold(&self, merchant: &MerchantId) -> StoreResult<i64>;

    /// At most `page.limit` of the merchant's audit trail, newest first, after `page.cursor`.
    async fn audit_events(
        &self,
        merchant: &MerchantId,
        filter: &AuditFilter,
        page: &Page,
    ) -> StoreResult<Vec<AuditEventRow>>;

    /// The staff member with this email (lower case), in any merchant.
    async fn staff_by_email(&self, email: &str) -> StoreResult<Option<StaffRecord>>;
    /// The merchant's staff member.
    async fn staff_member(
        &self,
        merchant: &MerchantId,
        id: &giftd_domain::StaffId,
    ) -> StoreResult<Option<StaffRecord>>;
    /// At most `limit` of the merchant's staff, oldest first.
    async fn staff_members(&self, merchant: &MerchantId, limit: u32) -> StoreResult<Vec<StaffRecord>>;
    /// At most `limit` of the staff member's sessions still open at `now`, newest first.
    async fn open_staff_sessions(
        &self,
        staff: &giftd_domain::StaffId,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<StaffSessionRecord>>;
    /// The session whose token has this keyed hash, ended ones too (the caller decides).
    async fn staff_session_by_hash(&self, token_hash: &[u8]) -> StoreResult<Option<StaffSessionRecord>>;

    async fn program(&self, merchant: &MerchantId, id: &ProgramId) -> StoreResult<Option<Program>>;
    async fn programs(&self, merchant: &MerchantId, page: &Page) -> StoreResult<Vec<Program>>;

    /// The card with `held` counting only holds still pending at `now`.
    async fn card(
        &self,
        merchant: &MerchantId,
        id: &CardId,
        now: Timestamp,
    ) -> StoreResult<Option<CardRecord>>;
    async fn cards(
        &self,
        merchant: &MerchantId,
        filter: &CardFilter,
        page: &Page,
        now: Timestamp,
    ) -> StoreResult<Vec<CardRecord>>;

    async fn hold(&self, merchant: &MerchantId, id: &HoldId) -> StoreResult<Option<HoldRecord>>;
    async fn transaction(
        &self,
        merchant: &MerchantId,
        id: &TransactionId,
    ) -> StoreResult<Option<TransactionRecord>>;
    async fn card_transactions(
        &self,
        merchant: &MerchantId,
        card: &CardId,
        page: &Page,
    ) -> StoreResult<Vec<TransactionRecord>>;

    /// The wallet user of `merchant` with this public id (`UserId::public_id`).
    async fn wallet_user_by_public_id(
        &self,
        merchant: &MerchantId,
        public_id: &str,
    ) -> StoreResult<Option<UserId>>;
    /// A user's wallet, oldest card first (closed cards may still be named until the next write).
    async fn wallet_cards(&self, merchant: &MerchantId, user: &UserId) -> StoreResult<Vec<WalletCard>>;

    /// Pending holds past their expiry, soonest expiry first, for the sweeper.
    async fn due_holds(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<(MerchantId, HoldId)>>;

    /// The answer stored under an idempotency key, if it is younger than `not_before`.
    async fn stored_answer(
        &self,
        merchant: &MerchantId,
        scope: &str,
        key: &str,
        not_before: Timestamp,
    ) -> StoreResult<Option<IdempotencyRecord>>;
    /// At most `limit` stored answers whose keys start with `key_prefix`, newest first.
    async fn stored_answers_by_prefix(
        &self,
        merchant: &MerchantId,
        scope: &str,
        key_prefix: &str,
        not_before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(String, IdempotencyRecord)>>;

    /// Recomputes every cached balance from the ledger and checks every invariant.
    async fn verify(&self) -> StoreResult<VerifyReport>;

    async fn checkout(&self, merchant: &MerchantId, id: &CheckoutId) -> StoreResult<Option<CheckoutRow>>;
    /// A merchant's checkouts, newest first, after `before` (a cursor: the last id of the
    /// previous page).
    async fn checkouts(
        &self,
        merchant: &MerchantId,
        before: Option<&CheckoutId>,
        limit: u32,
    ) -> StoreResult<Vec<CheckoutRow>>;
    /// The merchant's checkout with a refund whose id starts with `refund_id_prefix` (giftd
    /// ids: letters, digits and `_`), the newest if several. It reads the merchant's
    /// checkouts' documents, so it costs a scan of them: for lookups by a refund id alone.
    async fn checkout_with_refund(
        &self,
        merchant: &MerchantId,
        refund_id_prefix: &str,
    ) -> StoreResult<Option<CheckoutRow>>;
    /// Checkouts with a step left to run whose lease has run out by `now`, oldest lease first.
    async fn open_checkouts(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<(MerchantId, CheckoutId)>>;

    // ---- reports (`reports.rs`): computed from the ledger, not from cached balances ----

    /// Outstanding liability per program and currency from postings made at or before
    /// `as_of`; one merchant's, or every merchant's with `None`. Programs without value left
    /// out.
    async fn liability(
        &self,
        merchant: Option<&MerchantId>,
        as_of: Timestamp,
    ) -> StoreResult<Vec<LiabilityLine>>;
    /// Transactions created in `[from, until)` counted and summed per UTC day, program,
    /// currency and type, oldest day first.
    async fn activity(
        &self,
        merchant: Option<&MerchantId>,
        from: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Vec<ActivityLine>>;
    /// Transactions created in `[from, until)` counted and summed per program, currency, type
    /// and the channel they came through.
    async fn channel_activity(
        &self,
        merchant: Option<&MerchantId>,
        from: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Vec<ChannelLine>>;
    /// Cards with a positive ledger balance at `as_of` whose last transaction at or before
    /// `as_of` is older than `quiet_since`, in card creation order; `page.cursor` is the last
    /// card id of the previous page.
    async fn dormant_cards(
        &self,
        merchant: Option<&MerchantId>,
        quiet_since: Timestamp,
        as_of: Timestamp,
        page: &Page,
    ) -> StoreResult<Vec<DormantCard>>;

    // ---- card stock (`reports.rs` types): the CLI's bulk writes ----

    /// Writes a whole batch of cards (and the issue entries of imported balances) in one
    /// transaction of its own, outside the job queue, with multi-row inserts: every card or
    /// none. A unique key taken (a number already issued, or the same import file) is
    /// `UniqueViolation` and nothing is kept.
    async fn insert_card_stock(&self, batch: &StockBatch) -> StoreResult<()>;
    /// The merchant owning a program (the CLI names programs without their merchant).
    async fn program_owner(&self, program: &ProgramId) -> StoreResult<Option<MerchantId>>;
    /// The batch written from a source with this digest, if any (a completed import).
    async fn card_stock_batch(
        &self,
        merchant: &MerchantId,
        source_digest: &[u8],
    ) -> StoreResult<Option<StockBatchRecord>>;
    /// Which of these fingerprints the merchant's cards already have.
    async fn existing_fingerprints(
        &self,
        merchant: &MerchantId,
        fingerprints: &[Vec<u8>],
    ) -> StoreResult<Vec<Vec<u8>>>;
    /// The merchant's card batches, newest first, with their files' states.
    async fn card_batches(&self, merchant: &MerchantId, page: &Page) -> StoreResult<Vec<CardBatchRow>>;
    /// One of the merchant's card batches.
    async fn card_batch(&self, merchant: &MerchantId, id: &str) -> StoreResult<Option<CardBatchRow>>;
    /// A batch's printer's file, encrypted: `None` when it has none, `Some(None)` once
    /// collected.
    async fn card_batch_file(&self, merchant: &MerchantId, id: &str) -> StoreResult<Option<Option<Vec<u8>>>>;
    /// Drops a file's content, if `sha256` is its digest and it is still there, with the
    /// request's audit row, in one transaction; whether it did (nothing is written if not).
    async fn collect_card_batch_file(
        &self,
        merchant: &MerchantId,
        id: &str,
        sha256: &[u8],
        at: Timestamp,
        audit: Option<&AuditEventRow>,
    ) -> StoreResult<bool>;

    /// Stops taking jobs, finishes the queued ones and closes connections.
    /// A Clover charge or refund of the merchant (`clover_reads.rs` says which transactions
    /// these are), with the facts its answer is made of.
    async fn clover_object(
        &self,
        merchant: &MerchantId,
        object: CloverObject,
        id: &TransactionId,
    ) -> StoreResult<Option<CloverLedgerRow>>;
    /// A page of the merchant's Clover charges or refunds.
    async fn clover_objects(
        &self,
        merchant: &MerchantId,
        object: CloverObject,
        query: &CloverListQuery,
    ) -> StoreResult<Vec<CloverLedgerRow>>;

    async fn close(&self);

    // ---- webhooks ----

    /// The merchant's endpoints, newest first, after the `cursor` endpoint id.
    async fn webhook_endpoints(
        &self,
        merchant: &MerchantId,
        page: &Page,
    ) -> StoreResult<Vec<WebhookEndpointRow>>;
    async fn webhook_endpoint(
        &self,
        merchant: &MerchantId,
        id: &giftd_domain::WebhookEndpointId,
    ) -> StoreResult<Option<WebhookEndpointRow>>;
    /// The merchant's events, newest first, after the `cursor` event id, of one type if asked.
    async fn events(
        &self,
        merchant: &MerchantId,
        event_type: Option<&str>,
        page: &Page,
    ) -> StoreResult<Vec<EventRow>>;
    async fn event(&self, merchant: &MerchantId, id: &giftd_domain::EventId)
    -> StoreResult<Option<EventRow>>;
    /// An event's deliveries, oldest first, and all their attempts, oldest first.
    async fn event_deliveries(
        &self,
        merchant: &MerchantId,
        event_id: &giftd_domain::EventId,
    ) -> StoreResult<(Vec<DeliveryRow>, Vec<AttemptRow>)>;

    // ---- operations: read at metrics scrape time ----

    /// Holds still pending at `now` (placed, and neither captured, released nor expired).
    async fn pending_hold_count(&self, now: Timestamp) -> StoreResult<i64>;
    /// Webhook deliveries not yet delivered nor failed (the dispatcher's backlog).
    async fn pending_webhook_delivery_count(&self) -> StoreResult<i64>;
    /// How busy the connections are.
    fn pool_stats(&self) -> PoolStats;
}
