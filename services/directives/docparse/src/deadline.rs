//! Deadline phrases → calendar dates or recurrences. Never guesses: a phrase that
//! cannot be turned into a date gives `due = None` and a warning.

use std::sync::LazyLock;

use chrono::{Datelike, Duration, NaiveDate};
use regex::{Captures, Regex};

use crate::Recurrence;

/// What a deadline phrase means.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Deadline {
    pub due: Option<NaiveDate>,
    pub due_text: String,
    pub recurrence: Option<Recurrence>,
    pub warnings: Vec<String>,
    /// true for phrases that only weakly say "deadline" ("trong năm 2025").
    pub weak: bool,
}

// All regexes below are compiled from literals; `unwrap` cannot fail (unit-tested).
const DATE: &str =
    r"(\d{1,2})\s*(?:/|-|\.|\s+tháng\s+)\s*(\d{1,2})(?:\s*(?:/|-|\.|\s+năm\s+)\s*(\d{4}))?";

static RECUR_MONTH_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:(?:trước|vào|chậm nhất(?:\s+là)?|trong)\s+)?(?:ngày\s+)?(\d{1,2})\s+(?:của\s+)?(?:hằng|hàng|mỗi)\s+tháng|(?:hằng|hàng|mỗi)\s+tháng\s*,?\s*(?:trước|vào|chậm nhất(?:\s+là)?)\s+ngày\s+(\d{1,2})\b(?:\s*(?:/|-|\.|tháng)\s*\d)?").unwrap()
});
static RECUR_YEAR_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:(?:trước|vào|chậm nhất(?:\s+là)?)\s+)?ngày\s+(\d{1,2})\s*(?:/|-|\.|\s+tháng\s+)\s*(\d{1,2})\s+(?:của\s+)?(?:hằng|hàng|mỗi)\s+năm|(?:hằng|hàng|mỗi)\s+năm\s*,?\s*(?:trước|vào|chậm nhất(?:\s+là)?)\s+ngày\s+(\d{1,2})\s*(?:/|-|\.|\s+tháng\s+)\s*(\d{1,2})\b(\s*(?:/|-|\.|năm)\s*\d)?").unwrap()
});
static RECUR_QUARTER_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:(?:hằng|hàng|mỗi)\s+quý\s*,?\s*)?(?:(?:trước|vào|chậm nhất(?:\s+là)?)\s+)?ngày\s+(\d{1,2})\s+(?:(?:của\s+)?tháng\s+(đầu|thứ nhất|thứ hai|giữa|thứ ba|cuối|cuối cùng)\s+(?:của\s+)?(?:(?:mỗi|hằng|hàng)\s+)?quý(?:\s+(?:sau|tiếp theo|kế tiếp))?|(?:của\s+)?(?:hằng|hàng|mỗi)\s+quý)").unwrap()
});
static RELATIVE_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:trong\s+(?:vòng\s+|thời hạn\s+|thời gian\s+)?|chậm nhất\s+(?:là\s+)?(?:sau\s+)?|sau\s+|không quá\s+)(\d{1,3})\s+ngày(\s+làm việc)?\s*,?\s*(?:kể\s+từ|tính\s+từ|từ)\s+(?:ngày|khi)\s+((?:văn bản\s+(?:này\s+)?(?:được\s+)?)?(?:ký|ban hành)|[^,.;]{1,40})").unwrap()
});
static STRONG_DATE_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)(?:trước|chậm nhất(?:\s+là)?(?:\s+(?:vào|trước))?|không muộn hơn|hạn chót(?:\s+là)?|hạn cuối(?:\s+là)?|đến hết|thời hạn(?:\s+hoàn thành)?\s*(?::|là)?|thời gian hoàn thành\s*(?::|là)?|hoàn thành(?:\s+vào)?)\s*(?:ngày\s+)?{DATE}"
    ))
    .unwrap()
});
static MONTH_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)((?:hoàn thành|xong|thực hiện xong)\s+)?(trước|trong|chậm nhất(?:\s+là)?(?:\s+trong)?|đến hết|hết|vào)\s+tháng\s+(\d{1,2})\s*(?:/|-|\.|\s+năm\s+)\s*(\d{4})").unwrap()
});
static SESSION_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:trình\s+(?:HĐND|Hội đồng nhân dân)(?:\s+(?:tỉnh|thành phố|huyện|quận|thị xã|xã|cùng cấp))?\s+)?(?:tại|trong|vào)\s+kỳ họp(?:\s+(?:thường lệ|chuyên đề|thường kỳ))?\s+tháng\s+(\d{1,2})\s*(?:/|-|\.|\s+năm\s+)\s*(\d{4})").unwrap()
});
static QUARTER_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:(trước|trong|chậm nhất(?:\s+là)?(?:\s+trong)?|hoàn thành(?:\s+trong)?|xong trong|đến hết|vào)\s+)?quý\s+(IV|III|II|I|[1-4])\s*(?:/|-|\.|\s+năm\s+)\s*(\d{4})").unwrap()
});
static YEAR_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)((?:hoàn thành|xong|thực hiện xong)\s+)?(trước|trong|chậm nhất(?:\s+là)?(?:\s+trong)?|đến hết)\s+năm\s+(\d{4})").unwrap()
});
static HALF_YEAR_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:hoàn thành|xong|chậm nhất)(?:\s+trong)?\s+(3|6|9|sáu|chín|ba)\s+tháng\s+đầu\s+năm\s+(\d{4})").unwrap()
});
static PAST_BEFORE_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)(?:được|đã|của|giao)\s*$").unwrap());
static RANGE_AFTER_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(?:và|,|-|–|đến|tới)\s*(?:năm\s+)?\d{4}|^\s*(?:và|đến|tới)\s+(?:năm|tháng)",
    )
    .unwrap()
});

