//! Webhooks over HTTP and HTTPS, in process: a receiver that fails and then recovers gets the
//! event again with backoff until it answers 2xx, each delivery signed so the receiver can verify
//! it, and every attempt visible through the API; an https receiver is sent events only when its
//! certificate verifies (against a private CA given as an extra root), never when it does not;
//! events only for committed effects, only to their merchant's endpoints, only of the subscribed
//! types; low balance, hold expiry, failing after the last attempt and a retry; and the 400s of
//! bad input.
//!
//! The tests drive the dispatcher themselves (one round per call) and move the manual clock
//! past each backoff, so nothing sleeps.

use std::sync::atomic::Ordering;

use giftd_service::webhooks::DeliveryPolicy;
use giftd_testkit::TestApp;
use giftd_testkit::receiver::{Identity, PrivateCa, Received, Receiver};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

// ---- helpers ----

fn policy(max_attempts: i64) -> DeliveryPolicy {
    DeliveryPolicy {
        first_retry_millis: 1_000,
        max_retry_millis: 4_000,
        max_attempts,
        ..DeliveryPolicy::default()
    }
}

/// One dispatcher round on giftd's own delivery client; answers how many deliveries it attempted.
async fn dispatch(app: &TestApp, policy: &DeliveryPolicy) -> usize {
    dispatch_trusting(app, policy, &[]).await
}

/// A dispatcher round whose client also trusts `roots`, as `webhooks.ca_file` makes it.
async fn dispatch_trusting(app: &TestApp, policy: &DeliveryPolicy, roots: &[reqwest::Certificate]) -> usize {
    let client = giftd_service::webhooks::delivery_client(roots).expect("the delivery client");
    app.service
        .dispatch_webhooks(&client, policy)
        .await
        .expect("a dispatcher round")
}

/// Registers an endpoint; answers it as created (with its secret).
async fn endpoint(app: &TestApp, url: &str, types: &[&str], threshold: Option<i64>) -> Value {
    let response = app
        .post(
            "/v1/webhook_endpoints",
            json!({"url": url, "event_types": types, "low_balance_threshold": threshold}),
        )
        .await;
    response.assert_status(201);
    response.body
}

async fn redeem(app: &TestApp, card_id: &str, amount: i64) -> giftd_testkit::TestResponse {
    app.post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": amount}))
        .await
}

async fn events(app: &TestApp, query: &str) -> Vec<Value> {
    let response = app.get(&format!("/v1/events{query}")).await;
    response.assert_status(200);
    response.body["data"].as_array().expect("a data array").clone()
}

