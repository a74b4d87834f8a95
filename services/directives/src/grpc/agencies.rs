//! AgencyService.

use std::sync::Arc;

use dondoc_contracts::directives::v1::agency_service_server::AgencyService;
use dondoc_contracts::directives::v1::{self as pb, *};
use dondoc_contracts::service_names;
use dondoc_errors::Error;
use dondoc_events::outbox;
use dondoc_identity::principal;
use dondoc_server::actor_of;
use dondoc_server::convert::{date_from_pb, timestamp};
use dondoc_server::listing::{PageSize, decode_page_token, encode_page_token, parse_filter};
use dondoc_server::mutation::Mutation;
use prost::Message;
use tonic::{Request, Response, Status};

use super::convert::{agency_kind_from_pb, agency_to_pb};
use super::method;
use crate::State;
use crate::domain::access;
use crate::domain::agency::{AgencyFields, AgencyKind, AgencyState, NewAgency};
use crate::domain::text::fold;
use crate::storage::agencies::{self, AgencyQuery};

pub struct Agencies(pub Arc<State>);

const PAGE: PageSize = PageSize {
    default: 50,
    max: 500,
};
const FILTER_FIELDS: [&str; 4] = ["kind", "state", "parent", "search"];

fn unavailable(rpc: &'static str) -> Status {
    Status::from(Error::Unimplemented(rpc))
}

#[tonic::async_trait]
impl AgencyService for Agencies {
    async fn create_agency(
        &self,
        request: Request<CreateAgencyRequest>,
    ) -> Result<Response<CreateAgencyResponse>, Status> {
        let principal = principal(&request)?;
        access::may_manage_directory(&principal)?;
        let request = request.into_inner();
        let agency = request
            .agency
            .ok_or_else(|| Error::invalid("agency", "must be set"))?;
        let effective_from = date_from_pb(agency.effective_from.as_ref(), "agency.effective_from")
            .map_err(|v| Error::InvalidArgument(vec![v]))?;
        let new = NewAgency::parse(AgencyFields {
            code: agency.code,
            display_name: agency.display_name,
            short_name: agency.short_name,
            aliases: agency.aliases,
            kind: agency_kind_from_pb(agency.kind),
            parent: agency.parent,
            effective_from,
        })
        .map_err(|violations| {
            Error::InvalidArgument(violations.into_iter().map(|v| v.under("agency")).collect())
        })?;
        let state = &self.0;
        let method = method(service_names::AGENCY, "CreateAgency");
        let mut mutation = Mutation::begin(
            &state.pool,
            &method,
            &principal.subject,
            &request.request_id,
        )
        .await?;
        if let Some(previous) = mutation.previous::<CreateAgencyResponse>()? {
            return Ok(Response::new(previous));
        }
        let actor = actor_of(&principal, &state.clock);
        let record = agencies::insert(mutation.conn(), &new, &actor).await?;
        let response = CreateAgencyResponse {
            agency: Some(agency_to_pb(&record)),
        };
        let event = DirectiveEvent {
            stamp: Some(actor.stamp()),
            occur_time: Some(timestamp(actor.at)),
            payload: Some(directive_event::Payload::AgencyCreated(pb::AgencyCreated {
                agency: response.agency.clone(),
            })),
            ..Default::default()
        };
        outbox::append(
            mutation.conn(),
            "agency_created",
            &format!("agencies/{}", record.code),
            &event.encode_to_vec(),
        )
        .await
        .map_err(dondoc_database::storage_error)?;
        mutation.commit(&response).await?;
        state.wake.wake();
        Ok(Response::new(response))
    }

    async fn get_agency(
        &self,
        request: Request<GetAgencyRequest>,
    ) -> Result<Response<GetAgencyResponse>, Status> {
        principal(&request)?;
        let code = dondoc_server::convert::agency_code(&request.get_ref().name, "name")
            .map_err(|v| Error::InvalidArgument(vec![v]))?;
        let mut conn = self
            .0
            .pool
            .acquire()
            .await
            .map_err(dondoc_database::storage_error)?;
        let record = agencies::get(&mut conn, &code)
            .await?
            .ok_or_else(|| Error::NotFound {
                resource: "agency",
                name: request.get_ref().name.clone(),
            })?;
        Ok(Response::new(GetAgencyResponse {
            agency: Some(agency_to_pb(&record)),
        }))
    }

    async fn list_agencies(
        &self,
        request: Request<ListAgenciesRequest>,
    ) -> Result<Response<ListAgenciesResponse>, Status> {
        principal(&request)?;
        let request = request.into_inner();
        let limit = PAGE.resolve(request.page_size)?;
        let mut query = AgencyQuery::default();
        for condition in parse_filter(&request.filter, &FILTER_FIELDS)? {
            if condition.op != dondoc_server::listing::Op::Eq {
                return Err(Error::invalid(
                    "filter",
                    format!("{} supports only =", condition.field),
                )
                .into());
            }
            match condition.field.as_str() {
                "kind" => {
                    let kind = AgencyKind::parse(&condition.value).ok_or_else(|| {
                        Error::invalid("filter", format!("unknown kind {:?}", condition.value))
                    })?;
                    query.kind = Some(kind.as_str().into());
                }
                "state" => {
                    let state = AgencyState::parse(&condition.value).ok_or_else(|| {
                        Error::invalid("filter", format!("unknown state {:?}", condition.value))
                    })?;
                    query.state = Some(state.as_str().into());
                }
                "parent" => {
                    let code = dondoc_server::convert::agency_code(&condition.value, "filter")
                        .map_err(|v| Error::InvalidArgument(vec![v]))?;
                    query.parent = Some(code);
                }
                _ => query.search = Some(fold(&condition.value)),
            }
        }
        let after: Option<String> = decode_page_token(&request.filter, &request.page_token)?;
        let mut conn = self
            .0
            .pool
            .acquire()
            .await
            .map_err(dondoc_database::storage_error)?;
        let records = agencies::list(&mut conn, &query, after.as_deref(), limit + 1).await?;
        let more = records.len() as i64 > limit;
        let page: Vec<_> = records.into_iter().take(limit as usize).collect();
        let next_page_token = match (more, page.last()) {
            (true, Some(last)) => encode_page_token(&request.filter, &last.code),
            _ => String::new(),
        };
        Ok(Response::new(ListAgenciesResponse {
            agencies: page.iter().map(agency_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn update_agency(
        &self,
        _: Request<UpdateAgencyRequest>,
    ) -> Result<Response<UpdateAgencyResponse>, Status> {
        Err(unavailable("UpdateAgency"))
    }

    async fn resolve_agency(
        &self,
        _: Request<ResolveAgencyRequest>,
    ) -> Result<Response<ResolveAgencyResponse>, Status> {
        Err(unavailable("ResolveAgency"))
    }

    async fn merge_agencies(
        &self,
        _: Request<MergeAgenciesRequest>,
    ) -> Result<Response<MergeAgenciesResponse>, Status> {
        Err(unavailable("MergeAgencies"))
    }

    async fn rename_agency(
        &self,
        _: Request<RenameAgencyRequest>,
    ) -> Result<Response<RenameAgencyResponse>, Status> {
        Err(unavailable("RenameAgency"))
    }

    async fn split_agency(
        &self,
        _: Request<SplitAgencyRequest>,
    ) -> Result<Response<SplitAgencyResponse>, Status> {
        Err(unavailable("SplitAgency"))
    }

    async fn dissolve_agency(
        &self,
        _: Request<DissolveAgencyRequest>,
    ) -> Result<Response<DissolveAgencyResponse>, Status> {
        Err(unavailable("DissolveAgency"))
    }
}
