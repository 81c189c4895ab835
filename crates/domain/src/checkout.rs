//! Checkouts: one payment split across up to ten gift cards and, optionally, one regular
//! payment method (a card charged through a payment processor).
//!
//! This module holds a checkout's state and the pure rules of how it moves: which step comes
//! next ([`Checkout::next_step`]) and what each step's result does to the state. The service
//! runs the steps (ledger jobs and processor calls) and persists the state after each one, so
//! a giftd that stops between two steps resumes, or compensates, from the last persisted state.
//!
//! The rules, from the split-tender contract:
//! - the regular payment is authorized (intent `authorize`, or any checkout held for review)
//!   or captured (intent `capture`) first; gift cards are used only after it succeeded;
//! - the gift card legs commit or fail together (one database transaction): with intent
//!   `authorize` they are held, with `capture` redeemed;
//! - if any gift card fails, the regular payment is reverted: an authorization is voided, a
//!   capture refunded;
//! - `intent_outcome` becomes `succeeded` or `failed` once, and never changes afterwards;
//! - a checkout held in fraud review that is then rejected has its regular payment reverted,
//!   but its gift card legs stay as they are: by the time of the review the buyer may no
//!   longer have the card at hand.

use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::ids::{CardId, CheckoutId, HoldId, TransactionId};
use crate::money::Currency;
use crate::time::Timestamp;

