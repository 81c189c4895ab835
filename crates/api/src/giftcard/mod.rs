//! The customer-wallet facade (seed 003) under `/giftcard/v1`: virtual issue, reload, redeem, balance
//! inquiry, balance transfer, refund, saved cards (`savegiftcard`, `GET`/`PATCH giftcards`),
//! sharing, gifts and combining. camelCase JSON, lenient about extra fields. Amounts are
//! integers in minor units, as in the native API. Each request becomes a service command
//! (never a native API type); errors keep the native codes in this facade's shape
//! (`{"errorCode", "errorMessage", "param"?}`). See docs/WALLET.md. No SQL, no business rules.

pub mod wire;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use giftd_domain::wallet::{self, UserId};
use giftd_domain::{
    Amount, CardId, CardKind, CardNumber, DomainError, MerchantId, ProgramId, SecurityCode, TransactionId,
};
use giftd_service::transfers::{TransferCommand, TransferOutcome};
use giftd_service::wallet::{CardAccess, CardOperation, WalletCommand, WalletOutcome};
use giftd_service::{Command, IdempotencyKey, Operation, Outcome, Refusal, Rendered, ServiceError};
use serde::de::DeserializeOwned;

use crate::native::error::ApiError;
use crate::native::extract::{self, reference};
use crate::{AppState, json_response};
use wire::*;

/// How the edge guards this facade (`guard.rs`): a write presenting a `passcode` counts toward
/// the rate limits; refusals in this facade's shape.
pub const EDGE: crate::guard::FrontEndEdge = crate::guard::FrontEndEdge {
    owns: |path| path.starts_with("/giftcard/"),
    code_fields: &["passcode"],
    counts: crate::guard::none,
    inspects_body: crate::guard::every_write,
    refusal: |status, code, message| WalletError(ApiError::new(status, code, message)).into_response(),
    query_refusal: None,
    channel: giftd_domain::Channel::Wallet,
};

/// Most cards one `combine` takes (the native merge's limit).
pub const MAX_COMBINE_SOURCES: usize = 10;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/virtual/issue", post(issue_virtual))
        .route("/v1/reload", post(reload))
        .route("/v1/redeem", post(redeem))
        .route("/v1/balanceInquiry", post(balance_inquiry))
        .route("/v1/balanceTransfer", post(balance_transfer))
        .route("/v1/refund", post(refund))
        .route("/v1/savegiftcard", post(save_gift_card))
        .route("/v1/giftcards", get(list_gift_cards).patch(update_gift_card))
        .route("/v1/sharegiftcard", post(share_gift_card))
        .route("/v1/gift", post(gift))
        .route("/v1/combine", post(combine))
        .fallback(not_found)
}

/// An error of this facade: the native API's status and code, in this facade's shape.
#[derive(Debug)]
pub struct WalletError(pub ApiError);

impl From<ApiError> for WalletError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl From<ServiceError> for WalletError {
    fn from(error: ServiceError) -> Self {
        Self(error.into())
    }
}

impl WalletError {
    fn from_refusal(refusal: &Refusal) -> Self {
        match refusal {
            Refusal::Domain(error) if wallet::is_wallet_limit(error) => {
                Self(crate::native::wallet::wallet_limit_error())
            }
            other => Self(other.into()),
        }
    }

    fn rendered(&self) -> Rendered {
        let body = WalletErrorBody {
            status: "FAILED",
            error_code: self.0.code,
            error_message: self.0.message.clone(),
            param: self.0.param.as_deref().map(camel_case),
        };
        Rendered {
            status: self.0.status.as_u16(),
            body: serde_json::to_vec(&body).expect("an error body always serializes"),
        }
    }
}

impl IntoResponse for WalletError {
    fn into_response(self) -> Response {
        let rendered = self.rendered();
        json_response(
            StatusCode::from_u16(rendered.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            rendered.body,
        )
    }
}

/// `recipient_user_id` → `recipientUserId`, so that `param` names this facade's field.
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

type Answer = Result<Response, WalletError>;

/// The merchant behind the bearer key (as in the native API), refusals in this facade's shape.
pub struct Merchant(pub MerchantId);

impl FromRequestParts<AppState> for Merchant {
    type Rejection = WalletError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let extract::Merchant(merchant) = extract::Merchant::from_request_parts(parts, state).await?;
        Ok(Self(merchant))
    }
}

