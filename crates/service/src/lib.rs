//! giftd's use-cases: authenticate, read, and run commands through the store's writer. Every
//! front-end (the native API and the vendor facades: `clover` and `adyen` hold the Clover and
//! Adyen facades' use-cases) calls this crate and nothing below it. No HTTP here, and no SQL.

pub mod adjustments;
pub mod adyen;
pub mod api_keys;
pub mod audit;
mod auth;
pub mod cardholder;
pub mod checkout;
pub mod clock;
pub mod clover;
mod commands;
pub mod crypto;
mod error;
pub mod gr4vy;
pub mod ids;
mod job;
mod operation;
pub mod payments;
pub mod reports;
pub mod retention;
pub mod staff;
mod steps;
pub mod stock;
pub mod transfers;
pub mod views;
pub mod wallet;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use giftd_domain::{CardId, HoldId, MerchantId, Program, ProgramId, Timestamp, TransactionId};
use giftd_store::{Store, VerifyReport};
use tokio::sync::oneshot;
use views::{Card, CardFilter, HoldRecord, Page, TransactionRecord};

pub use clock::{Clock, ManualClock, SystemClock};
pub use commands::{Command, Outcome};
pub use crypto::{Keys, MasterKey};
pub use error::{Refusal, ServiceError};
pub use job::{IDEMPOTENCY_RETENTION_MILLIS, IdempotencyKey, Rendered, Renderer};
pub use operation::Operation;
pub use steps::{IssuedCard, PresentedCard};

use job::CommandJob;
use payments::{PaymentConnector, Simulator};

/// Holds the sweeper expires per round; the rest wait for the next round.
pub const SWEEP_BATCH: u32 = 500;
/// How often the sweeper looks for holds past their expiry. A due hold stops counting as held
/// at its expiry whether or not it has been swept; the sweep only writes its release.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A new merchant's credentials, shown once.
pub struct NewMerchant {
    pub merchant_id: MerchantId,
    pub api_key: String,
}

/// The application's core: every front-end calls it. Cloned for every request (by each layer
/// and handler that takes it as state), so it is one reference-counted pointer to what it holds.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Shared>,
}

/// What every clone of a [`Service`] shares.
#[derive(Clone)]
struct Shared {
    store: Arc<dyn Store>,
    keys: Arc<Keys>,
    api_keys: Arc<auth::ApiKeyCache>,
    clock: Arc<dyn Clock>,
    payments: Arc<dyn PaymentConnector>,
    checkout_lease_seconds: i64,
    idempotency_retention_millis: i64,
}

impl Service {
    /// A service whose checkouts charge their regular payments through the built-in
    /// [`Simulator`]; see [`Service::with_payment_connector`].
    pub fn new(store: Arc<dyn Store>, master_key: &MasterKey, clock: Arc<dyn Clock>) -> Self {
        let simulator = Simulator::new(Arc::clone(&store), Arc::clone(&clock));
        Self {
            inner: Arc::new(Shared {
                store,
                keys: Arc::new(Keys::derive(master_key)),
                api_keys: Arc::default(),
                clock,
                payments: Arc::new(simulator),
                checkout_lease_seconds: checkout::DEFAULT_LEASE_SECONDS,
                idempotency_retention_millis: IDEMPOTENCY_RETENTION_MILLIS,
            }),
        }
    }

    /// Charges checkouts' regular payments through `connector` (a real processor's).
    pub fn with_payment_connector(mut self, connector: Arc<dyn PaymentConnector>) -> Self {
        Arc::make_mut(&mut self.inner).payments = connector;
        self
    }

    /// How long the recovery loop leaves a checkout to the request driving it (at least 1 s;
    /// keep it above the processor's longest call).
    pub fn with_checkout_lease_seconds(mut self, seconds: i64) -> Self {
        Arc::make_mut(&mut self.inner).checkout_lease_seconds = seconds.max(1);
        self
    }

