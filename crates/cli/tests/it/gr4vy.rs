//! The Gr4vy-style facade under `/gr4vy` (seed 002, docs/GR4VY.md): gift card balances, the
//! vault of stored gift cards, a buyer's gift cards with the ones that cannot pay cleared out,
//! the limit of 10 cards per buyer with the seed's exact answer, tenant isolation, and Gr4vy's
//! error envelope for every refusal.

use giftd_testkit::{TestApp, TestResponse};
use serde_json::{Value, json};

const LIMIT_MESSAGE: &str =
    "The buyer's gift card count has already reached the maximum limit of 10 gift cards";

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

/// The UUID the Gr4vy facade shows for a giftd id (`card_` and 32 hex digits; docs/GR4VY.md,
/// "Ids").
pub fn uuid_of(id: &str) -> String {
    let hex = id.split_once('_').map_or(id, |(_, hex)| hex);
    assert_eq!(hex.len(), 32, "{id} is not a giftd id");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A native object's id as the Gr4vy facade shows it.
fn gid(value: &Value) -> String {
    uuid_of(&id_of(value))
}

/// The ids of native objects as the Gr4vy facade shows them.
fn gids(items: &[Value]) -> Vec<String> {
    items.iter().map(gid).collect()
}

/// The body a client sends to name a card by its secrets.
fn secrets(card: &Value) -> Value {
    json!({"number": card["number"], "pin": card["security_code"]})
}

async fn delete(app: &TestApp, path: &str) -> TestResponse {
    app.send(app.client.delete(app.url(path)).bearer_auth(&app.api_key))
        .await
}

/// Stores `card` (as created, with its secrets) for the buyer with this external identifier.
async fn store(app: &TestApp, buyer: &str, card: &Value) -> TestResponse {
    app.post(
        "/gr4vy/gift-cards",
        json!({"number": card["number"], "pin": card["security_code"], "buyer_external_identifier": buyer}),
    )
    .await
}

async fn balances(app: &TestApp, items: Value) -> Vec<Value> {
    let response = app
        .post("/gr4vy/gift-cards/balances", json!({ "items": items }))
        .await;
    response.assert_status(200);
    response.body["items"].as_array().expect("items").clone()
}

async fn buyer_cards(app: &TestApp, buyer: &str) -> Vec<Value> {
    let response = app
        .get(&format!(
            "/gr4vy/buyers/gift-cards?buyer_external_identifier={buyer}"
        ))
        .await;
    response.assert_status(200);
    response.body["items"].as_array().expect("items").clone()
}

async fn vault(app: &TestApp, query: &str) -> Value {
    let response = app.get(&format!("/gr4vy/gift-cards?{query}")).await;
    response.assert_status(200);
    response.body
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(id_of).collect()
}

/// Gr4vy's error envelope with this status and code; answers its message.
#[track_caller]
fn assert_envelope(response: &TestResponse, status: u16, code: &str) -> String {
    assert_eq!(response.status.as_u16(), status, "body: {}", response.text);
    assert_eq!(response.body["type"], "error", "body: {}", response.text);
    assert_eq!(response.body["code"], code, "body: {}", response.text);
    assert_eq!(response.body["status"], status, "body: {}", response.text);
    assert!(response.body["details"].is_array(), "body: {}", response.text);
    response.body["message"].as_str().expect("a message").to_owned()
}

/// The giftd code a 400 carries in its first detail.
fn detail_type(response: &TestResponse) -> &str {
    response.body["details"][0]["type"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn balances_answer_each_card_in_order_with_its_balance_or_why_not() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let promo = app
        .program(json!({"name": "Promo", "currency": "USD", "promotional": true, "expiry_months": 1}))
        .await;
    let known = app.card(&program, 5000).await;
    let stored = app.card(&program, 1200).await;
    let expiring = app.card(&promo, 700).await;
    let inactive = app
        .post("/v1/cards", json!({"program_id": program, "kind": "physical"}))
        .await;
    inactive.assert_status(201);
    let inactive = inactive.body;
    app.clock.advance_seconds(40 * 24 * 3600);

    let number = known["number"].as_str().unwrap();
    let items = balances(
        &app,
        json!([
            secrets(&known),
            {"number": known["number"], "pin": "0000000"},
            secrets(&inactive),
            secrets(&expiring),
            {"id": id_of(&stored)},
            {"id": "card_doesnotexist"},
        ]),
    )
    .await;
    assert_eq!(items.len(), 6);

    let ok = &items[0];
    assert_eq!(ok["type"], "gift-card");
    assert_eq!(ok["id"], gid(&known));
    assert_eq!(ok["merchant_account_id"], app.merchant_id.as_str());
    assert_eq!(ok["balance"], 5000);
    assert_eq!(ok["currency"], "USD");
    assert_eq!(ok["bin"], number[..6]);
    assert_eq!(ok["sub_bin"], number[6..9]);
    assert_eq!(ok["last4"], number[number.len() - 4..]);
    assert!(ok["balance_error_code"].is_null());
    assert_eq!(ok["usage_count"], 0);

    let wrong_pin = &items[1];
    assert!(wrong_pin["balance"].is_null());
    assert!(wrong_pin["id"].is_null(), "a wrong PIN tells nothing of the card");
    assert_eq!(wrong_pin["balance_error_code"], "invalid_gift_card");
    assert_eq!(wrong_pin["balance_raw_error_code"], "invalid_card");
    assert_eq!(wrong_pin["last4"], number[number.len() - 4..]);

    assert!(items[2]["balance"].is_null());
    assert_eq!(items[2]["balance_error_code"], "inactive_card");
    assert_eq!(items[2]["id"], gid(&inactive));

    assert!(items[3]["balance"].is_null());
    assert_eq!(items[3]["balance_error_code"], "expired_card");
    assert!(items[3]["expiration_date"].is_string());

    assert_eq!(items[4]["id"], gid(&stored));
    assert_eq!(items[4]["balance"], 1200);
    assert_eq!(items[4]["last4"], stored["last4"]);
    // Read by id: the first 9 digits come from the stored (encrypted) number, as strings.
    let stored_number = stored["number"].as_str().unwrap();
    assert_eq!(items[4]["bin"], stored_number[..6]);
    assert_eq!(items[4]["sub_bin"], stored_number[6..9]);

    assert_eq!(items[5]["id"], "card_doesnotexist");
    assert!(items[5]["balance"].is_null());
    assert_eq!(items[5]["balance_error_code"], "invalid_gift_card");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn balances_take_one_to_ten_well_formed_items() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(100).await;
    let eleven: Vec<Value> = (0..11).map(|_| secrets(&card)).collect();
    let response = app
        .post("/gr4vy/gift-cards/balances", json!({ "items": eleven }))
        .await;
    assert_envelope(&response, 400, "bad_request");
    assert_eq!(response.body["details"][0]["pointer"], "/items");
    let ten: Vec<Value> = (0..10).map(|_| secrets(&card)).collect();
    assert_eq!(balances(&app, json!(ten)).await.len(), 10);

    for body in [
        json!({}),
        json!({"items": []}),
        json!({"items": "all of them"}),
        json!({"items": [{"pin": "1234"}]}),
        json!({"items": [{"number": card["number"]}]}),
        json!({"items": [{"number": card["number"], "pin": "1234", "id": id_of(&card)}]}),
        json!({"items": [{"number": 4_111_111_111_111_111_i64, "pin": "1234"}]}),
    ] {
        let response = app.post("/gr4vy/gift-cards/balances", body.clone()).await;
        assert_envelope(&response, 400, "bad_request");
        assert_eq!(
            response.body["details"].as_array().map(Vec::len),
            Some(1),
            "{body}"
        );
    }
    // A number that cannot be a card number is a card that cannot be checked.
    let items = balances(&app, json!([{"number": "not-digits", "pin": "1234"}])).await;
    assert_eq!(items[0]["balance_error_code"], "invalid_gift_card");
}

#[tokio::test]
async fn a_stored_gift_card_is_in_the_buyers_wallet_until_deleted() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(2500).await;
    let number = card["number"].as_str().unwrap();

    let stored = store(&app, "buyer-42", &card).await;
    stored.assert_status(201);
    let body = &stored.body;
    assert_eq!(body["type"], "gift-card");
    assert_eq!(body["id"], gid(&card));
    assert_eq!(body["merchant_account_id"], app.merchant_id.as_str());
    assert_eq!(body["bin"], number[..6]);
    assert_eq!(body["sub_bin"], number[6..9]);
    assert_eq!(body["last4"], card["last4"]);
    assert_eq!(body["gift_card_service"]["type"], "gift-card-service");
    assert_eq!(
        body["gift_card_service"]["gift_card_service_definition_id"],
        "mock-gift-card"
    );
    assert_eq!(body["gift_card_service"]["display_name"], "giftd");
    assert_eq!(body["buyer"]["type"], "buyer");
    let buyer_uuid = body["buyer"]["id"].as_str().expect("a buyer id").to_owned();
    assert_eq!(uuid_of(&buyer_uuid.replace('-', "")), buyer_uuid, "a UUID");
    assert_eq!(body["buyer"]["external_identifier"], "buyer-42");
    assert_eq!(body["buyer"]["reconciliation_id"], "buyer-42");
    assert_eq!(body["buyer"]["merchant_account_id"], app.merchant_id.as_str());
    assert!(body["created_at"].is_string() && body["updated_at"].is_string());
    assert!(body.get("number").is_none() && body.get("pin").is_none());
    // Storing twice changes nothing.
    store(&app, "buyer-42", &card).await.assert_status(201);

    // The buyer is the giftd wallet user of that id.
    let native = app.get("/v1/users/buyer-42/cards").await;
    native.assert_status(200);
    assert_eq!(ids(native.body["data"].as_array().unwrap()), [id_of(&card)]);

    // The buyer's UUID names it as well as its own id does.
    for query in [
        "buyer_external_identifier=buyer-42".to_owned(),
        "buyer_id=buyer-42".to_owned(),
        format!("buyer_id={buyer_uuid}"),
        format!("buyer_id={}", buyer_uuid.to_uppercase()),
    ] {
        let query = query.as_str();
        let listed = vault(&app, query).await;
        assert_eq!(ids(listed["items"].as_array().unwrap()), [gid(&card)], "{query}");
        assert_eq!(listed["limit"], 20);
        assert!(listed["next_cursor"].is_null());
        assert_eq!(listed["items"][0]["buyer"]["id"], buyer_uuid.as_str());
    }
    assert_eq!(buyer_cards(&app, "buyer-42").await[0]["balance"], 2500);
    let by_uuid = app
        .get(&format!("/gr4vy/buyers/gift-cards?buyer_id={buyer_uuid}"))
        .await;
    assert_eq!(by_uuid.body["items"][0]["balance"], 2500, "{}", by_uuid.text);

    let fetched = app.get(&format!("/gr4vy/gift-cards/{}", id_of(&card))).await;
    fetched.assert_status(200);
    assert_eq!(fetched.body["id"], gid(&card));
    // The UUID finds the card as well as giftd's id does.
    let by_uuid = app.get(&format!("/gr4vy/gift-cards/{}", gid(&card))).await;
    assert_eq!(by_uuid.text, fetched.text);
    assert_eq!(fetched.body["last4"], card["last4"]);
    assert_eq!(fetched.body["bin"], number[..6]);
    assert_eq!(fetched.body["sub_bin"], number[6..9]);
    let listed = vault(&app, "buyer_id=buyer-42").await;
    assert_eq!(listed["items"][0]["bin"], number[..6]);
    assert_eq!(buyer_cards(&app, "buyer-42").await[0]["sub_bin"], number[6..9]);

    let deleted = delete(&app, &format!("/gr4vy/gift-cards/{}", id_of(&card))).await;
    deleted.assert_status(204);
    assert!(deleted.text.is_empty());
    assert!(
        vault(&app, "buyer_id=buyer-42").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(buyer_cards(&app, "buyer-42").await.is_empty());
    // The card itself is untouched.
    let still = app.get(&format!("/v1/cards/{}", id_of(&card))).await;
    still.assert_status(200);
    assert_eq!(still.body["balance"], 2500);
    // Deleting a card no buyer holds is no error; an unknown card is.
    delete(&app, &format!("/gr4vy/gift-cards/{}", id_of(&card)))
        .await
        .assert_status(204);
    assert_envelope(
        &delete(&app, "/gr4vy/gift-cards/card_doesnotexist").await,
        404,
        "not_found",
    );
    assert_envelope(
        &app.get("/gr4vy/gift-cards/card_doesnotexist").await,
        404,
        "not_found",
    );
    assert_envelope(&app.get("/gr4vy/gift-cards/not-an-id").await, 404, "not_found");
}

#[tokio::test]
async fn storing_without_a_buyer_checks_the_pin_and_answers_the_card() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(900).await;
    let stored = app.post("/gr4vy/gift-cards", secrets(&card)).await;
    stored.assert_status(201);
    assert_eq!(stored.body["id"], gid(&card));
    assert!(stored.body["buyer"].is_null());

    let wrong = app
        .post(
            "/gr4vy/gift-cards",
            json!({"number": card["number"], "pin": "9999999"}),
        )
        .await;
    assert_envelope(&wrong, 400, "bad_request");
    assert_eq!(detail_type(&wrong), "invalid_card");

    // Every wrong PIN counts toward the lookup's lockout, here as anywhere; one no card can
    // have (`!`) too.
    for attempt in 0..9 {
        let pin = if attempt % 2 == 0 { "9999999" } else { "!" };
        let wrong = store(
            &app,
            "eve",
            &json!({"number": card["number"], "security_code": pin}),
        )
        .await;
        assert_eq!(detail_type(&wrong), "invalid_card");
    }
    let locked = store(&app, "eve", &card).await;
    assert_envelope(&locked, 400, "bad_request");
    assert_eq!(detail_type(&locked), "card_locked");
    let items = balances(&app, json!([secrets(&card)])).await;
    assert_eq!(items[0]["balance_error_code"], "suspected_fraud");
    assert!(items[0]["balance"].is_null());
}

#[tokio::test]
async fn the_eleventh_gift_card_of_a_buyer_is_refused_with_the_seed_message() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let mut cards = Vec::new();
    for _ in 0..11 {
        cards.push(app.card(&program, 100).await);
    }
    for card in &cards[..10] {
        store(&app, "carol", card).await.assert_status(201);
    }
    let refused = store(&app, "carol", &cards[10]).await;
    assert_eq!(refused.status.as_u16(), 400);
    assert_eq!(
        refused.body,
        json!({"type": "error", "code": "bad_request", "status": 400, "message": LIMIT_MESSAGE, "details": []})
    );
    // A card already stored takes no new room; another buyer has room of its own.
    store(&app, "carol", &cards[3]).await.assert_status(201);
    store(&app, "dave", &cards[10]).await.assert_status(201);

    // Paging through the buyer's ten cards, oldest first.
    let first = vault(&app, "buyer_external_identifier=carol&limit=4").await;
    assert_eq!(first["limit"], 4);
    let cursor = first["next_cursor"].as_str().expect("a next page").to_owned();
    let second = vault(
        &app,
        &format!("buyer_external_identifier=carol&limit=6&cursor={cursor}"),
    )
    .await;
    assert!(second["next_cursor"].is_null());
    let mut seen = ids(first["items"].as_array().unwrap());
    seen.extend(ids(second["items"].as_array().unwrap()));
    assert_eq!(seen, gids(&cards[..10]));
}