/// A JSON body and its Idempotency-Key, read as the native API reads them (same limits and
/// request digest); the types here are lenient, and refusals come in this facade's shape.
pub struct Body<T> {
    pub value: T,
    pub idempotency: Option<IdempotencyKey>,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Body<T> {
    type Rejection = WalletError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let extract::Body { value, idempotency } = extract::Body::<T>::from_request(request, state).await?;
        let idempotency = idempotency.map(|key| IdempotencyKey { scope: SCOPE, ..key });
        Ok(Self { value, idempotency })
    }
}

/// The idempotency scope of this facade: its keys never meet the native API's.
pub const SCOPE: &str = "giftcard";

async fn not_found() -> WalletError {
    WalletError(ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "No such endpoint.",
    ))
}

fn invalid(param: &str, message: impl Into<String>) -> WalletError {
    WalletError(ApiError::invalid(param, message))
}

/// The wallet facade's JSON of a family's outcome (refusals are rendered alike, by
/// [`WalletError`]).
trait WalletBody {
    /// The body, or `None` for an outcome the facade never asks its family for.
    fn wallet_body(&self) -> Option<serde_json::Result<Vec<u8>>>;
}

fn transaction_body(transaction: &giftd_service::views::TransactionRecord) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&GiftCardTransaction::new(transaction))
}

fn card_body(card: &giftd_service::views::Card) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&CardAnswer {
        status: "SUCCESS",
        gift_card: GiftCard::new(card),
    })
}

impl WalletBody for Outcome {
    fn wallet_body(&self) -> Option<serde_json::Result<Vec<u8>>> {
        Some(match self {
            Outcome::IssuedCard(issued) => serde_json::to_vec(&IssueResponse {
                status: "SUCCESS",
                gift_card: GiftCard::issued(&issued.card, &issued.number, &issued.security_code),
                transaction_id: issued.transaction.as_ref().map(|t| t.id.to_string()),
            }),
            Outcome::Card(card) => card_body(card),
            Outcome::Transaction(transaction) => transaction_body(transaction),
            Outcome::Merchant(_) | Outcome::Program(_) | Outcome::Hold(_) | Outcome::Nothing => return None,
        })
    }
}

impl WalletBody for TransferOutcome {
    fn wallet_body(&self) -> Option<serde_json::Result<Vec<u8>>> {
        Some(match self {
            TransferOutcome::Transfer {
                source,
                target,
                issued,
                transfer_out,
                transfer_in,
            } => serde_json::to_vec(&BalanceTransferResponse {
                status: "SUCCESS",
                amount: transfer_out.amount,
                currency: transfer_out.currency.clone(),
                source_gift_card: GiftCard::new(source),
                new_gift_card: match issued {
                    Some((number, code)) => GiftCard::issued(target, number, code),
                    None => GiftCard::new(target),
                },
                transfer_out_transaction_id: transfer_out.id.to_string(),
                transfer_in_transaction_id: transfer_in.id.to_string(),
            }),
            TransferOutcome::Merge {
                target,
                sources,
                transactions,
            } => serde_json::to_vec(&CombineResponse {
                status: "SUCCESS",
                target_gift_card: GiftCard::new(target),
                source_gift_cards: sources.iter().map(GiftCard::new).collect(),
                transaction_ids: transactions.iter().map(|t| t.id.to_string()).collect(),
            }),
        })
    }
}

