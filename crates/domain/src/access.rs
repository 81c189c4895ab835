//! What an API key may do. A key has a [`Scope`]; a request needs an [`Access`], decided by the
//! front-end from what the request is; the scope allows it or not. `full` is every power (the
//! keys made before scopes existed are `full`); `pos` is what a till needs: balances, lookups,
//! activations, loads, redemptions, holds and reversals, and the vendor front-ends a terminal
//! speaks; `read_only` reads. Pure: no IO.

use std::fmt;

/// An API key's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Full,
    Pos,
    ReadOnly,
}

/// What a request needs of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading: every scope.
    Read,
    /// A till's work on cards: `pos` and `full`.
    Pos,
    /// Everything else (programs, webhooks, reports, keys, checkouts, ...): `full` only.
    Full,
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
        match (self, access) {
            (Self::Full, _) | (Self::Pos, Access::Read | Access::Pos) | (Self::ReadOnly, Access::Read) => {
                true
            }
            (Self::Pos, Access::Full) | (Self::ReadOnly, Access::Pos | Access::Full) => false,
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
        let allowed = |scope: Scope| {
            [Access::Read, Access::Pos, Access::Full]
                .into_iter()
                .filter(|access| scope.allows(*access))
                .collect::<Vec<_>>()
        };
        assert_eq!(allowed(Scope::Full), [Access::Read, Access::Pos, Access::Full]);
        assert_eq!(allowed(Scope::Pos), [Access::Read, Access::Pos]);
        assert_eq!(allowed(Scope::ReadOnly), [Access::Read]);
    }

    #[test]
    fn a_scope_reads_back_from_its_name() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("admin"), None);
    }
}
