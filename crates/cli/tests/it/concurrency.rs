//! Real concurrency against a real server and database: many simultaneous requests, then the
//! ledger verified.

use futures::future::join_all;
use giftd_testkit::TestApp;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_simultaneous_one_dollar_redemptions_on_a_fifty_dollar_card_succeed_exactly_fifty_times()
{
    let app = TestApp::spawn().await;
    let card = app.funded_card(5000).await;
    let path = format!("/v1/cards/{}/redeem", card["id"].as_str().unwrap());

    let responses = join_all((0..200).map(|_| app.post(&path, json!({"amount": 100})))).await;

    let succeeded = responses.iter().filter(|r| r.status == 200).count();
    let refused = responses
        .iter()
        .filter(|r| r.status == 422 && r.code() == "insufficient_funds")
        .count();
    assert_eq!(succeeded, 50);
    assert_eq!(refused, 150);
    let card = app
        .get(&format!("/v1/cards/{}", card["id"].as_str().unwrap()))
        .await;
    assert_eq!(card.body["balance"], 0);
    assert_eq!(card.body["available"], 0);
    let report = app.verify().await;
    TestApp::assert_sound(&report);
    assert_eq!(report.transactions, 51);
}
