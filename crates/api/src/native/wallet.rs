//! The native API's customer wallets (`/v1/users/{user_id}/cards...`) and gifts (`/v1/gifts`):
//! wire types, handlers and their renderer. Users are the merchant's own ids (1 to 64
//! characters, no `/` and no control characters). The limit of 10 cards per user answers 400
//! `limit_exceeded` with the seed's exact sentence. No SQL and no business rules here.

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use giftd_domain::wallet::{self, UserId, WalletCard};
use giftd_domain::{CardId, CardNumber, DomainError, ProgramId, SecurityCode};
use giftd_service::views::Card;
use giftd_service::wallet::{WalletCommand, WalletOutcome};
use giftd_service::{Refusal, Rendered};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cardholder_links::CardholderLinkResponse;
use super::error::{ApiError, ErrorBody};
use super::extract::{Body, Merchant, PathParams, amount, path_id, reference};
use super::wire::{CardResponse, List, TransactionResponse, rfc3339};
use super::{Answer, NativeBody, ok, render};
use crate::AppState;
use crate::cardholder::{PublicBase, link_url};

// ---- wire types ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveWalletCardRequest {
    /// Proof of possession: the card's number and security code.
    pub number: String,
    pub security_code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWalletCardRequest {
    /// `true` makes this the user's one preferred card (any other loses the mark).
    pub preferred: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareWalletCardRequest {
    pub recipient_user_id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyRequest {}

/// Either `card_id` (a card the sender owns changes hands) or `program_id` + `amount` +
/// `funding_reference` (a new virtual card is issued, funded and given).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGiftRequest {
    pub sender_user_id: String,
    pub recipient_user_id: String,
    pub card_id: Option<String>,
    pub program_id: Option<String>,
    /// Minor units.
    pub amount: Option<i64>,
    /// The payment that funds the new card (e.g. the card-processor's transaction id).
    pub funding_reference: Option<String>,
}

/// A card as a user holds it: the card object plus `user_id`, `access` and `preferred`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WalletCardResponse {
    #[serde(flatten)]
    pub card: CardResponse,
    pub user_id: String,
    /// `owner` (saved, or received as a gift) or `shared` (another user shared it).
    pub access: &'static str,
    pub preferred: bool,
    pub saved_at: String,
}

