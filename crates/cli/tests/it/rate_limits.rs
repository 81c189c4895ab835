//! Abuse protection at the edge: the rate limits on card lookups, staff sign-ins and
//! security-code checks (per API key, per client address, each front-end answering 429 with
//! `Retry-After` in its own shape), and the configurable body and header size limits.
//!
//! Client addresses are told apart by binding the client to different loopback addresses
//! (127.0.0.2, 127.0.0.3, ...), which Linux routes to the server on 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use giftd_api::{ApiConfig, Limits, RateLimits};
use giftd_testkit::{TestApp, TestResponse};
use serde_json::{Value, json};

fn config(per_key: u32, per_address: u32) -> ApiConfig {
    ApiConfig {
        rate_limits: RateLimits {
            per_key,
            per_address,
            period: Duration::from_secs(1),
            client_address_header: None,
        },
        ..ApiConfig::default()
    }
}

/// A client whose connections come from `127.0.0.<last>`.
fn client_from(last: u8) -> reqwest::Client {
    giftd_testkit::http_client_builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()
        .expect("a client")
}

async fn lookup(app: &TestApp, client: &reqwest::Client, api_key: &str, card: &Value) -> TestResponse {
    app.send(
        client
            .post(app.url("/v1/cards/lookup"))
            .bearer_auth(api_key)
            .json(&json!({"number": card["number"], "security_code": card["security_code"]})),
    )
    .await
}

#[track_caller]
fn assert_rate_limited(response: &TestResponse) -> u64 {
    assert_eq!(
        response.status.as_u16(),
        429,
        "expected 429; body: {}",
        response.text
    );
    let retry_after = response
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("a Retry-After in whole seconds: {:?}", response.headers));
    assert!(
        (1..=1).contains(&retry_after),
        "Retry-After {retry_after} for a 1 s period"
    );
    retry_after
}

#[tokio::test]
async fn lookups_past_the_per_key_limit_are_429_with_retry_after_and_pass_again_after_the_period() {
    let app = TestApp::spawn_with(config(3, 0)).await;
    let card = app.funded_card(1000).await;
    let client = client_from(1);
    for _ in 0..3 {
        lookup(&app, &client, &app.api_key, &card)
            .await
            .assert_status(200);
    }
    let refused = lookup(&app, &client, &app.api_key, &card).await;
    let retry_after = assert_rate_limited(&refused);
    assert_eq!(refused.code(), "rate_limited", "{}", refused.text);

    // Another key is counted on its own.
    let other_key = app.another_merchant().await;
    lookup(&app, &client, &other_key, &card)
        .await
        .assert_error(404, "invalid_card");

    // Reads that present no security code are not counted.
    let card_id = card["id"].as_str().expect("card id");
    app.get(&format!("/v1/cards/{card_id}")).await.assert_status(200);

    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(50)).await;
    let again = lookup(&app, &client, &app.api_key, &card).await;
    again.assert_status(200);
    assert_eq!(again.body["id"], card["id"]);
}

#[tokio::test]
async fn the_per_address_limit_is_separate_from_the_per_key_limit() {
    let app = TestApp::spawn_with(config(100, 2)).await;
    let card = app.funded_card(1000).await;
    let other_key = app.another_merchant().await;
    let first_address = client_from(2);
    let second_address = client_from(3);

    lookup(&app, &first_address, &app.api_key, &card)
        .await
        .assert_status(200);
    lookup(&app, &first_address, &app.api_key, &card)
        .await
        .assert_status(200);
    // The address is spent, whichever key it presents.
    let refused = lookup(&app, &first_address, &other_key, &card).await;
    assert_rate_limited(&refused);
    assert_eq!(refused.code(), "rate_limited");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("client address")
    );

    // The same key from another address still has allowance left.
    lookup(&app, &second_address, &app.api_key, &card)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn a_spent_key_is_refused_from_every_address() {
    let app = TestApp::spawn_with(config(2, 100)).await;
    let card = app.funded_card(1000).await;
    lookup(&app, &client_from(4), &app.api_key, &card)
        .await
        .assert_status(200);
    lookup(&app, &client_from(5), &app.api_key, &card)
        .await
        .assert_status(200);
    let refused = lookup(&app, &client_from(6), &app.api_key, &card).await;
    assert_rate_limited(&refused);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("API key")
    );
}

