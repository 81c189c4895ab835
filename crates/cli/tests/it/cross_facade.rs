//! Reversals across front-ends (issue 18): a transaction made through one front-end reversed
//! through another, over HTTP against a real in-process server.
//!
//! Each row test makes one kind of transaction (a native redemption or load, a Clover charge, a
//! Terminal API payment, unload or merchandise return, a Stored Value API load or merchandise
//! return, a checkout's gift card leg), a fresh one for every column, and asks each front-end
//! in turn to reverse it: native void and refund, Clover `/v1/refunds`, Terminal API
//! ReversalRequest and StoredValue Reverse, Stored Value API `voidTransaction`. A front-end
//! that cannot name the transaction (an Adyen reference is given only by the Adyen API that
//! made it) is sent the name its client would have: giftd's transaction id, or the other Adyen
//! API's reference. Every answer is checked in that front-end's own shape (never a 5xx), the
//! ledger through the native API, and once a reversal worked, every front-end is asked again
//! and must refuse. Then: partial reversals through several front-ends, and simultaneous ones.
//! docs/API.md ("Reversals across front-ends") is the matrix these tests prove. Every test ends
//! with the ledger verified.

use std::sync::atomic::{AtomicU32, Ordering};

use futures::future::join_all;

use crate::adyen_support;

use giftd_testkit::{TestApp, TestResponse};
use serde_json::{Value, json};

/// The one card every cell uses: its number and security code, for Adyen and Clover.
const NUMBER: &str = "6036280000000000042";
const SECURITY_CODE: &str = "4821";
/// What the card starts with, and what every original transaction moves (10.00 USD).
const START_MINOR: i64 = 100_000;
const AMOUNT_MINOR: i64 = 1_000;
const AMOUNT_MAJOR: &str = "10.00";
const STORED_VALUE_BASE: &str = "/pal/servlet/StoredValue/v46";

/// How the original transaction was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Made {
    /// `POST /v1/cards/{id}/redeem`.
    NativeRedemption,
    /// `POST /v1/cards/{id}/load`.
    NativeLoad,
    /// `POST /clover/v1/charges` with `capture: true`.
    CloverCharge,
    /// Terminal API PaymentRequest, PaymentType `Normal`.
    TerminalPayment,
    /// Terminal API StoredValueRequest `Unload`: Adyen's one debit besides a payment.
    TerminalUnload,
    /// Terminal API PaymentRequest, PaymentType `Refund`: an unreferenced refund.
    TerminalReturn,
    /// Stored Value API `load` (the Stored Value API has no operation that takes value).
    StoredValueLoad,
    /// Stored Value API `load` with `loadType: merchandiseReturn`.
    StoredValueReturn,
    /// `POST /v1/checkouts` with intent `capture`: the gift card leg's redemption.
    CheckoutRedemption,
    /// `POST /v1/checkouts` with intent `authorize`: the gift card leg's hold.
    CheckoutHold,
}

/// The front-end and operation the reversal is asked through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Through {
    NativeVoid,
    NativeRefund,
    CloverRefund,
    TerminalReversal,
    TerminalReverse,
    StoredValueVoid,
}

use Through::{CloverRefund, NativeRefund, NativeVoid, StoredValueVoid, TerminalReversal, TerminalReverse};

const EVERY_FRONT_END: [Through; 6] = [
    NativeVoid,
    NativeRefund,
    CloverRefund,
    TerminalReversal,
    TerminalReverse,
    StoredValueVoid,
];

/// What a reversal got, as the matrix in docs/API.md writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// It worked: the type of the ledger transaction written (`void` or `refund`), which gave
    /// the whole original amount back.
    Reversed(&'static str),
    /// Refused in the front-end's own shape: native `409 not_reversible`, Clover
    /// `400 charge_already_refunded` or `402 card_declined not_reversible`, Terminal API
    /// `Failure NotFound`, Stored Value API `Refused Original pspReference not found`.
    Refused(String),
}

use Answer::Reversed;

fn refused(answer: &str) -> Answer {
    Answer::Refused(answer.to_owned())
}

