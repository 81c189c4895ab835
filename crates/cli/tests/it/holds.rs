//! Holds over HTTP, in process: placing several on one card, capturing all, part or none of
//! one, releasing, the refusals (`hold_not_pending`, `invalid_amount`, the lifetime bounds), and
//! expiry: a pending hold past `expires_at` stops reserving funds at once, before the sweeper
//! writes its release.

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

async fn get_hold(app: &TestApp, hold_id: &str) -> Value {
    let response = app.get(&format!("/v1/holds/{hold_id}")).await;
    response.assert_status(200);
    response.body
}

#[track_caller]
fn assert_money(card: &Value, balance: i64, held: i64, available: i64) {
    assert_eq!(card["balance"], balance, "balance of {card}");
    assert_eq!(card["held"], held, "held of {card}");
    assert_eq!(card["available"], available, "available of {card}");
}

#[track_caller]
fn assert_param(response: &TestResponse, param: &str) {
    assert_eq!(
        response.body["error"]["param"], param,
        "unexpected param; body: {}",
        response.text
    );
}

async fn place_hold(app: &TestApp, card_id: &str, body: Value) -> TestResponse {
    app.post(&format!("/v1/cards/{card_id}/holds"), body).await
}

/// Places a hold that must succeed; returns the hold.
async fn hold(app: &TestApp, card_id: &str, body: Value) -> Value {
    let response = place_hold(app, card_id, body).await;
    response.assert_status(201);
    response.body
}

async fn capture(app: &TestApp, hold_id: &str, body: Value) -> TestResponse {
    app.post(&format!("/v1/holds/{hold_id}/capture"), body).await
}

async fn release(app: &TestApp, hold_id: &str) -> TestResponse {
    app.post(&format!("/v1/holds/{hold_id}/release"), json!({})).await
}

/// Milliseconds since the Unix epoch of an RFC 3339 time in UTC (`Z` or `+00:00`).
fn unix_millis(text: &str) -> i64 {
    let (date, time) = text.split_once('T').expect("an RFC 3339 date and time");
    let date: Vec<i64> = date.split('-').map(|p| p.parse().expect("date digits")).collect();
    let time = time
        .strip_suffix('Z')
        .or_else(|| time.strip_suffix("+00:00"))
        .expect("a UTC time");
    let (clock, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let clock: Vec<i64> = clock
        .split(':')
        .map(|p| p.parse().expect("time digits"))
        .collect();
    let millis: i64 = format!("{fraction:0<3}")[..3].parse().expect("fraction digits");
    let (year, month, day) = (date[0], date[1], date[2]);
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    days * 86_400_000 + ((clock[0] * 60 + clock[1]) * 60 + clock[2]) * 1000 + millis
}

// ---- placing holds ----

#[tokio::test]
async fn several_pending_holds_reduce_available_but_not_balance() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);

    let first = hold(&app, &card_id, json!({"amount": 1000, "reference": "pump 3"})).await;
    assert!(first["id"].as_str().unwrap().starts_with("hold_"), "{first}");
    assert_eq!(first["card_id"], card_id.as_str());
    assert_eq!(first["amount"], 1000);
    assert_eq!(first["captured_amount"], 0);
    assert_eq!(first["state"], "pending");
    assert!(first["expires_at"].is_string() && first["created_at"].is_string());
    hold(&app, &card_id, json!({"amount": 2500})).await;
    hold(&app, &card_id, json!({"amount": 500, "currency": "USD"})).await;

    assert_money(&get_card(&app, &card_id).await, 10_000, 4000, 6000);
    let listed = app.get("/v1/cards").await;
    assert_money(&listed.body["data"][0], 10_000, 4000, 6000);

    // Held value cannot be spent twice.
    let response = app
        .post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 6001}))
        .await;
    response.assert_error(422, "insufficient_funds");
    place_hold(&app, &card_id, json!({"amount": 6001}))
        .await
        .assert_error(422, "insufficient_funds");
    app.post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 6000}))
        .await
        .assert_status(200);
    assert_money(&get_card(&app, &card_id).await, 4000, 4000, 0);
    let report = app.verify().await;
    TestApp::assert_sound(&report);
    assert_eq!(report.pending_holds, 3);
}

#[tokio::test]
async fn hold_refuses_more_than_available_and_reserves_nothing() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(1000).await);
    let response = place_hold(&app, &card_id, json!({"amount": 1001})).await;
    response.assert_error(422, "insufficient_funds");
    assert_param(&response, "amount");
    assert_money(&get_card(&app, &card_id).await, 1000, 0, 1000);
    assert_eq!(app.card_transactions(&card_id).await.len(), 1);
    let report = app.verify().await;
    TestApp::assert_sound(&report);
    assert_eq!(report.pending_holds, 0);
}

