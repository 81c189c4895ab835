//! The Adyen Stored Value API v46 facade, mounted under `/pal/servlet/StoredValue/v46`:
//! `issue`, `changeStatus`, `load`, `checkBalance`, `mergeBalance` and `voidTransaction`, so
//! that a web or point-of-sale integration written against
//! `https://pal-test.adyen.com/pal/servlet/StoredValue/v46` (Adyen's own client libraries
//! included) works against giftd.
//!
//! Handlers convert the wire request straight into service commands
//! (`giftd_service::adyen::AdyenCommand`, never the native API's types) and render the
//! outcome in Adyen's shape with this module's renderer and `error.rs`. Every answer carries a
//! `pspReference`; the transactions a request made are recorded under it, for
//! `voidTransaction`. No SQL and no business rules here. docs/ADYEN.md records the mapping and
//! every choice the vendor's documentation leaves open.

pub mod error;
pub mod extract;
pub mod wire;

use std::collections::BTreeMap;
use std::future::Future;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use giftd_domain::program::MAX_PROMOTION_CODE_LENGTH;
use giftd_domain::{Amount, CardNumber, Currency, MerchantId, SecurityCode};
use giftd_service::adyen::{
    AdyenApi, AdyenCommand, AdyenOutcome, AdyenReference, IssueProgram, PresentedCard, Tag,
};
use giftd_service::{IdempotencyKey, Refusal, Rendered};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::AppState;
use error::{AdyenSvError, codes};
use extract::{AdyenSvBody, AdyenSvMerchant};
use wire::*;

/// How the edge guards the Stored Value API (`guard.rs`): a request presenting a
/// `securityCode` counts toward the rate limits; refusals in its shape.
pub const EDGE: crate::guard::FrontEndEdge = crate::guard::FrontEndEdge {
    owns: |path| path.starts_with("/pal/servlet/StoredValue/"),
    code_fields: &["securityCode"],
    counts: crate::guard::none,
    inspects_body: crate::guard::every_write,
    refusal: |status, _, message| {
        axum::response::IntoResponse::into_response(error::AdyenSvError::edge(status, message))
    },
    query_refusal: None,
    channel: giftd_domain::Channel::Adyen,
};

/// Adyen's limit on `reference`.
pub const MAX_REFERENCE_LENGTH: usize = 80;
/// Adyen's limit on `merchantAccount` is not documented; giftd keeps it sane.
pub const MAX_MERCHANT_ACCOUNT_LENGTH: usize = 255;

/// The facade's routes, to be nested under `/pal/servlet/StoredValue/v46`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/issue", post(issue))
        .route("/changeStatus", post(change_status))
        .route("/load", post(load))
        .route("/checkBalance", post(check_balance))
        .route("/mergeBalance", post(merge_balance))
        .route("/voidTransaction", post(void_transaction))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found() -> AdyenSvError {
    AdyenSvError::not_found().with_reference(AdyenReference::generate().as_str())
}

async fn method_not_allowed() -> AdyenSvError {
    AdyenSvError::method_not_allowed().with_reference(AdyenReference::generate().as_str())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Issue,
    ChangeStatus,
    Load,
    CheckBalance,
    MergeBalance,
    VoidTransaction,
}

impl Operation {
    /// Operations whose answer carries an `authCode` when they moved value.
    fn has_auth_code(self) -> bool {
        match self {
            Self::Issue | Self::ChangeStatus | Self::Load | Self::MergeBalance => true,
            Self::CheckBalance | Self::VoidTransaction => false,
        }
    }
}

/// What the answer needs besides the outcome.
#[derive(Debug, Clone)]
struct View {
    operation: Operation,
    reference: AdyenReference,
    code_presented: bool,
    /// `paymentMethod.type` as sent (`givex`, `svs`, `valuelink`, ...), echoed by `issue`.
    method_type: Option<String>,
}

type Answer = Result<Response, AdyenSvError>;

