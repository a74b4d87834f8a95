//! Who may do what with directives and agencies: the fine rules. The
//! gateway's table holds the coarse ones (which role may call which method);
//! these hold in the service whatever the path a call took.
//!
//! | action | who |
//! |---|---|
//! | read the directory, resolve names | everyone authenticated |
//! | manage the directory (create, update, merge, rename, split, dissolve) | admin, office |
//! | draft, edit, issue, revoke, import directives | office, leader |
//! | parse a document (nothing saved) | office, leader, admin |
//! | read a directive | office, leader, inspector, admin, services: all; an agency user: issued or revoked directives its agency issued, leads or coordinates |
//! | follow the event stream | services, office, leader, inspector, admin (everything in it) |

use dondoc_errors::Error;
use dondoc_identity::{Principal, Role};

/// An action guarded by a role rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Get, List and Resolve agencies.
    ReadDirectory,
    /// Create, Update, Merge, Rename, Split, Dissolve agencies.
    ManageDirectory,
    /// Create, Update, Issue, Revoke and Import directives.
    WriteDirectives,
    /// Parse a document into a proposed draft.
    ParseDocuments,
    /// Get, List and Search directives (then filtered by [`may_read_directive`]).
    ReadDirectives,
    /// WatchEvents.
    WatchEvents,
}

impl Action {
    /// The roles that may take the action.
    pub fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Action::ReadDirectory => &[
                Office, Leader, Agency, Inspector, Subscriber, Admin, Service,
            ],
            Action::ManageDirectory => &[Admin, Office],
            Action::WriteDirectives => &[Office, Leader],
            Action::ParseDocuments => &[Office, Leader, Admin],
            Action::ReadDirectives => &[Office, Leader, Agency, Inspector, Admin, Service],
            Action::WatchEvents => &[Office, Leader, Inspector, Admin, Service],
        }
    }

    fn refusal(self) -> &'static str {
        match self {
            Action::ReadDirectory => "reading the directory needs a role",
            Action::ManageDirectory => {
                "only administrators and the office manage the agency directory"
            }
            Action::WriteDirectives => {
                "only the office and leaders draft, issue and revoke directives"
            }
            Action::ParseDocuments => "only the office, leaders and administrators parse documents",
            Action::ReadDirectives => {
                "directives are read by the office, leaders, inspectors, administrators and the agencies they involve"
            }
            Action::WatchEvents => {
                "the event stream carries every change: services, the office, leaders, administrators and inspectors only"
            }
        }
    }
}

/// `Ok(())` when one of the principal's roles allows the action.
pub fn authorize(principal: &Principal, action: Action) -> Result<(), Error> {
    if principal.has_any(action.roles()) {
        Ok(())
    } else {
        Err(Error::denied("ROLE_NOT_ALLOWED", action.refusal()))
    }
}

/// Office and leaders draft and issue directives.
pub fn may_write_directives(principal: &Principal) -> Result<(), Error> {
    authorize(principal, Action::WriteDirectives)
}

/// Admins and the office manage the agency directory.
pub fn may_manage_directory(principal: &Principal) -> Result<(), Error> {
    authorize(principal, Action::ManageDirectory)
}

/// Whether the principal may read a directive (draft or not) that involves
/// `agencies` (issuer, leads, coordinators).
pub fn may_read_directive<'a>(
    principal: &Principal,
    is_draft: bool,
    mut agencies: impl Iterator<Item = &'a str>,
) -> Result<(), Error> {
    authorize(principal, Action::ReadDirectives)?;
    if principal.reads_all() {
        return Ok(());
    }
    let Some(own) = principal.agency.as_deref() else {
        return Err(Error::denied("NO_AGENCY", "the caller acts for no agency"));
    };
    if !is_draft && agencies.any(|a| a == own) {
        Ok(())
    } else {
        Err(Error::denied(
            "AGENCY_OUT_OF_SCOPE",
            "this directive does not involve your agency",
        ))
    }
}

