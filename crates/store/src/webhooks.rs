//! The records of webhooks as the store keeps them: endpoints (their secret only as the
//! service's ciphertext), events of the outbox (their payload as the exact JSON text that is
//! delivered), deliveries and their attempts. Plain data; what the types and states mean is
//! the service's business, and the store decides nothing in them.

use giftd_domain::{EventId, MerchantId, Timestamp, WebhookDeliveryId, WebhookEndpointId};

/// A merchant's webhook endpoint.
#[derive(Debug, Clone)]
pub struct WebhookEndpointRow {
    pub id: WebhookEndpointId,
    pub merchant_id: MerchantId,
    pub url: String,
    /// The signing secret, encrypted by the service. Never in clear here.
    pub secret: Vec<u8>,
    /// The service's comma-separated list of event types.
    pub event_types: String,
    pub low_balance_threshold: Option<i64>,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An event of the outbox.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: EventId,
    pub merchant_id: MerchantId,
    pub event_type: String,
    /// The JSON body that is delivered, byte for byte.
    pub payload: String,
    pub created_at: Timestamp,
}

/// One event to one endpoint.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: WebhookDeliveryId,
    pub merchant_id: MerchantId,
    pub event_id: EventId,
    pub endpoint_id: WebhookEndpointId,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One attempt of a delivery.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub delivery_id: WebhookDeliveryId,
    pub attempted_at: Timestamp,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// A delivery claimed by a dispatcher, with what it needs to attempt it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery_id: WebhookDeliveryId,
    pub merchant_id: MerchantId,
    pub event_id: EventId,
    pub event_type: String,
    pub payload: String,
    pub endpoint_id: WebhookEndpointId,
    pub url: String,
    pub secret: Vec<u8>,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// What an attempt leaves a delivery as: the guarded update of its row.
#[derive(Debug, Clone)]
pub struct DeliveryUpdate {
    pub delivery_id: WebhookDeliveryId,
    /// The attempts the claim saw: the update applies only if no one recorded one since.
    pub claimed_attempts: i64,
    pub state: String,
    pub next_attempt_at: Timestamp,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub now: Timestamp,
}

// ---- decoding, shared by both backends' rows ----

use crate::StoreResult;
use crate::rows::Columns;

pub(crate) fn endpoint_row(row: &impl Columns) -> StoreResult<WebhookEndpointRow> {
    Ok(WebhookEndpointRow {
        id: WebhookEndpointId::new(row.text("id")?),
        merchant_id: MerchantId::new(row.text("merchant_id")?),
        url: row.text("url")?,
        secret: row.bytes("secret")?,
        event_types: row.text("event_types")?,
        low_balance_threshold: row.optional_integer("low_balance_threshold")?,
        enabled: row.boolean("enabled")?,
        created_at: Timestamp::from_unix_millis(row.integer("created_at")?),
        updated_at: Timestamp::from_unix_millis(row.integer("updated_at")?),
    })
}

pub(crate) fn event_row(row: &impl Columns) -> StoreResult<EventRow> {
    Ok(EventRow {
        id: EventId::new(row.text("id")?),
        merchant_id: MerchantId::new(row.text("merchant_id")?),
        event_type: row.text("type")?,
        payload: row.text("payload")?,
        created_at: Timestamp::from_unix_millis(row.integer("created_at")?),
    })
}

pub(crate) fn delivery_row(row: &impl Columns) -> StoreResult<DeliveryRow> {
    Ok(DeliveryRow {
        id: WebhookDeliveryId::new(row.text("id")?),
        merchant_id: MerchantId::new(row.text("merchant_id")?),
        event_id: EventId::new(row.text("event_id")?),
        endpoint_id: WebhookEndpointId::new(row.text("endpoint_id")?),
        state: row.text("state")?,
        attempts: row.integer("attempts")?,
        next_attempt_at: Timestamp::from_unix_millis(row.integer("next_attempt_at")?),
        last_status: row.optional_integer("last_status")?,
        last_error: row.optional_text("last_error")?,
        created_at: Timestamp::from_unix_millis(row.integer("created_at")?),
        updated_at: Timestamp::from_unix_millis(row.integer("updated_at")?),
    })
}

pub(crate) fn attempt_row(row: &impl Columns) -> StoreResult<AttemptRow> {
    Ok(AttemptRow {
        delivery_id: WebhookDeliveryId::new(row.text("delivery_id")?),
        attempted_at: Timestamp::from_unix_millis(row.integer("attempted_at")?),
        status: row.optional_integer("status")?,
        error: row.optional_text("error")?,
        duration_ms: row.integer("duration_ms")?,
    })
}

/// A claimed delivery with what sending it needs (the dispatcher's claim query).
pub(crate) fn claimed_delivery(row: &impl Columns) -> StoreResult<ClaimedDelivery> {
    Ok(ClaimedDelivery {
        delivery_id: WebhookDeliveryId::new(row.text("delivery_id")?),
        merchant_id: MerchantId::new(row.text("merchant_id")?),
        event_id: EventId::new(row.text("event_id")?),
        event_type: row.text("type")?,
        payload: row.text("payload")?,
        endpoint_id: WebhookEndpointId::new(row.text("endpoint_id")?),
        url: row.text("url")?,
        secret: row.bytes("secret")?,
        attempts: row.integer("attempts")?,
    })
}
