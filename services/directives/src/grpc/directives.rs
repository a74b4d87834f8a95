//! DirectiveService.

use std::sync::Arc;

use dondoc_contracts::directives::v1::directive_service_server::DirectiveService;
use dondoc_contracts::directives::v1::{self as pb, *};
use dondoc_contracts::service_names;
use dondoc_errors::{Error, Violations};
use dondoc_events::outbox;
use dondoc_identity::{Principal, principal};
use dondoc_server::convert::{
    date_from_pb, opt_date_to_pb, recurrence_from_pb, recurrence_to_pb, resource_id, timestamp,
};
use dondoc_server::listing::{Op, PageSize, decode_page_token, paginate, parse_filter};
use dondoc_server::mutation::Mutation;
use dondoc_server::{Actor, actor_of};
use prost::Message;
use tonic::{Request, Response, Status};

use super::convert::{
    directive_kind_from_pb, directive_kind_to_pb, directive_to_pb, etag, involved_agencies,
    link_kind_from_pb,
};
use super::method;
use crate::State;
use crate::domain::access;
use crate::domain::agency::{AgencyCode, Unresolved};
use crate::domain::directive::{
    AmendmentChange, AmendmentFields, ChangeFields, DirectiveKind, DirectiveState, Draft,
    DraftFields, DraftItem, ItemFields, LinkKind, Signer, check_issuable, check_leads,
    check_revocable, check_update_mask,
};
use crate::domain::import::{self, NameResolution};
use crate::domain::text::{search_words, snippet};
use crate::storage::agencies;
use crate::storage::directives::{self, DirectiveQuery, DirectiveRecord};

/// DirectiveService over the shared state.
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

fn item_fields_from_pb(item: pb::DirectiveItem, path: &str, v: &mut Violations) -> ItemFields {
    let due = v
        .check(
            path,
            date_from_pb(item.due_date.as_ref(), "due_date").map_err(|e| vec![e]),
        )
        .flatten();
    let recurrence = v
        .check(
            path,
            recurrence_from_pb(item.recurrence.as_ref(), "recurrence").map_err(|e| vec![e]),
        )
        .flatten();
    ItemFields {
        reference: item.reference,
        text: item.text,
        lead: item.lead_agencies,
        coordinating: item.coordinating_agencies,
        due,
        recurrence,
        deadline_text: item.deadline_text,
        key_task: item.key_task,
    }
}

