//! The one shape of a write: an operation family is a command type with its own outcome type
//! that implements [`Operation`]. A job (`job.rs`) runs one command inside the store's writer
//! transaction: the idempotency check, the command under its own savepoint, its webhook events
//! (the outbox) after it, and the answer its front-end renders from the family's own outcome.
//!
//! The families: the native card operations (`commands.rs`), the Clover and Adyen facades'
//! (`clover.rs`, `adyen.rs`), transfers and merges (`transfers.rs`), wallets (`wallet.rs`),
//! checkouts (`checkout.rs`) and webhook endpoints (`webhooks.rs`). The steps they are made of
//! (load a card, check its secret, append a decision) are in `steps.rs`. A new operation adds
//! a variant to its family's command and outcome, its arm in the family's `execute`, and the
//! front-end that renders it: three files.

use async_trait::async_trait;
use giftd_domain::{CardId, Channel, MerchantId, Timestamp};
use giftd_store::{StoreResult, WriteTx};

use crate::crypto::Keys;
use crate::error::{Failure, Refusal};
use crate::webhooks::Before;

/// What every command runs with: the keys, the merchant it acts for, and one "now" for the
/// whole command.
pub struct Context<'a> {
    pub(crate) keys: &'a Keys,
    pub(crate) merchant: &'a MerchantId,
    pub(crate) now: Timestamp,
    /// The front-end the command came through, recorded on the transactions it writes.
    pub(crate) channel: Channel,
}

/// A family of commands that run in the writer's transaction. Implemented only inside this
/// crate (its methods name crate-private types); front-ends pick a family's command, hand it
/// to [`crate::Service::execute`] with a renderer of the family's [`Operation::Outcome`], and
/// never see another family's results.
#[async_trait]
pub trait Operation: std::fmt::Debug + Send + Sync + 'static {
    /// What a command of the family produced, for its front-end to render. One exists per
    /// request and lives only until rendered.
    type Outcome: Send + Sync + 'static;

    /// The object the command mostly locks, as the store's writer affinity: jobs on one card
    /// (or hold, or transaction) then run in one writer's transactions and never wait for
    /// each other's row locks. Commands across several cards or none name nothing.
    fn affinity(&self) -> Option<&str> {
        None
    }

    /// The card a command reads and changes, and whether it reads that card's program too,
    /// when that is all it reads: such a command may be decided in memory with others of its
    /// batch and written with them set-wise (the store's `batch.rs`). Should it need more once
    /// it runs (a card with holds to expire, say), it falls back to the per-job path by itself.
    fn batch_reads(&self) -> Option<(&CardId, bool)> {
        None
    }

    /// Reads, before the command runs, what its events need to tell what changed.
    async fn before(&self, _tx: &mut dyn WriteTx, _cx: &Context<'_>) -> StoreResult<Before> {
        Ok(Before::default())
    }

    /// Loads what the command touches, lets the domain decide, and appends the outcome.
    /// Only the transaction, no other IO, so that transactions stay short.
    async fn execute(&self, tx: &mut dyn WriteTx, cx: &Context<'_>) -> Result<Self::Outcome, Failure>;

    /// The ids a command that succeeded made or changed beyond those its request's path names
    /// (a new card, the transaction of a redemption), for its audit row.
    fn audit_objects(&self, _outcome: &Self::Outcome) -> Vec<String> {
        Vec::new()
    }

    /// Writes the webhook events of a command that succeeded, in its transaction.
    async fn events(
        &self,
        tx: &mut dyn WriteTx,
        cx: &Context<'_>,
        outcome: &Self::Outcome,
        before: Before,
    ) -> StoreResult<()>;

    /// What a refused command leaves behind although its own writes are rolled back (a wrong
    /// security code is counted).
    async fn after_refusal(
        &self,
        _tx: &mut dyn WriteTx,
        _cx: &Context<'_>,
        _refusal: &Refusal,
    ) -> StoreResult<()> {
        Ok(())
    }
}