fn last_day_of_month(y: i32, m: u32) -> Option<NaiveDate> {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    NaiveDate::from_ymd_opt(ny, nm, 1).and_then(|d| d.pred_opt())
}

fn roman_quarter(s: &str) -> Option<u32> {
    match s.to_uppercase().as_str() {
        "I" | "1" => Some(1),
        "II" | "2" => Some(2),
        "III" | "3" => Some(3),
        "IV" | "4" => Some(4),
        _ => None,
    }
}

fn clean_phrase(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn num(c: &Captures, i: usize) -> Option<u32> {
    c.get(i).and_then(|m| m.as_str().parse().ok())
}

struct Hit {
    start: usize,
    end: usize,
    /// lower is preferred
    class: u8,
    dl: Deadline,
}

fn base(text: &str, start: usize, end: usize, weak: bool) -> Deadline {
    Deadline {
        due: None,
        due_text: clean_phrase(&text[start..end]),
        recurrence: None,
        warnings: Vec::new(),
        weak,
    }
}

/// A day/month with optional year → a date, following the rules for missing years.
fn resolve_dm(
    day: u32,
    month: u32,
    year: Option<i32>,
    issue: Option<NaiveDate>,
    dl: &mut Deadline,
) {
    match year {
        Some(y) => match NaiveDate::from_ymd_opt(y, month, day) {
            Some(d) => dl.due = Some(d),
            None => dl.warnings.push(format!(
                "invalid date in \"{}\": no deadline set",
                dl.due_text
            )),
        },
        None => match issue {
            Some(iss) => {
                let mut y = iss.year();
                match NaiveDate::from_ymd_opt(y, month, day) {
                    Some(mut d) => {
                        if d < iss {
                            y += 1;
                            match NaiveDate::from_ymd_opt(y, month, day) {
                                Some(d2) => d = d2,
                                None => {
                                    dl.warnings.push(format!(
                                        "invalid date in \"{}\": no deadline set",
                                        dl.due_text
                                    ));
                                    return;
                                }
                            }
                        }
                        dl.due = Some(d);
                        dl.warnings.push(format!(
                            "\"{}\" has no year: year {y} taken from the issue date (first such day on or after it)",
                            dl.due_text
                        ));
                    }
                    None => dl.warnings.push(format!(
                        "invalid date in \"{}\": no deadline set",
                        dl.due_text
                    )),
                }
            }
            None => dl.warnings.push(format!(
                "\"{}\" has no year and the issue date is unknown: no deadline set",
                dl.due_text
            )),
        },
    }
}

fn collect(text: &str, issue: Option<NaiveDate>) -> Vec<Hit> {
    let mut hits = Vec::new();
    for c in RECUR_YEAR_RE.captures_iter(text) {
        let Some(m) = c.get(0) else { continue };
        if c.get(5).is_some() {
            continue; // "hằng năm, trước ngày 25/12/2025": a full date, not a recurrence
        }
        let (d, mo) = match (num(&c, 1), num(&c, 2), num(&c, 3), num(&c, 4)) {
            (Some(d), Some(mo), _, _) | (_, _, Some(d), Some(mo)) => (d, mo),
            _ => continue,
        };
        let mut dl = base(text, m.start(), m.end(), false);
        if NaiveDate::from_ymd_opt(2024, mo, d).is_some() {
            dl.recurrence = Some(Recurrence::Yearly {
                month: mo as u8,
                day: d as u8,
            });
        } else {
            dl.warnings
                .push(format!("invalid day/month in \"{}\"", dl.due_text));
        }
        hits.push(Hit {
            start: m.start(),
            end: m.end(),
            class: 0,
            dl,
        });
    }
    for c in RECUR_QUARTER_RE.captures_iter(text) {
        let Some(m) = c.get(0) else { continue };
        let Some(d) = num(&c, 1) else { continue };
        let month = c.get(2).map(|w| match w.as_str().to_lowercase().as_str() {
            "đầu" | "thứ nhất" => 1u8,
            "thứ hai" | "giữa" => 2,
            _ => 3,
        });
        let mut dl = base(text, m.start(), m.end(), false);
        if (1..=31).contains(&d) {
            dl.recurrence = Some(Recurrence::Quarterly {
                day: d as u8,
                month_in_quarter: month,
            });
            if month.is_none() {
                dl.warnings.push(
                    "quarterly duty without the month of the quarter: month_in_quarter left empty"
                        .into(),
                );
            }
        } else {
            dl.warnings
                .push(format!("invalid day in \"{}\"", dl.due_text));
        }
        hits.push(Hit {
            start: m.start(),
            end: m.end(),
            class: 0,
            dl,
        });
    }
    for c in RECUR_MONTH_RE.captures_iter(text) {
        let Some(m) = c.get(0) else { continue };
        if c.get(2).is_some()
            && m.as_str()
                .trim_end()
                .ends_with(|ch: char| ch.is_ascii_digit())
        {
            // "hằng tháng, trước ngày 15/12…": the day is part of a date
            let tail = &text[m.end()..];
            if tail.trim_start().starts_with(['/', '-', '.']) {
                continue;
            }
        }
        let Some(d) = num(&c, 1).or_else(|| num(&c, 2)) else {
            continue;
        };
        let mut dl = base(text, m.start(), m.end(), false);
        if (1..=31).contains(&d) {
            dl.recurrence = Some(Recurrence::Monthly { day: d as u8 });
        } else {
            dl.warnings
                .push(format!("invalid day in \"{}\"", dl.due_text));
        }
        hits.push(Hit {
            start: m.start(),
            end: m.end(),
            class: 0,
            dl,
        });
    }
    for c in RELATIVE_RE.captures_iter(text) {
        let Some(m) = c.get(0) else { continue };
        let Some(n) = num(&c, 1) else { continue };
        let working = c.get(2).is_some();
        let anchor = c
            .get(3)
            .map(|a| a.as_str().to_lowercase())
            .unwrap_or_default();
        let mut dl = base(text, m.start(), m.end(), false);
        let from_issue = anchor.ends_with("ký") || anchor.ends_with("ban hành");
        if working {
            dl.warnings.push(format!(
                "\"{}\" counts working days: no date computed (holidays unknown)",
                dl.due_text
            ));
        } else if !from_issue {
            dl.warnings.push(format!(
                "\"{}\" counts from an event whose date is unknown: no deadline set",
                dl.due_text
            ));
        } else if let Some(iss) = issue {
            dl.due = iss.checked_add_signed(Duration::days(i64::from(n)));
            dl.warnings
                .push(format!("relative deadline: issue date {iss} + {n} days"));
        } else {
            dl.warnings.push(format!(
                "\"{}\" is relative to the issue date, which is blank: no deadline set",
                dl.due_text
            ));
        }
        hits.push(Hit {
            start: m.start(),
            end: m.end(),
            class: 1,
            dl,
        });
    }
    for c in STRONG_DATE_RE.captures_iter(text) {
        let Some(m) = c.get(0) else { continue };
        let (Some(d), Some(mo)) = (num(&c, 1), num(&c, 2)) else {
            continue;
        };
        let year: Option<i32> = c.get(3).and_then(|y| y.as_str().parse().ok());
        if year.is_none() {
            // "30/9/24" or a longer number: not a date we can read
            let tail = &text[m.end()..];
            let mut chars = tail.chars();
            let (a, b) = (chars.next(), chars.next());
            if matches!(a, Some('/' | '-' | '.')) && b.is_some_and(|ch| ch.is_ascii_digit()) {
                continue;
            }
            if a.is_some_and(|ch| ch.is_ascii_digit()) {
                continue;
            }
        }
        let mut dl = base(text, m.start(), m.end(), false);
        resolve_dm(d, mo, year, issue, &mut dl);
        hits.push(Hit {
            start: m.start(),
            end: m.end(),
            class: 2,
            dl,
        });
    }
    for c in SESSION_RE.captures_iter(text) {
        let Some(m) = c.get(0) else { continue };
        let (Some(mo), Some(y)) = (num(&c, 1), num(&c, 2)) else {
            continue;
        };
        let mut dl = base(text, m.start(), m.end(), false);
        dl.due = last_day_of_month(y as i32, mo);
        if dl.due.is_none() {
            dl.warnings
                .push(format!("invalid month in \"{}\"", dl.due_text));
        }
        hits.push(Hit {
            start: m.start(),
            end: m.end(),
            class: 3,
            dl,
        });
    }
    for c in MONTH_RE.captures_iter(text) {
        let Some(m) = c.get(0) else { continue };
        let (Some(mo), Some(y)) = (num(&c, 3), num(&c, 4)) else {
            continue;
        };
        let done = c.get(1).is_some();
        let prep = c
            .get(2)
            .map(|p| p.as_str().to_lowercase())
            .unwrap_or_default();
        let weak = !done && (prep == "trong" || prep == "vào");
        let mut dl = base(text, m.start(), m.end(), weak);
        dl.due = if prep == "trước" {
            NaiveDate::from_ymd_opt(y as i32, mo, 1).and_then(|d| d.pred_opt())
        } else {
            last_day_of_month(y as i32, mo)
        };
        if dl.due.is_none() {
            dl.warnings
                .push(format!("invalid month in \"{}\"", dl.due_text));
        }
        hits.push(Hit {
            start: m.start(),
            end: m.end(),
            class: if weak { 5 } else { 3 },
            dl,
        });
    }
    for c in QUARTER_RE.captures_iter(text) {
        let Some(m) = c.get(0) else { continue };
        let (Some(q), Some(y)) = (c.get(2).and_then(|q| roman_quarter(q.as_str())), num(&c, 3))
        else {
            continue;
        };
        let prep = c
            .get(1)
            .map(|p| p.as_str().to_lowercase())
            .unwrap_or_default();
        let mut dl = base(text, m.start(), m.end(), prep.is_empty() || prep == "vào");
        dl.due = if prep == "trước" {
            NaiveDate::from_ymd_opt(y as i32, (q - 1) * 3 + 1, 1).and_then(|d| d.pred_opt())
        } else {
            last_day_of_month(y as i32, q * 3)
        };
        hits.push(Hit {
            start: m.start(),
            end: m.end(),
            class: 4,
            dl,
        });
    }
    for c in HALF_YEAR_RE.captures_iter(text) {
        let Some(m) = c.get(0) else { continue };
        let months = match c.get(1).map(|x| x.as_str().to_lowercase()).as_deref() {
            Some("3" | "ba") => 3,
            Some("6" | "sáu") => 6,
            Some("9" | "chín") => 9,
            _ => continue,
        };
        let Some(y) = num(&c, 2) else { continue };
        let mut dl = base(text, m.start(), m.end(), false);
        dl.due = last_day_of_month(y as i32, months);
        hits.push(Hit {
            start: m.start(),
            end: m.end(),
            class: 4,
            dl,
        });
    }
    for c in YEAR_RE.captures_iter(text) {
        let Some(m) = c.get(0) else { continue };
        let Some(y) = num(&c, 3) else { continue };
        let done = c.get(1).is_some();
        let prep = c
            .get(2)
            .map(|p| p.as_str().to_lowercase())
            .unwrap_or_default();
        let weak = !done && prep == "trong";
        let mut dl = base(text, m.start(), m.end(), weak);
        dl.due = if prep == "trước" {
            NaiveDate::from_ymd_opt(y as i32 - 1, 12, 31)
        } else {
            NaiveDate::from_ymd_opt(y as i32, 12, 31)
        };
        hits.push(Hit {
            start: m.start(),
            end: m.end(),
            class: if weak { 6 } else { 4 },
            dl,
        });
    }
    // Weak phrases that describe when something was assigned or a span of years
    // ("được giao trong năm 2025", "trong năm 2024 và năm 2025") are not deadlines.
    hits.retain(|h| {
        if !h.dl.weak {
            return true;
        }
        let before = &text[..h.start];
        let after = &text[h.end..];
        !(PAST_BEFORE_RE.is_match(before) || RANGE_AFTER_RE.is_match(after))
    });
    hits
}

/// Find the deadline of a task text. Recurrences come first, then relative deadlines,
/// then explicit dates ("trước ngày …"), then month/quarter/year phrases; within a
/// class the earliest phrase wins. Returns `None` when the text has no deadline phrase.
pub(crate) fn find_deadline(text: &str, issue: Option<NaiveDate>) -> Option<Deadline> {
    let mut hits = collect(text, issue);
    if hits.is_empty() {
        return None;
    }
    hits.sort_by_key(|h| (h.class, h.start));
    // drop hits overlapping a better one
    let mut kept: Vec<Hit> = Vec::new();
    for h in hits {
        if kept.iter().all(|k| h.end <= k.start || h.start >= k.end) {
            kept.push(h);
        }
    }
    let mut iter = kept.into_iter();
    let mut best = iter.next()?;
    let others: Vec<String> = iter
        .filter(|h| {
            !h.dl.weak
                && (h.dl.due.is_some() || h.dl.recurrence.is_some())
                && (h.dl.due != best.dl.due || h.dl.recurrence != best.dl.recurrence)
        })
        .map(|h| h.dl.due_text)
        .collect();
    if !others.is_empty() {
        best.dl.warnings.push(format!(
            "several deadline phrases; \"{}\" taken, also found: {}",
            best.dl.due_text,
            others.join("; ")
        ));
    }
    Some(best.dl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, day)
    }
    fn due(text: &str) -> Option<NaiveDate> {
        find_deadline(text, None).and_then(|x| x.due)
    }
    fn due_with(text: &str, issue: NaiveDate) -> Option<NaiveDate> {
        find_deadline(text, Some(issue)).and_then(|x| x.due)
    }

    #[test]
    fn explicit_dates() {
        assert_eq!(
            due("thời gian hoàn thành trước ngày 30/9/2024."),
            d(2024, 9, 30)
        );
        assert_eq!(due("trước ngày 05 tháng 12 năm 2025"), d(2025, 12, 5));
        assert_eq!(
            due("hoàn thành xong trước ngày 05 tháng 12\n năm 2025."),
            d(2025, 12, 5)
        );
        assert_eq!(due("chậm nhất ngày 15/10/2025"), d(2025, 10, 15));
        assert_eq!(due("chậm nhất là ngày 01.11.2025"), d(2025, 11, 1));
        assert_eq!(due("báo cáo trước ngày 30-9-2024"), d(2024, 9, 30));
        assert_eq!(due("Thời hạn: 31/12/2025"), d(2025, 12, 31));
        let x = find_deadline(
            "Các Báo cáo trên gửi Bộ Tư pháp trước ngày 05 tháng 12 năm 2025.",
            None,
        )
        .unwrap();
        assert_eq!(x.due_text, "trước ngày 05 tháng 12 năm 2025");
    }

    #[test]
    fn months_quarters_years_sessions() {
        assert_eq!(due("hoàn thành trong tháng 12/2025"), d(2025, 12, 31));
        assert_eq!(
            due("Thời gian hoàn thành trong tháng 12 năm 2025."),
            d(2025, 12, 31)
        );
        assert_eq!(due("trong tháng 02/2024"), d(2024, 2, 29));
        assert_eq!(due("tổng kết đề án trong năm 2025;"), d(2025, 12, 31));
        assert_eq!(due("hoàn thành trong Quý I/2026"), d(2026, 3, 31));
        assert_eq!(due("Quý IV/2025"), d(2025, 12, 31));
        assert_eq!(due("trong quý 1 năm 2026"), d(2026, 3, 31));
        assert_eq!(due("quý 2/2026"), d(2026, 6, 30));
        assert_eq!(due("quý III năm 2026"), d(2026, 9, 30));
        let x = find_deadline(
            "trình HĐND tỉnh trong kỳ họp tháng 9/2024; đảm bảo kịp thời",
            None,
        )
        .unwrap();
        assert_eq!(x.due, d(2024, 9, 30));
        assert_eq!(x.due_text, "trình HĐND tỉnh trong kỳ họp tháng 9/2024");
        assert_eq!(due("trong kỳ họp tháng 9/2024"), d(2024, 9, 30));
        assert_eq!(due("hoàn thành trong 6 tháng đầu năm 2025"), d(2025, 6, 30));
    }

    #[test]
    fn weak_phrases_that_are_not_deadlines() {
        assert_eq!(
            find_deadline(
                "đối với các nhiệm vụ được giao trong năm 2025, tiếp tục rà soát",
                None
            ),
            None
        );
        assert_eq!(
            find_deadline(
                "giải quyết kinh phí thực hiện Đề án trong năm 2024 và năm 2025.",
                None
            ),
            None
        );
        assert_eq!(
            find_deadline("Kế hoạch số 94/KH-UBND ngày 19 tháng 9 năm 2025", None),
            None
        );
        assert_eq!(find_deadline("trong những tháng cuối năm 2024", None), None);
    }

    #[test]
    fn no_deadline_words() {
        for t in [
            "Thường xuyên theo dõi, kiểm tra",
            "Khẩn trương hoàn thành",
            "triển khai theo kế hoạch",
            "đảm bảo kịp thời, hiệu quả",
            "chỉ đạo thực hiện trong thời gian đến",
        ] {
            assert_eq!(find_deadline(t, None), None, "{t}");
        }
    }

    #[test]
    fn recurrences() {
        let x = find_deadline("báo cáo trước ngày 15 hằng tháng", None).unwrap();
        assert_eq!(x.recurrence, Some(Recurrence::Monthly { day: 15 }));
        assert_eq!(x.due, None);
        let x = find_deadline("định kỳ báo cáo trước ngày 20 hàng tháng", None).unwrap();
        assert_eq!(x.recurrence, Some(Recurrence::Monthly { day: 20 }));
        let x = find_deadline("hằng tháng, trước ngày 25 gửi báo cáo", None).unwrap();
        assert_eq!(x.recurrence, Some(Recurrence::Monthly { day: 25 }));
        let x = find_deadline("báo cáo trước ngày 25/12 hàng năm", None).unwrap();
        assert_eq!(
            x.recurrence,
            Some(Recurrence::Yearly { month: 12, day: 25 })
        );
        assert_eq!(x.due, None);
        let x = find_deadline("trước ngày 10 tháng 1 hằng năm", None).unwrap();
        assert_eq!(x.recurrence, Some(Recurrence::Yearly { month: 1, day: 10 }));
        let x = find_deadline("hằng năm, trước ngày 15/11 tổng hợp", None).unwrap();
        assert_eq!(
            x.recurrence,
            Some(Recurrence::Yearly { month: 11, day: 15 })
        );
        let x = find_deadline("trước ngày 20 tháng cuối quý", None).unwrap();
        assert_eq!(
            x.recurrence,
            Some(Recurrence::Quarterly {
                day: 20,
                month_in_quarter: Some(3)
            })
        );
        let x = find_deadline("hằng quý, trước ngày 10 tháng đầu quý sau", None).unwrap();
        assert_eq!(
            x.recurrence,
            Some(Recurrence::Quarterly {
                day: 10,
                month_in_quarter: Some(1)
            })
        );
        let x = find_deadline("trước ngày 15 hằng quý", None).unwrap();
        assert_eq!(
            x.recurrence,
            Some(Recurrence::Quarterly {
                day: 15,
                month_in_quarter: None
            })
        );
    }

    #[test]
    fn relative_deadlines() {
        let issue = NaiveDate::from_ymd_opt(2025, 11, 25).unwrap();
        assert_eq!(
            due_with("trong 30 ngày kể từ ngày ký", issue),
            d(2025, 12, 25)
        );
        assert_eq!(
            due_with("trong thời hạn 15 ngày kể từ ngày ban hành", issue),
            d(2025, 12, 10)
        );
        assert_eq!(
            due_with(
                "trong vòng 10 ngày, kể từ ngày văn bản này được ban hành",
                issue
            ),
            d(2025, 12, 5)
        );
        let x = find_deadline("trong 30 ngày kể từ ngày ký", None).unwrap();
        assert_eq!(x.due, None);
        assert!(!x.warnings.is_empty());
        let x = find_deadline("trong 10 ngày làm việc kể từ ngày ký", Some(issue)).unwrap();
        assert_eq!(x.due, None);
        assert!(!x.warnings.is_empty());
        let x = find_deadline("trong 10 ngày kể từ ngày nhận được hồ sơ", Some(issue)).unwrap();
        assert_eq!(x.due, None);
    }

    #[test]
    fn missing_year_and_invalid_dates() {
        let issue = NaiveDate::from_ymd_opt(2025, 11, 25).unwrap();
        let x = find_deadline("trước ngày 15/12", Some(issue)).unwrap();
        assert_eq!(x.due, d(2025, 12, 15));
        assert!(!x.warnings.is_empty());
        let x = find_deadline("trước ngày 15/01", Some(issue)).unwrap();
        assert_eq!(x.due, d(2026, 1, 15));
        let x = find_deadline("trước ngày 15 tháng 12", None).unwrap();
        assert_eq!(x.due, None);
        assert!(!x.warnings.is_empty());
        let x = find_deadline("trước ngày 31/2/2025", None).unwrap();
        assert_eq!(x.due, None);
        assert!(x.warnings.iter().any(|w| w.contains("invalid")));
        let x = find_deadline("trước ngày 30.02.2024", None).unwrap();
        assert_eq!(x.due, None);
    }

    #[test]
    fn first_explicit_deadline_wins_with_warning() {
        let x = find_deadline(
            "tiếp tục được xử lý trong năm 2025 và chuyển sang năm 2026. Gửi trước ngày 05/12/2025; sau đó trước ngày 10/12/2025",
            None,
        )
        .unwrap();
        assert_eq!(x.due, d(2025, 12, 5));
        assert_eq!(x.warnings.len(), 1);
    }
}
