//! Conversions between protobuf and domain values.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use dondoc_contracts::common::v1 as pb;
use dondoc_errors::FieldViolation;

/// A protobuf date as a calendar date; unset or all-zero is `None`.
pub fn date_from_pb(
    date: Option<&pb::Date>,
    field: &str,
) -> Result<Option<NaiveDate>, FieldViolation> {
    match date {
        None => Ok(None),
        Some(d) if d.year == 0 && d.month == 0 && d.day == 0 => Ok(None),
        Some(d) => {
            if !(1900..=2200).contains(&d.year) {
                return Err(FieldViolation::new(
                    field,
                    "year must be between 1900 and 2200",
                ));
            }
            u32::try_from(d.month)
                .ok()
                .zip(u32::try_from(d.day).ok())
                .and_then(|(m, day)| NaiveDate::from_ymd_opt(d.year, m, day))
                .map(Some)
                .ok_or_else(|| {
                    FieldViolation::new(
                        field,
                        format!("{}-{}-{} is not a calendar date", d.year, d.month, d.day),
                    )
                })
        }
    }
}

/// A calendar date as a protobuf date.
pub fn date_to_pb(date: NaiveDate) -> pb::Date {
    pb::Date {
        year: date.year(),
        month: date.month() as i32,
        day: date.day() as i32,
    }
}

/// An optional calendar date as an optional protobuf date.
pub fn opt_date_to_pb(date: Option<NaiveDate>) -> Option<pb::Date> {
    date.map(date_to_pb)
}

/// An instant as a protobuf timestamp.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// Builds an audit stamp.
pub fn stamp(actor: &str, agency: Option<&str>, at: DateTime<Utc>) -> pb::AuditStamp {
    pb::AuditStamp {
        actor: actor.to_string(),
        actor_agency: agency.map(|a| format!("agencies/{a}")).unwrap_or_default(),
        time: Some(timestamp(at)),
    }
}

/// The code of an "agencies/{code}" name.
pub fn agency_code(name: &str, field: &str) -> Result<String, FieldViolation> {
    let code = name.strip_prefix("agencies/").unwrap_or("");
    let valid = (2..=64).contains(&code.len())
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !code.starts_with('-')
        && !code.ends_with('-');
    if valid {
        Ok(code.to_string())
    } else {
        Err(FieldViolation::new(
            field,
            format!("{name:?} is not an agency name of the form agencies/{{code}}"),
        ))
    }
}

/// The numeric id of a "{collection}/{id}" name.
pub fn resource_id(name: &str, collection: &str, field: &str) -> Result<i64, FieldViolation> {
    name.strip_prefix(collection)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|id| id.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            FieldViolation::new(
                field,
                format!("{name:?} is not a name of the form {collection}/{{id}}"),
            )
        })
}

/// A protobuf recurrence as the domain rule; unset or empty is `None`.
pub fn recurrence_from_pb(
    recurrence: Option<&pb::Recurrence>,
    field: &str,
) -> Result<Option<dondoc_time::Recurrence>, FieldViolation> {
    use pb::recurrence::Rule;
    let Some(rule) = recurrence.and_then(|r| r.rule.as_ref()) else {
        return Ok(None);
    };
    let to_u32 = |v: i32| u32::try_from(v).unwrap_or(0);
    let domain = match rule {
        Rule::Monthly(m) => dondoc_time::Recurrence::Monthly { day: to_u32(m.day) },
        Rule::Quarterly(q) => dondoc_time::Recurrence::Quarterly {
            month_of_quarter: to_u32(q.month_of_quarter),
            day: to_u32(q.day),
        },
        Rule::Yearly(y) => dondoc_time::Recurrence::Yearly {
            month: to_u32(y.month),
            day: to_u32(y.day),
        },
    };
    domain
        .validate()
        .map_err(|description| FieldViolation::new(field, description))?;
    Ok(Some(domain))
}

/// The domain rule as a protobuf recurrence.
pub fn recurrence_to_pb(recurrence: dondoc_time::Recurrence) -> pb::Recurrence {
    use pb::recurrence::Rule;
    let rule = match recurrence {
        dondoc_time::Recurrence::Monthly { day } => {
            Rule::Monthly(pb::MonthlyRule { day: day as i32 })
        }
        dondoc_time::Recurrence::Quarterly {
            month_of_quarter,
            day,
        } => Rule::Quarterly(pb::QuarterlyRule {
            month_of_quarter: month_of_quarter as i32,
            day: day as i32,
        }),
        dondoc_time::Recurrence::Yearly { month, day } => Rule::Yearly(pb::YearlyRule {
            month: month as i32,
            day: day as i32,
        }),
    };
    pb::Recurrence { rule: Some(rule) }
}

/// Stored form of a recurrence (a short text key), for SQL columns.
pub fn recurrence_to_text(recurrence: dondoc_time::Recurrence) -> String {
    match recurrence {
        dondoc_time::Recurrence::Monthly { day } => format!("monthly:{day}"),
        dondoc_time::Recurrence::Quarterly {
            month_of_quarter,
            day,
        } => format!("quarterly:{month_of_quarter}:{day}"),
        dondoc_time::Recurrence::Yearly { month, day } => format!("yearly:{month}:{day}"),
    }
}

/// Reads the stored form back.
pub fn recurrence_from_text(text: &str) -> Option<dondoc_time::Recurrence> {
    let mut parts = text.split(':');
    let kind = parts.next()?;
    let numbers: Vec<u32> = parts.map(|p| p.parse().ok()).collect::<Option<_>>()?;
    match (kind, numbers.as_slice()) {
        ("monthly", [day]) => Some(dondoc_time::Recurrence::Monthly { day: *day }),
        ("quarterly", [m, day]) => Some(dondoc_time::Recurrence::Quarterly {
            month_of_quarter: *m,
            day: *day,
        }),
        ("yearly", [m, day]) => Some(dondoc_time::Recurrence::Yearly {
            month: *m,
            day: *day,
        }),
        _ => None,
    }
}