/// Runs one operation: authenticates, reads the body, and lets `handle` turn it into a
/// command. Every answer, errors included, carries this request's pspReference.
async fn operation<T, F, Fut>(app: AppState, request: Request, handle: F) -> Response
where
    T: DeserializeOwned,
    F: FnOnce(AppState, MerchantId, AdyenSvBody<T>, AdyenReference) -> Fut,
    Fut: Future<Output = Answer>,
{
    let reference = AdyenReference::generate();
    let answer = async {
        let (mut parts, body) = request.into_parts();
        let AdyenSvMerchant(merchant) = AdyenSvMerchant::from_request_parts(&mut parts, &app).await?;
        let body = AdyenSvBody::<T>::from_request(Request::from_parts(parts, body), &app).await?;
        handle(app.clone(), merchant, body, reference.clone()).await
    }
    .await;
    answer.unwrap_or_else(|error| error.with_reference(reference.as_str()).into_response())
}

async fn run(
    app: &AppState,
    merchant: MerchantId,
    command: AdyenCommand,
    idempotency: Option<IdempotencyKey>,
    view: View,
) -> Answer {
    let rendered = app
        .service
        .execute(
            merchant,
            command,
            idempotency,
            Box::new(move |result| render(result, &view)),
        )
        .await?;
    Ok(answer(rendered))
}

fn answer(rendered: Rendered) -> Response {
    let status = StatusCode::from_u16(rendered.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    crate::json_response(status, rendered.body)
}

// ---- reading requests ----

fn merchant_account(value: Option<&str>) -> Result<(), AdyenSvError> {
    match value.map(str::trim) {
        Some(account) if !account.is_empty() && account.len() <= MAX_MERCHANT_ACCOUNT_LENGTH => Ok(()),
        _ => Err(AdyenSvError::validation(
            codes::MERCHANT_ACCOUNT,
            "merchantAccount is required (any name: the API key decides the merchant).",
        )),
    }
}

/// `reference`: required by every operation but voidTransaction, at most 80 characters; kept
/// as the reference of the transactions the request makes.
fn reference(value: Option<String>, required: bool) -> Result<Option<String>, AdyenSvError> {
    match value {
        Some(reference) if reference.len() > MAX_REFERENCE_LENGTH => Err(AdyenSvError::validation(
            codes::REFERENCE,
            format!("reference is longer than {MAX_REFERENCE_LENGTH} characters."),
        )),
        Some(reference) if !reference.trim().is_empty() => Ok(Some(reference)),
        _ if required => Err(AdyenSvError::validation(
            codes::REFERENCE,
            "reference is required.",
        )),
        _ => Ok(None),
    }
}

/// `amount`: a known currency and a whole non-negative number of its minor units.
fn amount(value: Option<&AdyenSvAmount>) -> Result<Option<(Currency, i64)>, AdyenSvError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let currency = value
        .currency
        .as_ref()
        .and_then(Value::as_str)
        .and_then(Currency::parse)
        .ok_or_else(|| {
            AdyenSvError::validation(
                codes::INVALID_AMOUNT,
                "amount.currency must be a three-letter ISO 4217 code, e.g. EUR.",
            )
        })?;
    let minor = value
        .value
        .as_ref()
        .and_then(Value::as_i64)
        .filter(|minor| *minor >= 0)
        .ok_or_else(|| {
            AdyenSvError::validation(
                codes::INVALID_AMOUNT,
                "amount.value must be a whole number of minor units, e.g. 1000 for 10.00 EUR.",
            )
        })?;
    Ok(Some((currency, minor)))
}

fn positive(minor: i64) -> Result<Amount, AdyenSvError> {
    Amount::new(minor)
        .map_err(|_| AdyenSvError::validation(codes::INVALID_AMOUNT, "amount.value must be more than zero."))
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) if number.is_u64() => Some(number.to_string()),
        _ => None,
    }
}

/// A request that is answered before any command runs.
enum Early {
    Error(AdyenSvError),
    /// A security code that cannot be any card's: answered like a wrong one.
    Refused(Refusal),
}

impl From<AdyenSvError> for Early {
    fn from(error: AdyenSvError) -> Self {
        Self::Error(error)
    }
}

/// The card a payment method names: `number`, and `securityCode` when the shopper gave it.
fn card(method: Option<&Map<String, Value>>, field: &str, view: &mut View) -> Result<PresentedCard, Early> {
    let method = method.ok_or_else(|| {
        AdyenSvError::validation(codes::INVALID_CARD_NUMBER, format!("{field} is required."))
    })?;
    let number = method
        .get("number")
        .and_then(text)
        .and_then(|n| CardNumber::parse(&n))
        .ok_or_else(|| {
            AdyenSvError::validation(
                codes::INVALID_CARD_NUMBER,
                format!("{field}.number must be the card number: 6 to 21 digits."),
            )
        })?;
    let security_code = match method.get("securityCode") {
        None | Some(Value::Null) => None,
        Some(code) => {
            view.code_presented = true;
            // A malformed code is checked like a wrong one (it counts toward the lockout).
            Some(SecurityCode::presented(text(code).as_deref().unwrap_or_default()))
        }
    };
    Ok(PresentedCard {
        number,
        security_code,
    })
}

