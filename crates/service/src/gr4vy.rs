//! What the Gr4vy-style facade needs of a card beyond the native reads: the first digits of its
//! number (Gr4vy's `bin` and `sub_bin`). giftd keeps card numbers encrypted with only their last
//! 4 digits in clear; this is the one place that decrypts one for display, and it gives out
//! nothing past the 9th digit.

use crate::views::Card;

use crate::Service;

/// Digits of a number shown as `bin` (6) and `sub_bin` (3).
pub const NUMBER_PREFIX_DIGITS: usize = 9;
/// Numbers shorter than this show no prefix: the first 9 digits would overlap the last 4
/// (which are shown as `last4`) and leave too little of the number unseen.
pub const MIN_DIGITS_FOR_PREFIX: usize = 13;

impl Service {
    /// The first 9 digits of `card`'s number, for a card the caller has already read with its
    /// merchant's scope. `None` for numbers shorter than 13 digits, or a number that does not
    /// decrypt (logged: the row is not the one that was written).
    pub fn card_number_prefix(&self, card: &Card) -> Option<String> {
        let Some(plain) = self
            .keys
            .decrypt(&card.number_ciphertext, card.snapshot.id.as_str().as_bytes())
        else {
            tracing::error!(card.id = %card.snapshot.id, "a card number does not decrypt");
            return None;
        };
        let digits = std::str::from_utf8(&plain).ok()?;
        (digits.len() >= MIN_DIGITS_FOR_PREFIX && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits[..NUMBER_PREFIX_DIGITS].to_owned())
    }
}
