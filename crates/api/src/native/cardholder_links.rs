//! Cardholder links (`/v1/cards/{card_id}/cardholder_links`, docs/CARDHOLDER.md): the
//! addresses of a card's page for the person who holds it. A link is made by a gift or a Gr4vy
//! issuance, or here by the support desk (a new address for a cardholder who lost theirs, or
//! after a revocation: it shows the code the card's latest link showed); its `url` is in the
//! answer that made it only. Listing never shows an address; revoking one makes its page
//! answer as an unknown one. Wire types and handlers only; links are the service's
//! (`giftd_service::cardholder`).

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use giftd_domain::{CardId, CardholderLinkId};
use giftd_service::Rendered;
use giftd_service::cardholder::{CardholderCommand, CardholderLink, CardholderOutcome};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{Body, Merchant, PathParams, path_id};
use super::wire::{List, rfc3339};
use super::{Answer, answer, ok, render};
use crate::AppState;
use crate::cardholder::{PublicBase, link_url};

/// No fields: the body is empty or `{}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCardholderLinkRequest {}

#[derive(Debug, Serialize, ToSchema)]
pub struct CardholderLinkResponse {
    pub object: &'static str,
    /// `chl_...`
    pub id: String,
    pub card_id: String,
    /// The page's address: only in the answer that made the link, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Whether the page shows the card's security code (links made when the code was at hand,
    /// and the links made after them).
    pub shows_security_code: bool,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl CardholderLinkResponse {
    pub fn new(link: &CardholderLink, url: Option<String>) -> Self {
        Self {
            object: "cardholder_link",
            id: link.id.to_string(),
            card_id: link.card_id.to_string(),
            url,
            shows_security_code: link.shows_code,
            created_at: rfc3339(link.created_at),
            revoked_at: link.revoked_at.map(rfc3339),
        }
    }
}

impl super::NativeBody for CardholderOutcome {
    fn native_body(&self) -> Option<serde_json::Result<Vec<u8>>> {
        match self {
            // Rendered by `create_cardholder_link`, which knows where the page is.
            CardholderOutcome::Created(_) => None,
            CardholderOutcome::Revoked(link) => {
                Some(serde_json::to_vec(&CardholderLinkResponse::new(link, None)))
            }
        }
    }
}

/// `{card_id}` and perhaps `{link_id}` from the path.
pub struct LinkPath(CardId, Option<CardholderLinkId>);

impl FromRequestParts<AppState> for LinkPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let params = PathParams::read(parts, state).await?;
        let card = path_id(params.required("card_id")?, CardId::parse, "card")?;
        let link = params
            .get("link_id")
            .map(|id| path_id(id, CardholderLinkId::parse, "cardholder link"))
            .transpose()?;
        Ok(Self(card, link))
    }
}

/// A new link to the card's page, for its cardholder. It shows the security code the card's
/// latest link showed, if any did; a card has at most 10 links that work.
#[utoipa::path(post, path = "/v1/cards/{card_id}/cardholder_links", tag = "cards",
    params(("card_id" = String, Path)), request_body = CreateCardholderLinkRequest,
    responses((status = 201, description = "Made: the link, with its `url` shown this once.", body = CardholderLinkResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn create_cardholder_link(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    base: PublicBase,
    path: LinkPath,
    body: Body<CreateCardholderLinkRequest>,
) -> Answer {
    let CreateCardholderLinkRequest {} = body.value;
    let command = CardholderCommand::Create { card_id: path.0 };
    let rendered = app
        .service
        .execute(
            merchant,
            command,
            body.idempotency,
            Box::new(move |result| match result {
                Ok(CardholderOutcome::Created(new)) => Rendered {
                    status: StatusCode::CREATED.as_u16(),
                    body: serde_json::to_vec(&CardholderLinkResponse::new(
                        &new.link,
                        Some(link_url(&base, new.token.expose())),
                    ))
                    .expect("response types always serialize"),
                },
                other => render(other, StatusCode::CREATED),
            }),
        )
        .await?;
    answer(rendered)
}

/// The card's links, newest first (at most 100), revoked ones too; never their addresses.
#[utoipa::path(get, path = "/v1/cards/{card_id}/cardholder_links", tag = "cards",
    params(("card_id" = String, Path)),
    responses((status = 200, description = "The card's links.", body = List<CardholderLinkResponse>), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn list_cardholder_links(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    path: LinkPath,
) -> Answer {
    let links = app.service.cardholder_links(&merchant, &path.0).await?;
    ok(&List {
        object: "list",
        data: links
            .iter()
            .map(|l| CardholderLinkResponse::new(l, None))
            .collect(),
        next_cursor: None,
    })
}

/// The link stops working: its page answers 404, as for an address that never was. Revoking
/// a revoked link answers it as it is.
#[utoipa::path(delete, path = "/v1/cards/{card_id}/cardholder_links/{link_id}", tag = "cards",
    params(("card_id" = String, Path), ("link_id" = String, Path)),
    responses((status = 200, description = "The link, revoked.", body = CardholderLinkResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub(super) async fn revoke_cardholder_link(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    path: LinkPath,
) -> Answer {
    let id = path.1.ok_or_else(|| ApiError::not_found("cardholder link"))?;
    let command = CardholderCommand::Revoke { card_id: path.0, id };
    let rendered = app
        .service
        .execute(
            merchant,
            command,
            None,
            Box::new(move |result| render(result, StatusCode::OK)),
        )
        .await?;
    answer(rendered)
}
