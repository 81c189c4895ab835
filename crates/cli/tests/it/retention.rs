//! Retention, on whichever backend the suite runs: the pruner deletes idempotency records past
//! the longest window (7 days) and webhook events past `events_days` with their deliveries and
//! attempts, but never an event with a delivery still pending, nor anything younger; the
//! ledger stays sound. The tests move the manual clock and call the pruner themselves.

use giftd_domain::{MerchantId, Timestamp};
use giftd_service::retention::{Pruned, RetentionPolicy};
use giftd_service::webhooks::DeliveryPolicy;
use giftd_store::{BoxFuture, StoreResult, WriteJob, WriteTx};
use giftd_testkit::TestApp;
use giftd_testkit::receiver::Receiver;
use serde_json::json;
use tokio::sync::oneshot;

const DAY: i64 = 24 * 3600;

/// Whether the database still holds the native idempotency record of `key`, however old.
struct RecordProbe {
    merchant: MerchantId,
    key: String,
    found: Option<bool>,
    reply: Option<oneshot::Sender<bool>>,
}

impl WriteJob for RecordProbe {
    fn run<'a>(&'a mut self, tx: &'a mut dyn WriteTx) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let record = tx
                .idempotency_record(
                    &self.merchant,
                    "native",
                    &self.key,
                    Timestamp::from_unix_millis(0),
                )
                .await?;
            self.found = Some(record.is_some());
            Ok(())
        })
    }

    fn finish(mut self: Box<Self>, committed: StoreResult<()>) {
        committed.expect("the probe's transaction commits");
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(self.found.expect("the probe ran"));
        }
    }
}

async fn record_kept(app: &TestApp, key: &str) -> bool {
    let (reply, answer) = oneshot::channel();
    app.service
        .store()
        .submit(Box::new(RecordProbe {
            merchant: MerchantId::new(app.merchant_id.clone()),
            key: key.to_owned(),
            found: None,
            reply: Some(reply),
        }))
        .await;
    answer.await.expect("the probe answers")
}

async fn prune(app: &TestApp) -> Pruned {
    app.service
        .prune(&RetentionPolicy { events_days: 30 })
        .await
        .expect("a prune")
}

#[tokio::test]
async fn idempotency_records_go_after_seven_days_and_younger_ones_stay() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let card = app.card(&program, 5000).await;
    let card_id = card["id"].as_str().expect("a card id");
    let redeem = |key: &'static str| {
        let app = &app;
        async move {
            app.post_idempotent(
                &format!("/v1/cards/{card_id}/redeem"),
                json!({"amount": 100}),
                key,
            )
            .await
        }
    };
    redeem("old-1").await.assert_status(200);
    redeem("old-2").await.assert_status(200);
    app.clock.advance_seconds(6 * DAY);
    redeem("young").await.assert_status(200);
    app.clock.advance_seconds(DAY + 1);

    // 7 days and a second after the first two: they go; the third is 1 day old and stays.
    let pruned = prune(&app).await;
    assert_eq!(pruned.idempotency_records, 2, "{pruned:?}");
    assert!(!record_kept(&app, "old-1").await);
    assert!(!record_kept(&app, "old-2").await);
    assert!(record_kept(&app, "young").await);
    let replay = redeem("young").await;
    replay.assert_status(200);
    let card_now = app.get(&format!("/v1/cards/{card_id}")).await;
    assert_eq!(
        card_now.body["balance"], 4700,
        "the young key still replays: {}",
        card_now.text
    );
    assert_eq!(prune(&app).await, Pruned::default(), "nothing more to prune");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_shorter_configured_window_replays_and_keeps_records_for_that_long_only() {
    let app = TestApp::spawn_configured(giftd_api::ApiConfig::default(), |service| {
        service.with_idempotency_retention_days(2)
    })
    .await;
    let program = app.usd_program().await;
    let card = app.card(&program, 5000).await;
    let card_id = card["id"].as_str().expect("a card id");
    let path = format!("/v1/cards/{card_id}/redeem");
    let first = app.post_idempotent(&path, json!({"amount": 100}), "k").await;
    first.assert_status(200);
    app.clock.advance_seconds(2 * DAY - 1);
    let replayed = app.post_idempotent(&path, json!({"amount": 100}), "k").await;
    assert_eq!(replayed.text, first.text, "within the window: the first answer");
    assert_eq!(prune(&app).await.idempotency_records, 0);
    app.clock.advance_seconds(2);
    assert_eq!(prune(&app).await.idempotency_records, 1, "past the 2 days");
    let again = app.post_idempotent(&path, json!({"amount": 100}), "k").await;
    again.assert_status(200);
    assert_ne!(
        again.body["id"], first.body["id"],
        "past the window the key is new"
    );
    let card_now = app.get(&format!("/v1/cards/{card_id}")).await;
    assert_eq!(card_now.body["balance"], 4800, "{}", card_now.text);
}