    /// How long an `Idempotency-Key` (of every front-end but Adyen's Terminal API, whose
    /// ServiceIDs count 48 hours) replays its first answer: at least a day; 7 days by default.
    pub fn with_idempotency_retention_days(mut self, days: i64) -> Self {
        Arc::make_mut(&mut self.inner).idempotency_retention_millis = days.clamp(1, 3650) * 24 * 3600 * 1000;
        self
    }

    pub(crate) fn idempotency_retention_millis(&self) -> i64 {
        self.inner.idempotency_retention_millis
    }

    pub(crate) fn checkout_lease_seconds(&self) -> i64 {
        self.inner.checkout_lease_seconds
    }

    /// The built-in simulated processor (whatever connector checkouts use), to inspect what
    /// it recorded.
    pub fn simulator(&self) -> Simulator {
        Simulator::new(Arc::clone(&self.inner.store), Arc::clone(&self.inner.clock))
    }

    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// The store under the service, for the CLI's maintenance commands and the tests. Front-ends
    /// use the service's own calls instead (the HTTP crate does not depend on the store).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Whether the database answers within `timeout` (`/readyz`).
    pub async fn ping(&self, timeout: Duration) -> Result<(), ServiceError> {
        match tokio::time::timeout(timeout, self.inner.store.ping()).await {
            Ok(pinged) => Ok(pinged?),
            Err(_) => Err(ServiceError::Unavailable(giftd_store::StoreError::Unavailable(
                format!("no answer within {timeout:?}"),
            ))),
        }
    }

    /// Holds pending now, for the operators' metrics.
    pub async fn pending_hold_count(&self) -> Result<i64, ServiceError> {
        Ok(self.inner.store.pending_hold_count(self.now()).await?)
    }

    /// Webhook deliveries not yet delivered or given up, for the operators' metrics.
    pub async fn pending_webhook_delivery_count(&self) -> Result<i64, ServiceError> {
        Ok(self.inner.store.pending_webhook_delivery_count().await?)
    }

    /// How busy the database connections are, for the operators' metrics.
    pub fn pool_stats(&self) -> views::PoolStats {
        self.inner.store.pool_stats()
    }

    /// Runs a command nobody waits for (the record of a key's or a session's use): a failure
    /// is logged as `what` was not recorded.
    pub(crate) fn execute_in_background<O: Operation>(
        &self,
        merchant: MerchantId,
        command: O,
        what: &'static str,
    ) {
        let service = self.clone();
        tokio::spawn(async move {
            let done = service
                .execute(
                    merchant,
                    command,
                    None,
                    Box::new(|_| Rendered {
                        status: 200,
                        body: Vec::new(),
                    }),
                )
                .await;
            if let Err(error) = done {
                tracing::warn!(%error, "{what} was not recorded");
            }
        });
    }

    /// Runs a command for `merchant` and answers with what `render` made of its result (or, for
    /// a retried idempotency key, with the first answer).
    pub async fn execute<O: Operation>(
        &self,
        merchant: MerchantId,
        command: O,
        idempotency: Option<IdempotencyKey>,
        render: Renderer<O::Outcome>,
    ) -> Result<Rendered, ServiceError> {
        let (reply, answer) = oneshot::channel();
        let retention_millis = idempotency
            .as_ref()
            .map_or(self.inner.idempotency_retention_millis, |key| {
                key.retention_millis(self.inner.idempotency_retention_millis)
            });
        let job = CommandJob {
            keys: Arc::clone(&self.inner.keys),
            clock: Arc::clone(&self.inner.clock),
            audit: audit::draft_for(&merchant),
            audited: false,
            merchant,
            channel: audit::current_channel(),
            command,
            idempotency,
            retention_millis,
            render,
            answer: None,
            reply: Some(reply),
        };
        self.inner.store.submit(Box::new(job)).await;
        answer
            .await
            .unwrap_or_else(|_| Err(giftd_store::StoreError::Closed.into()))
    }

