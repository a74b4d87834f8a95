//! TaskService.

use std::sync::Arc;

use dondoc_contracts::assignments::v1::task_service_server::TaskService;
use dondoc_contracts::assignments::v1::*;
use dondoc_contracts::service_names;
use dondoc_errors::{Error, Violations};
use dondoc_identity::{Principal, principal};
use dondoc_server::actor_of;
use dondoc_server::convert::{
    agency_code, date_from_pb, date_to_pb, recurrence_from_pb, recurrence_to_text, resource_id,
    stamp,
};
use dondoc_server::listing::{Op, PageSize, decode_page_token, encode_page_token, parse_filter};
use dondoc_server::mutation::Mutation;
use tonic::{Request, Response, Status};

use super::convert::{etag, priority_from_pb, stage_to_pb, task_to_pb};
use crate::State;
use crate::domain::access;
use crate::domain::deadline::DeadlineState;
use crate::domain::stage::{Stage, Transition, next};
use crate::publish;
use crate::storage::tasks::{self, NewTask, TaskQuery, TaskRecord, sort_due};

pub struct Tasks(pub Arc<State>);

const PAGE: PageSize = PageSize {
    default: 50,
    max: 500,
};
const FILTER_FIELDS: [&str; 7] = [
    "agency",
    "lead",
    "stage",
    "deadline_state",
    "due_date",
    "key_task",
    "directive",
];

fn invalid(v: dondoc_errors::FieldViolation) -> Error {
    Error::InvalidArgument(vec![v])
}

fn not_found(name: &str) -> Error {
    Error::NotFound {
        resource: "task",
        name: name.to_string(),
    }
}

fn method(rpc: &str) -> String {
    format!("/{}/{rpc}", service_names::TASK)
}

fn agency_names(names: &[String], field: &str, v: &mut Violations) -> Vec<String> {
    let mut codes: Vec<String> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match agency_code(name, &format!("{field}[{i}]")) {
            Ok(code) if codes.contains(&code) => {
                v.add(format!("{field}[{i}]"), format!("{name} is listed twice"))
            }
            Ok(code) => codes.push(code),
            Err(e) => v.add(e.field, e.description),
        }
    }
    codes
}

/// Which transition an RPC makes, and who may make it.
#[derive(Clone, Copy)]
enum Decider {
    Lead,
    Office,
}

impl Tasks {
    fn view(&self, record: &TaskRecord) -> Task {
        task_to_pb(record, self.0.clock.today(), &self.0.policy)
    }

    #[allow(clippy::too_many_arguments)]
    async fn transition<R: prost::Message + Default>(
        &self,
        principal: Principal,
        rpc: &str,
        name: &str,
        etag_given: &str,
        request_id: &str,
        transition: Transition,
        who: Decider,
        reason: &str,
        wrap: impl FnOnce(Task) -> R,
    ) -> Result<Response<R>, Status> {
        let id = resource_id(name, "tasks", "name").map_err(invalid)?;
        if transition.needs_reason() && reason.trim().is_empty() {
            return Err(Error::invalid("reason", "a reason is required").into());
        }
        if reason.chars().count() > 4000 {
            return Err(Error::invalid("reason", "at most 4000 characters").into());
        }
        let state = &self.0;
        let mut mutation =
            Mutation::begin(&state.pool, &method(rpc), &principal.subject, request_id).await?;
        if let Some(previous) = mutation.previous::<R>()? {
            return Ok(Response::new(previous));
        }
        let record = tasks::get(mutation.conn(), id, true)
            .await?
            .ok_or_else(|| not_found(name))?;
        access::may_read(
            &principal,
            &record.lead_agencies,
            &record.coordinating_agencies,
        )?;
        match who {
            Decider::Lead => access::must_lead(&principal, &record.lead_agencies)?,
            Decider::Office => access::must_be_office(&principal)?,
        }
        if !etag_given.is_empty() && etag_given != etag(record.version) {
            return Err(Error::Aborted {
                resource: "task",
                name: name.to_string(),
            }
            .into());
        }
        let from = record.stage()?;
        let to = next(from, transition)?;
        let actor = actor_of(&principal, &state.clock);
        let completion = (to == Stage::Completed).then(|| state.clock.today());
        let updated = tasks::set_stage(mutation.conn(), id, to, completion, &actor).await?;
        tasks::record_history(
            mutation.conn(),
            id,
            transition.action(),
            Some(from),
            to,
            updated.due_date,
            reason,
            &actor,
        )
        .await?;
        let task = self.view(&updated);
        let kind = match transition {
            Transition::Start => TaskEventKind::Started,
            Transition::Submit => TaskEventKind::Submitted,
            Transition::Confirm => TaskEventKind::Completed,
            Transition::Return => TaskEventKind::Returned,
            Transition::Refuse => TaskEventKind::Refused,
            Transition::Reassign => TaskEventKind::Reassigned,
            Transition::Withdraw => TaskEventKind::Withdrawn,
            Transition::Transfer => TaskEventKind::Transferred,
        };
        publish::task_event(mutation.conn(), &actor, kind, &task, reason).await?;
        let response = wrap(task);
        mutation.commit(&response).await?;
        state.wake.wake();
        Ok(Response::new(response))
    }
}

