//! Cardholder links: the address of a card's page for the person who holds it (`/g/{token}`,
//! docs/CARDHOLDER.md). The token is 256 random bits, shown once, in the answer that made the
//! link; giftd keeps only its keyed hash. A link made while the card's security code is at hand
//! (a gift of a new card, a Gr4vy issuance) keeps that code encrypted, so that the page can show
//! it; the card itself keeps only the code's hash. Staff revoke a link (a forwarded email, a
//! lost phone) and make a new one, which takes over the code of the card's latest link.
//!
//! The page reads a link by its token's hash: an unknown, malformed or revoked token is the same
//! `None`, so that nothing tells them apart.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use giftd_domain::{CardId, CardholderLinkId, MerchantId, Program, SecurityCode, Timestamp, TransactionType};
use giftd_store::{CardholderLinkRecord, Page, StoreError, StoreResult, TransactionRecord, WriteTx};
use rand::Rng;

use crate::error::{Failure, Refusal, ServiceError};
use crate::operation::{Context, Operation};
use crate::views::Card;
use crate::webhooks::Before;
use crate::{Service, ids};

/// Random bytes in a token: 256 bits, well past the 128 an unguessable address needs.
pub const TOKEN_BYTES: usize = 32;
/// Characters of a token: its bytes in unpadded base64url.
pub const TOKEN_CHARS: usize = 43;
/// Most links a card may have that are not revoked: each is a way in to its number and code.
pub const MAX_LIVE_LINKS_PER_CARD: usize = 10;
/// Most of a card's transactions the page lists as its recent uses.
pub const RECENT_USES_SHOWN: u32 = 10;

/// A link's token in clear: in the answer that made the link only, never in `Debug` output.
#[derive(Clone)]
pub struct LinkToken(String);

impl LinkToken {
    fn new() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkToken(redacted)")
    }
}

/// A link as staff and the API see it: never its token, hash or code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardholderLink {
    pub id: CardholderLinkId,
    pub card_id: CardId,
    /// Whether its page shows the card's security code.
    pub shows_code: bool,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl From<&CardholderLinkRecord> for CardholderLink {
    fn from(record: &CardholderLinkRecord) -> Self {
        Self {
            id: record.id.clone(),
            card_id: record.card_id.clone(),
            shows_code: record.code_ciphertext.is_some(),
            created_at: record.created_at,
            revoked_at: record.revoked_at,
        }
    }
}

/// A link just made, with its token (shown once).
#[derive(Debug, Clone)]
pub struct NewLink {
    pub link: CardholderLink,
    pub token: LinkToken,
}

/// Makes a link to `card_id` in the command's transaction. With `code`, its page shows that
/// code; without, the code of the card's latest link that has one, if any.
pub(crate) async fn make_link(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    card_id: &CardId,
    code: Option<&SecurityCode>,
) -> Result<NewLink, Failure> {
    let earlier = tx.cardholder_links(cx.merchant, card_id).await?;
    // Every link a card ever had is read here (the listing's limit is the card's), so the
    // count of live ones and the code carried over are exact.
    if earlier.len() >= giftd_store::MAX_LINKS_LISTED as usize {
        return Err(Refusal::Invalid {
            param: "card_id",
            message: format!(
                "this card has had {} cardholder links, the most it may have",
                giftd_store::MAX_LINKS_LISTED
            ),
        }
        .into());
    }
    if earlier.iter().filter(|l| l.revoked_at.is_none()).count() >= MAX_LIVE_LINKS_PER_CARD {
        return Err(Refusal::Invalid {
            param: "card_id",
            message: format!(
                "this card has {MAX_LIVE_LINKS_PER_CARD} links that work: revoke one before making another"
            ),
        }
        .into());
    }
    let id = ids::cardholder_link();
    let code: Option<Vec<u8>> = match code {
        Some(code) => Some(code.expose().as_bytes().to_vec()),
        None => earlier.iter().find_map(|link| {
            let sealed = link.code_ciphertext.as_ref()?;
            cx.keys.decrypt(sealed, link.id.as_str().as_bytes())
        }),
    };
    let token = LinkToken::new();
    let record = CardholderLinkRecord {
        id: id.clone(),
        merchant_id: cx.merchant.clone(),
        card_id: card_id.clone(),
        token_hash: cx.keys.cardholder_token_hash(token.expose()),
        code_ciphertext: code.map(|code| cx.keys.encrypt(&code, id.as_str().as_bytes())),
        created_at: cx.now,
        revoked_at: None,
    };
    tx.insert_cardholder_link(&record).await?;
    Ok(NewLink {
        link: CardholderLink::from(&record),
        token,
    })
}

#[derive(Debug, Clone)]
pub enum CardholderCommand {
    /// A new link to the card.
    Create { card_id: CardId },
    /// The link stops working; its page answers as an unknown one.
    Revoke { card_id: CardId, id: CardholderLinkId },
}

#[derive(Debug, Clone)]
pub enum CardholderOutcome {
    Created(NewLink),
    Revoked(CardholderLink),
}

#[async_trait]
impl Operation for CardholderCommand {
    type Outcome = CardholderOutcome;

    fn audit_objects(&self, outcome: &CardholderOutcome) -> Vec<String> {
        match outcome {
            CardholderOutcome::Created(new) => vec![new.link.id.to_string()],
            CardholderOutcome::Revoked(_) => Vec::new(),
        }
    }

