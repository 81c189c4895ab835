//! Idempotency-Key over HTTP, as the contract states it: a retry with the same key and the same
//! body gets the first answer byte for byte and has no second effect (even when the first
//! attempt failed), the same key with another request is 409 `idempotency_key_reused`, keys are
//! scoped per merchant, malformed keys are 400, and a key is forgotten after its retention.

use futures::future::join_all;
use giftd_testkit::{TestApp, TestResponse};
use reqwest::header::HeaderValue;
use serde_json::{Value, json};

const DAY_SECONDS: i64 = 24 * 3600;

/// What a retry must not change: the card's amounts and state, and the ledger's size.
#[derive(Debug, PartialEq, Eq)]
struct Effects {
    card: Value,
    card_transactions: usize,
    cards: i64,
    transactions: i64,
    postings: i64,
}

async fn effects(app: &TestApp, card_id: &str) -> Effects {
    let card = app.get(&format!("/v1/cards/{card_id}")).await;
    card.assert_status(200);
    let history = app
        .get(&format!("/v1/cards/{card_id}/transactions?limit=100"))
        .await;
    history.assert_status(200);
    let report = app.verify().await;
    TestApp::assert_sound(&report);
    Effects {
        card: json!({
            "state": card.body["state"],
            "balance": card.body["balance"],
            "held": card.body["held"],
            "available": card.body["available"],
        }),
        card_transactions: history.body["data"].as_array().expect("a list").len(),
        cards: report.cards,
        transactions: report.transactions,
        postings: report.postings,
    }
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

fn balance_of(response: &TestResponse) -> i64 {
    response.body["balance"].as_i64().expect("a balance")
}

/// Posts `body` exactly as written (key order and whitespace kept) with an Idempotency-Key.
async fn post_text_idempotent(app: &TestApp, path: &str, body: &str, key: &str) -> TestResponse {
    app.send(
        app.client
            .post(app.url(path))
            .bearer_auth(&app.api_key)
            .header("content-type", "application/json")
            .header("Idempotency-Key", key)
            .body(body.to_owned()),
    )
    .await
}

#[track_caller]
fn assert_same_answer(first: &TestResponse, retry: &TestResponse) {
    assert_eq!(
        retry.status, first.status,
        "the retry's status differs; retry body: {}",
        retry.text
    );
    assert_eq!(
        retry.text, first.text,
        "the retry's body is not byte-identical to the first"
    );
}

#[tokio::test]
async fn retry_with_same_key_replays_the_first_answer_byte_for_byte() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let path = format!("/v1/cards/{card_id}/redeem");
    let body = json!({"amount": 1_250, "reference": "order-1"});

    let first = app.post_idempotent(&path, body.clone(), "redeem-order-1").await;
    first.assert_status(200);
    assert_eq!(first.body["amount"], 1_250);
    let after_first = effects(&app, &card_id).await;
    assert_eq!(after_first.card["balance"], 8_750);

    for _ in 0..3 {
        let retry = app.post_idempotent(&path, body.clone(), "redeem-order-1").await;
        assert_same_answer(&first, &retry);
    }
    assert_eq!(
        effects(&app, &card_id).await,
        after_first,
        "a retry had a second effect"
    );
}

#[tokio::test]
async fn retry_of_every_kind_of_post_replays_without_a_second_effect() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let redemption = app
        .post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 2_000}))
        .await;
    redemption.assert_status(200);
    let redemption_id = id_of(&redemption.body);
    let hold = app
        .post(&format!("/v1/cards/{card_id}/holds"), json!({"amount": 1_000}))
        .await;
    hold.assert_status(201);
    let hold_id = id_of(&hold.body);

    let steps: Vec<(String, Value, u16)> = vec![
        (format!("/v1/cards/{card_id}/load"), json!({"amount": 500}), 200),
        (format!("/v1/cards/{card_id}/holds"), json!({"amount": 300}), 201),
        (
            format!("/v1/holds/{hold_id}/capture"),
            json!({"amount": 400}),
            200,
        ),
        (
            format!("/v1/transactions/{redemption_id}/refund"),
            json!({"amount": 700}),
            200,
        ),
        (format!("/v1/cards/{card_id}/freeze"), json!({}), 200),
        (format!("/v1/cards/{card_id}/unfreeze"), json!({}), 200),
    ];
    for (index, (path, body, status)) in steps.into_iter().enumerate() {
        let key = format!("step-{index}");
        let first = app.post_idempotent(&path, body.clone(), &key).await;
        first.assert_status(status);
        let after_first = effects(&app, &card_id).await;
        let retry = app.post_idempotent(&path, body, &key).await;
        assert_same_answer(&first, &retry);
        assert_eq!(
            effects(&app, &card_id).await,
            after_first,
            "retrying {path} had a second effect"
        );
    }
}

