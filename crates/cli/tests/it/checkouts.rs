//! Split-tender checkouts through the native API with the built-in simulated processor: the
//! order of the steps (payment first, gift cards after), every failure point reverting what
//! was taken (a decline, a gift card short, a timeout, a card frozen between authorization and
//! capture, a processor void that fails and is retried), refunds across tenders, fraud review,
//! idempotency, and concurrent checkouts on one gift card. After each, the ledger verifies and
//! the simulator's records agree with the checkout's.

use futures::future::join_all;
use giftd_testkit::{TestApp, TestResponse};
use serde_json::{Value, json};

const APPROVE: &str = "4242424242424242";
const DECLINE: &str = "4000000000000002";
const TIMEOUT: &str = "4000000000000119";
const FAIL_CAPTURE: &str = "4000000000000341";
const FAIL_REVERSAL: &str = "4000000000000259";

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

fn card_payment(number: &str) -> Value {
    json!({"type": "card", "number": number, "expiry": "12/30", "security_code": "123"})
}

async fn balance(app: &TestApp, card: &str) -> (i64, i64) {
    let response = app.get(&format!("/v1/cards/{card}")).await;
    response.assert_status(200);
    (
        response.body["balance"].as_i64().expect("balance"),
        response.body["available"].as_i64().expect("available"),
    )
}

async fn checkout(app: &TestApp, body: Value) -> TestResponse {
    app.post("/v1/checkouts", body).await
}

fn tender<'a>(checkout: &'a Value, kind: &str) -> &'a Value {
    checkout["tenders"]
        .as_array()
        .expect("tenders")
        .iter()
        .find(|t| t["type"] == kind)
        .expect("a tender of that type")
}

/// What the simulated processor recorded for the checkout's payment tender.
async fn processor(app: &TestApp, checkout: &Value) -> Value {
    let reference = tender(checkout, "card")["id"]
        .as_str()
        .expect("tender id")
        .to_owned();
    let response = app.get(&format!("/v1/simulator/payments/{reference}")).await;
    response.assert_status(200);
    response.body
}

async fn sound(app: &TestApp) {
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn gift_cards_alone_pay_a_whole_checkout_in_one_go() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = id_of(&app.card(&program, 3000).await);
    let b_card = app.card(&program, 2000).await;
    let b = id_of(&b_card);

    let response = checkout(
        &app,
        json!({
            "amount": 4000, "currency": "USD", "intent": "capture", "reference": "order-1",
            "gift_cards": [
                {"card_id": a, "amount": 2500},
                {"number": b_card["number"], "security_code": b_card["security_code"], "amount": 1500},
            ],
        }),
    )
    .await;
    response.assert_status(201);
    let body = &response.body;
    assert_eq!(body["object"], "checkout");
    assert!(id_of(body).starts_with("chk_"));
    assert_eq!(body["status"], "captured");
    assert_eq!(body["intent_outcome"], "succeeded");
    assert_eq!(body["multi_tender"], true);
    assert_eq!(body["reference"], "order-1");
    let tenders = body["tenders"].as_array().expect("tenders");
    assert_eq!(tenders.len(), 2);
    assert!(
        tenders
            .iter()
            .all(|t| t["status"] == "redeemed" && t["type"] == "gift_card")
    );
    assert_eq!(balance(&app, &a).await, (500, 500));
    assert_eq!(balance(&app, &b).await, (500, 500));

    // The card's history names the checkout.
    let history = app.get(&format!("/v1/cards/{a}/transactions")).await;
    assert_eq!(history.body["data"][0]["type"], "redemption");
    assert_eq!(history.body["data"][0]["reference"], id_of(body).as_str());

    let fetched = app.get(&format!("/v1/checkouts/{}", id_of(body))).await;
    fetched.assert_status(200);
    assert_eq!(fetched.body, response.body);
    sound(&app).await;
}