#[tokio::test]
async fn a_buyers_gift_cards_leave_out_and_clear_zero_balance_and_expired_cards() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let promo = app
        .program(json!({"name": "Promo", "currency": "USD", "promotional": true, "expiry_months": 1}))
        .await;
    let full = app.card(&program, 1000).await;
    let spent = app.card(&program, 500).await;
    let expiring = app.card(&promo, 700).await;
    for card in [&full, &spent, &expiring] {
        store(&app, "bob", card).await.assert_status(201);
    }
    app.post(
        &format!("/v1/cards/{}/redeem", id_of(&spent)),
        json!({"amount": 500}),
    )
    .await
    .assert_status(200);

    let listed = buyer_cards(&app, "bob").await;
    assert_eq!(ids(&listed), [gid(&full), gid(&expiring)]);
    assert_eq!(listed[0]["balance"], 1000);
    assert_eq!(listed[1]["balance"], 700);
    assert_eq!(listed[0]["currency"], "USD");
    // Listing cleared the spent card out of the buyer's storage.
    assert_eq!(
        ids(vault(&app, "buyer_id=bob").await["items"].as_array().unwrap()),
        [gid(&full), gid(&expiring)]
    );

    app.clock.advance_seconds(40 * 24 * 3600);
    assert_eq!(
        ids(vault(&app, "buyer_id=bob").await["items"].as_array().unwrap()),
        [gid(&full), gid(&expiring)],
        "stored until the buyer's cards are listed"
    );
    assert_eq!(ids(&buyer_cards(&app, "bob").await), [gid(&full)]);
    assert_eq!(
        ids(vault(&app, "buyer_id=bob").await["items"].as_array().unwrap()),
        [gid(&full)]
    );
    // A buyer without cards has none.
    assert!(buyer_cards(&app, "nobody").await.is_empty());
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn another_merchants_gift_card_is_not_found() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(300).await;
    store(&app, "zoe", &card).await.assert_status(201);
    let other = app.another_merchant().await;
    let path = format!("/gr4vy/gift-cards/{}", id_of(&card));

    assert_envelope(&app.get_as(&path, &other).await, 404, "not_found");
    let deleted = app
        .send(app.client.delete(app.url(&path)).bearer_auth(&other))
        .await;
    assert_envelope(&deleted, 404, "not_found");
    let stored = app
        .post_as("/gr4vy/gift-cards", secrets(&card), &other, None)
        .await;
    assert_envelope(&stored, 400, "bad_request");
    assert_eq!(detail_type(&stored), "invalid_card");
    let checked = app
        .post_as(
            "/gr4vy/gift-cards/balances",
            json!({"items": [{"id": id_of(&card)}, secrets(&card)]}),
            &other,
            None,
        )
        .await;
    checked.assert_status(200);
    for item in checked.body["items"].as_array().unwrap() {
        assert_eq!(item["balance_error_code"], "invalid_gift_card");
        assert!(item["balance"].is_null());
    }
    let theirs = app
        .get_as("/gr4vy/buyers/gift-cards?buyer_external_identifier=zoe", &other)
        .await;
    theirs.assert_status(200);
    assert_eq!(theirs.body["items"], json!([]));
    let all = app.get_as("/gr4vy/gift-cards", &other).await;
    assert_eq!(all.body["items"], json!([]));
    // The owner still has it.
    assert_eq!(ids(&buyer_cards(&app, "zoe").await), [gid(&card)]);
}