#[tokio::test]
async fn retries_of_one_shot_operations_replay_their_success_instead_of_refusing() {
    // A second void or a second deactivation would be refused if it ran again; a retry must
    // instead get the first (successful) answer.
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(3_000).await);
    let redemption = app
        .post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 1_000}))
        .await;
    redemption.assert_status(200);
    let void_path = format!("/v1/transactions/{}/void", id_of(&redemption.body));
    let deactivate_path = format!("/v1/cards/{card_id}/deactivate");

    for (path, body, key) in [
        (void_path, json!({}), "void-1"),
        (deactivate_path, json!({"cashout": true}), "close-1"),
    ] {
        let first = app.post_idempotent(&path, body.clone(), key).await;
        first.assert_status(200);
        let after_first = effects(&app, &card_id).await;
        let retry = app.post_idempotent(&path, body, key).await;
        assert_same_answer(&first, &retry);
        assert_eq!(effects(&app, &card_id).await, after_first);
    }
    let card = app.get(&format!("/v1/cards/{card_id}")).await;
    assert_eq!(card.body["state"], "closed");
    assert_eq!(balance_of(&card), 0);
}

#[tokio::test]
async fn same_key_with_a_different_body_is_refused_as_reused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let path = format!("/v1/cards/{card_id}/load");
    let first = app.post_idempotent(&path, json!({"amount": 100}), "load-1").await;
    first.assert_status(200);
    let after_first = effects(&app, &card_id).await;

    let other_bodies = [
        json!({"amount": 200}),
        json!({"amount": 100, "reference": "changed"}),
        json!({"amount": 100, "currency": "USD"}),
    ];
    for body in other_bodies {
        app.post_idempotent(&path, body, "load-1")
            .await
            .assert_error(409, "idempotency_key_reused");
    }
    assert_eq!(effects(&app, &card_id).await, after_first);

    // The refused reuse left the first answer in place.
    let retry = app.post_idempotent(&path, json!({"amount": 100}), "load-1").await;
    assert_same_answer(&first, &retry);
}

#[tokio::test]
async fn same_key_on_another_path_is_refused_as_reused() {
    let app = TestApp::spawn().await;
    let program_id = app.usd_program().await;
    let card_a = id_of(&app.card(&program_id, 1_000).await);
    let card_b = id_of(&app.card(&program_id, 1_000).await);
    let body = json!({"amount": 100});

    app.post_idempotent(&format!("/v1/cards/{card_a}/load"), body.clone(), "shared-key")
        .await
        .assert_status(200);
    let before_b = effects(&app, &card_b).await;

    app.post_idempotent(&format!("/v1/cards/{card_b}/load"), body.clone(), "shared-key")
        .await
        .assert_error(409, "idempotency_key_reused");
    app.post_idempotent(&format!("/v1/cards/{card_a}/redeem"), body, "shared-key")
        .await
        .assert_error(409, "idempotency_key_reused");
    assert_eq!(effects(&app, &card_b).await, before_b);
    let card_a_now = app.get(&format!("/v1/cards/{card_a}")).await;
    assert_eq!(
        balance_of(&card_a_now),
        1_100,
        "the refused redemption took value"
    );
}