/// Most gift cards one checkout may use.
pub const MAX_GIFT_CARDS: usize = 10;
/// A failed void or refund at the processor is tried again after this many seconds, doubled
/// per attempt, at most [`MAX_RETRY_SECONDS`].
pub const FIRST_RETRY_SECONDS: i64 = 1;
pub const MAX_RETRY_SECONDS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    Authorize,
    Capture,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentOutcome {
    Pending,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Being created: the payment or the gift cards are not done yet.
    Processing,
    /// Held in fraud review: the payment is authorized and the gift cards used; a review
    /// decision moves it on.
    InReview,
    /// Intent `authorize` met: the payment is authorized and the gift cards held.
    Authorized,
    /// A capture was asked for and is under way.
    Capturing,
    Captured,
    /// A void was asked for and is under way (a failed processor void is retried).
    Voiding,
    Voided,
    /// The intent was not met, or a capture failed: what was taken is given back (see each
    /// tender), except gift cards after a rejected review.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::InReview => "in_review",
            Self::Authorized => "authorized",
            Self::Capturing => "capturing",
            Self::Captured => "captured",
            Self::Voiding => "voiding",
            Self::Voided => "voided",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Review {
    None,
    Pending,
    Approved,
    Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GiftCardStatus {
    /// Not used yet.
    Pending,
    /// A hold is placed for the amount (intent `authorize`).
    Held,
    /// The amount is redeemed (directly, or by capturing the hold).
    Redeemed,
    /// The hold was released (void, or a failed capture).
    Released,
    /// Not used: this card, or another card of the checkout, was refused.
    Failed,
    /// Not used because the regular payment failed first.
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GiftCardTender {
    /// `gcr_...`: this leg of this checkout.
    pub id: String,
    pub card_id: CardId,
    pub last4: String,
    pub amount: i64,
    pub status: GiftCardStatus,
    pub hold_id: Option<HoldId>,
    /// The redemption, or the capture of the hold: what a refund reverses.
    pub transaction_id: Option<TransactionId>,
    pub refunded_amount: i64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Not sent to the processor yet, or sent without an answer recorded.
    Pending,
    Authorized,
    Captured,
    Declined,
    /// A void (or a reversal of an unknown outcome) is owed to the processor.
    VoidPending,
    Voided,
    /// Fully refunded.
    Refunded,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentTender {
    /// `pay_...`: also the reference giftd gives the processor, so that every call about
    /// this payment (authorize, capture, void, refund) is idempotent there.
    pub id: String,
    /// Which connector charged it (`simulator`, ...).
    pub connector: String,
    pub amount: i64,
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub status: PaymentStatus,
    /// The processor's own id for the payment, once it answered.
    pub processor_reference: Option<String>,
    pub refunded_amount: i64,
    /// Asked of the processor but not yet confirmed by it.
    pub refund_pending: i64,
    /// What a partial capture left of the authorization (released by the processor with the
    /// capture): `amount` is then what was captured, and `amount + uncaptured` what was
    /// authorized. Checkouts stored before partial captures existed have none.
    #[serde(default)]
    pub uncaptured: i64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// Failed attempts of the current void or refund, and when to try again.
    pub retries: u32,
    pub retry_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// A gift card tender's or the payment tender's id.
    pub tender_id: String,
    pub amount: i64,
    /// The refund transaction on the gift card (none for the payment).
    pub transaction_id: Option<TransactionId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// `chr_...`
    pub id: String,
    pub amount: i64,
    pub allocations: Vec<Allocation>,
    pub reference: Option<String>,
    pub created_at: Timestamp,
}

/// Why the last thing asked of a checkout did not happen (a capture the processor refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    pub id: CheckoutId,
    pub amount: i64,
    pub currency: Currency,
    pub intent: Intent,
    pub reference: Option<String>,
    /// The merchant's customer the checkout is for (a wallet user's id; Gr4vy's buyer), when
    /// one was named. Checkouts stored before it existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer: Option<String>,
    pub status: Status,
    pub intent_outcome: IntentOutcome,
    pub review: Review,
    pub gift_cards: Vec<GiftCardTender>,
    pub payment: Option<PaymentTender>,
    pub refunds: Vec<Refund>,
    /// Why the checkout failed, or why the last capture was refused.
    pub problem: Option<Problem>,
    /// Seconds a gift card hold lives (intent `authorize`).
    pub hold_seconds: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What has to happen next to a checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Authorize (or, intent `capture` outside review, authorize and capture) the payment.
    SendPayment,
    /// Hold or redeem every gift card, all or none.
    UseGiftCards,
    CapturePayment,
    /// Capture every gift card hold, all or none.
    CaptureGiftCards,
    ReleaseGiftCards,
    VoidPayment,
    RefundPayment,
}

/// What the processor said to a payment request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentResult {
    Approved {
        processor_reference: String,
    },
    Declined {
        code: String,
        message: String,
    },
    /// No answer (a timeout, a lost connection): the payment may or may not exist.
    Unknown {
        message: String,
    },
}

/// The error code a gift card leg records when the ledger refuses it.
pub fn gift_card_error_code(error: &DomainError) -> &'static str {
    match error {
        DomainError::InsufficientFunds { .. } => "insufficient_funds",
        DomainError::CardNotActive { .. } | DomainError::InvalidState { .. } => "card_not_active",
        DomainError::CardExpired => "card_expired",
        DomainError::CurrencyMismatch { .. } => "currency_mismatch",
        DomainError::CardLocked { .. } => "card_locked",
        DomainError::InvalidCard => "invalid_card",
        DomainError::HoldNotPending { .. } => "hold_not_pending",
        DomainError::InvalidAmount { .. } | DomainError::LimitExceeded { .. } => "invalid_amount",
        _ => "refused",
    }
}

fn refuse(reason: impl Into<String>) -> DomainError {
    DomainError::CheckoutState {
        reason: reason.into(),
    }
}

impl Checkout {
    /// Whether this checkout made `transaction` (a gift card leg's redemption, hold or capture,
    /// or a refund of one) or holds `hold`: what only the checkout may reverse, capture or
    /// release, so that its tenders keep telling the truth. A failed checkout leaves the gift
    /// cards still redeemed or held (after a rejected review) to the merchant, as CHECKOUTS.md
    /// says, so it no longer owns those.
    pub fn owns(&self, transaction: &TransactionId, hold: Option<&HoldId>) -> bool {
        let left_to_the_merchant = |gift: &GiftCardTender| {
            self.status == Status::Failed
                && matches!(gift.status, GiftCardStatus::Redeemed | GiftCardStatus::Held)
        };
        self.gift_cards.iter().any(|gift| {
            !left_to_the_merchant(gift)
                && (gift.transaction_id.as_ref() == Some(transaction)
                    || hold.is_some_and(|h| gift.hold_id.as_ref() == Some(h)))
        }) || self
            .refunds
            .iter()
            .flat_map(|refund| &refund.allocations)
            .any(|allocation| allocation.transaction_id.as_ref() == Some(transaction))
    }

    /// More than one instrument pays for it.
    pub fn multi_tender(&self) -> bool {
        self.gift_cards.len() + usize::from(self.payment.is_some()) > 1
    }

    pub fn gift_card_total(&self) -> i64 {
        self.gift_cards.iter().map(|g| g.amount).sum()
    }

    /// What the checkout has taken and not given back: captured or redeemed value minus refunds.
    pub fn refundable(&self) -> i64 {
        let gift: i64 = self
            .gift_cards
            .iter()
            .filter(|g| g.status == GiftCardStatus::Redeemed)
            .map(|g| g.amount - g.refunded_amount)
            .sum();
        gift + self.payment.as_ref().map_or(0, PaymentTender::refundable)
    }

    /// True while a driver has work to do now or later (a retry that is not due yet).
    pub fn is_open(&self) -> bool {
        self.next_step().is_some()
    }

    /// The next step, whether or not it is due (see [`Checkout::due`]).
    pub fn next_step(&self) -> Option<Step> {
        let any = |status| self.gift_cards.iter().any(|g| g.status == status);
        // Holds are released first: a processor void that has to wait must not keep them.
        if self.status == Status::Voiding && any(GiftCardStatus::Held) {
            return Some(Step::ReleaseGiftCards);
        }
        if let Some(payment) = &self.payment {
            if payment.status == PaymentStatus::VoidPending {
                return Some(Step::VoidPayment);
            }
            if payment.refund_pending > 0 {
                return Some(Step::RefundPayment);
            }
        }
        let payment_status = self.payment.as_ref().map(|p| p.status);
        match self.status {
            Status::Processing if payment_status == Some(PaymentStatus::Pending) => Some(Step::SendPayment),
            Status::Processing if any(GiftCardStatus::Pending) => Some(Step::UseGiftCards),
            Status::Capturing if payment_status == Some(PaymentStatus::Authorized) => {
                Some(Step::CapturePayment)
            }
            Status::Capturing if any(GiftCardStatus::Held) => Some(Step::CaptureGiftCards),
            _ => None,
        }
    }

    /// Whether the next step may run at `now` (a retried processor call waits its turn).
    pub fn due(&self, now: Timestamp) -> bool {
        match (self.next_step(), &self.payment) {
            (Some(Step::CapturePayment | Step::VoidPayment | Step::RefundPayment), Some(payment)) => {
                payment.retry_at.is_none_or(|at| at <= now)
            }
            (Some(_), _) => true,
            (None, _) => false,
        }
    }

    fn touch(&mut self, now: Timestamp) {
        self.updated_at = now;
    }

    fn reach(&mut self, outcome: IntentOutcome) {
        // Final once reached, whatever happens later.
        if self.intent_outcome == IntentOutcome::Pending {
            self.intent_outcome = outcome;
        }
    }

    fn fail(&mut self, code: &str, message: impl Into<String>) {
        self.status = Status::Failed;
        self.reach(IntentOutcome::Failed);
        self.problem = Some(Problem {
            code: code.to_owned(),
            message: message.into(),
        });
    }

    /// Every instrument is in place: the checkout is authorized, captured, or in review.
    fn all_in_place(&mut self) {
        if self.review == Review::Pending {
            self.status = Status::InReview;
            return;
        }
        let payment_authorized = self
            .payment
            .as_ref()
            .is_some_and(|p| p.status == PaymentStatus::Authorized);
        self.status = match self.intent {
            Intent::Authorize => Status::Authorized,
            // An approved review with intent capture still has to capture its payment; the
            // intent is met only when it is.
            Intent::Capture if payment_authorized => return self.status = Status::Capturing,
            Intent::Capture => Status::Captured,
        };
        self.reach(IntentOutcome::Succeeded);
    }

    /// Gives back the regular payment: voids an authorization, refunds a capture.
    fn revert_payment(&mut self) {
        if let Some(payment) = &mut self.payment {
            match payment.status {
                PaymentStatus::Authorized => payment.status = PaymentStatus::VoidPending,
                PaymentStatus::Captured => {
                    payment.refund_pending = payment.amount - payment.refunded_amount;
                }
                _ => {}
            }
        }
    }

    /// Whether the processor is asked to capture at once (intent capture outside review).
    pub fn captures_at_once(&self) -> bool {
        self.intent == Intent::Capture && self.review == Review::None
    }

    /// The processor answered the payment request.
    pub fn payment_sent(&mut self, result: PaymentResult, now: Timestamp) {
        self.touch(now);
        let captures = self.captures_at_once();
        let Some(payment) = &mut self.payment else {
            return;
        };
        match result {
            PaymentResult::Approved { processor_reference } => {
                payment.processor_reference = Some(processor_reference);
                payment.status = if captures {
                    PaymentStatus::Captured
                } else {
                    PaymentStatus::Authorized
                };
                if !self
                    .gift_cards
                    .iter()
                    .any(|g| g.status == GiftCardStatus::Pending)
                {
                    self.all_in_place();
                }
            }
            PaymentResult::Declined { code, message } => {
                payment.status = PaymentStatus::Declined;
                payment.error_code = Some(code.clone());
                payment.error_message = Some(message.clone());
                self.skip_gift_cards();
                self.fail(&code, message);
            }
            PaymentResult::Unknown { message } => {
                // It may exist at the processor: void it by its reference to be sure.
                payment.status = PaymentStatus::VoidPending;
                payment.error_code = Some("processor_unavailable".into());
                payment.error_message = Some(message.clone());
                self.skip_gift_cards();
                self.fail("processor_unavailable", message);
            }
        }
    }

    /// The payment request was sent by a giftd that stopped before recording the answer; the
    /// card details are gone with it (they are never stored), so the checkout cannot go on.
    pub fn payment_lost(&mut self, now: Timestamp) {
        self.payment_sent(
            PaymentResult::Unknown {
                message: "giftd stopped while the payment was being authorized".into(),
            },
            now,
        );
    }

    fn skip_gift_cards(&mut self) {
        for gift in &mut self.gift_cards {
            if gift.status == GiftCardStatus::Pending {
                gift.status = GiftCardStatus::Skipped;
            }
        }
    }

    /// Every gift card leg was written: `legs[i]` is the i-th card's hold (intent authorize or
    /// review) or redemption transaction.
    pub fn gift_cards_used(&mut self, legs: Vec<(Option<HoldId>, TransactionId)>, now: Timestamp) {
        self.touch(now);
        let holds = self.holds_gift_cards();
        for (gift, (hold_id, transaction_id)) in self.gift_cards.iter_mut().zip(legs) {
            gift.status = if holds {
                GiftCardStatus::Held
            } else {
                GiftCardStatus::Redeemed
            };
            gift.hold_id = hold_id;
            gift.transaction_id = Some(transaction_id);
        }
        self.all_in_place();
    }

    /// Gift cards are held (intent authorize) rather than redeemed.
    pub fn holds_gift_cards(&self) -> bool {
        self.intent == Intent::Authorize
    }

    /// The ledger refused gift card `index`; none of the gift cards was used.
    pub fn gift_cards_refused(&mut self, index: usize, error: &DomainError, now: Timestamp) {
        self.touch(now);
        let code = gift_card_error_code(error);
        for (i, gift) in self.gift_cards.iter_mut().enumerate() {
            gift.status = GiftCardStatus::Failed;
            if i == index {
                gift.error_code = Some(code.to_owned());
                gift.error_message = Some(error.to_string());
            }
        }
        self.revert_payment();
        self.fail(code, format!("gift card {} was refused: {error}", index + 1));
    }

    fn check_status(&self, expected: &[Status], action: &str) -> Result<(), DomainError> {
        if expected.contains(&self.status) {
            Ok(())
        } else {
            Err(refuse(format!(
                "the checkout is {}; it cannot be {action}",
                self.status.as_str()
            )))
        }
    }

    /// A capture is asked for.
    /// Asks for the capture: of everything, or with `payment_amount` of only that much of the
    /// payment method (a partial capture: the gift cards are captured whole, and the rest of
    /// the payment's authorization is released with the capture).
    pub fn request_capture(
        &mut self,
        payment_amount: Option<i64>,
        now: Timestamp,
    ) -> Result<(), DomainError> {
        self.check_status(&[Status::Authorized], "captured")?;
        if let Some(asked) = payment_amount {
            let Some(payment) = &mut self.payment else {
                return Err(DomainError::InvalidAmount {
                    reason: "only a payment method can be captured in part; this checkout has none".into(),
                });
            };
            let authorized = payment.amount + payment.uncaptured;
            if asked < 1 || asked > authorized {
                return Err(DomainError::InvalidAmount {
                    reason: format!("the payment method can be captured for 1 to {authorized}"),
                });
            }
            payment.uncaptured = authorized - asked;
            payment.amount = asked;
        }
        self.touch(now);
        self.status = Status::Capturing;
        self.problem = None;
        Ok(())
    }

    pub fn payment_captured(&mut self, now: Timestamp) {
        self.touch(now);
        if let Some(payment) = &mut self.payment {
            payment.status = PaymentStatus::Captured;
            payment.retries = 0;
            payment.retry_at = None;
        }
        if !self.gift_cards.iter().any(|g| g.status == GiftCardStatus::Held) {
            self.status = Status::Captured;
            self.reach(IntentOutcome::Succeeded);
        }
    }

    /// The processor refused the capture: the checkout stays authorized (a capture the
    /// checkout's own intent asked for, after an approved review, fails it instead).
    pub fn payment_capture_refused(&mut self, code: String, message: String, now: Timestamp) {
        self.touch(now);
        // A partial capture that did not happen leaves the whole authorization.
        if let Some(payment) = &mut self.payment {
            payment.amount += payment.uncaptured;
            payment.uncaptured = 0;
        }
        if self.intent_outcome == IntentOutcome::Pending {
            self.revert_payment();
            self.fail(&code, message);
        } else {
            self.status = Status::Authorized;
            self.problem = Some(Problem { code, message });
        }
    }

    /// Every gift card hold was captured: `transactions[i]` is the i-th held card's capture.
    pub fn gift_cards_captured(&mut self, transactions: Vec<TransactionId>, now: Timestamp) {
        self.touch(now);
        let held = self
            .gift_cards
            .iter_mut()
            .filter(|g| g.status == GiftCardStatus::Held);
        for (gift, transaction_id) in held.zip(transactions) {
            gift.status = GiftCardStatus::Redeemed;
            gift.transaction_id = Some(transaction_id);
        }
        self.status = Status::Captured;
        self.reach(IntentOutcome::Succeeded);
    }

    /// A held gift card could not be captured: every hold is released and the captured
    /// payment refunded; the capture failed as a whole.
    pub fn gift_card_capture_refused(&mut self, index: usize, error: &DomainError, now: Timestamp) {
        self.touch(now);
        let code = gift_card_error_code(error);
        for (i, gift) in self.gift_cards.iter_mut().enumerate() {
            if gift.status == GiftCardStatus::Held {
                gift.status = GiftCardStatus::Released;
            }
            if i == index {
                gift.error_code = Some(code.to_owned());
                gift.error_message = Some(error.to_string());
            }
        }
        self.revert_payment();
        self.fail(
            code,
            format!("gift card {} could not be captured: {error}", index + 1),
        );
    }

    /// A void is asked for: holds are released and the authorization voided.
    pub fn request_void(&mut self, now: Timestamp) -> Result<(), DomainError> {
        self.check_status(&[Status::Authorized], "voided")?;
        self.touch(now);
        self.status = Status::Voiding;
        self.revert_payment();
        if !self.gift_cards.iter().any(|g| g.status == GiftCardStatus::Held) {
            self.settle_void();
        }
        Ok(())
    }

    pub fn gift_cards_released(&mut self, now: Timestamp) {
        self.touch(now);
        for gift in &mut self.gift_cards {
            if gift.status == GiftCardStatus::Held {
                gift.status = GiftCardStatus::Released;
            }
        }
        self.settle_void();
    }

    fn settle_void(&mut self) {
        let payment_done = self
            .payment
            .as_ref()
            .is_none_or(|p| p.status != PaymentStatus::VoidPending);
        let holds_done = !self.gift_cards.iter().any(|g| g.status == GiftCardStatus::Held);
        if self.status == Status::Voiding && payment_done && holds_done {
            self.status = Status::Voided;
        }
    }

    /// The processor confirmed the void.
    pub fn payment_voided(&mut self, now: Timestamp) {
        self.touch(now);
        if let Some(payment) = &mut self.payment {
            payment.status = PaymentStatus::Voided;
            payment.retries = 0;
            payment.retry_at = None;
        }
        self.settle_void();
    }

    /// The processor confirmed the pending refund.
    pub fn payment_refunded(&mut self, now: Timestamp) {
        self.touch(now);
        if let Some(payment) = &mut self.payment {
            payment.refunded_amount += payment.refund_pending;
            payment.refund_pending = 0;
            payment.retries = 0;
            payment.retry_at = None;
            if payment.refunded_amount == payment.amount {
                payment.status = PaymentStatus::Refunded;
            }
        }
    }

    /// A capture, void or refund did not reach the processor: try again later, with a
    /// growing delay.
    pub fn payment_call_failed(&mut self, message: String, now: Timestamp) {
        self.touch(now);
        if let Some(payment) = &mut self.payment {
            payment.retries += 1;
            let delay = FIRST_RETRY_SECONDS
                .saturating_mul(1 << payment.retries.min(20).saturating_sub(1))
                .min(MAX_RETRY_SECONDS);
            payment.retry_at = Some(now.plus_seconds(delay));
            payment.error_message = Some(message);
        }
    }

    /// The review decision.
    pub fn review(&mut self, approve: bool, now: Timestamp) -> Result<(), DomainError> {
        self.check_status(&[Status::InReview], "reviewed")?;
        self.touch(now);
        if approve {
            self.review = Review::Approved;
            self.all_in_place();
        } else {
            // The payment is given back; the gift card legs are not (see the module docs).
            self.review = Review::Rejected;
            self.revert_payment();
            self.fail("review_rejected", "the checkout was rejected in review");
        }
        Ok(())
    }

    /// Splits a refund across the tenders: the one named by `target`, or else the regular
    /// payment first, then the gift cards from the last to the first. Gift card allocations
    /// come without their transaction; the caller fills it in.
    pub fn allocate_refund(
        &self,
        amount: Option<i64>,
        target: Option<&str>,
    ) -> Result<Vec<Allocation>, DomainError> {
        if self.status != Status::Captured {
            return Err(refuse(format!(
                "the checkout is {}; only a captured checkout is refunded",
                self.status.as_str()
            )));
        }
        let mut tenders: Vec<(String, i64)> = Vec::new();
        if let Some(payment) = &self.payment {
            tenders.push((payment.id.clone(), payment.refundable()));
        }
        for gift in self.gift_cards.iter().rev() {
            if gift.status == GiftCardStatus::Redeemed {
                tenders.push((gift.id.clone(), gift.amount - gift.refunded_amount));
            }
        }
        if let Some(target) = target {
            if !self.gift_cards.iter().any(|g| g.id == target)
                && self.payment.as_ref().is_none_or(|p| p.id != target)
            {
                return Err(DomainError::InvalidAmount {
                    reason: format!("the checkout has no tender {target}"),
                });
            }
            tenders.retain(|(id, _)| id == target);
        }
        let refundable: i64 = tenders.iter().map(|(_, left)| left).sum();
        let requested = amount.unwrap_or(refundable);
        if requested <= 0 || requested > refundable {
            return Err(DomainError::RefundExceedsAmount {
                refundable,
                requested,
            });
        }
        let mut left = requested;
        let mut allocations = Vec::new();
        for (tender_id, available) in tenders {
            let take = left.min(available);
            if take > 0 {
                allocations.push(Allocation {
                    tender_id,
                    amount: take,
                    transaction_id: None,
                });
                left -= take;
            }
        }
        Ok(allocations)
    }

    /// Records a refund whose gift card parts are written; the payment part is owed to the
    /// processor until it confirms.
    pub fn refunded(&mut self, refund: Refund, now: Timestamp) {
        self.touch(now);
        for allocation in &refund.allocations {
            if let Some(gift) = self.gift_cards.iter_mut().find(|g| g.id == allocation.tender_id) {
                gift.refunded_amount += allocation.amount;
            } else if let Some(payment) = &mut self.payment
                && payment.id == allocation.tender_id
            {
                payment.refund_pending += allocation.amount;
            }
        }
        self.refunds.push(refund);
    }
}

impl PaymentTender {
    /// What may still be refunded: captured, not refunded, not already asked for.
    pub fn refundable(&self) -> i64 {
        match self.status {
            PaymentStatus::Captured => self.amount - self.refunded_amount - self.refund_pending,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkout(intent: Intent, gift_cards: usize, payment: bool) -> Checkout {
        Checkout {
            id: CheckoutId::new("chk_1"),
            amount: 100 * gift_cards as i64 + if payment { 500 } else { 0 },
            currency: Currency::parse("USD").expect("USD"),
            intent,
            reference: None,
            buyer: None,
            status: Status::Processing,
            intent_outcome: IntentOutcome::Pending,
            review: Review::None,
            gift_cards: (0..gift_cards)
                .map(|i| GiftCardTender {
                    id: format!("gcr_{i}"),
                    card_id: CardId::new(format!("card_{i}")),
                    last4: "1234".into(),
                    amount: 100,
                    status: GiftCardStatus::Pending,
                    hold_id: None,
                    transaction_id: None,
                    refunded_amount: 0,
                    error_code: None,
                    error_message: None,
                })
                .collect(),
            payment: payment.then(|| PaymentTender {
                id: "pay_1".into(),
                connector: "simulator".into(),
                amount: 500,
                brand: None,
                last4: None,
                status: PaymentStatus::Pending,
                processor_reference: None,
                refunded_amount: 0,
                refund_pending: 0,
                uncaptured: 0,
                error_code: None,
                error_message: None,
                retries: 0,
                retry_at: None,
            }),
            refunds: Vec::new(),
            problem: None,
            hold_seconds: 600,
            created_at: Timestamp::from_unix_millis(0),
            updated_at: Timestamp::from_unix_millis(0),
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_unix_millis(1_000)
    }

    fn approved() -> PaymentResult {
        PaymentResult::Approved {
            processor_reference: "sim_1".into(),
        }
    }

    fn legs(n: usize) -> Vec<(Option<HoldId>, TransactionId)> {
        (0..n)
            .map(|i| (None, TransactionId::new(format!("txn_{i}"))))
            .collect()
    }

    #[test]
    fn payment_goes_first_then_gift_cards_then_success() {
        let mut c = checkout(Intent::Capture, 2, true);
        assert_eq!(c.next_step(), Some(Step::SendPayment));
        c.payment_sent(approved(), now());
        assert_eq!(
            c.payment.as_ref().map(|p| p.status),
            Some(PaymentStatus::Captured)
        );
        assert_eq!(c.next_step(), Some(Step::UseGiftCards));
        assert_eq!(c.intent_outcome, IntentOutcome::Pending);
        c.gift_cards_used(legs(2), now());
        assert_eq!(c.status, Status::Captured);
        assert_eq!(c.intent_outcome, IntentOutcome::Succeeded);
        assert_eq!(c.next_step(), None);
        assert!(c.multi_tender());
    }

    #[test]
    fn a_refused_gift_card_reverts_the_payment_and_fails_the_intent() {
        let mut c = checkout(Intent::Capture, 2, true);
        c.payment_sent(approved(), now());
        c.gift_cards_refused(
            1,
            &DomainError::InsufficientFunds {
                available: 1,
                requested: 100,
            },
            now(),
        );
        assert_eq!(c.status, Status::Failed);
        assert_eq!(c.intent_outcome, IntentOutcome::Failed);
        assert_eq!(c.next_step(), Some(Step::RefundPayment));
        assert_eq!(c.gift_cards[1].error_code.as_deref(), Some("insufficient_funds"));
        assert!(c.gift_cards.iter().all(|g| g.status == GiftCardStatus::Failed));
        c.payment_refunded(now());
        assert_eq!(c.next_step(), None);
        assert_eq!(
            c.payment.as_ref().map(|p| p.status),
            Some(PaymentStatus::Refunded)
        );

        let mut a = checkout(Intent::Authorize, 1, true);
        a.payment_sent(approved(), now());
        a.gift_cards_refused(0, &DomainError::CardExpired, now());
        assert_eq!(a.next_step(), Some(Step::VoidPayment));
    }

    #[test]
    fn a_declined_payment_never_touches_the_gift_cards() {
        let mut c = checkout(Intent::Authorize, 2, true);
        c.payment_sent(
            PaymentResult::Declined {
                code: "card_declined".into(),
                message: "declined".into(),
            },
            now(),
        );
        assert_eq!(c.intent_outcome, IntentOutcome::Failed);
        assert!(c.gift_cards.iter().all(|g| g.status == GiftCardStatus::Skipped));
        assert_eq!(c.next_step(), None);
    }

    #[test]
    fn an_unknown_payment_answer_is_voided() {
        let mut c = checkout(Intent::Capture, 1, true);
        c.payment_sent(
            PaymentResult::Unknown {
                message: "timeout".into(),
            },
            now(),
        );
        assert_eq!(c.next_step(), Some(Step::VoidPayment));
        c.payment_call_failed("down".into(), now());
        assert!(!c.due(now()));
        assert!(c.due(now().plus_seconds(1)));
        c.payment_call_failed("down".into(), now());
        assert!(!c.due(now().plus_seconds(1)));
        assert!(c.due(now().plus_seconds(2)));
        c.payment_voided(now());
        assert_eq!(c.next_step(), None);
        assert_eq!(c.intent_outcome, IntentOutcome::Failed);
    }

    #[test]
    fn the_outcome_never_changes_once_reached() {
        let mut c = checkout(Intent::Authorize, 1, true);
        c.payment_sent(approved(), now());
        c.gift_cards_used(legs(1), now());
        assert_eq!(c.status, Status::Authorized);
        c.request_void(now()).expect("authorized");
        assert_eq!(c.intent_outcome, IntentOutcome::Succeeded);
        assert_eq!(c.next_step(), Some(Step::ReleaseGiftCards));
        c.gift_cards_released(now());
        assert_eq!(c.status, Status::Voiding);
        assert_eq!(c.next_step(), Some(Step::VoidPayment));
        c.payment_voided(now());
        assert_eq!(c.status, Status::Voided);
        assert_eq!(c.intent_outcome, IntentOutcome::Succeeded);
        assert!(c.request_capture(None, now()).is_err());
    }

    #[test]
    fn a_rejected_review_reverts_the_payment_but_not_the_gift_cards() {
        let mut c = checkout(Intent::Capture, 1, true);
        c.review = Review::Pending;
        assert!(!c.captures_at_once());
        c.payment_sent(approved(), now());
        assert_eq!(
            c.payment.as_ref().map(|p| p.status),
            Some(PaymentStatus::Authorized)
        );
        c.gift_cards_used(legs(1), now());
        assert_eq!(c.status, Status::InReview);
        assert_eq!(c.intent_outcome, IntentOutcome::Pending);
        c.review(false, now()).expect("in review");
        assert_eq!(c.intent_outcome, IntentOutcome::Failed);
        assert_eq!(c.next_step(), Some(Step::VoidPayment));
        assert_eq!(c.gift_cards[0].status, GiftCardStatus::Redeemed);

        let mut approved_review = checkout(Intent::Capture, 1, true);
        approved_review.review = Review::Pending;
        approved_review.payment_sent(approved(), now());
        approved_review.gift_cards_used(legs(1), now());
        approved_review.review(true, now()).expect("in review");
        assert_eq!(approved_review.status, Status::Capturing);
        assert_eq!(approved_review.intent_outcome, IntentOutcome::Pending);
        assert_eq!(approved_review.next_step(), Some(Step::CapturePayment));
        approved_review.payment_captured(now());
        assert_eq!(approved_review.status, Status::Captured);
        assert_eq!(approved_review.intent_outcome, IntentOutcome::Succeeded);
    }

    #[test]
    fn refunds_take_the_payment_first_then_gift_cards_last_first() {
        let mut c = checkout(Intent::Capture, 2, true);
        c.payment_sent(approved(), now());
        c.gift_cards_used(legs(2), now());
        let allocations = c.allocate_refund(Some(550), None).expect("refundable");
        let split: Vec<_> = allocations
            .iter()
            .map(|a| (a.tender_id.as_str(), a.amount))
            .collect();
        assert_eq!(split, [("pay_1", 500), ("gcr_1", 50)]);
        let refund = Refund {
            id: "chr_1".into(),
            amount: 550,
            allocations,
            reference: None,
            created_at: now(),
        };
        c.refunded(refund, now());
        assert_eq!(c.refundable(), 150);
        assert_eq!(c.next_step(), Some(Step::RefundPayment));
        let only_first = c.allocate_refund(None, Some("gcr_0")).expect("refundable");
        assert_eq!(only_first[0].amount, 100);
        assert!(matches!(
            c.allocate_refund(Some(151), None),
            Err(DomainError::RefundExceedsAmount { refundable: 150, .. })
        ));
    }
}
