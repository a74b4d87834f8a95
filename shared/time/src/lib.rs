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
