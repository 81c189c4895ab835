//! The regular payment method of a checkout: a card charged through a payment processor, behind
//! the [`PaymentConnector`] trait, and [`Simulator`], the built-in simulated processor that
//! lets the whole split-tender flow run locally and in tests.
//!
//! A connector is called with giftd's own reference for the payment (the payment tender's id)
//! on every call, and must be idempotent on it: a checkout that giftd resumes after a restart
//! may repeat a call whose answer it never recorded (a capture, a void, a refund with the same
//! refund reference), and may void a reference the processor never saw (nothing to do).
//!
//! Card details live only in memory for the authorization call; giftd never stores them.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use giftd_domain::checkout::PaymentResult;
use giftd_domain::{Currency, MerchantId, Timestamp};
use giftd_store::{BoxFuture, Store, StoreError, StoreResult, WriteTx};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::job::{TxWork, run_answered};

/// A payment card as a checkout request brings it. Its `Debug` shows only the last four digits.
#[derive(Clone)]
pub struct PaymentCard {
    number: String,
    pub expiry: Option<String>,
    cvc: Option<String>,
}

impl fmt::Debug for PaymentCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PaymentCard(****{})", self.last4())
    }
}

impl PaymentCard {
    /// A card number of 12 to 19 digits (spaces allowed), an optional `MM/YY` expiry and an
    /// optional 3- or 4-digit security code.
    pub fn parse(number: &str, expiry: Option<&str>, cvc: Option<&str>) -> Result<Self, String> {
        let digits: String = number.chars().filter(|c| *c != ' ').collect();
        if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("a payment card number is 12 to 19 digits".into());
        }
        if let Some(expiry) = expiry {
            let valid = expiry.len() == 5
                && expiry.as_bytes()[2] == b'/'
                && expiry[..2].parse::<u8>().is_ok_and(|m| (1..=12).contains(&m))
                && expiry[3..].bytes().all(|b| b.is_ascii_digit());
            if !valid {
                return Err("a payment card expiry is MM/YY".into());
            }
        }
        if let Some(cvc) = cvc
            && (!(3..=4).contains(&cvc.len()) || !cvc.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err("a payment card security code is 3 or 4 digits".into());
        }
        Ok(Self {
            number: digits,
            expiry: expiry.map(str::to_owned),
            cvc: cvc.map(str::to_owned),
        })
    }

    pub fn last4(&self) -> String {
        self.number[self.number.len() - 4..].to_owned()
    }

    /// The scheme, from the number's first digits (informational).
    pub fn brand(&self) -> &'static str {
        match self.number.as_bytes()[0] {
            b'4' => "visa",
            b'5' | b'2' => "mastercard",
            b'3' => "amex",
            b'6' => "discover",
            _ => "card",
        }
    }

    /// The whole number, for a connector to send to its processor.
    pub fn expose_number(&self) -> &str {
        &self.number
    }

    pub fn expose_cvc(&self) -> Option<&str> {
        self.cvc.as_deref()
    }
}

/// One authorization request.
#[derive(Debug)]
pub struct AuthorizeRequest<'a> {
    pub merchant: &'a MerchantId,
    /// giftd's reference for this payment; the idempotency key at the processor.
    pub reference: &'a str,
    pub amount: i64,
    pub currency: Currency,
    pub card: &'a PaymentCard,
    /// Capture at once (a sale) rather than only authorize.
    pub capture: bool,
}

/// Why a capture, void or refund did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessorError {
    /// The processor answered no, for good.
    #[error("{code}: {message}")]
    Declined { code: String, message: String },
    /// No usable answer (down, timed out): the call may be tried again.
    #[error("processor unavailable: {0}")]
    Unavailable(String),
}