#[tokio::test]
async fn first_attempt_that_failed_is_replayed_as_the_same_failure_after_the_card_is_loaded() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(500).await);
    let path = format!("/v1/cards/{card_id}/redeem");
    let body = json!({"amount": 1_000});

    let first = app.post_idempotent(&path, body.clone(), "redeem-too-much").await;
    first.assert_error(422, "insufficient_funds");

    // Now the card could pay; the retry must still be the first answer, with no effect.
    app.post(&format!("/v1/cards/{card_id}/load"), json!({"amount": 1_000}))
        .await
        .assert_status(200);
    let loaded = effects(&app, &card_id).await;
    assert_eq!(loaded.card["balance"], 1_500);

    let retry = app.post_idempotent(&path, body, "redeem-too-much").await;
    assert_same_answer(&first, &retry);
    assert_eq!(
        effects(&app, &card_id).await,
        loaded,
        "the replayed failure took value"
    );
}

#[tokio::test]
async fn first_attempt_on_a_frozen_card_is_replayed_as_refused_after_unfreezing() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(5_000).await);
    app.post(&format!("/v1/cards/{card_id}/freeze"), json!({}))
        .await
        .assert_status(200);
    let path = format!("/v1/cards/{card_id}/redeem");

    let first = app
        .post_idempotent(&path, json!({"amount": 100}), "frozen-try")
        .await;
    assert!(
        first.status.is_client_error(),
        "a frozen card paid: {}",
        first.text
    );
    app.post(&format!("/v1/cards/{card_id}/unfreeze"), json!({}))
        .await
        .assert_status(200);
    let unfrozen = effects(&app, &card_id).await;

    let retry = app
        .post_idempotent(&path, json!({"amount": 100}), "frozen-try")
        .await;
    assert_same_answer(&first, &retry);
    assert_eq!(effects(&app, &card_id).await, unfrozen);
}

#[tokio::test]
async fn keys_are_scoped_per_merchant() {
    let app = TestApp::spawn().await;
    let other_key = app.another_merchant().await;
    let card_a = id_of(&app.funded_card(1_000).await);

    let other_program = app
        .post_as(
            "/v1/programs",
            json!({"name": "Other", "currency": "USD"}),
            &other_key,
            None,
        )
        .await;
    other_program.assert_status(201);
    let other_card = app
        .post_as(
            "/v1/cards",
            json!({"program_id": id_of(&other_program.body), "kind": "virtual", "amount": 1_000}),
            &other_key,
            None,
        )
        .await;
    other_card.assert_status(201);
    let card_b = id_of(&other_card.body);
    let body = json!({"amount": 100});

    let first = app
        .post_idempotent(&format!("/v1/cards/{card_a}/load"), body.clone(), "shared-key")
        .await;
    first.assert_status(200);

    // The other merchant's use of the same key is its own request: it takes effect, no 409.
    let other = app
        .post_as(
            &format!("/v1/cards/{card_b}/load"),
            body.clone(),
            &other_key,
            Some("shared-key"),
        )
        .await;
    other.assert_status(200);
    assert_eq!(other.body["card_id"], card_b.as_str());
    assert_ne!(other.body["id"], first.body["id"]);
    let card_b_now = app.get_as(&format!("/v1/cards/{card_b}"), &other_key).await;
    assert_eq!(balance_of(&card_b_now), 1_100);

    // And this merchant's key still replays its own first answer.
    let retry = app
        .post_idempotent(&format!("/v1/cards/{card_a}/load"), body, "shared-key")
        .await;
    assert_same_answer(&first, &retry);
    let card_a_now = app.get(&format!("/v1/cards/{card_a}")).await;
    assert_eq!(balance_of(&card_a_now), 1_100);
}

#[tokio::test]
async fn another_merchants_first_use_of_a_key_on_a_foreign_card_is_not_found() {
    let app = TestApp::spawn().await;
    let other_key = app.another_merchant().await;
    let card_a = id_of(&app.funded_card(1_000).await);
    let path = format!("/v1/cards/{card_a}/load");

    app.post_idempotent(&path, json!({"amount": 100}), "key-a")
        .await
        .assert_status(200);
    let foreign = app
        .post_as(&path, json!({"amount": 100}), &other_key, Some("key-a"))
        .await;
    foreign.assert_error(404, "not_found");
    let card_a_now = app.get(&format!("/v1/cards/{card_a}")).await;
    assert_eq!(balance_of(&card_a_now), 1_100);
}

