//! Recurring duties ("báo cáo trước ngày 15 hằng tháng"): the duty is a task
//! with a recurrence; each period gets an occurrence, a task of its own with
//! its own due date and stage.

use chrono::NaiveDate;
use dondoc_time::Recurrence;

/// One occurrence: assigned on `assign_date`, due on `due_date`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    /// The day after the previous occurrence's due date (the duty's own
    /// assignment date for the first).
    pub assign_date: NaiveDate,
    /// Its due date.
    pub due_date: NaiveDate,
}

/// Every occurrence of a duty assigned on `assigned`, up to and including
/// the one of the current period (the first due on or after `today`).
/// Nothing before the duty was assigned.
pub fn occurrences(rule: Recurrence, assigned: NaiveDate, today: NaiveDate) -> Vec<Occurrence> {
    let mut out = Vec::new();
    let mut from = assigned;
    loop {
        let due = rule.next_on_or_after(from);
        out.push(Occurrence {
            assign_date: from,
            due_date: due,
        });
        if due >= today {
            return out;
        }
        match due.succ_opt() {
            Some(next) => from = next,
            None => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn one_occurrence_per_month_up_to_the_current_period() {
        let rule = Recurrence::Monthly { day: 15 };
        let first = occurrences(rule, d(2024, 9, 2), d(2024, 9, 2));
        assert_eq!(
            first,
            [Occurrence {
                assign_date: d(2024, 9, 2),
                due_date: d(2024, 9, 15)
            }]
        );
        // The day after a due date, the next period's occurrence exists.
        let later = occurrences(rule, d(2024, 9, 2), d(2024, 9, 16));
        assert_eq!(later.len(), 2);
        assert_eq!(later[1].assign_date, d(2024, 9, 16));
        assert_eq!(later[1].due_date, d(2024, 10, 15));
        // On a due date, that period's occurrence is the last.
        let on = occurrences(rule, d(2024, 9, 2), d(2024, 11, 15));
        assert_eq!(on.last().unwrap().due_date, d(2024, 11, 15));
        assert_eq!(on.len(), 3);
    }

    #[test]
    fn quarterly_and_yearly() {
        let q = Recurrence::Quarterly {
            month_of_quarter: 3,
            day: 20,
        };
        let due: Vec<_> = occurrences(q, d(2024, 1, 10), d(2024, 10, 1))
            .into_iter()
            .map(|o| o.due_date)
            .collect();
        assert_eq!(
            due,
            [
                d(2024, 3, 20),
                d(2024, 6, 20),
                d(2024, 9, 20),
                d(2024, 12, 20)
            ]
        );
        let y = Recurrence::Yearly { month: 12, day: 25 };
        assert_eq!(occurrences(y, d(2024, 12, 26), d(2025, 1, 1)).len(), 1);
    }
}
