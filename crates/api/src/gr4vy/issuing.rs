//! Gr4vy's gift card service operations: `POST /gift-cards/activations` activates a physical
//! gift card (giftd card stock, imported or generated) by its number, with its first value,
//! and may store it for a buyer; `POST /gift-cards/issuances` issues a new virtual card of the
//! program its `theme` names. Each is one service command (`giftd_service::gr4vy`); both take
//! an `Idempotency-Key`. See docs/GR4VY.md, "Activations and issuances".

use axum::extract::State;
use axum::http::StatusCode;
use giftd_domain::{Amount, CardNumber, SecurityCode};
use giftd_service::PresentedCard;
use giftd_service::gr4vy::{Gr4vyCommand, Gr4vyOutcome};
use giftd_service::{Refusal, Rendered};

use super::error::Gr4vyError;
use super::transactions::json;
use super::wire::*;
use super::{Answer, Body, Merchant, answer, buyer_of, required, unexpected};
use crate::AppState;
use crate::cardholder::{PublicBase, link_url};
use crate::edge::rfc3339;
use crate::native::extract;

/// Gr4vy's largest activation or issuance amount, in minor units.
pub const MAX_AMOUNT: i64 = 99_999_999;
/// Longest `theme` Gr4vy takes.
pub const MAX_THEME_LENGTH: usize = 200;

fn amount_of(value: i64) -> Result<Option<Amount>, Gr4vyError> {
    if !(0..=MAX_AMOUNT).contains(&value) {
        return Err(Gr4vyError::invalid(
            "body",
            "amount",
            format!("`amount` is from 0 to {MAX_AMOUNT}."),
        ));
    }
    (value > 0).then(|| Amount::new(value)).transpose().map_err(|_| {
        Gr4vyError::invalid(
            "body",
            "amount",
            "`amount` must be a whole number of minor units.",
        )
    })
}

fn reference(value: Option<String>) -> Result<Option<String>, Gr4vyError> {
    extract::reference(value).map_err(|_| {
        Gr4vyError::invalid(
            "body",
            "external_identifier",
            "`external_identifier` must be at most 255 characters, without control characters.",
        )
    })
}

/// `POST /gift-cards/activations`: 201 `GiftCard`.
pub async fn activate(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<Gr4vyGiftCardActivationCreate>,
) -> Answer {
    let r = body.value;
    let number = required(r.number, "body", "number")?;
    let number = CardNumber::parse(&number).ok_or_else(|| {
        Gr4vyError::invalid(
            "body",
            "number",
            "`number` must be a gift card number: digits only.",
        )
    })?;
    let (amount, currency) = match (r.amount, r.currency) {
        (None, None) => (None, None),
        (Some(amount), Some(currency)) => (
            amount_of(amount)?,
            Some(extract::currency(&currency).map_err(|e| Gr4vyError::from_native(e, "body"))?),
        ),
        (Some(_), None) => {
            return Err(Gr4vyError::invalid(
                "body",
                "currency",
                "`amount` needs `currency`.",
            ));
        }
        (None, Some(_)) => {
            return Err(Gr4vyError::invalid(
                "body",
                "amount",
                "`currency` needs `amount`.",
            ));
        }
    };
    let store = r.store.unwrap_or(false);
    let store_for = buyer_of(
        &app,
        &merchant,
        r.buyer_id.as_deref(),
        r.buyer_external_identifier.as_deref(),
        "body",
    )
    .await?;
    if store_for.is_some() && !store {
        return Err(Gr4vyError::invalid(
            "body",
            "store",
            "A buyer is named only to store the card: set `store` to true.",
        ));
    }
    if store && r.pin.is_none() {
        return Err(Gr4vyError::invalid(
            "body",
            "pin",
            "Storing the activated card needs its `pin`.",
        ));
    }
    if store && store_for.is_none() {
        return Err(Gr4vyError::invalid(
            "body",
            "buyer_external_identifier",
            "Storing the activated card needs the buyer: `buyer_id` or `buyer_external_identifier`.",
        ));
    }
    let command = Gr4vyCommand::Activate {
        card: PresentedCard {
            number: number.clone(),
            // A PIN no card can have is checked as a wrong one (it counts toward the lockout).
            security_code: r.pin.as_deref().map(SecurityCode::presented),
        },
        amount,
        currency,
        reference: reference(r.external_identifier)?,
        store_for,
    };
    let prefix = number_prefix(&number);
    let rendered = app
        .service
        .execute(
            merchant,
            command,
            body.idempotency,
            Box::new(move |result| match result {
                Ok(Gr4vyOutcome::Activated { card, entry, .. }) => json(
                    StatusCode::CREATED,
                    &Gr4vyGiftCard::new(card, entry.as_ref(), prefix.as_deref()),
                ),
                Ok(Gr4vyOutcome::Issued { .. }) => unexpected(),
                Err(refusal) => refused(refusal),
            }),
        )
        .await?;
    Ok(answer(rendered))
}

/// `POST /gift-cards/issuances`: 201 `GiftCardIssuance`.
pub async fn issue(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    base: PublicBase,
    body: Body<Gr4vyGiftCardIssuanceCreate>,
) -> Answer {
    let r = body.value;
    let theme = required(r.theme, "body", "theme")?;
    if theme.is_empty() || theme.chars().count() > MAX_THEME_LENGTH {
        return Err(Gr4vyError::invalid(
            "body",
            "theme",
            format!("`theme` is 1 to {MAX_THEME_LENGTH} characters: a giftd program's id or promotion code."),
        ));
    }
    let amount = amount_of(required(r.amount, "body", "amount")?)?
        .ok_or_else(|| Gr4vyError::invalid("body", "amount", "An issued card needs an `amount` above 0."))?;
    let currency = extract::currency(&required(r.currency, "body", "currency")?)
        .map_err(|e| Gr4vyError::from_native(e, "body"))?;
    let external_identifier = reference(r.external_identifier)?;
    let command = Gr4vyCommand::Issue {
        theme,
        amount,
        currency,
        reference: external_identifier.clone(),
    };
    let merchant_account_id = merchant.to_string();
    let rendered = app
        .service
        .execute(
            merchant,
            command,
            body.idempotency,
            Box::new(move |result| match result {
                Ok(Gr4vyOutcome::Issued { issued, link }) => {
                    let card = &issued.card;
                    let id = super::ids::public(card.snapshot.id.as_str());
                    json(
                        StatusCode::CREATED,
                        &Gr4vyGiftCardIssuance {
                            kind: "gift-card-issuance",
                            url: link_url(&base, link.token.expose()),
                            id,
                            merchant_account_id: merchant_account_id.clone(),
                            gift_card_service: Gr4vyGiftCardService::giftd(),
                            gift_card_service_payment_issuance_id: issued
                                .transaction
                                .as_ref()
                                .map_or_else(|| card.snapshot.id.to_string(), |t| t.id.to_string()),
                            amount: card.snapshot.balance,
                            currency: card.snapshot.currency.code(),
                            external_identifier: external_identifier.clone(),
                            created_at: rfc3339(card.created_at),
                            updated_at: rfc3339(card.created_at),
                        },
                    )
                }
                Ok(Gr4vyOutcome::Activated { .. }) => unexpected(),
                Err(refusal) => refused(refusal),
            }),
        )
        .await?;
    Ok(answer(rendered))
}

fn refused(refusal: &Refusal) -> Rendered {
    Gr4vyError::from_refusal(refusal).rendered()
}