impl WalletBody for WalletOutcome {
    fn wallet_body(&self) -> Option<serde_json::Result<Vec<u8>>> {
        Some(match self {
            WalletOutcome::Card { entry, card } => serde_json::to_vec(&CardAnswer {
                status: "SUCCESS",
                gift_card: GiftCard::new(card).in_wallet(entry),
            }),
            WalletOutcome::Gift {
                entry,
                card,
                issued,
                transaction,
                link: _,
            } => serde_json::to_vec(&GiftResponse {
                status: "SUCCESS",
                recipient_user_id: entry.user_id.to_string(),
                gift_card: match issued {
                    Some((number, code)) => GiftCard::issued(card, number, code),
                    None => GiftCard::new(card),
                }
                .in_wallet(entry),
                transaction_id: transaction.as_ref().map(|t| t.id.to_string()),
            }),
            WalletOutcome::CardNow(card) => card_body(card),
            WalletOutcome::Transaction(transaction) => transaction_body(transaction),
            WalletOutcome::Transfer(transfer) => return transfer.wallet_body(),
            WalletOutcome::Removed { .. } | WalletOutcome::Pruned => return None,
        })
    }
}

fn render<T: WalletBody>(result: &Result<T, Refusal>) -> Rendered {
    let body = match result {
        Err(refusal) => return WalletError::from_refusal(refusal).rendered(),
        Ok(outcome) => match outcome.wallet_body() {
            Some(body) => body.expect("response types always serialize"),
            None => {
                tracing::error!("a wallet facade command produced an outcome the facade does not render");
                return WalletError::from(ServiceError::unexpected_outcome()).rendered();
            }
        },
    };
    Rendered { status: 200, body }
}