/// What a front-end answers once the transaction was reversed (by `how`: `void` or
/// `refund`) through any front-end, when it could reverse it before: its own "already
/// reversed".
fn already_reversed(through: Through, how: &str) -> Answer {
    match (through, how) {
        (NativeVoid, _) => refused("409 not_reversible"),
        // A refund of what was refunded in full is a refund above what remains.
        (NativeRefund, "refund") => refused("422 refund_exceeds_amount"),
        (NativeRefund, _) => refused("409 not_reversible"),
        (CloverRefund, _) => refused("400 charge_already_refunded"),
        // Nothing remains to refund: the Terminal API's answer to a reversal above what remains.
        (TerminalReversal, "refund") => refused("Failure Refusal"),
        (TerminalReversal, _) | (TerminalReverse, _) => refused("Failure NotAllowed"),
        (StoredValueVoid, _) => refused("Refused Transaction Not Permitted"),
    }
}

/// A transaction made through one front-end, with every name a client of any front-end has
/// for it.
#[derive(Debug, Clone)]
struct Original {
    /// giftd's transaction id (`txn_...`): the native API's and Clover's name; the Terminal
    /// API answers it too (`AcquirerTransactionID`, `HostTransactionID`).
    transaction_id: String,
    /// The Terminal API's `POITransactionID`, for what the Terminal API made.
    poi_transaction_id: Option<String>,
    /// The Stored Value API's `pspReference`, for what the Stored Value API made.
    psp_reference: Option<String>,
}

impl Original {
    /// What a Terminal API client names it by: the POITransactionID it was given, else the
    /// only reference it could have (a pspReference, or giftd's transaction id).
    fn terminal_name(&self) -> &str {
        self.poi_transaction_id
            .as_deref()
            .or(self.psp_reference.as_deref())
            .unwrap_or(&self.transaction_id)
    }

    /// What a Stored Value API client names it by: the pspReference it was given, else the
    /// only reference it could have.
    fn stored_value_name(&self) -> &str {
        self.psp_reference
            .as_deref()
            .or(self.poi_transaction_id.as_deref())
            .unwrap_or(&self.transaction_id)
    }
}

/// A merchant with one card that every front-end knows: by id (native), by token (Clover), by
/// number (Adyen).
struct Shop {
    app: TestApp,
    card_id: String,
    token: String,
    /// ServiceIDs must differ per message for 48 hours (nexo: at most 10 characters).
    service_ids: AtomicU32,
}

impl Shop {
    async fn open() -> Self {
        let app = TestApp::spawn().await;
        let program_id = adyen_support::program(&app, "USD", json!({})).await;
        let card_id = adyen_support::import(&app, &program_id, NUMBER, SECURITY_CODE).await;
        app.post(
            &format!("/v1/cards/{card_id}/activate"),
            json!({"amount": START_MINOR}),
        )
        .await
        .assert_status(200);
        let token = app
            .send(
                app.client
                    .post(app.url("/clover/v1/tokens"))
                    .header("apiKey", &app.api_key)
                    .json(&json!({"gift_card": {"number": NUMBER, "security_code": SECURITY_CODE}})),
            )
            .await;
        token.assert_status(200);
        let token = token.body["id"].as_str().expect("a token").to_owned();
        Self {
            app,
            card_id,
            token,
            service_ids: AtomicU32::new(1),
        }
    }

    fn service_id(&self) -> String {
        format!("S{}", self.service_ids.fetch_add(1, Ordering::Relaxed))
    }

    // ---- the front-ends ----

    async fn clover(&self, path: &str, body: Value) -> TestResponse {
        let url = self.app.url(&format!("/clover{path}"));
        self.app
            .send(
                self.app
                    .client
                    .post(url)
                    .bearer_auth(&self.app.api_key)
                    .json(&body),
            )
            .await
    }

    async fn terminal(&self, body: Value) -> TestResponse {
        self.app
            .send(
                self.app
                    .client
                    .post(self.app.url("/sync"))
                    .header("X-API-Key", &self.app.api_key)
                    .json(&body),
            )
            .await
    }

    async fn stored_value(&self, operation: &str, body: Value) -> TestResponse {
        self.app
            .send(
                self.app
                    .client
                    .post(self.app.url(&format!("{STORED_VALUE_BASE}/{operation}")))
                    .header("x-api-key", &self.app.api_key)
                    .json(&body),
            )
            .await
    }

    /// A Terminal API message of `category` with `request` as its `<category>Request`.
    fn terminal_message(&self, category: &str, request: Value) -> Value {
        let mut message = json!({"SaleToPOIRequest": {"MessageHeader": {
            "ProtocolVersion": "3.0", "MessageClass": "Service", "MessageCategory": category,
            "MessageType": "Request", "ServiceID": self.service_id(), "SaleID": "POS1",
            "POIID": "V400m-324688179"
        }}});
        message["SaleToPOIRequest"][format!("{category}Request")] = request;
        message
    }

