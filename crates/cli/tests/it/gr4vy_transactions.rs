//! Gr4vy's transactions with gift cards under `/gr4vy/transactions` (seed 002, docs/GR4VY.md
//! "Transactions"), over giftd's checkouts and the built-in simulated processor: the
//! constructed example of a split tender answered field by field, authorize then capture,
//! void, a declined payment, one gift card short (every redemption failed, the payment
//! reverted), refunds of one redemption and of everything, idempotency, the limit of 10 gift
//! cards, malformed requests (Gr4vy's 400 envelope, never a 500) and tenant isolation. After
//! each, the ledger verifies.

use giftd_testkit::{TestApp, TestResponse};
use serde_json::{Value, json};

const APPROVE: &str = "4111111111111111";
const DECLINE: &str = "4000000000000002";
const FAIL_CAPTURE: &str = "4000000000000341";

/// Every field Gr4vy's `Transaction` schema requires.
const REQUIRED_TRANSACTION_FIELDS: [&str; 22] = [
    "id",
    "reconciliation_id",
    "merchant_account_id",
    "currency",
    "amount",
    "status",
    "authorized_amount",
    "captured_amount",
    "refunded_amount",
    "settled_amount",
    "settled",
    "intent",
    "gift_card_redemptions",
    "created_at",
    "updated_at",
    "disputed",
    "payment_source",
    "merchant_initiated",
    "is_subsequent_payment",
    "intent_outcome",
    "multi_tender",
    "account_funding_transaction",
];

/// Every field Gr4vy's `Refund` schema requires.
const REQUIRED_REFUND_FIELDS: [&str; 11] = [
    "id",
    "transaction_id",
    "status",
    "currency",
    "amount",
    "target_type",
    "reconciliation_id",
    "transaction_reconciliation_id",
    "created_at",
    "updated_at",
    "settled",
];

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

/// Whether `id` is a UUID in its hyphenated form, as Gr4vy's ids are.
fn is_uuid(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// giftd's id behind a UUID the facade showed: `prefix` and the UUID's hex digits.
fn giftd_id(prefix: &str, uuid: &str) -> String {
    format!("{prefix}{}", uuid.replace('-', ""))
}

fn card_payment(number: &str) -> Value {
    json!({"method": "card", "number": number, "expiration_date": "12/30", "security_code": "123"})
}

/// A gift card of a transaction, named by its number and PIN.
fn by_secret(card: &Value, amount: i64) -> Value {
    json!({"number": card["number"], "pin": card["security_code"], "amount": amount})
}

/// A stored gift card of a transaction, named by its id.
fn by_id(card: &Value, amount: i64) -> Value {
    json!({"id": card["id"], "amount": amount})
}

async fn create(app: &TestApp, body: Value) -> TestResponse {
    app.post("/gr4vy/transactions", body).await
}

async fn created(app: &TestApp, body: Value) -> Value {
    let response = create(app, body).await;
    response.assert_status(201);
    assert_transaction_shape(&response.body);
    response.body
}

async fn fetch(app: &TestApp, id: &str) -> Value {
    let response = app.get(&format!("/gr4vy/transactions/{id}")).await;
    response.assert_status(200);
    assert_transaction_shape(&response.body);
    response.body
}

/// (balance, available) of a card, from the native API.
async fn balance(app: &TestApp, card: &Value) -> (i64, i64) {
    let response = app.get(&format!("/v1/cards/{}", id_of(card))).await;
    response.assert_status(200);
    (
        response.body["balance"].as_i64().expect("balance"),
        response.body["available"].as_i64().expect("available"),
    )
}

/// What the simulated processor recorded for the transaction's payment method.
async fn processor(app: &TestApp, transaction: &Value) -> Value {
    let reference = giftd_id(
        "pay_",
        transaction["payment_method"]["id"]
            .as_str()
            .expect("a payment method id"),
    );
    let response = app.get(&format!("/v1/simulator/payments/{reference}")).await;
    response.assert_status(200);
    response.body
}

fn redemptions(transaction: &Value) -> &Vec<Value> {
    transaction["gift_card_redemptions"]
        .as_array()
        .expect("gift_card_redemptions")
}

fn statuses(transaction: &Value) -> Vec<&str> {
    redemptions(transaction)
        .iter()
        .map(|r| r["status"].as_str().expect("a status"))
        .collect()
}

#[track_caller]
fn assert_transaction_shape(body: &Value) {
    assert_eq!(body["type"], "transaction", "body: {body}");
    for field in REQUIRED_TRANSACTION_FIELDS {
        assert!(body.get(field).is_some(), "`{field}` is missing: {body}");
    }
    assert!(is_uuid(body["id"].as_str().expect("id")), "{body}");
    assert_eq!(
        body["reconciliation_id"],
        giftd_id("chk_", body["id"].as_str().unwrap()),
        "giftd's own id reconciles"
    );
    for redemption in redemptions(body) {
        assert_eq!(redemption["type"], "gift-card-redemption");
        assert!(is_uuid(redemption["id"].as_str().expect("id")), "{redemption}");
        assert_eq!(redemption["gift_card"]["type"], "gift-card");
        assert!(redemption["gift_card"]["last4"].is_string());
    }
}

#[track_caller]
fn assert_refund_shape(refund: &Value) {
    assert_eq!(refund["type"], "refund", "refund: {refund}");
    for field in REQUIRED_REFUND_FIELDS {
        assert!(refund.get(field).is_some(), "`{field}` is missing: {refund}");
    }
}

/// Gr4vy's error envelope with this status and code; answers the first detail's pointer.
#[track_caller]
fn assert_envelope(response: &TestResponse, status: u16, code: &str) -> String {
    assert_eq!(response.status.as_u16(), status, "body: {}", response.text);
    assert_eq!(response.body["type"], "error", "body: {}", response.text);
    assert_eq!(response.body["code"], code, "body: {}", response.text);
    assert_eq!(response.body["status"], status, "body: {}", response.text);
    assert!(response.body["message"].is_string(), "body: {}", response.text);
    assert!(response.body["details"].is_array(), "body: {}", response.text);
    response.body["details"][0]["pointer"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn sound(app: &TestApp) {
    TestApp::assert_sound(&app.verify().await);
}

/// The stored gift card's id in the example request (a Gr4vy UUID).
const EXAMPLE_STORED_ID: &str = "356d56e5-fe16-42ae-97ee-8d55d846ae2e";

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gr4vy")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Replaces every string equal to `from` with `to`.
fn substitute(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(text) if text == from => *text = to.to_owned(),
        Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, from, to)),
        Value::Object(map) => map.values_mut().for_each(|v| substitute(v, from, to)),
        _ => {}
    }
}

