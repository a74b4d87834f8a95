//! IndicatorService: indicators with targets, actuals and the same period
//! a year earlier.

use std::sync::Arc;

use dondoc_contracts::assignments::v1::PeriodKind as PeriodKind_;
use dondoc_contracts::assignments::v1::indicator_service_server::IndicatorService;
use dondoc_contracts::assignments::v1::*;
use dondoc_contracts::service_names;
use dondoc_errors::{Error, Violations};
use dondoc_identity::{Principal, principal};
use dondoc_server::actor_of;
use dondoc_server::convert::{agency_code, resource_id};
use dondoc_server::listing::{Condition, PageSize, decode_page_token, paginate, parse_filter};
use dondoc_server::mutation::Mutation;
use tonic::{Request, Response, Status};

use super::convert::indicator_to_pb;
use super::filters;
use crate::State;
use crate::domain::access;
use crate::domain::indicator::{self, PeriodKind};
use crate::storage::indicators::{self, IndicatorQuery, IndicatorRecord, NewIndicator};

pub struct Indicators(pub Arc<State>);

const FILTER_FIELDS: [&str; 6] = [
    "agency",
    "code",
    "period_kind",
    "year",
    "period",
    "percent_of_plan",
];

fn method(rpc: &str) -> String {
    format!("/{}/{rpc}", service_names::INDICATOR)
}

fn not_found(name: &str) -> Error {
    Error::NotFound {
        resource: "indicator",
        name: name.to_string(),
    }
}

fn kind_from_pb(kind: i32) -> Option<PeriodKind> {
    match PeriodKind_::try_from(kind).ok()? {
        PeriodKind_::Month => Some(PeriodKind::Month),
        PeriodKind_::Quarter => Some(PeriodKind::Quarter),
        PeriodKind_::Year => Some(PeriodKind::Year),
        PeriodKind_::Unspecified => None,
    }
}

