//! Who may see and move which task.

use dondoc_errors::Error;
use dondoc_identity::{Principal, Role};

/// Agencies see tasks they lead or coordinate; reading roles see all.
pub fn may_read(
    principal: &Principal,
    lead: &[String],
    coordinating: &[String],
) -> Result<(), Error> {
    if principal.reads_all() {
        return Ok(());
    }
    match principal.agency.as_deref() {
        Some(own) if lead.iter().chain(coordinating).any(|a| a == own) => Ok(()),
        _ => Err(Error::denied(
            "AGENCY_OUT_OF_SCOPE",
            "your agency neither leads nor coordinates this task",
        )),
    }
}

/// Only a lead agency's user acts on the task's own workflow (start,
/// submit, refuse, ask for an extension).
pub fn must_lead(principal: &Principal, lead: &[String]) -> Result<(), Error> {
    match principal.agency.as_deref() {
        Some(own) if principal.has(Role::Agency) && lead.iter().any(|a| a == own) => Ok(()),
        _ => Err(Error::denied(
            "NOT_LEAD_AGENCY",
            "only a user of the task's lead agency may do this",
        )),
    }
}

/// The lead or a coordinating agency reports progress.
pub fn must_take_part(
    principal: &Principal,
    lead: &[String],
    coordinating: &[String],
) -> Result<(), Error> {
    match principal.agency.as_deref() {
        Some(own)
            if principal.has(Role::Agency) && lead.iter().chain(coordinating).any(|a| a == own) =>
        {
            Ok(())
        }
        _ => Err(Error::denied(
            "NOT_INVOLVED",
            "only the lead or a coordinating agency reports progress",
        )),
    }
}

/// The office decides (confirms, returns, withdraws, reassigns, decides extensions).
pub fn must_be_office(principal: &Principal) -> Result<(), Error> {
    if principal.has(Role::Office) {
        Ok(())
    } else {
        Err(Error::denied("OFFICE_ONLY", "only the office decides this"))
    }
}
