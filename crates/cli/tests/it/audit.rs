//! The audit trail (`GET /v1/audit_events`, docs/STAFF.md "Audit trail"): each state-changing
//! request recorded once, with who, what, from where and how it ended, in the transaction of its
//! effect (a refusal recorded, never an effect); requests refused before any command recorded
//! on their own; redemptions decided together in memory recorded one by one; filters and pages;
//! and no secret in it.

use giftd_testkit::{TestApp, TestResponse};
use serde_json::{Value, json};

/// Every row of the merchant's audit trail, newest first, through the API's pages.
async fn trail(app: &TestApp, query: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/audit_events?limit=100{query}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = app.get(&path).await;
        page.assert_status(200);
        rows.extend(page.body["data"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return rows,
        }
    }
}

/// The rows of one request, by its id.
async fn rows_of(app: &TestApp, response: &TestResponse) -> Vec<Value> {
    let request_id = response.headers["x-request-id"].to_str().unwrap().to_owned();
    trail(app, "")
        .await
        .into_iter()
        .filter(|row| row["request_id"] == request_id.as_str())
        .collect()
}

async fn the_key_id(app: &TestApp) -> String {
    let keys = app.get("/v1/api_keys").await;
    keys.body["data"][0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_redemption_is_recorded_once_with_who_what_where_and_its_outcome() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(5_000).await;
    let card_id = card["id"].as_str().unwrap();
    let key_id = the_key_id(&app).await;
    let redeemed = app
        .post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 1_200}))
        .await;
    redeemed.assert_status(200);
    let rows = rows_of(&app, &redeemed).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["object"], "audit_event");
    assert_eq!(row["actor"], json!({"type": "api_key", "id": key_id}));
    assert_eq!(row["client_address"], "127.0.0.1");
    assert_eq!(row["method"], "POST");
    assert_eq!(row["path"], format!("/v1/cards/{card_id}/redeem"));
    assert_eq!(row["operation"], "Command::Redeem");
    assert_eq!(row["outcome"], "succeeded");
    assert_eq!(row["status"], 200);
    assert_eq!(row["reason"], Value::Null);
    let objects = row["object_ids"].as_array().unwrap();
    assert!(objects.contains(&json!(card_id)));
    assert!(
        objects.contains(&redeemed.body["id"]),
        "the redemption's transaction"
    );

    // A read leaves nothing.
    let read = app.get(&format!("/v1/cards/{card_id}")).await;
    assert!(rows_of(&app, &read).await.is_empty());

    // A retry with the same key is recorded as replayed, and changes nothing.
    let path = format!("/v1/cards/{card_id}/redeem");
    let first = app
        .post_idempotent(&path, json!({"amount": 100}), "audit-1")
        .await;
    let again = app
        .post_idempotent(&path, json!({"amount": 100}), "audit-1")
        .await;
    assert_eq!(first.text, again.text);
    assert_eq!(rows_of(&app, &first).await[0]["outcome"], "succeeded");
    let replayed = rows_of(&app, &again).await;
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0]["outcome"], "replayed");
    // The same key with another request is refused, and that refusal recorded.
    let reused = app
        .post_idempotent(&path, json!({"amount": 200}), "audit-1")
        .await;
    reused.assert_error(409, "idempotency_key_reused");
    let refused = rows_of(&app, &reused).await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(
        (refused[0]["outcome"].as_str(), refused[0]["status"].as_i64()),
        (Some("refused"), Some(409))
    );
}

#[tokio::test]
async fn a_refused_command_leaves_its_refusal_recorded_and_no_effect() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1_000).await;
    let card_id = card["id"].as_str().unwrap();
    let refused = app
        .post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 5_000}))
        .await;
    refused.assert_error(422, "insufficient_funds");
    let rows = rows_of(&app, &refused).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["outcome"], "refused");
    assert_eq!(rows[0]["status"], 422);
    assert!(
        rows[0]["reason"].as_str().unwrap().contains("insufficient funds"),
        "{}",
        rows[0]
    );
    let after = app.get(&format!("/v1/cards/{card_id}")).await;
    assert_eq!(after.body["balance"], 1_000);
    let history = app.get(&format!("/v1/cards/{card_id}/transactions")).await;
    assert_eq!(
        history.body["data"].as_array().unwrap().len(),
        1,
        "the issue only"
    );

    // Refused before any command ran: a malformed body, recorded on its own.
    let malformed = app
        .post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": "lots"}))
        .await;
    malformed.assert_status(400);
    let rows = rows_of(&app, &malformed).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["outcome"], "refused");
    assert_eq!(rows[0]["operation"], "POST /v1/cards/{id}/redeem");
    // Without a credential nobody can be named: nothing is recorded.
    let anonymous = app
        .send(
            app.client
                .post(app.url(&format!("/v1/cards/{card_id}/redeem")))
                .json(&json!({"amount": 1})),
        )
        .await;
    anonymous.assert_status(401);
    assert!(rows_of(&app, &anonymous).await.is_empty());
}