#[tokio::test]
async fn the_payment_is_captured_first_and_the_gift_card_after() {
    let app = TestApp::spawn().await;
    let card = id_of(&app.funded_card(1000).await);
    let response = checkout(
        &app,
        json!({
            "amount": 5000, "currency": "USD", "intent": "capture",
            "gift_cards": [{"card_id": card, "amount": 1000}],
            "payment_method": card_payment(APPROVE),
        }),
    )
    .await;
    response.assert_status(201);
    let body = &response.body;
    assert_eq!(
        (body["status"].as_str(), body["intent_outcome"].as_str()),
        (Some("captured"), Some("succeeded"))
    );
    let payment = tender(body, "card");
    assert_eq!(payment["amount"], 4000);
    assert_eq!(payment["status"], "captured");
    assert_eq!(payment["last4"], "4242");
    assert_eq!(payment["brand"], "visa");
    assert_eq!(payment["connector"], "simulator");
    assert_eq!(tender(body, "gift_card")["status"], "redeemed");
    assert_eq!(balance(&app, &card).await, (0, 0));

    let sim = processor(&app, body).await;
    assert_eq!(sim["status"], "captured");
    assert_eq!(sim["captured_amount"], 4000);
    assert_eq!(sim["processor_reference"], payment["processor_reference"]);
    // The card number is not stored anywhere, only its last four digits.
    assert!(!String::from_utf8_lossy(&app.stored_bytes().await).contains(APPROVE));
    sound(&app).await;
}

#[tokio::test]
async fn authorize_holds_the_gift_cards_and_capture_takes_them() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = id_of(&app.card(&program, 1000).await);
    let b = id_of(&app.card(&program, 1000).await);
    let response = checkout(
        &app,
        json!({
            "amount": 2000, "currency": "USD", "intent": "authorize",
            "gift_cards": [{"card_id": a, "amount": 600}, {"card_id": b, "amount": 400}],
            "payment_method": card_payment(APPROVE),
        }),
    )
    .await;
    response.assert_status(201);
    let body = response.body.clone();
    assert_eq!(
        (body["status"].as_str(), body["intent_outcome"].as_str()),
        (Some("authorized"), Some("succeeded"))
    );
    assert_eq!(tender(&body, "card")["status"], "authorized");
    assert_eq!(processor(&app, &body).await["status"], "authorized");
    assert_eq!(balance(&app, &a).await, (1000, 400));
    assert_eq!(balance(&app, &b).await, (1000, 600));

    let captured = app
        .post(&format!("/v1/checkouts/{}/capture", id_of(&body)), json!({}))
        .await;
    captured.assert_status(200);
    assert_eq!(captured.body["status"], "captured");
    assert_eq!(captured.body["intent_outcome"], "succeeded");
    assert!(
        captured.body["tenders"]
            .as_array()
            .expect("tenders")
            .iter()
            .all(|t| t["status"] == "redeemed" || t["status"] == "captured")
    );
    assert_eq!(balance(&app, &a).await, (400, 400));
    assert_eq!(balance(&app, &b).await, (600, 600));
    assert_eq!(processor(&app, &body).await["captured_amount"], 1000);

    // Captured once: a second capture is a state conflict and changes nothing.
    let again = app
        .post(&format!("/v1/checkouts/{}/capture", id_of(&body)), json!({}))
        .await;
    again.assert_error(409, "invalid_state");
    assert_eq!(
        again.body["error"]["message"],
        "The checkout is captured; it cannot be captured."
    );
    sound(&app).await;
}

#[tokio::test]
async fn a_declined_payment_leaves_the_gift_cards_untouched() {
    let app = TestApp::spawn().await;
    let card = id_of(&app.funded_card(1000).await);
    let response = checkout(
        &app,
        json!({
            "amount": 3000, "currency": "USD", "intent": "capture",
            "gift_cards": [{"card_id": card, "amount": 1000}],
            "payment_method": card_payment(DECLINE),
        }),
    )
    .await;
    response.assert_status(201);
    let body = &response.body;
    assert_eq!(
        (body["status"].as_str(), body["intent_outcome"].as_str()),
        (Some("failed"), Some("failed"))
    );
    assert_eq!(tender(body, "card")["status"], "declined");
    assert_eq!(tender(body, "gift_card")["status"], "skipped");
    assert_eq!(body["failure"]["code"], "card_declined");
    assert_eq!(balance(&app, &card).await, (1000, 1000));
    assert_eq!(processor(&app, body).await["status"], "declined");
    let history = app.get(&format!("/v1/cards/{card}/transactions")).await;
    assert_eq!(
        history.body["data"].as_array().map(Vec::len),
        Some(1),
        "only the issue"
    );
    sound(&app).await;
}