/// Every leaf of `value` by its JSON pointer.
fn leaves(value: &Value, pointer: &str, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => map
            .iter()
            .for_each(|(key, item)| leaves(item, &format!("{pointer}/{key}"), out)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, item)| leaves(item, &format!("{pointer}/{i}"), out)),
        leaf => out.push((pointer.to_owned(), leaf.clone())),
    }
}

/// What a field of giftd's answer is where it differs from the example's value.
enum Expect {
    /// This value.
    Is(Value),
    /// A giftd id with this prefix (one the example cannot predict).
    Id(&'static str),
    /// A UUID the example cannot predict.
    Uuid,
}

#[tokio::test]
async fn the_constructed_example_splits_a_capture_across_two_gift_cards_and_a_card() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    // The example's gift card, imported with its number and PIN.
    let given = app
        .post(
            "/v1/cards",
            json!({"program_id": program, "kind": "virtual", "amount": 3000,
                   "number": "6006490000000000123", "security_code": "1234"}),
        )
        .await;
    given.assert_status(201);
    let given = given.body;
    let stored = app.card(&program, 1500).await;
    let stored_number = stored["number"].as_str().unwrap().to_owned();

    let mut request = fixture("transaction.request.json");
    // The stored card named by its UUID, as a Gr4vy client names it.
    substitute(
        &mut request,
        EXAMPLE_STORED_ID,
        &crate::gr4vy::uuid_of(&id_of(&stored)),
    );
    let response = app.post_idempotent("/gr4vy/transactions", request, "7f1c").await;
    response.assert_status(201);
    let body = response.body.clone();
    assert_transaction_shape(&body);

    // Field by field against the example's answer.
    let mut example = fixture("transaction.response.json");
    substitute(
        &mut example,
        EXAMPLE_STORED_ID,
        &crate::gr4vy::uuid_of(&id_of(&stored)),
    );
    let differences: Vec<(&str, Expect)> = vec![
        // Ids are new UUIDs; the card transaction's is giftd's own (`txn_`).
        ("/id", Expect::Uuid),
        ("/gift_card_redemptions/0/id", Expect::Uuid),
        ("/gift_card_redemptions/1/id", Expect::Uuid),
        (
            "/gift_card_redemptions/0/gift_card_service_redemption_id",
            Expect::Id("txn_"),
        ),
        // Every giftd card has an id, also one named by its number and PIN.
        (
            "/gift_card_redemptions/0/gift_card/id",
            Expect::Is(json!(crate::gr4vy::uuid_of(&id_of(&given)))),
        ),
        // The example cannot know the stored card's digits.
        (
            "/gift_card_redemptions/1/gift_card/bin",
            Expect::Is(json!(stored_number[..6])),
        ),
        (
            "/gift_card_redemptions/1/gift_card/sub_bin",
            Expect::Is(json!(stored_number[6..9])),
        ),
        (
            "/gift_card_redemptions/1/gift_card/last4",
            Expect::Is(json!(stored_number[stored_number.len() - 4..])),
        ),
    ];
    let mut example_leaves = Vec::new();
    leaves(&example, "", &mut example_leaves);
    for (pointer, expected) in example_leaves {
        let actual = body
            .pointer(&pointer)
            .unwrap_or_else(|| panic!("{pointer} is missing: {body}"));
        match differences.iter().find(|(p, _)| *p == pointer) {
            None => assert_eq!(actual, &expected, "{pointer}"),
            Some((_, Expect::Is(value))) => assert_eq!(actual, value, "{pointer}"),
            Some((_, Expect::Id(prefix))) => assert!(
                actual.as_str().is_some_and(|id| id.starts_with(prefix)),
                "{pointer} is not a giftd id ({prefix}...): {actual}"
            ),
            Some((_, Expect::Uuid)) => assert!(
                actual.as_str().is_some_and(is_uuid),
                "{pointer} is not a UUID: {actual}"
            ),
        }
    }

    // The fields the example leaves out.
    assert_eq!(body["merchant_account_id"], app.merchant_id.as_str());
    assert_eq!(body["refunded_amount"], 0);
    assert!(body["error_code"].is_null());
    assert!(body["external_identifier"].is_null());
    assert_eq!(body["settled"], false);
    assert_eq!(body["pending_review"], false);
    assert!(body["created_at"].is_string() && body["updated_at"].is_string());
    assert_eq!(
        body["gift_card_service"]["gift_card_service_definition_id"],
        "mock-gift-card"
    );
    let method = &body["payment_method"];
    assert_eq!(method["type"], "payment-method");
    assert_eq!(method["method"], "card");
    assert_eq!(method["scheme"], "visa");
    assert_eq!(method["label"], "1111");
    assert!(is_uuid(method["id"].as_str().unwrap()));
    assert_eq!(body["method"], "card");
    assert!(body["payment_service_transaction_id"].is_string());
    let second = &redemptions(&body)[1];
    assert!(
        second["gift_card_service_redemption_id"]
            .as_str()
            .unwrap()
            .starts_with("txn_")
    );
    assert!(second["error_code"].is_null());

    assert_eq!(balance(&app, &given).await, (1000, 1000));
    assert_eq!(balance(&app, &stored).await, (500, 500));
    let sim = processor(&app, &body).await;
    assert_eq!(
        (sim["status"].as_str(), sim["captured_amount"].as_i64()),
        (Some("captured"), Some(2000))
    );

    // Read again, the same transaction, field for field.
    assert_eq!(fetch(&app, &id_of(&body)).await, body);
    sound(&app).await;
}

#[tokio::test]
async fn unread_fields_are_accepted_and_external_identifier_is_kept() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let body = created(
        &app,
        json!({
            "amount": 1000, "currency": "USD", "intent": "capture",
            "external_identifier": "order-7",
            "gift_cards": [by_secret(&card, 1000)],
            "country": "US", "metadata": {"k": "v"}, "store": false, "buyer_id": "b-1",
            "cart_items": [{"name": "bread", "quantity": 1, "unit_amount": 1000}],
            "allow_partial_authorization": false, "payment_source": "ecommerce",
        }),
    )
    .await;
    assert_eq!(body["external_identifier"], "order-7");
    assert_eq!(body["status"], "capture_succeeded");
    assert_eq!(balance(&app, &card).await, (0, 0));
    // The card's history names the transaction.
    let history = app.get(&format!("/v1/cards/{}/transactions", id_of(&card))).await;
    assert_eq!(history.body["data"][0]["reference"], body["reconciliation_id"]);
    sound(&app).await;
}