#[tokio::test]
async fn without_a_buyer_the_vault_lists_every_card_of_the_merchant_in_pages() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = app.card(&program, 100).await;
    let b = app.card(&program, 200).await;
    let first = vault(&app, "limit=1").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    assert!(first["items"][0]["buyer"].is_null());
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = vault(&app, &format!("limit=1&cursor={cursor}")).await;
    let mut seen = ids(first["items"].as_array().unwrap());
    seen.extend(ids(second["items"].as_array().unwrap()));
    seen.sort();
    let mut expected = vec![gid(&a), gid(&b)];
    expected.sort();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_missing_or_wrong_bearer_key_is_401_in_gr4vys_envelope() {
    let app = TestApp::spawn().await;
    let anonymous = app.send(app.client.get(app.url("/gr4vy/gift-cards"))).await;
    assert_envelope(&anonymous, 401, "unauthorized");
    assert_eq!(anonymous.body["details"], json!([]));
    assert_envelope(
        &app.get_as("/gr4vy/buyers/gift-cards?buyer_id=x", "gk_wrong")
            .await,
        401,
        "unauthorized",
    );
    let posted = app
        .post_as(
            "/gr4vy/gift-cards/balances",
            json!({"items": [{"id": "card_x"}]}),
            "gk_wrong",
            None,
        )
        .await;
    assert_envelope(&posted, 401, "unauthorized");
    let basic = app
        .send(
            app.client
                .delete(app.url("/gr4vy/gift-cards/card_x"))
                .header("Authorization", format!("Basic {}", app.api_key)),
        )
        .await;
    assert_envelope(&basic, 401, "unauthorized");
}

