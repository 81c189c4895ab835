//! The Clover Gift Card API facade (seed 004) over HTTP, against a real in-process server.
//!
//! Each example flow of the seed is replayed from `fixtures/clover/*.request.json` (the vendor's
//! request bodies) and its answer compared, field by field, with the vendor's example answer in
//! `fixtures/clover/*.response.json`. A field giftd answers differently is named in the test
//! with its reason (docs/CLOVER.md records them all); every flow ends with the ledger verified.
//! Then: concurrent locks on one card never lock more than it holds, a token is useless to
//! another merchant, and bad input is a 4xx in Clover's error shape.

use std::collections::BTreeMap;

use futures::future::join_all;
use giftd_testkit::{TestApp, TestResponse};
use serde_json::{Value, json};

/// The token and charge id the seed's examples use; replaced by real ones when replayed.
const SEED_TOKEN: &str = "clv_1TSxxxxxx2S71ECrva7";
const SEED_CHARGE: &str = "1ABCDEF23GHIJ";
/// Clover voids a redemption within 24 hours of it, and refunds it after.
const PAST_VOID_WINDOW_SECONDS: i64 = 25 * 3600;
/// giftd's default lock lifetime (`giftd_api::clover::DEFAULT_LOCK_SECONDS`).
const LOCK_SECONDS: i64 = 900;

// ---- fixtures ----

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/clover")
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

/// The seed's request body `name`, with the placeholder token and charge made real.
fn seed_request(name: &str, token: Option<&str>, charge: Option<&str>) -> Value {
    let mut body = fixture(&format!("{name}.request.json"));
    if let Some(token) = token {
        substitute(&mut body, SEED_TOKEN, token);
    }
    if let Some(charge) = charge {
        substitute(&mut body, SEED_CHARGE, charge);
    }
    body
}

fn seed_response(name: &str) -> Value {
    fixture(&format!("{name}.response.json"))
}

// ---- field-by-field comparison ----

/// What a field of giftd's answer must be, compared with the seed's example.
enum Expect {
    /// Exactly the example's value (the default for every field of the example).
    Same,
    /// This value (the example's placeholder or a reading documented in docs/CLOVER.md).
    Is(Value),
    /// Of this shape (ids, reference numbers, dates: values the example cannot predict).
    Like(&'static str, fn(&Value) -> bool),
    /// giftd does not answer this field (docs/CLOVER.md says why).
    Omitted,
}

use Expect::{Is, Like, Omitted, Same};

fn leaves(value: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(item, &path, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

/// Compares `actual` with the seed's example `seed`: every field of the example by `rules`
/// (default `Same`), and every field giftd adds by `extra` (a field in neither fails).
#[track_caller]
fn assert_like_seed(actual: &TestResponse, seed: &Value, rules: &[(&str, Expect)], extra: &[(&str, Expect)]) {
    actual.assert_status(200);
    let mut expected = BTreeMap::new();
    leaves(seed, "", &mut expected);
    let mut got = BTreeMap::new();
    leaves(&actual.body, "", &mut got);
    let rule_of = |path: &str, table: &[(&str, Expect)]| table.iter().position(|(p, _)| *p == path);
    for (path, _) in rules.iter().chain(extra) {
        assert!(
            expected.contains_key(*path) || rule_of(path, extra).is_some(),
            "rule for {path}, which the example does not have"
        );
    }
    let check = |path: &str, expect: &Expect, example: Option<&Value>| {
        let value = got.get(path);
        match expect {
            Same => assert_eq!(
                value, example,
                "{path} differs from the seed; answer: {}",
                actual.text
            ),
            Is(wanted) => assert_eq!(value, Some(wanted), "{path}; answer: {}", actual.text),
            Like(what, test) => assert!(
                value.is_some_and(test),
                "{path} should be {what}, is {value:?}; answer: {}",
                actual.text
            ),
            Omitted => assert!(
                value.is_none(),
                "{path} should be absent; answer: {}",
                actual.text
            ),
        }
    };
    for (path, example) in &expected {
        let expect = rule_of(path, rules).map_or(&Same, |i| &rules[i].1);
        check(path, expect, Some(example));
    }
    for (path, expect) in extra {
        check(path, expect, None);
    }
    for path in got.keys() {
        assert!(
            expected.contains_key(path) || rule_of(path, extra).is_some(),
            "{path} is not in the seed's example nor expected; answer: {}",
            actual.text
        );
    }
}

fn is_transaction_id(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.starts_with("txn_") && s.len() > 8)
}

fn is_six_digits(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()))
}

fn is_date(value: &Value) -> bool {
    value.as_str().is_some_and(|s| {
        let b = s.as_bytes();
        b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && s.bytes()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    })
}

fn is_millis(value: &Value) -> bool {
    value.as_i64().is_some_and(|ms| ms > 1_600_000_000_000)
}

fn is_token(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.starts_with("clv_") && s.len() > 20)
}

const ID: (&str, Expect) = ("id", Like("a giftd transaction id", is_transaction_id));
const REF_NUM: (&str, Expect) = ("ref_num", Like("six digits", is_six_digits));
const AUTH_CODE: (&str, Expect) = ("auth_code", Like("six digits", is_six_digits));
const CREATED: (&str, Expect) = ("created", Like("milliseconds since 1970", is_millis));
/// The example's date is its sandbox's; giftd's is the card's expiry.
const EXPIRATION: (&str, Expect) = ("gift_card.expiration_date", Like("a YYYY-MM-DD date", is_date));

// ---- helpers ----

async fn clover(app: &TestApp, path: &str, body: Value) -> TestResponse {
    clover_as(app, path, body, &app.api_key).await
}

async fn clover_as(app: &TestApp, path: &str, body: Value, api_key: &str) -> TestResponse {
    let url = app.url(&format!("/clover{path}"));
    app.send(app.client.post(url).bearer_auth(api_key).json(&body))
        .await
}

/// Clover's token endpoint takes the key in an `apiKey` header.
async fn tokenize(app: &TestApp, number: &str, security_code: &str) -> String {
    let response = app
        .send(
            app.client
                .post(app.url("/clover/v1/tokens"))
                .header("apiKey", &app.api_key)
                .json(&json!({"gift_card": {"number": number, "security_code": security_code}})),
        )
        .await;
    response.assert_status(200);
    response.body["id"].as_str().expect("a token").to_owned()
}

/// A USD program whose cards expire after five years.
async fn program(app: &TestApp, extra: Value) -> String {
    let mut body = json!({"name": "Clover cards", "currency": "USD", "expiry_months": 60});
    for (key, value) in extra.as_object().expect("an object") {
        body[key] = value.clone();
    }
    app.program(body).await
}

/// Imports a physical card (inactive, no value) with this number and security code.
async fn import(app: &TestApp, program_id: &str, number: &str, security_code: &str) -> String {
    let response = app
        .post(
            "/v1/cards",
            json!({"program_id": program_id, "kind": "physical", "number": number, "security_code": security_code}),
        )
        .await;
    response.assert_status(201);
    response.body["id"].as_str().expect("a card id").to_owned()
}

/// An active card with `number` holding `amount`, and its token.
async fn funded(app: &TestApp, number: &str, amount: i64) -> String {
    let program_id = program(app, json!({})).await;
    let card_id = import(app, &program_id, number, "4821").await;
    app.post(
        &format!("/v1/cards/{card_id}/activate"),
        json!({"amount": amount}),
    )
    .await
    .assert_status(200);
    tokenize(app, number, "4821").await
}

async fn balance(app: &TestApp, token: &str) -> Value {
    let response = clover(app, "/v1/balance_inquiry", json!({"source": token})).await;
    response.assert_status(200);
    response.body["gift_card"].clone()
}

#[track_caller]
fn assert_clover_error(response: &TestResponse, status: u16, code: &str) {
    assert_eq!(
        response.status.as_u16(),
        status,
        "status; body: {}",
        response.text
    );
    let error = &response.body["error"];
    assert_eq!(error["code"], code, "code; body: {}", response.text);
    assert!(error["type"].is_string(), "error.type; body: {}", response.text);
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error.message; body: {}",
        response.text
    );
}

