//! Stored records as protobuf messages.

use dondoc_contracts::directives::v1 as pb;
use dondoc_server::convert::{opt_date_to_pb, recurrence_from_text, recurrence_to_pb, stamp};

use crate::domain::agency::Reorganization;
use crate::domain::agency::{AgencyKind, AgencyState};
use crate::domain::directive::{DirectiveKind, DirectiveState};
use crate::storage::agencies::{AgencyRecord, NameRecord};
use crate::storage::directives::{AmendmentRecord, DirectiveRecord, ItemRecord};

pub fn agency_kind_to_pb(kind: &str) -> pb::AgencyKind {
    match AgencyKind::parse(kind) {
        Some(AgencyKind::PeoplesCommittee) => pb::AgencyKind::PeoplesCommittee,
        Some(AgencyKind::Office) => pb::AgencyKind::Office,
        Some(AgencyKind::Department) => pb::AgencyKind::Department,
        Some(AgencyKind::Board) => pb::AgencyKind::Board,
        Some(AgencyKind::Commune) => pb::AgencyKind::Commune,
        Some(AgencyKind::Ministry) => pb::AgencyKind::Ministry,
        Some(AgencyKind::Enterprise) => pb::AgencyKind::Enterprise,
        Some(AgencyKind::Other) => pb::AgencyKind::Other,
        None => pb::AgencyKind::Unspecified,
    }
}

pub fn agency_kind_from_pb(kind: i32) -> Option<AgencyKind> {
    match pb::AgencyKind::try_from(kind).ok()? {
        pb::AgencyKind::Unspecified => None,
        pb::AgencyKind::PeoplesCommittee => Some(AgencyKind::PeoplesCommittee),
        pb::AgencyKind::Office => Some(AgencyKind::Office),
        pb::AgencyKind::Department => Some(AgencyKind::Department),
        pb::AgencyKind::Board => Some(AgencyKind::Board),
        pb::AgencyKind::Commune => Some(AgencyKind::Commune),
        pb::AgencyKind::Ministry => Some(AgencyKind::Ministry),
        pb::AgencyKind::Enterprise => Some(AgencyKind::Enterprise),
        pb::AgencyKind::Other => Some(AgencyKind::Other),
    }
}

fn agency_state_to_pb(state: &str) -> pb::AgencyState {
    match AgencyState::parse(state) {
        Some(AgencyState::Active) => pb::AgencyState::Active,
        Some(AgencyState::Merged) => pb::AgencyState::Merged,
        Some(AgencyState::Split) => pb::AgencyState::Split,
        Some(AgencyState::Dissolved) => pb::AgencyState::Dissolved,
        None => pb::AgencyState::Unspecified,
    }
}

pub fn agency_to_pb(record: &AgencyRecord) -> pb::Agency {
    pb::Agency {
        name: format!("agencies/{}", record.code),
        code: record.code.clone(),
        display_name: record.display_name.clone(),
        short_name: record.short_name.clone(),
        aliases: record.aliases.clone(),
        kind: agency_kind_to_pb(&record.kind) as i32,
        parent: record
            .parent
            .as_ref()
            .map(|p| format!("agencies/{p}"))
            .unwrap_or_default(),
        effective_from: opt_date_to_pb(record.effective_from),
        effective_until: opt_date_to_pb(record.effective_until),
        state: agency_state_to_pb(&record.state) as i32,
        successors: record
            .successors
            .iter()
            .map(|s| format!("agencies/{s}"))
            .collect(),
        name_history: Vec::new(),
        etag: etag(record.version),
        create_stamp: Some(stamp(
            &record.created_by,
            record.created_agency.as_deref(),
            record.created_at,
        )),
        update_stamp: Some(stamp(
            &record.updated_by,
            record.updated_agency.as_deref(),
            record.updated_at,
        )),
    }
}

pub fn directive_kind_to_pb(kind: DirectiveKind) -> pb::DirectiveKind {
    directive_kind_to_pb_str(kind.as_str())
}

