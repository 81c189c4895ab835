//! Programs and cards over HTTP, in process: every native program and card endpoint, its
//! successes and its refusals (status, error code and `param` as the contract names them), and
//! that a refused request changes nothing. Tenant isolation: another merchant's objects are
//! answered exactly as if they did not exist.

use giftd_domain::card::luhn_valid;
use giftd_domain::{ProgramId, Timestamp};
use giftd_service::stock;
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

async fn post_card(app: &TestApp, body: Value) -> TestResponse {
    app.post("/v1/cards", body).await
}

async fn physical_card(app: &TestApp, program_id: &str) -> Value {
    let response = post_card(app, json!({"program_id": program_id, "kind": "physical"})).await;
    response.assert_status(201);
    response.body
}

async fn post_on_card(app: &TestApp, card_id: &str, action: &str, body: Value) -> TestResponse {
    app.post(&format!("/v1/cards/{card_id}/{action}"), body).await
}

/// Milliseconds since the Unix epoch of an RFC 3339 time in UTC (`Z` or `+00:00`).
fn unix_millis(text: &str) -> i64 {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("not an RFC 3339 time ({e}): {text:?}"));
    assert!(at.offset().is_utc(), "a UTC time: {text:?}");
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).expect("milliseconds fit in i64")
}

fn plus_months(millis: i64, months: u32) -> i64 {
    Timestamp::from_unix_millis(millis)
        .plus_months(months)
        .unix_millis()
}

// ---- programs ----

#[tokio::test]
async fn program_create_answers_201_with_its_fields_and_the_documented_defaults() {
    let app = TestApp::spawn().await;
    let response = app
        .post("/v1/programs", json!({"name": "Holiday", "currency": "USD"}))
        .await;
    response.assert_status(201);
    let program = &response.body;
    assert!(program["id"].as_str().unwrap().starts_with("prog_"), "{program}");
    assert_eq!(program["name"], "Holiday");
    assert_eq!(program["currency"], "USD");
    assert_eq!(program["denominations"], Value::Null);
    assert_eq!(program["min_load"], Value::Null);
    assert_eq!(program["max_load"], Value::Null);
    assert_eq!(program["max_balance"], Value::Null);
    assert_eq!(program["reloadable"], true);
    assert_eq!(program["expiry_months"], Value::Null);
    assert_eq!(program["number_length"], 16);
    assert_eq!(program["security_code_length"], 8);
    assert_eq!(program["promotion_code"], Value::Null);
    assert_eq!(program["active"], true);
    assert!(program["created_at"].is_string());

    let fetched = app.get(&format!("/v1/programs/{}", id_of(program))).await;
    fetched.assert_status(200);
    assert_eq!(&fetched.body, program);
}

#[tokio::test]
async fn program_create_keeps_every_given_rule() {
    let app = TestApp::spawn().await;
    let response = app
        .post(
            "/v1/programs",
            json!({
                "name": "Store credit", "currency": "EUR", "denominations": [2500, 5000],
                "min_load": 500, "max_load": 10000, "max_balance": 20000, "reloadable": false,
                "expiry_months": 60, "number_prefix": "6036", "number_length": 19,
                "security_code_length": 4, "promotion_code": "SPRING-24"
            }),
        )
        .await;
    response.assert_status(201);
    let program = &response.body;
    assert_eq!(program["currency"], "EUR");
    assert_eq!(program["denominations"], json!([2500, 5000]));
    assert_eq!(program["min_load"], 500);
    assert_eq!(program["max_load"], 10000);
    assert_eq!(program["max_balance"], 20000);
    assert_eq!(program["reloadable"], false);
    assert_eq!(program["expiry_months"], 60);
    assert_eq!(program["number_prefix"], "6036");
    assert_eq!(program["number_length"], 19);
    assert_eq!(program["security_code_length"], 4);
    assert_eq!(program["promotion_code"], "SPRING-24");

    // Read back as stored.
    let fetched = app.get(&format!("/v1/programs/{}", id_of(program))).await;
    fetched.assert_status(200);
    assert_eq!(&fetched.body, program);
    let listed = app.get("/v1/programs").await;
    assert_eq!(&listed.body["data"][0], program);
}

