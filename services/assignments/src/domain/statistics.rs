//! Report figures: counts per deadline state, rates, the per-agency
//! breakdown's order and the Vietnamese report sentence.

use std::cmp::Ordering;

use dondoc_errors::Error;

/// Counts of tasks per deadline state (withdrawn tasks are not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Tasks received.
    pub total: i64,
    /// Completed on or before the due date.
    pub completed_on_time: i64,
    /// Completed after it.
    pub completed_late: i64,
    /// Open, not past due.
    pub in_progress_on_time: i64,
    /// Open, past due.
    pub in_progress_overdue: i64,
    /// No due date (open or done).
    pub no_deadline: i64,
    /// Open and due within the nearly-overdue window.
    pub nearly_overdue: i64,
    /// Open and overdue by more than the long-overdue threshold.
    pub overdue_over_30_days: i64,
    /// Completed, on time or not (with or without a due date).
    pub completed: i64,
}

impl Counts {
    /// Not completed.
    pub fn in_progress(&self) -> i64 {
        self.total - self.completed
    }

    /// completed / total, 0 to 1 (0 when there is nothing).
    pub fn completion_rate(&self) -> f64 {
        ratio(self.completed, self.total)
    }

    /// completed on time / completed, 0 to 1 (0 when nothing is completed).
    pub fn on_time_rate(&self) -> f64 {
        ratio(self.completed_on_time, self.completed)
    }
}

fn ratio(a: i64, b: i64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// A field the per-agency breakdown may be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    /// Tasks received.
    Total,
    /// Completed on time.
    CompletedOnTime,
    /// Completed late.
    CompletedLate,
    /// Open within the deadline.
    InProgressOnTime,
    /// Open and overdue.
    InProgressOverdue,
    /// No deadline.
    NoDeadline,
    /// Nearly overdue.
    NearlyOverdue,
    /// Overdue by more than 30 days.
    OverdueOver30Days,
    /// Completed.
    Completed,
    /// Not completed.
    InProgress,
    /// completed / total.
    CompletionRate,
    /// completed on time / completed.
    OnTimeRate,
    /// The agency's name.
    Agency,
}

/// How the breakdown is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortOrder {
    /// By what.
    pub field: SortField,
    /// Largest first.
    pub descending: bool,
}

const SORT_FIELDS: [(&str, SortField); 13] = [
    ("total", SortField::Total),
    ("completed_on_time", SortField::CompletedOnTime),
    ("completed_late", SortField::CompletedLate),
    ("in_progress_on_time", SortField::InProgressOnTime),
    ("in_progress_overdue", SortField::InProgressOverdue),
    ("no_deadline", SortField::NoDeadline),
    ("nearly_overdue", SortField::NearlyOverdue),
    ("overdue_over_30_days", SortField::OverdueOver30Days),
    ("completed", SortField::Completed),
    ("in_progress", SortField::InProgress),
    ("completion_rate", SortField::CompletionRate),
    ("on_time_rate", SortField::OnTimeRate),
    ("agency", SortField::Agency),
];

/// Reads `order_by`: a field name, optionally followed by `desc` or `asc`.
/// Empty sorts by total, largest first. INVALID_ARGUMENT on `order_by`.
pub fn parse_order_by(text: &str) -> Result<SortOrder, Error> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (name, descending) = match words.as_slice() {
        [] => {
            return Ok(SortOrder {
                field: SortField::Total,
                descending: true,
            });
        }
        [name] => (*name, false),
        [name, dir] if dir.eq_ignore_ascii_case("desc") => (*name, true),
        [name, dir] if dir.eq_ignore_ascii_case("asc") => (*name, false),
        _ => {
            return Err(Error::invalid(
                "order_by",
                format!("expected a field optionally followed by \"desc\", not {text:?}"),
            ));
        }
    };
    let field = SORT_FIELDS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .ok_or_else(|| {
            Error::invalid(
                "order_by",
                format!(
                    "unknown field {name:?}; sortable fields are {}",
                    SORT_FIELDS.map(|(n, _)| n).join(", ")
                ),
            )
        })?;
    Ok(SortOrder { field, descending })
}

fn key(counts: &Counts, field: SortField) -> f64 {
    match field {
        SortField::Total => counts.total as f64,
        SortField::CompletedOnTime => counts.completed_on_time as f64,
        SortField::CompletedLate => counts.completed_late as f64,
        SortField::InProgressOnTime => counts.in_progress_on_time as f64,
        SortField::InProgressOverdue => counts.in_progress_overdue as f64,
        SortField::NoDeadline => counts.no_deadline as f64,
        SortField::NearlyOverdue => counts.nearly_overdue as f64,
        SortField::OverdueOver30Days => counts.overdue_over_30_days as f64,
        SortField::Completed => counts.completed as f64,
        SortField::InProgress => counts.in_progress() as f64,
        SortField::CompletionRate => counts.completion_rate(),
        SortField::OnTimeRate => counts.on_time_rate(),
        SortField::Agency => 0.0,
    }
}

