//! Property tests of the wire parsers over HTTP, one per front-end that reads amounts or card
//! numbers off the wire: the Adyen Terminal API (`POST /sync` with a `SaleToPOIRequest`), the
//! Clover facade (amounts as JSON integers or digit strings), the Adyen Stored Value API (amounts
//! in minor units, card numbers and security codes in `paymentMethod`) and the native API.
//!
//! Each test starts the whole app on port 0 with a fresh SQLite database and a funded card,
//! then sends [`HTTP_CASES`] generated requests: a valid request of the front-end with one to
//! [`MAX_MUTATIONS`] of its fields (or the whole body) replaced by random text, huge, negative
//! and fractional numbers, Unicode, JSON of the wrong type, deep nesting or broken JSON, fields
//! removed or added, and sometimes the bytes truncated or spliced. Every answer must come, must
//! not be a 5xx and must be JSON; afterwards the server still answers a valid request and the
//! ledger verifies. A failing case is shrunk and saved in `fuzz_wire.proptest-regressions`.
//!
//! The pure parsers behind these front-ends have their own properties, with many more cases,
//! in `crates/domain/tests/wire_parsers.rs` and `crates/api/tests/wire_parsers.rs`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use giftd_testkit::TestApp;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use serde_json::{Value, json};

/// Generated requests per front-end: enough to reach every template with every kind of
/// mutation, while the four tests together stay well under a minute in a debug build (one to two
/// seconds each on a 2-core machine).
const HTTP_CASES: u32 = 500;
/// Shrinking a failure resends requests; this bounds how long a failing run takes.
const MAX_SHRINK_ITERATIONS: u32 = 200;
/// Most fields of one valid request replaced, removed or added in one case.
const MAX_MUTATIONS: usize = 3;
/// Deepest nesting generated: far past serde_json's recursion limit (128), which must refuse it
/// before any stack runs out.
const MAX_NESTING: usize = 1_000;
/// Every front-end's body limit (`giftd_api::guard::DEFAULT_MAX_BODY_BYTES`); a generated string
/// may be a little longer, to meet the limit too.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long one answer may take before the case fails as "the server stopped answering".
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a case's body a failure shows.
const SHOWN_BODY_BYTES: usize = 600;
/// Long enough for a card number locked by wrong security codes to be unlocked again.
const LOCKOUT_SECONDS: i64 = giftd_domain::lockout::LOCK_MILLIS / 1000 + 1;
/// Value of the cards the tests spend, in minor units: large (just under the default ceiling a
/// card may hold), so that most generated spends find funds and reach the ledger.
const CARD_VALUE_MINOR: i64 = 90_000_000;

// ---------------------------------------------------------------------------------------------
// What a case is made of.
// ---------------------------------------------------------------------------------------------

/// One request a front-end takes: where it goes, the header carrying the API key, and a body
/// that would be accepted (or refused only by a business rule).
#[derive(Debug, Clone)]
struct Template {
    path: String,
    auth: (&'static str, String),
    body: Value,
}

/// What to do to one node of a valid body (the root included). Values are raw JSON text, so
/// that they can be what no `serde_json::Value` holds: broken JSON, numbers past `f64`.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(String),
    Remove,
    /// An unknown key next to it (or an extra item, in an array).
    AddSibling(String, String),
}

/// What to do to the bytes of the body after its fields were mutated.
#[derive(Debug, Clone)]
enum ByteMutation {
    Truncate(Index),
    Splice {
        at: Index,
        remove: usize,
        insert: Vec<u8>,
    },
}

/// Which node of a valid body a mutation goes to.
#[derive(Debug, Clone)]
enum Target {
    /// Any node, the root and the containers included.
    Any(Index),
    /// One of the fields named in [`FOCUS_FIELDS`], when the body has any.
    Focus(Index),
}

#[derive(Debug, Clone)]
struct Case {
    template: Index,
    mutations: Vec<(Target, Mutation)>,
    bytes: Option<ByteMutation>,
}