#[tokio::test]
async fn authorize_is_the_default_and_capture_takes_the_full_amount() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let card = app.card(&program, 2000).await;
    let body = created(
        &app,
        json!({
            "amount": 3000, "currency": "USD",
            "payment_method": card_payment(APPROVE),
            "gift_cards": [by_id(&card, 1200)],
        }),
    )
    .await;
    let id = id_of(&body);
    assert_eq!(body["intent"], "authorize");
    assert_eq!(body["status"], "authorization_succeeded");
    assert_eq!(body["intent_outcome"], "succeeded");
    assert_eq!(body["authorized_amount"], 1800);
    assert_eq!(body["captured_amount"], 0);
    assert_eq!(statuses(&body), ["succeeded"]);
    // The gift card is held: its balance is whole, its available value reduced.
    assert_eq!(balance(&app, &card).await, (2000, 800));
    assert_eq!(processor(&app, &body).await["status"], "authorized");

    // More than the payment method's authorization (and not the transaction's amount) cannot
    // be captured.
    let partial = app
        .post(
            &format!("/gr4vy/transactions/{id}/capture"),
            json!({"amount": 2000}),
        )
        .await;
    assert_eq!(assert_envelope(&partial, 400, "bad_request"), "/amount");
    assert_eq!(fetch(&app, &id).await["status"], "authorization_succeeded");

    // The payment method's authorized amount is the full amount too.
    let captured = app
        .post(
            &format!("/gr4vy/transactions/{id}/capture"),
            json!({"amount": 1800}),
        )
        .await;
    captured.assert_status(200);
    assert_transaction_shape(&captured.body);
    assert_eq!(captured.body["status"], "capture_succeeded");
    assert_eq!(captured.body["intent_outcome"], "succeeded");
    assert_eq!(captured.body["captured_amount"], 1800);
    assert_eq!(statuses(&captured.body), ["succeeded"]);
    assert_eq!(balance(&app, &card).await, (800, 800));
    assert_eq!(processor(&app, &body).await["captured_amount"], 1800);

    // Captured once; a second capture is refused and changes nothing.
    let again = app
        .post(&format!("/gr4vy/transactions/{id}/capture"), json!({}))
        .await;
    assert_envelope(&again, 400, "bad_request");
    assert_eq!(again.body["details"][0]["type"], "invalid_state");
    assert_eq!(balance(&app, &card).await, (800, 800));
    sound(&app).await;
}

#[tokio::test]
async fn a_gift_card_only_capture_with_an_empty_body() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let body = created(
        &app,
        json!({"amount": 400, "currency": "USD", "gift_cards": [by_secret(&card, 400)]}),
    )
    .await;
    assert!(body["payment_method"].is_null());
    assert_eq!(body["multi_tender"], false);
    assert_eq!(body["authorized_amount"], 0);
    let captured = app
        .post_raw(&format!("/gr4vy/transactions/{}/capture", id_of(&body)), "")
        .await;
    captured.assert_status(200);
    assert_eq!(captured.body["status"], "capture_succeeded");
    assert_eq!(captured.body["captured_amount"], 0);
    assert_eq!(balance(&app, &card).await, (600, 600));
    sound(&app).await;
}

#[tokio::test]
async fn void_releases_the_gift_cards_and_voids_the_authorization() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = app.card(&program, 1000).await;
    let b = app.card(&program, 1000).await;
    let body = created(
        &app,
        json!({
            "amount": 2500, "currency": "USD", "intent": "authorize",
            "payment_method": card_payment(APPROVE),
            "gift_cards": [by_id(&a, 700), by_secret(&b, 300)],
        }),
    )
    .await;
    assert_eq!(balance(&app, &a).await, (1000, 300));

    let voided = app
        .post(&format!("/gr4vy/transactions/{}/void", id_of(&body)), json!({}))
        .await;
    voided.assert_status(200);
    assert_transaction_shape(&voided.body);
    assert_eq!(voided.body["status"], "authorization_voided");
    // The intent was met when authorized; a later void does not change that.
    assert_eq!(voided.body["intent_outcome"], "succeeded");
    assert_eq!(statuses(&voided.body), ["skipped", "skipped"]);
    assert_eq!(balance(&app, &a).await, (1000, 1000));
    assert_eq!(balance(&app, &b).await, (1000, 1000));
    assert_eq!(processor(&app, &body).await["status"], "voided");

    // Nothing left to void or capture.
    let again = app
        .post(&format!("/gr4vy/transactions/{}/void", id_of(&body)), json!({}))
        .await;
    assert_envelope(&again, 400, "bad_request");
    assert_eq!(fetch(&app, &id_of(&body)).await, voided.body);
    sound(&app).await;
}

#[tokio::test]
async fn a_declined_payment_skips_every_gift_card() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = app.card(&program, 1000).await;
    let b = app.card(&program, 1000).await;
    let body = created(
        &app,
        json!({
            "amount": 3000, "currency": "USD", "intent": "capture",
            "payment_method": card_payment(DECLINE),
            "gift_cards": [by_id(&a, 500), by_secret(&b, 500)],
        }),
    )
    .await;
    assert_eq!(body["status"], "authorization_declined");
    assert_eq!(body["intent_outcome"], "failed");
    assert_eq!(body["authorized_amount"], 0);
    assert_eq!(body["captured_amount"], 0);
    assert_eq!(body["error_code"], "card_declined");
    assert_eq!(body["raw_response_code"], "card_declined");
    assert!(body["raw_response_description"].is_string());
    assert_eq!(statuses(&body), ["skipped", "skipped"]);
    assert!(redemptions(&body).iter().all(|r| r["error_code"].is_null()));
    assert_eq!(balance(&app, &a).await, (1000, 1000));
    assert_eq!(balance(&app, &b).await, (1000, 1000));
    assert_eq!(processor(&app, &body).await["status"], "declined");
    sound(&app).await;
}

