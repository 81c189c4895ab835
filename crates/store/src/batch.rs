//! Batches decided in memory and written set-wise: the write path of the common operations.
//!
//! A job that names what it reads ([`WriteJob::read_set`]: one card, perhaps its program, and
//! its idempotency key) need not talk to the database while it decides. The runner reads the
//! whole batch's cards (locked), programs, idempotency records and webhook endpoints at once
//! ([`read`]), runs each job's own code against that state in memory ([`MemoryTx`], in arrival
//! order, so several jobs on one card fold in sequence), and writes what they all did set-wise
//! ([`WriteTx::write_batch`]: on PostgreSQL one statement for every table, on SQLite one
//! per table). No savepoints: a job's in-memory writes are
//! simply dropped when it refuses or falls back.
//!
//! A job asks for something the batch did not read (a hold, an original transaction, a card
//! with holds due to expire, anything written beyond the card's ledger and the outbox) and its
//! [`MemoryTx`] answers [`StoreError::NotInMemory`]: the job's in-memory effects are undone and
//! it runs on the per-job path (its savepoint, its statements) after the batch's writes, in the
//! same transaction. From then on its card and its idempotency key are no longer known in
//! memory, so later jobs on either fall back too and see the database as it then is.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use giftd_domain::ledger::Posting;
use giftd_domain::lockout::Attempts;
use giftd_domain::operations::{CardEffect, CardSnapshot, HoldSnapshot, HoldState};
use giftd_domain::wallet::{UserId, WalletCard};
use giftd_domain::{
    CardId, CardState, CheckoutId, CloseReason, HoldId, MerchantId, Program, ProgramId, Timestamp,
    TransactionId, TransactionType,
};

use crate::telemetry::Written;
use crate::{
    AttemptRow, CardRecord, CheckoutRow, ClaimedDelivery, DeliveryRow, DeliveryUpdate, EventRow, HoldRecord,
    IdempotencyRecord, StoreError, StoreResult, TransactionRecord, WebhookEndpointRow, WriteJob, WriteTx,
};

/// What a job reads before deciding, so that a batch can read it for all its jobs at once.
#[derive(Debug, Clone)]
pub struct ReadSet {
    pub merchant: MerchantId,
    /// The one card the job reads and changes.
    pub card: CardId,
    /// Whether the job also reads the card's program (loads and activations check its rules).
    pub program: bool,
    /// The job's idempotency key: its scope and the key.
    pub idempotency: Option<(String, String)>,
}

/// A card as the batch read it (locked), and as the batch's jobs have changed it so far.
#[derive(Debug, Clone)]
pub(crate) struct BatchCard {
    pub record: CardRecord,
    /// The card as read: the guard of the batch's update.
    pub read: CardSnapshot,
    /// The soonest expiry among its pending holds: a job that would have to expire holds due
    /// by its time falls back to the per-job path.
    pub next_hold_expiry: Option<Timestamp>,
    /// When a job of the batch last changed it; `None` while unchanged.
    pub updated_at: Option<Timestamp>,
}

type IdempotencySlot = (MerchantId, String, String);

/// What a batch read before deciding. A key that is absent was not read; `None` means read and
/// not there.
#[derive(Debug, Default)]
pub(crate) struct BatchState {
    cards: HashMap<CardId, Option<BatchCard>>,
    programs: HashMap<ProgramId, Option<(MerchantId, Program)>>,
    idempotency: HashMap<IdempotencySlot, Option<IdempotencyRecord>>,
    endpoints: HashMap<MerchantId, Vec<WebhookEndpointRow>>,
    /// Cards and keys of jobs that fell back: no longer known in memory, since those jobs run
    /// after the batch's writes. What earlier jobs did to such a card is still written.
    forgotten_cards: HashSet<CardId>,
    forgotten_keys: HashSet<IdempotencySlot>,
}

impl BatchState {
    /// The card as the batch has it, unless it was not read or is forgotten.
    fn card(&self, id: &CardId) -> Option<&Option<BatchCard>> {
        if self.forgotten_cards.contains(id) {
            return None;
        }
        self.cards.get(id)
    }

