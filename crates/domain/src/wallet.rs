//! Customer wallets: the cards a merchant's customer (a user, named by the merchant's own id)
//! keeps, either as `owner` (saved with proof of possession, or received as a gift) or as
//! `shared` (another user gave equal access), and the rules about them: at most
//! [`MAX_WALLET_CARDS`] cards per user, one preferred card, and which cards a listing shows.
//! Pure: no IO, no clock (time comes in as an argument).

use std::fmt;

use crate::card::CardState;
use crate::error::DomainError;
use crate::ids::{CardId, MerchantId};
use crate::operations::CardSnapshot;
use crate::time::Timestamp;

/// How many cards one user may hold, saved and shared together (Gr4vy's limit of 10 (seed 002)).
pub const MAX_WALLET_CARDS: usize = 10;
/// The refusal's message, word for word as the seed gives it.
pub const WALLET_LIMIT_MESSAGE: &str =
    "The buyer's gift card count has already reached the maximum limit of 10 gift cards";
/// The longest user id a merchant may use.
pub const MAX_USER_ID_LENGTH: usize = 64;

/// A merchant's customer, by the merchant's own id: 1 to 64 characters, none of them a
/// control character or `/` (it travels in URL paths). Compared exactly (case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(String);

impl UserId {
    /// The UUID this user of `merchant` is shown with where a front-end names customers by
    /// UUID (Gr4vy's buyers): a UUIDv8 of a SHA-256 digest of both, so the same user always
    /// has the same one and one merchant's say nothing about another's. The store keeps it
    /// with the user (`wallet_users.public_id`), so that it can be read back.
    pub fn public_id(&self, merchant: &MerchantId) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("giftd wallet user\0{merchant}\0{}", self.0).as_bytes());
        let bytes: [u8; 16] = digest[..16].try_into().expect("16 bytes of a 32-byte digest");
        uuid::Uuid::new_v8(bytes).hyphenated().to_string()
    }

    pub fn parse(value: &str) -> Option<Self> {
        let plausible = !value.is_empty()
            && value.chars().count() <= MAX_USER_ID_LENGTH
            && !value.chars().any(|c| c.is_control() || c == '/');
        plausible.then(|| Self(value.to_owned()))
    }

    /// Wraps an id read from storage.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a user holds a card. Both give equal use of the card (redeem, load, balance); only an
/// owner may share it or give it away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Owner,
    Shared,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Shared => "shared",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "owner" => Some(Self::Owner),
            "shared" => Some(Self::Shared),
            _ => None,
        }
    }
}

/// One card in one user's wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletCard {
    pub user_id: UserId,
    pub card_id: CardId,
    pub access: Access,
    pub preferred: bool,
    pub created_at: Timestamp,
}

/// Whether `card_id` may join a wallet that holds `entries`: a card already there takes no
/// new room (saving twice is harmless); otherwise the wallet must hold fewer than 10.
pub fn check_room(entries: &[WalletCard], card_id: &CardId) -> Result<(), DomainError> {
    if entries.iter().any(|e| &e.card_id == card_id) || entries.len() < MAX_WALLET_CARDS {
        Ok(())
    } else {
        Err(DomainError::LimitExceeded {
            reason: WALLET_LIMIT_MESSAGE.to_owned(),
        })
    }
}

/// Whether `refusal` is the wallet limit (front-ends answer it with the seed's exact message).
pub fn is_wallet_limit(error: &DomainError) -> bool {
    matches!(error, DomainError::LimitExceeded { reason } if reason == WALLET_LIMIT_MESSAGE)
}

/// Whether a wallet listing shows the card: it holds value, has not expired and is not closed.
pub fn listed(card: &CardSnapshot, now: Timestamp) -> bool {
    card.balance > 0 && card.state != CardState::Closed && card.expires_at.is_none_or(|at| at > now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> WalletCard {
        WalletCard {
            user_id: UserId::new("u"),
            card_id: CardId::new(format!("card_{n}")),
            access: Access::Owner,
            preferred: false,
            created_at: Timestamp::from_unix_millis(0),
        }
    }

    #[test]
    fn the_eleventh_card_is_refused_with_the_seed_message() {
        let entries: Vec<_> = (0..10).map(entry).collect();
        let error = check_room(&entries, &CardId::new("card_new")).unwrap_err();
        assert!(is_wallet_limit(&error));
        assert!(check_room(&entries[..9], &CardId::new("card_new")).is_ok());
        // A card already in the wallet takes no new room.
        assert!(check_room(&entries, &CardId::new("card_3")).is_ok());
    }

    #[test]
    fn user_ids_are_the_merchants_own_strings() {
        assert!(UserId::parse("customer-42@example.com").is_some());
        assert!(UserId::parse(&"x".repeat(64)).is_some());
        assert!(UserId::parse(&"x".repeat(65)).is_none());
        assert!(UserId::parse("").is_none());
        assert!(UserId::parse("a/b").is_none());
        assert!(UserId::parse("a\nb").is_none());
    }
}
