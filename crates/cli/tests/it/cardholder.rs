//! The cardholder page (`/g/{token}`) and its links: a gift returns the recipient's page, which
//! shows the card's value, number, code and symbols with headers that keep it out of caches,
//! referrers and search engines; a revoked, unknown or malformed token is the same 404; a new
//! link takes over the code; a card that changes hands ends the sender's links; guessing
//! tokens is rate limited; the token is never stored in clear; links are the merchant's own.

use std::time::Duration;

use giftd_api::ApiConfig;
use giftd_api::guard::RateLimits;
use giftd_testkit::{TestApp, TestResponse};
use serde_json::{Value, json};

/// A new card of `program` gifted from `from` to `to`, worth `amount`.
async fn gift_new(app: &TestApp, program: &str, from: &str, to: &str, amount: i64) -> Value {
    let gift = app
        .post(
            "/v1/gifts",
            json!({"sender_user_id": from, "recipient_user_id": to, "program_id": program,
                   "amount": amount, "funding_reference": "ch_1"}),
        )
        .await;
    gift.assert_status(201);
    gift.body
}

/// The page at `url`, asked for as a browser would, without any key.
async fn page(app: &TestApp, url: &str) -> TestResponse {
    app.send(app.client.get(url)).await
}

fn url_of(link: &Value) -> String {
    link["url"].as_str().expect("a link's url").to_owned()
}

async fn delete(app: &TestApp, path: &str) -> TestResponse {
    app.send(app.client.delete(app.url(path)).bearer_auth(&app.api_key))
        .await
}

#[tokio::test]
async fn a_gift_of_a_new_card_answers_the_recipients_page_with_its_number_code_and_value() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let gift = gift_new(&app, &program, "lea", "max", 2500).await;
    let card = &gift["card"];
    let link = &gift["cardholder_link"];
    assert_eq!(link["object"], "cardholder_link");
    assert_eq!(link["card_id"], card["id"]);
    assert_eq!(link["shows_security_code"], true);
    let url = url_of(link);
    let token = url
        .strip_prefix(&format!("{}/g/", app.address))
        .expect("the page is on this server");
    // 256 random bits in unpadded base64url.
    assert_eq!(token.len(), 43);

    let shown = page(&app, &url).await;
    shown.assert_status(200);
    let number = card["number"].as_str().expect("the new card's number");
    let grouped: Vec<&str> = (0..number.len())
        .step_by(4)
        .map(|i| &number[i..(i + 4).min(number.len())])
        .collect();
    assert!(shown.text.contains(&grouped.join(" ")), "{}", shown.text);
    let code = card["security_code"].as_str().expect("its code");
    assert!(shown.text.contains(&format!(">{code}<")));
    assert!(shown.text.contains("25.00 USD"));
    assert!(shown.text.contains("Initial value"));
    assert_eq!(shown.text.matches("<svg ").count(), 2, "a barcode and a QR code");
    for (header, value) in [
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("x-robots-tag", "noindex, nofollow"),
        ("x-frame-options", "DENY"),
        ("content-type", "text/html; charset=utf-8"),
    ] {
        assert_eq!(shown.headers[header], value, "{header}");
    }
    let policy = shown.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'none'") && !policy.contains("script"));
    assert!(shown.headers.get("set-cookie").is_none());

    // The stylesheet the policy allows is there.
    let css = page(&app, &app.url("/g/assets/cardholder.css")).await;
    css.assert_status(200);
    assert!(
        css.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );

    // What the page shows follows the card.
    let id = card["id"].as_str().unwrap();
    app.post(&format!("/v1/cards/{id}/redeem"), json!({"amount": 700}))
        .await
        .assert_status(200);
    let after = page(&app, &url).await;
    assert!(after.text.contains("18.00 USD"));
    assert!(after.text.contains("Spent"));

    // The token is kept only as its keyed hash.
    let stored = app.stored_bytes().await;
    assert!(
        !stored.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token is stored in clear"
    );
    assert!(
        !stored
            .windows(code.len() + 2)
            .any(|w| w == format!("\"{code}\"").as_bytes())
    );
}

