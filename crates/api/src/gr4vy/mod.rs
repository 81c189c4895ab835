//! The Gr4vy-style facade under `/gr4vy`: the gift card parts of Gr4vy's API (seed 002) —
//! balances of up to 10 gift cards, gift cards stored in the vault (for a buyer or not), and a
//! buyer's stored gift cards with the ones that cannot pay any more cleared out, and
//! transactions with gift cards over giftd's checkouts (`transactions.rs`). snake_case
//! JSON in Gr4vy's shapes, lenient about extra fields; amounts in minor units. Auth is a giftd
//! merchant API key as the bearer token (where Gr4vy takes a JWT). A buyer is a giftd wallet
//! user; a stored gift card is a card in that user's wallet. Each request becomes a service
//! command or read (never a native API type); errors come in Gr4vy's envelope (`error.rs`).
//! See docs/GR4VY.md. No SQL, no business rules.

pub mod error;
pub mod ids;
pub mod issuing;
pub mod transactions;
pub mod wire;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use giftd_domain::wallet::UserId;
use giftd_domain::{CardId, CardNumber, CardState, DomainError, MerchantId, SecurityCode};
use giftd_service::views::CardFilter;
use giftd_service::wallet::{CardAccess, CardOperation, WalletCommand, WalletOutcome};
use giftd_service::{IdempotencyKey, Refusal, Rendered};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::native::error::ApiError;
use crate::native::extract::{self, PageQuery};
use crate::{AppState, json_response};
use error::Gr4vyError;
use wire::*;

/// How the edge guards the Gr4vy facade (`guard.rs`): a write presenting a `pin` counts toward
/// the rate limits; refusals in Gr4vy's shape.
pub const EDGE: crate::guard::FrontEndEdge = crate::guard::FrontEndEdge {
    owns: |path| path.starts_with("/gr4vy/"),
    code_fields: &["pin"],
    counts: crate::guard::none,
    inspects_body: crate::guard::every_write,
    refusal: |status, _, message| {
        axum::response::IntoResponse::into_response(error::Gr4vyError::new(status, message))
    },
    query_refusal: None,
    channel: giftd_domain::Channel::Gr4vy,
};

/// Most gift cards one balance request checks (Gr4vy's limit of 10 (seed 002)).
pub const MAX_BALANCE_ITEMS: usize = 10;
/// The idempotency scope of this facade: its keys never meet another front-end's.
pub const SCOPE: &str = "gr4vy";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/gift-cards/balances", post(list_gift_card_balances))
        .route("/gift-cards", post(create_gift_card).get(list_gift_cards))
        .route("/gift-cards/activations", post(issuing::activate))
        .route("/gift-cards/issuances", post(issuing::issue))
        .route(
            "/gift-cards/{gift_card_id}",
            get(get_gift_card).delete(delete_gift_card),
        )
        .route("/buyers/gift-cards", get(list_buyer_gift_cards))
        // Transactions with gift cards: giftd's checkouts (`transactions.rs`).
        .route(
            "/transactions",
            post(transactions::create_transaction).get(transactions::list_transactions),
        )
        .route(
            "/transactions/{transaction_id}",
            get(transactions::get_transaction),
        )
        .route(
            "/transactions/{transaction_id}/capture",
            post(transactions::capture_transaction),
        )
        .route(
            "/transactions/{transaction_id}/void",
            post(transactions::void_transaction),
        )
        .route(
            "/transactions/{transaction_id}/refunds",
            post(transactions::create_transaction_refund).get(transactions::list_transaction_refunds),
        )
        .route(
            "/transactions/{transaction_id}/refunds/all",
            post(transactions::create_full_transaction_refund),
        )
        .route(
            "/transactions/{transaction_id}/refunds/{refund_id}",
            get(transactions::get_transaction_refund),
        )
        .route(
            "/transactions/{transaction_id}/cancel",
            post(transactions::cancel_transaction),
        )
        .route("/refunds/{refund_id}", get(transactions::get_refund))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

type Answer = Result<Response, Gr4vyError>;

/// The merchant behind `Authorization: Bearer <giftd API key>`.
pub struct Merchant(pub MerchantId);

impl FromRequestParts<AppState> for Merchant {
    type Rejection = Gr4vyError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let key = crate::credentials::bearer(&parts.headers).unwrap_or_default();
        Ok(Self(
            state.service.authenticate(key, crate::access::of(parts)).await?,
        ))
    }
}

