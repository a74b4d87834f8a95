//! Time for dondoc: an injected [`Clock`] and Vietnamese calendar dates.
//!
//! Every deadline rule reads time from a [`Clock`] handed to it, never from the
//! system directly, so tests move a manual clock instead of sleeping.
//! Dates are calendar dates in Asia/Ho_Chi_Minh (UTC+7, no daylight saving):
//! a task due on 30/9/2024 is due until the end of that local day.

#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use tokio::sync::watch;

/// Asia/Ho_Chi_Minh: UTC+7 all year round.
pub fn vietnam() -> FixedOffset {
    // 7 hours is a valid offset; east_opt only fails beyond ±24 h.
    FixedOffset::east_opt(7 * 3600).expect("UTC+7 is a valid offset")
}

/// The local calendar date of an instant.
pub fn local_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&vietnam()).date_naive()
}

/// The instant a local date and time designate.
pub fn local_instant(date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    vietnam()
        .from_local_datetime(&date.and_time(time))
        .single()
        .expect("a fixed offset maps every local time to exactly one instant")
        .with_timezone(&Utc)
}

/// The first instant after a local day: a deadline on `date` has passed from here on.
pub fn end_of_day(date: NaiveDate) -> DateTime<Utc> {
    local_instant(date + Duration::days(1), NaiveTime::MIN)
}

/// Where "now" comes from. Cheap to clone; clones share the same time.
#[derive(Clone, Debug)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
enum Inner {
    System,
    Manual {
        now: Mutex<DateTime<Utc>>,
        changed: watch::Sender<DateTime<Utc>>,
    },
}

impl Clock {
    /// The machine's clock.
    pub fn system() -> Self {
        Self {
            inner: Arc::new(Inner::System),
        }
    }

