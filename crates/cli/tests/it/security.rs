//! Security of card numbers, security codes and API keys against a real in-process server:
//! the brute-force lockout on lookups, answers that tell a guesser nothing, card objects that
//! never carry the secrets after creation, and a database whose files hold none of them in
//! clear.

use giftd_testkit::{TestApp, TestResponse};
use serde_json::{Value, json};

/// Wrong security codes for one number that lock it (see `giftd_domain::lockout`).
const MAX_FAILURES: usize = 10;
/// The lock lasts 30 minutes; one second more and it is over.
const LOCK_SECONDS: i64 = 30 * 60;

fn text(card: &Value, field: &str) -> String {
    card[field]
        .as_str()
        .unwrap_or_else(|| panic!("card field {field} is a string: {card}"))
        .to_owned()
}

/// A security code of the same length as `code` that is not `code`.
fn wrong_code(code: &str) -> String {
    code.chars().map(|c| if c == '0' { '1' } else { '0' }).collect()
}

async fn lookup(app: &TestApp, number: &str, security_code: &str) -> TestResponse {
    app.post(
        "/v1/cards/lookup",
        json!({"number": number, "security_code": security_code}),
    )
    .await
}

/// A 16-digit number that no card of `app` has (imported numbers may be any digits, so a
/// number unlike the generated ones is certainly unknown).
const UNKNOWN_NUMBER: &str = "9999000011112222";

#[tokio::test]
async fn ten_wrong_codes_within_thirty_minutes_lock_the_card_even_for_the_right_code_until_the_lock_ends() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(2500).await;
    let (number, code) = (text(&card, "number"), text(&card, "security_code"));
    let wrong = wrong_code(&code);

    // Spread over 27 minutes: still one window.
    for attempt in 0..MAX_FAILURES {
        lookup(&app, &number, &wrong)
            .await
            .assert_error(404, "invalid_card");
        if attempt + 1 < MAX_FAILURES {
            app.clock.advance_seconds(180);
        }
    }

    lookup(&app, &number, &code)
        .await
        .assert_error(422, "card_locked");
    app.clock.advance_seconds(LOCK_SECONDS - 60);
    lookup(&app, &number, &code)
        .await
        .assert_error(422, "card_locked");

    app.clock.advance_seconds(60 + 1);
    let found = lookup(&app, &number, &code).await;
    found.assert_status(200);
    assert_eq!(found.body["id"], card["id"]);
    assert_eq!(found.body["balance"], 2500);
}

#[tokio::test]
async fn malformed_security_codes_are_answered_as_wrong_ones_and_count_toward_the_lockout() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(2500).await;
    let (number, code) = (text(&card, "number"), text(&card, "security_code"));
    let wrong = lookup(&app, &number, &wrong_code(&code)).await;
    wrong.assert_error(404, "invalid_card");
    for malformed in ["!", "", "12", "x".repeat(17).as_str(), "12 34", "٣٣٣٣"] {
        let answer = lookup(&app, &number, malformed).await;
        answer.assert_error(404, "invalid_card");
        assert_eq!(
            answer.text, wrong.text,
            "a malformed code {malformed:?} is answered as a wrong one"
        );
    }
    for _ in 0..MAX_FAILURES - 7 {
        lookup(&app, &number, "!").await;
    }
    lookup(&app, &number, &code)
        .await
        .assert_error(422, "card_locked");
}

#[tokio::test]
async fn an_unknown_number_locks_after_ten_attempts_exactly_like_a_real_card() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let (number, code) = (text(&card, "number"), text(&card, "security_code"));
    let wrong = wrong_code(&code);

    for _ in 0..MAX_FAILURES {
        let known = lookup(&app, &number, &wrong).await;
        let unknown = lookup(&app, UNKNOWN_NUMBER, &wrong).await;
        known.assert_error(404, "invalid_card");
        unknown.assert_error(404, "invalid_card");
        assert_eq!(known.text, unknown.text);
    }

    let known = lookup(&app, &number, &code).await;
    let unknown = lookup(&app, UNKNOWN_NUMBER, &code).await;
    known.assert_error(422, "card_locked");
    unknown.assert_error(422, "card_locked");
    // Locked at the same instant: nothing in the answer tells which number has a card.
    assert_eq!(known.text, unknown.text);

    app.clock.advance_seconds(LOCK_SECONDS + 1);
    lookup(&app, UNKNOWN_NUMBER, &code)
        .await
        .assert_error(404, "invalid_card");
    lookup(&app, &number, &code).await.assert_status(200);
}

#[tokio::test]
async fn an_unknown_number_and_a_wrong_code_get_byte_identical_invalid_card_answers() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let (number, code) = (text(&card, "number"), text(&card, "security_code"));

    let wrong_code_answer = lookup(&app, &number, &wrong_code(&code)).await;
    let unknown_number_answer = lookup(&app, UNKNOWN_NUMBER, &code).await;

    wrong_code_answer.assert_error(404, "invalid_card");
    unknown_number_answer.assert_error(404, "invalid_card");
    assert_eq!(wrong_code_answer.text, unknown_number_answer.text);
    assert_eq!(
        wrong_code_answer.headers.get("content-type"),
        unknown_number_answer.headers.get("content-type")
    );
    assert!(!wrong_code_answer.text.contains(&number));
    assert!(!wrong_code_answer.text.contains(&code));
}

