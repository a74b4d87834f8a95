//! The weekly digest: on Monday at 08:00 (the first working day of the week
//! when Monday is a holiday), each agency with open tasks hears what is due
//! in the coming two weeks and what is overdue, in Vietnamese.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use dondoc_time::{WorkingCalendar, local_date, local_instant};

use crate::domain::message::{Message, vn_date};

/// How far ahead the digest looks.
pub const HORIZON_DAYS: i64 = 14;

/// The next digest after `now`: its week (the Monday) and when it goes out.
pub fn upcoming(
    calendar: &WorkingCalendar,
    send_at: NaiveTime,
    now: DateTime<Utc>,
) -> (NaiveDate, DateTime<Utc>) {
    let today = local_date(now);
    let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let fire = |monday: NaiveDate| {
        let day = if calendar.is_working_day(monday) {
            monday
        } else {
            calendar.next_working_day(monday)
        };
        local_instant(day, send_at)
    };
    let this_week = fire(monday);
    if this_week > now {
        (monday, this_week)
    } else {
        let next = monday + Duration::days(7);
        (next, fire(next))
    }
}

/// One task in a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestTask {
    /// Title.
    pub title: String,
    /// Directive number, or empty.
    pub directive_number: String,
    /// Due date.
    pub due: NaiveDate,
    /// Key task.
    pub key_task: bool,
    /// The agency leads it (else coordinates).
    pub as_lead: bool,
}

fn line(task: &DigestTask, today: NaiveDate) -> String {
    let source = if task.directive_number.is_empty() {
        String::new()
    } else {
        format!(" (văn bản số {})", task.directive_number)
    };
    let role = if task.as_lead {
        "chủ trì"
    } else {
        "phối hợp"
    };
    let key = if task.key_task { " [trọng tâm]" } else { "" };
    let when = if task.due < today {
        format!(
            "hạn {}, quá hạn {} ngày",
            vn_date(task.due),
            (today - task.due).num_days()
        )
    } else {
        format!("hạn {}", vn_date(task.due))
    };
    format!("- {}{source}{key}: {when}; đơn vị {role}.", task.title)
}

/// The digest of an agency for the week of `today`; `None` when it has
/// nothing due soon and nothing overdue.
pub fn weekly(
    agency: &str,
    today: NaiveDate,
    due_soon: &[DigestTask],
    overdue: &[DigestTask],
) -> Option<Message> {
    if due_soon.is_empty() && overdue.is_empty() {
        return None;
    }
    let mut body = format!(
        "Tổng hợp nhiệm vụ của {agency} tuần từ ngày {}: {} nhiệm vụ đến hạn trong {HORIZON_DAYS} ngày tới, {} nhiệm vụ quá hạn.",
        vn_date(today),
        due_soon.len(),
        overdue.len()
    );
    if !overdue.is_empty() {
        body.push_str("\n\nNhiệm vụ quá hạn:");
        for task in overdue {
            body.push('\n');
            body.push_str(&line(task, today));
        }
    }
    if !due_soon.is_empty() {
        body.push_str(&format!(
            "\n\nNhiệm vụ đến hạn trong {HORIZON_DAYS} ngày tới:"
        ));
        for task in due_soon {
            body.push('\n');
            body.push_str(&line(task, today));
        }
    }
    body.push_str("\n\nĐề nghị đơn vị khẩn trương thực hiện và báo cáo kết quả đúng hạn.");
    Some(Message {
        title: format!(
            "Tổng hợp tuần {}: {} sắp đến hạn, {} quá hạn",
            vn_date(today),
            due_soon.len(),
            overdue.len()
        ),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn the_digest_goes_out_on_monday_at_eight() {
        let cal = WorkingCalendar::default();
        let eight = NaiveTime::from_hms_opt(8, 0, 0).unwrap();
        // Wednesday 4/9/2024: next Monday 9/9 at 08:00 local (01:00 UTC).
        let now = Utc.with_ymd_and_hms(2024, 9, 4, 3, 0, 0).unwrap();
        let (week, at) = upcoming(&cal, eight, now);
        assert_eq!(week, d(2024, 9, 9));
        assert_eq!(at, Utc.with_ymd_and_hms(2024, 9, 9, 1, 0, 0).unwrap());
        // Monday 07:00 local: this very morning.
        let early = Utc.with_ymd_and_hms(2024, 9, 9, 0, 0, 0).unwrap();
        assert_eq!(upcoming(&cal, eight, early).0, d(2024, 9, 9));
        // A holiday Monday moves it to Tuesday.
        let holiday = WorkingCalendar::new([d(2024, 9, 2)]);
        let (week, at) = upcoming(
            &holiday,
            eight,
            Utc.with_ymd_and_hms(2024, 8, 30, 3, 0, 0).unwrap(),
        );
        assert_eq!(week, d(2024, 9, 2));
        assert_eq!(at, Utc.with_ymd_and_hms(2024, 9, 3, 1, 0, 0).unwrap());
    }

    #[test]
    fn the_digest_lists_overdue_and_coming_tasks_in_vietnamese() {
        let today = d(2024, 9, 9);
        let soon = [DigestTask {
            title: "Trình HĐND tỉnh Nghị quyết".into(),
            directive_number: "534/TB-UBND".into(),
            due: d(2024, 9, 20),
            key_task: true,
            as_lead: true,
        }];
        let late = [DigestTask {
            title: "Báo cáo tình hình lao động".into(),
            directive_number: String::new(),
            due: d(2024, 9, 2),
            key_task: false,
            as_lead: false,
        }];
        let m = weekly("Sở Tài chính", today, &soon, &late).unwrap();
        assert_eq!(m.title, "Tổng hợp tuần 9/9/2024: 1 sắp đến hạn, 1 quá hạn");
        assert!(m.body.contains("Sở Tài chính"), "{}", m.body);
        assert!(
            m.body
                .contains("(văn bản số 534/TB-UBND) [trọng tâm]: hạn 20/9/2024"),
            "{}",
            m.body
        );
        assert!(
            m.body.contains("quá hạn 7 ngày; đơn vị phối hợp"),
            "{}",
            m.body
        );
        assert!(weekly("Sở Tài chính", today, &[], &[]).is_none());
    }
}