#[tokio::test]
async fn malformed_requests_are_400_in_gr4vys_envelope_never_500() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(100).await;
    for body in ["{not json", "[]", "\"text\"", "{\"number\": 12, \"pin\": \"1\"}"] {
        for path in ["/gr4vy/gift-cards", "/gr4vy/gift-cards/balances"] {
            let response = app.post_raw(path, body).await;
            assert_envelope(&response, 400, "bad_request");
        }
    }
    let long = "x".repeat(65);
    for (body, field) in [
        (json!({"pin": "1234"}), "/number"),
        (json!({"number": card["number"]}), "/pin"),
        (json!({"number": "12ab", "pin": "1234"}), "/number"),
        (
            json!({"number": card["number"], "pin": card["security_code"], "buyer_id": "a", "buyer_external_identifier": "a"}),
            "/buyer_external_identifier",
        ),
        (
            json!({"number": card["number"], "pin": card["security_code"], "buyer_external_identifier": long}),
            "/buyer_external_identifier",
        ),
        (
            json!({"number": card["number"], "pin": card["security_code"], "buyer_id": "a/b"}),
            "/buyer_id",
        ),
    ] {
        let response = app.post("/gr4vy/gift-cards", body.clone()).await;
        assert_envelope(&response, 400, "bad_request");
        assert_eq!(response.body["details"][0]["pointer"], field, "{body}");
        assert_eq!(response.body["details"][0]["location"], "body", "{body}");
    }
    // Unknown fields are ignored, as Gr4vy's clients may send more than giftd reads.
    let lenient = app
        .post(
            "/gr4vy/gift-cards",
            json!({"number": card["number"], "pin": card["security_code"], "metadata": {"a": 1}}),
        )
        .await;
    lenient.assert_status(201);

    for query in [
        "limit=0",
        "limit=101",
        "limit=ten",
        "cursor=nope!",
        "buyer_id=a&buyer_external_identifier=b",
        "buyer_id=a&cursor=card_unknown",
    ] {
        let response = app.get(&format!("/gr4vy/gift-cards?{query}")).await;
        assert_envelope(&response, 400, "bad_request");
        assert_eq!(response.body["details"][0]["location"], "query", "{query}");
    }
    assert_envelope(&app.get("/gr4vy/buyers/gift-cards").await, 400, "bad_request");
    assert_envelope(&app.get("/gr4vy/no-such-thing").await, 404, "not_found");
    let put = app
        .send(
            app.client
                .put(app.url("/gr4vy/gift-cards"))
                .bearer_auth(&app.api_key)
                .json(&json!({})),
        )
        .await;
    assert_envelope(&put, 405, "method_not_allowed");
    let key = app
        .send(
            app.client
                .post(app.url("/gr4vy/gift-cards"))
                .bearer_auth(&app.api_key)
                .header("Idempotency-Key", "")
                .json(&secrets(&card)),
        )
        .await;
    assert_envelope(&key, 400, "bad_request");
}