#[tokio::test]
async fn program_get_of_an_unknown_id_is_404_not_found() {
    let app = TestApp::spawn().await;
    app.get("/v1/programs/prog_0123456789abcdef0123456789abcdef")
        .await
        .assert_error(404, "not_found");
    app.get("/v1/programs/not-an-id")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn program_list_pages_newest_first_without_duplicates_or_omissions() {
    let app = TestApp::spawn().await;
    let mut created = Vec::new();
    for n in 0..5 {
        created.push(
            app.program(json!({"name": format!("P{n}"), "currency": "USD"}))
                .await,
        );
    }
    created.reverse();

    let mut seen = Vec::new();
    let mut path = "/v1/programs?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let response = app.get(&path).await;
        response.assert_status(200);
        pages += 1;
        let data = response.body["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(id_of));
        match response.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/programs?limit=2&cursor={cursor}"),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);
}

#[tokio::test]
async fn program_list_defaults_to_twenty_per_page() {
    let app = TestApp::spawn().await;
    for n in 0..21 {
        app.program(json!({"name": format!("P{n}"), "currency": "USD"}))
            .await;
    }
    let first = app.get("/v1/programs").await;
    first.assert_status(200);
    assert_eq!(first.body["data"].as_array().unwrap().len(), 20);
    let cursor = first.body["next_cursor"].as_str().expect("a next page");
    let second = app.get(&format!("/v1/programs?cursor={cursor}")).await;
    second.assert_status(200);
    assert_eq!(second.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(second.body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn program_list_refuses_a_limit_outside_one_to_a_hundred_and_a_foreign_cursor() {
    let app = TestApp::spawn().await;
    for query in ["limit=0", "limit=101", "limit=abc", "limit=-1"] {
        let response = app.get(&format!("/v1/programs?{query}")).await;
        response.assert_error(400, "invalid_request");
        assert_param(&response, "limit");
    }
    let response = app.get("/v1/programs?cursor=a%20b").await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "cursor");
    let response = app.get("/v1/programs?page=2").await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "page");
    app.get("/v1/programs?limit=100").await.assert_status(200);
}

#[tokio::test]
async fn program_refuses_non_promotional_expiry_under_sixty_months() {
    let app = TestApp::spawn().await;
    let response = app
        .post(
            "/v1/programs",
            json!({"name": "Short", "currency": "USD", "expiry_months": 59}),
        )
        .await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "expiry_months");
    let response = app
        .post(
            "/v1/programs",
            json!({"name": "Short", "currency": "USD", "expiry_months": 12, "promotional": false}),
        )
        .await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "expiry_months");

    let listed = app.get("/v1/programs").await;
    assert_eq!(listed.body["data"], json!([]), "a refused program was created");

    let response = app
        .post(
            "/v1/programs",
            json!({"name": "Five years", "currency": "USD", "expiry_months": 60}),
        )
        .await;
    response.assert_status(201);
    assert_eq!(response.body["expiry_months"], 60);
}

#[tokio::test]
async fn promotional_program_may_expire_within_sixty_months() {
    let app = TestApp::spawn().await;
    let response = app
        .post(
            "/v1/programs",
            json!({"name": "Promo", "currency": "USD", "expiry_months": 3, "promotional": true}),
        )
        .await;
    response.assert_status(201);
    assert_eq!(response.body["expiry_months"], 3);
    assert_eq!(response.body["promotional"], true);
}

async fn patch_program(app: &TestApp, id: &str, body: Value) -> TestResponse {
    app.send(
        app.client
            .patch(app.url(&format!("/v1/programs/{id}")))
            .bearer_auth(&app.api_key)
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn a_program_change_applies_to_what_comes_after_and_keeps_every_promise_made_to_cards() {
    let app = TestApp::spawn().await;
    let program = app
        .program(json!({"name": "Winter", "currency": "USD", "expiry_months": 60, "max_load": 10000, "promotion_code": "WINTER"}))
        .await;
    let card = app.card(&program, 5000).await;

    let changed = patch_program(
        &app,
        &program,
        json!({"name": "Spring", "max_load": 2000, "reloadable": true, "promotion_code": null, "expiry_months": 72}),
    )
    .await;
    changed.assert_status(200);
    assert_eq!(changed.body["id"], program.as_str());
    assert_eq!(changed.body["name"], "Spring");
    assert_eq!(changed.body["max_load"], 2000);
    assert_eq!(changed.body["expiry_months"], 72);
    assert!(changed.body["promotion_code"].is_null());
    assert_eq!(changed.body["currency"], "USD", "what was not sent stays");
    assert_eq!(
        app.get(&format!("/v1/programs/{program}")).await.body,
        changed.body
    );
    // The new limit governs the next load; the value already on the card is untouched.
    assert_eq!(get_card(&app, &id_of(&card)).await["balance"], 5000);
    let too_much = app
        .post(
            &format!("/v1/cards/{}/load", id_of(&card)),
            json!({"amount": 3000}),
        )
        .await;
    assert_eq!(too_much.status.as_u16(), 422, "{}", too_much.text);
    app.post(
        &format!("/v1/cards/{}/load", id_of(&card)),
        json!({"amount": 2000}),
    )
    .await
    .assert_status(200);
    // Clearing a limit: `null`; leaving a field out keeps it.
    let cleared = patch_program(&app, &program, json!({"max_load": null})).await;
    cleared.assert_status(200);
    assert!(cleared.body["max_load"].is_null());
    assert_eq!(cleared.body["name"], "Spring");

    // Cards were promised 72 months now: shorter is refused, as is what never changes.
    for (body, param) in [
        (json!({"expiry_months": 60}), "expiry_months"),
        (json!({"currency": "EUR"}), "currency"),
        (json!({"promotional": true}), "promotional"),
        (json!({"number_length": 19}), "number_length"),
        (json!({"min_load": 100, "max_load": 50}), "min_load"),
        (json!({"name": ""}), "name"),
        (json!({"max_balance": -5}), "max_balance"),
    ] {
        let refused = patch_program(&app, &program, body.clone()).await;
        assert_eq!(refused.status.as_u16(), 400, "{body}: {}", refused.text);
        assert_param(&refused, param);
    }
    let unknown = patch_program(&app, &program, json!({"colour": "blue"})).await;
    assert_eq!(unknown.status.as_u16(), 400, "{}", unknown.text);
    // A program whose cards never expire may not start expiring them.
    let forever = app.usd_program().await;
    let refused = patch_program(&app, &forever, json!({"expiry_months": 120})).await;
    assert_eq!(refused.status.as_u16(), 400);
    assert_param(&refused, "expiry_months");
    // Another merchant's program is not found.
    let other = app.another_merchant().await;
    let theirs = app
        .send(
            app.client
                .patch(app.url(&format!("/v1/programs/{program}")))
                .bearer_auth(&other)
                .json(&json!({"name": "Mine"})),
        )
        .await;
    theirs.assert_error(404, "not_found");
    assert_eq!(
        app.get(&format!("/v1/programs/{program}")).await.body["name"],
        "Spring"
    );
    TestApp::assert_sound(&app.verify().await);
}

/// How many cards the merchant has (fewer than a hundred in these tests).
async fn card_count(app: &TestApp) -> usize {
    let response = app.get("/v1/cards?limit=100").await;
    response.assert_status(200);
    assert_eq!(response.body["next_cursor"], Value::Null, "{}", response.text);
    response.body["data"].as_array().expect("a data array").len()
}

/// `giftd cards generate` of two cards and `giftd cards import` of one with a balance, for
/// `program_id`, through the service calls the CLI makes: for each, `Ok` when its batch was
/// prepared and written, else its refusal.
async fn add_card_stock(app: &TestApp, program_id: &str) -> [Result<(), String>; 2] {
    let program = ProgramId::parse(program_id).expect("a program id");
    let generated = app
        .service
        .prepare_generated_stock(&program, 2, &|_| {})
        .await
        .map_err(|error| format!("generate: {error}"));
    let file = "number,security_code,balance\n7400000000000034,1234,700\n";
    let rows = stock::parse_import(file).expect("a good file");
    let imported = app
        .service
        .prepare_imported_stock(&program, rows, stock::digest(file.as_bytes()), &|_| {})
        .await
        .map_err(|error| format!("import: {error}"));
    let mut written = Vec::new();
    for batch in [generated, imported] {
        written.push(match batch {
            Ok(batch) => {
                app.service
                    .write_stock(&batch)
                    .await
                    .expect("the batch is written");
                Ok(())
            }
            Err(refusal) => Err(refusal),
        });
    }
    written.try_into().expect("two batches")
}

#[tokio::test]
async fn an_inactive_program_issues_no_new_cards_while_its_cards_keep_working_until_it_is_active_again() {
    let app = TestApp::spawn().await;
    let program_id = app.usd_program().await;
    let card_id = id_of(&app.card(&program_id, 5000).await);
    let other = post_card(&app, json!({"program_id": program_id, "kind": "virtual"})).await;
    other.assert_status(201);
    let other_id = id_of(&other.body);
    let stock_id = id_of(&physical_card(&app, &program_id).await);
    let redemption = post_on_card(&app, &card_id, "redeem", json!({"amount": 500})).await;
    redemption.assert_status(200);

    let changed = patch_program(&app, &program_id, json!({"active": false})).await;
    changed.assert_status(200);
    assert_eq!(changed.body["active"], false);
    assert_eq!(changed.body["name"], "Test USD", "what was not sent stays");
    assert_eq!(
        app.get(&format!("/v1/programs/{program_id}")).await.body,
        changed.body
    );

    // No new card: issued virtual or physical, drawn or imported, or made by a transfer.
    let cards = card_count(&app).await;
    for body in [
        json!({"program_id": program_id, "kind": "virtual", "amount": 2500}),
        json!({"program_id": program_id, "kind": "virtual"}),
        json!({"program_id": program_id, "kind": "physical"}),
        json!({"program_id": program_id, "kind": "physical", "number": "7400000000000018", "security_code": "1234"}),
    ] {
        let refused = post_card(&app, body.clone()).await;
        refused.assert_error(422, "program_inactive");
        assert!(
            refused.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("inactive")),
            "{body}: {}",
            refused.text
        );
    }
    app.post(&format!("/v1/cards/{card_id}/transfer"), json!({"amount": 100}))
        .await
        .assert_error(422, "program_inactive");
    assert_eq!(card_count(&app).await, cards, "a refused issue created a card");
    // Its printed stock stays on the shelf: activation would put it into circulation.
    for body in [json!({"amount": 1000}), json!({})] {
        post_on_card(&app, &stock_id, "activate", body)
            .await
            .assert_error(422, "program_inactive");
    }
    assert_eq!(get_card(&app, &stock_id).await["state"], "inactive");
    // `giftd cards generate` and `import` refuse the whole batch.
    for refused in add_card_stock(&app, &program_id).await {
        let refused = refused.expect_err("an inactive program takes no card stock");
        assert!(refused.contains("inactive"), "{refused}");
    }
    assert_eq!(card_count(&app).await, cards, "a refused batch created a card");

    // The cards it issued keep working, every operation on them as before.
    app.post(
        &format!("/v1/cards/{card_id}/transfer"),
        json!({"to_card_id": other_id, "amount": 100}),
    )
    .await
    .assert_status(200);
    post_on_card(&app, &card_id, "load", json!({"amount": 1000}))
        .await
        .assert_status(200);
    post_on_card(&app, &card_id, "redeem", json!({"amount": 700}))
        .await
        .assert_status(200);
    app.post(
        &format!("/v1/transactions/{}/refund", id_of(&redemption.body)),
        json!({"amount": 100}),
    )
    .await
    .assert_status(200);
    let hold = post_on_card(&app, &card_id, "holds", json!({"amount": 300})).await;
    hold.assert_status(201);
    app.post(&format!("/v1/holds/{}/capture", id_of(&hold.body)), json!({}))
        .await
        .assert_status(200);
    assert_money(&get_card(&app, &card_id).await, 4500, 0, 4500);
    post_on_card(&app, &other_id, "redeem", json!({"amount": 100}))
        .await
        .assert_status(200);

    // Active again: it issues and activates as before.
    let changed = patch_program(&app, &program_id, json!({"active": true})).await;
    changed.assert_status(200);
    assert_eq!(changed.body["active"], true);
    let issued = post_card(
        &app,
        json!({"program_id": program_id, "kind": "virtual", "amount": 2500}),
    )
    .await;
    issued.assert_status(201);
    assert_money(&issued.body, 2500, 0, 2500);
    physical_card(&app, &program_id).await;
    post_on_card(&app, &stock_id, "activate", json!({"amount": 1000}))
        .await
        .assert_status(200);
    for written in add_card_stock(&app, &program_id).await {
        written.expect("an active program takes card stock");
    }
    assert_eq!(card_count(&app).await, cards + 2 + 3);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_program_created_inactive_issues_nothing_until_it_is_made_active() {
    let app = TestApp::spawn().await;
    let created = app
        .post(
            "/v1/programs",
            json!({"name": "Next season", "currency": "USD", "active": false}),
        )
        .await;
    created.assert_status(201);
    assert_eq!(created.body["active"], false);
    let program_id = id_of(&created.body);
    assert_eq!(
        app.get(&format!("/v1/programs/{program_id}")).await.body,
        created.body
    );
    post_card(
        &app,
        json!({"program_id": program_id, "kind": "virtual", "amount": 2500}),
    )
    .await
    .assert_error(422, "program_inactive");
    post_card(&app, json!({"program_id": program_id, "kind": "physical"}))
        .await
        .assert_error(422, "program_inactive");
    assert_eq!(card_count(&app).await, 0);
    // `active` is a boolean.
    let refused = patch_program(&app, &program_id, json!({"active": "yes"})).await;
    assert_eq!(refused.status.as_u16(), 400, "{}", refused.text);
    let refused = app
        .post(
            "/v1/programs",
            json!({"name": "Odd", "currency": "USD", "active": 0}),
        )
        .await;
    assert_eq!(refused.status.as_u16(), 400, "{}", refused.text);

    patch_program(&app, &program_id, json!({"active": true}))
        .await
        .assert_status(200);
    app.card(&program_id, 2500).await;
    assert_eq!(card_count(&app).await, 1);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn an_inactive_programs_new_cards_are_refused_in_each_front_ends_own_shape_never_with_a_5xx() {
    let app = TestApp::spawn().await;
    let program_id = app
        .program(json!({"name": "Retired", "currency": "USD", "denominations": [2500], "promotion_code": "RETIRED"}))
        .await;
    let number = "7400000000000026";
    let stock = post_card(
        &app,
        json!({"program_id": program_id, "kind": "physical", "number": number, "security_code": "1234"}),
    )
    .await;
    stock.assert_status(201);
    let token = app
        .send(
            app.client
                .post(app.url("/clover/v1/tokens"))
                .header("apiKey", &app.api_key)
                .json(&json!({"gift_card": {"number": number, "security_code": "1234"}})),
        )
        .await;
    token.assert_status(200);
    let token = token.body["id"].as_str().expect("a token").to_owned();
    patch_program(&app, &program_id, json!({"active": false}))
        .await
        .assert_status(200);
    let cards = card_count(&app).await;

    // Clover: a virtual card by promotion code, or printed stock by token, is declined.
    for body in [json!({"promotion_code": "RETIRED"}), json!({"source": token})] {
        let declined = app
            .send(
                app.client
                    .post(app.url("/clover/v1/activate"))
                    .bearer_auth(&app.api_key)
                    .json(&body),
            )
            .await;
        assert_eq!(declined.status.as_u16(), 402, "{body}: {}", declined.text);
        assert_eq!(
            declined.body["error"]["code"], "card_declined",
            "{}",
            declined.text
        );
        assert_eq!(
            declined.body["error"]["decline_code"], "program_inactive",
            "{}",
            declined.text
        );
    }
    // Adyen's Stored Value API: `issue` and activation (`changeStatus` to active) are refused.
    let mut issue = crate::adyen_support::fixture("stored_value/issue.request.json");
    issue["giftCardPromoCode"] = json!("RETIRED");
    let mut activate = crate::adyen_support::fixture("stored_value/change_status.request.json");
    activate["paymentMethod"]["number"] = json!(number);
    activate["paymentMethod"]["securityCode"] = json!("1234");
    activate["amount"]["value"] = json!(2500);
    for (operation, body) in [("issue", issue), ("changeStatus", activate)] {
        let refused = app
            .send(
                app.client
                    .post(app.url(&format!("/pal/servlet/StoredValue/v46/{operation}")))
                    .header("x-api-key", &app.api_key)
                    .json(&body),
            )
            .await;
        refused.assert_status(200);
        assert_eq!(
            refused.body["resultCode"], "Refused",
            "{operation}: {}",
            refused.text
        );
        assert_eq!(
            refused.body["refusalReason"], "Transaction Not Permitted",
            "{operation}: {}",
            refused.text
        );
        assert!(
            refused.body["thirdPartyRefusalReason"]
                .as_str()
                .is_some_and(|r| r.contains("inactive")),
            "{operation}: {}",
            refused.text
        );
    }
    assert_eq!(card_count(&app).await, cards);
    assert_eq!(get_card(&app, &id_of(&stock.body)).await["state"], "inactive");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn program_validation_errors_are_400_and_name_the_field() {
    let app = TestApp::spawn().await;
    let cases = [
        (json!({"currency": "USD"}), "invalid_request", "name"),
        (json!({"name": "", "currency": "USD"}), "invalid_request", "name"),
        (json!({"name": "X"}), "invalid_request", "currency"),
        (
            json!({"name": "X", "currency": "usd"}),
            "invalid_request",
            "currency",
        ),
        (
            json!({"name": "X", "currency": "ZZZ"}),
            "invalid_request",
            "currency",
        ),
        (
            json!({"name": "X", "currency": "USD", "expiry_months": 0}),
            "invalid_request",
            "expiry_months",
        ),
        (
            json!({"name": "X", "currency": "USD", "number_length": 12}),
            "invalid_request",
            "number_length",
        ),
        (
            json!({"name": "X", "currency": "USD", "number_length": 20}),
            "invalid_request",
            "number_length",
        ),
        (
            json!({"name": "X", "currency": "USD", "security_code_length": 3}),
            "invalid_request",
            "security_code_length",
        ),
        (
            json!({"name": "X", "currency": "USD", "security_code_length": 9}),
            "invalid_request",
            "security_code_length",
        ),
        (
            json!({"name": "X", "currency": "USD", "number_prefix": "60a"}),
            "invalid_request",
            "number_prefix",
        ),
        (
            json!({"name": "X", "currency": "USD", "min_load": 1000, "max_load": 500}),
            "invalid_request",
            "min_load",
        ),
        (
            json!({"name": "X", "currency": "USD", "max_load": 5000, "max_balance": 1000}),
            "invalid_request",
            "max_load",
        ),
        (
            json!({"name": "X", "currency": "USD", "denominations": []}),
            "invalid_request",
            "denominations",
        ),
        (
            json!({"name": "X", "currency": "USD", "reloadble": false}),
            "invalid_request",
            "reloadble",
        ),
        (
            json!({"name": "X".repeat(201), "currency": "USD"}),
            "invalid_request",
            "name",
        ),
        (
            json!({"name": "X", "currency": "USD", "expiry_months": 1201, "promotional": true}),
            "invalid_request",
            "expiry_months",
        ),
        (
            json!({"name": "X", "currency": "USD", "expiry_months": -1}),
            "invalid_request",
            "expiry_months",
        ),
        (
            json!({"name": "X", "currency": "USD", "number_length": 4_294_967_296_u64}),
            "invalid_request",
            "number_length",
        ),
        (
            json!({"name": "X", "currency": "USD", "number_prefix": "1234567890"}),
            "invalid_request",
            "number_prefix",
        ),
        (
            json!({"name": "X", "currency": "USD", "denominations": [5000], "max_balance": 1000}),
            "invalid_request",
            "denominations",
        ),
        (
            json!({"name": "X", "currency": "USD", "promotion_code": "has space"}),
            "invalid_request",
            "promotion_code",
        ),
        (
            json!({"name": "X", "currency": "USD", "reloadable": "yes"}),
            "invalid_request",
            "reloadable",
        ),
    ];
    for (body, code, param) in cases {
        let response = app.post("/v1/programs", body.clone()).await;
        assert_eq!(response.status.as_u16(), 400, "{body} -> {}", response.text);
        assert_eq!(response.code(), code, "{body} -> {}", response.text);
        assert_param(&response, param);
    }
    // Zero amounts are refused as amounts, naming the field.
    for (body, param) in [
        (
            json!({"name": "X", "currency": "USD", "denominations": [0]}),
            "denominations",
        ),
        (json!({"name": "X", "currency": "USD", "min_load": 0}), "min_load"),
        (
            json!({"name": "X", "currency": "USD", "max_balance": -5}),
            "max_balance",
        ),
    ] {
        let response = app.post("/v1/programs", body.clone()).await;
        assert_eq!(response.status.as_u16(), 400, "{body} -> {}", response.text);
        assert_param(&response, param);
    }
    let listed = app.get("/v1/programs").await;
    assert_eq!(listed.body["data"], json!([]), "a refused program was created");
}

#[tokio::test]
async fn denominations_restrict_issue_and_activation_amounts_with_invalid_amount() {
    let app = TestApp::spawn().await;
    let program_id = app
        .program(json!({"name": "Fixed", "currency": "USD", "denominations": [2500, 5000]}))
        .await;

    let response = post_card(
        &app,
        json!({"program_id": program_id, "kind": "virtual", "amount": 1000}),
    )
    .await;
    response.assert_error(422, "invalid_amount");
    assert_param(&response, "amount");
    let listed = app.get("/v1/cards").await;
    assert_eq!(listed.body["data"], json!([]), "a refused issue created a card");

    let card = app.card(&program_id, 2500).await;
    assert_money(&card, 2500, 0, 2500);

    let stock = physical_card(&app, &program_id).await;
    let stock_id = id_of(&stock);
    let response = post_on_card(&app, &stock_id, "activate", json!({"amount": 1000})).await;
    response.assert_error(422, "invalid_amount");
    assert_param(&response, "amount");
    let unchanged = get_card(&app, &stock_id).await;
    assert_eq!(unchanged["state"], "inactive");
    assert_money(&unchanged, 0, 0, 0);

    let response = post_on_card(&app, &stock_id, "activate", json!({"amount": 5000})).await;
    response.assert_status(200);
    assert_eq!(response.body["type"], "activation");
    assert_eq!(response.body["amount"], 5000);

    // Denominations bind the first value only; a later load may be any amount.
    let response = post_on_card(&app, &id_of(&card), "load", json!({"amount": 1234})).await;
    response.assert_status(200);
    assert_eq!(response.body["balance_after"], 3734);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn load_limits_and_max_balance_refuse_with_limit_exceeded() {
    let app = TestApp::spawn().await;
    let program_id = app
        .program(json!({
            "name": "Limited", "currency": "USD",
            "min_load": 500, "max_load": 10000, "max_balance": 15000
        }))
        .await;

    for amount in [499, 10001] {
        let response = post_card(
            &app,
            json!({"program_id": program_id, "kind": "virtual", "amount": amount}),
        )
        .await;
        response.assert_error(422, "limit_exceeded");
        assert_param(&response, "amount");
    }
    let card = app.card(&program_id, 10000).await;
    let card_id = id_of(&card);

    for amount in [499, 10001, 5001] {
        let response = post_on_card(&app, &card_id, "load", json!({"amount": amount})).await;
        response.assert_error(422, "limit_exceeded");
        assert_param(&response, "amount");
    }
    assert_money(&get_card(&app, &card_id).await, 10000, 0, 10000);
    assert_eq!(app.card_transactions(&card_id).await.len(), 1);

    let response = post_on_card(&app, &card_id, "load", json!({"amount": 5000})).await;
    response.assert_status(200);
    assert_eq!(response.body["balance_after"], 15000);
    let response = post_on_card(&app, &card_id, "load", json!({"amount": 500})).await;
    response.assert_error(422, "limit_exceeded");

    // Activation of stock respects the same limits.
    let stock_id = id_of(&physical_card(&app, &program_id).await);
    let response = post_on_card(&app, &stock_id, "activate", json!({"amount": 100})).await;
    response.assert_error(422, "limit_exceeded");
    assert_eq!(get_card(&app, &stock_id).await["state"], "inactive");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn non_reloadable_program_refuses_loads_with_not_reloadable() {
    let app = TestApp::spawn().await;
    let program_id = app
        .program(json!({"name": "One shot", "currency": "USD", "reloadable": false}))
        .await;
    let card = app.card(&program_id, 1000).await;
    let card_id = id_of(&card);
    post_on_card(&app, &card_id, "load", json!({"amount": 100}))
        .await
        .assert_error(422, "not_reloadable");
    assert_money(&get_card(&app, &card_id).await, 1000, 0, 1000);
    // Spending still works.
    post_on_card(&app, &card_id, "redeem", json!({"amount": 400}))
        .await
        .assert_status(200);
    TestApp::assert_sound(&app.verify().await);
}

// ---- issuing cards ----

#[tokio::test]
async fn virtual_card_with_amount_is_issued_active_and_loaded() {
    let app = TestApp::spawn().await;
    let program_id = app.usd_program().await;
    let response = post_card(
        &app,
        json!({"program_id": program_id, "kind": "virtual", "amount": 1000, "reference": "order-1"}),
    )
    .await;
    response.assert_status(201);
    let card = &response.body;
    assert!(card["id"].as_str().unwrap().starts_with("card_"), "{card}");
    assert_eq!(card["program_id"], program_id.as_str());
    assert_eq!(card["kind"], "virtual");
    assert_eq!(card["state"], "active");
    assert_eq!(card["currency"], "USD");
    assert_money(card, 1000, 0, 1000);
    assert_eq!(card["expires_at"], Value::Null);
    assert!(card["created_at"].is_string());

    let number = card["number"].as_str().expect("the number on creation");
    assert_eq!(number.len(), 16);
    assert!(luhn_valid(number), "generated number {number} fails Luhn");
    assert_eq!(card["last4"], &number[12..]);
    let code = card["security_code"]
        .as_str()
        .expect("the security code on creation");
    assert_eq!(code.len(), 8);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));

    let transactions = app.card_transactions(&id_of(card)).await;
    assert_eq!(transactions.len(), 1);
    let issue = &transactions[0];
    assert_eq!(issue["type"], "issue");
    assert_eq!(issue["amount"], 1000);
    assert_eq!(issue["currency"], "USD");
    assert_eq!(issue["balance_before"], 0);
    assert_eq!(issue["balance_after"], 1000);
    assert_eq!(issue["reference"], "order-1");
    assert_eq!(issue["reverses"], Value::Null);
    assert_eq!(issue["card_id"], card["id"]);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn generated_numbers_follow_the_programs_prefix_length_and_code_length() {
    let app = TestApp::spawn().await;
    let program_id = app
        .program(json!({
            "name": "Custom", "currency": "USD", "number_prefix": "6036",
            "number_length": 19, "security_code_length": 4
        }))
        .await;
    for _ in 0..3 {
        let card = app.card(&program_id, 100).await;
        let number = card["number"].as_str().unwrap();
        assert_eq!(number.len(), 19);
        assert!(number.starts_with("6036"));
        assert!(luhn_valid(number));
        assert_eq!(card["security_code"].as_str().unwrap().len(), 4);
    }
}

#[tokio::test]
async fn card_number_and_security_code_appear_only_in_the_create_response() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let card_id = id_of(&card);
    let number = card["number"].as_str().unwrap().to_owned();
    let code = card["security_code"].as_str().unwrap().to_owned();

    let fetched = app.get(&format!("/v1/cards/{card_id}")).await;
    let listed = app.get("/v1/cards").await;
    let looked_up = app
        .post(
            "/v1/cards/lookup",
            json!({"number": number, "security_code": code}),
        )
        .await;
    let frozen = post_on_card(&app, &card_id, "freeze", json!({})).await;
    let transactions = app.get(&format!("/v1/cards/{card_id}/transactions")).await;
    for response in [&fetched, &listed, &looked_up, &frozen, &transactions] {
        response.assert_status(200);
        assert!(
            !response.text.contains(&number),
            "the number leaked: {}",
            response.text
        );
        assert!(!response.text.contains("\"number\""), "{}", response.text);
        assert!(!response.text.contains("security_code"), "{}", response.text);
    }
    assert_eq!(fetched.body["last4"], &number[number.len() - 4..]);
    assert_eq!(listed.body["data"][0]["id"], card_id.as_str());
}

#[tokio::test]
async fn virtual_card_without_amount_is_issued_active_and_empty() {
    let app = TestApp::spawn().await;
    let program_id = app.usd_program().await;
    let response = post_card(&app, json!({"program_id": program_id, "kind": "virtual"})).await;
    response.assert_status(201);
    assert_eq!(response.body["state"], "active");
    assert_money(&response.body, 0, 0, 0);
    assert!(response.body["number"].is_string());
    assert_eq!(app.card_transactions(&id_of(&response.body)).await.len(), 0);
}

#[tokio::test]
async fn physical_card_is_issued_inactive_and_refuses_use_until_activated() {
    let app = TestApp::spawn().await;
    let program_id = app.usd_program().await;
    let card = physical_card(&app, &program_id).await;
    let card_id = id_of(&card);
    assert_eq!(card["kind"], "physical");
    assert_eq!(card["state"], "inactive");
    assert_money(&card, 0, 0, 0);
    assert!(card["number"].is_string() && card["security_code"].is_string());

    post_on_card(&app, &card_id, "load", json!({"amount": 100}))
        .await
        .assert_error(422, "card_not_active");
    post_on_card(&app, &card_id, "redeem", json!({"amount": 100}))
        .await
        .assert_error(422, "card_not_active");
    post_on_card(&app, &card_id, "holds", json!({"amount": 100}))
        .await
        .assert_error(422, "card_not_active");

    let response = post_on_card(
        &app,
        &card_id,
        "activate",
        json!({"amount": 2000, "reference": "till-7"}),
    )
    .await;
    response.assert_status(200);
    let activation = &response.body;
    assert!(activation["id"].as_str().unwrap().starts_with("txn_"));
    assert_eq!(activation["type"], "activation");
    assert_eq!(activation["card_id"], card_id.as_str());
    assert_eq!(activation["amount"], 2000);
    assert_eq!(activation["currency"], "USD");
    assert_eq!(activation["balance_before"], 0);
    assert_eq!(activation["balance_after"], 2000);
    assert_eq!(activation["reference"], "till-7");
    assert_eq!(activation["reverses"], Value::Null);

    let active = get_card(&app, &card_id).await;
    assert_eq!(active["state"], "active");
    assert_money(&active, 2000, 0, 2000);

    post_on_card(&app, &card_id, "activate", json!({}))
        .await
        .assert_error(409, "invalid_state");
    post_on_card(&app, &card_id, "redeem", json!({"amount": 500}))
        .await
        .assert_status(200);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn physical_card_activated_without_amount_is_active_and_empty() {
    let app = TestApp::spawn().await;
    let program_id = app.usd_program().await;
    let card_id = id_of(&physical_card(&app, &program_id).await);
    let response = app.post_raw(&format!("/v1/cards/{card_id}/activate"), "").await;
    response.assert_status(200);
    assert_eq!(response.body["type"], "activation");
    assert_eq!(response.body["amount"], 0);
    assert_eq!(response.body["balance_before"], 0);
    assert_eq!(response.body["balance_after"], 0);
    let card = get_card(&app, &card_id).await;
    assert_eq!(card["state"], "active");
    assert_money(&card, 0, 0, 0);
    post_on_card(&app, &card_id, "load", json!({"amount": 700}))
        .await
        .assert_status(200);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn physical_card_with_amount_is_refused_with_400() {
    let app = TestApp::spawn().await;
    let program_id = app.usd_program().await;
    let response = post_card(
        &app,
        json!({"program_id": program_id, "kind": "physical", "amount": 1000}),
    )
    .await;
    assert_param(&response, "amount");
    let listed = app.get("/v1/cards").await;
    assert_eq!(listed.body["data"], json!([]), "a refused issue created a card");
    response.assert_status(400);
}

#[tokio::test]
async fn card_create_refuses_bad_kind_program_and_amount() {
    let app = TestApp::spawn().await;
    let program_id = app.usd_program().await;
    let response = post_card(&app, json!({"program_id": program_id, "kind": "plastic"})).await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "kind");
    let response = post_card(&app, json!({"program_id": "nope", "kind": "virtual"})).await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "program_id");
    post_card(
        &app,
        json!({"program_id": "prog_0123456789abcdef0123456789abcdef", "kind": "virtual"}),
    )
    .await
    .assert_error(404, "not_found");
    for amount in [json!(0), json!(-100), json!(1.5), json!("100")] {
        let response = post_card(
            &app,
            json!({"program_id": program_id, "kind": "virtual", "amount": amount}),
        )
        .await;
        assert_eq!(
            response.status.as_u16(),
            400,
            "amount {amount}: {}",
            response.text
        );
        assert_param(&response, "amount");
    }
    let response = post_card(
        &app,
        json!({"program_id": program_id, "kind": "virtual", "ammount": 100}),
    )
    .await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "ammount");
    let listed = app.get("/v1/cards").await;
    assert_eq!(listed.body["data"], json!([]), "a refused issue created a card");
}

#[tokio::test]
async fn imported_card_keeps_its_number_and_a_duplicate_within_the_merchant_is_409() {
    let app = TestApp::spawn().await;
    let program_id = app.usd_program().await;
    // Six digits, and not Luhn-valid: imported numbers are taken as given.
    let number = "123456";
    assert!(!luhn_valid(number));
    let response = post_card(
        &app,
        json!({"program_id": program_id, "kind": "physical", "number": number, "security_code": "ABC123"}),
    )
    .await;
    response.assert_status(201);
    let card_id = id_of(&response.body);
    assert_eq!(response.body["number"], number);
    assert_eq!(response.body["security_code"], "ABC123");
    assert_eq!(response.body["last4"], "3456");
    assert_eq!(response.body["state"], "inactive");

    // Behaves like any other card.
    post_on_card(&app, &card_id, "activate", json!({"amount": 1500}))
        .await
        .assert_status(200);
    let looked_up = app
        .post(
            "/v1/cards/lookup",
            json!({"number": number, "security_code": "ABC123"}),
        )
        .await;
    looked_up.assert_status(200);
    assert_eq!(looked_up.body["id"], card_id.as_str());
    assert_eq!(looked_up.body["balance"], 1500);

    // The same number again, even on another program or kind: 409.
    let other_program = app.usd_program().await;
    let response = post_card(
        &app,
        json!({"program_id": other_program, "kind": "virtual", "amount": 100,
               "number": number, "security_code": "ZZZ999"}),
    )
    .await;
    response.assert_error(409, "card_number_taken");
    assert_param(&response, "number");
    let listed = app.get("/v1/cards").await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);

    // Another merchant may hold the same number.
    let other_key = app.another_merchant().await;
    let response = app
        .post_as(
            "/v1/programs",
            json!({"name": "Theirs", "currency": "USD"}),
            &other_key,
            None,
        )
        .await;
    response.assert_status(201);
    let their_program = id_of(&response.body);
    let response = app
        .post_as(
            "/v1/cards",
            json!({"program_id": their_program, "kind": "virtual", "amount": 100,
                   "number": number, "security_code": "XYZ789"}),
            &other_key,
            None,
        )
        .await;
    response.assert_status(201);
    assert_eq!(response.body["number"], number);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn import_refuses_a_malformed_or_half_given_number_and_code() {
    let app = TestApp::spawn().await;
    let program_id = app.usd_program().await;
    let cases = [
        (json!({"number": "12345", "security_code": "1234"}), "number"),
        (
            json!({"number": "1234567890123456789012", "security_code": "1234"}),
            "number",
        ),
        (json!({"number": "1234 5678", "security_code": "1234"}), "number"),
        (json!({"number": "123456789"}), "security_code"),
        (json!({"security_code": "1234"}), "number"),
        (
            json!({"number": "123456789", "security_code": "12"}),
            "security_code",
        ),
    ];
    for (extra, param) in cases {
        let mut body = json!({"program_id": program_id, "kind": "physical"});
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        let response = post_card(&app, body.clone()).await;
        response.assert_error(400, "invalid_request");
        assert_eq!(
            response.body["error"]["param"], param,
            "{body}: {}",
            response.text
        );
    }
    // 21 digits is the longest accepted.
    post_card(
        &app,
        json!({"program_id": program_id, "kind": "physical",
               "number": "123456789012345678901", "security_code": "1234"}),
    )
    .await
    .assert_status(201);
}

// ---- lookup ----

#[tokio::test]
async fn lookup_by_number_and_security_code_returns_the_card() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(4200).await;
    let response = app
        .post(
            "/v1/cards/lookup",
            json!({"number": card["number"], "security_code": card["security_code"]}),
        )
        .await;
    response.assert_status(200);
    assert_eq!(response.body["id"], card["id"]);
    assert_eq!(response.body["state"], "active");
    assert_money(&response.body, 4200, 0, 4200);
    assert_eq!(response.body["last4"], card["last4"]);
}

#[tokio::test]
async fn lookup_with_unknown_number_or_wrong_code_gives_identical_404_invalid_card() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let number = card["number"].as_str().unwrap();
    let code = card["security_code"].as_str().unwrap();
    let wrong_code = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };

    let wrong = app
        .post(
            "/v1/cards/lookup",
            json!({"number": number, "security_code": wrong_code}),
        )
        .await;
    let unknown = app
        .post(
            "/v1/cards/lookup",
            json!({"number": "9999888877776666", "security_code": code}),
        )
        .await;
    let malformed = app
        .post("/v1/cards/lookup", json!({"number": "12", "security_code": "x"}))
        .await;
    wrong.assert_error(404, "invalid_card");
    unknown.assert_error(404, "invalid_card");
    malformed.assert_error(404, "invalid_card");
    assert_eq!(wrong.text, unknown.text);
    assert_eq!(wrong.text, malformed.text);

    // The right code still works after one wrong attempt.
    app.post(
        "/v1/cards/lookup",
        json!({"number": number, "security_code": code}),
    )
    .await
    .assert_status(200);
}

#[tokio::test]
async fn ten_wrong_codes_lock_a_number_for_thirty_minutes_even_for_the_right_code() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let number = card["number"].as_str().unwrap();
    let code = card["security_code"].as_str().unwrap();
    let wrong_code = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    let lookup = |number: &str, code: &str| {
        app.post(
            "/v1/cards/lookup",
            json!({"number": number, "security_code": code}),
        )
    };

    for _ in 0..10 {
        lookup(number, wrong_code).await.assert_error(404, "invalid_card");
    }
    let locked = lookup(number, code).await;
    locked.assert_error(422, "card_locked");

    // An unknown number locks the same way, with the same answer.
    let unknown = "6036999988887777";
    for _ in 0..10 {
        lookup(unknown, "12345678")
            .await
            .assert_error(404, "invalid_card");
    }
    let unknown_locked = lookup(unknown, "12345678").await;
    unknown_locked.assert_error(422, "card_locked");
    assert_eq!(locked.text, unknown_locked.text);

    // The lock holds for thirty minutes, then the right code works again.
    app.clock.advance_seconds(29 * 60);
    lookup(number, code).await.assert_error(422, "card_locked");
    app.clock.advance_seconds(60);
    let response = lookup(number, code).await;
    response.assert_status(200);
    assert_eq!(response.body["id"], card["id"]);
}