#[tokio::test]
async fn hold_with_allow_partial_reserves_what_is_available() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(1000).await);
    hold(&app, &card_id, json!({"amount": 800})).await;

    let enough = hold(&app, &card_id, json!({"amount": 50, "allow_partial": true})).await;
    assert_eq!(enough["amount"], 50);
    let partial = hold(&app, &card_id, json!({"amount": 500, "allow_partial": true})).await;
    assert_eq!(partial["amount"], 150);
    assert_eq!(partial["state"], "pending");
    assert_money(&get_card(&app, &card_id).await, 1000, 1000, 0);

    place_hold(&app, &card_id, json!({"amount": 1, "allow_partial": true}))
        .await
        .assert_error(422, "insufficient_funds");
    place_hold(&app, &card_id, json!({"amount": 500, "allow_partial": false}))
        .await
        .assert_error(422, "insufficient_funds");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn hold_refuses_bad_amounts_currencies_and_unknown_fields() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(1000).await);
    for amount in [json!(0), json!(-100), json!(1.25), json!(null)] {
        let response = place_hold(&app, &card_id, json!({"amount": amount})).await;
        assert_eq!(
            response.status.as_u16(),
            400,
            "amount {amount}: {}",
            response.text
        );
        assert_param(&response, "amount");
    }
    let response = place_hold(&app, &card_id, json!({"amount": 100, "currency": "EUR"})).await;
    response.assert_error(422, "currency_mismatch");
    assert_param(&response, "currency");
    let response = place_hold(&app, &card_id, json!({"amount": 100, "currency": "usd"})).await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "currency");
    let response = place_hold(&app, &card_id, json!({"amount": 100, "expires_in": 60})).await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "expires_in");
    place_hold(
        &app,
        "card_0123456789abcdef0123456789abcdef",
        json!({"amount": 100}),
    )
    .await
    .assert_error(404, "not_found");
    assert_money(&get_card(&app, &card_id).await, 1000, 0, 1000);
    assert_eq!(app.verify().await.pending_holds, 0);
}

#[tokio::test]
async fn hold_lifetime_defaults_to_600_seconds_and_follows_expires_in_seconds() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let lifetime = |hold: &Value| {
        (unix_millis(hold["expires_at"].as_str().unwrap())
            - unix_millis(hold["created_at"].as_str().unwrap()))
            / 1000
    };
    let default = hold(&app, &card_id, json!({"amount": 100})).await;
    assert_eq!(lifetime(&default), 600);
    for seconds in [1, 3600, 604_800] {
        let held = hold(
            &app,
            &card_id,
            json!({"amount": 100, "expires_in_seconds": seconds}),
        )
        .await;
        assert_eq!(lifetime(&held), seconds);
    }
}

#[tokio::test]
async fn expires_in_seconds_outside_one_to_604800_is_400() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(1000).await);
    for seconds in [json!(0), json!(-1), json!(604_801), json!(1_000_000_000_000_i64)] {
        let response = place_hold(
            &app,
            &card_id,
            json!({"amount": 100, "expires_in_seconds": seconds}),
        )
        .await;
        response.assert_error(400, "invalid_request");
        assert_param(&response, "expires_in_seconds");
    }
    let response = place_hold(&app, &card_id, json!({"amount": 100, "expires_in_seconds": "60"})).await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "expires_in_seconds");
    assert_money(&get_card(&app, &card_id).await, 1000, 0, 1000);
    assert_eq!(app.card_transactions(&card_id).await.len(), 1);
}

// ---- capture ----