#[tokio::test]
async fn one_gift_card_short_fails_every_redemption_and_reverts_the_payment() {
    for (intent, reverted_status, processor_status) in [
        ("capture", "capture_succeeded", "captured"),
        ("authorize", "authorization_voided", "voided"),
    ] {
        let app = TestApp::spawn().await;
        let program = app.usd_program().await;
        let enough = app.card(&program, 1000).await;
        let short = app.card(&program, 200).await;
        let body = created(
            &app,
            json!({
                "amount": 2000, "currency": "USD", "intent": intent,
                "payment_method": card_payment(APPROVE),
                "gift_cards": [by_id(&enough, 500), by_secret(&short, 500)],
            }),
        )
        .await;
        assert_eq!(body["intent_outcome"], "failed", "{intent}");
        assert_eq!(body["error_code"], "insufficient_funds", "{intent}");
        assert_eq!(statuses(&body), ["failed", "failed"], "{intent}");
        let items = redemptions(&body);
        // The card that was short says why; the other failed with it (all or none).
        assert_eq!(items[1]["error_code"], "insufficient_funds");
        assert_eq!(items[1]["raw_error_code"], "insufficient_funds");
        assert!(items[1]["raw_error_message"].is_string());
        assert_eq!(items[0]["error_code"], "operation_canceled");
        assert!(items[0]["raw_error_code"].is_null());
        assert!(
            items
                .iter()
                .all(|r| r["gift_card_service_redemption_id"].is_null())
        );
        assert_eq!(balance(&app, &enough).await, (1000, 1000), "{intent}");
        assert_eq!(balance(&app, &short).await, (200, 200), "{intent}");

        // The payment is reverted: a capture refunded, an authorization voided.
        assert_eq!(body["status"], reverted_status, "{intent}");
        let sim = processor(&app, &body).await;
        assert_eq!(sim["status"], processor_status, "{intent}");
        if intent == "capture" {
            assert_eq!(body["captured_amount"], 1000);
            assert_eq!(body["refunded_amount"], 1000);
            assert_eq!(sim["refunded_amount"], 1000);
        } else {
            assert_eq!(body["captured_amount"], 0);
        }
        sound(&app).await;
    }
}

#[tokio::test]
async fn a_frozen_gift_card_fails_the_transaction_with_inactive_card() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let frozen = app.card(&program, 1000).await;
    let fine = app.card(&program, 1000).await;
    app.post(&format!("/v1/cards/{}/freeze", id_of(&frozen)), json!({}))
        .await
        .assert_status(200);
    let body = created(
        &app,
        json!({
            "amount": 1000, "currency": "USD", "intent": "capture",
            "gift_cards": [by_id(&fine, 500), by_secret(&frozen, 500)],
        }),
    )
    .await;
    assert_eq!(body["status"], "authorization_failed");
    assert_eq!(body["intent_outcome"], "failed");
    assert_eq!(body["error_code"], "card_not_active");
    assert_eq!(statuses(&body), ["failed", "failed"]);
    assert_eq!(redemptions(&body)[1]["error_code"], "inactive_card");
    assert_eq!(redemptions(&body)[1]["raw_error_code"], "card_not_active");
    assert_eq!(redemptions(&body)[0]["error_code"], "operation_canceled");
    assert_eq!(balance(&app, &fine).await, (1000, 1000));
    sound(&app).await;
}

#[tokio::test]
async fn a_capture_the_processor_refuses_leaves_the_transaction_authorized() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let body = created(
        &app,
        json!({
            "amount": 1500, "currency": "USD",
            "payment_method": card_payment(FAIL_CAPTURE),
            "gift_cards": [by_id(&card, 500)],
        }),
    )
    .await;
    let id = id_of(&body);
    let refused = app
        .post(&format!("/gr4vy/transactions/{id}/capture"), json!({}))
        .await;
    assert_envelope(&refused, 400, "bad_request");
    assert_eq!(refused.body["details"][0]["type"], "payment_declined");
    let after = fetch(&app, &id).await;
    assert_eq!(after["status"], "authorization_succeeded");
    assert_eq!(after["intent_outcome"], "succeeded");
    assert_eq!(after["error_code"], "capture_failed");
    assert_eq!(statuses(&after), ["succeeded"]);
    assert_eq!(balance(&app, &card).await, (1000, 500));
    // It can still be voided.
    let voided = app
        .post(&format!("/gr4vy/transactions/{id}/void"), json!({}))
        .await;
    voided.assert_status(200);
    assert_eq!(voided.body["status"], "authorization_voided");
    assert_eq!(balance(&app, &card).await, (1000, 1000));
    sound(&app).await;
}

#[tokio::test]
async fn a_gift_card_frozen_before_the_capture_fails_it_and_refunds_the_payment() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = app.card(&program, 1000).await;
    let b = app.card(&program, 1000).await;
    let body = created(
        &app,
        json!({
            "amount": 2000, "currency": "USD",
            "payment_method": card_payment(APPROVE),
            "gift_cards": [by_id(&a, 400), by_id(&b, 600)],
        }),
    )
    .await;
    let id = id_of(&body);
    app.post(&format!("/v1/cards/{}/freeze", id_of(&b)), json!({}))
        .await
        .assert_status(200);
    let refused = app
        .post(&format!("/gr4vy/transactions/{id}/capture"), json!({}))
        .await;
    assert_envelope(&refused, 400, "bad_request");
    assert_eq!(refused.body["details"][0]["type"], "capture_failed");
    let after = fetch(&app, &id).await;
    // The payment was captured first, then refunded when the gift card could not be.
    assert_eq!(after["status"], "capture_succeeded");
    assert_eq!(after["captured_amount"], 1000);
    assert_eq!(after["refunded_amount"], 1000);
    assert_eq!(
        after["intent_outcome"], "succeeded",
        "met at authorization, final"
    );
    assert_eq!(statuses(&after), ["skipped", "failed"]);
    assert_eq!(redemptions(&after)[1]["error_code"], "inactive_card");
    assert_eq!(balance(&app, &a).await, (1000, 1000));
    let sim = processor(&app, &body).await;
    assert_eq!(sim["refunded_amount"], 1000);
    sound(&app).await;
}

