//! API keys (`/v1/api_keys`, docs/API.md "API keys"): several per merchant, named and scoped,
//! shown once, listed without their secret, rotated with a grace period and revoked; each
//! scope enforced on every front-end, a refusal in that front-end's own shape (403).

use giftd_testkit::{TestApp, TestResponse};
use serde_json::{Value, json};

async fn create_key(app: &TestApp, body: Value) -> Value {
    let created = app.post("/v1/api_keys", body).await;
    created.assert_status(201);
    created.body
}

fn secret(key: &Value) -> String {
    key["key"].as_str().expect("the key, shown once").to_owned()
}

async fn get_with(app: &TestApp, path: &str, key: &str) -> TestResponse {
    app.get_as(path, key).await
}

async fn post_with(app: &TestApp, path: &str, key: &str, body: Value) -> TestResponse {
    app.send(app.client.post(app.url(path)).bearer_auth(key).json(&body))
        .await
}

async fn listed(app: &TestApp) -> Vec<Value> {
    let list = app.get("/v1/api_keys").await;
    list.assert_status(200);
    list.body["data"].as_array().expect("data").clone()
}

#[tokio::test]
async fn a_key_is_shown_once_listed_without_its_secret_and_stops_working_when_revoked() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(5000).await;
    let till = create_key(&app, json!({"name": "till 4", "scope": "pos"})).await;
    let key = secret(&till);
    assert_eq!(till["object"], "api_key");
    assert_eq!(till["scope"], "pos");
    assert_eq!(till["name"], "till 4");
    assert_eq!(till["prefix"], &key[..8]);
    assert!(till["id"].as_str().unwrap().starts_with("key_"));

    // The merchant's first key is there too: full, named default.
    let keys = listed(&app).await;
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter().all(|k| k.get("key").is_none()),
        "never the secret again"
    );
    let first = keys
        .iter()
        .find(|k| k["name"] == "default")
        .expect("the first key");
    assert_eq!(first["scope"], "full");

    let card_path = format!("/v1/cards/{}", card["id"].as_str().unwrap());
    get_with(&app, &card_path, &key).await.assert_status(200);
    // Its use is recorded (without making the request wait for it).
    let mut used = Value::Null;
    for _ in 0..100 {
        let keys = listed(&app).await;
        used = keys.iter().find(|k| k["id"] == till["id"]).unwrap()["last_used_at"].clone();
        if used.is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(used.is_string(), "last_used_at is recorded");

    let revoked = app
        .post(
            &format!("/v1/api_keys/{}/revoke", till["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    revoked.assert_status(200);
    assert!(revoked.body["revoked_at"].is_string());
    get_with(&app, &card_path, &key)
        .await
        .assert_error(401, "unauthorized");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_pos_key_does_a_tills_work_and_nothing_more_on_every_front_end() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(5000).await;
    let card_id = card["id"].as_str().unwrap();
    let key = secret(&create_key(&app, json!({"name": "till", "scope": "pos"})).await);

    // A till's work.
    post_with(
        &app,
        &format!("/v1/cards/{card_id}/redeem"),
        &key,
        json!({"amount": 100}),
    )
    .await
    .assert_status(200);
    post_with(
        &app,
        &format!("/v1/cards/{card_id}/load"),
        &key,
        json!({"amount": 100}),
    )
    .await
    .assert_status(200);
    post_with(
        &app,
        "/v1/cards/lookup",
        &key,
        json!({"number": card["number"], "security_code": card["security_code"]}),
    )
    .await
    .assert_status(200);
    // The till's vendor front-ends take it (here: a request they refuse for its content).
    let clover = app
        .send(
            app.client
                .post(app.url("/clover/v1/charges"))
                .bearer_auth(&key)
                .json(&json!({})),
        )
        .await;
    assert_eq!(clover.status.as_u16(), 400, "{}", clover.text);

    // Nothing more, each refusal in its front-end's shape.
    let native = post_with(
        &app,
        "/v1/programs",
        &key,
        json!({"name": "No", "currency": "USD"}),
    )
    .await;
    native.assert_error(403, "insufficient_scope");
    get_with(&app, "/v1/api_keys", &key)
        .await
        .assert_error(403, "insufficient_scope");
    let cashout = post_with(&app, &format!("/v1/cards/{card_id}/cashout"), &key, json!({})).await;
    cashout.assert_error(403, "insufficient_scope");
    let gr4vy = post_with(
        &app,
        "/gr4vy/transactions",
        &key,
        json!({"amount": 100, "currency": "USD"}),
    )
    .await;
    assert_eq!(gr4vy.status.as_u16(), 403, "{}", gr4vy.text);
    assert_eq!(gr4vy.body["type"], "error");
    assert_eq!(gr4vy.body["code"], "forbidden");
    assert_eq!(gr4vy.body["details"][0]["type"], "insufficient_scope");
    // Reads are allowed.
    get_with(&app, "/v1/programs", &key).await.assert_status(200);
    assert_eq!(
        app.get(&format!("/v1/cards/{card_id}")).await.body["balance"],
        5000
    );
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_read_only_key_reads_and_every_front_end_refuses_it_a_write_in_its_own_shape() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(5000).await;
    let card_id = card["id"].as_str().unwrap();
    let key = secret(&create_key(&app, json!({"name": "auditor", "scope": "read_only"})).await);

    get_with(&app, &format!("/v1/cards/{card_id}"), &key)
        .await
        .assert_status(200);
    get_with(&app, &format!("/v1/cards/{card_id}/transactions"), &key)
        .await
        .assert_status(200);
    get_with(&app, "/gr4vy/transactions", &key)
        .await
        .assert_status(200);

    post_with(
        &app,
        &format!("/v1/cards/{card_id}/redeem"),
        &key,
        json!({"amount": 100}),
    )
    .await
    .assert_error(403, "insufficient_scope");
    let clover = post_with(&app, "/clover/v1/charges", &key, json!({})).await;
    assert_eq!(clover.status.as_u16(), 403, "{}", clover.text);
    assert_eq!(
        clover.body["error"]["code"], "insufficient_scope",
        "{}",
        clover.text
    );
    let terminal = app
        .send(
            app.client
                .post(app.url("/sync"))
                .header("x-api-key", &key)
                .json(&json!({"SaleToPOIRequest": {}})),
        )
        .await;
    assert_eq!(terminal.status.as_u16(), 403, "{}", terminal.text);
    assert_eq!(terminal.body["errorType"], "security", "{}", terminal.text);
    let stored_value = app
        .send(
            app.client
                .post(app.url("/pal/servlet/StoredValue/v46/checkBalance"))
                .header("x-api-key", &key)
                .json(&json!({})),
        )
        .await;
    assert_eq!(stored_value.status.as_u16(), 403, "{}", stored_value.text);
    assert_eq!(
        stored_value.body["errorType"], "security",
        "{}",
        stored_value.text
    );
    assert_eq!(
        app.get(&format!("/v1/cards/{card_id}")).await.body["balance"],
        5000
    );
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_rotated_key_keeps_working_for_its_grace_period_and_an_expiring_key_stops_on_time() {
    let app = TestApp::spawn().await;
    let old = create_key(&app, json!({"name": "shop", "scope": "pos"})).await;
    let old_key = secret(&old);
    let rotated = app
        .post(
            &format!("/v1/api_keys/{}/rotate", old["id"].as_str().unwrap()),
            json!({"grace_seconds": 60}),
        )
        .await;
    rotated.assert_status(201);
    let new_key = secret(&rotated.body);
    assert_ne!(new_key, old_key);
    assert_eq!(
        (rotated.body["name"].as_str(), rotated.body["scope"].as_str()),
        (Some("shop"), Some("pos"))
    );
    // Both work during the grace period; then only the new one.
    get_with(&app, "/v1/programs", &old_key).await.assert_status(200);
    get_with(&app, "/v1/programs", &new_key).await.assert_status(200);
    let listed_old = listed(&app)
        .await
        .into_iter()
        .find(|k| k["id"] == old["id"])
        .unwrap();
    assert!(listed_old["expires_at"].is_string());
    app.clock.advance_seconds(61);
    get_with(&app, "/v1/programs", &old_key)
        .await
        .assert_error(401, "unauthorized");
    get_with(&app, "/v1/programs", &new_key).await.assert_status(200);
    // An expired key cannot be rotated.
    let again = app
        .post(
            &format!("/v1/api_keys/{}/rotate", old["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    again.assert_error(400, "invalid_request");

    // A key made to expire keeps its expiry through a rotation.
    let expires_at = "2100-01-01T00:00:00Z";
    let dated = create_key(&app, json!({"name": "temp", "expires_at": expires_at})).await;
    assert_eq!(dated["expires_at"], "2100-01-01T00:00:00.000Z");
    let dated_again = app
        .post(
            &format!("/v1/api_keys/{}/rotate", dated["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    dated_again.assert_status(201);
    assert_eq!(dated_again.body["expires_at"], "2100-01-01T00:00:00.000Z");
    // And one whose time has come stops.
    let soon = create_key(
        &app,
        json!({"name": "soon", "expires_at": "2100-01-01T00:00:00Z"}),
    )
    .await;
    get_with(&app, "/v1/programs", &secret(&soon))
        .await
        .assert_status(200);
    for (body, param) in [
        (json!({"name": "x", "scope": "admin"}), "scope"),
        (json!({"name": ""}), "name"),
        (
            json!({"name": "x", "expires_at": "2000-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (json!({"name": "x", "expires_at": "tomorrow"}), "expires_at"),
    ] {
        let refused = app.post("/v1/api_keys", body.clone()).await;
        assert_eq!(refused.status.as_u16(), 400, "{body}: {}", refused.text);
        assert_eq!(refused.body["error"]["param"], param, "{body}");
    }
    let too_long = app
        .post(
            &format!("/v1/api_keys/{}/rotate", rotated.body["id"].as_str().unwrap()),
            json!({"grace_seconds": 99_999_999}),
        )
        .await;
    assert_eq!(
        too_long.body["error"]["param"], "grace_seconds",
        "{}",
        too_long.text
    );
    // Another merchant's key is not found.
    let other = app.another_merchant().await;
    let theirs = post_with(
        &app,
        &format!("/v1/api_keys/{}/revoke", rotated.body["id"].as_str().unwrap()),
        &other,
        json!({}),
    )
    .await;
    theirs.assert_error(404, "not_found");
    get_with(&app, "/v1/programs", &new_key).await.assert_status(200);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_merchant_has_at_most_a_hundred_working_keys_and_an_unknown_key_is_not_found() {
    let app = TestApp::spawn().await;
    // The first key, made with the merchant, counts.
    for i in 1..100 {
        create_key(&app, json!({"name": format!("till {i}"), "scope": "pos"})).await;
    }
    assert_eq!(listed(&app).await.len(), 100);
    let refused = app.post("/v1/api_keys", json!({"name": "one too many"})).await;
    assert_eq!(refused.status.as_u16(), 400, "{}", refused.text);
    assert!(refused.text.contains("at most 100"), "{}", refused.text);
    assert_eq!(listed(&app).await.len(), 100, "nothing was made");
    // A revoked key makes room; a rotation replaces a key and needs none.
    let keys = listed(&app).await;
    let till = keys.iter().find(|k| k["name"] == "till 1").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = keys.iter().find(|k| k["name"] == "till 2").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(&format!("/v1/api_keys/{other}/rotate"), json!({}))
        .await
        .assert_status(201);
    app.post(&format!("/v1/api_keys/{till}/revoke"), json!({}))
        .await
        .assert_status(200);
    app.clock.advance_seconds(24 * 3600 + 1);
    create_key(&app, json!({"name": "after the revoke"})).await;

    for path in [
        "/v1/api_keys/key_00000000000000000000000000000000/rotate",
        "/v1/api_keys/key_00000000000000000000000000000000/revoke",
    ] {
        app.post(path, json!({})).await.assert_error(404, "not_found");
    }
    TestApp::assert_sound(&app.verify().await);
}
