//! Stored records as protobuf messages.

use chrono::NaiveDate;
use dondoc_contracts::assignments::v1 as pb;
use dondoc_server::convert::{
    date_to_pb, opt_date_to_pb, recurrence_from_text, recurrence_to_pb, stamp,
};

use crate::domain::deadline::{DeadlinePolicy, DeadlineState, classify};
use crate::domain::extension::ExtensionState;
use crate::domain::indicator::{PeriodKind, percent_of_plan, year_on_year_change};
use crate::domain::stage::Stage;
use crate::domain::statistics::Counts;
use crate::storage::extensions::ExtensionRecord;
use crate::storage::indicators::IndicatorRecord;
use crate::storage::progress::ProgressRecord;
use crate::storage::tasks::TaskRecord;

pub fn stage_to_pb(stage: Stage) -> pb::TaskStage {
    match stage {
        Stage::Assigned => pb::TaskStage::Assigned,
        Stage::InProgress => pb::TaskStage::InProgress,
        Stage::Submitted => pb::TaskStage::Submitted,
        Stage::Completed => pb::TaskStage::Completed,
        Stage::Refused => pb::TaskStage::Refused,
        Stage::Withdrawn => pb::TaskStage::Withdrawn,
    }
}

pub fn deadline_state_to_pb(state: DeadlineState) -> pb::DeadlineState {
    match state {
        DeadlineState::CompletedOnTime => pb::DeadlineState::CompletedOnTime,
        DeadlineState::CompletedLate => pb::DeadlineState::CompletedLate,
        DeadlineState::InProgressOnTime => pb::DeadlineState::InProgressOnTime,
        DeadlineState::InProgressOverdue => pb::DeadlineState::InProgressOverdue,
        DeadlineState::NoDeadline => pb::DeadlineState::NoDeadline,
        DeadlineState::Withdrawn => pb::DeadlineState::Withdrawn,
    }
}

pub fn priority_to_pb(priority: &str) -> pb::Priority {
    match priority {
        "LOW" => pb::Priority::Low,
        "HIGH" => pb::Priority::High,
        "URGENT" => pb::Priority::Urgent,
        _ => pb::Priority::Normal,
    }
}

pub fn priority_from_pb(priority: i32) -> &'static str {
    match pb::Priority::try_from(priority).unwrap_or(pb::Priority::Unspecified) {
        pb::Priority::Low => "LOW",
        pb::Priority::High => "HIGH",
        pb::Priority::Urgent => "URGENT",
        pb::Priority::Normal | pb::Priority::Unspecified => "NORMAL",
    }
}