    /// The answer stored under an idempotency key within its scope's window, as it was sent:
    /// for a front-end that lets a client ask what became of a request it lost (the Terminal
    /// API's TransactionStatus).
    pub async fn stored_answer(
        &self,
        merchant: &MerchantId,
        scope: &'static str,
        key: &str,
    ) -> Result<Option<Rendered>, ServiceError> {
        let key = IdempotencyKey {
            scope,
            key: key.to_owned(),
            request_hash: Vec::new(),
        };
        let record = self
            .inner
            .store
            .stored_answer(merchant, scope, &key.key, self.stored_answer_window(&key))
            .await?;
        record
            .map(|record| job::open_record(&self.inner.keys, merchant, &key, record))
            .transpose()
    }

    /// At most `limit` stored answers whose keys start with `key_prefix`, newest first, with
    /// their keys.
    pub async fn stored_answers_by_prefix(
        &self,
        merchant: &MerchantId,
        scope: &'static str,
        key_prefix: &str,
        limit: u32,
    ) -> Result<Vec<(String, Rendered)>, ServiceError> {
        let window = self.stored_answer_window(&IdempotencyKey {
            scope,
            key: String::new(),
            request_hash: Vec::new(),
        });
        let records = self
            .inner
            .store
            .stored_answers_by_prefix(merchant, scope, key_prefix, window, limit)
            .await?;
        records
            .into_iter()
            .map(|(key, record)| {
                let key = IdempotencyKey {
                    scope,
                    key,
                    request_hash: Vec::new(),
                };
                let rendered = job::open_record(&self.inner.keys, merchant, &key, record)?;
                Ok((key.key, rendered))
            })
            .collect()
    }

    /// The oldest time a stored answer under `key` still counts.
    pub(crate) fn stored_answer_window(&self, key: &IdempotencyKey) -> Timestamp {
        let retention = key.retention_millis(self.inner.idempotency_retention_millis);
        Timestamp::from_unix_millis(self.now().unix_millis() - retention)
    }