/// A JSON body and its Idempotency-Key, read as the native API reads them (same limits and
/// request digest); the types here are lenient, and refusals come in Gr4vy's envelope.
pub struct Body<T> {
    pub value: T,
    pub idempotency: Option<IdempotencyKey>,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Body<T> {
    type Rejection = Gr4vyError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let extract::Body { value, idempotency } = extract::Body::<T>::from_request(request, state).await?;
        let idempotency = idempotency.map(|key| IdempotencyKey { scope: SCOPE, ..key });
        Ok(Self { value, idempotency })
    }
}

/// A query string, lenient about parameters it does not know.
fn query<T: DeserializeOwned>(raw: Option<&str>) -> Result<T, Gr4vyError> {
    serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|e| Gr4vyError::invalid("query", "", format!("The query string is malformed: {e}.")))
}

async fn not_found() -> Gr4vyError {
    Gr4vyError::new(StatusCode::NOT_FOUND, "No such endpoint.")
}

async fn method_not_allowed() -> Gr4vyError {
    Gr4vyError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "This endpoint does not take that method.",
    )
}

fn required<T>(value: Option<T>, location: &'static str, field: &str) -> Result<T, Gr4vyError> {
    value.ok_or_else(|| Gr4vyError::invalid(location, field, format!("The field `{field}` is required.")))
}

/// The buyer a request names, by `buyer_id` or `buyer_external_identifier` (not both): both
/// name the giftd wallet user with that id.
fn buyer(
    buyer_id: Option<&str>,
    buyer_external_identifier: Option<&str>,
    location: &'static str,
) -> Result<Option<UserId>, Gr4vyError> {
    let (field, value) = match (buyer_id, buyer_external_identifier) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(Gr4vyError::invalid(
                location,
                "buyer_external_identifier",
                "Give either `buyer_id` or `buyer_external_identifier`, not both.",
            ));
        }
        (Some(id), None) => ("buyer_id", id),
        (None, Some(id)) => ("buyer_external_identifier", id),
    };
    UserId::parse(value).map(Some).ok_or_else(|| {
        Gr4vyError::invalid(
            location,
            field,
            format!("`{field}` must be 1 to 64 characters, without `/` or control characters."),
        )
    })
}

/// The buyer a request names, as [`buyer`] reads it, with a `buyer_id` that is the UUID this
/// facade shows for a buyer (`ids::buyer`) read back to its user. A UUID that names no known
/// buyer is taken as a user id, as any other `buyer_id` is (a merchant's own ids may be UUIDs).
async fn buyer_of(
    app: &AppState,
    merchant: &MerchantId,
    buyer_id: Option<&str>,
    buyer_external_identifier: Option<&str>,
    location: &'static str,
) -> Result<Option<UserId>, Gr4vyError> {
    let named = buyer(buyer_id, buyer_external_identifier, location)?;
    if let Some(id) = buyer_id
        && id.len() == 36
        && uuid::Uuid::try_parse(id).is_ok()
        && let Some(user) = app
            .service
            .wallet_user_by_public_id(merchant, &id.to_ascii_lowercase())
            .await?
    {
        return Ok(Some(user));
    }
    Ok(named)
}

/// A gift card id from a path or an item: its UUID, or giftd's card id. One that cannot exist
/// is unknown.
fn gift_card_id(value: &str) -> Result<CardId, Gr4vyError> {
    ids::card(value).ok_or_else(|| Gr4vyError::not_found("gift card"))
}

/// A number and PIN as the request gave them; `None` when the number cannot belong to any card
/// (the same answer as a wrong one, so nothing is learned from it). A malformed PIN is checked
/// like a wrong one and counts toward the number's lockout.
fn secrets(number: &str, pin: &str) -> Option<(CardNumber, SecurityCode)> {
    Some((CardNumber::parse(number)?, SecurityCode::presented(pin)))
}

fn ok_json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    json_response(
        status,
        serde_json::to_vec(body).expect("response types always serialize"),
    )
}

