//! Customer wallets: a merchant's users (named by the merchant's own ids) save cards with proof
//! of possession, pick a preferred one, share a card (equal access) and give cards away, either
//! one they own or a new one issued and funded for the gift. A user holds at most 10 cards.
//! Also the card operations the wallet facade runs on a card named by its secrets or through a
//! user's wallet.
//!
//! Locks: the wallets a command changes first (in user-id order), then cards. Every change of
//! a wallet locks it, so the domain's count against the limit cannot move underneath it.

use async_trait::async_trait;
use giftd_domain::operations::CardSnapshot;
use giftd_domain::wallet::{self, Access, UserId, WalletCard};
use giftd_domain::{Amount, CardId, CardKind, CardNumber, CardState, DomainError, ProgramId, SecurityCode};
use giftd_store::{StoreResult, TransactionRecord, WriteTx};

use crate::cardholder::{NewLink, make_link};
use crate::commands::{self, Command};
use crate::error::{Failure, Refusal};
use crate::operation::{Context, Operation};
use crate::steps::{self, IssuedCard, card_by_secret, card_now, issue_card, load_card};
use crate::transfers::{self, TransferCommand, TransferOutcome};
use crate::views::Card;
use crate::webhooks::{self, Before};

#[derive(Debug, Clone)]
pub enum WalletCommand {
    /// Puts a card in a user's wallet as its owner. The number and security code prove
    /// possession (under the lookup's lockout); `card_id`, when given, must be that card.
    Save {
        user_id: UserId,
        card_id: Option<CardId>,
        number: CardNumber,
        security_code: SecurityCode,
    },
    /// Makes the card the user's one preferred card.
    Prefer { user_id: UserId, card_id: CardId },
    /// Takes the card out of the user's wallet (the card itself is untouched).
    Unsave { user_id: UserId, card_id: CardId },
    /// Takes the card out of every wallet that holds it (the card itself is untouched); a card
    /// of the merchant that no wallet holds is not an error.
    UnsaveEverywhere { card_id: CardId },
    /// Takes out of the user's wallet the cards a listing would not show (no value left,
    /// expired, closed), so that they stop counting against the limit.
    Prune { user_id: UserId },
    /// The owner gives `recipient_user_id` equal use of the card.
    Share {
        user_id: UserId,
        card_id: CardId,
        recipient_user_id: UserId,
    },
    /// The sender's card changes hands: it leaves every wallet and the recipient owns it.
    /// The card's cardholder links stop working (the sender had them); with
    /// `cardholder_link`, a new one is made for the recipient.
    GiftCard {
        sender_user_id: UserId,
        recipient_user_id: UserId,
        card_id: CardId,
        cardholder_link: bool,
    },
    /// A new virtual card of `program_id`, funded with `amount` (paid for outside giftd, by
    /// `funding_reference`), is issued to the recipient.
    GiftNew {
        sender_user_id: UserId,
        recipient_user_id: UserId,
        program_id: ProgramId,
        amount: Amount,
        funding_reference: String,
        /// Also make a cardholder link that shows the new card's number and code.
        cardholder_link: bool,
    },
    /// An operation on a card named by its secrets or through a user's wallet.
    OnCard {
        access: CardAccess,
        operation: CardOperation,
    },
}

/// How a request names the card it acts on.
#[derive(Debug, Clone)]
pub enum CardAccess {
    /// Number and security code, under the lookup's lockout.
    Secret {
        number: CardNumber,
        security_code: SecurityCode,
    },
    /// A card in this user's wallet, owned or shared.
    User { user_id: UserId, card_id: CardId },
    /// The card by id (the merchant's API key is the only credential).
    Id(CardId),
}

#[derive(Debug, Clone)]
pub enum CardOperation {
    Balance,
    Load {
        amount: Amount,
        reference: Option<String>,
    },
    Redeem {
        amount: Amount,
        allow_partial: bool,
        reference: Option<String>,
    },
    /// Moves value (all of it by default) to a new card of the same program.
    TransferToNewCard {
        amount: Option<Amount>,
        close_source: bool,
        reference: Option<String>,
    },
}

