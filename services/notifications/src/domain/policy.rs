//! The reminder policy: when each deadline reminder goes out.
//!
//! By default: 7 and 3 working days before the due date, on the due day, on
//! the first working day after it, then every 7 days while overdue; key
//! tasks also 1 working day before. Reminders go out at 08:00
//! Asia/Ho_Chi_Minh on working days: one that would fall on a weekend or a
//! holiday moves to the previous working day.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use dondoc_time::{WorkingCalendar, local_instant};

/// What a reminder says about the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReminderKind {
    /// Due in some working days.
    DueSoon,
    /// Due today.
    DueToday,
    /// Past due.
    Overdue,
}

impl ReminderKind {
    /// Notification kind name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ReminderKind::DueSoon => "DUE_SOON",
            ReminderKind::DueToday => "DUE_TODAY",
            ReminderKind::Overdue => "OVERDUE",
        }
    }
}

/// One scheduled reminder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reminder {
    /// Dedupe key within a task and deadline version, e.g. "due_soon_3".
    pub key: String,
    /// What it says.
    pub kind: ReminderKind,
    /// When it goes out.
    pub fire_at: DateTime<Utc>,
}

/// The policy, from configuration.
#[derive(Debug, Clone)]
pub struct ReminderPolicy {
    /// Working days before the due date.
    pub before: Vec<u32>,
    /// Extra working days before, for key tasks.
    pub key_task_before: Vec<u32>,
    /// Remind on the due day.
    pub on_due_day: bool,
    /// Remind on the first working day after the due date.
    pub first_day_overdue: bool,
    /// Then every this many days while overdue (0: never).
    pub overdue_every_days: u32,
    /// Local time of day reminders go out.
    pub send_at: NaiveTime,
    /// Working days.
    pub calendar: WorkingCalendar,
}

impl Default for ReminderPolicy {
    fn default() -> Self {
        Self {
            before: vec![7, 3],
            key_task_before: vec![1],
            on_due_day: true,
            first_day_overdue: true,
            overdue_every_days: 7,
            send_at: NaiveTime::from_hms_opt(8, 0, 0).unwrap_or(NaiveTime::MIN),
            calendar: WorkingCalendar::default(),
        }
    }
}

impl ReminderPolicy {
    fn at(&self, date: NaiveDate) -> DateTime<Utc> {
        local_instant(date, self.send_at)
    }

    /// Every reminder of a deadline, in time order, whatever `now` is.
    pub fn schedule(&self, due: NaiveDate, key_task: bool) -> Vec<Reminder> {
        let mut reminders = Vec::new();
        let mut before: Vec<u32> = self.before.clone();
        if key_task {
            before.extend(self.key_task_before.iter().copied());
        }
        before.sort_unstable_by(|a, b| b.cmp(a));
        before.dedup();
        for days in before {
            reminders.push(Reminder {
                key: format!("due_soon_{days}"),
                kind: ReminderKind::DueSoon,
                fire_at: self.at(self.calendar.working_days_before(due, days)),
            });
        }
        if self.on_due_day {
            reminders.push(Reminder {
                key: "due_today".into(),
                kind: ReminderKind::DueToday,
                fire_at: self.at(self.calendar.on_or_before(due)),
            });
        }
        if self.first_day_overdue {
            reminders.push(Reminder {
                key: "overdue_1".into(),
                kind: ReminderKind::Overdue,
                fire_at: self.at(self.calendar.next_working_day(due)),
            });
        }
        // Two reminders on one day (e.g. due on a Monday after a long
        // holiday) would say the same thing twice: keep the later-stage one.
        reminders.dedup_by(|later, earlier| {
            if later.fire_at == earlier.fire_at {
                *earlier = later.clone();
                true
            } else {
                false
            }
        });
        reminders
    }

    /// The overdue reminder that follows one that went out on `fired_on`
    /// (local date), `n` days after the due date; `None` when the policy
    /// does not repeat.
    pub fn next_overdue(&self, due: NaiveDate, fired_on: NaiveDate) -> Option<Reminder> {
        if self.overdue_every_days == 0 {
            return None;
        }
        let target = fired_on + Duration::days(i64::from(self.overdue_every_days));
        let date = self
            .calendar
            .on_or_before(target)
            .max(fired_on + Duration::days(1));
        let date = if self.calendar.is_working_day(date) {
            date
        } else {
            self.calendar.next_working_day(date)
        };
        Some(Reminder {
            key: format!("overdue_{}", (date - due).num_days()),
            kind: ReminderKind::Overdue,
            fire_at: self.at(date),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn at8(y: i32, m: u32, day: u32) -> DateTime<Utc> {
        // 08:00 in UTC+7 is 01:00 UTC.
        Utc.with_ymd_and_hms(y, m, day, 1, 0, 0).unwrap()
    }

    #[test]
    fn the_default_schedule_of_a_friday_deadline() {
        let policy = ReminderPolicy::default();
        let due = d(2024, 9, 27); // Friday
        let keys: Vec<(String, DateTime<Utc>)> = policy
            .schedule(due, false)
            .into_iter()
            .map(|r| (r.key, r.fire_at))
            .collect();
        assert_eq!(
            keys,
            [
                ("due_soon_7".to_string(), at8(2024, 9, 18)),
                ("due_soon_3".to_string(), at8(2024, 9, 24)),
                ("due_today".to_string(), at8(2024, 9, 27)),
                ("overdue_1".to_string(), at8(2024, 9, 30)),
            ]
        );
        let key: Vec<String> = policy
            .schedule(due, true)
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(
            key,
            [
                "due_soon_7",
                "due_soon_3",
                "due_soon_1",
                "due_today",
                "overdue_1"
            ]
        );
    }

    #[test]
    fn weekends_and_holidays_move_reminders_to_the_previous_working_day() {
        let policy = ReminderPolicy {
            calendar: WorkingCalendar::new([d(2024, 9, 2), d(2024, 9, 3)]),
            ..Default::default()
        };
        // Due Saturday 7/9: due-day reminder on Friday 6/9; 3 working days
        // before skips the National Day holidays.
        let reminders = policy.schedule(d(2024, 9, 7), false);
        let today = reminders.iter().find(|r| r.key == "due_today").unwrap();
        assert_eq!(today.fire_at, at8(2024, 9, 6));
        let soon = reminders.iter().find(|r| r.key == "due_soon_3").unwrap();
        assert_eq!(soon.fire_at, at8(2024, 8, 30));
        let overdue = reminders.iter().find(|r| r.key == "overdue_1").unwrap();
        assert_eq!(overdue.fire_at, at8(2024, 9, 9));
    }

    #[test]
    fn overdue_reminders_repeat_weekly() {
        let policy = ReminderPolicy::default();
        let next = policy.next_overdue(d(2024, 9, 27), d(2024, 9, 30)).unwrap();
        assert_eq!(next.fire_at, at8(2024, 10, 7));
        assert_eq!(next.key, "overdue_10");
        let never = ReminderPolicy {
            overdue_every_days: 0,
            ..Default::default()
        };
        assert!(never.next_overdue(d(2024, 9, 27), d(2024, 9, 30)).is_none());
    }
}