fn answer(rendered: Rendered) -> Response {
    let status = StatusCode::from_u16(rendered.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::NO_CONTENT {
        return status.into_response();
    }
    json_response(status, rendered.body)
}

/// A command outcome this facade does not expect: a bug, answered as an opaque 500.
fn unexpected() -> Rendered {
    tracing::error!("a gr4vy facade command produced an outcome the facade does not render");
    Gr4vyError::from(giftd_service::ServiceError::unexpected_outcome()).rendered()
}

// ---- balances ----

/// `POST /gift-cards/balances`: each item is checked on its own; one that cannot be checked
/// answers with `balance: null` and why, beside the others.
async fn list_gift_card_balances(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<Gr4vyGiftCardBalanceRequest>,
) -> Answer {
    let items = required(body.value.items, "body", "items")?;
    if items.is_empty() || items.len() > MAX_BALANCE_ITEMS {
        return Err(Gr4vyError::invalid(
            "body",
            "items",
            format!(
                "`items` takes 1 to {MAX_BALANCE_ITEMS} gift cards; {} were given.",
                items.len()
            ),
        ));
    }
    // Every item is well formed before any is checked.
    let mut checks = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        checks.push(match (item.id, item.number) {
            (Some(id), None) => BalanceCheck::Stored(id),
            (None, Some(number)) => {
                let pin = required(item.pin, "body", &format!("items/{index}/pin"))?;
                BalanceCheck::Secret(number, pin)
            }
            _ => {
                return Err(Gr4vyError::invalid(
                    "body",
                    &format!("items/{index}"),
                    "Each item is either `{number, pin}` or `{id}`.",
                ));
            }
        });
    }
    // One after the other, in the order given, so that wrong PINs count in that order.
    let mut items = Vec::with_capacity(checks.len());
    for check in checks {
        items.push(check.run(&app, &merchant).await?);
    }
    // `GiftCardSummaries`, its items as each check wrote them.
    #[derive(serde::Serialize)]
    struct Summaries {
        items: Vec<Box<RawValue>>,
    }
    Ok(ok_json(StatusCode::OK, &Summaries { items }))
}

enum BalanceCheck {
    Stored(String),
    Secret(String, String),
}

impl BalanceCheck {
    /// The item's `GiftCardSummary`, as JSON text.
    async fn run(self, app: &AppState, merchant: &MerchantId) -> Result<Box<RawValue>, Gr4vyError> {
        let now = app.service.now();
        let summary = match self {
            Self::Stored(id) => {
                let found = match ids::card(&id) {
                    Some(card_id) => app.service.card(merchant, &card_id).await.map(Some),
                    None => Ok(None),
                };
                match found {
                    Ok(Some(card)) => {
                        let prefix = app.service.card_number_prefix(&card);
                        Gr4vyGiftCardSummary::of_card(&card, prefix.as_deref(), now)
                    }
                    Ok(None) | Err(giftd_service::ServiceError::NotFound(_)) => {
                        Gr4vyGiftCardSummary::refused(
                            merchant.as_str(),
                            Some(id),
                            None,
                            Gr4vyGiftCardErrorCode::InvalidGiftCard,
                            "not_found",
                            "No such gift card.".into(),
                        )
                    }
                    Err(other) => return Err(other.into()),
                }
            }
            Self::Secret(number, pin) => {
                let Some((number, security_code)) = secrets(&number, &pin) else {
                    let error = ApiError::from(&DomainError::InvalidCard);
                    let summary = Gr4vyGiftCardSummary::refused(
                        merchant.as_str(),
                        None,
                        CardNumber::parse(&number).as_ref(),
                        Gr4vyGiftCardErrorCode::InvalidGiftCard,
                        error.code,
                        error.message,
                    );
                    return Ok(raw(&summary));
                };
                let merchant_account_id = merchant.to_string();
                let command = WalletCommand::OnCard {
                    access: CardAccess::Secret {
                        number: number.clone(),
                        security_code,
                    },
                    operation: CardOperation::Balance,
                };
                let rendered = app
                    .service
                    .execute(
                        merchant.clone(),
                        command,
                        None,
                        Box::new(move |result| render_balance(result, &merchant_account_id, &number, now)),
                    )
                    .await?;
                if rendered.status != 200 {
                    return Err(Gr4vyError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Something went wrong inside giftd.",
                    ));
                }
                let text = String::from_utf8(rendered.body).expect("summaries are UTF-8 JSON");
                return Ok(RawValue::from_string(text).expect("summaries are JSON"));
            }
        };
        Ok(raw(&summary))
    }
}

fn raw(summary: &Gr4vyGiftCardSummary) -> Box<RawValue> {
    serde_json::value::to_raw_value(summary).expect("summaries always serialize")
}