pub fn directive_kind_from_pb(kind: i32) -> Option<DirectiveKind> {
    match pb::DirectiveKind::try_from(kind).ok()? {
        pb::DirectiveKind::Unspecified => None,
        pb::DirectiveKind::ConclusionNotice => Some(DirectiveKind::ConclusionNotice),
        pb::DirectiveKind::Directive => Some(DirectiveKind::Directive),
        pb::DirectiveKind::Decision => Some(DirectiveKind::Decision),
        pb::DirectiveKind::Plan => Some(DirectiveKind::Plan),
        pb::DirectiveKind::OfficialLetter => Some(DirectiveKind::OfficialLetter),
        pb::DirectiveKind::Resolution => Some(DirectiveKind::Resolution),
        pb::DirectiveKind::Report => Some(DirectiveKind::Report),
        pb::DirectiveKind::Other => Some(DirectiveKind::Other),
    }
}

pub fn directive_kind_to_pb_str(kind: &str) -> pb::DirectiveKind {
    match DirectiveKind::parse(kind) {
        Some(DirectiveKind::ConclusionNotice) => pb::DirectiveKind::ConclusionNotice,
        Some(DirectiveKind::Directive) => pb::DirectiveKind::Directive,
        Some(DirectiveKind::Decision) => pb::DirectiveKind::Decision,
        Some(DirectiveKind::Plan) => pb::DirectiveKind::Plan,
        Some(DirectiveKind::OfficialLetter) => pb::DirectiveKind::OfficialLetter,
        Some(DirectiveKind::Resolution) => pb::DirectiveKind::Resolution,
        Some(DirectiveKind::Report) => pb::DirectiveKind::Report,
        Some(DirectiveKind::Other) => pb::DirectiveKind::Other,
        None => pb::DirectiveKind::Unspecified,
    }
}

fn directive_state_to_pb(state: &str) -> pb::DirectiveState {
    match DirectiveState::parse(state) {
        Some(DirectiveState::Draft) => pb::DirectiveState::Draft,
        Some(DirectiveState::Issued) => pb::DirectiveState::Issued,
        Some(DirectiveState::Revoked) => pb::DirectiveState::Revoked,
        None => pb::DirectiveState::Unspecified,
    }
}

fn item_state_to_pb(state: &str) -> pb::ItemState {
    match state {
        "ACTIVE" => pb::ItemState::Active,
        "CANCELLED" => pb::ItemState::Cancelled,
        _ => pb::ItemState::Unspecified,
    }
}

/// An agency with its former names.
pub fn agency_with_history(record: &AgencyRecord, history: &[NameRecord]) -> pb::Agency {
    let mut agency = agency_to_pb(record);
    agency.name_history = history
        .iter()
        .map(|n| pb::AgencyNameRecord {
            display_name: n.display_name.clone(),
            short_name: n.short_name.clone(),
            valid_from: opt_date_to_pb(n.valid_from),
            valid_until: opt_date_to_pb(Some(n.valid_until)),
        })
        .collect();
    agency
}

pub fn reorganization_to_pb(kind: Reorganization) -> pb::ReorganizationKind {
    match kind {
        Reorganization::Merge => pb::ReorganizationKind::Merge,
        Reorganization::Rename => pb::ReorganizationKind::Rename,
        Reorganization::Split => pb::ReorganizationKind::Split,
        Reorganization::Dissolve => pb::ReorganizationKind::Dissolve,
    }
}

pub fn link_kind_from_pb(kind: i32) -> Option<crate::domain::directive::LinkKind> {
    use crate::domain::directive::LinkKind;
    match pb::DirectiveLinkKind::try_from(kind).ok()? {
        pb::DirectiveLinkKind::Implements => Some(LinkKind::Implements),
        pb::DirectiveLinkKind::Amends => Some(LinkKind::Amends),
        pb::DirectiveLinkKind::Unspecified => None,
    }
}

fn link_kind_to_pb(kind: &str) -> pb::DirectiveLinkKind {
    match kind {
        "IMPLEMENTS" => pb::DirectiveLinkKind::Implements,
        "AMENDS" => pb::DirectiveLinkKind::Amends,
        _ => pb::DirectiveLinkKind::Unspecified,
    }
}

fn agency_names(codes: &[String]) -> Vec<String> {
    codes.iter().map(|c| format!("agencies/{c}")).collect()
}

pub fn item_to_pb(directive_name: &str, item: &ItemRecord) -> pb::DirectiveItem {
    pb::DirectiveItem {
        name: format!("{directive_name}/items/{}", item.id),
        reference: item.reference.clone(),
        text: item.text.clone(),
        lead_agencies: agency_names(&item.lead_agencies),
        coordinating_agencies: agency_names(&item.coordinating_agencies),
        due_date: opt_date_to_pb(item.due_date),
        recurrence: item
            .recurrence
            .as_deref()
            .and_then(recurrence_from_text)
            .map(recurrence_to_pb),
        deadline_text: item.deadline_text.clone(),
        key_task: item.key_task,
        state: item_state_to_pb(&item.state) as i32,
    }
}