#[tokio::test]
async fn card_creation_replays_the_same_number_and_security_code_and_issues_one_card() {
    let app = TestApp::spawn().await;
    let program_id = app.usd_program().await;
    let body = json!({"program_id": program_id, "kind": "virtual", "amount": 2_500});

    let first = app.post_idempotent("/v1/cards", body.clone(), "issue-1").await;
    first.assert_status(201);
    assert!(
        first.body["number"].is_string(),
        "the issuing answer shows the number: {}",
        first.text
    );
    assert!(first.body["security_code"].is_string());
    let card_id = id_of(&first.body);
    let after_first = effects(&app, &card_id).await;
    assert_eq!(after_first.cards, 1);

    let retry = app.post_idempotent("/v1/cards", body, "issue-1").await;
    assert_same_answer(&first, &retry);
    assert_eq!(
        effects(&app, &card_id).await,
        after_first,
        "the retry issued a second card"
    );
    let cards = app.get("/v1/cards").await;
    assert_eq!(cards.body["data"].as_array().expect("a list").len(), 1);

    // The card fetched later does not show its secrets; only the replay of its creation did.
    let fetched = app.get(&format!("/v1/cards/{card_id}")).await;
    assert!(
        fetched.body.get("number").is_none(),
        "GET shows the number: {}",
        fetched.text
    );
    assert!(fetched.body.get("security_code").is_none());
}

#[tokio::test]
async fn program_creation_replays_and_creates_one_program() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "Replayed", "currency": "EUR", "max_balance": 50_000});
    let first = app
        .post_idempotent("/v1/programs", body.clone(), "program-1")
        .await;
    first.assert_status(201);
    let retry = app.post_idempotent("/v1/programs", body, "program-1").await;
    assert_same_answer(&first, &retry);
    let programs = app.get("/v1/programs").await;
    assert_eq!(programs.body["data"].as_array().expect("a list").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_simultaneous_retries_of_one_key_take_effect_once_and_all_answer_alike() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let path = format!("/v1/cards/{card_id}/redeem");
    let body = json!({"amount": 100, "reference": "race"});

    let responses = join_all((0..50).map(|_| app.post_idempotent(&path, body.clone(), "race-key"))).await;

    let first = &responses[0];
    first.assert_status(200);
    for response in &responses {
        assert_same_answer(first, response);
    }
    let after = effects(&app, &card_id).await;
    assert_eq!(
        after.card["balance"], 9_900,
        "more than one redemption took effect"
    );
    assert_eq!(after.transactions, 2, "issue plus exactly one redemption");
    assert_eq!(after.card_transactions, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_simultaneous_card_creations_with_one_key_issue_one_card() {
    let app = TestApp::spawn().await;
    let program_id = app.usd_program().await;
    let body = json!({"program_id": program_id, "kind": "virtual", "amount": 1_000});

    let responses =
        join_all((0..50).map(|_| app.post_idempotent("/v1/cards", body.clone(), "issue-race"))).await;

    let first = &responses[0];
    first.assert_status(201);
    for response in &responses {
        assert_same_answer(first, response);
    }
    let report = app.verify().await;
    TestApp::assert_sound(&report);
    assert_eq!(report.cards, 1);
    assert_eq!(report.transactions, 1);
}

#[tokio::test]
async fn invalid_idempotency_keys_are_refused_with_400_and_change_nothing() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(1_000).await);
    let path = format!("/v1/cards/{card_id}/load");
    let before = effects(&app, &card_id).await;

    let too_long = "k".repeat(256);
    let invalid: Vec<(&str, HeaderValue)> = vec![
        ("empty", HeaderValue::from_static("")),
        (
            "256 characters",
            HeaderValue::from_str(&too_long).expect("a header value"),
        ),
        (
            "a tab inside",
            HeaderValue::from_bytes(b"key\twith-tab").expect("a header value"),
        ),
        (
            "non-ASCII bytes",
            HeaderValue::from_bytes(b"key-\xc3\xa9").expect("a header value"),
        ),
        (
            "a high control byte",
            HeaderValue::from_bytes(b"key-\x80").expect("a header value"),
        ),
    ];
    for (what, key) in invalid {
        let response = app
            .send(
                app.client
                    .post(app.url(&path))
                    .bearer_auth(&app.api_key)
                    .header("Idempotency-Key", key)
                    .json(&json!({"amount": 100})),
            )
            .await;
        assert_eq!(
            response.status, 400,
            "a key with {what} was not refused: {}",
            response.text
        );
        assert_eq!(
            response.code(),
            "invalid_request",
            "a key with {what}: {}",
            response.text
        );
        assert!(response.body["error"]["message"].is_string());
    }
    assert_eq!(
        effects(&app, &card_id).await,
        before,
        "a request with an invalid key took effect"
    );
}