fn render_balance(
    result: &Result<WalletOutcome, Refusal>,
    merchant_account_id: &str,
    number: &CardNumber,
    now: giftd_domain::Timestamp,
) -> Rendered {
    let summary = match result {
        Ok(WalletOutcome::CardNow(card)) => {
            Gr4vyGiftCardSummary::of_card(card, number_prefix(number).as_deref(), now)
        }
        Ok(_) => return unexpected(),
        Err(refusal) => {
            let code = match refusal {
                Refusal::Domain(DomainError::InvalidCard) | Refusal::NotFound(_) => {
                    Gr4vyGiftCardErrorCode::InvalidGiftCard
                }
                Refusal::Domain(DomainError::CardLocked { .. }) => Gr4vyGiftCardErrorCode::SuspectedFraud,
                Refusal::Domain(DomainError::CardExpired) => Gr4vyGiftCardErrorCode::ExpiredCard,
                Refusal::Domain(DomainError::CardNotActive { .. }) => Gr4vyGiftCardErrorCode::InactiveCard,
                Refusal::Domain(_)
                | Refusal::CardNumberTaken
                | Refusal::Invalid { .. }
                | Refusal::Clover(_)
                | Refusal::Checkout(_) => Gr4vyGiftCardErrorCode::UnknownError,
            };
            let error = ApiError::from(refusal);
            Gr4vyGiftCardSummary::refused(
                merchant_account_id,
                None,
                Some(number),
                code,
                error.code,
                error.message,
            )
        }
    };
    Rendered {
        status: 200,
        body: serde_json::to_vec(&summary).expect("summaries always serialize"),
    }
}

// ---- the vault ----

/// `POST /gift-cards`: with a buyer, the card joins that buyer's wallet (number and PIN prove
/// possession, under the lookup's lockout; at most 10 cards per buyer). Without one, number
/// and PIN are checked and the card's id is answered: giftd already holds every card it issued.
async fn create_gift_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<Gr4vyGiftCardCreate>,
) -> Answer {
    let r = body.value;
    let number = required(r.number, "body", "number")?;
    let pin = required(r.pin, "body", "pin")?;
    let buyer = buyer_of(
        &app,
        &merchant,
        r.buyer_id.as_deref(),
        r.buyer_external_identifier.as_deref(),
        "body",
    )
    .await?;
    if CardNumber::parse(&number).is_none() {
        return Err(Gr4vyError::invalid(
            "body",
            "number",
            "`number` must be a gift card number: digits only.",
        ));
    }
    let Some((number, security_code)) = secrets(&number, &pin) else {
        return Err(Gr4vyError::from_refusal(&Refusal::Domain(
            DomainError::InvalidCard,
        )));
    };
    let command = match buyer {
        Some(user_id) => WalletCommand::Save {
            user_id,
            card_id: None,
            number: number.clone(),
            security_code,
        },
        None => WalletCommand::OnCard {
            access: CardAccess::Secret {
                number: number.clone(),
                security_code,
            },
            operation: CardOperation::Balance,
        },
    };
    let rendered = app
        .service
        .execute(
            merchant,
            command,
            body.idempotency,
            Box::new(move |result| render_stored(result, &number)),
        )
        .await?;
    Ok(answer(rendered))
}

fn render_stored(result: &Result<WalletOutcome, Refusal>, number: &CardNumber) -> Rendered {
    let gift_card = match result {
        Err(refusal) => return Gr4vyError::from_refusal(refusal).rendered(),
        Ok(WalletOutcome::Card { entry, card }) => {
            Gr4vyGiftCard::new(card, Some(entry), number_prefix(number).as_deref())
        }
        // A closed card cannot be stored, for a buyer (the wallet refuses it) or not.
        Ok(WalletOutcome::CardNow(card)) if card.snapshot.state == CardState::Closed => {
            return Gr4vyError::from_refusal(&Refusal::Domain(DomainError::CardNotActive {
                state: CardState::Closed,
            }))
            .rendered();
        }
        Ok(WalletOutcome::CardNow(card)) => Gr4vyGiftCard::new(card, None, number_prefix(number).as_deref()),
        Ok(_) => return unexpected(),
    };
    Rendered {
        status: 201,
        body: serde_json::to_vec(&gift_card).expect("response types always serialize"),
    }
}