fn id_of(response: &TestResponse) -> String {
    response.body["id"].as_str().expect("an id").to_owned()
}

// ---- the seed's example flows ----

#[tokio::test]
async fn token_example_tokenizes_a_card_without_revealing_or_storing_its_number() {
    let app = TestApp::spawn().await;
    let program_id = program(&app, json!({})).await;
    import(&app, &program_id, "98765441066", "785577").await;

    let response = app
        .send(
            app.client
                .post(app.url("/clover/v1/tokens"))
                .header("apiKey", &app.api_key)
                .json(&seed_request("token", None, None)),
        )
        .await;

    response.assert_status(200);
    assert!(is_token(&response.body["id"]), "{}", response.text);
    assert_eq!(response.body["object"], "token");
    assert_eq!(response.body["gift_card"], json!({"last4": "1066"}));
    assert!(!response.text.contains("98765441066"));
    let token = id_of(&response);
    let stored = app.stored_bytes().await;
    assert!(
        !stored.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token is stored in clear"
    );
    // The token works, and Authorization: Bearer works as well as apiKey.
    assert_eq!(balance(&app, &token).await["new_balance"], 0);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn virtual_activation_examples_issue_cards_by_promotion_code_with_number_and_security_value() {
    let app = TestApp::spawn().await;
    program(
        &app,
        json!({"promotion_code": "67062", "denominations": [5000], "number_prefix": "7777", "security_code_length": 8}),
    )
    .await;
    program(
        &app,
        json!({"promotion_code": "67063", "number_prefix": "7777", "security_code_length": 4}),
    )
    .await;

    for (name, code_length) in [
        ("activate_virtual_denominated", 8),
        ("activate_virtual_non_denominated", 4),
    ] {
        let response = clover(&app, "/v1/activate", seed_request(name, None, None)).await;
        let number = response.body["gift_card"]["number"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let code = response.body["gift_card"]["security_card_value"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_like_seed(
            &response,
            &seed_response(name),
            &[
                ID,
                REF_NUM,
                EXPIRATION,
                (
                    "source.last4",
                    Is(json!(number[number.len().saturating_sub(4)..])),
                ),
                (
                    "gift_card.number",
                    Like("16 digits starting 7777", |v| {
                        v.as_str().is_some_and(|s| {
                            s.len() == 16 && s.starts_with("7777") && s.bytes().all(|b| b.is_ascii_digit())
                        })
                    }),
                ),
                (
                    "gift_card.security_card_value",
                    Like("digits", |v| {
                        v.as_str()
                            .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    }),
                ),
            ],
            &[AUTH_CODE],
        );
        assert_eq!(code.len(), code_length);
        // The number and security value given once are the card's: they tokenize it.
        let token = tokenize(&app, &number, &code).await;
        let amount = response.body["amount"].as_i64().unwrap();
        assert_eq!(balance(&app, &token).await["new_balance"], amount);
    }
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn physical_activation_and_balance_inquiry_examples_activate_stock_with_its_denomination() {
    let app = TestApp::spawn().await;
    let program_id = program(&app, json!({"denominations": [5000]})).await;
    import(&app, &program_id, "7777320000009585", "1234").await;
    let token = tokenize(&app, "7777320000009585", "1234").await;

    let response = clover(
        &app,
        "/v1/activate",
        seed_request("activate_physical", Some(&token), None),
    )
    .await;
    assert_like_seed(
        &response,
        &seed_response("activate_physical"),
        &[ID, REF_NUM, EXPIRATION],
        &[AUTH_CODE, ("source.id", Is(json!(token)))],
    );

    let response = clover(
        &app,
        "/v1/balance_inquiry",
        seed_request("balance_inquiry", Some(&token), None),
    )
    .await;
    assert_like_seed(&response, &seed_response("balance_inquiry"), &[EXPIRATION], &[]);

    // Activating it again is refused.
    let again = clover(&app, "/v1/activate", json!({"source": token})).await;
    assert_clover_error(&again, 402, "card_declined");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn reload_lock_and_capture_examples_follow_the_seeds_balances() {
    let app = TestApp::spawn().await;
    let token = funded(&app, "7777320000005003", 92).await;

    let response = clover(&app, "/v1/reload", seed_request("reload", Some(&token), None)).await;
    assert_like_seed(
        &response,
        &seed_response("reload"),
        &[ID, REF_NUM, EXPIRATION, ("source.id", Is(json!(token)))],
        &[AUTH_CODE],
    );

    let lock = clover(
        &app,
        "/v1/charges",
        seed_request("charge_lock", Some(&token), None),
    )
    .await;
    assert_like_seed(
        &lock,
        &seed_response("charge_lock"),
        &[
            ID,
            REF_NUM,
            EXPIRATION,
            ("source.id", Is(json!(token))),
            // giftd numbers locks per card: this card's first.
            ("gift_card.lock_id", Is(json!(1))),
        ],
        &[
            AUTH_CODE,
            CREATED,
            ("currency", Is(json!("usd"))),
            // Clover's charge fields, which a read shows as they change: a lock took nothing yet.
            ("amount_captured", Is(json!(0))),
            ("refunded", Is(json!(false))),
        ],
    );
    let lock_id = id_of(&lock);
    let during = balance(&app, &token).await;
    assert_eq!(
        (during["new_balance"].as_i64(), during["lock_amount"].as_i64()),
        (Some(492), Some(100))
    );

    let capture = clover(
        &app,
        &format!("/v1/charges/{lock_id}/capture"),
        seed_request("capture", None, None),
    )
    .await;
    assert_like_seed(
        &capture,
        &seed_response("capture"),
        &[
            // A capture answers with its lock's id, as the example does.
            ("id", Is(json!(lock_id))),
            REF_NUM,
            AUTH_CODE,
            CREATED,
            EXPIRATION,
            // The example says false after capturing 100; giftd says what happened.
            ("captured", Is(json!(true))),
            ("gift_card.lock_id", Is(json!(1))),
            // giftd has no orders, shows no token it was not sent and no first digits.
            ("order", Omitted),
            ("source.id", Omitted),
            ("source.first6", Omitted),
        ],
        &[],
    );
    let after = balance(&app, &token).await;
    assert_eq!(
        (after["new_balance"].as_i64(), after["lock_amount"].as_i64()),
        (Some(492), Some(0))
    );
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn charge_examples_redeem_and_never_decline_for_insufficient_funds() {
    let app = TestApp::spawn().await;

    let token = funded(&app, "7777320000015003", 500).await;
    let response = clover(
        &app,
        "/v1/charges",
        seed_request("charge_sufficient", Some(&token), None),
    )
    .await;
    assert_like_seed(
        &response,
        &seed_response("charge_sufficient"),
        &[ID, REF_NUM, EXPIRATION, ("source.id", Is(json!(token)))],
        &[
            AUTH_CODE,
            CREATED,
            ("currency", Is(json!("usd"))),
            ("amount_captured", Is(json!(100))),
            ("refunded", Is(json!(false))),
        ],
    );

    // Without partial_redemption, a charge above the balance still takes the whole balance
    // (the seed: "A decline is not given for insufficient funds"), with Clover's warning.
    let token = funded(&app, "7777320000025003", 10).await;
    let response = clover(
        &app,
        "/v1/charges",
        seed_request("charge_insufficient", Some(&token), None),
    )
    .await;
    assert_like_seed(
        &response,
        &seed_response("charge_insufficient"),
        &[
            ID,
            REF_NUM,
            AUTH_CODE,
            CREATED,
            EXPIRATION,
            ("source.id", Is(json!(token))),
            // The example's balances (500 → 400) contradict its amount (10 of 100 taken);
            // giftd answers the balances of a card that held 10.
            ("gift_card.previous_balance", Is(json!(10))),
            ("gift_card.new_balance", Is(json!(0))),
        ],
        &[("amount_captured", Is(json!(10))), ("refunded", Is(json!(false)))],
    );
    assert_eq!(balance(&app, &token).await["new_balance"], 0);

    // An empty card is declined.
    let empty = clover(
        &app,
        "/v1/charges",
        seed_request("charge_insufficient", Some(&token), None),
    )
    .await;
    assert_clover_error(&empty, 402, "card_declined");
    assert_eq!(empty.body["error"]["decline_code"], "insufficient_funds");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn refund_and_cancel_examples_refund_after_the_void_window_and_void_the_refund() {
    let app = TestApp::spawn().await;
    let token = funded(&app, "7777320000035003", 400).await;
    let charge = clover(
        &app,
        "/v1/charges",
        seed_request("charge_sufficient", Some(&token), None),
    )
    .await;
    charge.assert_status(200);
    let charge_id = id_of(&charge);

    app.clock.advance_seconds(PAST_VOID_WINDOW_SECONDS);
    let refund = clover(
        &app,
        "/v1/refunds",
        seed_request("refund", None, Some(&charge_id)),
    )
    .await;
    refund.assert_status(200);
    let body = &refund.body;
    assert!(is_transaction_id(&body["id"]));
    assert_eq!(body["object"], "refund");
    assert_eq!(body["amount"], 100);
    assert_eq!(body["charge"], charge_id.as_str());
    assert!(is_millis(&body["created"]));
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["metadata"]["refundType"], "REFUND");
    assert_eq!(body["metadata"]["gatewayResponseCode"], "00");
    assert!(is_six_digits(&body["metadata"]["authCode"]) && is_six_digits(&body["metadata"]["refNum"]));
    assert_eq!(body["gift_card"]["previous_balance"], 300);
    assert_eq!(body["gift_card"]["new_balance"], 400);
    assert_eq!(body["gift_card"]["lock_amount"], 0);
    let refund_id = id_of(&refund);

    let cancel = clover(
        &app,
        &format!("/v1/refunds/{refund_id}/cancel"),
        seed_request("cancel_refund", None, None),
    )
    .await;
    assert_like_seed(
        &cancel,
        &seed_response("cancel_refund"),
        &[
            ID,
            EXPIRATION,
            ("charge", Is(json!(charge_id))),
            ("metadata.authCode", Like("six digits", is_six_digits)),
            ("metadata.refNum", Like("six digits", is_six_digits)),
        ],
        &[],
    );

    // Each reversal happens once.
    let again = clover(&app, &format!("/v1/refunds/{refund_id}/cancel"), json!({})).await;
    assert_clover_error(&again, 400, "charge_already_refunded");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn void_examples_void_a_redemption_and_a_reload() {
    let app = TestApp::spawn().await;

    // Void of a redemption, within the void window.
    let token = funded(&app, "7777320000045003", 500).await;
    let charge = clover(
        &app,
        "/v1/charges",
        seed_request("charge_sufficient", Some(&token), None),
    )
    .await;
    let charge_id = id_of(&charge);
    let void = clover(
        &app,
        "/v1/refunds",
        seed_request("void_redemption", None, Some(&charge_id)),
    )
    .await;
    void.assert_status(200);
    assert_eq!(void.body["object"], "refund");
    assert_eq!(void.body["amount"], 100);
    assert_eq!(void.body["charge"], charge_id.as_str());
    assert_eq!(void.body["metadata"]["refundType"], "VOID");
    assert_eq!(void.body["gift_card"]["previous_balance"], 400);
    assert_eq!(void.body["gift_card"]["new_balance"], 500);
    let twice = clover(&app, "/v1/refunds", json!({"charge": charge_id})).await;
    assert_clover_error(&twice, 400, "charge_already_refunded");

    // Void of a reload, on an active virtual card issued empty.
    let program_id = program(&app, json!({})).await;
    let card = app
        .post("/v1/cards", json!({"program_id": program_id, "kind": "virtual"}))
        .await;
    card.assert_status(201);
    let token = tokenize(
        &app,
        card.body["number"].as_str().unwrap(),
        card.body["security_code"].as_str().unwrap(),
    )
    .await;
    let reload = clover(&app, "/v1/reload", seed_request("reload", Some(&token), None)).await;
    reload.assert_status(200);
    let reload_id = id_of(&reload);
    let response = clover(
        &app,
        "/v1/refunds",
        seed_request("void_reload", None, Some(&reload_id)),
    )
    .await;
    assert_like_seed(
        &response,
        &seed_response("void_reload"),
        &[
            ID,
            CREATED,
            EXPIRATION,
            ("charge", Is(json!(reload_id))),
            ("metadata.authCode", Like("six digits", is_six_digits)),
            ("metadata.refNum", Like("six digits", is_six_digits)),
        ],
        &[],
    );
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn cashout_example_pays_out_what_is_available_and_leaves_locks_alone() {
    let app = TestApp::spawn().await;
    let token = funded(&app, "7777320000055003", 400).await;
    clover(
        &app,
        "/v1/charges",
        json!({"source": token, "amount": 100, "capture": false, "partial_redemption": true}),
    )
    .await
    .assert_status(200);

    let response = clover(&app, "/v1/cashout", seed_request("cashout", Some(&token), None)).await;
    response.assert_status(200);
    let body = &response.body;
    assert!(is_transaction_id(&body["id"]));
    assert_eq!(body["amount"], 300);
    assert_eq!(body["paid"], true);
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["outcome"]["network_status"], "approved_by_network");
    assert_eq!(body["source"], json!({"id": token, "last4": "5003"}));
    assert_eq!(body["gift_card"]["previous_balance"], 300);
    assert_eq!(body["gift_card"]["new_balance"], 0);
    let after = balance(&app, &token).await;
    assert_eq!(
        (after["new_balance"].as_i64(), after["lock_amount"].as_i64()),
        (Some(0), Some(100))
    );
    TestApp::assert_sound(&app.verify().await);
}

// ---- locks ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eighty_simultaneous_locks_on_a_fifty_dollar_card_lock_exactly_its_balance() {
    let app = TestApp::spawn().await;
    let token = funded(&app, "6036000000000001", 5000).await;
    let body = json!({"source": token, "amount": 100, "currency": "usd", "capture": "false", "partial_redemption": "true"});

    let responses = join_all((0..80).map(|_| clover(&app, "/v1/charges", body.clone()))).await;

    let locked: Vec<&TestResponse> = responses.iter().filter(|r| r.status == 200).collect();
    let declined = responses
        .iter()
        .filter(|r| r.status == 402 && r.body["error"]["decline_code"] == "insufficient_funds")
        .count();
    assert_eq!((locked.len(), declined), (50, 30));
    let total: i64 = locked.iter().map(|r| r.body["amount"].as_i64().unwrap()).sum();
    assert_eq!(total, 5000);
    let mut lock_ids: Vec<i64> = locked
        .iter()
        .map(|r| r.body["gift_card"]["lock_id"].as_i64().unwrap())
        .collect();
    lock_ids.sort_unstable();
    assert_eq!(lock_ids, (1..=50).collect::<Vec<_>>());
    let after = balance(&app, &token).await;
    assert_eq!(
        (after["new_balance"].as_i64(), after["lock_amount"].as_i64()),
        (Some(0), Some(5000))
    );
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_locks_of_uneven_amounts_lock_the_last_cents_partially_and_never_more() {
    let app = TestApp::spawn().await;
    let token = funded(&app, "6036000000000002", 1000).await;
    let body = json!({"source": token, "amount": 70, "capture": false, "partial_redemption": true});

    let responses = join_all((0..40).map(|_| clover(&app, "/v1/charges", body.clone()))).await;

    let mut amounts: Vec<i64> = responses
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.body["amount"].as_i64().unwrap())
        .collect();
    amounts.sort_unstable();
    assert_eq!(amounts.iter().sum::<i64>(), 1000);
    assert_eq!(amounts[0], 20, "one lock takes the last 20 cents");
    assert_eq!(amounts.len(), 15);
    assert!(responses.iter().all(|r| r.status == 200 || r.status == 402));
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn several_locks_on_one_card_are_numbered_captured_released_and_expire_on_their_own() {
    let app = TestApp::spawn().await;
    let token = funded(&app, "6036000000000003", 1000).await;
    let lock = |amount: i64| {
        clover(
            &app,
            "/v1/charges",
            json!({"source": token, "amount": amount, "capture": false}),
        )
    };
    let first = lock(300).await;
    let second = lock(200).await;
    let third = lock(100).await;
    for (response, number) in [(&first, 1), (&second, 2), (&third, 3)] {
        response.assert_status(200);
        assert_eq!(response.body["gift_card"]["lock_id"], number);
        assert_eq!(response.body["captured"], false);
        assert_eq!(
            response.body["warning_message"],
            "partial_redemption should be true for gift card"
        );
    }
    assert_eq!(balance(&app, &token).await["lock_amount"], 600);

    // Capture part of the first: the rest is released.
    let capture = clover(
        &app,
        &format!("/v1/charges/{}/capture", id_of(&first)),
        json!({"amount": 250}),
    )
    .await;
    capture.assert_status(200);
    assert_eq!(capture.body["amount"], 250);
    assert_eq!(capture.body["gift_card"]["previous_balance"], 700);
    assert_eq!(capture.body["gift_card"]["new_balance"], 450);
    assert_eq!(capture.body["gift_card"]["lock_amount"], 300);
    // A capture above the lock, and a second capture, are refused.
    let too_much = clover(
        &app,
        &format!("/v1/charges/{}/capture", id_of(&second)),
        json!({"amount": 201}),
    )
    .await;
    assert_clover_error(&too_much, 400, "amount_too_large");
    let twice = clover(&app, &format!("/v1/charges/{}/capture", id_of(&first)), json!({})).await;
    assert_clover_error(&twice, 400, "charge_already_captured");

    // Capture of 0 unlocks the second without touching the balance.
    let unlock = clover(
        &app,
        &format!("/v1/charges/{}/capture", id_of(&second)),
        json!({"amount": "0"}),
    )
    .await;
    unlock.assert_status(200);
    assert_eq!(unlock.body["amount"], 0);
    assert_eq!(unlock.body["captured"], false);
    assert_eq!(unlock.body["gift_card"]["new_balance"], 650);

    // The third expires after the lock lifetime: its value is available again.
    app.clock.advance_seconds(LOCK_SECONDS + 1);
    let after = balance(&app, &token).await;
    assert_eq!(
        (after["new_balance"].as_i64(), after["lock_amount"].as_i64()),
        (Some(750), Some(0))
    );
    let late = clover(&app, &format!("/v1/charges/{}/capture", id_of(&third)), json!({})).await;
    assert_clover_error(&late, 400, "charge_expired_for_capture");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_pending_lock_is_voided_whole_and_a_captured_one_is_refunded() {
    let app = TestApp::spawn().await;
    let token = funded(&app, "6036000000000004", 1000).await;
    let lock = |amount: i64| {
        clover(
            &app,
            "/v1/charges",
            json!({"source": token, "amount": amount, "capture": false}),
        )
    };
    let pending = lock(300).await;
    let void = clover(&app, "/v1/refunds", json!({"charge": id_of(&pending)})).await;
    void.assert_status(200);
    assert_eq!(void.body["metadata"]["refundType"], "VOID");
    assert_eq!(void.body["amount"], 300);
    assert_eq!(void.body["gift_card"]["new_balance"], 1000);

    let captured = lock(400).await;
    let lock_id = id_of(&captured);
    clover(&app, &format!("/v1/charges/{lock_id}/capture"), json!({}))
        .await
        .assert_status(200);
    let refund = clover(&app, "/v1/refunds", json!({"charge": lock_id, "amount": "150"})).await;
    refund.assert_status(200);
    assert_eq!(refund.body["metadata"]["refundType"], "REFUND");
    assert_eq!(refund.body["charge"], lock_id.as_str());
    assert_eq!(refund.body["amount"], 150);
    let too_much = clover(&app, "/v1/refunds", json!({"charge": lock_id, "amount": 251})).await;
    assert_clover_error(&too_much, 400, "amount_too_large");
    // Cancelling the refund shows the lock as the charge it belonged to.
    let cancel = clover(&app, &format!("/v1/refunds/{}/cancel", id_of(&refund)), json!({})).await;
    cancel.assert_status(200);
    assert_eq!(cancel.body["object"], "void_on_refund");
    assert_eq!(cancel.body["charge"], lock_id.as_str());
    assert_eq!(balance(&app, &token).await["new_balance"], 600);
    TestApp::assert_sound(&app.verify().await);
}

// ---- tokens and tenants ----

#[tokio::test]
async fn a_token_of_one_merchant_is_useless_to_another() {
    let app = TestApp::spawn().await;
    let token = funded(&app, "6036000000000005", 1000).await;
    let lock = clover(
        &app,
        "/v1/charges",
        json!({"source": token, "amount": 100, "capture": false}),
    )
    .await;
    let lock_id = id_of(&lock);
    let charge = clover(&app, "/v1/charges", json!({"source": token, "amount": 100})).await;
    let charge_id = id_of(&charge);
    let other = app.another_merchant().await;

    for (path, body) in [
        ("/v1/balance_inquiry", json!({"source": token})),
        ("/v1/charges", json!({"source": token, "amount": 100})),
        (
            "/v1/reload",
            json!({"source": token, "amount": 100, "currency": "usd"}),
        ),
        ("/v1/cashout", json!({"source": token})),
        ("/v1/activate", json!({"source": token})),
        ("/v1/tokens/revoke", json!({"token": token})),
    ] {
        let response = clover_as(&app, path, body, &other).await;
        assert_clover_error(&response, 404, "resource_missing");
    }
    let capture = clover_as(&app, &format!("/v1/charges/{lock_id}/capture"), json!({}), &other).await;
    assert_clover_error(&capture, 404, "resource_missing");
    let refund = clover_as(&app, "/v1/refunds", json!({"charge": charge_id}), &other).await;
    assert_clover_error(&refund, 404, "resource_missing");

    let untouched = balance(&app, &token).await;
    assert_eq!(
        (
            untouched["new_balance"].as_i64(),
            untouched["lock_amount"].as_i64()
        ),
        (Some(800), Some(100))
    );
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_revoked_token_finds_nothing() {
    let app = TestApp::spawn().await;
    let token = funded(&app, "6036000000000006", 1000).await;
    let spare = tokenize(&app, "6036000000000006", "4821").await;
    assert_ne!(token, spare, "each tokenization gives a new token");

    let revoked = clover(&app, "/v1/tokens/revoke", json!({"token": token})).await;
    revoked.assert_status(200);
    assert_eq!(revoked.body["revoked"], true);
    let response = clover(&app, "/v1/balance_inquiry", json!({"source": token})).await;
    assert_clover_error(&response, 404, "resource_missing");
    assert_eq!(response.body["error"]["param"], "source");
    let again = clover(&app, "/v1/tokens/revoke", json!({"token": token})).await;
    assert_clover_error(&again, 404, "resource_missing");
    // Another token of the card still works.
    assert_eq!(balance(&app, &spare).await["new_balance"], 1000);
}

#[tokio::test]
async fn a_wrong_security_code_and_an_unknown_number_are_declined_alike_and_count_toward_the_lockout() {
    let app = TestApp::spawn().await;
    funded(&app, "6036000000000007", 1000).await;
    let attempt = |number: &'static str, code: &'static str| {
        app.send(
            app.client
                .post(app.url("/clover/v1/tokens"))
                .header("apiKey", &app.api_key)
                .json(&json!({"gift_card": {"number": number, "security_code": code}})),
        )
    };
    let wrong = attempt("6036000000000007", "9999").await;
    let unknown = attempt("6036000000000099", "4821").await;
    assert_clover_error(&wrong, 402, "card_declined");
    assert_eq!(wrong.text, unknown.text);
    assert_eq!(wrong.body["error"]["decline_code"], "invalid_card");
    // A code no card can have (`!`) is declined alike and counts too.
    let malformed = attempt("6036000000000007", "!").await;
    assert_eq!(malformed.text, wrong.text);
    for _ in 2..10 {
        attempt("6036000000000007", "9999").await;
    }
    let locked = attempt("6036000000000007", "4821").await;
    assert_clover_error(&locked, 429, "rate_limit");
    // A token needs a secret.
    let no_code = app
        .send(
            app.client
                .post(app.url("/clover/v1/tokens"))
                .header("apiKey", &app.api_key)
                .json(&json!({"gift_card": {"number": "6036000000000007"}})),
        )
        .await;
    assert_clover_error(&no_code, 400, "invalid_request");
}

#[tokio::test]
async fn a_retried_charge_with_the_same_idempotency_key_charges_once() {
    let app = TestApp::spawn().await;
    let token = funded(&app, "6036000000000008", 1000).await;
    let charge = || {
        app.send(
            app.client
                .post(app.url("/clover/v1/charges"))
                .bearer_auth(&app.api_key)
                .header("Idempotency-Key", "order-42")
                .json(&json!({"source": token, "amount": 300})),
        )
    };
    let first = charge().await;
    let second = charge().await;
    first.assert_status(200);
    assert_eq!(first.text, second.text);
    assert_eq!(balance(&app, &token).await["new_balance"], 700);
    // The same key on the native API is another key.
    let native = app
        .post_idempotent(
            "/v1/programs",
            json!({"name": "Other", "currency": "USD"}),
            "order-42",
        )
        .await;
    native.assert_status(201);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn activation_needs_an_amount_unless_the_program_has_one_denomination() {
    let app = TestApp::spawn().await;
    program(
        &app,
        json!({"promotion_code": "MULTI", "denominations": [2500, 5000]}),
    )
    .await;
    program(&app, json!({"promotion_code": "OPEN"})).await;

    let several = clover(&app, "/v1/activate", json!({"promotion_code": "MULTI"})).await;
    assert_clover_error(&several, 400, "invalid_request");
    assert_eq!(several.body["error"]["param"], "amount");
    let not_one = clover(
        &app,
        "/v1/activate",
        json!({"promotion_code": "MULTI", "amount": 3000}),
    )
    .await;
    assert_clover_error(&not_one, 400, "invalid_charge_amount");
    let chosen = clover(
        &app,
        "/v1/activate",
        json!({"promotion_code": "MULTI", "amount": "2500"}),
    )
    .await;
    chosen.assert_status(200);
    assert_eq!(chosen.body["gift_card"]["new_balance"], 2500);

    let no_currency = clover(
        &app,
        "/v1/activate",
        json!({"promotion_code": "OPEN", "amount": 2000}),
    )
    .await;
    assert_clover_error(&no_currency, 400, "invalid_request");
    assert_eq!(no_currency.body["error"]["param"], "currency");
    let no_amount = clover(
        &app,
        "/v1/activate",
        json!({"promotion_code": "OPEN", "currency": "usd"}),
    )
    .await;
    assert_clover_error(&no_amount, 400, "invalid_request");
    let wrong_currency = clover(
        &app,
        "/v1/activate",
        json!({"promotion_code": "OPEN", "amount": 2000, "currency": "eur"}),
    )
    .await;
    assert_clover_error(&wrong_currency, 400, "invalid_request");
    let unknown = clover(&app, "/v1/activate", json!({"promotion_code": "NOPE"})).await;
    assert_clover_error(&unknown, 404, "resource_missing");
    TestApp::assert_sound(&app.verify().await);
}

// ---- bad input ----

#[tokio::test]
async fn bad_input_is_a_4xx_in_clovers_shape_and_unknown_fields_are_ignored() {
    let app = TestApp::spawn().await;
    let token = funded(&app, "6036000000000009", 1000).await;
    let t = token.as_str();
    let cases: Vec<(&str, Value, u16, &str, Option<&str>)> = vec![
        (
            "/v1/charges",
            json!({"source": t, "amount": 1.5}),
            400,
            "invalid_charge_amount",
            Some("amount"),
        ),
        (
            "/v1/charges",
            json!({"source": t, "amount": "1.50"}),
            400,
            "invalid_charge_amount",
            Some("amount"),
        ),
        (
            "/v1/charges",
            json!({"source": t, "amount": -100}),
            400,
            "invalid_charge_amount",
            Some("amount"),
        ),
        (
            "/v1/charges",
            json!({"source": t, "amount": 0}),
            400,
            "invalid_charge_amount",
            Some("amount"),
        ),
        (
            "/v1/charges",
            json!({"source": t, "amount": {"value": 1}}),
            400,
            "invalid_charge_amount",
            Some("amount"),
        ),
        (
            "/v1/charges",
            json!({"source": t, "amount": 100_000_000}),
            400,
            "amount_too_large",
            Some("amount"),
        ),
        (
            "/v1/charges",
            json!({"source": t, "amount": 100, "capture": "yes"}),
            400,
            "invalid_request",
            Some("capture"),
        ),
        (
            "/v1/charges",
            json!({"source": t, "amount": 100, "partial_redemption": 1}),
            400,
            "invalid_request",
            Some("partial_redemption"),
        ),
        (
            "/v1/charges",
            json!({"source": t, "amount": 100, "currency": "dollars"}),
            400,
            "invalid_request",
            Some("currency"),
        ),
        (
            "/v1/charges",
            json!({"source": t, "amount": 100, "currency": "eur"}),
            400,
            "invalid_request",
            Some("currency"),
        ),
        (
            "/v1/charges",
            json!({"amount": 100}),
            400,
            "invalid_request",
            Some("source"),
        ),
        (
            "/v1/charges",
            json!({"source": t}),
            400,
            "invalid_request",
            Some("amount"),
        ),
        (
            "/v1/charges",
            json!({"source": 42, "amount": 100}),
            400,
            "invalid_request",
            Some("source"),
        ),
        (
            "/v1/charges",
            json!({"source": "not-a-token", "amount": 100}),
            404,
            "resource_missing",
            Some("source"),
        ),
        (
            "/v1/charges",
            json!({"source": "clv_unknown0token", "amount": 100}),
            404,
            "resource_missing",
            Some("source"),
        ),
        (
            "/v1/reload",
            json!({"source": t, "currency": "usd"}),
            400,
            "invalid_request",
            Some("amount"),
        ),
        (
            "/v1/charges/txn_nope/capture",
            json!({}),
            404,
            "resource_missing",
            Some("charge"),
        ),
        (
            "/v1/charges/1ABCDEF23GHIJ/capture",
            json!({"amount": "x"}),
            400,
            "invalid_charge_amount",
            Some("amount"),
        ),
        ("/v1/refunds", json!({}), 400, "invalid_request", Some("charge")),
        (
            "/v1/refunds",
            json!({"charge": "1ABCDEF23GHIJ"}),
            404,
            "resource_missing",
            Some("charge"),
        ),
        (
            "/v1/refunds/txn_nope/cancel",
            json!({}),
            404,
            "resource_missing",
            Some("refund"),
        ),
        ("/v1/activate", json!({}), 400, "invalid_request", Some("source")),
        (
            "/v1/activate",
            json!({"source": t, "promotion_code": "67062"}),
            400,
            "invalid_request",
            Some("promotion_code"),
        ),
        (
            "/v1/tokens",
            json!({"gift_card": {"number": 98765441066_i64, "security_code": "1234"}}),
            400,
            "invalid_request",
            Some("gift_card.number"),
        ),
        ("/v1/tokens", json!({}), 400, "invalid_request", Some("gift_card")),
    ];
    for (path, body, status, code, param) in cases {
        let response = clover(&app, path, body.clone()).await;
        assert_eq!(
            (response.status.as_u16(), response.body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path} {body}: {}",
            response.text
        );
        assert_clover_error(&response, status, code);
        if let Some(param) = param {
            assert_eq!(
                response.body["error"]["param"], param,
                "{path} {body}: {}",
                response.text
            );
        }
    }

    let raw = |body: &'static str| {
        app.send(
            app.client
                .post(app.url("/clover/v1/balance_inquiry"))
                .bearer_auth(&app.api_key)
                .header("content-type", "application/json")
                .body(body),
        )
    };
    assert_clover_error(&raw("{\"source\": ").await, 400, "invalid_request");
    assert_clover_error(&raw("[1, 2]").await, 400, "invalid_request");
    let unauthenticated = app
        .send(
            app.client
                .post(app.url("/clover/v1/balance_inquiry"))
                .json(&json!({"source": t})),
        )
        .await;
    assert_clover_error(&unauthenticated, 401, "unauthorized");
    let unknown_path = clover(&app, "/v1/gift_cards", json!({})).await;
    assert_clover_error(&unknown_path, 404, "resource_missing");
    let wrong_method = app
        .send(
            app.client
                .delete(app.url("/clover/v1/charges"))
                .bearer_auth(&app.api_key),
        )
        .await;
    assert_clover_error(&wrong_method, 405, "invalid_request");

    // Unknown fields are ignored, as Clover ignores them; amounts and flags may be strings.
    let lenient = clover(
        &app,
        "/v1/charges",
        json!({"source": t, "amount": "250", "capture": "TRUE", "metadata": {"order": "A-1"}, "tip": 5}),
    )
    .await;
    lenient.assert_status(200);
    assert_eq!(lenient.body["amount"], 250);
    assert_eq!(balance(&app, t).await["new_balance"], 750);
    TestApp::assert_sound(&app.verify().await);
}

// ---- reads: GET /v1/charges and /v1/refunds ----

async fn clover_get(app: &TestApp, path: &str) -> TestResponse {
    clover_get_as(app, path, &app.api_key).await
}

async fn clover_get_as(app: &TestApp, path: &str, api_key: &str) -> TestResponse {
    app.get_as(&format!("/clover{path}"), api_key).await
}

/// A charge's answer as a read shows it: without what echoed its request (the token as
/// `source.id`, and `partial_auth` or the warning that `partial_redemption` decides), which
/// giftd does not keep.
fn without_request_echoes(answer: &Value) -> Value {
    let mut read = answer.clone();
    let object = read.as_object_mut().expect("an object");
    object.remove("partial_auth");
    object.remove("warning_message");
    read["source"].as_object_mut().expect("a source").remove("id");
    read
}

/// The ids of a list's page, in order, after checking Clover's envelope.
#[track_caller]
fn page_ids(list: &TestResponse, url: &str, has_more: bool) -> Vec<String> {
    list.assert_status(200);
    assert_eq!(list.body["object"], "list", "{}", list.text);
    assert_eq!(list.body["url"], url, "{}", list.text);
    assert_eq!(list.body["has_more"], has_more, "has_more; {}", list.text);
    list.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|item| item["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// Ids to compare with a page's.
fn ids<const N: usize>(items: [&String; N]) -> Vec<String> {
    items.into_iter().cloned().collect()
}

/// An active card holding `amount`, its id (for the native API) and its token.
async fn funded_card_and_token(app: &TestApp, number: &str, amount: i64) -> (String, String) {
    let program_id = program(app, json!({})).await;
    let card_id = import(app, &program_id, number, "4821").await;
    app.post(
        &format!("/v1/cards/{card_id}/activate"),
        json!({"amount": amount}),
    )
    .await
    .assert_status(200);
    (card_id, tokenize(app, number, "4821").await)
}

async fn lock_of(app: &TestApp, token: &str, amount: i64) -> String {
    let lock = clover(
        app,
        "/v1/charges",
        json!({"source": token, "amount": amount, "capture": false}),
    )
    .await;
    lock.assert_status(200);
    id_of(&lock)
}

#[tokio::test]
async fn a_charge_reads_back_as_its_creation_answered_with_its_state_of_now() {
    let app = TestApp::spawn().await;
    let token = funded(&app, "7777320000065003", 1000).await;

    // A redemption, read back: its creation's answer, less the request's echoes.
    let charge = clover(
        &app,
        "/v1/charges",
        json!({"source": token, "amount": 300, "currency": "usd", "partial_redemption": true}),
    )
    .await;
    charge.assert_status(200);
    let charge_id = id_of(&charge);
    let path = format!("/v1/charges/{charge_id}");
    let mut expected = without_request_echoes(&charge.body);
    assert_eq!(clover_get(&app, &path).await.body, expected);
    assert_eq!(
        (
            &expected["captured"],
            &expected["amount_captured"],
            &expected["refunded"]
        ),
        (&json!(true), &json!(300), &json!(false))
    );

    // Partly refunded: `amount_refunded` says how much; `refunded` waits for all of it.
    let refund = clover(&app, "/v1/refunds", json!({"charge": charge_id, "amount": 100})).await;
    assert_eq!(refund.body["metadata"]["refundType"], "REFUND");
    expected["amount_refunded"] = json!(100);
    assert_eq!(clover_get(&app, &path).await.body, expected);
    clover(&app, "/v1/refunds", json!({"charge": charge_id}))
        .await
        .assert_status(200);
    expected["amount_refunded"] = json!(300);
    expected["refunded"] = json!(true);
    assert_eq!(clover_get(&app, &path).await.body, expected);

    // A lock, pending: as created (an authorization: no `paid`), its balances those of then.
    let lock = clover(
        &app,
        "/v1/charges",
        json!({"source": token, "amount": 200, "capture": false}),
    )
    .await;
    let lock_id = id_of(&lock);
    let lock_path = format!("/v1/charges/{lock_id}");
    let mut expected = without_request_echoes(&lock.body);
    assert!(expected.get("paid").is_none() && expected.get("warning_message").is_none());
    assert_eq!(clover_get(&app, &lock_path).await.body, expected);

    // Captured in part: captured and paid, what it took, and what it did not take back on the
    // card; its gift_card still says what its creation did (1000 → 800, lock 1).
    clover(
        &app,
        &format!("/v1/charges/{lock_id}/capture"),
        json!({"amount": 150}),
    )
    .await
    .assert_status(200);
    expected["captured"] = json!(true);
    expected["paid"] = json!(true);
    expected["amount_captured"] = json!(150);
    expected["amount_refunded"] = json!(50);
    let read = clover_get(&app, &lock_path).await;
    assert_eq!(read.body, expected);
    assert_eq!(
        read.body["gift_card"],
        json!({"expiration_date": read.body["gift_card"]["expiration_date"], "previous_balance": 1000, "new_balance": 800, "lock_id": 1})
    );

    // A lock voided through /v1/refunds, and one left to expire, gave all of it back.
    let voided = lock_of(&app, &token, 100).await;
    clover(&app, "/v1/refunds", json!({"charge": voided}))
        .await
        .assert_status(200);
    let expiring = lock_of(&app, &token, 100).await;
    app.clock.advance_seconds(LOCK_SECONDS + 1);
    for id in [voided, expiring] {
        let read = clover_get(&app, &format!("/v1/charges/{id}")).await;
        read.assert_status(200);
        assert_eq!(
            (
                &read.body["captured"],
                &read.body["amount_captured"],
                &read.body["amount_refunded"],
                &read.body["refunded"]
            ),
            (&json!(false), &json!(0), &json!(100), &json!(true)),
            "{}",
            read.text
        );
        assert!(read.body.get("paid").is_none(), "{}", read.text);
    }
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_refund_reads_back_as_its_creation_answered_and_shows_when_it_was_cancelled() {
    let app = TestApp::spawn().await;
    let token = funded(&app, "7777320000075003", 2000).await;
    // A lock left pending throughout: every refund's answer shows it as `lock_amount`, and
    // reads must show what the answers showed, whatever the card holds later.
    let standing = lock_of(&app, &token, 50).await;

    let charge = clover(&app, "/v1/charges", json!({"source": token, "amount": 300})).await;
    let charge_id = id_of(&charge);
    let refund = clover(&app, "/v1/refunds", json!({"charge": charge_id, "amount": 100})).await;
    refund.assert_status(200);
    assert_eq!(refund.body["gift_card"]["lock_amount"], 50);
    let refund_id = id_of(&refund);

    let pending = lock_of(&app, &token, 200).await;
    let void = clover(&app, "/v1/refunds", json!({"charge": pending})).await;
    void.assert_status(200);
    assert_eq!(void.body["metadata"]["refundType"], "VOID");

    let captured = lock_of(&app, &token, 400).await;
    clover(&app, &format!("/v1/charges/{captured}/capture"), json!({}))
        .await
        .assert_status(200);
    let of_capture = clover(&app, "/v1/refunds", json!({"charge": captured, "amount": 150})).await;
    of_capture.assert_status(200);
    assert_eq!(of_capture.body["charge"], captured.as_str());

    let reload = clover(
        &app,
        "/v1/reload",
        json!({"source": token, "amount": 500, "currency": "usd"}),
    )
    .await;
    let reload_id = id_of(&reload);
    let void_of_reload = clover(&app, "/v1/refunds", json!({"charge": reload_id})).await;
    void_of_reload.assert_status(200);

    // The standing lock goes; the reads still show what the answers did.
    clover(&app, "/v1/refunds", json!({"charge": standing}))
        .await
        .assert_status(200);
    for created in [&refund, &void, &of_capture, &void_of_reload] {
        let read = clover_get(&app, &format!("/v1/refunds/{}", id_of(created))).await;
        read.assert_status(200);
        assert_eq!(read.body, created.body, "{}", read.text);
    }

    // Cancelled, a refund reads as such; its cancellation is no refund of its own.
    let cancel = clover(&app, &format!("/v1/refunds/{refund_id}/cancel"), json!({})).await;
    cancel.assert_status(200);
    let mut expected = refund.body.clone();
    expected["status"] = json!("canceled");
    assert_eq!(
        clover_get(&app, &format!("/v1/refunds/{refund_id}")).await.body,
        expected
    );

    // What is not a refund is missing as a refund, and what is not a charge as a charge.
    for id in [&charge_id, &id_of(&cancel), &reload_id] {
        let read = clover_get(&app, &format!("/v1/refunds/{id}")).await;
        assert_eq!(
            read.body,
            json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": format!("No such refund: {id}"), "param": "refundId"}}),
        );
        assert_eq!(read.status.as_u16(), 404);
    }
    for id in [&refund_id, &reload_id] {
        let read = clover_get(&app, &format!("/v1/charges/{id}")).await;
        assert_clover_error(&read, 404, "resource_missing");
        assert_eq!(read.body["error"]["param"], "chargeId");
    }
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn charges_list_newest_first_and_page_both_ways_from_inclusive_cursors() {
    let app = TestApp::spawn().await;
    let (card_id, token) = funded_card_and_token(&app, "7777320000085003", 10_000).await;
    // Five charges a second apart, oldest first: redemptions and a lock through Clover, and a
    // redemption through the native API (the same ledger object: a charge too). A reload is
    // not a charge.
    let mut charges = Vec::new();
    for step in 0..5 {
        app.clock.advance_seconds(1);
        let id = match step {
            1 => lock_of(&app, &token, 200).await,
            2 => {
                let native = app
                    .post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 250}))
                    .await;
                native.assert_status(200);
                native.body["id"].as_str().expect("an id").to_owned()
            }
            _ => id_of(
                &clover(
                    &app,
                    "/v1/charges",
                    json!({"source": token, "amount": 100 + step}),
                )
                .await,
            ),
        };
        charges.push(id);
        clover(
            &app,
            "/v1/reload",
            json!({"source": token, "amount": 10, "currency": "usd"}),
        )
        .await
        .assert_status(200);
    }
    let [c1, c2, c3, c4, c5] = <[String; 5]>::try_from(charges).expect("five");
    let newest_first = ids([&c5, &c4, &c3, &c2, &c1]);

    let all = clover_get(&app, "/v1/charges").await;
    assert_eq!(page_ids(&all, "/v1/charges", false), newest_first);
    // Each item is what reading it alone answers; the native redemption renders as a charge.
    for item in all.body["data"].as_array().expect("data") {
        let id = item["id"].as_str().expect("an id");
        assert_eq!(&clover_get(&app, &format!("/v1/charges/{id}")).await.body, item);
    }
    let native = &all.body["data"][2];
    assert_eq!(
        (&native["amount"], &native["captured"], &native["currency"]),
        (&json!(250), &json!(true), &json!("usd"))
    );
    let created: Vec<i64> = all.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|item| item["created"].as_i64().expect("created"))
        .collect();
    let [t5, t4, t3, t2, _] = <[i64; 5]>::try_from(created).expect("five");

    let page = |query: String| {
        let app = &app;
        async move { clover_get(app, &format!("/v1/charges?{query}")).await }
    };
    // The first page, then the next from its last item: Clover's cursors include theirs.
    assert_eq!(
        page_ids(&page("limit=2".into()).await, "/v1/charges", true),
        ids([&c5, &c4])
    );
    assert_eq!(
        page_ids(
            &page(format!("starting_after={c4}&limit=2")).await,
            "/v1/charges",
            true
        ),
        ids([&c4, &c3])
    );
    assert_eq!(
        page_ids(
            &page(format!("starting_after={c2}&limit=2")).await,
            "/v1/charges",
            false
        ),
        ids([&c2, &c1])
    );
    // Back toward the newest: the cursor first, then what came after it.
    assert_eq!(
        page_ids(
            &page(format!("ending_before={c2}&limit=2")).await,
            "/v1/charges",
            true
        ),
        ids([&c2, &c3])
    );
    assert_eq!(
        page_ids(
            &page(format!("ending_before={c4}&limit=5")).await,
            "/v1/charges",
            false
        ),
        ids([&c4, &c5])
    );
    // Creation time, in milliseconds, dates or dates and times (UTC).
    assert_eq!(
        page_ids(
            &page(format!("created.gte={t2}&created.lte={t4}")).await,
            "/v1/charges",
            false
        ),
        ids([&c4, &c3, &c2])
    );
    assert_eq!(
        page_ids(
            &page(format!("created.gt={t2}&created.lt={t4}")).await,
            "/v1/charges",
            false
        ),
        ids([&c3])
    );
    assert_eq!(
        page_ids(
            &page(format!("created.gte={t3}&starting_after={c4}&limit=1")).await,
            "/v1/charges",
            true
        ),
        ids([&c4])
    );
    assert_eq!(
        page_ids(&page(format!("created.gt={t5}")).await, "/v1/charges", false),
        Vec::<String>::new()
    );
    assert_eq!(
        page_ids(&page("created.gt=2999-01-01".into()).await, "/v1/charges", false),
        Vec::<String>::new()
    );
    assert_eq!(
        page_ids(
            &page("created.lte=2999-01-01%2000:00:00&created.gte=2001-01-01".into()).await,
            "/v1/charges",
            false
        ),
        newest_first
    );
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn refunds_list_newest_first_and_by_charge_without_cancellations_or_expiries() {
    let app = TestApp::spawn().await;
    let token = funded(&app, "7777320000095003", 10_000).await;
    let step = || app.clock.advance_seconds(1);

    let captured = lock_of(&app, &token, 300).await;
    clover(&app, &format!("/v1/charges/{captured}/capture"), json!({}))
        .await
        .assert_status(200);
    step();
    let rc1 = id_of(&clover(&app, "/v1/refunds", json!({"charge": captured, "amount": 100})).await);
    step();
    let rc2 = id_of(&clover(&app, "/v1/refunds", json!({"charge": captured, "amount": 50})).await);
    step();
    let charge = id_of(&clover(&app, "/v1/charges", json!({"source": token, "amount": 500})).await);
    let r1 = id_of(&clover(&app, "/v1/refunds", json!({"charge": charge, "amount": 100})).await);
    step();
    let reload = id_of(
        &clover(
            &app,
            "/v1/reload",
            json!({"source": token, "amount": 10, "currency": "usd"}),
        )
        .await,
    );
    let vr = id_of(&clover(&app, "/v1/refunds", json!({"charge": reload})).await);
    step();
    let released = lock_of(&app, &token, 70).await;
    let v2 = id_of(&clover(&app, "/v1/refunds", json!({"charge": released})).await);
    step();
    // Neither a cancellation nor an expired lock's release is a refund.
    clover(&app, &format!("/v1/refunds/{rc2}/cancel"), json!({}))
        .await
        .assert_status(200);
    let expired = lock_of(&app, &token, 30).await;
    app.clock.advance_seconds(LOCK_SECONDS + 1);
    balance(&app, &token).await;

    let list = |query: &str| {
        let path = format!("/v1/refunds?{query}");
        let app = &app;
        async move { clover_get(app, &path).await }
    };
    let all = list("").await;
    assert_eq!(
        page_ids(&all, "/v1/refunds", false),
        ids([&v2, &vr, &r1, &rc2, &rc1])
    );
    let charges: Vec<&Value> = all.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|refund| &refund["charge"])
        .collect();
    assert_eq!(
        charges,
        [
            &json!(released),
            &json!(reload),
            &json!(charge),
            &json!(captured),
            &json!(captured)
        ]
    );
    assert_eq!(all.body["data"][3]["status"], "canceled");
    assert_eq!(all.body["data"][4]["status"], "succeeded");

    assert_eq!(
        page_ids(&list(&format!("charge={captured}")).await, "/v1/refunds", false),
        ids([&rc2, &rc1])
    );
    assert_eq!(
        page_ids(&list(&format!("charge={charge}")).await, "/v1/refunds", false),
        ids([&r1])
    );
    assert_eq!(
        page_ids(&list(&format!("charge={released}")).await, "/v1/refunds", false),
        ids([&v2])
    );
    assert_eq!(
        page_ids(&list(&format!("charge={reload}")).await, "/v1/refunds", false),
        ids([&vr])
    );
    assert_eq!(
        page_ids(&list(&format!("charge={expired}")).await, "/v1/refunds", false),
        Vec::<String>::new()
    );
    assert_eq!(
        page_ids(
            &list(&format!("starting_after={vr}&limit=2")).await,
            "/v1/refunds",
            true
        ),
        ids([&vr, &r1])
    );
    assert_eq!(
        page_ids(
            &list(&format!("ending_before={r1}&limit=2")).await,
            "/v1/refunds",
            true
        ),
        ids([&r1, &vr])
    );
    assert_eq!(
        page_ids(
            &list(&format!("charge={captured}&starting_after={rc2}&limit=1")).await,
            "/v1/refunds",
            true
        ),
        ids([&rc2])
    );
    // The expired lock reads as a charge that gave everything back.
    let read = clover_get(&app, &format!("/v1/charges/{expired}")).await;
    assert_eq!(read.body["refunded"], true, "{}", read.text);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn another_merchants_charges_and_refunds_are_missing_like_unknown_ones() {
    let app = TestApp::spawn().await;
    let token = funded(&app, "7777320000105003", 1000).await;
    let charge = id_of(&clover(&app, "/v1/charges", json!({"source": token, "amount": 300})).await);
    let refund = id_of(&clover(&app, "/v1/refunds", json!({"charge": charge, "amount": 100})).await);
    let other = app.another_merchant().await;
    let unknown = "txn_0000000000000000000000";

    for id in [charge.as_str(), unknown, "not-an-id"] {
        let read = clover_get_as(&app, &format!("/v1/charges/{id}"), &other).await;
        assert_eq!(read.status.as_u16(), 404, "{}", read.text);
        assert_eq!(
            read.body,
            json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": format!("No such charge: {id}"), "param": "chargeId"}})
        );
    }
    for id in [refund.as_str(), unknown] {
        let read = clover_get_as(&app, &format!("/v1/refunds/{id}"), &other).await;
        assert_clover_error(&read, 404, "resource_missing");
        assert_eq!(read.body["error"]["message"], format!("No such refund: {id}"));
    }
    let charges = clover_get_as(&app, "/v1/charges", &other).await;
    assert!(page_ids(&charges, "/v1/charges", false).is_empty());
    let refunds = clover_get_as(&app, "/v1/refunds", &other).await;
    assert!(page_ids(&refunds, "/v1/refunds", false).is_empty());
    // Another merchant's ids name nothing as cursors or filters either.
    let cursor = clover_get_as(&app, &format!("/v1/charges?starting_after={charge}"), &other).await;
    assert_clover_error(&cursor, 400, "invalid_request");
    assert_eq!(cursor.body["error"]["param"], "starting_after");
    let filter = clover_get_as(&app, &format!("/v1/refunds?charge={charge}"), &other).await;
    assert_clover_error(&filter, 400, "invalid_request");
    assert_eq!(filter.body["error"]["param"], "charge");
    // Its owner still reads them.
    clover_get(&app, &format!("/v1/charges/{charge}"))
        .await
        .assert_status(200);
    clover_get(&app, &format!("/v1/refunds/{refund}"))
        .await
        .assert_status(200);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn bad_read_parameters_are_400_in_clovers_shape_and_unknown_ones_are_ignored() {
    let app = TestApp::spawn().await;
    let token = funded(&app, "7777320000115003", 1000).await;
    let charge = id_of(&clover(&app, "/v1/charges", json!({"source": token, "amount": 300})).await);
    let refund = id_of(&clover(&app, "/v1/refunds", json!({"charge": charge, "amount": 100})).await);
    let unknown = "txn_0000000000000000000000";

    for (path, param) in [
        ("/v1/charges?limit=0".to_owned(), "limit"),
        ("/v1/charges?limit=101".to_owned(), "limit"),
        ("/v1/charges?limit=ten".to_owned(), "limit"),
        ("/v1/charges?limit=5&limit=6".to_owned(), "limit"),
        ("/v1/charges?created.gt=yesterday".to_owned(), "created.gt"),
        ("/v1/charges?created.lte=2021-02-30".to_owned(), "created.lte"),
        ("/v1/charges?created=2021-01-12".to_owned(), "created"),
        (format!("/v1/charges?starting_after={unknown}"), "starting_after"),
        // A refund is no cursor of the charges, nor a charge of the refunds.
        (format!("/v1/charges?ending_before={refund}"), "ending_before"),
        (format!("/v1/refunds?starting_after={charge}"), "starting_after"),
        (
            format!("/v1/charges?starting_after={charge}&ending_before={charge}"),
            "ending_before",
        ),
        (format!("/v1/refunds?charge={unknown}"), "charge"),
        ("/v1/charges?customer=NAYQEY34V6H24".to_owned(), "customer"),
        ("/v1/refunds?expand[]=charge".to_owned(), "expand[]"),
        (format!("/v1/charges/{charge}?expand=customer"), "expand"),
    ] {
        let response = clover_get(&app, &path).await;
        assert_clover_error(&response, 400, "invalid_request");
        assert_eq!(response.body["error"]["type"], "invalid_request_error");
        assert_eq!(
            response.body["error"]["param"], param,
            "{path}: {}",
            response.text
        );
    }
    let unauthenticated = app.send(app.client.get(app.url("/clover/v1/charges"))).await;
    assert_clover_error(&unauthenticated, 401, "unauthorized");
    // Parameters giftd does not know are ignored, as Clover ignores unknown fields.
    let lenient = clover_get(&app, "/v1/charges?limit=100&shipping=none").await;
    assert_eq!(page_ids(&lenient, "/v1/charges", false), ids([&charge]));
    TestApp::assert_sound(&app.verify().await);
}