#[tokio::test]
async fn nine_wrong_codes_then_the_right_one_do_not_lock() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let number = card["number"].as_str().unwrap();
    let code = card["security_code"].as_str().unwrap();
    let wrong_code = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for _ in 0..9 {
        app.post(
            "/v1/cards/lookup",
            json!({"number": number, "security_code": wrong_code}),
        )
        .await
        .assert_error(404, "invalid_card");
    }
    app.post(
        "/v1/cards/lookup",
        json!({"number": number, "security_code": code}),
    )
    .await
    .assert_status(200);
    // A success starts the count again.
    app.post(
        "/v1/cards/lookup",
        json!({"number": number, "security_code": wrong_code}),
    )
    .await
    .assert_error(404, "invalid_card");
    app.post(
        "/v1/cards/lookup",
        json!({"number": number, "security_code": code}),
    )
    .await
    .assert_status(200);
}

#[tokio::test]
async fn lookup_requires_number_and_security_code() {
    let app = TestApp::spawn().await;
    let response = app
        .post("/v1/cards/lookup", json!({"number": "6036000011112222"}))
        .await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "security_code");
}

// ---- load and redeem ----

#[tokio::test]
async fn load_adds_value_and_answers_with_the_load_transaction() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let card_id = id_of(&card);
    let response = post_on_card(
        &app,
        &card_id,
        "load",
        json!({"amount": 2500, "currency": "USD", "reference": "top-up 1"}),
    )
    .await;
    response.assert_status(200);
    let load = &response.body;
    assert!(load["id"].as_str().unwrap().starts_with("txn_"));
    assert_eq!(load["type"], "load");
    assert_eq!(load["card_id"], card_id.as_str());
    assert_eq!(load["amount"], 2500);
    assert_eq!(load["currency"], "USD");
    assert_eq!(load["balance_before"], 1000);
    assert_eq!(load["balance_after"], 3500);
    assert_eq!(load["reference"], "top-up 1");
    assert_eq!(load["reverses"], Value::Null);
    assert!(load["created_at"].is_string());
    assert_money(&get_card(&app, &card_id).await, 3500, 0, 3500);

    let fetched = app.get(&format!("/v1/transactions/{}", id_of(load))).await;
    fetched.assert_status(200);
    assert_eq!(&fetched.body, load);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn redeem_takes_the_full_amount_requested() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(5000).await;
    let card_id = id_of(&card);
    let response = post_on_card(
        &app,
        &card_id,
        "redeem",
        json!({"amount": 1999, "reference": "sale 42"}),
    )
    .await;
    response.assert_status(200);
    let redemption = &response.body;
    assert_eq!(redemption["type"], "redemption");
    assert_eq!(redemption["amount"], 1999);
    assert_eq!(redemption["currency"], "USD");
    assert_eq!(redemption["balance_before"], 5000);
    assert_eq!(redemption["balance_after"], 3001);
    assert_eq!(redemption["reference"], "sale 42");
    assert_money(&get_card(&app, &card_id).await, 3001, 0, 3001);

    // Exactly the balance empties the card.
    let response = post_on_card(&app, &card_id, "redeem", json!({"amount": 3001})).await;
    response.assert_status(200);
    assert_eq!(response.body["balance_after"], 0);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn redeem_with_allow_partial_takes_the_lesser_of_requested_and_available() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let card_id = id_of(&card);

    // Enough available: the requested amount, not more.
    let response = post_on_card(
        &app,
        &card_id,
        "redeem",
        json!({"amount": 300, "allow_partial": true}),
    )
    .await;
    response.assert_status(200);
    assert_eq!(response.body["amount"], 300);

    // Too little: what is available.
    let response = post_on_card(
        &app,
        &card_id,
        "redeem",
        json!({"amount": 1500, "allow_partial": true}),
    )
    .await;
    response.assert_status(200);
    assert_eq!(response.body["amount"], 700);
    assert_eq!(response.body["balance_before"], 700);
    assert_eq!(response.body["balance_after"], 0);

    // Nothing left: refused, even partially.
    post_on_card(
        &app,
        &card_id,
        "redeem",
        json!({"amount": 100, "allow_partial": true}),
    )
    .await
    .assert_error(422, "insufficient_funds");
    assert_money(&get_card(&app, &card_id).await, 0, 0, 0);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn redeem_refuses_when_available_is_short() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let card_id = id_of(&card);
    for body in [
        json!({"amount": 1001}),
        json!({"amount": 1001, "allow_partial": false}),
    ] {
        let response = post_on_card(&app, &card_id, "redeem", body).await;
        response.assert_error(422, "insufficient_funds");
        assert_param(&response, "amount");
    }
    assert_money(&get_card(&app, &card_id).await, 1000, 0, 1000);
    assert_eq!(app.card_transactions(&card_id).await.len(), 1);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn amounts_must_be_positive_integers() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let card_id = id_of(&card);
    for (action, amount) in [
        ("redeem", json!(0)),
        ("redeem", json!(-1)),
        ("redeem", json!(10.5)),
        ("redeem", json!("100")),
        ("redeem", json!(null)),
        ("load", json!(0)),
        ("load", json!(-500)),
        ("load", json!(9_223_372_036_854_775_808_u64)),
    ] {
        let response = post_on_card(&app, &card_id, action, json!({"amount": amount})).await;
        assert_eq!(
            response.status.as_u16(),
            400,
            "{action} {amount}: {}",
            response.text
        );
        assert_param(&response, "amount");
    }
    let response = post_on_card(&app, &card_id, "redeem", json!({})).await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "amount");
    assert_money(&get_card(&app, &card_id).await, 1000, 0, 1000);
    assert_eq!(app.card_transactions(&card_id).await.len(), 1);
}