#[tokio::test]
async fn one_gift_card_short_fails_them_all_and_refunds_the_captured_payment() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let rich = id_of(&app.card(&program, 5000).await);
    let poor = id_of(&app.card(&program, 100).await);
    let response = checkout(
        &app,
        json!({
            "amount": 3000, "currency": "USD", "intent": "capture",
            "gift_cards": [{"card_id": rich, "amount": 1000}, {"card_id": poor, "amount": 1000}],
            "payment_method": card_payment(APPROVE),
        }),
    )
    .await;
    response.assert_status(201);
    let body = &response.body;
    assert_eq!(
        (body["status"].as_str(), body["intent_outcome"].as_str()),
        (Some("failed"), Some("failed"))
    );
    let gifts: Vec<&Value> = body["tenders"]
        .as_array()
        .expect("tenders")
        .iter()
        .filter(|t| t["type"] == "gift_card")
        .collect();
    assert!(gifts.iter().all(|t| t["status"] == "failed"));
    assert_eq!(gifts[1]["error_code"], "insufficient_funds");
    assert_eq!(body["failure"]["code"], "insufficient_funds");
    // Neither card changed: the legs commit together or not at all.
    assert_eq!(balance(&app, &rich).await, (5000, 5000));
    assert_eq!(balance(&app, &poor).await, (100, 100));
    // The capture was refunded at the processor.
    let payment = tender(body, "card");
    assert_eq!(
        (payment["status"].as_str(), payment["refunded_amount"].as_i64()),
        (Some("refunded"), Some(1000))
    );
    let sim = processor(&app, body).await;
    assert_eq!(
        (sim["captured_amount"].as_i64(), sim["refunded_amount"].as_i64()),
        (Some(1000), Some(1000))
    );

    // With intent authorize, the authorization is voided instead.
    let response = checkout(
        &app,
        json!({
            "amount": 3000, "currency": "USD", "intent": "authorize",
            "gift_cards": [{"card_id": rich, "amount": 1000}, {"card_id": poor, "amount": 1000}],
            "payment_method": card_payment(APPROVE),
        }),
    )
    .await;
    assert_eq!(tender(&response.body, "card")["status"], "voided");
    assert_eq!(processor(&app, &response.body).await["status"], "voided");
    assert_eq!(balance(&app, &rich).await, (5000, 5000));
    sound(&app).await;
}

#[tokio::test]
async fn a_processor_timeout_is_voided_and_fails_the_checkout() {
    let app = TestApp::spawn().await;
    let card = id_of(&app.funded_card(1000).await);
    let response = checkout(
        &app,
        json!({
            "amount": 3000, "currency": "USD", "intent": "capture",
            "gift_cards": [{"card_id": card, "amount": 500}],
            "payment_method": card_payment(TIMEOUT),
        }),
    )
    .await;
    response.assert_status(201);
    let body = &response.body;
    assert_eq!(body["intent_outcome"], "failed");
    assert_eq!(body["failure"]["code"], "processor_unavailable");
    assert_eq!(tender(body, "card")["status"], "voided");
    assert_eq!(tender(body, "gift_card")["status"], "skipped");
    // The processor had authorized it without answering; giftd voided it by its reference.
    assert_eq!(processor(&app, body).await["status"], "voided");
    assert_eq!(balance(&app, &card).await, (1000, 1000));
    sound(&app).await;
}

#[tokio::test]
async fn a_failing_processor_void_is_retried_until_it_succeeds() {
    let app = TestApp::spawn().await;
    let card = id_of(&app.funded_card(1000).await);
    let response = checkout(
        &app,
        json!({
            "amount": 3000, "currency": "USD", "intent": "authorize",
            "gift_cards": [{"card_id": card, "amount": 500}],
            "payment_method": card_payment(FAIL_REVERSAL),
        }),
    )
    .await;
    assert_eq!(response.body["status"], "authorized");
    let id = id_of(&response.body);

    let voided = app.post(&format!("/v1/checkouts/{id}/void"), json!({})).await;
    voided.assert_status(200);
    // The holds are released at once; the processor's void failed and waits for a retry.
    assert_eq!(voided.body["status"], "voiding");
    assert_eq!(tender(&voided.body, "card")["status"], "void_pending");
    assert!(tender(&voided.body, "card")["next_retry_at"].is_string());
    assert_eq!(tender(&voided.body, "gift_card")["status"], "released");
    assert_eq!(balance(&app, &card).await, (1000, 1000));

    // Not due yet: the recovery loop leaves it.
    app.service.recover_checkouts().await.expect("recovery runs");
    assert_eq!(processor(&app, &response.body).await["failed_reversals"], 1);
    // Due after 1 s: tried again, fails again (the second planned failure).
    app.clock.advance_seconds(1);
    app.service.recover_checkouts().await.expect("recovery runs");
    assert_eq!(processor(&app, &response.body).await["failed_reversals"], 2);
    assert_eq!(
        app.get(&format!("/v1/checkouts/{id}")).await.body["status"],
        "voiding"
    );
    // The backoff doubles: 2 s later the third try succeeds.
    app.clock.advance_seconds(2);
    app.service.recover_checkouts().await.expect("recovery runs");
    let done = app.get(&format!("/v1/checkouts/{id}")).await;
    assert_eq!(done.body["status"], "voided");
    assert_eq!(tender(&done.body, "card")["status"], "voided");
    assert_eq!(
        done.body["intent_outcome"], "succeeded",
        "the outcome never changes once reached"
    );
    assert_eq!(processor(&app, &response.body).await["status"], "voided");
    sound(&app).await;
}