/// Checks `Giftd-Signature: t=<seconds>,v1=<hex HMAC-SHA-256 of "<t>.<body>">` with the secret.
#[track_caller]
fn assert_signed(received: &Received, secret: &str) {
    let header = received.headers["giftd-signature"]
        .to_str()
        .expect("an ASCII header");
    let (t, v1) = header
        .split_once(',')
        .and_then(|(t, v1)| Some((t.strip_prefix("t=")?, v1.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("a signature header of the documented shape: {header}"));
    assert!(t.parse::<i64>().is_ok(), "t is unix seconds: {header}");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("a key");
    mac.update(format!("{t}.{}", received.body).as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    assert_eq!(v1, expected, "the signature verifies with the endpoint's secret");
}

// ---- delivery ----

#[tokio::test]
async fn a_failing_receiver_gets_the_event_again_until_it_recovers_and_the_signature_verifies() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(2).await;
    let created = endpoint(&app, &receiver.url, &["card.redeemed"], None).await;
    let secret = created["secret"]
        .as_str()
        .expect("the secret, shown at creation")
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    let endpoint_id = created["id"].as_str().expect("an id").to_owned();
    // The secret is shown once only.
    let again = app.get(&format!("/v1/webhook_endpoints/{endpoint_id}")).await;
    again.assert_status(200);
    assert!(again.body.get("secret").is_none(), "{}", again.text);

    let card = app.funded_card(1000).await;
    let card_id = card["id"].as_str().expect("a card id");
    let number = card["number"].as_str().expect("the card number").to_owned();
    let redemption = redeem(&app, card_id, 300).await;
    redemption.assert_status(200);
    let policy = policy(5);

    // First attempt: 500. Not due again until 1 s later, then 2 s after the second.
    assert_eq!(dispatch(&app, &policy).await, 1);
    assert_eq!(dispatch(&app, &policy).await, 0, "not due again at once");
    app.clock.advance_seconds(1);
    assert_eq!(dispatch(&app, &policy).await, 1, "the first retry, after 1 s");
    app.clock.advance_seconds(1);
    assert_eq!(dispatch(&app, &policy).await, 0, "the backoff doubled");
    app.clock.advance_seconds(1);
    assert_eq!(dispatch(&app, &policy).await, 1, "the second retry, 2 s later");
    app.clock.advance_seconds(60);
    assert_eq!(dispatch(&app, &policy).await, 0, "delivered: never sent again");
    assert_eq!(receiver.failures_left.load(Ordering::SeqCst), 0);

    let received = receiver.received();
    assert_eq!(received.len(), 3);
    let body: Value = serde_json::from_str(&received[0].body).expect("a JSON body");
    assert_eq!(body["type"], "card.redeemed");
    assert_eq!(body["data"]["transaction"]["id"], redemption.body["id"]);
    assert_eq!(body["data"]["transaction"]["amount"], 300);
    assert_eq!(body["data"]["transaction"]["balance_after"], 700);
    let event_id = body["id"].as_str().expect("an event id").to_owned();
    for attempt in &received {
        assert_signed(attempt, &secret);
        assert_eq!(attempt.body, received[0].body, "the same body every time");
        assert_eq!(attempt.headers["giftd-event-id"], event_id.as_str());
        assert_eq!(attempt.headers["giftd-event-type"], "card.redeemed");
        assert!(!attempt.body.contains(&number), "never the card number");
    }

    // The event as the API shows it, with the delivery and its three attempts.
    let event = app.get(&format!("/v1/events/{event_id}")).await;
    event.assert_status(200);
    assert_eq!(event.body["type"], "card.redeemed");
    assert_eq!(event.body["payload"], body);
    let deliveries = event.body["deliveries"].as_array().expect("deliveries");
    assert_eq!(deliveries.len(), 1, "{}", event.text);
    let delivery = &deliveries[0];
    assert_eq!(delivery["endpoint_id"], endpoint_id.as_str());
    assert_eq!(delivery["state"], "delivered");
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["last_status"], 200);
    let statuses: Vec<&Value> = delivery["attempt_log"]
        .as_array()
        .expect("the attempts")
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(statuses, [&json!(500), &json!(500), &json!(200)]);
    assert_eq!(
        received[0].headers["giftd-delivery-id"],
        delivery["id"].as_str().expect("an id")
    );
}

#[tokio::test]
async fn an_https_receiver_whose_certificate_chains_to_a_trusted_root_gets_signed_deliveries() {
    let app = TestApp::spawn().await;
    let ca = PrivateCa::new();
    let root = ca.root();
    let receiver = Receiver::start_https(1, &ca.identity).await;
    assert!(receiver.url.starts_with("https://"), "{}", receiver.url);
    let created = endpoint(&app, &receiver.url, &["card.loaded"], None).await;
    let secret = created["secret"].as_str().expect("the secret").to_owned();
    let card = app.funded_card(1000).await;
    let card_id = card["id"].as_str().expect("a card id");
    app.post(&format!("/v1/cards/{card_id}/load"), json!({"amount": 250}))
        .await
        .assert_status(200);
    let policy = policy(5);

    // A 500 over TLS is an HTTP answer like any other: retried after the backoff.
    assert_eq!(
        dispatch_trusting(&app, &policy, std::slice::from_ref(&root)).await,
        1
    );
    app.clock.advance_seconds(1);
    assert_eq!(
        dispatch_trusting(&app, &policy, std::slice::from_ref(&root)).await,
        1
    );
    app.clock.advance_seconds(60);
    assert_eq!(dispatch_trusting(&app, &policy, &[root]).await, 0, "delivered");

    let received = receiver.received();
    assert_eq!(received.len(), 2);
    for attempt in &received {
        assert_signed(attempt, &secret);
        assert_eq!(attempt.headers["user-agent"], "giftd-webhooks");
    }
    let body: Value = serde_json::from_str(&received[1].body).expect("a JSON body");
    assert_eq!(body["type"], "card.loaded");
    assert_eq!(body["data"]["transaction"]["amount"], 250);
    let event = app
        .get(&format!(
            "/v1/events/{}",
            body["id"].as_str().expect("an event id")
        ))
        .await;
    event.assert_status(200);
    let delivery = &event.body["deliveries"][0];
    assert_eq!(delivery["state"], "delivered", "{}", event.text);
    assert_eq!(delivery["last_status"], 200);
}

#[tokio::test]
async fn an_https_receiver_whose_certificate_does_not_verify_is_never_sent_the_event() {
    let app = TestApp::spawn().await;
    // Trusted: one private CA. Served: a self-signed certificate, and one from another CA.
    let trusted = PrivateCa::new();
    let receivers = [
        Receiver::start_https(0, &Identity::self_signed()).await,
        Receiver::start_https(0, &PrivateCa::new().identity).await,
    ];
    for receiver in &receivers {
        endpoint(&app, &receiver.url, &["card.redeemed"], None).await;
    }
    let card = app.funded_card(1000).await;
    let card_id = card["id"].as_str().expect("a card id");
    let redemption = redeem(&app, card_id, 100).await;
    redemption.assert_status(200);
    let policy = policy(5);

    assert_eq!(dispatch_trusting(&app, &policy, &[trusted.root()]).await, 2);
    for receiver in &receivers {
        assert!(
            receiver.received().is_empty(),
            "no request reached {}",
            receiver.url
        );
    }
    let events = events(&app, "?type=card.redeemed").await;
    assert_eq!(events.len(), 1);
    let event = app
        .get(&format!(
            "/v1/events/{}",
            events[0]["id"].as_str().expect("an event id")
        ))
        .await;
    event.assert_status(200);
    let deliveries = event.body["deliveries"].as_array().expect("deliveries");
    assert_eq!(deliveries.len(), 2, "{}", event.text);
    for delivery in deliveries {
        // Not delivered: pending, to be tried again once the endpoint's certificate is fixed.
        assert_eq!(delivery["state"], "pending", "{}", event.text);
        let attempt = &delivery["attempt_log"][0];
        assert_eq!(attempt["status"], Value::Null, "no HTTP answer: {}", event.text);
        let error = attempt["error"].as_str().expect("the attempt's error");
        assert!(
            error.contains("certificate"),
            "the error names the certificate: {error}"
        );
    }
}

#[tokio::test]
async fn a_delivery_that_keeps_failing_fails_after_its_last_attempt_and_can_be_retried() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(usize::MAX).await;
    endpoint(&app, &receiver.url, &["card.loaded"], None).await;
    let card = app.funded_card(100).await;
    let card_id = card["id"].as_str().expect("a card id");
    app.post(&format!("/v1/cards/{card_id}/load"), json!({"amount": 50}))
        .await
        .assert_status(200);
    let policy = policy(3);
    for _ in 0..3 {
        assert_eq!(dispatch(&app, &policy).await, 1);
        app.clock.advance_seconds(10);
    }
    assert_eq!(dispatch(&app, &policy).await, 0, "failed: no fourth attempt");
    let event_id = events(&app, "?type=card.loaded").await[0]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let event = app.get(&format!("/v1/events/{event_id}")).await;
    let delivery = &event.body["deliveries"][0];
    assert_eq!(delivery["state"], "failed", "{}", event.text);
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["last_status"], 500);

    // The receiver is fixed; a retry sends it once more.
    receiver.failures_left.store(0, Ordering::SeqCst);
    let delivery_id = delivery["id"].as_str().expect("an id");
    let retry_path = format!("/v1/webhook_deliveries/{delivery_id}/retry");
    let retried = app.post_idempotent(&retry_path, json!({}), "retry-1").await;
    retried.assert_status(202);
    assert_eq!(retried.body["state"], "pending", "{}", retried.text);
    assert_eq!(dispatch(&app, &policy).await, 1);
    let event = app.get(&format!("/v1/events/{event_id}")).await;
    assert_eq!(
        event.body["deliveries"][0]["state"], "delivered",
        "{}",
        event.text
    );
    assert_eq!(receiver.received().len(), 4);
    // The same request again with its key is answered as before and sends nothing more.
    let replayed = app.post_idempotent(&retry_path, json!({}), "retry-1").await;
    assert_eq!((replayed.status, &replayed.text), (retried.status, &retried.text));
    assert_eq!(
        dispatch(&app, &policy).await,
        0,
        "the retry was not applied twice"
    );
    assert_eq!(receiver.received().len(), 4);
    app.post("/v1/webhook_deliveries/whd_0123/retry", json!({}))
        .await
        .assert_error(404, "not_found");
}

