//! Customer wallets through the native API: saving cards with proof of possession, listing,
//! the preferred card, unsaving, sharing (equal access), gifts of both kinds, the limit of 10
//! cards per user (also under 20 simultaneous saves), and tenant isolation.

use futures::future::join_all;
use giftd_testkit::{TestApp, TestResponse};
use serde_json::{Value, json};

const LIMIT_MESSAGE: &str =
    "The buyer's gift card count has already reached the maximum limit of 10 gift cards";

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

async fn put(app: &TestApp, path: &str, body: Value) -> TestResponse {
    app.send(
        app.client
            .put(app.url(path))
            .bearer_auth(&app.api_key)
            .json(&body),
    )
    .await
}

async fn patch(app: &TestApp, path: &str, body: Value) -> TestResponse {
    app.send(
        app.client
            .patch(app.url(path))
            .bearer_auth(&app.api_key)
            .json(&body),
    )
    .await
}

async fn delete(app: &TestApp, path: &str) -> TestResponse {
    app.send(app.client.delete(app.url(path)).bearer_auth(&app.api_key))
        .await
}

/// Saves `card` (as created, with its secrets) to `user`.
async fn save(app: &TestApp, user: &str, card: &Value) -> TestResponse {
    put(
        app,
        &format!("/v1/users/{user}/cards/{}", id_of(card)),
        json!({"number": card["number"], "security_code": card["security_code"]}),
    )
    .await
}

async fn wallet(app: &TestApp, user: &str) -> Vec<Value> {
    let response = app.get(&format!("/v1/users/{user}/cards")).await;
    response.assert_status(200);
    assert!(response.body["next_cursor"].is_null());
    response.body["data"].as_array().expect("a list").clone()
}

fn ids(cards: &[Value]) -> Vec<String> {
    cards.iter().map(id_of).collect()
}

#[tokio::test]
async fn a_saved_card_is_listed_with_owner_access_and_can_be_preferred_and_unsaved() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = app.card(&program, 1000).await;
    let b = app.card(&program, 2000).await;

    let saved = save(&app, "alice@example.com", &a).await;
    saved.assert_status(200);
    assert_eq!(saved.body["id"], a["id"]);
    assert_eq!(saved.body["access"], "owner");
    assert_eq!(saved.body["preferred"], false);
    assert_eq!(saved.body["user_id"], "alice@example.com");
    assert!(saved.body.get("number").is_none());
    // Saving twice changes nothing.
    save(&app, "alice@example.com", &a).await.assert_status(200);
    save(&app, "alice@example.com", &b).await.assert_status(200);
    assert_eq!(
        ids(&wallet(&app, "alice@example.com").await),
        [id_of(&a), id_of(&b)]
    );

    let preferred = patch(
        &app,
        &format!("/v1/users/alice@example.com/cards/{}", id_of(&a)),
        json!({"preferred": true}),
    )
    .await;
    preferred.assert_status(200);
    assert_eq!(preferred.body["preferred"], true);
    patch(
        &app,
        &format!("/v1/users/alice@example.com/cards/{}", id_of(&b)),
        json!({"preferred": true}),
    )
    .await
    .assert_status(200);
    let listed = wallet(&app, "alice@example.com").await;
    let flags: Vec<_> = listed.iter().map(|c| c["preferred"].as_bool().unwrap()).collect();
    assert_eq!(flags, [false, true], "one preferred card per user");

    let removed = delete(&app, &format!("/v1/users/alice@example.com/cards/{}", id_of(&a))).await;
    removed.assert_status(200);
    assert_eq!(removed.body["deleted"], true);
    assert_eq!(ids(&wallet(&app, "alice@example.com").await), [id_of(&b)]);
    delete(&app, &format!("/v1/users/alice@example.com/cards/{}", id_of(&a)))
        .await
        .assert_error(404, "not_found");
    // The card itself is untouched.
    assert_eq!(
        app.get(&format!("/v1/cards/{}", id_of(&a))).await.body["balance"],
        1000
    );
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn saving_needs_the_cards_own_number_and_security_code() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = app.card(&program, 1000).await;
    let b = app.card(&program, 1000).await;

    put(
        &app,
        &format!("/v1/users/u1/cards/{}", id_of(&a)),
        json!({"number": a["number"], "security_code": "00000000"}),
    )
    .await
    .assert_error(404, "invalid_card");
    // Right secrets, but of another card.
    put(
        &app,
        &format!("/v1/users/u1/cards/{}", id_of(&a)),
        json!({"number": b["number"], "security_code": b["security_code"]}),
    )
    .await
    .assert_error(404, "invalid_card");
    put(
        &app,
        &format!("/v1/users/u1/cards/{}", id_of(&a)),
        json!({"number": a["number"]}),
    )
    .await
    .assert_error(400, "invalid_request");
    put(
        &app,
        &format!("/v1/users/u1/cards/{}", id_of(&a)),
        json!({"number": a["number"], "security_code": a["security_code"], "nickname": "x"}),
    )
    .await
    .assert_error(400, "invalid_request");
    assert!(wallet(&app, "u1").await.is_empty());

    // The lookup's lockout counts wrong codes here too, malformed ones (`!`) included: with
    // the first, 10 wrong codes.
    for attempt in 0..9 {
        let code = if attempt % 2 == 0 { "99999999" } else { "!" };
        put(
            &app,
            &format!("/v1/users/u1/cards/{}", id_of(&a)),
            json!({"number": a["number"], "security_code": code}),
        )
        .await
        .assert_error(404, "invalid_card");
    }
    save(&app, "u1", &a).await.assert_error(422, "card_locked");
}

