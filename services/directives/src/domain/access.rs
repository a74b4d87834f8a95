//! Who may do what with directives and agencies (the fine rules; the
//! gateway's table holds the coarse ones).

use dondoc_errors::Error;
use dondoc_identity::{Principal, Role};

/// Office and leaders draft and issue directives.
pub fn may_write_directives(principal: &Principal) -> Result<(), Error> {
    if principal.has_any(&[Role::Office, Role::Leader]) {
        Ok(())
    } else {
        Err(Error::denied(
            "ROLE_NOT_ALLOWED",
            "only the office and leaders draft and issue directives",
        ))
    }
}

/// Admins and the office manage the agency directory.
pub fn may_manage_directory(principal: &Principal) -> Result<(), Error> {
    if principal.has_any(&[Role::Admin, Role::Office]) {
        Ok(())
    } else {
        Err(Error::denied(
            "ROLE_NOT_ALLOWED",
            "only administrators and the office manage the agency directory",
        ))
    }
}

/// Whether the principal may read a directive in `state` that involves
/// `agencies` (issuer, leads, coordinators).
pub fn may_read_directive<'a>(
    principal: &Principal,
    is_draft: bool,
    mut agencies: impl Iterator<Item = &'a str>,
) -> Result<(), Error> {
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

/// Whether the principal may follow the event stream (everything in it).
pub fn may_watch_events(principal: &Principal) -> Result<(), Error> {
    if principal.reads_all() {
        Ok(())
    } else {
        Err(Error::denied(
            "ROLE_NOT_ALLOWED",
            "the event stream carries every change: services, administrators and inspectors only",
        ))
    }
}
