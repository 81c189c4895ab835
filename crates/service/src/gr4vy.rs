//! What the Gr4vy-style facade needs beyond the native commands and reads: its own commands,
//! activating a physical gift card by its number (and storing it for a buyer in the same
//! transaction) and issuing a new virtual one (`Gr4vyCommand`), and the first digits of a
//! card's number (Gr4vy's `bin` and `sub_bin`). giftd keeps card numbers encrypted with only
//! their last 4 digits in clear; `card_number_prefix` is the one place that decrypts one for
//! display, and it gives out nothing past the 9th digit.

use async_trait::async_trait;
use giftd_domain::operations;
use giftd_domain::wallet::{UserId, WalletCard};
use giftd_domain::{Amount, CardKind, Currency, Program, ProgramId};
use giftd_store::{StoreResult, TransactionRecord, WriteTx};

use crate::cardholder::{NewLink, make_link};
use crate::error::{Failure, Refusal};
use crate::operation::{Context, Operation};
use crate::steps::{self, IssuedCard, PresentedCard};
use crate::views::Card;
use crate::webhooks::{self, Before};
use crate::{Service, wallet};

/// Most programs a theme (a promotion code) may name; more is an ambiguous theme.
const MAX_THEME_PROGRAMS: u32 = 2;

/// The Gr4vy facade's own commands.
#[derive(Debug, Clone)]
pub enum Gr4vyCommand {
    /// `POST /gift-cards/activations`: activates an inactive card named by its number (its
    /// PIN checked when given), with its first value when `amount` is given; with
    /// `store_for`, also stores it in that buyer's wallet (which needs the PIN).
    Activate {
        card: PresentedCard,
        amount: Option<Amount>,
        currency: Option<Currency>,
        reference: Option<String>,
        store_for: Option<UserId>,
    },
    /// `POST /gift-cards/issuances`: a new virtual card of the program `theme` names (its id,
    /// or its promotion code), funded with `amount`.
    Issue {
        theme: String,
        amount: Amount,
        currency: Currency,
        reference: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub enum Gr4vyOutcome {
    Activated {
        card: Card,
        /// The buyer's wallet entry when it was stored.
        entry: Option<WalletCard>,
        transaction: TransactionRecord,
    },
    /// A new card, and the link to its cardholder page (Gr4vy's `url`; the token shown once).
    Issued { issued: IssuedCard, link: NewLink },
}

type Result<T> = std::result::Result<T, Failure>;

#[async_trait]
impl Operation for Gr4vyCommand {
    type Outcome = Gr4vyOutcome;

    async fn execute(&self, tx: &mut dyn WriteTx, cx: &Context<'_>) -> Result<Gr4vyOutcome> {
        match self {
            Self::Activate {
                card,
                amount,
                currency,
                reference,
                store_for,
            } => activate(tx, cx, card, *amount, *currency, reference, store_for.as_ref()).await,
            Self::Issue {
                theme,
                amount,
                currency,
                reference,
            } => {
                let program = theme_program(tx, cx, theme).await?;
                if program.currency != *currency {
                    return Err(giftd_domain::DomainError::CurrencyMismatch {
                        card: program.currency.code(),
                        requested: currency.code(),
                    }
                    .into());
                }
                let issued = steps::issue_card(
                    tx,
                    cx,
                    &program.id,
                    CardKind::Virtual,
                    Some(*amount),
                    None,
                    reference,
                )
                .await?;
                let link = make_link(tx, cx, &issued.card.snapshot.id, Some(&issued.security_code)).await?;
                Ok(Gr4vyOutcome::Issued { issued, link })
            }
        }
    }

    async fn events(
        &self,
        tx: &mut dyn WriteTx,
        cx: &Context<'_>,
        outcome: &Gr4vyOutcome,
        _: Before,
    ) -> StoreResult<()> {
        match outcome {
            Gr4vyOutcome::Activated { transaction, .. } => {
                webhooks::transactions(tx, cx, std::slice::from_ref(transaction)).await
            }
            Gr4vyOutcome::Issued { issued, .. } => {
                webhooks::transactions(tx, cx, issued.transaction.as_slice()).await
            }
        }
    }

    async fn after_refusal(
        &self,
        tx: &mut dyn WriteTx,
        cx: &Context<'_>,
        refusal: &Refusal,
    ) -> StoreResult<()> {
        match self {
            Self::Activate { card, .. } if card.security_code.is_some() => {
                steps::count_failed_secret(tx, cx, &card.number, refusal).await
            }
            Self::Activate { .. } | Self::Issue { .. } => Ok(()),
        }
    }
}

async fn activate(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    presented: &PresentedCard,
    amount: Option<Amount>,
    currency: Option<Currency>,
    reference: &Option<String>,
    store_for: Option<&UserId>,
) -> Result<Gr4vyOutcome> {
    // The wallet is locked before the card, as the wallet's own commands do.
    let entries = match store_for {
        Some(user) => Some(tx.lock_wallet(cx.merchant, user, cx.now).await?),
        None => None,
    };
    let card = steps::presented_card(tx, cx, presented).await?;
    operations::check_currency(&card, currency)?;
    let program = steps::program_of(tx, cx, &card).await?;
    let decision = operations::activate(&program, &card, amount, cx.now)?;
    let transaction = steps::append(tx, cx, &card, &decision, reference.clone(), None, None).await?;
    let entry = match (store_for, entries) {
        (Some(user), Some(entries)) => {
            let now = steps::card_now(tx, cx, &card.id).await?;
            wallet::put_owned(tx, cx, &entries, user, &now.snapshot).await?;
            let stored = tx.lock_wallet(cx.merchant, user, cx.now).await?;
            stored.into_iter().find(|e| e.card_id == card.id)
        }
        _ => None,
    };
    let card = steps::card_now(tx, cx, &card.id).await?;
    Ok(Gr4vyOutcome::Activated {
        card,
        entry,
        transaction,
    })
}

/// The program a Gr4vy theme names: a program id of the merchant's, or the promotion code of
/// exactly one of its programs.
async fn theme_program(tx: &mut dyn WriteTx, cx: &Context<'_>, theme: &str) -> Result<Program> {
    if let Some(id) = ProgramId::parse(theme)
        && let Some(program) = tx.program(cx.merchant, &id).await?
    {
        return Ok(program);
    }
    let mut programs = tx
        .programs_by_promotion_code(cx.merchant, theme, MAX_THEME_PROGRAMS)
        .await?;
    match programs.len() {
        1 => Ok(programs.remove(0)),
        0 => Err(Refusal::NotFound("theme").into()),
        _ => Err(Refusal::Invalid {
            param: "theme",
            message: "several programs have this promotion code; name the program by its id".into(),
        }
        .into()),
    }
}

/// Digits of a number shown as `bin` (6) and `sub_bin` (3).
pub const NUMBER_PREFIX_DIGITS: usize = 9;
/// Numbers shorter than this show no prefix: the first 9 digits would overlap the last 4
/// (which are shown as `last4`) and leave too little of the number unseen.
pub const MIN_DIGITS_FOR_PREFIX: usize = 13;

impl Service {
    /// The first 9 digits of `card`'s number, for a card the caller has already read with its
    /// merchant's scope. `None` for numbers shorter than 13 digits, or a number that does not
    /// decrypt (logged: the row is not the one that was written).
    pub fn card_number_prefix(&self, card: &Card) -> Option<String> {
        let Some(plain) = self
            .inner
            .keys
            .decrypt(&card.number_ciphertext, card.snapshot.id.as_str().as_bytes())
        else {
            tracing::error!(card.id = %card.snapshot.id, "a card number does not decrypt");
            return None;
        };
        let digits = std::str::from_utf8(&plain).ok()?;
        (digits.len() >= MIN_DIGITS_FOR_PREFIX && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits[..NUMBER_PREFIX_DIGITS].to_owned())
    }
}