/// The fields this test is about (amounts, currencies, card numbers, security codes, and what
/// names them), in every front-end's spelling: half of the mutations go to one of them.
const FOCUS_FIELDS: &[&str] = &[
    "amount",
    "value",
    "currency",
    "number",
    "security_code",
    "securityCode",
    "source",
    "gift_card",
    "paymentMethod",
    "RequestedAmount",
    "ItemAmount",
    "ReversedAmount",
    "TipAmount",
    "Currency",
    "StoredValueID",
    "SecurityCode",
    "StoredValueAccountID",
    "SaleToAcquirerData",
];

/// Text that is not quite JSON, or JSON that parsers often get wrong.
const MALFORMED: &[&str] = &[
    "",
    "\"",
    "\"unterminated",
    "tru",
    "nul",
    "NaN",
    "Infinity",
    "-Infinity",
    "-",
    "01",
    "1.",
    ".5",
    "+1",
    "0x10",
    "1e",
    "1e+",
    "-0",
    "-0.0",
    "0e0",
    "1E400",
    "-1e-400",
    "123456789012345678901234567890.123456789",
    "18446744073709551616",
    "-9223372036854775809",
    "9223372036854775807",
    "9223372036854775808",
    "\"\\ud800\"",
    "\"\\udc00\\ud800\"",
    "\"\\u00\"",
    "\"\\x41\"",
    "'single'",
    "}",
    "]",
    "{",
    "[",
    ",",
    ":",
    "\"a\":1",
    "1 2",
    "\u{0}",
    "\"\u{1}\"",
    "\u{feff}1",
    "\"\u{202e}1\"",
    "[1,]",
    "{\"a\":1,}",
    "{\"a\":1,\"a\":2}",
];

/// JSON number texts of every shape: signs, fractions, exponents, more digits than 64 bits,
/// and what `f64` prints (`NaN`, `inf`: not JSON at all).
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9]{1,30}(\\.[0-9]{1,30})?([eE][+-]?[0-9]{1,4})?",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        "[0-9]{19,400}",
    ]
}

/// Any JSON value, a few levels deep, its leaves weighted towards amounts and card numbers.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        number_text().prop_filter_map("a JSON number", |text| serde_json::from_str::<Value>(&text).ok()),
        any::<String>().prop_map(Value::String),
        "[0-9]{0,25}".prop_map(Value::String),
        "[0-9٠-٩０-９]{1,22}".prop_map(Value::String),
        number_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[A-Za-z]{0,8}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Values a field of the right type could hold, so that a good share of the cases get past
/// the parsers to the business rules: small and boundary integers, decimals, digit strings.
fn plausible_value() -> impl Strategy<Value = String> {
    prop_oneof![
        (0i64..=100_000).prop_map(|n| n.to_string()),
        "[0-9]{1,6}\\.[0-9]{1,3}",
        "\"[0-9]{1,22}\"",
        "\"[0-9]{1,6}(\\.[0-9]{1,3})?\"",
        prop::sample::select(vec![
            i64::MAX.to_string(),
            i64::MIN.to_string(),
            u64::MAX.to_string(),
            "0".to_owned(),
            "-1".to_owned(),
            "true".to_owned(),
            "null".to_owned(),
            "\"\"".to_owned(),
            // Around `i64::MAX` minor units of a 2-decimal currency, and the smallest amounts.
            "92233720368547758.07".to_owned(),
            "92233720368547758.08".to_owned(),
            "0.01".to_owned(),
            "0.001".to_owned(),
        ]),
    ]
}

/// Raw JSON text (or not quite JSON) to put where a field was.
fn wire_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => plausible_value(),
        4 => json_value().prop_map(|value| value.to_string()),
        4 => number_text(),
        2 => prop::sample::select(MALFORMED).prop_map(str::to_owned),
        2 => any::<String>().prop_map(|text| Value::String(text).to_string()),
        1 => (1..=MAX_NESTING).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
        1 => (1..=MAX_NESTING).prop_map(|n| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n))),
        1 => (0..=MAX_BODY_BYTES + 16).prop_map(|n| format!("\"{}\"", "9".repeat(n))),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => wire_value().prop_map(Mutation::Replace),
        1 => Just(Mutation::Remove),
        1 => ("[A-Za-z_]{1,12}", wire_value()).prop_map(|(key, value)| Mutation::AddSibling(key, value)),
    ]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        any::<Index>().prop_map(Target::Any),
        any::<Index>().prop_map(Target::Focus),
    ]
}