/// `GET /gift-cards`: a buyer's stored cards (oldest first, all of them), or without a buyer
/// every card of the merchant (newest first), in pages.
async fn list_gift_cards(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q: Gr4vyGiftCardListQuery = query(raw.as_deref())?;
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()
    .map_err(|e| Gr4vyError::from_native(e, "query"))?;
    let limit = page.limit - 1;
    let buyer = buyer_of(
        &app,
        &merchant,
        q.buyer_id.as_deref(),
        q.buyer_external_identifier.as_deref(),
        "query",
    )
    .await?;
    let (items, next_cursor) = match buyer {
        Some(user_id) => {
            let entries = app.service.wallet_entries(&merchant, &user_id).await?;
            let start = match &page.cursor {
                None => 0,
                Some(cursor) => {
                    entries
                        .iter()
                        .position(|(entry, _)| entry.card_id.as_str() == cursor)
                        .ok_or_else(|| {
                            Gr4vyError::invalid("query", "cursor", "`cursor` is not a cursor this API gave.")
                        })?
                        + 1
                }
            };
            let rest = &entries[start..];
            let shown = &rest[..rest.len().min(limit as usize)];
            let next = (rest.len() > shown.len())
                .then(|| shown.last().map(|(entry, _)| entry.card_id.to_string()))
                .flatten();
            let items = shown
                .iter()
                .map(|(entry, card)| {
                    let prefix = app.service.card_number_prefix(card);
                    Gr4vyGiftCard::new(card, Some(entry), prefix.as_deref())
                })
                .collect();
            (items, next)
        }
        None => {
            let mut cards = app
                .service
                .cards(&merchant, &CardFilter::default(), &page)
                .await?;
            let next = if cards.len() > limit as usize {
                cards.truncate(limit as usize);
                cards.last().map(|card| card.snapshot.id.to_string())
            } else {
                None
            };
            let items = cards
                .iter()
                .map(|card| Gr4vyGiftCard::new(card, None, app.service.card_number_prefix(card).as_deref()))
                .collect();
            (items, next)
        }
    };
    Ok(ok_json(
        StatusCode::OK,
        &Gr4vyGiftCards {
            items,
            limit,
            next_cursor,
            previous_cursor: None,
        },
    ))
}

/// `GET /gift-cards/{gift_card_id}`: any card of the merchant, by giftd's card id.
async fn get_gift_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    path: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Answer {
    let card_id = gift_card_id(&path_id(path)?)?;
    let card = app.service.card(&merchant, &card_id).await?;
    let prefix = app.service.card_number_prefix(&card);
    Ok(ok_json(
        StatusCode::OK,
        &Gr4vyGiftCard::new(&card, None, prefix.as_deref()),
    ))
}

/// `DELETE /gift-cards/{gift_card_id}`: the card leaves every buyer's wallet; the card itself
/// (its value, its number) is untouched.
async fn delete_gift_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    path: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Answer {
    let card_id = gift_card_id(&path_id(path)?)?;
    let rendered = app
        .service
        .execute(
            merchant,
            WalletCommand::UnsaveEverywhere { card_id },
            None,
            Box::new(|result| match result {
                Ok(WalletOutcome::CardNow(_)) => Rendered {
                    status: 204,
                    body: Vec::new(),
                },
                Ok(_) => unexpected(),
                Err(refusal) => Gr4vyError::from_refusal(refusal).rendered(),
            }),
        )
        .await?;
    Ok(answer(rendered))
}

/// A path segment axum could not decode cannot be an id: 404.
fn path_id(
    path: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<String, Gr4vyError> {
    path.map(|axum::extract::Path(id)| id)
        .map_err(|_| Gr4vyError::not_found("gift card"))
}

/// `GET /buyers/gift-cards`: the buyer's stored cards that can still pay, with their balances.
/// As in Gr4vy's API (seed 002), cards with no value left, expired or closed are taken out of the
/// buyer's storage by the service (`Service::pruned_wallet`), so that they stop counting against
/// the limit of 10.
async fn list_buyer_gift_cards(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q: Gr4vyBuyerGiftCardsQuery = query(raw.as_deref())?;
    let user_id = buyer_of(
        &app,
        &merchant,
        q.buyer_id.as_deref(),
        q.buyer_external_identifier.as_deref(),
        "query",
    )
    .await?
    .ok_or_else(|| {
        Gr4vyError::invalid(
            "query",
            "buyer_external_identifier",
            "Name the buyer with `buyer_id` or `buyer_external_identifier`.",
        )
    })?;
    let now = app.service.now();
    let items = app
        .service
        .pruned_wallet(&merchant, &user_id)
        .await?
        .iter()
        .map(|(_, card)| {
            let prefix = app.service.card_number_prefix(card);
            Gr4vyGiftCardSummary::of_card(card, prefix.as_deref(), now)
        })
        .collect();
    Ok(ok_json(StatusCode::OK, &Gr4vyGiftCardSummaries { items }))
}