/// An inactive physical card of `program` with this number and PIN (printed card stock).
async fn stock(app: &TestApp, program: &str, number: &str, pin: &str) -> Value {
    let response = app
        .post(
            "/v1/cards",
            json!({"program_id": program, "kind": "physical", "number": number, "security_code": pin}),
        )
        .await;
    response.assert_status(201);
    response.body
}

async fn native_card(app: &TestApp, id: &str) -> Value {
    let response = app.get(&format!("/v1/cards/{id}")).await;
    response.assert_status(200);
    response.body
}

#[tokio::test]
async fn an_activation_activates_card_stock_with_its_first_value_and_may_store_it_for_a_buyer() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let plain = stock(&app, &program, "6006491286999921374", "1111").await;
    let stored = stock(&app, &program, "6006491286999921382", "2222").await;

    let activated = app
        .post_idempotent(
            "/gr4vy/gift-cards/activations",
            json!({"number": "6006491286999921374", "amount": 2500, "currency": "USD", "external_identifier": "till-9"}),
            "act-1",
        )
        .await;
    activated.assert_status(201);
    assert_eq!(activated.body["type"], "gift-card");
    assert_eq!(activated.body["id"], gid(&plain));
    assert_eq!(activated.body["bin"], "600649");
    assert_eq!(activated.body["last4"], "1374");
    assert!(activated.body["buyer"].is_null());
    let card = native_card(&app, &id_of(&plain)).await;
    assert_eq!(
        (card["state"].as_str(), card["balance"].as_i64()),
        (Some("active"), Some(2500))
    );
    // A retry with the same key is the same activation.
    let again = app
        .post_idempotent(
            "/gr4vy/gift-cards/activations",
            json!({"number": "6006491286999921374", "amount": 2500, "currency": "USD", "external_identifier": "till-9"}),
            "act-1",
        )
        .await;
    assert_eq!(again.text, activated.text);
    // An active card cannot be activated again.
    let twice = app
        .post(
            "/gr4vy/gift-cards/activations",
            json!({"number": "6006491286999921374", "amount": 100, "currency": "USD"}),
        )
        .await;
    assert_envelope(&twice, 400, "bad_request");
    assert_eq!(detail_type(&twice), "invalid_state");

    // Activated and stored for a buyer at once: the PIN proves possession.
    let wrong_pin = app
        .post(
            "/gr4vy/gift-cards/activations",
            json!({"number": "6006491286999921382", "pin": "9999", "store": true, "buyer_external_identifier": "zed"}),
        )
        .await;
    assert_envelope(&wrong_pin, 400, "bad_request");
    assert_eq!(detail_type(&wrong_pin), "invalid_card");
    assert_eq!(native_card(&app, &id_of(&stored)).await["state"], "inactive");
    let with_buyer = app
        .post(
            "/gr4vy/gift-cards/activations",
            json!({"number": "6006491286999921382", "pin": "2222", "amount": 1000, "currency": "USD",
                   "store": true, "buyer_external_identifier": "zed"}),
        )
        .await;
    with_buyer.assert_status(201);
    assert_eq!(with_buyer.body["buyer"]["external_identifier"], "zed");
    assert_eq!(ids(&buyer_cards(&app, "zed").await), [gid(&stored)]);

    for (body, field) in [
        (json!({"amount": 100, "currency": "USD"}), "number"),
        (
            json!({"number": "6006491286999921390", "amount": 100}),
            "currency",
        ),
        (
            json!({"number": "6006491286999921390", "currency": "USD"}),
            "amount",
        ),
        (
            json!({"number": "6006491286999921390", "store": true, "buyer_external_identifier": "zed"}),
            "pin",
        ),
        (
            json!({"number": "6006491286999921390", "pin": "1", "buyer_external_identifier": "zed"}),
            "store",
        ),
        (
            json!({"number": "6006491286999921390", "amount": -1, "currency": "USD"}),
            "amount",
        ),
    ] {
        let refused = app.post("/gr4vy/gift-cards/activations", body.clone()).await;
        assert_envelope(&refused, 400, "bad_request");
        assert_eq!(
            refused.body["details"][0]["pointer"],
            format!("/{field}"),
            "{body}"
        );
    }
    // A number giftd never issued is no card.
    let unknown = app
        .post(
            "/gr4vy/gift-cards/activations",
            json!({"number": "6006491286999999999", "amount": 100, "currency": "USD"}),
        )
        .await;
    assert_envelope(&unknown, 400, "bad_request");
    assert_eq!(detail_type(&unknown), "invalid_card");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn an_issuance_makes_a_new_virtual_card_of_the_program_its_theme_names() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let birthday = app
        .program(json!({"name": "Birthday", "currency": "USD", "promotion_code": "birthday-2026"}))
        .await;

    let issued = app
        .post_idempotent(
            "/gr4vy/gift-cards/issuances",
            json!({"theme": program, "amount": 5000, "currency": "USD", "external_identifier": "ord-77"}),
            "iss-1",
        )
        .await;
    issued.assert_status(201);
    let body = &issued.body;
    assert_eq!(body["type"], "gift-card-issuance");
    assert_eq!(body["merchant_account_id"], app.merchant_id.as_str());
    assert_eq!(body["amount"], 5000);
    assert_eq!(body["currency"], "USD");
    assert_eq!(body["external_identifier"], "ord-77");
    assert_eq!(
        body["gift_card_service"]["gift_card_service_definition_id"],
        "mock-gift-card"
    );
    let id = id_of(body);
    // `url` is the recipient's page on this server: it shows the number the answer does not.
    let url = body["url"].as_str().expect("a url");
    assert!(url.starts_with(&format!("{}/g/", app.address)), "{url}");
    assert!(body.get("number").is_none() && body.get("pin").is_none());
    let page = app.client.get(url).send().await.expect("the page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("its text");
    assert!(
        html.contains("50.00 USD") && html.contains("id=\"security-code\""),
        "{html}"
    );
    // The card is a giftd card like any other, read by its UUID.
    let card = app.get(&format!("/gr4vy/gift-cards/{id}")).await;
    card.assert_status(200);
    let native = native_card(&app, &format!("card_{}", id.replace('-', ""))).await;
    assert_eq!(
        (
            native["kind"].as_str(),
            native["balance"].as_i64(),
            native["program_id"].as_str()
        ),
        (Some("virtual"), Some(5000), Some(program.as_str()))
    );
    let again = app
        .post_idempotent(
            "/gr4vy/gift-cards/issuances",
            json!({"theme": program, "amount": 5000, "currency": "USD", "external_identifier": "ord-77"}),
            "iss-1",
        )
        .await;
    assert_eq!(again.text, issued.text, "one card for one key");

    // A theme may be a program's promotion code.
    let themed = app
        .post(
            "/gr4vy/gift-cards/issuances",
            json!({"theme": "birthday-2026", "amount": 2000, "currency": "USD"}),
        )
        .await;
    themed.assert_status(201);
    let themed_id = id_of(&themed.body);
    let native = native_card(&app, &format!("card_{}", themed_id.replace('-', ""))).await;
    assert_eq!(native["program_id"], birthday.as_str());

    let unknown = app
        .post(
            "/gr4vy/gift-cards/issuances",
            json!({"theme": "no-such-theme", "amount": 2000, "currency": "USD"}),
        )
        .await;
    assert_envelope(&unknown, 404, "not_found");
    // An inactive program issues nothing.
    let paused = app
        .send(
            app.client
                .patch(app.url(&format!("/v1/programs/{birthday}")))
                .bearer_auth(&app.api_key)
                .json(&json!({"active": false})),
        )
        .await;
    paused.assert_status(200);
    let inactive = app
        .post(
            "/gr4vy/gift-cards/issuances",
            json!({"theme": "birthday-2026", "amount": 2000, "currency": "USD"}),
        )
        .await;
    assert_envelope(&inactive, 400, "bad_request");
    assert_eq!(detail_type(&inactive), "program_inactive");
    let currency = app
        .post(
            "/gr4vy/gift-cards/issuances",
            json!({"theme": program, "amount": 2000, "currency": "EUR"}),
        )
        .await;
    assert_envelope(&currency, 400, "bad_request");
    assert_eq!(detail_type(&currency), "currency_mismatch");
    for body in [
        json!({"amount": 2000, "currency": "USD"}),
        json!({"theme": program, "currency": "USD"}),
        json!({"theme": program, "amount": 0, "currency": "USD"}),
        json!({"theme": program, "amount": 2000}),
        json!({"theme": "", "amount": 2000, "currency": "USD"}),
    ] {
        assert_envelope(
            &app.post("/gr4vy/gift-cards/issuances", body).await,
            400,
            "bad_request",
        );
    }
    TestApp::assert_sound(&app.verify().await);
}
