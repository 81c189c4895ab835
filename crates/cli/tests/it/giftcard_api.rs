//! The customer-wallet facade (seed 003) under `/giftcard/v1`: every operation, its camelCase fields,
//! the limit of 10 cards per user with the seed's message, a shared card spent by both users,
//! gifts in both modes, combining, and tenant isolation.

use futures::future::join_all;
use giftd_testkit::{TestApp, TestResponse};
use serde_json::{Value, json};

const LIMIT_MESSAGE: &str =
    "The buyer's gift card count has already reached the maximum limit of 10 gift cards";

async fn issue(app: &TestApp, program: &str, amount: i64) -> Value {
    let response = app
        .post(
            "/giftcard/v1/virtual/issue",
            json!({"programId": program, "amount": amount}),
        )
        .await;
    response.assert_status(200);
    response.body["giftCard"].clone()
}

fn id(card: &Value) -> String {
    card["giftCardId"].as_str().expect("a giftCardId").to_owned()
}

async fn save(app: &TestApp, user: &str, card: &Value) -> TestResponse {
    app.post(
        "/giftcard/v1/savegiftcard",
        json!({"userId": user, "cardNumber": card["cardNumber"], "passcode": card["passcode"]}),
    )
    .await
}

async fn gift_cards(app: &TestApp, user: &str) -> Vec<Value> {
    let response = app.get(&format!("/giftcard/v1/giftcards?userId={user}")).await;
    response.assert_status(200);
    assert_eq!(response.body["userId"], user);
    response.body["giftCards"].as_array().expect("a list").clone()
}

async fn balance(app: &TestApp, card: &str) -> i64 {
    let response = app
        .post("/giftcard/v1/balanceInquiry", json!({"giftCardId": card}))
        .await;
    response.assert_status(200);
    response.body["giftCard"]["balance"].as_i64().unwrap()
}

fn assert_failed(response: &TestResponse, status: u16, code: &str) {
    assert_eq!(response.status.as_u16(), status, "body: {}", response.text);
    assert_eq!(response.body["status"], "FAILED");
    assert_eq!(response.body["errorCode"], code, "body: {}", response.text);
}

