//! Deadline state, computed at read time from the injected clock: the two
//! axes of official reports (done or not × on time or late) plus no deadline.

use chrono::NaiveDate;
use dondoc_time::WorkingCalendar;

use super::stage::Stage;

/// The report classification of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadlineState {
    /// Completed on or before the due date.
    CompletedOnTime,
    /// Completed after it.
    CompletedLate,
    /// Open, not past due.
    InProgressOnTime,
    /// Open, past due.
    InProgressOverdue,
    /// No due date.
    NoDeadline,
    /// Withdrawn: not counted.
    Withdrawn,
}

impl DeadlineState {
    /// Every state.
    pub const ALL: [DeadlineState; 6] = [
        DeadlineState::CompletedOnTime,
        DeadlineState::CompletedLate,
        DeadlineState::InProgressOnTime,
        DeadlineState::InProgressOverdue,
        DeadlineState::NoDeadline,
        DeadlineState::Withdrawn,
    ];

    /// Filter form.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadlineState::CompletedOnTime => "COMPLETED_ON_TIME",
            DeadlineState::CompletedLate => "COMPLETED_LATE",
            DeadlineState::InProgressOnTime => "IN_PROGRESS_ON_TIME",
            DeadlineState::InProgressOverdue => "IN_PROGRESS_OVERDUE",
            DeadlineState::NoDeadline => "NO_DEADLINE",
            DeadlineState::Withdrawn => "WITHDRAWN",
        }
    }

    /// Reads the filter form.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Settings of the classification.
#[derive(Debug, Clone)]
pub struct DeadlinePolicy {
    /// Working days and holidays.
    pub calendar: WorkingCalendar,
    /// "Nearly overdue" within this many working days (default 3).
    pub nearly_overdue_working_days: u32,
    /// "Long overdue" beyond this many calendar days (default 30).
    pub long_overdue_days: i64,
}

impl Default for DeadlinePolicy {
    fn default() -> Self {
        Self {
            calendar: WorkingCalendar::default(),
            nearly_overdue_working_days: 3,
            long_overdue_days: 30,
        }
    }
}

/// A task's classification on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    /// The state.
    pub state: DeadlineState,
    /// Open and due within the nearly-overdue window.
    pub nearly_overdue: bool,
    /// Open and overdue by more than the long-overdue threshold.
    pub long_overdue: bool,
}

/// Classifies a task on `today` (a local date). A task due on D is on time
/// through the whole of D.
pub fn classify(
    stage: Stage,
    due: Option<NaiveDate>,
    completed_on: Option<NaiveDate>,
    today: NaiveDate,
    policy: &DeadlinePolicy,
) -> Classification {
    let plain = |state| Classification {
        state,
        nearly_overdue: false,
        long_overdue: false,
    };
    match (stage, due) {
        (Stage::Withdrawn, _) => plain(DeadlineState::Withdrawn),
        (_, None) => plain(DeadlineState::NoDeadline),
        (Stage::Completed, Some(due)) => {
            let done = completed_on.unwrap_or(today);
            plain(if done <= due {
                DeadlineState::CompletedOnTime
            } else {
                DeadlineState::CompletedLate
            })
        }
        (_, Some(due)) if today <= due => Classification {
            state: DeadlineState::InProgressOnTime,
            nearly_overdue: policy.calendar.working_days_between(today, due)
                <= policy.nearly_overdue_working_days,
            long_overdue: false,
        },
        (_, Some(due)) => Classification {
            state: DeadlineState::InProgressOverdue,
            nearly_overdue: false,
            long_overdue: (today - due).num_days() > policy.long_overdue_days,
        },
    }
}

/// The last due date that is still "nearly overdue" on `today`: due dates
/// from `today` to this one are within the window. Working days are counted
/// after `today` up to the due date, as in [`classify`], so the window ends
/// the day before the (N+1)-th working day after `today`.
pub fn nearly_overdue_until(today: NaiveDate, policy: &DeadlinePolicy) -> NaiveDate {
    let mut day = today;
    for _ in 0..=policy.nearly_overdue_working_days {
        day = policy.calendar.next_working_day(day);
    }
    day.pred_opt().unwrap_or(day)
}

/// Due dates before this one are overdue by more than the long-overdue
/// threshold on `today`.
pub fn long_overdue_before(today: NaiveDate, policy: &DeadlinePolicy) -> NaiveDate {
    today - chrono::Duration::days(policy.long_overdue_days)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn the_two_axes_and_no_deadline() {
        let p = DeadlinePolicy::default();
        let due = Some(d(2024, 9, 30));
        assert_eq!(
            classify(
                Stage::Completed,
                due,
                Some(d(2024, 9, 30)),
                d(2024, 10, 5),
                &p
            )
            .state,
            DeadlineState::CompletedOnTime
        );
        assert_eq!(
            classify(
                Stage::Completed,
                due,
                Some(d(2024, 10, 1)),
                d(2024, 10, 5),
                &p
            )
            .state,
            DeadlineState::CompletedLate
        );
        assert_eq!(
            classify(Stage::InProgress, due, None, d(2024, 9, 30), &p).state,
            DeadlineState::InProgressOnTime
        );
        assert_eq!(
            classify(Stage::Submitted, due, None, d(2024, 10, 1), &p).state,
            DeadlineState::InProgressOverdue
        );
        assert_eq!(
            classify(Stage::Assigned, None, None, d(2024, 10, 1), &p).state,
            DeadlineState::NoDeadline
        );
        assert_eq!(
            classify(Stage::Withdrawn, due, None, d(2024, 10, 1), &p).state,
            DeadlineState::Withdrawn
        );
    }

    #[test]
    fn the_window_bounds_agree_with_the_flags() {
        let p = DeadlinePolicy {
            calendar: WorkingCalendar::new([d(2024, 9, 2), d(2024, 9, 3)]),
            ..Default::default()
        };
        for offset in 0..60 {
            let today = d(2024, 8, 20) + chrono::Duration::days(offset);
            let until = nearly_overdue_until(today, &p);
            let before = long_overdue_before(today, &p);
            for due_offset in -40..20 {
                let due = today + chrono::Duration::days(due_offset);
                let c = classify(Stage::InProgress, Some(due), None, today, &p);
                assert_eq!(
                    c.nearly_overdue,
                    due >= today && due <= until,
                    "{today} {due}"
                );
                assert_eq!(c.long_overdue, due < before, "{today} {due}");
            }
        }
    }

    #[test]
    fn nearly_and_long_overdue_flags() {
        let p = DeadlinePolicy::default();
        // Thursday 26/9 to Monday 30/9 is two working days.
        let near = classify(
            Stage::InProgress,
            Some(d(2024, 9, 30)),
            None,
            d(2024, 9, 26),
            &p,
        );
        assert!(near.nearly_overdue);
        let far = classify(
            Stage::InProgress,
            Some(d(2024, 9, 30)),
            None,
            d(2024, 9, 20),
            &p,
        );
        assert!(!far.nearly_overdue);
        let long = classify(
            Stage::InProgress,
            Some(d(2024, 9, 30)),
            None,
            d(2024, 11, 1),
            &p,
        );
        assert!(long.long_overdue);
        let recent = classify(
            Stage::InProgress,
            Some(d(2024, 9, 30)),
            None,
            d(2024, 10, 30),
            &p,
        );
        assert!(!recent.long_overdue);
    }
}