#[tokio::test]
async fn a_refund_of_one_redemption_gives_that_card_its_value_back() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = app.card(&program, 1000).await;
    let b = app.card(&program, 1000).await;
    let body = created(
        &app,
        json!({
            "amount": 3000, "currency": "USD", "intent": "capture",
            "payment_method": card_payment(APPROVE),
            "gift_cards": [by_id(&a, 600), by_secret(&b, 400)],
        }),
    )
    .await;
    let id = id_of(&body);
    let target = id_of(&redemptions(&body)[1]);
    assert_eq!(balance(&app, &b).await, (600, 600));

    let refund = app
        .post(
            &format!("/gr4vy/transactions/{id}/refunds"),
            json!({
                "amount": 150, "target_type": "gift-card-redemption", "target_id": target,
                "reason": "damaged", "external_identifier": "rma-1",
            }),
        )
        .await;
    refund.assert_status(201);
    let r = &refund.body;
    assert_refund_shape(r);
    assert_eq!(r["transaction_id"], id.as_str());
    assert_eq!(r["target_type"], "gift-card-redemption");
    assert_eq!(r["target_id"], target.as_str());
    assert_eq!(r["amount"], 150);
    assert_eq!(r["currency"], "USD");
    assert_eq!(r["status"], "succeeded");
    assert_eq!(r["external_identifier"], "rma-1");
    assert!(
        r["payment_service_refund_id"]
            .as_str()
            .unwrap()
            .starts_with("txn_")
    );
    assert_eq!(balance(&app, &b).await, (750, 750));
    assert_eq!(balance(&app, &a).await, (400, 400));

    let after = fetch(&app, &id).await;
    assert_eq!(redemptions(&after)[1]["refunded_amount"], 150);
    assert_eq!(redemptions(&after)[0]["refunded_amount"], 0);
    // The transaction's own amounts are the payment method's: untouched.
    assert_eq!(after["refunded_amount"], 0);
    assert_eq!(after["status"], "capture_succeeded");

    // Without a target_type, the payment method is refunded (all of it, without an amount).
    let to_card = app
        .post(&format!("/gr4vy/transactions/{id}/refunds"), json!({}))
        .await;
    to_card.assert_status(201);
    assert_refund_shape(&to_card.body);
    assert_eq!(to_card.body["target_type"], "payment-method");
    assert_eq!(to_card.body["target_id"], after["payment_method"]["id"]);
    assert_eq!(to_card.body["amount"], 2000);
    assert_eq!(to_card.body["status"], "succeeded");
    assert_eq!(fetch(&app, &id).await["refunded_amount"], 2000);
    assert_eq!(processor(&app, &body).await["refunded_amount"], 2000);

    // More than is left on the redemption, no target_id, a target of another kind: 400.
    for bad in [
        json!({"amount": 300, "target_type": "gift-card-redemption", "target_id": target}),
        json!({"target_type": "gift-card-redemption"}),
        json!({"target_type": "gift-card-redemption", "target_id": "gcr_unknown"}),
        json!({"target_type": "payment-method", "target_id": target}),
        json!({"target_type": "buyer"}),
    ] {
        let response = app
            .post(&format!("/gr4vy/transactions/{id}/refunds"), bad.clone())
            .await;
        assert_envelope(&response, 400, "bad_request");
        assert!(!response.body["details"].as_array().unwrap().is_empty(), "{bad}");
    }
    assert_eq!(balance(&app, &b).await, (750, 750));

    let listed = app.get(&format!("/gr4vy/transactions/{id}/refunds")).await;
    listed.assert_status(200);
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0], refund.body);
    assert_eq!(items[1], to_card.body);
    sound(&app).await;
}

#[tokio::test]
async fn refunds_all_gives_back_every_tender_what_is_left() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = app.card(&program, 1000).await;
    let b = app.card(&program, 1000).await;
    let body = created(
        &app,
        json!({
            "amount": 2500, "currency": "USD", "intent": "capture",
            "payment_method": card_payment(APPROVE),
            "gift_cards": [by_id(&a, 700), by_id(&b, 300)],
        }),
    )
    .await;
    let id = id_of(&body);
    let first = id_of(&redemptions(&body)[0]);
    app.post(
        &format!("/gr4vy/transactions/{id}/refunds"),
        json!({"amount": 200, "target_type": "gift-card-redemption", "target_id": first}),
    )
    .await
    .assert_status(201);

    let all = app
        .post(&format!("/gr4vy/transactions/{id}/refunds/all"), json!({}))
        .await;
    all.assert_status(201);
    let items = all.body["items"].as_array().expect("items");
    for item in items {
        assert_refund_shape(item);
        assert_eq!(item["status"], "succeeded");
    }
    // The payment method first, then the gift cards from the last to the first.
    let parts: Vec<(&str, i64)> = items
        .iter()
        .map(|r| (r["target_type"].as_str().unwrap(), r["amount"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        parts,
        [
            ("payment-method", 1500),
            ("gift-card-redemption", 300),
            ("gift-card-redemption", 500)
        ]
    );
    let ids: std::collections::HashSet<&str> = items.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "each refund has an id of its own");
    assert_eq!(balance(&app, &a).await, (1000, 1000));
    assert_eq!(balance(&app, &b).await, (1000, 1000));
    let after = fetch(&app, &id).await;
    assert_eq!(after["refunded_amount"], 1500);
    assert!(
        redemptions(&after)
            .iter()
            .all(|r| r["refunded_amount"] == r["amount"])
    );
    assert_eq!(processor(&app, &body).await["refunded_amount"], 1500);
    assert_eq!(
        app.get(&format!("/gr4vy/transactions/{id}/refunds")).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    // Nothing is left.
    let again = app
        .post(&format!("/gr4vy/transactions/{id}/refunds/all"), json!({}))
        .await;
    assert_envelope(&again, 400, "bad_request");
    sound(&app).await;
}

#[tokio::test]
async fn the_same_idempotency_key_replays_and_another_body_is_a_conflict() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let request = json!({
        "amount": 1500, "currency": "USD", "intent": "capture",
        "payment_method": card_payment(APPROVE),
        "gift_cards": [by_secret(&card, 500)],
    });
    let first = app
        .post_idempotent("/gr4vy/transactions", request.clone(), "order-42")
        .await;
    first.assert_status(201);
    let second = app
        .post_idempotent("/gr4vy/transactions", request.clone(), "order-42")
        .await;
    second.assert_status(201);
    assert_eq!(
        first.text, second.text,
        "a replay is byte for byte the first answer"
    );
    assert_eq!(balance(&app, &card).await, (500, 500), "used once");

    let mut other = request.clone();
    other["amount"] = json!(1600);
    let conflict = app
        .post_idempotent("/gr4vy/transactions", other, "order-42")
        .await;
    assert_envelope(&conflict, 409, "duplicate_record");
    assert_eq!(balance(&app, &card).await, (500, 500));

    // The key is the facade's own: the native API does not see it.
    let native = app
        .post_idempotent(
            "/v1/checkouts",
            json!({"amount": 100, "currency": "USD", "intent": "capture",
                   "gift_cards": [{"card_id": card["id"], "amount": 100}]}),
            "order-42",
        )
        .await;
    native.assert_status(201);

    // Refunds take keys too.
    let id = id_of(&first.body);
    let refund = json!({"amount": 100, "target_type": "gift-card-redemption",
                        "target_id": id_of(&redemptions(&first.body)[0])});
    let once = app
        .post_idempotent(
            &format!("/gr4vy/transactions/{id}/refunds"),
            refund.clone(),
            "rf-1",
        )
        .await;
    once.assert_status(201);
    let twice = app
        .post_idempotent(&format!("/gr4vy/transactions/{id}/refunds"), refund, "rf-1")
        .await;
    assert_eq!(once.text, twice.text);
    assert_eq!(balance(&app, &card).await, (500, 500));
    sound(&app).await;
}

