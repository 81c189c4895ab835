//! Reports over the native API (`/v1/reports/...`): liability computed from the ledger equals
//! the sum of the card balances after a randomized workload, also as of an earlier day; daily
//! activity counts every transaction; dormant cards are those with value and no recent
//! activity; bad parameters are 400 in the native error shape; every report is scoped to its
//! merchant. Runs on SQLite, or PostgreSQL with GIFTD_TEST_BACKEND=postgres.

use std::collections::BTreeMap;

use giftd_domain::Date;
use giftd_testkit::TestApp;
use serde_json::{Value, json};

const DAY_SECONDS: i64 = 86_400;

/// A small deterministic generator (xorshift), seeded per run and printed, so a failing
/// workload can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    nanos | 1
}

fn today(app: &TestApp) -> Date {
    Date::of(app.service.now())
}

/// Sum of the cached balances of every card, per program, read through the API.
async fn balances_by_program(app: &TestApp) -> BTreeMap<String, i64> {
    let mut sums = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/cards?limit=100&cursor={c}"),
            None => "/v1/cards?limit=100".to_owned(),
        };
        let page = app.get(&path).await;
        page.assert_status(200);
        for card in page.body["data"].as_array().expect("cards") {
            let balance = card["balance"].as_i64().expect("balance");
            if balance != 0 {
                *sums
                    .entry(card["program_id"].as_str().expect("program").to_owned())
                    .or_default() += balance;
            }
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    sums
}

fn liability_by_program(report: &Value) -> BTreeMap<String, i64> {
    report["data"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            (
                l["program_id"].as_str().expect("program").to_owned(),
                l["liability"].as_i64().expect("liability"),
            )
        })
        .collect()
}

/// One random operation on one of `cards`; answers whether it made a transaction.
async fn random_operation(app: &TestApp, rng: &mut Rng, cards: &[String]) -> bool {
    let card = &cards[rng.below(cards.len() as u64) as usize];
    let amount = 1 + rng.below(5_000) as i64;
    let response = match rng.below(5) {
        0 | 1 => {
            app.post(&format!("/v1/cards/{card}/load"), json!({"amount": amount}))
                .await
        }
        2 => {
            app.post(
                &format!("/v1/cards/{card}/redeem"),
                json!({"amount": amount, "allow_partial": true}),
            )
            .await
        }
        3 => {
            let hold = app
                .post(
                    &format!("/v1/cards/{card}/holds"),
                    json!({"amount": amount, "allow_partial": true}),
                )
                .await;
            if hold.status != 201 {
                return false;
            }
            let id = hold.body["id"].as_str().expect("hold id");
            let capture = rng.below(hold.body["amount"].as_u64().expect("amount") + 1);
            let captured = app
                .post(&format!("/v1/holds/{id}/capture"), json!({"amount": capture}))
                .await;
            captured.assert_status(200);
            return true;
        }
        _ => {
            let redeemed = app
                .post(
                    &format!("/v1/cards/{card}/redeem"),
                    json!({"amount": amount, "allow_partial": true}),
                )
                .await;
            if redeemed.status != 200 {
                return false;
            }
            let id = redeemed.body["id"].as_str().expect("transaction id");
            app.post(&format!("/v1/transactions/{id}/void"), json!({})).await
        }
    };
    response.status == 200
}