fn method_type(method: Option<&Map<String, Value>>) -> Option<String> {
    method.and_then(|m| m.get("type")).and_then(text)
}

fn view(operation: Operation, reference: &AdyenReference) -> View {
    View {
        operation,
        reference: reference.clone(),
        code_presented: false,
        method_type: None,
    }
}

/// Answers an early outcome: an error as such, a refusal rendered like the command's would be.
fn early(early: Early, view: &View) -> Answer {
    match early {
        Early::Error(error) => Err(error),
        Early::Refused(refusal) => Ok(answer(render(&Err(refusal), view))),
    }
}

// ---- handlers ----

async fn issue(State(app): State<AppState>, request: Request) -> Response {
    operation(app, request, issue_card).await
}

/// `POST /issue`: a new virtual card, active at once, of the program chosen by
/// `giftCardPromoCode` (the program with that promotion code) or, without one, the merchant's
/// only program (in `amount.currency`, when given).
async fn issue_card(
    app: AppState,
    merchant: MerchantId,
    body: AdyenSvBody<AdyenSvIssueRequest>,
    psp_reference: AdyenReference,
) -> Answer {
    let r = body.value;
    merchant_account(r.merchant_account.as_deref())?;
    let merchant_reference = reference(r.reference, true)?;
    let mut view = view(Operation::Issue, &psp_reference);
    view.method_type = method_type(r.payment_method.as_ref());
    let amount = amount(r.amount.as_ref())?;
    let currency = amount.map(|(currency, _)| currency);
    let amount = amount.and_then(|(_, minor)| Amount::new(minor).ok());
    let program = match r.gift_card_promo_code.filter(|c| !c.is_empty()) {
        Some(code) if code.len() <= MAX_PROMOTION_CODE_LENGTH => IssueProgram::PromotionCode(code),
        Some(_) => {
            return early(Early::Refused(Refusal::NotFound("giftCardPromoCode")), &view);
        }
        None => match app.service.adyen_issue_program(&merchant, currency).await? {
            Some(program) => IssueProgram::Program(program),
            None => {
                let refusal = Refusal::Invalid {
                    param: "giftCardPromoCode",
                    message: "the merchant does not have exactly one program (in this currency); name the program with giftCardPromoCode, its promotion code".into(),
                };
                return early(Early::Refused(refusal), &view);
            }
        },
    };
    let command = AdyenCommand::Issue {
        tag: Tag {
            reference: psp_reference,
            merchant_reference,
        },
        program,
        amount,
        currency,
    };
    run(&app, merchant, command, body.idempotency, view).await
}

async fn change_status(State(app): State<AppState>, request: Request) -> Response {
    operation(app, request, change_card_status).await
}

/// `POST /changeStatus`: `active` activates an inactive card (with `amount` as its first value
/// when given); `inactive` closes an empty card for good.
async fn change_card_status(
    app: AppState,
    merchant: MerchantId,
    body: AdyenSvBody<AdyenSvChangeStatusRequest>,
    psp_reference: AdyenReference,
) -> Answer {
    let r = body.value;
    merchant_account(r.merchant_account.as_deref())?;
    let merchant_reference = reference(r.reference, true)?;
    let mut view = view(Operation::ChangeStatus, &psp_reference);
    let card = match card(r.payment_method.as_ref(), "paymentMethod", &mut view) {
        Ok(card) => card,
        Err(e) => return early(e, &view),
    };
    let amount = amount(r.amount.as_ref())?;
    let tag = Tag {
        reference: psp_reference,
        merchant_reference,
    };
    let command = match r.status.as_deref() {
        Some("active") => AdyenCommand::Activate {
            tag,
            card,
            amount: amount.and_then(|(_, minor)| Amount::new(minor).ok()),
            currency: amount.map(|(currency, _)| currency),
        },
        Some("inactive") => AdyenCommand::Deactivate { tag, card },
        _ => {
            return Err(AdyenSvError::validation(
                codes::STRUCTURE,
                "status must be active or inactive.",
            ));
        }
    };
    run(&app, merchant, command, body.idempotency, view).await
}

