//! Adjustments with four eyes (docs/STAFF.md "Adjustments"): within the merchant's threshold
//! applied at once as an `adjustment` transaction; above it pending until a second person
//! approves (applied then) or rejects (nothing moves); never approved by the one who asked, nor
//! by an API key; expired after 7 days; an approval racing a rejection decided once; the books
//! sound after each.

use giftd_testkit::{TestApp, TestResponse};
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough passphrase";

/// A signed-in session of a new staff member of `role`.
async fn session(app: &TestApp, email: &str, role: &str) -> String {
    let invited = app.post("/v1/staff", json!({"email": email, "role": role})).await;
    invited.assert_status(201);
    let signed_in = app
        .send(app.client.post(app.url("/v1/sessions")).json(&json!({
            "email": email, "password": invited.body["temporary_password"],
        })))
        .await;
    signed_in.assert_status(201);
    let token = signed_in.body["token"].as_str().unwrap().to_owned();
    app.post_as(
        "/v1/staff/me/password",
        json!({"current_password": invited.body["temporary_password"], "new_password": PASSWORD}),
        &token,
        None,
    )
    .await
    .assert_status(200);
    token
}

async fn adjust(app: &TestApp, credential: &str, card_id: &str, body: Value) -> TestResponse {
    app.post_as(
        &format!("/v1/cards/{card_id}/adjustments"),
        body,
        credential,
        None,
    )
    .await
}

async fn decide(app: &TestApp, credential: &str, id: &str, decision: &str) -> TestResponse {
    app.post_as(
        &format!("/v1/adjustments/{id}/{decision}"),
        json!({}),
        credential,
        None,
    )
    .await
}

