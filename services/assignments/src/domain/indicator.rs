//! Indicators (chỉ tiêu): a value per agency and period compared with its
//! target and with the same period a year earlier.

use dondoc_errors::Violations;

/// Length of a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeriodKind {
    /// A calendar month (period 1–12).
    Month,
    /// A quarter (period 1–4).
    Quarter,
    /// A year (period 0).
    Year,
}

impl PeriodKind {
    /// Stored and filter form.
    pub fn as_str(self) -> &'static str {
        match self {
            PeriodKind::Month => "MONTH",
            PeriodKind::Quarter => "QUARTER",
            PeriodKind::Year => "YEAR",
        }
    }

    /// Reads the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Month, Self::Quarter, Self::Year]
            .into_iter()
            .find(|k| k.as_str() == text)
    }

    /// The valid period numbers.
    pub fn periods(self) -> std::ops::RangeInclusive<i32> {
        match self {
            PeriodKind::Month => 1..=12,
            PeriodKind::Quarter => 1..=4,
            PeriodKind::Year => 0..=0,
        }
    }
}

/// Checks a period; violations name `prefix.year` / `prefix.period`.
pub fn check_period(kind: PeriodKind, year: i32, period: i32, prefix: &str, v: &mut Violations) {
    if !(1900..=2200).contains(&year) {
        v.add(format!("{prefix}.year"), "between 1900 and 2200");
    }
    if !kind.periods().contains(&period) {
        let expected = match kind {
            PeriodKind::Month => "a month is 1 to 12",
            PeriodKind::Quarter => "a quarter is 1 to 4",
            PeriodKind::Year => "a year's period is 0",
        };
        v.add(format!("{prefix}.period"), expected);
    }
}

/// Checks a target or an actual value: finite and not negative.
pub fn check_value(value: f64, field: &str, v: &mut Violations) {
    if !value.is_finite() || value < 0.0 {
        v.add(field, "a finite number, not negative");
    }
}

/// actual / target × 100; `None` without an actual or a positive target.
pub fn percent_of_plan(actual: Option<f64>, target: f64) -> Option<f64> {
    match actual {
        Some(actual) if target > 0.0 => Some(actual / target * 100.0),
        _ => None,
    }
}

/// (actual − previous) / previous × 100; `None` without both values or
/// when the previous is 0.
pub fn year_on_year_change(actual: Option<f64>, previous: Option<f64>) -> Option<f64> {
    match (actual, previous) {
        (Some(actual), Some(previous)) if previous != 0.0 => {
            Some((actual - previous) / previous * 100.0)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(x: f64, places: i32) -> f64 {
        let f = 10f64.powi(places);
        (x * f).round() / f
    }

    #[test]
    fn the_figures_of_a_quarterly_review() {
        // "1.876/1.956 căn nhà, đạt 95,91%".
        assert_eq!(
            round(percent_of_plan(Some(1876.0), 1956.0).unwrap(), 2),
            95.91
        );
        // "đạt 79,3% so với kế hoạch, tăng 5,5% so với cùng kỳ".
        assert_eq!(
            round(percent_of_plan(Some(10_550.0), 13_304.0).unwrap(), 1),
            79.3
        );
        assert_eq!(
            round(
                year_on_year_change(Some(10_550.0), Some(10_000.0)).unwrap(),
                1
            ),
            5.5
        );
    }

    #[test]
    fn unset_when_not_computable() {
        assert_eq!(percent_of_plan(None, 100.0), None);
        assert_eq!(percent_of_plan(Some(5.0), 0.0), None);
        assert_eq!(year_on_year_change(Some(5.0), Some(0.0)), None);
        assert_eq!(year_on_year_change(Some(5.0), None), None);
        assert_eq!(year_on_year_change(None, Some(5.0)), None);
        assert_eq!(
            round(year_on_year_change(Some(90.0), Some(100.0)).unwrap(), 1),
            -10.0
        );
    }

    #[test]
    fn periods_are_checked() {
        let mut v = Violations::new();
        check_period(PeriodKind::Quarter, 2025, 5, "indicator", &mut v);
        check_period(PeriodKind::Year, 2025, 0, "indicator", &mut v);
        check_period(PeriodKind::Month, 2025, 12, "indicator", &mut v);
        let v = v.into_inner();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].field, "indicator.period");
        let mut v = Violations::new();
        check_value(f64::NAN, "indicator.target", &mut v);
        check_value(-1.0, "actual", &mut v);
        check_value(0.0, "actual", &mut v);
        assert_eq!(v.into_inner().len(), 2);
    }
}