#[tokio::test]
async fn issue_reload_redeem_inquire_and_refund_a_virtual_card() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let issued = app
        .post(
            "/giftcard/v1/virtual/issue",
            json!({"programId": program, "amount": 5000, "someVendorField": 1}),
        )
        .await;
    issued.assert_status(200);
    assert_eq!(issued.body["status"], "SUCCESS");
    let card = &issued.body["giftCard"];
    assert_eq!(card["status"], "ACTIVE");
    assert_eq!(card["balance"], 5000);
    assert_eq!(card["currency"], "USD");
    assert!(card["cardNumber"].as_str().is_some_and(|n| n.len() == 16));
    assert!(card["passcode"].as_str().is_some());
    assert!(issued.body["transactionId"].as_str().is_some());
    let card_id = id(card);

    let reload = app
        .post(
            "/giftcard/v1/reload",
            json!({"giftCardId": card_id, "amount": 1000}),
        )
        .await;
    reload.assert_status(200);
    assert_eq!(reload.body["transactionType"], "LOAD");
    assert_eq!(reload.body["balance"], 6000);

    // By number and passcode, as at a till.
    let redeem = app
        .post(
            "/giftcard/v1/redeem",
            json!({"cardNumber": card["cardNumber"], "passcode": card["passcode"], "amount": 2500}),
        )
        .await;
    redeem.assert_status(200);
    assert_eq!(redeem.body["transactionType"], "REDEMPTION");
    assert_eq!(redeem.body["amount"], 2500);
    assert_eq!(redeem.body["balance"], 3500);

    let inquiry = app
        .post(
            "/giftcard/v1/balanceInquiry",
            json!({"cardNumber": card["cardNumber"], "passcode": card["passcode"]}),
        )
        .await;
    inquiry.assert_status(200);
    assert_eq!(inquiry.body["giftCard"]["balance"], 3500);
    assert!(inquiry.body["giftCard"].get("cardNumber").is_none());

    let refund = app
        .post(
            "/giftcard/v1/refund",
            json!({"transactionId": redeem.body["transactionId"], "amount": 500}),
        )
        .await;
    refund.assert_status(200);
    assert_eq!(refund.body["transactionType"], "REFUND");
    assert_eq!(refund.body["balance"], 4000);

    let short = app
        .post(
            "/giftcard/v1/redeem",
            json!({"giftCardId": card_id, "amount": 999_999}),
        )
        .await;
    assert_failed(&short, 422, "insufficient_funds");
    let wrong = app
        .post(
            "/giftcard/v1/balanceInquiry",
            json!({"cardNumber": card["cardNumber"], "passcode": "00000000"}),
        )
        .await;
    assert_failed(&wrong, 404, "invalid_card");
    let missing = app
        .post("/giftcard/v1/reload", json!({"giftCardId": card_id}))
        .await;
    assert_failed(&missing, 400, "invalid_request");
    assert_eq!(missing.body["param"], "amount");
    assert_eq!(balance(&app, &card_id).await, 4000);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_balance_transfer_moves_value_to_a_new_card_and_can_delete_the_source() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let card = issue(&app, &program, 3000).await;

    let partial = app
        .post(
            "/giftcard/v1/balanceTransfer",
            json!({"cardNumber": card["cardNumber"], "passcode": card["passcode"], "amount": 1000}),
        )
        .await;
    partial.assert_status(200);
    assert_eq!(partial.body["status"], "SUCCESS");
    assert_eq!(partial.body["amount"], 1000);
    assert_eq!(partial.body["sourceGiftCard"]["balance"], 2000);
    assert_eq!(partial.body["newGiftCard"]["balance"], 1000);
    assert!(partial.body["newGiftCard"]["cardNumber"].as_str().is_some());
    assert!(partial.body["newGiftCard"]["passcode"].as_str().is_some());
    assert!(partial.body["transferOutTransactionId"].as_str().is_some());

    let whole = app
        .post(
            "/giftcard/v1/balanceTransfer",
            json!({"cardNumber": card["cardNumber"], "passcode": card["passcode"], "isDeleteSourceCard": true}),
        )
        .await;
    whole.assert_status(200);
    assert_eq!(whole.body["amount"], 2000);
    assert_eq!(whole.body["sourceGiftCard"]["status"], "CLOSED");
    assert_eq!(whole.body["newGiftCard"]["balance"], 2000);

    let wrong = app
        .post(
            "/giftcard/v1/balanceTransfer",
            json!({"cardNumber": card["cardNumber"], "passcode": "12345678"}),
        )
        .await;
    assert_failed(&wrong, 404, "invalid_card");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn saved_cards_are_listed_preferred_and_used_without_the_card_number() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = issue(&app, &program, 1000).await;
    let b = issue(&app, &program, 2000).await;

    let saved = save(&app, "user-1", &a).await;
    saved.assert_status(200);
    assert_eq!(saved.body["giftCard"]["giftCardId"], id(&a));
    assert_eq!(saved.body["giftCard"]["access"], "OWNER");
    assert_eq!(saved.body["giftCard"]["isPreferred"], false);
    save(&app, "user-1", &b).await.assert_status(200);

    let preferred = app
        .send(
            app.client
                .patch(app.url("/giftcard/v1/giftcards"))
                .bearer_auth(&app.api_key)
                .json(&json!({"userId": "user-1", "giftCardId": id(&b), "isPreferred": true})),
        )
        .await;
    preferred.assert_status(200);
    assert_eq!(preferred.body["giftCard"]["isPreferred"], true);
    let listed = gift_cards(&app, "user-1").await;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1]["isPreferred"], true);

    // Use the saved card by its id through the user's wallet.
    let redeem = app
        .post(
            "/giftcard/v1/redeem",
            json!({"userId": "user-1", "giftCardId": id(&b), "amount": 500}),
        )
        .await;
    redeem.assert_status(200);
    assert_eq!(redeem.body["balance"], 1500);
    let reload = app
        .post(
            "/giftcard/v1/reload",
            json!({"userId": "user-1", "giftCardId": id(&b), "amount": 100}),
        )
        .await;
    assert_eq!(reload.body["balance"], 1600);
    // Not a card of this user's wallet.
    let elsewhere = app
        .post(
            "/giftcard/v1/redeem",
            json!({"userId": "user-2", "giftCardId": id(&b), "amount": 1}),
        )
        .await;
    assert_failed(&elsewhere, 404, "not_found");
    assert_eq!(balance(&app, &id(&b)).await, 1600);
}