/// One exists per request and lives only until rendered, so the size difference between
/// variants does not matter.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum WalletOutcome {
    /// A user's wallet entry after a change, with its card.
    Card { entry: WalletCard, card: Card },
    /// The card left the user's wallet.
    Removed { user_id: UserId, card_id: CardId },
    /// A gift: the recipient's entry and card; for a new card, its secrets (shown once) and
    /// the transaction that funded it.
    Gift {
        entry: WalletCard,
        card: Card,
        issued: Option<(CardNumber, SecurityCode)>,
        transaction: Option<TransactionRecord>,
        /// The recipient's cardholder link, when asked for (its token shown once).
        link: Option<NewLink>,
    },
    /// The card a command named, as it is now: its balance asked (`CardOperation::Balance`),
    /// or taken out of every wallet (`WalletCommand::UnsaveEverywhere`).
    CardNow(Card),
    /// The cards a listing would not show left the user's wallet.
    Pruned,
    /// A load or redemption on a card (`CardOperation::Load`, `CardOperation::Redeem`).
    Transaction(TransactionRecord),
    /// Value moved to a new card (`CardOperation::TransferToNewCard`).
    Transfer(TransferOutcome),
}

#[async_trait]
impl Operation for WalletCommand {
    type Outcome = WalletOutcome;

    async fn execute(&self, tx: &mut dyn WriteTx, cx: &Context<'_>) -> Result<WalletOutcome> {
        execute(tx, cx, self).await
    }

    async fn events(
        &self,
        tx: &mut dyn WriteTx,
        cx: &Context<'_>,
        outcome: &WalletOutcome,
        _: Before,
    ) -> StoreResult<()> {
        match outcome {
            WalletOutcome::Gift { transaction, .. } => {
                webhooks::transactions(tx, cx, transaction.as_slice()).await
            }
            WalletOutcome::Transaction(t) => webhooks::transactions(tx, cx, std::slice::from_ref(t)).await,
            WalletOutcome::Transfer(transfer) => {
                webhooks::transactions(tx, cx, &transfer.transactions()).await
            }
            WalletOutcome::Card { .. }
            | WalletOutcome::Removed { .. }
            | WalletOutcome::CardNow(_)
            | WalletOutcome::Pruned => Ok(()),
        }
    }

    async fn after_refusal(
        &self,
        tx: &mut dyn WriteTx,
        cx: &Context<'_>,
        refusal: &Refusal,
    ) -> StoreResult<()> {
        match self.presented_number() {
            Some(number) => steps::count_failed_secret(tx, cx, number, refusal).await,
            None => Ok(()),
        }
    }
}