/// Reads a directive message into checked domain fields; every violation
/// is reported under `directive.`. `lead_optional`: items may lack a lead
/// (imported drafts only).
fn draft_from_pb(directive: pb::Directive, lead_optional: bool) -> Result<Draft, Error> {
    use pb::item_amendment::Change;
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
        items.push(item_fields_from_pb(item, &format!("items[{i}]"), &mut v));
    }
    let mut amendments = Vec::with_capacity(directive.amendments.len());
    for (i, amendment) in directive.amendments.into_iter().enumerate() {
        let change = match amendment.change {
            None => None,
            Some(Change::AddItem(item)) => Some(ChangeFields::Add(item_fields_from_pb(
                item,
                &format!("amendments[{i}].add_item"),
                &mut v,
            ))),
            Some(Change::ChangeItem(change)) => Some(ChangeFields::Change {
                item: item_fields_from_pb(
                    change.item.unwrap_or_default(),
                    &format!("amendments[{i}].change_item.item"),
                    &mut v,
                ),
                mask: change.update_mask.map(|m| m.paths).unwrap_or_default(),
            }),
            Some(Change::CancelItem(cancel)) => Some(ChangeFields::Cancel {
                reason: cancel.reason,
            }),
        };
        amendments.push(AmendmentFields {
            target: amendment.target,
            change,
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
        links: directive
            .links
            .into_iter()
            .map(|l| (link_kind_from_pb(l.kind), l.target))
            .collect(),
        amendments,
        lead_optional,
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

/// Checks what links and amendments name against the stored directives:
/// targets exist (and, for AMENDS, are issued), amended items belong to
/// their target and are in force, new due dates are not before the
/// target's issue date, and a change leaves a valid item. `own` is the
/// draft's own id (it may not link to itself).
async fn check_references(
    conn: &mut sqlx::PgConnection,
    draft: &Draft,
    own: Option<i64>,
) -> Result<Violations, Error> {
    let mut v = Violations::new();
    let mut ids: Vec<i64> = draft.links.iter().map(|l| l.target).collect();
    ids.extend(draft.amendments.iter().map(|a| a.directive));
    let targets: std::collections::HashMap<i64, directives::TargetRecord> =
        directives::targets(conn, &ids)
            .await?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
    for (i, link) in draft.links.iter().enumerate() {
        let field = format!("directive.links[{i}].target");
        match targets.get(&link.target) {
            _ if Some(link.target) == own => v.add(field, "a directive cannot link to itself"),
            None => v.add(field, format!("directives/{} does not exist", link.target)),
            Some(t)
                if link.kind == LinkKind::Amends && t.state != DirectiveState::Issued.as_str() =>
            {
                v.add(
                    field,
                    format!(
                        "directives/{} is {}; only issued directives are amended",
                        link.target,
                        t.state.to_lowercase()
                    ),
                )
            }
            Some(_) => {}
        }
    }
    let item_ids: Vec<i64> = draft.amendments.iter().filter_map(|a| a.item).collect();
    let items: std::collections::HashMap<i64, directives::ItemRecord> =
        directives::items_by_id(conn, &item_ids)
            .await?
            .into_iter()
            .map(|i| (i.id, i))
            .collect();
    for (i, amendment) in draft.amendments.iter().enumerate() {
        let path = format!("directive.amendments[{i}]");
        let Some(target) = targets.get(&amendment.directive) else {
            continue; // reported on its link
        };
        let early = amendment.date_violation(target.issue_date);
        if let Some((field, description)) = &early {
            v.add(format!("{path}.{field}"), description.clone());
        }
        let Some(item_id) = amendment.item else {
            continue;
        };
        match items.get(&item_id) {
            Some(item) if item.directive_id == amendment.directive => {
                if item.state != "ACTIVE" {
                    v.add(
                        format!("{path}.target"),
                        format!(
                            "directives/{}/items/{item_id} was already cancelled",
                            amendment.directive
                        ),
                    );
                } else if let AmendmentChange::Change(patch) = &amendment.change
                    && early.is_none()
                    && let Err(nested) = patch.apply(&item_to_draft(item), target.issue_date)
                {
                    v.extend_under(&format!("{path}.change_item.item"), nested);
                }
            }
            _ => v.add(
                format!("{path}.target"),
                format!(
                    "directives/{}/items/{item_id} is not an item of directives/{}",
                    amendment.directive, amendment.directive
                ),
            ),
        }
    }
    Ok(v)
}

/// A stored item as the domain's checked item.
fn item_to_draft(item: &directives::ItemRecord) -> DraftItem {
    let codes = |list: &[String]| {
        list.iter()
            .filter_map(|c| AgencyCode::parse(c).ok())
            .collect::<Vec<_>>()
    };
    DraftItem {
        reference: item.reference.clone(),
        text: item.text.clone(),
        lead: codes(&item.lead_agencies),
        coordinating: codes(&item.coordinating_agencies),
        due: item.due_date,
        recurrence: item
            .recurrence
            .as_deref()
            .and_then(dondoc_server::convert::recurrence_from_text),
        deadline_text: item.deadline_text.clone(),
        key_task: item.key_task,
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
        traceparent: dondoc_server::observe::current_traceparent(),
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
        let draft = draft_from_pb(directive, false)?;
        let state = &self.0;
        let method = method(service_names::DIRECTIVE, "CreateDirective");
        let mut mutation =
            Mutation::begin(&state.hot, &method, &principal.subject, &request.request_id).await?;
        if let Some(previous) = mutation.previous::<CreateDirectiveResponse>()? {
            return Ok(Response::new(previous));
        }
        check_agencies(mutation.conn(), &draft).await?;
        check_references(mutation.conn(), &draft, None)
            .await?
            .finish()?;
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
        let record = self
            .0
            .hot
            .run(async |conn| directives::get(conn, id, false).await)
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
        access::authorize(&principal, access::Action::ReadDirectives)?;
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
        query.visible_to_agency = access::reading_scope(&principal)?;
        // The token is bound to the filter and to what the caller may see.
        let token_scope = format!("{}|{:?}", request.filter, query.visible_to_agency);
        let before: Option<i64> = decode_page_token(&token_scope, &request.page_token)?;
        let records = self
            .0
            .hot
            .run(async |conn| directives::list(conn, &query, before, limit + 1).await)
            .await?;
        let (page, next_page_token) = paginate(records, limit, &token_scope, |last| last.id);
        Ok(Response::new(ListDirectivesResponse {
            directives: page.iter().map(directive_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn update_directive(
        &self,
        request: Request<UpdateDirectiveRequest>,
    ) -> Result<Response<UpdateDirectiveResponse>, Status> {
        let principal = principal(&request)?;
        access::may_write_directives(&principal)?;
        let request = request.into_inner();
        let given = request
            .directive
            .ok_or_else(|| Error::invalid("directive", "must be set"))?;
        let id = resource_id(&given.name, "directives", "directive.name").map_err(invalid)?;
        let mask: Vec<String> = request.update_mask.map(|m| m.paths).unwrap_or_default();
        check_update_mask(&mask)?;
        let state = &self.0;
        let method = method(service_names::DIRECTIVE, "UpdateDirective");
        let mut mutation =
            Mutation::begin(&state.hot, &method, &principal.subject, &request.request_id).await?;
        if let Some(previous) = mutation.previous::<UpdateDirectiveResponse>()? {
            return Ok(Response::new(previous));
        }
        let record = directives::get(mutation.conn(), id, true)
            .await?
            .ok_or_else(|| not_found(&given.name))?;
        if !given.etag.is_empty() && given.etag != etag(record.version) {
            return Err(Error::Aborted {
                resource: "directive",
                name: given.name,
            }
            .into());
        }
        if record.state != DirectiveState::Draft.as_str() {
            return Err(Error::precondition(
                "DIRECTIVE_NOT_DRAFT",
                format!(
                    "{} is {}: an issued directive is immutable; change its items with an amending directive",
                    given.name,
                    record.state.to_lowercase()
                ),
            )
            .into());
        }
        let mut merged = directive_to_pb(&record);
        for path in &mask {
            match path.as_str() {
                "kind" => merged.kind = given.kind,
                "number" => merged.number = given.number.clone(),
                "issuer" => merged.issuer = given.issuer.clone(),
                "signer" => merged.signer = given.signer.clone(),
                "place" => merged.place = given.place.clone(),
                "issue_date" => merged.issue_date = given.issue_date,
                "subject" => merged.subject = given.subject.clone(),
                "body" => merged.body = given.body.clone(),
                "recipients" => merged.recipients = given.recipients.clone(),
                "meeting" => merged.meeting = given.meeting.clone(),
                "links" => merged.links = given.links.clone(),
                "items" => merged.items = given.items.clone(),
                _ => merged.amendments = given.amendments.clone(),
            }
        }
        // Items keep the leniency of an imported draft only while they are not rewritten.
        let draft = draft_from_pb(merged, !mask.iter().any(|p| p == "items"))?;
        check_agencies(mutation.conn(), &draft).await?;
        check_references(mutation.conn(), &draft, Some(id))
            .await?
            .finish()?;
        let actor = actor_of(&principal, &state.clock);
        directives::replace_draft(mutation.conn(), id, &draft, &actor).await?;
        let directive = reload(mutation.conn(), id).await?;
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
        let response = UpdateDirectiveResponse {
            directive: Some(directive),
        };
        mutation.commit(&response).await?;
        state.wake.wake();
        Ok(Response::new(response))
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
        let mut mutation =
            Mutation::begin(&state.hot, &method, &principal.subject, &request.request_id).await?;
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
        check_leads(
            record
                .items
                .iter()
                .map(|i| (i.reference.as_str(), !i.lead_agencies.is_empty())),
        )?;
        // Agencies may have been merged or dissolved, and targets amended,
        // since the draft was written: what was checked then is checked again.
        let draft = draft_from_pb(directive_to_pb(&record), true).map_err(|e| {
            Error::precondition(
                "DIRECTIVE_INCOMPLETE",
                format!("the draft no longer checks: {e}"),
            )
        })?;
        let mut v = Violations::new();
        let references: Vec<(String, &AgencyCode)> = draft
            .agency_references()
            .into_iter()
            .map(|(field, code)| (format!("directive.{field}"), code))
            .collect();
        agencies::check_assignable(mutation.conn(), &references, &mut v).await?;
        if !v.is_empty() {
            return Err(Error::FailedPrecondition {
                reason: "AGENCY_NOT_ACTIVE",
                message: format!(
                    "the draft names agencies that no longer exist: {}; edit the draft first",
                    describe(v)
                ),
            }
            .into());
        }
        let mut targets: Vec<i64> = draft.amendments.iter().map(|a| a.directive).collect();
        targets.sort_unstable();
        targets.dedup();
        directives::lock(mutation.conn(), &targets).await?;
        let v = check_references(mutation.conn(), &draft, Some(id)).await?;
        if !v.is_empty() {
            return Err(Error::precondition(
                "AMENDMENT_NOT_APPLICABLE",
                format!(
                    "the amendments no longer apply: {}; edit the draft first",
                    describe(v)
                ),
            )
            .into());
        }
        let actor = actor_of(&principal, &state.clock);
        directives::mark_issued(mutation.conn(), id, &actor).await?;
        directives::touch_search(mutation.conn(), id).await?;
        let directive = reload(mutation.conn(), id).await?;
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
        // The amendments, applied atomically with the issue: one event per target.
        for target in targets {
            let target_record = directives::get(mutation.conn(), target, false)
                .await?
                .ok_or_else(|| Error::internal("an amended directive vanished"))?;
            let (mut added, mut changed, mut cancelled) = (Vec::new(), Vec::new(), Vec::new());
            for amendment in draft.amendments.iter().filter(|a| a.directive == target) {
                match (&amendment.change, amendment.item) {
                    (AmendmentChange::Add(item), _) => {
                        let item_id =
                            directives::insert_item(mutation.conn(), target, None, item).await?;
                        added.push(format!("directives/{target}/items/{item_id}"));
                    }
                    (AmendmentChange::Change(patch), Some(item_id)) => {
                        let stored = directives::items_by_id(mutation.conn(), &[item_id])
                            .await?
                            .pop()
                            .ok_or_else(|| Error::internal("an amended item vanished"))?;
                        let after = patch
                            .apply(&item_to_draft(&stored), target_record.issue_date)
                            .map_err(|v| {
                                Error::precondition(
                                    "AMENDMENT_NOT_APPLICABLE",
                                    format!(
                                        "the change no longer applies: {}",
                                        Error::InvalidArgument(v)
                                    ),
                                )
                            })?;
                        directives::update_item(mutation.conn(), item_id, &after).await?;
                        changed.push(format!("directives/{target}/items/{item_id}"));
                    }
                    (AmendmentChange::Cancel { .. }, Some(item_id)) => {
                        directives::cancel_item(mutation.conn(), item_id).await?;
                        cancelled.push(format!("directives/{target}/items/{item_id}"));
                    }
                    _ => return Err(Error::internal("an amendment without its item").into()),
                }
            }
            directives::touch(mutation.conn(), target, &actor).await?;
            let amended = reload(mutation.conn(), target).await?;
            append_event(
                mutation.conn(),
                &actor,
                "directive_items_amended",
                &amended,
                directive_event::Payload::DirectiveItemsAmended(DirectiveItemsAmended {
                    amended_by: directive.name.clone(),
                    amended_by_number: directive.number.clone(),
                    directive: Some(amended.clone()),
                    added_items: added,
                    changed_items: changed,
                    cancelled_items: cancelled,
                }),
            )
            .await?;
        }
        let response = IssueDirectiveResponse {
            directive: Some(directive),
        };
        mutation.commit(&response).await?;
        state.wake.wake();
        Ok(Response::new(response))
    }

    async fn revoke_directive(
        &self,
        request: Request<RevokeDirectiveRequest>,
    ) -> Result<Response<RevokeDirectiveResponse>, Status> {
        let principal = principal(&request)?;
        access::may_write_directives(&principal)?;
        let request = request.into_inner();
        let id = resource_id(&request.name, "directives", "name").map_err(invalid)?;
        let state = &self.0;
        let method = method(service_names::DIRECTIVE, "RevokeDirective");
        let mut mutation =
            Mutation::begin(&state.hot, &method, &principal.subject, &request.request_id).await?;
        if let Some(previous) = mutation.previous::<RevokeDirectiveResponse>()? {
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
        let reason = check_revocable(current, &request.reason)?;
        let actor = actor_of(&principal, &state.clock);
        directives::mark_revoked(mutation.conn(), id, &reason, &actor).await?;
        let directive = reload(mutation.conn(), id).await?;
        append_event(
            mutation.conn(),
            &actor,
            "directive_revoked",
            &directive,
            directive_event::Payload::DirectiveRevoked(DirectiveRevoked {
                directive: Some(directive.clone()),
            }),
        )
        .await?;
        let response = RevokeDirectiveResponse {
            directive: Some(directive),
        };
        mutation.commit(&response).await?;
        state.wake.wake();
        Ok(Response::new(response))
    }

    async fn search_directives(
        &self,
        request: Request<SearchDirectivesRequest>,
    ) -> Result<Response<SearchDirectivesResponse>, Status> {
        let principal = principal(&request)?;
        let scope = access::reading_scope(&principal)?;
        let request = request.into_inner();
        let limit = SEARCH_PAGE.resolve(request.page_size)?;
        let words = search_words(&request.query);
        if words.is_empty() || request.query.chars().count() > 500 {
            return Err(Error::invalid("query", "words to find: 1 to 500 characters").into());
        }
        let token_scope = format!("search|{words}|{scope:?}");
        let after: Option<(f32, i64)> = decode_page_token(&token_scope, &request.page_token)?;
        let hits = self
            .0
            .hot
            .run(async |conn| {
                directives::search(conn, &words, scope.as_deref(), after, limit + 1).await
            })
            .await?;
        let (page, next_page_token) = paginate(hits, limit, &token_scope, |last| {
            (last.rank, last.record.id)
        });
        let terms: Vec<String> = words.split(' ').map(str::to_string).collect();
        let results = page
            .iter()
            .map(|hit| {
                let r = &hit.record;
                let snippet = std::iter::once(r.subject.as_str())
                    .chain(r.items.iter().map(|i| i.text.as_str()))
                    .chain(std::iter::once(r.body.as_str()))
                    .find_map(|text| snippet(text, &terms, 12))
                    .unwrap_or_default();
                DirectiveSearchResult {
                    directive: Some(directive_to_pb(r)),
                    score: hit.rank,
                    snippet,
                }
            })
            .collect();
        Ok(Response::new(SearchDirectivesResponse {
            results,
            next_page_token,
        }))
    }

    async fn parse_directive(
        &self,
        request: Request<ParseDirectiveRequest>,
    ) -> Result<Response<ParseDirectiveResponse>, Status> {
        let principal = principal(&request)?;
        access::authorize(&principal, access::Action::ParseDocuments)?;
        let (response, _) = self.propose(request.into_inner(), "").await?;
        Ok(Response::new(response))
    }

    async fn import_directive(
        &self,
        request: Request<ImportDirectiveRequest>,
    ) -> Result<Response<ImportDirectiveResponse>, Status> {
        let principal = principal(&request)?;
        access::may_write_directives(&principal)?;
        let request = request.into_inner();
        let source = request
            .source
            .ok_or_else(|| Error::invalid("source", "must be set"))?;
        let state = &self.0;
        let method = method(service_names::DIRECTIVE, "ImportDirective");
        let mut mutation =
            Mutation::begin(&state.hot, &method, &principal.subject, &request.request_id).await?;
        if let Some(previous) = mutation.previous::<ImportDirectiveResponse>()? {
            return Ok(Response::new(previous));
        }
        let (parse, proposal) = self.propose(source, "source.").await?;
        let Some(issuer) = proposal.issuer.clone() else {
            return Err(Error::precondition(
                "ISSUER_UNRESOLVED",
                format!(
                    "the issuer {:?} is not in the agency directory: register it (or an alias) first",
                    proposal.issuer_text.clone().unwrap_or_default()
                ),
            )
            .into());
        };
        let fields = DraftFields {
            kind: Some(proposal.kind),
            number: proposal
                .number
                .as_ref()
                .map(|n| n.as_str().to_string())
                .unwrap_or_default(),
            issuer: issuer.name(),
            signer: proposal.signer.clone(),
            place: proposal.place.clone(),
            issue_date: proposal.issue_date,
            subject: proposal.subject.clone(),
            body: proposal.body.clone(),
            recipients: proposal.recipients.clone(),
            meeting: None,
            items: proposal
                .items
                .iter()
                .map(|i| ItemFields {
                    reference: i.reference.clone(),
                    text: i.text.clone(),
                    lead: i.lead.iter().map(AgencyCode::name).collect(),
                    coordinating: i.coordinating.iter().map(AgencyCode::name).collect(),
                    due: i.due,
                    recurrence: i.recurrence,
                    deadline_text: i.deadline_text.clone(),
                    key_task: false,
                })
                .collect(),
            links: Vec::new(),
            amendments: Vec::new(),
            lead_optional: true,
        };
        let draft = Draft::parse(fields).map_err(|v| {
            Error::precondition(
                "DOCUMENT_INCOMPLETE",
                format!(
                    "the document does not make a draft: {}",
                    Error::InvalidArgument(v)
                ),
            )
        })?;
        check_agencies(mutation.conn(), &draft).await?;
        let actor = actor_of(&principal, &state.clock);
        let id = directives::insert(mutation.conn(), &draft, &actor).await?;
        let directive = reload(mutation.conn(), id).await?;
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
        let response = ImportDirectiveResponse {
            directive: Some(directive),
            parse: Some(parse),
        };
        mutation.commit(&response).await?;
        state.wake.wake();
        Ok(Response::new(response))
    }
}

const SEARCH_PAGE: PageSize = PageSize {
    default: 20,
    max: 100,
};

/// Largest document accepted by Parse and Import.
const MAX_DOCUMENT_BYTES: usize = 2 * 1024 * 1024;

fn describe(v: Violations) -> String {
    v.into_inner()
        .into_iter()
        .map(|x| format!("{}: {}", x.field, x.description))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn reload(conn: &mut sqlx::PgConnection, id: i64) -> Result<pb::Directive, Error> {
    let record = directives::get(conn, id, false)
        .await?
        .ok_or_else(|| Error::internal("a directive vanished inside its own transaction"))?;
    Ok(directive_to_pb(&record))
}

impl Directives {
    /// Parses a document and resolves its agency names against the
    /// directory: the answer of ParseDirective, and the proposal Import saves.
    async fn propose(
        &self,
        request: ParseDirectiveRequest,
        prefix: &str,
    ) -> Result<(ParseDirectiveResponse, import::Proposal), Error> {
        use parse_directive_request::Source;
        let text = match request.source {
            None => {
                return Err(Error::invalid(
                    format!("{prefix}source"),
                    "set text or docx",
                ));
            }
            Some(Source::Text(text)) => {
                if text.trim().is_empty() || text.len() > MAX_DOCUMENT_BYTES {
                    return Err(Error::invalid(
                        format!("{prefix}text"),
                        format!("the document's text: 1 byte to {MAX_DOCUMENT_BYTES} bytes"),
                    ));
                }
                text
            }
            Some(Source::Docx(bytes)) => {
                if bytes.len() > MAX_DOCUMENT_BYTES {
                    return Err(Error::invalid(
                        format!("{prefix}docx"),
                        format!("at most {MAX_DOCUMENT_BYTES} bytes"),
                    ));
                }
                dondoc_docparse::docx_to_text(&bytes).map_err(|e| {
                    Error::invalid(
                        format!("{prefix}docx"),
                        format!("not a readable .docx: {e}"),
                    )
                })?
            }
        };
        let as_of_given = date_from_pb(
            request.resolve_as_of.as_ref(),
            &format!("{prefix}resolve_as_of"),
        )
        .map_err(invalid)?;
        let parsed = dondoc_docparse::parse_text(&text);
        let as_of = as_of_given
            .or(parsed.document.issue_date)
            .unwrap_or_else(|| self.0.clock.today());
        let mut names: Vec<String> = Vec::new();
        for name in parsed.document.issuer.iter().chain(
            parsed
                .tasks
                .iter()
                .flat_map(|t| t.lead.iter().chain(t.coordinating.iter())),
        ) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let resolutions = self
            .0
            .hot
            .run(async |conn| resolve_all(conn, &names, as_of).await)
            .await?;
        let proposal = import::propose(&parsed, &text, &mut |name| {
            resolutions
                .get(name)
                .cloned()
                .unwrap_or_else(|| NameResolution::Unresolved("not looked up".into()))
        });
        let directive = proposal_to_pb(&proposal);
        let response = ParseDirectiveResponse {
            directive: Some(directive),
            item_notes: proposal
                .notes
                .iter()
                .map(|n| ParsedItemNote {
                    reference: n.reference.clone(),
                    confidence: n.confidence,
                    warnings: n.warnings.clone(),
                })
                .collect(),
            unresolved_agencies: proposal.unresolved.clone(),
            warnings: proposal.warnings.clone(),
        };
        Ok((response, proposal))
    }
}

/// What each agency name of a parsed document designates on `as_of`: an
/// active agency, the successor of one merged or split (with a note), or
/// why none was found.
async fn resolve_all(
    conn: &mut sqlx::PgConnection,
    names: &[String],
    as_of: chrono::NaiveDate,
) -> Result<std::collections::HashMap<String, NameResolution>, Error> {
    let picked = super::agencies::resolve_names(conn, names, as_of).await?;
    let mut resolutions: std::collections::HashMap<String, NameResolution> =
        std::collections::HashMap::new();
    for (name, result) in picked {
        let resolution = match result {
            Err(Unresolved::Unknown) => {
                NameResolution::Unresolved("not in the agency directory".into())
            }
            Err(Unresolved::Ambiguous(codes)) => NameResolution::Unresolved(format!(
                "designates several agencies: {}",
                codes.join(", ")
            )),
            Ok(code) => {
                let record = agencies::get(conn, &code).await?;
                match record {
                    Some(r) if r.state == "ACTIVE" => NameResolution::Agency {
                        code: AgencyCode::parse(&code).map_err(Error::internal)?,
                        note: None,
                    },
                    Some(r) => {
                        let now = agencies::current_of(conn, &code).await?;
                        let since = r
                            .effective_until
                            .and_then(|d| d.succ_opt())
                            .map(|d| format!(" from {d}"))
                            .unwrap_or_default();
                        match now.first() {
                            None => NameResolution::Unresolved(format!(
                                "agencies/{code} was {}{since} and has no successor",
                                r.state.to_lowercase()
                            )),
                            Some(first) => NameResolution::Agency {
                                code: AgencyCode::parse(&first.code).map_err(Error::internal)?,
                                note: Some(format!(
                                    "agencies/{code} was {}{since} into {}: agencies/{} proposed",
                                    r.state.to_lowercase(),
                                    now.iter()
                                        .map(|a| format!("agencies/{}", a.code))
                                        .collect::<Vec<_>>()
                                        .join(", "),
                                    first.code
                                )),
                            },
                        }
                    }
                    None => NameResolution::Unresolved("not in the agency directory".into()),
                }
            }
        };
        resolutions.insert(name, resolution);
    }
    Ok(resolutions)
}

fn proposal_to_pb(p: &import::Proposal) -> pb::Directive {
    pb::Directive {
        kind: directive_kind_to_pb(p.kind) as i32,
        number: p
            .number
            .as_ref()
            .map(|n| n.as_str().to_string())
            .unwrap_or_default(),
        issuer: p.issuer.as_ref().map(AgencyCode::name).unwrap_or_default(),
        signer: Some(pb::Signer {
            full_name: p.signer.full_name.clone(),
            title: p.signer.title.clone(),
            capacities: p.signer.capacities.clone(),
        }),
        place: p.place.clone(),
        issue_date: opt_date_to_pb(p.issue_date),
        subject: p.subject.clone(),
        body: p.body.clone(),
        recipients: p.recipients.clone(),
        items: p
            .items
            .iter()
            .map(|i| pb::DirectiveItem {
                reference: i.reference.clone(),
                text: i.text.clone(),
                lead_agencies: i.lead.iter().map(AgencyCode::name).collect(),
                coordinating_agencies: i.coordinating.iter().map(AgencyCode::name).collect(),
                due_date: opt_date_to_pb(i.due),
                recurrence: i.recurrence.map(recurrence_to_pb),
                deadline_text: i.deadline_text.clone(),
                state: pb::ItemState::Active as i32,
                ..Default::default()
            })
            .collect(),
        state: pb::DirectiveState::Draft as i32,
        ..Default::default()
    }
}
