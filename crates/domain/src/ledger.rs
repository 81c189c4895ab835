//! The double-entry ledger's vocabulary: accounts, postings, journal entries and transaction
//! types.
//!
//! A [`JournalEntry`] can only be built balanced: its postings sum to zero per currency, and no
//! posting is zero. Entries are append-only; a card's balance and held amount are caches of the
//! postings to its two accounts.
//!
//! Sign convention: a posting's amount is what it adds to the account's balance. A card's
//! `available` account and its `held` account together make the card's balance (a liability of
//! the program to the holder); the program's accounts are the other side.

use std::collections::BTreeMap;
use std::fmt;

use crate::ids::{CardId, ProgramId};
use crate::money::Currency;

/// An account in the ledger. Card accounts are cached on the card row; program accounts are
/// hot (every operation of the program touches them), so they get append-only postings and no
/// cached counter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Account {
    /// The part of a card's balance that is free to spend.
    CardAvailable(CardId),
    /// The part of a card's balance that pending holds reserve.
    CardHeld(CardId),
    /// Where value put on cards comes from (sales, loads, activations).
    ProgramFunding(ProgramId),
    /// Where redeemed value goes.
    ProgramRedemption(ProgramId),
    /// Where cashed-out value goes.
    ProgramCashout(ProgramId),
    /// The other side of value a person put on or took off a card (an adjustment).
    ProgramAdjustment(ProgramId),
    /// Value left on cards when they expired, for a program that takes it (breakage).
    ProgramBreakage(ProgramId),
}

impl Account {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::CardAvailable(_) => "card_available",
            Self::CardHeld(_) => "card_held",
            Self::ProgramFunding(_) => "program_funding",
            Self::ProgramRedemption(_) => "program_redemption",
            Self::ProgramCashout(_) => "program_cashout",
            Self::ProgramAdjustment(_) => "program_adjustment",
            Self::ProgramBreakage(_) => "program_breakage",
        }
    }

    pub fn owner_id(&self) -> &str {
        match self {
            Self::CardAvailable(id) | Self::CardHeld(id) => id.as_str(),
            Self::ProgramFunding(id)
            | Self::ProgramRedemption(id)
            | Self::ProgramCashout(id)
            | Self::ProgramAdjustment(id)
            | Self::ProgramBreakage(id) => id.as_str(),
        }
    }

    /// Rebuilds an account from its stored kind and owner.
    pub fn from_parts(kind: &str, owner_id: &str) -> Option<Self> {
        Some(match kind {
            "card_available" => Self::CardAvailable(CardId::new(owner_id)),
            "card_held" => Self::CardHeld(CardId::new(owner_id)),
            "program_funding" => Self::ProgramFunding(ProgramId::new(owner_id)),
            "program_redemption" => Self::ProgramRedemption(ProgramId::new(owner_id)),
            "program_cashout" => Self::ProgramCashout(ProgramId::new(owner_id)),
            "program_adjustment" => Self::ProgramAdjustment(ProgramId::new(owner_id)),
            "program_breakage" => Self::ProgramBreakage(ProgramId::new(owner_id)),
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub account: Account,
    pub currency: Currency,
    /// Signed minor units added to the account; never zero.
    pub amount: i64,
}

/// A balanced set of postings. The only constructor checks the balance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JournalEntry {
    postings: Vec<Posting>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("journal entry does not balance in {currency}: postings sum to {sum}")]
pub struct Unbalanced {
    pub currency: &'static str,
    pub sum: i128,
}

impl JournalEntry {
    /// Builds an entry from `(account, amount)` pairs in one currency, dropping zero amounts.
    /// A programming error upstream (an unbalanced decision) is reported, never written.
    pub fn new(
        currency: Currency,
        legs: impl IntoIterator<Item = (Account, i64)>,
    ) -> Result<Self, Unbalanced> {
        let postings: Vec<Posting> = legs
            .into_iter()
            .filter(|(_, amount)| *amount != 0)
            .map(|(account, amount)| Posting {
                account,
                currency,
                amount,
            })
            .collect();
        let entry = Self { postings };
        entry.check_balanced()?;
        Ok(entry)
    }

    /// Checks that the postings sum to zero in every currency (in i128, so no sum overflows).
    pub fn check_balanced(&self) -> Result<(), Unbalanced> {
        let mut sums: BTreeMap<&'static str, i128> = BTreeMap::new();
        for posting in &self.postings {
            *sums.entry(posting.currency.code()).or_default() += i128::from(posting.amount);
        }
        match sums.into_iter().find(|(_, sum)| *sum != 0) {
            Some((currency, sum)) => Err(Unbalanced { currency, sum }),
            None => Ok(()),
        }
    }

    pub fn postings(&self) -> &[Posting] {
        &self.postings
    }

    /// What this entry adds to the given account.
    pub fn delta(&self, account: &Account) -> i64 {
        self.postings
            .iter()
            .filter(|p| &p.account == account)
            .map(|p| p.amount)
            .sum()
    }
}

/// The business operation a transaction records. Each transaction has exactly one journal entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionType {
    Issue,
    Activation,
    Load,
    Redemption,
    /// A hold placed: value moves from available to held; the balance does not change.
    Hold,
    Capture,
    /// A hold released or expired without capture.
    Release,
    Refund,
    Void,
    Cashout,
    TransferOut,
    TransferIn,
    MergeOut,
    MergeIn,
    Adjustment,
    Expiry,
}

