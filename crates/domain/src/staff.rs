//! A merchant's people and what each may do. A staff member has one [`Role`]; the role allows an
//! [`Access`] or not, checked on the server for every request whatever page or client sent it.
//! `owner` does everything and alone manages staff; `admin` everything else; `support` finds
//! cards, reads their history, freezes or unfreezes them and asks for adjustments; `finance`
//! reads the reports and approves adjustments;
//! `developer` manages API keys and webhooks; `viewer` reads. Everyone reads cards and manages
//! their own password, second factor and sessions. Pure: no IO.

use std::fmt;

use crate::access::Access;

/// A staff member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Owner,
    Admin,
    Support,
    Finance,
    Developer,
    Viewer,
}

impl Role {
    pub const ALL: [Self; 6] = [
        Self::Owner,
        Self::Admin,
        Self::Support,
        Self::Finance,
        Self::Developer,
        Self::Viewer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Support => "support",
            Self::Finance => "finance",
            Self::Developer => "developer",
            Self::Viewer => "viewer",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == value)
    }

    /// Whether a staff member of this role may make a request that needs `access`.
    pub fn allows(self, access: Access) -> bool {
        match access {
            Access::Read | Access::Own => true,
            Access::Staff => self == Self::Owner,
            Access::Pos | Access::Full => matches!(self, Self::Owner | Self::Admin),
            Access::Reports => matches!(self, Self::Owner | Self::Admin | Self::Finance | Self::Viewer),
            Access::CardSupport | Access::Adjust => matches!(self, Self::Owner | Self::Admin | Self::Support),
            Access::Approve => matches!(self, Self::Owner | Self::Admin | Self::Finance),
            Access::Developer => matches!(self, Self::Owner | Self::Admin | Self::Developer),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_allows_exactly_its_own_work() {
        use Access::*;
        let allowed = |role: Role| {
            Access::ALL
                .into_iter()
                .filter(|access| role.allows(*access))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            allowed(Role::Owner),
            [
                Read,
                Reports,
                Pos,
                CardSupport,
                Adjust,
                Approve,
                Developer,
                Staff,
                Own,
                Full
            ]
        );
        assert_eq!(
            allowed(Role::Admin),
            [
                Read,
                Reports,
                Pos,
                CardSupport,
                Adjust,
                Approve,
                Developer,
                Own,
                Full
            ]
        );
        assert_eq!(allowed(Role::Support), [Read, CardSupport, Adjust, Own]);
        assert_eq!(allowed(Role::Finance), [Read, Reports, Approve, Own]);
        assert_eq!(allowed(Role::Developer), [Read, Developer, Own]);
        assert_eq!(allowed(Role::Viewer), [Read, Reports, Own]);
    }

    #[test]
    fn a_role_reads_back_from_its_name() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("Owner"), None);
        assert_eq!(Role::parse("root"), None);
    }
}
