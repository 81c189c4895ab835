//! Refunds and voids over HTTP, in process: partial and repeated refunds capped at the
//! original, the default refund of what remains, voids that reverse a redemption, capture,
//! load, activation, refund or cash-out exactly once, and the refusals (`not_reversible`,
//! `refund_exceeds_amount`). Every scenario ends with the ledger verified.

use giftd_testkit::{TestApp, TestResponse};
use serde_json::{Value, json};

// ---- helpers ----

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

async fn get_card(app: &TestApp, card_id: &str) -> Value {
    let response = app.get(&format!("/v1/cards/{card_id}")).await;
    response.assert_status(200);
    response.body
}

async fn balance(app: &TestApp, card_id: &str) -> i64 {
    get_card(app, card_id).await["balance"]
        .as_i64()
        .expect("a balance")
}

async fn transaction_count(app: &TestApp, card_id: &str) -> usize {
    let response = app
        .get(&format!("/v1/cards/{card_id}/transactions?limit=100"))
        .await;
    response.assert_status(200);
    response.body["data"].as_array().expect("a data array").len()
}

#[track_caller]
fn assert_param(response: &TestResponse, param: &str) {
    assert_eq!(
        response.body["error"]["param"], param,
        "unexpected param; body: {}",
        response.text
    );
}

/// Posts to a card action that must succeed; returns the transaction.
async fn on_card(app: &TestApp, card_id: &str, action: &str, body: Value) -> Value {
    let response = app.post(&format!("/v1/cards/{card_id}/{action}"), body).await;
    response.assert_status(200);
    response.body
}

async fn redeem(app: &TestApp, card_id: &str, amount: i64) -> Value {
    on_card(app, card_id, "redeem", json!({"amount": amount})).await
}

async fn refund(app: &TestApp, transaction_id: &str, body: Value) -> TestResponse {
    app.post(&format!("/v1/transactions/{transaction_id}/refund"), body)
        .await
}

async fn void(app: &TestApp, transaction_id: &str) -> TestResponse {
    app.post(&format!("/v1/transactions/{transaction_id}/void"), json!({}))
        .await
}

/// The transaction as `GET /v1/transactions/{id}` shows it.
async fn get_transaction(app: &TestApp, transaction_id: &str) -> Value {
    let response = app.get(&format!("/v1/transactions/{transaction_id}")).await;
    response.assert_status(200);
    response.body
}

// ---- refunds ----