/// Sends `body` to `path` twice with a key of its own (limit: one per key) and returns the
/// second answer.
async fn second_of_two(app: &TestApp, path: &str, headers: &[(&str, &str)], body: Value) -> TestResponse {
    let mut last = None;
    for _ in 0..2 {
        let mut request = app.client.post(app.url(path)).json(&body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        last = Some(app.send(request).await);
    }
    last.expect("two answers")
}

#[tokio::test]
async fn each_front_end_answers_429_in_its_own_error_shape() {
    let app = TestApp::spawn_with(config(1, 0)).await;
    let number = "6036000011112222";

    let key = app.another_merchant().await;
    let bearer = format!("Bearer {key}");
    let wallet = second_of_two(
        &app,
        "/giftcard/v1/balanceInquiry",
        &[("authorization", &bearer)],
        json!({"cardNumber": number, "passcode": "12345678"}),
    )
    .await;
    assert_rate_limited(&wallet);
    assert_eq!(wallet.body["status"], "FAILED", "{}", wallet.text);
    assert_eq!(wallet.body["errorCode"], "rate_limited", "{}", wallet.text);

    let key = app.another_merchant().await;
    let clover = second_of_two(
        &app,
        "/clover/v1/tokens",
        &[("apikey", &key)],
        json!({"gift_card": {"number": number, "security_code": "12345678"}}),
    )
    .await;
    assert_rate_limited(&clover);
    assert_eq!(
        clover.body["error"]["type"], "rate_limit_error",
        "{}",
        clover.text
    );
    assert_eq!(clover.body["error"]["code"], "rate_limit", "{}", clover.text);

    let key = app.another_merchant().await;
    let stored_value = second_of_two(
        &app,
        "/pal/servlet/StoredValue/v46/checkBalance",
        &[("x-api-key", &key)],
        json!({"merchantAccount": "Shop", "paymentMethod": {"type": "givex", "number": number, "securityCode": "1234"}}),
    )
    .await;
    assert_rate_limited(&stored_value);
    assert_eq!(stored_value.body["status"], 429, "{}", stored_value.text);
    assert_eq!(
        stored_value.body["errorType"], "security",
        "{}",
        stored_value.text
    );

    let key = app.another_merchant().await;
    let terminal = second_of_two(
        &app,
        "/sync",
        &[("x-api-key", &key)],
        json!({"SaleToPOIRequest": {"BalanceInquiryRequest": {"PaymentAccountReq": {"PaymentInstrumentData": {
            "StoredValueAccountID": {"StoredValueID": number, "SecurityCode": "1234"}}}}}}),
    )
    .await;
    assert_rate_limited(&terminal);
    assert_eq!(terminal.body["status"], 429, "{}", terminal.text);
    assert_eq!(terminal.body["errorType"], "security", "{}", terminal.text);

    let key = app.another_merchant().await;
    let bearer = format!("Bearer {key}");
    let gr4vy = second_of_two(
        &app,
        "/gr4vy/gift-cards/balances",
        &[("authorization", &bearer)],
        json!({"items": [{"number": number, "pin": "12345678"}]}),
    )
    .await;
    assert_rate_limited(&gr4vy);
    assert_eq!(gr4vy.body["type"], "error", "{}", gr4vy.text);
    assert_eq!(gr4vy.body["code"], "too_many_requests", "{}", gr4vy.text);
    assert_eq!(gr4vy.body["status"], 429, "{}", gr4vy.text);

    // A native checkout that names a card by number and security code counts too.
    let key = app.another_merchant().await;
    let bearer = format!("Bearer {key}");
    let checkout = second_of_two(
        &app,
        "/v1/checkouts",
        &[("authorization", &bearer)],
        json!({"amount": 100, "currency": "USD", "intent": "capture",
               "gift_cards": [{"number": number, "security_code": "12345678", "amount": 100}]}),
    )
    .await;
    assert_rate_limited(&checkout);
    assert_eq!(checkout.code(), "rate_limited", "{}", checkout.text);
}

#[tokio::test]
async fn facade_requests_without_a_security_code_are_not_counted() {
    let app = TestApp::spawn_with(config(1, 0)).await;
    let card = app.funded_card(1000).await;
    let card_id = card["id"].as_str().expect("card id");
    for _ in 0..3 {
        app.post("/giftcard/v1/balanceInquiry", json!({"giftCardId": card_id}))
            .await
            .assert_status(200);
    }
}

#[tokio::test]
async fn body_and_header_limits_follow_the_configuration() {
    let app = TestApp::spawn_with(ApiConfig {
        limits: Limits {
            max_body_bytes: 2048,
            max_header_bytes: 4096,
            ..Limits::default()
        },
        ..ApiConfig::default()
    })
    .await;
    let program_id = app.usd_program().await;
    let padding = "x".repeat(2100);
    let too_large = app
        .post(
            "/v1/cards",
            json!({"program_id": program_id, "kind": "virtual", "amount": 100, "reference": padding}),
        )
        .await;
    too_large.assert_error(413, "invalid_request");
    assert!(
        too_large.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("2048")
    );

    let headers = app
        .send(
            app.client
                .get(app.url(&format!("/v1/programs/{program_id}")))
                .bearer_auth(&app.api_key)
                .header("x-padding", "y".repeat(5000)),
        )
        .await;
    headers.assert_error(431, "invalid_request");
    app.get(&format!("/v1/programs/{program_id}"))
        .await
        .assert_status(200);
}

#[tokio::test]
async fn a_request_whose_body_does_not_arrive_within_the_configured_timeout_is_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = TestApp::spawn_with(ApiConfig {
        limits: Limits {
            request_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
        ..ApiConfig::default()
    })
    .await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    // Headers announce a body that never comes: the server waits for it until the timeout.
    let head = format!(
        "POST /v1/programs HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        app.api_key
    );
    stream.write_all(head.as_bytes()).await.expect("send the head");
    let started = std::time::Instant::now();
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("an answer before the test gives up")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "answered after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn staff_sign_ins_are_limited_per_client_address() {
    let app = TestApp::spawn_with(config(1000, 3)).await;
    let guesser = client_from(2);
    let sign_in = |client: &reqwest::Client| {
        app.send(
            client
                .post(app.url("/v1/sessions"))
                .json(&json!({"email": "someone@example.com", "password": "a guess"})),
        )
    };
    for _ in 0..3 {
        sign_in(&guesser).await.assert_error(401, "invalid_credentials");
    }
    let refused = sign_in(&guesser).await;
    assert_rate_limited(&refused);
    assert_eq!(refused.code(), "rate_limited");
    // Another address is not held back by the first one's guesses.
    sign_in(&client_from(3))
        .await
        .assert_error(401, "invalid_credentials");
}