impl TransactionType {
    pub const ALL: [Self; 16] = [
        Self::Issue,
        Self::Activation,
        Self::Load,
        Self::Redemption,
        Self::Hold,
        Self::Capture,
        Self::Release,
        Self::Refund,
        Self::Void,
        Self::Cashout,
        Self::TransferOut,
        Self::TransferIn,
        Self::MergeOut,
        Self::MergeIn,
        Self::Adjustment,
        Self::Expiry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issue => "issue",
            Self::Activation => "activation",
            Self::Load => "load",
            Self::Redemption => "redemption",
            Self::Hold => "hold",
            Self::Capture => "capture",
            Self::Release => "release",
            Self::Refund => "refund",
            Self::Void => "void",
            Self::Cashout => "cashout",
            Self::TransferOut => "transfer_out",
            Self::TransferIn => "transfer_in",
            Self::MergeOut => "merge_out",
            Self::MergeIn => "merge_in",
            Self::Adjustment => "adjustment",
            Self::Expiry => "expiry",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }
}

impl fmt::Display for TransactionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The front-end a transaction came through: which integration spent or put the value. Every
/// transaction written since migration 0020 records one; the dashboard's redemptions by channel
/// are counted from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// The native API (`/v1`), and the console, which is a client of it.
    Native,
    /// The customer-wallet API (`/giftcard/v1`).
    Wallet,
    /// The Clover facade (`/clover`).
    Clover,
    /// Adyen's Terminal API (`/sync`) and Stored Value API.
    Adyen,
    /// The Gr4vy facade (`/gr4vy`).
    Gr4vy,
    /// giftd itself, with no request behind it: the sweeper expiring holds and cards, the
    /// checkout recovery loop, the command line.
    System,
}

impl Channel {
    pub const ALL: [Self; 6] = [
        Self::Native,
        Self::Wallet,
        Self::Clover,
        Self::Adyen,
        Self::Gr4vy,
        Self::System,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Wallet => "wallet",
            Self::Clover => "clover",
            Self::Adyen => "adyen",
            Self::Gr4vy => "gr4vy",
            Self::System => "system",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == value)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbalanced_entries_cannot_be_built() {
        let usd = Currency::parse("USD").unwrap();
        let card = Account::CardAvailable(CardId::new("card_a"));
        let program = Account::ProgramFunding(ProgramId::new("prog_a"));
        assert!(JournalEntry::new(usd, [(card.clone(), 100), (program.clone(), -100)]).is_ok());
        assert!(JournalEntry::new(usd, [(card, 100), (program, -99)]).is_err());
    }

    #[test]
    fn channels_round_trip() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
        assert_eq!(Channel::parse("console"), None);
    }

    #[test]
    fn transaction_types_round_trip() {
        for t in TransactionType::ALL {
            assert_eq!(TransactionType::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn accounts_round_trip() {
        let account = Account::CardHeld(CardId::new("card_x"));
        assert_eq!(
            Account::from_parts(account.kind(), account.owner_id()),
            Some(account)
        );
    }
}
