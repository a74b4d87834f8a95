//! DirectiveService.

use std::sync::Arc;

use dondoc_contracts::directives::v1::directive_service_server::DirectiveService;
use dondoc_contracts::directives::v1::{self as pb, *};
use dondoc_contracts::service_names;
use dondoc_errors::{Error, Violations};
use dondoc_events::outbox;
use dondoc_identity::{Principal, principal};
use dondoc_server::convert::{date_from_pb, recurrence_from_pb, resource_id, timestamp};
use dondoc_server::listing::{Op, PageSize, decode_page_token, encode_page_token, parse_filter};
use dondoc_server::mutation::Mutation;
use dondoc_server::{Actor, actor_of};
use prost::Message;
use tonic::{Request, Response, Status};

use super::convert::{directive_kind_from_pb, directive_to_pb, etag, involved_agencies};
use super::method;
use crate::State;
use crate::domain::access;
use crate::domain::directive::{
    DirectiveKind, DirectiveState, Draft, DraftFields, ItemFields, Signer, check_issuable,
};
use crate::storage::agencies;
use crate::storage::directives::{self, DirectiveQuery, DirectiveRecord};

pub struct Directives(pub Arc<State>);

const PAGE: PageSize = PageSize {
    default: 50,
    max: 500,
};
const FILTER_FIELDS: [&str; 6] = [
    "issuer",
    "kind",
    "state",
    "issue_date",
    "agency",
    "key_task",
];

fn invalid(v: dondoc_errors::FieldViolation) -> Error {
    Error::InvalidArgument(vec![v])
}

/// Reads a directive message into checked domain fields; every violation
/// is reported under `directive.`.
fn draft_from_pb(directive: pb::Directive) -> Result<Draft, Error> {
    let mut v = Violations::new();
    let issue_date = v
        .check(
            "",
            date_from_pb(directive.issue_date.as_ref(), "issue_date").map_err(|e| vec![e]),
        )
        .flatten();
    let meeting = match directive.meeting {
        Some(m) => {
            let date = v
                .check(
                    "",
                    date_from_pb(m.date.as_ref(), "meeting.date").map_err(|e| vec![e]),
                )
                .flatten();
            Some((date, m.chair))
        }
        None => None,
    };
    let mut items = Vec::with_capacity(directive.items.len());
    for (i, item) in directive.items.into_iter().enumerate() {
        let path = format!("items[{i}]");
        let due = v
            .check(
                &path,
                date_from_pb(item.due_date.as_ref(), "due_date").map_err(|e| vec![e]),
            )
            .flatten();
        let recurrence = v
            .check(
                &path,
                recurrence_from_pb(item.recurrence.as_ref(), "recurrence").map_err(|e| vec![e]),
            )
            .flatten();
        items.push(ItemFields {
            reference: item.reference,
            text: item.text,
            lead: item.lead_agencies,
            coordinating: item.coordinating_agencies,
            due,
            recurrence,
            deadline_text: item.deadline_text,
            key_task: item.key_task,
        });
    }
    let signer = directive.signer.unwrap_or_default();
    let fields = DraftFields {
        kind: directive_kind_from_pb(directive.kind),
        number: directive.number,
        issuer: directive.issuer,
        signer: Signer {
            full_name: signer.full_name,
            title: signer.title,
            capacities: signer.capacities,
        },
        place: directive.place,
        issue_date,
        subject: directive.subject,
        body: directive.body,
        recipients: directive.recipients,
        meeting,
        items,
    };
    let parsed = v.check("", Draft::parse(fields));
    let mut violations = v.into_inner();
    for violation in &mut violations {
        // check("") prefixes a lone dot; normalise to the request path.
        violation.field = format!("directive.{}", violation.field.trim_start_matches('.'));
    }
    match parsed {
        Some(draft) if violations.is_empty() => Ok(draft),
        _ => Err(Error::InvalidArgument(violations)),
    }
}

