//! The Adyen Stored Value API v46 facade (seed 000) over HTTP:
//! `POST /pal/servlet/StoredValue/v46/{operation}`, against a real in-process server.
//!
//! Each operation's example is replayed from `fixtures/adyen/stored_value/*.request.json` (the
//! requests of the official Python library's own tests) and its answer compared, field by
//! field, with the library's mock answer in `*.response.json`. A field giftd answers
//! differently is named in the test with its reason (docs/ADYEN.md records them all). Then:
//! voids of unknown and expired references, Idempotency-Key, authentication, security codes and
//! the lockout, and malformed requests. Every test ends with the ledger verified.

use crate::adyen_support;

use adyen_support::*;
use base64::Engine;
use giftd_testkit::{TestApp, TestResponse};
use serde_json::{Value, json};

const BASE: &str = "/pal/servlet/StoredValue/v46";

/// A change made to an example request, to make it malformed.
type Change = fn(&mut Value);

async fn sv(app: &TestApp, operation: &str, body: &Value) -> TestResponse {
    sv_with(app, operation, body, None).await
}

async fn sv_with(
    app: &TestApp,
    operation: &str,
    body: &Value,
    idempotency_key: Option<&str>,
) -> TestResponse {
    let mut request = app
        .client
        .post(app.url(&format!("{BASE}/{operation}")))
        .header("x-api-key", &app.api_key)
        .json(body);
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    app.send(request).await
}

fn request(name: &str) -> Value {
    fixture(&format!("stored_value/{name}.request.json"))
}

fn example(name: &str) -> Value {
    fixture(&format!("stored_value/{name}.response.json"))
}

const PSP_REFERENCE: (&str, Expect) = ("pspReference", Like("a 16-character reference", is_reference));
const AUTH_CODE: (&str, Expect) = ("authCode", Like("six digits", is_six_digits));

#[track_caller]
fn assert_result(response: &TestResponse, result_code: &str, refusal_reason: &str) {
    response.assert_status(200);
    assert_eq!(response.body["resultCode"], result_code, "{}", response.text);
    assert_eq!(
        response.body["refusalReason"], refusal_reason,
        "{}",
        response.text
    );
    assert!(is_reference(&response.body["pspReference"]), "{}", response.text);
    assert!(
        response.body["thirdPartyRefusalReason"].is_string(),
        "{}",
        response.text
    );
}

/// Adyen's ServiceError body, with a pspReference.
#[track_caller]
fn assert_service_error(response: &TestResponse, status: u16, error_code: &str) {
    response.assert_status(status);
    assert_eq!(response.body["status"], status, "{}", response.text);
    assert_eq!(response.body["errorCode"], error_code, "{}", response.text);
    assert!(response.body["message"].is_string(), "{}", response.text);
    assert!(response.body["errorType"].is_string(), "{}", response.text);
    assert!(is_reference(&response.body["pspReference"]), "{}", response.text);
}

async fn available(app: &TestApp, card_id: &str) -> i64 {
    card(app, card_id).await["available"].as_i64().expect("available")
}

// ---- the examples ----

