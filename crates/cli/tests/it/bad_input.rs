//! Bad input over HTTP: malformed and mistyped bodies, amounts out of range, unknown and missing
//! fields, oversized bodies, ids of the wrong type, bad paging, missing keys, unknown routes and
//! methods, and sums that overflow. Every answer must be a 4xx with the contract's JSON error
//! body (never a 5xx), and nothing may change: card, hold, programs and ledger stay as they were
//! and `verify` stays sound.
//!
//! The cases are tables; a test runs all of its cases and then reports every one that failed,
//! so one run shows the whole picture.

use giftd_testkit::{TestApp, TestResponse};
use reqwest::Method;
use serde_json::{Value, json};

/// The native API's body limit (64 KiB).
const MAX_BODY_BYTES: usize = 64 * 1024;
/// A well-formed id body that no object has.
const UNKNOWN: &str = "00000000000000000000000000000000";

/// A merchant with one program, one funded card, a pending hold on it and a redemption.
struct Fixture {
    app: TestApp,
    program_id: String,
    card_id: String,
    card_number: String,
    security_code: String,
    hold_id: String,
    redemption_id: String,
    /// A second card, the source of a merge.
    other_card_id: String,
    /// Ids of the right shape that name nothing: bodies are refused before any lookup.
    user_id: String,
    checkout_id: String,
    delivery_id: String,
    api_key_id: String,
    adjustment_id: String,
    session_id: String,
    /// A signed-in owner's session, for what only a person has (`/v1/staff/me/...`).
    staff_token: String,
}

/// The password of the fixture's owner.
const STAFF_PASSWORD: &str = "bad input passphrase";

impl Fixture {
    /// The credential a request to `path` is made with: the owner's session under
    /// `/v1/staff/me` and `/v1/adjustments/`, where no API key is taken, the merchant's key
    /// elsewhere.
    fn credential(&self, path: &str) -> &str {
        // Approving an adjustment is a person's too.
        if path.starts_with("/v1/staff/me") || path.starts_with("/v1/adjustments/") {
            &self.staff_token
        } else {
            &self.app.api_key
        }
    }
}

async fn fixture() -> Fixture {
    let app = TestApp::spawn().await;
    let program_id = app.usd_program().await;
    let card = app.card(&program_id, 10_000).await;
    let card_id = text(&card["id"]);
    let hold = app
        .post(&format!("/v1/cards/{card_id}/holds"), json!({"amount": 1_000}))
        .await;
    hold.assert_status(201);
    let redemption = app
        .post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 500}))
        .await;
    redemption.assert_status(200);
    let other = app.card(&program_id, 1_000).await;
    let owner = app
        .post(
            "/v1/staff",
            json!({"email": "owner@example.com", "role": "owner"}),
        )
        .await;
    owner.assert_status(201);
    let signed_in = app
        .send(app.client.post(app.url("/v1/sessions")).json(&json!({
            "email": "owner@example.com", "password": owner.body["temporary_password"],
        })))
        .await;
    signed_in.assert_status(201);
    let staff_token = text(&signed_in.body["token"]);
    app.post_as(
        "/v1/staff/me/password",
        json!({"current_password": owner.body["temporary_password"], "new_password": STAFF_PASSWORD}),
        &staff_token,
        None,
    )
    .await
    .assert_status(200);
    Fixture {
        staff_token,
        other_card_id: text(&other["id"]),
        user_id: "bad-input-user".into(),
        checkout_id: "chk_0000badinput".into(),
        delivery_id: "whd_00000000".into(),
        api_key_id: "key_00000000".into(),
        adjustment_id: "adj_00000000".into(),
        session_id: "ses_00000000".into(),
        program_id,
        card_number: text(&card["number"]),
        security_code: text(&card["security_code"]),
        hold_id: text(&hold.body["id"]),
        redemption_id: text(&redemption.body["id"]),
        card_id,
        app,
    }
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a string, not {value}"))
        .to_owned()
}

/// Everything a refused request must leave alone.
async fn world(fixture: &Fixture) -> Value {
    let app = &fixture.app;
    let card_path = format!("/v1/cards/{}", fixture.card_id);
    let hold_path = format!("/v1/holds/{}", fixture.hold_id);
    let (card, hold, programs, report) = tokio::join!(
        app.get(&card_path),
        app.get(&hold_path),
        app.get("/v1/programs?limit=100"),
        app.verify(),
    );
    json!({
        "card": [card.status.as_u16(), card.body["state"], card.body["balance"], card.body["held"], card.body["available"]],
        "hold": [hold.status.as_u16(), hold.body["state"], hold.body["amount"], hold.body["captured_amount"]],
        "programs": programs.body["data"].as_array().map(Vec::len),
        "cards": report.cards,
        "transactions": report.transactions,
        "postings": report.postings,
        "pending_holds": report.pending_holds,
        "outstanding": format!("{:?}", report.outstanding),
        "violations": report.violations,
    })
}

#[derive(Clone)]
enum Payload {
    None,
    Json(Value),
    Raw(Vec<u8>),
}

#[derive(Clone, Copy)]
enum Status {
    Exactly(u16),
    /// Any 4xx: the contract does not fix which.
    ClientError,
    /// Anything but a 5xx (for inputs where success is also a fair answer).
    NotServerError,
}

struct Case {
    what: String,
    method: Method,
    path: String,
    /// The Authorization header; `None` sends none.
    authorization: Option<String>,
    payload: Payload,
    status: Status,
    /// Acceptable error codes; empty: any.
    codes: Vec<&'static str>,
    /// The `param` the error must name.
    param: Option<String>,
}

impl Case {
    fn post(fixture: &Fixture, path: &str, payload: Payload) -> Self {
        Self {
            what: format!("POST {path}"),
            method: Method::POST,
            path: path.to_owned(),
            authorization: Some(format!("Bearer {}", fixture.credential(path))),
            payload,
            status: Status::ClientError,
            codes: Vec::new(),
            param: None,
        }
    }

    fn get(fixture: &Fixture, path: &str) -> Self {
        Self {
            what: format!("GET {path}"),
            method: Method::GET,
            payload: Payload::None,
            ..Self::post(fixture, path, Payload::None)
        }
    }

    fn describe(mut self, what: impl std::fmt::Display) -> Self {
        self.what = format!("{} [{what}]", self.what);
        self
    }

    fn expect(mut self, status: u16, codes: &[&'static str]) -> Self {
        self.status = Status::Exactly(status);
        self.codes = codes.to_vec();
        self
    }

    fn param(mut self, param: &str) -> Self {
        self.param = Some(param.to_owned());
        self
    }
}

async fn send(fixture: &Fixture, case: &Case) -> TestResponse {
    let app = &fixture.app;
    let mut request = app.client.request(case.method.clone(), app.url(&case.path));
    if let Some(authorization) = &case.authorization {
        request = request.header("authorization", authorization);
    }
    request = match &case.payload {
        Payload::None => request,
        Payload::Json(value) => request
            .header("content-type", "application/json")
            .body(serde_json::to_vec(value).expect("JSON")),
        Payload::Raw(bytes) => request
            .header("content-type", "application/json")
            .body(bytes.clone()),
    };
    app.send(request).await
}

/// Why `response` is not the answer `case` expects, if it is not.
fn judge(case: &Case, response: &TestResponse) -> Result<(), String> {
    let status = response.status.as_u16();
    match case.status {
        Status::Exactly(expected) if status != expected => return Err(format!("expected status {expected}")),
        Status::ClientError if !(400..500).contains(&status) => return Err("expected a 4xx".into()),
        Status::NotServerError if status >= 500 => return Err("expected no 5xx".into()),
        Status::NotServerError if status < 400 => return Ok(()),
        _ => {}
    }
    let content_type = response
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return Err(format!(
            "expected a JSON error body, content-type is {content_type:?}"
        ));
    }
    let error = &response.body["error"];
    let code = error["code"].as_str().unwrap_or_default();
    if code.is_empty() || !code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err("expected error.code, a snake_case word".into());
    }
    if error["message"].as_str().is_none_or(str::is_empty) {
        return Err("expected error.message, a sentence".into());
    }
    if !case.codes.is_empty() && !case.codes.contains(&code) {
        return Err(format!("expected code {:?}", case.codes));
    }
    if let Some(param) = &case.param
        && error["param"].as_str() != Some(param.as_str())
    {
        return Err(format!("expected param {param:?}"));
    }
    Ok(())
}

