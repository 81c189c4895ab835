//! Adjustments with four eyes: a person (or a `full` API key) asks to put value on or take it
//! off a card, for a reason (`giftd_domain::adjustment`). At or below the merchant's threshold
//! it applies at once, as an `adjustment` transaction against the program's adjustment account;
//! above it, it waits for a second person with the right role, who approves (it applies then,
//! decided on the card as it is then) or rejects it (it moves nothing). The one who asked never
//! approves their own; a request not decided within 7 days expires. An approval and a rejection
//! at once are decided one after the other on the locked request: exactly one wins.

use async_trait::async_trait;
use giftd_domain::adjustment::{self, AdjustmentReason, AdjustmentState};
use giftd_domain::{AdjustmentId, CardId, MerchantId};
use giftd_store::{AdjustmentRecord, Page, StoreResult, TransactionRecord, WriteTx};

use crate::audit::Actor;
use crate::error::{Failure, Refusal, ServiceError};
use crate::operation::{Context, Operation};
use crate::staff::StaffRefusal;
use crate::webhooks::Before;
use crate::{IdempotencyKey, Rendered, Renderer, Service, steps};

/// Largest threshold a merchant may set, in minor units.
pub const MAX_APPROVAL_THRESHOLD: i64 = 1_000_000_000;

#[derive(Debug, Clone)]
pub enum AdjustmentCommand {
    /// A new request; `apply` when it is within the threshold.
    Request {
        adjustment: Box<AdjustmentRecord>,
        apply: bool,
    },
    /// A second person's decision on a pending request.
    Decide {
        id: AdjustmentId,
        approve: bool,
        by: Actor,
    },
    SetThreshold {
        threshold: i64,
    },
}

#[derive(Debug, Clone)]
pub enum AdjustmentOutcome {
    Adjustment {
        adjustment: Box<AdjustmentRecord>,
        /// Its transaction, when this command applied it.
        transaction: Option<Box<TransactionRecord>>,
    },
    Threshold(i64),
}

#[async_trait]
impl Operation for AdjustmentCommand {
    type Outcome = AdjustmentOutcome;

    fn affinity(&self) -> Option<&str> {
        match self {
            Self::Request { adjustment, .. } => Some(adjustment.card_id.as_str()),
            Self::Decide { .. } | Self::SetThreshold { .. } => None,
        }
    }

    fn audit_objects(&self, outcome: &AdjustmentOutcome) -> Vec<String> {
        match outcome {
            AdjustmentOutcome::Adjustment {
                adjustment,
                transaction,
            } => [adjustment.id.to_string(), adjustment.card_id.to_string()]
                .into_iter()
                .chain(transaction.iter().map(|t| t.id.to_string()))
                .collect(),
            AdjustmentOutcome::Threshold(_) => Vec::new(),
        }
    }