// ---- which events, to whom ----

#[tokio::test]
async fn a_committed_redemption_writes_an_event_and_a_refused_one_writes_none() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(0).await;
    endpoint(&app, &receiver.url, &["card.redeemed"], None).await;
    let card = app.funded_card(500).await;
    let card_id = card["id"].as_str().expect("a card id");
    redeem(&app, card_id, 200).await.assert_status(200);
    redeem(&app, card_id, 10_000)
        .await
        .assert_error(422, "insufficient_funds");
    let redeemed = events(&app, "?type=card.redeemed").await;
    assert_eq!(redeemed.len(), 1, "{redeemed:?}");
    assert_eq!(redeemed[0]["payload"]["data"]["transaction"]["amount"], 200);
    assert_eq!(dispatch(&app, &policy(5)).await, 1, "one delivery only");
    assert_eq!(receiver.types(), ["card.redeemed"]);
}

#[tokio::test]
async fn endpoints_only_see_events_of_their_own_merchant() {
    let app = TestApp::spawn().await;
    let mine = Receiver::start(0).await;
    let theirs = Receiver::start(0).await;
    endpoint(&app, &mine.url, &["card.redeemed"], None).await;
    let other_key = app.another_merchant().await;
    app.post_as(
        "/v1/webhook_endpoints",
        json!({"url": theirs.url, "event_types": ["card.redeemed"]}),
        &other_key,
        None,
    )
    .await
    .assert_status(201);

    let card = app.funded_card(500).await;
    redeem(&app, card["id"].as_str().expect("a card id"), 100)
        .await
        .assert_status(200);
    assert_eq!(dispatch(&app, &policy(5)).await, 1);
    assert_eq!(mine.types(), ["card.redeemed"]);
    assert!(theirs.received().is_empty());

    let event_id = events(&app, "").await[0]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let listed = app.get_as("/v1/events", &other_key).await;
    listed.assert_status(200);
    assert_eq!(listed.body["data"], json!([]));
    app.get_as(&format!("/v1/events/{event_id}"), &other_key)
        .await
        .assert_error(404, "not_found");
    let endpoints = app.get_as("/v1/webhook_endpoints", &other_key).await;
    assert_eq!(endpoints.body["data"].as_array().expect("a list").len(), 1);
}

