//! Transfers and merges through the native API: one journal entry per operation, every card
//! changes or none does, and racing transfers (the 2015 Starbucks race) conserve value exactly.

use futures::future::join_all;
use giftd_testkit::{TestApp, TestResponse};
use serde_json::{Value, json};

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

async fn card(app: &TestApp, id: &str) -> Value {
    let response = app.get(&format!("/v1/cards/{id}")).await;
    response.assert_status(200);
    response.body
}

/// A virtual card with nothing on it yet.
async fn empty(app: &TestApp, program: &str) -> String {
    let response = app
        .post("/v1/cards", json!({"program_id": program, "kind": "virtual"}))
        .await;
    response.assert_status(201);
    id_of(&response.body)
}

async fn transfer(app: &TestApp, from: &str, body: Value) -> TestResponse {
    app.post(&format!("/v1/cards/{from}/transfer"), body).await
}

async fn merge(app: &TestApp, into: &str, sources: &[&str]) -> TestResponse {
    app.post(
        &format!("/v1/cards/{into}/merge"),
        json!({"source_card_ids": sources}),
    )
    .await
}

#[tokio::test]
async fn a_transfer_moves_value_between_two_cards_in_one_entry() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = id_of(&app.card(&program, 5000).await);
    let b = id_of(&app.card(&program, 1000).await);

    let response = transfer(
        &app,
        &a,
        json!({"to_card_id": b, "amount": 1500, "reference": "move-1"}),
    )
    .await;
    response.assert_status(200);
    assert_eq!(response.body["object"], "transfer");
    let out = &response.body["transfer_out"];
    let into = &response.body["transfer_in"];
    assert_eq!(out["type"], "transfer_out");
    assert_eq!(out["card_id"], a.as_str());
    assert_eq!(
        (
            out["amount"].as_i64(),
            out["balance_before"].as_i64(),
            out["balance_after"].as_i64()
        ),
        (Some(1500), Some(5000), Some(3500))
    );
    assert_eq!(into["type"], "transfer_in");
    assert_eq!(into["card_id"], b.as_str());
    assert_eq!(
        (into["balance_before"].as_i64(), into["balance_after"].as_i64()),
        (Some(1000), Some(2500))
    );
    assert_eq!(out["reference"], "move-1");
    assert_eq!(response.body["source"]["balance"], 3500);
    assert_eq!(response.body["target"]["balance"], 2500);
    assert!(
        response.body["target"].get("number").is_none(),
        "an existing card's number is never shown"
    );
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_transfer_takes_the_available_balance_by_default_and_leaves_holds_alone() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = id_of(&app.card(&program, 5000).await);
    let b = empty(&app, &program).await;
    app.post(&format!("/v1/cards/{a}/holds"), json!({"amount": 2000}))
        .await
        .assert_status(201);

    let response = transfer(&app, &a, json!({"to_card_id": b})).await;
    response.assert_status(200);
    assert_eq!(response.body["transfer_out"]["amount"], 3000);
    let source = card(&app, &a).await;
    assert_eq!(
        (source["balance"].as_i64(), source["held"].as_i64()),
        (Some(2000), Some(2000))
    );
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_transfer_to_a_new_card_issues_it_in_the_source_program_and_shows_its_secrets_once() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = id_of(&app.card(&program, 5000).await);

    let response = transfer(&app, &a, json!({"amount": 1200})).await;
    response.assert_status(200);
    let target = &response.body["target"];
    assert_eq!(target["program_id"], program.as_str());
    assert_eq!(target["balance"], 1200);
    assert_eq!(target["state"], "active");
    assert!(target["number"].as_str().is_some_and(|n| n.len() == 16));
    assert!(target["security_code"].as_str().is_some());
    let fetched = card(&app, target["id"].as_str().unwrap()).await;
    assert!(fetched.get("number").is_none());
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn close_source_closes_an_emptied_source_and_refuses_a_partial_transfer() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = id_of(&app.card(&program, 5000).await);
    let b = empty(&app, &program).await;

    let partial = transfer(
        &app,
        &a,
        json!({"to_card_id": b, "amount": 100, "close_source": true}),
    )
    .await;
    partial.assert_error(422, "invalid_transfer");
    assert_eq!(card(&app, &a).await["balance"], 5000);

    let whole = transfer(&app, &a, json!({"to_card_id": b, "close_source": true})).await;
    whole.assert_status(200);
    assert_eq!(whole.body["source"]["state"], "closed");
    assert_eq!(whole.body["source"]["closed_reason"], "transferred");
    assert_eq!(whole.body["target"]["balance"], 5000);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn transfers_are_refused_across_currencies_beyond_the_balance_to_itself_and_across_merchants() {
    let app = TestApp::spawn().await;
    let usd = app.usd_program().await;
    let eur = app.program(json!({"name": "Euro", "currency": "EUR"})).await;
    let a = id_of(&app.card(&usd, 1000).await);
    let b = empty(&app, &usd).await;
    let e = empty(&app, &eur).await;

    transfer(&app, &a, json!({"to_card_id": e}))
        .await
        .assert_error(422, "currency_mismatch");
    transfer(&app, &a, json!({"to_card_id": b, "amount": 1001}))
        .await
        .assert_error(422, "insufficient_funds");
    transfer(&app, &a, json!({"to_card_id": a}))
        .await
        .assert_error(422, "invalid_transfer");
    transfer(&app, &a, json!({"to_card_id": b, "currency": "EUR"}))
        .await
        .assert_error(422, "currency_mismatch");
    transfer(&app, &a, json!({"to_card_id": "card_nope"}))
        .await
        .assert_error(404, "not_found");
    transfer(&app, &a, json!({"to_card_id": "prog_x"}))
        .await
        .assert_error(400, "invalid_request");

    let other_key = app.another_merchant().await;
    let other_program = {
        let response = app
            .post_as(
                "/v1/programs",
                json!({"name": "O", "currency": "USD"}),
                &other_key,
                None,
            )
            .await;
        id_of(&response.body)
    };
    let foreign = app
        .post_as(
            "/v1/cards",
            json!({"program_id": other_program, "kind": "virtual", "amount": 100}),
            &other_key,
            None,
        )
        .await;
    let foreign = id_of(&foreign.body);
    transfer(&app, &a, json!({"to_card_id": foreign}))
        .await
        .assert_error(404, "not_found");
    app.post_as(
        &format!("/v1/cards/{foreign}/transfer"),
        json!({"to_card_id": a}),
        &app.api_key,
        None,
    )
    .await
    .assert_error(404, "not_found");

    assert_eq!(card(&app, &a).await["balance"], 1000);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_merge_moves_every_source_into_the_target_and_closes_them_as_combined() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let target = id_of(&app.card(&program, 100).await);
    let sources = vec![
        id_of(&app.card(&program, 300).await),
        empty(&app, &program).await,
        id_of(&app.card(&program, 1200).await),
    ];
    let names: Vec<&str> = sources.iter().map(String::as_str).collect();

    let response = merge(&app, &target, &names).await;
    response.assert_status(200);
    assert_eq!(response.body["object"], "merge");
    assert_eq!(response.body["card"]["balance"], 1600);
    let transactions = response.body["transactions"].as_array().unwrap();
    assert_eq!(transactions.len(), 4);
    assert!(transactions[..3].iter().all(|t| t["type"] == "merge_out"));
    assert_eq!(transactions[3]["type"], "merge_in");
    assert_eq!(transactions[3]["amount"], 1500);
    for source in &sources {
        let source = card(&app, source).await;
        assert_eq!(source["state"], "closed");
        assert_eq!(source["closed_reason"], "combined");
        assert_eq!(source["balance"], 0);
    }
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_merge_refuses_bad_source_lists_and_sources_with_holds() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let target = id_of(&app.card(&program, 100).await);
    let a = id_of(&app.card(&program, 500).await);
    let eleven: Vec<String> = (0..11).map(|i| format!("card_{i:032}")).collect();
    let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();

    merge(&app, &target, &[])
        .await
        .assert_error(400, "invalid_request");
    merge(&app, &target, &eleven)
        .await
        .assert_error(400, "invalid_request");
    merge(&app, &target, &[&a, &a])
        .await
        .assert_error(422, "invalid_transfer");
    merge(&app, &target, &[&target])
        .await
        .assert_error(422, "invalid_transfer");
    app.post(&format!("/v1/cards/{a}/holds"), json!({"amount": 100}))
        .await
        .assert_status(201);
    merge(&app, &target, &[&a])
        .await
        .assert_error(409, "invalid_state");
    assert_eq!(card(&app, &a).await["state"], "active");
    assert_eq!(card(&app, &target).await["balance"], 100);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_pairs_of_opposite_transfers_conserve_the_total_and_never_overdraw() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = id_of(&app.card(&program, 500).await);
    let b = id_of(&app.card(&program, 500).await);

    let requests = (0..1000).flat_map(|_| {
        [
            transfer(&app, &a, json!({"to_card_id": b, "amount": 7})),
            transfer(&app, &b, json!({"to_card_id": a, "amount": 7})),
        ]
    });
    let answers = join_all(requests).await;

    for answer in &answers {
        assert!(
            answer.status == 200 || answer.code() == "insufficient_funds",
            "unexpected answer {}: {}",
            answer.status,
            answer.text
        );
    }
    let (a_card, b_card) = (card(&app, &a).await, card(&app, &b).await);
    let (a_balance, b_balance) = (
        a_card["balance"].as_i64().unwrap(),
        b_card["balance"].as_i64().unwrap(),
    );
    assert_eq!(a_balance + b_balance, 1000, "value was created or lost");
    assert!(a_balance >= 0 && b_balance >= 0);
    let moved_out_of_a = answers.iter().step_by(2).filter(|r| r.status == 200).count() as i64;
    let moved_out_of_b = answers
        .iter()
        .skip(1)
        .step_by(2)
        .filter(|r| r.status == 200)
        .count() as i64;
    assert_eq!(a_balance, 500 - 7 * moved_out_of_a + 7 * moved_out_of_b);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_transfers_out_of_one_card_to_two_others_never_overdraw_it() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let source = id_of(&app.card(&program, 1000).await);
    let left = empty(&app, &program).await;
    let right = empty(&app, &program).await;

    let requests = (0..300).map(|i| {
        let to = if i % 2 == 0 { &left } else { &right };
        transfer(&app, &source, json!({"to_card_id": to, "amount": 9}))
    });
    let answers = join_all(requests).await;

    let succeeded = answers.iter().filter(|r| r.status == 200).count() as i64;
    assert!(
        answers
            .iter()
            .all(|r| r.status == 200 || r.code() == "insufficient_funds")
    );
    assert_eq!(succeeded, 1000 / 9, "exactly as many as the balance allows");
    let balances: Vec<i64> = join_all([&source, &left, &right].map(|id| card(&app, id)))
        .await
        .iter()
        .map(|c| c["balance"].as_i64().unwrap())
        .collect();
    assert_eq!(balances.iter().sum::<i64>(), 1000);
    assert_eq!(balances[0], 1000 - 9 * succeeded);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_merges_sharing_a_source_move_its_value_once() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    for _ in 0..10 {
        let shared = id_of(&app.card(&program, 700).await);
        let one = id_of(&app.card(&program, 10).await);
        let two = id_of(&app.card(&program, 20).await);
        let first_target = empty(&app, &program).await;
        let second_target = empty(&app, &program).await;

        let (first_sources, second_sources) =
            ([shared.as_str(), one.as_str()], [two.as_str(), shared.as_str()]);
        let (first, second) = tokio::join!(
            merge(&app, &first_target, &first_sources),
            merge(&app, &second_target, &second_sources),
        );
        let winners = [&first, &second].iter().filter(|r| r.status == 200).count();
        assert_eq!(winners, 1, "first: {} second: {}", first.text, second.text);
        let loser = if first.status == 200 { &second } else { &first };
        loser.assert_error(422, "card_not_active");
        let total: i64 =
            join_all([&shared, &one, &two, &first_target, &second_target].map(|id| card(&app, id)))
                .await
                .iter()
                .map(|c| c["balance"].as_i64().unwrap())
                .sum();
        assert_eq!(total, 730);
        assert_eq!(card(&app, &shared).await["closed_reason"], "combined");
    }
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_refused_transfer_to_a_new_card_issues_no_card() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let a = id_of(&app.card(&program, 500).await);
    let cards_before = app.get("/v1/cards?limit=100").await.body["data"]
        .as_array()
        .unwrap()
        .len();

    transfer(&app, &a, json!({"amount": 501}))
        .await
        .assert_error(422, "insufficient_funds");
    app.post(&format!("/v1/cards/{a}/freeze"), json!({}))
        .await
        .assert_status(200);
    transfer(&app, &a, json!({}))
        .await
        .assert_error(422, "card_not_active");

    let cards_after = app.get("/v1/cards?limit=100").await.body["data"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(cards_after, cards_before, "a refused transfer left a card behind");
    TestApp::assert_sound(&app.verify().await);
}