#[tokio::test]
async fn a_balance_that_would_overflow_is_refused_not_wrapped() {
    let app = TestApp::spawn().await;
    let program = app
        .program(
            json!({"name": "Unbounded", "currency": "USD", "max_load": i64::MAX, "max_balance": i64::MAX}),
        )
        .await;
    let card = app.card(&program, i64::MAX).await;
    let card_id = id_of(&card);
    let response = post_on_card(&app, &card_id, "load", json!({"amount": 1})).await;
    response.assert_error(422, "limit_exceeded");
    assert_money(&get_card(&app, &card_id).await, i64::MAX, 0, i64::MAX);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn unknown_fields_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let card_id = id_of(&card);
    let response = post_on_card(&app, &card_id, "redeem", json!({"amount": 100, "ammount": 100})).await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "ammount");
    let response = post_on_card(&app, &card_id, "freeze", json!({"now": true})).await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "now");
    let response = post_on_card(&app, &card_id, "deactivate", json!({"cash_out": true})).await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "cash_out");
    let card = get_card(&app, &card_id).await;
    assert_eq!(card["state"], "active");
    assert_money(&card, 1000, 0, 1000);
}

#[tokio::test]
async fn reference_longer_than_255_characters_or_with_control_characters_is_400() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(1000).await);
    for reference in ["x".repeat(256), "line\nbreak".to_owned()] {
        let response = post_on_card(
            &app,
            &card_id,
            "redeem",
            json!({"amount": 100, "reference": reference}),
        )
        .await;
        response.assert_error(400, "invalid_request");
        assert_param(&response, "reference");
    }
    let response = post_on_card(
        &app,
        &card_id,
        "redeem",
        json!({"amount": 100, "reference": "x".repeat(255)}),
    )
    .await;
    response.assert_status(200);
    assert_eq!(response.body["reference"], "x".repeat(255));
    assert_money(&get_card(&app, &card_id).await, 900, 0, 900);
}