#[tonic::async_trait]
impl TaskService for Tasks {
    async fn create_task(
        &self,
        request: Request<CreateTaskRequest>,
    ) -> Result<Response<CreateTaskResponse>, Status> {
        let principal = principal(&request)?;
        access::must_be_office(&principal)?;
        let request = request.into_inner();
        let task = request
            .task
            .ok_or_else(|| Error::invalid("task", "must be set"))?;
        let mut v = Violations::new();
        let title = task.title.trim().to_string();
        if title.is_empty() || title.chars().count() > 500 {
            v.add("task.title", "1 to 500 characters");
        }
        if task.lead_agencies.is_empty() {
            v.add("task.lead_agencies", "at least one lead agency is required");
        }
        let lead = agency_names(&task.lead_agencies, "task.lead_agencies", &mut v);
        let coordinating = agency_names(
            &task.coordinating_agencies,
            "task.coordinating_agencies",
            &mut v,
        );
        if let Some(code) = coordinating.iter().find(|c| lead.contains(c)) {
            v.add(
                "task.coordinating_agencies",
                format!("agencies/{code} is already a lead agency"),
            );
        }
        let today = self.0.clock.today();
        let due = date_from_pb(task.due_date.as_ref(), "task.due_date")
            .map_err(|e| v.add(e.field, e.description))
            .ok()
            .flatten();
        if let Some(due) = due
            && due < today
        {
            v.add("task.due_date", format!("{due} is already past"));
        }
        let recurrence = recurrence_from_pb(task.recurrence.as_ref(), "task.recurrence")
            .map_err(|e| v.add(e.field, e.description))
            .ok()
            .flatten();
        if due.is_some() && recurrence.is_some() {
            v.add(
                "task.recurrence",
                "a task has a due date or a recurrence, not both",
            );
        }
        let assigner = match principal.agency.clone() {
            Some(a) => a,
            None => {
                v.add("task.assigner", "the caller acts for no agency");
                String::new()
            }
        };
        v.finish()?;
        let state = &self.0;
        let mut mutation = Mutation::begin(
            &state.pool,
            &method("CreateTask"),
            &principal.subject,
            &request.request_id,
        )
        .await?;
        if let Some(previous) = mutation.previous::<CreateTaskResponse>()? {
            return Ok(Response::new(previous));
        }
        let actor = actor_of(&principal, &state.clock);
        let record = tasks::insert(
            mutation.conn(),
            &NewTask {
                title,
                description: task.description,
                directive_id: None,
                directive_item_id: None,
                directive_number: String::new(),
                reference: String::new(),
                lead_agencies: lead,
                coordinating_agencies: coordinating,
                assigner,
                assign_date: today,
                due_date: due,
                recurrence: recurrence.map(recurrence_to_text),
                priority: priority_from_pb(task.priority).to_string(),
                key_task: task.key_task,
            },
            &actor,
        )
        .await?
        .ok_or_else(|| Error::internal("a direct task conflicted on its directive item"))?;
        let task = self.view(&record);
        publish::task_event(mutation.conn(), &actor, TaskEventKind::Assigned, &task, "").await?;
        let response = CreateTaskResponse { task: Some(task) };
        mutation.commit(&response).await?;
        state.wake.wake();
        Ok(Response::new(response))
    }

    async fn get_task(
        &self,
        request: Request<GetTaskRequest>,
    ) -> Result<Response<GetTaskResponse>, Status> {
        let principal = principal(&request)?;
        let name = &request.get_ref().name;
        let id = resource_id(name, "tasks", "name").map_err(invalid)?;
        let mut conn = self
            .0
            .pool
            .acquire()
            .await
            .map_err(dondoc_database::storage_error)?;
        let record = tasks::get(&mut conn, id, false)
            .await?
            .ok_or_else(|| not_found(name))?;
        access::may_read(
            &principal,
            &record.lead_agencies,
            &record.coordinating_agencies,
        )?;
        Ok(Response::new(GetTaskResponse {
            task: Some(self.view(&record)),
        }))
    }