    fn sale_data(&self) -> Value {
        json!({"SaleTransactionID": {"TransactionID": "sale-1", "TimeStamp": "2024-05-01T10:00:00+00:00"}})
    }

    fn account(&self) -> Value {
        json!({"StoredValueAccountType": "GiftCard", "StoredValueProvider": "givex",
               "IdentificationType": "PAN", "EntryMode": ["Scanned"], "StoredValueID": NUMBER})
    }

    // ---- the ledger, through the native API ----

    async fn balance(&self) -> i64 {
        let card = adyen_support::card(&self.app, &self.card_id).await;
        card["balance"].as_i64().expect("a balance")
    }

    async fn newest_transaction(&self) -> Value {
        self.app.card_transactions(&self.card_id).await[0].clone()
    }

    // ---- the rows: a transaction made through one front-end ----

    async fn make(&self, made: Made) -> Original {
        let mut original = Original {
            transaction_id: String::new(),
            poi_transaction_id: None,
            psp_reference: None,
        };
        match made {
            Made::NativeRedemption | Made::NativeLoad => {
                let action = if made == Made::NativeLoad {
                    "load"
                } else {
                    "redeem"
                };
                let response = self
                    .app
                    .post(
                        &format!("/v1/cards/{}/{action}", self.card_id),
                        json!({"amount": AMOUNT_MINOR}),
                    )
                    .await;
                response.assert_status(200);
                original.transaction_id = text(&response.body["id"]);
            }
            Made::CloverCharge => {
                let response = self
                    .clover(
                        "/v1/charges",
                        json!({"source": self.token, "amount": AMOUNT_MINOR, "currency": "usd",
                               "capture": true, "partial_redemption": false}),
                    )
                    .await;
                response.assert_status(200);
                original.transaction_id = text(&response.body["id"]);
            }
            Made::TerminalUnload => {
                let message = self.terminal_message(
                    "StoredValue",
                    json!({
                        "SaleData": self.sale_data(),
                        "StoredValueData": [{"StoredValueTransactionType": "Unload",
                            "StoredValueAccountID": self.account(),
                            "ItemAmount": number(AMOUNT_MAJOR), "Currency": "USD"}]
                    }),
                );
                let response = self.terminal(message).await;
                let answer = terminal_answer(&response, "StoredValueResponse");
                assert_eq!(answer["Response"]["Result"], "Success", "{}", response.text);
                original.poi_transaction_id =
                    Some(text(&answer["POIData"]["POITransactionID"]["TransactionID"]));
                original.transaction_id =
                    text(&answer["StoredValueResult"][0]["HostTransactionID"]["TransactionID"]);
            }
            Made::TerminalPayment | Made::TerminalReturn => {
                let payment_type = if made == Made::TerminalPayment {
                    "Normal"
                } else {
                    "Refund"
                };
                let message = self.terminal_message(
                    "Payment",
                    json!({
                        "SaleData": self.sale_data(),
                        "PaymentTransaction": {"AmountsReq": {"Currency": "USD",
                            "RequestedAmount": number(AMOUNT_MAJOR)}},
                        "PaymentData": {"PaymentType": payment_type, "PaymentInstrumentData": {
                            "PaymentInstrumentType": "StoredValue",
                            "StoredValueAccountID": self.account()}}
                    }),
                );
                let response = self.terminal(message).await;
                let answer = terminal_answer(&response, "PaymentResponse");
                assert_eq!(answer["Response"]["Result"], "Success", "{}", response.text);
                original.poi_transaction_id =
                    Some(text(&answer["POIData"]["POITransactionID"]["TransactionID"]));
                original.transaction_id = text(
                    &answer["PaymentResult"]["PaymentAcquirerData"]["AcquirerTransactionID"]["TransactionID"],
                );
            }
            Made::StoredValueLoad | Made::StoredValueReturn => {
                let mut load = json!({"merchantAccount": "M", "reference": "load-1",
                    "amount": {"currency": "USD", "value": AMOUNT_MINOR},
                    "paymentMethod": {"type": "givex", "number": NUMBER}});
                if made == Made::StoredValueReturn {
                    load["loadType"] = json!("merchandiseReturn");
                }
                let response = self.stored_value("load", load).await;
                response.assert_status(200);
                assert_eq!(response.body["resultCode"], "Success", "{}", response.text);
                original.psp_reference = Some(text(&response.body["pspReference"]));
                // The Stored Value API answers no transaction id: the native API lists it.
                original.transaction_id = text(&self.newest_transaction().await["id"]);
            }
            Made::CheckoutRedemption | Made::CheckoutHold => {
                let intent = if made == Made::CheckoutRedemption {
                    "capture"
                } else {
                    "authorize"
                };
                let response = self
                    .app
                    .post(
                        "/v1/checkouts",
                        json!({"amount": AMOUNT_MINOR, "currency": "USD", "intent": intent,
                               "gift_cards": [{"card_id": self.card_id, "amount": AMOUNT_MINOR}]}),
                    )
                    .await;
                response.assert_status(201);
                assert_eq!(response.body["intent_outcome"], "succeeded", "{}", response.text);
                original.transaction_id = text(&response.body["tenders"][0]["transaction_id"]);
            }
        }
        let newest = self.newest_transaction().await;
        assert_eq!(newest["id"], json!(original.transaction_id), "{made:?}");
        assert_eq!(newest["amount"], json!(AMOUNT_MINOR), "{made:?}");
        original
    }

