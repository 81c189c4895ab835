//! The merchant console (docs/CONSOLE.md). In a real browser (Debian's `chromium`, driven
//! through `chromedriver` with fantoccini; the tests that need it are ignored without it, and
//! `.ci/run` installs both and runs them): a newcomer signs in with the temporary password,
//! chooses their own, creates a program, issues a card, finds it, freezes and unfreezes it,
//! asks for an adjustment above the threshold that a second person approves (the first may not),
//! and reads the liability report and its CSV, which agree with the API; a role without the
//! power is refused; an idle session ends. Without a browser: the headers and cookie flags of
//! every page, and forms that did not come from the console refused.
//!
//! `GIFTD_CONSOLE_SCREENSHOTS=DIR` saves a screenshot of each main page there (docs/console/).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use giftd_testkit::TestApp;
use serde_json::{Value, json};

const NEW_PASSWORD: &str = "a long enough passphrase";

fn chromium() -> String {
    std::env::var("GIFTD_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

fn chromedriver() -> String {
    std::env::var("GIFTD_TEST_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".to_owned())
}

/// A headless chromium, through its own chromedriver on a free port.
struct Browser {
    driver: Child,
    client: Client,
}

impl Browser {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts (Debian's chromium-driver package)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"binary": chromium(), "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"]}),
        );
        let client = ClientBuilder::rustls()
            .expect("a TLS setup")
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a browser session");
        Self { driver, client }
    }

    async fn goto(&self, app: &TestApp, path: &str) {
        self.client.goto(&app.url(path)).await.expect("the page loads");
    }

    async fn path(&self) -> String {
        self.client.current_url().await.expect("a URL").path().to_owned()
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.expect(css);
        field.clear().await.expect("cleared");
        field.send_keys(text).await.expect("typed");
    }

    async fn select(&self, css: &str, value: &str) {
        let select = self.client.find(Locator::Css(css)).await.expect(css);
        select.select_by_value(value).await.expect("selected");
    }

    async fn submit(&self, form_action: &str) {
        let button = self
            .client
            .find(Locator::Css(&format!(
                "form[action='{form_action}'] button[type=submit]"
            )))
            .await
            .unwrap_or_else(|_| panic!("a form to {form_action}"));
        self.click_and_wait(button).await;
    }

    /// Clicks what `css` finds (`what` names it, for a failure), then waits for the next page.
    async fn click(&self, css: &str, what: &str) {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|_| panic!("{what}: {css}"));
        self.click_and_wait(element).await;
    }

    /// Clicks, then waits for the next page: until the current one is gone and the new one
    /// loaded (a click does not wait for the navigation it starts).
    async fn click_and_wait(&self, element: fantoccini::elements::Element) {
        let old = self.client.find(Locator::Css("html")).await.expect("a page");
        element.click().await.expect("clicked");
        self.wait_for_next_page(old).await;
    }

    /// Presses Enter on what has the focus, then waits for the page it leads to.
    async fn press_enter_and_wait(&self) {
        let old = self.client.find(Locator::Css("html")).await.expect("a page");
        self.focused()
            .await
            .send_keys("\u{e007}")
            .await
            .expect("Enter pressed");
        self.wait_for_next_page(old).await;
    }

    /// What has the keyboard's focus.
    async fn focused(&self) -> fantoccini::elements::Element {
        self.client.active_element().await.expect("a focused element")
    }

    /// Presses Tab until `css` has the focus (at most 40 times): the ids or names of what the
    /// focus went through, in order, `css`'s last.
    async fn tab_to(&self, css: &str) -> Vec<String> {
        let target = self.client.find(Locator::Css(css)).await.expect(css);
        let mut path = Vec::new();
        for _ in 0..40 {
            self.focused()
                .await
                .send_keys("\u{e004}")
                .await
                .expect("Tab pressed");
            let now = self.focused().await;
            let name = match now.attr("id").await.expect("an attribute") {
                Some(id) if !id.is_empty() => id,
                _ => now.text().await.expect("its text"),
            };
            path.push(name);
            if now.element_id() == target.element_id() {
                return path;
            }
        }
        panic!("Tab never reached {css}; it went through {path:?}");
    }

    async fn wait_for_next_page(&self, old: fantoccini::elements::Element) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while old.tag_name().await.is_ok() {
            assert!(Instant::now() < deadline, "no new page after the click");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        while self
            .client
            .execute("return document.readyState", vec![])
            .await
            .ok()
            .and_then(|state| state.as_str().map(str::to_owned))
            .as_deref()
            != Some("complete")
        {
            assert!(Instant::now() < deadline, "the new page did not load");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A form field's current value.
    async fn value(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|_| panic!("{css} on the page"))
            .prop("value")
            .await
            .expect("its value")
            .unwrap_or_default()
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|_| panic!("{css} on the page"))
            .text()
            .await
            .expect("its text")
    }

    async fn page(&self) -> String {
        self.client.source().await.expect("the page source")
    }

    /// Saves a screenshot named `name` when asked to (`GIFTD_CONSOLE_SCREENSHOTS`).
    async fn screenshot(&self, name: &str) {
        if let Ok(dir) = std::env::var("GIFTD_CONSOLE_SCREENSHOTS") {
            let png = self.client.screenshot().await.expect("a screenshot");
            std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).expect("saved");
        }
    }

    /// Signs in; a first sign-in with a temporary password goes on to choose [`NEW_PASSWORD`].
    async fn sign_in(&self, app: &TestApp, email: &str, password: &str) {
        self.goto(app, "/console").await;
        assert_eq!(
            self.path().await,
            "/console/sign_in",
            "a visitor is sent to sign in"
        );
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.submit("/console/sign_in").await;
        if self.path().await == "/console/password" {
            self.fill("#current_password", password).await;
            self.fill("#new_password", NEW_PASSWORD).await;
            self.submit("/console/password").await;
        }
        assert_eq!(self.path().await, "/console", "{}", self.page().await);
    }

    async fn sign_out(&self) {
        self.submit("/console/sign_out").await;
        assert_eq!(self.path().await, "/console/sign_in");
    }

    async fn close(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Invites a staff member with the merchant's key: their temporary password.
async fn invite(app: &TestApp, email: &str, role: &str) -> String {
    let invited = app.post("/v1/staff", json!({"email": email, "role": role})).await;
    invited.assert_status(201);
    invited.body["temporary_password"]
        .as_str()
        .expect("a temporary password")
        .to_owned()
}

/// A fresh app and a browser signed in to its console as a new staff member of `role`.
async fn signed_in_browser(email: &str, role: &str) -> (TestApp, Browser) {
    let app = TestApp::spawn().await;
    let temporary = invite(&app, email, role).await;
    let browser = Browser::start().await;
    browser.sign_in(&app, email, &temporary).await;
    (app, browser)
}

/// A program of `currency` and an active virtual card of it holding `amount`: the card's id.
async fn a_card(app: &TestApp, currency: &str, amount: i64) -> String {
    let program = app
        .post("/v1/programs", json!({"name": "P", "currency": currency}))
        .await;
    let card = app
        .post(
            "/v1/cards",
            json!({"program_id": program.body["id"], "kind": "virtual", "amount": amount}),
        )
        .await;
    card.body["id"].as_str().expect("a card").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver (Debian's packages; .ci/run installs them)"]
async fn a_newcomer_issues_a_card_two_people_adjust_it_and_the_liability_report_agrees_with_the_api() {
    let app = TestApp::spawn().await;
    let owner = invite(&app, "owner@example.com", "owner").await;
    let browser = Browser::start().await;

    browser.goto(&app, "/console/sign_in").await;
    browser.screenshot("sign-in").await;
    browser.sign_in(&app, "owner@example.com", &owner).await;
    let cookies = browser.client.get_all_cookies().await.expect("cookies");
    let session = cookies
        .iter()
        .find(|c| c.name() == "giftd_console")
        .expect("the session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");
    assert!(session.value().starts_with("gs_"));

    // The owner invites the second person who will approve, and sees the password once.
    browser.goto(&app, "/console/staff").await;
    browser.fill("#invite_email", "finance@example.com").await;
    browser.select("#invite_role", "finance").await;
    browser.submit("/console/staff").await;
    let finance = browser.text("#temporary-password").await;
    assert_eq!(finance.len(), 20, "a temporary password: {finance}");
    browser.screenshot("staff").await;
    browser.goto(&app, "/console/staff").await;
    assert!(!browser.page().await.contains(&finance), "shown once only");

    // A program, then a card of it.
    browser.goto(&app, "/console/programs").await;
    browser.fill("#program_name", "Coffee").await;
    browser.fill("#program_currency", "usd").await;
    browser.submit("/console/programs").await;
    assert_eq!(browser.text("p.notice").await, "Program created.");
    browser.fill("#issue_amount", "100").await;
    browser.submit("/console/cards").await;
    assert_eq!(
        browser.text("p.notice").await,
        "Card issued: it is active with its amount."
    );
    assert_eq!(browser.text("#balance").await, "100.00 USD");
    let card_path = browser.path().await;
    let card_id = card_path.rsplit('/').next().expect("a card id").to_owned();
    let last4 = app.get(&format!("/v1/cards/{card_id}")).await.body["last4"].clone();
    assert!(
        browser.text("h1").await.ends_with(last4.as_str().unwrap()),
        "the card is named by its last 4 only"
    );

    // Found again by its id, and by its last 4 digits; frozen and unfrozen.
    browser.goto(&app, "/console/cards").await;
    browser.fill("#card_id", &card_id).await;
    browser.submit("/console/cards").await;
    assert_eq!(browser.path().await, card_path);
    browser.goto(&app, "/console/cards").await;
    browser.fill("#last4", last4.as_str().unwrap()).await;
    browser
        .click(
            "form:not(#by-id)[action='/console/cards'] button",
            "the search by last 4",
        )
        .await;
    assert!(
        browser
            .text("#results-caption")
            .await
            .starts_with("1 card(s) ending"),
        "{}",
        browser.page().await
    );
    browser
        .click(
            &format!("a[href='/console/cards/{card_id}']"),
            "the card in the results",
        )
        .await;
    assert_eq!(browser.path().await, card_path);
    browser.submit(&format!("/console/cards/{card_id}/freeze")).await;
    assert_eq!(browser.text("#state").await, "frozen");
    assert_eq!(
        app.get(&format!("/v1/cards/{card_id}")).await.body["state"],
        "frozen"
    );
    browser
        .submit(&format!("/console/cards/{card_id}/unfreeze"))
        .await;
    assert_eq!(browser.text("#state").await, "active");

    // 75.00 is above the threshold (50.00): it waits, and its asker may not approve it.
    browser.fill("#adjust_amount", "75").await;
    browser.select("#adjust_reason", "goodwill").await;
    browser
        .fill("#adjust_note", "=HYPERLINK(\"x\") the espresso machine broke")
        .await;
    browser
        .submit(&format!("/console/cards/{card_id}/adjustments"))
        .await;
    assert_eq!(
        browser.text("p.notice").await,
        "Adjustment requested: it waits for a second person's approval."
    );
    assert_eq!(browser.text("#balance").await, "100.00 USD");
    browser.screenshot("card").await;
    browser.goto(&app, "/console/adjustments").await;
    browser.screenshot("approvals").await;
    browser
        .click("form[action$='/approve'] button", "an approve button")
        .await;
    assert_eq!(
        app.get(&format!("/v1/cards/{card_id}")).await.body["balance"],
        10_000,
        "the asker's own approval moved nothing"
    );
    assert!(
        browser.text("#refusal").await.contains("second person"),
        "{}",
        browser.page().await
    );
    browser.goto(&app, "/console").await;
    assert_eq!(browser.text("#activity-heading").await, "The last 30 days");
    browser.click("a[href='/console?days=90']", "Show 90 days").await;
    assert_eq!(browser.text("#activity-heading").await, "The last 90 days");
    assert!(browser.text("#activity-table").await.contains("issue"));
    browser.sign_out().await;

    // The second person approves it.
    browser.sign_in(&app, "finance@example.com", &finance).await;
    browser.goto(&app, "/console/adjustments").await;
    browser
        .click("form[action$='/approve'] button", "an approve button")
        .await;
    assert_eq!(browser.text("p.notice").await, "Adjustment approved and applied.");
    browser.goto(&app, &card_path).await;
    assert_eq!(browser.text("#balance").await, "175.00 USD");

    // The liability report: on the page, in its CSV, and from the API, the same figures.
    let api = app.get("/v1/reports/liability").await;
    api.assert_status(200);
    assert_eq!(api.body["totals"][0]["liability"], 17_500);
    browser.goto(&app, "/console/reports/liability").await;
    assert_eq!(browser.text("#total-1").await, "175.00 USD");
    // A year of month-ends: nothing outstanding until this month's 175.00.
    let caption = browser.text("#chart-caption").await;
    assert!(
        caption.contains("0.00 USD on")
            && caption.ends_with(&format!(
                "175.00 USD on {}",
                app.get("/v1/reports/liability").await.body["as_of"]
                    .as_str()
                    .unwrap()
            )),
        "{caption}"
    );
    let bars = browser
        .client
        .find_all(Locator::Css("figure svg rect"))
        .await
        .expect("the bars");
    assert_eq!(bars.len(), 12);
    browser.screenshot("liability").await;
    let csv: Value = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             fetch('/console/reports/liability.csv').then(r => r.text()).then(done, e => done('failed: ' + e));",
            vec![],
        )
        .await
        .expect("the CSV");
    let csv = csv.as_str().expect("text").to_owned();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("as_of,program_id,currency,cards,liability_minor")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 1, "{csv}");
    assert_eq!(rows[0][1], api.body["data"][0]["program_id"].as_str().unwrap());
    assert_eq!((rows[0][2], rows[0][3], rows[0][4]), ("USD", "1", "17500"));
    browser.goto(&app, "/console").await;
    browser.screenshot("home").await;
    assert!(
        browser.page().await.contains("175.00 USD"),
        "the home page shows the liability"
    );

    // A redemption at a till shows in the activity report, its chart and its CSV.
    app.post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 1_000}))
        .await
        .assert_status(200);
    browser.goto(&app, "/console/reports/activity").await;
    assert!(
        browser
            .text("#chart-caption")
            .await
            .contains("10.00 USD over 1 day(s)"),
        "{}",
        browser.page().await
    );
    browser.screenshot("activity").await;
    let csv: Value = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             fetch(document.querySelector('a[download]').href).then(r => r.text()).then(done, e => done('failed: ' + e));",
            vec![],
        )
        .await
        .expect("the CSV");
    let csv = csv.as_str().expect("text");
    assert!(
        csv.starts_with("date,program_id,currency,type,count,amount_minor\n"),
        "{csv}"
    );
    assert!(csv.contains(",USD,redemption,1,1000\n"), "{csv}");
    assert!(csv.contains(",USD,adjustment,1,7500"), "{csv}");

    // The audit page shows the approval, by whom.
    browser
        .goto(&app, &format!("/console/audit?object_id={card_id}"))
        .await;
    browser.screenshot("audit").await;
    assert!(
        browser.page().await.contains("/freeze"),
        "{}",
        browser.page().await
    );

    // A card spent to nothing through two front-ends (the liability stays as it was).
    let spent = app.funded_card(1_000).await;
    let spent_id = spent["id"].as_str().expect("a card id");
    app.post(&format!("/v1/cards/{spent_id}/redeem"), json!({"amount": 600}))
        .await
        .assert_status(200);
    app.post(
        "/giftcard/v1/redeem",
        json!({"giftCardId": spent_id, "amount": 400}),
    )
    .await
    .assert_status(200);
    browser.goto(&app, "/console").await;
    let channels = browser.text("#channels-table").await;
    assert!(
        channels.contains("Native API and console 2 16.00 USD"),
        "the till's 10.00 and this card's 6.00: {channels}"
    );
    assert!(channels.contains("Customer wallet API 1 4.00 USD"), "{channels}");
    browser.click("a[href='/console?days=1']", "Show today").await;
    assert_eq!(browser.text("#activity-heading").await, "Today");
    assert!(
        browser
            .text("#channels-table")
            .await
            .contains("Customer wallet API 1 4.00 USD")
    );

    // Every step is in the audit trail, done by the people who did it.
    let audit = app.get("/v1/audit_events?limit=100").await;
    let rows = audit.body["data"].as_array().expect("rows").clone();
    let approved = rows
        .iter()
        .find(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/approve")) && r["outcome"] == "succeeded")
        .expect("the approval is recorded");
    assert_eq!(approved["actor"]["type"], "staff", "{approved}");
    assert!(
        rows.iter()
            .any(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/freeze"))
                && r["actor"]["type"] == "staff"),
        "{audit:?}"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver (Debian's packages; .ci/run installs them)"]
async fn a_cards_page_shows_what_its_holds_reserve_and_pages_back_through_its_history() {
    let (app, browser) = signed_in_browser("support@example.com", "support").await;
    let card_id = a_card(&app, "USD", 10_000).await;
    for _ in 0..55 {
        app.post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 1}))
            .await
            .assert_status(200);
    }
    app.post(&format!("/v1/cards/{card_id}/holds"), json!({"amount": 500}))
        .await
        .assert_status(201);
    let all = app
        .get(&format!("/v1/cards/{card_id}/transactions?limit=100"))
        .await;
    all.assert_status(200);
    let total = all.body["data"].as_array().expect("transactions").len();
    assert_eq!(total, 57, "the issue, 55 redemptions and the hold");

    browser.goto(&app, &format!("/console/cards/{card_id}")).await;
    assert_eq!(browser.text("#balance").await, "99.45 USD");
    assert_eq!(browser.text("#held").await, "5.00 USD");
    let rows = |text: String| text.lines().filter(|l| l.contains(" USD")).count();
    assert_eq!(rows(browser.text("#history-table tbody").await), 50);
    let newest = browser.text("#history-table tbody").await;
    assert!(
        newest.lines().next().is_some_and(|l| l.contains("hold")),
        "newest first: {newest}"
    );
    browser.click("#older", "Older transactions").await;
    let older = browser.text("#history-table tbody").await;
    assert_eq!(rows(older.clone()), total - 50, "{older}");
    assert!(
        older.lines().last().is_some_and(|l| l.contains("issue")),
        "the oldest page ends with the card's first transaction: {older}"
    );
    assert!(browser.page().await.contains("Newest transactions"));
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver (Debian's packages; .ci/run installs them)"]
async fn an_api_key_made_in_the_console_is_shown_once_works_and_stops_when_revoked() {
    let (app, browser) = signed_in_browser("owner@example.com", "owner").await;
    browser.goto(&app, "/console/api_keys").await;
    browser.fill("#key_name", "Till 4").await;
    browser.select("#key_scope", "pos").await;
    browser.submit("/console/api_keys").await;
    let key = browser.text("#new-key").await;
    assert!(key.starts_with("gk_"), "{key}");
    browser.screenshot("api-keys").await;
    let read = |key: String| {
        let app = &app;
        async move {
            app.client
                .get(app.url("/v1/programs"))
                .bearer_auth(key)
                .send()
                .await
                .expect("an answer")
                .status()
        }
    };
    assert_eq!(read(key.clone()).await, 200);
    browser.goto(&app, "/console/api_keys").await;
    assert!(!browser.page().await.contains(&key), "shown once only");
    browser
        .click("button[aria-label='Revoke Till 4']", "a revoke button")
        .await;
    assert_eq!(
        browser.text("p.notice").await,
        "Key revoked: it stops working now."
    );
    assert_eq!(read(key).await, 401);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver (Debian's packages; .ci/run installs them)"]
async fn a_gifts_recipient_sees_the_card_and_the_support_desk_replaces_the_link() {
    let (app, browser) = signed_in_browser("support@example.com", "support").await;
    let program = app
        .post(
            "/v1/programs",
            json!({"name": "Harbour Books", "currency": "EUR"}),
        )
        .await;
    let gift = app
        .post(
            "/v1/gifts",
            json!({"sender_user_id": "ana", "recipient_user_id": "ben",
                   "program_id": program.body["id"], "amount": 4000, "funding_reference": "ch_9"}),
        )
        .await;
    gift.assert_status(201);
    let card = &gift.body["card"];
    let (id, number, code) = (
        card["id"].as_str().unwrap().to_owned(),
        card["number"].as_str().unwrap().to_owned(),
        card["security_code"].as_str().unwrap().to_owned(),
    );
    app.post(&format!("/v1/cards/{id}/redeem"), json!({"amount": 1250}))
        .await
        .assert_status(200);

    // The recipient opens the link they were sent.
    let link = gift.body["cardholder_link"]["url"].as_str().unwrap().to_owned();
    browser.client.goto(&link).await.expect("the page loads");
    assert_eq!(browser.text("h1").await, "Your Harbour Books gift card");
    assert_eq!(browser.text("#balance").await, "27.50 EUR");
    assert_eq!(browser.text("#initial").await, "40.00 EUR");
    assert_eq!(browser.text("#number").await.replace(' ', ""), number);
    assert_eq!(browser.text("#security-code").await, code);
    // Both symbols are drawn (the policy allows no script and no inline style: they are SVG
    // shapes filled by attributes) at a size a scanner can read.
    for figure in [".barcode svg", ".qr svg"] {
        let size = browser
            .client
            .find(Locator::Css(figure))
            .await
            .expect(figure)
            .rectangle()
            .await
            .expect("its box");
        assert!(size.2 >= 150.0 && size.3 >= 60.0, "{figure} is {size:?}");
    }
    assert!(browser.page().await.contains("Spent"));
    browser.screenshot("cardholder").await;

    // Support finds the recipient's card by their user id.
    browser.goto(&app, "/console/cards").await;
    browser.fill("#user_id", "ben").await;
    browser
        .click("form:has(#user_id) button[type=submit]", "the search by user")
        .await;
    assert!(
        browser
            .text("#results-caption")
            .await
            .starts_with("1 card(s) in the wallet of ben"),
        "{}",
        browser.page().await
    );
    browser
        .click(&format!("a[href='/console/cards/{id}']"), "the card found")
        .await;
    assert_eq!(browser.path().await, format!("/console/cards/{id}"));

    // The cardholder lost it: support revokes it in the console and makes a new one.
    browser.goto(&app, &format!("/console/cards/{id}")).await;
    browser
        .click("button[aria-label^='Revoke link']", "the link's revoke button")
        .await;
    assert_eq!(
        browser.text("p.notice").await,
        "Cardholder link revoked: its page no longer opens."
    );
    browser.submit(&format!("/console/cards/{id}/links")).await;
    let new_link = browser.text("#new-link").await;
    assert!(new_link.contains("/g/") && new_link != link, "{new_link}");
    browser.goto(&app, &format!("/console/cards/{id}")).await;
    assert!(!browser.page().await.contains(&new_link), "shown once only");

    browser.client.goto(&link).await.expect("the old page answers");
    assert!(browser.text("#message").await.contains("does not work"));
    browser.client.goto(&new_link).await.expect("the new page loads");
    assert_eq!(browser.text("#security-code").await, code);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver (Debian's packages; .ci/run installs them)"]
async fn a_support_agent_signs_in_finds_and_freezes_a_card_with_the_keyboard_alone() {
    let app = TestApp::spawn().await;
    let card_id = a_card(&app, "USD", 2_000).await;
    let temporary = invite(&app, "desk@example.com", "support").await;
    let browser = Browser::start().await;
    browser.goto(&app, "/console/sign_in").await;

    // The first stop is the link past the header, then the form in reading order.
    let order = browser.tab_to("#email").await;
    assert_eq!(order, ["Skip to content", "email"]);
    browser
        .focused()
        .await
        .send_keys("desk@example.com")
        .await
        .unwrap();
    assert_eq!(browser.tab_to("#password").await, ["password"]);
    browser.focused().await.send_keys(&temporary).await.unwrap();
    browser.press_enter_and_wait().await;
    assert_eq!(browser.path().await, "/console/password");
    browser.tab_to("#current_password").await;
    browser.focused().await.send_keys(&temporary).await.unwrap();
    browser.tab_to("#new_password").await;
    browser.focused().await.send_keys(NEW_PASSWORD).await.unwrap();
    browser.press_enter_and_wait().await;
    assert_eq!(browser.path().await, "/console");

    // The header's links, then the card by its id, then its freeze button.
    browser.tab_to("nav a[href='/console/cards']").await;
    browser.press_enter_and_wait().await;
    assert_eq!(browser.path().await, "/console/cards");
    browser.tab_to("#card_id").await;
    browser.focused().await.send_keys(&card_id).await.unwrap();
    browser.press_enter_and_wait().await;
    assert_eq!(browser.path().await, format!("/console/cards/{card_id}"));
    browser
        .tab_to(&format!("form[action='/console/cards/{card_id}/freeze'] button"))
        .await;
    browser.press_enter_and_wait().await;
    assert_eq!(
        browser.text("p.notice").await,
        "Card frozen: it cannot be used until unfrozen."
    );
    assert_eq!(
        app.get(&format!("/v1/cards/{card_id}")).await.body["state"],
        "frozen"
    );
    browser.close().await;
}

/// axe-core, vendored (crates/cli/tests/vendor/axe-core-4.14.1/README.md: where it came from,
/// its digest and licence).
const AXE: &str = include_str!("../vendor/axe-core-4.14.1/axe.min.js");

impl Browser {
    /// What axe-core finds against WCAG 2.1 A and AA on the page shown: one line per rule
    /// broken, with its impact and the elements at fault.
    async fn accessibility_violations(&self) -> Vec<String> {
        self.client.execute(AXE, vec![]).await.expect("axe-core loads");
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];\
                 axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})\
                   .then(r => done(r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at '\
                     + v.nodes.map(n => n.target.join(' ')).join(', '))), e => done(['axe failed: ' + e]));",
                vec![],
            )
            .await
            .expect("axe-core runs");
        found
            .as_array()
            .expect("a list")
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver (Debian's packages; .ci/run installs them)"]
async fn every_page_passes_axe_against_wcag_2_1_aa() {
    let app = TestApp::spawn().await;
    // Something on every page: a program, cards, a pending adjustment, a checkout, a webhook
    // endpoint with an event, a gift with its cardholder page.
    let card_id = a_card(&app, "USD", 5_000).await;
    app.post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 700}))
        .await
        .assert_status(200);
    app.post(
        &format!("/v1/cards/{card_id}/adjustments"),
        json!({"amount": 90_000, "reason": "goodwill"}),
    )
    .await
    .assert_status(202);
    let checkout = app
        .post(
            "/v1/checkouts",
            json!({"amount": 1_000, "currency": "USD", "intent": "capture",
                   "gift_cards": [{"card_id": card_id, "amount": 1_000}]}),
        )
        .await;
    checkout.assert_status(201);
    let checkout_id = checkout.body["id"].as_str().unwrap().to_owned();
    let endpoint = app
        .post(
            "/v1/webhook_endpoints",
            json!({"url": "http://127.0.0.1:9/hook", "event_types": ["card.redeemed"]}),
        )
        .await;
    endpoint.assert_status(201);
    app.post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 100}))
        .await
        .assert_status(200);
    let program_id = app.get(&format!("/v1/cards/{card_id}")).await.body["program_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let gift = app
        .post(
            "/v1/gifts",
            json!({"sender_user_id": "ana", "recipient_user_id": "ben", "program_id": program_id,
                   "amount": 2_500, "funding_reference": "ch_1"}),
        )
        .await;
    gift.assert_status(201);
    let cardholder = gift.body["cardholder_link"]["url"].as_str().unwrap().to_owned();

    let owner = invite(&app, "owner@example.com", "owner").await;
    let browser = Browser::start().await;
    // The probe works: a page with an unlabelled field and an image without text fails.
    browser
        .client
        .goto("data:text/html,<!doctype html><html lang=en><title>t</title><main><img src=x.png><input></main></html>")
        .await
        .expect("the probe page");
    let probe = browser.accessibility_violations().await;
    assert!(
        probe.iter().any(|v| v.starts_with("image-alt")) && probe.iter().any(|v| v.starts_with("label")),
        "{probe:?}"
    );
    browser.goto(&app, "/console/sign_in").await;
    let mut found = Vec::new();
    for violation in browser.accessibility_violations().await {
        found.push(format!("/console/sign_in: {violation}"));
    }
    browser.sign_in(&app, "owner@example.com", &owner).await;
    let event = app.get("/v1/events?limit=1").await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pages = [
        "/console".to_owned(),
        "/console/cards".to_owned(),
        "/console/cards?last4=0000".to_owned(),
        format!("/console/cards/{card_id}"),
        "/console/programs".to_owned(),
        format!("/console/programs/{program_id}"),
        "/console/checkouts".to_owned(),
        format!("/console/checkouts?checkout_id={checkout_id}"),
        "/console/adjustments".to_owned(),
        "/console?days=90".to_owned(),
        "/console/reports/liability".to_owned(),
        "/console/reports/activity".to_owned(),
        "/console/reports/dormant".to_owned(),
        "/console/reports/breakage".to_owned(),
        "/console/staff".to_owned(),
        "/console/api_keys".to_owned(),
        "/console/webhooks".to_owned(),
        format!("/console/webhooks/events/{event}"),
        "/console/audit".to_owned(),
        "/console/password".to_owned(),
    ];
    for page in &pages {
        browser.goto(&app, page).await;
        assert!(
            !browser.path().await.ends_with("/sign_in"),
            "{page} sent to sign in"
        );
        for violation in browser.accessibility_violations().await {
            found.push(format!("{page}: {violation}"));
        }
    }
    browser
        .client
        .goto(&cardholder)
        .await
        .expect("the cardholder page");
    for violation in browser.accessibility_violations().await {
        found.push(format!("the cardholder page: {violation}"));
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver (Debian's packages; .ci/run installs them)"]
async fn an_admin_renames_a_program_changes_its_limits_and_expiry_and_stops_it_issuing_cards() {
    let (app, browser) = signed_in_browser("admin@example.com", "admin").await;
    let program = app
        .post(
            "/v1/programs",
            json!({"name": "Spring", "currency": "USD", "expiry_months": 72}),
        )
        .await;
    program.assert_status(201);
    let id = program.body["id"].as_str().unwrap().to_owned();
    browser.goto(&app, "/console/programs").await;
    browser
        .click(&format!("a[href='/console/programs/{id}']"), "the program")
        .await;
    assert_eq!(browser.text("h1").await, "Spring");
    assert!(browser.page().await.contains("72 months after issue"));
    assert_eq!(browser.value("#edit_expiry_months").await, "72");
    browser.fill("#edit_name", "Spring 2027").await;
    browser.fill("#edit_max_load", "200").await;
    browser.fill("#edit_denominations", "25, 50.50").await;
    browser.fill("#edit_expiry_months", "84").await;
    // A checkbox, ticked off: no page follows the click.
    browser
        .client
        .find(Locator::Css("#edit_active"))
        .await
        .expect("the active box")
        .click()
        .await
        .expect("clicked");
    browser.submit(&format!("/console/programs/{id}")).await;
    assert_eq!(browser.text("p.notice").await, "Program changed.");
    assert_eq!(browser.text("h1").await, "Spring 2027");
    assert!(browser.text("#program-state").await.starts_with("inactive"));
    browser.screenshot("program").await;
    assert!(browser.page().await.contains("84 months after issue"));
    assert_eq!(browser.value("#edit_max_load").await, "200.00");
    assert_eq!(browser.value("#edit_denominations").await, "25.00, 50.50");
    let read = app.get(&format!("/v1/programs/{id}")).await;
    assert_eq!(
        (read.body["name"].as_str(), read.body["active"].as_bool()),
        (Some("Spring 2027"), Some(false))
    );
    assert_eq!(read.body["max_load"], 20_000);
    assert_eq!(read.body["denominations"], json!([2_500, 5_050]));
    assert_eq!(read.body["expiry_months"], 84);
    assert!(read.body["min_load"].is_null());
    app.post(
        "/v1/cards",
        json!({"program_id": id, "kind": "virtual", "amount": 2_500}),
    )
    .await
    .assert_error(422, "program_inactive");
    // Expiry may not be shortened (cards were promised 84 months), nor typed as words.
    browser.fill("#edit_expiry_months", "12").await;
    browser.submit(&format!("/console/programs/{id}")).await;
    assert!(
        browser.text("#refusal").await.contains("lengthened"),
        "{}",
        browser.page().await
    );
    browser.goto(&app, &format!("/console/programs/{id}")).await;
    browser.fill("#edit_max_load", "two hundred").await;
    browser.submit(&format!("/console/programs/{id}")).await;
    assert!(browser.text("#refusal").await.contains("major units"));
    let again = app.get(&format!("/v1/programs/{id}")).await;
    assert_eq!(
        (&again.body["expiry_months"], &again.body["max_load"]),
        (&json!(84), &json!(20_000))
    );
    browser.goto(&app, &format!("/console/programs/{id}")).await;
    // Saving the form unchanged changes nothing.
    browser.submit(&format!("/console/programs/{id}")).await;
    assert_eq!(
        browser.text("p.notice").await,
        "Nothing to change: the program is as the form was."
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver (Debian's packages; .ci/run installs them)"]
async fn finance_reads_the_breakage_of_expired_cards_and_its_csv() {
    let app = TestApp::spawn().await;
    let taking = app
        .program(json!({"name": "Takes", "currency": "USD", "expiry_months": 60, "breakage_on_expiry": true}))
        .await;
    let keeping = app
        .program(json!({"name": "Keeps", "currency": "USD", "expiry_months": 60}))
        .await;
    for (program, amount) in [(&taking, 2_500), (&taking, 1_000), (&keeping, 4_000)] {
        app.card(program, amount).await;
    }
    // Sixty months and a day later the sweeper expires them.
    app.clock.advance_seconds((5 * 366 + 1) * 24 * 3600);
    assert_eq!(app.service.expire_due_cards().await.unwrap(), 2);
    let temporary = invite(&app, "finance@example.com", "finance").await;
    let browser = Browser::start().await;
    browser.sign_in(&app, "finance@example.com", &temporary).await;
    browser.goto(&app, "/console/reports/breakage").await;
    let page = browser.page().await;
    assert!(page.contains(&taking) && !page.contains(&keeping), "{page}");
    assert_eq!(browser.text("#breakage-total-1").await, "35.00 USD");
    browser.screenshot("breakage").await;
    let csv = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             fetch('/console/reports/breakage.csv').then(r => r.text()).then(done, e => done('failed: ' + e));",
            vec![],
        )
        .await
        .expect("the CSV");
    let csv = csv.as_str().expect("text").to_owned();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "from,to,program_id,currency,cards,breakage_minor");
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].ends_with(&format!(",{taking},USD,2,3500")), "{csv}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver (Debian's packages; .ci/run installs them)"]
async fn finance_reads_the_dormant_report_and_its_csv_agrees_with_the_api() {
    let app = TestApp::spawn().await;
    let sleeping = a_card(&app, "USD", 1234).await;
    let empty = a_card(&app, "USD", 500).await;
    app.post(&format!("/v1/cards/{empty}/redeem"), json!({"amount": 500}))
        .await
        .assert_status(200);
    // Thirteen months later a third card is made and used: it is not dormant.
    app.clock.advance_seconds(396 * 24 * 3600);
    let busy = a_card(&app, "USD", 700).await;
    let temporary = invite(&app, "finance@example.com", "finance").await;
    let browser = Browser::start().await;
    browser.sign_in(&app, "finance@example.com", &temporary).await;

    browser.goto(&app, "/console/reports/dormant").await;
    let page = browser.page().await;
    assert!(page.contains(&sleeping), "{page}");
    assert!(!page.contains(&empty) && !page.contains(&busy));
    assert!(page.contains("12.34 USD"));
    browser.screenshot("dormant").await;
    browser.fill("#months", "24").await;
    browser
        .click("form[action='/console/reports/dormant'] button", "Show")
        .await;
    assert_eq!(browser.text("#none").await, "No dormant card.");

    let api = app.get("/v1/reports/dormant?months=12").await;
    api.assert_status(200);
    // Downloaded by the browser, with its session.
    let csv = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             fetch('/console/reports/dormant.csv?months=12').then(r => r.text()).then(done, e => done('failed: ' + e));",
            vec![],
        )
        .await
        .expect("the CSV");
    let csv = csv.as_str().expect("text").to_owned();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].starts_with("as_of,months,card_id"));
    assert!(lines[1].contains(&format!(",{sleeping},")));
    assert!(lines[1].contains(&format!(",{},", api.body["data"][0]["balance"])));
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver (Debian's packages; .ci/run installs them)"]
async fn a_developer_adds_a_webhook_endpoint_sees_an_events_deliveries_and_retries_one() {
    let (app, browser) = signed_in_browser("dev@example.com", "developer").await;
    browser.goto(&app, "/console/webhooks").await;
    // Nothing listens on port 9: every attempt fails and the delivery waits for its next one.
    browser.fill("#endpoint_url", "http://127.0.0.1:9/hook").await;
    browser.submit("/console/webhooks").await;
    assert!(
        browser.page().await.contains("new-secret"),
        "{}",
        browser.page().await
    );
    let secret = browser.text("#new-secret").await;
    assert!(!secret.is_empty());
    let endpoints = app.get("/v1/webhook_endpoints").await;
    assert_eq!(endpoints.body["data"][0]["url"], "http://127.0.0.1:9/hook");
    assert_eq!(
        endpoints.body["data"][0]["event_types"].as_array().map(Vec::len),
        Some(12),
        "every event type but card.low_balance (which needs a threshold), as the form checks them"
    );

    let card_id = a_card(&app, "USD", 500).await;
    app.post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 100}))
        .await
        .assert_status(200);
    browser.goto(&app, "/console/webhooks").await;
    browser
        .click("a[href^='/console/webhooks/events/']", "an event listed")
        .await;
    assert!(
        browser.page().await.contains("card.redeemed"),
        "{}",
        browser.page().await
    );
    browser.screenshot("webhook-event").await;
    browser
        .click(
            "form[action$='/retry'] button",
            "a retry button for the undelivered delivery",
        )
        .await;
    assert_eq!(browser.text("p.notice").await, "Delivery scheduled again now.");

    // Disabled from the console, the endpoint is disabled for the API too.
    browser.goto(&app, "/console/webhooks").await;
    browser
        .click(
            "button[aria-label='Disable http://127.0.0.1:9/hook']",
            "a disable button",
        )
        .await;
    assert_eq!(
        browser.text("p.notice").await,
        "Endpoint disabled: nothing more is sent to it."
    );
    assert_eq!(
        app.get("/v1/webhook_endpoints").await.body["data"][0]["enabled"],
        false
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver (Debian's packages; .ci/run installs them)"]
async fn an_admin_finds_a_checkout_sees_its_tenders_and_refunds_part_of_it() {
    let (app, browser) = signed_in_browser("admin@example.com", "admin").await;
    let card_id = a_card(&app, "USD", 3_000).await;
    let checkout = app
        .post(
            "/v1/checkouts",
            json!({"amount": 2_000, "currency": "USD", "intent": "capture", "reference": "order-9",
                   "gift_cards": [{"card_id": card_id, "amount": 2_000}]}),
        )
        .await;
    checkout.assert_status(201);
    let checkout_id = checkout.body["id"].as_str().expect("a checkout").to_owned();
    browser.goto(&app, "/console/checkouts").await;
    browser.fill("#checkout_id", &checkout_id).await;
    browser.submit("/console/checkouts").await;
    assert_eq!(browser.text("#checkout-status").await, "captured");
    assert_eq!(browser.text("#refundable").await, "20.00 USD");
    assert!(
        browser.page().await.contains(&card_id),
        "the tender names its card"
    );
    browser.fill("#refund_amount", "5").await;
    browser
        .submit(&format!("/console/checkouts/{checkout_id}/refund"))
        .await;
    assert_eq!(
        browser.text("p.notice").await,
        "Refunded: the value is back where it came from."
    );
    assert_eq!(browser.text("#refundable").await, "15.00 USD");
    browser.screenshot("checkout").await;
    assert_eq!(
        app.get(&format!("/v1/cards/{card_id}")).await.body["balance"],
        1_500
    );
    // The list of checkouts shows it, newest first, and opens it.
    browser.goto(&app, "/console/checkouts").await;
    let row = browser.text("#latest-checkouts tbody tr").await;
    assert!(
        row.contains(&checkout_id) && row.contains("captured") && row.contains("15.00 USD"),
        "{row}"
    );
    browser
        .click(
            &format!("a[href='/console/checkouts?checkout_id={checkout_id}']"),
            "the checkout listed",
        )
        .await;
    assert_eq!(browser.text("#refundable").await, "15.00 USD");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver (Debian's packages; .ci/run installs them)"]
async fn a_viewer_is_refused_a_freeze_and_an_idle_session_ends() {
    let (app, browser) = signed_in_browser("viewer@example.com", "viewer").await;
    let card_id = a_card(&app, "EUR", 500).await;
    browser.goto(&app, &format!("/console/cards/{card_id}")).await;
    assert_eq!(browser.text("#balance").await, "5.00 EUR");
    browser.submit(&format!("/console/cards/{card_id}/freeze")).await;
    assert!(
        browser.text("#refusal").await.contains("role"),
        "{}",
        browser.page().await
    );
    assert_eq!(
        app.get(&format!("/v1/cards/{card_id}")).await.body["state"],
        "active"
    );

    // Fifteen minutes without a request end the session: the next page asks to sign in.
    app.clock.advance_seconds(16 * 60);
    browser.goto(&app, &format!("/console/cards/{card_id}")).await;
    assert_eq!(browser.path().await, "/console/sign_in");
    browser.close().await;
}

/// The console's session cookie from a sign-in answer, and the page's form token.
/// The form token in a console page's HTML.
fn form_token_of(html: &str) -> String {
    html.split("name=\"form_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form token")
        .to_owned()
}

async fn signed_in_without_a_browser(app: &TestApp, email: &str, role: &str) -> (String, String) {
    let temporary = invite(app, email, role).await;
    let session = app
        .post("/v1/sessions", json!({"email": email, "password": temporary}))
        .await;
    let token = session.body["token"].as_str().expect("a token").to_owned();
    app.post_as(
        "/v1/staff/me/password",
        json!({"current_password": temporary, "new_password": NEW_PASSWORD}),
        &token,
        None,
    )
    .await
    .assert_status(200);
    let page = app
        .client
        .get(app.url("/console/cards"))
        .header("cookie", format!("giftd_console={token}"))
        .send()
        .await
        .expect("the page");
    let html = page.text().await.expect("HTML");
    let form_token = form_token_of(&html);
    (token, form_token)
}

#[tokio::test]
async fn every_console_answer_forbids_framing_inline_script_and_caching() {
    let app = TestApp::spawn().await;
    for path in ["/console/sign_in", "/console"] {
        let response = app.client.get(app.url(path)).send().await.expect("an answer");
        let headers = response.headers();
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(
            policy.starts_with("default-src 'none'") && !policy.contains("unsafe-inline"),
            "{policy}"
        );
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    let sign_in = app
        .client
        .get(app.url("/console/sign_in"))
        .send()
        .await
        .expect("a page");
    let cookie = sign_in.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP: a browser would drop a Secure cookie"
    );
}

#[tokio::test]
async fn a_sign_in_posted_without_its_sign_in_cookie_is_refused() {
    let app = TestApp::spawn().await;
    let temporary = invite(&app, "clerk@example.com", "support").await;
    // The sign-in page sets a cookie that its form's token is bound to.
    let page = app
        .client
        .get(app.url("/console/sign_in"))
        .send()
        .await
        .expect("the page");
    assert!(page.headers().get("set-cookie").is_some());
    let html = page.text().await.expect("HTML");
    let form_token = form_token_of(&html);
    let response = app
        .client
        .post(app.url("/console/sign_in"))
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            reqwest::Url::parse_with_params(
                "http://form.invalid/",
                [
                    ("form_token", form_token.as_str()),
                    ("email", "clerk@example.com"),
                    ("password", temporary.as_str()),
                ],
            )
            .expect("a form")
            .query()
            .unwrap_or_default()
            .to_owned(),
        )
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 403);
    assert!(response.headers().get("set-cookie").is_none(), "no session");
}

#[tokio::test]
async fn a_form_from_another_site_or_without_the_sessions_token_changes_nothing() {
    let app = TestApp::spawn().await;
    let card_id = a_card(&app, "USD", 500).await;
    let (session, form_token) = signed_in_without_a_browser(&app, "admin@example.com", "admin").await;
    let freeze = app.url(&format!("/console/cards/{card_id}/freeze"));
    let attempts = [
        ("same-origin", "not-the-token".to_owned()),
        ("cross-site", form_token.clone()),
        ("same-site", form_token.clone()),
    ];
    for (site, token) in attempts {
        let response = app
            .client
            .post(&freeze)
            .header("cookie", format!("giftd_console={session}"))
            .header("sec-fetch-site", site)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("form_token={token}"))
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), 403, "{site}");
        assert_eq!(
            app.get(&format!("/v1/cards/{card_id}")).await.body["state"],
            "active"
        );
    }
    // The console's own form does it.
    let response = app
        .client
        .post(&freeze)
        .header("cookie", format!("giftd_console={session}"))
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("form_token={form_token}"))
        .send()
        .await
        .expect("an answer");
    assert!(
        response.status().is_success() || response.status().is_redirection(),
        "{}",
        response.status()
    );
    assert_eq!(
        app.get(&format!("/v1/cards/{card_id}")).await.body["state"],
        "frozen"
    );
}