#[tokio::test]
async fn capture_without_amount_takes_the_whole_hold() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let held = hold(&app, &card_id, json!({"amount": 1000})).await;
    let other = hold(&app, &card_id, json!({"amount": 2000})).await;
    let hold_id = id_of(&held);

    let response = capture(&app, &hold_id, json!({"reference": "ticket 9"})).await;
    response.assert_status(200);
    let transaction = &response.body;
    assert!(transaction["id"].as_str().unwrap().starts_with("txn_"));
    assert_eq!(transaction["type"], "capture");
    assert_eq!(transaction["card_id"], card_id.as_str());
    assert_eq!(transaction["amount"], 1000);
    assert_eq!(transaction["currency"], "USD");
    assert_eq!(transaction["balance_before"], 10_000);
    assert_eq!(transaction["balance_after"], 9000);
    assert_eq!(transaction["reference"], "ticket 9");
    assert_eq!(transaction["reverses"], Value::Null);

    let held = get_hold(&app, &hold_id).await;
    assert_eq!(held["state"], "captured");
    assert_eq!(held["captured_amount"], 1000);
    assert_eq!(held["amount"], 1000);
    // The other hold still reserves its part.
    assert_eq!(get_hold(&app, &id_of(&other)).await["state"], "pending");
    assert_money(&get_card(&app, &card_id).await, 9000, 2000, 7000);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn partial_capture_takes_that_part_and_releases_the_rest() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let hold_id = id_of(&hold(&app, &card_id, json!({"amount": 1000})).await);

    let response = capture(&app, &hold_id, json!({"amount": 600})).await;
    response.assert_status(200);
    assert_eq!(response.body["type"], "capture");
    assert_eq!(response.body["amount"], 600);
    assert_eq!(response.body["balance_before"], 10_000);
    assert_eq!(response.body["balance_after"], 9400);

    let held = get_hold(&app, &hold_id).await;
    assert_eq!(held["state"], "captured");
    assert_eq!(held["captured_amount"], 600);
    assert_money(&get_card(&app, &card_id).await, 9400, 0, 9400);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn capture_of_zero_releases_the_hold() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let hold_id = id_of(&hold(&app, &card_id, json!({"amount": 1000})).await);

    let response = capture(&app, &hold_id, json!({"amount": 0})).await;
    response.assert_status(200);
    assert_eq!(response.body["amount"], 0);
    assert_eq!(response.body["balance_before"], 10_000);
    assert_eq!(response.body["balance_after"], 10_000);

    let held = get_hold(&app, &hold_id).await;
    assert_eq!(held["state"], "released");
    assert_eq!(held["captured_amount"], 0);
    assert_money(&get_card(&app, &card_id).await, 10_000, 0, 10_000);
    capture(&app, &hold_id, json!({}))
        .await
        .assert_error(409, "hold_not_pending");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn capture_above_the_hold_amount_is_refused_with_invalid_amount() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let hold_id = id_of(&hold(&app, &card_id, json!({"amount": 1000})).await);

    let response = capture(&app, &hold_id, json!({"amount": 1001})).await;
    response.assert_error(422, "invalid_amount");
    assert_param(&response, "amount");
    let response = capture(&app, &hold_id, json!({"amount": -1})).await;
    assert_eq!(response.status.as_u16(), 400, "{}", response.text);
    assert_param(&response, "amount");
    let response = capture(&app, &hold_id, json!({"amount": "all"})).await;
    assert_eq!(response.status.as_u16(), 400, "{}", response.text);
    assert_param(&response, "amount");

    let held = get_hold(&app, &hold_id).await;
    assert_eq!(held["state"], "pending");
    assert_eq!(held["captured_amount"], 0);
    assert_money(&get_card(&app, &card_id).await, 10_000, 1000, 9000);
    // Still capturable in full.
    capture(&app, &hold_id, json!({"amount": 1000}))
        .await
        .assert_status(200);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn capture_and_release_of_an_unknown_hold_are_404() {
    let app = TestApp::spawn().await;
    for path in [
        "/v1/holds/hold_0123456789abcdef0123456789abcdef/capture",
        "/v1/holds/hold_0123456789abcdef0123456789abcdef/release",
        "/v1/holds/card_0123456789abcdef0123456789abcdef/capture",
    ] {
        app.post(path, json!({})).await.assert_error(404, "not_found");
    }
    app.get("/v1/holds/hold_0123456789abcdef0123456789abcdef")
        .await
        .assert_error(404, "not_found");
}

// ---- release ----

