//! Helpers shared by the Adyen facade suites (`adyen_terminal.rs`, `adyen_stored_value.rs`):
//! the vendor fixtures in `fixtures/adyen/`, the field-by-field comparison of an answer with a
//! vendor example, and cards set up through the native API.

#![allow(dead_code)] // each suite uses some of the helpers

use std::collections::BTreeMap;

use giftd_testkit::TestApp;
use serde_json::{Value, json};

pub fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/adyen")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Replaces every string equal to `from` with `to`.
pub fn substitute(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(text) if text == from => *text = to.to_owned(),
        Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, from, to)),
        Value::Object(map) => map.values_mut().for_each(|v| substitute(v, from, to)),
        _ => {}
    }
}

/// The value at a dotted path (`a.b[0].c`), for building requests and expectations.
pub fn at<'a>(value: &'a mut Value, path: &str) -> &'a mut Value {
    let mut current = value;
    for segment in path.split('.') {
        let (key, index) = match segment.split_once('[') {
            Some((key, rest)) => (
                key,
                Some(rest.trim_end_matches(']').parse::<usize>().expect("an index")),
            ),
            None => (segment, None),
        };
        current = &mut current[key];
        if let Some(index) = index {
            current = &mut current[index];
        }
    }
    current
}

/// What a field of giftd's answer must be, compared with the vendor's example.
pub enum Expect {
    /// Exactly the example's value (the default for every field of the example).
    Same,
    /// This value (a placeholder of the example made real, or a documented difference).
    Is(Value),
    /// Of this shape (references, time stamps: values the example cannot predict).
    Like(&'static str, fn(&Value) -> bool),
    /// giftd does not answer this field (docs/ADYEN.md says why).
    Omitted,
}

pub use Expect::{Is, Like, Omitted, Same};

fn leaves(value: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, item) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(item, &path, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                leaves(item, &format!("{prefix}[{i}]"), out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

/// Compares `actual` with the vendor's example: every field of the example by `rules`
/// (default `Same`), and every field giftd adds by `extra` (a field in neither fails). Numbers
/// compare by value, so `10` and `10.0` are the same amount.
#[track_caller]
pub fn assert_like_example(
    actual: &Value,
    example: &Value,
    rules: &[(&str, Expect)],
    extra: &[(&str, Expect)],
) {
    let mut expected = BTreeMap::new();
    leaves(example, "", &mut expected);
    let mut got = BTreeMap::new();
    leaves(actual, "", &mut got);
    let rule_of = |path: &str, table: &[(&str, Expect)]| table.iter().position(|(p, _)| *p == path);
    for (path, _) in rules {
        assert!(
            expected.contains_key(*path),
            "rule for {path}, which the example does not have"
        );
    }
    for (path, _) in extra {
        assert!(
            !expected.contains_key(*path),
            "extra rule for {path}, which the example has"
        );
    }
    let same = |a: Option<&Value>, b: Option<&Value>| match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64() == y.as_f64(),
        (a, b) => a == b,
    };
    let check = |path: &str, expect: &Expect, example: Option<&Value>| {
        let value = got.get(path);
        match expect {
            Same => assert!(
                same(value, example),
                "{path} is {value:?}, the example has {example:?}; answer: {actual}"
            ),
            Is(wanted) => assert!(
                same(value, Some(wanted)),
                "{path} is {value:?}, expected {wanted}; answer: {actual}"
            ),
            Like(what, test) => assert!(
                value.is_some_and(test),
                "{path} should be {what}, is {value:?}; answer: {actual}"
            ),
            Omitted => assert!(value.is_none(), "{path} should be absent; answer: {actual}"),
        }
    };
    for (path, example) in &expected {
        let expect = rule_of(path, rules).map_or(&Same, |i| &rules[i].1);
        check(path, expect, Some(example));
    }
    for (path, expect) in extra {
        check(path, expect, None);
    }
    for path in got.keys() {
        assert!(
            expected.contains_key(path) || rule_of(path, extra).is_some(),
            "{path} is not in the example nor expected; answer: {actual}"
        );
    }
}

pub fn is_reference(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()))
}

pub fn is_transaction_id(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.starts_with("txn_") && s.len() > 8)
}

pub fn is_six_digits(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()))
}

/// `2019-04-29T10:19:51.000Z`.
pub fn is_time_stamp(value: &Value) -> bool {
    value.as_str().is_some_and(|s| {
        let b = s.as_bytes();
        b.len() == 24 && b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && s.ends_with('Z')
    })
}

pub fn is_digits(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
}

/// A program in `currency` with `extra` fields, through the native API.
pub async fn program(app: &TestApp, currency: &str, extra: Value) -> String {
    let mut body = json!({"name": format!("Adyen {currency}"), "currency": currency});
    for (key, value) in extra.as_object().expect("an object") {
        body[key] = value.clone();
    }
    app.program(body).await
}

/// Imports card stock with this number and security code (inactive, no value).
pub async fn import(app: &TestApp, program_id: &str, number: &str, security_code: &str) -> String {
    let response = app
        .post(
            "/v1/cards",
            json!({"program_id": program_id, "kind": "physical", "number": number, "security_code": security_code}),
        )
        .await;
    response.assert_status(201);
    response.body["id"].as_str().expect("a card id").to_owned()
}

/// An active card of a new program in `currency` with this number and code, holding `amount`
/// minor units; its id.
pub async fn active_card(
    app: &TestApp,
    currency: &str,
    number: &str,
    security_code: &str,
    amount: i64,
) -> String {
    let program_id = program(app, currency, json!({})).await;
    let card_id = import(app, &program_id, number, security_code).await;
    let body = if amount > 0 {
        json!({"amount": amount})
    } else {
        json!({})
    };
    app.post(&format!("/v1/cards/{card_id}/activate"), body)
        .await
        .assert_status(200);
    card_id
}

/// The card as the native API shows it.
pub async fn card(app: &TestApp, card_id: &str) -> Value {
    let response = app.get(&format!("/v1/cards/{card_id}")).await;
    response.assert_status(200);
    response.body
}