async fn endpoint(app: &TestApp, url: &str, types: &[&str]) -> String {
    let response = app
        .post("/v1/webhook_endpoints", json!({"url": url, "event_types": types}))
        .await;
    response.assert_status(201);
    response.body["id"].as_str().expect("an id").to_owned()
}

async fn event_ids(app: &TestApp) -> Vec<String> {
    let response = app.get("/v1/events?limit=100").await;
    response.assert_status(200);
    response.body["data"]
        .as_array()
        .expect("a data array")
        .iter()
        .map(|e| e["id"].as_str().expect("an id").to_owned())
        .collect()
}

async fn dispatch(app: &TestApp) -> usize {
    let policy = DeliveryPolicy {
        max_attempts: 100,
        ..DeliveryPolicy::default()
    };
    let client = giftd_service::webhooks::delivery_client(&[]).expect("the delivery client");
    app.service
        .dispatch_webhooks(&client, &policy)
        .await
        .expect("a dispatcher round")
}

#[tokio::test]
async fn old_events_go_with_their_deliveries_unless_a_delivery_is_still_pending() {
    let app = TestApp::spawn().await;
    let healthy = Receiver::start(0).await;
    let broken = Receiver::start(usize::MAX).await;
    endpoint(&app, &healthy.url, &["card.loaded", "card.redeemed"]).await;
    let broken_id = endpoint(&app, &broken.url, &["card.redeemed"]).await;
    let card = app.funded_card(5000).await;
    let card_id = card["id"].as_str().expect("a card id");
    app.post(&format!("/v1/cards/{card_id}/load"), json!({"amount": 100}))
        .await
        .assert_status(200);
    app.post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 300}))
        .await
        .assert_status(200);
    // The load's one delivery and the redemption's to the healthy endpoint succeed; the
    // redemption's to the broken endpoint stays pending.
    assert_eq!(dispatch(&app).await, 3);
    let old = event_ids(&app).await;
    assert_eq!(old.len(), 2, "{old:?}");
    let (redeemed, loaded) = (old[0].clone(), old[1].clone());

    app.clock.advance_seconds(31 * DAY);
    app.post(&format!("/v1/cards/{card_id}/load"), json!({"amount": 100}))
        .await
        .assert_status(200);
    let young = event_ids(&app).await[0].clone();

    let pruned = prune(&app).await;
    assert_eq!(pruned.events, 1, "only the old load's event: {pruned:?}");
    app.get(&format!("/v1/events/{loaded}"))
        .await
        .assert_error(404, "not_found");
    let kept = app.get(&format!("/v1/events/{redeemed}")).await;
    kept.assert_status(200);
    let deliveries = kept.body["deliveries"].as_array().expect("deliveries");
    assert_eq!(deliveries.len(), 2, "{}", kept.text);
    assert!(
        deliveries
            .iter()
            .all(|d| !d["attempt_log"].as_array().expect("attempts").is_empty())
    );
    assert_eq!(event_ids(&app).await, [young.clone(), redeemed.clone()]);

    // Disabling the broken endpoint fails its pending delivery: the old event may go now.
    app.send(
        app.client
            .delete(app.url(&format!("/v1/webhook_endpoints/{broken_id}")))
            .bearer_auth(&app.api_key),
    )
    .await
    .assert_status(200);
    assert_eq!(prune(&app).await.events, 1);
    app.get(&format!("/v1/events/{redeemed}"))
        .await
        .assert_error(404, "not_found");
    assert_eq!(event_ids(&app).await, [young]);
    TestApp::assert_sound(&app.verify().await);
}