    // ---- the columns: a reversal asked through one front-end ----

    async fn reverse(&self, through: Through, original: &Original) -> Answer {
        let id = &original.transaction_id;
        let answer = match through {
            NativeVoid => native_answer(
                &self
                    .app
                    .post(&format!("/v1/transactions/{id}/void"), json!({}))
                    .await,
            ),
            NativeRefund => native_answer(
                &self
                    .app
                    .post(&format!("/v1/transactions/{id}/refund"), json!({}))
                    .await,
            ),
            CloverRefund => clover_answer(&self.clover("/v1/refunds", json!({"charge": id})).await),
            TerminalReversal => self.terminal_reversal(original, None).await,
            TerminalReverse => {
                let message = self.terminal_message(
                    "StoredValue",
                    json!({
                        "SaleData": self.sale_data(),
                        "StoredValueData": [{"StoredValueTransactionType": "Reverse",
                            "Currency": "USD",
                            "OriginalPOITransaction": {"POITransactionID": {
                                "TransactionID": original.terminal_name(),
                                "TimeStamp": "2024-05-01T10:00:00.000Z"}}}]
                    }),
                );
                let response = self.terminal(message).await;
                terminal_result(&response, "StoredValueResponse")
            }
            StoredValueVoid => {
                let response = self
                    .stored_value(
                        "voidTransaction",
                        json!({"merchantAccount": "M",
                               "originalReference": original.stored_value_name()}),
                    )
                    .await;
                stored_value_answer(&response)
            }
        };
        self.as_written(answer).await
    }

    /// The Adyen APIs do not say whether a reversal was a void or a refund: the ledger does.
    async fn as_written(&self, answer: Answer) -> Answer {
        match answer {
            Reversed(_) => Reversed(ledger_type(&self.newest_transaction().await["type"])),
            refusal @ Answer::Refused(_) => refusal,
        }
    }

    /// A Terminal API ReversalRequest naming the original, for all of it or `amount` (major
    /// units).
    async fn terminal_reversal(&self, original: &Original, amount: Option<&str>) -> Answer {
        let mut request = json!({
            "OriginalPOITransaction": {"POITransactionID": {
                "TransactionID": original.terminal_name(),
                "TimeStamp": "2024-05-01T10:00:00.000Z"}},
            "ReversalReason": "MerchantCancel"
        });
        if let Some(amount) = amount {
            request["ReversedAmount"] = number(amount);
        }
        let response = self.terminal(self.terminal_message("Reversal", request)).await;
        self.as_written(terminal_result(&response, "ReversalResponse"))
            .await
    }

