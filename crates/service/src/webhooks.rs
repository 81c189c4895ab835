//! Webhooks: the event types a merchant can subscribe to, the outbox (events written by the
//! write job whose effect they report, fanned out to the subscribed endpoints in the same
//! transaction), the endpoints' use-cases, and the dispatcher that delivers them at least once,
//! signed with HMAC-SHA-256, retried with exponential backoff.
//!
//! Events are derived from what a committed command produced (its transactions, a checkout's
//! new status), never from the request, so a refused command writes none. HTTP calls happen in
//! the dispatcher only, between write jobs, never inside a transaction. No SQL here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use giftd_domain::checkout::Status;
use giftd_domain::operations::HoldSnapshot;
use giftd_domain::{EventId, MerchantId, Timestamp, TransactionType, WebhookDeliveryId, WebhookEndpointId};
use giftd_store::{
    AttemptRow, BoxFuture, ClaimedDelivery, DeliveryRow, DeliveryUpdate, EventRow, Page, StoreError,
    StoreResult, TransactionRecord, WebhookEndpointRow, WriteTx,
};
use hmac::{KeyInit, Mac};
use rand::Rng;
use serde_json::{Value, json};

use async_trait::async_trait;
use giftd_domain::CheckoutId;
use giftd_domain::checkout::Checkout;

use crate::crypto::Keys;
use crate::error::{Failure, Refusal, ServiceError};
use crate::job::{TxWork, run_answered};
use crate::operation::{Context, Operation};
use crate::{Service, ids};

/// Endpoints one merchant may have enabled at once: every event is fanned out to each of them
/// inside the write transaction, so their number bounds that work.
pub const MAX_ENDPOINTS: usize = 16;
/// The longest endpoint URL accepted.
pub const MAX_URL_BYTES: usize = 2048;
/// The header carrying `t=<unix seconds>,v1=<hex HMAC-SHA-256 of "<t>.<body>">`.
pub const SIGNATURE_HEADER: &str = "Giftd-Signature";
pub const EVENT_ID_HEADER: &str = "Giftd-Event-Id";
pub const EVENT_TYPE_HEADER: &str = "Giftd-Event-Type";
pub const DELIVERY_ID_HEADER: &str = "Giftd-Delivery-Id";

/// What happened, as a subscriber names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    CardActivated,
    CardLoaded,
    /// A redemption, or the capture of a hold (value spent).
    CardRedeemed,
    CardRefunded,
    CardCashedOut,
    /// Value a person put on or took off a card (an adjustment, applied).
    CardAdjusted,
    /// A card's balance fell below the endpoint's `low_balance_threshold`.
    CardLowBalance,
    TransactionVoided,
    HoldExpired,
    CheckoutAuthorized,
    CheckoutCaptured,
    CheckoutVoided,
    CheckoutFailed,
}

impl EventType {
    pub const ALL: [Self; 13] = [
        Self::CardActivated,
        Self::CardLoaded,
        Self::CardRedeemed,
        Self::CardRefunded,
        Self::CardCashedOut,
        Self::CardAdjusted,
        Self::CardLowBalance,
        Self::TransactionVoided,
        Self::HoldExpired,
        Self::CheckoutAuthorized,
        Self::CheckoutCaptured,
        Self::CheckoutVoided,
        Self::CheckoutFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CardActivated => "card.activated",
            Self::CardLoaded => "card.loaded",
            Self::CardRedeemed => "card.redeemed",
            Self::CardRefunded => "card.refunded",
            Self::CardCashedOut => "card.cashed_out",
            Self::CardAdjusted => "card.adjusted",
            Self::CardLowBalance => "card.low_balance",
            Self::TransactionVoided => "transaction.voided",
            Self::HoldExpired => "hold.expired",
            Self::CheckoutAuthorized => "checkout.authorized",
            Self::CheckoutCaptured => "checkout.captured",
            Self::CheckoutVoided => "checkout.voided",
            Self::CheckoutFailed => "checkout.failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// The event a ledger transaction of this type reports, if any.
    fn of_transaction(transaction_type: TransactionType) -> Option<Self> {
        match transaction_type {
            TransactionType::Activation => Some(Self::CardActivated),
            TransactionType::Load => Some(Self::CardLoaded),
            TransactionType::Redemption | TransactionType::Capture => Some(Self::CardRedeemed),
            TransactionType::Refund => Some(Self::CardRefunded),
            TransactionType::Cashout => Some(Self::CardCashedOut),
            TransactionType::Adjustment => Some(Self::CardAdjusted),
            TransactionType::Void => Some(Self::TransactionVoided),
            // Hold expiry is reported where it is written (`hold_expired`), with its hold.
            TransactionType::Issue
            | TransactionType::Hold
            | TransactionType::Release
            | TransactionType::TransferOut
            | TransactionType::TransferIn
            | TransactionType::MergeOut
            | TransactionType::MergeIn
            | TransactionType::Expiry => None,
        }
    }

    /// The event a checkout reaching `status` reports, if any.
    fn of_checkout(status: Status) -> Option<Self> {
        match status {
            Status::Authorized => Some(Self::CheckoutAuthorized),
            Status::Captured => Some(Self::CheckoutCaptured),
            Status::Voided => Some(Self::CheckoutVoided),
            Status::Failed => Some(Self::CheckoutFailed),
            Status::Processing | Status::InReview | Status::Capturing | Status::Voiding => None,
        }
    }
}

/// How the dispatcher retries: the first retry after `first_retry_millis`, each next one after
/// twice the last, at most `max_retry_millis`; after `max_attempts` attempts a delivery is
/// `failed`.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    pub first_retry_millis: i64,
    pub max_retry_millis: i64,
    pub max_attempts: i64,
    /// How long one HTTP attempt may take.
    pub timeout: Duration,
    /// Deliveries one dispatcher round claims.
    pub batch: u32,
    /// How often the dispatcher looks for due deliveries.
    pub interval: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            first_retry_millis: 1_000,
            max_retry_millis: 3_600_000,
            max_attempts: 15,
            timeout: Duration::from_secs(10),
            batch: 50,
            interval: Duration::from_secs(1),
        }
    }
}