#[tokio::test]
async fn a_successful_lookup_resets_the_count_of_wrong_codes() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let (number, code) = (text(&card, "number"), text(&card, "security_code"));
    let wrong = wrong_code(&code);

    for _ in 0..MAX_FAILURES - 1 {
        lookup(&app, &number, &wrong)
            .await
            .assert_error(404, "invalid_card");
    }
    lookup(&app, &number, &code).await.assert_status(200);

    // Nine more wrong codes would have locked the card had the count not been reset.
    for _ in 0..MAX_FAILURES - 1 {
        lookup(&app, &number, &wrong)
            .await
            .assert_error(404, "invalid_card");
    }
    lookup(&app, &number, &code).await.assert_status(200);

    // And the tenth failure since the reset locks it.
    for _ in 0..MAX_FAILURES {
        lookup(&app, &number, &wrong)
            .await
            .assert_error(404, "invalid_card");
    }
    lookup(&app, &number, &code)
        .await
        .assert_error(422, "card_locked");
}

#[tokio::test]
async fn locking_one_card_leaves_other_cards_usable() {
    let app = TestApp::spawn().await;
    let program_id = app.usd_program().await;
    let locked = app.card(&program_id, 1000).await;
    let other = app.card(&program_id, 1000).await;

    let wrong = wrong_code(&text(&locked, "security_code"));
    for _ in 0..MAX_FAILURES {
        lookup(&app, &text(&locked, "number"), &wrong).await;
    }

    lookup(&app, &text(&locked, "number"), &text(&locked, "security_code"))
        .await
        .assert_error(422, "card_locked");
    lookup(&app, &text(&other, "number"), &text(&other, "security_code"))
        .await
        .assert_status(200);
}

#[tokio::test]
async fn another_merchant_cannot_look_up_a_card_even_with_its_number_and_code() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1000).await;
    let other_key = app.another_merchant().await;
    let body = json!({"number": card["number"], "security_code": card["security_code"]});

    let foreign = app.post_as("/v1/cards/lookup", body, &other_key, None).await;
    foreign.assert_error(404, "invalid_card");
    let unknown = app
        .post_as(
            "/v1/cards/lookup",
            json!({"number": UNKNOWN_NUMBER, "security_code": card["security_code"]}),
            &other_key,
            None,
        )
        .await;
    assert_eq!(foreign.text, unknown.text);
}