impl WalletCommand {
    /// The card number the request presented, for the lockout to count a wrong code.
    fn presented_number(&self) -> Option<&CardNumber> {
        match self {
            Self::Save { number, .. }
            | Self::OnCard {
                access: CardAccess::Secret { number, .. },
                ..
            } => Some(number),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, Failure>;

async fn execute(tx: &mut dyn WriteTx, cx: &Context<'_>, command: &WalletCommand) -> Result<WalletOutcome> {
    match command {
        WalletCommand::Save {
            user_id,
            card_id,
            number,
            security_code,
        } => save(tx, cx, user_id, card_id.as_ref(), number, security_code).await,
        WalletCommand::Prefer { user_id, card_id } => {
            tx.lock_wallet(cx.merchant, user_id, cx.now).await?;
            if !tx.prefer_wallet_card(cx.merchant, user_id, card_id).await? {
                return Err(Refusal::NotFound("card").into());
            }
            entry_outcome(tx, cx, user_id, card_id).await
        }
        WalletCommand::Unsave { user_id, card_id } => {
            tx.lock_wallet(cx.merchant, user_id, cx.now).await?;
            if tx.remove_wallet_card(cx.merchant, Some(user_id), card_id).await? == 0 {
                return Err(Refusal::NotFound("card").into());
            }
            Ok(WalletOutcome::Removed {
                user_id: user_id.clone(),
                card_id: card_id.clone(),
            })
        }
        WalletCommand::UnsaveEverywhere { card_id } => {
            // Removing never adds to a wallet, so the limit needs no wallet lock here.
            let card = card_now(tx, cx, card_id).await?;
            tx.remove_wallet_card(cx.merchant, None, card_id).await?;
            Ok(WalletOutcome::CardNow(card))
        }
        WalletCommand::Prune { user_id } => {
            for entry in tx.lock_wallet(cx.merchant, user_id, cx.now).await? {
                let card = card_now(tx, cx, &entry.card_id).await?;
                if !wallet::listed(&card.snapshot, cx.now) {
                    tx.remove_wallet_card(cx.merchant, Some(user_id), &entry.card_id)
                        .await?;
                }
            }
            Ok(WalletOutcome::Pruned)
        }
        WalletCommand::Share {
            user_id,
            card_id,
            recipient_user_id,
        } => share(tx, cx, user_id, card_id, recipient_user_id).await,
        WalletCommand::GiftCard {
            sender_user_id,
            recipient_user_id,
            card_id,
            cardholder_link,
        } => {
            gift_card(
                tx,
                cx,
                sender_user_id,
                recipient_user_id,
                card_id,
                *cardholder_link,
            )
            .await
        }
        WalletCommand::GiftNew {
            recipient_user_id,
            program_id,
            amount,
            funding_reference,
            sender_user_id,
            cardholder_link,
        } => {
            distinct(sender_user_id, recipient_user_id)?;
            let entries = tx.lock_wallet(cx.merchant, recipient_user_id, cx.now).await?;
            // Room first, so that a full wallet refuses before a card is issued.
            wallet::check_room(&entries, &CardId::new("card_new"))?;
            let IssuedCard {
                card,
                number,
                security_code,
                transaction,
            } = issue_card(
                tx,
                cx,
                program_id,
                CardKind::Virtual,
                Some(*amount),
                None,
                &Some(funding_reference.clone()),
            )
            .await?;
            let entry = owner_entry(cx, recipient_user_id, &card.snapshot.id);
            tx.put_wallet_card(cx.merchant, &entry).await?;
            let link = match cardholder_link {
                true => Some(make_link(tx, cx, &card.snapshot.id, Some(&security_code)).await?),
                false => None,
            };
            Ok(WalletOutcome::Gift {
                entry,
                card,
                issued: Some((number, security_code)),
                transaction,
                link,
            })
        }
        WalletCommand::OnCard { access, operation } => on_card(tx, cx, access, operation).await,
    }
}

fn owner_entry(cx: &Context<'_>, user_id: &UserId, card_id: &CardId) -> WalletCard {
    WalletCard {
        user_id: user_id.clone(),
        card_id: card_id.clone(),
        access: Access::Owner,
        preferred: false,
        created_at: cx.now,
    }
}

fn distinct(sender: &UserId, recipient: &UserId) -> Result<()> {
    if sender == recipient {
        return Err(Refusal::Invalid {
            param: "recipient_user_id",
            message: "the recipient must be another user".into(),
        }
        .into());
    }
    Ok(())
}

/// Locks two wallets in user-id order; answers their cards in the order asked.
async fn lock_two(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    first: &UserId,
    second: &UserId,
) -> Result<(Vec<WalletCard>, Vec<WalletCard>)> {
    if first < second {
        let a = tx.lock_wallet(cx.merchant, first, cx.now).await?;
        let b = tx.lock_wallet(cx.merchant, second, cx.now).await?;
        Ok((a, b))
    } else {
        let b = tx.lock_wallet(cx.merchant, second, cx.now).await?;
        let a = tx.lock_wallet(cx.merchant, first, cx.now).await?;
        Ok((a, b))
    }
}

async fn entry_outcome(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    user_id: &UserId,
    card_id: &CardId,
) -> Result<WalletOutcome> {
    let entries = tx.lock_wallet(cx.merchant, user_id, cx.now).await?;
    let entry = entries
        .into_iter()
        .find(|e| &e.card_id == card_id)
        .ok_or(Refusal::NotFound("card"))?;
    let card = card_now(tx, cx, card_id).await?;
    Ok(WalletOutcome::Card { entry, card })
}

fn refuse_closed(card: &CardSnapshot) -> Result<()> {
    if card.state == CardState::Closed {
        return Err(DomainError::CardNotActive {
            state: CardState::Closed,
        }
        .into());
    }
    Ok(())
}

async fn save(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    user_id: &UserId,
    card_id: Option<&CardId>,
    number: &CardNumber,
    security_code: &SecurityCode,
) -> Result<WalletOutcome> {
    let entries = tx.lock_wallet(cx.merchant, user_id, cx.now).await?;
    let card = card_by_secret(tx, cx, number, security_code).await?;
    if card_id.is_some_and(|id| id != &card.snapshot.id) {
        // The secrets are of another card: as wrong as a wrong code.
        return Err(DomainError::InvalidCard.into());
    }
    put_owned(tx, cx, &entries, user_id, &card.snapshot).await?;
    entry_outcome(tx, cx, user_id, &card.snapshot.id).await
}

/// Puts `card` in the user's wallet as its owner, its possession already proven and the
/// wallet (`entries`) locked: refused for a closed card or a full wallet. Saving a card the
/// user holds shared makes them an owner; saving twice changes nothing.
pub(crate) async fn put_owned(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    entries: &[WalletCard],
    user_id: &UserId,
    card: &CardSnapshot,
) -> Result<WalletCard> {
    refuse_closed(card)?;
    wallet::check_room(entries, &card.id)?;
    let entry = owner_entry(cx, user_id, &card.id);
    tx.put_wallet_card(cx.merchant, &entry).await?;
    Ok(entry)
}

async fn share(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    user_id: &UserId,
    card_id: &CardId,
    recipient: &UserId,
) -> Result<WalletOutcome> {
    distinct(user_id, recipient)?;
    let (mine, theirs) = lock_two(tx, cx, user_id, recipient).await?;
    if !mine
        .iter()
        .any(|e| &e.card_id == card_id && e.access == Access::Owner)
    {
        return Err(Refusal::NotFound("card").into());
    }
    wallet::check_room(&theirs, card_id)?;
    let card = card_now(tx, cx, card_id).await?;
    refuse_closed(&card.snapshot)?;
    if !theirs.iter().any(|e| &e.card_id == card_id) {
        let entry = WalletCard {
            access: Access::Shared,
            ..owner_entry(cx, recipient, card_id)
        };
        tx.put_wallet_card(cx.merchant, &entry).await?;
    }
    entry_outcome(tx, cx, recipient, card_id).await
}

async fn gift_card(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    sender: &UserId,
    recipient: &UserId,
    card_id: &CardId,
    cardholder_link: bool,
) -> Result<WalletOutcome> {
    distinct(sender, recipient)?;
    let (mine, theirs) = lock_two(tx, cx, sender, recipient).await?;
    if !mine
        .iter()
        .any(|e| &e.card_id == card_id && e.access == Access::Owner)
    {
        return Err(Refusal::NotFound("card").into());
    }
    wallet::check_room(&theirs, card_id)?;
    let card = card_now(tx, cx, card_id).await?;
    refuse_closed(&card.snapshot)?;
    // A gift changes hands whole: whoever held the card (its owner and those it was shared
    // with) loses it, and the recipient alone owns it.
    tx.remove_wallet_card(cx.merchant, None, card_id).await?;
    let entry = owner_entry(cx, recipient, card_id);
    tx.put_wallet_card(cx.merchant, &entry).await?;
    // The sender's links to its page go with it; the recipient's, if asked, takes over the
    // code the latest of them showed.
    for earlier in tx.cardholder_links(cx.merchant, card_id).await? {
        if earlier.revoked_at.is_none() {
            tx.revoke_cardholder_link(cx.merchant, card_id, &earlier.id, cx.now)
                .await?;
        }
    }
    let link = match cardholder_link {
        true => Some(make_link(tx, cx, card_id, None).await?),
        false => None,
    };
    Ok(WalletOutcome::Gift {
        entry,
        card,
        issued: None,
        transaction: None,
        link,
    })
}

async fn on_card(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    access: &CardAccess,
    operation: &CardOperation,
) -> Result<WalletOutcome> {
    let card_id = match access {
        CardAccess::Secret {
            number,
            security_code,
        } => card_by_secret(tx, cx, number, security_code).await?.snapshot.id,
        CardAccess::User { user_id, card_id } => {
            let entries = tx.lock_wallet(cx.merchant, user_id, cx.now).await?;
            if !entries.iter().any(|e| &e.card_id == card_id) {
                return Err(Refusal::NotFound("card").into());
            }
            card_id.clone()
        }
        CardAccess::Id(card_id) => card_id.clone(),
    };
    let command = match operation {
        CardOperation::Balance => {
            // Expire due holds so the answer shows what is really available.
            load_card(tx, cx, &card_id).await?;
            return Ok(WalletOutcome::CardNow(card_now(tx, cx, &card_id).await?));
        }
        CardOperation::Load { amount, reference } => Command::Load {
            card_id,
            amount: *amount,
            currency: None,
            reference: reference.clone(),
        },
        CardOperation::Redeem {
            amount,
            allow_partial,
            reference,
        } => Command::Redeem {
            card_id,
            amount: *amount,
            allow_partial: *allow_partial,
            currency: None,
            reference: reference.clone(),
        },
        CardOperation::TransferToNewCard {
            amount,
            close_source,
            reference,
        } => {
            let transfer = TransferCommand::Transfer {
                card_id,
                to_card_id: None,
                amount: *amount,
                close_source: *close_source,
                currency: None,
                reference: reference.clone(),
            };
            return Ok(WalletOutcome::Transfer(
                transfers::execute(tx, cx, &transfer).await?,
            ));
        }
    };
    // The native load or redemption, run in this command's transaction.
    match command.execute(tx, cx).await? {
        commands::Outcome::Transaction(transaction) => Ok(WalletOutcome::Transaction(transaction)),
        _ => Err(Failure::Store(giftd_store::StoreError::Corrupt(
            "a load or redemption answered without its transaction".into(),
        ))),
    }
}

impl crate::Service {
    /// A user's wallet as listed (cards with value left, unexpired, open), after taking out of
    /// it the cards a listing would not show, so that they stop counting against the limit of
    /// 10: Gr4vy's buyer gift cards behave this way. Only a wallet with something to clear out
    /// is written to.
    pub async fn pruned_wallet(
        &self,
        merchant: &giftd_domain::MerchantId,
        user: &UserId,
    ) -> std::result::Result<Vec<(WalletCard, Card)>, crate::ServiceError> {
        let now = self.now();
        let entries = self.wallet_entries(merchant, user).await?;
        if entries
            .iter()
            .all(|(_, card)| wallet::listed(&card.snapshot, now))
        {
            // Nothing to clear out: the entries just read are the listing, in its order.
            return Ok(entries);
        }
        let pruned = self
            .execute(
                merchant.clone(),
                WalletCommand::Prune {
                    user_id: user.clone(),
                },
                None,
                Box::new(|result| crate::Rendered {
                    status: if matches!(result, Ok(WalletOutcome::Pruned)) {
                        200
                    } else {
                        500
                    },
                    body: Vec::new(),
                }),
            )
            .await?;
        if pruned.status != 200 {
            return Err(crate::ServiceError::unexpected_outcome());
        }
        self.wallet(merchant, user).await
    }

    /// The user `public_id` (`UserId::public_id`) names, if a wallet user of the merchant has
    /// it.
    pub async fn wallet_user_by_public_id(
        &self,
        merchant: &giftd_domain::MerchantId,
        public_id: &str,
    ) -> std::result::Result<Option<UserId>, crate::ServiceError> {
        Ok(self.store().wallet_user_by_public_id(merchant, public_id).await?)
    }

    /// Every card in a user's wallet, oldest first, whether or not a listing would show it.
    /// A user without cards has an empty wallet.
    pub async fn wallet_entries(
        &self,
        merchant: &giftd_domain::MerchantId,
        user: &UserId,
    ) -> std::result::Result<Vec<(WalletCard, Card)>, crate::ServiceError> {
        let now = self.now();
        let mut entries = Vec::new();
        for entry in self.store().wallet_cards(merchant, user).await? {
            if let Some(card) = self.store().card(merchant, &entry.card_id, now).await? {
                entries.push((entry, card.into()));
            }
        }
        Ok(entries)
    }
}