    /// A clock that stands still until [`Clock::advance`] or [`Clock::set`] moves it.
    pub fn manual(start: DateTime<Utc>) -> Self {
        let (changed, _) = watch::channel(start);
        Self {
            inner: Arc::new(Inner::Manual {
                now: Mutex::new(start),
                changed,
            }),
        }
    }

    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        match &*self.inner {
            Inner::System => Utc::now(),
            Inner::Manual { now, .. } => *now.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Today's date in Asia/Ho_Chi_Minh.
    pub fn today(&self) -> NaiveDate {
        local_date(self.now())
    }

    /// True for a manual clock.
    pub fn is_manual(&self) -> bool {
        matches!(&*self.inner, Inner::Manual { .. })
    }

    /// Moves a manual clock forward. Has no effect on the system clock.
    pub fn advance(&self, by: Duration) {
        if let Inner::Manual { now, .. } = &*self.inner {
            let next = *now.lock().unwrap_or_else(|e| e.into_inner()) + by;
            self.set(next);
        }
    }

    /// Sets a manual clock. Has no effect on the system clock.
    pub fn set(&self, to: DateTime<Utc>) {
        if let Inner::Manual { now, changed } = &*self.inner {
            *now.lock().unwrap_or_else(|e| e.into_inner()) = to;
            changed.send_replace(to);
        }
    }

    /// A handle that reports moves of a manual clock. Take it before the work
    /// it guards: a move that happens in between is still reported.
    pub fn changes(&self) -> ClockChanges {
        ClockChanges {
            rx: match &*self.inner {
                Inner::System => None,
                Inner::Manual { changed, .. } => Some(changed.subscribe()),
            },
        }
    }
}

/// Reports moves of a manual clock; see [`Clock::changes`].
#[derive(Debug)]
pub struct ClockChanges {
    rx: Option<watch::Receiver<DateTime<Utc>>>,
}

impl ClockChanges {
    /// Resolves when a manual clock has moved since the last call; never for
    /// the system clock, whose waiters rely on their own timers.
    pub async fn changed(&mut self) {
        match &mut self.rx {
            None => std::future::pending().await,
            Some(rx) => {
                if rx.changed().await.is_err() {
                    // The clock is gone: nothing will ever move it again.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_dates_follow_utc_plus_seven() {
        let late_evening_utc = Utc.with_ymd_and_hms(2024, 9, 29, 17, 0, 0).unwrap();
        assert_eq!(
            local_date(late_evening_utc),
            NaiveDate::from_ymd_opt(2024, 9, 30).unwrap()
        );
    }

    #[test]
    fn a_day_ends_at_local_midnight() {
        let due = NaiveDate::from_ymd_opt(2024, 9, 30).unwrap();
        assert_eq!(
            end_of_day(due),
            Utc.with_ymd_and_hms(2024, 9, 30, 17, 0, 0).unwrap()
        );
    }

    #[tokio::test]
    async fn a_manual_clock_moves_only_when_told_and_wakes_waiters() {
        let start = Utc.with_ymd_and_hms(2024, 9, 1, 0, 0, 0).unwrap();
        let clock = Clock::manual(start);
        assert_eq!(clock.now(), start);
        let mut changes = clock.changes();
        let waiter = tokio::spawn(async move { changes.changed().await });
        clock.advance(Duration::days(3));
        waiter.await.unwrap();
        assert_eq!(clock.now(), start + Duration::days(3));
    }
}

/// A repeating deadline: "trước ngày 15 hằng tháng", "trước ngày 25/12 hàng năm".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recurrence {
    /// Due on `day` of every month (clamped to the month's length).
    Monthly {
        /// 1 to 31.
        day: u32,
    },
    /// Due on `day` of the `month_of_quarter`-th month of every quarter.
    Quarterly {
        /// 1 to 3.
        month_of_quarter: u32,
        /// 1 to 31.
        day: u32,
    },
    /// Due on `day`/`month` every year.
    Yearly {
        /// 1 to 12.
        month: u32,
        /// 1 to 31.
        day: u32,
    },
}

fn clamped(year: i32, month: u32, day: u32) -> NaiveDate {
    (1..=day)
        .rev()
        .find_map(|d| NaiveDate::from_ymd_opt(year, month, d))
        .unwrap_or(NaiveDate::MIN)
}

impl Recurrence {
    /// Checks the rule's numbers; the error names the offending part.
    pub fn validate(&self) -> Result<(), &'static str> {
        let ok = match *self {
            Recurrence::Monthly { day } => (1..=31).contains(&day),
            Recurrence::Quarterly {
                month_of_quarter,
                day,
            } => (1..=3).contains(&month_of_quarter) && (1..=31).contains(&day),
            Recurrence::Yearly { month, day } => {
                (1..=12).contains(&month) && NaiveDate::from_ymd_opt(2024, month, day).is_some()
            }
        };
        if ok {
            Ok(())
        } else {
            Err("the recurrence's month or day is out of range")
        }
    }

    /// The first due date on or after `from`.
    pub fn next_on_or_after(&self, from: NaiveDate) -> NaiveDate {
        use chrono::Datelike;
        let (year, month) = (from.year(), from.month());
        let candidates: Vec<NaiveDate> = match *self {
            Recurrence::Monthly { day } => (0..2)
                .map(|k| {
                    let m0 = month - 1 + k;
                    clamped(year + (m0 / 12) as i32, m0 % 12 + 1, day)
                })
                .collect(),
            Recurrence::Quarterly {
                month_of_quarter,
                day,
            } => {
                let quarter_start = (month - 1) / 3 * 3;
                (0..2)
                    .map(|k| {
                        let m0 = quarter_start + k * 3 + month_of_quarter - 1;
                        clamped(year + (m0 / 12) as i32, m0 % 12 + 1, day)
                    })
                    .collect()
            }
            Recurrence::Yearly { month: m, day } => {
                vec![clamped(year, m, day), clamped(year + 1, m, day)]
            }
        };
        candidates.into_iter().find(|d| *d >= from).unwrap_or(from)
    }
}

#[cfg(test)]
mod recurrence_tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn monthly_duties_fall_on_their_day_or_the_month_end() {
        let rule = Recurrence::Monthly { day: 15 };
        assert_eq!(rule.next_on_or_after(d(2024, 9, 10)), d(2024, 9, 15));
        assert_eq!(rule.next_on_or_after(d(2024, 9, 16)), d(2024, 10, 15));
        assert_eq!(rule.next_on_or_after(d(2024, 12, 16)), d(2025, 1, 15));
        let end = Recurrence::Monthly { day: 31 };
        assert_eq!(end.next_on_or_after(d(2025, 2, 1)), d(2025, 2, 28));
    }