async fn run<O>(
    app: &AppState,
    merchant: MerchantId,
    command: O,
    idempotency: Option<IdempotencyKey>,
) -> Answer
where
    O: Operation,
    O::Outcome: WalletBody,
{
    let rendered = app
        .service
        .execute(merchant, command, idempotency, Box::new(render))
        .await?;
    let status = StatusCode::from_u16(rendered.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Ok(json_response(status, rendered.body))
}

// ---- field parsing ----

fn user(value: Option<&str>, param: &str) -> Result<UserId, WalletError> {
    let value = value.ok_or_else(|| invalid(param, format!("The field `{param}` is required.")))?;
    UserId::parse(value).ok_or_else(|| {
        invalid(
            param,
            format!("`{param}` must be 1 to 64 characters, without `/` or control characters."),
        )
    })
}

fn card_id(value: Option<&str>, param: &str) -> Result<CardId, WalletError> {
    let value = value.ok_or_else(|| invalid(param, format!("The field `{param}` is required.")))?;
    // An id that cannot exist is a card that does not exist.
    CardId::parse(value).ok_or_else(|| WalletError(ApiError::not_found("card")))
}

fn amount(value: Option<i64>, param: &str) -> Result<Amount, WalletError> {
    let value = value.ok_or_else(|| invalid(param, format!("The field `{param}` is required.")))?;
    Ok(crate::native::extract::amount(value, param)?)
}

fn optional_amount(value: Option<i64>, param: &str) -> Result<Option<Amount>, WalletError> {
    value.map(|v| amount(Some(v), param)).transpose()
}

fn secrets(number: &str, passcode: Option<&str>) -> Result<(CardNumber, SecurityCode), WalletError> {
    // A malformed number cannot match a card: the same answer as a wrong one. A malformed
    // passcode is checked like a wrong one, and counts toward the number's lockout.
    let invalid_card = || WalletError::from_refusal(&Refusal::Domain(DomainError::InvalidCard));
    let number = CardNumber::parse(number).ok_or_else(invalid_card)?;
    let code = SecurityCode::presented(passcode.unwrap_or_default());
    Ok((number, code))
}

/// The card a request names: `cardNumber` + `passcode`, or `giftCardId` (with `userId`: a
/// card of that user's wallet, owned or shared).
fn access(r: &CardRef) -> Result<CardAccess, WalletError> {
    if let Some(number) = &r.card_number {
        let (number, security_code) = secrets(number, r.passcode.as_deref())?;
        return Ok(CardAccess::Secret {
            number,
            security_code,
        });
    }
    let card_id = card_id(r.gift_card_id.as_deref(), "giftCardId")?;
    Ok(match &r.user_id {
        Some(user_id) => CardAccess::User {
            user_id: user(Some(user_id), "userId")?,
            card_id,
        },
        None => CardAccess::Id(card_id),
    })
}

fn text(value: Option<String>, param: &str) -> Result<Option<String>, WalletError> {
    reference(value).map_err(|_| {
        invalid(
            param,
            format!("`{param}` must be at most 255 characters, without control characters."),
        )
    })
}

// ---- handlers ----

async fn issue_virtual(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<IssueRequest>,
) -> Answer {
    let r = body.value;
    let program = r
        .program_id
        .ok_or_else(|| invalid("programId", "The field `programId` is required."))?;
    let program_id = ProgramId::parse(&program).ok_or_else(|| WalletError(ApiError::not_found("program")))?;
    let command = Command::IssueCard {
        program_id,
        kind: CardKind::Virtual,
        amount: optional_amount(r.amount, "amount")?,
        import: None,
        reference: text(r.reference_id, "referenceId")?,
    };
    run(&app, merchant, command, body.idempotency).await
}

async fn reload(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<CardOperationRequest>,
) -> Answer {
    let r = body.value;
    let command = WalletCommand::OnCard {
        access: access(&r.card)?,
        operation: CardOperation::Load {
            amount: amount(r.amount, "amount")?,
            reference: text(r.reference_id, "referenceId")?,
        },
    };
    run(&app, merchant, command, body.idempotency).await
}

async fn redeem(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<CardOperationRequest>,
) -> Answer {
    let r = body.value;
    let command = WalletCommand::OnCard {
        access: access(&r.card)?,
        operation: CardOperation::Redeem {
            amount: amount(r.amount, "amount")?,
            allow_partial: r.allow_partial.unwrap_or(false),
            reference: text(r.reference_id, "referenceId")?,
        },
    };
    run(&app, merchant, command, body.idempotency).await
}

async fn balance_inquiry(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<CardOperationRequest>,
) -> Answer {
    let command = WalletCommand::OnCard {
        access: access(&body.value.card)?,
        operation: CardOperation::Balance,
    };
    run(&app, merchant, command, body.idempotency).await
}

async fn balance_transfer(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<BalanceTransferRequest>,
) -> Answer {
    let r = body.value;
    let number = r
        .card_number
        .ok_or_else(|| invalid("cardNumber", "The field `cardNumber` is required."))?;
    let (number, security_code) = secrets(&number, r.passcode.as_deref())?;
    let command = WalletCommand::OnCard {
        access: CardAccess::Secret {
            number,
            security_code,
        },
        operation: CardOperation::TransferToNewCard {
            amount: optional_amount(r.amount, "amount")?,
            close_source: r.is_delete_source_card.unwrap_or(false),
            reference: text(r.reference_id, "referenceId")?,
        },
    };
    run(&app, merchant, command, body.idempotency).await
}

async fn refund(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<RefundRequest>,
) -> Answer {
    let r = body.value;
    let id = r
        .transaction_id
        .ok_or_else(|| invalid("transactionId", "The field `transactionId` is required."))?;
    let transaction_id =
        TransactionId::parse(&id).ok_or_else(|| WalletError(ApiError::not_found("transaction")))?;
    let command = Command::Refund {
        transaction_id,
        amount: optional_amount(r.amount, "amount")?,
        currency: None,
        reference: text(r.reference_id, "referenceId")?,
    };
    run(&app, merchant, command, body.idempotency).await
}

async fn save_gift_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<SaveRequest>,
) -> Answer {
    let r = body.value;
    let user_id = user(r.user_id.as_deref(), "userId")?;
    let number = r
        .card_number
        .ok_or_else(|| invalid("cardNumber", "The field `cardNumber` is required."))?;
    let (number, security_code) = secrets(&number, r.passcode.as_deref())?;
    let command = WalletCommand::Save {
        user_id,
        card_id: None,
        number,
        security_code,
    };
    run(&app, merchant, command, body.idempotency).await
}