#[tokio::test]
async fn endpoints_get_only_the_event_types_they_subscribe_to() {
    let app = TestApp::spawn().await;
    let loads = Receiver::start(0).await;
    let redemptions = Receiver::start(0).await;
    endpoint(&app, &loads.url, &["card.loaded"], None).await;
    endpoint(&app, &redemptions.url, &["card.redeemed", "card.refunded"], None).await;
    let card = app.funded_card(500).await;
    let card_id = card["id"].as_str().expect("a card id");
    app.post(&format!("/v1/cards/{card_id}/load"), json!({"amount": 100}))
        .await
        .assert_status(200);
    redeem(&app, card_id, 50).await.assert_status(200);
    assert_eq!(dispatch(&app, &policy(5)).await, 2);
    assert_eq!(loads.types(), ["card.loaded"]);
    assert_eq!(redemptions.types(), ["card.redeemed"]);
    // Both events are in the outbox, whoever subscribed.
    let types: Vec<Value> = events(&app, "").await.iter().map(|e| e["type"].clone()).collect();
    assert_eq!(types, [json!("card.redeemed"), json!("card.loaded")]);
    let page = app.get("/v1/events?limit=1").await;
    let cursor = page.body["next_cursor"].as_str().expect("a next page");
    let next = events(&app, &format!("?limit=1&cursor={cursor}")).await;
    assert_eq!(next[0]["type"], "card.loaded");

    // A deleted endpoint is disabled and gets nothing more.
    let listed = app.get("/v1/webhook_endpoints").await;
    let loads_id = listed.body["data"][1]["id"].as_str().expect("an id").to_owned();
    let deleted = app
        .send(
            app.client
                .delete(app.url(&format!("/v1/webhook_endpoints/{loads_id}")))
                .bearer_auth(&app.api_key),
        )
        .await;
    deleted.assert_status(200);
    assert_eq!(deleted.body["enabled"], false);
    app.post(&format!("/v1/cards/{card_id}/load"), json!({"amount": 100}))
        .await
        .assert_status(200);
    assert_eq!(dispatch(&app, &policy(5)).await, 0);
    assert_eq!(loads.types().len(), 1);
}