#[tokio::test]
async fn a_revoked_token_an_unknown_one_and_a_malformed_one_get_the_same_404() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let gift = gift_new(&app, &program, "lea", "max", 1000).await;
    let url = url_of(&gift["cardholder_link"]);
    let card_id = gift["card"]["id"].as_str().unwrap().to_owned();
    let link_id = gift["cardholder_link"]["id"].as_str().unwrap().to_owned();

    let revoked = delete(&app, &format!("/v1/cards/{card_id}/cardholder_links/{link_id}")).await;
    revoked.assert_status(200);
    assert!(revoked.body["revoked_at"].is_string());
    assert!(revoked.body.get("url").is_none());
    // Revoking again answers the same revocation.
    let again = delete(&app, &format!("/v1/cards/{card_id}/cardholder_links/{link_id}")).await;
    again.assert_status(200);
    assert_eq!(again.body["revoked_at"], revoked.body["revoked_at"]);

    let gone = page(&app, &url).await;
    gone.assert_status(404);
    let unknown = page(&app, &app.url(&format!("/g/{}", "A".repeat(43)))).await;
    let malformed = page(&app, &app.url("/g/not-a-token")).await;
    for other in [&unknown, &malformed] {
        other.assert_status(404);
        assert_eq!(other.text, gone.text);
        assert_eq!(other.headers["cache-control"], "no-store");
    }

    // A new link for the cardholder shows the code the revoked one showed.
    let new = app
        .post(&format!("/v1/cards/{card_id}/cardholder_links"), json!({}))
        .await;
    new.assert_status(201);
    assert_eq!(new.body["shows_security_code"], true);
    let code = gift["card"]["security_code"].as_str().unwrap();
    let shown = page(&app, &url_of(&new.body)).await;
    shown.assert_status(200);
    assert!(shown.text.contains(&format!(">{code}<")));

    let listed = app.get(&format!("/v1/cards/{card_id}/cardholder_links")).await;
    listed.assert_status(200);
    let links = listed.body["data"].as_array().unwrap();
    assert_eq!(links.len(), 2);
    assert_eq!(links[0]["id"], new.body["id"], "newest first");
    assert!(links[1]["revoked_at"].is_string());
    assert!(
        links.iter().all(|l| l.get("url").is_none()),
        "an address is shown once"
    );

    delete(
        &app,
        &format!("/v1/cards/{card_id}/cardholder_links/chl_0123456789"),
    )
    .await
    .assert_error(404, "not_found");
    app.post(
        &format!("/v1/cards/{card_id}/cardholder_links"),
        json!({"security_code": "1"}),
    )
    .await
    .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn a_card_that_changes_hands_ends_the_senders_links_and_the_recipients_shows_the_code() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let first = gift_new(&app, &program, "lea", "max", 1000).await;
    let card_id = first["card"]["id"].as_str().unwrap().to_owned();
    let code = first["card"]["security_code"].as_str().unwrap().to_owned();
    let max_url = url_of(&first["cardholder_link"]);

    let second = app
        .post(
            "/v1/gifts",
            json!({"sender_user_id": "max", "recipient_user_id": "noa", "card_id": card_id}),
        )
        .await;
    second.assert_status(201);
    let noa_url = url_of(&second.body["cardholder_link"]);
    page(&app, &max_url).await.assert_status(404);
    let shown = page(&app, &noa_url).await;
    shown.assert_status(200);
    assert!(shown.text.contains(&format!(">{code}<")));
}

#[tokio::test]
async fn a_card_without_a_code_at_hand_gets_a_page_without_one() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1500).await;
    let id = card["id"].as_str().unwrap();
    let link = app
        .post(&format!("/v1/cards/{id}/cardholder_links"), json!({}))
        .await;
    link.assert_status(201);
    assert_eq!(link.body["shows_security_code"], false);
    let shown = page(&app, &url_of(&link.body)).await;
    shown.assert_status(200);
    assert!(shown.text.contains("15.00 USD"));
    assert!(!shown.text.contains("id=\"security-code\""));
    assert!(shown.text.contains("Not shown on this page"));
}

#[tokio::test]
async fn a_frozen_card_says_so_on_its_page() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let gift = gift_new(&app, &program, "lea", "max", 1000).await;
    let id = gift["card"]["id"].as_str().unwrap();
    app.post(&format!("/v1/cards/{id}/freeze"), json!({}))
        .await
        .assert_status(200);
    let shown = page(&app, &url_of(&gift["cardholder_link"])).await;
    assert!(shown.text.contains("Blocked"));
}

#[tokio::test]
async fn links_belong_to_their_merchant_and_a_till_key_cannot_make_them() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1500).await;
    let id = card["id"].as_str().unwrap();
    let other = app.another_merchant().await;
    app.post_as(
        &format!("/v1/cards/{id}/cardholder_links"),
        json!({}),
        &other,
        None,
    )
    .await
    .assert_error(404, "not_found");
    app.get_as(&format!("/v1/cards/{id}/cardholder_links"), &other)
        .await
        .assert_error(404, "not_found");

    let pos = app
        .post("/v1/api_keys", json!({"name": "till", "scope": "pos"}))
        .await;
    pos.assert_status(201);
    let pos_key = pos.body["key"].as_str().unwrap();
    app.post_as(
        &format!("/v1/cards/{id}/cardholder_links"),
        json!({}),
        pos_key,
        None,
    )
    .await
    .assert_error(403, "insufficient_scope");
}