#[tokio::test]
async fn malformed_json_is_400_invalid_request() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let card_id = id_of(&card);
    for body in ["{\"amount\": ", "[1, 2]", "\"amount\"", "nonsense"] {
        let response = app.post_raw(&format!("/v1/cards/{card_id}/redeem"), body).await;
        response.assert_error(400, "invalid_request");
    }
    assert_money(&get_card(&app, &card_id).await, 1000, 0, 1000);
}

#[tokio::test]
async fn currency_given_must_match_the_cards_with_currency_mismatch() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let card_id = id_of(&card);
    for action in ["redeem", "load", "holds"] {
        let response = post_on_card(&app, &card_id, action, json!({"amount": 100, "currency": "EUR"})).await;
        response.assert_error(422, "currency_mismatch");
        assert_param(&response, "currency");
    }
    assert_money(&get_card(&app, &card_id).await, 1000, 0, 1000);
    assert_eq!(app.card_transactions(&card_id).await.len(), 1);

    let response = post_on_card(
        &app,
        &card_id,
        "redeem",
        json!({"amount": 100, "currency": "USD"}),
    )
    .await;
    response.assert_status(200);
    assert_eq!(response.body["currency"], "USD");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn currency_that_is_not_a_known_upper_case_iso_code_is_400_invalid_request() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let card_id = id_of(&card);
    for currency in ["usd", "ZZZ", "US", "USDD", "", "XAU"] {
        for action in ["redeem", "load", "holds"] {
            let response = post_on_card(
                &app,
                &card_id,
                action,
                json!({"amount": 100, "currency": currency}),
            )
            .await;
            response.assert_error(400, "invalid_request");
            assert_param(&response, "currency");
        }
    }
    assert_money(&get_card(&app, &card_id).await, 1000, 0, 1000);
    assert_eq!(app.card_transactions(&card_id).await.len(), 1);
}