async fn balance(app: &TestApp, card_id: &str) -> i64 {
    app.get(&format!("/v1/cards/{card_id}")).await.body["balance"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn an_adjustment_within_the_threshold_applies_at_once_either_way() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1_000).await;
    let card_id = card["id"].as_str().unwrap();
    let up = adjust(
        &app,
        &app.api_key,
        card_id,
        json!({"amount": 250, "reason": "goodwill", "note": "late delivery"}),
    )
    .await;
    up.assert_status(201);
    assert_eq!(up.body["object"], "adjustment");
    assert_eq!(up.body["state"], "applied");
    assert_eq!(up.body["amount"], 250);
    assert_eq!(up.body["requested_by"]["type"], "api_key");
    assert_eq!(balance(&app, card_id).await, 1_250);
    let down = adjust(
        &app,
        &app.api_key,
        card_id,
        json!({"amount": -1_000, "reason": "correction"}),
    )
    .await;
    down.assert_status(201);
    assert_eq!(balance(&app, card_id).await, 250);

    let adjustments = app.card_transactions_of_type(card_id, "adjustment").await;
    assert_eq!(adjustments.len(), 2);
    assert!(adjustments.iter().any(|t| t["id"] == up.body["transaction_id"]));
    // The activity report counts them net: 250 on, 1000 off.
    let day = app.service.now();
    let day = giftd_domain::Date::of(day).to_string();
    let activity = app
        .get(&format!("/v1/reports/activity?from={day}&to={day}"))
        .await;
    let line = activity.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["type"] == "adjustment")
        .unwrap()
        .clone();
    assert_eq!(
        (line["count"].as_i64(), line["amount"].as_i64()),
        (Some(2), Some(-750))
    );

    // Each applied adjustment is a `card.adjusted` event, carrying its transaction.
    let events = app.get("/v1/events?type=card.adjusted").await;
    let events = events.body["data"].as_array().unwrap().clone();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e["payload"]["data"]["transaction"]["id"] == up.body["transaction_id"])
    );

    // More than is available is refused and leaves nothing, not even a request.
    let too_much = adjust(
        &app,
        &app.api_key,
        card_id,
        json!({"amount": -300, "reason": "fraud"}),
    )
    .await;
    too_much.assert_error(422, "insufficient_funds");
    let listed = app.get(&format!("/v1/adjustments?card_id={card_id}")).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 2);
    adjust(
        &app,
        &app.api_key,
        card_id,
        json!({"amount": 0, "reason": "other"}),
    )
    .await
    .assert_error(400, "invalid_amount");
    adjust(
        &app,
        &app.api_key,
        card_id,
        json!({"amount": 5, "reason": "because"}),
    )
    .await
    .assert_error(400, "invalid_request");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn above_the_threshold_a_second_person_approves_and_never_the_one_who_asked() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1_000).await;
    let card_id = card["id"].as_str().unwrap();
    let support = session(&app, "sam@example.com", "support").await;
    let admin = session(&app, "ada@example.com", "admin").await;
    let finance = session(&app, "fin@example.com", "finance").await;

    let asked = adjust(
        &app,
        &support,
        card_id,
        json!({"amount": 20_000, "reason": "goodwill"}),
    )
    .await;
    asked.assert_status(202);
    assert_eq!(asked.body["state"], "pending");
    assert_eq!(asked.body["transaction_id"], Value::Null);
    let id = asked.body["id"].as_str().unwrap().to_owned();
    assert_eq!(balance(&app, card_id).await, 1_000, "nothing moves while pending");
    let pending = app.get("/v1/adjustments?state=pending").await;
    assert_eq!(pending.body["data"][0]["id"], id.as_str());

    // Support asks but does not approve; a key never approves.
    decide(&app, &support, &id, "approve")
        .await
        .assert_error(403, "insufficient_role");
    decide(&app, &app.api_key, &id, "approve")
        .await
        .assert_error(403, "insufficient_scope");
    // An admin may approve, but not their own.
    let own = adjust(
        &app,
        &admin,
        card_id,
        json!({"amount": 9_000, "reason": "correction"}),
    )
    .await;
    own.assert_status(202);
    decide(&app, &admin, own.body["id"].as_str().unwrap(), "approve")
        .await
        .assert_error(403, "own_adjustment");

    let approved = decide(&app, &finance, &id, "approve").await;
    approved.assert_status(200);
    assert_eq!(approved.body["state"], "applied");
    assert_eq!(approved.body["decided_by"]["type"], "staff");
    assert!(approved.body["transaction_id"].is_string());
    assert_eq!(balance(&app, card_id).await, 21_000);
    decide(&app, &finance, &id, "reject")
        .await
        .assert_error(400, "invalid_request");

    let rejected = decide(&app, &finance, own.body["id"].as_str().unwrap(), "reject").await;
    rejected.assert_status(200);
    assert_eq!(rejected.body["state"], "rejected");
    assert_eq!(balance(&app, card_id).await, 21_000, "a rejection moves nothing");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn an_approval_racing_a_rejection_is_decided_once() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1_000).await;
    let card_id = card["id"].as_str().unwrap();
    let finance = session(&app, "fin@example.com", "finance").await;
    let owner = session(&app, "own@example.com", "owner").await;
    for round in 0..5 {
        let asked = adjust(
            &app,
            &app.api_key,
            card_id,
            json!({"amount": 10_000, "reason": "migration"}),
        )
        .await;
        asked.assert_status(202);
        let id = asked.body["id"].as_str().unwrap().to_owned();
        let before = balance(&app, card_id).await;
        let (approve, reject) = tokio::join!(
            decide(&app, &finance, &id, "approve"),
            decide(&app, &owner, &id, "reject")
        );
        let winners = [&approve, &reject].iter().filter(|a| a.status == 200).count();
        assert_eq!(winners, 1, "round {round}: {} / {}", approve.text, reject.text);
        let state = app.get(&format!("/v1/adjustments/{id}")).await.body["state"].clone();
        let after = balance(&app, card_id).await;
        if approve.status == 200 {
            assert_eq!((state.as_str(), after), (Some("applied"), before + 10_000));
            reject.assert_error(400, "invalid_request");
        } else {
            assert_eq!((state.as_str(), after), (Some("rejected"), before));
            approve.assert_error(400, "invalid_request");
        }
    }
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_request_not_decided_within_seven_days_expires_and_the_owner_sets_the_threshold() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1_000).await;
    let card_id = card["id"].as_str().unwrap();
    let asked = adjust(
        &app,
        &app.api_key,
        card_id,
        json!({"amount": 6_000, "reason": "goodwill"}),
    )
    .await;
    asked.assert_status(202);
    app.clock.advance_seconds(7 * 24 * 3600);
    let finance = session(&app, "fin@example.com", "finance").await;
    let owner = session(&app, "own@example.com", "owner").await;
    let late = decide(&app, &finance, asked.body["id"].as_str().unwrap(), "approve").await;
    late.assert_status(200);
    assert_eq!(late.body["state"], "expired");
    assert_eq!(balance(&app, card_id).await, 1_000);

    let settings = app.get("/v1/settings").await;
    assert_eq!(settings.body["adjustment_approval_threshold"], 5_000);
    let patch = |credential: &str, body: Value| {
        app.send(
            app.client
                .patch(app.url("/v1/settings"))
                .bearer_auth(credential)
                .json(&body),
        )
    };
    patch(&finance, json!({"adjustment_approval_threshold": 0}))
        .await
        .assert_error(403, "insufficient_role");
    patch(&owner, json!({"adjustment_approval_threshold": -1}))
        .await
        .assert_error(400, "invalid_request");
    let set = patch(&owner, json!({"adjustment_approval_threshold": 0})).await;
    set.assert_status(200);
    assert_eq!(set.body["adjustment_approval_threshold"], 0);
    // Now every adjustment waits.
    adjust(
        &app,
        &app.api_key,
        card_id,
        json!({"amount": 1, "reason": "goodwill"}),
    )
    .await
    .assert_status(202);
}
