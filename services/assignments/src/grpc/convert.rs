//! Stored records as protobuf messages.

use chrono::NaiveDate;
use dondoc_contracts::assignments::v1 as pb;
use dondoc_server::convert::{
    date_to_pb, opt_date_to_pb, recurrence_from_text, recurrence_to_pb, stamp,
};

use crate::domain::deadline::{DeadlinePolicy, DeadlineState, classify};
use crate::domain::stage::Stage;
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

fn deadline_state_to_pb(state: DeadlineState) -> pb::DeadlineState {
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