#[tokio::test]
async fn eleven_gift_cards_are_refused() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let mut cards = Vec::new();
    for _ in 0..11 {
        cards.push(app.card(&program, 100).await);
    }
    let eleven: Vec<Value> = cards.iter().map(|c| by_id(c, 100)).collect();
    let response = create(
        &app,
        json!({"amount": 1100, "currency": "USD", "intent": "capture", "gift_cards": eleven}),
    )
    .await;
    assert_eq!(assert_envelope(&response, 400, "bad_request"), "/gift_cards");
    assert_eq!(response.body["details"][0]["type"], "limit_exceeded");
    for card in &cards {
        assert_eq!(balance(&app, card).await, (100, 100));
    }
    // Ten are fine.
    let ten: Vec<Value> = cards[..10].iter().map(|c| by_id(c, 100)).collect();
    let body = created(
        &app,
        json!({"amount": 1000, "currency": "USD", "intent": "capture", "gift_cards": ten}),
    )
    .await;
    assert_eq!(statuses(&body), ["succeeded"; 10]);
    sound(&app).await;
}

#[tokio::test]
async fn malformed_and_refused_requests_get_the_400_envelope_never_a_500() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let other_currency = app.program(json!({"name": "Euro", "currency": "EUR"})).await;
    let euro = app.card(&other_currency, 1000).await;
    let good_card = by_secret(&card, 500);
    let raw_bodies: [&str; 4] = ["{", "[]", "\"text\"", "{\"amount\": 1}x"];
    for raw in raw_bodies {
        let response = app.post_raw("/gr4vy/transactions", raw).await;
        assert_envelope(&response, 400, "bad_request");
    }
    let bodies = [
        json!({"currency": "USD", "gift_cards": [good_card]}),
        json!({"amount": 500, "gift_cards": [good_card]}),
        json!({"amount": "500", "currency": "USD", "gift_cards": [good_card]}),
        json!({"amount": -5, "currency": "USD", "gift_cards": [good_card]}),
        json!({"amount": 0, "currency": "USD", "gift_cards": [good_card]}),
        json!({"amount": 100_000_000, "currency": "USD", "gift_cards": [good_card]}),
        json!({"amount": 500, "currency": "usd", "gift_cards": [good_card]}),
        json!({"amount": 500, "currency": "USD", "intent": "sale", "gift_cards": [good_card]}),
        json!({"amount": 500, "currency": "USD", "gift_cards": "all of them"}),
        json!({"amount": 500, "currency": "USD", "gift_cards": [{"number": card["number"], "pin": card["security_code"]}]}),
        json!({"amount": 500, "currency": "USD", "gift_cards": [{"id": card["id"], "number": card["number"], "amount": 500}]}),
        json!({"amount": 500, "currency": "USD", "gift_cards": [{"number": "12ab", "pin": "1", "amount": 500}]}),
        json!({"amount": 500, "currency": "USD", "gift_cards": [{"id": "not an id", "amount": 500}]}),
        json!({"amount": 500, "currency": "USD", "gift_cards": []}),
        json!({"amount": 500, "currency": "USD"}),
        json!({"amount": 500, "currency": "USD", "payment_method": {"method": "paypal"}}),
        json!({"amount": 500, "currency": "USD", "payment_method": {"method": "card", "number": "42"}}),
        json!({"amount": 500, "currency": "USD", "payment_method": {"method": "card", "number": APPROVE, "expiration_date": "2030-12"}}),
        json!({"amount": 500, "currency": "USD", "payment_method": "card"}),
        // The gift cards add up to more than the amount; a wrong PIN; an unknown card; a card
        // in another currency; a card named twice.
        json!({"amount": 400, "currency": "USD", "gift_cards": [good_card]}),
        json!({"amount": 500, "currency": "USD", "gift_cards": [{"number": card["number"], "pin": "0000", "amount": 500}]}),
        json!({"amount": 500, "currency": "USD", "gift_cards": [{"id": "card_doesnotexist", "amount": 500}]}),
        json!({"amount": 500, "currency": "USD", "gift_cards": [by_id(&euro, 500)]}),
        json!({"amount": 1000, "currency": "USD", "gift_cards": [by_id(&card, 500), by_secret(&card, 500)]}),
        json!({"amount": 500, "currency": "USD", "external_identifier": "x".repeat(300), "gift_cards": [good_card]}),
    ];
    for body in bodies {
        let response = create(&app, body.clone()).await;
        assert_envelope(&response, 400, "bad_request");
        assert!(
            !response.body["details"].as_array().unwrap().is_empty(),
            "a detail names the fault: {body} -> {}",
            response.text
        );
    }
    // A wrong PIN says so.
    let wrong = create(
        &app,
        json!({"amount": 500, "currency": "USD", "gift_cards": [{"number": card["number"], "pin": "0000", "amount": 500}]}),
    )
    .await;
    assert_eq!(wrong.body["details"][0]["type"], "invalid_card");
    assert_eq!(wrong.body["details"][0]["pointer"], "/gift_cards");
    assert_eq!(balance(&app, &card).await, (1000, 1000));

    // Bodies of the other routes.
    let body = created(
        &app,
        json!({"amount": 500, "currency": "USD", "intent": "capture", "gift_cards": [good_card]}),
    )
    .await;
    let id = id_of(&body);
    for (path, raw) in [
        ("capture", "{\"amount\": \"all\"}"),
        ("capture", "["),
        ("void", "nope"),
        ("refunds", "{\"amount\": -1}"),
        ("refunds", "{\"amount\": 1.5}"),
        ("refunds", "{\"target_type\": 7}"),
        ("refunds/all", "[1]"),
    ] {
        let response = app
            .post_raw(&format!("/gr4vy/transactions/{id}/{path}"), raw)
            .await;
        assert_envelope(&response, 400, "bad_request");
    }
    // Unknown transactions and routes.
    for path in [
        "/gr4vy/transactions/chk_doesnotexist",
        "/gr4vy/transactions/not%20an%20id",
        "/gr4vy/transactions/chk_doesnotexist/refunds",
    ] {
        assert_envelope(&app.get(path).await, 404, "not_found");
    }
    let unknown = app
        .post("/gr4vy/transactions/chk_doesnotexist/capture", json!({}))
        .await;
    assert_envelope(&unknown, 404, "not_found");
    assert_eq!(balance(&app, &card).await, (500, 500));
    sound(&app).await;
}