    async fn execute(&self, tx: &mut dyn WriteTx, cx: &Context<'_>) -> Result<AdjustmentOutcome, Failure> {
        match self {
            Self::Request { adjustment, apply } => {
                let mut adjustment = (**adjustment).clone();
                let transaction = if *apply {
                    let transaction = apply_to_card(tx, cx, &adjustment.card_id, adjustment.amount).await?;
                    adjustment.state = AdjustmentState::Applied;
                    adjustment.transaction_id = Some(transaction.id.clone());
                    Some(transaction)
                } else {
                    // The card must exist and could take it now; it is decided again on approval.
                    let card = steps::load_card(tx, cx, &adjustment.card_id).await?;
                    let program = steps::program_of(tx, cx, &card).await?;
                    adjustment::adjust(&program, &card, adjustment.amount, cx.now)?;
                    None
                };
                tx.insert_adjustment(&adjustment).await?;
                Ok(AdjustmentOutcome::Adjustment {
                    adjustment: Box::new(adjustment),
                    transaction: transaction.map(Box::new),
                })
            }
            Self::Decide { id, approve, by } => {
                let mut adjustment = tx
                    .adjustment(cx.merchant, id)
                    .await?
                    .ok_or(Refusal::NotFound("adjustment"))?;
                if adjustment.state != AdjustmentState::Pending {
                    return Err(Refusal::Invalid {
                        param: "id",
                        message: format!(
                            "this adjustment is {}: only a pending one is approved or rejected",
                            adjustment.state.as_str()
                        ),
                    }
                    .into());
                }
                adjustment.decided_by_type = Some(by.kind().to_owned());
                adjustment.decided_by_id = by.id();
                adjustment.decided_at = Some(cx.now);
                let transaction = if cx.now >= adjustment.expires_at {
                    // Too late either way: it moves nothing, and says so.
                    adjustment.state = AdjustmentState::Expired;
                    adjustment.decided_by_type = None;
                    adjustment.decided_by_id = None;
                    None
                } else if *approve {
                    let transaction = apply_to_card(tx, cx, &adjustment.card_id, adjustment.amount).await?;
                    adjustment.state = AdjustmentState::Applied;
                    adjustment.transaction_id = Some(transaction.id.clone());
                    Some(transaction)
                } else {
                    adjustment.state = AdjustmentState::Rejected;
                    None
                };
                tx.update_adjustment(&adjustment).await?;
                Ok(AdjustmentOutcome::Adjustment {
                    adjustment: Box::new(adjustment),
                    transaction: transaction.map(Box::new),
                })
            }
            Self::SetThreshold { threshold } => {
                tx.set_adjustment_threshold(cx.merchant, *threshold).await?;
                Ok(AdjustmentOutcome::Threshold(*threshold))
            }
        }
    }

    /// `card.adjusted` (and `card.low_balance` when it crossed a threshold) for an adjustment
    /// applied by this command.
    async fn events(
        &self,
        tx: &mut dyn WriteTx,
        cx: &Context<'_>,
        outcome: &AdjustmentOutcome,
        _: Before,
    ) -> StoreResult<()> {
        match outcome {
            AdjustmentOutcome::Adjustment {
                transaction: Some(transaction),
                ..
            } => crate::webhooks::transactions(tx, cx, std::slice::from_ref(&**transaction)).await,
            AdjustmentOutcome::Adjustment {
                transaction: None, ..
            }
            | AdjustmentOutcome::Threshold(_) => Ok(()),
        }
    }
}

/// Decides the adjustment on the card as it is now and appends its transaction.
async fn apply_to_card(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    card_id: &CardId,
    amount: i64,
) -> Result<TransactionRecord, Failure> {
    let card = steps::load_card(tx, cx, card_id).await?;
    let program = steps::program_of(tx, cx, &card).await?;
    let decision = adjustment::adjust(&program, &card, amount, cx.now)?;
    steps::append(tx, cx, &card, &decision, None, None, None).await
}

/// What `POST /v1/cards/{id}/adjustments` asks.
#[derive(Debug, Clone)]
pub struct NewAdjustment {
    pub card_id: CardId,
    /// Signed minor units: positive puts value on.
    pub amount: i64,
    pub reason: AdjustmentReason,
    pub note: Option<String>,
}