async fn load(State(app): State<AppState>, request: Request) -> Response {
    operation(app, request, load_card).await
}

/// `POST /load`: a load (`loadType` absent or `load`), or a merchandise return credited to the
/// card (`merchandiseReturn`).
async fn load_card(
    app: AppState,
    merchant: MerchantId,
    body: AdyenSvBody<AdyenSvLoadRequest>,
    psp_reference: AdyenReference,
) -> Answer {
    let r = body.value;
    merchant_account(r.merchant_account.as_deref())?;
    let merchant_reference = reference(r.reference, true)?;
    let mut view = view(Operation::Load, &psp_reference);
    let (currency, minor) = amount(r.amount.as_ref())?
        .ok_or_else(|| AdyenSvError::validation(codes::NO_AMOUNT, "There is no amount specified."))?;
    let amount = positive(minor)?;
    let card = match card(r.payment_method.as_ref(), "paymentMethod", &mut view) {
        Ok(card) => card,
        Err(e) => return early(e, &view),
    };
    let tag = Tag {
        reference: psp_reference,
        merchant_reference,
    };
    let command = match r.load_type.as_deref() {
        None | Some("load") => AdyenCommand::Load {
            tag,
            card,
            amount,
            currency,
        },
        Some("merchandiseReturn") => AdyenCommand::MerchandiseReturn {
            api: AdyenApi::StoredValue,
            tag,
            card,
            amount,
            currency,
        },
        Some(_) => {
            return Err(AdyenSvError::validation(
                codes::STRUCTURE,
                "loadType must be load or merchandiseReturn.",
            ));
        }
    };
    run(&app, merchant, command, body.idempotency, view).await
}

async fn check_balance(State(app): State<AppState>, request: Request) -> Response {
    operation(app, request, check_card_balance).await
}

/// `POST /checkBalance`: what is available on the card.
async fn check_card_balance(
    app: AppState,
    merchant: MerchantId,
    body: AdyenSvBody<AdyenSvCheckBalanceRequest>,
    psp_reference: AdyenReference,
) -> Answer {
    let r = body.value;
    merchant_account(r.merchant_account.as_deref())?;
    reference(r.reference, true)?;
    let mut view = view(Operation::CheckBalance, &psp_reference);
    let card = match card(r.payment_method.as_ref(), "paymentMethod", &mut view) {
        Ok(card) => card,
        Err(e) => return early(e, &view),
    };
    run(
        &app,
        merchant,
        AdyenCommand::Balance { card },
        body.idempotency,
        view,
    )
    .await
}

async fn merge_balance(State(app): State<AppState>, request: Request) -> Response {
    operation(app, request, merge_cards).await
}

/// `POST /mergeBalance`: all that is available on the `sourcePaymentMethod` card moves onto the
/// `paymentMethod` card, and the source is closed (giftd's merge, one journal entry).
async fn merge_cards(
    app: AppState,
    merchant: MerchantId,
    body: AdyenSvBody<AdyenSvMergeBalanceRequest>,
    psp_reference: AdyenReference,
) -> Answer {
    let r = body.value;
    merchant_account(r.merchant_account.as_deref())?;
    let merchant_reference = reference(r.reference, true)?;
    let mut view = view(Operation::MergeBalance, &psp_reference);
    let target = match card(r.payment_method.as_ref(), "paymentMethod", &mut view) {
        Ok(card) => card,
        Err(e) => return early(e, &view),
    };
    let source = match card(r.source_payment_method.as_ref(), "sourcePaymentMethod", &mut view) {
        Ok(card) => card,
        Err(e) => return early(e, &view),
    };
    let command = AdyenCommand::Merge {
        tag: Tag {
            reference: psp_reference,
            merchant_reference,
        },
        target,
        source,
    };
    run(&app, merchant, command, body.idempotency, view).await
}

async fn void_transaction(State(app): State<AppState>, request: Request) -> Response {
    operation(app, request, void_original).await
}