    fn idempotency(&self, slot: &IdempotencySlot) -> Option<&Option<IdempotencyRecord>> {
        if self.forgotten_keys.contains(slot) {
            return None;
        }
        self.idempotency.get(slot)
    }
}

/// A card's change by a whole batch: guarded by what was read, set to what the jobs left.
#[derive(Debug, Clone)]
pub struct CardWrite {
    pub read: CardSnapshot,
    pub now: CardSnapshot,
    pub closed_reason: Option<CloseReason>,
    pub updated_at: Timestamp,
}

impl CardWrite {
    /// The same change as one effect on the card as read, for a backend that writes it row by row.
    pub fn effect(&self) -> CardEffect {
        CardEffect {
            balance_delta: self.now.balance - self.read.balance,
            held_delta: self.now.held - self.read.held,
            new_state: Some(self.now.state),
            new_expires_at: Some(self.now.expires_at),
            close_reason: self.closed_reason,
        }
    }
}

/// An idempotency record a batch stores.
#[derive(Debug, Clone)]
pub struct IdempotencyWrite {
    pub merchant: MerchantId,
    pub scope: String,
    pub key: String,
    pub record: IdempotencyRecord,
    pub replace_older_than: Timestamp,
    /// A record for the key was there, past its window: the write replaces it. Otherwise the
    /// key is new to this batch, and a record some other process wrote meanwhile is a conflict.
    pub replaces: bool,
}

/// A hold a batch places.
#[derive(Debug, Clone)]
pub struct HoldWrite {
    pub merchant: MerchantId,
    pub hold: HoldSnapshot,
    pub transaction_id: TransactionId,
    pub created_at: Timestamp,
}

/// Everything a batch's in-memory jobs wrote, in the order they wrote it.
#[derive(Debug, Default)]
pub struct BatchWrites {
    pub cards: Vec<CardWrite>,
    /// Each transaction with its journal entry's id.
    pub transactions: Vec<(TransactionRecord, TransactionId)>,
    /// Each posting with its transaction's and its entry's id.
    pub postings: Vec<(TransactionId, TransactionId, Posting)>,
    pub holds: Vec<HoldWrite>,
    pub events: Vec<EventRow>,
    pub deliveries: Vec<DeliveryRow>,
    pub idempotency: Vec<IdempotencyWrite>,
    pub audit: Vec<crate::AuditEventRow>,
    pub(crate) written: Written,
}

/// The lengths of a [`BatchWrites`]' lists: where a job or a savepoint began.
#[derive(Debug, Clone, Copy)]
struct Mark {
    transactions: usize,
    postings: usize,
    holds: usize,
    events: usize,
    deliveries: usize,
    idempotency: usize,
    audit: usize,
    written: usize,
}

impl BatchWrites {
    fn mark(&self) -> Mark {
        Mark {
            transactions: self.transactions.len(),
            postings: self.postings.len(),
            holds: self.holds.len(),
            events: self.events.len(),
            deliveries: self.deliveries.len(),
            idempotency: self.idempotency.len(),
            audit: self.audit.len(),
            written: self.written.len(),
        }
    }

    fn truncate(&mut self, mark: Mark) {
        self.transactions.truncate(mark.transactions);
        self.postings.truncate(mark.postings);
        self.holds.truncate(mark.holds);
        self.events.truncate(mark.events);
        self.deliveries.truncate(mark.deliveries);
        self.idempotency.truncate(mark.idempotency);
        self.audit.truncate(mark.audit);
        self.written.truncate(mark.written);
    }

    /// Whether there is anything to write.
    pub fn is_empty(&self) -> bool {
        self.cards.is_empty()
            && self.transactions.is_empty()
            && self.holds.is_empty()
            && self.events.is_empty()
            && self.idempotency.is_empty()
            && self.audit.is_empty()
    }

    /// The ledger transactions written, to count once the batch committed.
    pub(crate) fn take_written(&mut self) -> Written {
        std::mem::take(&mut self.written)
    }
}