impl Service {
    /// Asks for an adjustment as the current request's caller: applied at once within the
    /// merchant's threshold, pending above it.
    pub async fn request_adjustment(
        &self,
        merchant: MerchantId,
        new: NewAdjustment,
        idempotency: Option<IdempotencyKey>,
        render: Renderer<AdjustmentOutcome>,
    ) -> Result<Rendered, ServiceError> {
        if new.amount == 0 {
            return Err(ServiceError::Invalid {
                param: "amount",
                message: "amount must be a non-zero integer of minor units (negative takes value off)".into(),
            });
        }
        if new
            .note
            .as_ref()
            .is_some_and(|note| note.chars().count() > adjustment::MAX_ADJUSTMENT_NOTE_CHARS)
        {
            return Err(ServiceError::Invalid {
                param: "note",
                message: format!(
                    "note has at most {} characters",
                    adjustment::MAX_ADJUSTMENT_NOTE_CHARS
                ),
            });
        }
        let by = caller(&merchant)?;
        let threshold = self.store().adjustment_threshold(&merchant).await?;
        let now = self.now();
        let record = AdjustmentRecord {
            id: crate::ids::adjustment(),
            merchant_id: merchant.clone(),
            card_id: new.card_id,
            amount: new.amount,
            reason: new.reason,
            note: new.note.filter(|note| !note.trim().is_empty()),
            state: AdjustmentState::Pending,
            requested_by_type: by.kind().to_owned(),
            requested_by_id: by.id(),
            requested_at: now,
            expires_at: now.plus_millis(adjustment::ADJUSTMENT_REQUEST_MILLIS),
            decided_by_type: None,
            decided_by_id: None,
            decided_at: None,
            transaction_id: None,
        };
        let command = AdjustmentCommand::Request {
            adjustment: Box::new(record),
            apply: !adjustment::needs_approval(new.amount, threshold),
        };
        self.execute(merchant, command, idempotency, render).await
    }

    /// Approves (`approve`) or rejects a pending adjustment as the current request's caller,
    /// who must not be the one who asked.
    pub async fn decide_adjustment(
        &self,
        merchant: MerchantId,
        id: AdjustmentId,
        approve: bool,
        idempotency: Option<IdempotencyKey>,
        render: Renderer<AdjustmentOutcome>,
    ) -> Result<Rendered, ServiceError> {
        let by = caller(&merchant)?;
        let asked = self
            .store()
            .adjustment(&merchant, &id)
            .await?
            .ok_or(ServiceError::NotFound("adjustment"))?;
        // Who asked never changes: checked before the job, once.
        if asked.requested_by_type == by.kind() && asked.requested_by_id == by.id() {
            return Err(StaffRefusal::OwnAdjustment.into());
        }
        let command = AdjustmentCommand::Decide { id, approve, by };
        self.execute(merchant, command, idempotency, render).await
    }

    pub async fn adjustment(
        &self,
        merchant: &MerchantId,
        id: &AdjustmentId,
    ) -> Result<AdjustmentRecord, ServiceError> {
        self.store()
            .adjustment(merchant, id)
            .await?
            .ok_or(ServiceError::NotFound("adjustment"))
    }

    pub async fn adjustments(
        &self,
        merchant: &MerchantId,
        state: Option<AdjustmentState>,
        card: Option<&CardId>,
        page: &Page,
    ) -> Result<Vec<AdjustmentRecord>, ServiceError> {
        Ok(self.store().adjustments(merchant, state, card, page).await?)
    }

    pub async fn adjustment_threshold(&self, merchant: &MerchantId) -> Result<i64, ServiceError> {
        Ok(self.store().adjustment_threshold(merchant).await?)
    }

    pub async fn set_adjustment_threshold(
        &self,
        merchant: MerchantId,
        threshold: i64,
        render: Renderer<AdjustmentOutcome>,
    ) -> Result<Rendered, ServiceError> {
        if !(0..=MAX_APPROVAL_THRESHOLD).contains(&threshold) {
            return Err(ServiceError::Invalid {
                param: "adjustment_approval_threshold",
                message: format!("adjustment_approval_threshold must be 0 to {MAX_APPROVAL_THRESHOLD}"),
            });
        }
        self.execute(
            merchant,
            AdjustmentCommand::SetThreshold { threshold },
            None,
            render,
        )
        .await
    }
}

/// Who the current request comes from: an adjustment always names who asked and who decided.
fn caller(merchant: &MerchantId) -> Result<Actor, ServiceError> {
    crate::audit::current_caller()
        .filter(|(of, _)| of == merchant)
        .map(|(_, actor)| actor)
        .ok_or(ServiceError::Unauthorized)
}
