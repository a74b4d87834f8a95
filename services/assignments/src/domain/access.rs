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

/// Who reads an agency's indicators: reading roles, and the agency itself.
pub fn may_read_indicator(principal: &Principal, agency: &str) -> Result<(), Error> {
    if principal.reads_all() || principal.agency.as_deref() == Some(agency) {
        Ok(())
    } else {
        Err(Error::denied(
            "AGENCY_OUT_OF_SCOPE",
            "agencies read only their own indicators",
        ))
    }
}

/// An agency's user reports the actual value of its own indicators.
pub fn must_report_for(principal: &Principal, agency: &str) -> Result<(), Error> {
    if principal.has(Role::Agency) && principal.agency.as_deref() == Some(agency) {
        Ok(())
    } else {
        Err(Error::denied(
            "NOT_REPORTING_AGENCY",
            "only a user of the indicator's agency reports its actual value",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(agency: Option<&str>, role: Role) -> Principal {
        Principal {
            subject: "users/x".into(),
            agency: agency.map(str::to_string),
            roles: vec![role],
        }
    }

    fn v(codes: &[&str]) -> Vec<String> {
        codes.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn agencies_see_only_what_they_lead_or_coordinate() {
        let lead = v(&["so-ldtbxh"]);
        let coord = v(&["so-tai-chinh"]);
        assert!(may_read(&who(Some("so-ldtbxh"), Role::Agency), &lead, &coord).is_ok());
        assert!(may_read(&who(Some("so-tai-chinh"), Role::Agency), &lead, &coord).is_ok());
        assert!(may_read(&who(Some("so-xay-dung"), Role::Agency), &lead, &coord).is_err());
        for role in [Role::Office, Role::Leader, Role::Inspector] {
            assert!(may_read(&who(Some("ubnd"), role), &lead, &coord).is_ok());
        }
    }

    #[test]
    fn only_a_lead_acts_only_the_office_decides() {
        let lead = v(&["so-ldtbxh"]);
        let coord = v(&["so-tai-chinh"]);
        assert!(must_lead(&who(Some("so-ldtbxh"), Role::Agency), &lead).is_ok());
        assert!(must_lead(&who(Some("so-tai-chinh"), Role::Agency), &lead).is_err());
        assert!(must_lead(&who(Some("so-ldtbxh"), Role::Office), &lead).is_err());
        assert!(must_take_part(&who(Some("so-tai-chinh"), Role::Agency), &lead, &coord).is_ok());
        assert!(must_take_part(&who(Some("so-xay-dung"), Role::Agency), &lead, &coord).is_err());
        assert!(must_be_office(&who(Some("vp-ubnd"), Role::Office)).is_ok());
        for role in [Role::Agency, Role::Leader, Role::Inspector] {
            assert!(must_be_office(&who(Some("vp-ubnd"), role)).is_err());
        }
    }

    #[test]
    fn indicators_are_reported_by_their_agency() {
        assert!(must_report_for(&who(Some("so-xd"), Role::Agency), "so-xd").is_ok());
        assert!(must_report_for(&who(Some("so-tc"), Role::Agency), "so-xd").is_err());
        assert!(must_report_for(&who(Some("so-xd"), Role::Office), "so-xd").is_err());
        assert!(may_read_indicator(&who(Some("so-tc"), Role::Agency), "so-xd").is_err());
        assert!(may_read_indicator(&who(None, Role::Inspector), "so-xd").is_ok());
    }
}
