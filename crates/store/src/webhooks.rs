//! The records of webhooks as the store keeps them: endpoints (their secret only as the
//! service's ciphertext), events of the outbox (their payload as the exact JSON text that is
//! delivered), deliveries and their attempts. Plain data; what the types and states mean is
//! the service's business, and the store decides nothing in them.

use giftd_domain::{MerchantId, Timestamp};

/// A merchant's webhook endpoint.
#[derive(Debug, Clone)]
pub struct WebhookEndpointRow {
    pub id: String,
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
    pub id: String,
    pub merchant_id: MerchantId,
    pub event_type: String,
    /// The JSON body that is delivered, byte for byte.
    pub payload: String,
    pub created_at: Timestamp,
}

/// One event to one endpoint.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: String,
    pub merchant_id: MerchantId,
    pub event_id: String,
    pub endpoint_id: String,
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
    pub delivery_id: String,
    pub attempted_at: Timestamp,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// A delivery claimed by a dispatcher, with what it needs to attempt it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery_id: String,
    pub merchant_id: MerchantId,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    pub endpoint_id: String,
    pub url: String,
    pub secret: Vec<u8>,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// What an attempt leaves a delivery as: the guarded update of its row.
#[derive(Debug, Clone)]
pub struct DeliveryUpdate {
    pub delivery_id: String,
    /// The attempts the claim saw: the update applies only if no one recorded one since.
    pub claimed_attempts: i64,
    pub state: String,
    pub next_attempt_at: Timestamp,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub now: Timestamp,
}