/// Decides in memory every job of the batch that names its reads, in order, and writes what
/// they did set-wise. Answers which jobs are done (the others must run on the per-job path, in
/// this transaction, after these writes) and the ledger transactions written, to count after
/// the commit. An `Err` leaves the transaction to be given up.
pub(crate) async fn run(
    tx: &mut dyn WriteTx,
    jobs: &mut [&mut dyn WriteJob],
) -> StoreResult<(Vec<bool>, Written)> {
    let sets: Vec<Option<ReadSet>> = jobs.iter().map(|job| job.read_set()).collect();
    let mut done = vec![false; jobs.len()];
    let wanted: Vec<ReadSet> = sets.iter().flatten().cloned().collect();
    if wanted.is_empty() {
        return Ok((done, Written::default()));
    }
    let mut state = read(tx, &wanted).await?;
    let mut writes = BatchWrites::default();
    for ((job, set), done) in jobs.iter_mut().zip(&sets).zip(done.iter_mut()) {
        if let Some(set) = set {
            *done = run_in_memory(&mut state, &mut writes, &mut **job, set).await;
        }
    }
    writes.cards = card_writes(&state);
    if !writes.is_empty() {
        tx.write_batch(&writes).await?;
    }
    Ok((done, writes.take_written()))
}

/// Reads what the jobs of a batch declared: their cards (locked, with their soonest pending
/// hold expiry), the programs asked for, the idempotency records of their keys (whatever their
/// age) and the webhook endpoints of their merchants.
async fn read(tx: &mut dyn WriteTx, sets: &[ReadSet]) -> StoreResult<BatchState> {
    let mut state = BatchState::default();
    let mut card_ids: Vec<CardId> = sets.iter().map(|s| s.card.clone()).collect();
    card_ids.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    card_ids.dedup();
    for (record, next_hold_expiry) in tx.batch_cards(&card_ids).await? {
        let read = record.snapshot.clone();
        state.cards.insert(
            read.id.clone(),
            Some(BatchCard {
                record,
                read,
                next_hold_expiry,
                updated_at: None,
            }),
        );
    }
    for id in card_ids {
        state.cards.entry(id).or_insert(None);
    }
    for set in sets.iter().filter(|s| s.program) {
        let Some(Some(card)) = state.cards.get(&set.card) else {
            continue;
        };
        let (merchant, program_id) = (card.record.merchant_id.clone(), card.read.program_id.clone());
        if state.programs.contains_key(&program_id) {
            continue;
        }
        let program = tx.program(&merchant, &program_id).await?;
        state.programs.insert(program_id, program.map(|p| (merchant, p)));
    }
    let keys: Vec<IdempotencySlot> = sets
        .iter()
        .filter_map(|s| {
            s.idempotency
                .as_ref()
                .map(|(scope, key)| (s.merchant.clone(), scope.clone(), key.clone()))
        })
        .collect();
    if !keys.is_empty() {
        for (slot, record) in tx.batch_idempotency_records(&keys).await? {
            state.idempotency.insert(slot, Some(record));
        }
        for slot in keys {
            state.idempotency.entry(slot).or_insert(None);
        }
    }
    for set in sets {
        if !state.endpoints.contains_key(&set.merchant) {
            let endpoints = tx.enabled_webhook_endpoints(&set.merchant).await?;
            state.endpoints.insert(set.merchant.clone(), endpoints);
        }
    }
    Ok(state)
}

/// Runs one job of the batch in memory. `true`: it is decided, and what it wrote is in
/// `writes`; `false`: it must run on the per-job path (nothing of it stays in memory, and its
/// card and key are forgotten so that later jobs on them fall back too).
async fn run_in_memory(
    state: &mut BatchState,
    writes: &mut BatchWrites,
    job: &mut dyn WriteJob,
    set: &ReadSet,
) -> bool {
    let slot = set
        .idempotency
        .as_ref()
        .map(|(scope, key)| (set.merchant.clone(), scope.clone(), key.clone()));
    let known =
        state.card(&set.card).is_some() && slot.as_ref().is_none_or(|slot| state.idempotency(slot).is_some());
    if known {
        let start = writes.mark();
        let mut tx = MemoryTx {
            state: &mut *state,
            writes: &mut *writes,
            undo: Vec::new(),
            savepoints: Vec::new(),
        };
        match job.run(&mut tx).await {
            Ok(()) => return true,
            Err(error) => {
                if !matches!(error, StoreError::NotInMemory(_)) {
                    tracing::debug!(error = %error, "a job failed in memory; running it on its own");
                }
                tx.undo_to(0);
                writes.truncate(start);
            }
        }
    }
    state.forgotten_cards.insert(set.card.clone());
    if let Some(slot) = slot {
        state.forgotten_keys.insert(slot);
    }
    false
}