/// Refuses references to agencies that are unknown or no longer exist.
async fn check_agencies(conn: &mut sqlx::PgConnection, draft: &Draft) -> Result<(), Error> {
    let mut v = Violations::new();
    let references: Vec<(String, _)> = draft
        .agency_references()
        .into_iter()
        .map(|(field, code)| (format!("directive.{field}"), code))
        .collect();
    agencies::check_assignable(conn, &references, &mut v).await?;
    v.finish()
}

async fn append_event(
    conn: &mut sqlx::PgConnection,
    actor: &Actor,
    kind: &str,
    directive: &pb::Directive,
    payload: directive_event::Payload,
) -> Result<(), Error> {
    let event = DirectiveEvent {
        stamp: Some(actor.stamp()),
        occur_time: Some(timestamp(actor.at)),
        payload: Some(payload),
        ..Default::default()
    };
    outbox::append(conn, kind, &directive.name, &event.encode_to_vec())
        .await
        .map_err(dondoc_database::storage_error)?;
    Ok(())
}

fn not_found(name: &str) -> Error {
    Error::NotFound {
        resource: "directive",
        name: name.to_string(),
    }
}

fn check_readable(principal: &Principal, record: &DirectiveRecord) -> Result<(), Error> {
    access::may_read_directive(
        principal,
        record.state == DirectiveState::Draft.as_str(),
        involved_agencies(record),
    )
}

#[tonic::async_trait]
impl DirectiveService for Directives {
    async fn create_directive(
        &self,
        request: Request<CreateDirectiveRequest>,
    ) -> Result<Response<CreateDirectiveResponse>, Status> {
        let principal = principal(&request)?;
        access::may_write_directives(&principal)?;
        let request = request.into_inner();
        let directive = request
            .directive
            .ok_or_else(|| Error::invalid("directive", "must be set"))?;
        let draft = draft_from_pb(directive)?;
        let state = &self.0;
        let method = method(service_names::DIRECTIVE, "CreateDirective");
        let mut mutation = Mutation::begin(
            &state.pool,
            &method,
            &principal.subject,
            &request.request_id,
        )
        .await?;
        if let Some(previous) = mutation.previous::<CreateDirectiveResponse>()? {
            return Ok(Response::new(previous));
        }
        check_agencies(mutation.conn(), &draft).await?;
        let actor = actor_of(&principal, &state.clock);
        let id = directives::insert(mutation.conn(), &draft, &actor).await?;
        let record = directives::get(mutation.conn(), id, false)
            .await?
            .ok_or_else(|| Error::internal("a directive vanished inside its own transaction"))?;
        let directive = directive_to_pb(&record);
        append_event(
            mutation.conn(),
            &actor,
            "directive_drafted",
            &directive,
            directive_event::Payload::DirectiveDrafted(DirectiveDrafted {
                directive: Some(directive.clone()),
            }),
        )
        .await?;
        let response = CreateDirectiveResponse {
            directive: Some(directive),
        };
        mutation.commit(&response).await?;
        state.wake.wake();
        Ok(Response::new(response))
    }

    async fn get_directive(
        &self,
        request: Request<GetDirectiveRequest>,
    ) -> Result<Response<GetDirectiveResponse>, Status> {
        let principal = principal(&request)?;
        let name = &request.get_ref().name;
        let id = resource_id(name, "directives", "name").map_err(invalid)?;
        let mut conn = self
            .0
            .pool
            .acquire()
            .await
            .map_err(dondoc_database::storage_error)?;
        let record = directives::get(&mut conn, id, false)
            .await?
            .ok_or_else(|| not_found(name))?;
        check_readable(&principal, &record)?;
        Ok(Response::new(GetDirectiveResponse {
            directive: Some(directive_to_pb(&record)),
        }))
    }