/// Runs every case, checking its answer and that the world did not change, then fails with the
/// list of every case that went wrong.
async fn run(fixture: &Fixture, cases: Vec<Case>) {
    assert!(!cases.is_empty());
    let count = cases.len();
    let mut before = world(fixture).await;
    let mut failures = Vec::new();
    for case in cases {
        let response = send(fixture, &case).await;
        if let Err(why) = judge(&case, &response) {
            let mut body = response.text.clone();
            body.truncate(300);
            failures.push(format!(
                "{}: {why}; got {} {body}",
                case.what,
                response.status.as_u16()
            ));
        }
        let after = world(fixture).await;
        if after != before {
            failures.push(format!(
                "{}: the request changed state\n  before {before}\n  after  {after}",
                case.what
            ));
            before = after;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// How an endpoint takes `amount`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AmountField {
    Absent,
    Required,
    Optional,
    /// Optional, and 0 is meaningful (a capture of 0 releases the hold).
    OptionalZeroAllowed,
}

struct Endpoint {
    path: String,
    /// A body that would be accepted (or refused only by a business rule).
    valid: Value,
    amount: AmountField,
}

fn endpoints(fixture: &Fixture) -> Vec<Endpoint> {
    let card = &fixture.card_id;
    let hold = &fixture.hold_id;
    let redemption = &fixture.redemption_id;
    let checkout = &fixture.checkout_id;
    let endpoint = |path: String, valid: Value, amount: AmountField| Endpoint { path, valid, amount };
    vec![
        endpoint(
            "/v1/programs".into(),
            json!({"name": "Bad input", "currency": "USD"}),
            AmountField::Absent,
        ),
        endpoint(
            "/v1/card_batches".into(),
            json!({"program_id": fixture.program_id, "count": 1}),
            AmountField::Absent,
        ),
        endpoint(
            "/v1/cards".into(),
            json!({"program_id": fixture.program_id, "kind": "virtual", "amount": 100}),
            AmountField::Optional,
        ),
        endpoint(
            "/v1/cards/lookup".into(),
            json!({"number": fixture.card_number, "security_code": fixture.security_code}),
            AmountField::Absent,
        ),
        endpoint(
            format!("/v1/cards/{card}/cardholder_links"),
            json!({}),
            AmountField::Absent,
        ),
        endpoint(
            format!("/v1/cards/{card}/activate"),
            json!({"amount": 100}),
            AmountField::Optional,
        ),
        endpoint(
            format!("/v1/cards/{card}/load"),
            json!({"amount": 100}),
            AmountField::Required,
        ),
        endpoint(
            format!("/v1/cards/{card}/redeem"),
            json!({"amount": 100}),
            AmountField::Required,
        ),
        endpoint(
            format!("/v1/cards/{card}/cashout"),
            json!({}),
            AmountField::Absent,
        ),
        endpoint(format!("/v1/cards/{card}/freeze"), json!({}), AmountField::Absent),
        endpoint(
            format!("/v1/cards/{card}/unfreeze"),
            json!({}),
            AmountField::Absent,
        ),
        endpoint(
            format!("/v1/cards/{card}/deactivate"),
            json!({}),
            AmountField::Absent,
        ),
        endpoint(
            format!("/v1/cards/{card}/holds"),
            json!({"amount": 100}),
            AmountField::Required,
        ),
        endpoint(
            format!("/v1/holds/{hold}/capture"),
            json!({"amount": 100}),
            AmountField::OptionalZeroAllowed,
        ),
        endpoint(
            format!("/v1/holds/{hold}/release"),
            json!({}),
            AmountField::Absent,
        ),
        endpoint(
            format!("/v1/transactions/{redemption}/refund"),
            json!({"amount": 100}),
            AmountField::Optional,
        ),
        endpoint(
            format!("/v1/transactions/{redemption}/void"),
            json!({}),
            AmountField::Absent,
        ),
        endpoint(
            format!("/v1/cards/{card}/transfer"),
            json!({"amount": 100}),
            AmountField::Optional,
        ),
        endpoint(
            format!("/v1/cards/{card}/merge"),
            json!({"source_card_ids": [fixture.other_card_id]}),
            AmountField::Absent,
        ),
        endpoint(
            format!("/v1/users/{}/cards/{card}/share", fixture.user_id),
            json!({"recipient_user_id": "bad-input-recipient"}),
            AmountField::Absent,
        ),
        endpoint(
            "/v1/gifts".into(),
            json!({
                "sender_user_id": fixture.user_id,
                "recipient_user_id": "bad-input-recipient",
                "program_id": fixture.program_id,
                "amount": 100,
                "funding_reference": "pay-1",
            }),
            AmountField::Optional,
        ),
        endpoint(
            "/v1/checkouts".into(),
            json!({
                "amount": 100,
                "currency": "USD",
                "intent": "capture",
                "gift_cards": [{"card_id": card, "amount": 100}],
            }),
            AmountField::Required,
        ),
        endpoint(
            format!("/v1/checkouts/{checkout}/capture"),
            json!({}),
            AmountField::Absent,
        ),
        endpoint(
            format!("/v1/checkouts/{checkout}/void"),
            json!({}),
            AmountField::Absent,
        ),
        endpoint(
            format!("/v1/checkouts/{checkout}/refund"),
            json!({"amount": 100}),
            AmountField::Optional,
        ),
        endpoint(
            format!("/v1/checkouts/{checkout}/review"),
            json!({"decision": "approve"}),
            AmountField::Absent,
        ),
        endpoint(
            "/v1/webhook_endpoints".into(),
            json!({"url": "https://example.com/hook", "event_types": ["card.redeemed"]}),
            AmountField::Absent,
        ),
        endpoint(
            format!("/v1/webhook_deliveries/{}/retry", fixture.delivery_id),
            json!({}),
            AmountField::Absent,
        ),
        endpoint(
            "/v1/api_keys".into(),
            json!({"name": "Bad input", "scope": "pos"}),
            AmountField::Absent,
        ),
        endpoint(
            format!("/v1/api_keys/{}/rotate", fixture.api_key_id),
            json!({"grace_seconds": 60}),
            AmountField::Absent,
        ),
        endpoint(
            format!("/v1/api_keys/{}/revoke", fixture.api_key_id),
            json!({}),
            AmountField::Absent,
        ),
        endpoint(
            "/v1/sessions".into(),
            json!({"email": "nobody@example.com", "password": "not a password"}),
            AmountField::Absent,
        ),
        endpoint(
            "/v1/staff".into(),
            json!({"email": "bad-input@example.com", "role": "viewer"}),
            AmountField::Absent,
        ),
        // The owner's own password, set to itself: sent as is, it changes nothing.
        endpoint(
            "/v1/staff/me/password".into(),
            json!({"current_password": STAFF_PASSWORD, "new_password": STAFF_PASSWORD}),
            AmountField::Absent,
        ),
        endpoint("/v1/staff/me/totp".into(), json!({}), AmountField::Absent),
        endpoint(
            "/v1/staff/me/totp/confirm".into(),
            json!({"code": "000000"}),
            AmountField::Absent,
        ),
        endpoint(
            format!("/v1/staff/me/sessions/{}/revoke", fixture.session_id),
            json!({}),
            AmountField::Absent,
        ),
        endpoint("/v1/staff/me/sign_out".into(), json!({}), AmountField::Absent),
        // A signed amount (negative takes value off): not one of the positive amounts above.
        endpoint(
            format!("/v1/cards/{card}/adjustments"),
            json!({"amount": 100, "reason": "goodwill"}),
            AmountField::Absent,
        ),
        endpoint(
            format!("/v1/adjustments/{}/approve", fixture.adjustment_id),
            json!({}),
            AmountField::Absent,
        ),
        endpoint(
            format!("/v1/adjustments/{}/reject", fixture.adjustment_id),
            json!({}),
            AmountField::Absent,
        ),
    ]
}

/// `base` with `field` set to `value` (or removed when `value` is `None`).
fn with(base: &Value, field: &str, value: Option<Value>) -> Value {
    let mut body = base.clone();
    let object = body.as_object_mut().expect("an object");
    match value {
        Some(value) => object.insert(field.to_owned(), value),
        None => object.remove(field),
    };
    body
}

#[tokio::test]
async fn malformed_json_bodies_on_every_post_are_400_and_change_nothing() {
    let fixture = fixture().await;
    let malformed: Vec<(&str, Vec<u8>)> = vec![
        ("truncated object", b"{".to_vec()),
        ("missing value", br#"{"amount": }"#.to_vec()),
        ("trailing comma", br#"{"amount": 100,}"#.to_vec()),
        ("single quotes", b"{'amount': 100}".to_vec()),
        ("bare words", b"not json".to_vec()),
        ("two objects", br#"{"amount": 100}{"amount": 100}"#.to_vec()),
        ("an array", b"[]".to_vec()),
        ("an array of the object", br#"[{"amount": 100}]"#.to_vec()),
        ("a string", br#""amount""#.to_vec()),
        ("a number", b"100".to_vec()),
        ("null", b"null".to_vec()),
        ("true", b"true".to_vec()),
        (
            "invalid UTF-8",
            vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
        ),
        ("a byte-order mark", b"\xef\xbb\xbf{}".to_vec()),
        ("a NUL byte", b"{\0}".to_vec()),
        (
            "nested 10000 deep",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        ),
        (
            "an object nested 10000 deep",
            format!("{{\"amount\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        ),
        (
            "a 500-digit number",
            format!("{{\"amount\": {}}}", "9".repeat(500)).into_bytes(),
        ),
        ("a NaN", br#"{"amount": NaN}"#.to_vec()),
        ("an Infinity", br#"{"amount": Infinity}"#.to_vec()),
        ("a hex number", br#"{"amount": 0x64}"#.to_vec()),
        ("a leading zero", br#"{"amount": 0100}"#.to_vec()),
        ("a plus sign", br#"{"amount": +100}"#.to_vec()),
        ("a comment", b"{/* hi */}".to_vec()),
    ];
    let mut cases = Vec::new();
    for endpoint in endpoints(&fixture) {
        for (what, bytes) in &malformed {
            cases.push(
                Case::post(&fixture, &endpoint.path, Payload::Raw(bytes.clone()))
                    .describe(what)
                    .expect(400, &["invalid_request", "invalid_amount"]),
            );
        }
    }
    run(&fixture, cases).await;
}

/// Arrays nested `levels` deep around a number: `[[…[1]…]]`.
fn nested(levels: usize) -> Value {
    (0..levels).fold(json!(1), |inner, _| json!([inner]))
}

#[tokio::test]
async fn a_body_nested_past_sixty_four_levels_is_refused_as_too_deep_and_one_of_sixty_four_is_read() {
    let fixture = fixture().await;
    let before = world(&fixture).await;
    let path = format!("/v1/cards/{}/redeem", fixture.card_id);
    // The body's object is the first level: `reference` nested 63 deep makes 64 in all, read
    // and then refused for its type; 64 deep makes 65, refused before any field is looked at.
    let read = fixture
        .app
        .post(&path, json!({"amount": 100, "reference": nested(63)}))
        .await;
    read.assert_status(400);
    let message = read.body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.contains("levels deep"), "64 levels are read: {message}");
    let deep = fixture
        .app
        .post(&path, json!({"amount": 100, "reference": nested(64)}))
        .await;
    deep.assert_status(400);
    assert_eq!(deep.body["error"]["code"], "invalid_request", "{}", deep.body);
    let message = deep.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("more than 64 levels deep"),
        "the answer says why: {message}"
    );
    assert_eq!(world(&fixture).await, before, "a refused body changes nothing");
}

#[tokio::test]
async fn wrongly_typed_zero_negative_and_out_of_range_amounts_are_refused_naming_amount() {
    let fixture = fixture().await;
    let bad_amounts: Vec<(&str, Value, bool)> = vec![
        // (what, value, whether it is a type error rather than a bad integer)
        ("a string", json!("100"), true),
        ("an empty string", json!(""), true),
        ("a float", json!(1.5), true),
        ("a whole float", json!(100.0), true),
        ("a boolean", json!(true), true),
        ("an array", json!([100]), true),
        ("an object", json!({"value": 100}), true),
        ("zero", json!(0), false),
        ("minus one", json!(-1), false),
        ("i64::MIN", json!(i64::MIN), false),
        (
            "i64::MAX + 1",
            serde_json::from_str::<Value>("9223372036854775808").unwrap(),
            true,
        ),
        ("u64::MAX", json!(u64::MAX), true),
        (
            "i64::MIN - 1",
            serde_json::from_str::<Value>("-9223372036854775809").unwrap(),
            true,
        ),
        ("1e30", serde_json::from_str::<Value>("1e30").unwrap(), true),
        ("1e2", serde_json::from_str::<Value>("1e2").unwrap(), true),
        ("-1e30", serde_json::from_str::<Value>("-1e30").unwrap(), true),
    ];
    let mut cases = Vec::new();
    for endpoint in endpoints(&fixture) {
        if endpoint.amount == AmountField::Absent {
            continue;
        }
        for (what, value, type_error) in &bad_amounts {
            if endpoint.amount == AmountField::OptionalZeroAllowed && *what == "zero" {
                continue;
            }
            let codes: &[&'static str] = if *type_error {
                &["invalid_amount", "invalid_request"]
            } else {
                &["invalid_amount"]
            };
            let body = with(&endpoint.valid, "amount", Some(value.clone()));
            let mut case = Case::post(&fixture, &endpoint.path, Payload::Json(body))
                .describe(format!("amount {what}"))
                .param("amount");
            case.codes = codes.to_vec();
            cases.push(case);
        }
        if endpoint.amount == AmountField::Required {
            let body = with(&endpoint.valid, "amount", Some(Value::Null));
            cases.push(
                Case::post(&fixture, &endpoint.path, Payload::Json(body))
                    .describe("amount null")
                    .expect(400, &["invalid_amount", "invalid_request"])
                    .param("amount"),
            );
        }
    }
    // Program limits and denominations are amounts too.
    let program = json!({"name": "Limits", "currency": "USD"});
    for field in ["min_load", "max_load", "max_balance"] {
        for (what, value) in [
            ("zero", json!(0)),
            ("negative", json!(-5)),
            ("a string", json!("5")),
            ("too big", json!(u64::MAX)),
        ] {
            cases.push(
                Case::post(
                    &fixture,
                    "/v1/programs",
                    Payload::Json(with(&program, field, Some(value))),
                )
                .describe(format!("{field} {what}"))
                .expect(400, &["invalid_amount", "invalid_request"])
                .param(field),
            );
        }
    }
    for (what, value) in [
        ("containing zero", json!([500, 0])),
        ("containing a negative", json!([-500])),
        ("containing a float", json!([5.5])),
        ("a number", json!(500)),
    ] {
        cases.push(
            Case::post(
                &fixture,
                "/v1/programs",
                Payload::Json(with(&program, "denominations", Some(value))),
            )
            .describe(format!("denominations {what}"))
            .expect(400, &["invalid_amount", "invalid_request"])
            .param("denominations"),
        );
    }
    run(&fixture, cases).await;
}

#[tokio::test]
async fn unknown_fields_are_refused_naming_the_field_on_every_post() {
    let fixture = fixture().await;
    let mut cases = Vec::new();
    for endpoint in endpoints(&fixture) {
        for field in ["ammount", "Amount", "amount_minor", "zzz"] {
            if endpoint.valid.get(field).is_some() {
                continue;
            }
            let body = with(&endpoint.valid, field, Some(json!(100)));
            cases.push(
                Case::post(&fixture, &endpoint.path, Payload::Json(body))
                    .describe(format!("unknown field {field}"))
                    .expect(400, &["invalid_request"])
                    .param(field),
            );
        }
    }
    // Fields of one endpoint are unknown to another.
    let card = &fixture.card_id;
    let hold = &fixture.hold_id;
    for (path, body, field) in [
        (
            format!("/v1/cards/{card}/cashout"),
            json!({"amount": 100}),
            "amount",
        ),
        (
            format!("/v1/cards/{card}/freeze"),
            json!({"cashout": true}),
            "cashout",
        ),
        (
            format!("/v1/cards/{card}/load"),
            json!({"amount": 100, "allow_partial": true}),
            "allow_partial",
        ),
        (
            format!("/v1/holds/{hold}/release"),
            json!({"amount": 100}),
            "amount",
        ),
        (
            format!("/v1/cards/{card}/redeem"),
            json!({"amount": 100, "expires_in_seconds": 60}),
            "expires_in_seconds",
        ),
    ] {
        cases.push(
            Case::post(&fixture, &path, Payload::Json(body))
                .describe(format!("foreign field {field}"))
                .expect(400, &["invalid_request"])
                .param(field),
        );
    }
    run(&fixture, cases).await;
}

#[tokio::test]
async fn missing_required_fields_are_refused_naming_the_field() {
    let fixture = fixture().await;
    let card = &fixture.card_id;
    let mut cases = Vec::new();
    for endpoint in endpoints(&fixture) {
        let Some(object) = endpoint.valid.as_object() else {
            continue;
        };
        let required: &[&str] = match endpoint.path.as_str() {
            "/v1/programs" => &["name", "currency"],
            "/v1/cards" => &["program_id", "kind"],
            "/v1/cards/lookup" => &["number", "security_code"],
            _ if endpoint.amount == AmountField::Required => &["amount"],
            _ => &[],
        };
        for field in required {
            assert!(object.contains_key(*field));
            cases.push(
                Case::post(
                    &fixture,
                    &endpoint.path,
                    Payload::Json(with(&endpoint.valid, field, None)),
                )
                .describe(format!("without {field}"))
                .expect(400, &["invalid_request", "invalid_amount"])
                .param(field),
            );
        }
    }
    for path in [
        format!("/v1/cards/{card}/load"),
        format!("/v1/cards/{card}/redeem"),
        format!("/v1/cards/{card}/holds"),
    ] {
        for (what, payload) in [
            ("an empty object", Payload::Json(json!({}))),
            ("no body", Payload::None),
            ("only a reference", Payload::Json(json!({"reference": "x"}))),
        ] {
            cases.push(
                Case::post(&fixture, &path, payload)
                    .describe(what)
                    .expect(400, &["invalid_request", "invalid_amount"])
                    .param("amount"),
            );
        }
    }
    for (what, payload, param) in [
        ("an empty object", Payload::Json(json!({})), "name"),
        ("no body", Payload::None, "name"),
    ] {
        cases.push(
            Case::post(&fixture, "/v1/programs", payload)
                .describe(what)
                .expect(400, &["invalid_request"])
                .param(param),
        );
    }
    run(&fixture, cases).await;
}

#[tokio::test]
async fn invalid_field_values_are_refused_naming_the_field() {
    let fixture = fixture().await;
    let card = &fixture.card_id;
    let hold = &fixture.hold_id;
    let redemption = &fixture.redemption_id;
    let program = json!({"name": "Bad program", "currency": "USD"});
    let long_reference = "r".repeat(256);
    let mut cases = Vec::new();
    let mut add = |path: &str, body: Value, status: u16, codes: &[&'static str], param: Option<&str>| {
        let mut case = Case::post(&fixture, path, Payload::Json(body.clone()))
            .describe(body)
            .expect(status, codes);
        case.param = param.map(str::to_owned);
        cases.push(case);
    };
    let invalid = &["invalid_request"][..];

    // Programs.
    for (field, value) in [
        ("currency", json!("usd")),
        ("currency", json!("US")),
        ("currency", json!("USDX")),
        ("currency", json!("XQQ")),
        ("currency", json!(840)),
        ("currency", json!(null)),
        ("name", json!("")),
        ("name", json!("   ")),
        ("name", json!("n".repeat(201))),
        ("name", json!(7)),
        ("number_length", json!(12)),
        ("number_length", json!(20)),
        ("number_length", json!(-16)),
        ("number_length", json!("16")),
        ("number_length", json!(4_294_967_312_u64)),
        ("security_code_length", json!(3)),
        ("security_code_length", json!(9)),
        ("expiry_months", json!(0)),
        ("expiry_months", json!(12)),
        ("expiry_months", json!(1_201)),
        ("expiry_months", json!(4_294_967_295_u64)),
        ("expiry_months", json!(4_294_967_296_u64)),
        ("expiry_months", json!(-60)),
        ("number_prefix", json!("12a")),
        ("number_prefix", json!("-1")),
        ("number_prefix", json!("1234567890")),
        ("number_prefix", json!(123)),
        ("promotion_code", json!("")),
        ("promotion_code", json!("has space")),
        ("promotion_code", json!("p".repeat(65))),
        ("reloadable", json!("yes")),
        ("reloadable", json!(1)),
        ("promotional", json!("no")),
        ("denominations", json!([])),
        ("denominations", json!(vec![100; 51])),
    ] {
        add(
            "/v1/programs",
            with(&program, field, Some(value)),
            400,
            invalid_or_amount(field),
            Some(field),
        );
    }
    add(
        "/v1/programs",
        json!({"name": "x", "currency": "USD", "min_load": 500, "max_load": 100}),
        400,
        invalid,
        Some("min_load"),
    );
    add(
        "/v1/programs",
        json!({"name": "x", "currency": "USD", "max_load": 500, "max_balance": 100}),
        400,
        invalid,
        Some("max_load"),
    );
    add(
        "/v1/programs",
        json!({"name": "x", "currency": "USD", "denominations": [500], "max_balance": 100}),
        400,
        invalid,
        Some("denominations"),
    );

    // Cards.
    let new_card = json!({"program_id": fixture.program_id, "kind": "virtual"});
    for (field, value) in [
        ("kind", json!("plastic")),
        ("kind", json!("Virtual")),
        ("kind", json!(1)),
        ("program_id", json!("card_123")),
        ("program_id", json!("")),
        ("program_id", json!(42)),
        ("reference", json!(long_reference)),
        ("reference", json!("line\nbreak")),
        ("reference", json!("nul\u{0}")),
        ("reference", json!(5)),
    ] {
        add(
            "/v1/cards",
            with(&new_card, field, Some(value)),
            400,
            invalid,
            Some(field),
        );
    }
    add(
        "/v1/cards",
        with(&new_card, "program_id", Some(json!(format!("prog_{UNKNOWN}")))),
        404,
        &["not_found"],
        None,
    );
    let import = |number: Value, code: Value| {
        let with_number = with(&new_card, "number", Some(number));
        with(&with_number, "security_code", Some(code))
    };
    for (number, code, param) in [
        (json!("12345"), json!("1234"), "number"),
        (json!("1".repeat(22)), json!("1234"), "number"),
        (json!("12345678901234567a"), json!("1234"), "number"),
        (json!("4111 1111 1111 1111"), json!("1234"), "number"),
        (json!(4_111_111_111_111_111_u64), json!("1234"), "number"),
        (json!("4111111111111111"), json!("12"), "security_code"),
        (json!("4111111111111111"), json!("12 34"), "security_code"),
        (json!("4111111111111111"), json!(1234), "security_code"),
    ] {
        add("/v1/cards", import(number, code), 400, invalid, Some(param));
    }
    add(
        "/v1/cards",
        with(&new_card, "number", Some(json!("4111111111111111"))),
        400,
        invalid,
        Some("security_code"),
    );
    add(
        "/v1/cards",
        with(&new_card, "security_code", Some(json!("1234"))),
        400,
        invalid,
        Some("number"),
    );
    // The number of an existing card cannot be imported again.
    add(
        "/v1/cards",
        import(json!(fixture.card_number), json!("12345678")),
        409,
        &["card_number_taken"],
        Some("number"),
    );

    // Lookup: wrong types are malformed; well-typed but wrong values are an unknown card.
    add(
        "/v1/cards/lookup",
        json!({"number": 4_111_111_111_111_111_u64, "security_code": "1234"}),
        400,
        invalid,
        Some("number"),
    );
    add(
        "/v1/cards/lookup",
        json!({"number": fixture.card_number, "security_code": true}),
        400,
        invalid,
        Some("security_code"),
    );
    add(
        "/v1/cards/lookup",
        json!({"number": "not a number", "security_code": "1234"}),
        404,
        &["invalid_card"],
        None,
    );
    add(
        "/v1/cards/lookup",
        json!({"number": "", "security_code": ""}),
        404,
        &["invalid_card"],
        None,
    );

    // Value-moving endpoints: currency and reference.
    for path in [
        format!("/v1/cards/{card}/load"),
        format!("/v1/cards/{card}/redeem"),
        format!("/v1/cards/{card}/holds"),
    ] {
        for (field, value) in [
            ("currency", json!("usd")),
            ("currency", json!("XQQ")),
            ("currency", json!("")),
            ("currency", json!(840)),
            ("reference", json!(long_reference)),
            ("reference", json!("tab\there")),
            ("reference", json!(["a"])),
        ] {
            add(
                &path,
                with(&json!({"amount": 100}), field, Some(value)),
                400,
                invalid,
                Some(field),
            );
        }
        add(
            &path,
            json!({"amount": 100, "currency": "EUR"}),
            422,
            &["currency_mismatch"],
            Some("currency"),
        );
    }
    add(
        &format!("/v1/cards/{card}/redeem"),
        json!({"amount": 100, "allow_partial": "yes"}),
        400,
        invalid,
        Some("allow_partial"),
    );
    add(
        &format!("/v1/cards/{card}/redeem"),
        json!({"amount": 100, "allow_partial": 1}),
        400,
        invalid,
        Some("allow_partial"),
    );
    for value in [
        json!(0),
        json!(-1),
        json!(604_801),
        json!("600"),
        json!(1.5),
        json!(i64::MAX),
        json!(u64::MAX),
    ] {
        add(
            &format!("/v1/cards/{card}/holds"),
            json!({"amount": 100, "expires_in_seconds": value}),
            400,
            invalid,
            Some("expires_in_seconds"),
        );
    }
    add(
        &format!("/v1/cards/{card}/holds"),
        json!({"amount": 100, "allow_partial": "no"}),
        400,
        invalid,
        Some("allow_partial"),
    );
    add(
        &format!("/v1/cards/{card}/deactivate"),
        json!({"cashout": "true"}),
        400,
        invalid,
        Some("cashout"),
    );
    add(
        &format!("/v1/cards/{card}/deactivate"),
        json!({"cashout": 1}),
        400,
        invalid,
        Some("cashout"),
    );
    add(
        &format!("/v1/cards/{card}/activate"),
        json!({"reference": 5}),
        400,
        invalid,
        Some("reference"),
    );
    add(
        &format!("/v1/cards/{card}/cashout"),
        json!({"reference": long_reference}),
        400,
        invalid,
        Some("reference"),
    );
    add(
        &format!("/v1/holds/{hold}/capture"),
        json!({"reference": false}),
        400,
        invalid,
        Some("reference"),
    );
    add(
        &format!("/v1/transactions/{redemption}/refund"),
        json!({"reference": long_reference}),
        400,
        invalid,
        Some("reference"),
    );
    add(
        &format!("/v1/transactions/{redemption}/void"),
        json!({"reference": {}}),
        400,
        invalid,
        Some("reference"),
    );

    // Business refusals: well-formed requests refused by a rule, with nothing changed.
    add(
        &format!("/v1/cards/{card}/redeem"),
        json!({"amount": 9_000}),
        422,
        &["insufficient_funds"],
        Some("amount"),
    );
    add(
        &format!("/v1/cards/{card}/redeem"),
        json!({"amount": i64::MAX}),
        422,
        &["insufficient_funds"],
        Some("amount"),
    );
    add(
        &format!("/v1/cards/{card}/holds"),
        json!({"amount": i64::MAX}),
        422,
        &["insufficient_funds"],
        Some("amount"),
    );
    add(
        &format!("/v1/transactions/{redemption}/refund"),
        json!({"amount": 501}),
        422,
        &["refund_exceeds_amount"],
        Some("amount"),
    );
    add(
        &format!("/v1/transactions/{redemption}/refund"),
        json!({"amount": i64::MAX}),
        422,
        &["refund_exceeds_amount"],
        Some("amount"),
    );
    for (path, body) in [
        (format!("/v1/holds/{hold}/capture"), json!({"amount": 1_001})),
        (format!("/v1/holds/{hold}/capture"), json!({"amount": i64::MAX})),
        (format!("/v1/cards/{card}/activate"), json!({})),
        (format!("/v1/cards/{card}/unfreeze"), json!({})),
        (format!("/v1/cards/{card}/deactivate"), json!({})),
        (format!("/v1/transactions/{hold}/void"), json!({})),
    ] {
        cases.push(Case::post(&fixture, &path, Payload::Json(body.clone())).describe(body));
    }
    run(&fixture, cases).await;
}

fn invalid_or_amount(field: &str) -> &'static [&'static str] {
    if field == "denominations" {
        &["invalid_request", "invalid_amount"]
    } else {
        &["invalid_request"]
    }
}

#[tokio::test]
async fn bodies_over_64_kib_are_refused_with_413_on_every_post() {
    let fixture = fixture().await;
    // A well-formed JSON object of exactly `size` bytes: {"reference":"rrr…"}.
    let object_of = |size: usize| {
        let overhead = r#"{"reference":""}"#.len();
        format!(r#"{{"reference":"{}"}}"#, "r".repeat(size - overhead)).into_bytes()
    };
    let mut cases = Vec::new();
    for endpoint in endpoints(&fixture) {
        for (what, bytes) in [
            ("one byte over the limit", object_of(MAX_BODY_BYTES + 1)),
            ("100 KiB of JSON", object_of(100 * 1024)),
            ("1 MiB of garbage", vec![b'x'; 1024 * 1024]),
            ("1 MiB of whitespace", vec![b' '; 1024 * 1024]),
        ] {
            cases.push(
                Case::post(&fixture, &endpoint.path, Payload::Raw(bytes))
                    .describe(what)
                    .expect(413, &[]),
            );
        }
        // At the limit the body is read, and refused for what it says instead.
        cases.push(
            Case::post(&fixture, &endpoint.path, Payload::Raw(object_of(MAX_BODY_BYTES)))
                .describe("exactly at the limit")
                .expect(400, &["invalid_request"]),
        );
    }
    run(&fixture, cases).await;
}

/// The paths that take an id, with the prefix their id must have.
fn id_paths() -> Vec<(Method, &'static str, &'static str, Value)> {
    vec![
        (Method::GET, "/v1/programs/{}", "prog_", Value::Null),
        (Method::GET, "/v1/cards/{}", "card_", Value::Null),
        (Method::GET, "/v1/cards/{}/transactions", "card_", Value::Null),
        (
            Method::POST,
            "/v1/cards/{}/activate",
            "card_",
            json!({"amount": 100}),
        ),
        (Method::POST, "/v1/cards/{}/load", "card_", json!({"amount": 100})),
        (
            Method::POST,
            "/v1/cards/{}/redeem",
            "card_",
            json!({"amount": 100}),
        ),
        (Method::POST, "/v1/cards/{}/cashout", "card_", json!({})),
        (Method::POST, "/v1/cards/{}/freeze", "card_", json!({})),
        (Method::POST, "/v1/cards/{}/unfreeze", "card_", json!({})),
        (
            Method::POST,
            "/v1/cards/{}/deactivate",
            "card_",
            json!({"cashout": true}),
        ),
        (
            Method::POST,
            "/v1/cards/{}/holds",
            "card_",
            json!({"amount": 100}),
        ),
        (Method::GET, "/v1/holds/{}", "hold_", Value::Null),
        (
            Method::POST,
            "/v1/holds/{}/capture",
            "hold_",
            json!({"amount": 100}),
        ),
        (Method::POST, "/v1/holds/{}/release", "hold_", json!({})),
        (Method::GET, "/v1/transactions/{}", "txn_", Value::Null),
        (
            Method::POST,
            "/v1/transactions/{}/refund",
            "txn_",
            json!({"amount": 100}),
        ),
        (Method::POST, "/v1/transactions/{}/void", "txn_", json!({})),
    ]
}

fn id_case(fixture: &Fixture, method: &Method, template: &str, id: &str, body: &Value) -> Case {
    let path = template.replace("{}", id);
    let case = if *method == Method::GET {
        Case::get(fixture, &path)
    } else {
        Case::post(fixture, &path, Payload::Json(body.clone()))
    };
    case.describe(format!("id {id:?}"))
}

#[tokio::test]
async fn ids_of_the_wrong_type_or_shape_in_paths_are_404_and_change_nothing() {
    let fixture = fixture().await;
    let real: Vec<(&str, String)> = vec![
        ("prog_", fixture.program_id.clone()),
        ("card_", fixture.card_id.clone()),
        ("hold_", fixture.hold_id.clone()),
        ("txn_", fixture.redemption_id.clone()),
    ];
    let mut cases = Vec::new();
    for (method, template, prefix, body) in id_paths() {
        let mut ids: Vec<String> = vec![
            format!("{prefix}{UNKNOWN}"),
            prefix.to_owned(),
            format!("{prefix}has-dash"),
            format!("{prefix}{}", "a".repeat(65)),
            format!("{}{UNKNOWN}", prefix.to_uppercase()),
            "0".into(),
            "null".into(),
            "usr_abc".into(),
            "chk_abc".into(),
            format!("{prefix}%20abc"),
            format!("{prefix}abc%2Fdef"),
            format!("{prefix}abc%00"),
            "%20".into(),
        ];
        for (other_prefix, id) in &real {
            if *other_prefix != prefix {
                // A real id of another type, as it is and with this route's prefix put in front.
                ids.push(id.clone());
                ids.push(format!("{prefix}{}", id.trim_start_matches(other_prefix)));
            }
        }
        for id in ids {
            cases.push(id_case(&fixture, &method, template, &id, &body).expect(404, &["not_found"]));
        }
    }
    run(&fixture, cases).await;
}

#[tokio::test]
async fn undecodable_ids_in_paths_get_a_json_error_not_a_plain_text_one() {
    let fixture = fixture().await;
    let mut cases = Vec::new();
    for (method, template, prefix, body) in id_paths() {
        for id in [
            format!("{prefix}%FF"),
            "%C3%28".to_owned(),
            format!("{prefix}%E2%82"),
        ] {
            cases.push(id_case(&fixture, &method, template, &id, &body));
        }
    }
    run(&fixture, cases).await;
}

#[tokio::test]
async fn bad_paging_and_filter_parameters_are_refused_naming_the_parameter() {
    let fixture = fixture().await;
    let card = &fixture.card_id;
    let lists = [
        "/v1/programs".to_owned(),
        "/v1/cards".to_owned(),
        format!("/v1/cards/{card}/transactions"),
    ];
    let long_cursor = "a".repeat(101);
    let bad: Vec<(String, &str)> = vec![
        ("limit=0".into(), "limit"),
        ("limit=101".into(), "limit"),
        ("limit=abc".into(), "limit"),
        ("limit=-1".into(), "limit"),
        ("limit=1.5".into(), "limit"),
        ("limit=".into(), "limit"),
        ("limit=%20".into(), "limit"),
        ("limit=1e1".into(), "limit"),
        ("limit=99999999999999999999".into(), "limit"),
        ("limit=4294967297".into(), "limit"),
        ("cursor=".into(), "cursor"),
        ("cursor=not!valid".into(), "cursor"),
        ("cursor=has%20space".into(), "cursor"),
        ("cursor=%00".into(), "cursor"),
        ("cursor=%FF".into(), "cursor"),
        (format!("cursor={long_cursor}"), "cursor"),
        ("limit=10&cursor=a-b".into(), "cursor"),
        ("foo=1".into(), "foo"),
        ("Limit=5".into(), "Limit"),
    ];
    let mut cases = Vec::new();
    for list in &lists {
        for (query, param) in &bad {
            cases.push(
                Case::get(&fixture, &format!("{list}?{query}"))
                    .expect(400, &["invalid_request"])
                    .param(param),
            );
        }
        // Well-formed cursors that point nowhere may give an empty page, never a 5xx.
        for cursor in [
            format!("card_{UNKNOWN}"),
            format!("txn_{UNKNOWN}"),
            "zzzz".into(),
            "0".into(),
        ] {
            let mut case = Case::get(&fixture, &format!("{list}?cursor={cursor}"));
            case.status = Status::NotServerError;
            cases.push(case);
        }
    }
    for (query, param) in [
        ("state=bogus", "state"),
        ("state=ACTIVE", "state"),
        ("state=", "state"),
        ("program_id=card_abc", "program_id"),
        ("program_id=", "program_id"),
    ] {
        cases.push(
            Case::get(&fixture, &format!("/v1/cards?{query}"))
                .expect(400, &["invalid_request"])
                .param(param),
        );
    }
    run(&fixture, cases).await;

    // And the bounds themselves are accepted.
    for list in &lists {
        for query in ["limit=1", "limit=100", ""] {
            let response = fixture.app.get(&format!("{list}?{query}")).await;
            response.assert_status(200);
            assert!(
                response.body["data"].is_array(),
                "{list}?{query}: {}",
                response.text
            );
        }
    }
}

/// Every route the contract names, with a body that would be accepted were the caller known.
fn all_routes(fixture: &Fixture) -> Vec<(Method, String, Value)> {
    let mut routes: Vec<(Method, String, Value)> = endpoints(fixture)
        .into_iter()
        .map(|endpoint| (Method::POST, endpoint.path, endpoint.valid))
        .collect();
    for path in [
        "/v1/programs".to_owned(),
        format!("/v1/programs/{}", fixture.program_id),
        "/v1/cards".to_owned(),
        format!("/v1/cards/{}", fixture.card_id),
        format!("/v1/cards/{}/transactions", fixture.card_id),
        format!("/v1/holds/{}", fixture.hold_id),
        format!("/v1/transactions/{}", fixture.redemption_id),
    ] {
        routes.push((Method::GET, path, Value::Null));
    }
    routes
}

#[tokio::test]
async fn missing_or_wrong_api_keys_are_401_with_an_error_body_on_every_route() {
    let fixture = fixture().await;
    let key = fixture.app.api_key.clone();
    let authorizations: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("an empty header", Some(String::new())),
        ("Bearer and nothing", Some("Bearer ".into())),
        ("Bearer and spaces", Some("Bearer    ".into())),
        (
            "an unknown key",
            Some("Bearer gk_0000000000000000000000000000000000000000000000".into()),
        ),
        ("the key with a character more", Some(format!("Bearer {key}x"))),
        (
            "the key with its last character dropped",
            Some(format!("Bearer {}", &key[..key.len() - 1])),
        ),
        (
            "the key upper-cased",
            Some(format!("Bearer {}", key.to_uppercase())),
        ),
        ("the key without a scheme", Some(key.clone())),
        ("the key as Basic", Some(format!("Basic {key}"))),
        ("the key as Token", Some(format!("Token {key}"))),
        ("two keys", Some(format!("Bearer {key} {key}"))),
    ];
    let mut cases = Vec::new();
    for (method, path, body) in all_routes(&fixture) {
        for (what, authorization) in &authorizations {
            let mut case = if method == Method::GET {
                Case::get(&fixture, &path)
            } else {
                Case::post(&fixture, &path, Payload::Json(body.clone()))
            }
            .describe(what)
            .expect(401, &[]);
            case.authorization = authorization.clone();
            cases.push(case);
        }
    }
    run(&fixture, cases).await;
}

#[tokio::test]
async fn another_merchants_objects_are_404_as_if_they_did_not_exist() {
    let fixture = fixture().await;
    let other_key = fixture.app.another_merchant().await;
    let mut cases = Vec::new();
    for (method, path, body) in all_routes(&fixture) {
        let expected: (u16, &[&'static str]) = match path.as_str() {
            // Lists are the other merchant's own (empty) lists.
            "/v1/programs" | "/v1/cards" if method == Method::GET => continue,
            // Creating a program, a webhook endpoint, an API key or a staff account, or signing
            // in, is not about this merchant's objects; no key has an account of its own.
            "/v1/programs" | "/v1/webhook_endpoints" | "/v1/api_keys" | "/v1/staff" | "/v1/sessions" => {
                continue;
            }
            _ if path.starts_with("/v1/staff/me") || path.starts_with("/v1/adjustments/") => continue,
            "/v1/cards/lookup" => (404, &["invalid_card"]),
            _ => (404, &["not_found"]),
        };
        let mut case = if method == Method::GET {
            Case::get(&fixture, &path)
        } else {
            Case::post(&fixture, &path, Payload::Json(body))
        }
        .describe("another merchant's key")
        .expect(expected.0, expected.1);
        case.authorization = Some(format!("Bearer {other_key}"));
        cases.push(case);
    }
    run(&fixture, cases).await;

    // Their lists do not show this merchant's objects.
    for path in ["/v1/programs", "/v1/cards"] {
        let list = fixture.app.get_as(path, &other_key).await;
        list.assert_status(200);
        assert_eq!(list.body["data"], json!([]), "{path} leaks: {}", list.text);
    }
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_are_405_with_json_error_bodies() {
    let fixture = fixture().await;
    let card = &fixture.card_id;
    let hold = &fixture.hold_id;
    let redemption = &fixture.redemption_id;
    let mut cases = Vec::new();
    for (method, path) in [
        (Method::GET, "/".to_owned()),
        (Method::GET, "/v1".to_owned()),
        (Method::GET, "/v1/nope".to_owned()),
        (Method::GET, "/v2/cards".to_owned()),
        (Method::GET, "/v1/cards/".to_owned()),
        (Method::GET, "/V1/cards".to_owned()),
        (Method::POST, format!("/v1/cards/{card}/explode")),
        (Method::POST, format!("/v1/cards/{card}/load/again")),
        (Method::GET, "/v1/holds".to_owned()),
        (Method::GET, "/v1/transactions".to_owned()),
        (Method::POST, "/v1/transactions".to_owned()),
        (Method::GET, "/openapi.yaml".to_owned()),
        (Method::GET, format!("/v1/cards/{card}/holds/{hold}")),
    ] {
        let case = if method == Method::GET {
            Case::get(&fixture, &path)
        } else {
            Case::post(&fixture, &path, Payload::Json(json!({"amount": 100})))
        };
        cases.push(case.expect(404, &[]));
    }
    for (method, path) in [
        (Method::DELETE, format!("/v1/cards/{card}")),
        (Method::PUT, format!("/v1/cards/{card}")),
        (Method::PATCH, format!("/v1/cards/{card}")),
        (Method::POST, format!("/v1/cards/{card}")),
        (Method::PUT, "/v1/programs".to_owned()),
        (Method::DELETE, "/v1/cards".to_owned()),
        (Method::GET, format!("/v1/cards/{card}/load")),
        (Method::PUT, format!("/v1/cards/{card}/redeem")),
        (Method::DELETE, format!("/v1/holds/{hold}")),
        (Method::GET, format!("/v1/holds/{hold}/capture")),
        (Method::GET, format!("/v1/transactions/{redemption}/refund")),
        (Method::DELETE, format!("/v1/transactions/{redemption}")),
        (Method::POST, "/healthz".to_owned()),
        (Method::POST, "/readyz".to_owned()),
        (Method::POST, "/openapi.json".to_owned()),
    ] {
        let mut case = Case::post(&fixture, &path, Payload::Json(json!({"amount": 100})));
        case.what = format!("{method} {path}");
        case.method = method;
        cases.push(case.expect(405, &[]));
    }
    run(&fixture, cases).await;
}

// ---- sums that overflow i64 ----

async fn card_balance(app: &TestApp, card_id: &str) -> i64 {
    let card = app.get(&format!("/v1/cards/{card_id}")).await;
    card.assert_status(200);
    card.body["balance"].as_i64().expect("a balance")
}

/// A USD program that lifts the default ceilings as far as 64 bits go, for cards near i64::MAX.
async fn unbounded_program(app: &TestApp) -> String {
    app.program(
        json!({"name": "Unbounded", "currency": "USD", "max_load": i64::MAX, "max_balance": i64::MAX}),
    )
    .await
}

/// A card of `amount` on an [`unbounded_program`].
async fn unbounded_card(app: &TestApp, amount: i64) -> String {
    let program_id = unbounded_program(app).await;
    text(&app.card(&program_id, amount).await["id"])
}

#[tokio::test]
async fn value_above_the_default_ceiling_is_refused_naming_the_units_unless_the_program_raises_it() {
    let app = TestApp::spawn().await;
    let program_id = app.usd_program().await;
    let ceiling = giftd_domain::program::DEFAULT_MAX_LOAD;
    // $1,000,000.00 typed as minor units a hundred times over: refused, nothing issued.
    let issued = app
        .post(
            "/v1/cards",
            json!({"program_id": program_id, "kind": "virtual", "amount": 100 * ceiling}),
        )
        .await;
    issued.assert_error(422, "limit_exceeded");
    assert!(issued.text.contains("minor units"), "{}", issued.text);
    let card_id = text(&app.card(&program_id, ceiling).await["id"]);
    let load = format!("/v1/cards/{card_id}/load");
    app.post(&load, json!({"amount": 1}))
        .await
        .assert_error(422, "limit_exceeded");
    assert_eq!(card_balance(&app, &card_id).await, ceiling);
    // A program that lifts its ceilings takes more.
    let raised = unbounded_program(&app).await;
    app.post(
        "/v1/cards",
        json!({"program_id": raised, "kind": "virtual", "amount": 100 * ceiling}),
    )
    .await
    .assert_status(201);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn loading_past_i64_max_onto_a_card_with_a_balance_is_limit_exceeded_not_500() {
    let app = TestApp::spawn().await;
    let card_id = unbounded_card(&app, 100).await;
    let load = format!("/v1/cards/{card_id}/load");

    for amount in [i64::MAX, i64::MAX - 99] {
        app.post(&load, json!({"amount": amount}))
            .await
            .assert_error(422, "limit_exceeded");
        assert_eq!(card_balance(&app, &card_id).await, 100);
    }
    // Exactly up to i64::MAX fits; one more does not.
    app.post(&load, json!({"amount": i64::MAX - 100}))
        .await
        .assert_status(200);
    assert_eq!(card_balance(&app, &card_id).await, i64::MAX);
    app.post(&load, json!({"amount": 1}))
        .await
        .assert_error(422, "limit_exceeded");
    assert_eq!(card_balance(&app, &card_id).await, i64::MAX);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn refund_and_void_that_would_push_a_balance_past_i64_max_are_refused_not_500() {
    let app = TestApp::spawn().await;
    let card_id = unbounded_card(&app, 100).await;
    let redemption = app
        .post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 50}))
        .await;
    redemption.assert_status(200);
    let redemption_id = text(&redemption.body["id"]);
    app.post(
        &format!("/v1/cards/{card_id}/load"),
        json!({"amount": i64::MAX - 50}),
    )
    .await
    .assert_status(200);
    assert_eq!(card_balance(&app, &card_id).await, i64::MAX);
    let before = app.verify().await;

    let refund = app
        .post(&format!("/v1/transactions/{redemption_id}/refund"), json!({}))
        .await;
    refund.assert_error(422, "limit_exceeded");
    let void = app
        .post(&format!("/v1/transactions/{redemption_id}/void"), json!({}))
        .await;
    assert!(
        void.status.is_client_error(),
        "void: {} {}",
        void.status,
        void.text
    );
    assert!(
        ["limit_exceeded", "not_reversible"].contains(&void.code()),
        "void: {}",
        void.text
    );

    assert_eq!(card_balance(&app, &card_id).await, i64::MAX);
    let after = app.verify().await;
    TestApp::assert_sound(&after);
    assert_eq!(after.transactions, before.transactions);
}

#[tokio::test]
async fn a_card_issued_at_i64_max_refuses_more_value_and_stays_verifiable_through_a_hold() {
    let app = TestApp::spawn().await;
    let program_id = unbounded_program(&app).await;
    let full = app.card(&program_id, i64::MAX).await;
    let full_id = text(&full["id"]);
    assert_eq!(full["balance"], i64::MAX);
    for amount in [1, i64::MAX] {
        app.post(&format!("/v1/cards/{full_id}/load"), json!({"amount": amount}))
            .await
            .assert_error(422, "limit_exceeded");
    }
    // Holds on a full card move value between its accounts; the sums must still fit.
    let hold = app
        .post(&format!("/v1/cards/{full_id}/holds"), json!({"amount": 10}))
        .await;
    hold.assert_status(201);
    app.post(
        &format!("/v1/holds/{}/capture", text(&hold.body["id"])),
        json!({"amount": 4}),
    )
    .await
    .assert_status(200);
    assert_eq!(card_balance(&app, &full_id).await, i64::MAX - 4);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn two_cards_holding_near_i64_max_each_keep_the_ledger_verifiable() {
    // Each card fits in i64; their sum does not. Verification must still run and report.
    let app = TestApp::spawn().await;
    let program_id = unbounded_program(&app).await;
    app.card(&program_id, i64::MAX).await;
    app.card(&program_id, i64::MAX).await;
    let report = app
        .service
        .verify()
        .await
        .expect("verify runs on a ledger whose total exceeds i64");
    TestApp::assert_sound(&report);
    assert_eq!(report.cards, 2);
}

// ---- one text rule on every front-end ----

/// Characters no text field of any front-end takes: NUL, another C0 control, a line break,
/// DEL, a C1 control, and a right-to-left override.
const REFUSED_TEXT: [char; 6] = ['\0', '\u{1}', '\n', '\u{7f}', '\u{9b}', '\u{202e}'];
/// Escapes no JSON string may hold: an unknown one, a lone surrogate, a cut-short one.
const INVALID_ESCAPES: [&str; 3] = [r"a\qb", r"\ud800", r"\u12"];

fn fixture_body(path: &str) -> Value {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()))
}

/// The JSON pointers of every string in `value`.
fn string_leaves(value: &Value, pointer: String, leaves: &mut Vec<String>) {
    match value {
        Value::String(_) => leaves.push(pointer),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                string_leaves(item, format!("{pointer}/{i}"), leaves);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                string_leaves(
                    item,
                    format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1")),
                    leaves,
                );
            }
        }
        _ => {}
    }
}

/// A front-end's request that a text rule must refuse: where it goes, its key header and a
/// body of the front-end's own shape.
struct TextCase {
    path: String,
    auth: (&'static str, String),
    body: Value,
}

/// Whether the answer refuses the request in its front-end's shape without echoing `refused`.
fn judge_text_refusal(path: &str, refused: char, response: &TestResponse) -> Result<(), String> {
    let text = &response.text;
    let escaped = format!("\\u{:04x}", u32::from(refused));
    if text.contains(refused) || text.to_lowercase().contains(&escaped) {
        return Err(format!("the answer echoes U+{:04X}", u32::from(refused)));
    }
    let status = response.status.as_u16();
    if path == "/sync" {
        // The Terminal API answers in-band: MessageFormat, or a Reject event when the header
        // itself is what holds the character.
        if status == 200 && (text.contains("MessageFormat") || text.contains("\"Reject\"")) {
            return Ok(());
        }
        return Err("expected 200 with MessageFormat or a Reject event".into());
    }
    if (400..500).contains(&status) {
        Ok(())
    } else {
        Err("expected a 4xx".into())
    }
}

#[tokio::test]
async fn control_and_bidirectional_characters_and_overlong_text_in_any_field_of_any_front_end_are_refused_without_an_echo()
 {
    let fixture = fixture().await;
    let app = &fixture.app;
    let key = app.api_key.clone();
    let bearer = ("authorization", format!("Bearer {key}"));
    let mut cases: Vec<TextCase> = endpoints(&fixture)
        .into_iter()
        .map(|endpoint| TextCase {
            auth: (
                "authorization",
                format!("Bearer {}", fixture.credential(&endpoint.path)),
            ),
            path: endpoint.path,
            body: with(&endpoint.valid, "reference", Some(json!("ref-1"))),
        })
        .collect();
    cases.push(TextCase {
        path: "/v1/webhook_endpoints".into(),
        auth: bearer.clone(),
        body: json!({"url": "https://example.com/hook", "event_types": ["transaction.redeemed"]}),
    });
    cases.push(TextCase {
        path: "/giftcard/v1/virtual/issue".into(),
        auth: bearer.clone(),
        body: json!({"programId": fixture.program_id, "amount": 100}),
    });
    cases.push(TextCase {
        path: "/gr4vy/transactions".into(),
        auth: bearer.clone(),
        body: fixture_body("gr4vy/transaction.request.json"),
    });
    for (name, path) in [
        ("token", "/clover/v1/tokens"),
        ("charge_sufficient", "/clover/v1/charges"),
        ("balance_inquiry", "/clover/v1/balance_inquiry"),
    ] {
        cases.push(TextCase {
            path: path.into(),
            auth: ("apikey", key.clone()),
            body: fixture_body(&format!("clover/{name}.request.json")),
        });
    }
    for (name, operation) in [
        ("issue", "issue"),
        ("load", "load"),
        ("check_balance", "checkBalance"),
        ("change_status", "changeStatus"),
        ("merge_balance", "mergeBalance"),
        ("void_transaction", "voidTransaction"),
    ] {
        cases.push(TextCase {
            path: format!("/pal/servlet/StoredValue/v46/{operation}"),
            auth: ("x-api-key", key.clone()),
            body: fixture_body(&format!("adyen/stored_value/{name}.request.json")),
        });
    }
    for name in ["balance_inquiry", "load", "payment", "refund", "reversal"] {
        cases.push(TextCase {
            path: "/sync".into(),
            auth: ("x-api-key", key.clone()),
            body: fixture_body(&format!("adyen/terminal/{name}.request.json")),
        });
    }

    let before = world(&fixture).await;
    let mut failures = Vec::new();
    let mut sent = 0;
    for case in &cases {
        let mut leaves = Vec::new();
        string_leaves(&case.body, String::new(), &mut leaves);
        assert!(!leaves.is_empty(), "{} has text fields", case.path);
        // The body with the text at `leaf` replaced, sent raw (it may not be JSON).
        let send = |leaf: &str, text: &str| {
            let mut body = case.body.clone();
            *body.pointer_mut(leaf).expect("the leaf is there") = Value::String("@@text@@".into());
            let raw = body.to_string().replace("\"@@text@@\"", text);
            app.send(
                app.client
                    .post(app.url(&case.path))
                    .header(case.auth.0, &case.auth.1)
                    .header("content-type", "application/json")
                    .body(raw),
            )
        };
        let mut fail = |what: String, response: &TestResponse| {
            let mut text = response.text.clone();
            text.truncate(200);
            failures.push(format!(
                "POST {} {what}: got {} {text}",
                case.path,
                response.status.as_u16()
            ));
        };
        for leaf in &leaves {
            let original = case.body.pointer(leaf).and_then(Value::as_str).expect("a string");
            for refused in REFUSED_TEXT {
                let text = Value::String(format!("{original}{refused}x")).to_string();
                let response = send(leaf, &text).await;
                sent += 1;
                if let Err(why) = judge_text_refusal(&case.path, refused, &response) {
                    fail(format!("{leaf} + U+{:04X}: {why}", u32::from(refused)), &response);
                }
            }
            // One character past the longest text: refused the same way, and not echoed.
            let overlong = "z".repeat(giftd_api::text::MAX_TEXT_CHARS + 1);
            let response = send(leaf, &format!("\"{overlong}\"")).await;
            sent += 1;
            let echoed = response.text.contains(&overlong);
            if echoed || judge_text_refusal(&case.path, '\0', &response).is_err() {
                fail(format!("{leaf} overlong (echoed: {echoed})"), &response);
            }
            // Escapes JSON does not have, or that stand for no character: the body is not
            // JSON, and is refused as such.
            for invalid in INVALID_ESCAPES {
                let response = send(leaf, &format!("\"{invalid}\"")).await;
                sent += 1;
                if judge_text_refusal(&case.path, '\0', &response).is_err() {
                    fail(format!("{leaf} with {invalid}"), &response);
                }
            }
        }
    }
    // In a path or a query, percent-encoded.
    for (path, auth) in [
        (format!("/v1/cards/{}%00", fixture.card_id), bearer.clone()),
        ("/v1/cards?reference=a%0Ab".to_owned(), bearer.clone()),
        ("/giftcard/v1/giftcards?userId=a%00b".to_owned(), bearer.clone()),
        (
            "/gr4vy/gift-cards?external_identifier=%E2%80%AE".to_owned(),
            bearer.clone(),
        ),
    ] {
        let response = app
            .send(app.client.get(app.url(&path)).header(auth.0, &auth.1))
            .await;
        sent += 1;
        if let Err(why) = judge_text_refusal(&path, '\0', &response) {
            failures.push(format!(
                "GET {path}: {why}; got {} {}",
                response.status.as_u16(),
                response.text
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(world(&fixture).await, before, "nothing changed");
}

#[tokio::test]
async fn reports_sum_cards_holding_near_i64_max_exactly_instead_of_failing_or_wrapping() {
    // Each card fits in i64; their sum does not (it does fit u64, which JSON readers take).
    let app = TestApp::spawn().await;
    let program_id = unbounded_program(&app).await;
    app.card(&program_id, i64::MAX).await;
    app.card(&program_id, i64::MAX).await;
    let both = 2 * u64::try_from(i64::MAX).unwrap();

    let liability = app.get("/v1/reports/liability").await;
    liability.assert_status(200);
    assert_eq!(
        liability.body["data"][0]["liability"].as_u64(),
        Some(both),
        "{}",
        liability.text
    );
    assert_eq!(
        liability.body["totals"][0]["liability"].as_u64(),
        Some(both),
        "{}",
        liability.text
    );

    let today = giftd_domain::Date::of(app.service.now());
    let activity = app
        .get(&format!("/v1/reports/activity?from={today}&to={today}"))
        .await;
    activity.assert_status(200);
    let issued = activity.body["data"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|line| line["type"] == "issue")
        .unwrap_or_else(|| panic!("an issue line in {}", activity.text));
    assert_eq!(
        (issued["count"].as_i64(), issued["amount"].as_u64()),
        (Some(2), Some(both))
    );

    // Nothing is dormant yet, but the query sums the same huge postings.
    let dormant = app
        .get(&format!("/v1/reports/dormant?as_of={today}&months=1"))
        .await;
    dormant.assert_status(200);
}

#[tokio::test]
async fn a_json_key_given_twice_is_refused_on_every_front_end() {
    let fixture = fixture().await;
    let app = &fixture.app;
    let key = app.api_key.clone();
    let bearer = ("authorization", format!("Bearer {key}"));
    let card = &fixture.card_id;
    let terminal = fixture_body("adyen/terminal/balance_inquiry.request.json").to_string();
    let cases: Vec<(String, (&str, String), String)> = vec![
        (
            format!("/v1/cards/{card}/redeem"),
            bearer.clone(),
            r#"{"amount": 100, "amount": 900}"#.into(),
        ),
        (
            "/giftcard/v1/virtual/issue".into(),
            bearer.clone(),
            format!(
                r#"{{"programId": "{0}", "amount": 100, "amount": 200}}"#,
                fixture.program_id
            ),
        ),
        (
            "/gr4vy/transactions".into(),
            bearer.clone(),
            r#"{"amount": 100, "amount": 200, "currency": "USD"}"#.into(),
        ),
        (
            "/clover/v1/charges".into(),
            ("apikey", key.clone()),
            r#"{"amount": 100, "amount": 200}"#.into(),
        ),
        (
            "/pal/servlet/StoredValue/v46/checkBalance".into(),
            ("x-api-key", key.clone()),
            r#"{"merchantAccount": "A", "merchantAccount": "B"}"#.into(),
        ),
        (
            "/sync".into(),
            ("x-api-key", key.clone()),
            terminal.replacen('{', r#"{"SaleToPOIRequest": null, "#, 1),
        ),
    ];
    let before = world(&fixture).await;
    let mut failures = Vec::new();
    for (path, auth, body) in &cases {
        let response = app
            .send(
                app.client
                    .post(app.url(path))
                    .header(auth.0, &auth.1)
                    .header("content-type", "application/json")
                    .body(body.clone()),
            )
            .await;
        if let Err(why) = judge_text_refusal(path, '\0', &response) {
            failures.push(format!(
                "POST {path}: {why}; got {} {}",
                response.status.as_u16(),
                response.text
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(world(&fixture).await, before, "nothing changed");
}

// ---- which POST routes the table above covers ----

/// A path of the table with the fixture's ids written `{}`.
fn template_of(fixture: &Fixture, path: &str) -> String {
    [
        &fixture.card_id,
        &fixture.hold_id,
        &fixture.redemption_id,
        &fixture.user_id,
        &fixture.checkout_id,
        &fixture.delivery_id,
        &fixture.api_key_id,
        &fixture.adjustment_id,
        &fixture.session_id,
    ]
    .iter()
    .fold(path.to_owned(), |path, id| path.replace(id.as_str(), "{}"))
}

#[tokio::test]
async fn every_native_post_route_is_in_the_bad_input_table() {
    let fixture = fixture().await;
    let document = fixture.app.get("/openapi.json").await;
    document.assert_status(200);
    let mut documented: Vec<String> = document.body["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(_, item)| item.get("post").is_some())
        .map(|(path, _)| {
            let mut template = String::new();
            let mut in_parameter = false;
            for c in path.chars() {
                match c {
                    '{' => in_parameter = true,
                    '}' => {
                        in_parameter = false;
                        template.push_str("{}");
                    }
                    _ if !in_parameter => template.push(c),
                    _ => {}
                }
            }
            template
        })
        .collect();
    documented.sort();
    let covered: Vec<String> = endpoints(&fixture)
        .iter()
        .map(|e| template_of(&fixture, &e.path))
        .collect();
    // Takes the import file itself (text/csv, up to 2 MiB), not JSON: its bad input is
    // card_stock.rs's.
    let not_json = ["/v1/card_batches/import".to_owned()];
    let missing: Vec<&String> = documented
        .iter()
        .filter(|t| !covered.contains(t) && !not_json.contains(t))
        .collect();
    assert!(
        missing.is_empty(),
        "POST routes the malformed-JSON, unknown-field and over-64-KiB tests do not send to: {missing:?}"
    );
}
