//! Extension requests: a lead agency asks for a later deadline; the office
//! decides. The original deadline is kept; the due date moves only on
//! approval.

use chrono::NaiveDate;
use dondoc_errors::Error;

use super::stage::Stage;

/// Approved extensions a task may have.
pub const MAX_EXTENSIONS: i32 = 2;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtensionState {
    /// Awaiting the office.
    Pending,
    /// The due date moved.
    Approved,
    /// Refused.
    Rejected,
}

impl ExtensionState {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            ExtensionState::Pending => "PENDING",
            ExtensionState::Approved => "APPROVED",
            ExtensionState::Rejected => "REJECTED",
        }
    }

    /// Reads the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Rejected]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// What the task looks like when an extension is asked for.
#[derive(Debug, Clone, Copy)]
pub struct TaskDeadline {
    /// Its stage.
    pub stage: Stage,
    /// Its current due date.
    pub due: Option<NaiveDate>,
    /// Approved extensions so far.
    pub extension_count: i32,
    /// True when a request is awaiting a decision.
    pub pending: bool,
}

/// Checks the requested date against the current one. INVALID_ARGUMENT on
/// `field` when it is earlier.
pub fn check_requested_date(
    current: Option<NaiveDate>,
    requested: NaiveDate,
    field: &str,
) -> Result<(), Error> {
    match current {
        Some(current) if requested < current => Err(Error::invalid(
            field,
            format!("{requested} is earlier than the current due date {current}"),
        )),
        _ => Ok(()),
    }
}

/// Checks that the task may receive a new request (after the input itself
/// was checked): it is being worked on, has a deadline, has fewer than two
/// approved extensions and no pending request. FAILED_PRECONDITION otherwise.
pub fn check_request(task: TaskDeadline) -> Result<(), Error> {
    if !matches!(task.stage, Stage::Assigned | Stage::InProgress) {
        return Err(Error::precondition(
            "TASK_NOT_IN_PROGRESS",
            format!(
                "a task that is {} cannot be extended",
                task.stage.as_str().to_lowercase().replace('_', " ")
            ),
        ));
    }
    if task.due.is_none() {
        return Err(Error::precondition(
            "NO_DEADLINE",
            "the task has no due date to extend",
        ));
    }
    if task.extension_count >= MAX_EXTENSIONS {
        return Err(Error::precondition(
            "EXTENSION_LIMIT_REACHED",
            format!("a task may be extended at most {MAX_EXTENSIONS} times"),
        ));
    }
    if task.pending {
        return Err(Error::precondition(
            "EXTENSION_PENDING",
            "an extension request is already awaiting a decision",
        ));
    }
    Ok(())
}

/// Checks that a request may be decided now; for an approval, also that the
/// task can still take the new date.
pub fn check_decision(
    state: ExtensionState,
    approve: bool,
    task: TaskDeadline,
    requested: NaiveDate,
) -> Result<(), Error> {
    if state != ExtensionState::Pending {
        return Err(Error::precondition(
            "EXTENSION_ALREADY_DECIDED",
            format!("the request was already {}", state.as_str().to_lowercase()),
        ));
    }
    if !approve {
        return Ok(());
    }
    if !task.stage.is_open() {
        return Err(Error::precondition(
            "TASK_CLOSED",
            "the task is no longer open: the request can only be rejected",
        ));
    }
    if task.extension_count >= MAX_EXTENSIONS {
        return Err(Error::precondition(
            "EXTENSION_LIMIT_REACHED",
            format!("a task may be extended at most {MAX_EXTENSIONS} times"),
        ));
    }
    if let Some(current) = task.due
        && requested < current
    {
        return Err(Error::precondition(
            "DEADLINE_MOVED",
            format!(
                "the due date is now {current}, later than the {requested} requested: reject the request"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn open(count: i32, pending: bool) -> TaskDeadline {
        TaskDeadline {
            stage: Stage::InProgress,
            due: Some(d(2024, 9, 30)),
            extension_count: count,
            pending,
        }
    }

    fn reason(result: Result<(), Error>) -> &'static str {
        match result {
            Err(e) => e.reason(),
            Ok(()) => "OK",
        }
    }

    #[test]
    fn the_new_date_is_never_earlier() {
        let err = check_requested_date(
            Some(d(2024, 9, 30)),
            d(2024, 9, 29),
            "extension.requested_due_date",
        )
        .unwrap_err();
        match err {
            Error::InvalidArgument(v) => assert_eq!(v[0].field, "extension.requested_due_date"),
            other => panic!("{other:?}"),
        }
        assert!(check_requested_date(Some(d(2024, 9, 30)), d(2024, 9, 30), "f").is_ok());
        assert!(check_requested_date(Some(d(2024, 9, 30)), d(2024, 10, 30), "f").is_ok());
    }

    #[test]
    fn at_most_two_and_one_pending_at_a_time() {
        assert_eq!(reason(check_request(open(0, false))), "OK");
        assert_eq!(reason(check_request(open(1, false))), "OK");
        assert_eq!(
            reason(check_request(open(2, false))),
            "EXTENSION_LIMIT_REACHED"
        );
        assert_eq!(reason(check_request(open(0, true))), "EXTENSION_PENDING");
    }

    #[test]
    fn only_open_tasks_with_a_deadline_are_extended() {
        for stage in [
            Stage::Submitted,
            Stage::Completed,
            Stage::Refused,
            Stage::Withdrawn,
        ] {
            let task = TaskDeadline {
                stage,
                ..open(0, false)
            };
            assert_eq!(
                reason(check_request(task)),
                "TASK_NOT_IN_PROGRESS",
                "{stage:?}"
            );
        }
        let none = TaskDeadline {
            due: None,
            ..open(0, false)
        };
        assert_eq!(reason(check_request(none)), "NO_DEADLINE");
    }

    #[test]
    fn decisions() {
        let later = d(2024, 10, 31);
        assert_eq!(
            reason(check_decision(
                ExtensionState::Pending,
                true,
                open(0, true),
                later
            )),
            "OK"
        );
        assert_eq!(
            reason(check_decision(
                ExtensionState::Pending,
                false,
                open(2, true),
                later
            )),
            "OK"
        );
        assert_eq!(
            reason(check_decision(
                ExtensionState::Approved,
                true,
                open(1, false),
                later
            )),
            "EXTENSION_ALREADY_DECIDED"
        );
        assert_eq!(
            reason(check_decision(
                ExtensionState::Rejected,
                false,
                open(0, false),
                later
            )),
            "EXTENSION_ALREADY_DECIDED"
        );
        let done = TaskDeadline {
            stage: Stage::Completed,
            ..open(0, true)
        };
        assert_eq!(
            reason(check_decision(ExtensionState::Pending, true, done, later)),
            "TASK_CLOSED"
        );
        assert_eq!(
            reason(check_decision(ExtensionState::Pending, false, done, later)),
            "OK"
        );
        let moved = TaskDeadline {
            due: Some(d(2024, 11, 30)),
            ..open(0, true)
        };
        assert_eq!(
            reason(check_decision(ExtensionState::Pending, true, moved, later)),
            "DEADLINE_MOVED"
        );
    }
}
