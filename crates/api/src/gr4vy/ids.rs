//! Gr4vy's ids are UUIDs (`format: uuid` in its schema: transactions, gift cards, gift card
//! redemptions, refunds, buyers), and code that stores them as UUIDs breaks on anything else.
//! giftd's ids are a type prefix and a UUIDv7 in hex (`card_0190…`), so this facade shows the
//! UUID and reads either form back: the prefix is known from where the id is used. A refund
//! that reached several tenders is one Gr4vy refund per tender: the refund's UUID with its
//! last hex digit replaced by the tender's place (1 to 11), found back by comparing. A buyer
//! (a wallet user, named by the merchant's own id) gets a UUID derived from the merchant and
//! that id, which the store keeps with the user; `buyer_id` takes it, or the user id itself.

use giftd_domain::wallet::UserId;
use giftd_domain::{CardId, CheckoutId, MerchantId};
use uuid::Uuid;

/// The UUID of a giftd id (`prefix` + 32 hex digits); any other id is shown as it is.
pub fn public(id: &str) -> String {
    id.split_once('_')
        .and_then(|(_, hex)| Uuid::try_parse(hex).ok())
        .map_or_else(|| id.to_owned(), |uuid| uuid.hyphenated().to_string())
}

/// A giftd id of `prefix` from what a request sent: its UUID, or the giftd id itself.
fn internal(prefix: &str, value: &str) -> String {
    match Uuid::try_parse(value) {
        Ok(uuid) if value.len() == 36 => format!("{prefix}{}", uuid.simple()),
        _ => value.to_owned(),
    }
}

/// A gift card id from a path, an item or a filter.
pub fn card(value: &str) -> Option<CardId> {
    CardId::parse(&internal(CardId::PREFIX, value))
}

/// A transaction id: a checkout's.
pub fn checkout(value: &str) -> Option<CheckoutId> {
    CheckoutId::parse(&internal(CheckoutId::PREFIX, value))
}

/// The Gr4vy id of a refund's part on its `place`-th tender (counted from 1) when the refund
/// reached `tenders` tenders; the refund's own UUID when it reached one.
pub fn refund_part(refund_id: &str, place: usize, tenders: usize) -> String {
    let mut id = public(refund_id);
    if tenders <= 1 {
        return id;
    }
    if id == refund_id {
        // Not a giftd id, so no UUID to vary.
        return format!("{refund_id}_{place}");
    }
    let digit =
        char::from_digit(u32::try_from(place % 16).expect("a place below 16"), 16).expect("a hex digit");
    id.pop();
    id.push(digit);
    id
}

/// What the giftd id of the refund a Gr4vy refund id (a UUID, maybe a part's, or giftd's
/// `chr_…` or `chr_…_n`) names starts with: `chr_` and its first 31 hex digits, since a part's
/// UUID differs from its refund's in the last one. `None` for what cannot be a refund's id.
pub fn refund_search_prefix(value: &str) -> Option<String> {
    const PREFIX: &str = "chr_";
    let hex = match Uuid::try_parse(value) {
        Ok(uuid) if value.len() == 36 => uuid.simple().to_string(),
        _ => value.strip_prefix(PREFIX)?.get(..32)?.to_ascii_lowercase(),
    };
    hex.bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| format!("{PREFIX}{}", &hex[..31]))
}

/// The UUID a buyer (a merchant's wallet user) is shown with: `UserId::public_id`, which the
/// store keeps with the user so that `buyer_id` can name the buyer by it.
pub fn buyer(merchant: &MerchantId, user: &UserId) -> String {
    user.public_id(merchant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_giftd_id_is_shown_as_its_uuid_and_read_back_from_either_form() {
        let id = "card_0190a5b2c3d47e8f9a0b1c2d3e4f5a6b";
        let shown = public(id);
        assert_eq!(shown, "0190a5b2-c3d4-7e8f-9a0b-1c2d3e4f5a6b");
        assert_eq!(card(&shown).map(|c| c.to_string()).as_deref(), Some(id));
        assert_eq!(card(id).map(|c| c.to_string()).as_deref(), Some(id));
        assert_eq!(
            card(&shown.to_uppercase()).map(|c| c.to_string()).as_deref(),
            Some(id)
        );
        assert!(checkout(&shown).is_some_and(|c| c.as_str().starts_with("chk_")));
        // Not a giftd id: shown as it is, and not read as one.
        assert_eq!(public("legacy-id"), "legacy-id");
        assert!(card("0190a5b2c3d47e8f9a0b1c2d3e4f5a6b").is_none());
    }

    #[test]
    fn each_part_of_a_refund_over_several_tenders_has_its_own_uuid() {
        let refund = "chr_0190a5b2c3d47e8f9a0b1c2d3e4f5a6b";
        assert_eq!(refund_part(refund, 1, 1), "0190a5b2-c3d4-7e8f-9a0b-1c2d3e4f5a6b");
        let parts: Vec<String> = (1..=11).map(|place| refund_part(refund, place, 11)).collect();
        for part in &parts {
            assert!(Uuid::try_parse(part).is_ok(), "{part}");
        }
        let distinct: std::collections::HashSet<&String> = parts.iter().collect();
        assert_eq!(distinct.len(), parts.len());
    }

    #[test]
    fn a_refund_is_searched_by_the_start_it_shares_with_its_parts() {
        let refund = "chr_0190a5b2c3d47e8f9a0b1c2d3e4f5a6b";
        let expected = Some("chr_0190a5b2c3d47e8f9a0b1c2d3e4f5a6".to_owned());
        assert_eq!(refund_search_prefix(&public(refund)), expected);
        assert_eq!(refund_search_prefix(&refund_part(refund, 3, 4)), expected);
        assert_eq!(refund_search_prefix(refund), expected);
        assert_eq!(refund_search_prefix(&format!("{refund}_2")), expected);
        assert_eq!(refund_search_prefix("chr_nothex"), None);
        assert_eq!(refund_search_prefix("x"), None);
    }

    #[test]
    fn a_buyers_uuid_is_stable_and_differs_between_merchants() {
        let user = UserId::parse("customer-42").unwrap();
        let a = MerchantId::new("mer_a");
        let b = MerchantId::new("mer_b");
        assert_eq!(buyer(&a, &user), buyer(&a, &user));
        assert_ne!(buyer(&a, &user), buyer(&b, &user));
        assert!(Uuid::try_parse(&buyer(&a, &user)).is_ok());
    }
}