/// The cards the batch's jobs changed, as one write each.
fn card_writes(state: &BatchState) -> Vec<CardWrite> {
    let mut cards: Vec<CardWrite> = state
        .cards
        .values()
        .flatten()
        .filter_map(|card| {
            card.updated_at.map(|updated_at| CardWrite {
                read: card.read.clone(),
                now: card.record.snapshot.clone(),
                closed_reason: card.record.closed_reason,
                updated_at,
            })
        })
        .collect();
    // Rows are updated in one order in every batch, so two batches never wait on each other
    // crosswise.
    cards.sort_unstable_by(|a, b| a.read.id.as_str().cmp(b.read.id.as_str()));
    cards
}

/// What a savepoint or a rollback in memory must restore.
enum Undo {
    Card(CardId, Option<Box<BatchCard>>),
    Idempotency(IdempotencySlot, Option<IdempotencyRecord>),
}

/// [`WriteTx`] against a batch's state in memory: reads answer from what the batch read (as
/// the batch's earlier jobs left it); writes change that state and are collected for the
/// batch's set-wise write. Whatever the batch did not read is [`StoreError::NotInMemory`].
pub(crate) struct MemoryTx<'s> {
    state: &'s mut BatchState,
    writes: &'s mut BatchWrites,
    /// What this job changed in `state`, to undo it if the job falls back.
    undo: Vec<Undo>,
    savepoints: Vec<(&'static str, usize, Mark)>,
}

fn not_in_memory<T>(what: &'static str) -> StoreResult<T> {
    Err(StoreError::NotInMemory(what))
}

impl MemoryTx<'_> {
    fn undo_to(&mut self, length: usize) {
        while self.undo.len() > length {
            match self.undo.pop() {
                Some(Undo::Card(id, card)) => {
                    self.state.cards.insert(id, card.map(|card| *card));
                }
                Some(Undo::Idempotency(slot, record)) => {
                    self.state.idempotency.insert(slot, record);
                }
                None => break,
            }
        }
    }

    /// The card as the batch has it, to change; its previous state goes to the undo log.
    fn card_mut(&mut self, id: &CardId) -> StoreResult<&mut BatchCard> {
        let Some(Some(card)) = self.state.card(id) else {
            return not_in_memory("card");
        };
        self.undo
            .push(Undo::Card(id.clone(), Some(Box::new(card.clone()))));
        match self.state.cards.get_mut(id) {
            Some(Some(card)) => Ok(card),
            _ => not_in_memory("card"),
        }
    }
}