fn byte_mutation() -> impl Strategy<Value = ByteMutation> {
    prop_oneof![
        any::<Index>().prop_map(ByteMutation::Truncate),
        (
            any::<Index>(),
            0usize..8,
            prop::collection::vec(any::<u8>(), 0..8)
        )
            .prop_map(|(at, remove, insert)| ByteMutation::Splice { at, remove, insert }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<Index>(),
        // One mutation most often, so that many cases stay close enough to valid to reach
        // the business rules.
        prop_oneof![
            3 => prop::collection::vec((target(), mutation()), 1..=1),
            1 => prop::collection::vec((target(), mutation()), 2..=MAX_MUTATIONS),
        ],
        prop::option::weighted(0.2, byte_mutation()),
    )
        .prop_map(|(template, mutations, bytes)| Case {
            template,
            mutations,
            bytes,
        })
}

// ---------------------------------------------------------------------------------------------
// Building a request from a case.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// The path of every node of `value`, the root (an empty path) first.
fn paths(value: &Value) -> Vec<Vec<Step>> {
    fn walk(value: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        out.push(prefix.clone());
        match value {
            Value::Object(map) => {
                for (key, item) in map {
                    prefix.push(Step::Key(key.clone()));
                    walk(item, prefix, out);
                    prefix.pop();
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    prefix.push(Step::Index(i));
                    walk(item, prefix, out);
                    prefix.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

fn node_mut<'a>(value: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(value, |node, step| match step {
        Step::Key(key) => &mut node[key.as_str()],
        Step::Index(i) => &mut node[*i],
    })
}

/// The body of `template` with the case's mutations: each replaced or added node first holds a
/// unique placeholder string, which the raw text takes the place of once the body is written.
fn mutated_body(template: &Value, case: &Case) -> Vec<u8> {
    let mut body = template.clone();
    let mut raw = Vec::new();
    let mut removed_root = false;
    for (i, (target, mutation)) in case.mutations.iter().enumerate() {
        let placeholder = format!("\u{1}fuzz {i}\u{1}");
        let all = paths(&body);
        let focused: Vec<_> = all
            .iter()
            .filter(
                |path| matches!(path.last(), Some(Step::Key(key)) if FOCUS_FIELDS.contains(&key.as_str())),
            )
            .collect();
        let path = match target {
            Target::Focus(which) if !focused.is_empty() => (*which.get(&focused)).clone(),
            Target::Focus(which) | Target::Any(which) => which.get(&all).clone(),
        };
        match (mutation, path.split_last()) {
            (Mutation::Replace(text), _) => {
                *node_mut(&mut body, &path) = Value::String(placeholder.clone());
                raw.push((placeholder, text));
            }
            (Mutation::Remove, None) => removed_root = true,
            (Mutation::Remove, Some((last, parent))) => match (node_mut(&mut body, parent), last) {
                (Value::Object(map), Step::Key(key)) => {
                    map.remove(key);
                }
                (Value::Array(items), Step::Index(i)) => {
                    items.remove(*i);
                }
                _ => {}
            },
            (Mutation::AddSibling(key, text), _) => {
                let parent = path.split_last().map_or(&[][..], |(_, parent)| parent);
                match node_mut(&mut body, parent) {
                    Value::Object(map) => {
                        map.insert(key.clone(), Value::String(placeholder.clone()));
                    }
                    Value::Array(items) => items.push(Value::String(placeholder.clone())),
                    _ => continue,
                }
                raw.push((placeholder, text));
            }
        }
    }
    if removed_root {
        return Vec::new();
    }
    let mut text = body.to_string();
    for (placeholder, value) in raw {
        let quoted = Value::String(placeholder).to_string();
        text = text.replacen(&quoted, value, 1);
    }
    let mut bytes = text.into_bytes();
    match &case.bytes {
        None => {}
        Some(ByteMutation::Truncate(at)) => bytes.truncate(at.index(bytes.len() + 1)),
        Some(ByteMutation::Splice { at, remove, insert }) => {
            let start = at.index(bytes.len() + 1);
            let end = (start + remove).min(bytes.len());
            bytes.splice(start..end, insert.iter().copied());
        }
    }
    bytes
}

// ---------------------------------------------------------------------------------------------
// Running a front-end's cases.
// ---------------------------------------------------------------------------------------------

/// The app of one test with its own runtime: the property runner is synchronous, so each case
/// blocks on its request. Fields drop in order: the app (and its server task) before the
/// runtime that runs them.
struct Harness {
    app: TestApp,
    runtime: tokio::runtime::Runtime,
}

impl Harness {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        // Without the lookup rate limits: thousands of card lookups a minute is the point here,
        // and a 429 would hide the parsers behind it.
        let config = giftd_api::ApiConfig {
            rate_limits: giftd_api::RateLimits {
                per_key: 0,
                per_address: 0,
                ..giftd_api::RateLimits::default()
            },
            ..giftd_api::ApiConfig::default()
        };
        let app = runtime.block_on(TestApp::spawn_with(config));
        Self { app, runtime }
    }

    /// Sends `body` as `template`'s request; the answer's status and text, or why none came.
    async fn send(app: &TestApp, template: &Template, body: Vec<u8>) -> Result<(u16, String), String> {
        let response = app
            .client
            .post(app.url(&template.path))
            .header(template.auth.0, &template.auth.1)
            .header("content-type", "application/json")
            .timeout(ANSWER_TIMEOUT)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| format!("no body: {e}"))?;
        Ok((status, text))
    }

    /// Sends [`HTTP_CASES`] mutations of `templates`, `fresh` giving each body what must differ
    /// from case to case (the Terminal API's ServiceID). Every answer must come, be below 500
    /// and be JSON. Then, once any lockout the wrong security codes caused has passed, the
    /// server must still answer `probe` (a valid request) with a 200 that `succeeded` accepts,
    /// and the ledger must verify.
    fn fuzz(
        &self,
        name: &str,
        templates: &[Template],
        fresh: impl Fn(&mut Value, u64),
        probe: &Template,
        succeeded: fn(&Value) -> bool,
    ) {
        let started = Instant::now();
        let counter = AtomicU64::new(0);
        let statuses = RefCell::new(BTreeMap::<u16, u32>::new());
        let mut runner = TestRunner::new(Config {
            cases: HTTP_CASES,
            max_shrink_iters: MAX_SHRINK_ITERATIONS,
            source_file: Some(file!()),
            // Next to this file, as `proptest!` keeps them for tests outside `src`.
            failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
                "proptest-regressions",
            ))),
            ..Config::default()
        });
        let result = runner.run(&case(), |case| {
            let mut template = case.template.get(templates).clone();
            fresh(&mut template.body, counter.fetch_add(1, Ordering::Relaxed));
            let body = mutated_body(&template.body, &case);
            let shown = String::from_utf8_lossy(&body[..body.len().min(SHOWN_BODY_BYTES)]).into_owned();
            let (status, text) = self
                .runtime
                .block_on(Self::send(&self.app, &template, body))
                .map_err(|why| TestCaseError::fail(format!("POST {}: {why}; body {shown}", template.path)))?;
            *statuses.borrow_mut().entry(status).or_default() += 1;
            prop_assert!(
                status < 500,
                "POST {} answered {status} {text}; body {shown}",
                template.path
            );
            prop_assert!(
                serde_json::from_str::<Value>(&text).is_ok(),
                "POST {} answered {status} with a body that is not JSON: {text:?}; body {shown}",
                template.path
            );
            Ok(())
        });
        if let Err(failure) = result {
            panic!("{name}: {failure}");
        }
        self.app.clock.advance_seconds(LOCKOUT_SECONDS);
        self.runtime.block_on(async {
            let health = self.app.send(self.app.client.get(self.app.url("/healthz"))).await;
            assert_eq!(
                health.status.as_u16(),
                200,
                "{name}: /healthz after the cases: {}",
                health.text
            );
            let mut probe = probe.clone();
            fresh(&mut probe.body, counter.fetch_add(1, Ordering::Relaxed));
            let answer = Self::send(&self.app, &probe, probe.body.to_string().into_bytes()).await;
            let accepted = answer.as_ref().is_ok_and(|(status, text)| {
                *status == 200 && serde_json::from_str(text).is_ok_and(|body: Value| succeeded(&body))
            });
            assert!(accepted, "{name}: a valid request after the cases: {answer:?}");
            TestApp::assert_sound(&self.app.verify().await);
        });
        eprintln!(
            "{name}: {HTTP_CASES} cases in {:.1?}, statuses {:?}",
            started.elapsed(),
            statuses.borrow()
        );
    }
}