    async fn list_directives(
        &self,
        request: Request<ListDirectivesRequest>,
    ) -> Result<Response<ListDirectivesResponse>, Status> {
        let principal = principal(&request)?;
        let request = request.into_inner();
        let limit = PAGE.resolve(request.page_size)?;
        let mut query = DirectiveQuery::default();
        for c in parse_filter(&request.filter, &FILTER_FIELDS)? {
            let only_eq = |c: &dondoc_server::listing::Condition| {
                if c.op == Op::Eq {
                    Ok(())
                } else {
                    Err(Error::invalid(
                        "filter",
                        format!("{} supports only =", c.field),
                    ))
                }
            };
            match c.field.as_str() {
                "issuer" | "agency" => {
                    only_eq(&c)?;
                    let code =
                        dondoc_server::convert::agency_code(&c.value, "filter").map_err(invalid)?;
                    if c.field == "issuer" {
                        query.issuer = Some(code);
                    } else {
                        query.agency = Some(code);
                    }
                }
                "kind" => {
                    only_eq(&c)?;
                    let kind = DirectiveKind::parse(&c.value).ok_or_else(|| {
                        Error::invalid("filter", format!("unknown kind {:?}", c.value))
                    })?;
                    query.kind = Some(kind.as_str().into());
                }
                "state" => {
                    only_eq(&c)?;
                    let state = DirectiveState::parse(&c.value).ok_or_else(|| {
                        Error::invalid("filter", format!("unknown state {:?}", c.value))
                    })?;
                    query.state = Some(state.as_str().into());
                }
                "key_task" => {
                    only_eq(&c)?;
                    query.key_tasks_only = match c.value.as_str() {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(Error::invalid(
                                "filter",
                                format!("key_task is true or false, not {other:?}"),
                            )
                            .into());
                        }
                    };
                }
                _ => {
                    let date =
                        chrono::NaiveDate::parse_from_str(&c.value, "%Y-%m-%d").map_err(|_| {
                            Error::invalid(
                                "filter",
                                format!(
                                    "issue_date takes a date as \"YYYY-MM-DD\", not {:?}",
                                    c.value
                                ),
                            )
                        })?;
                    match c.op {
                        Op::Ge => query.issued_from = Some(date),
                        Op::Gt => query.issued_from = date.succ_opt(),
                        Op::Le => query.issued_until = Some(date),
                        Op::Lt => query.issued_until = date.pred_opt(),
                        Op::Eq => {
                            query.issued_from = Some(date);
                            query.issued_until = Some(date);
                        }
                        Op::Ne => {
                            return Err(
                                Error::invalid("filter", "issue_date does not support !=").into()
                            );
                        }
                    }
                }
            }
        }
        if !principal.reads_all() {
            let own = principal
                .agency
                .clone()
                .ok_or_else(|| Error::denied("NO_AGENCY", "the caller acts for no agency"))?;
            query.visible_to_agency = Some(own);
        }
        // The token is bound to the filter and to what the caller may see.
        let token_scope = format!("{}|{:?}", request.filter, query.visible_to_agency);
        let before: Option<i64> = decode_page_token(&token_scope, &request.page_token)?;
        let mut conn = self
            .0
            .pool
            .acquire()
            .await
            .map_err(dondoc_database::storage_error)?;
        let records = directives::list(&mut conn, &query, before, limit + 1).await?;
        let more = records.len() as i64 > limit;
        let page: Vec<_> = records.into_iter().take(limit as usize).collect();
        let next_page_token = match (more, page.last()) {
            (true, Some(last)) => encode_page_token(&token_scope, &last.id),
            _ => String::new(),
        };
        Ok(Response::new(ListDirectivesResponse {
            directives: page.iter().map(directive_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn update_directive(
        &self,
        _: Request<UpdateDirectiveRequest>,
    ) -> Result<Response<UpdateDirectiveResponse>, Status> {
        Err(Error::Unimplemented("UpdateDirective").into())
    }

    async fn issue_directive(
        &self,
        request: Request<IssueDirectiveRequest>,
    ) -> Result<Response<IssueDirectiveResponse>, Status> {
        let principal = principal(&request)?;
        access::may_write_directives(&principal)?;
        let request = request.into_inner();
        let id = resource_id(&request.name, "directives", "name").map_err(invalid)?;
        let state = &self.0;
        let method = method(service_names::DIRECTIVE, "IssueDirective");
        let mut mutation = Mutation::begin(
            &state.pool,
            &method,
            &principal.subject,
            &request.request_id,
        )
        .await?;
        if let Some(previous) = mutation.previous::<IssueDirectiveResponse>()? {
            return Ok(Response::new(previous));
        }
        let record = directives::get(mutation.conn(), id, true)
            .await?
            .ok_or_else(|| not_found(&request.name))?;
        if !request.etag.is_empty() && request.etag != etag(record.version) {
            return Err(Error::Aborted {
                resource: "directive",
                name: request.name,
            }
            .into());
        }
        let current = DirectiveState::parse(&record.state)
            .ok_or_else(|| Error::internal(format!("unknown stored state {}", record.state)))?;
        check_issuable(
            current,
            Some(record.number.as_str()).filter(|n| !n.is_empty()),
            record.issue_date,
        )?;
        // Agencies may have been merged or dissolved since the draft was written.
        let mut v = Violations::new();
        let codes: Vec<(String, crate::domain::agency::AgencyCode)> = record
            .items
            .iter()
            .enumerate()
            .flat_map(|(i, item)| {
                item.lead_agencies
                    .iter()
                    .chain(item.coordinating_agencies.iter())
                    .map(move |c| (format!("directive.items[{i}]"), c))
            })
            .filter_map(|(field, c)| {
                crate::domain::agency::AgencyCode::parse(c)
                    .ok()
                    .map(|c| (field, c))
            })
            .collect();
        let references: Vec<(String, &crate::domain::agency::AgencyCode)> =
            codes.iter().map(|(f, c)| (f.clone(), c)).collect();
        agencies::check_assignable(mutation.conn(), &references, &mut v).await?;
        if !v.is_empty() {
            return Err(Error::FailedPrecondition {
                reason: "AGENCY_NOT_ACTIVE",
                message: format!(
                    "the draft names agencies that no longer exist: {}; edit the draft first",
                    v.into_inner()
                        .into_iter()
                        .map(|x| x.description)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            }
            .into());
        }
        let actor = actor_of(&principal, &state.clock);
        directives::mark_issued(mutation.conn(), id, &actor).await?;
        let record = directives::get(mutation.conn(), id, false)
            .await?
            .ok_or_else(|| Error::internal("a directive vanished inside its own transaction"))?;
        let directive = directive_to_pb(&record);
        append_event(
            mutation.conn(),
            &actor,
            "directive_issued",
            &directive,
            directive_event::Payload::DirectiveIssued(DirectiveIssued {
                directive: Some(directive.clone()),
            }),
        )
        .await?;
        let response = IssueDirectiveResponse {
            directive: Some(directive),
        };
        mutation.commit(&response).await?;
        state.wake.wake();
        Ok(Response::new(response))
    }

    async fn revoke_directive(
        &self,
        _: Request<RevokeDirectiveRequest>,
    ) -> Result<Response<RevokeDirectiveResponse>, Status> {
        Err(Error::Unimplemented("RevokeDirective").into())
    }

    async fn search_directives(
        &self,
        _: Request<SearchDirectivesRequest>,
    ) -> Result<Response<SearchDirectivesResponse>, Status> {
        Err(Error::Unimplemented("SearchDirectives").into())
    }

    async fn parse_directive(
        &self,
        _: Request<ParseDirectiveRequest>,
    ) -> Result<Response<ParseDirectiveResponse>, Status> {
        Err(Error::Unimplemented("ParseDirective").into())
    }

    async fn import_directive(
        &self,
        _: Request<ImportDirectiveRequest>,
    ) -> Result<Response<ImportDirectiveResponse>, Status> {
        Err(Error::Unimplemented("ImportDirective").into())
    }
}