#[tokio::test]
async fn another_merchants_transaction_is_not_found() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let body = created(
        &app,
        json!({"amount": 600, "currency": "USD", "intent": "authorize", "gift_cards": [by_id(&card, 600)]}),
    )
    .await;
    let id = id_of(&body);
    let other = app.another_merchant().await;
    let answer = app.get_as(&format!("/gr4vy/transactions/{id}"), &other).await;
    assert_envelope(&answer, 404, "not_found");
    let answer = app
        .get_as(&format!("/gr4vy/transactions/{id}/refunds"), &other)
        .await;
    assert_envelope(&answer, 404, "not_found");
    for path in ["capture", "void", "refunds", "refunds/all"] {
        let answer = app
            .post_as(
                &format!("/gr4vy/transactions/{id}/{path}"),
                json!({}),
                &other,
                None,
            )
            .await;
        assert_envelope(&answer, 404, "not_found");
    }
    // Nor can it use this merchant's gift card by id.
    let answer = app
        .post_as(
            "/gr4vy/transactions",
            json!({"amount": 100, "currency": "USD", "gift_cards": [by_id(&card, 100)]}),
            &other,
            None,
        )
        .await;
    assert_envelope(&answer, 400, "bad_request");
    // Untouched: still authorized, the hold still in place.
    assert_eq!(fetch(&app, &id).await["status"], "authorization_succeeded");
    assert_eq!(balance(&app, &card).await, (1000, 400));
    // Without a key at all: 401.
    let anonymous = app
        .send(app.client.get(app.url(&format!("/gr4vy/transactions/{id}"))))
        .await;
    assert_envelope(&anonymous, 401, "unauthorized");
    sound(&app).await;
}

/// `GET /gr4vy/transactions` with `query`: the page.
async fn list(app: &TestApp, query: &str) -> Value {
    let response = app.get(&format!("/gr4vy/transactions?{query}")).await;
    response.assert_status(200);
    response.body
}

fn listed_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(id_of)
        .collect()
}

#[tokio::test]
async fn transactions_are_listed_newest_first_in_pages_and_under_gr4vys_filters() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = app.card(&program, 5000).await;
    let b = app.card(&program, 5000).await;
    let first = created(
        &app,
        json!({"amount": 1000, "currency": "USD", "intent": "capture", "external_identifier": "order-1",
               "buyer_external_identifier": "ann", "gift_cards": [by_id(&a, 1000)]}),
    )
    .await;
    app.clock.advance_seconds(60);
    let second = created(
        &app,
        json!({"amount": 3000, "currency": "USD", "payment_method": card_payment(APPROVE),
               "gift_cards": [by_secret(&b, 1000)]}),
    )
    .await;
    app.clock.advance_seconds(60);
    let third = created(
        &app,
        json!({"amount": 2000, "currency": "USD", "intent": "capture", "payment_method": card_payment(APPROVE)}),
    )
    .await;
    let (first_id, second_id, third_id) = (id_of(&first), id_of(&second), id_of(&third));

    // The transaction made for a buyer shows it.
    assert_eq!(first["buyer"]["external_identifier"], "ann");
    assert!(is_uuid(first["buyer"]["id"].as_str().unwrap()));
    assert!(second["buyer"].is_null());

    // Newest first, two to a page, the cursor going on.
    let page = list(&app, "limit=2").await;
    assert_eq!(listed_ids(&page), [third_id.clone(), second_id.clone()]);
    assert_eq!(page["limit"], 2);
    assert!(page["previous_cursor"].is_null());
    let cursor = page["next_cursor"].as_str().expect("a next page").to_owned();
    let rest = list(&app, &format!("limit=2&cursor={cursor}")).await;
    assert_eq!(listed_ids(&rest), std::slice::from_ref(&first_id));
    assert!(rest["next_cursor"].is_null());

    // An item is Gr4vy's TransactionSummary: the transaction without the fields only the full
    // one has, and otherwise the same.
    let item = &page["items"][1];
    assert!(item.get("payment_source").is_none() && item.get("multi_tender").is_none());
    for (key, value) in item.as_object().unwrap() {
        assert_eq!(&second[key], value, "{key}");
    }

    let gift_card = crate::gr4vy::uuid_of(&id_of(&a));
    let last4 = b["last4"].as_str().unwrap().to_owned();
    let later = "2100-01-01T00:00:00Z";
    for (query, expected) in [
        ("buyer_external_identifier=ann", vec![first_id.clone()]),
        ("external_identifier=order-1", vec![first_id.clone()]),
        (
            "has_gift_card_redemptions=true",
            vec![second_id.clone(), first_id.clone()],
        ),
        ("has_gift_card_redemptions=false", vec![third_id.clone()]),
        (&format!("gift_card_id={gift_card}"), vec![first_id.clone()]),
        (&format!("gift_card_last4={last4}"), vec![second_id.clone()]),
        (
            "status=capture_succeeded",
            vec![third_id.clone(), first_id.clone()],
        ),
        (
            "status=authorization_succeeded&status=capture_succeeded",
            vec![third_id.clone(), second_id.clone(), first_id.clone()],
        ),
        ("amount_gte=2000", vec![third_id.clone(), second_id.clone()]),
        (&format!("id={second_id}"), vec![second_id.clone()]),
        (&format!("created_at_gte={later}"), vec![]),
        (
            &format!("created_at_lte={later}&intent=authorize"),
            vec![second_id.clone()],
        ),
        // Filters giftd keeps nothing for are accepted and change nothing.
        (
            "used_3ds=false&payment_service_id=x&limit=10",
            vec![third_id.clone(), second_id.clone(), first_id.clone()],
        ),
    ] {
        assert_eq!(listed_ids(&list(&app, query).await), expected, "{query}");
    }

    for query in [
        "limit=0",
        "limit=101",
        "cursor=nonsense",
        "created_at_gte=yesterday",
        "amount_eq=-1",
        "has_refunds=maybe",
        "gift_card_last4=12",
    ] {
        let response = app.get(&format!("/gr4vy/transactions?{query}")).await;
        assert_envelope(&response, 400, "bad_request");
    }
    // Another merchant sees none of them.
    let other = app.another_merchant().await;
    let theirs = app.get_as("/gr4vy/transactions", &other).await;
    theirs.assert_status(200);
    assert_eq!(theirs.body["items"], json!([]));
    sound(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refunds_of_one_transaction_each_answer_with_their_own_refund() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let card = app.card(&program, 5000).await;
    let body = created(
        &app,
        json!({"amount": 5000, "currency": "USD", "intent": "capture", "gift_cards": [by_id(&card, 5000)]}),
    )
    .await;
    let id = id_of(&body);
    let target = id_of(&redemptions(&body)[0]);
    let answers = futures::future::join_all((1..=8).map(|i| {
        let (app, id, target) = (&app, id.clone(), target.clone());
        async move {
            app.post(
                &format!("/gr4vy/transactions/{id}/refunds"),
                json!({"amount": 100 * i, "target_type": "gift-card-redemption", "target_id": target,
                       "external_identifier": format!("refund-{i}")}),
            )
            .await
        }
    }))
    .await;
    let mut seen = std::collections::HashSet::new();
    for (i, answer) in (1..=8).zip(&answers) {
        answer.assert_status(201);
        assert_refund_shape(&answer.body);
        assert_eq!(answer.body["amount"], 100 * i, "{}", answer.text);
        assert_eq!(answer.body["external_identifier"], format!("refund-{i}"));
        assert!(seen.insert(id_of(&answer.body)), "two answers name one refund");
    }
    let listed = app.get(&format!("/gr4vy/transactions/{id}/refunds")).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 8);
    assert_eq!(balance(&app, &card).await, (3600, 3600));
    sound(&app).await;
}