#[tokio::test]
async fn card_numbers_and_security_codes_appear_only_in_the_response_that_creates_the_card() {
    let app = TestApp::spawn().await;
    let program_id = app.usd_program().await;
    let generated = app.card(&program_id, 1500).await;
    let imported = app
        .post(
            "/v1/cards",
            json!({"program_id": program_id, "kind": "physical",
                   "number": "6012345678901234567", "security_code": "48213795"}),
        )
        .await;
    imported.assert_status(201);
    let imported = imported.body;
    assert_eq!(imported["number"], "6012345678901234567");
    assert_eq!(imported["security_code"], "48213795");

    let mut answers = Vec::new();
    for card in [&generated, &imported] {
        let id = text(card, "id");
        let fetched = app.get(&format!("/v1/cards/{id}")).await;
        fetched.assert_status(200);
        let number = text(card, "number");
        assert_eq!(fetched.body["last4"], number[number.len() - 4..]);
        answers.push(fetched);
        let transactions = app.get(&format!("/v1/cards/{id}/transactions")).await;
        transactions.assert_status(200);
        answers.push(transactions);
    }
    let list = app.get("/v1/cards").await;
    list.assert_status(200);
    assert_eq!(list.body["data"].as_array().map(Vec::len), Some(2));
    answers.push(list);
    let filtered = app.get(&format!("/v1/cards?program_id={program_id}")).await;
    filtered.assert_status(200);
    answers.push(filtered);
    let found = lookup(&app, "6012345678901234567", "48213795").await;
    found.assert_status(200);
    answers.push(found);

    for answer in &answers {
        for card in [&generated, &imported] {
            let (number, code) = (text(card, "number"), text(card, "security_code"));
            assert!(
                !answer.text.contains(&number),
                "a card number leaks: {}",
                answer.text
            );
            assert!(
                !answer.text.contains(&code),
                "a security code leaks: {}",
                answer.text
            );
        }
        assert!(!answer.text.contains("\"number\""), "{}", answer.text);
        assert!(!answer.text.contains("\"security_code\""), "{}", answer.text);
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn no_card_number_security_code_or_api_key_is_stored_in_clear() {
    let app = TestApp::spawn().await;
    let other_key = app.another_merchant().await;
    let program_id = app.usd_program().await;
    let mut cards = Vec::new();
    cards.push(app.card(&program_id, 1000).await);
    let physical = app
        .post("/v1/cards", json!({"program_id": program_id, "kind": "physical"}))
        .await;
    physical.assert_status(201);
    cards.push(physical.body);
    let with_key = app
        .post_idempotent(
            "/v1/cards",
            json!({"program_id": program_id, "kind": "virtual", "amount": 700}),
            "create-card-1",
        )
        .await;
    with_key.assert_status(201);
    // The replay comes from the stored idempotency record, which holds the number and code.
    let replay = app
        .post_idempotent(
            "/v1/cards",
            json!({"program_id": program_id, "kind": "virtual", "amount": 700}),
            "create-card-1",
        )
        .await;
    assert_eq!(replay.text, with_key.text);
    cards.push(with_key.body);
    let imported = app
        .post_idempotent(
            "/v1/cards",
            json!({"program_id": program_id, "kind": "virtual", "amount": 900,
                   "number": "6012345678901234567", "security_code": "48213795"}),
            "import-card-1",
        )
        .await;
    imported.assert_status(201);
    cards.push(imported.body);
    // Lookups, right and wrong, leave attempt records behind.
    lookup(&app, "6012345678901234567", "48213795")
        .await
        .assert_status(200);
    lookup(&app, "6012345678901234567", "11111111")
        .await
        .assert_error(404, "invalid_card");
    lookup(&app, UNKNOWN_NUMBER, "22222222")
        .await
        .assert_error(404, "invalid_card");
    // The other merchant's key is used, so it has been hashed and compared, not stored.
    app.post_as(
        "/v1/programs",
        json!({"name": "Other", "currency": "USD"}),
        &other_key,
        None,
    )
    .await
    .assert_status(201);

    let bytes = app.stored_bytes().await;

    // The probe works: what is stored in clear is found.
    assert!(contains(&bytes, &app.merchant_id));
    assert!(contains(&bytes, &text(&cards[0], "id")));
    for card in &cards {
        let number = text(card, "number");
        let code = text(card, "security_code");
        assert!(
            !contains(&bytes, &number),
            "card number {number} is readable in the database files"
        );
        assert!(
            !contains(&bytes, &code),
            "security code {code} is readable in the database files"
        );
    }
    for secret in [
        "6012345678901234567",
        "48213795",
        UNKNOWN_NUMBER,
        "11111111",
        "22222222",
    ] {
        assert!(
            !contains(&bytes, secret),
            "{secret} is readable in the database files"
        );
    }
    for key in [&app.api_key, &other_key] {
        assert!(
            !contains(&bytes, key),
            "an API key is readable in the database files"
        );
        let secret_part = key.rsplit('_').next().unwrap_or(key);
        assert!(
            !contains(&bytes, secret_part),
            "the secret part of an API key is readable in the database files"
        );
    }
}

/// Sends `body` (or nothing) to `path` with the `Authorization` header given.
async fn with_authorization(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    authorization: &str,
) -> TestResponse {
    let request = app
        .client
        .request(method.clone(), app.url(path))
        .header("Authorization", authorization);
    let request = if method == reqwest::Method::GET {
        request
    } else {
        request.json(&json!({}))
    };
    app.send(request).await
}

#[tokio::test]
async fn the_authorization_scheme_is_read_in_any_case_on_every_front_end() {
    use base64::Engine;
    let app = TestApp::spawn().await;
    let key = app.api_key.clone();
    let basic = |user: &str| base64::engine::general_purpose::STANDARD.encode(format!("{user}:{key}"));
    let front_ends = [
        (reqwest::Method::GET, "/v1/cards", "Bearer"),
        (
            reqwest::Method::GET,
            "/giftcard/v1/giftcards?userId=someone",
            "Bearer",
        ),
        (reqwest::Method::GET, "/gr4vy/gift-cards", "Bearer"),
        (reqwest::Method::POST, "/clover/v1/tokens", "Bearer"),
        (
            reqwest::Method::POST,
            "/pal/servlet/StoredValue/v46/checkBalance",
            "Basic",
        ),
    ];
    for (method, path, scheme) in front_ends {
        let credentials = if scheme == "Basic" {
            basic("ws@Company.Giftd")
        } else {
            key.clone()
        };
        let canonical =
            with_authorization(&app, method.clone(), path, &format!("{scheme} {credentials}")).await;
        assert_ne!(canonical.status, 401, "{path}: {}", canonical.text);
        for spelled in [scheme.to_lowercase(), scheme.to_uppercase()] {
            let response =
                with_authorization(&app, method.clone(), path, &format!("{spelled} {credentials}")).await;
            assert_eq!(
                response.status, canonical.status,
                "{path} with {spelled:?}: {}",
                response.text
            );
        }
        let wrong = if scheme == "Basic" {
            base64::engine::general_purpose::STANDARD.encode("ws@Company.Giftd:gk_wrong")
        } else {
            "gk_wrong".to_owned()
        };
        let refused = with_authorization(
            &app,
            method.clone(),
            path,
            &format!("{} {wrong}", scheme.to_lowercase()),
        )
        .await;
        assert_eq!(refused.status, 401, "{path} with a wrong key: {}", refused.text);
    }
}