#[tokio::test]
async fn zero_balance_and_expired_cards_are_not_listed() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let expiring = app
        .program(json!({"name": "Promo", "currency": "USD", "promotional": true, "expiry_months": 1}))
        .await;
    let full = app.card(&program, 1000).await;
    let spent = app.card(&program, 500).await;
    let promo = app.card(&expiring, 700).await;
    for card in [&full, &spent, &promo] {
        save(&app, "bob", card).await.assert_status(200);
    }
    app.post(
        &format!("/v1/cards/{}/redeem", id_of(&spent)),
        json!({"amount": 500}),
    )
    .await
    .assert_status(200);
    assert_eq!(ids(&wallet(&app, "bob").await), [id_of(&full), id_of(&promo)]);
    app.clock.advance_seconds(40 * 24 * 3600);
    assert_eq!(ids(&wallet(&app, "bob").await), [id_of(&full)]);
}

#[tokio::test]
async fn the_eleventh_card_is_refused_with_the_limit_message() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let mut cards = Vec::new();
    for _ in 0..11 {
        cards.push(app.card(&program, 100).await);
    }
    for card in &cards[..10] {
        save(&app, "carol", card).await.assert_status(200);
    }
    let refused = save(&app, "carol", &cards[10]).await;
    refused.assert_error(400, "limit_exceeded");
    assert_eq!(refused.body["error"]["message"], LIMIT_MESSAGE);
    // A card already in the wallet takes no new room.
    save(&app, "carol", &cards[3]).await.assert_status(200);
    // Shares count too.
    let other = app.card(&program, 100).await;
    save(&app, "dave", &other).await.assert_status(200);
    let share = app
        .post(
            &format!("/v1/users/dave/cards/{}/share", id_of(&other)),
            json!({"recipient_user_id": "carol"}),
        )
        .await;
    share.assert_error(400, "limit_exceeded");
    assert_eq!(share.body["error"]["message"], LIMIT_MESSAGE);
    // Room again after unsaving one.
    delete(&app, &format!("/v1/users/carol/cards/{}", id_of(&cards[0])))
        .await
        .assert_status(200);
    save(&app, "carol", &cards[10]).await.assert_status(200);
    assert_eq!(wallet(&app, "carol").await.len(), 10);
}