impl WalletCardResponse {
    pub fn new(entry: &WalletCard, card: CardResponse) -> Self {
        Self {
            card,
            user_id: entry.user_id.to_string(),
            access: entry.access.as_str(),
            preferred: entry.preferred,
            saved_at: rfc3339(entry.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RemovedWalletCardResponse {
    pub object: &'static str,
    pub user_id: String,
    pub card_id: String,
    pub deleted: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GiftResponse {
    pub object: &'static str,
    pub recipient_user_id: String,
    /// The card as the recipient now holds it; with `number` and `security_code`, once, when
    /// the gift issued it.
    pub card: WalletCardResponse,
    /// The funding of a new card; null when an existing card changed hands.
    pub transaction: Option<TransactionResponse>,
    /// The recipient's page for the card, with its `url` (shown this once). For a new card the
    /// page shows its number and security code; for a card that changed hands its number (and
    /// the code its latest link showed), and the sender's links stop working.
    pub cardholder_link: Option<CardholderLinkResponse>,
}

// ---- rendering ----

/// The wallet limit, as Gr4vy's API (seed 002) words it.
pub fn wallet_limit_error() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "limit_exceeded",
        wallet::WALLET_LIMIT_MESSAGE,
    )
}

impl NativeBody for WalletOutcome {
    fn native_body(&self) -> Option<serde_json::Result<Vec<u8>>> {
        Some(match self {
            WalletOutcome::Card { entry, card } => {
                serde_json::to_vec(&WalletCardResponse::new(entry, CardResponse::new(card)))
            }
            WalletOutcome::Removed { user_id, card_id } => serde_json::to_vec(&RemovedWalletCardResponse {
                object: "wallet_card",
                user_id: user_id.to_string(),
                card_id: card_id.to_string(),
                deleted: true,
            }),
            // The other front-ends' wallet commands: no native wallet route runs them; a gift
            // is rendered by `create_gift`, which knows where the recipient's page is.
            WalletOutcome::Gift { .. }
            | WalletOutcome::CardNow(_)
            | WalletOutcome::Pruned
            | WalletOutcome::Transaction(_)
            | WalletOutcome::Transfer(_) => return None,
        })
    }
}

/// As [`render`], with the wallet limit worded as Gr4vy's API (seed 002) words it.
fn render_wallet(result: &Result<WalletOutcome, Refusal>, success: StatusCode) -> Rendered {
    match result {
        Err(Refusal::Domain(error)) if wallet::is_wallet_limit(error) => wallet_limit_error().rendered(),
        other => render(other, success),
    }
}

fn card_response(card: &Card, issued: Option<&(CardNumber, SecurityCode)>) -> CardResponse {
    match issued {
        Some((number, security_code)) => CardResponse::issued(card, number, security_code),
        None => CardResponse::new(card),
    }
}

async fn run(
    app: &AppState,
    merchant: giftd_domain::MerchantId,
    command: WalletCommand,
    idempotency: Option<giftd_service::IdempotencyKey>,
    success: StatusCode,
) -> Answer {
    let rendered = app
        .service
        .execute(
            merchant,
            command,
            idempotency,
            Box::new(move |result| render_wallet(result, success)),
        )
        .await?;
    super::answer(rendered)
}

// ---- extraction ----

/// A user id from a path: one that cannot exist is 404, as if unknown.
fn path_user(value: &str) -> Result<UserId, ApiError> {
    path_id(value, UserId::parse, "user")
}

fn user_field(value: &str, param: &str) -> Result<UserId, ApiError> {
    UserId::parse(value).ok_or_else(|| {
        ApiError::invalid(
            param,
            format!("`{param}` must be 1 to 64 characters, without `/` or control characters."),
        )
    })
}

/// `{user_id}` alone, or `{user_id}` and `{card_id}`, from the path.
pub struct UserPath(pub UserId, pub Option<CardId>);

impl FromRequestParts<AppState> for UserPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let params = PathParams::read(parts, state).await?;
        let user = path_user(params.required("user_id")?)?;
        let card = params
            .get("card_id")
            .map(|id| path_id(id, CardId::parse, "card"))
            .transpose()?;
        Ok(Self(user, card))
    }
}

fn card_of(path: &UserPath) -> Result<CardId, ApiError> {
    path.1.clone().ok_or_else(|| ApiError::not_found("card"))
}

// ---- handlers ----

/// Saves a card to the user's wallet as its owner. The number and security code prove
/// possession, under the lookup's lockout (404 `invalid_card`, 422 `card_locked`). A user
/// holds at most 10 cards, saved and shared: the 11th is 400 `limit_exceeded`.
#[utoipa::path(put, path = "/v1/users/{user_id}/cards/{card_id}", tag = "wallets",
    params(("user_id" = String, Path), ("card_id" = String, Path)),
    request_body = SaveWalletCardRequest,
    responses((status = 200, description = "The card as the user holds it.", body = WalletCardResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub async fn save_user_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    path: UserPath,
    body: Body<SaveWalletCardRequest>,
) -> Answer {
    let card_id = card_of(&path)?;
    let r = body.value;
    let invalid = || ApiError::from(&Refusal::Domain(DomainError::InvalidCard));
    let command = WalletCommand::Save {
        user_id: path.0,
        card_id: Some(card_id),
        number: CardNumber::parse(&r.number).ok_or_else(invalid)?,
        // Checked like a wrong one when malformed: it counts toward the lockout.
        security_code: SecurityCode::presented(&r.security_code),
    };
    run(&app, merchant, command, body.idempotency, StatusCode::OK).await
}

/// The user's saved and shared cards, oldest first, leaving out those without value, expired
/// or closed. At most 10, so always one page (`next_cursor` null).
#[utoipa::path(get, path = "/v1/users/{user_id}/cards", tag = "wallets",
    params(("user_id" = String, Path)),
    responses((status = 200, description = "A page of the user's cards.", body = List<WalletCardResponse>), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub async fn list_user_cards(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    path: UserPath,
) -> Answer {
    let cards = app.service.wallet(&merchant, &path.0).await?;
    ok(&List {
        object: "list",
        data: cards
            .iter()
            .map(|(entry, card)| WalletCardResponse::new(entry, CardResponse::new(card)))
            .collect(),
        next_cursor: None,
    })
}

/// `{"preferred": true}` makes the card the user's one preferred card.
#[utoipa::path(patch, path = "/v1/users/{user_id}/cards/{card_id}", tag = "wallets",
    params(("user_id" = String, Path), ("card_id" = String, Path)),
    request_body = UpdateWalletCardRequest,
    responses((status = 200, description = "The card as the user holds it.", body = WalletCardResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub async fn update_user_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    path: UserPath,
    body: Body<UpdateWalletCardRequest>,
) -> Answer {
    let card_id = card_of(&path)?;
    if !body.value.preferred {
        return Err(ApiError::invalid(
            "preferred",
            "`preferred` can only be set to true; mark another card preferred instead.",
        ));
    }
    let command = WalletCommand::Prefer {
        user_id: path.0,
        card_id,
    };
    run(&app, merchant, command, body.idempotency, StatusCode::OK).await
}

/// Takes the card out of the user's wallet; the card itself is untouched.
#[utoipa::path(delete, path = "/v1/users/{user_id}/cards/{card_id}", tag = "wallets",
    params(("user_id" = String, Path), ("card_id" = String, Path)),
    responses((status = 200, description = "The card, out of the wallet.", body = RemovedWalletCardResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub async fn delete_user_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    path: UserPath,
    body: Body<EmptyRequest>,
) -> Answer {
    let card_id = card_of(&path)?;
    let command = WalletCommand::Unsave {
        user_id: path.0,
        card_id,
    };
    run(&app, merchant, command, body.idempotency, StatusCode::OK).await
}

/// The card's owner gives `recipient_user_id` equal use of it (it appears in their wallet
/// with `access: shared`). Counts against the recipient's 10 cards.
#[utoipa::path(post, path = "/v1/users/{user_id}/cards/{card_id}/share", tag = "wallets",
    params(("user_id" = String, Path), ("card_id" = String, Path)),
    request_body = ShareWalletCardRequest,
    responses((status = 200, description = "The card as the user holds it.", body = WalletCardResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub async fn share_user_card(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    path: UserPath,
    body: Body<ShareWalletCardRequest>,
) -> Answer {
    let card_id = card_of(&path)?;
    let command = WalletCommand::Share {
        user_id: path.0,
        card_id,
        recipient_user_id: user_field(&body.value.recipient_user_id, "recipient_user_id")?,
    };
    run(&app, merchant, command, body.idempotency, StatusCode::OK).await
}

/// A gift to another user: a card the sender owns changes hands (`card_id`), or a new virtual
/// card is issued, funded and given (`program_id`, `amount`, `funding_reference`; the answer
/// carries its number and security code, once).
#[utoipa::path(post, path = "/v1/gifts", tag = "wallets", request_body = CreateGiftRequest,
    responses((status = 201, description = "Created: the gift.", body = GiftResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub async fn create_gift(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    base: PublicBase,
    body: Body<CreateGiftRequest>,
) -> Answer {
    let r = body.value;
    let sender_user_id = user_field(&r.sender_user_id, "sender_user_id")?;
    let recipient_user_id = user_field(&r.recipient_user_id, "recipient_user_id")?;
    let command = match (r.card_id, r.program_id) {
        (Some(card_id), None) => {
            for (present, param) in [
                (r.amount.is_some(), "amount"),
                (r.funding_reference.is_some(), "funding_reference"),
            ] {
                if present {
                    return Err(ApiError::invalid(
                        param,
                        format!("`{param}` is only for a gift of a new card (with `program_id`)."),
                    ));
                }
            }
            WalletCommand::GiftCard {
                sender_user_id,
                recipient_user_id,
                card_id: CardId::parse(&card_id)
                    .ok_or_else(|| ApiError::invalid("card_id", "`card_id` is not a card id."))?,
                cardholder_link: true,
            }
        }
        (None, Some(program_id)) => WalletCommand::GiftNew {
            sender_user_id,
            recipient_user_id,
            program_id: ProgramId::parse(&program_id)
                .ok_or_else(|| ApiError::invalid("program_id", "`program_id` is not a program id."))?,
            amount: amount(
                r.amount
                    .ok_or_else(|| ApiError::invalid("amount", "The field `amount` is required."))?,
                "amount",
            )?,
            funding_reference: reference(r.funding_reference)
                .map_err(|_| {
                    ApiError::invalid(
                        "funding_reference",
                        "`funding_reference` must be at most 255 characters, without control characters.",
                    )
                })?
                .filter(|f| !f.is_empty())
                .ok_or_else(|| {
                    ApiError::invalid("funding_reference", "The field `funding_reference` is required.")
                })?,
            cardholder_link: true,
        },
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "program_id",
                "Give either `card_id` (an existing card) or `program_id` (a new card), not both.",
            ));
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "card_id",
                "Give `card_id` (an existing card) or `program_id`, `amount` and `funding_reference` (a new card).",
            ));
        }
    };
    // The answer names the recipient's page, an address on this server.
    let rendered = app
        .service
        .execute(
            merchant,
            command,
            body.idempotency,
            Box::new(move |result| match result {
                Ok(WalletOutcome::Gift {
                    entry,
                    card,
                    issued,
                    transaction,
                    link,
                }) => Rendered {
                    status: StatusCode::CREATED.as_u16(),
                    body: serde_json::to_vec(&GiftResponse {
                        object: "gift",
                        recipient_user_id: entry.user_id.to_string(),
                        card: WalletCardResponse::new(entry, card_response(card, issued.as_ref())),
                        transaction: transaction.as_ref().map(TransactionResponse::from),
                        cardholder_link: link.as_ref().map(|new| {
                            CardholderLinkResponse::new(&new.link, Some(link_url(&base, new.token.expose())))
                        }),
                    })
                    .expect("response types always serialize"),
                },
                other => render_wallet(other, StatusCode::CREATED),
            }),
        )
        .await?;
    super::answer(rendered)
}