/// A payment processor as giftd uses it. Every call must be idempotent on `reference` (and a
/// refund on `refund_reference`).
#[async_trait]
pub trait PaymentConnector: Send + Sync + 'static {
    /// Recorded on each payment tender.
    fn name(&self) -> &'static str;
    async fn authorize(&self, request: AuthorizeRequest<'_>) -> PaymentResult;
    async fn capture(&self, reference: &str, amount: i64) -> Result<(), ProcessorError>;
    /// Voids an authorization, or reverses a payment whose outcome giftd never learnt.
    /// Voiding a reference the processor does not know succeeds (nothing to void).
    async fn void(&self, reference: &str) -> Result<(), ProcessorError>;
    async fn refund(
        &self,
        reference: &str,
        refund_reference: &str,
        amount: i64,
    ) -> Result<(), ProcessorError>;
}

/// How a simulated card behaves, chosen by its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    Approve,
    Decline,
    /// Authorizes, then never answers (a timeout): giftd must void it.
    Timeout,
    /// Authorizes; every capture is refused (and a sale is declined).
    FailCapture,
    /// Authorizes and captures; the first [`Simulator::REVERSAL_FAILURES`] voids and refunds
    /// fail as if the processor were down, later ones succeed.
    FailReversal,
}

impl Behaviour {
    /// The simulator's test cards; every other valid number approves.
    pub const TEST_CARDS: [(&'static str, Behaviour); 5] = [
        ("4242424242424242", Behaviour::Approve),
        ("4000000000000002", Behaviour::Decline),
        ("4000000000000119", Behaviour::Timeout),
        ("4000000000000341", Behaviour::FailCapture),
        ("4000000000000259", Behaviour::FailReversal),
    ];

    fn of(card: &PaymentCard) -> Self {
        Self::TEST_CARDS
            .iter()
            .find(|(number, _)| *number == card.number)
            .map_or(Behaviour::Approve, |(_, behaviour)| *behaviour)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimulatedStatus {
    Authorized,
    Captured,
    Declined,
    Voided,
}

/// A payment as the simulated processor keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimulatedPayment {
    pub reference: String,
    pub merchant_id: Option<MerchantId>,
    pub processor_reference: String,
    pub behaviour: Behaviour,
    pub status: SimulatedStatus,
    pub amount: i64,
    pub currency: Option<Currency>,
    pub captured: i64,
    /// Refund references and amounts, each applied once.
    pub refunds: Vec<(String, i64)>,
    /// Voids and refunds that failed on purpose (behaviour `fail_reversal`).
    pub reversal_failures: u32,
    pub created_at: Timestamp,
}

impl SimulatedPayment {
    pub fn refunded(&self) -> i64 {
        self.refunds.iter().map(|(_, amount)| amount).sum()
    }
}

/// The built-in simulated processor. Its payments live in the database (table
/// `simulated_payments`), written by jobs of their own: to giftd it is an outside system whose
/// state survives giftd's restarts, as a real processor's would.
#[derive(Clone)]
pub struct Simulator {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

enum SimulatorCall {
    Authorize {
        merchant: MerchantId,
        amount: i64,
        currency: Currency,
        behaviour: Behaviour,
        capture: bool,
    },
    Capture {
        amount: i64,
    },
    Void,
    Refund {
        refund_reference: String,
        amount: i64,
    },
    Read,
}

type CallResult = Result<Option<SimulatedPayment>, ProcessorError>;

struct SimulatorJob {
    reference: String,
    call: SimulatorCall,
    now: Timestamp,
}

fn declined(code: &str, message: &str) -> ProcessorError {
    ProcessorError::Declined {
        code: code.to_owned(),
        message: message.to_owned(),
    }
}

impl SimulatorJob {
    async fn execute(&mut self, tx: &mut dyn WriteTx) -> StoreResult<CallResult> {
        let stored = match tx.simulated_payment(&self.reference).await? {
            Some(state) => Some(
                serde_json::from_str::<SimulatedPayment>(&state)
                    .map_err(|e| StoreError::Corrupt(format!("simulated payment: {e}")))?,
            ),
            None => None,
        };
        let (result, write) = decide(&self.reference, stored, &self.call, self.now);
        if let Some(payment) = &write {
            let state = serde_json::to_string(payment)
                .map_err(|e| StoreError::Corrupt(format!("simulated payment: {e}")))?;
            tx.put_simulated_payment(&self.reference, &state, self.now)
                .await?;
        }
        Ok(result)
    }
}

/// What the simulated processor answers to `call`, and the payment it then keeps.
fn decide(
    reference: &str,
    stored: Option<SimulatedPayment>,
    call: &SimulatorCall,
    now: Timestamp,
) -> (CallResult, Option<SimulatedPayment>) {
    match (call, stored) {
        (SimulatorCall::Read, stored) => (Ok(stored), None),
        // Idempotent: the same reference gets the first answer again.
        (SimulatorCall::Authorize { .. }, Some(existing)) => (Ok(Some(existing)), None),
        (
            SimulatorCall::Authorize {
                merchant,
                amount,
                currency,
                behaviour,
                capture,
            },
            None,
        ) => {
            let mut processor_reference = [0u8; 8];
            rand::rng().fill_bytes(&mut processor_reference);
            let refused =
                *behaviour == Behaviour::Decline || (*capture && *behaviour == Behaviour::FailCapture);
            let status = if refused {
                SimulatedStatus::Declined
            } else if *capture {
                SimulatedStatus::Captured
            } else {
                SimulatedStatus::Authorized
            };
            let payment = SimulatedPayment {
                reference: reference.to_owned(),
                merchant_id: Some(merchant.clone()),
                processor_reference: format!("sim_{}", hex::encode(processor_reference)),
                behaviour: *behaviour,
                status,
                amount: *amount,
                currency: Some(*currency),
                captured: if status == SimulatedStatus::Captured {
                    *amount
                } else {
                    0
                },
                refunds: Vec::new(),
                reversal_failures: 0,
                created_at: now,
            };
            (Ok(Some(payment.clone())), Some(payment))
        }
        (_, None) if matches!(call, SimulatorCall::Void) => (Ok(None), None),
        (_, None) => (
            Err(declined("unknown_payment", "no payment with this reference")),
            None,
        ),
        (SimulatorCall::Capture { amount }, Some(mut payment)) => match payment.status {
            SimulatedStatus::Captured => (Ok(Some(payment)), None),
            SimulatedStatus::Authorized if payment.behaviour == Behaviour::FailCapture => (
                Err(declined("capture_failed", "the processor refused the capture")),
                None,
            ),
            SimulatedStatus::Authorized if *amount <= payment.amount => {
                payment.status = SimulatedStatus::Captured;
                payment.captured = *amount;
                (Ok(Some(payment.clone())), Some(payment))
            }
            SimulatedStatus::Authorized => (Err(declined("invalid_amount", "more than authorized")), None),
            _ => (
                Err(declined("invalid_state", "the payment cannot be captured")),
                None,
            ),
        },
        (SimulatorCall::Void | SimulatorCall::Refund { .. }, Some(mut payment))
            if payment.behaviour == Behaviour::FailReversal
                && payment.reversal_failures < Simulator::REVERSAL_FAILURES
                && !already_done(call, &payment) =>
        {
            payment.reversal_failures += 1;
            (
                Err(ProcessorError::Unavailable(
                    "the simulated processor is down".into(),
                )),
                Some(payment),
            )
        }
        (SimulatorCall::Void, Some(mut payment)) => match payment.status {
            SimulatedStatus::Voided | SimulatedStatus::Declined => (Ok(Some(payment)), None),
            SimulatedStatus::Authorized | SimulatedStatus::Captured => {
                payment.status = SimulatedStatus::Voided;
                (Ok(Some(payment.clone())), Some(payment))
            }
        },
        (
            SimulatorCall::Refund {
                refund_reference,
                amount,
            },
            Some(mut payment),
        ) => {
            if payment.refunds.iter().any(|(r, _)| r == refund_reference) {
                return (Ok(Some(payment)), None);
            }
            if payment.status != SimulatedStatus::Captured || payment.refunded() + amount > payment.captured {
                return (Err(declined("invalid_refund", "more than captured")), None);
            }
            payment.refunds.push((refund_reference.clone(), *amount));
            (Ok(Some(payment.clone())), Some(payment))
        }
    }
}

fn already_done(call: &SimulatorCall, payment: &SimulatedPayment) -> bool {
    match call {
        SimulatorCall::Void => payment.status == SimulatedStatus::Voided,
        SimulatorCall::Refund { refund_reference, .. } => {
            payment.refunds.iter().any(|(r, _)| r == refund_reference)
        }
        _ => false,
    }
}

impl TxWork for SimulatorJob {
    type Answer = CallResult;

    fn run<'a>(&'a mut self, tx: &'a mut dyn WriteTx) -> BoxFuture<'a, StoreResult<CallResult>> {
        Box::pin(self.execute(tx))
    }
}

impl Simulator {
    /// Failed voids and refunds of a `fail_reversal` card before they succeed.
    pub const REVERSAL_FAILURES: u32 = 2;

    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    async fn call(&self, reference: &str, call: SimulatorCall) -> CallResult {
        let job = SimulatorJob {
            reference: reference.to_owned(),
            call,
            now: self.clock.now(),
        };
        match run_answered(self.store.as_ref(), job).await {
            Ok(result) => result,
            Err(StoreError::Closed) => Err(ProcessorError::Unavailable(
                "the simulator's store is closed".into(),
            )),
            Err(error) => Err(ProcessorError::Unavailable(error.to_string())),
        }
    }

    /// The simulated processor's record of a payment (for tests and local inspection).
    pub async fn payment(&self, reference: &str) -> Result<Option<SimulatedPayment>, ProcessorError> {
        self.call(reference, SimulatorCall::Read).await
    }
}

#[async_trait]
impl PaymentConnector for Simulator {
    fn name(&self) -> &'static str {
        "simulator"
    }

    async fn authorize(&self, request: AuthorizeRequest<'_>) -> PaymentResult {
        let behaviour = Behaviour::of(request.card);
        let call = SimulatorCall::Authorize {
            merchant: request.merchant.clone(),
            amount: request.amount,
            currency: request.currency,
            behaviour,
            capture: request.capture,
        };
        match self.call(request.reference, call).await {
            Ok(Some(payment)) => match payment.status {
                _ if payment.behaviour == Behaviour::Timeout => PaymentResult::Unknown {
                    message: "the simulated processor did not answer in time".into(),
                },
                SimulatedStatus::Declined if payment.behaviour == Behaviour::FailCapture => {
                    PaymentResult::Declined {
                        code: "capture_failed".into(),
                        message: "the processor refused to capture the payment".into(),
                    }
                }
                SimulatedStatus::Declined => PaymentResult::Declined {
                    code: "card_declined".into(),
                    message: "the card was declined".into(),
                },
                // A payment voided before its (repeated) authorization stays unusable.
                SimulatedStatus::Voided => PaymentResult::Declined {
                    code: "payment_voided".into(),
                    message: "the payment was voided".into(),
                },
                SimulatedStatus::Authorized | SimulatedStatus::Captured => PaymentResult::Approved {
                    processor_reference: payment.processor_reference,
                },
            },
            Ok(None) => PaymentResult::Unknown {
                message: "the simulated processor gave no answer".into(),
            },
            Err(error) => PaymentResult::Unknown {
                message: error.to_string(),
            },
        }
    }

    async fn capture(&self, reference: &str, amount: i64) -> Result<(), ProcessorError> {
        self.call(reference, SimulatorCall::Capture { amount })
            .await
            .map(drop)
    }

    async fn void(&self, reference: &str) -> Result<(), ProcessorError> {
        self.call(reference, SimulatorCall::Void).await.map(drop)
    }

    async fn refund(
        &self,
        reference: &str,
        refund_reference: &str,
        amount: i64,
    ) -> Result<(), ProcessorError> {
        let call = SimulatorCall::Refund {
            refund_reference: refund_reference.to_owned(),
            amount,
        };
        self.call(reference, call).await.map(drop)
    }
}
