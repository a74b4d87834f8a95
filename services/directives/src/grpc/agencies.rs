//! AgencyService.

use std::sync::Arc;

use dondoc_contracts::directives::v1::agency_service_server::AgencyService;
use dondoc_contracts::directives::v1::{self as pb, *};
use dondoc_contracts::service_names;
use dondoc_errors::{Error, Violations};
use dondoc_events::outbox;
use dondoc_identity::principal;
use dondoc_server::actor_of;
use dondoc_server::convert::{date_from_pb, date_to_pb, timestamp};
use dondoc_server::listing::{PageSize, decode_page_token, paginate, parse_filter};
use dondoc_server::mutation::Mutation;
use prost::Message;
use tonic::{Request, Response, Status};

use super::convert::{
    agency_kind_from_pb, agency_to_pb, agency_with_history, etag, reorganization_to_pb,
};
use super::method;
use crate::State;
use crate::domain::access;
use crate::domain::agency::{
    AgencyCode, AgencyFields, AgencyKind, AgencyState, MAX_NAME_CHARS, NewAgency, Reorganization,
    Reorganize, Unresolved, apply_agency_mask, check_reorganization, pick_candidate,
};
use crate::domain::text::fold;
use crate::storage::agencies::{self, AgencyQuery, AgencyRecord};

/// AgencyService over the shared state.
pub struct Agencies(pub Arc<State>);

