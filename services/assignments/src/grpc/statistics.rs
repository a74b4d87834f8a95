//! StatisticsService: report figures computed with SQL aggregates.

use std::sync::Arc;

use dondoc_contracts::assignments::v1::statistics_service_server::StatisticsService;
use dondoc_contracts::assignments::v1::*;
use dondoc_errors::Error;
use dondoc_identity::{Principal, principal};
use dondoc_server::convert::date_to_pb;
use dondoc_server::listing::{PageSize, decode_page_token, paginate, parse_filter};
use tonic::{Request, Response, Status};

use super::convert::counts_to_pb;
use super::filters;
use crate::State;
use crate::domain::statistics::{parse_order_by, sort_breakdown, summary};
use crate::storage::statistics::{self, Scope};

pub struct Statistics(pub Arc<State>);

const STATISTICS_FIELDS: [&str; 7] = [
    "lead",
    "agency",
    "directive",
    "issuer",
    "assign_date",
    "due_date",
    "key_task",
];
const ROLLUP_FIELDS: [&str; 3] = ["issuer", "directive", "assign_date"];

/// The scope of a filter, narrowed to what the caller may see.
fn scope(principal: &Principal, filter: &str, allowed: &[&str]) -> Result<Scope, Error> {
    let mut scope = Scope::default();
    for c in parse_filter(filter, allowed)? {
        match c.field.as_str() {
            "lead" => scope.lead = Some(filters::agency(&c)?),
            "agency" => scope.agency = Some(filters::agency(&c)?),
            "issuer" => scope.issuer = Some(filters::agency(&c)?),
            "directive" => scope.directive = Some(filters::directive(&c)?),
            "key_task" => scope.key_task = Some(filters::boolean(&c)?),
            "assign_date" => {
                filters::date_range(&c, &mut scope.assign_from, &mut scope.assign_until)?
            }
            _ => filters::date_range(&c, &mut scope.due_from, &mut scope.due_until)?,
        }
    }
    if !principal.reads_all() {
        scope.visible_to_agency = Some(
            principal
                .agency
                .clone()
                .ok_or_else(|| Error::denied("NO_AGENCY", "the caller acts for no agency"))?,
        );
    }
    Ok(scope)
}

#[tonic::async_trait]
impl StatisticsService for Statistics {
    async fn get_task_statistics(
        &self,
        request: Request<GetTaskStatisticsRequest>,
    ) -> Result<Response<GetTaskStatisticsResponse>, Status> {
        let principal = principal(&request)?;
        let r = request.into_inner();
        let scope = scope(&principal, &r.filter, &STATISTICS_FIELDS)?;
        let order = parse_order_by(&r.order_by)?;
        let today = self.0.clock.today();
        let state = &self.0;
        let mut figures = state
            .statistics
            .read((scope.clone(), today), || {
                state
                    .hot
                    .run(async |conn| statistics::figures(conn, &scope, today, &state.policy).await)
            })
            .await?;
        sort_breakdown(&mut figures.by_agency, order);
        Ok(Response::new(GetTaskStatisticsResponse {
            all: Some(counts_to_pb(&figures.all)),
            key_tasks: Some(counts_to_pb(&figures.key_tasks)),
            by_agency: figures
                .by_agency
                .iter()
                .map(|(code, counts)| AgencyTaskCounts {
                    agency: format!("agencies/{code}"),
                    counts: Some(counts_to_pb(counts)),
                })
                .collect(),
            as_of: Some(date_to_pb(today)),
            summary: summary(&figures.all, &figures.key_tasks),
        }))
    }

    async fn list_directive_rollups(
        &self,
        request: Request<ListDirectiveRollupsRequest>,
    ) -> Result<Response<ListDirectiveRollupsResponse>, Status> {
        let principal = principal(&request)?;
        let r = request.into_inner();
        let limit = PageSize {
            default: 50,
            max: 500,
        }
        .resolve(r.page_size)?;
        let scope = scope(&principal, &r.filter, &ROLLUP_FIELDS)?;
        let today = self.0.clock.today();
        let bound = format!("{}|{:?}", r.filter, scope.visible_to_agency);
        let after: Option<i64> = decode_page_token(&bound, &r.page_token)?;
        let rows = self
            .0
            .hot
            .run(async |conn| {
                statistics::rollups(conn, &scope, today, &self.0.policy, after, limit + 1).await
            })
            .await?;
        let (page, next_page_token) = paginate(rows, limit, &bound, |last| last.directive_id);
        Ok(Response::new(ListDirectiveRollupsResponse {
            rollups: page
                .iter()
                .map(|r| DirectiveRollup {
                    directive: format!("directives/{}", r.directive_id),
                    directive_number: r.directive_number.clone(),
                    counts: Some(counts_to_pb(&r.counts)),
                    done: r.done,
                })
                .collect(),
            next_page_token,
        }))
    }
}