/// `POST /voidTransaction`: undoes what the `originalReference` (a pspReference giftd gave
/// within the last 24 hours) did.
async fn void_original(
    app: AppState,
    merchant: MerchantId,
    body: AdyenSvBody<AdyenSvVoidTransactionRequest>,
    psp_reference: AdyenReference,
) -> Answer {
    let r = body.value;
    merchant_account(r.merchant_account.as_deref())?;
    let merchant_reference = reference(r.reference, false)?;
    let view = view(Operation::VoidTransaction, &psp_reference);
    let original = r.original_reference.filter(|o| !o.is_empty()).ok_or_else(|| {
        AdyenSvError::validation(
            codes::ORIGINAL_REFERENCE,
            "Original pspReference required for this operation.",
        )
    })?;
    // A reference that cannot be one of ours names no transaction.
    let Some(original) = AdyenReference::parse(&original) else {
        return early(Early::Refused(Refusal::NotFound("transaction")), &view);
    };
    let command = AdyenCommand::VoidTransaction {
        tag: Tag {
            reference: psp_reference,
            merchant_reference,
        },
        original,
    };
    run(&app, merchant, command, body.idempotency, view).await
}

// ---- answers ----

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("Stored Value API answers always serialize")
}

/// Six digits derived from a transaction id: the same transaction always shows the same code.
fn auth_code(transaction_id: &str) -> String {
    let digest = Sha256::digest(format!("adyen auth code\n{transaction_id}").as_bytes());
    let number = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000;
    format!("{number:06}")
}

fn render(result: &Result<AdyenOutcome, Refusal>, view: &View) -> Rendered {
    let psp_reference = view.reference.as_str().to_owned();
    let outcome = match result {
        Err(refusal) => {
            let refused = error::refusal(refusal, view.code_presented);
            return Rendered {
                status: 200,
                body: to_json(&AdyenSvResponse {
                    auth_code: None,
                    current_balance: None,
                    payment_method: None,
                    psp_reference,
                    refusal_reason: Some(refused.refusal_reason.to_owned()),
                    result_code: refused.result_code,
                    third_party_refusal_reason: Some(refused.detail),
                }),
            };
        }
        Ok(outcome) => outcome,
    };
    let (card, transaction, issued) = match outcome {
        AdyenOutcome::Balance { card } => (card, None, None),
        AdyenOutcome::Done {
            movements, issued, ..
        } => {
            let Some(last) = movements.last() else {
                return unexpected(view);
            };
            let transaction = movements.iter().find_map(|m| m.transaction.as_ref());
            (&last.card, transaction, issued.as_ref())
        }
    };
    let s = &card.snapshot;
    let payment_method = issued.map(|(number, security_code)| {
        let mut method = BTreeMap::new();
        method.insert("number", number.expose().to_owned());
        method.insert("securityCode", security_code.expose().to_owned());
        if let Some(kind) = &view.method_type {
            method.insert("type", kind.clone());
        }
        method
    });
    Rendered {
        status: 200,
        body: to_json(&AdyenSvResponse {
            auth_code: transaction
                .filter(|_| view.operation.has_auth_code())
                .map(|t| auth_code(t.id.as_str())),
            current_balance: Some(AdyenSvAmountOut {
                currency: s.currency.code(),
                value: s.available(),
            }),
            payment_method,
            psp_reference,
            refusal_reason: None,
            result_code: "Success",
            third_party_refusal_reason: None,
        }),
    }
}

fn unexpected(view: &View) -> Rendered {
    tracing::error!(
        operation = ?view.operation,
        "a Stored Value API command produced an outcome the facade does not render"
    );
    let error = AdyenSvError::internal().with_reference(view.reference.as_str());
    Rendered {
        status: error.status.as_u16(),
        body: error.body(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_codes_are_six_stable_digits() {
        let code = auth_code("txn_1");
        assert_eq!(code.len(), 6);
        assert_eq!(code, auth_code("txn_1"));
    }

    #[test]
    fn references_are_checked_for_presence_and_length() {
        assert!(reference(None, true).is_err());
        assert!(reference(Some(" ".into()), true).is_err());
        assert!(reference(Some("x".repeat(81)), true).is_err());
        assert_eq!(reference(None, false).ok(), Some(None));
        assert_eq!(
            reference(Some("YOUR_REFERENCE".into()), true).ok(),
            Some(Some("YOUR_REFERENCE".into()))
        );
    }
}