/// The contract: "Operations that move value accept an optional `currency`; when given it must
/// equal the card's (422 `currency_mismatch`)". Activation with value and cash-out move value.
#[tokio::test]
async fn activate_and_cashout_accept_a_matching_currency_and_refuse_another() {
    let app = TestApp::spawn().await;
    let program_id = app.usd_program().await;
    let card_id = id_of(&physical_card(&app, &program_id).await);

    let response = post_on_card(
        &app,
        &card_id,
        "activate",
        json!({"amount": 1000, "currency": "EUR"}),
    )
    .await;
    response.assert_error(422, "currency_mismatch");
    assert_param(&response, "currency");
    assert_eq!(get_card(&app, &card_id).await["state"], "inactive");
    post_on_card(
        &app,
        &card_id,
        "activate",
        json!({"amount": 1000, "currency": "USD"}),
    )
    .await
    .assert_status(200);

    let response = post_on_card(&app, &card_id, "cashout", json!({"currency": "EUR"})).await;
    response.assert_error(422, "currency_mismatch");
    assert_param(&response, "currency");
    assert_money(&get_card(&app, &card_id).await, 1000, 0, 1000);
    post_on_card(&app, &card_id, "cashout", json!({"currency": "USD"}))
        .await
        .assert_status(200);
    assert_money(&get_card(&app, &card_id).await, 0, 0, 0);
    TestApp::assert_sound(&app.verify().await);
}

// ---- lifecycle: freeze, unfreeze, deactivate, cashout ----

#[tokio::test]
async fn frozen_card_refuses_value_moves_until_unfrozen() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let card_id = id_of(&card);

    let response = post_on_card(&app, &card_id, "freeze", json!({})).await;
    response.assert_status(200);
    assert_eq!(response.body["id"], card_id.as_str());
    assert_eq!(response.body["state"], "frozen");
    assert_money(&response.body, 1000, 0, 1000);

    post_on_card(&app, &card_id, "redeem", json!({"amount": 100}))
        .await
        .assert_error(422, "card_not_active");
    post_on_card(&app, &card_id, "load", json!({"amount": 100}))
        .await
        .assert_error(422, "card_not_active");
    post_on_card(&app, &card_id, "holds", json!({"amount": 100}))
        .await
        .assert_error(422, "card_not_active");
    post_on_card(&app, &card_id, "cashout", json!({}))
        .await
        .assert_error(422, "card_not_active");
    assert_money(&get_card(&app, &card_id).await, 1000, 0, 1000);

    let response = post_on_card(&app, &card_id, "unfreeze", json!({})).await;
    response.assert_status(200);
    assert_eq!(response.body["state"], "active");
    post_on_card(&app, &card_id, "redeem", json!({"amount": 100}))
        .await
        .assert_status(200);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn freeze_and_unfreeze_refuse_invalid_transitions_with_invalid_state() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let card_id = id_of(&card);
    post_on_card(&app, &card_id, "unfreeze", json!({}))
        .await
        .assert_error(409, "invalid_state");
    post_on_card(&app, &card_id, "freeze", json!({}))
        .await
        .assert_status(200);
    post_on_card(&app, &card_id, "freeze", json!({}))
        .await
        .assert_error(409, "invalid_state");
    assert_eq!(get_card(&app, &card_id).await["state"], "frozen");

    let program_id = app.usd_program().await;
    let stock_id = id_of(&physical_card(&app, &program_id).await);
    post_on_card(&app, &stock_id, "freeze", json!({}))
        .await
        .assert_error(409, "invalid_state");
    post_on_card(&app, &stock_id, "unfreeze", json!({}))
        .await
        .assert_error(409, "invalid_state");
    assert_eq!(get_card(&app, &stock_id).await["state"], "inactive");
}

#[tokio::test]
async fn deactivate_refuses_a_card_that_still_has_value_with_card_not_empty() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let card_id = id_of(&card);
    post_on_card(&app, &card_id, "deactivate", json!({}))
        .await
        .assert_error(409, "card_not_empty");
    post_on_card(&app, &card_id, "deactivate", json!({"cashout": false}))
        .await
        .assert_error(409, "card_not_empty");
    let card = get_card(&app, &card_id).await;
    assert_eq!(card["state"], "active");
    assert_money(&card, 1000, 0, 1000);
}