/// Sorts a breakdown; ties (and `agency`) by agency name.
pub fn sort_breakdown(rows: &mut [(String, Counts)], order: SortOrder) {
    rows.sort_by(|(a_name, a), (b_name, b)| {
        let by_value = key(a, order.field)
            .partial_cmp(&key(b, order.field))
            .unwrap_or(Ordering::Equal);
        let by_value = if order.descending {
            by_value.reverse()
        } else {
            by_value
        };
        let by_name = if order.field == SortField::Agency && order.descending {
            b_name.cmp(a_name)
        } else {
            a_name.cmp(b_name)
        };
        by_value.then(by_name)
    });
}

/// A number as Vietnamese reports write it: 1.876.
pub fn vietnamese_number(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// The report sentence: "Tổng số 58 nhiệm vụ được giao, đã hoàn thành đúng
/// hạn 36 nhiệm vụ, đang thực hiện 22 nhiệm vụ; trong 7 nhiệm vụ trọng tâm,
/// đã hoàn thành 1 nhiệm vụ". Late completions, overdue work and tasks
/// without a deadline are added only when there are some; the key-task
/// clause only when there are key tasks.
pub fn summary(all: &Counts, key: &Counts) -> String {
    let n = vietnamese_number;
    let mut text = format!(
        "Tổng số {} nhiệm vụ được giao, đã hoàn thành đúng hạn {} nhiệm vụ",
        n(all.total),
        n(all.completed_on_time)
    );
    if all.completed_late > 0 {
        text.push_str(&format!(
            ", hoàn thành quá hạn {} nhiệm vụ",
            n(all.completed_late)
        ));
    }
    let done_without_deadline = all.completed - all.completed_on_time - all.completed_late;
    if done_without_deadline > 0 {
        text.push_str(&format!(
            ", hoàn thành (không có thời hạn) {} nhiệm vụ",
            n(done_without_deadline)
        ));
    }
    text.push_str(&format!(
        ", đang thực hiện {} nhiệm vụ",
        n(all.in_progress())
    ));
    if all.in_progress_overdue > 0 {
        text.push_str(&format!(
            " (trong đó quá hạn {} nhiệm vụ)",
            n(all.in_progress_overdue)
        ));
    }
    if key.total > 0 {
        text.push_str(&format!(
            "; trong {} nhiệm vụ trọng tâm, đã hoàn thành {} nhiệm vụ",
            n(key.total),
            n(key.completed)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(total: i64, on_time: i64, late: i64, overdue: i64) -> Counts {
        Counts {
            total,
            completed_on_time: on_time,
            completed_late: late,
            completed: on_time + late,
            in_progress_overdue: overdue,
            in_progress_on_time: total - on_time - late - overdue,
            ..Default::default()
        }
    }

    #[test]
    fn the_classic_report_line() {
        let all = counts(58, 36, 0, 0);
        let key = counts(7, 1, 0, 0);
        assert_eq!(
            summary(&all, &key),
            "Tổng số 58 nhiệm vụ được giao, đã hoàn thành đúng hạn 36 nhiệm vụ, \
             đang thực hiện 22 nhiệm vụ; trong 7 nhiệm vụ trọng tâm, đã hoàn thành 1 nhiệm vụ"
        );
        assert!((all.completion_rate() - 36.0 / 58.0).abs() < 1e-9);
        assert_eq!(all.on_time_rate(), 1.0);
    }

    #[test]
    fn late_and_overdue_are_named_when_there_are_some() {
        let text = summary(&counts(1956, 1000, 5, 3), &Counts::default());
        assert_eq!(
            text,
            "Tổng số 1.956 nhiệm vụ được giao, đã hoàn thành đúng hạn 1.000 nhiệm vụ, \
             hoàn thành quá hạn 5 nhiệm vụ, đang thực hiện 951 nhiệm vụ (trong đó quá hạn 3 nhiệm vụ)"
        );
        assert_eq!(Counts::default().completion_rate(), 0.0);
        assert_eq!(vietnamese_number(1_234_567), "1.234.567");
        assert_eq!(vietnamese_number(58), "58");
    }

    #[test]
    fn breakdowns_sort_by_any_field() {
        let mut rows = vec![
            ("b".to_string(), counts(10, 5, 0, 1)),
            ("a".to_string(), counts(10, 8, 0, 0)),
            ("c".to_string(), counts(4, 4, 0, 0)),
        ];
        sort_breakdown(&mut rows, parse_order_by("").unwrap());
        assert_eq!(
            rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        sort_breakdown(&mut rows, parse_order_by("completion_rate desc").unwrap());
        assert_eq!(
            rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
            ["c", "a", "b"]
        );
        sort_breakdown(&mut rows, parse_order_by("in_progress_overdue").unwrap());
        assert_eq!(rows[2].0, "b");
        sort_breakdown(&mut rows, parse_order_by("agency desc").unwrap());
        assert_eq!(
            rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
            ["c", "b", "a"]
        );
        assert!(parse_order_by("colour").is_err());
        assert!(parse_order_by("total sideways").is_err());
    }
}