#[tokio::test]
async fn a_gift_card_frozen_between_authorization_and_capture_fails_the_capture_as_a_whole() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = id_of(&app.card(&program, 1000).await);
    let b = id_of(&app.card(&program, 1000).await);
    let response = checkout(
        &app,
        json!({
            "amount": 2500, "currency": "USD", "intent": "authorize",
            "gift_cards": [{"card_id": a, "amount": 500}, {"card_id": b, "amount": 500}],
            "payment_method": card_payment(APPROVE),
        }),
    )
    .await;
    let id = id_of(&response.body);
    app.post(&format!("/v1/cards/{b}/freeze"), json!({}))
        .await
        .assert_status(200);

    let captured = app.post(&format!("/v1/checkouts/{id}/capture"), json!({})).await;
    captured.assert_error(422, "capture_failed");
    let after = app.get(&format!("/v1/checkouts/{id}")).await.body;
    assert_eq!(after["status"], "failed");
    assert_eq!(
        after["intent_outcome"], "succeeded",
        "the authorize intent was met; it stays so"
    );
    assert_eq!(after["failure"]["code"], "card_not_active");
    let gifts: Vec<&Value> = after["tenders"]
        .as_array()
        .expect("tenders")
        .iter()
        .filter(|t| t["type"] == "gift_card")
        .collect();
    assert!(gifts.iter().all(|t| t["status"] == "released"));
    // Both holds released, nothing redeemed; the payment captured then refunded in full.
    assert_eq!(balance(&app, &a).await, (1000, 1000));
    assert_eq!(balance(&app, &b).await, (1000, 1000));
    assert_eq!(tender(&after, "card")["status"], "refunded");
    let sim = processor(&app, &after).await;
    assert_eq!(
        (sim["captured_amount"].as_i64(), sim["refunded_amount"].as_i64()),
        (Some(1500), Some(1500))
    );
    sound(&app).await;
}

#[tokio::test]
async fn a_capture_the_processor_refuses_leaves_the_checkout_authorized() {
    let app = TestApp::spawn().await;
    let card = id_of(&app.funded_card(1000).await);
    let response = checkout(
        &app,
        json!({
            "amount": 1500, "currency": "USD", "intent": "authorize",
            "gift_cards": [{"card_id": card, "amount": 500}],
            "payment_method": card_payment(FAIL_CAPTURE),
        }),
    )
    .await;
    let id = id_of(&response.body);
    app.post(&format!("/v1/checkouts/{id}/capture"), json!({}))
        .await
        .assert_error(422, "payment_declined");
    let after = app.get(&format!("/v1/checkouts/{id}")).await.body;
    assert_eq!(after["status"], "authorized");
    assert_eq!(tender(&after, "gift_card")["status"], "held");
    assert_eq!(balance(&app, &card).await, (1000, 500));
    // It can still be voided.
    let voided = app.post(&format!("/v1/checkouts/{id}/void"), json!({})).await;
    assert_eq!(voided.body["status"], "voided");
    assert_eq!(balance(&app, &card).await, (1000, 1000));
    assert_eq!(processor(&app, &after).await["status"], "voided");
    sound(&app).await;
}