#[tokio::test]
async fn deactivate_with_cashout_pays_out_releases_holds_and_closes_for_good() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(5000).await;
    let card_id = id_of(&card);
    let hold = post_on_card(&app, &card_id, "holds", json!({"amount": 1000})).await;
    hold.assert_status(201);
    let hold_id = id_of(&hold.body);
    post_on_card(&app, &card_id, "deactivate", json!({}))
        .await
        .assert_error(409, "card_not_empty");

    let response = post_on_card(&app, &card_id, "deactivate", json!({"cashout": true})).await;
    response.assert_status(200);
    assert_eq!(response.body["id"], card_id.as_str());
    assert_eq!(response.body["state"], "closed");
    assert_money(&response.body, 0, 0, 0);

    let hold = app.get(&format!("/v1/holds/{hold_id}")).await;
    hold.assert_status(200);
    assert_eq!(hold.body["state"], "released");
    assert_eq!(hold.body["captured_amount"], 0);

    let transactions = app.card_transactions(&card_id).await;
    let cashout = &transactions[0];
    assert_eq!(cashout["type"], "cashout");
    assert_eq!(cashout["amount"], 5000);
    assert_eq!(cashout["balance_before"], 5000);
    assert_eq!(cashout["balance_after"], 0);

    // Closed for good.
    post_on_card(&app, &card_id, "load", json!({"amount": 100}))
        .await
        .assert_error(422, "card_not_active");
    post_on_card(&app, &card_id, "redeem", json!({"amount": 100}))
        .await
        .assert_error(422, "card_not_active");
    post_on_card(&app, &card_id, "cashout", json!({}))
        .await
        .assert_error(422, "card_not_active");
    for action in ["freeze", "unfreeze", "activate", "deactivate"] {
        post_on_card(&app, &card_id, action, json!({}))
            .await
            .assert_error(409, "invalid_state");
    }
    app.post(&format!("/v1/holds/{hold_id}/capture"), json!({}))
        .await
        .assert_error(409, "hold_not_pending");
    assert_eq!(get_card(&app, &card_id).await["state"], "closed");
    let report = app.verify().await;
    TestApp::assert_sound(&report);
    assert_eq!(report.pending_holds, 0);
}

#[tokio::test]
async fn deactivate_of_an_empty_card_closes_it() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let card_id = id_of(&card);
    post_on_card(&app, &card_id, "redeem", json!({"amount": 1000}))
        .await
        .assert_status(200);
    let response = post_on_card(&app, &card_id, "deactivate", json!({})).await;
    response.assert_status(200);
    assert_eq!(response.body["state"], "closed");
    assert_eq!(app.card_transactions(&card_id).await.len(), 2);

    // Card stock never activated can be closed too.
    let program_id = app.usd_program().await;
    let stock_id = id_of(&physical_card(&app, &program_id).await);
    let response = post_on_card(&app, &stock_id, "deactivate", json!({"cashout": true})).await;
    response.assert_status(200);
    assert_eq!(response.body["state"], "closed");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn cashout_takes_the_whole_available_balance() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(5000).await;
    let card_id = id_of(&card);
    post_on_card(&app, &card_id, "holds", json!({"amount": 1200}))
        .await
        .assert_status(201);

    let response = post_on_card(&app, &card_id, "cashout", json!({"reference": "closing"})).await;
    response.assert_status(200);
    let cashout = &response.body;
    assert_eq!(cashout["type"], "cashout");
    assert_eq!(cashout["amount"], 3800);
    assert_eq!(cashout["currency"], "USD");
    assert_eq!(cashout["balance_before"], 5000);
    assert_eq!(cashout["balance_after"], 1200);
    assert_eq!(cashout["reference"], "closing");
    let card = get_card(&app, &card_id).await;
    assert_eq!(card["state"], "active");
    assert_money(&card, 1200, 1200, 0);

    // Nothing available: nothing to cash out.
    post_on_card(&app, &card_id, "cashout", json!({}))
        .await
        .assert_error(422, "insufficient_funds");
    assert_money(&get_card(&app, &card_id).await, 1200, 1200, 0);
    TestApp::assert_sound(&app.verify().await);
}

// ---- expiry ----

#[tokio::test]
async fn program_expiry_sets_expires_at_that_many_months_after_issue() {
    let app = TestApp::spawn().await;
    let program_id = app
        .program(json!({"name": "Five years", "currency": "USD", "expiry_months": 60}))
        .await;
    let card = app.card(&program_id, 1000).await;
    let created = unix_millis(card["created_at"].as_str().unwrap());
    let expires = unix_millis(card["expires_at"].as_str().expect("an expiry"));
    assert_eq!(expires, plus_months(created, 60));
    // About five years: between 1826 and 1827 days.
    let days = (expires - created) / 86_400_000;
    assert!((1826..=1827).contains(&days), "{days} days");
    assert_eq!(
        get_card(&app, &id_of(&card)).await["expires_at"],
        card["expires_at"]
    );
}

#[tokio::test]
async fn load_pushes_the_expiry_out_to_months_after_the_load() {
    let app = TestApp::spawn().await;
    let program_id = app
        .program(json!({"name": "Five years", "currency": "USD", "expiry_months": 60}))
        .await;
    let card = app.card(&program_id, 1000).await;
    let card_id = id_of(&card);
    let first_expiry = unix_millis(card["expires_at"].as_str().unwrap());

    app.clock.advance_seconds(400 * 86_400);
    let load = post_on_card(&app, &card_id, "load", json!({"amount": 500})).await;
    load.assert_status(200);
    let loaded_at = unix_millis(load.body["created_at"].as_str().unwrap());
    let card = get_card(&app, &card_id).await;
    let pushed = unix_millis(card["expires_at"].as_str().unwrap());
    assert_eq!(pushed, plus_months(loaded_at, 60));
    assert!(pushed > first_expiry);

    // Spending does not move the expiry.
    post_on_card(&app, &card_id, "redeem", json!({"amount": 100}))
        .await
        .assert_status(200);
    assert_eq!(get_card(&app, &card_id).await["expires_at"], card["expires_at"]);
}

#[tokio::test]
async fn activation_sets_the_expiry_from_the_activation() {
    let app = TestApp::spawn().await;
    let program_id = app
        .program(json!({"name": "Five years", "currency": "USD", "expiry_months": 60}))
        .await;
    let card_id = id_of(&physical_card(&app, &program_id).await);
    app.clock.advance_seconds(30 * 86_400);
    let activation = post_on_card(&app, &card_id, "activate", json!({"amount": 1000})).await;
    activation.assert_status(200);
    let activated_at = unix_millis(activation.body["created_at"].as_str().unwrap());
    let card = get_card(&app, &card_id).await;
    assert_eq!(
        unix_millis(card["expires_at"].as_str().unwrap()),
        plus_months(activated_at, 60)
    );
}

#[tokio::test]
async fn expired_card_refuses_redeem_and_load_with_card_expired() {
    let app = TestApp::spawn().await;
    let program_id = app
        .program(json!({"name": "Promo", "currency": "USD", "expiry_months": 1, "promotional": true}))
        .await;
    let card = app.card(&program_id, 1000).await;
    let card_id = id_of(&card);
    let expires = unix_millis(card["expires_at"].as_str().unwrap());
    let now = app.service.now().unix_millis();

    // A second before the expiry the card still works.
    app.clock.advance_seconds((expires - now) / 1000 - 1);
    post_on_card(&app, &card_id, "redeem", json!({"amount": 100}))
        .await
        .assert_status(200);

    app.clock.advance_seconds(2);
    for (action, body) in [
        ("redeem", json!({"amount": 100})),
        ("redeem", json!({"amount": 100, "allow_partial": true})),
        ("load", json!({"amount": 100})),
        ("holds", json!({"amount": 100})),
    ] {
        post_on_card(&app, &card_id, action, body)
            .await
            .assert_error(422, "card_expired");
    }
    let card = get_card(&app, &card_id).await;
    assert_money(&card, 900, 0, 900);
    assert_eq!(unix_millis(card["expires_at"].as_str().unwrap()), expires);
    assert_eq!(app.card_transactions(&card_id).await.len(), 2);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn card_of_a_program_without_expiry_never_expires() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    assert_eq!(card["expires_at"], Value::Null);
    app.clock.advance_seconds(100 * 366 * 86_400);
    post_on_card(&app, &id_of(&card), "redeem", json!({"amount": 1000}))
        .await
        .assert_status(200);
}

// ---- lists ----

#[tokio::test]
async fn card_list_filters_by_state_program_and_last_4_digits() {
    let app = TestApp::spawn().await;
    let program_a = app.usd_program().await;
    let program_b = app.usd_program().await;
    let a1 = id_of(&app.card(&program_a, 100).await);
    let a2 = id_of(&app.card(&program_a, 200).await);
    let a3 = id_of(&physical_card(&app, &program_a).await);
    let b1 = id_of(&app.card(&program_b, 300).await);
    post_on_card(&app, &a2, "freeze", json!({}))
        .await
        .assert_status(200);

    async fn ids(app: &TestApp, query: &str) -> Vec<String> {
        let response = app.get(&format!("/v1/cards?{query}")).await;
        response.assert_status(200);
        response.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect()
    }

    assert_eq!(
        ids(&app, "").await,
        vec![b1.clone(), a3.clone(), a2.clone(), a1.clone()]
    );
    assert_eq!(ids(&app, "state=active").await, vec![b1.clone(), a1.clone()]);
    assert_eq!(ids(&app, "state=frozen").await, vec![a2.clone()]);
    assert_eq!(ids(&app, "state=inactive").await, vec![a3.clone()]);
    assert_eq!(ids(&app, "state=closed").await, Vec::<String>::new());
    assert_eq!(
        ids(&app, &format!("program_id={program_a}")).await,
        vec![a3.clone(), a2.clone(), a1.clone()]
    );
    assert_eq!(
        ids(&app, &format!("program_id={program_a}&state=active")).await,
        vec![a1.clone()]
    );
    assert_eq!(
        ids(&app, &format!("program_id={program_b}")).await,
        vec![b1.clone()]
    );
    // By the last 4 digits (the support desk's search), alone or within a program.
    let last4 = app.get(&format!("/v1/cards/{b1}")).await.body["last4"]
        .as_str()
        .expect("last 4")
        .to_owned();
    let found = ids(&app, &format!("last4={last4}")).await;
    assert!(found.contains(&b1), "{found:?}");
    for id in &found {
        assert_eq!(
            app.get(&format!("/v1/cards/{id}")).await.body["last4"],
            last4.as_str()
        );
    }
    assert_eq!(
        ids(&app, &format!("last4={last4}&program_id={program_b}")).await,
        vec![b1.clone()]
    );
    let other = if last4 == "0000" { "1111" } else { "0000" };
    assert!(
        !ids(&app, &format!("last4={other}&program_id={program_b}"))
            .await
            .contains(&b1)
    );
    for bad in ["123", "12345", "12a4"] {
        app.get(&format!("/v1/cards?last4={bad}"))
            .await
            .assert_error(400, "invalid_request");
    }

    // Paged with a filter: no duplicates, no omissions.
    let first = app
        .get(&format!("/v1/cards?program_id={program_a}&limit=2"))
        .await;
    first.assert_status(200);
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let second = app
        .get(&format!(
            "/v1/cards?program_id={program_a}&limit=2&cursor={cursor}"
        ))
        .await;
    second.assert_status(200);
    assert_eq!(second.body["next_cursor"], Value::Null);
    let paged: Vec<String> = first.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second.body["data"].as_array().unwrap())
        .map(id_of)
        .collect();
    assert_eq!(paged, vec![a3, a2, a1]);

    let response = app.get("/v1/cards?state=lost").await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "state");
    let response = app.get("/v1/cards?program_id=xyz").await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "program_id");
    let response = app.get("/v1/cards?kind=virtual").await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "kind");
}

