//! The Adyen Terminal API facade (seeds 000 and 001) over HTTP: `POST /sync`, against a real
//! in-process server.
//!
//! The vendor's example messages are replayed from `fixtures/adyen/terminal/*.request.json`
//! (seed 001's balance inquiry exactly; Adyen's documentation and client libraries' examples
//! for the rest) and the answers compared, field by field, with the vendor's example answers
//! in `*.response.json`. A field giftd answers differently is named in the test with its
//! reason (docs/ADYEN.md records them all). Then: partial authorisation in both encodings,
//! unreferenced refunds, reversals (of unknown transactions too), cash-out and deactivation
//! through `redemptionType`, ServiceID replay and rejection, PINs and the lockout, and messages
//! that cannot be read. Every test ends with the ledger verified.

use crate::adyen_support;

use adyen_support::*;
use base64::Engine;
use giftd_testkit::{TestApp, TestResponse};
use serde_json::{Value, json};

/// The card number placeholder of the vendor's examples.
const PLACEHOLDER: &str = "xxxxxxxxxxxxxxxxxxx";

async fn terminal(app: &TestApp, body: &Value) -> TestResponse {
    terminal_as(app, body, &app.api_key).await
}

async fn terminal_as(app: &TestApp, body: &Value, api_key: &str) -> TestResponse {
    app.send(
        app.client
            .post(app.url("/sync"))
            .header("X-API-Key", api_key)
            .json(body),
    )
    .await
}

/// The answer of a successful or failed request (not a rejection).
#[track_caller]
fn answer<'a>(response: &'a TestResponse, name: &str) -> &'a Value {
    response.assert_status(200);
    let body = &response.body["SaleToPOIResponse"][name];
    assert!(body.is_object(), "no {name} in {}", response.text);
    body
}

#[track_caller]
fn assert_success(response: &TestResponse, name: &str) {
    let body = answer(response, name);
    assert_eq!(body["Response"]["Result"], "Success", "{}", response.text);
}

#[track_caller]
fn assert_failure(response: &TestResponse, name: &str, condition: &str) {
    let body = answer(response, name);
    assert_eq!(body["Response"]["Result"], "Failure", "{}", response.text);
    assert_eq!(body["Response"]["ErrorCondition"], condition, "{}", response.text);
    assert!(
        body["Response"]["AdditionalResponse"]
            .as_str()
            .is_some_and(|a| a.starts_with("message=")),
        "{}",
        response.text
    );
}

/// The answer is an EventNotification rejecting the message, shaped like Adyen's cloud's,
/// echoing the rejected message's SaleID, POIID and ServiceID.
#[track_caller]
fn assert_rejected(response: &TestResponse) {
    assert_rejected_echoing(response, true);
}

#[track_caller]
fn assert_rejected_echoing(response: &TestResponse, header_echoed: bool) {
    response.assert_status(200);
    let example = fixture("terminal/reject.response.json");
    let echo = |path| {
        if header_echoed {
            (path, Like("text", Value::is_string))
        } else {
            (path, Omitted)
        }
    };
    assert_like_example(
        &response.body,
        &example,
        &[
            (
                "SaleToPOIRequest.EventNotification.EventDetails",
                Like("message=...", |v| {
                    v.as_str().is_some_and(|s| s.starts_with("message="))
                }),
            ),
            (
                "SaleToPOIRequest.EventNotification.RejectedMessage",
                Like("base64", |v| v.as_str().is_some_and(|s| !s.is_empty())),
            ),
            (
                "SaleToPOIRequest.EventNotification.TimeStamp",
                Like("a time stamp", is_time_stamp),
            ),
            // What of the rejected header could be read is echoed; the example's values are its own.
            ("SaleToPOIRequest.MessageHeader.DeviceID", Omitted),
            echo("SaleToPOIRequest.MessageHeader.POIID"),
            echo("SaleToPOIRequest.MessageHeader.SaleID"),
            echo("SaleToPOIRequest.MessageHeader.ServiceID"),
        ],
        &[],
    );
}

/// The `POITransactionID.TransactionID` an answer gave.
fn poi_transaction_id(body: &Value) -> String {
    body["POIData"]["POITransactionID"]["TransactionID"]
        .as_str()
        .expect("a POITransactionID")
        .to_owned()
}

/// A StoredValueRequest of `kind` for `number`, with `amount` in `currency` when given.
fn stored_value(service_id: &str, kind: &str, number: &str, amount: Option<&str>, currency: &str) -> Value {
    let mut item = json!({
        "StoredValueTransactionType": kind,
        "StoredValueAccountID": {
            "StoredValueAccountType": "GiftCard",
            "StoredValueProvider": "givex",
            "IdentificationType": "PAN",
            "EntryMode": ["Scanned"],
            "StoredValueID": number
        },
        "Currency": currency
    });
    if let Some(amount) = amount {
        item["ItemAmount"] = serde_json::from_str(amount).expect("a JSON number");
    }
    json!({"SaleToPOIRequest": {
        "MessageHeader": {"ProtocolVersion": "3.0", "MessageClass": "Service", "MessageCategory": "StoredValue",
            "MessageType": "Request", "ServiceID": service_id, "SaleID": "POS1", "POIID": "V400m-324688179"},
        "StoredValueRequest": {
            "SaleData": {"SaleTransactionID": {"TransactionID": format!("sale-{service_id}"), "TimeStamp": "2024-05-01T10:00:00+00:00"}},
            "StoredValueData": [item]
        }
    }})
}

/// The seed's payment request for `number`, with `amount`, ServiceID and tender option set.
fn payment(service_id: &str, number: &str, amount: &str, acquirer_data: Option<&str>) -> Value {
    let mut body = fixture("terminal/payment.request.json");
    substitute(&mut body, "6036280000000000000", number);
    *at(&mut body, "SaleToPOIRequest.MessageHeader.ServiceID") = json!(service_id);
    *at(
        &mut body,
        "SaleToPOIRequest.PaymentRequest.PaymentTransaction.AmountsReq.RequestedAmount",
    ) = serde_json::from_str(amount).expect("a JSON number");
    let data = at(&mut body, "SaleToPOIRequest.PaymentRequest.SaleData");
    match acquirer_data {
        Some(text) => data["SaleToAcquirerData"] = json!(text),
        None => {
            data.as_object_mut()
                .expect("SaleData")
                .remove("SaleToAcquirerData");
        }
    }
    body
}

fn reversal(service_id: &str, original: &str, amount: Option<&str>) -> Value {
    let mut body = fixture("terminal/reversal.request.json");
    substitute(&mut body, "oLkO001503399575001.9815033996072250", original);
    *at(&mut body, "SaleToPOIRequest.MessageHeader.ServiceID") = json!(service_id);
    if let Some(amount) = amount {
        body["SaleToPOIRequest"]["ReversalRequest"]["ReversedAmount"] =
            serde_json::from_str(amount).expect("a JSON number");
    }
    body
}

/// Asserts that a PaymentResponse to the seed's payment request (`payment`, SaleID POSSystemID12345
/// on V400m-324688179) is the example's answer with giftd's references, `authorized` its
/// AuthorizedAmount and `account` the card it echoes.
#[track_caller]
fn assert_paid_like_example(body: &Value, app: &TestApp, account: Value, authorized: Value) {
    assert_like_example(
        body,
        &json!({
            "Response": {"Result": "Success"},
            "SaleData": {
                "SaleTransactionID": {"TransactionID": "27908", "TimeStamp": "2019-03-22T09:44:56+00:00"},
                "SaleReferenceID": "ORDER-1001"
            },
            "POIData": {"POITransactionID": {"TransactionID": "", "TimeStamp": ""}},
            "PaymentResult": {
                "PaymentType": "Normal",
                "PaymentInstrumentData": {"PaymentInstrumentType": "StoredValue", "StoredValueAccountID": account},
                "AmountsResp": {"AuthorizedAmount": authorized, "Currency": "EUR"},
                "OnlineFlag": true,
                "PaymentAcquirerData": {
                    "MerchantID": app.merchant_id.clone(),
                    "AcquirerPOIID": "V400m-324688179",
                    "AcquirerTransactionID": {"TransactionID": "", "TimeStamp": ""},
                    "ApprovalCode": ""
                }
            }
        }),
        &[
            (
                "POIData.POITransactionID.TransactionID",
                Like("a reference", is_reference),
            ),
            (
                "POIData.POITransactionID.TimeStamp",
                Like("a time stamp", is_time_stamp),
            ),
            (
                "PaymentResult.PaymentAcquirerData.AcquirerTransactionID.TransactionID",
                Like("a transaction id", is_transaction_id),
            ),
            (
                "PaymentResult.PaymentAcquirerData.AcquirerTransactionID.TimeStamp",
                Like("a time stamp", is_time_stamp),
            ),
            (
                "PaymentResult.PaymentAcquirerData.ApprovalCode",
                Like("six digits", is_six_digits),
            ),
        ],
        &[],
    );
}