    #[test]
    fn yearly_and_quarterly_duties() {
        let yearly = Recurrence::Yearly { month: 12, day: 25 };
        assert_eq!(yearly.next_on_or_after(d(2024, 12, 26)), d(2025, 12, 25));
        let quarterly = Recurrence::Quarterly {
            month_of_quarter: 3,
            day: 20,
        };
        assert_eq!(quarterly.next_on_or_after(d(2024, 4, 1)), d(2024, 6, 20));
        assert_eq!(quarterly.next_on_or_after(d(2024, 12, 21)), d(2025, 3, 20));
        assert!(Recurrence::Yearly { month: 2, day: 30 }.validate().is_err());
    }
}

/// Working days: Monday to Friday, less public holidays. Holidays are data
/// (Tết moves every year), loaded from configuration, never hard-coded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkingCalendar {
    holidays: std::collections::BTreeSet<NaiveDate>,
}

impl WorkingCalendar {
    /// A calendar with the given public holidays.
    pub fn new(holidays: impl IntoIterator<Item = NaiveDate>) -> Self {
        Self {
            holidays: holidays.into_iter().collect(),
        }
    }

    /// Reads holidays from text: one `YYYY-MM-DD` per line, `#` comments.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut holidays = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let date = NaiveDate::parse_from_str(line, "%Y-%m-%d").map_err(|e| {
                format!(
                    "line {}: {line:?} is not a YYYY-MM-DD date: {e}",
                    number + 1
                )
            })?;
            holidays.push(date);
        }
        Ok(Self::new(holidays))
    }

    /// True on a weekday that is not a holiday.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        use chrono::{Datelike, Weekday};
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && !self.holidays.contains(&date)
    }

    /// The working day `n` working days before `date` (`n = 0`: `date`
    /// itself if it is a working day, else the previous working day).
    pub fn working_days_before(&self, date: NaiveDate, n: u32) -> NaiveDate {
        let mut day = date;
        while !self.is_working_day(day) {
            day = day.pred_opt().unwrap_or(day);
        }
        let mut left = n;
        while left > 0 {
            day = day.pred_opt().unwrap_or(day);
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        day
    }

    /// The first working day strictly after `date`.
    pub fn next_working_day(&self, date: NaiveDate) -> NaiveDate {
        let mut day = date.succ_opt().unwrap_or(date);
        while !self.is_working_day(day) {
            day = day.succ_opt().unwrap_or(day);
        }
        day
    }

    /// The working day on or before `date`.
    pub fn on_or_before(&self, date: NaiveDate) -> NaiveDate {
        self.working_days_before(date, 0)
    }

    /// Working days from `from` (exclusive) to `to` (inclusive); 0 when `to <= from`.
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> u32 {
        let mut count = 0;
        let mut day = from;
        while day < to {
            day = day.succ_opt().unwrap_or(to);
            if self.is_working_day(day) {
                count += 1;
            }
        }
        count
    }
}

#[cfg(test)]
mod calendar_tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn weekends_and_holidays_are_not_working_days() {
        let calendar = WorkingCalendar::parse("# Quốc khánh\n2024-09-02\n2024-09-03\n").unwrap();
        assert!(!calendar.is_working_day(d(2024, 9, 2)));
        assert!(!calendar.is_working_day(d(2024, 9, 7)));
        assert!(calendar.is_working_day(d(2024, 9, 4)));
        // Friday 6/9 minus 3 working days skips Tue 3/9 and Mon 2/9 (holidays) and the weekend.
        assert_eq!(
            calendar.working_days_before(d(2024, 9, 6), 3),
            d(2024, 8, 30)
        );
        // A due date on Saturday is reminded on Friday.
        assert_eq!(calendar.on_or_before(d(2024, 9, 28)), d(2024, 9, 27));
        assert_eq!(calendar.next_working_day(d(2024, 8, 30)), d(2024, 9, 4));
        assert_eq!(
            calendar.working_days_between(d(2024, 9, 26), d(2024, 9, 30)),
            2
        );
        assert!(WorkingCalendar::parse("2024-13-01").is_err());
    }
}