#[tokio::test]
async fn card_transactions_page_newest_first_without_duplicates_or_omissions() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let card_id = id_of(&card);
    let mut created = vec![app.card_transactions(&card_id).await[0]["id"].clone()];
    for n in 0..4 {
        let response = post_on_card(
            &app,
            &card_id,
            "load",
            json!({"amount": 100 + n, "reference": format!("load {n}")}),
        )
        .await;
        response.assert_status(200);
        created.push(response.body["id"].clone());
        let response = post_on_card(&app, &card_id, "redeem", json!({"amount": 50})).await;
        response.assert_status(200);
        created.push(response.body["id"].clone());
    }
    created.reverse();
    assert_eq!(created.len(), 9);

    let mut seen = Vec::new();
    let mut path = format!("/v1/cards/{card_id}/transactions?limit=2");
    let mut pages = 0;
    loop {
        let response = app.get(&path).await;
        response.assert_status(200);
        pages += 1;
        let data = response.body["data"].as_array().unwrap();
        assert!(!data.is_empty() && data.len() <= 2, "{}", response.text);
        for transaction in data {
            assert_eq!(transaction["card_id"], card_id.as_str());
            seen.push(transaction["id"].clone());
        }
        match response.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/cards/{card_id}/transactions?limit=2&cursor={cursor}"),
            None => break,
        }
        assert!(pages < 20, "paging does not end");
    }
    assert_eq!(pages, 5);
    assert_eq!(
        seen, created,
        "pages must list every transaction once, newest first"
    );

    // Balances chain from the oldest to the newest.
    let all = app.card_transactions(&card_id).await;
    for pair in all.windows(2) {
        assert_eq!(pair[0]["balance_before"], pair[1]["balance_after"]);
    }
}

#[tokio::test]
async fn card_transactions_refuse_a_bad_limit_or_cursor() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(1000).await);
    for query in ["limit=0", "limit=101", "limit=two"] {
        let response = app
            .get(&format!("/v1/cards/{card_id}/transactions?{query}"))
            .await;
        response.assert_error(400, "invalid_request");
        assert_param(&response, "limit");
    }
    let response = app
        .get(&format!("/v1/cards/{card_id}/transactions?cursor=..%2F"))
        .await;
    response.assert_error(400, "invalid_request");
    assert_param(&response, "cursor");
    app.get("/v1/cards/card_0123456789abcdef0123456789abcdef/transactions")
        .await
        .assert_error(404, "not_found");
}

// ---- authentication and tenant isolation ----

#[tokio::test]
async fn a_missing_or_wrong_api_key_is_401() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(1000).await);
    let path = format!("/v1/cards/{card_id}");
    app.get_as(&path, "gk_wrong")
        .await
        .assert_error(401, "unauthorized");
    let response = app.send(app.client.get(app.url(&path))).await;
    assert_eq!(response.status.as_u16(), 401, "{}", response.text);
    app.post_as(
        &format!("{path}/redeem"),
        json!({"amount": 100}),
        "gk_wrong",
        None,
    )
    .await
    .assert_status(401);
    assert_money(&get_card(&app, &card_id).await, 1000, 0, 1000);
}

#[tokio::test]
async fn another_merchants_objects_answer_exactly_as_if_they_did_not_exist() {
    let app = TestApp::spawn().await;
    let program_id = app.usd_program().await;
    let card = app.card(&program_id, 5000).await;
    let card_id = id_of(&card);
    let stock_id = id_of(&physical_card(&app, &program_id).await);
    let redemption = post_on_card(&app, &card_id, "redeem", json!({"amount": 1000})).await;
    redemption.assert_status(200);
    let transaction_id = id_of(&redemption.body);
    let hold = post_on_card(&app, &card_id, "holds", json!({"amount": 500})).await;
    hold.assert_status(201);
    let hold_id = id_of(&hold.body);

    let other = app.another_merchant().await;
    let none = "0123456789abcdef0123456789abcdef";
    let missing_program = format!("prog_{none}");
    let missing_card = format!("card_{none}");
    let missing_hold = format!("hold_{none}");
    let missing_transaction = format!("txn_{none}");

    let gets = [
        (
            format!("/v1/programs/{program_id}"),
            format!("/v1/programs/{missing_program}"),
        ),
        (
            format!("/v1/cards/{card_id}"),
            format!("/v1/cards/{missing_card}"),
        ),
        (
            format!("/v1/cards/{card_id}/transactions"),
            format!("/v1/cards/{missing_card}/transactions"),
        ),
        (
            format!("/v1/holds/{hold_id}"),
            format!("/v1/holds/{missing_hold}"),
        ),
        (
            format!("/v1/transactions/{transaction_id}"),
            format!("/v1/transactions/{missing_transaction}"),
        ),
    ];
    for (foreign, missing) in &gets {
        let theirs = app.get_as(foreign, &other).await;
        let absent = app.get_as(missing, &other).await;
        theirs.assert_error(404, "not_found");
        assert_eq!(theirs.text, absent.text, "GET {foreign}");
    }

    let posts = [
        (format!("/v1/cards/{stock_id}/activate"), json!({"amount": 100})),
        (format!("/v1/cards/{card_id}/load"), json!({"amount": 100})),
        (format!("/v1/cards/{card_id}/redeem"), json!({"amount": 100})),
        (format!("/v1/cards/{card_id}/cashout"), json!({})),
        (format!("/v1/cards/{card_id}/freeze"), json!({})),
        (format!("/v1/cards/{card_id}/unfreeze"), json!({})),
        (
            format!("/v1/cards/{card_id}/deactivate"),
            json!({"cashout": true}),
        ),
        (format!("/v1/cards/{card_id}/holds"), json!({"amount": 100})),
        (format!("/v1/holds/{hold_id}/capture"), json!({})),
        (format!("/v1/holds/{hold_id}/release"), json!({})),
        (format!("/v1/transactions/{transaction_id}/refund"), json!({})),
        (format!("/v1/transactions/{transaction_id}/void"), json!({})),
    ];
    for (foreign, body) in &posts {
        let missing = foreign
            .replace(&card_id, &missing_card)
            .replace(&stock_id, &missing_card)
            .replace(&hold_id, &missing_hold)
            .replace(&transaction_id, &missing_transaction);
        let theirs = app.post_as(foreign, body.clone(), &other, None).await;
        let absent = app.post_as(&missing, body.clone(), &other, None).await;
        theirs.assert_error(404, "not_found");
        assert_eq!(theirs.text, absent.text, "POST {foreign}");
    }

    // Issuing on another merchant's program is as on a program that does not exist.
    let theirs = app
        .post_as(
            "/v1/cards",
            json!({"program_id": program_id, "kind": "virtual", "amount": 100}),
            &other,
            None,
        )
        .await;
    let absent = app
        .post_as(
            "/v1/cards",
            json!({"program_id": missing_program, "kind": "virtual", "amount": 100}),
            &other,
            None,
        )
        .await;
    theirs.assert_error(404, "not_found");
    assert_eq!(theirs.text, absent.text);

    // Lookup of another merchant's card: invalid_card, as for any unknown number.
    app.post_as(
        "/v1/cards/lookup",
        json!({"number": card["number"], "security_code": card["security_code"]}),
        &other,
        None,
    )
    .await
    .assert_error(404, "invalid_card");

    // Their lists do not show ours.
    for path in [
        "/v1/cards".to_owned(),
        "/v1/programs".to_owned(),
        format!("/v1/cards?program_id={program_id}"),
    ] {
        let response = app.get_as(&path, &other).await;
        response.assert_status(200);
        assert_eq!(response.body["data"], json!([]), "{path}");
    }

    // And nothing of ours changed.
    let ours = get_card(&app, &card_id).await;
    assert_eq!(ours["state"], "active");
    assert_money(&ours, 4000, 500, 3500);
    assert_eq!(get_card(&app, &stock_id).await["state"], "inactive");
    assert_eq!(
        app.get(&format!("/v1/holds/{hold_id}")).await.body["state"],
        "pending"
    );
    assert_eq!(app.card_transactions(&card_id).await.len(), 3);
    TestApp::assert_sound(&app.verify().await);
}
