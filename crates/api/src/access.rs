//! What a request needs of its caller (`giftd_domain::Access`), decided once for every front-end
//! from the method and the full path; an API key's scope or a staff member's role then allows
//! it or not. A till's front-ends (the Adyen Terminal and Stored Value APIs, Clover's Gift Card
//! API) need `Pos`; so do the native card operations a till makes (lookups, activations, loads,
//! redemptions, holds, voids and refunds). Freezing and unfreezing a card is the support desk's
//! (`CardSupport`), and so is asking for an adjustment (`Adjust`), which a second person
//! approves (`Approve`, a person only); API keys and changes to webhooks are a developer's
//! (`Developer`); the reports and the audit trail are `Reports`; staff accounts and the
//! merchant's settings are `Staff`, and one's own account (`/v1/staff/me`) is `Own`. Other
//! reads need `Read`; every other write `Full`. Each front-end's extractor asks this and
//! answers a refusal in its own shape (403 `insufficient_scope` or `insufficient_role`).

use axum::extract::OriginalUri;
use axum::http::Method;
use axum::http::request::Parts;
use giftd_domain::Access;

/// The access a request needs.
pub fn required(method: &Method, path: &str) -> Access {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let reading = matches!(*method, Method::GET | Method::HEAD);
    match segments.as_slice() {
        ["", "sync"] | ["", "clover", ..] | ["", "pal", "servlet", "StoredValue", ..] => Access::Pos,
        ["", "v1", "api_keys", ..] => Access::Developer,
        ["", "v1", "staff", "me", ..] => Access::Own,
        ["", "v1", "staff", ..] => Access::Staff,
        ["", "v1", "settings"] if !reading => Access::Staff,
        ["", "v1", "reports" | "audit_events", ..] => Access::Reports,
        // A printer's file holds numbers and codes: even reading a batch is card stock work.
        ["", "v1", "card_batches", ..] => Access::Full,
        _ if reading => Access::Read,
        ["", "v1", "webhook_endpoints" | "webhook_deliveries", ..] => Access::Developer,
        ["", "v1", "cards", _, "freeze" | "unfreeze"] if *method == Method::POST => Access::CardSupport,
        ["", "v1", "cards", _, "adjustments"] if *method == Method::POST => Access::Adjust,
        // A new address for a cardholder who lost theirs, or one revoked: the support desk's.
        ["", "v1", "cards", _, "cardholder_links", ..] => Access::CardSupport,
        ["", "v1", "adjustments", _, "approve" | "reject"] if *method == Method::POST => Access::Approve,
        ["", "v1", "cards", "lookup"]
        | ["", "v1", "cards", _, "activate" | "load" | "redeem" | "holds"]
        | ["", "v1", "holds", _, "capture" | "release"]
        | ["", "v1", "transactions", _, "void" | "refund"]
            if *method == Method::POST =>
        {
            Access::Pos
        }
        _ => Access::Full,
    }
}

/// The access the request of `parts` needs: its full path, also inside a nested router.
pub fn of(parts: &Parts) -> Access {
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.path(), |original| original.0.path());
    required(&parts.method, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_needs_the_access_of_its_kind_of_work() {
        let cases = [
            (Method::POST, "/sync", Access::Pos),
            (Method::POST, "/clover/v1/charges", Access::Pos),
            (Method::POST, "/pal/servlet/StoredValue/v46/load", Access::Pos),
            (Method::POST, "/v1/cards/lookup", Access::Pos),
            (Method::POST, "/v1/cards/card_1/redeem", Access::Pos),
            (Method::POST, "/v1/cards/card_1/holds", Access::Pos),
            (Method::POST, "/v1/holds/hold_1/capture", Access::Pos),
            (Method::POST, "/v1/transactions/txn_1/void", Access::Pos),
            (Method::GET, "/v1/cards/card_1", Access::Read),
            (Method::GET, "/gr4vy/transactions", Access::Read),
            (Method::GET, "/v1/api_keys", Access::Developer),
            (Method::POST, "/v1/api_keys/key_1/rotate", Access::Developer),
            (Method::GET, "/v1/reports/liability", Access::Reports),
            (Method::GET, "/v1/audit_events", Access::Reports),
            (Method::GET, "/v1/webhook_endpoints", Access::Read),
            (Method::DELETE, "/v1/webhook_endpoints/whe_1", Access::Developer),
            (
                Method::POST,
                "/v1/webhook_deliveries/whd_1/retry",
                Access::Developer,
            ),
            (Method::POST, "/v1/cards/card_1/freeze", Access::CardSupport),
            (Method::POST, "/v1/cards/card_1/adjustments", Access::Adjust),
            (
                Method::POST,
                "/v1/cards/card_1/cardholder_links",
                Access::CardSupport,
            ),
            (
                Method::DELETE,
                "/v1/cards/card_1/cardholder_links/chl_1",
                Access::CardSupport,
            ),
            (Method::GET, "/v1/cards/card_1/cardholder_links", Access::Read),
            (Method::POST, "/v1/adjustments/adj_1/approve", Access::Approve),
            (Method::GET, "/v1/adjustments", Access::Read),
            (Method::GET, "/v1/settings", Access::Read),
            (Method::PATCH, "/v1/settings", Access::Staff),
            (Method::GET, "/v1/staff", Access::Staff),
            (Method::PATCH, "/v1/staff/stf_1", Access::Staff),
            (Method::GET, "/v1/staff/me", Access::Own),
            (Method::POST, "/v1/staff/me/password", Access::Own),
            (Method::POST, "/v1/programs", Access::Full),
            (Method::PATCH, "/v1/programs/prog_1", Access::Full),
            (Method::POST, "/v1/cards", Access::Full),
            (Method::POST, "/v1/cards/card_1/cashout", Access::Full),
            (Method::POST, "/gr4vy/transactions", Access::Full),
            (Method::POST, "/giftcard/v1/cards/card_1/redeem", Access::Full),
            (Method::POST, "/v1/webhook_endpoints", Access::Developer),
            (Method::POST, "/v1/card_batches", Access::Full),
            (Method::GET, "/v1/card_batches/stk_1/file", Access::Full),
            (Method::GET, "/v1/card_batches", Access::Full),
        ];
        for (method, path, access) in cases {
            assert_eq!(required(&method, path), access, "{method} {path}");
        }
    }
}