#[tokio::test]
async fn the_eleventh_saved_card_is_refused_with_the_seed_message_even_when_racing() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let mut cards = Vec::new();
    for _ in 0..20 {
        cards.push(issue(&app, &program, 100).await);
    }
    let answers = join_all(cards.iter().map(|card| save(&app, "buyer", card))).await;
    let saved = answers.iter().filter(|r| r.status == 200).count();
    assert_eq!(saved, 10);
    for refused in answers.iter().filter(|r| r.status != 200) {
        assert_failed(refused, 400, "limit_exceeded");
        assert_eq!(refused.body["errorMessage"], LIMIT_MESSAGE);
    }
    assert_eq!(gift_cards(&app, "buyer").await.len(), 10);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_shared_card_is_spent_by_both_users() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let card = issue(&app, &program, 1000).await;
    save(&app, "owner", &card).await.assert_status(200);

    let shared = app
        .post(
            "/giftcard/v1/sharegiftcard",
            json!({"userId": "owner", "giftCardId": id(&card), "recipientUserId": "friend"}),
        )
        .await;
    shared.assert_status(200);
    assert_eq!(shared.body["giftCard"]["access"], "SHARED");

    for user in ["owner", "friend"] {
        app.post(
            "/giftcard/v1/redeem",
            json!({"userId": user, "giftCardId": id(&card), "amount": 300}),
        )
        .await
        .assert_status(200);
    }
    let inquiry = app
        .post(
            "/giftcard/v1/balanceInquiry",
            json!({"userId": "friend", "giftCardId": id(&card)}),
        )
        .await;
    assert_eq!(inquiry.body["giftCard"]["balance"], 400);
    assert_eq!(gift_cards(&app, "owner").await[0]["balance"], 400);
    assert_eq!(gift_cards(&app, "friend").await[0]["access"], "SHARED");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn gifts_of_a_saved_card_and_of_a_new_card() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let card = issue(&app, &program, 2000).await;
    save(&app, "giver", &card).await.assert_status(200);

    let existing = app
        .post(
            "/giftcard/v1/gift",
            json!({"senderUserId": "giver", "recipientUserId": "taker", "giftCardId": id(&card)}),
        )
        .await;
    existing.assert_status(200);
    assert_eq!(existing.body["recipientUserId"], "taker");
    assert_eq!(existing.body["giftCard"]["balance"], 2000);
    assert_eq!(existing.body["giftCard"]["access"], "OWNER");
    assert!(gift_cards(&app, "giver").await.is_empty());
    assert_eq!(gift_cards(&app, "taker").await.len(), 1);

    let new = app
        .post(
            "/giftcard/v1/gift",
            json!({"senderUserId": "giver", "recipientUserId": "taker", "programId": program,
                   "amount": 2500, "sourceTransactionId": "cc_txn_42"}),
        )
        .await;
    new.assert_status(200);
    assert_eq!(new.body["giftCard"]["balance"], 2500);
    assert!(new.body["giftCard"]["cardNumber"].as_str().is_some());
    assert!(new.body["transactionId"].as_str().is_some());
    assert_eq!(gift_cards(&app, "taker").await.len(), 2);

    let unfunded = app
        .post(
            "/giftcard/v1/gift",
            json!({"senderUserId": "giver", "recipientUserId": "taker", "programId": program, "amount": 100}),
        )
        .await;
    assert_failed(&unfunded, 400, "invalid_request");
    assert_eq!(unfunded.body["param"], "sourceTransactionId");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn combine_moves_every_source_into_the_target_and_marks_them_combined() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let target = issue(&app, &program, 100).await;
    let a = issue(&app, &program, 200).await;
    let b = issue(&app, &program, 300).await;

    let combined = app
        .post(
            "/giftcard/v1/combine",
            json!({"targetGiftCardId": id(&target), "sourceGiftCardIds": [id(&a), id(&b)]}),
        )
        .await;
    combined.assert_status(200);
    assert_eq!(combined.body["targetGiftCard"]["balance"], 600);
    let statuses: Vec<_> = combined.body["sourceGiftCards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["COMBINED", "COMBINED"]);
    assert_eq!(combined.body["transactionIds"].as_array().unwrap().len(), 3);

    let empty = app
        .post(
            "/giftcard/v1/combine",
            json!({"targetGiftCardId": id(&target), "sourceGiftCardIds": []}),
        )
        .await;
    assert_failed(&empty, 400, "invalid_request");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn another_merchant_sees_nothing_of_these_cards_or_users() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let card = issue(&app, &program, 1000).await;
    save(&app, "someone", &card).await.assert_status(200);
    let other = app.another_merchant().await;

    let listed = app.get_as("/giftcard/v1/giftcards?userId=someone", &other).await;
    listed.assert_status(200);
    assert_eq!(listed.body["giftCards"], json!([]));
    let inquiry = app
        .post_as(
            "/giftcard/v1/balanceInquiry",
            json!({"giftCardId": id(&card)}),
            &other,
            None,
        )
        .await;
    assert_failed(&inquiry, 404, "not_found");
    let by_number = app
        .post_as(
            "/giftcard/v1/redeem",
            json!({"cardNumber": card["cardNumber"], "passcode": card["passcode"], "amount": 1}),
            &other,
            None,
        )
        .await;
    assert_failed(&by_number, 404, "invalid_card");
    let unauthorized = app
        .post_as(
            "/giftcard/v1/balanceInquiry",
            json!({"giftCardId": id(&card)}),
            "gk_nope",
            None,
        )
        .await;
    assert_failed(&unauthorized, 401, "unauthorized");
    assert_eq!(balance(&app, &id(&card)).await, 1000);
}