#[tokio::test]
async fn liability_equals_the_sum_of_card_balances_after_a_randomized_workload() {
    let app = TestApp::spawn().await;
    let seed = seed();
    println!("workload seed {seed}");
    let mut rng = Rng(seed);
    let usd = app.usd_program().await;
    let eur = app.program(json!({"name": "Test EUR", "currency": "EUR"})).await;
    let mut cards = Vec::new();
    for i in 0..12 {
        let program = if i % 3 == 0 { &eur } else { &usd };
        let card = app.card(program, 1 + rng.below(20_000) as i64).await;
        cards.push(card["id"].as_str().expect("card id").to_owned());
    }
    for _ in 0..60 {
        random_operation(&app, &mut rng, &cards).await;
    }
    let first_day = today(&app);
    let at_first_day = balances_by_program(&app).await;

    // A day later, more activity; the report as of the first day must not see it.
    app.clock.advance_seconds(DAY_SECONDS);
    for _ in 0..60 {
        random_operation(&app, &mut rng, &cards).await;
    }
    let now = balances_by_program(&app).await;

    let report = app
        .get(&format!("/v1/reports/liability?as_of={}", today(&app)))
        .await;
    report.assert_status(200);
    assert_eq!(report.body["object"], "liability_report");
    assert_eq!(liability_by_program(&report.body), now, "seed {seed}");
    let past = app.get(&format!("/v1/reports/liability?as_of={first_day}")).await;
    past.assert_status(200);
    assert_eq!(liability_by_program(&past.body), at_first_day, "seed {seed}");

    // The per-currency totals agree with what `giftd verify` recomputes.
    let verified = app.verify().await;
    TestApp::assert_sound(&verified);
    let default_day = app.get("/v1/reports/liability").await;
    for (currency, outstanding) in &verified.outstanding {
        let total = default_day.body["totals"]
            .as_array()
            .expect("totals")
            .iter()
            .find(|t| t["currency"] == currency.as_str())
            .map_or(0, |t| t["liability"].as_i64().expect("liability"));
        assert_eq!(i128::from(total), *outstanding, "{currency}, seed {seed}");
    }
}