#[tokio::test]
async fn release_frees_the_held_funds() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let hold_id = id_of(&hold(&app, &card_id, json!({"amount": 2500})).await);
    assert_money(&get_card(&app, &card_id).await, 10_000, 2500, 7500);

    let response = release(&app, &hold_id).await;
    response.assert_status(200);
    assert_eq!(response.body["id"], hold_id.as_str());
    assert_eq!(response.body["state"], "released");
    assert_eq!(response.body["captured_amount"], 0);
    assert_eq!(get_hold(&app, &hold_id).await["state"], "released");
    assert_money(&get_card(&app, &card_id).await, 10_000, 0, 10_000);

    let transactions = app.card_transactions(&card_id).await;
    assert_eq!(transactions[0]["type"], "release");
    assert_eq!(transactions[0]["amount"], 2500);
    assert_eq!(transactions[0]["balance_before"], 10_000);
    assert_eq!(transactions[0]["balance_after"], 10_000);

    // The freed funds can be spent.
    app.post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 10_000}))
        .await
        .assert_status(200);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_finished_hold_cannot_be_captured_or_released_again() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let captured = id_of(&hold(&app, &card_id, json!({"amount": 1000})).await);
    let released = id_of(&hold(&app, &card_id, json!({"amount": 1000})).await);
    capture(&app, &captured, json!({})).await.assert_status(200);
    release(&app, &released).await.assert_status(200);
    let before = app.card_transactions(&card_id).await.len();

    for hold_id in [&captured, &released] {
        capture(&app, hold_id, json!({}))
            .await
            .assert_error(409, "hold_not_pending");
        capture(&app, hold_id, json!({"amount": 0}))
            .await
            .assert_error(409, "hold_not_pending");
        release(&app, hold_id).await.assert_error(409, "hold_not_pending");
    }
    assert_eq!(get_hold(&app, &captured).await["state"], "captured");
    assert_eq!(get_hold(&app, &captured).await["captured_amount"], 1000);
    assert_eq!(get_hold(&app, &released).await["state"], "released");
    assert_money(&get_card(&app, &card_id).await, 9000, 0, 9000);
    assert_eq!(app.card_transactions(&card_id).await.len(), before);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn hold_on_a_frozen_card_is_refused_and_a_pending_one_can_still_be_released() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let hold_id = id_of(&hold(&app, &card_id, json!({"amount": 1000})).await);
    app.post(&format!("/v1/cards/{card_id}/freeze"), json!({}))
        .await
        .assert_status(200);

    place_hold(&app, &card_id, json!({"amount": 100}))
        .await
        .assert_error(422, "card_not_active");
    capture(&app, &hold_id, json!({"amount": 500}))
        .await
        .assert_error(422, "card_not_active");
    assert_eq!(get_hold(&app, &hold_id).await["state"], "pending");

    release(&app, &hold_id).await.assert_status(200);
    assert_money(&get_card(&app, &card_id).await, 10_000, 0, 10_000);
    TestApp::assert_sound(&app.verify().await);
}

// ---- expiry ----

#[tokio::test]
async fn hold_past_its_expiry_reads_expired_and_stops_reserving_before_the_sweeper_runs() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let short = id_of(&hold(&app, &card_id, json!({"amount": 1000, "expires_in_seconds": 60})).await);
    let long = id_of(
        &hold(
            &app,
            &card_id,
            json!({"amount": 2000, "expires_in_seconds": 3600}),
        )
        .await,
    );
    assert_money(&get_card(&app, &card_id).await, 10_000, 3000, 7000);

    app.clock.advance_seconds(61);
    let expired = get_hold(&app, &short).await;
    assert_eq!(expired["state"], "expired");
    assert_eq!(expired["captured_amount"], 0);
    assert_eq!(get_hold(&app, &long).await["state"], "pending");
    assert_money(&get_card(&app, &card_id).await, 10_000, 2000, 8000);
    let listed = app.get("/v1/cards").await;
    assert_money(&listed.body["data"][0], 10_000, 2000, 8000);
    let report = app.verify().await;
    TestApp::assert_sound(&report);
    assert_eq!(report.pending_holds, 2, "nothing is written before the sweep");

    // It can no longer be captured or released.
    capture(&app, &short, json!({}))
        .await
        .assert_error(409, "hold_not_pending");
    capture(&app, &short, json!({"amount": 0}))
        .await
        .assert_error(409, "hold_not_pending");
    release(&app, &short).await.assert_error(409, "hold_not_pending");
    assert_money(&get_card(&app, &card_id).await, 10_000, 2000, 8000);

    // The sweeper writes the release.
    app.service.expire_due_holds().await.expect("the sweep runs");
    assert_eq!(get_hold(&app, &short).await["state"], "expired");
    let transactions = app.card_transactions(&card_id).await;
    let releases: Vec<&Value> = transactions.iter().filter(|t| t["type"] == "release").collect();
    assert_eq!(releases.len(), 1, "{transactions:#?}");
    assert_eq!(releases[0]["amount"], 1000);
    assert_eq!(releases[0]["balance_before"], 10_000);
    assert_eq!(releases[0]["balance_after"], 10_000);
    assert_money(&get_card(&app, &card_id).await, 10_000, 2000, 8000);
    let report = app.verify().await;
    TestApp::assert_sound(&report);
    assert_eq!(report.pending_holds, 1);

    // A second sweep finds nothing more to do.
    app.service.expire_due_holds().await.expect("the sweep runs");
    let again = app.card_transactions(&card_id).await;
    assert_eq!(again.len(), transactions.len());
    capture(&app, &short, json!({}))
        .await
        .assert_error(409, "hold_not_pending");
    capture(&app, &long, json!({})).await.assert_status(200);
    assert_money(&get_card(&app, &card_id).await, 8000, 0, 8000);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn hold_expires_exactly_at_expires_at() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(1000).await);
    let hold_id = id_of(&hold(&app, &card_id, json!({"amount": 1000, "expires_in_seconds": 30})).await);
    app.clock.advance_seconds(29);
    assert_eq!(get_hold(&app, &hold_id).await["state"], "pending");
    assert_money(&get_card(&app, &card_id).await, 1000, 1000, 0);
    app.clock.advance_seconds(1);
    assert_eq!(get_hold(&app, &hold_id).await["state"], "expired");
    assert_money(&get_card(&app, &card_id).await, 1000, 0, 1000);
    capture(&app, &hold_id, json!({}))
        .await
        .assert_error(409, "hold_not_pending");
}