impl DeliveryPolicy {
    /// The wait after the `attempts`-th failed attempt (1, 2, ...).
    pub fn retry_delay_millis(&self, attempts: i64) -> i64 {
        let doublings = u32::try_from((attempts - 1).clamp(0, 40)).unwrap_or(40);
        self.first_retry_millis
            .saturating_mul(1_i64 << doublings)
            .min(self.max_retry_millis)
    }

    /// A claim lasts as long as an attempt may, plus a margin; a dispatcher that dies mid-way
    /// leaves the delivery to be claimed again after it.
    fn lease_millis(&self) -> i64 {
        i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX / 4) + 30_000
    }
}

/// A new endpoint as the API asks for it.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: String,
    pub event_types: Vec<EventType>,
    pub low_balance_threshold: Option<i64>,
}

/// An endpoint as the API shows it (never its secret, but once at creation).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: WebhookEndpointId,
    pub url: String,
    pub event_types: Vec<EventType>,
    pub low_balance_threshold: Option<i64>,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An event with its deliveries and each one's attempts.
#[derive(Debug, Clone)]
pub struct EventDetail {
    pub event: EventRow,
    pub deliveries: Vec<(DeliveryRow, Vec<AttemptRow>)>,
}

fn endpoint(row: &WebhookEndpointRow) -> Endpoint {
    Endpoint {
        id: row.id.clone(),
        url: row.url.clone(),
        event_types: parse_types(&row.event_types),
        low_balance_threshold: row.low_balance_threshold,
        enabled: row.enabled,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn parse_types(list: &str) -> Vec<EventType> {
    list.split(',').filter_map(EventType::parse).collect()
}

fn secret_context(endpoint_id: &str) -> Vec<u8> {
    [b"webhook endpoint secret\0".as_slice(), endpoint_id.as_bytes()].concat()
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA-256 of "<t>.<body>" under the secret>`.
pub fn signature(secret: &[u8], unix_seconds: i64, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix_seconds},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// An instant as RFC 3339 in UTC with milliseconds, as the API shows it.
pub(crate) fn rfc3339(at: Timestamp) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.unix_millis()) * 1_000_000)
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_default()
}

/// A transaction as events carry it. Written straight from the record, without a `Value`
/// tree in between (the writer renders one for nearly every money movement); the fields are in
/// alphabetical order, as the payloads have always had them.
#[derive(serde::Serialize)]
struct TransactionJson<'a> {
    amount: i64,
    balance_after: i64,
    balance_before: i64,
    card_id: &'a str,
    created_at: String,
    currency: &'a str,
    hold_id: Option<&'a str>,
    id: &'a str,
    object: &'static str,
    reference: Option<&'a str>,
    reverses: Option<&'a str>,
    #[serde(rename = "type")]
    transaction_type: &'static str,
}

fn transaction_json(t: &TransactionRecord) -> TransactionJson<'_> {
    TransactionJson {
        amount: t.amount,
        balance_after: t.balance_after,
        balance_before: t.balance_before,
        card_id: t.card_id.as_str(),
        created_at: rfc3339(t.created_at),
        currency: &t.currency,
        hold_id: t.hold_id.as_ref().map(|id| id.as_str()),
        id: t.id.as_str(),
        object: "transaction",
        reference: t.reference.as_deref(),
        reverses: t.reverses.as_ref().map(|id| id.as_str()),
        transaction_type: t.transaction_type.as_str(),
    }
}

/// What an event carries under `data`: a transaction (nearly every event), or anything else.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum EventData<'a> {
    Transaction { transaction: TransactionJson<'a> },
    Other(Value),
}

/// An event's payload, fields in alphabetical order (as they have always been written).
#[derive(serde::Serialize)]
struct EventPayload<'a> {
    created_at: String,
    data: EventData<'a>,
    id: &'a str,
    object: &'static str,
    #[serde(rename = "type")]
    event_type: &'static str,
}

// ---- the outbox: written inside the command's job ----

/// What a job must know before its command runs to tell afterwards what changed: a
/// checkout's status.
#[derive(Debug, Default)]
pub struct Before {
    checkout_status: Option<Status>,
}

/// The status of checkout `id` before a step of it runs.
pub(crate) async fn checkout_before(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    id: &CheckoutId,
) -> StoreResult<Before> {
    let status = match tx.checkout(cx.merchant, id).await? {
        Some(row) => Some(crate::checkout::parse(&row)?.status),
        None => None,
    };
    Ok(Before {
        checkout_status: status,
    })
}

/// Writes the events of the transactions a command appended, in its transaction.
pub(crate) async fn transactions(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    transactions: &[TransactionRecord],
) -> StoreResult<()> {
    write_events(tx, cx, transactions, Vec::new()).await
}

/// Writes the event of a checkout whose status a command changed, in its transaction.
pub(crate) async fn checkout_changed(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    checkout: &Checkout,
    before: Before,
) -> StoreResult<()> {
    if before.checkout_status == Some(checkout.status) {
        return Ok(());
    }
    let Some(event_type) = EventType::of_checkout(checkout.status) else {
        return Ok(());
    };
    let data = EventData::Other(json!({
        "checkout": {
            "object": "checkout",
            "id": checkout.id.as_str(),
            "status": checkout.status.as_str(),
            "amount": checkout.amount,
            "currency": checkout.currency.code(),
            "reference": checkout.reference,
        }
    }));
    write_events(tx, cx, &[], vec![(event_type, data)]).await
}

/// Writes `events` and those of `transactions` (their own, and `card.low_balance` where a
/// balance crossed an endpoint's threshold downwards).
async fn write_events(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    transactions: &[TransactionRecord],
    mut events: Vec<(EventType, EventData<'_>)>,
) -> StoreResult<()> {
    for t in transactions {
        if let Some(event_type) = EventType::of_transaction(t.transaction_type) {
            events.push((
                event_type,
                EventData::Transaction {
                    transaction: transaction_json(t),
                },
            ));
        }
    }
    if events.is_empty() && transactions.iter().all(|t| t.balance_after >= t.balance_before) {
        return Ok(());
    }
    let endpoints = tx.enabled_webhook_endpoints(cx.merchant).await?;
    for (event_type, data) in events {
        write_event(tx, cx, &endpoints, event_type, data, |_| true).await?;
    }
    for t in transactions.iter().filter(|t| t.balance_after < t.balance_before) {
        low_balance(tx, cx, &endpoints, t).await?;
    }
    Ok(())
}

/// `card.low_balance`, once per endpoint whose threshold the balance crossed downwards; written
/// only when there is such an endpoint, since the threshold is the endpoint's.
async fn low_balance(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    endpoints: &[WebhookEndpointRow],
    t: &TransactionRecord,
) -> StoreResult<()> {
    let crossed = |e: &WebhookEndpointRow| {
        e.low_balance_threshold
            .is_some_and(|threshold| t.balance_before >= threshold && t.balance_after < threshold)
    };
    if !endpoints
        .iter()
        .any(|e| subscribes(e, EventType::CardLowBalance) && crossed(e))
    {
        return Ok(());
    }
    let data = json!({
        "card": {
            "object": "card",
            "id": t.card_id.as_str(),
            "balance": t.balance_after,
            "currency": t.currency,
        },
        "transaction": transaction_json(t),
    });
    write_event(
        tx,
        cx,
        endpoints,
        EventType::CardLowBalance,
        EventData::Other(data),
        crossed,
    )
    .await
}

/// `hold.expired`, written where an expired hold's release is (the sweeper's job, or any write
/// that loads the card first).
pub(crate) async fn hold_expired(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    hold: &HoldSnapshot,
    release: &TransactionRecord,
) -> StoreResult<()> {
    let endpoints = tx.enabled_webhook_endpoints(cx.merchant).await?;
    let data = json!({
        "hold": {
            "object": "hold",
            "id": hold.id.as_str(),
            "card_id": hold.card_id.as_str(),
            "amount": hold.amount,
            "state": "expired",
            "expires_at": rfc3339(hold.expires_at),
        },
        "transaction": transaction_json(release),
    });
    write_event(
        tx,
        cx,
        &endpoints,
        EventType::HoldExpired,
        EventData::Other(data),
        |_| true,
    )
    .await
}

fn subscribes(endpoint: &WebhookEndpointRow, event_type: EventType) -> bool {
    endpoint.event_types.split(',').any(|t| t == event_type.as_str())
}

async fn write_event(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    endpoints: &[WebhookEndpointRow],
    event_type: EventType,
    data: EventData<'_>,
    also: impl Fn(&WebhookEndpointRow) -> bool,
) -> StoreResult<()> {
    let id = EventId::new(ids::prefixed("evt_"));
    let payload = serde_json::to_string(&EventPayload {
        created_at: rfc3339(cx.now),
        data,
        id: id.as_str(),
        object: "event",
        event_type: event_type.as_str(),
    })
    .map_err(|error| StoreError::Corrupt(format!("an event payload: {error}")))?;
    let event = EventRow {
        id,
        merchant_id: cx.merchant.clone(),
        event_type: event_type.as_str().to_owned(),
        payload,
        created_at: cx.now,
    };
    tx.insert_event(&event).await?;
    for endpoint in endpoints.iter().filter(|e| subscribes(e, event_type) && also(e)) {
        tx.insert_webhook_delivery(&DeliveryRow {
            id: WebhookDeliveryId::new(ids::prefixed("whd_")),
            merchant_id: cx.merchant.clone(),
            event_id: event.id.clone(),
            endpoint_id: endpoint.id.clone(),
            state: "pending".to_owned(),
            attempts: 0,
            next_attempt_at: cx.now,
            last_status: None,
            last_error: None,
            created_at: cx.now,
            updated_at: cx.now,
        })
        .await?;
    }
    Ok(())
}

// ---- registering an endpoint, retrying a delivery: commands, so that an Idempotency-Key is honoured ----

/// An endpoint's signing secret in clear: in the creation answer only, never in `Debug` output.
#[derive(Clone)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(redacted)")
    }
}

/// The commands of webhook endpoints that run as write jobs (so that an `Idempotency-Key`
/// replays their first answer).
#[derive(Debug, Clone)]
pub enum WebhookCommand {
    /// Registers an endpoint ([`Service::webhook_endpoint_command`]).
    CreateEndpoint(Box<EndpointCreation>),
    /// Makes a delivery due now.
    RetryDelivery { id: WebhookDeliveryId },
    /// Disables an endpoint ([`Service::disable_webhook_endpoint`]).
    DisableEndpoint { id: WebhookEndpointId },
}

/// What a [`WebhookCommand`] produced.
#[derive(Debug, Clone)]
pub enum WebhookOutcome {
    /// A new endpoint; the only time its signing secret leaves giftd.
    Endpoint {
        endpoint: Endpoint,
        secret: WebhookSecret,
    },
    /// A delivery made due now.
    DeliveryRetried { id: WebhookDeliveryId },
    /// An endpoint disabled (read back by its caller).
    Disabled,
}

#[async_trait]
impl Operation for WebhookCommand {
    type Outcome = WebhookOutcome;

    async fn execute(&self, tx: &mut dyn WriteTx, cx: &Context<'_>) -> Result<WebhookOutcome, Failure> {
        match self {
            WebhookCommand::CreateEndpoint(creation) => create_endpoint(tx, cx, creation).await,
            WebhookCommand::RetryDelivery { id } => retry_delivery(tx, cx, id).await,
            WebhookCommand::DisableEndpoint { id } => {
                tx.disable_webhook_endpoint(cx.merchant, id, cx.now).await?;
                Ok(WebhookOutcome::Disabled)
            }
        }
    }

    async fn events(
        &self,
        _: &mut dyn WriteTx,
        _: &Context<'_>,
        _: &WebhookOutcome,
        _: Before,
    ) -> StoreResult<()> {
        Ok(())
    }
}

/// `WebhookCommand::CreateEndpoint`: an endpoint as checked by
/// [`Service::webhook_endpoint_command`], its secret drawn and encrypted.
#[derive(Debug, Clone)]
pub struct EndpointCreation {
    id: WebhookEndpointId,
    url: String,
    event_types: String,
    low_balance_threshold: Option<i64>,
    encrypted_secret: Vec<u8>,
    secret: WebhookSecret,
}

/// Runs inside the command's job: refused past [`MAX_ENDPOINTS`] enabled endpoints.
async fn create_endpoint(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    creation: &EndpointCreation,
) -> Result<WebhookOutcome, Failure> {
    if tx.enabled_webhook_endpoints(cx.merchant).await?.len() >= MAX_ENDPOINTS {
        return Err(Failure::Refused(Refusal::Invalid {
            param: "url",
            message: format!(
                "a merchant may have at most {MAX_ENDPOINTS} enabled webhook endpoints; disable one first"
            ),
        }));
    }
    let row = WebhookEndpointRow {
        id: creation.id.clone(),
        merchant_id: cx.merchant.clone(),
        url: creation.url.clone(),
        secret: creation.encrypted_secret.clone(),
        event_types: creation.event_types.clone(),
        low_balance_threshold: creation.low_balance_threshold,
        enabled: true,
        created_at: cx.now,
        updated_at: cx.now,
    };
    tx.insert_webhook_endpoint(&row).await?;
    Ok(WebhookOutcome::Endpoint {
        endpoint: endpoint(&row),
        secret: creation.secret.clone(),
    })
}

/// `WebhookCommand::RetryDelivery`: the delivery is pending and due now (a delivered one is sent
/// again, a failed one gets one more attempt).
async fn retry_delivery(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    id: &WebhookDeliveryId,
) -> Result<WebhookOutcome, Failure> {
    if tx.retry_webhook_delivery(cx.merchant, id, cx.now).await? {
        Ok(WebhookOutcome::DeliveryRetried { id: id.clone() })
    } else {
        Err(Failure::Refused(Refusal::NotFound("webhook_delivery")))
    }
}

// ---- write jobs of the endpoints and the dispatcher ----

enum Op {
    Claim {
        lease_until: Timestamp,
        limit: u32,
        skip_endpoints: Vec<String>,
    },
    Record {
        attempt: AttemptRow,
        update: DeliveryUpdate,
    },
}

enum Done {
    Written,
    Claimed(Vec<ClaimedDelivery>),
}

struct WebhookJob {
    op: Op,
    now: Timestamp,
}

impl WebhookJob {
    async fn execute(&mut self, tx: &mut dyn WriteTx) -> StoreResult<Done> {
        Ok(match &self.op {
            Op::Claim {
                lease_until,
                limit,
                skip_endpoints,
            } => Done::Claimed(
                tx.claim_webhook_deliveries(self.now, *lease_until, *limit, skip_endpoints)
                    .await?,
            ),
            Op::Record { attempt, update } => {
                // Not applied when the delivery moved on meanwhile (a lease that ran out and
                // another attempt recorded first); the attempt row is kept either way.
                tx.record_webhook_attempt(attempt, update).await?;
                Done::Written
            }
        })
    }
}

impl TxWork for WebhookJob {
    type Answer = Done;

    fn run<'a>(&'a mut self, tx: &'a mut dyn WriteTx) -> BoxFuture<'a, StoreResult<Done>> {
        Box::pin(self.execute(tx))
    }
}

fn invalid(param: &'static str, message: &str) -> ServiceError {
    ServiceError::Invalid {
        param,
        message: message.to_owned(),
    }
}

/// An `http` or `https` URL with a host and no credentials in it.
fn check_url(url: &str) -> Result<(), ServiceError> {
    let refused = || {
        invalid(
            "url",
            "`url` must be an http or https URL with a host, without user or password",
        )
    };
    if url.len() > MAX_URL_BYTES {
        return Err(refused());
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| refused())?;
    let fits = matches!(parsed.scheme(), "http" | "https")
        && parsed.host_str().is_some_and(|host| !host.is_empty())
        && parsed.username().is_empty()
        && parsed.password().is_none();
    if fits { Ok(()) } else { Err(refused()) }
}

/// Makes ring rustls's process-wide crypto provider, once. Every reqwest client in a giftd
/// process (and in its tests and benchmark) verifies TLS through it; building one before this
/// runs panics, as reqwest is built without a provider of its own.
pub fn install_tls_provider() {
    // Installing fails only when a provider is already installed, which is what is wanted.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The HTTP client deliveries go out on: redirects are not followed (a 3xx is a failed attempt),
/// and an `https` endpoint's certificate must verify against the system's trusted roots or one
/// of `extra_roots` (PEM certificates, for a private CA; see docs/WEBHOOKS.md).
pub fn delivery_client(extra_roots: &[reqwest::Certificate]) -> Result<reqwest::Client, reqwest::Error> {
    install_tls_provider();
    extra_roots
        .iter()
        .cloned()
        .fold(
            reqwest::Client::builder(),
            reqwest::ClientBuilder::add_root_certificate,
        )
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("giftd-webhooks")
        .build()
}

impl Service {
    async fn webhook_job(&self, op: Op) -> Result<Done, ServiceError> {
        let job = WebhookJob { op, now: self.now() };
        Ok(run_answered(self.store().as_ref(), job).await?)
    }

    fn keys(&self) -> &Arc<Keys> {
        &self.inner.keys
    }

    /// The command that registers an endpoint, checked and with its signing secret drawn; run
    /// it with [`Service::execute`] (an `Idempotency-Key` then replays the first answer, secret
    /// included, instead of registering a second endpoint).
    pub fn webhook_endpoint_command(&self, new: NewEndpoint) -> Result<WebhookCommand, ServiceError> {
        check_url(&new.url)?;
        if new.event_types.is_empty() {
            return Err(invalid(
                "event_types",
                "`event_types` must name at least one event type",
            ));
        }
        if new.low_balance_threshold.is_some_and(|t| t < 0) {
            return Err(invalid(
                "low_balance_threshold",
                "`low_balance_threshold` must be 0 or more minor units",
            ));
        }
        if new.event_types.contains(&EventType::CardLowBalance) && new.low_balance_threshold.is_none() {
            return Err(invalid(
                "low_balance_threshold",
                "subscribing to card.low_balance takes a `low_balance_threshold`",
            ));
        }
        let mut types: Vec<&str> = Vec::new();
        for t in &new.event_types {
            if !types.contains(&t.as_str()) {
                types.push(t.as_str());
            }
        }
        let mut secret_bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut secret_bytes);
        let secret = WebhookSecret(format!("whsec_{}", hex::encode(secret_bytes)));
        let id = WebhookEndpointId::new(ids::prefixed("whe_"));
        Ok(WebhookCommand::CreateEndpoint(Box::new(EndpointCreation {
            encrypted_secret: self
                .keys()
                .encrypt(secret.0.as_bytes(), &secret_context(id.as_str())),
            id,
            url: new.url,
            event_types: types.join(","),
            low_balance_threshold: new.low_balance_threshold,
            secret,
        })))
    }

    pub async fn webhook_endpoints(
        &self,
        merchant: &MerchantId,
        page: &Page,
    ) -> Result<Vec<Endpoint>, ServiceError> {
        let rows = self.store().webhook_endpoints(merchant, page).await?;
        Ok(rows.iter().map(endpoint).collect())
    }

    pub async fn webhook_endpoint(
        &self,
        merchant: &MerchantId,
        id: &WebhookEndpointId,
    ) -> Result<Endpoint, ServiceError> {
        self.store()
            .webhook_endpoint(merchant, id)
            .await?
            .map(|row| endpoint(&row))
            .ok_or(ServiceError::NotFound("webhook_endpoint"))
    }

    /// Disables an endpoint: it gets no new deliveries, and its pending ones fail. An endpoint
    /// already disabled is left as it is.
    pub async fn disable_webhook_endpoint(
        &self,
        merchant: &MerchantId,
        id: &WebhookEndpointId,
    ) -> Result<Endpoint, ServiceError> {
        let found = self.webhook_endpoint(merchant, id).await?;
        if found.enabled {
            // A command like any other, for its audit row; its answer is the endpoint read back.
            let command = WebhookCommand::DisableEndpoint { id: id.clone() };
            let rendered = self
                .execute(
                    merchant.clone(),
                    command,
                    None,
                    Box::new(|result| crate::Rendered {
                        status: if result.is_ok() { 200 } else { 500 },
                        body: Vec::new(),
                    }),
                )
                .await?;
            if rendered.status != 200 {
                return Err(ServiceError::unexpected_outcome());
            }
        }
        self.webhook_endpoint(merchant, id).await
    }

    pub async fn events(
        &self,
        merchant: &MerchantId,
        event_type: Option<EventType>,
        page: &Page,
    ) -> Result<Vec<EventRow>, ServiceError> {
        Ok(self
            .store()
            .events(merchant, event_type.map(EventType::as_str), page)
            .await?)
    }

    pub async fn event(&self, merchant: &MerchantId, id: &EventId) -> Result<EventDetail, ServiceError> {
        let event = self
            .store()
            .event(merchant, id)
            .await?
            .ok_or(ServiceError::NotFound("event"))?;
        let (deliveries, attempts) = self.store().event_deliveries(merchant, id).await?;
        let deliveries = deliveries
            .into_iter()
            .map(|d| {
                let mine = attempts
                    .iter()
                    .filter(|a| a.delivery_id == d.id)
                    .cloned()
                    .collect();
                (d, mine)
            })
            .collect();
        Ok(EventDetail { event, deliveries })
    }

    /// One dispatcher round: claims the deliveries due now, attempts them all at once, records
    /// each attempt. Answers how many it attempted. (The running dispatcher,
    /// [`Service::run_webhook_dispatcher`], does not wait for a round's slowest receiver.)
    pub async fn dispatch_webhooks(
        &self,
        client: &reqwest::Client,
        policy: &DeliveryPolicy,
    ) -> Result<usize, ServiceError> {
        let claimed = self.claim_deliveries(policy, policy.batch, Vec::new()).await?;
        let count = claimed.len();
        let attempts = claimed
            .into_iter()
            .map(|delivery| self.attempt(client, policy, delivery));
        for result in futures::future::join_all(attempts).await {
            result?;
        }
        Ok(count)
    }

    /// Claims up to `limit` deliveries due now, none to `skip_endpoints`, each for as long as an
    /// attempt may take.
    async fn claim_deliveries(
        &self,
        policy: &DeliveryPolicy,
        limit: u32,
        skip_endpoints: Vec<String>,
    ) -> Result<Vec<ClaimedDelivery>, ServiceError> {
        let now = self.now();
        Ok(
            match self
                .webhook_job(Op::Claim {
                    lease_until: now.plus_millis(policy.lease_millis()),
                    limit,
                    skip_endpoints,
                })
                .await?
            {
                Done::Claimed(claimed) => claimed,
                Done::Written => Vec::new(),
            },
        )
    }

    async fn attempt(
        &self,
        client: &reqwest::Client,
        policy: &DeliveryPolicy,
        delivery: ClaimedDelivery,
    ) -> Result<(), ServiceError> {
        let secret = self
            .keys()
            .decrypt(&delivery.secret, &secret_context(delivery.endpoint_id.as_str()))
            .ok_or_else(|| StoreError::Corrupt(format!("the secret of endpoint {}", delivery.endpoint_id)))?;
        let attempted_at = self.now();
        let started = Instant::now();
        let signed = signature(
            &secret,
            attempted_at.unix_millis().div_euclid(1000),
            delivery.payload.as_bytes(),
        );
        let sent = client
            .post(&delivery.url)
            .timeout(policy.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signed)
            .header(EVENT_ID_HEADER, delivery.event_id.as_str())
            .header(EVENT_TYPE_HEADER, &delivery.event_type)
            .header(DELIVERY_ID_HEADER, delivery.delivery_id.as_str())
            .body(delivery.payload.clone())
            .send()
            .await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status, error) = match sent {
            Ok(response) => (Some(i64::from(response.status().as_u16())), None),
            // The error's text names the URL and the cause, never the secret or the body.
            Err(error) => (None, Some(describe(&error))),
        };
        let delivered = status.is_some_and(|s| (200..300).contains(&s));
        let attempts = delivery.attempts + 1;
        let now = self.now();
        let (state, next_attempt_at) = if delivered {
            ("delivered", now)
        } else if attempts >= policy.max_attempts {
            ("failed", now)
        } else {
            ("pending", now.plus_millis(policy.retry_delay_millis(attempts)))
        };
        tracing::info!(
            webhook.delivery_id = %delivery.delivery_id,
            webhook.event_id = %delivery.event_id,
            webhook.endpoint_id = %delivery.endpoint_id,
            http.status = status,
            attempt = attempts,
            state,
            duration_ms,
            "webhook delivery attempted"
        );
        let error =
            error.or_else(|| (!delivered).then(|| format!("HTTP status {}", status.unwrap_or_default())));
        self.webhook_job(Op::Record {
            attempt: AttemptRow {
                delivery_id: delivery.delivery_id.clone(),
                attempted_at,
                status,
                error: error.clone(),
                duration_ms,
            },
            update: DeliveryUpdate {
                delivery_id: delivery.delivery_id,
                claimed_attempts: delivery.attempts,
                state: state.to_owned(),
                next_attempt_at,
                last_status: status,
                last_error: error,
                now,
            },
        })
        .await?;
        Ok(())
    }

    /// Runs the dispatcher until `shutdown` resolves: every `policy.interval` it claims the
    /// deliveries due (at once again while claims come back full) and sends each in a task of
    /// its own, so that a receiver that answers slowly or never holds up no other delivery. An
    /// attempt holds one of [`MAX_DELIVERIES_IN_FLIGHT`] places for at most `policy.timeout`,
    /// and an endpoint with [`MAX_DELIVERIES_IN_FLIGHT_PER_ENDPOINT`] attempts under way is
    /// left out of the next claims, so that one receiver that hangs cannot take every place.
    /// On shutdown the attempts under way are abandoned to their lease; `client` comes from
    /// [`delivery_client`].
    pub async fn run_webhook_dispatcher(
        self,
        client: reqwest::Client,
        policy: DeliveryPolicy,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let policy = Arc::new(policy);
        let mut in_flight = tokio::task::JoinSet::new();
        let mut per_endpoint: HashMap<WebhookEndpointId, usize> = HashMap::new();
        let mut interval = tokio::time::interval(policy.interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = interval.tick() => {
                    loop {
                        while let Some(finished) = in_flight.try_join_next() {
                            attempt_finished(finished, &mut per_endpoint);
                        }
                        let room = MAX_DELIVERIES_IN_FLIGHT.saturating_sub(in_flight.len());
                        let limit = policy.batch.min(u32::try_from(room).unwrap_or(u32::MAX));
                        if limit == 0 {
                            break;
                        }
                        let busy = per_endpoint
                            .iter()
                            .filter(|(_, count)| **count >= MAX_DELIVERIES_IN_FLIGHT_PER_ENDPOINT)
                            .map(|(endpoint, _)| endpoint.to_string())
                            .collect();
                        match self.claim_deliveries(&policy, limit, busy).await {
                            Ok(claimed) => {
                                let full = claimed.len() == limit as usize;
                                for delivery in claimed {
                                    *per_endpoint.entry(delivery.endpoint_id.clone()).or_default() += 1;
                                    let service = self.clone();
                                    let client = client.clone();
                                    let policy = Arc::clone(&policy);
                                    in_flight.spawn(async move {
                                        let endpoint = delivery.endpoint_id.clone();
                                        // A panic (a bug) still gives its place back.
                                        let attempt = service.attempt(&client, &policy, delivery);
                                        let outcome = std::panic::AssertUnwindSafe(attempt)
                                            .catch_unwind()
                                            .await
                                            .unwrap_or_else(|_| {
                                                Err(ServiceError::Internal(StoreError::Corrupt(
                                                    "a webhook attempt panicked".into(),
                                                )))
                                            });
                                        (endpoint, outcome)
                                    });
                                }
                                if !full {
                                    break;
                                }
                            }
                            Err(error) => {
                                tracing::error!(error = %error, "webhook dispatch failed");
                                break;
                            }
                        }
                    }
                }
            }
        }
        // Attempts under way are abandoned (dropping the set aborts them): each is claimed
        // again once its lease runs out, so a receiver that hangs never delays a shutdown.
        drop(in_flight);
    }
}

/// Deliveries the dispatcher attempts at once at most; each holds an outgoing connection
/// (`giftd serve` keeps a file for each under its open-file limit).
pub const MAX_DELIVERIES_IN_FLIGHT: usize = 128;
/// Attempts to one endpoint under way at once before the dispatcher stops claiming more of its
/// deliveries (a claim may still bring it up to `batch` more at once).
pub const MAX_DELIVERIES_IN_FLIGHT_PER_ENDPOINT: usize = 16;

type AttemptDone = Result<(WebhookEndpointId, Result<(), ServiceError>), tokio::task::JoinError>;

/// Counts a finished attempt off its endpoint. An attempt whose outcome could not be recorded
/// stays claimed until its lease ends, then is attempted again: nothing is lost, so a failure
/// is only logged.
fn attempt_finished(finished: AttemptDone, per_endpoint: &mut HashMap<WebhookEndpointId, usize>) {
    match finished {
        Ok((endpoint, outcome)) => {
            if let Some(count) = per_endpoint.get_mut(&endpoint) {
                *count -= 1;
                if *count == 0 {
                    per_endpoint.remove(&endpoint);
                }
            }
            if let Err(error) = outcome {
                tracing::error!(error = %error, "recording a webhook attempt failed");
            }
        }
        // Only an attempt aborted at shutdown ends so (a panic is caught in the task).
        Err(error) => tracing::error!(error = %error, "a webhook attempt ended abnormally"),
    }
}

/// What went wrong with an attempt, with its causes (a refused certificate shows only there), in
/// at most 500 bytes. It names the URL and the cause, never the secret or the body.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_builder() {
        "unsupported URL"
    } else {
        "request failed"
    };
    let mut text = format!("{kind}: {error}");
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = inner.source();
    }
    text.truncate(text.floor_char_boundary(500));
    text
}

#[cfg(test)]
mod tests {
    use giftd_domain::{CardId, HoldId, MerchantId, TransactionId};

    use super::*;

    fn record(reference: Option<&str>, hold: bool) -> TransactionRecord {
        TransactionRecord {
            id: TransactionId::new("txn_1"),
            merchant_id: MerchantId::new("mer_1"),
            card_id: CardId::new("card_1"),
            transaction_type: TransactionType::Capture,
            amount: 250,
            currency: "USD".into(),
            balance_before: 1000,
            balance_after: 750,
            reference: reference.map(str::to_owned),
            reverses: None,
            hold_id: hold.then(|| HoldId::new("hold_1")),
            channel: Some(giftd_domain::Channel::Native),
            created_at: Timestamp::from_unix_millis(1_706_702_400_123),
        }
    }

    #[test]
    fn a_transaction_event_is_written_byte_for_byte_as_the_value_tree_wrote_it() {
        for t in [record(Some("order \"7\" é"), true), record(None, false)] {
            let typed = serde_json::to_string(&EventPayload {
                created_at: rfc3339(t.created_at),
                data: EventData::Transaction {
                    transaction: transaction_json(&t),
                },
                id: "evt_1",
                object: "event",
                event_type: "transaction.captured",
            })
            .unwrap();
            // The form events had before they were typed: a `Value` tree, keys sorted.
            let tree = json!({
                "object": "event",
                "id": "evt_1",
                "type": "transaction.captured",
                "created_at": rfc3339(t.created_at),
                "data": {"transaction": {
                    "object": "transaction",
                    "id": t.id.as_str(),
                    "card_id": t.card_id.as_str(),
                    "type": t.transaction_type.as_str(),
                    "amount": t.amount,
                    "currency": t.currency,
                    "balance_before": t.balance_before,
                    "balance_after": t.balance_after,
                    "reference": t.reference,
                    "reverses": t.reverses.as_ref().map(|id| id.as_str()),
                    "hold_id": t.hold_id.as_ref().map(|id| id.as_str()),
                    "created_at": rfc3339(t.created_at),
                }},
            });
            assert_eq!(typed, tree.to_string());
        }
    }
}