#[async_trait]
impl WriteTx for MemoryTx<'_> {
    async fn savepoint(&mut self, name: &'static str) -> StoreResult<()> {
        self.savepoints.push((name, self.undo.len(), self.writes.mark()));
        Ok(())
    }

    async fn release_savepoint(&mut self, name: &'static str) -> StoreResult<()> {
        if let Some(position) = self.savepoints.iter().rposition(|(n, _, _)| *n == name) {
            self.savepoints.truncate(position);
        }
        Ok(())
    }

    async fn rollback_to_savepoint(&mut self, name: &'static str) -> StoreResult<()> {
        if let Some(position) = self.savepoints.iter().rposition(|(n, _, _)| *n == name) {
            let (_, undo, mark) = self.savepoints[position];
            self.undo_to(undo);
            self.writes.truncate(mark);
            self.savepoints.truncate(position);
        }
        Ok(())
    }

    async fn idempotency_record(
        &mut self,
        merchant: &MerchantId,
        scope: &str,
        key: &str,
        not_before: Timestamp,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        let slot = (merchant.clone(), scope.to_owned(), key.to_owned());
        match self.state.idempotency(&slot) {
            None => not_in_memory("idempotency record"),
            Some(record) => Ok(record.as_ref().filter(|r| r.created_at >= not_before).cloned()),
        }
    }

    async fn put_idempotency_record(
        &mut self,
        merchant: &MerchantId,
        scope: &str,
        key: &str,
        record: &IdempotencyRecord,
        replace_older_than: Timestamp,
    ) -> StoreResult<()> {
        let slot = (merchant.clone(), scope.to_owned(), key.to_owned());
        let Some(existing) = self.state.idempotency(&slot) else {
            return not_in_memory("idempotency record");
        };
        if existing
            .as_ref()
            .is_some_and(|r| r.created_at >= replace_older_than)
        {
            return Err(StoreError::Conflict("idempotency key"));
        }
        let replaces = existing.is_some();
        self.undo.push(Undo::Idempotency(slot.clone(), existing.clone()));
        self.state.idempotency.insert(slot, Some(record.clone()));
        self.writes.idempotency.push(IdempotencyWrite {
            merchant: merchant.clone(),
            scope: scope.to_owned(),
            key: key.to_owned(),
            record: record.clone(),
            replace_older_than,
            replaces,
        });
        Ok(())
    }

    async fn insert_merchant(&mut self, _: &MerchantId, _: &str, _: Timestamp) -> StoreResult<()> {
        not_in_memory("merchant")
    }

    async fn insert_api_key(&mut self, _: &crate::ApiKeyRecord, _: &[u8]) -> StoreResult<()> {
        not_in_memory("API key")
    }

    async fn api_key(
        &mut self,
        _: &MerchantId,
        _: &giftd_domain::ApiKeyId,
    ) -> StoreResult<Option<crate::ApiKeyRecord>> {
        not_in_memory("API key")
    }

    async fn end_api_key(&mut self, _: &crate::ApiKeyRecord) -> StoreResult<()> {
        not_in_memory("API key")
    }

    async fn touch_api_key(&mut self, _: &giftd_domain::ApiKeyId, _: Timestamp) -> StoreResult<()> {
        not_in_memory("API key")
    }

    async fn insert_staff(&mut self, _: &crate::StaffRecord) -> StoreResult<()> {
        not_in_memory("staff member")
    }

    async fn staff(
        &mut self,
        _: &MerchantId,
        _: &giftd_domain::StaffId,
    ) -> StoreResult<Option<crate::StaffRecord>> {
        not_in_memory("staff member")
    }

    async fn update_staff(&mut self, _: &crate::StaffRecord) -> StoreResult<()> {
        not_in_memory("staff member")
    }

    async fn active_owner_count(&mut self, _: &MerchantId) -> StoreResult<i64> {
        not_in_memory("staff member")
    }

    async fn insert_staff_session(&mut self, _: &crate::StaffSessionRecord, _: &[u8]) -> StoreResult<()> {
        not_in_memory("staff session")
    }

    async fn end_staff_sessions(
        &mut self,
        _: &giftd_domain::StaffId,
        _: Option<&giftd_domain::StaffSessionId>,
        _: Option<&giftd_domain::StaffSessionId>,
        _: Timestamp,
    ) -> StoreResult<()> {
        not_in_memory("staff session")
    }

    async fn touch_staff_session(
        &mut self,
        _: &giftd_domain::StaffSessionId,
        _: Timestamp,
    ) -> StoreResult<()> {
        not_in_memory("staff session")
    }

    async fn insert_program(&mut self, _: &MerchantId, _: &Program) -> StoreResult<()> {
        not_in_memory("program")
    }

    async fn update_program(&mut self, _: &MerchantId, _: &Program) -> StoreResult<()> {
        not_in_memory("program")
    }

    async fn program(&mut self, merchant: &MerchantId, id: &ProgramId) -> StoreResult<Option<Program>> {
        match self.state.programs.get(id) {
            None => not_in_memory("program"),
            Some(program) => Ok(program
                .as_ref()
                .filter(|(owner, _)| owner == merchant)
                .map(|(_, program)| program.clone())),
        }
    }

    async fn card(&mut self, merchant: &MerchantId, id: &CardId) -> StoreResult<Option<CardRecord>> {
        match self.state.card(id) {
            None => not_in_memory("card"),
            Some(card) => Ok(card
                .as_ref()
                .filter(|c| &c.record.merchant_id == merchant)
                .map(|c| c.record.clone())),
        }
    }

    async fn card_by_fingerprint(&mut self, _: &MerchantId, _: &[u8]) -> StoreResult<Option<CardRecord>> {
        not_in_memory("card by number")
    }

    async fn insert_card(&mut self, _: &CardRecord) -> StoreResult<()> {
        not_in_memory("new card")
    }

    async fn set_card_state(
        &mut self,
        _: &CardId,
        _: CardState,
        _: CardState,
        _: Timestamp,
    ) -> StoreResult<()> {
        not_in_memory("card state")
    }

    async fn update_card(
        &mut self,
        card: &CardSnapshot,
        effect: &CardEffect,
        now: Timestamp,
    ) -> StoreResult<()> {
        let current = self.card_mut(&card.id)?;
        let snapshot = &mut current.record.snapshot;
        let balance = snapshot.balance.checked_add(effect.balance_delta);
        let held = snapshot.held.checked_add(effect.held_delta);
        // The same guard as the database's: the card is as the decision saw it, and ends with
        // no negative available or held value.
        let guarded = snapshot.balance == card.balance
            && snapshot.held == card.held
            && matches!((balance, held), (Some(b), Some(h)) if h >= 0 && b - h >= 0);
        if !guarded {
            return Err(StoreError::Conflict("card balance"));
        }
        snapshot.apply(effect);
        if effect.close_reason.is_some() {
            current.record.closed_reason = effect.close_reason;
        }
        current.updated_at = Some(now);
        Ok(())
    }

    async fn insert_transaction(
        &mut self,
        record: &TransactionRecord,
        entry_id: &TransactionId,
    ) -> StoreResult<()> {
        self.writes.transactions.push((record.clone(), entry_id.clone()));
        self.writes.written.transaction(record.transaction_type);
        Ok(())
    }

    async fn insert_posting(
        &mut self,
        transaction_id: &TransactionId,
        entry_id: &TransactionId,
        posting: &Posting,
    ) -> StoreResult<()> {
        self.writes
            .postings
            .push((transaction_id.clone(), entry_id.clone(), posting.clone()));
        Ok(())
    }

    async fn insert_hold(
        &mut self,
        merchant: &MerchantId,
        hold: &HoldSnapshot,
        transaction_id: &TransactionId,
        now: Timestamp,
    ) -> StoreResult<()> {
        let card = self.card_mut(&hold.card_id)?;
        card.next_hold_expiry = Some(
            card.next_hold_expiry
                .map_or(hold.expires_at, |t| t.min(hold.expires_at)),
        );
        self.writes.holds.push(HoldWrite {
            merchant: merchant.clone(),
            hold: hold.clone(),
            transaction_id: transaction_id.clone(),
            created_at: now,
        });
        Ok(())
    }

    async fn hold(&mut self, _: &MerchantId, _: &HoldId) -> StoreResult<Option<HoldRecord>> {
        not_in_memory("hold")
    }

    async fn finish_hold(&mut self, _: &HoldId, _: HoldState, _: i64, _: Timestamp) -> StoreResult<()> {
        not_in_memory("hold")
    }

    async fn pending_holds(
        &mut self,
        card: &CardId,
        due_at: Option<Timestamp>,
    ) -> StoreResult<Vec<HoldSnapshot>> {
        let Some(Some(card)) = self.state.card(card) else {
            return not_in_memory("card");
        };
        match (card.next_hold_expiry, due_at) {
            (None, _) => Ok(Vec::new()),
            (Some(next), Some(due_at)) if next > due_at => Ok(Vec::new()),
            (Some(_), _) => not_in_memory("pending holds"),
        }
    }

    async fn transaction(
        &mut self,
        _: &MerchantId,
        _: &TransactionId,
    ) -> StoreResult<Option<TransactionRecord>> {
        not_in_memory("transaction")
    }

    async fn reversal_totals(&mut self, _: &TransactionId) -> StoreResult<(i64, bool)> {
        not_in_memory("reversals")
    }

    async fn attempts(&mut self, _: &MerchantId, _: &[u8]) -> StoreResult<Attempts> {
        not_in_memory("code attempts")
    }

    async fn put_attempts(&mut self, _: &MerchantId, _: &[u8], _: &Attempts) -> StoreResult<()> {
        not_in_memory("code attempts")
    }

    async fn programs_by_promotion_code(
        &mut self,
        _: &MerchantId,
        _: &str,
        _: u32,
    ) -> StoreResult<Vec<Program>> {
        not_in_memory("programs")
    }

    async fn transaction_of_hold(
        &mut self,
        _: &MerchantId,
        _: &CardId,
        _: &HoldId,
        _: TransactionType,
    ) -> StoreResult<Option<TransactionRecord>> {
        not_in_memory("transaction of a hold")
    }

    async fn lock_wallet(
        &mut self,
        _: &MerchantId,
        _: &UserId,
        _: Timestamp,
    ) -> StoreResult<Vec<WalletCard>> {
        not_in_memory("wallet")
    }

    async fn put_wallet_card(&mut self, _: &MerchantId, _: &WalletCard) -> StoreResult<()> {
        not_in_memory("wallet")
    }

    async fn remove_wallet_card(
        &mut self,
        _: &MerchantId,
        _: Option<&UserId>,
        _: &CardId,
    ) -> StoreResult<u64> {
        not_in_memory("wallet")
    }

    async fn prefer_wallet_card(&mut self, _: &MerchantId, _: &UserId, _: &CardId) -> StoreResult<bool> {
        not_in_memory("wallet")
    }

    async fn insert_clover_token(
        &mut self,
        _: &MerchantId,
        _: &[u8],
        _: &CardId,
        _: Timestamp,
    ) -> StoreResult<()> {
        not_in_memory("Clover token")
    }

    async fn clover_token_card(&mut self, _: &MerchantId, _: &[u8]) -> StoreResult<Option<CardId>> {
        not_in_memory("Clover token")
    }

    async fn revoke_clover_token(&mut self, _: &MerchantId, _: &[u8], _: Timestamp) -> StoreResult<bool> {
        not_in_memory("Clover token")
    }

    async fn insert_clover_lock(
        &mut self,
        _: &MerchantId,
        _: &CardId,
        _: &HoldId,
        _: Timestamp,
    ) -> StoreResult<i64> {
        not_in_memory("Clover lock")
    }

    async fn clover_lock_id(&mut self, _: &HoldId) -> StoreResult<Option<i64>> {
        not_in_memory("Clover lock")
    }

    async fn insert_adyen_reference(
        &mut self,
        _: &MerchantId,
        _: &str,
        _: &str,
        _: &TransactionId,
        _: Timestamp,
    ) -> StoreResult<()> {
        not_in_memory("Adyen reference")
    }

    async fn adyen_reference_transactions(
        &mut self,
        _: &MerchantId,
        _: &str,
        _: &str,
    ) -> StoreResult<Vec<TransactionRecord>> {
        not_in_memory("Adyen reference")
    }

    async fn seal_idempotency_record(
        &mut self,
        _: &MerchantId,
        _: &str,
        _: &str,
        _: u16,
        _: u16,
        _: &[u8],
    ) -> StoreResult<bool> {
        not_in_memory("idempotency record")
    }

    async fn insert_checkout(&mut self, _: &CheckoutRow) -> StoreResult<()> {
        not_in_memory("checkout")
    }

    async fn checkout(&mut self, _: &MerchantId, _: &CheckoutId) -> StoreResult<Option<CheckoutRow>> {
        not_in_memory("checkout")
    }

    async fn update_checkout(&mut self, _: &CheckoutRow) -> StoreResult<()> {
        not_in_memory("checkout")
    }

    async fn simulated_payment(&mut self, _: &str) -> StoreResult<Option<String>> {
        not_in_memory("simulated payment")
    }

    async fn put_simulated_payment(&mut self, _: &str, _: &str, _: Timestamp) -> StoreResult<()> {
        not_in_memory("simulated payment")
    }

    async fn insert_webhook_endpoint(&mut self, _: &WebhookEndpointRow) -> StoreResult<()> {
        not_in_memory("webhook endpoint")
    }

    async fn disable_webhook_endpoint(
        &mut self,
        _: &MerchantId,
        _: &giftd_domain::WebhookEndpointId,
        _: Timestamp,
    ) -> StoreResult<bool> {
        not_in_memory("webhook endpoint")
    }

    async fn enabled_webhook_endpoints(
        &mut self,
        merchant: &MerchantId,
    ) -> StoreResult<Vec<WebhookEndpointRow>> {
        match self.state.endpoints.get(merchant) {
            None => not_in_memory("webhook endpoints"),
            Some(endpoints) => Ok(endpoints.clone()),
        }
    }

    async fn insert_event(&mut self, event: &EventRow) -> StoreResult<()> {
        self.writes.events.push(event.clone());
        Ok(())
    }

    async fn insert_audit_event(&mut self, event: &crate::AuditEventRow) -> StoreResult<()> {
        self.writes.audit.push(event.clone());
        Ok(())
    }

    async fn insert_adjustment(&mut self, _: &crate::AdjustmentRecord) -> StoreResult<()> {
        not_in_memory("adjustment")
    }

    async fn adjustment(
        &mut self,
        _: &MerchantId,
        _: &giftd_domain::AdjustmentId,
    ) -> StoreResult<Option<crate::AdjustmentRecord>> {
        not_in_memory("adjustment")
    }

    async fn update_adjustment(&mut self, _: &crate::AdjustmentRecord) -> StoreResult<()> {
        not_in_memory("adjustment")
    }

    async fn set_adjustment_threshold(&mut self, _: &MerchantId, _: i64) -> StoreResult<()> {
        not_in_memory("adjustment threshold")
    }

    async fn insert_cardholder_link(&mut self, _: &crate::CardholderLinkRecord) -> StoreResult<()> {
        not_in_memory("cardholder link")
    }

    async fn cardholder_links(
        &mut self,
        _: &MerchantId,
        _: &CardId,
    ) -> StoreResult<Vec<crate::CardholderLinkRecord>> {
        not_in_memory("cardholder link")
    }

    async fn revoke_cardholder_link(
        &mut self,
        _: &MerchantId,
        _: &CardId,
        _: &giftd_domain::CardholderLinkId,
        _: Timestamp,
    ) -> StoreResult<bool> {
        not_in_memory("cardholder link")
    }

    async fn insert_webhook_delivery(&mut self, delivery: &DeliveryRow) -> StoreResult<()> {
        self.writes.deliveries.push(delivery.clone());
        Ok(())
    }

    async fn claim_webhook_deliveries(
        &mut self,
        _: Timestamp,
        _: Timestamp,
        _: u32,
        _: &[String],
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        not_in_memory("webhook deliveries")
    }

    async fn record_webhook_attempt(&mut self, _: &AttemptRow, _: &DeliveryUpdate) -> StoreResult<bool> {
        not_in_memory("webhook attempt")
    }

    async fn retry_webhook_delivery(
        &mut self,
        _: &MerchantId,
        _: &giftd_domain::WebhookDeliveryId,
        _: Timestamp,
    ) -> StoreResult<bool> {
        not_in_memory("webhook delivery")
    }

    async fn prune_idempotency_records(&mut self, _: Timestamp, _: u32) -> StoreResult<u64> {
        not_in_memory("pruning")
    }

    async fn prune_events(&mut self, _: Timestamp, _: u32) -> StoreResult<u64> {
        not_in_memory("pruning")
    }

    async fn prune_code_attempts(&mut self, _: Timestamp, _: Timestamp, _: u32) -> StoreResult<u64> {
        not_in_memory("pruning")
    }

    async fn batch_cards(&mut self, _: &[CardId]) -> StoreResult<Vec<(CardRecord, Option<Timestamp>)>> {
        not_in_memory("cards")
    }

    async fn batch_idempotency_records(
        &mut self,
        _: &[(MerchantId, String, String)],
    ) -> StoreResult<Vec<((MerchantId, String, String), IdempotencyRecord)>> {
        not_in_memory("idempotency records")
    }

    async fn write_batch(&mut self, _: &BatchWrites) -> StoreResult<()> {
        not_in_memory("a batch")
    }
}