    /// One row of the matrix: for each front-end, a fresh transaction made as `made` is
    /// reversed through it and must answer as `expected` says. A refusal changes nothing. A
    /// reversal that works gives the whole amount back in one ledger transaction that names
    /// the original; then every front-end is asked again and refuses: the ones that refused
    /// before answer the same, the others their own "already reversed".
    async fn row(&self, made: Made, expected: &[(Through, Answer)]) {
        let columns: Vec<Through> = expected.iter().map(|(through, _)| *through).collect();
        assert_eq!(columns, EVERY_FRONT_END, "a row lists every front-end, in order");
        for (through, answer) in expected {
            let before = self.balance().await;
            let original = self.make(made).await;
            let made_balance = self.balance().await;
            let got = self.reverse(*through, &original).await;
            assert_eq!(&got, answer, "{made:?} reversed through {through:?}");
            let Reversed(how) = got else {
                assert_eq!(
                    self.balance().await,
                    made_balance,
                    "{made:?} refused by {through:?}"
                );
                continue;
            };
            assert_eq!(
                self.balance().await,
                before,
                "{made:?} reversed through {through:?}"
            );
            let reversal = self.newest_transaction().await;
            assert_eq!(
                (&reversal["type"], &reversal["amount"], &reversal["reverses"]),
                (&json!(how), &json!(AMOUNT_MINOR), &json!(original.transaction_id)),
                "{made:?} reversed through {through:?}"
            );
            for (again, first) in expected {
                let wanted = match first {
                    Reversed(_) => already_reversed(*again, how),
                    Answer::Refused(_) => first.clone(),
                };
                let got = self.reverse(*again, &original).await;
                assert_eq!(
                    got, wanted,
                    "{made:?} reversed through {through:?}, then again through {again:?}"
                );
                assert_eq!(self.balance().await, before);
            }
            assert_eq!(
                self.newest_transaction().await["id"],
                reversal["id"],
                "nothing after the one reversal"
            );
        }
        TestApp::assert_sound(&self.app.verify().await);
    }
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a string, not {value}"))
        .to_owned()
}

fn number(decimal: &str) -> Value {
    serde_json::from_str(decimal).expect("a JSON number")
}

/// The native API: 200 with the reversal's transaction, or `{"error": {"code"}}`.
#[track_caller]
fn native_answer(response: &TestResponse) -> Answer {
    match response.status.as_u16() {
        200 => {
            assert_eq!(response.body["object"], "transaction", "{}", response.text);
            Reversed(ledger_type(&response.body["type"]))
        }
        status @ 400..=499 => refused(&format!("{status} {}", response.code())),
        status => panic!("native answered {status}: {}", response.text),
    }
}

/// Clover: 200 with `object: "refund"`, or `{"error": {"type", "code", "decline_code"?}}`.
#[track_caller]
fn clover_answer(response: &TestResponse) -> Answer {
    match response.status.as_u16() {
        200 => {
            assert_eq!(response.body["object"], "refund", "{}", response.text);
            let how = match response.body["metadata"]["refundType"].as_str() {
                Some("VOID") => "void",
                Some("REFUND") => "refund",
                other => panic!("refundType {other:?}: {}", response.text),
            };
            Reversed(how)
        }
        status @ 400..=499 => {
            let error = &response.body["error"];
            assert!(error["type"].is_string(), "{}", response.text);
            let mut answer = format!("{status} {}", text(&error["code"]));
            if let Some(decline) = error["decline_code"].as_str() {
                answer = format!("{answer} {decline}");
            }
            refused(&answer)
        }
        status => panic!("Clover answered {status}: {}", response.text),
    }
}

#[track_caller]
fn terminal_answer<'a>(response: &'a TestResponse, name: &str) -> &'a Value {
    response.assert_status(200);
    let answer = &response.body["SaleToPOIResponse"][name];
    assert!(answer.is_object(), "no {name} in {}", response.text);
    answer
}

/// The Terminal API: HTTP 200 with `Response.Result` `Success` (what it wrote is the ledger's
/// to say), or `Failure` and its `ErrorCondition`.
#[track_caller]
fn terminal_result(response: &TestResponse, name: &str) -> Answer {
    let answer = terminal_answer(response, name);
    match answer["Response"]["Result"].as_str() {
        Some("Success") => Reversed("void"),
        Some("Failure") => refused(&format!(
            "Failure {}",
            text(&answer["Response"]["ErrorCondition"])
        )),
        other => panic!("Result {other:?}: {}", response.text),
    }
}

/// The Stored Value API: HTTP 200 with `resultCode` `Success` (a void), or a refusal with
/// Adyen's `refusalReason`.
#[track_caller]
fn stored_value_answer(response: &TestResponse) -> Answer {
    response.assert_status(200);
    match response.body["resultCode"].as_str() {
        Some("Success") => Reversed("void"),
        Some(result) => refused(&format!("{result} {}", text(&response.body["refusalReason"]))),
        None => panic!("no resultCode: {}", response.text),
    }
}

fn ledger_type(value: &Value) -> &'static str {
    match value.as_str() {
        Some("void") => "void",
        Some("refund") => "refund",
        other => panic!("a reversal wrote a {other:?} transaction"),
    }
}

// ---- the rows ----

