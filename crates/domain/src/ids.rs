//! Typed identifiers. Ids are opaque strings with a type prefix (`card_`, `prog_`, ...); the
//! domain only compares them. Generating them is the service's job (it owns randomness).

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// Wraps an id read from storage or built by the service.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// Parses an id from a request path: it must carry this type's prefix, so that
            /// `card_...` is never looked up as a hold.
            pub fn parse(value: &str) -> Option<Self> {
                let rest = value.strip_prefix($prefix)?;
                let plausible = !rest.is_empty()
                    && rest.len() <= 64
                    && rest.bytes().all(|b| b.is_ascii_alphanumeric());
                plausible.then(|| Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        /// Stored state (a checkout's document) names ids as plain strings.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::parse(&value).ok_or_else(|| {
                    serde::de::Error::custom(format!("not a {} id: {value}", $prefix))
                })
            }
        }
    };
}

id_type!(
    /// A tenant.
    MerchantId,
    "mer_"
);
id_type!(ProgramId, "prog_");
id_type!(CardId, "card_");
id_type!(HoldId, "hold_");
id_type!(TransactionId, "txn_");
id_type!(
    /// A split-tender checkout.
    CheckoutId,
    "chk_"
);
id_type!(
    /// Where a merchant's webhook events are POSTed.
    WebhookEndpointId,
    "whe_"
);
id_type!(
    /// An event of the webhook outbox.
    EventId,
    "evt_"
);
id_type!(
    /// One event on its way to one endpoint.
    WebhookDeliveryId,
    "whd_"
);
id_type!(
    /// A merchant's API key (the id it is managed by; the key itself is a secret).
    ApiKeyId,
    "key_"
);
id_type!(
    /// A merchant's staff member: a person who signs in.
    StaffId,
    "stf_"
);
id_type!(
    /// A staff member's signed-in session (the token it is used by is a secret).
    StaffSessionId,
    "ses_"
);
id_type!(
    /// A row of the audit trail.
    AuditEventId,
    "aud_"
);
id_type!(
    /// A request to put value on or take it off a card by hand.
    AdjustmentId,
    "adj_"
);
id_type!(
    /// A card's page for its cardholder (the token in its address is a secret).
    CardholderLinkId,
    "chl_"
);
