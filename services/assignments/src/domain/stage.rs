//! The task workflow and its transitions.

use dondoc_errors::Error;

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Assigned, not started.
    Assigned,
    /// Being worked on.
    InProgress,
    /// Submitted, awaiting the office.
    Submitted,
    /// Confirmed complete.
    Completed,
    /// Refused by the lead agency.
    Refused,
    /// Withdrawn by the office.
    Withdrawn,
}

impl Stage {
    /// Every stage.
    pub const ALL: [Stage; 6] = [
        Stage::Assigned,
        Stage::InProgress,
        Stage::Submitted,
        Stage::Completed,
        Stage::Refused,
        Stage::Withdrawn,
    ];

    /// Stored and filter form.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Assigned => "ASSIGNED",
            Stage::InProgress => "IN_PROGRESS",
            Stage::Submitted => "SUBMITTED",
            Stage::Completed => "COMPLETED",
            Stage::Refused => "REFUSED",
            Stage::Withdrawn => "WITHDRAWN",
        }
    }

    /// Reads the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// True while the task still needs work.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Stage::Assigned | Stage::InProgress | Stage::Submitted | Stage::Refused
        )
    }
}

/// A move in the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The lead starts.
    Start,
    /// The lead submits completion.
    Submit,
    /// The office confirms.
    Confirm,
    /// The office returns a submission.
    Return,
    /// The lead refuses.
    Refuse,
    /// The office reassigns.
    Reassign,
    /// The office withdraws.
    Withdraw,
    /// The agency was merged: the task moves to the successor.
    Transfer,
}

impl Transition {
    /// The history action name.
    pub fn action(self) -> &'static str {
        match self {
            Transition::Start => "STARTED",
            Transition::Submit => "SUBMITTED",
            Transition::Confirm => "COMPLETED",
            Transition::Return => "RETURNED",
            Transition::Refuse => "REFUSED",
            Transition::Reassign => "REASSIGNED",
            Transition::Withdraw => "WITHDRAWN",
            Transition::Transfer => "TRANSFERRED",
        }
    }

    /// True when the transition must carry a reason.
    pub fn needs_reason(self) -> bool {
        matches!(
            self,
            Transition::Return | Transition::Refuse | Transition::Withdraw
        )
    }
}

/// The stage after `transition` from `from`, or FAILED_PRECONDITION.
pub fn next(from: Stage, transition: Transition) -> Result<Stage, Error> {
    use Stage::*;
    use Transition::*;
    let to = match (from, transition) {
        (Assigned, Start) => Some(InProgress),
        // Submitting straight from ASSIGNED is allowed: small tasks are done at once.
        (Assigned | InProgress, Submit) => Some(Submitted),
        (Submitted, Confirm) => Some(Completed),
        (Submitted, Return) => Some(InProgress),
        (Assigned | InProgress, Refuse) => Some(Refused),
        (Assigned | InProgress | Refused, Reassign) => Some(Assigned),
        (Assigned | InProgress | Submitted | Refused, Withdraw) => Some(Withdrawn),
        (stage, Transfer) if stage.is_open() => Some(stage),
        _ => None,
    };
    to.ok_or_else(|| {
        Error::precondition(
            "INVALID_TRANSITION",
            format!(
                "a task that is {} cannot be {}",
                from.as_str().to_lowercase().replace('_', " "),
                transition.action().to_lowercase()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_and_a_return() {
        let s = next(Stage::Assigned, Transition::Start).unwrap();
        let s = next(s, Transition::Submit).unwrap();
        assert_eq!(next(s, Transition::Return).unwrap(), Stage::InProgress);
        assert_eq!(next(s, Transition::Confirm).unwrap(), Stage::Completed);
    }

    #[test]
    fn every_invalid_transition_is_a_failed_precondition() {
        let valid: &[(Stage, Transition)] = &[
            (Stage::Assigned, Transition::Start),
            (Stage::Assigned, Transition::Submit),
            (Stage::InProgress, Transition::Submit),
            (Stage::Submitted, Transition::Confirm),
            (Stage::Submitted, Transition::Return),
            (Stage::Assigned, Transition::Refuse),
            (Stage::InProgress, Transition::Refuse),
            (Stage::Assigned, Transition::Reassign),
            (Stage::InProgress, Transition::Reassign),
            (Stage::Refused, Transition::Reassign),
            (Stage::Assigned, Transition::Withdraw),
            (Stage::InProgress, Transition::Withdraw),
            (Stage::Submitted, Transition::Withdraw),
            (Stage::Refused, Transition::Withdraw),
            (Stage::Assigned, Transition::Transfer),
            (Stage::InProgress, Transition::Transfer),
            (Stage::Submitted, Transition::Transfer),
            (Stage::Refused, Transition::Transfer),
        ];
        use Transition::*;
        for stage in Stage::ALL {
            for t in [
                Start, Submit, Confirm, Return, Refuse, Reassign, Withdraw, Transfer,
            ] {
                let result = next(stage, t);
                if valid.contains(&(stage, t)) {
                    assert!(result.is_ok(), "{stage:?} {t:?}");
                } else {
                    assert!(
                        matches!(
                            result,
                            Err(Error::FailedPrecondition {
                                reason: "INVALID_TRANSITION",
                                ..
                            })
                        ),
                        "{stage:?} {t:?}"
                    );
                }
            }
        }
    }
}