fn amendment_to_pb(a: &AmendmentRecord) -> pb::ItemAmendment {
    use pb::item_amendment::Change;
    let values = pb::DirectiveItem {
        reference: a.reference.clone(),
        text: a.text.clone(),
        lead_agencies: agency_names(&a.lead_agencies),
        coordinating_agencies: agency_names(&a.coordinating_agencies),
        due_date: opt_date_to_pb(a.due_date),
        recurrence: a
            .recurrence
            .as_deref()
            .and_then(recurrence_from_text)
            .map(recurrence_to_pb),
        deadline_text: a.deadline_text.clone(),
        key_task: a.key_task,
        ..Default::default()
    };
    let item_target = |item: Option<i64>| {
        format!(
            "directives/{}/items/{}",
            a.target_id,
            item.unwrap_or_default()
        )
    };
    let (target, change) = match a.kind.as_str() {
        "ADD" => (
            format!("directives/{}", a.target_id),
            Change::AddItem(values),
        ),
        "CHANGE" => (
            item_target(a.target_item_id),
            Change::ChangeItem(pb::ItemChange {
                item: Some(values),
                update_mask: Some(prost_types::FieldMask {
                    paths: a.mask.clone(),
                }),
            }),
        ),
        _ => (
            item_target(a.target_item_id),
            Change::CancelItem(pb::ItemCancellation {
                reason: a.reason.clone(),
            }),
        ),
    };
    pb::ItemAmendment {
        target,
        change: Some(change),
    }
}

/// The etag of a version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

pub fn directive_to_pb(record: &DirectiveRecord) -> pb::Directive {
    let name = format!("directives/{}", record.id);
    pb::Directive {
        name: name.clone(),
        kind: directive_kind_to_pb_str(&record.kind) as i32,
        number: record.number.clone(),
        issuer: format!("agencies/{}", record.issuer),
        signer: Some(pb::Signer {
            full_name: record.signer_name.clone(),
            title: record.signer_title.clone(),
            capacities: record.signer_capacities.clone(),
        }),
        place: record.place.clone(),
        issue_date: opt_date_to_pb(record.issue_date),
        subject: record.subject.clone(),
        body: record.body.clone(),
        recipients: record.recipients.clone(),
        meeting: record.meeting_chair.as_ref().map(|chair| pb::Meeting {
            date: opt_date_to_pb(record.meeting_date),
            chair: chair.clone(),
        }),
        links: record
            .links
            .iter()
            .map(|l| pb::DirectiveLink {
                kind: link_kind_to_pb(&l.kind) as i32,
                target: format!("directives/{}", l.target_id),
            })
            .collect(),
        items: record.items.iter().map(|i| item_to_pb(&name, i)).collect(),
        state: directive_state_to_pb(&record.state) as i32,
        etag: etag(record.version),
        create_stamp: Some(stamp(
            &record.created_by,
            record.created_agency.as_deref(),
            record.created_at,
        )),
        update_stamp: Some(stamp(
            &record.updated_by,
            record.updated_agency.as_deref(),
            record.updated_at,
        )),
        issue_stamp: record.issued_at.map(|at| {
            stamp(
                record.issued_by.as_deref().unwrap_or_default(),
                record.issued_agency.as_deref(),
                at,
            )
        }),
        amendments: record.amendments.iter().map(amendment_to_pb).collect(),
        revoke_stamp: record.revoked_at.map(|at| {
            stamp(
                record.revoked_by.as_deref().unwrap_or_default(),
                record.revoked_agency.as_deref(),
                at,
            )
        }),
        revoke_reason: record.revoke_reason.clone().unwrap_or_default(),
    }
}

/// The agencies a directive involves: issuer, leads and coordinators.
pub fn involved_agencies(record: &DirectiveRecord) -> impl Iterator<Item = &str> {
    std::iter::once(record.issuer.as_str()).chain(record.items.iter().flat_map(|i| {
        i.lead_agencies
            .iter()
            .chain(i.coordinating_agencies.iter())
            .map(String::as_str)
    }))
}