#[tokio::test]
async fn refund_of_part_of_a_redemption_restores_that_part() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let redemption = redeem(&app, &card_id, 4000).await;
    let redemption_id = id_of(&redemption);

    let response = refund(
        &app,
        &redemption_id,
        json!({"amount": 1500, "reference": "returned socks"}),
    )
    .await;
    response.assert_status(200);
    let refunded = &response.body;
    assert!(refunded["id"].as_str().unwrap().starts_with("txn_"));
    assert_eq!(refunded["type"], "refund");
    assert_eq!(refunded["card_id"], card_id.as_str());
    assert_eq!(refunded["amount"], 1500);
    assert_eq!(refunded["currency"], "USD");
    assert_eq!(refunded["balance_before"], 6000);
    assert_eq!(refunded["balance_after"], 7500);
    assert_eq!(refunded["reverses"], redemption_id.as_str());
    assert_eq!(refunded["reference"], "returned socks");
    assert_eq!(&get_transaction(&app, &id_of(refunded)).await, refunded);
    assert_eq!(balance(&app, &card_id).await, 7500);
    // The original is unchanged.
    assert_eq!(get_transaction(&app, &redemption_id).await, redemption);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn repeated_refunds_are_capped_at_the_original_with_refund_exceeds_amount() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let redemption_id = id_of(&redeem(&app, &card_id, 4000).await);

    for _ in 0..2 {
        refund(&app, &redemption_id, json!({"amount": 1500}))
            .await
            .assert_status(200);
    }
    assert_eq!(balance(&app, &card_id).await, 9000);
    let count = transaction_count(&app, &card_id).await;

    let response = refund(&app, &redemption_id, json!({"amount": 1001})).await;
    response.assert_error(422, "refund_exceeds_amount");
    assert_param(&response, "amount");
    assert_eq!(balance(&app, &card_id).await, 9000);
    assert_eq!(transaction_count(&app, &card_id).await, count);

    let response = refund(&app, &redemption_id, json!({"amount": 1000})).await;
    response.assert_status(200);
    assert_eq!(response.body["balance_after"], 10_000);

    // Fully refunded: nothing more, not even by default.
    refund(&app, &redemption_id, json!({"amount": 1}))
        .await
        .assert_error(422, "refund_exceeds_amount");
    refund(&app, &redemption_id, json!({}))
        .await
        .assert_error(422, "refund_exceeds_amount");
    assert_eq!(balance(&app, &card_id).await, 10_000);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn refund_above_the_original_at_once_is_refused() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let redemption_id = id_of(&redeem(&app, &card_id, 4000).await);
    refund(&app, &redemption_id, json!({"amount": 4001}))
        .await
        .assert_error(422, "refund_exceeds_amount");
    assert_eq!(balance(&app, &card_id).await, 6000);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn refund_without_amount_refunds_what_remains() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let redemption_id = id_of(&redeem(&app, &card_id, 4000).await);
    refund(&app, &redemption_id, json!({"amount": 1000}))
        .await
        .assert_status(200);

    let response = refund(&app, &redemption_id, json!({})).await;
    response.assert_status(200);
    assert_eq!(response.body["amount"], 3000);
    assert_eq!(response.body["balance_before"], 7000);
    assert_eq!(response.body["balance_after"], 10_000);

    // A refund with no body at all is the same default.
    let other = id_of(&redeem(&app, &card_id, 2500).await);
    let response = app
        .post_raw(&format!("/v1/transactions/{other}/refund"), "")
        .await;
    response.assert_status(200);
    assert_eq!(response.body["amount"], 2500);
    assert_eq!(balance(&app, &card_id).await, 10_000);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn refund_of_a_capture_is_capped_at_what_was_captured() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let hold = app
        .post(&format!("/v1/cards/{card_id}/holds"), json!({"amount": 1000}))
        .await;
    hold.assert_status(201);
    let capture = app
        .post(
            &format!("/v1/holds/{}/capture", id_of(&hold.body)),
            json!({"amount": 600}),
        )
        .await;
    capture.assert_status(200);
    let capture_id = id_of(&capture.body);

    refund(&app, &capture_id, json!({"amount": 601}))
        .await
        .assert_error(422, "refund_exceeds_amount");
    let response = refund(&app, &capture_id, json!({})).await;
    response.assert_status(200);
    assert_eq!(response.body["amount"], 600);
    assert_eq!(response.body["reverses"], capture_id.as_str());
    assert_eq!(balance(&app, &card_id).await, 10_000);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn refund_of_a_load_or_other_non_spending_transaction_is_not_reversible() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(10_000).await;
    let card_id = id_of(&card);
    let issue_id = id_of(&app.get(&format!("/v1/cards/{card_id}/transactions")).await.body["data"][0]);
    let load_id = id_of(&on_card(&app, &card_id, "load", json!({"amount": 500})).await);
    let redemption_id = id_of(&redeem(&app, &card_id, 1000).await);
    let refund_id = id_of(&refund(&app, &redemption_id, json!({"amount": 100})).await.body);
    let cashout_id = id_of(&on_card(&app, &card_id, "cashout", json!({})).await);
    let count = transaction_count(&app, &card_id).await;
    let before = balance(&app, &card_id).await;

    for (what, id) in [
        ("load", &load_id),
        ("issue", &issue_id),
        ("refund", &refund_id),
        ("cashout", &cashout_id),
    ] {
        let response = refund(&app, id, json!({})).await;
        assert_eq!(
            response.status.as_u16(),
            409,
            "refund of a {what}: {}",
            response.text
        );
        assert_eq!(response.code(), "not_reversible", "refund of a {what}");
        let response = refund(&app, id, json!({"amount": 1})).await;
        response.assert_error(409, "not_reversible");
    }
    assert_eq!(balance(&app, &card_id).await, before);
    assert_eq!(transaction_count(&app, &card_id).await, count);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn refund_of_a_voided_redemption_is_not_reversible() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let redemption_id = id_of(&redeem(&app, &card_id, 4000).await);
    void(&app, &redemption_id).await.assert_status(200);
    refund(&app, &redemption_id, json!({"amount": 100}))
        .await
        .assert_error(409, "not_reversible");
    assert_eq!(balance(&app, &card_id).await, 10_000);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn refund_refuses_bad_amounts_unknown_fields_and_unknown_transactions() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let redemption_id = id_of(&redeem(&app, &card_id, 4000).await);
    for amount in [json!(0), json!(-100), json!(1.5), json!("10")] {
        let response = refund(&app, &redemption_id, json!({"amount": amount})).await;
        assert_eq!(
            response.status.as_u16(),
            400,
            "amount {amount}: {}",
            response.text
        );
        assert_param(&response, "amount");
    }
    let response = refund(&app, &redemption_id, json!({"amont": 100})).await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "amont");
    refund(&app, "txn_0123456789abcdef0123456789abcdef", json!({}))
        .await
        .assert_error(404, "not_found");
    void(&app, "txn_0123456789abcdef0123456789abcdef")
        .await
        .assert_error(404, "not_found");
    void(&app, &card_id).await.assert_error(404, "not_found");
    app.get("/v1/transactions/txn_0123456789abcdef0123456789abcdef")
        .await
        .assert_error(404, "not_found");
    assert_eq!(balance(&app, &card_id).await, 6000);
    assert_eq!(transaction_count(&app, &card_id).await, 2);
    TestApp::assert_sound(&app.verify().await);
}