#[tokio::test]
async fn refunds_go_to_the_payment_first_then_the_gift_cards_last_first() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = id_of(&app.card(&program, 1000).await);
    let b = id_of(&app.card(&program, 1000).await);
    let response = checkout(
        &app,
        json!({
            "amount": 3000, "currency": "USD", "intent": "capture",
            "gift_cards": [{"card_id": a, "amount": 1000}, {"card_id": b, "amount": 1000}],
            "payment_method": card_payment(APPROVE),
        }),
    )
    .await;
    let id = id_of(&response.body);
    assert_eq!(response.body["refundable_amount"], 3000);

    let refund = app
        .post(
            &format!("/v1/checkouts/{id}/refund"),
            json!({"amount": 1300, "reference": "rma-1"}),
        )
        .await;
    refund.assert_status(200);
    let allocations = &refund.body["refunds"][0]["allocations"];
    let payment_id = tender(&refund.body, "card")["id"].clone();
    let b_tender = refund.body["tenders"][1]["id"].clone();
    assert_eq!(allocations[0]["tender_id"], payment_id);
    assert_eq!(allocations[0]["amount"], 1000);
    assert_eq!(allocations[1]["tender_id"], b_tender);
    assert_eq!(allocations[1]["amount"], 300);
    let refund_txn = allocations[1]["transaction_id"]
        .as_str()
        .expect("a refund transaction");
    let txn = app.get(&format!("/v1/transactions/{refund_txn}")).await.body;
    assert_eq!(
        (txn["type"].as_str(), txn["amount"].as_i64()),
        (Some("refund"), Some(300))
    );
    assert_eq!(txn["reverses"], refund.body["tenders"][1]["transaction_id"]);
    assert_eq!(balance(&app, &b).await, (300, 300));
    assert_eq!(tender(&refund.body, "card")["status"], "refunded");
    assert_eq!(processor(&app, &refund.body).await["refunded_amount"], 1000);
    assert_eq!(refund.body["refundable_amount"], 1700);

    // A refund aimed at one tender.
    let a_tender = refund.body["tenders"][0]["id"]
        .as_str()
        .expect("tender")
        .to_owned();
    let targeted = app
        .post(
            &format!("/v1/checkouts/{id}/refund"),
            json!({"tender_id": a_tender}),
        )
        .await;
    targeted.assert_status(200);
    assert_eq!(targeted.body["refunds"][1]["amount"], 1000);
    assert_eq!(balance(&app, &a).await, (1000, 1000));
    // More than is left: refused, nothing changes.
    app.post(&format!("/v1/checkouts/{id}/refund"), json!({"amount": 701}))
        .await
        .assert_error(422, "refund_exceeds_amount");
    app.post(
        &format!("/v1/checkouts/{id}/refund"),
        json!({"tender_id": "gcr_nope"}),
    )
    .await
    .assert_status(422);
    let rest = app.post(&format!("/v1/checkouts/{id}/refund"), json!({})).await;
    assert_eq!(rest.body["refundable_amount"], 0);
    assert_eq!(balance(&app, &b).await, (1000, 1000));
    // Only captured checkouts are refunded.
    sound(&app).await;
}

#[tokio::test]
async fn a_rejected_review_reverts_the_payment_but_not_the_gift_cards() {
    let app = TestApp::spawn().await;
    let card = id_of(&app.funded_card(1000).await);
    let body = json!({
        "amount": 3000, "currency": "USD", "intent": "capture", "review": true,
        "gift_cards": [{"card_id": card, "amount": 1000}],
        "payment_method": card_payment(APPROVE),
    });
    let response = checkout(&app, body.clone()).await;
    response.assert_status(201);
    assert_eq!(response.body["status"], "in_review");
    assert_eq!(response.body["intent_outcome"], "pending");
    assert_eq!(tender(&response.body, "card")["status"], "authorized");
    assert_eq!(tender(&response.body, "gift_card")["status"], "redeemed");
    let id = id_of(&response.body);

    let rejected = app
        .post(
            &format!("/v1/checkouts/{id}/review"),
            json!({"decision": "reject"}),
        )
        .await;
    rejected.assert_status(200);
    assert_eq!(rejected.body["status"], "failed");
    assert_eq!(rejected.body["intent_outcome"], "failed");
    assert_eq!(rejected.body["review"], "rejected");
    assert_eq!(tender(&rejected.body, "card")["status"], "voided");
    assert_eq!(processor(&app, &rejected.body).await["status"], "voided");
    // The gift card's redemption stands, and is the merchant's to refund by hand.
    assert_eq!(tender(&rejected.body, "gift_card")["status"], "redeemed");
    assert_eq!(balance(&app, &card).await, (0, 0));
    let redemption = id_of(&newest_transaction(&app, &card).await);
    app.post(&format!("/v1/transactions/{redemption}/refund"), json!({}))
        .await
        .assert_status(200);
    assert_eq!(balance(&app, &card).await, (1000, 1000));
    app.post(
        &format!("/v1/checkouts/{id}/review"),
        json!({"decision": "approve"}),
    )
    .await
    .assert_error(409, "invalid_state");

    // Approved, the capture intent is met by capturing the payment.
    let other = id_of(&app.funded_card(1000).await);
    let mut body = body;
    body["gift_cards"][0]["card_id"] = json!(other);
    let held = checkout(&app, body).await;
    let approved = app
        .post(
            &format!("/v1/checkouts/{}/review", id_of(&held.body)),
            json!({"decision": "approve"}),
        )
        .await;
    approved.assert_status(200);
    assert_eq!(approved.body["status"], "captured");
    assert_eq!(approved.body["intent_outcome"], "succeeded");
    assert_eq!(processor(&app, &approved.body).await["captured_amount"], 2000);
    sound(&app).await;
}