/// The etag of a version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// A task as the API shows it on `today`, its deadline state computed.
pub fn task_to_pb(record: &TaskRecord, today: NaiveDate, policy: &DeadlinePolicy) -> pb::Task {
    let stage = Stage::parse(&record.stage).unwrap_or(Stage::Assigned);
    let class = classify(
        stage,
        record.due_date,
        record.completion_date,
        today,
        policy,
    );
    let agencies = |codes: &[String]| codes.iter().map(|c| format!("agencies/{c}")).collect();
    pb::Task {
        name: format!("tasks/{}", record.id),
        title: record.title.clone(),
        description: record.description.clone(),
        directive: record
            .directive_id
            .map(|d| format!("directives/{d}"))
            .unwrap_or_default(),
        directive_item: match (record.directive_id, record.directive_item_id) {
            (Some(d), Some(i)) => format!("directives/{d}/items/{i}"),
            _ => String::new(),
        },
        directive_number: record.directive_number.clone(),
        reference: record.reference.clone(),
        lead_agencies: agencies(&record.lead_agencies),
        coordinating_agencies: agencies(&record.coordinating_agencies),
        assigner: format!("agencies/{}", record.assigner),
        assign_date: Some(date_to_pb(record.assign_date)),
        due_date: opt_date_to_pb(record.due_date),
        original_due_date: opt_date_to_pb(record.original_due_date),
        recurrence: record
            .recurrence
            .as_deref()
            .and_then(recurrence_from_text)
            .map(recurrence_to_pb),
        recurrence_parent: record
            .recurrence_parent
            .map(|p| format!("tasks/{p}"))
            .unwrap_or_default(),
        priority: priority_to_pb(&record.priority) as i32,
        key_task: record.key_task,
        stage: stage_to_pb(stage) as i32,
        deadline_state: deadline_state_to_pb(class.state) as i32,
        nearly_overdue: class.nearly_overdue,
        overdue_over_30_days: class.long_overdue,
        completion_date: opt_date_to_pb(record.completion_date),
        percent_complete: record.percent_complete,
        extension_count: record.extension_count,
        deadline_version: record.deadline_version,
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

/// A stored progress report as the API shows it.
pub fn progress_to_pb(record: &ProgressRecord) -> pb::ProgressReport {
    pb::ProgressReport {
        name: format!("tasks/{}/progressReports/{}", record.task_id, record.id),
        agency: format!("agencies/{}", record.agency),
        text: record.text.clone(),
        percent_complete: record.percent_complete,
        evidence: record.evidence.clone(),
        stamp: Some(stamp(&record.actor, Some(&record.agency), record.at)),
    }
}

/// A stored extension request as the API shows it.
pub fn extension_to_pb(record: &ExtensionRecord) -> pb::ExtensionRequest {
    let state = match ExtensionState::parse(&record.state) {
        Some(ExtensionState::Pending) => pb::ExtensionState::Pending,
        Some(ExtensionState::Approved) => pb::ExtensionState::Approved,
        Some(ExtensionState::Rejected) => pb::ExtensionState::Rejected,
        None => pb::ExtensionState::Unspecified,
    };
    pb::ExtensionRequest {
        name: format!("tasks/{}/extensionRequests/{}", record.task_id, record.id),
        requested_due_date: Some(date_to_pb(record.requested_due_date)),
        previous_due_date: opt_date_to_pb(record.previous_due_date),
        reason: record.reason.clone(),
        state: state as i32,
        decision_note: record.decision_note.clone(),
        request_stamp: Some(stamp(
            &record.requested_by,
            record.requested_agency.as_deref(),
            record.requested_at,
        )),
        decision_stamp: match (&record.decided_by, record.decided_at) {
            (Some(by), Some(at)) => Some(stamp(by, record.decided_agency.as_deref(), at)),
            _ => None,
        },
    }
}

/// Counts as the API shows them.
pub fn counts_to_pb(counts: &Counts) -> pb::TaskCounts {
    let n = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
    pb::TaskCounts {
        total: n(counts.total),
        completed_on_time: n(counts.completed_on_time),
        completed_late: n(counts.completed_late),
        in_progress_on_time: n(counts.in_progress_on_time),
        in_progress_overdue: n(counts.in_progress_overdue),
        no_deadline: n(counts.no_deadline),
        nearly_overdue: n(counts.nearly_overdue),
        overdue_over_30_days: n(counts.overdue_over_30_days),
        completed: n(counts.completed),
        in_progress: n(counts.in_progress()),
        completion_rate: counts.completion_rate(),
        on_time_rate: counts.on_time_rate(),
    }
}

/// A stored indicator with its computed percentages.
pub fn indicator_to_pb(record: &IndicatorRecord) -> pb::Indicator {
    let kind = match PeriodKind::parse(&record.period_kind) {
        Some(PeriodKind::Month) => pb::PeriodKind::Month,
        Some(PeriodKind::Quarter) => pb::PeriodKind::Quarter,
        Some(PeriodKind::Year) => pb::PeriodKind::Year,
        None => pb::PeriodKind::Unspecified,
    };
    pb::Indicator {
        name: format!("indicators/{}", record.id),
        agency: format!("agencies/{}", record.agency),
        code: record.code.clone(),
        display_name: record.display_name.clone(),
        unit: record.unit.clone(),
        period_kind: kind as i32,
        year: record.year,
        period: record.period,
        target: record.target,
        actual: record.actual,
        previous_year_actual: record.previous_year_actual,
        percent_of_plan: percent_of_plan(record.actual, record.target),
        year_on_year_change: year_on_year_change(record.actual, record.previous_year_actual),
        update_stamp: Some(stamp(
            &record.updated_by,
            record.updated_agency.as_deref(),
            record.updated_at,
        )),
    }
}