fn valid_code(code: &str) -> bool {
    (2..=64).contains(&code.len())
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn number<T: std::str::FromStr>(c: &Condition) -> Result<T, Error> {
    c.value.parse::<T>().map_err(|_| {
        Error::invalid(
            "filter",
            format!("{} takes a number, not {:?}", c.field, c.value),
        )
    })
}

impl Indicators {
    async fn read(&self, name: &str) -> Result<IndicatorRecord, Error> {
        let id =
            resource_id(name, "indicators", "name").map_err(|v| Error::InvalidArgument(vec![v]))?;
        self.0
            .hot
            .run(async |conn| indicators::get(conn, id, false).await)
            .await?
            .ok_or_else(|| not_found(name))
    }

    /// Sets the target (office) or the actual (the agency) in one mutation.
    async fn set_value(
        &self,
        principal: &Principal,
        rpc: &str,
        name: &str,
        request_id: &str,
        target: Option<f64>,
        actual: Option<f64>,
    ) -> Result<Indicator, Error> {
        let id =
            resource_id(name, "indicators", "name").map_err(|v| Error::InvalidArgument(vec![v]))?;
        let mut v = Violations::new();
        if let Some(target) = target {
            indicator::check_value(target, "target", &mut v);
        }
        if let Some(actual) = actual {
            indicator::check_value(actual, "actual", &mut v);
        }
        v.finish()?;
        let mut mutation =
            Mutation::begin(&self.0.hot, &method(rpc), &principal.subject, request_id).await?;
        #[derive(Clone, PartialEq, prost::Message)]
        struct Stored {
            #[prost(message, optional, tag = "1")]
            indicator: Option<Indicator>,
        }
        if let Some(previous) = mutation.previous::<Stored>()? {
            return previous
                .indicator
                .ok_or_else(|| Error::internal("stored answer without indicator"));
        }
        let record = indicators::get(mutation.conn(), id, true)
            .await?
            .ok_or_else(|| not_found(name))?;
        if actual.is_some() {
            access::must_report_for(principal, &record.agency)?;
        }
        let actor = actor_of(principal, &self.0.clock);
        indicators::set_value(mutation.conn(), id, target, actual, &actor).await?;
        let updated = indicators::get(mutation.conn(), id, false)
            .await?
            .ok_or_else(|| not_found(name))?;
        let view = indicator_to_pb(&updated);
        mutation
            .commit(&Stored {
                indicator: Some(view.clone()),
            })
            .await?;
        Ok(view)
    }
}

#[tonic::async_trait]
impl IndicatorService for Indicators {
    async fn create_indicator(
        &self,
        request: Request<CreateIndicatorRequest>,
    ) -> Result<Response<CreateIndicatorResponse>, Status> {
        let principal = principal(&request)?;
        access::must_be_office(&principal)?;
        let r = request.into_inner();
        let i = r
            .indicator
            .ok_or_else(|| Error::invalid("indicator", "must be set"))?;
        let mut v = Violations::new();
        let agency = agency_code(&i.agency, "indicator.agency")
            .map_err(|e| v.add(e.field, e.description))
            .unwrap_or_default();
        let code = i.code.trim().to_string();
        if !valid_code(&code) {
            v.add(
                "indicator.code",
                "2 to 64 lowercase letters, digits or hyphens, e.g. \"jobs-created\"",
            );
        }
        let display_name = i.display_name.trim().to_string();
        if display_name.is_empty() || display_name.chars().count() > 300 {
            v.add("indicator.display_name", "1 to 300 characters");
        }
        let unit = i.unit.trim().to_string();
        if unit.is_empty() || unit.chars().count() > 50 {
            v.add("indicator.unit", "1 to 50 characters, e.g. \"người\"");
        }
        let kind = kind_from_pb(i.period_kind);
        match kind {
            Some(kind) => indicator::check_period(kind, i.year, i.period, "indicator", &mut v),
            None => v.add("indicator.period_kind", "MONTH, QUARTER or YEAR"),
        }
        indicator::check_value(i.target, "indicator.target", &mut v);
        if let Some(actual) = i.actual {
            indicator::check_value(actual, "indicator.actual", &mut v);
        }
        v.finish()?;
        let kind = kind.ok_or_else(|| Error::internal("checked above"))?;
        let mut mutation = Mutation::begin(
            &self.0.hot,
            &method("CreateIndicator"),
            &principal.subject,
            &r.request_id,
        )
        .await?;
        if let Some(previous) = mutation.previous::<CreateIndicatorResponse>()? {
            return Ok(Response::new(previous));
        }
        let actor = actor_of(&principal, &self.0.clock);
        let new = NewIndicator {
            agency,
            code,
            display_name,
            unit,
            period_kind: kind.as_str(),
            year: i.year,
            period: i.period,
            target: i.target,
            actual: i.actual,
        };
        let id = indicators::insert(mutation.conn(), &new, &actor)
            .await?
            .ok_or_else(|| Error::AlreadyExists {
                resource: "indicator",
                name: format!(
                    "{} of agencies/{} for {} {}/{}",
                    new.code, new.agency, new.period_kind, new.period, new.year
                ),
            })?;
        let record = indicators::get(mutation.conn(), id, false)
            .await?
            .ok_or_else(|| Error::internal("the indicator just created is gone"))?;
        let response = CreateIndicatorResponse {
            indicator: Some(indicator_to_pb(&record)),
        };
        mutation.commit(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_indicator(
        &self,
        request: Request<GetIndicatorRequest>,
    ) -> Result<Response<GetIndicatorResponse>, Status> {
        let principal = principal(&request)?;
        let record = self.read(&request.get_ref().name).await?;
        access::may_read_indicator(&principal, &record.agency)?;
        Ok(Response::new(GetIndicatorResponse {
            indicator: Some(indicator_to_pb(&record)),
        }))
    }

    async fn list_indicators(
        &self,
        request: Request<ListIndicatorsRequest>,
    ) -> Result<Response<ListIndicatorsResponse>, Status> {
        let principal = principal(&request)?;
        let r = request.into_inner();
        let limit = PageSize {
            default: 50,
            max: 500,
        }
        .resolve(r.page_size)?;
        let mut query = IndicatorQuery::default();
        for c in parse_filter(&r.filter, &FILTER_FIELDS)? {
            match c.field.as_str() {
                "agency" => query.agency = Some(filters::agency(&c)?),
                "code" => {
                    filters::eq(&c)?;
                    query.code = Some(c.value.clone());
                }
                "period_kind" => {
                    filters::eq(&c)?;
                    query.period_kind = Some(
                        PeriodKind::parse(&c.value)
                            .ok_or_else(|| {
                                Error::invalid(
                                    "filter",
                                    format!(
                                        "period_kind is MONTH, QUARTER or YEAR, not {:?}",
                                        c.value
                                    ),
                                )
                            })?
                            .as_str(),
                    );
                }
                "year" => query.year.push((c.op, number(&c)?)),
                "period" => query.period.push((c.op, number(&c)?)),
                _ => {
                    let value: f64 = number(&c)?;
                    if !value.is_finite() {
                        return Err(Error::invalid(
                            "filter",
                            "percent_of_plan takes a finite number",
                        )
                        .into());
                    }
                    query.percent_of_plan.push((c.op, value));
                }
            }
        }
        if !principal.reads_all() {
            let own = principal
                .agency
                .clone()
                .ok_or_else(|| Error::denied("NO_AGENCY", "the caller acts for no agency"))?;
            if query.agency.as_ref().is_some_and(|a| *a != own) {
                return Err(Error::denied(
                    "AGENCY_OUT_OF_SCOPE",
                    "agencies read only their own indicators",
                )
                .into());
            }
            query.agency = Some(own);
        }
        let bound = format!("{}|{:?}", r.filter, query.agency);
        let after: Option<i64> = decode_page_token(&bound, &r.page_token)?;
        let rows = self
            .0
            .hot
            .run(async |conn| indicators::list(conn, &query, after, limit + 1).await)
            .await?;
        let (page, next_page_token) = paginate(rows, limit, &bound, |last| last.id);
        Ok(Response::new(ListIndicatorsResponse {
            indicators: page.iter().map(indicator_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn set_indicator_target(
        &self,
        request: Request<SetIndicatorTargetRequest>,
    ) -> Result<Response<SetIndicatorTargetResponse>, Status> {
        let principal = principal(&request)?;
        access::must_be_office(&principal)?;
        let r = request.into_inner();
        let indicator = self
            .set_value(
                &principal,
                "SetIndicatorTarget",
                &r.name,
                &r.request_id,
                Some(r.target),
                None,
            )
            .await?;
        Ok(Response::new(SetIndicatorTargetResponse {
            indicator: Some(indicator),
        }))
    }

    async fn report_indicator_actual(
        &self,
        request: Request<ReportIndicatorActualRequest>,
    ) -> Result<Response<ReportIndicatorActualResponse>, Status> {
        let principal = principal(&request)?;
        let r = request.into_inner();
        let indicator = self
            .set_value(
                &principal,
                "ReportIndicatorActual",
                &r.name,
                &r.request_id,
                None,
                Some(r.actual),
            )
            .await?;
        Ok(Response::new(ReportIndicatorActualResponse {
            indicator: Some(indicator),
        }))
    }
}