#[tokio::test]
async fn an_idempotent_checkout_runs_once_and_answers_alike() {
    let app = TestApp::spawn().await;
    let card = id_of(&app.funded_card(1000).await);
    let body = json!({
        "amount": 1500, "currency": "USD", "intent": "capture",
        "gift_cards": [{"card_id": card, "amount": 1000}],
        "payment_method": card_payment(APPROVE),
    });
    let first = app
        .post_idempotent("/v1/checkouts", body.clone(), "order-77")
        .await;
    first.assert_status(201);
    let again = app
        .post_idempotent("/v1/checkouts", body.clone(), "order-77")
        .await;
    assert_eq!((again.status, &again.text), (first.status, &first.text));
    assert_eq!(balance(&app, &card).await, (0, 0));
    let mut other = body.clone();
    other["amount"] = json!(1600);
    app.post_idempotent("/v1/checkouts", other, "order-77")
        .await
        .assert_error(409, "idempotency_key_reused");

    // Concurrent duplicates: one checkout, one answer.
    let fresh = id_of(&app.funded_card(1000).await);
    let mut body = body;
    body["gift_cards"][0]["card_id"] = json!(fresh);
    let answers =
        join_all((0..8).map(|_| app.post_idempotent("/v1/checkouts", body.clone(), "order-78"))).await;
    let ok: Vec<&TestResponse> = answers.iter().filter(|a| a.status == 201).collect();
    assert!(!ok.is_empty());
    assert!(ok.iter().all(|a| a.text == ok[0].text));
    assert_eq!(balance(&app, &fresh).await, (0, 0));
    sound(&app).await;
}

