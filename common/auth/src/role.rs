//! Roles and what each call needs: one ordered scale, so "may this principal do this" is a single
//! comparison and a new RPC only has to say which rung it needs.

use std::{fmt, str::FromStr};

/// What a credential may do. Each role may do everything the roles below it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads runs, workflows and their events.
    Viewer,
    /// Also registers workflows, starts and cancels runs, answers approvals.
    Operator,
    /// Also manages the tenant's API keys; in the system tenant, the dead letters too.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not `admin`, `operator` or `viewer`.
#[derive(Debug, thiserror::Error)]
#[error("unknown role `{0}`: expected admin, operator or viewer")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Ok(Self::Viewer),
            "operator" => Ok(Self::Operator),
            "admin" => Ok(Self::Admin),
            _ => Err(UnknownRole(s.to_owned())),
        }
    }
}

/// What a call needs before its handler runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No credential at all: gRPC health, so probes work without a secret.
    Open,
    /// Any valid credential (reflection, unless configured open).
    Authenticated,
    /// At least this role in the caller's tenant.
    Role(Role),
    /// An admin of the system tenant: operations across tenants (dead letters).
    System,
}