#[tokio::test]
async fn low_balance_is_sent_when_a_balance_falls_below_the_threshold() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(0).await;
    endpoint(&app, &receiver.url, &["card.low_balance"], Some(500)).await;
    let card = app.funded_card(1000).await;
    let card_id = card["id"].as_str().expect("a card id");
    redeem(&app, card_id, 400).await.assert_status(200);
    redeem(&app, card_id, 200).await.assert_status(200);
    redeem(&app, card_id, 100).await.assert_status(200);
    assert_eq!(dispatch(&app, &policy(5)).await, 1);
    assert_eq!(receiver.types(), ["card.low_balance"]);
    let body: Value = serde_json::from_str(&receiver.received()[0].body).expect("JSON");
    assert_eq!(body["data"]["card"]["id"], card_id);
    assert_eq!(body["data"]["card"]["balance"], 400);
}

#[tokio::test]
async fn an_expired_hold_is_reported_when_the_sweeper_releases_it() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(0).await;
    endpoint(&app, &receiver.url, &["hold.expired"], None).await;
    let card = app.funded_card(1000).await;
    let card_id = card["id"].as_str().expect("a card id");
    let hold = app
        .post(
            &format!("/v1/cards/{card_id}/holds"),
            json!({"amount": 300, "expires_in_seconds": 60}),
        )
        .await;
    hold.assert_status(201);
    app.clock.advance_seconds(61);
    app.service.expire_due_holds().await.expect("a sweep");
    assert_eq!(dispatch(&app, &policy(5)).await, 1);
    let body: Value = serde_json::from_str(&receiver.received()[0].body).expect("JSON");
    assert_eq!(body["type"], "hold.expired");
    assert_eq!(body["data"]["hold"]["id"], hold.body["id"]);
    assert_eq!(body["data"]["hold"]["amount"], 300);
}

#[tokio::test]
async fn a_captured_checkout_is_reported_once() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(0).await;
    endpoint(
        &app,
        &receiver.url,
        &["checkout.captured", "checkout.failed"],
        None,
    )
    .await;
    let card = app.funded_card(3000).await;
    let response = app
        .post(
            "/v1/checkouts",
            json!({
                "amount": 2500, "currency": "USD", "intent": "capture", "reference": "order-1",
                "gift_cards": [{"card_id": card["id"], "amount": 2500}],
            }),
        )
        .await;
    response.assert_status(201);
    assert_eq!(response.body["status"], "captured", "{}", response.text);
    assert_eq!(dispatch(&app, &policy(5)).await, 1);
    assert_eq!(receiver.types(), ["checkout.captured"]);
    let body: Value = serde_json::from_str(&receiver.received()[0].body).expect("JSON");
    assert_eq!(body["data"]["checkout"]["id"], response.body["id"]);
    assert_eq!(body["data"]["checkout"]["amount"], 2500);
    assert_eq!(body["data"]["checkout"]["reference"], "order-1");
}

// ---- idempotency ----