/// The agency whose directives a listing or search is limited to: `None`
/// for those who read everything.
pub fn reading_scope(principal: &Principal) -> Result<Option<String>, Error> {
    authorize(principal, Action::ReadDirectives)?;
    if principal.reads_all() {
        return Ok(None);
    }
    principal
        .agency
        .clone()
        .map(Some)
        .ok_or_else(|| Error::denied("NO_AGENCY", "the caller acts for no agency"))
}

/// Whether the principal may follow the event stream (everything in it).
pub fn may_watch_events(principal: &Principal) -> Result<(), Error> {
    authorize(principal, Action::WatchEvents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_role(role: Role, agency: Option<&str>) -> Principal {
        Principal {
            subject: format!("users/{}", role.as_str()),
            agency: agency.map(str::to_string),
            roles: vec![role],
        }
    }

    /// Every role against every action: the whole table, spelled out.
    #[test]
    fn every_role_against_every_action() {
        use Action::*;
        use Role::*;
        let expected: &[(Role, &[Action])] = &[
            (
                Office,
                &[
                    ReadDirectory,
                    ManageDirectory,
                    WriteDirectives,
                    ParseDocuments,
                    ReadDirectives,
                    WatchEvents,
                ],
            ),
            (
                Leader,
                &[
                    ReadDirectory,
                    WriteDirectives,
                    ParseDocuments,
                    ReadDirectives,
                    WatchEvents,
                ],
            ),
            (Agency, &[ReadDirectory, ReadDirectives]),
            (Inspector, &[ReadDirectory, ReadDirectives, WatchEvents]),
            (Subscriber, &[ReadDirectory]),
            (
                Admin,
                &[
                    ReadDirectory,
                    ManageDirectory,
                    ParseDocuments,
                    ReadDirectives,
                    WatchEvents,
                ],
            ),
            (Service, &[ReadDirectory, ReadDirectives, WatchEvents]),
        ];
        let all = [
            ReadDirectory,
            ManageDirectory,
            WriteDirectives,
            ParseDocuments,
            ReadDirectives,
            WatchEvents,
        ];
        for (role, allowed) in expected {
            let principal = as_role(*role, Some("so-ldtbxh"));
            for action in all {
                let result = authorize(&principal, action);
                assert_eq!(
                    result.is_ok(),
                    allowed.contains(&action),
                    "{role} {action:?}: {result:?}"
                );
                if let Err(e) = result {
                    assert_eq!(e.reason(), "ROLE_NOT_ALLOWED");
                }
            }
        }
    }

    #[test]
    fn agency_users_read_only_issued_directives_that_involve_them() {
        let agency = as_role(Role::Agency, Some("so-ldtbxh"));
        let involved = ["vp-ubnd", "so-ldtbxh"];
        assert!(may_read_directive(&agency, false, involved.into_iter()).is_ok());
        let draft = may_read_directive(&agency, true, involved.into_iter()).unwrap_err();
        assert_eq!(draft.reason(), "AGENCY_OUT_OF_SCOPE");
        let other =
            may_read_directive(&agency, false, ["vp-ubnd", "so-y-te"].into_iter()).unwrap_err();
        assert_eq!(other.reason(), "AGENCY_OUT_OF_SCOPE");
        let nobody = may_read_directive(&as_role(Role::Agency, None), false, involved.into_iter())
            .unwrap_err();
        assert_eq!(nobody.reason(), "NO_AGENCY");
        for role in [
            Role::Office,
            Role::Leader,
            Role::Inspector,
            Role::Admin,
            Role::Service,
        ] {
            assert!(
                may_read_directive(&as_role(role, None), true, ["x"].into_iter()).is_ok(),
                "{role}"
            );
            assert_eq!(reading_scope(&as_role(role, None)).unwrap(), None);
        }
        assert_eq!(
            reading_scope(&agency).unwrap().as_deref(),
            Some("so-ldtbxh")
        );
        assert!(reading_scope(&as_role(Role::Subscriber, Some("so-ldtbxh"))).is_err());
        assert!(
            may_read_directive(
                &as_role(Role::Subscriber, Some("so-ldtbxh")),
                false,
                involved.into_iter()
            )
            .is_err()
        );
    }
}