    async fn execute(&self, tx: &mut dyn WriteTx, cx: &Context<'_>) -> Result<CardholderOutcome, Failure> {
        match self {
            Self::Create { card_id } => {
                // A card of another merchant is not found.
                crate::steps::card_now(tx, cx, card_id).await?;
                Ok(CardholderOutcome::Created(
                    make_link(tx, cx, card_id, None).await?,
                ))
            }
            Self::Revoke { card_id, id } => {
                let links = tx.cardholder_links(cx.merchant, card_id).await?;
                let link = links
                    .iter()
                    .find(|link| &link.id == id)
                    .ok_or(Refusal::NotFound("cardholder link"))?;
                let mut link = CardholderLink::from(link);
                // Revoking twice answers the first revocation.
                if link.revoked_at.is_none()
                    && tx
                        .revoke_cardholder_link(cx.merchant, card_id, id, cx.now)
                        .await?
                {
                    link.revoked_at = Some(cx.now);
                }
                Ok(CardholderOutcome::Revoked(link))
            }
        }
    }

    async fn events(
        &self,
        _: &mut dyn WriteTx,
        _: &Context<'_>,
        _: &CardholderOutcome,
        _: Before,
    ) -> StoreResult<()> {
        Ok(())
    }
}

/// What the cardholder page shows: the card, its program, its secrets in clear, and its
/// recent uses (date, amount, balance after: nothing of who paid or what).
#[derive(Debug, Clone)]
pub struct CardholderPage {
    pub card: Card,
    pub program: Program,
    /// The card's number, decrypted for this page.
    pub number: String,
    /// Its security code, when the link keeps one.
    pub security_code: Option<String>,
    /// What the card was first given: its first issue, activation or load.
    pub initial_value: Option<i64>,
    pub recent: Vec<TransactionRecord>,
}

/// Whether `token` could be one giftd made, before any lookup.
fn plausible_token(token: &str) -> bool {
    token.len() == TOKEN_CHARS
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Service {
    /// The page behind a token: `None` for a token that is malformed, unknown or revoked, or
    /// whose card is gone, alike.
    pub async fn cardholder_page(&self, token: &str) -> Result<Option<CardholderPage>, ServiceError> {
        if !plausible_token(token) {
            return Ok(None);
        }
        let hash = self.inner.keys.cardholder_token_hash(token);
        let Some(link) = self.inner.store.cardholder_link_by_token_hash(&hash).await? else {
            return Ok(None);
        };
        if link.revoked_at.is_some() {
            return Ok(None);
        }
        let merchant = &link.merchant_id;
        let card = match self.card(merchant, &link.card_id).await {
            Ok(card) => card,
            Err(ServiceError::NotFound(_)) => return Ok(None),
            Err(error) => return Err(error),
        };
        let program = match self.program(merchant, &card.snapshot.program_id).await {
            Ok(program) => program,
            Err(ServiceError::NotFound(_)) => return Ok(None),
            Err(error) => return Err(error),
        };
        let number = self
            .inner
            .keys
            .decrypt(&card.number_ciphertext, card.snapshot.id.as_str().as_bytes())
            .and_then(|plain| String::from_utf8(plain).ok())
            .ok_or_else(|| {
                ServiceError::Internal(StoreError::Corrupt(format!(
                    "the number of {} does not decrypt",
                    card.snapshot.id
                )))
            })?;
        let security_code = match &link.code_ciphertext {
            None => None,
            Some(sealed) => Some(
                self.inner
                    .keys
                    .decrypt(sealed, link.id.as_str().as_bytes())
                    .and_then(|plain| String::from_utf8(plain).ok())
                    .ok_or_else(|| {
                        ServiceError::Internal(StoreError::Corrupt(format!(
                            "the code of {} does not decrypt",
                            link.id
                        )))
                    })?,
            ),
        };
        let recent = self
            .inner
            .store
            .card_transactions(
                merchant,
                &card.snapshot.id,
                &Page {
                    cursor: None,
                    limit: RECENT_USES_SHOWN,
                },
            )
            .await?;
        let initial_value = self.initial_value(merchant, &card.snapshot.id).await?;
        Ok(Some(CardholderPage {
            card,
            program,
            number,
            security_code,
            initial_value,
            recent,
        }))
    }

    /// The amount of a card's first issue, activation or load (its transactions are read a
    /// page at a time from the newest: cards have few). `None` for a card with more than the
    /// pages read: its first value is not guessed from a later one.
    async fn initial_value(&self, merchant: &MerchantId, card: &CardId) -> Result<Option<i64>, ServiceError> {
        const PAGE: u32 = 100;
        const MOST_PAGES: usize = 50;
        let mut cursor = None;
        let mut first = None;
        for _ in 0..MOST_PAGES {
            let page = self
                .inner
                .store
                .card_transactions(
                    merchant,
                    card,
                    &Page {
                        cursor: cursor.clone(),
                        limit: PAGE,
                    },
                )
                .await?;
            let Some(last) = page.last() else {
                return Ok(first);
            };
            cursor = Some(last.id.to_string());
            if let Some(found) = page.iter().rev().find(|t| {
                matches!(
                    t.transaction_type,
                    TransactionType::Issue | TransactionType::Activation | TransactionType::Load
                )
            }) {
                first = Some(found.amount);
            }
            if page.len() < PAGE as usize {
                return Ok(first);
            }
        }
        Ok(None)
    }

    /// The card's cardholder links, newest first, revoked ones too.
    pub async fn cardholder_links(
        &self,
        merchant: &MerchantId,
        card: &CardId,
    ) -> Result<Vec<CardholderLink>, ServiceError> {
        self.card(merchant, card).await?;
        let links = self.inner.store.cardholder_links(merchant, card).await?;
        Ok(links.iter().map(CardholderLink::from).collect())
    }
}