#[tokio::test]
async fn a_retried_registration_with_its_idempotency_key_answers_the_same_endpoint_and_secret() {
    let app = TestApp::spawn().await;
    let body = json!({"url": "https://hooks.example.com/giftd", "event_types": ["card.loaded"]});
    let first = app
        .post_idempotent("/v1/webhook_endpoints", body.clone(), "whe-key-1")
        .await;
    first.assert_status(201);
    let again = app
        .post_idempotent("/v1/webhook_endpoints", body.clone(), "whe-key-1")
        .await;
    again.assert_status(201);
    assert_eq!(
        again.text, first.text,
        "the first answer, secret included, byte for byte"
    );
    assert!(
        first.body["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_"))
    );

    // The same key with another request is refused; another key registers another endpoint.
    let other = json!({"url": "https://hooks.example.com/other", "event_types": ["card.loaded"]});
    app.post_idempotent("/v1/webhook_endpoints", other.clone(), "whe-key-1")
        .await
        .assert_error(409, "idempotency_key_reused");
    let second = app
        .post_idempotent("/v1/webhook_endpoints", other, "whe-key-2")
        .await;
    second.assert_status(201);
    assert_ne!(second.body["id"], first.body["id"]);

    let listed = app.get("/v1/webhook_endpoints").await;
    listed.assert_status(200);
    assert_eq!(
        listed.body["data"].as_array().map(Vec::len),
        Some(2),
        "{}",
        listed.text
    );
}

#[tokio::test]
async fn the_seventeenth_enabled_endpoint_is_refused_and_the_refusal_is_replayed() {
    let app = TestApp::spawn().await;
    for n in 0..16 {
        app.post(
            "/v1/webhook_endpoints",
            json!({"url": format!("http://hooks.example.com/{n}"), "event_types": ["card.loaded"]}),
        )
        .await
        .assert_status(201);
    }
    let body = json!({"url": "http://hooks.example.com/16", "event_types": ["card.loaded"]});
    let refused = app
        .post_idempotent("/v1/webhook_endpoints", body.clone(), "whe-17")
        .await;
    refused.assert_error(400, "invalid_request");
    assert_eq!(refused.body["error"]["param"], "url", "{}", refused.text);
    let replayed = app.post_idempotent("/v1/webhook_endpoints", body, "whe-17").await;
    assert_eq!(replayed.status, refused.status);
    assert_eq!(replayed.text, refused.text);
    let listed = app.get("/v1/webhook_endpoints?limit=100").await;
    assert_eq!(listed.body["data"].as_array().map(Vec::len), Some(16));
}

// ---- bad input ----

#[tokio::test]
async fn bad_webhook_input_is_refused_with_400() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"url": "ftp://example.com/hook", "event_types": ["card.loaded"]}),
            "url",
        ),
        (json!({"url": "not a url", "event_types": ["card.loaded"]}), "url"),
        (
            json!({"url": "https://user@example.com/hook", "event_types": ["card.loaded"]}),
            "url",
        ),
        (
            json!({"url": "http://user:pw@example.com/", "event_types": ["card.loaded"]}),
            "url",
        ),
        (
            json!({"url": "http://example.com/hook", "event_types": []}),
            "event_types",
        ),
        (
            json!({"url": "http://example.com/hook", "event_types": ["card.nope"]}),
            "event_types",
        ),
        (
            json!({"url": "http://example.com/hook", "event_types": ["card.low_balance"]}),
            "low_balance_threshold",
        ),
        (
            json!({"url": "http://example.com/hook", "event_types": ["card.low_balance"], "low_balance_threshold": -1}),
            "low_balance_threshold",
        ),
    ];
    for (body, param) in cases {
        let response = app.post("/v1/webhook_endpoints", body.clone()).await;
        response.assert_error(400, "invalid_request");
        assert_eq!(
            response.body["error"]["param"], param,
            "for {body}: {}",
            response.text
        );
    }
    app.post(
        "/v1/webhook_endpoints",
        json!({"url": "http://example.com/hook", "event_types": ["card.loaded"], "colour": "red"}),
    )
    .await
    .assert_status(400);
    app.get("/v1/events?type=card.nope")
        .await
        .assert_error(400, "invalid_request");
    app.get("/v1/events/evt_zz").await.assert_error(404, "not_found");
    app.get("/v1/webhook_endpoints/whe_0123")
        .await
        .assert_error(404, "not_found");
    let listed = app.get("/v1/webhook_endpoints").await;
    assert_eq!(listed.body["data"], json!([]), "nothing was created");
}
