//! What a request needs of its API key (`giftd_domain::Access`), decided once for every
//! front-end from the method and the full path. A till's front-ends (the Adyen Terminal and
//! Stored Value APIs, Clover's Gift Card API) need `pos`; so do the native card operations a
//! till makes (lookups, activations, loads, redemptions, holds, voids and refunds). Reads need
//! any key, except the API keys' own list; every other write, and anything about API keys,
//! needs a `full` key. Each front-end's extractor asks this and answers a refusal in its own
//! shape (403 `insufficient_scope`).

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
        ["", "v1", "api_keys", ..] => Access::Full,
        _ if reading => Access::Read,
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
    fn a_tills_work_needs_pos_reads_need_any_key_and_the_rest_a_full_one() {
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
            (Method::GET, "/v1/api_keys", Access::Full),
            (Method::POST, "/v1/programs", Access::Full),
            (Method::PATCH, "/v1/programs/prog_1", Access::Full),
            (Method::POST, "/v1/cards", Access::Full),
            (Method::POST, "/v1/cards/card_1/cashout", Access::Full),
            (Method::POST, "/gr4vy/transactions", Access::Full),
            (Method::POST, "/giftcard/v1/cards/card_1/redeem", Access::Full),
            (Method::POST, "/v1/webhook_endpoints", Access::Full),
        ];
        for (method, path, access) in cases {
            assert_eq!(required(&method, path), access, "{method} {path}");
        }
    }
}