#[tokio::test]
async fn keys_of_one_and_of_255_printable_characters_are_accepted() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(1_000).await);
    let path = format!("/v1/cards/{card_id}/load");
    let longest: String = (0..255).map(|i| char::from(b'!' + (i % 94) as u8)).collect();

    for key in ["k", " a key with spaces ", longest.as_str()] {
        let first = app.post_idempotent(&path, json!({"amount": 100}), key).await;
        first.assert_status(200);
        let retry = app.post_idempotent(&path, json!({"amount": 100}), key).await;
        assert_same_answer(&first, &retry);
    }
    let card = app.get(&format!("/v1/cards/{card_id}")).await;
    assert_eq!(balance_of(&card), 1_300);
}

#[tokio::test]
async fn key_order_and_whitespace_in_the_body_do_not_make_another_request() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let path = format!("/v1/cards/{card_id}/redeem");

    let first = post_text_idempotent(
        &app,
        &path,
        r#"{"amount":300,"reference":"order-7","allow_partial":false}"#,
        "order-7",
    )
    .await;
    first.assert_status(200);
    let after_first = effects(&app, &card_id).await;

    let same_requests = [
        r#"{"allow_partial":false,"reference":"order-7","amount":300}"#,
        "{\n  \"reference\" : \"order-7\",\n  \"amount\" : 300 ,\r\n\t\"allow_partial\": false\n}\n",
        r#"  {"amount":   300, "allow_partial":false,   "reference":"order-7"}  "#,
    ];
    for text in same_requests {
        let retry = post_text_idempotent(&app, &path, text, "order-7").await;
        assert_same_answer(&first, &retry);
    }
    assert_eq!(effects(&app, &card_id).await, after_first);
}

#[tokio::test]
async fn an_empty_body_and_an_empty_object_are_the_same_request() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(1_000).await);
    let path = format!("/v1/cards/{card_id}/freeze");

    let first = post_text_idempotent(&app, &path, "", "freeze-1").await;
    first.assert_status(200);
    let retry = post_text_idempotent(&app, &path, "{}", "freeze-1").await;
    assert_same_answer(&first, &retry);
}

#[tokio::test]
async fn a_key_is_still_remembered_just_inside_the_seven_day_retention() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(1_000).await);
    let path = format!("/v1/cards/{card_id}/load");
    let first = app.post_idempotent(&path, json!({"amount": 100}), "weekly").await;
    first.assert_status(200);
    let after_first = effects(&app, &card_id).await;

    app.clock.advance_seconds(7 * DAY_SECONDS - 60);
    let retry = app.post_idempotent(&path, json!({"amount": 100}), "weekly").await;
    assert_same_answer(&first, &retry);
    app.post_idempotent(&path, json!({"amount": 999}), "weekly")
        .await
        .assert_error(409, "idempotency_key_reused");
    assert_eq!(effects(&app, &card_id).await, after_first);
}