#[tokio::test]
async fn a_partial_capture_takes_part_of_the_payment_method_and_every_gift_card_whole() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let card = app.card(&program, 2000).await;
    let body = created(
        &app,
        json!({"amount": 3000, "currency": "USD", "payment_method": card_payment(APPROVE),
               "gift_cards": [by_id(&card, 1200)]}),
    )
    .await;
    let id = id_of(&body);
    assert_eq!(body["authorized_amount"], 1800);

    // Gr4vy's `prefer` header asks for the capture resource around the transaction.
    let response = app
        .send(
            app.client
                .post(app.url(&format!("/gr4vy/transactions/{id}/capture")))
                .bearer_auth(&app.api_key)
                .header("prefer", "resource=transaction-capture")
                .json(&json!({"amount": 1000, "final": true})),
        )
        .await;
    response.assert_status(200);
    assert_eq!(response.body["type"], "transaction-capture");
    assert_eq!(response.body["status"], "succeeded");
    let captured = &response.body["transaction"];
    assert_transaction_shape(captured);
    assert_eq!(captured["status"], "capture_succeeded");
    assert_eq!(captured["authorized_amount"], 1800, "what was authorized stays");
    assert_eq!(captured["captured_amount"], 1000);
    assert_eq!(captured["amount"], 3000);
    // The gift card is captured whole; the processor captured 10.00 of its 18.00.
    assert_eq!(balance(&app, &card).await, (800, 800));
    let sim = processor(&app, captured).await;
    assert_eq!(
        (sim["status"].as_str(), sim["captured_amount"].as_i64()),
        (Some("captured"), Some(1000))
    );
    assert_eq!(&fetch(&app, &id).await, captured);

    // Only what was captured can be refunded from the payment method.
    let too_much = app
        .post(
            &format!("/gr4vy/transactions/{id}/refunds"),
            json!({"amount": 1001}),
        )
        .await;
    assert_envelope(&too_much, 400, "bad_request");
    let refund = app
        .post(&format!("/gr4vy/transactions/{id}/refunds"), json!({}))
        .await;
    refund.assert_status(201);
    assert_eq!(refund.body["amount"], 1000);

    // A transaction of gift cards only has no payment method to capture in part.
    let gift_only = created(
        &app,
        json!({"amount": 500, "currency": "USD", "gift_cards": [by_id(&card, 500)]}),
    )
    .await;
    let partial = app
        .post(
            &format!("/gr4vy/transactions/{}/capture", id_of(&gift_only)),
            json!({"amount": 200}),
        )
        .await;
    assert_eq!(assert_envelope(&partial, 400, "bad_request"), "/amount");
    assert_eq!(
        balance(&app, &card).await,
        (800, 300),
        "still held, nothing captured"
    );
    sound(&app).await;
}

#[tokio::test]
async fn a_refund_is_found_by_its_id_with_or_without_its_transaction() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = app.card(&program, 1000).await;
    let b = app.card(&program, 1000).await;
    let body = created(
        &app,
        json!({"amount": 1500, "currency": "USD", "intent": "capture",
               "gift_cards": [by_id(&a, 1000), by_id(&b, 500)]}),
    )
    .await;
    let id = id_of(&body);
    let one = app
        .post(
            &format!("/gr4vy/transactions/{id}/refunds"),
            json!({"amount": 100, "target_type": "gift-card-redemption", "target_id": id_of(&redemptions(&body)[0])}),
        )
        .await;
    one.assert_status(201);
    let all = app
        .post(&format!("/gr4vy/transactions/{id}/refunds/all"), json!({}))
        .await;
    all.assert_status(201);
    let parts = all.body["items"].as_array().unwrap().clone();
    assert_eq!(parts.len(), 2, "one refund reached both cards");

    for refund in std::iter::once(&one.body).chain(&parts) {
        let refund_id = id_of(refund);
        assert!(is_uuid(&refund_id), "{refund}");
        let scoped = app
            .get(&format!("/gr4vy/transactions/{id}/refunds/{refund_id}"))
            .await;
        scoped.assert_status(200);
        assert_eq!(&scoped.body, refund);
        let alone = app.get(&format!("/gr4vy/refunds/{refund_id}")).await;
        alone.assert_status(200);
        assert_eq!(&alone.body, refund);
        // giftd's own name for it finds it too.
        let reconciliation = refund["reconciliation_id"].as_str().unwrap();
        assert_eq!(
            &app.get(&format!("/gr4vy/refunds/{reconciliation}")).await.body,
            refund
        );
    }
    for path in [
        "/gr4vy/refunds/00000000-0000-7000-8000-000000000000".to_owned(),
        "/gr4vy/refunds/nonsense".to_owned(),
        format!("/gr4vy/transactions/{id}/refunds/00000000-0000-7000-8000-000000000000"),
    ] {
        assert_envelope(&app.get(&path).await, 404, "not_found");
    }
    // Another merchant finds none of them.
    let other = app.another_merchant().await;
    let theirs = app
        .get_as(&format!("/gr4vy/refunds/{}", id_of(&one.body)), &other)
        .await;
    assert_envelope(&theirs, 404, "not_found");
    sound(&app).await;
}

#[tokio::test]
async fn cancel_finds_nothing_pending_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let body = created(
        &app,
        json!({"amount": 400, "currency": "USD", "gift_cards": [by_secret(&card, 400)]}),
    )
    .await;
    let id = id_of(&body);
    let cancel = app
        .post(&format!("/gr4vy/transactions/{id}/cancel"), json!({}))
        .await;
    cancel.assert_status(200);
    assert_eq!(cancel.body["type"], "transaction-cancel");
    assert_eq!(cancel.body["status"], "failed");
    assert_eq!(cancel.body["transaction"], fetch(&app, &id).await);
    assert_eq!(fetch(&app, &id).await["status"], "authorization_succeeded");
    assert_eq!(balance(&app, &card).await, (1000, 600));
    sound(&app).await;
}