#[tokio::test]
async fn funds_of_an_expired_hold_can_be_spent_before_the_sweeper_runs() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(5000).await);
    let hold_id = id_of(&hold(&app, &card_id, json!({"amount": 5000, "expires_in_seconds": 10})).await);
    app.post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 1}))
        .await
        .assert_error(422, "insufficient_funds");

    app.clock.advance_seconds(11);
    let response = app
        .post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 5000}))
        .await;
    response.assert_status(200);
    assert_eq!(response.body["balance_before"], 5000);
    assert_eq!(response.body["balance_after"], 0);
    assert_eq!(get_hold(&app, &hold_id).await["state"], "expired");
    assert_money(&get_card(&app, &card_id).await, 0, 0, 0);

    // The write path expired the hold itself: the ledger has its release, and the sweeper has
    // nothing left to do.
    let transactions = app.card_transactions(&card_id).await;
    assert_eq!(
        transactions.iter().filter(|t| t["type"] == "release").count(),
        1,
        "{transactions:#?}"
    );
    app.service.expire_due_holds().await.expect("the sweep runs");
    assert_eq!(app.card_transactions(&card_id).await.len(), transactions.len());
    let report = app.verify().await;
    TestApp::assert_sound(&report);
    assert_eq!(report.pending_holds, 0);
}

#[tokio::test]
async fn sweeper_releases_every_due_hold_across_cards_and_the_ledger_stays_sound() {
    let app = TestApp::spawn().await;
    let first = id_of(&app.funded_card(3000).await);
    let second = id_of(&app.funded_card(3000).await);
    for card_id in [&first, &second] {
        hold(&app, card_id, json!({"amount": 1000, "expires_in_seconds": 5})).await;
        hold(&app, card_id, json!({"amount": 1000, "expires_in_seconds": 5})).await;
        hold(&app, card_id, json!({"amount": 500, "expires_in_seconds": 600})).await;
    }
    app.clock.advance_seconds(6);
    let swept = app.service.expire_due_holds().await.expect("the sweep runs");
    assert_eq!(swept, 4);
    for card_id in [&first, &second] {
        assert_money(&get_card(&app, card_id).await, 3000, 500, 2500);
        let releases = app.card_transactions_of_type(card_id, "release").await;
        assert_eq!(releases.len(), 2);
    }
    let report = app.verify().await;
    TestApp::assert_sound(&report);
    assert_eq!(report.pending_holds, 2);
}

/// The contract: "Operations that move value accept an optional `currency`; when given it must
/// equal the card's (422 `currency_mismatch`)". A capture moves value.
#[tokio::test]
async fn capture_accepts_a_matching_currency_and_refuses_another() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let hold_id = id_of(&hold(&app, &card_id, json!({"amount": 1000})).await);

    let response = capture(&app, &hold_id, json!({"amount": 500, "currency": "EUR"})).await;
    response.assert_error(422, "currency_mismatch");
    assert_param(&response, "currency");
    assert_eq!(get_hold(&app, &hold_id).await["state"], "pending");
    assert_money(&get_card(&app, &card_id).await, 10_000, 1000, 9000);

    let response = capture(&app, &hold_id, json!({"amount": 500, "currency": "USD"})).await;
    response.assert_status(200);
    assert_eq!(response.body["amount"], 500);
    TestApp::assert_sound(&app.verify().await);
}