fn no_fresh(_: &mut Value, _: u64) {}

// ---------------------------------------------------------------------------------------------
// Set-up through the native API.
// ---------------------------------------------------------------------------------------------

async fn program(app: &TestApp, currency: &str, extra: Value) -> String {
    let mut body = json!({"name": format!("Fuzz {currency}"), "currency": currency});
    for (key, value) in extra.as_object().expect("an object") {
        body[key] = value.clone();
    }
    app.program(body).await
}

/// Imports a card with this number and code on `program_id` and activates it with
/// [`CARD_VALUE_MINOR`]; its id.
async fn active_card(app: &TestApp, program_id: &str, number: &str, security_code: &str) -> String {
    let response = app
        .post(
            "/v1/cards",
            json!({"program_id": program_id, "kind": "physical", "number": number, "security_code": security_code}),
        )
        .await;
    response.assert_status(201);
    let card_id = response.body["id"].as_str().expect("a card id").to_owned();
    app.post(
        &format!("/v1/cards/{card_id}/activate"),
        json!({"amount": CARD_VALUE_MINOR}),
    )
    .await
    .assert_status(200);
    card_id
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a string, not {value}"))
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// The front-ends.
// ---------------------------------------------------------------------------------------------

const TERMINAL_CARD: &str = "6036280000000000000";
const TERMINAL_PIN: &str = "1234";

fn terminal_message(category: &str, request: Value) -> Value {
    let mut message = json!({"SaleToPOIRequest": {
        "MessageHeader": {
            "ProtocolVersion": "3.0", "MessageClass": "Service", "MessageCategory": category,
            "MessageType": "Request", "ServiceID": "1", "SaleID": "POSSystemID12345", "POIID": "V400m-324688179"
        }
    }});
    message["SaleToPOIRequest"][format!("{category}Request")] = request;
    message
}

fn terminal_account(with_pin: bool) -> Value {
    let mut account = json!({
        "StoredValueAccountType": "GiftCard", "StoredValueProvider": "givex", "IdentificationType": "PAN",
        "EntryMode": ["Scanned"], "StoredValueID": TERMINAL_CARD
    });
    if with_pin {
        account["SecurityCode"] = json!(TERMINAL_PIN);
    }
    account
}

fn stored_value_item(kind: &str, amount: Option<Value>) -> Value {
    let mut item = json!({
        "StoredValueTransactionType": kind, "StoredValueAccountID": terminal_account(false),
        "ProductCode": "SVC", "Currency": "EUR"
    });
    if let Some(amount) = amount {
        item["ItemAmount"] = amount;
    }
    item
}

#[test]
fn terminal_api_messages_with_mutated_fields_never_get_a_5xx_and_the_server_keeps_answering() {
    let harness = Harness::start();
    let app = &harness.app;
    let key = app.api_key.clone();
    let original = harness.runtime.block_on(async {
        let program_id = program(app, "EUR", json!({})).await;
        active_card(app, &program_id, TERMINAL_CARD, TERMINAL_PIN).await;
        // A payment to reverse: its POITransactionID.
        let payment = terminal_message(
            "Payment",
            json!({
                "PaymentTransaction": {"AmountsReq": {"Currency": "EUR", "RequestedAmount": 1.00}},
                "PaymentData": {"PaymentType": "Normal", "PaymentInstrumentData": {
                    "PaymentInstrumentType": "StoredValue", "StoredValueAccountID": terminal_account(false)}}
            }),
        );
        let answer = app
            .send(app.client.post(app.url("/sync")).header("x-api-key", &key).json(&payment))
            .await;
        answer.assert_status(200);
        text(&answer.body["SaleToPOIResponse"]["PaymentResponse"]["POIData"]["POITransactionID"]["TransactionID"])
    });
    let sale_data = json!({
        "SaleTransactionID": {"TransactionID": "27908", "TimeStamp": "2019-03-22T09:44:56+00:00"},
        "SaleReferenceID": "ORDER-1001",
        "SaleToAcquirerData": "tenderOption=AllowPartialAuthorisation"
    });
    let original_transaction = json!({"POITransactionID": {
        "TransactionID": original, "TimeStamp": "2024-01-01T00:00:00.000Z"}});
    let bodies = [
        terminal_message(
            "BalanceInquiry",
            json!({"PaymentAccountReq": {"PaymentInstrumentData": {
                "PaymentInstrumentType": "StoredValue", "StoredValueAccountID": terminal_account(true)}}}),
        ),
        terminal_message(
            "Payment",
            json!({
                "SaleData": sale_data,
                "PaymentTransaction": {"AmountsReq": {"Currency": "EUR", "RequestedAmount": 25.99}},
                "PaymentData": {"PaymentType": "Normal", "PaymentInstrumentData": {
                    "PaymentInstrumentType": "StoredValue", "StoredValueAccountID": terminal_account(false)}}
            }),
        ),
        terminal_message(
            "Payment",
            json!({
                "SaleData": sale_data,
                "PaymentTransaction": {"AmountsReq": {"Currency": "EUR", "RequestedAmount": 15.00, "TipAmount": 0}},
                "PaymentData": {"PaymentType": "Refund", "PaymentInstrumentData": {
                    "PaymentInstrumentType": "StoredValue", "StoredValueAccountID": terminal_account(true)}}
            }),
        ),
        terminal_message(
            "StoredValue",
            json!({"SaleData": sale_data, "StoredValueData": [
                stored_value_item("Load", Some(json!(10))),
                stored_value_item("Unload", Some(json!("0.05"))),
            ]}),
        ),
        terminal_message(
            "StoredValue",
            json!({"SaleData": sale_data, "StoredValueData": [{
                "StoredValueTransactionType": "Reverse", "OriginalPOITransaction": original_transaction,
                "ItemAmount": 0.5, "Currency": "EUR"
            }]}),
        ),
        terminal_message(
            "Reversal",
            json!({"OriginalPOITransaction": original_transaction, "ReversedAmount": 0.25, "ReversalReason": "MerchantCancel"}),
        ),
    ];
    let templates: Vec<Template> = bodies
        .into_iter()
        .map(|body| Template {
            path: "/sync".into(),
            auth: ("x-api-key", key.clone()),
            body,
        })
        .collect();
    // Each case gets a ServiceID of its own, so that it is processed instead of replayed.
    let fresh = |body: &mut Value, case: u64| {
        if let Some(header) = body.pointer_mut("/SaleToPOIRequest/MessageHeader") {
            header["ServiceID"] = json!(format!("f{case:x}"));
        }
    };
    let probe = templates[0].clone();
    harness.fuzz("Terminal API", &templates, fresh, &probe, |body| {
        body["SaleToPOIResponse"]["BalanceInquiryResponse"]["Response"]["Result"] == "Success"
    });
}

#[test]
fn clover_requests_with_mutated_fields_never_get_a_5xx_and_the_server_keeps_answering() {
    const NUMBER: &str = "98765441066";
    const SECURITY_CODE: &str = "785577";
    let harness = Harness::start();
    let app = &harness.app;
    let bearer = ("authorization", format!("Bearer {}", app.api_key));
    let (token, charge, lock) = harness.runtime.block_on(async {
        let program_id = program(
            app,
            "USD",
            json!({"promotion_code": "67063", "expiry_months": 60}),
        )
        .await;
        active_card(app, &program_id, NUMBER, SECURITY_CODE).await;
        let token = app
            .send(
                app.client
                    .post(app.url("/clover/v1/tokens"))
                    .header("apiKey", &app.api_key)
                    .json(&json!({"gift_card": {"number": NUMBER, "security_code": SECURITY_CODE}})),
            )
            .await;
        token.assert_status(200);
        let token = text(&token.body["id"]);
        let mut charges = Vec::new();
        for capture in [true, false] {
            let charge = app
                .send(
                    app.client
                        .post(app.url("/clover/v1/charges"))
                        .header(bearer.0, &bearer.1)
                        .json(
                            &json!({"source": token, "amount": 100, "currency": "usd", "capture": capture}),
                        ),
                )
                .await;
            charge.assert_status(200);
            charges.push(text(&charge.body["id"]));
        }
        (token, charges[0].clone(), charges[1].clone())
    });
    let template = |path: String, body: Value| Template {
        path: format!("/clover{path}"),
        auth: bearer.clone(),
        body,
    };
    let templates = vec![
        Template {
            auth: ("apikey", app.api_key.clone()),
            ..template(
                "/v1/tokens".into(),
                json!({"gift_card": {"number": NUMBER, "security_code": SECURITY_CODE, "foreign_access_code": "67755"}}),
            )
        },
        template(
            "/v1/activate".into(),
            json!({"promotion_code": "67063", "amount": 2000, "currency": "usd"}),
        ),
        template(
            "/v1/reload".into(),
            json!({"source": token, "amount": "500", "currency": "usd"}),
        ),
        template("/v1/balance_inquiry".into(), json!({"source": token})),
        template(
            "/v1/charges".into(),
            json!({"source": token, "amount": 100, "currency": "usd", "capture": "true",
                "partial_redemption": "true", "return_gateway_response": "true"}),
        ),
        template(
            "/v1/charges".into(),
            json!({"source": token, "amount": "250", "currency": "USD", "capture": false, "partial_redemption": "false"}),
        ),
        template(format!("/v1/charges/{lock}/capture"), json!({"amount": "50"})),
        template(
            "/v1/refunds".into(),
            json!({"charge": charge, "amount": 10, "reason": "requested_by_customer"}),
        ),
    ];
    let probe = templates[3].clone();
    harness.fuzz("Clover", &templates, no_fresh, &probe, |body| {
        body["gift_card"]["new_balance"].is_i64()
    });
}

#[test]
fn stored_value_api_requests_with_mutated_fields_never_get_a_5xx_and_the_server_keeps_answering() {
    const NUMBER: &str = "6006491286999921374";
    const SECURITY_CODE: &str = "1111";
    const MERGE_SOURCE: &str = "7777182708544835";
    let harness = Harness::start();
    let app = &harness.app;
    let key = app.api_key.clone();
    let sv = |operation: &str, body: Value| Template {
        path: format!("/pal/servlet/StoredValue/v46/{operation}"),
        auth: ("x-api-key", key.clone()),
        body,
    };
    let method = |number: &str, code: &str| json!({"type": "svs", "number": number, "securityCode": code});
    let amount = json!({"currency": "USD", "value": 2000});
    let load = sv(
        "load",
        json!({"amount": amount, "loadType": "merchandiseReturn", "merchantAccount": "MERCHANT",
            "store": "STORE", "paymentMethod": method(NUMBER, SECURITY_CODE), "reference": "REF-1"}),
    );
    let original = harness.runtime.block_on(async {
        let program_id = program(app, "USD", json!({"promotion_code": "1324"})).await;
        active_card(app, &program_id, NUMBER, SECURITY_CODE).await;
        active_card(app, &program_id, MERGE_SOURCE, "2329").await;
        // A load to void: its pspReference.
        let answer = Harness::send(app, &load, load.body.to_string().into_bytes()).await;
        let (status, text) = answer.expect("the load is answered");
        assert_eq!(status, 200, "{text}");
        let body: Value = serde_json::from_str(&text).expect("JSON");
        body["pspReference"].as_str().expect("a pspReference").to_owned()
    });
    let templates = vec![
        sv(
            "issue",
            json!({"merchantAccount": "MERCHANT", "store": "STORE", "paymentMethod": {"type": "valuelink"},
                "giftCardPromoCode": "1324", "amount": {"currency": "USD", "value": 500}, "reference": "REF-2"}),
        ),
        sv(
            "changeStatus",
            json!({"status": "active", "amount": {"currency": "USD", "value": 1000}, "merchantAccount": "MERCHANT",
                "store": "STORE", "paymentMethod": method(NUMBER, SECURITY_CODE), "reference": "REF-3"}),
        ),
        load.clone(),
        sv(
            "checkBalance",
            json!({"merchantAccount": "MERCHANT", "store": "STORE",
                "paymentMethod": method(NUMBER, SECURITY_CODE), "reference": "REF-4"}),
        ),
        sv(
            "mergeBalance",
            json!({"merchantAccount": "MERCHANT", "store": "STORE",
                "sourcePaymentMethod": {"number": MERGE_SOURCE, "securityCode": "2329"},
                "paymentMethod": method(NUMBER, SECURITY_CODE), "reference": "REF-5"}),
        ),
        sv(
            "voidTransaction",
            json!({"merchantAccount": "MERCHANT", "originalReference": original, "reference": "REF-6"}),
        ),
    ];
    let probe = templates[3].clone();
    harness.fuzz("Stored Value API", &templates, no_fresh, &probe, |body| {
        body["resultCode"] == "Success"
    });
}

#[test]
fn native_api_requests_with_mutated_fields_never_get_a_5xx_and_the_server_keeps_answering() {
    let harness = Harness::start();
    let app = &harness.app;
    let (program_id, card, hold, redemption) = harness.runtime.block_on(async {
        let program_id = app.usd_program().await;
        let card = app.card(&program_id, CARD_VALUE_MINOR).await;
        let card_id = text(&card["id"]);
        let hold = app
            .post(&format!("/v1/cards/{card_id}/holds"), json!({"amount": 1_000}))
            .await;
        hold.assert_status(201);
        let redemption = app
            .post(&format!("/v1/cards/{card_id}/redeem"), json!({"amount": 500}))
            .await;
        redemption.assert_status(200);
        (
            program_id,
            card,
            text(&hold.body["id"]),
            text(&redemption.body["id"]),
        )
    });
    let card_id = text(&card["id"]);
    let bearer = ("authorization", format!("Bearer {}", app.api_key));
    let template = |path: String, body: Value| Template {
        path,
        auth: bearer.clone(),
        body,
    };
    let templates = vec![
        template(
            "/v1/cards".into(),
            json!({"program_id": program_id, "kind": "virtual", "amount": 100}),
        ),
        template(
            "/v1/cards".into(),
            json!({"program_id": program_id, "kind": "physical", "number": "6006491260550218157", "security_code": "1234"}),
        ),
        template(
            "/v1/cards/lookup".into(),
            json!({"number": card["number"], "security_code": card["security_code"]}),
        ),
        template(format!("/v1/cards/{card_id}/load"), json!({"amount": 100})),
        template(format!("/v1/cards/{card_id}/redeem"), json!({"amount": 100})),
        template(format!("/v1/cards/{card_id}/holds"), json!({"amount": 100})),
        template(format!("/v1/holds/{hold}/capture"), json!({"amount": 100})),
        template(
            format!("/v1/transactions/{redemption}/refund"),
            json!({"amount": 100}),
        ),
    ];
    let probe = templates[2].clone();
    harness.fuzz("native API", &templates, no_fresh, &probe, |body| {
        body["state"] == "active"
    });
}