#[tokio::test]
async fn a_card_has_at_most_ten_links_that_work() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1500).await;
    let id = card["id"].as_str().unwrap();
    let path = format!("/v1/cards/{id}/cardholder_links");
    let mut first = None;
    for _ in 0..giftd_service::cardholder::MAX_LIVE_LINKS_PER_CARD {
        let made = app.post(&path, json!({})).await;
        made.assert_status(201);
        first.get_or_insert(made.body["id"].as_str().unwrap().to_owned());
    }
    let refused = app.post(&path, json!({})).await;
    refused.assert_error(400, "invalid_request");
    delete(&app, &format!("{path}/{}", first.unwrap()))
        .await
        .assert_status(200);
    app.post(&path, json!({})).await.assert_status(201);
}

#[tokio::test]
async fn a_card_has_at_most_a_hundred_links_in_all_revoked_ones_included() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1500).await;
    let id = card["id"].as_str().unwrap();
    let path = format!("/v1/cards/{id}/cardholder_links");
    let most = giftd_store::MAX_LINKS_LISTED;
    for _ in 0..most {
        let made = app.post(&path, json!({})).await;
        made.assert_status(201);
        let link = made.body["id"].as_str().unwrap();
        delete(&app, &format!("{path}/{link}")).await.assert_status(200);
    }
    let refused = app.post(&path, json!({})).await;
    refused.assert_error(400, "invalid_request");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("{most} cardholder links"))),
        "{}",
        refused.text
    );
    let listed = app.get(&path).await;
    listed.assert_status(200);
    assert_eq!(listed.body["data"].as_array().map(Vec::len), Some(most as usize));
}

#[tokio::test]
async fn guessing_tokens_is_limited_per_address() {
    let app = TestApp::spawn_with(ApiConfig {
        rate_limits: RateLimits {
            per_key: 0,
            per_address: 5,
            period: Duration::from_secs(60),
            client_address_header: None,
        },
        ..ApiConfig::default()
    })
    .await;
    let mut statuses = Vec::new();
    for attempt in 0..7 {
        let guess = page(&app, &app.url(&format!("/g/{}{attempt}", "B".repeat(42)))).await;
        statuses.push(guess.status.as_u16());
        if guess.status == 429 {
            assert!(guess.headers.contains_key("retry-after"));
            assert_eq!(guess.headers["cache-control"], "no-store");
        }
    }
    assert_eq!(statuses, [404, 404, 404, 404, 404, 429, 429]);
    // The stylesheet does not count.
    page(&app, &app.url("/g/assets/cardholder.css"))
        .await
        .assert_status(200);
}

#[tokio::test]
async fn a_configured_public_url_is_where_links_point() {
    let app = TestApp::spawn_with(ApiConfig {
        public_url: Some("https://gift.example.com".into()),
        ..ApiConfig::default()
    })
    .await;
    let program = app.usd_program().await;
    let gift = gift_new(&app, &program, "lea", "max", 1000).await;
    let url = url_of(&gift["cardholder_link"]);
    assert!(url.starts_with("https://gift.example.com/g/"), "{url}");
    // The same token on this server is the page.
    let token = url.rsplit('/').next().unwrap();
    page(&app, &app.url(&format!("/g/{token}")))
        .await
        .assert_status(200);
}

/// Renames a table of the app's database under it, as an outage of that part of the store.
async fn rename_table(app: &TestApp, from: &str, to: &str) {
    let statement = format!("ALTER TABLE {from} RENAME TO {to}");
    match &app.postgres {
        Some(database) => {
            use sqlx::Connection as _;
            let mut connection = sqlx::PgConnection::connect(&database.url)
                .await
                .expect("connect to the test database");
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(&mut connection)
                .await
                .expect("rename the table");
        }
        None => {
            let mut connection = giftd_store::sqlite::SqliteStore::raw_connection(&app.database_path())
                .await
                .expect("open the database");
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(&mut connection)
                .await
                .expect("rename the table");
        }
    }
}

#[tokio::test]
async fn a_page_the_store_cannot_read_is_a_503_that_shows_nothing_and_asks_to_try_again() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let gift = gift_new(&app, &program, "lea", "max", 2500).await;
    let url = url_of(&gift["cardholder_link"]);
    page(&app, &url).await.assert_status(200);

    rename_table(&app, "cardholder_links", "cardholder_links_away").await;
    let down = page(&app, &url).await;
    down.assert_status(503);
    assert!(down.text.contains("cannot be shown right now"), "{}", down.text);
    assert!(!down.text.contains("25.00"), "no card data: {}", down.text);
    assert_eq!(
        down.headers["cache-control"], "no-store",
        "a 503 is not kept either"
    );
    assert!(down.headers.get("set-cookie").is_none());

    rename_table(&app, "cardholder_links_away", "cardholder_links").await;
    let back = page(&app, &url).await;
    back.assert_status(200);
    assert!(back.text.contains("25.00 USD"));
}