// ---- voids ----

#[tokio::test]
async fn void_of_a_redemption_restores_the_balance_exactly_once() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let redemption_id = id_of(&redeem(&app, &card_id, 4000).await);

    let response = app
        .post(
            &format!("/v1/transactions/{redemption_id}/void"),
            json!({"reference": "cashier error"}),
        )
        .await;
    response.assert_status(200);
    let voided = &response.body;
    assert!(voided["id"].as_str().unwrap().starts_with("txn_"));
    assert_eq!(voided["type"], "void");
    assert_eq!(voided["card_id"], card_id.as_str());
    assert_eq!(voided["amount"], 4000);
    assert_eq!(voided["currency"], "USD");
    assert_eq!(voided["balance_before"], 6000);
    assert_eq!(voided["balance_after"], 10_000);
    assert_eq!(voided["reverses"], redemption_id.as_str());
    assert_eq!(voided["reference"], "cashier error");
    assert_eq!(&get_transaction(&app, &id_of(voided)).await, voided);
    assert_eq!(balance(&app, &card_id).await, 10_000);

    void(&app, &redemption_id)
        .await
        .assert_error(409, "not_reversible");
    assert_eq!(balance(&app, &card_id).await, 10_000);
    assert_eq!(transaction_count(&app, &card_id).await, 3);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn void_of_a_load_takes_the_value_back() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(1000).await);
    let load_id = id_of(&on_card(&app, &card_id, "load", json!({"amount": 5000})).await);
    let response = void(&app, &load_id).await;
    response.assert_status(200);
    assert_eq!(response.body["type"], "void");
    assert_eq!(response.body["amount"], 5000);
    assert_eq!(response.body["balance_before"], 6000);
    assert_eq!(response.body["balance_after"], 1000);
    assert_eq!(response.body["reverses"], load_id.as_str());
    void(&app, &load_id).await.assert_error(409, "not_reversible");
    assert_eq!(balance(&app, &card_id).await, 1000);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn void_of_a_load_that_would_overdraw_is_not_reversible() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(1000).await);
    let load_id = id_of(&on_card(&app, &card_id, "load", json!({"amount": 5000})).await);
    redeem(&app, &card_id, 2000).await;
    let count = transaction_count(&app, &card_id).await;

    void(&app, &load_id).await.assert_error(409, "not_reversible");
    assert_eq!(balance(&app, &card_id).await, 4000);
    assert_eq!(transaction_count(&app, &card_id).await, count);

    // Value reserved by a hold counts too: the load's value is not all available.
    let other = id_of(&app.funded_card(1000).await);
    let load_id = id_of(&on_card(&app, &other, "load", json!({"amount": 5000})).await);
    app.post(&format!("/v1/cards/{other}/holds"), json!({"amount": 2000}))
        .await
        .assert_status(201);
    void(&app, &load_id).await.assert_error(409, "not_reversible");
    let card = get_card(&app, &other).await;
    assert_eq!(card["balance"], 6000);
    assert_eq!(card["held"], 2000);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn void_of_an_activation_amount_takes_it_back() {
    let app = TestApp::spawn().await;
    let program_id = app.usd_program().await;
    let stock = app
        .post("/v1/cards", json!({"program_id": program_id, "kind": "physical"}))
        .await;
    stock.assert_status(201);
    let card_id = id_of(&stock.body);
    let activation_id = id_of(&on_card(&app, &card_id, "activate", json!({"amount": 2500})).await);
    let response = void(&app, &activation_id).await;
    response.assert_status(200);
    assert_eq!(response.body["amount"], 2500);
    assert_eq!(response.body["balance_after"], 0);
    assert_eq!(response.body["reverses"], activation_id.as_str());
    void(&app, &activation_id)
        .await
        .assert_error(409, "not_reversible");

    // An activation without value moved nothing: nothing to void.
    let stock = app
        .post("/v1/cards", json!({"program_id": program_id, "kind": "physical"}))
        .await;
    let empty_id = id_of(&stock.body);
    let activation_id = id_of(&on_card(&app, &empty_id, "activate", json!({})).await);
    void(&app, &activation_id)
        .await
        .assert_error(409, "not_reversible");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn void_of_an_issue_amount_takes_it_back() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(2000).await);
    let listed = app.get(&format!("/v1/cards/{card_id}/transactions")).await;
    let issue_id = id_of(&listed.body["data"][0]);
    assert_eq!(listed.body["data"][0]["type"], "issue");
    let response = void(&app, &issue_id).await;
    response.assert_status(200);
    assert_eq!(response.body["amount"], 2000);
    assert_eq!(response.body["balance_before"], 2000);
    assert_eq!(response.body["balance_after"], 0);
    assert_eq!(response.body["reverses"], issue_id.as_str());
    void(&app, &issue_id).await.assert_error(409, "not_reversible");
    assert_eq!(balance(&app, &card_id).await, 0);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn void_of_a_refund_takes_the_refund_back_and_makes_it_refundable_again() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let redemption_id = id_of(&redeem(&app, &card_id, 4000).await);
    let refund_id = id_of(&refund(&app, &redemption_id, json!({"amount": 1000})).await.body);
    assert_eq!(balance(&app, &card_id).await, 7000);

    let response = void(&app, &refund_id).await;
    response.assert_status(200);
    assert_eq!(response.body["type"], "void");
    assert_eq!(response.body["amount"], 1000);
    assert_eq!(response.body["balance_before"], 7000);
    assert_eq!(response.body["balance_after"], 6000);
    assert_eq!(response.body["reverses"], refund_id.as_str());
    void(&app, &refund_id).await.assert_error(409, "not_reversible");

    // The voided refund no longer counts against the original.
    let response = refund(&app, &redemption_id, json!({})).await;
    response.assert_status(200);
    assert_eq!(response.body["amount"], 4000);
    assert_eq!(balance(&app, &card_id).await, 10_000);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn void_of_a_refund_whose_value_was_spent_is_not_reversible() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(4000).await);
    let redemption_id = id_of(&redeem(&app, &card_id, 4000).await);
    let refund_id = id_of(&refund(&app, &redemption_id, json!({"amount": 1000})).await.body);
    redeem(&app, &card_id, 500).await;
    void(&app, &refund_id).await.assert_error(409, "not_reversible");
    assert_eq!(balance(&app, &card_id).await, 500);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn void_of_a_cashout_restores_the_cashed_out_value() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(3000).await);
    let cashout = on_card(&app, &card_id, "cashout", json!({})).await;
    assert_eq!(cashout["amount"], 3000);
    let cashout_id = id_of(&cashout);
    assert_eq!(balance(&app, &card_id).await, 0);

    let response = void(&app, &cashout_id).await;
    response.assert_status(200);
    assert_eq!(response.body["type"], "void");
    assert_eq!(response.body["amount"], 3000);
    assert_eq!(response.body["balance_before"], 0);
    assert_eq!(response.body["balance_after"], 3000);
    assert_eq!(response.body["reverses"], cashout_id.as_str());
    void(&app, &cashout_id).await.assert_error(409, "not_reversible");
    let card = get_card(&app, &card_id).await;
    assert_eq!(card["state"], "active");
    assert_eq!(card["available"], 3000);
    redeem(&app, &card_id, 3000).await;
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn void_of_a_capture_restores_the_captured_value() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let hold = app
        .post(&format!("/v1/cards/{card_id}/holds"), json!({"amount": 3000}))
        .await;
    hold.assert_status(201);
    let hold_id = id_of(&hold.body);
    let capture = app
        .post(&format!("/v1/holds/{hold_id}/capture"), json!({"amount": 2000}))
        .await;
    capture.assert_status(200);
    let capture_id = id_of(&capture.body);
    assert_eq!(balance(&app, &card_id).await, 8000);

    let response = void(&app, &capture_id).await;
    response.assert_status(200);
    assert_eq!(response.body["amount"], 2000);
    assert_eq!(response.body["balance_before"], 8000);
    assert_eq!(response.body["balance_after"], 10_000);
    assert_eq!(response.body["reverses"], capture_id.as_str());
    void(&app, &capture_id).await.assert_error(409, "not_reversible");
    refund(&app, &capture_id, json!({}))
        .await
        .assert_error(409, "not_reversible");
    let card = get_card(&app, &card_id).await;
    assert_eq!(card["balance"], 10_000);
    assert_eq!(card["held"], 0);
    assert_eq!(card["available"], 10_000);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn voiding_a_partly_refunded_redemption_is_not_reversible() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let redemption_id = id_of(&redeem(&app, &card_id, 4000).await);
    refund(&app, &redemption_id, json!({"amount": 1000}))
        .await
        .assert_status(200);
    let count = transaction_count(&app, &card_id).await;

    void(&app, &redemption_id)
        .await
        .assert_error(409, "not_reversible");
    assert_eq!(balance(&app, &card_id).await, 7000);
    assert_eq!(transaction_count(&app, &card_id).await, count);

    // The rest is still refundable.
    let response = refund(&app, &redemption_id, json!({})).await;
    response.assert_status(200);
    assert_eq!(response.body["amount"], 3000);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn void_of_a_void_hold_or_release_is_not_reversible() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let redemption_id = id_of(&redeem(&app, &card_id, 1000).await);
    let void_id = id_of(&void(&app, &redemption_id).await.body);
    let hold = app
        .post(&format!("/v1/cards/{card_id}/holds"), json!({"amount": 500}))
        .await;
    hold.assert_status(201);
    app.post(&format!("/v1/holds/{}/release", id_of(&hold.body)), json!({}))
        .await
        .assert_status(200);
    let listed = app
        .get(&format!("/v1/cards/{card_id}/transactions?limit=100"))
        .await;
    let of_type = |kind: &str| {
        listed.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == kind)
            .map(id_of)
            .unwrap_or_else(|| panic!("a {kind} transaction in {}", listed.text))
    };
    let hold_txn = of_type("hold");
    let release_txn = of_type("release");
    let count = transaction_count(&app, &card_id).await;

    for id in [&void_id, &hold_txn, &release_txn] {
        void(&app, id).await.assert_error(409, "not_reversible");
        refund(&app, id, json!({}))
            .await
            .assert_error(409, "not_reversible");
    }
    assert_eq!(balance(&app, &card_id).await, 10_000);
    assert_eq!(transaction_count(&app, &card_id).await, count);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn reversals_on_a_closed_card_are_refused() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let redemption_id = id_of(&redeem(&app, &card_id, 4000).await);
    let response = app
        .post(
            &format!("/v1/cards/{card_id}/deactivate"),
            json!({"cashout": true}),
        )
        .await;
    response.assert_status(200);
    let count = transaction_count(&app, &card_id).await;

    void(&app, &redemption_id)
        .await
        .assert_error(422, "card_not_active");
    refund(&app, &redemption_id, json!({"amount": 100}))
        .await
        .assert_error(422, "card_not_active");
    let card = get_card(&app, &card_id).await;
    assert_eq!(card["state"], "closed");
    assert_eq!(card["balance"], 0);
    assert_eq!(transaction_count(&app, &card_id).await, count);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn refunds_and_voids_interleaved_keep_the_ledger_sound() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(20_000).await);
    let a = id_of(&redeem(&app, &card_id, 5000).await);
    let b = id_of(&redeem(&app, &card_id, 3000).await);
    let r1 = id_of(&refund(&app, &a, json!({"amount": 2000})).await.body);
    void(&app, &b).await.assert_status(200);
    void(&app, &r1).await.assert_status(200);
    refund(&app, &a, json!({"amount": 5000})).await.assert_status(200);
    refund(&app, &a, json!({"amount": 1}))
        .await
        .assert_error(422, "refund_exceeds_amount");
    assert_eq!(balance(&app, &card_id).await, 20_000);

    // Balances chain through every transaction.
    let listed = app
        .get(&format!("/v1/cards/{card_id}/transactions?limit=100"))
        .await;
    let all = listed.body["data"].as_array().unwrap();
    assert_eq!(all.len(), 7);
    for pair in all.windows(2) {
        assert_eq!(pair[0]["balance_before"], pair[1]["balance_after"]);
    }
    TestApp::assert_sound(&app.verify().await);
}