#[tokio::test]
async fn a_native_redemption_is_reversed_by_native_and_clover_and_no_adyen_api_can_name_it() {
    let shop = Shop::open().await;
    shop.row(
        Made::NativeRedemption,
        &[
            (NativeVoid, Reversed("void")),
            (NativeRefund, Reversed("refund")),
            (CloverRefund, Reversed("void")),
            (TerminalReversal, refused("Failure NotFound")),
            (TerminalReverse, refused("Failure NotFound")),
            (
                StoredValueVoid,
                refused("Refused Original pspReference not found"),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_native_load_is_voided_by_native_and_clover_and_no_adyen_api_can_name_it() {
    let shop = Shop::open().await;
    shop.row(
        Made::NativeLoad,
        &[
            (NativeVoid, Reversed("void")),
            (NativeRefund, refused("409 not_reversible")),
            (CloverRefund, Reversed("void")),
            (TerminalReversal, refused("Failure NotFound")),
            (TerminalReverse, refused("Failure NotFound")),
            (
                StoredValueVoid,
                refused("Refused Original pspReference not found"),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_clover_charge_is_reversed_by_clover_and_native_and_no_adyen_api_can_name_it() {
    let shop = Shop::open().await;
    shop.row(
        Made::CloverCharge,
        &[
            (NativeVoid, Reversed("void")),
            (NativeRefund, Reversed("refund")),
            (CloverRefund, Reversed("void")),
            (TerminalReversal, refused("Failure NotFound")),
            (TerminalReverse, refused("Failure NotFound")),
            (
                StoredValueVoid,
                refused("Refused Original pspReference not found"),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_terminal_payment_is_reversed_by_a_reversal_request_by_native_and_by_clover() {
    let shop = Shop::open().await;
    shop.row(
        Made::TerminalPayment,
        &[
            (NativeVoid, Reversed("void")),
            (NativeRefund, Reversed("refund")),
            (CloverRefund, Reversed("void")),
            (TerminalReversal, Reversed("void")),
            // Named, but a payment is reversed with a ReversalRequest.
            (TerminalReverse, refused("Failure NotAllowed")),
            (
                StoredValueVoid,
                refused("Refused Original pspReference not found"),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_terminal_unload_is_voided_by_a_stored_value_reverse_by_native_and_by_clover() {
    let shop = Shop::open().await;
    shop.row(
        Made::TerminalUnload,
        &[
            (NativeVoid, Reversed("void")),
            // A cash-out is voided, never refunded.
            (NativeRefund, refused("409 not_reversible")),
            (CloverRefund, Reversed("void")),
            // Named, but only a payment is reversed with a ReversalRequest.
            (TerminalReversal, refused("Failure NotAllowed")),
            (TerminalReverse, Reversed("void")),
            (
                StoredValueVoid,
                refused("Refused Original pspReference not found"),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_terminal_merchandise_return_is_voided_by_a_reversal_request_and_native_and_refused_by_clover() {
    let shop = Shop::open().await;
    shop.row(
        Made::TerminalReturn,
        &[
            (NativeVoid, Reversed("void")),
            // A refund is voided, never refunded.
            (NativeRefund, refused("409 not_reversible")),
            // It reverses no charge: no Clover charge to refund (and no Clover refund to cancel).
            (CloverRefund, refused("400 invalid_request")),
            (TerminalReversal, Reversed("void")),
            (TerminalReverse, refused("Failure NotAllowed")),
            (
                StoredValueVoid,
                refused("Refused Original pspReference not found"),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_stored_value_load_is_voided_by_void_transaction_by_native_and_by_clover() {
    let shop = Shop::open().await;
    shop.row(
        Made::StoredValueLoad,
        &[
            (NativeVoid, Reversed("void")),
            (NativeRefund, refused("409 not_reversible")),
            (CloverRefund, Reversed("void")),
            // A pspReference means nothing to the Terminal API.
            (TerminalReversal, refused("Failure NotFound")),
            (TerminalReverse, refused("Failure NotFound")),
            (StoredValueVoid, Reversed("void")),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_stored_value_merchandise_return_is_voided_by_void_transaction_and_native_and_refused_by_clover() {
    let shop = Shop::open().await;
    shop.row(
        Made::StoredValueReturn,
        &[
            (NativeVoid, Reversed("void")),
            (NativeRefund, refused("409 not_reversible")),
            (CloverRefund, refused("400 invalid_request")),
            (TerminalReversal, refused("Failure NotFound")),
            (TerminalReverse, refused("Failure NotFound")),
            (StoredValueVoid, Reversed("void")),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_checkouts_gift_card_legs_are_reversed_through_the_checkout_alone_on_every_front_end() {
    let shop = Shop::open().await;
    for made in [Made::CheckoutRedemption, Made::CheckoutHold] {
        shop.row(
            made,
            &[
                (NativeVoid, refused("409 checkout_owned")),
                (NativeRefund, refused("409 checkout_owned")),
                // Clover's shape: 400 invalid_request, `param` checkout, naming it.
                (CloverRefund, refused("400 invalid_request")),
                (TerminalReversal, refused("Failure NotFound")),
                (TerminalReverse, refused("Failure NotFound")),
                (
                    StoredValueVoid,
                    refused("Refused Original pspReference not found"),
                ),
            ],
        )
        .await;
    }

    // A Clover capture or void of the checkout's hold (a lock to Clover) used to go through
    // behind the checkout's back; now Clover names the checkout, and nothing moves.
    let held = shop.make(Made::CheckoutHold).await;
    let before = adyen_support::card(&shop.app, &shop.card_id).await;
    for response in [
        shop.clover(
            &format!("/v1/charges/{}/capture", held.transaction_id),
            json!({"amount": 1}),
        )
        .await,
        shop.clover("/v1/refunds", json!({"charge": held.transaction_id}))
            .await,
    ] {
        assert_eq!(clover_answer(&response), refused("400 invalid_request"));
        assert_eq!(response.body["error"]["param"], "checkout", "{}", response.text);
        assert!(response.text.contains("chk_"), "{}", response.text);
    }
    let after = adyen_support::card(&shop.app, &shop.card_id).await;
    assert_eq!(
        (&after["balance"], &after["held"]),
        (&before["balance"], &before["held"])
    );
    TestApp::assert_sound(&shop.app.verify().await);
}

// ---- across front-ends, beyond one reversal ----

#[tokio::test]
async fn clover_neither_cancels_nor_lists_a_merchandise_return_and_never_answers_500() {
    let shop = Shop::open().await;
    let app = &shop.app;
    for made in [Made::TerminalReturn, Made::StoredValueReturn] {
        let original = shop.make(made).await;
        let balance = shop.balance().await;
        // It used to be a 500: the cancellation looked for the charge the refund reverses.
        let cancel = shop
            .clover(
                &format!("/v1/refunds/{}/cancel", original.transaction_id),
                json!({}),
            )
            .await;
        assert_eq!(clover_answer(&cancel), refused("400 invalid_request"));
        assert_eq!(cancel.body["error"]["param"], "refund", "{}", cancel.text);
        assert_eq!(shop.balance().await, balance);
        // It is no Clover refund (docs/CLOVER.md: a refund is of a redemption or a capture):
        // read alone it is unknown, and the list leaves it out. Both used to be a 500.
        let read = app
            .get(&format!("/clover/v1/refunds/{}", original.transaction_id))
            .await;
        read.assert_status(404);
        assert_eq!(read.body["error"]["code"], "resource_missing", "{}", read.text);
    }
    // A refund of a charge is still listed (and cancelled) as before.
    let charge = shop.make(Made::CloverCharge).await;
    let refund = app
        .post(
            &format!("/v1/transactions/{}/refund", charge.transaction_id),
            json!({"amount": 100}),
        )
        .await;
    refund.assert_status(200);
    let list = app.get("/clover/v1/refunds").await;
    list.assert_status(200);
    let ids: Vec<&Value> = list.body["data"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| &r["id"])
        .collect();
    assert_eq!(ids, [&refund.body["id"]], "{}", list.text);
    let cancel = shop
        .clover(
            &format!("/v1/refunds/{}/cancel", text(&refund.body["id"])),
            json!({}),
        )
        .await;
    cancel.assert_status(200);
    assert_eq!(cancel.body["object"], "void_on_refund", "{}", cancel.text);
    assert_eq!(cancel.body["charge"], json!(charge.transaction_id));
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn partial_reversals_through_different_front_ends_add_up_to_the_payment_and_never_beyond_it() {
    let shop = Shop::open().await;
    let app = &shop.app;
    let before = shop.balance().await;
    let payment = shop.make(Made::TerminalPayment).await;
    let id = &payment.transaction_id;

    // 3.00 through the Terminal API, 2.00 natively: two refunds.
    assert_eq!(
        shop.terminal_reversal(&payment, Some("3.00")).await,
        Reversed("refund")
    );
    let native = app
        .post(&format!("/v1/transactions/{id}/refund"), json!({"amount": 200}))
        .await;
    native.assert_status(200);
    assert_eq!(shop.balance().await, before - 500);
    // Partly refunded: no front-end voids it any more, and none refunds beyond what remains.
    assert_eq!(
        shop.reverse(NativeVoid, &payment).await,
        refused("409 not_reversible")
    );
    let above = shop
        .clover("/v1/refunds", json!({"charge": id, "amount": 501}))
        .await;
    assert_eq!(clover_answer(&above), refused("400 amount_too_large"));
    assert_eq!(
        shop.terminal_reversal(&payment, Some("5.01")).await,
        refused("Failure Refusal")
    );
    // Clover refunds the rest (a refund, not a void, since part is refunded already).
    let rest = shop.clover("/v1/refunds", json!({"charge": id})).await;
    assert_eq!(clover_answer(&rest), Reversed("refund"));
    assert_eq!(rest.body["amount"], 500, "{}", rest.text);
    assert_eq!(shop.balance().await, before);
    for through in EVERY_FRONT_END {
        let wanted = match through {
            TerminalReverse => refused("Failure NotAllowed"),
            StoredValueVoid => refused("Refused Original pspReference not found"),
            other => already_reversed(other, "refund"),
        };
        assert_eq!(shop.reverse(through, &payment).await, wanted, "{through:?}");
    }
    assert_eq!(shop.balance().await, before);

    // Cancelling the native refund through Clover makes its 2.00 refundable again, and the
    // Terminal API's reversal without an amount refunds exactly that.
    let cancel = shop
        .clover(
            &format!("/v1/refunds/{}/cancel", text(&native.body["id"])),
            json!({}),
        )
        .await;
    cancel.assert_status(200);
    assert_eq!(shop.balance().await, before - 200);
    assert_eq!(shop.terminal_reversal(&payment, None).await, Reversed("refund"));
    let last = shop.newest_transaction().await;
    assert_eq!(
        (&last["type"], &last["amount"], &last["reverses"]),
        (&json!("refund"), &json!(200), &json!(id))
    );
    assert_eq!(shop.balance().await, before);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn simultaneous_reversals_through_every_front_end_reverse_a_payment_once() {
    let shop = Shop::open().await;
    for _ in 0..5 {
        let before = shop.balance().await;
        let payment = shop.make(Made::TerminalPayment).await;
        let answers = join_all(
            [NativeVoid, NativeRefund, CloverRefund, TerminalReversal]
                .map(|through| shop.reverse(through, &payment)),
        )
        .await;
        let reversed: Vec<&Answer> = answers.iter().filter(|a| matches!(a, Reversed(_))).collect();
        assert_eq!(reversed.len(), 1, "exactly one reversal: {answers:?}");
        assert_eq!(shop.balance().await, before, "{answers:?}");
        let history = shop.app.card_transactions(&shop.card_id).await;
        let reversals = history
            .iter()
            .filter(|t| t["reverses"] == json!(payment.transaction_id))
            .count();
        assert_eq!(reversals, 1, "{answers:?}");
    }
    TestApp::assert_sound(&shop.app.verify().await);
}

#[tokio::test]
async fn a_credit_whose_value_was_spent_is_refused_by_every_front_end_that_can_name_it() {
    let shop = Shop::open().await;
    let app = &shop.app;
    let spend_everything = || async {
        app.post(&format!("/v1/cards/{}/cashout", shop.card_id), json!({}))
            .await
            .assert_status(200);
        assert_eq!(shop.balance().await, 0);
    };

    // A load whose value was paid out: voiding it would overdraw the card.
    let load = shop.make(Made::StoredValueLoad).await;
    spend_everything().await;
    for (through, wanted) in [
        (NativeVoid, refused("409 not_reversible")),
        (CloverRefund, refused("402 card_declined not_reversible")),
        (StoredValueVoid, refused("Refused Transaction Not Permitted")),
    ] {
        assert_eq!(shop.reverse(through, &load).await, wanted, "{through:?}");
    }

    // A merchandise return likewise, through the Terminal API that made it.
    let credit = shop.make(Made::TerminalReturn).await;
    spend_everything().await;
    for (through, wanted) in [
        (NativeVoid, refused("409 not_reversible")),
        (TerminalReversal, refused("Failure NotAllowed")),
    ] {
        assert_eq!(shop.reverse(through, &credit).await, wanted, "{through:?}");
    }
    assert_eq!(shop.balance().await, 0, "nothing moved");
    TestApp::assert_sound(&app.verify().await);
}
