//! Filter values shared by the listings and statistics.

use chrono::NaiveDate;
use dondoc_errors::Error;
use dondoc_server::convert::{agency_code, resource_id};
use dondoc_server::listing::{Condition, Op};

/// `=` only.
pub fn eq(c: &Condition) -> Result<(), Error> {
    if c.op == Op::Eq {
        Ok(())
    } else {
        Err(Error::invalid(
            "filter",
            format!("{} supports only =", c.field),
        ))
    }
}

/// An "agencies/{code}" value, as its code.
pub fn agency(c: &Condition) -> Result<String, Error> {
    eq(c)?;
    agency_code(&c.value, "filter").map_err(|v| Error::InvalidArgument(vec![v]))
}

/// A "directives/{id}" value, as its id.
pub fn directive(c: &Condition) -> Result<i64, Error> {
    eq(c)?;
    resource_id(&c.value, "directives", "filter").map_err(|v| Error::InvalidArgument(vec![v]))
}

/// `true` or `false`.
pub fn boolean(c: &Condition) -> Result<bool, Error> {
    eq(c)?;
    match c.value.as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(Error::invalid(
            "filter",
            format!("{} is true or false, not {other:?}", c.field),
        )),
    }
}

/// A date comparison narrowing the range `from..=until`.
pub fn date_range(
    c: &Condition,
    from: &mut Option<NaiveDate>,
    until: &mut Option<NaiveDate>,
) -> Result<(), Error> {
    let date = NaiveDate::parse_from_str(&c.value, "%Y-%m-%d").map_err(|_| {
        Error::invalid(
            "filter",
            format!("{} takes \"YYYY-MM-DD\", not {:?}", c.field, c.value),
        )
    })?;
    let later = |a: Option<NaiveDate>, b: Option<NaiveDate>| a.max(b);
    let earlier = |a: Option<NaiveDate>, b: Option<NaiveDate>| match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match c.op {
        Op::Ge => *from = later(*from, Some(date)),
        Op::Gt => *from = later(*from, date.succ_opt()),
        Op::Le => *until = earlier(*until, Some(date)),
        Op::Lt => *until = earlier(*until, date.pred_opt()),
        Op::Eq => {
            *from = later(*from, Some(date));
            *until = earlier(*until, Some(date));
        }
        Op::Ne => {
            return Err(Error::invalid(
                "filter",
                format!("{} does not support !=", c.field),
            ));
        }
    }
    Ok(())
}