const PAGE: PageSize = PageSize {
    default: 50,
    max: 500,
};
const FILTER_FIELDS: [&str; 4] = ["kind", "state", "parent", "search"];

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
        let mut mutation =
            Mutation::begin(&state.hot, &method, &principal.subject, &request.request_id).await?;
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
            traceparent: dondoc_server::observe::current_traceparent(),
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
        let principal = principal(&request)?;
        access::authorize(&principal, access::Action::ReadDirectory)?;
        let code = dondoc_server::convert::agency_code(&request.get_ref().name, "name")
            .map_err(|v| Error::InvalidArgument(vec![v]))?;
        let agency = self
            .0
            .hot
            .run(async |conn| {
                let record = agencies::get(conn, &code)
                    .await?
                    .ok_or_else(|| Error::NotFound {
                        resource: "agency",
                        name: request.get_ref().name.clone(),
                    })?;
                with_history(conn, &record).await
            })
            .await?;
        Ok(Response::new(GetAgencyResponse {
            agency: Some(agency),
        }))
    }

    async fn list_agencies(
        &self,
        request: Request<ListAgenciesRequest>,
    ) -> Result<Response<ListAgenciesResponse>, Status> {
        let principal = principal(&request)?;
        access::authorize(&principal, access::Action::ReadDirectory)?;
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
        let records = self
            .0
            .hot
            .run(async |conn| agencies::list(conn, &query, after.as_deref(), limit + 1).await)
            .await?;
        let (page, next_page_token) =
            paginate(records, limit, &request.filter, |last| last.code.clone());
        Ok(Response::new(ListAgenciesResponse {
            agencies: page.iter().map(agency_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn update_agency(
        &self,
        request: Request<UpdateAgencyRequest>,
    ) -> Result<Response<UpdateAgencyResponse>, Status> {
        let principal = principal(&request)?;
        access::may_manage_directory(&principal)?;
        let request = request.into_inner();
        let given = request
            .agency
            .ok_or_else(|| Error::invalid("agency", "must be set"))?;
        let code = dondoc_server::convert::agency_code(&given.name, "agency.name")
            .map_err(|v| Error::InvalidArgument(vec![v]))?;
        let mask: Vec<String> = request.update_mask.map(|m| m.paths).unwrap_or_default();
        let state = &self.0;
        let method = method(service_names::AGENCY, "UpdateAgency");
        let mut mutation =
            Mutation::begin(&state.hot, &method, &principal.subject, &request.request_id).await?;
        if let Some(previous) = mutation.previous::<UpdateAgencyResponse>()? {
            return Ok(Response::new(previous));
        }
        let current = agencies::get_for_update(mutation.conn(), &code)
            .await?
            .ok_or_else(|| not_found(&given.name))?;
        if !given.etag.is_empty() && given.etag != etag(current.version) {
            return Err(Error::Aborted {
                resource: "agency",
                name: given.name,
            }
            .into());
        }
        let merged = apply_agency_mask(
            fields_of(&current),
            AgencyFields {
                code: code.clone(),
                display_name: given.display_name,
                short_name: given.short_name,
                aliases: given.aliases,
                kind: agency_kind_from_pb(given.kind),
                parent: given.parent,
                effective_from: current.effective_from,
            },
            &mask,
        )
        .map_err(Error::InvalidArgument)?;
        let checked = NewAgency::parse(merged).map_err(|violations| {
            Error::InvalidArgument(violations.into_iter().map(|v| v.under("agency")).collect())
        })?;
        let actor = actor_of(&principal, &state.clock);
        let record = agencies::update(mutation.conn(), &checked, &actor).await?;
        let agency = with_history(mutation.conn(), &record).await?;
        let event = DirectiveEvent {
            stamp: Some(actor.stamp()),
            occur_time: Some(timestamp(actor.at)),
            payload: Some(directive_event::Payload::AgencyUpdated(pb::AgencyUpdated {
                agency: Some(agency.clone()),
            })),
            traceparent: dondoc_server::observe::current_traceparent(),
            ..Default::default()
        };
        outbox::append(
            mutation.conn(),
            "agency_updated",
            &agency.name,
            &event.encode_to_vec(),
        )
        .await
        .map_err(dondoc_database::storage_error)?;
        let response = UpdateAgencyResponse {
            agency: Some(agency),
        };
        mutation.commit(&response).await?;
        state.wake.wake();
        Ok(Response::new(response))
    }

    async fn resolve_agency(
        &self,
        request: Request<ResolveAgencyRequest>,
    ) -> Result<Response<ResolveAgencyResponse>, Status> {
        let principal = principal(&request)?;
        access::authorize(&principal, access::Action::ReadDirectory)?;
        let request = request.into_inner();
        let query = request.query.trim();
        if query.is_empty() || query.chars().count() > 300 {
            return Err(Error::invalid(
                "query",
                "a code, name, short name or alias: 1 to 300 characters",
            )
            .into());
        }
        let as_of = date_from_pb(request.as_of.as_ref(), "as_of")
            .map_err(|v| Error::InvalidArgument(vec![v]))?
            .unwrap_or_else(|| self.0.clock.today());
        let (matched, current) = self
            .0
            .hot
            .run(async |conn| resolve_at(conn, query, as_of).await)
            .await?;
        Ok(Response::new(ResolveAgencyResponse {
            matched: Some(matched),
            current,
        }))
    }

    async fn merge_agencies(
        &self,
        request: Request<MergeAgenciesRequest>,
    ) -> Result<Response<MergeAgenciesResponse>, Status> {
        let principal = principal(&request)?;
        let request = request.into_inner();
        let successor = request.successor.clone();
        let agency = self
            .reorganize(
                &principal,
                "MergeAgencies",
                Reorganization::Merge,
                &request.request_id,
                request.sources,
                vec![request.successor],
                request.effective_date.as_ref(),
                &request.reason,
                Some(successor),
            )
            .await?;
        Ok(Response::new(MergeAgenciesResponse {
            successor: Some(agency),
        }))
    }

    async fn rename_agency(
        &self,
        request: Request<RenameAgencyRequest>,
    ) -> Result<Response<RenameAgencyResponse>, Status> {
        let principal = principal(&request)?;
        access::may_manage_directory(&principal)?;
        let request = request.into_inner();
        let mut v = Violations::new();
        let display_name = request.display_name.trim().to_string();
        let short_name = request.short_name.trim().to_string();
        if display_name.is_empty() || display_name.chars().count() > MAX_NAME_CHARS {
            v.add("display_name", format!("1 to {MAX_NAME_CHARS} characters"));
        }
        if short_name.chars().count() > MAX_NAME_CHARS {
            v.add("short_name", format!("at most {MAX_NAME_CHARS} characters"));
        }
        let effective = date_from_pb(request.effective_date.as_ref(), "effective_date")
            .map_err(|e| v.add(e.field, e.description))
            .ok()
            .flatten();
        let state = &self.0;
        let method = method(service_names::AGENCY, "RenameAgency");
        let mut mutation =
            Mutation::begin(&state.hot, &method, &principal.subject, &request.request_id).await?;
        if let Some(previous) = mutation.previous::<RenameAgencyResponse>()? {
            return Ok(Response::new(previous));
        }
        let code = AgencyCode::from_name(&request.name).ok();
        let records = match &code {
            Some(code) => agencies::lock_many(mutation.conn(), &[code.as_str()]).await?,
            None => Default::default(),
        };
        let lookup = |c: &AgencyCode| records.get(c.as_str()).and_then(agencies::life_of);
        let checked = check_reorganization(
            Reorganization::Rename,
            std::slice::from_ref(&request.name),
            &[],
            effective,
            &lookup,
        );
        if let Err(violations) = &checked {
            for f in violations {
                v.add(f.field.clone(), f.description.clone());
            }
        }
        if let Some(current) = code.as_ref().and_then(|c| records.get(c.as_str()))
            && current.display_name == display_name
            && current.short_name == short_name
        {
            v.add("display_name", "is already the agency's name");
        }
        let (Ok(reorg), true) = (checked, v.is_empty()) else {
            return Err(v
                .finish()
                .err()
                .unwrap_or_else(|| Error::invalid("name", "cannot be renamed"))
                .into());
        };
        let current = records
            .get(reorg.sources[0].as_str())
            .ok_or_else(|| not_found(&request.name))?;
        let actor = actor_of(&principal, &state.clock);
        agencies::rename(
            mutation.conn(),
            current,
            &display_name,
            &short_name,
            reorg.effective_date,
            &actor,
        )
        .await?;
        agencies::reorganize(mutation.conn(), &reorg, "", &actor).await?;
        append_reorganized(mutation.conn(), &actor, &reorg).await?;
        let record = agencies::get(mutation.conn(), reorg.sources[0].as_str())
            .await?
            .ok_or_else(|| Error::internal("a renamed agency vanished"))?;
        let response = RenameAgencyResponse {
            agency: Some(with_history(mutation.conn(), &record).await?),
        };
        mutation.commit(&response).await?;
        state.wake.wake();
        Ok(Response::new(response))
    }

    async fn split_agency(
        &self,
        request: Request<SplitAgencyRequest>,
    ) -> Result<Response<SplitAgencyResponse>, Status> {
        let principal = principal(&request)?;
        let request = request.into_inner();
        let name = request.name.clone();
        let agency = self
            .reorganize(
                &principal,
                "SplitAgency",
                Reorganization::Split,
                &request.request_id,
                vec![request.name],
                request.successors,
                request.effective_date.as_ref(),
                "",
                Some(name),
            )
            .await?;
        Ok(Response::new(SplitAgencyResponse {
            agency: Some(agency),
        }))
    }

    async fn dissolve_agency(
        &self,
        request: Request<DissolveAgencyRequest>,
    ) -> Result<Response<DissolveAgencyResponse>, Status> {
        let principal = principal(&request)?;
        let request = request.into_inner();
        let name = request.name.clone();
        let agency = self
            .reorganize(
                &principal,
                "DissolveAgency",
                Reorganization::Dissolve,
                &request.request_id,
                vec![request.name],
                Vec::new(),
                request.effective_date.as_ref(),
                "",
                Some(name),
            )
            .await?;
        Ok(Response::new(DissolveAgencyResponse {
            agency: Some(agency),
        }))
    }
}

fn not_found(name: &str) -> Error {
    Error::NotFound {
        resource: "agency",
        name: name.to_string(),
    }
}

fn fields_of(record: &AgencyRecord) -> AgencyFields {
    AgencyFields {
        code: record.code.clone(),
        display_name: record.display_name.clone(),
        short_name: record.short_name.clone(),
        aliases: record.aliases.clone(),
        kind: AgencyKind::parse(&record.kind),
        parent: record
            .parent
            .as_ref()
            .map(|p| format!("agencies/{p}"))
            .unwrap_or_default(),
        effective_from: record.effective_from,
    }
}

/// An agency message with its name history.
pub async fn with_history(
    conn: &mut sqlx::PgConnection,
    record: &AgencyRecord,
) -> Result<pb::Agency, Error> {
    let history = agencies::name_history(conn, &[record.code.as_str()])
        .await?
        .remove(&record.code)
        .unwrap_or_default();
    Ok(agency_with_history(record, &history))
}

/// The agency `query` designates on `as_of` (with the names it bore then)
/// and what stands for it now, when it was merged, split or dissolved.
async fn resolve_at(
    conn: &mut sqlx::PgConnection,
    query: &str,
    as_of: chrono::NaiveDate,
) -> Result<(pb::Agency, Vec<pb::Agency>), Error> {
    let resolved = resolve_names(conn, &[query.to_string()], as_of).await?;
    let code = match resolved.into_iter().next() {
        Some((_, Ok(code))) => code,
        Some((_, Err(Unresolved::Ambiguous(codes)))) => {
            return Err(Error::invalid(
                "query",
                format!(
                    "{query:?} designates several agencies on {as_of}: {}; ask with a code",
                    codes
                        .iter()
                        .map(|c| format!("agencies/{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        _ => {
            return Err(Error::NotFound {
                resource: "agency",
                name: query.to_string(),
            });
        }
    };
    let record = agencies::get(conn, &code)
        .await?
        .ok_or_else(|| not_found(&format!("agencies/{code}")))?;
    let history = agencies::name_history(conn, &[code.as_str()])
        .await?
        .remove(&code)
        .unwrap_or_default();
    let mut matched = agency_with_history(&record, &history);
    // The names it bore on the date asked about.
    if let Some(old) = history
        .iter()
        .find(|n| n.valid_from.is_none_or(|f| f <= as_of) && as_of <= n.valid_until)
    {
        matched.display_name = old.display_name.clone();
        matched.short_name = old.short_name.clone();
    }
    let mut current = Vec::new();
    for successor in agencies::current_of(conn, &code).await? {
        current.push(with_history(conn, &successor).await?);
    }
    Ok((matched, current))
}

async fn append_reorganized(
    conn: &mut sqlx::PgConnection,
    actor: &dondoc_server::Actor,
    reorg: &Reorganize,
) -> Result<(), Error> {
    let event = DirectiveEvent {
        stamp: Some(actor.stamp()),
        occur_time: Some(timestamp(actor.at)),
        payload: Some(directive_event::Payload::AgencyReorganized(
            pb::AgencyReorganized {
                kind: reorganization_to_pb(reorg.kind) as i32,
                sources: reorg.sources.iter().map(AgencyCode::name).collect(),
                successors: reorg.successors.iter().map(AgencyCode::name).collect(),
                effective_date: Some(date_to_pb(reorg.effective_date)),
            },
        )),
        traceparent: dondoc_server::observe::current_traceparent(),
        ..Default::default()
    };
    outbox::append(
        conn,
        "agency_reorganized",
        &reorg
            .sources
            .first()
            .map(AgencyCode::name)
            .unwrap_or_default(),
        &event.encode_to_vec(),
    )
    .await
    .map_err(dondoc_database::storage_error)?;
    Ok(())
}

/// Resolves names as written (or codes, or "agencies/{code}") to the
/// agencies they designated on `on`, in one query.
pub async fn resolve_names(
    conn: &mut sqlx::PgConnection,
    names: &[String],
    on: chrono::NaiveDate,
) -> Result<Vec<(String, Result<String, Unresolved>)>, Error> {
    let as_code = |name: &str| {
        AgencyCode::from_name(name)
            .or_else(|_| AgencyCode::parse(name))
            .ok()
    };
    let folded: Vec<String> = names
        .iter()
        .map(|n| fold(n))
        .filter(|f| !f.is_empty())
        .collect();
    let codes: Vec<String> = names
        .iter()
        .filter_map(|n| as_code(n.trim()))
        .map(|c| c.as_str().to_string())
        .collect();
    let candidates = agencies::candidates(conn, &folded, &codes).await?;
    let rules: Vec<_> = candidates.iter().map(|c| c.rule.clone()).collect();
    Ok(names
        .iter()
        .map(|name| {
            let by_code = as_code(name.trim())
                .and_then(|c| pick_candidate(&rules, &format!("code:{}", c.as_str()), on).ok());
            let picked = match by_code {
                Some(c) => Ok(c.code.clone()),
                None => pick_candidate(&rules, &fold(name), on).map(|c| c.code.clone()),
            };
            (name.clone(), picked)
        })
        .collect())
}

impl Agencies {
    /// Merge, split and dissolve: one shape.
    #[allow(clippy::too_many_arguments)]
    async fn reorganize(
        &self,
        principal: &dondoc_identity::Principal,
        rpc: &'static str,
        kind: Reorganization,
        request_id: &str,
        sources: Vec<String>,
        successors: Vec<String>,
        effective_date: Option<&dondoc_contracts::common::v1::Date>,
        reason: &str,
        answer: Option<String>,
    ) -> Result<pb::Agency, Error> {
        access::may_manage_directory(principal)?;
        let effective = date_from_pb(effective_date, "effective_date")
            .map_err(|v| Error::InvalidArgument(vec![v]))?;
        if reason.chars().count() > 1000 {
            return Err(Error::invalid("reason", "at most 1000 characters"));
        }
        let state = &self.0;
        let method = method(service_names::AGENCY, rpc);
        let mut mutation =
            Mutation::begin(&state.hot, &method, &principal.subject, request_id).await?;
        if let Some(previous) = mutation.previous::<pb::Agency>()? {
            return Ok(previous);
        }
        let codes: Vec<AgencyCode> = sources
            .iter()
            .chain(successors.iter())
            .filter_map(|name| AgencyCode::from_name(name).ok())
            .collect();
        let names: Vec<&str> = codes.iter().map(AgencyCode::as_str).collect();
        let records = agencies::lock_many(mutation.conn(), &names).await?;
        let lookup = |c: &AgencyCode| records.get(c.as_str()).and_then(agencies::life_of);
        let reorg = check_reorganization(kind, &sources, &successors, effective, &lookup)
            .map_err(Error::InvalidArgument)?;
        let actor = actor_of(principal, &state.clock);
        agencies::reorganize(mutation.conn(), &reorg, reason, &actor).await?;
        append_reorganized(mutation.conn(), &actor, &reorg).await?;
        let answer_code = answer
            .as_deref()
            .and_then(|a| a.strip_prefix("agencies/"))
            .unwrap_or_default()
            .to_string();
        let record = agencies::get(mutation.conn(), &answer_code)
            .await?
            .ok_or_else(|| Error::internal("a reorganised agency vanished"))?;
        let agency = with_history(mutation.conn(), &record).await?;
        mutation.commit(&agency).await?;
        state.wake.wake();
        Ok(agency)
    }
}