#[tokio::test]
async fn activity_counts_every_transaction_per_day_and_type() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let card = app.card(&program, 1_000).await;
    let id = card["id"].as_str().expect("card id");
    let first = today(&app);
    app.post(&format!("/v1/cards/{id}/redeem"), json!({"amount": 100}))
        .await
        .assert_status(200);
    app.post(&format!("/v1/cards/{id}/redeem"), json!({"amount": 250}))
        .await
        .assert_status(200);
    app.clock.advance_seconds(DAY_SECONDS);
    let second = today(&app);
    app.post(&format!("/v1/cards/{id}/load"), json!({"amount": 40}))
        .await
        .assert_status(200);

    let report = app
        .get(&format!("/v1/reports/activity?from={first}&to={second}"))
        .await;
    report.assert_status(200);
    let lines: Vec<(String, String, i64, i64)> = report.body["data"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            (
                l["date"].as_str().unwrap().to_owned(),
                l["type"].as_str().unwrap().to_owned(),
                l["count"].as_i64().unwrap(),
                l["amount"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            (first.to_string(), "issue".to_owned(), 1, 1_000),
            (first.to_string(), "redemption".to_owned(), 2, 350),
            (second.to_string(), "load".to_owned(), 1, 40),
        ]
    );
    let only_second = app
        .get(&format!("/v1/reports/activity?from={second}&to={second}"))
        .await;
    assert_eq!(only_second.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn dormant_lists_cards_with_value_and_no_activity_for_the_months_given() {
    let app = TestApp::spawn().await;
    let program = app.usd_program().await;
    let quiet = app.card(&program, 700).await;
    let spent = app.card(&program, 300).await;
    let busy = app.card(&program, 500).await;
    let spent_id = spent["id"].as_str().unwrap();
    app.post(&format!("/v1/cards/{spent_id}/redeem"), json!({"amount": 300}))
        .await
        .assert_status(200);
    // Four months pass; only `busy` is used again.
    app.clock.advance_seconds(124 * DAY_SECONDS);
    let busy_id = busy["id"].as_str().unwrap();
    app.post(&format!("/v1/cards/{busy_id}/redeem"), json!({"amount": 1}))
        .await
        .assert_status(200);

    let report = app
        .get(&format!("/v1/reports/dormant?months=3&as_of={}", today(&app)))
        .await;
    report.assert_status(200);
    let data = report.body["data"].as_array().expect("cards");
    assert_eq!(data.len(), 1, "{}", report.text);
    assert_eq!(data[0]["card_id"], quiet["id"]);
    assert_eq!(data[0]["balance"], 700);
    assert_eq!(data[0]["state"], "active");
    // Six months is longer than the cards have been quiet.
    let longer = app.get("/v1/reports/dormant?months=6").await;
    assert_eq!(longer.body["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn bad_report_parameters_are_400_in_the_native_error_shape() {
    let app = TestApp::spawn().await;
    for (path, param) in [
        ("/v1/reports/liability?as_of=2026-02-30", "as_of"),
        ("/v1/reports/liability?as_of=yesterday", "as_of"),
        ("/v1/reports/activity?from=2026-01-01", "to"),
        ("/v1/reports/activity?from=2026-02-01&to=2026-01-01", "to"),
        ("/v1/reports/activity?from=2025-01-01&to=2026-12-31", "to"),
        ("/v1/reports/dormant", "months"),
        ("/v1/reports/dormant?months=0", "months"),
        ("/v1/reports/dormant?months=twelve", "months"),
        ("/v1/reports/dormant?months=12&limit=1000", "limit"),
        ("/v1/reports/liability?as_of=2026-01-01&asof=2026-01-01", "asof"),
    ] {
        let response = app.get(path).await;
        response.assert_error(400, "invalid_request");
        assert_eq!(
            response.body["error"]["param"], param,
            "{path}: {}",
            response.text
        );
    }
}

#[tokio::test]
async fn reports_only_show_the_callers_merchant() {
    let app = TestApp::spawn().await;
    app.funded_card(900).await;
    let other = app.another_merchant().await;
    let mine = app.get("/v1/reports/liability").await;
    assert_eq!(mine.body["data"].as_array().unwrap().len(), 1);
    let theirs = app.get_as("/v1/reports/liability", &other).await;
    theirs.assert_status(200);
    assert_eq!(theirs.body["data"], json!([]));
    let day = today(&app);
    let activity = app
        .get_as(&format!("/v1/reports/activity?from={day}&to={day}"), &other)
        .await;
    assert_eq!(activity.body["data"], json!([]));
}

/// The channel report's lines as (channel, type) → (count, amount).
async fn by_channel(app: &TestApp, from: Date, to: Date) -> BTreeMap<(String, String), (i64, i64)> {
    let report = app
        .get(&format!("/v1/reports/channels?from={from}&to={to}"))
        .await;
    report.assert_status(200);
    assert_eq!(report.body["object"], "channel_report");
    let mut lines = BTreeMap::new();
    for line in report.body["data"].as_array().expect("lines") {
        let key = (
            line["channel"].as_str().expect("a channel").to_owned(),
            line["type"].as_str().expect("a type").to_owned(),
        );
        let value = (
            line["count"].as_i64().expect("a count"),
            line["amount"].as_i64().expect("an amount"),
        );
        assert!(
            lines.insert(key, value).is_none(),
            "one line per channel and type: {}",
            report.text
        );
    }
    lines
}

#[tokio::test]
async fn each_front_end_s_redemptions_are_counted_under_its_own_channel() {
    let app = TestApp::spawn().await;
    let card = app.funded_card(100_000).await;
    let card_id = card["id"].as_str().expect("a card id").to_owned();
    let day = today(&app);

    // Native: a redemption.
    app.post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 100}))
        .await
        .assert_status(200);
    // The customer-wallet API: a redemption.
    app.post(
        "/giftcard/v1/redeem",
        json!({"giftCardId": card_id, "amount": 200}),
    )
    .await
    .assert_status(200);
    // Clover: a token for the card, then a captured charge.
    let token = app
        .send(
            app.client
                .post(app.url("/clover/v1/tokens"))
                .header("apiKey", &app.api_key)
                .json(
                    &json!({"gift_card": {"number": card["number"], "security_code": card["security_code"]}}),
                ),
        )
        .await;
    token.assert_status(200);
    let charge = app
        .send(
            app.client
                .post(app.url("/clover/v1/charges"))
                .bearer_auth(&app.api_key)
                .json(
                    &json!({"source": token.body["id"], "amount": 300, "currency": "usd",
                              "capture": true, "partial_redemption": false}),
                ),
        )
        .await;
    charge.assert_status(200);
    // Adyen's Terminal API: a payment of 4.00.
    let payment = app
        .send(
            app.client
                .post(app.url("/sync"))
                .header("X-API-Key", &app.api_key)
                .json(&json!({"SaleToPOIRequest": {
                    "MessageHeader": {"ProtocolVersion": "3.0", "MessageClass": "Service",
                        "MessageCategory": "Payment", "MessageType": "Request", "ServiceID": "S1",
                        "SaleID": "POS1", "POIID": "V400m-324688179"},
                    "PaymentRequest": {
                        "SaleData": {"SaleTransactionID": {"TransactionID": "sale-1",
                            "TimeStamp": "2024-05-01T10:00:00+00:00"}},
                        "PaymentTransaction": {"AmountsReq": {"Currency": "USD", "RequestedAmount": 4.00}},
                        "PaymentData": {"PaymentType": "Normal", "PaymentInstrumentData": {
                            "PaymentInstrumentType": "StoredValue",
                            "StoredValueAccountID": {"StoredValueAccountType": "GiftCard",
                                "StoredValueProvider": "givex", "IdentificationType": "PAN",
                                "EntryMode": ["Scanned"], "StoredValueID": card["number"]}}}}}})),
        )
        .await;
    assert_eq!(
        payment.body["SaleToPOIResponse"]["PaymentResponse"]["Response"]["Result"], "Success",
        "{}",
        payment.text
    );
    // Gr4vy: a gift card only transaction (a hold), then its capture.
    let transaction = app
        .post(
            "/gr4vy/transactions",
            json!({"amount": 500, "currency": "USD", "gift_cards": [
                {"number": card["number"], "pin": card["security_code"], "amount": 500}]}),
        )
        .await;
    transaction.assert_status(201);
    app.post_raw(
        &format!(
            "/gr4vy/transactions/{}/capture",
            transaction.body["id"].as_str().expect("an id")
        ),
        "",
    )
    .await
    .assert_status(200);

    let lines = by_channel(&app, day, day).await;
    let line = |channel: &str, kind: &str| lines.get(&(channel.to_owned(), kind.to_owned())).copied();
    assert_eq!(line("native", "redemption"), Some((1, 100)), "{lines:?}");
    assert_eq!(line("wallet", "redemption"), Some((1, 200)), "{lines:?}");
    assert_eq!(line("clover", "redemption"), Some((1, 300)), "{lines:?}");
    assert_eq!(line("adyen", "redemption"), Some((1, 400)), "{lines:?}");
    assert_eq!(line("gr4vy", "hold"), Some((1, 500)), "{lines:?}");
    assert_eq!(line("gr4vy", "capture"), Some((1, 500)), "{lines:?}");
    // The card was issued and loaded through the native API; nothing came from giftd itself.
    assert!(lines.keys().all(|(channel, _)| channel != "system"), "{lines:?}");
    let redeemed: i64 = lines
        .iter()
        .filter(|((_, kind), _)| kind == "redemption" || kind == "capture")
        .map(|(_, (_, amount))| amount)
        .sum();
    assert_eq!(redeemed, 1_500);

    // A day with nothing is empty; a span the activity report refuses is refused the same way.
    let tomorrow = Date::from_days(day.days() + 1);
    assert!(by_channel(&app, tomorrow, tomorrow).await.is_empty());
    app.get(&format!("/v1/reports/channels?from={tomorrow}&to={day}"))
        .await
        .assert_error(400, "invalid_request");
    // Every line is the caller's merchant's.
    let other = app.another_merchant().await;
    let theirs = app
        .get_as(&format!("/v1/reports/channels?from={day}&to={day}"), &other)
        .await;
    theirs.assert_status(200);
    assert_eq!(theirs.body["data"], json!([]));
    TestApp::assert_sound(&app.verify().await);
}