/// Available minor units on a card, through the native API.
async fn available(app: &TestApp, card_id: &str) -> i64 {
    card(app, card_id).await["available"].as_i64().expect("available")
}

// ---- the seeds' examples ----

#[tokio::test]
async fn seed_001_balance_inquiry_answers_exactly_the_seeds_response_and_replays_it() {
    let app = TestApp::spawn().await;
    // The card of the seed's example, imported through the native API, with 98.75 GBP on it.
    active_card(&app, "GBP", "9826150911219687", "4821", 9875).await;

    let request = fixture("terminal/balance_inquiry.request.json");
    let response = terminal(&app, &request).await;
    response.assert_status(200);
    // Every field, exactly: the seed's ExpiryDate (November 2022) is informational only.
    assert_like_example(
        &response.body,
        &fixture("terminal/balance_inquiry.response.json"),
        &[],
        &[],
    );
    assert!(
        response.text.contains("\"CurrentBalance\":98.75"),
        "{}",
        response.text
    );

    // The same message again (same ServiceID, same body) gets the same answer, byte for byte.
    let again = terminal(&app, &request).await;
    assert_eq!(again.text, response.text);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn activate_example_activates_card_stock_with_and_without_an_item_amount() {
    let app = TestApp::spawn().await;
    let program_id = program(&app, "GBP", json!({})).await;
    let with_value = import(&app, &program_id, "6006491260550218157", "1234").await;
    let without_value = import(&app, &program_id, "6006491260550218158", "1234").await;

    let mut request = fixture("terminal/activate.request.json");
    substitute(&mut request, PLACEHOLDER, "6006491260550218157");
    let response = terminal(&app, &request).await;
    assert_success(&response, "StoredValueResponse");
    let body = answer(&response, "StoredValueResponse");
    let account =
        request["SaleToPOIRequest"]["StoredValueRequest"]["StoredValueData"][0]["StoredValueAccountID"]
            .clone();
    // Adyen documents no activation answer; it has the shape of its load answer (next test).
    assert_like_example(
        body,
        &json!({
            "Response": {"Result": "Success"},
            "SaleData": request["SaleToPOIRequest"]["StoredValueRequest"]["SaleData"],
            "POIData": {"POITransactionID": {"TransactionID": "", "TimeStamp": ""}},
            "StoredValueResult": [{
                "StoredValueTransactionType": "Activate",
                "ItemAmount": 10,
                "StoredValueAccountStatus": {"StoredValueAccountID": account, "CurrentBalance": 10},
                "Currency": "GBP",
                "HostTransactionID": {"TransactionID": "", "TimeStamp": ""}
            }]
        }),
        &[
            (
                "POIData.POITransactionID.TransactionID",
                Like("a reference", is_reference),
            ),
            (
                "POIData.POITransactionID.TimeStamp",
                Like("a time stamp", is_time_stamp),
            ),
            (
                "StoredValueResult[0].HostTransactionID.TransactionID",
                Like("a transaction id", is_transaction_id),
            ),
            (
                "StoredValueResult[0].HostTransactionID.TimeStamp",
                Like("a time stamp", is_time_stamp),
            ),
        ],
        &[],
    );
    let activated = card(&app, &with_value).await;
    assert_eq!(
        (activated["state"].as_str(), activated["available"].as_i64()),
        (Some("active"), Some(1000))
    );

    // Without ItemAmount: active with nothing on it, and no ItemAmount in the answer.
    let mut request = fixture("terminal/activate.request.json");
    substitute(&mut request, PLACEHOLDER, "6006491260550218158");
    let item = at(
        &mut request,
        "SaleToPOIRequest.StoredValueRequest.StoredValueData[0]",
    );
    item.as_object_mut().unwrap().remove("ItemAmount");
    item.as_object_mut().unwrap().remove("Currency");
    *at(&mut request, "SaleToPOIRequest.MessageHeader.ServiceID") = json!("9265");
    let response = terminal(&app, &request).await;
    assert_success(&response, "StoredValueResponse");
    let result = &answer(&response, "StoredValueResponse")["StoredValueResult"][0];
    assert!(result.get("ItemAmount").is_none(), "{}", response.text);
    assert_eq!(result["StoredValueAccountStatus"]["CurrentBalance"], 0);
    assert_eq!(card(&app, &without_value).await["state"], "active");

    // An active card cannot be activated again.
    *at(&mut request, "SaleToPOIRequest.MessageHeader.ServiceID") = json!("9266");
    let again = terminal(&app, &request).await;
    assert_failure(&again, "StoredValueResponse", "NotAllowed");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn load_example_answers_like_adyens_stored_value_fixture() {
    let app = TestApp::spawn().await;
    // The fixture's card ends with 61 EUR after a load of 10.
    let card_id = active_card(&app, "EUR", "6036280000000011111", "1234", 5100).await;
    let mut request = fixture("terminal/load.request.json");
    substitute(&mut request, "storedvalueidnumber", "6036280000000011111");

    let response = terminal(&app, &request).await;
    response.assert_status(200);
    assert_like_example(
        &response.body,
        &fixture("terminal/load.response.json"),
        &[
            (
                "SaleToPOIResponse.StoredValueResponse.POIData.POITransactionID.TransactionID",
                Like("a reference", is_reference),
            ),
            (
                "SaleToPOIResponse.StoredValueResponse.POIData.POITransactionID.TimeStamp",
                Like("a time stamp", is_time_stamp),
            ),
            // giftd keeps no reconciliation periods.
            (
                "SaleToPOIResponse.StoredValueResponse.POIData.POIReconciliationID",
                Omitted,
            ),
            // The example's card number placeholder, made real.
            (
                "SaleToPOIResponse.StoredValueResponse.StoredValueResult[0].StoredValueAccountStatus.StoredValueAccountID.StoredValueID",
                Is(json!("6036280000000011111")),
            ),
            // A success needs no additional text (the example's is elided: ".....").
            (
                "SaleToPOIResponse.StoredValueResponse.Response.AdditionalResponse",
                Omitted,
            ),
        ],
        &[
            // giftd's own transaction id, for reconciliation with the native API.
            (
                "SaleToPOIResponse.StoredValueResponse.StoredValueResult[0].HostTransactionID.TransactionID",
                Like("a transaction id", is_transaction_id),
            ),
            (
                "SaleToPOIResponse.StoredValueResponse.StoredValueResult[0].HostTransactionID.TimeStamp",
                Like("a time stamp", is_time_stamp),
            ),
        ],
    );
    assert_eq!(available(&app, &card_id).await, 6100);
    let history = app.card_transactions(&card_id).await;
    assert_eq!(history[0]["type"], "load");
    // The sale system's reference of the sale is kept with the transaction.
    assert_eq!(history[0]["reference"], "001");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn unload_pays_out_part_or_all_and_reverse_undoes_a_stored_value_transaction_within_24_hours() {
    let app = TestApp::spawn().await;
    let number = "6006491260550219000";
    let card_id = active_card(&app, "GBP", number, "1234", 2000).await;

    // Load 10.00 GBP, then reverse it with the example's undo-load message.
    let load = terminal(&app, &stored_value("L1", "Load", number, Some("10.00"), "GBP")).await;
    assert_success(&load, "StoredValueResponse");
    let loaded = poi_transaction_id(answer(&load, "StoredValueResponse"));
    assert_eq!(available(&app, &card_id).await, 3000);
    let mut undo = fixture("terminal/reverse.request.json");
    substitute(&mut undo, "<from original POIData>", &loaded);
    let response = terminal(&app, &undo).await;
    assert_success(&response, "StoredValueResponse");
    let result = &answer(&response, "StoredValueResponse")["StoredValueResult"][0];
    assert_eq!(result["StoredValueTransactionType"], "Reverse");
    assert_eq!(result["ItemAmount"], 10);
    assert_eq!(result["StoredValueAccountStatus"]["CurrentBalance"], 20);
    // Named by POITransactionID alone, the card is shown by its last four digits.
    assert_eq!(
        result["StoredValueAccountStatus"]["StoredValueAccountID"]["StoredValueID"],
        "************9000"
    );
    assert_eq!(available(&app, &card_id).await, 2000);
    assert_eq!(app.card_transactions(&card_id).await[0]["type"], "void");

    // A second reverse of it, and a reverse of a transaction giftd never made, are refused.
    *at(&mut undo, "SaleToPOIRequest.MessageHeader.ServiceID") = json!("9272");
    assert_failure(&terminal(&app, &undo).await, "StoredValueResponse", "NotAllowed");
    let mut unknown = fixture("terminal/reverse.request.json");
    substitute(
        &mut unknown,
        "<from original POIData>",
        "4r7i001556529591000.8515565295894301",
    );
    *at(&mut unknown, "SaleToPOIRequest.MessageHeader.ServiceID") = json!("9274");
    assert_failure(&terminal(&app, &unknown).await, "StoredValueResponse", "NotFound");

    // Unload 5.00 of it (the example), then all the rest (no ItemAmount).
    let mut unload = fixture("terminal/unload.request.json");
    substitute(&mut unload, PLACEHOLDER, number);
    let response = terminal(&app, &unload).await;
    assert_success(&response, "StoredValueResponse");
    let result = &answer(&response, "StoredValueResponse")["StoredValueResult"][0];
    assert_eq!(
        (
            result["ItemAmount"].as_f64(),
            result["StoredValueAccountStatus"]["CurrentBalance"].as_f64()
        ),
        (Some(5.0), Some(15.0))
    );
    let all = terminal(&app, &stored_value("U2", "Unload", number, None, "GBP")).await;
    assert_success(&all, "StoredValueResponse");
    let result = &answer(&all, "StoredValueResponse")["StoredValueResult"][0];
    assert_eq!(
        (
            result["ItemAmount"].as_f64(),
            result["StoredValueAccountStatus"]["CurrentBalance"].as_f64()
        ),
        (Some(15.0), Some(0.0))
    );
    assert_eq!(app.card_transactions(&card_id).await[0]["type"], "cashout");
    assert_eq!(card(&app, &card_id).await["state"], "active");
    // Nothing left to unload.
    let empty = terminal(&app, &stored_value("U3", "Unload", number, None, "GBP")).await;
    assert_failure(&empty, "StoredValueResponse", "Refusal");

    // A load is reversible for 24 hours only.
    let load = terminal(&app, &stored_value("L2", "Load", number, Some("7"), "GBP")).await;
    let loaded = poi_transaction_id(answer(&load, "StoredValueResponse"));
    app.clock.advance_seconds(24 * 3600 + 1);
    let mut late = fixture("terminal/reverse.request.json");
    substitute(&mut late, "<from original POIData>", &loaded);
    *at(&mut late, "SaleToPOIRequest.MessageHeader.ServiceID") = json!("9273");
    let item = at(
        &mut late,
        "SaleToPOIRequest.StoredValueRequest.StoredValueData[0]",
    );
    item["ItemAmount"] = json!(7);
    assert_failure(&terminal(&app, &late).await, "StoredValueResponse", "NotAllowed");
    assert_eq!(available(&app, &card_id).await, 700);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn several_stored_value_items_are_applied_all_or_none() {
    let app = TestApp::spawn().await;
    let program_id = program(&app, "EUR", json!({"max_balance": 5000})).await;
    import(&app, &program_id, "6006491260550220001", "1234").await;
    import(&app, &program_id, "6006491260550220002", "1234").await;
    let mut request = stored_value("M1", "Activate", "6006491260550220001", Some("20"), "EUR");
    let second = stored_value("M1", "Activate", "6006491260550220002", Some("30.50"), "EUR")["SaleToPOIRequest"]
        ["StoredValueRequest"]["StoredValueData"][0]
        .clone();
    at(
        &mut request,
        "SaleToPOIRequest.StoredValueRequest.StoredValueData",
    )
    .as_array_mut()
    .unwrap()
    .push(second);
    let response = terminal(&app, &request).await;
    assert_success(&response, "StoredValueResponse");
    let results = answer(&response, "StoredValueResponse")["StoredValueResult"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(results.len(), 2);
    assert_eq!(results[1]["ItemAmount"], json!(30.5));
    assert_eq!(
        results[1]["StoredValueAccountStatus"]["StoredValueAccountID"]["StoredValueID"],
        "6006491260550220002"
    );

    // A load that would pass max_balance on the second card refuses the whole message: the
    // first card's load is not kept either.
    let mut request = stored_value("M2", "Load", "6006491260550220001", Some("1"), "EUR");
    let second = stored_value("M2", "Load", "6006491260550220002", Some("20"), "EUR")["SaleToPOIRequest"]
        ["StoredValueRequest"]["StoredValueData"][0]
        .clone();
    at(
        &mut request,
        "SaleToPOIRequest.StoredValueRequest.StoredValueData",
    )
    .as_array_mut()
    .unwrap()
    .push(second);
    let refused = terminal(&app, &request).await;
    assert_failure(&refused, "StoredValueResponse", "Refusal");
    let balance = terminal(&app, &json!({"SaleToPOIRequest": {
        "MessageHeader": {"ProtocolVersion": "3.0", "MessageClass": "Service", "MessageCategory": "BalanceInquiry",
            "MessageType": "Request", "ServiceID": "B1", "SaleID": "POS1", "POIID": "V400m-324688179"},
        "BalanceInquiryRequest": {"PaymentAccountReq": {"PaymentInstrumentData": {"PaymentInstrumentType": "StoredValue",
            "StoredValueAccountID": {"StoredValueAccountType": "GiftCard", "EntryMode": ["Scanned"],
                "IdentificationType": "PAN", "StoredValueID": "6006491260550220001"}}}}}})).await;
    assert_eq!(
        answer(&balance, "BalanceInquiryResponse")["PaymentAccountStatus"]["CurrentBalance"],
        json!(20)
    );
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn payment_example_redeems_and_authorises_partially_in_either_encoding_of_the_tender_option() {
    let app = TestApp::spawn().await;
    let number = "6036280000000000000";
    let card_id = active_card(&app, "EUR", number, "1234", 2000).await;

    // 25.99 asked of a card with 20.00, partial authorisation allowed as key=value text: 20.00.
    let request = payment(
        "P1",
        number,
        "25.99",
        Some("tenderOption=AllowPartialAuthorisation"),
    );
    let response = terminal(&app, &request).await;
    let body = answer(&response, "PaymentResponse");
    let account = request["SaleToPOIRequest"]["PaymentRequest"]["PaymentData"]["PaymentInstrumentData"]
        ["StoredValueAccountID"]
        .clone();
    // What the card had: the point of sale takes the rest with another tender.
    assert_paid_like_example(body, &app, account, json!(20));
    assert_eq!(available(&app, &card_id).await, 0);
    let history = app.card_transactions(&card_id).await;
    assert_eq!(
        (history[0]["type"].as_str(), history[0]["amount"].as_i64()),
        (Some("redemption"), Some(2000))
    );

    // The tender option as base64 of JSON, as Adyen's Java and .NET libraries write it.
    let card_id = active_card(&app, "EUR", "6036280000000000001", "1234", 1000).await;
    let json_data = base64::engine::general_purpose::STANDARD.encode(
        r#"{"tenderOption":"ReceiptHandler,AllowPartialAuthorisation,AskGratuity","applicationInfo":{}}"#,
    );
    let response = terminal(
        &app,
        &payment("P2", "6036280000000000001", "25.99", Some(&json_data)),
    )
    .await;
    assert_success(&response, "PaymentResponse");
    assert_eq!(
        answer(&response, "PaymentResponse")["PaymentResult"]["AmountsResp"]["AuthorizedAmount"],
        json!(10)
    );
    assert_eq!(available(&app, &card_id).await, 0);

    // A balance that covers the payment: all of it, to the cent.
    let card_id = active_card(&app, "EUR", "6036280000000000002", "1234", 5000).await;
    let response = terminal(&app, &payment("P3", "6036280000000000002", "25.99", None)).await;
    assert_success(&response, "PaymentResponse");
    assert!(
        response.text.contains("\"AuthorizedAmount\":25.99"),
        "{}",
        response.text
    );
    assert_eq!(available(&app, &card_id).await, 2401);

    // Without partial authorisation, a card that cannot pay it all is refused, in the shape of
    // Adyen's failure example, and nothing is taken.
    let card_id = active_card(&app, "EUR", "6036280000000000003", "1234", 1000).await;
    let response = terminal(&app, &payment("P4", "6036280000000000003", "25.99", None)).await;
    response.assert_status(200);
    assert_like_example(
        &response.body,
        &fixture("terminal/payment_error.response.json"),
        &[
            (
                "SaleToPOIResponse.MessageHeader.SaleID",
                Is(json!("POSSystemID12345")),
            ),
            ("SaleToPOIResponse.MessageHeader.ServiceID", Is(json!("P4"))),
            (
                "SaleToPOIResponse.MessageHeader.POIID",
                Is(json!("V400m-324688179")),
            ),
            (
                "SaleToPOIResponse.PaymentResponse.Response.ErrorCondition",
                Is(json!("Refusal")),
            ),
            (
                "SaleToPOIResponse.PaymentResponse.Response.AdditionalResponse",
                Like("message=...", |v| {
                    v.as_str()
                        .is_some_and(|s| s.starts_with("message=Insufficient+funds"))
                }),
            ),
        ],
        &[
            // The schema requires SaleData and POIData in every PaymentResponse.
            (
                "SaleToPOIResponse.PaymentResponse.SaleData.SaleTransactionID.TransactionID",
                Is(json!("27908")),
            ),
            (
                "SaleToPOIResponse.PaymentResponse.SaleData.SaleTransactionID.TimeStamp",
                Is(json!("2019-03-22T09:44:56+00:00")),
            ),
            (
                "SaleToPOIResponse.PaymentResponse.SaleData.SaleReferenceID",
                Is(json!("ORDER-1001")),
            ),
            (
                "SaleToPOIResponse.PaymentResponse.POIData.POITransactionID.TransactionID",
                Like("a reference", is_reference),
            ),
            (
                "SaleToPOIResponse.PaymentResponse.POIData.POITransactionID.TimeStamp",
                Like("a time stamp", is_time_stamp),
            ),
        ],
    );
    assert_eq!(available(&app, &card_id).await, 1000);

    // Other tenders and payment types are not giftd's.
    let mut card_payment = payment("P5", "6036280000000000003", "1", None);
    *at(
        &mut card_payment,
        "SaleToPOIRequest.PaymentRequest.PaymentData.PaymentInstrumentData.PaymentInstrumentType",
    ) = json!("Card");
    assert_failure(
        &terminal(&app, &card_payment).await,
        "PaymentResponse",
        "NotAllowed",
    );
    let mut reservation = payment("P6", "6036280000000000003", "1", None);
    *at(
        &mut reservation,
        "SaleToPOIRequest.PaymentRequest.PaymentData.PaymentType",
    ) = json!("FirstReservation");
    assert_failure(
        &terminal(&app, &reservation).await,
        "PaymentResponse",
        "NotAllowed",
    );
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn an_unreferenced_refund_credits_the_card_as_a_refund_and_a_reversal_takes_it_back() {
    let app = TestApp::spawn().await;
    let number = "6036280000000000000";
    let card_id = active_card(&app, "EUR", number, "1234", 500).await;

    let response = terminal(&app, &fixture("terminal/refund.request.json")).await;
    assert_success(&response, "PaymentResponse");
    let body = answer(&response, "PaymentResponse");
    assert_eq!(body["PaymentResult"]["PaymentType"], "Refund");
    assert_eq!(
        body["PaymentResult"]["AmountsResp"]["AuthorizedAmount"],
        json!(15)
    );
    assert_eq!(available(&app, &card_id).await, 2000);
    // In the ledger: a refund that reverses no earlier transaction.
    let history = app.card_transactions(&card_id).await;
    assert_eq!(
        (
            history[0]["type"].as_str(),
            history[0]["amount"].as_i64(),
            &history[0]["reverses"]
        ),
        (Some("refund"), Some(1500), &Value::Null)
    );

    let reversed = terminal(&app, &reversal("R1", &poi_transaction_id(body), None)).await;
    assert_success(&reversed, "ReversalResponse");
    assert_eq!(answer(&reversed, "ReversalResponse")["ReversedAmount"], json!(15));
    assert_eq!(available(&app, &card_id).await, 500);
    // A part of it cannot be reversed: a refund is reversed whole.
    let refund = terminal(&app, &{
        let mut r = fixture("terminal/refund.request.json");
        *at(&mut r, "SaleToPOIRequest.MessageHeader.ServiceID") = json!("9311");
        r
    })
    .await;
    let partial = terminal(
        &app,
        &reversal(
            "R2",
            &poi_transaction_id(answer(&refund, "PaymentResponse")),
            Some("1"),
        ),
    )
    .await;
    assert_failure(&partial, "ReversalResponse", "MessageFormat");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn reversal_example_voids_a_payment_whole_or_refunds_part_of_it_and_finds_no_unknown_one() {
    let app = TestApp::spawn().await;
    let number = "6036280000000000000";
    let card_id = active_card(&app, "EUR", number, "1234", 5000).await;

    let paid = terminal(&app, &payment("P1", number, "10.00", None)).await;
    let original = poi_transaction_id(answer(&paid, "PaymentResponse"));
    let response = terminal(&app, &reversal("1110151215", &original, None)).await;
    response.assert_status(200);
    assert_like_example(
        &response.body,
        &fixture("terminal/reversal.response.json"),
        &[
            (
                "SaleToPOIResponse.ReversalResponse.POIData.POITransactionID.TransactionID",
                Like("a reference", is_reference),
            ),
            (
                "SaleToPOIResponse.ReversalResponse.POIData.POITransactionID.TimeStamp",
                Like("a time stamp", is_time_stamp),
            ),
            // The example's 10100 is its own amount; giftd's is the payment's, in major units.
            ("SaleToPOIResponse.ReversalResponse.ReversedAmount", Is(json!(10))),
            (
                "SaleToPOIResponse.ReversalResponse.Response.AdditionalResponse",
                Omitted,
            ),
            // The request's header is echoed, not the example's.
            ("SaleToPOIResponse.MessageHeader.SaleID", Is(json!("John"))),
            (
                "SaleToPOIResponse.MessageHeader.ServiceID",
                Is(json!("1110151215")),
            ),
            (
                "SaleToPOIResponse.MessageHeader.POIID",
                Is(json!("MX925-260193322")),
            ),
        ],
        &[],
    );
    assert_eq!(available(&app, &card_id).await, 5000);
    assert_eq!(app.card_transactions(&card_id).await[0]["type"], "void");
    // Reversed already.
    assert_failure(
        &terminal(&app, &reversal("R2", &original, None)).await,
        "ReversalResponse",
        "NotAllowed",
    );

    // Partial reversals refund; a full one after them refunds the rest.
    let paid = terminal(&app, &payment("P2", number, "10.00", None)).await;
    let original = poi_transaction_id(answer(&paid, "PaymentResponse"));
    let part = terminal(&app, &reversal("R3", &original, Some("4.00"))).await;
    assert_eq!(answer(&part, "ReversalResponse")["ReversedAmount"], json!(4));
    let rest = terminal(&app, &reversal("R4", &original, None)).await;
    assert_eq!(answer(&rest, "ReversalResponse")["ReversedAmount"], json!(6));
    let history = app.card_transactions(&card_id).await;
    assert_eq!(
        (history[0]["type"].as_str(), history[1]["type"].as_str()),
        (Some("refund"), Some("refund"))
    );
    assert_eq!(available(&app, &card_id).await, 5000);
    let more = terminal(&app, &reversal("R5", &original, Some("0.01"))).await;
    assert_failure(&more, "ReversalResponse", "Refusal");

    // The example as it is: a POITransactionID giftd never gave.
    let mut unknown = fixture("terminal/reversal.request.json");
    *at(&mut unknown, "SaleToPOIRequest.MessageHeader.ServiceID") = json!("R7");
    let unknown = terminal(&app, &unknown).await;
    assert_failure(&unknown, "ReversalResponse", "NotFound");
    // A stored value load is undone with a Reverse, not a ReversalRequest.
    let load = terminal(&app, &stored_value("L1", "Load", number, Some("1"), "EUR")).await;
    let loaded = poi_transaction_id(answer(&load, "StoredValueResponse"));
    assert_failure(
        &terminal(&app, &reversal("R6", &loaded, None)).await,
        "ReversalResponse",
        "NotAllowed",
    );
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_repeated_service_id_replays_the_first_answer_and_never_acts_twice() {
    let app = TestApp::spawn().await;
    let number = "6036280000000000000";
    let card_id = active_card(&app, "EUR", number, "1234", 5000).await;

    let request = payment("S1", number, "10.00", None);
    let first = terminal(&app, &request).await;
    assert_success(&first, "PaymentResponse");
    let again = terminal(&app, &request).await;
    assert_eq!(again.text, first.text);
    assert_eq!(available(&app, &card_id).await, 4000);
    // Key order and spacing do not make another message.
    let reordered = serde_json::to_string_pretty(&request).unwrap();
    let retry = app
        .send(
            app.client
                .post(app.url("/sync"))
                .header("x-api-key", &app.api_key)
                .body(reordered),
        )
        .await;
    assert_eq!(retry.text, first.text);

    // The same ServiceID with another message is rejected, and does nothing.
    let other = terminal(&app, &payment("S1", number, "7.00", None)).await;
    assert_rejected(&other);
    assert_eq!(other.body["SaleToPOIRequest"]["MessageHeader"]["ServiceID"], "S1");
    assert!(
        other.body["SaleToPOIRequest"]["EventNotification"]["EventDetails"]
            .as_str()
            .is_some_and(|d| d.contains("ServiceID+S1+was+already+used")),
        "{}",
        other.text
    );
    assert_eq!(available(&app, &card_id).await, 4000);

    // The ServiceID is unique per SaleID and POIID: another terminal may use it.
    let mut elsewhere = payment("S1", number, "10.00", None);
    *at(&mut elsewhere, "SaleToPOIRequest.MessageHeader.POIID") = json!("V400m-999999999");
    assert_success(&terminal(&app, &elsewhere).await, "PaymentResponse");
    assert_eq!(available(&app, &card_id).await, 3000);

    // A refusal is remembered as well: the retry is refused the same way even after a load.
    let refused = payment("S2", number, "100.00", None);
    let refusal = terminal(&app, &refused).await;
    assert_failure(&refusal, "PaymentResponse", "Refusal");
    app.post(&format!("/v1/cards/{card_id}/load"), json!({"amount": 20000}))
        .await
        .assert_status(200);
    assert_eq!(terminal(&app, &refused).await.text, refusal.text);

    // After 48 hours the ServiceID is free again.
    app.clock.advance_seconds(48 * 3600 + 1);
    let later = terminal(&app, &payment("S1", number, "7.00", None)).await;
    assert_success(&later, "PaymentResponse");
    assert_eq!(available(&app, &card_id).await, 22300);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_pin_sent_with_the_card_is_checked_and_wrong_ones_count_toward_the_lockout() {
    let app = TestApp::spawn().await;
    let number = "6036280000000000000";
    active_card(&app, "EUR", number, "4821", 5000).await;
    let with_pin = |service_id: &str, pin: &str| {
        let mut body = payment(service_id, number, "1.00", None);
        let account = at(
            &mut body,
            "SaleToPOIRequest.PaymentRequest.PaymentData.PaymentInstrumentData.StoredValueAccountID",
        );
        account["SecurityCode"] = json!(pin);
        body
    };

    let right = terminal(&app, &with_pin("K1", "4821")).await;
    assert_success(&right, "PaymentResponse");
    // The PIN is not echoed.
    assert!(!right.text.contains("4821"), "{}", right.text);
    assert_failure(
        &terminal(&app, &with_pin("K2", "0000")).await,
        "PaymentResponse",
        "WrongPIN",
    );
    // A PIN no card can have counts like any wrong one.
    assert_failure(
        &terminal(&app, &with_pin("K3", "!")).await,
        "PaymentResponse",
        "WrongPIN",
    );
    for i in 4..12 {
        terminal(&app, &with_pin(&format!("K{i}"), "0000")).await;
    }
    // Ten wrong PINs lock the number, even for the right PIN and for a swipe without one.
    let locked = terminal(&app, &with_pin("K20", "4821")).await;
    assert_failure(&locked, "PaymentResponse", "Refusal");
    assert!(locked.text.contains("Too+many+wrong+PINs"), "{}", locked.text);
    assert_failure(
        &terminal(&app, &payment("K21", number, "1.00", None)).await,
        "PaymentResponse",
        "Refusal",
    );
    app.clock.advance_seconds(31 * 60);
    assert_success(&terminal(&app, &with_pin("K22", "4821")).await, "PaymentResponse");

    // Without a PIN an unknown number is an invalid card; with one it is a wrong PIN (alike).
    let unknown = payment("K23", "6036289999999999999", "1.00", None);
    assert_failure(&terminal(&app, &unknown).await, "PaymentResponse", "InvalidCard");
    let mut unknown = with_pin("K24", "1234");
    substitute(&mut unknown, number, "6036289999999999999");
    assert_failure(&terminal(&app, &unknown).await, "PaymentResponse", "WrongPIN");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn the_card_number_may_come_as_value_and_amounts_follow_the_currency_exponent() {
    let app = TestApp::spawn().await;
    active_card(&app, "JPY", "6036280000000000777", "1234", 1000).await;
    // Older clients (Adyen's Node library) name the number `Value`.
    let mut request = fixture("terminal/balance_inquiry.request.json");
    let account = at(
        &mut request,
        "SaleToPOIRequest.BalanceInquiryRequest.PaymentAccountReq.PaymentInstrumentData.StoredValueAccountID",
    );
    let account = account.as_object_mut().unwrap();
    account.remove("StoredValueID");
    account.insert("Value".into(), json!("6036280000000000777"));
    let response = terminal(&app, &request).await;
    let status = &answer(&response, "BalanceInquiryResponse")["PaymentAccountStatus"];
    assert_eq!(
        (status["CurrentBalance"].clone(), status["Currency"].clone()),
        (json!(1000), json!("JPY"))
    );

    // Yen have no minor unit: 10.5 JPY cannot be paid.
    let mut body = payment("J1", "6036280000000000777", "10.5", None);
    *at(
        &mut body,
        "SaleToPOIRequest.PaymentRequest.PaymentTransaction.AmountsReq.Currency",
    ) = json!("JPY");
    assert_failure(&terminal(&app, &body).await, "PaymentResponse", "MessageFormat");
    *at(
        &mut body,
        "SaleToPOIRequest.PaymentRequest.PaymentTransaction.AmountsReq.RequestedAmount",
    ) = json!(300);
    let paid = terminal(&app, &body).await;
    assert!(paid.text.contains("\"AuthorizedAmount\":300"), "{}", paid.text);
    // A currency other than the card's is not allowed.
    let mut euros = payment("J2", "6036280000000000777", "1", None);
    *at(
        &mut euros,
        "SaleToPOIRequest.PaymentRequest.PaymentTransaction.AmountsReq.Currency",
    ) = json!("EUR");
    assert_failure(&terminal(&app, &euros).await, "PaymentResponse", "NotAllowed");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn messages_that_cannot_be_read_are_rejected_like_adyens_cloud_and_never_with_a_5xx() {
    let app = TestApp::spawn().await;
    let raw = |body: &'static str| {
        app.send(
            app.client
                .post(app.url("/sync"))
                .header("X-API-Key", &app.api_key)
                .header("content-type", "application/json")
                .body(body),
        )
    };
    let empty = raw("").await;
    empty.assert_status(200);
    assert_eq!(
        empty.body["SaleToPOIRequest"]["EventNotification"]["EventToNotify"],
        "Reject"
    );
    for body in [
        "not json",
        "[]",
        r#"{"SaleToPOIResponse": {}}"#,
        r#"{"SaleToPOIRequest": "text"}"#,
        r#"{"SaleToPOIRequest": {}}"#,
        r#"{"SaleToPOIRequest": {"MessageHeader": {"MessageClass": "Service"}}}"#,
    ] {
        let response = raw(body).await;
        // Nothing of a header could be read, so none is echoed.
        assert_rejected_echoing(&response, false);
    }
    let header = |category: &str, class: &str, service_id: &str| {
        json!({"SaleToPOIRequest": {"MessageHeader": {
            "ProtocolVersion": "3.0", "MessageClass": class, "MessageCategory": category,
            "MessageType": "Request", "ServiceID": service_id, "SaleID": "POS1", "POIID": "V400m-1"}}})
    };
    // A category giftd does not handle, an event, a ServiceID past nexo's 10 characters.
    for body in [
        header("Login", "Service", "X1"),
        header("Payment", "Event", "X2"),
        header("Payment", "Service", "12345678901"),
    ] {
        let response = terminal(&app, &body).await;
        assert_rejected(&response);
        assert_eq!(
            response.body["SaleToPOIRequest"]["MessageHeader"]["POIID"],
            "V400m-1"
        );
    }
    let large = format!(
        r#"{{"SaleToPOIRequest": {{"pad": "{}"}}}}"#,
        "x".repeat(70 * 1024)
    );
    let response = app
        .send(
            app.client
                .post(app.url("/sync"))
                .header("X-API-Key", &app.api_key)
                .body(large),
        )
        .await;
    response.assert_status(200);
    assert_eq!(
        response.body["SaleToPOIRequest"]["EventNotification"]["EventToNotify"],
        "Reject"
    );

    // A readable message with a bad field is answered, with MessageFormat.
    let mut no_amount = header("Payment", "Service", "F1");
    no_amount["SaleToPOIRequest"]["PaymentRequest"] = json!({"SaleData": {}, "PaymentTransaction": {}});
    assert_failure(
        &terminal(&app, &no_amount).await,
        "PaymentResponse",
        "MessageFormat",
    );
    let mut bad_amount = payment("F2", "6036280000000000000", "1", None);
    *at(
        &mut bad_amount,
        "SaleToPOIRequest.PaymentRequest.PaymentTransaction.AmountsReq.RequestedAmount",
    ) = json!("ten euros");
    let response = terminal(&app, &bad_amount).await;
    assert_failure(&response, "PaymentResponse", "MessageFormat");
    assert!(response.text.contains("RequestedAmount"), "{}", response.text);
    let mut negative = payment("F3", "6036280000000000000", "-5", None);
    *at(&mut negative, "SaleToPOIRequest.MessageHeader.ServiceID") = json!("F3");
    assert_failure(
        &terminal(&app, &negative).await,
        "PaymentResponse",
        "MessageFormat",
    );
    let missing_body = header("StoredValue", "Service", "F4");
    assert_failure(
        &terminal(&app, &missing_body).await,
        "StoredValueResponse",
        "MessageFormat",
    );
    // No card presented: the terminal could not read one.
    let mut no_card = payment("F5", "6036280000000000000", "1", None);
    at(
        &mut no_card,
        "SaleToPOIRequest.PaymentRequest.PaymentData.PaymentInstrumentData",
    )
    .as_object_mut()
    .unwrap()
    .remove("StoredValueAccountID");
    assert_failure(&terminal(&app, &no_card).await, "PaymentResponse", "InvalidCard");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn the_api_key_decides_the_merchant_and_a_card_of_another_merchant_is_unknown() {
    let app = TestApp::spawn().await;
    active_card(&app, "GBP", "9826150911219687", "4821", 9875).await;
    let request = fixture("terminal/balance_inquiry.request.json");
    let unauthorized = terminal_as(&app, &request, "gk_wrong").await;
    unauthorized.assert_status(401);
    assert_eq!(unauthorized.body["errorType"], "security");
    let missing = app.send(app.client.post(app.url("/sync")).json(&request)).await;
    missing.assert_status(401);

    let other = app.another_merchant().await;
    let response = terminal_as(&app, &request, &other).await;
    assert_failure(&response, "BalanceInquiryResponse", "InvalidCard");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_copies_of_one_message_pay_once_and_get_one_answer() {
    let app = TestApp::spawn().await;
    let number = "6036280000000000000";
    let card_id = active_card(&app, "EUR", number, "1234", 5000).await;
    let request = payment("C1", number, "10.00", None);
    let answers = futures::future::join_all((0..20).map(|_| terminal(&app, &request))).await;
    let first = &answers[0];
    assert_success(first, "PaymentResponse");
    for answer in &answers {
        assert_eq!(answer.text, first.text);
    }
    assert_eq!(available(&app, &card_id).await, 4000);
    let redemptions = app.card_transactions_of_type(&card_id, "redemption").await;
    assert_eq!(redemptions.len(), 1);
    TestApp::assert_sound(&app.verify().await);
}

// ---- recovery: TransactionStatus and Abort ----

/// A TransactionStatusRequest from the seed's sale system (POSSystemID12345 on V400m-324688179)
/// under `service_id`, with `reference` as its MessageReference (none when `None`).
fn transaction_status(service_id: &str, reference: Option<Value>) -> Value {
    let mut request =
        json!({"ReceiptReprintFlag": true, "DocumentQualifier": ["CashierReceipt", "CustomerReceipt"]});
    if let Some(reference) = reference {
        request["MessageReference"] = reference;
    }
    json!({"SaleToPOIRequest": {
        "MessageHeader": {"ProtocolVersion": "3.0", "MessageClass": "Service", "MessageCategory": "TransactionStatus",
            "MessageType": "Request", "ServiceID": service_id, "SaleID": "POSSystemID12345", "POIID": "V400m-324688179"},
        "TransactionStatusRequest": request
    }})
}

/// The stored answer a TransactionStatus repeated: asserts `Success`, the echoed reference and
/// that the repeated header and body are the original answer's own, and returns the body.
#[track_caller]
fn assert_repeats(status: &TestResponse, original: &TestResponse, category: &str, service_id: &str) {
    let body = answer(status, "TransactionStatusResponse");
    assert_eq!(body["Response"], json!({"Result": "Success"}), "{}", status.text);
    assert_eq!(
        status.body["SaleToPOIResponse"]["MessageHeader"]["MessageCategory"],
        "TransactionStatus"
    );
    let original_header = &original.body["SaleToPOIResponse"]["MessageHeader"];
    assert_eq!(
        body["MessageReference"],
        json!({"MessageCategory": category, "ServiceID": service_id,
               "SaleID": original_header["SaleID"], "POIID": original_header["POIID"]})
    );
    let repeated = &body["RepeatedMessageResponse"];
    assert_eq!(&repeated["MessageHeader"], original_header);
    let name = format!("{category}Response");
    assert_eq!(
        repeated["RepeatedResponseMessageBody"],
        json!({ name.clone(): original.body["SaleToPOIResponse"][&name] }),
        "{}",
        status.text
    );
}

#[tokio::test]
async fn a_lost_payment_is_recovered_with_transaction_status_whether_it_was_approved_or_declined() {
    let app = TestApp::spawn().await;
    let number = "6036280000000000000";
    let card_id = active_card(&app, "EUR", number, "1234", 5000).await;
    let paid = terminal(&app, &payment("P1", number, "10.00", None)).await;
    assert_success(&paid, "PaymentResponse");
    let declined = terminal(&app, &payment("P2", number, "100.00", None)).await;
    assert_failure(&declined, "PaymentResponse", "Refusal");

    let reference = |service_id: &str| json!({"SaleID": "POSSystemID12345", "ServiceID": service_id, "MessageCategory": "Payment"});
    let status = terminal(&app, &transaction_status("T1", Some(reference("P1")))).await;
    assert_repeats(&status, &paid, "Payment", "P1");
    // The declined one is recovered with its own Failure inside a successful status.
    let status = terminal(&app, &transaction_status("T2", Some(reference("P2")))).await;
    assert_repeats(&status, &declined, "Payment", "P2");
    // SaleID and POIID default to the header's; the category may be left out.
    let status = terminal(&app, &transaction_status("T3", Some(json!({"ServiceID": "P1"})))).await;
    assert_repeats(&status, &paid, "Payment", "P1");
    // Asking moved nothing, and asking again answers the same.
    assert_eq!(available(&app, &card_id).await, 4000);
    let again = terminal(&app, &transaction_status("T1", Some(reference("P1")))).await;
    assert_repeats(&again, &paid, "Payment", "P1");
    // The POS retrying the payment itself still gets the first answer and pays nothing more.
    let retried = terminal(&app, &payment("P1", number, "10.00", None)).await;
    assert_eq!(retried.text, paid.text);
    assert_eq!(available(&app, &card_id).await, 4000);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_lost_load_is_recovered_and_an_unknown_or_expired_reference_is_not_found() {
    let app = TestApp::spawn().await;
    let number = "6036280000000000000";
    let card_id = active_card(&app, "EUR", number, "1234", 5000).await;
    let loaded = terminal(&app, &stored_value("L1", "Load", number, Some("25.00"), "EUR")).await;
    assert_success(&loaded, "StoredValueResponse");
    assert_eq!(available(&app, &card_id).await, 7500);

    let mut status = transaction_status(
        "T1",
        Some(json!({"SaleID": "POS1", "ServiceID": "L1", "MessageCategory": "StoredValue"})),
    );
    let recovered = terminal(&app, &status).await;
    assert_repeats(&recovered, &loaded, "StoredValue", "L1");

    let not_found = |reference: Value| transaction_status("T2", Some(reference));
    for reference in [
        // No message under this ServiceID.
        json!({"SaleID": "POS1", "ServiceID": "L9", "MessageCategory": "StoredValue"}),
        // The message exists, but not in this category.
        json!({"SaleID": "POS1", "ServiceID": "L1", "MessageCategory": "Payment"}),
        // Another terminal's ServiceID space.
        json!({"SaleID": "POS1", "POIID": "V400m-999999999", "ServiceID": "L1"}),
        // A category giftd never answers.
        json!({"SaleID": "POS1", "ServiceID": "L1", "MessageCategory": "CardAcquisition"}),
    ] {
        let answer = terminal(&app, &not_found(reference.clone())).await;
        assert_failure(&answer, "TransactionStatusResponse", "NotFound");
        let body = &answer.body["SaleToPOIResponse"]["TransactionStatusResponse"];
        assert!(
            body.get("RepeatedMessageResponse").is_none(),
            "{reference}: {}",
            answer.text
        );
    }
    // A reference that cannot name a message is a format failure, and moves nothing.
    for (reference, field) in [
        (
            json!({"SaleID": "POS1", "ServiceID": "12345678901"}),
            "MessageReference.ServiceID",
        ),
        (
            json!({"SaleID": "", "ServiceID": "L1"}),
            "MessageReference.SaleID",
        ),
    ] {
        let answer = terminal(&app, &not_found(reference)).await;
        assert_failure(&answer, "TransactionStatusResponse", "MessageFormat");
        let details =
            answer.body["SaleToPOIResponse"]["TransactionStatusResponse"]["Response"]["AdditionalResponse"]
                .as_str()
                .unwrap();
        assert!(details.contains(field), "{details}");
    }
    // Another merchant does not see it.
    let other = app.another_merchant().await;
    let answer = terminal_as(&app, &status, &other).await;
    assert_failure(&answer, "TransactionStatusResponse", "NotFound");

    // After the 48 hours a ServiceID is kept, it is forgotten.
    app.clock.advance_seconds(48 * 3600 + 1);
    *at(&mut status, "SaleToPOIRequest.MessageHeader.ServiceID") = json!("T3");
    assert_failure(
        &terminal(&app, &status).await,
        "TransactionStatusResponse",
        "NotFound",
    );
    assert_eq!(available(&app, &card_id).await, 7500);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn transaction_status_without_a_service_id_answers_the_devices_latest_transaction() {
    let app = TestApp::spawn().await;
    let number = "6036280000000000000";
    active_card(&app, "EUR", number, "1234", 5000).await;
    // Nothing yet from this device.
    let none = terminal(&app, &transaction_status("T0", None)).await;
    assert_failure(&none, "TransactionStatusResponse", "NotFound");

    let first = terminal(&app, &payment("P1", number, "10.00", None)).await;
    assert_success(&first, "PaymentResponse");
    app.clock.advance_seconds(1);
    let second = terminal(&app, &payment("P2", number, "5.00", None)).await;
    assert_success(&second, "PaymentResponse");
    app.clock.advance_seconds(1);
    // A balance inquiry is no transaction: the latest transaction is still the second payment.
    let mut inquiry = fixture("terminal/balance_inquiry.request.json");
    substitute(&mut inquiry, "9826150911219687", number);
    *at(&mut inquiry, "SaleToPOIRequest.MessageHeader.ServiceID") = json!("B1");
    assert_success(&terminal(&app, &inquiry).await, "BalanceInquiryResponse");

    let latest = terminal(&app, &transaction_status("T1", None)).await;
    assert_repeats(&latest, &second, "Payment", "P2");
    // An empty MessageReference means the same; naming the category picks among them.
    let latest = terminal(&app, &transaction_status("T2", Some(json!({})))).await;
    assert_repeats(&latest, &second, "Payment", "P2");
    let inquiry_status = terminal(
        &app,
        &transaction_status("T3", Some(json!({"MessageCategory": "BalanceInquiry"}))),
    )
    .await;
    let body = answer(&inquiry_status, "TransactionStatusResponse");
    assert_eq!(
        body["MessageReference"]["ServiceID"], "B1",
        "{}",
        inquiry_status.text
    );
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn an_abort_is_answered_with_an_empty_200_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let number = "6036280000000000000";
    let card_id = active_card(&app, "EUR", number, "1234", 5000).await;
    let paid = terminal(&app, &payment("P1", number, "10.00", None)).await;
    assert_success(&paid, "PaymentResponse");

    let abort = json!({"SaleToPOIRequest": {
        "MessageHeader": {"ProtocolVersion": "3.0", "MessageClass": "Service", "MessageCategory": "Abort",
            "MessageType": "Request", "ServiceID": "A1", "SaleID": "POSSystemID12345", "POIID": "V400m-324688179"},
        "AbortRequest": {"AbortReason": "MerchantAbort",
            "MessageReference": {"SaleID": "POSSystemID12345", "ServiceID": "P1", "MessageCategory": "Payment"}}
    }});
    let answered = terminal(&app, &abort).await;
    answered.assert_status(200);
    assert_eq!(answered.text, "", "an abort has no answer body");
    assert_eq!(available(&app, &card_id).await, 4000);
    // The payment's own answer, recovered, tells what happened: it was approved.
    let status = terminal(
        &app,
        &transaction_status(
            "T1",
            Some(json!({"ServiceID": "P1", "MessageCategory": "Payment"})),
        ),
    )
    .await;
    assert_repeats(&status, &paid, "Payment", "P1");

    // An Abort without its AbortRequest, or without a reason, is rejected like any malformed message.
    let mut bare = abort.clone();
    bare["SaleToPOIRequest"]
        .as_object_mut()
        .unwrap()
        .remove("AbortRequest");
    assert_rejected(&terminal(&app, &bare).await);
    let mut reasonless = abort;
    reasonless["SaleToPOIRequest"]["AbortRequest"]
        .as_object_mut()
        .unwrap()
        .remove("AbortReason");
    assert_rejected(&terminal(&app, &reasonless).await);
    TestApp::assert_sound(&app.verify().await);
}

// ---- cash-out and deactivation: `redemptionType` in SaleToAcquirerData ----

/// The card's state as the native API shows it.
async fn state(app: &TestApp, card_id: &str) -> String {
    card(app, card_id).await["state"]
        .as_str()
        .expect("a state")
        .to_owned()
}

/// The failure's `AdditionalResponse` holds `text` (URL-encoded, as Adyen writes it).
#[track_caller]
fn assert_additional_response_has(response: &TestResponse, name: &str, text: &str) {
    let additional = answer(response, name)["Response"]["AdditionalResponse"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // application/x-www-form-urlencoded, as serde_urlencoded writes it.
    let fragment: String = text
        .bytes()
        .map(|b| match b {
            b' ' => "+".to_owned(),
            b if b.is_ascii_alphanumeric() || b"*-._".contains(&b) => char::from(b).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect();
    assert!(
        additional.contains(&fragment),
        "{fragment} not in {}",
        response.text
    );
}

#[tokio::test]
async fn a_cashback_pays_out_the_whole_balance_in_either_encoding_and_closes_the_card() {
    let app = TestApp::spawn().await;
    let number = "6036280000000000010";
    let card_id = active_card(&app, "EUR", number, "1234", 2599).await;

    // Key=value text: the whole 25.99 is paid out, in the shape of a payment's answer.
    let request = payment("C1", number, "25.99", Some("redemptionType=cashback"));
    let paid = terminal(&app, &request).await;
    let account = request["SaleToPOIRequest"]["PaymentRequest"]["PaymentData"]["PaymentInstrumentData"]
        ["StoredValueAccountID"]
        .clone();
    // What was paid out in cash.
    assert_paid_like_example(answer(&paid, "PaymentResponse"), &app, account, json!(25.99));
    let closed = card(&app, &card_id).await;
    assert_eq!(
        (
            closed["state"].as_str(),
            closed["closed_reason"].as_str(),
            closed["balance"].as_i64()
        ),
        (Some("closed"), Some("deactivated"), Some(0))
    );
    let history = app.card_transactions(&card_id).await;
    assert_eq!(history.len(), 2, "activation, then one cashout");
    assert_eq!(
        (
            history[0]["type"].as_str(),
            history[0]["amount"].as_i64(),
            history[0]["reference"].as_str()
        ),
        (Some("cashout"), Some(2599), Some("27908"))
    );

    // A retry under the ServiceID, and a TransactionStatus, repeat the answer and pay nothing more.
    assert_eq!(terminal(&app, &request).await.text, paid.text);
    let status = terminal(&app, &transaction_status("T1", Some(json!({"ServiceID": "C1"})))).await;
    assert_repeats(&status, &paid, "Payment", "C1");
    assert_eq!(app.card_transactions(&card_id).await.len(), 2);

    // The closed card refuses whatever comes next: a payment, another cashback, a refund.
    let after = terminal(&app, &payment("C2", number, "1.00", None)).await;
    assert_failure(&after, "PaymentResponse", "InvalidCard");
    let again = terminal(
        &app,
        &payment("C3", number, "1.00", Some("redemptionType=cashback")),
    )
    .await;
    assert_failure(&again, "PaymentResponse", "InvalidCard");
    let mut refund = payment("C4", number, "1.00", None);
    *at(
        &mut refund,
        "SaleToPOIRequest.PaymentRequest.PaymentData.PaymentType",
    ) = json!("Refund");
    assert_failure(&terminal(&app, &refund).await, "PaymentResponse", "InvalidCard");

    // Base64 of a JSON object, as Adyen's Java and .NET libraries write SaleToAcquirerData.
    let number = "6036280000000000011";
    let card_id = active_card(&app, "EUR", number, "1234", 1000).await;
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(r#"{"redemptionType":"cashback","tenderOption":"ReceiptHandler","applicationInfo":{}}"#);
    let paid = terminal(&app, &payment("C5", number, "10", Some(&encoded))).await;
    assert_success(&paid, "PaymentResponse");
    assert_eq!(
        answer(&paid, "PaymentResponse")["PaymentResult"]["AmountsResp"]["AuthorizedAmount"],
        json!(10)
    );
    assert_eq!(state(&app, &card_id).await, "closed");
    assert_eq!(app.card_transactions(&card_id).await[0]["type"], "cashout");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn a_cashback_of_part_of_the_balance_or_of_held_value_is_refused_and_takes_nothing() {
    let app = TestApp::spawn().await;
    let number = "6036280000000000020";
    let card_id = active_card(&app, "EUR", number, "1234", 2500).await;

    // Part of it: giftd's programs have no setting that allows a partial cash-out.
    let part = terminal(
        &app,
        &payment("C1", number, "10.00", Some("redemptionType=cashback")),
    )
    .await;
    assert_failure(&part, "PaymentResponse", "NotAllowed");
    assert_additional_response_has(&part, "PaymentResponse", "25 EUR");
    assert_additional_response_has(&part, "PaymentResponse", "partial cash-out");
    // Partial authorisation does not make a partial cash-out.
    let allowed = terminal(
        &app,
        &payment(
            "C2",
            number,
            "10.00",
            Some("redemptionType=cashback&tenderOption=AllowPartialAuthorisation"),
        ),
    )
    .await;
    assert_failure(&allowed, "PaymentResponse", "NotAllowed");
    // More than the card holds, and nothing at all.
    let more = terminal(
        &app,
        &payment("C3", number, "25.01", Some("redemptionType=cashback")),
    )
    .await;
    assert_failure(&more, "PaymentResponse", "Refusal");
    let nothing = terminal(&app, &payment("C4", number, "0", Some("redemptionType=cashback"))).await;
    assert_failure(&nothing, "PaymentResponse", "MessageFormat");

    // Value held for another sale stays held: the card is not closed under it.
    app.post(&format!("/v1/cards/{card_id}/holds"), json!({"amount": 500}))
        .await
        .assert_status(201);
    let held = terminal(
        &app,
        &payment("C5", number, "20.00", Some("redemptionType=cashback")),
    )
    .await;
    assert_failure(&held, "PaymentResponse", "NotAllowed");
    assert_additional_response_has(&held, "PaymentResponse", "pending holds");

    let card = card(&app, &card_id).await;
    assert_eq!(
        (
            card["state"].as_str(),
            card["balance"].as_i64(),
            card["available"].as_i64()
        ),
        (Some("active"), Some(2500), Some(2000))
    );
    assert_eq!(app.card_transactions(&card_id).await[0]["type"], "hold");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn deactivate_is_refused_while_value_remains_and_closes_an_empty_card() {
    let app = TestApp::spawn().await;
    let number = "6036280000000000030";
    let card_id = active_card(&app, "EUR", number, "1234", 500).await;

    // With value on it: refused, and the answer says how to pay it out.
    let refused = terminal(
        &app,
        &payment("D1", number, "0", Some("redemptionType=deactivate")),
    )
    .await;
    assert_failure(&refused, "PaymentResponse", "NotAllowed");
    assert_additional_response_has(&refused, "PaymentResponse", "cashback|deactivate");
    // A deactivation pays nothing out: any RequestedAmount but 0 is a mistake.
    let paying = terminal(
        &app,
        &payment("D2", number, "5.00", Some("redemptionType=deactivate")),
    )
    .await;
    assert_failure(&paying, "PaymentResponse", "MessageFormat");
    assert_eq!(state(&app, &card_id).await, "active");
    assert_eq!(available(&app, &card_id).await, 500);

    // Spent to nothing, then deactivated (RequestedAmount left out): Success, 0 authorised, no
    // transaction to name.
    assert_success(
        &terminal(&app, &payment("D3", number, "5.00", None)).await,
        "PaymentResponse",
    );
    let mut request = payment("D4", number, "0", Some("redemptionType=deactivate"));
    at(
        &mut request,
        "SaleToPOIRequest.PaymentRequest.PaymentTransaction.AmountsReq",
    )
    .as_object_mut()
    .expect("AmountsReq")
    .remove("RequestedAmount");
    let closed = terminal(&app, &request).await;
    assert_success(&closed, "PaymentResponse");
    let result = &answer(&closed, "PaymentResponse")["PaymentResult"];
    assert_eq!(
        result["AmountsResp"],
        json!({"AuthorizedAmount": 0, "Currency": "EUR"})
    );
    assert_eq!(
        result["PaymentAcquirerData"],
        json!({"MerchantID": app.merchant_id.clone(), "AcquirerPOIID": "V400m-324688179"})
    );
    assert_eq!(state(&app, &card_id).await, "closed");
    let history = app.card_transactions(&card_id).await;
    assert_eq!(history[0]["type"], "redemption", "closing moved no value");

    // Its POITransactionID names nothing to reverse; the closed card takes no second deactivation.
    let reference = poi_transaction_id(answer(&closed, "PaymentResponse"));
    assert_failure(
        &terminal(&app, &reversal("D5", &reference, None)).await,
        "ReversalResponse",
        "NotFound",
    );
    let twice = terminal(
        &app,
        &payment("D6", number, "0", Some("redemptionType=deactivate")),
    )
    .await;
    assert_failure(&twice, "PaymentResponse", "NotAllowed");

    // An empty card deactivated in the base64 encoding.
    let number = "6036280000000000031";
    let card_id = active_card(&app, "EUR", number, "1234", 0).await;
    let encoded = base64::engine::general_purpose::STANDARD.encode(r#"{"redemptionType":"deactivate"}"#);
    assert_success(
        &terminal(&app, &payment("D7", number, "0", Some(&encoded))).await,
        "PaymentResponse",
    );
    assert_eq!(state(&app, &card_id).await, "closed");
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn cashback_and_deactivate_chained_pay_out_and_close_in_one_transaction_that_is_never_reversed() {
    let app = TestApp::spawn().await;
    let number = "6036280000000000040";
    let card_id = active_card(&app, "EUR", number, "1234", 1234).await;

    // Piped as Adyen's classic libraries wrote it, URL-encoded or not.
    let paid = terminal(
        &app,
        &payment(
            "X1",
            number,
            "12.34",
            Some("redemptionType=cashback%7Cdeactivate"),
        ),
    )
    .await;
    assert_success(&paid, "PaymentResponse");
    let body = answer(&paid, "PaymentResponse");
    assert_eq!(
        body["PaymentResult"]["AmountsResp"]["AuthorizedAmount"],
        json!(12.34)
    );
    let closed = card(&app, &card_id).await;
    assert_eq!(
        (closed["state"].as_str(), closed["balance"].as_i64()),
        (Some("closed"), Some(0))
    );
    let history = app.card_transactions(&card_id).await;
    assert_eq!(history.len(), 2, "activation, then one cashout");
    assert_eq!(
        (history[0]["type"].as_str(), history[0]["amount"].as_i64()),
        (Some("cashout"), Some(1234))
    );
    assert_eq!(
        body["PaymentResult"]["PaymentAcquirerData"]["AcquirerTransactionID"]["TransactionID"],
        history[0]["id"]
    );

    // The cash has gone and the card is closed for good: neither a ReversalRequest nor a
    // stored value Reverse brings either back.
    let original = poi_transaction_id(body);
    let reversed = terminal(&app, &reversal("X2", &original, None)).await;
    assert_failure(&reversed, "ReversalResponse", "NotAllowed");
    assert_additional_response_has(&reversed, "ReversalResponse", "never reopened");
    let mut undo = fixture("terminal/reverse.request.json");
    substitute(&mut undo, "<from original POIData>", &original);
    *at(&mut undo, "SaleToPOIRequest.MessageHeader.ServiceID") = json!("X3");
    let item = at(
        &mut undo,
        "SaleToPOIRequest.StoredValueRequest.StoredValueData[0]",
    );
    item.as_object_mut().expect("an item").remove("ItemAmount");
    item["Currency"] = json!("EUR");
    assert_failure(&terminal(&app, &undo).await, "StoredValueResponse", "NotAllowed");
    assert_eq!(app.card_transactions(&card_id).await.len(), 2);
    assert_eq!(state(&app, &card_id).await, "closed");

    // Unpiped, on another card: the same.
    let number = "6036280000000000041";
    let card_id = active_card(&app, "EUR", number, "1234", 700).await;
    assert_success(
        &terminal(
            &app,
            &payment("X4", number, "7", Some("redemptionType=cashback|deactivate")),
        )
        .await,
        "PaymentResponse",
    );
    assert_eq!(state(&app, &card_id).await, "closed");

    // redemptionType belongs to a payment: a refund carrying one is refused.
    let number = "6036280000000000042";
    let card_id = active_card(&app, "EUR", number, "1234", 700).await;
    let mut refund = payment("X5", number, "7", Some("redemptionType=cashback"));
    *at(
        &mut refund,
        "SaleToPOIRequest.PaymentRequest.PaymentData.PaymentType",
    ) = json!("Refund");
    assert_failure(&terminal(&app, &refund).await, "PaymentResponse", "NotAllowed");
    assert_eq!(available(&app, &card_id).await, 700);
    TestApp::assert_sound(&app.verify().await);
}

#[tokio::test]
async fn an_unknown_redemption_type_is_a_message_format_failure_naming_the_accepted_values() {
    let app = TestApp::spawn().await;
    let number = "6036280000000000050";
    let card_id = active_card(&app, "EUR", number, "1234", 1000).await;

    let unknown = terminal(&app, &payment("U1", number, "10", Some("redemptionType=refund"))).await;
    assert_failure(&unknown, "PaymentResponse", "MessageFormat");
    assert_additional_response_has(
        &unknown,
        "PaymentResponse",
        "cashback, deactivate or cashback|deactivate",
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(r#"{"redemptionType":"CASHBACK"}"#);
    let unknown = terminal(&app, &payment("U2", number, "10", Some(&encoded))).await;
    assert_failure(&unknown, "PaymentResponse", "MessageFormat");
    assert_additional_response_has(&unknown, "PaymentResponse", "\"CASHBACK\"");
    let twice = terminal(
        &app,
        &payment(
            "U3",
            number,
            "10",
            Some("redemptionType=cashback&redemptionType=deactivate"),
        ),
    )
    .await;
    assert_failure(&twice, "PaymentResponse", "MessageFormat");
    assert_eq!(available(&app, &card_id).await, 1000);

    // Nothing ran, so nothing is remembered under the ServiceID: the corrected message goes through.
    let corrected = terminal(
        &app,
        &payment("U1", number, "10", Some("redemptionType=cashback")),
    )
    .await;
    assert_success(&corrected, "PaymentResponse");
    assert_eq!(state(&app, &card_id).await, "closed");
    TestApp::assert_sound(&app.verify().await);
}
