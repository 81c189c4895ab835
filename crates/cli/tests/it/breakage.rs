//! Expiry and breakage (docs/STAFF.md "Expiry and breakage"): a program that takes breakage
//! has the value left on its expired cards moved to its breakage account by the sweeper (an
//! `expiry` transaction), gone from the liability report and counted in the activity report;
//! a program that does not keeps it on the card; an adjustment reinstates an expired card;
//! breakage can be turned off but never on.

use giftd_testkit::TestApp;
use serde_json::{Value, json};

/// Sixty months and a day, in seconds: past the expiry of a card just issued.
const PAST_EXPIRY_SECONDS: i64 = (5 * 366 + 1) * 24 * 3600;

async fn program(app: &TestApp, breakage: bool) -> String {
    app.program(json!({
        "name": if breakage { "Takes breakage" } else { "Keeps value" },
        "currency": "USD",
        "expiry_months": 60,
        "breakage_on_expiry": breakage,
    }))
    .await
}

fn today(app: &TestApp) -> String {
    giftd_domain::Date::of(app.service.now()).to_string()
}

#[tokio::test]
async fn the_sweeper_moves_an_expired_cards_value_to_breakage_only_where_the_program_takes_it() {
    let app = TestApp::spawn().await;
    let taking = program(&app, true).await;
    let keeping = program(&app, false).await;
    let swept = app.card(&taking, 2_500).await;
    let kept = app.card(&keeping, 4_000).await;
    let swept_id = swept["id"].as_str().unwrap();
    let kept_id = kept["id"].as_str().unwrap();
    assert_eq!(
        app.service.expire_due_cards().await.unwrap(),
        0,
        "nothing has expired yet"
    );

    app.clock.advance_seconds(PAST_EXPIRY_SECONDS);
    assert_eq!(app.service.expire_due_cards().await.unwrap(), 1);
    let card = app.get(&format!("/v1/cards/{swept_id}")).await;
    assert_eq!(card.body["balance"], 0);
    let expiry = app.card_transactions_of_type(swept_id, "expiry").await;
    assert_eq!(expiry.len(), 1);
    assert_eq!(
        (expiry[0]["amount"].as_i64(), expiry[0]["balance_after"].as_i64()),
        (Some(2_500), Some(0))
    );
    assert_eq!(
        app.get(&format!("/v1/cards/{kept_id}")).await.body["balance"],
        4_000
    );
    // Nothing is left to sweep, and a second sweep moves nothing twice.
    assert_eq!(app.service.expire_due_cards().await.unwrap(), 0);

    let day = today(&app);
    let liability = app.get(&format!("/v1/reports/liability?as_of={day}")).await;
    let owed: Vec<(String, i64)> = liability.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["program_id"].as_str().unwrap().to_owned(),
                l["liability"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(owed.contains(&(keeping.clone(), 4_000)), "{owed:?}");
    assert!(
        !owed.iter().any(|(p, amount)| p == &taking && *amount != 0),
        "{owed:?}"
    );
    let activity = app
        .get(&format!("/v1/reports/activity?from={day}&to={day}"))
        .await;
    let breakage = activity.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["type"] == "expiry")
        .unwrap()
        .clone();
    assert_eq!(
        (breakage["program_id"].as_str(), breakage["amount"].as_i64()),
        (Some(taking.as_str()), Some(2_500))
    );
    // The sweeper has no request behind it: its expiry came through giftd itself.
    let channels = app
        .get(&format!("/v1/reports/channels?from={day}&to={day}"))
        .await;
    channels.assert_status(200);
    let expiry: Vec<&Value> = channels.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["type"] == "expiry")
        .collect();
    assert_eq!(expiry.len(), 1, "{}", channels.text);
    assert_eq!(
        (expiry[0]["channel"].as_str(), expiry[0]["amount"].as_i64()),
        (Some("system"), Some(2_500))
    );
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn an_adjustment_reinstates_an_expired_card_with_a_new_expiry() {
    let app = TestApp::spawn().await;
    let taking = program(&app, true).await;
    let card = app.card(&taking, 2_500).await;
    let card_id = card["id"].as_str().unwrap();
    app.clock.advance_seconds(PAST_EXPIRY_SECONDS);
    app.service.expire_due_cards().await.unwrap();
    app.post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 100}))
        .await
        .assert_error(422, "card_expired");

    let reinstated = app
        .post(
            &format!("/v1/cards/{card_id}/adjustments"),
            json!({"amount": 2_500, "reason": "goodwill", "note": "customer called after expiry"}),
        )
        .await;
    reinstated.assert_status(201);
    let card = app.get(&format!("/v1/cards/{card_id}")).await;
    assert_eq!(card.body["balance"], 2_500);
    let expires_at = card.body["expires_at"].as_str().unwrap();
    let renewed = giftd_api::edge::parse_rfc3339(expires_at).unwrap();
    assert!(renewed > app.service.now(), "a new expiry: {expires_at}");
    app.post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 100}))
        .await
        .assert_status(200);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn breakage_can_be_turned_off_but_never_on_and_needs_cards_that_expire() {
    let app = TestApp::spawn().await;
    let keeping = program(&app, false).await;
    let taking = program(&app, true).await;
    let patch = |id: &str, body: Value| {
        app.send(
            app.client
                .patch(app.url(&format!("/v1/programs/{id}")))
                .bearer_auth(&app.api_key)
                .json(&body),
        )
    };
    patch(&keeping, json!({"breakage_on_expiry": true}))
        .await
        .assert_error(400, "invalid_request");
    let off = patch(&taking, json!({"breakage_on_expiry": false})).await;
    off.assert_status(200);
    assert_eq!(off.body["breakage_on_expiry"], false);
    app.post(
        "/v1/programs",
        json!({"name": "Never expires", "currency": "USD", "breakage_on_expiry": true}),
    )
    .await
    .assert_error(400, "invalid_request");
}