async fn list_gift_cards(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    RawQuery(raw): RawQuery,
) -> Answer {
    let query: ListQuery = serde_urlencoded::from_str(raw.as_deref().unwrap_or_default())
        .map_err(|_| invalid("userId", "The query string is malformed."))?;
    let user_id = user(query.user_id.as_deref(), "userId")?;
    let cards = app.service.wallet(&merchant, &user_id).await?;
    let body = GiftCardList {
        status: "SUCCESS",
        user_id: user_id.to_string(),
        gift_cards: cards
            .iter()
            .map(|(entry, card)| GiftCard::new(card).in_wallet(entry))
            .collect(),
    };
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).expect("response types always serialize"),
    ))
}

async fn update_gift_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<UpdateRequest>,
) -> Answer {
    let r = body.value;
    let user_id = user(r.user_id.as_deref(), "userId")?;
    let card_id = card_id(r.gift_card_id.as_deref(), "giftCardId")?;
    if r.is_preferred != Some(true) {
        return Err(invalid(
            "isPreferred",
            "`isPreferred` must be true; mark another card preferred instead.",
        ));
    }
    let command = WalletCommand::Prefer { user_id, card_id };
    run(&app, merchant, command, body.idempotency).await
}

async fn share_gift_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<ShareRequest>,
) -> Answer {
    let r = body.value;
    let command = WalletCommand::Share {
        user_id: user(r.user_id.as_deref(), "userId")?,
        card_id: card_id(r.gift_card_id.as_deref(), "giftCardId")?,
        recipient_user_id: user(r.recipient_user_id.as_deref(), "recipientUserId")?,
    };
    run(&app, merchant, command, body.idempotency).await
}

async fn gift(State(app): State<AppState>, Merchant(merchant): Merchant, body: Body<GiftRequest>) -> Answer {
    let r = body.value;
    let sender_user_id = user(r.sender_user_id.as_deref(), "senderUserId")?;
    let recipient_user_id = user(r.recipient_user_id.as_deref(), "recipientUserId")?;
    let command = match r.gift_card_id {
        // An existing saved card: amount and sourceTransactionId are not needed (ignored).
        Some(id) => WalletCommand::GiftCard {
            sender_user_id,
            recipient_user_id,
            card_id: card_id(Some(&id), "giftCardId")?,
            // This API's gift answer has no place for a cardholder page's address.
            cardholder_link: false,
        },
        None => {
            let program = r.program_id.ok_or_else(|| {
                invalid(
                    "programId",
                    "The field `programId` is required to gift a new card.",
                )
            })?;
            WalletCommand::GiftNew {
                sender_user_id,
                recipient_user_id,
                program_id: ProgramId::parse(&program)
                    .ok_or_else(|| WalletError(ApiError::not_found("program")))?,
                amount: amount(r.amount, "amount")?,
                funding_reference: text(r.source_transaction_id, "sourceTransactionId")?
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        invalid(
                            "sourceTransactionId",
                            "The field `sourceTransactionId` is required to gift a new card.",
                        )
                    })?,
                cardholder_link: false,
            }
        }
    };
    run(&app, merchant, command, body.idempotency).await
}

async fn combine(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<CombineRequest>,
) -> Answer {
    let r = body.value;
    let target = card_id(r.target_gift_card_id.as_deref(), "targetGiftCardId")?;
    let sources = r.source_gift_card_ids.unwrap_or_default();
    if sources.is_empty() || sources.len() > MAX_COMBINE_SOURCES {
        return Err(invalid(
            "sourceGiftCardIds",
            "`sourceGiftCardIds` takes 1 to 10 card ids.",
        ));
    }
    let source_card_ids = sources
        .iter()
        .map(|id| card_id(Some(id), "sourceGiftCardIds"))
        .collect::<Result<Vec<_>, _>>()?;
    let command = TransferCommand::Merge {
        card_id: target,
        source_card_ids,
        reference: text(r.reference_id, "referenceId")?,
    };
    run(&app, merchant, command, body.idempotency).await
}