#[tokio::test]
async fn concurrent_checkouts_on_one_gift_card_never_overdraw_it() {
    let app = TestApp::spawn().await;
    let card = id_of(&app.funded_card(1000).await);
    let answers = join_all((0..40).map(|i| {
        checkout(
            &app,
            json!({
                "amount": 300, "currency": "USD", "intent": "capture", "reference": format!("o-{i}"),
                "gift_cards": [{"card_id": card, "amount": 100}],
                "payment_method": card_payment(APPROVE),
            }),
        )
    }))
    .await;
    let mut succeeded = 0;
    for answer in &answers {
        answer.assert_status(201);
        match answer.body["intent_outcome"].as_str() {
            Some("succeeded") => {
                succeeded += 1;
                assert_eq!(processor(&app, &answer.body).await["status"], "captured");
            }
            Some("failed") => {
                assert_eq!(
                    tender(&answer.body, "gift_card")["error_code"],
                    "insufficient_funds"
                );
                let sim = processor(&app, &answer.body).await;
                assert_eq!(
                    sim["refunded_amount"], sim["captured_amount"],
                    "the payment was given back"
                );
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(succeeded, 10);
    assert_eq!(balance(&app, &card).await, (0, 0));
    sound(&app).await;
}

#[tokio::test]
async fn bad_checkout_requests_are_refused_without_effect() {
    let app = TestApp::spawn().await;
    let card_value = app.funded_card(1000).await;
    let card = id_of(&card_value);
    let leg = json!({"card_id": card, "amount": 100});
    let cases = [
        (
            json!({"amount": 100, "currency": "USD", "intent": "sell", "gift_cards": [leg]}),
            400,
            "intent",
        ),
        (
            json!({"amount": 100, "currency": "usd", "intent": "capture", "gift_cards": [leg]}),
            400,
            "currency",
        ),
        (
            json!({"amount": 0, "currency": "USD", "intent": "capture", "gift_cards": [leg]}),
            400,
            "amount",
        ),
        (
            json!({"amount": 200, "currency": "USD", "intent": "capture", "gift_cards": [leg]}),
            400,
            "gift_cards",
        ),
        (
            json!({"amount": 50, "currency": "USD", "intent": "capture", "gift_cards": [leg]}),
            400,
            "gift_cards",
        ),
        (
            json!({"amount": 100, "currency": "USD", "intent": "capture"}),
            400,
            "gift_cards",
        ),
        (
            json!({"amount": 100, "currency": "USD", "intent": "capture", "gift_cards": [leg],
                "payment_method": card_payment(APPROVE)}),
            400,
            "payment_method",
        ),
        (
            json!({"amount": 200, "currency": "USD", "intent": "capture", "gift_cards": [leg],
                "payment_method": {"type": "card", "number": "42"}}),
            400,
            "payment_method",
        ),
        (
            json!({"amount": 200, "currency": "USD", "intent": "capture", "gift_cards": [leg, leg]}),
            400,
            "gift_cards",
        ),
        (
            json!({"amount": 100, "currency": "USD", "intent": "capture",
                "gift_cards": [{"card_id": card, "number": "4111", "amount": 100}]}),
            400,
            "gift_cards",
        ),
        (
            json!({"amount": 100, "currency": "USD", "intent": "capture", "gift_cards": [leg], "ammount": 1}),
            400,
            "ammount",
        ),
        (
            json!({"amount": 1100, "currency": "USD", "intent": "capture",
                "gift_cards": (0..11).map(|_| leg.clone()).collect::<Vec<_>>()}),
            400,
            "gift_cards",
        ),
    ];
    for (body, status, param) in cases {
        let response = checkout(&app, body.clone()).await;
        assert_eq!(response.status.as_u16(), status, "{body}: {}", response.text);
        assert_eq!(
            response.body["error"]["param"], param,
            "{body}: {}",
            response.text
        );
    }
    // A wrong security code is `invalid_card`, like a lookup, and counts toward the lockout.
    let wrong = checkout(
        &app,
        json!({"amount": 100, "currency": "USD", "intent": "capture",
               "gift_cards": [{"number": card_value["number"], "security_code": "00000000", "amount": 100}]}),
    )
    .await;
    wrong.assert_error(404, "invalid_card");
    // A card in another currency.
    let eur = app.program(json!({"name": "EUR", "currency": "EUR"})).await;
    let eur_card = id_of(&app.card(&eur, 1000).await);
    checkout(
        &app,
        json!({"amount": 100, "currency": "USD", "intent": "capture",
               "gift_cards": [{"card_id": eur_card, "amount": 100}]}),
    )
    .await
    .assert_error(422, "currency_mismatch");
    // Another merchant's card and checkout are not found.
    let other = app.another_merchant().await;
    let mine = checkout(
        &app,
        json!({"amount": 100, "currency": "USD", "intent": "capture", "gift_cards": [leg]}),
    )
    .await;
    mine.assert_status(201);
    let theirs = app
        .post_as(
            "/v1/checkouts",
            json!({"amount": 100, "currency": "USD", "intent": "capture", "gift_cards": [leg]}),
            &other,
            None,
        )
        .await;
    theirs.assert_error(404, "not_found");
    app.get_as(&format!("/v1/checkouts/{}", id_of(&mine.body)), &other)
        .await
        .assert_error(404, "not_found");
    app.get("/v1/checkouts/chk_unknown")
        .await
        .assert_error(404, "not_found");
    app.get("/v1/checkouts/card_x").await.assert_status(404);
    // Only the one good checkout took value.
    assert_eq!(balance(&app, &card).await, (900, 900));
    sound(&app).await;
}

/// The newest transaction of a card, as its history lists it.
async fn newest_transaction(app: &TestApp, card: &str) -> Value {
    let history = app.get(&format!("/v1/cards/{card}/transactions")).await;
    history.assert_status(200);
    history.body["data"][0].clone()
}

#[tokio::test]
async fn a_checkouts_gift_card_legs_are_reversed_captured_or_released_only_through_the_checkout() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = id_of(&app.card(&program, 3000).await);
    let paid = checkout(
        &app,
        json!({"amount": 1000, "currency": "USD", "intent": "capture",
               "gift_cards": [{"card_id": a, "amount": 1000}]}),
    )
    .await;
    paid.assert_status(201);
    let chk = id_of(&paid.body);
    let redemption = id_of(&newest_transaction(&app, &a).await);
    let owned = |response: &TestResponse| {
        response.assert_error(409, "checkout_owned");
        let message = response.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(&chk), "{message}");
    };
    for (action, body) in [
        ("void", json!({})),
        ("refund", json!({})),
        ("refund", json!({"amount": 1})),
    ] {
        owned(
            &app.post(&format!("/v1/transactions/{redemption}/{action}"), body)
                .await,
        );
    }
    assert_eq!(balance(&app, &a).await, (2000, 2000), "nothing moved");

    // The checkout's own refund still reverses its leg, and that refund is the checkout's too.
    let refunded = app
        .post(&format!("/v1/checkouts/{chk}/refund"), json!({"amount": 400}))
        .await;
    refunded.assert_status(200);
    assert_eq!(balance(&app, &a).await, (2400, 2400));
    let refund = newest_transaction(&app, &a).await;
    assert_eq!(refund["type"], "refund");
    owned(
        &app.post(&format!("/v1/transactions/{}/void", id_of(&refund)), json!({}))
            .await,
    );

    // A redemption whose reference only looks like the checkout's id is the client's own.
    let own = app
        .post(
            &format!("/v1/cards/{a}/redeem"),
            json!({"amount": 100, "reference": chk}),
        )
        .await;
    own.assert_status(200);
    app.post(&format!("/v1/transactions/{}/void", id_of(&own.body)), json!({}))
        .await
        .assert_status(200);

    // An authorized checkout's holds are captured or released by the checkout alone.
    let b = id_of(&app.card(&program, 1000).await);
    let held = checkout(
        &app,
        json!({"amount": 500, "currency": "USD", "intent": "authorize",
               "gift_cards": [{"card_id": b, "amount": 500}]}),
    )
    .await;
    held.assert_status(201);
    let chk = id_of(&held.body);
    let hold = newest_transaction(&app, &b).await["hold_id"]
        .as_str()
        .expect("the hold's id")
        .to_owned();
    for (action, body) in [("capture", json!({"amount": 500})), ("release", json!({}))] {
        let response = app.post(&format!("/v1/holds/{hold}/{action}"), body).await;
        response.assert_error(409, "checkout_owned");
        assert!(response.text.contains(&chk), "{}", response.text);
    }
    assert_eq!(balance(&app, &b).await, (1000, 500), "the hold is still there");
    app.post(&format!("/v1/checkouts/{chk}/capture"), json!({}))
        .await
        .assert_status(200);
    assert_eq!(balance(&app, &b).await, (500, 500));
    sound(&app).await;
}

#[tokio::test]
async fn checkouts_are_listed_newest_first_a_page_at_a_time_and_per_merchant() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(10_000).await;
    let mut made = Vec::new();
    for amount in [100, 200, 300] {
        let created = checkout(
            &app,
            json!({"amount": amount, "currency": "USD", "intent": "capture",
                   "gift_cards": [{"card_id": card["id"], "amount": amount}]}),
        )
        .await;
        created.assert_status(201);
        made.push(created.body["id"].as_str().unwrap().to_owned());
    }
    let first = app.get("/v1/checkouts?limit=2").await;
    first.assert_status(200);
    let ids: Vec<&str> = first.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [made[2].as_str(), made[1].as_str()]);
    assert_eq!(first.body["data"][0]["status"], "captured");
    let cursor = first.body["next_cursor"].as_str().expect("a next page");
    let second = app.get(&format!("/v1/checkouts?limit=2&cursor={cursor}")).await;
    second.assert_status(200);
    assert_eq!(second.body["data"][0]["id"], made[0].as_str());
    assert!(second.body["next_cursor"].is_null());

    let other = app.another_merchant().await;
    let theirs = app.get_as("/v1/checkouts", &other).await;
    theirs.assert_status(200);
    assert_eq!(theirs.body["data"].as_array().unwrap().len(), 0);
    app.get("/v1/checkouts?cursor=card_1")
        .await
        .assert_error(400, "invalid_request");
}