#[tokio::test]
async fn a_key_is_forgotten_after_the_retention_and_a_new_request_with_it_takes_effect() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(1_000).await);
    let path = format!("/v1/cards/{card_id}/load");
    let first = app
        .post_idempotent(&path, json!({"amount": 100}), "old-key")
        .await;
    first.assert_status(200);

    app.clock.advance_seconds(8 * DAY_SECONDS);
    let again = app
        .post_idempotent(&path, json!({"amount": 100}), "old-key")
        .await;
    again.assert_status(200);
    assert_ne!(again.body["id"], first.body["id"], "an expired key was replayed");
    let card = app.get(&format!("/v1/cards/{card_id}")).await;
    assert_eq!(balance_of(&card), 1_200);

    // The key now belongs to the new request: it is replayed, not the old one.
    let retry = app
        .post_idempotent(&path, json!({"amount": 100}), "old-key")
        .await;
    assert_same_answer(&again, &retry);
    assert_eq!(balance_of(&app.get(&format!("/v1/cards/{card_id}")).await), 1_200);
}

#[tokio::test]
async fn after_the_retention_a_key_may_carry_a_different_request() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(1_000).await);
    let path = format!("/v1/cards/{card_id}/load");
    app.post_idempotent(&path, json!({"amount": 100}), "recycled")
        .await
        .assert_status(200);

    app.clock.advance_seconds(8 * DAY_SECONDS);
    let other = app
        .post_idempotent(&path, json!({"amount": 250}), "recycled")
        .await;
    other.assert_status(200);
    assert_eq!(other.body["amount"], 250);
    assert_eq!(balance_of(&app.get(&format!("/v1/cards/{card_id}")).await), 1_350);
}

#[tokio::test]
async fn requests_without_a_key_are_not_deduplicated() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(1_000).await);
    let path = format!("/v1/cards/{card_id}/load");
    let first = app.post(&path, json!({"amount": 100})).await;
    let second = app.post(&path, json!({"amount": 100})).await;
    first.assert_status(200);
    second.assert_status(200);
    assert_ne!(first.body["id"], second.body["id"]);
    assert_eq!(balance_of(&app.get(&format!("/v1/cards/{card_id}")).await), 1_200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_requests_with_one_key_and_two_bodies_take_effect_once() {
    let app = TestApp::spawn().await;
    let card_id = id_of(&app.funded_card(10_000).await);
    let path = format!("/v1/cards/{card_id}/redeem");
    let bodies = [json!({"amount": 100}), json!({"amount": 200})];

    let responses =
        join_all((0..40).map(|i| app.post_idempotent(&path, bodies[i % 2].clone(), "contested"))).await;

    let winners: Vec<&TestResponse> = responses.iter().filter(|r| r.status == 200).collect();
    let reused = responses
        .iter()
        .filter(|r| r.status == 409 && r.code() == "idempotency_key_reused")
        .count();
    assert_eq!(
        winners.len() + reused,
        responses.len(),
        "unexpected answers: {responses:#?}"
    );
    assert_eq!(
        winners.len(),
        20,
        "all requests with the winning body get its answer"
    );
    assert!(winners.iter().all(|r| r.text == winners[0].text));
    let taken = winners[0].body["amount"].as_i64().expect("an amount");
    let after = effects(&app, &card_id).await;
    assert_eq!(after.card["balance"], 10_000 - taken);
    assert_eq!(after.transactions, 2, "issue plus exactly one redemption");
}

#[tokio::test]
async fn a_retried_failed_lookup_counts_as_one_attempt_towards_the_lockout() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(1_000).await;
    let number = card["number"].as_str().expect("a number");
    let right_code = card["security_code"].as_str().expect("a security code");
    let wrong_code = if right_code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    let wrong = json!({"number": number, "security_code": wrong_code});

    let first = app
        .post_idempotent("/v1/cards/lookup", wrong.clone(), "lookup-1")
        .await;
    first.assert_error(404, "invalid_card");
    // Well past the 10 attempts that lock a card, were each retry counted.
    for _ in 0..15 {
        let retry = app
            .post_idempotent("/v1/cards/lookup", wrong.clone(), "lookup-1")
            .await;
        assert_same_answer(&first, &retry);
    }
    let right = app
        .post(
            "/v1/cards/lookup",
            json!({"number": number, "security_code": right_code}),
        )
        .await;
    right.assert_status(200);
    assert_eq!(right.body["id"], card["id"]);
}
