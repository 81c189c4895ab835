//! What a caller may do. A request needs an [`Access`], decided by the front-end from what the
//! request is. An API key has a [`Scope`]; a signed-in staff member has a [`crate::Role`]; each
//! allows an access or not. `full` is every power a key can have (the keys made before scopes
//! existed are `full`); `pos` is what a till needs: balances, lookups, activations, loads,
//! redemptions, holds and reversals, and the vendor front-ends a terminal speaks; `read_only`
//! reads. What only a person does (their own password, second factor and sessions, and
//! approving someone else's adjustment) no key may do. Pure: no IO.

use std::fmt;

/// An API key's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Full,
    Pos,
    ReadOnly,
}

/// What a request needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Reading cards, programs, transactions, checkouts, users, events: every scope, every role.
    Read,
    /// Reading the finance reports.
    Reports,
    /// A till's work on cards (lookups, activations, loads, redemptions, holds, reversals).
    Pos,
    /// The support desk's work on a card: freezing and unfreezing it.
    CardSupport,
    /// Asking for an adjustment of a card's value.
    Adjust,
    /// Approving or rejecting someone else's adjustment: a person's, never a key's.
    Approve,
    /// A developer's work: API keys, webhook endpoints and deliveries.
    Developer,
    /// Managing the merchant's staff accounts.
    Staff,
    /// A signed-in person's own account: password, second factor, sign-out. No key has one.
    Own,
    /// Everything else (programs, issuing, cash-out, transfers, checkouts, ...).
    Full,
}

impl Access {
    pub const ALL: [Self; 10] = [
        Self::Read,
        Self::Reports,
        Self::Pos,
        Self::CardSupport,
        Self::Adjust,
        Self::Approve,
        Self::Developer,
        Self::Staff,
        Self::Own,
        Self::Full,
    ];
}

impl Scope {
    pub const ALL: [Self; 3] = [Self::Full, Self::Pos, Self::ReadOnly];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Pos => "pos",
            Self::ReadOnly => "read_only",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == value)
    }

    /// Whether a key of this scope may make a request that needs `access`.
    pub fn allows(self, access: Access) -> bool {
        match access {
            Access::Read | Access::Reports => true,
            Access::Pos => matches!(self, Self::Full | Self::Pos),
            Access::CardSupport | Access::Adjust | Access::Developer | Access::Staff | Access::Full => {
                self == Self::Full
            }
            Access::Own | Access::Approve => false,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_scope_allows_its_own_access_and_what_is_below_it() {
        use Access::*;
        let allowed = |scope: Scope| {
            Access::ALL
                .into_iter()
                .filter(|access| scope.allows(*access))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            allowed(Scope::Full),
            [Read, Reports, Pos, CardSupport, Adjust, Developer, Staff, Full]
        );
        assert_eq!(allowed(Scope::Pos), [Read, Reports, Pos]);
        assert_eq!(allowed(Scope::ReadOnly), [Read, Reports]);
    }

    #[test]
    fn a_scope_reads_back_from_its_name() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("admin"), None);
    }
}
