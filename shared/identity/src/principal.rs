use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A role a principal holds. Coarse rules (which role may call which method)
/// live in the gateway; fine rules (which agency may see what) in the services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The office of the People's Committee: tracks and decides.
    Office,
    /// A leader: issues directives, reads everything.
    Leader,
    /// An agency user: its own and its coordinated tasks.
    Agency,
    /// An inspector: reads everything.
    Inspector,
    /// An external system receiving notifications in its scope.
    Subscriber,
    /// Manages the directory and the system.
    Admin,
    /// Another dondoc service.
    Service,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 7] = [
        Role::Office,
        Role::Leader,
        Role::Agency,
        Role::Inspector,
        Role::Subscriber,
        Role::Admin,
        Role::Service,
    ];

    /// The lowercase name used in tokens and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Office => "office",
            Role::Leader => "leader",
            Role::Agency => "agency",
            Role::Inspector => "inspector",
            Role::Subscriber => "subscriber",
            Role::Admin => "admin",
            Role::Service => "service",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}"))
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    /// Who: "users/…", "systems/…" or "services/…".
    pub subject: String,
    /// The agency the caller acts for, as its code ("so-ldtbxh"); none for services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
    /// What the caller may do.
    pub roles: Vec<Role>,
}

impl Principal {
    /// The identity of a dondoc service calling another.
    pub fn service(name: &str) -> Self {
        Self {
            subject: format!("services/{name}"),
            agency: None,
            roles: vec![Role::Service],
        }
    }

    /// True when the principal holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// True when the principal holds any of `roles`.
    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.has(*r))
    }

    /// True for roles that read everything in the province.
    pub fn reads_all(&self) -> bool {
        self.has_any(&[
            Role::Office,
            Role::Leader,
            Role::Inspector,
            Role::Admin,
            Role::Service,
        ])
    }

    /// The agency as a resource name, "agencies/{code}".
    pub fn agency_name(&self) -> Option<String> {
        self.agency.as_ref().map(|code| format!("agencies/{code}"))
    }
}

/// The principal a verified call carries; PERMISSION-free calls (health,
/// reflection) carry none, so this answers UNAUTHENTICATED for them.
pub fn principal<T>(request: &tonic::Request<T>) -> Result<Principal, dondoc_errors::Error> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| dondoc_errors::Error::Unauthenticated {
            reason: "MISSING_ASSERTION",
            message: "this call carries no verified identity".into(),
        })
}