#[tokio::test]
async fn staff_sign_ins_and_refusals_for_want_of_a_role_are_recorded_against_the_staff_member() {
    let app = TestApp::spawn().await;
    let invited = app
        .post(
            "/v1/staff",
            json!({"email": "sue@example.com", "role": "support"}),
        )
        .await;
    invited.assert_status(201);
    let staff_id = invited.body["id"].as_str().unwrap().to_owned();
    let password = invited.body["temporary_password"].as_str().unwrap().to_owned();
    let sign_in = |password: String| {
        app.send(
            app.client
                .post(app.url("/v1/sessions"))
                .json(&json!({"email": "sue@example.com", "password": password})),
        )
    };
    let wrong = sign_in("not the password".into()).await;
    wrong.assert_error(401, "invalid_credentials");
    let wrong_rows = rows_of(&app, &wrong).await;
    assert_eq!(wrong_rows.len(), 1);
    assert_eq!(wrong_rows[0]["actor"], json!({"type": "staff", "id": staff_id}));
    assert_eq!(wrong_rows[0]["operation"], "StaffCommand::SignIn");
    assert_eq!(wrong_rows[0]["outcome"], "refused");

    let signed_in = sign_in(password.clone()).await;
    signed_in.assert_status(201);
    let token = signed_in.body["token"].as_str().unwrap().to_owned();
    let rows = rows_of(&app, &signed_in).await;
    assert_eq!(rows[0]["outcome"], "succeeded");
    assert!(
        rows[0]["object_ids"]
            .as_array()
            .unwrap()
            .contains(&signed_in.body["id"]),
        "the session"
    );
    app.post_as(
        "/v1/staff/me/password",
        json!({"current_password": password, "new_password": "a long enough passphrase"}),
        &token,
        None,
    )
    .await
    .assert_status(200);
    let refused = app
        .post_as(
            "/v1/programs",
            json!({"name": "x", "currency": "USD"}),
            &token,
            None,
        )
        .await;
    refused.assert_error(403, "insufficient_role");
    let rows = rows_of(&app, &refused).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor"]["id"], staff_id.as_str());
    assert_eq!(rows[0]["status"], 403);
    assert_eq!(rows[0]["operation"], "POST /v1/programs");

    // Filters: by actor, and by outcome.
    let by_staff = trail(&app, &format!("&actor_id={staff_id}")).await;
    assert!(by_staff.iter().all(|row| row["actor"]["id"] == staff_id.as_str()));
    assert!(by_staff.len() >= 4, "{by_staff:?}");
    let refusals = trail(&app, "&outcome=refused&actor_type=staff").await;
    assert_eq!(refusals.len(), 2, "the wrong password and the program");
    app.get("/v1/audit_events?outcome=maybe")
        .await
        .assert_error(400, "invalid_request");
    app.get("/v1/audit_events?created_from=yesterday")
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn concurrent_redemptions_decided_together_are_each_recorded_exactly_once() {
    let app = TestApp::spawn().await;
    let mut cards = Vec::new();
    for _ in 0..4 {
        cards.push(app.funded_card(10_000).await["id"].as_str().unwrap().to_owned());
    }
    let requests = (0..64).map(|i| {
        let path = format!("/v1/cards/{}/redeem", cards[i % cards.len()]);
        let app = &app;
        async move { app.post(&path, json!({"amount": 100 + i as i64})).await }
    });
    let answers = futures::future::join_all(requests).await;
    let mut transaction_ids: Vec<String> = answers
        .iter()
        .map(|answer| {
            answer.assert_status(200);
            answer.body["id"].as_str().unwrap().to_owned()
        })
        .collect();
    transaction_ids.sort();
    let mut recorded: Vec<String> = trail(&app, "&outcome=succeeded")
        .await
        .iter()
        .filter(|row| row["operation"] == "Command::Redeem")
        .map(|row| {
            let objects = row["object_ids"].as_array().unwrap();
            objects
                .iter()
                .find(|id| id.as_str().unwrap().starts_with("txn_"))
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    recorded.sort();
    assert_eq!(
        recorded, transaction_ids,
        "one row per redemption, naming its transaction"
    );
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn pages_follow_each_other_newest_first_and_the_trail_holds_no_secret() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(5_000).await;
    let card_id = card["id"].as_str().unwrap();
    for _ in 0..5 {
        app.post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 10}))
            .await
            .assert_status(200);
    }
    app.post(
        "/v1/cards/lookup",
        json!({"number": card["number"], "security_code": card["security_code"]}),
    )
    .await
    .assert_status(200);
    let first = app.get("/v1/audit_events?limit=2").await;
    first.assert_status(200);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app
        .get(&format!("/v1/audit_events?limit=2&cursor={cursor}"))
        .await;
    let ids: Vec<&str> = first.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second.body["data"].as_array().unwrap())
        .map(|row| row["id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(ids, sorted, "newest first, no row twice");
    let by_card = trail(&app, &format!("&object_id={card_id}")).await;
    assert_eq!(by_card.len(), 7, "the issue, five redemptions and the lookup");

    let everything = serde_json::to_string(&trail(&app, "").await).unwrap();
    for secret in [&card["number"], &card["security_code"]] {
        assert!(
            !everything.contains(secret.as_str().unwrap()),
            "{secret} in the trail"
        );
    }
    assert!(!everything.contains(&app.api_key));
}