/// The contract: "Operations that move value accept an optional `currency`; when given it must
/// equal the card's (422 `currency_mismatch`)". Refunds and voids move value.
#[tokio::test]
async fn refund_and_void_accept_a_matching_currency_and_refuse_another() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let redemption_id = id_of(&redeem(&app, &card_id, 4000).await);
    let other_id = id_of(&redeem(&app, &card_id, 1000).await);

    let response = refund(&app, &redemption_id, json!({"amount": 100, "currency": "EUR"})).await;
    response.assert_error(422, "currency_mismatch");
    assert_param(&response, "currency");
    let response = app
        .post(
            &format!("/v1/transactions/{other_id}/void"),
            json!({"currency": "EUR"}),
        )
        .await;
    response.assert_error(422, "currency_mismatch");
    assert_param(&response, "currency");
    assert_eq!(balance(&app, &card_id).await, 5000);

    refund(&app, &redemption_id, json!({"amount": 100, "currency": "USD"}))
        .await
        .assert_status(200);
    app.post(
        &format!("/v1/transactions/{other_id}/void"),
        json!({"currency": "USD"}),
    )
    .await
    .assert_status(200);
    assert_eq!(balance(&app, &card_id).await, 6100);
    TestApp::assert_sound(&app.verify().await);
}