    /// Creates a merchant and its first API key. The key is returned once and stored hashed.
    pub async fn create_merchant(&self, name: &str) -> Result<NewMerchant, ServiceError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(ServiceError::Invalid {
                param: "name",
                message: "a merchant name must be 1 to 200 characters".into(),
            });
        }
        let merchant_id = ids::merchant();
        let first = api_keys::NewApiKey {
            name: "default".into(),
            scope: giftd_domain::Scope::Full,
            expires_at: None,
        };
        let (key, api_key_hash, secret) = self.fresh_key(&merchant_id, &first);
        let api_key = secret.expose().to_owned();
        let command = Command::CreateMerchant {
            name: name.to_owned(),
            api_key: key,
            api_key_hash,
        };
        let rendered = self
            .execute(
                merchant_id.clone(),
                command,
                None,
                Box::new(|result| Rendered {
                    status: if result.is_ok() { 201 } else { 400 },
                    body: Vec::new(),
                }),
            )
            .await?;
        if rendered.status != 201 {
            return Err(giftd_store::StoreError::Corrupt("merchant creation was refused".into()).into());
        }
        Ok(NewMerchant { merchant_id, api_key })
    }

    pub async fn program(&self, merchant: &MerchantId, id: &ProgramId) -> Result<Program, ServiceError> {
        self.inner
            .store
            .program(merchant, id)
            .await?
            .ok_or(ServiceError::NotFound("program"))
    }

    pub async fn programs(&self, merchant: &MerchantId, page: &Page) -> Result<Vec<Program>, ServiceError> {
        Ok(self.inner.store.programs(merchant, page).await?)
    }

    pub async fn card(&self, merchant: &MerchantId, id: &CardId) -> Result<Card, ServiceError> {
        self.inner
            .store
            .card(merchant, id, self.now())
            .await?
            .map(Card::from)
            .ok_or(ServiceError::NotFound("card"))
    }

    pub async fn cards(
        &self,
        merchant: &MerchantId,
        filter: &CardFilter,
        page: &Page,
    ) -> Result<Vec<Card>, ServiceError> {
        let cards = self.inner.store.cards(merchant, filter, page, self.now()).await?;
        Ok(cards.into_iter().map(Card::from).collect())
    }

    /// The hold as of now: a pending hold past its expiry reads as expired.
    pub async fn hold(&self, merchant: &MerchantId, id: &HoldId) -> Result<HoldRecord, ServiceError> {
        let mut hold = self
            .inner
            .store
            .hold(merchant, id)
            .await?
            .ok_or(ServiceError::NotFound("hold"))?;
        hold.snapshot.state = hold.snapshot.effective_state(self.now());
        Ok(hold)
    }

    pub async fn transaction(
        &self,
        merchant: &MerchantId,
        id: &TransactionId,
    ) -> Result<TransactionRecord, ServiceError> {
        self.inner
            .store
            .transaction(merchant, id)
            .await?
            .ok_or(ServiceError::NotFound("transaction"))
    }

    /// A card's transactions, newest first. A card of another merchant is not found.
    pub async fn card_transactions(
        &self,
        merchant: &MerchantId,
        card: &CardId,
        page: &Page,
    ) -> Result<Vec<TransactionRecord>, ServiceError> {
        self.card(merchant, card).await?;
        Ok(self.inner.store.card_transactions(merchant, card, page).await?)
    }

    /// A user's wallet as listed: each card with how the user holds it, oldest first, leaving
    /// out cards without value, expired or closed. A user without cards has an empty wallet.
    pub async fn wallet(
        &self,
        merchant: &MerchantId,
        user: &giftd_domain::wallet::UserId,
    ) -> Result<Vec<(giftd_domain::wallet::WalletCard, Card)>, ServiceError> {
        let now = self.now();
        let mut listed = Vec::new();
        for entry in self.inner.store.wallet_cards(merchant, user).await? {
            if let Some(card) = self.inner.store.card(merchant, &entry.card_id, now).await?
                && giftd_domain::wallet::listed(&card.snapshot, now)
            {
                listed.push((entry, card.into()));
            }
        }
        Ok(listed)
    }

    pub async fn verify(&self) -> Result<VerifyReport, ServiceError> {
        Ok(self.inner.store.verify().await?)
    }

    /// Writes the release of every hold past its expiry (up to [`SWEEP_BATCH`]); returns how
    /// many holds it looked at.
    pub async fn expire_due_holds(&self) -> Result<usize, ServiceError> {
        let due = self.inner.store.due_holds(self.now(), SWEEP_BATCH).await?;
        self.sweep(due, |hold_id| Command::ExpireHold { hold_id }).await
    }

    /// Runs the sweeper's command for each item due, submitted together so that the writer
    /// takes them in few transactions: how many there were.
    async fn sweep<T>(
        &self,
        due: Vec<(MerchantId, T)>,
        command: impl Fn(T) -> Command,
    ) -> Result<usize, ServiceError> {
        let count = due.len();
        let sweeps = due.into_iter().map(|(merchant, item)| {
            self.execute(
                merchant,
                command(item),
                None,
                Box::new(|_| Rendered {
                    status: 200,
                    body: Vec::new(),
                }),
            )
        });
        for result in futures::future::join_all(sweeps).await {
            result?;
        }
        Ok(count)
    }

    /// Moves the value left on expired cards of programs that take breakage to their breakage
    /// accounts, at most [`SWEEP_BATCH`] cards a call: how many it looked at.
    pub async fn expire_due_cards(&self) -> Result<usize, ServiceError> {
        let due = self
            .inner
            .store
            .cards_due_for_breakage(self.now(), SWEEP_BATCH)
            .await?;
        self.sweep(due, |card_id| Command::ExpireCard { card_id }).await
    }

    /// Runs the sweepers (due holds released, expired value moved to breakage) until
    /// `shutdown` resolves.
    pub async fn run_hold_sweeper(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut interval = tokio::time::interval(SWEEP_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = interval.tick() => {
                    if let Err(error) = self.expire_due_holds().await {
                        tracing::error!(error = %error, "hold sweep failed");
                    }
                    if let Err(error) = self.expire_due_cards().await {
                        tracing::error!(error = %error, "breakage sweep failed");
                    }
                }
            }
        }
    }
}