#[tokio::test]
async fn issue_example_issues_a_virtual_card_of_the_program_with_that_promotion_code() {
    let app = TestApp::spawn().await;
    // The example's card comes preloaded with 10.00 EUR: a program with that one denomination.
    program(
        &app,
        "EUR",
        json!({"promotion_code": "1324", "denominations": [1000], "number_prefix": "7219", "security_code_length": 4}),
    )
    .await;

    let response = sv(&app, "issue", &request("issue")).await;
    response.assert_status(200);
    assert_like_example(
        &response.body,
        &example("issue"),
        &[
            PSP_REFERENCE,
            (
                "paymentMethod.number",
                Like("16 digits starting 7219", |v| {
                    is_digits(v) && v.as_str().is_some_and(|s| s.len() == 16 && s.starts_with("7219"))
                }),
            ),
            (
                "paymentMethod.securityCode",
                Like("four digits", |v| is_digits(v) && v.as_str().unwrap().len() == 4),
            ),
            // The type asked for is echoed (the library's mock answers its own provider).
            ("paymentMethod.type", Is(json!("valuelink"))),
        ],
        &[AUTH_CODE],
    );

    // The number and code given once are the card's: it is active, with its value.
    let number = response.body["paymentMethod"]["number"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = response.body["paymentMethod"]["securityCode"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut check = request("check_balance");
    substitute(&mut check, "603628672882001915092", &number);
    substitute(&mut check, "5754", &code);
    let balance = sv(&app, "checkBalance", &check).await;
    assert_eq!(
        balance.body["currentBalance"],
        json!({"currency": "EUR", "value": 1000})
    );

    // Its pspReference voids the issue's value.
    let voided = sv(
        &app,
        "voidTransaction",
        &json!({"merchantAccount": "M", "originalReference": response.body["pspReference"]}),
    )
    .await;
    assert_eq!(voided.body["resultCode"], "Success", "{}", voided.text);
    assert_eq!(voided.body["currentBalance"]["value"], 0);

    // An unknown promotion code is an error, not a card.
    let mut unknown = request("issue");
    unknown["giftCardPromoCode"] = json!("9999");
    assert_result(&sv(&app, "issue", &unknown).await, "Error", "Not found");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn issue_without_a_promotion_code_uses_the_merchants_only_program_in_the_currency() {
    let app = TestApp::spawn().await;
    let mut body = request("issue");
    body.as_object_mut().unwrap().remove("giftCardPromoCode");
    // No program yet.
    assert_result(&sv(&app, "issue", &body).await, "Error", "Invalid request");
    program(&app, "EUR", json!({})).await;
    body["amount"] = json!({"currency": "EUR", "value": 2500});
    let issued = sv(&app, "issue", &body).await;
    assert_eq!(issued.body["resultCode"], "Success", "{}", issued.text);
    assert_eq!(
        issued.body["currentBalance"],
        json!({"currency": "EUR", "value": 2500})
    );
    // A second program in another currency: the currency still picks one.
    program(&app, "USD", json!({})).await;
    assert_eq!(sv(&app, "issue", &body).await.body["resultCode"], "Success");
    // Two in the same currency: the client must say which.
    program(&app, "EUR", json!({})).await;
    assert_result(&sv(&app, "issue", &body).await, "Error", "Invalid request");
    // Without an amount and with two currencies, no program is the only one.
    body.as_object_mut().unwrap().remove("amount");
    assert_result(&sv(&app, "issue", &body).await, "Error", "Invalid request");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn change_status_example_activates_card_stock_with_its_first_value_and_inactive_closes_it() {
    let app = TestApp::spawn().await;
    let program_id = program(&app, "USD", json!({})).await;
    let card_id = import(&app, &program_id, "6006491286999921374", "1111").await;

    let response = sv(&app, "changeStatus", &request("change_status")).await;
    response.assert_status(200);
    assert_like_example(
        &response.body,
        &example("change_status"),
        &[PSP_REFERENCE],
        &[AUTH_CODE],
    );
    let activated = card(&app, &card_id).await;
    assert_eq!(
        (activated["state"].as_str(), activated["available"].as_i64()),
        (Some("active"), Some(1000))
    );
    // Activating it again is refused.
    assert_result(
        &sv(&app, "changeStatus", &request("change_status")).await,
        "Refused",
        "Transaction Not Permitted",
    );

    // `inactive` is an end state: refused while the card holds value, then it closes.
    let mut deactivate = request("change_status");
    deactivate["status"] = json!("inactive");
    deactivate.as_object_mut().unwrap().remove("amount");
    assert_result(
        &sv(&app, "changeStatus", &deactivate).await,
        "Refused",
        "Transaction Not Permitted",
    );
    app.post(&format!("/v1/cards/{card_id}/cashout"), json!({}))
        .await
        .assert_status(200);
    let closed = sv(&app, "changeStatus", &deactivate).await;
    assert_eq!(closed.body["resultCode"], "Success", "{}", closed.text);
    assert_eq!(
        closed.body["currentBalance"],
        json!({"currency": "USD", "value": 0})
    );
    // Nothing moved, so no authorisation code.
    assert!(closed.body.get("authCode").is_none(), "{}", closed.text);
    assert_eq!(card(&app, &card_id).await["state"], "closed");
    // A closed card still tells its (empty) balance.
    let mut check = request("check_balance");
    substitute(&mut check, "603628672882001915092", "6006491286999921374");
    substitute(&mut check, "5754", "1111");
    let balance = sv(&app, "checkBalance", &check).await;
    assert_eq!(
        balance.body["currentBalance"],
        json!({"currency": "USD", "value": 0}),
        "{}",
        balance.text
    );
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn load_example_credits_a_merchandise_return_and_plain_loads_are_loads() {
    let app = TestApp::spawn().await;
    // The example's card ends with 300.00 USD after a return of 20.00.
    let card_id = active_card(&app, "USD", "6006491286999921374", "1111", 28000).await;

    let response = sv(&app, "load", &request("load")).await;
    response.assert_status(200);
    assert_like_example(&response.body, &example("load"), &[PSP_REFERENCE], &[AUTH_CODE]);
    let history = app.card_transactions(&card_id).await;
    // A merchandise return is a refund of no earlier transaction, kept with the reference.
    assert_eq!(
        (
            history[0]["type"].as_str(),
            history[0]["amount"].as_i64(),
            &history[0]["reverses"],
            history[0]["reference"].as_str()
        ),
        (Some("refund"), Some(2000), &Value::Null, Some("YOUR_REFERENCE"))
    );

    let mut plain = request("load");
    plain.as_object_mut().unwrap().remove("loadType");
    let loaded = sv(&app, "load", &plain).await;
    assert_eq!(loaded.body["currentBalance"]["value"], 32000, "{}", loaded.text);
    assert_eq!(app.card_transactions(&card_id).await[0]["type"], "load");
    plain["loadType"] = json!("load");
    assert_eq!(
        sv(&app, "load", &plain).await.body["currentBalance"]["value"],
        34000
    );

    // A currency other than the card's is an error; nothing moves.
    let mut euros = request("load");
    euros["amount"]["currency"] = json!("EUR");
    assert_result(&sv(&app, "load", &euros).await, "Error", "Invalid Amount");
    assert_eq!(available(&app, &card_id).await, 34000);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn check_balance_example_finds_a_twenty_one_digit_card_with_its_security_code() {
    let app = TestApp::spawn().await;
    active_card(&app, "EUR", "603628672882001915092", "5754", 5600).await;
    let response = sv(&app, "checkBalance", &request("check_balance")).await;
    response.assert_status(200);
    assert_like_example(&response.body, &example("check_balance"), &[PSP_REFERENCE], &[]);

    // A merchant (a point of sale) may look a card up by its number alone.
    let mut swipe = request("check_balance");
    swipe["paymentMethod"]
        .as_object_mut()
        .unwrap()
        .remove("securityCode");
    assert_eq!(
        sv(&app, "checkBalance", &swipe).await.body["currentBalance"]["value"],
        5600
    );
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn void_transaction_example_undoes_a_load_by_its_psp_reference_within_24_hours() {
    let app = TestApp::spawn().await;
    // The example's card is back at 1200.00 EUR after the void.
    let card_id = active_card(&app, "EUR", "6006491286999921374", "1111", 120_000).await;
    let mut load = request("load");
    load["amount"] = json!({"currency": "EUR", "value": 5000});
    load["loadType"] = json!("load");
    let loaded = sv(&app, "load", &load).await;
    let original = loaded.body["pspReference"].as_str().unwrap().to_owned();
    assert_eq!(available(&app, &card_id).await, 125_000);

    let mut void = request("void_transaction");
    substitute(&mut void, "851564654294247B", &original);
    let response = sv(&app, "voidTransaction", &void).await;
    response.assert_status(200);
    assert_like_example(
        &response.body,
        &example("void_transaction"),
        &[PSP_REFERENCE],
        &[],
    );
    assert_ne!(response.body["pspReference"], json!(original));
    assert_eq!(app.card_transactions(&card_id).await[0]["type"], "void");

    // Again: already voided. The example as it is: a reference giftd never gave.
    assert_result(
        &sv(&app, "voidTransaction", &void).await,
        "Refused",
        "Transaction Not Permitted",
    );
    assert_result(
        &sv(&app, "voidTransaction", &request("void_transaction")).await,
        "Refused",
        "Original pspReference not found",
    );
    // A Terminal API reference is not a pspReference, nor the other way round.
    assert_result(
        &sv(
            &app,
            "voidTransaction",
            &json!({"merchantAccount": "M", "originalReference": "not a reference!"}),
        )
        .await,
        "Refused",
        "Original pspReference not found",
    );

    // After 24 hours a transaction can no longer be voided.
    let loaded = sv(&app, "load", &load).await;
    app.clock.advance_seconds(24 * 3600);
    let late = json!({"merchantAccount": "M", "originalReference": loaded.body["pspReference"]});
    assert_result(
        &sv(&app, "voidTransaction", &late).await,
        "Refused",
        "Transaction Not Permitted",
    );
    assert_eq!(available(&app, &card_id).await, 125_000);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn merge_balance_example_moves_the_whole_source_onto_the_target_and_closes_the_source() {
    let app = TestApp::spawn().await;
    // The example's target ends with 56.00 EUR: 16.00 of its own and 40.00 from the source.
    let program_id = program(&app, "EUR", json!({})).await;
    let source_id = import(&app, &program_id, "7777182708544835", "2329").await;
    let target_id = import(&app, &program_id, "8888182708544836", "2330").await;
    for (card_id, amount) in [(&source_id, 4000), (&target_id, 1600)] {
        app.post(
            &format!("/v1/cards/{card_id}/activate"),
            json!({"amount": amount}),
        )
        .await
        .assert_status(200);
    }

    let response = sv(&app, "mergeBalance", &request("merge_balance")).await;
    response.assert_status(200);
    assert_like_example(
        &response.body,
        &example("merge_balance"),
        &[PSP_REFERENCE],
        &[AUTH_CODE],
    );
    let source = card(&app, &source_id).await;
    assert_eq!(
        (
            source["state"].as_str(),
            source["closed_reason"].as_str(),
            source["balance"].as_i64()
        ),
        (Some("closed"), Some("combined"), Some(0))
    );
    assert_eq!(available(&app, &target_id).await, 5600);
    assert_eq!(app.card_transactions(&source_id).await[0]["type"], "merge_out");
    assert_eq!(app.card_transactions(&target_id).await[0]["type"], "merge_in");

    // Once merged, the source is closed: a second merge is refused, and nothing moves.
    assert_result(
        &sv(&app, "mergeBalance", &request("merge_balance")).await,
        "Refused",
        "Blocked Card",
    );
    // A wrong code for the source refuses the merge, and counts toward its lockout.
    let mut wrong = request("merge_balance");
    wrong["sourcePaymentMethod"]["securityCode"] = json!("0000");
    assert_result(
        &sv(&app, "mergeBalance", &wrong).await,
        "Refused",
        "Invalid card number or security code",
    );
    // A merge is not voided (giftd voids no merge): refused, the cards stay as they are.
    let void = json!({"merchantAccount": "M", "originalReference": response.body["pspReference"]});
    assert_result(
        &sv(&app, "voidTransaction", &void).await,
        "Refused",
        "Transaction Not Permitted",
    );
    assert_eq!(available(&app, &target_id).await, 5600);
    TestApp::assert_sound(&app.verify().await);
}

// ---- the rules around the operations ----

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_request() {
    let app = TestApp::spawn().await;
    let card_id = active_card(&app, "USD", "6006491286999921374", "1111", 28000).await;
    let first = sv_with(&app, "load", &request("load"), Some("return-1")).await;
    let again = sv_with(&app, "load", &request("load"), Some("return-1")).await;
    assert_eq!(again.text, first.text);
    assert_eq!(available(&app, &card_id).await, 30000);

    let mut other = request("load");
    other["amount"]["value"] = json!(1);
    let reused = sv_with(&app, "load", &other, Some("return-1")).await;
    assert_service_error(&reused, 422, "704");
    assert_eq!(available(&app, &card_id).await, 30000);
    // The key is the Stored Value API's own: the native API does not know it.
    let native = app
        .post_idempotent(
            &format!("/v1/cards/{card_id}/load"),
            json!({"amount": 1}),
            "return-1",
        )
        .await;
    native.assert_status(200);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn basic_authentication_works_and_a_missing_key_is_401_in_adyens_shape() {
    let app = TestApp::spawn().await;
    active_card(&app, "EUR", "603628672882001915092", "5754", 5600).await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ws@Company.Giftd:{}", app.api_key));
    let response = app
        .send(
            app.client
                .post(app.url(&format!("{BASE}/checkBalance")))
                .header("Authorization", format!("Basic {basic}"))
                .json(&request("check_balance")),
        )
        .await;
    assert_eq!(
        response.body["currentBalance"]["value"], 5600,
        "{}",
        response.text
    );

    let anonymous = app
        .send(
            app.client
                .post(app.url(&format!("{BASE}/checkBalance")))
                .json(&request("check_balance")),
        )
        .await;
    assert_service_error(&anonymous, 401, "000");
    assert_eq!(anonymous.body["errorType"], "security");
    let wrong = app
        .send(
            app.client
                .post(app.url(&format!("{BASE}/checkBalance")))
                .header("X-API-KEY", "gk_not_a_key")
                .json(&request("check_balance")),
        )
        .await;
    assert_service_error(&wrong, 401, "000");

    // Another merchant's key finds no such card.
    let other = app.another_merchant().await;
    let response = app
        .send(
            app.client
                .post(app.url(&format!("{BASE}/checkBalance")))
                .header("x-api-key", other)
                .json(&request("check_balance")),
        )
        .await;
    assert_result(&response, "Refused", "Invalid card number or security code");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn wrong_security_codes_are_refused_alike_and_lock_the_number_after_ten() {
    let app = TestApp::spawn().await;
    active_card(&app, "EUR", "603628672882001915092", "5754", 5600).await;
    let mut wrong = request("check_balance");
    wrong["paymentMethod"]["securityCode"] = json!("0000");
    let refused = sv(&app, "checkBalance", &wrong).await;
    assert_result(&refused, "Refused", "Invalid card number or security code");
    let mut unknown = request("check_balance");
    unknown["paymentMethod"]["number"] = json!("603628672882001915093");
    let unknown = sv(&app, "checkBalance", &unknown).await;
    assert_eq!(unknown.body["refusalReason"], refused.body["refusalReason"]);
    assert_eq!(
        unknown.body["thirdPartyRefusalReason"],
        refused.body["thirdPartyRefusalReason"]
    );
    // A code that cannot be anyone's is a wrong code too.
    let mut malformed = request("check_balance");
    malformed["paymentMethod"]["securityCode"] = json!("!");
    assert_result(
        &sv(&app, "checkBalance", &malformed).await,
        "Refused",
        "Invalid card number or security code",
    );

    // With the malformed one, ten wrong codes.
    for _ in 0..8 {
        sv(&app, "checkBalance", &wrong).await;
    }
    let locked = sv(&app, "checkBalance", &request("check_balance")).await;
    assert_result(&locked, "Refused", "Allowable PIN tries exceeded");
    app.clock.advance_seconds(31 * 60);
    assert_eq!(
        sv(&app, "checkBalance", &request("check_balance")).await.body["resultCode"],
        "Success"
    );
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn malformed_requests_are_4xx_service_errors_with_a_psp_reference() {
    let app = TestApp::spawn().await;
    active_card(&app, "USD", "6006491286999921374", "1111", 1000).await;
    let raw = |operation: &str, body: &'static str| {
        app.send(
            app.client
                .post(app.url(&format!("{BASE}/{operation}")))
                .header("x-api-key", &app.api_key)
                .header("content-type", "application/json")
                .body(body),
        )
    };
    assert_service_error(&raw("load", "not json").await, 400, "702");
    assert_service_error(&raw("load", "[1]").await, 400, "702");
    assert_service_error(&raw("load", r#"{"merchantAccount": 5}"#).await, 400, "702");

    fn remove(body: &mut Value, field: &str) {
        body.as_object_mut().expect("an object").remove(field);
    }
    let cases: Vec<(&str, Change, &str)> = vec![
        ("load", |b| remove(b, "merchantAccount"), "901"),
        ("load", |b| remove(b, "reference"), "130"),
        ("load", |b| b["reference"] = json!("r".repeat(81)), "130"),
        ("load", |b| remove(b, "amount"), "100"),
        ("load", |b| b["amount"]["value"] = json!(10.5), "137"),
        ("load", |b| b["amount"]["value"] = json!(0), "137"),
        ("load", |b| b["amount"]["currency"] = json!("usd"), "137"),
        ("load", |b| b["loadType"] = json!("gift"), "702"),
        (
            "load",
            |b| b["paymentMethod"]["number"] = json!("6006-4912"),
            "101",
        ),
        ("load", |b| remove(b, "paymentMethod"), "101"),
        ("changeStatus", |b| b["status"] = json!("frozen"), "702"),
        ("voidTransaction", |b| remove(b, "originalReference"), "167"),
    ];
    for (operation, change, code) in cases {
        let mut body = match operation {
            "changeStatus" => request("change_status"),
            "voidTransaction" => request("void_transaction"),
            _ => request("load"),
        };
        change(&mut body);
        assert_service_error(&sv(&app, operation, &body).await, 400, code);
    }
    // Unknown operations and other methods.
    assert_service_error(&sv(&app, "refund", &request("load")).await, 404, "000");
    let get = app
        .send(
            app.client
                .get(app.url(&format!("{BASE}/load")))
                .header("x-api-key", &app.api_key),
        )
        .await;
    assert_service_error(&get, 405, "000");
    // Unknown fields are ignored.
    let mut extra = request("load");
    extra["shopperInteraction"] = json!("POS");
    extra["somethingNew"] = json!({"nested": [1, 2]});
    assert_eq!(sv(&app, "load", &extra).await.body["resultCode"], "Success");
    TestApp::assert_sound(&app.verify().await);
}