#[tokio::test]
async fn twenty_simultaneous_saves_for_one_user_keep_to_ten() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let mut cards = Vec::new();
    for _ in 0..20 {
        cards.push(app.card(&program, 100).await);
    }
    let answers = join_all(cards.iter().map(|card| save(&app, "erin", card))).await;
    let saved = answers.iter().filter(|r| r.status == 200).count();
    for refused in answers.iter().filter(|r| r.status != 200) {
        refused.assert_error(400, "limit_exceeded");
    }
    assert_eq!(saved, 10);
    assert_eq!(wallet(&app, "erin").await.len(), 10);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_shared_card_is_listed_for_both_users_and_spent_by_both() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let card = app.card(&program, 1000).await;
    let id = id_of(&card);
    save(&app, "frank", &card).await.assert_status(200);

    let shared = app
        .post(
            &format!("/v1/users/frank/cards/{id}/share"),
            json!({"recipient_user_id": "gina"}),
        )
        .await;
    shared.assert_status(200);
    assert_eq!(shared.body["user_id"], "gina");
    assert_eq!(shared.body["access"], "shared");
    assert_eq!(wallet(&app, "gina").await[0]["access"], "shared");
    assert_eq!(wallet(&app, "frank").await[0]["access"], "owner");

    // Both spend it: the one balance goes down for both.
    app.post(&format!("/v1/cards/{id}/redeem"), json!({"amount": 300}))
        .await
        .assert_status(200);
    app.post(&format!("/v1/cards/{id}/redeem"), json!({"amount": 200}))
        .await
        .assert_status(200);
    assert_eq!(wallet(&app, "frank").await[0]["balance"], 500);
    assert_eq!(wallet(&app, "gina").await[0]["balance"], 500);

    // Only an owner shares; not to oneself; only a card one holds.
    app.post(
        &format!("/v1/users/gina/cards/{id}/share"),
        json!({"recipient_user_id": "hal"}),
    )
    .await
    .assert_error(404, "not_found");
    app.post(
        &format!("/v1/users/frank/cards/{id}/share"),
        json!({"recipient_user_id": "frank"}),
    )
    .await
    .assert_error(400, "invalid_request");
    app.post(
        &format!("/v1/users/hal/cards/{id}/share"),
        json!({"recipient_user_id": "gina"}),
    )
    .await
    .assert_error(404, "not_found");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_gift_of_an_owned_card_moves_it_to_the_recipient_alone() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let card = app.card(&program, 2500).await;
    let id = id_of(&card);
    save(&app, "ivy", &card).await.assert_status(200);
    app.post(
        &format!("/v1/users/ivy/cards/{id}/share"),
        json!({"recipient_user_id": "jack"}),
    )
    .await
    .assert_status(200);

    let gift = app
        .post(
            "/v1/gifts",
            json!({"sender_user_id": "ivy", "recipient_user_id": "kim", "card_id": id}),
        )
        .await;
    gift.assert_status(201);
    assert_eq!(gift.body["object"], "gift");
    assert_eq!(gift.body["recipient_user_id"], "kim");
    assert_eq!(gift.body["card"]["access"], "owner");
    assert_eq!(gift.body["card"]["balance"], 2500);
    assert!(gift.body["card"].get("number").is_none());
    assert!(gift.body["transaction"].is_null());
    assert!(wallet(&app, "ivy").await.is_empty());
    assert!(wallet(&app, "jack").await.is_empty());
    assert_eq!(ids(&wallet(&app, "kim").await), vec![id.clone()]);

    // The sender no longer has it to give.
    app.post(
        "/v1/gifts",
        json!({"sender_user_id": "ivy", "recipient_user_id": "kim", "card_id": id}),
    )
    .await
    .assert_error(404, "not_found");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_gift_of_a_new_card_issues_and_funds_it_for_the_recipient() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let gift = app
        .post_idempotent(
            "/v1/gifts",
            json!({"sender_user_id": "lea", "recipient_user_id": "max", "program_id": program,
                   "amount": 5000, "funding_reference": "ch_123"}),
            "gift-1",
        )
        .await;
    gift.assert_status(201);
    let card = &gift.body["card"];
    assert_eq!(card["balance"], 5000);
    assert_eq!(card["state"], "active");
    assert_eq!(card["user_id"], "max");
    assert!(card["number"].as_str().is_some_and(|n| n.len() == 16));
    assert!(card["security_code"].as_str().is_some());
    assert_eq!(gift.body["transaction"]["amount"], 5000);
    assert_eq!(gift.body["transaction"]["reference"], "ch_123");
    // A retry answers the same, with no second card.
    let again = app
        .post_idempotent(
            "/v1/gifts",
            json!({"sender_user_id": "lea", "recipient_user_id": "max", "program_id": program,
                   "amount": 5000, "funding_reference": "ch_123"}),
            "gift-1",
        )
        .await;
    assert_eq!(again.text, gift.text);
    assert_eq!(ids(&wallet(&app, "max").await), [id_of(card)]);

    for (body, param) in [
        (
            json!({"sender_user_id": "lea", "recipient_user_id": "max", "program_id": program, "amount": 5000}),
            "funding_reference",
        ),
        (
            json!({"sender_user_id": "lea", "recipient_user_id": "max", "program_id": program, "funding_reference": "x"}),
            "amount",
        ),
        (
            json!({"sender_user_id": "lea", "recipient_user_id": "max"}),
            "card_id",
        ),
        (
            json!({"sender_user_id": "lea", "recipient_user_id": "lea", "program_id": program, "amount": 1, "funding_reference": "x"}),
            "recipient_user_id",
        ),
    ] {
        let refused = app.post("/v1/gifts", body).await;
        refused.assert_error(400, "invalid_request");
        assert_eq!(refused.body["error"]["param"], param);
    }
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn an_inactive_programs_gift_of_a_new_card_is_refused_and_no_card_is_issued() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let paused = app
        .send(
            app.client
                .patch(app.url(&format!("/v1/programs/{program}")))
                .bearer_auth(&app.api_key)
                .json(&json!({"active": false})),
        )
        .await;
    paused.assert_status(200);
    let gift = app
        .post(
            "/v1/gifts",
            json!({"sender_user_id": "lea", "recipient_user_id": "max", "program_id": program,
                   "amount": 5000, "funding_reference": "ch_9"}),
        )
        .await;
    gift.assert_error(422, "program_inactive");
    let wallet = app.get("/v1/users/max/cards").await;
    assert_eq!(wallet.body["data"], json!([]), "no card was issued");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_full_wallet_refuses_a_gift_and_no_card_is_issued() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    for _ in 0..10 {
        let card = app.card(&program, 100).await;
        save(&app, "nia", &card).await.assert_status(200);
    }
    let before = app.get("/v1/cards?limit=100").await.body["data"]
        .as_array()
        .unwrap()
        .len();
    let refused = app
        .post(
            "/v1/gifts",
            json!({"sender_user_id": "oz", "recipient_user_id": "nia", "program_id": program,
                   "amount": 100, "funding_reference": "ch_1"}),
        )
        .await;
    refused.assert_error(400, "limit_exceeded");
    assert_eq!(refused.body["error"]["message"], LIMIT_MESSAGE);
    let after = app.get("/v1/cards?limit=100").await.body["data"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn wallets_are_per_merchant() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let card = app.card(&program, 1000).await;
    save(&app, "pat", &card).await.assert_status(200);
    let other = app.another_merchant().await;

    let listed = app.get_as("/v1/users/pat/cards", &other).await;
    listed.assert_status(200);
    assert_eq!(listed.body["data"], json!([]));
    // Another merchant cannot save, share or give this merchant's card.
    let saved = app
        .send(
            app.client
                .put(app.url(&format!("/v1/users/pat/cards/{}", id_of(&card))))
                .bearer_auth(&other)
                .json(&json!({"number": card["number"], "security_code": card["security_code"]})),
        )
        .await;
    saved.assert_error(404, "invalid_card");
    app.post_as(
        &format!("/v1/users/pat/cards/{}/share", id_of(&card)),
        json!({"recipient_user_id": "quin"}),
        &other,
        None,
    )
    .await
    .assert_error(404, "not_found");
    app.post_as(
        "/v1/gifts",
        json!({"sender_user_id": "pat", "recipient_user_id": "quin", "card_id": id_of(&card)}),
        &other,
        None,
    )
    .await
    .assert_error(404, "not_found");
    assert_eq!(wallet(&app, "pat").await.len(), 1);
    app.get_as("/v1/users/pat/cards", "gk_wrong")
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn the_wallet_endpoints_are_in_the_openapi_document() {
    let app = TestApp::spawn().await;
    let document = app.get("/openapi.json").await.body;
    let paths = &document["paths"];
    assert!(paths["/v1/users/{user_id}/cards"]["get"].is_object());
    for method in ["put", "patch", "delete"] {
        assert!(
            paths["/v1/users/{user_id}/cards/{card_id}"][method].is_object(),
            "{method}"
        );
    }
    assert!(paths["/v1/users/{user_id}/cards/{card_id}/share"]["post"].is_object());
    assert!(paths["/v1/gifts"]["post"].is_object());
}