    async fn list_tasks(
        &self,
        request: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        let principal = principal(&request)?;
        let request = request.into_inner();
        let limit = PAGE.resolve(request.page_size)?;
        let mut query = TaskQuery::default();
        for c in parse_filter(&request.filter, &FILTER_FIELDS)? {
            let eq = || -> Result<(), Error> {
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
                "agency" => {
                    eq()?;
                    query.agency = Some(agency_code(&c.value, "filter").map_err(invalid)?);
                }
                "lead" => {
                    eq()?;
                    query.lead = Some(agency_code(&c.value, "filter").map_err(invalid)?);
                }
                "stage" => {
                    eq()?;
                    query.stage = Some(Stage::parse(&c.value).ok_or_else(|| {
                        Error::invalid("filter", format!("unknown stage {:?}", c.value))
                    })?);
                }
                "deadline_state" => {
                    eq()?;
                    query.deadline_state =
                        Some(DeadlineState::parse(&c.value).ok_or_else(|| {
                            Error::invalid(
                                "filter",
                                format!("unknown deadline state {:?}", c.value),
                            )
                        })?);
                }
                "key_task" => {
                    eq()?;
                    query.key_task = Some(match c.value.as_str() {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(Error::invalid(
                                "filter",
                                format!("key_task is true or false, not {other:?}"),
                            )
                            .into());
                        }
                    });
                }
                "directive" => {
                    eq()?;
                    query.directive =
                        Some(resource_id(&c.value, "directives", "filter").map_err(invalid)?);
                }
                _ => {
                    let date =
                        chrono::NaiveDate::parse_from_str(&c.value, "%Y-%m-%d").map_err(|_| {
                            Error::invalid(
                                "filter",
                                format!("due_date takes \"YYYY-MM-DD\", not {:?}", c.value),
                            )
                        })?;
                    match c.op {
                        Op::Ge => query.due_from = Some(date),
                        Op::Gt => query.due_from = date.succ_opt(),
                        Op::Le => query.due_until = Some(date),
                        Op::Lt => query.due_until = date.pred_opt(),
                        Op::Eq => {
                            query.due_from = Some(date);
                            query.due_until = Some(date);
                        }
                        Op::Ne => {
                            return Err(
                                Error::invalid("filter", "due_date does not support !=").into()
                            );
                        }
                    }
                }
            }
        }
        if !principal.reads_all() {
            query.visible_to_agency = Some(
                principal
                    .agency
                    .clone()
                    .ok_or_else(|| Error::denied("NO_AGENCY", "the caller acts for no agency"))?,
            );
        }
        let today = self.0.clock.today();
        let scope = format!("{}|{:?}", request.filter, query.visible_to_agency);
        let after: Option<(chrono::NaiveDate, i64)> =
            decode_page_token(&scope, &request.page_token)?;
        let mut conn = self
            .0
            .pool
            .acquire()
            .await
            .map_err(dondoc_database::storage_error)?;
        let records = tasks::list(&mut conn, &query, today, after, limit + 1).await?;
        let more = records.len() as i64 > limit;
        let page: Vec<_> = records.into_iter().take(limit as usize).collect();
        let next_page_token = match (more, page.last()) {
            (true, Some(last)) => encode_page_token(&scope, &(sort_due(last), last.id)),
            _ => String::new(),
        };
        Ok(Response::new(ListTasksResponse {
            tasks: page.iter().map(|r| self.view(r)).collect(),
            next_page_token,
        }))
    }

    async fn update_task(
        &self,
        _: Request<UpdateTaskRequest>,
    ) -> Result<Response<UpdateTaskResponse>, Status> {
        Err(Error::Unimplemented("UpdateTask").into())
    }

    async fn start_task(
        &self,
        request: Request<StartTaskRequest>,
    ) -> Result<Response<StartTaskResponse>, Status> {
        let principal = principal(&request)?;
        let r = request.into_inner();
        self.transition(
            principal,
            "StartTask",
            &r.name,
            &r.etag,
            &r.request_id,
            Transition::Start,
            Decider::Lead,
            "",
            |task| StartTaskResponse { task: Some(task) },
        )
        .await
    }

    async fn submit_task(
        &self,
        request: Request<SubmitTaskRequest>,
    ) -> Result<Response<SubmitTaskResponse>, Status> {
        let principal = principal(&request)?;
        let r = request.into_inner();
        self.transition(
            principal,
            "SubmitTask",
            &r.name,
            &r.etag,
            &r.request_id,
            Transition::Submit,
            Decider::Lead,
            &r.summary,
            |task| SubmitTaskResponse { task: Some(task) },
        )
        .await
    }

    async fn confirm_task(
        &self,
        request: Request<ConfirmTaskRequest>,
    ) -> Result<Response<ConfirmTaskResponse>, Status> {
        let principal = principal(&request)?;
        let r = request.into_inner();
        self.transition(
            principal,
            "ConfirmTask",
            &r.name,
            &r.etag,
            &r.request_id,
            Transition::Confirm,
            Decider::Office,
            &r.note,
            |task| ConfirmTaskResponse { task: Some(task) },
        )
        .await
    }

    async fn return_task(
        &self,
        request: Request<ReturnTaskRequest>,
    ) -> Result<Response<ReturnTaskResponse>, Status> {
        let principal = principal(&request)?;
        let r = request.into_inner();
        self.transition(
            principal,
            "ReturnTask",
            &r.name,
            &r.etag,
            &r.request_id,
            Transition::Return,
            Decider::Office,
            &r.reason,
            |task| ReturnTaskResponse { task: Some(task) },
        )
        .await
    }

    async fn refuse_task(
        &self,
        request: Request<RefuseTaskRequest>,
    ) -> Result<Response<RefuseTaskResponse>, Status> {
        let principal = principal(&request)?;
        let r = request.into_inner();
        self.transition(
            principal,
            "RefuseTask",
            &r.name,
            &r.etag,
            &r.request_id,
            Transition::Refuse,
            Decider::Lead,
            &r.reason,
            |task| RefuseTaskResponse { task: Some(task) },
        )
        .await
    }

    async fn reassign_task(
        &self,
        _: Request<ReassignTaskRequest>,
    ) -> Result<Response<ReassignTaskResponse>, Status> {
        Err(Error::Unimplemented("ReassignTask").into())
    }

    async fn withdraw_task(
        &self,
        request: Request<WithdrawTaskRequest>,
    ) -> Result<Response<WithdrawTaskResponse>, Status> {
        let principal = principal(&request)?;
        let r = request.into_inner();
        self.transition(
            principal,
            "WithdrawTask",
            &r.name,
            &r.etag,
            &r.request_id,
            Transition::Withdraw,
            Decider::Office,
            &r.reason,
            |task| WithdrawTaskResponse { task: Some(task) },
        )
        .await
    }

    async fn report_progress(
        &self,
        _: Request<ReportProgressRequest>,
    ) -> Result<Response<ReportProgressResponse>, Status> {
        Err(Error::Unimplemented("ReportProgress").into())
    }

    async fn list_progress_reports(
        &self,
        _: Request<ListProgressReportsRequest>,
    ) -> Result<Response<ListProgressReportsResponse>, Status> {
        Err(Error::Unimplemented("ListProgressReports").into())
    }

    async fn request_extension(
        &self,
        _: Request<RequestExtensionRequest>,
    ) -> Result<Response<RequestExtensionResponse>, Status> {
        Err(Error::Unimplemented("RequestExtension").into())
    }

    async fn decide_extension(
        &self,
        _: Request<DecideExtensionRequest>,
    ) -> Result<Response<DecideExtensionResponse>, Status> {
        Err(Error::Unimplemented("DecideExtension").into())
    }

    async fn list_extension_requests(
        &self,
        _: Request<ListExtensionRequestsRequest>,
    ) -> Result<Response<ListExtensionRequestsResponse>, Status> {
        Err(Error::Unimplemented("ListExtensionRequests").into())
    }

    async fn list_task_history(
        &self,
        request: Request<ListTaskHistoryRequest>,
    ) -> Result<Response<ListTaskHistoryResponse>, Status> {
        let principal = principal(&request)?;
        let name = &request.get_ref().parent;
        let id = resource_id(name, "tasks", "parent").map_err(invalid)?;
        let mut conn = self
            .0
            .pool
            .acquire()
            .await
            .map_err(dondoc_database::storage_error)?;
        let record = tasks::get(&mut conn, id, false)
            .await?
            .ok_or_else(|| not_found(name))?;
        access::may_read(
            &principal,
            &record.lead_agencies,
            &record.coordinating_agencies,
        )?;
        let rows: Vec<(String, Option<String>, String, Option<chrono::NaiveDate>, String, String, Option<String>, chrono::DateTime<chrono::Utc>)> =
            sqlx::query_as("SELECT action, from_stage, to_stage, due_date, reason, actor, agency, at FROM task_history WHERE task_id = $1 ORDER BY id")
                .bind(id)
                .fetch_all(&mut *conn)
                .await
                .map_err(dondoc_database::storage_error)?;
        let stage = |s: &str| Stage::parse(s).map(|s| stage_to_pb(s) as i32).unwrap_or(0);
        Ok(Response::new(ListTaskHistoryResponse {
            entries: rows
                .into_iter()
                .map(
                    |(action, from, to, due, reason, actor, agency, at)| TaskHistoryEntry {
                        action,
                        from_stage: from.as_deref().map(stage).unwrap_or(0),
                        to_stage: stage(&to),
                        due_date: due.map(date_to_pb),
                        reason,
                        stamp: Some(stamp(&actor, agency.as_deref(), at)),
                    },
                )
                .collect(),
        }))
    }
}
