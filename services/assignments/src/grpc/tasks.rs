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
use dondoc_server::listing::{Op, PageSize, decode_page_token, paginate, parse_filter};
use dondoc_server::mutation::Mutation;
use sqlx::PgConnection;
use tonic::{Request, Response, Status};

use super::convert::{
    etag, extension_to_pb, priority_from_pb, progress_to_pb, stage_to_pb, task_to_pb,
};
use crate::State;
use crate::domain::access;
use crate::domain::deadline::DeadlineState;
use crate::domain::extension::{self, ExtensionState, TaskDeadline};
use crate::domain::stage::{Stage, Transition, next};
use crate::publish;
use crate::storage::tasks::{self, NewTask, TaskQuery, TaskRecord, sort_due};
use crate::storage::{extensions, progress};

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

/// The task and request ids of "tasks/{id}/extensionRequests/{request}".
fn extension_name(name: &str) -> Result<(i64, i64), Error> {
    name.strip_prefix("tasks/")
        .and_then(|rest| rest.split_once("/extensionRequests/"))
        .and_then(|(task, request)| Some((task.parse::<i64>().ok()?, request.parse::<i64>().ok()?)))
        .filter(|(task, request)| *task > 0 && *request > 0)
        .ok_or_else(|| {
            Error::invalid(
                "name",
                format!(
                    "{name:?} is not a name of the form tasks/{{id}}/extensionRequests/{{request}}"
                ),
            )
        })
}

/// The task, locked in the mutation's transaction.
async fn locked(mutation: &mut Mutation, id: i64, name: &str) -> Result<TaskRecord, Error> {
    tasks::get(mutation.conn(), id, true)
        .await?
        .ok_or_else(|| not_found(name))
}

/// ABORTED when an etag is given and does not match.
fn check_etag(record: &TaskRecord, given: &str, name: &str) -> Result<(), Error> {
    if !given.is_empty() && given != etag(record.version) {
        return Err(Error::Aborted {
            resource: "task",
            name: name.to_string(),
        });
    }
    Ok(())
}

impl Tasks {
    async fn begin(
        &self,
        principal: &Principal,
        rpc: &str,
        request_id: &str,
    ) -> Result<Mutation, Error> {
        Mutation::begin(&self.0.hot, &method(rpc), &principal.subject, request_id).await
    }

    /// The task named by `parent`, when the caller may read it.
    async fn readable(
        conn: &mut PgConnection,
        principal: &Principal,
        parent: &str,
    ) -> Result<TaskRecord, Error> {
        let id = resource_id(parent, "tasks", "parent").map_err(invalid)?;
        let record = tasks::get(conn, id, false)
            .await?
            .ok_or_else(|| not_found(parent))?;
        access::may_read(
            principal,
            &record.lead_agencies,
            &record.coordinating_agencies,
        )?;
        Ok(record)
    }

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
            Mutation::begin(&state.hot, &method(rpc), &principal.subject, request_id).await?;
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
        check_etag(&record, etag_given, name)?;
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
            &state.hot,
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
        // A recurring duty gets its current period's occurrence at once.
        crate::recurring::generate_for(mutation.conn(), &record, today, &actor, &state.policy)
            .await?;
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
        let record = self
            .0
            .hot
            .run(async |conn| tasks::get(conn, id, false).await)
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
        let records = self
            .0
            .hot
            .run(async |conn| tasks::list(conn, &query, today, after, limit + 1).await)
            .await?;
        let (page, next_page_token) =
            paginate(records, limit, &scope, |last| (sort_due(last), last.id));
        Ok(Response::new(ListTasksResponse {
            tasks: page.iter().map(|r| self.view(r)).collect(),
            next_page_token,
        }))
    }

    async fn update_task(
        &self,
        request: Request<UpdateTaskRequest>,
    ) -> Result<Response<UpdateTaskResponse>, Status> {
        let principal = principal(&request)?;
        access::must_be_office(&principal)?;
        let request = request.into_inner();
        let task = request
            .task
            .ok_or_else(|| Error::invalid("task", "must be set"))?;
        let id = resource_id(&task.name, "tasks", "task.name").map_err(invalid)?;
        let mut v = Violations::new();
        let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            v.add(
                "update_mask",
                "name the fields to change: title, description, priority, key_task",
            );
        }
        let (mut title, mut description, mut priority, mut key_task) = (None, None, None, None);
        for path in &paths {
            match path.as_str() {
                "title" => {
                    let t = task.title.trim().to_string();
                    if t.is_empty() || t.chars().count() > 500 {
                        v.add("task.title", "1 to 500 characters");
                    }
                    title = Some(t);
                }
                "description" => {
                    if task.description.chars().count() > 20_000 {
                        v.add("task.description", "at most 20000 characters");
                    }
                    description = Some(task.description.clone());
                }
                "priority" => {
                    if Priority::try_from(task.priority).is_err() {
                        v.add("task.priority", format!("{} is not a priority", task.priority));
                    }
                    priority = Some(priority_from_pb(task.priority));
                }
                "key_task" => key_task = Some(task.key_task),
                other => v.add(
                    "update_mask",
                    format!("{other:?} cannot be updated; updatable fields are title, description, priority, key_task"),
                ),
            }
        }
        v.finish()?;
        let state = &self.0;
        let mut mutation = self
            .begin(&principal, "UpdateTask", &request.request_id)
            .await?;
        if let Some(previous) = mutation.previous::<UpdateTaskResponse>()? {
            return Ok(Response::new(previous));
        }
        let record = locked(&mut mutation, id, &task.name).await?;
        check_etag(&record, &task.etag, &task.name)?;
        let stage = record.stage()?;
        let actor = actor_of(&principal, &state.clock);
        let updated = tasks::update_fields(
            mutation.conn(),
            id,
            title.as_deref(),
            description.as_deref(),
            priority,
            key_task,
            &actor,
        )
        .await?;
        let changed = paths.join(", ");
        tasks::record_history(
            mutation.conn(),
            id,
            "UPDATED",
            Some(stage),
            stage,
            None,
            &changed,
            &actor,
        )
        .await?;
        let view = self.view(&updated);
        publish::task_event(
            mutation.conn(),
            &actor,
            TaskEventKind::Updated,
            &view,
            &changed,
        )
        .await?;
        let response = UpdateTaskResponse { task: Some(view) };
        mutation.commit(&response).await?;
        state.wake.wake();
        Ok(Response::new(response))
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
        request: Request<ReassignTaskRequest>,
    ) -> Result<Response<ReassignTaskResponse>, Status> {
        let principal = principal(&request)?;
        access::must_be_office(&principal)?;
        let r = request.into_inner();
        let id = resource_id(&r.name, "tasks", "name").map_err(invalid)?;
        let mut v = Violations::new();
        if r.lead_agencies.is_empty() {
            v.add("lead_agencies", "at least one lead agency is required");
        }
        let lead = agency_names(&r.lead_agencies, "lead_agencies", &mut v);
        let coordinating = agency_names(&r.coordinating_agencies, "coordinating_agencies", &mut v);
        if let Some(code) = coordinating.iter().find(|c| lead.contains(c)) {
            v.add(
                "coordinating_agencies",
                format!("agencies/{code} is already a lead agency"),
            );
        }
        if r.reason.chars().count() > 4000 {
            v.add("reason", "at most 4000 characters");
        }
        v.finish()?;
        let state = &self.0;
        let mut mutation = self
            .begin(&principal, "ReassignTask", &r.request_id)
            .await?;
        if let Some(previous) = mutation.previous::<ReassignTaskResponse>()? {
            return Ok(Response::new(previous));
        }
        let record = locked(&mut mutation, id, &r.name).await?;
        check_etag(&record, &r.etag, &r.name)?;
        let from = record.stage()?;
        let to = next(from, Transition::Reassign)?;
        let actor = actor_of(&principal, &state.clock);
        let updated =
            tasks::set_agencies(mutation.conn(), id, &lead, &coordinating, to, &actor).await?;
        tasks::record_history(
            mutation.conn(),
            id,
            Transition::Reassign.action(),
            Some(from),
            to,
            updated.due_date,
            &r.reason,
            &actor,
        )
        .await?;
        let view = self.view(&updated);
        publish::task_event(
            mutation.conn(),
            &actor,
            TaskEventKind::Reassigned,
            &view,
            &r.reason,
        )
        .await?;
        let response = ReassignTaskResponse { task: Some(view) };
        mutation.commit(&response).await?;
        state.wake.wake();
        Ok(Response::new(response))
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
        request: Request<ReportProgressRequest>,
    ) -> Result<Response<ReportProgressResponse>, Status> {
        let principal = principal(&request)?;
        let r = request.into_inner();
        let id = resource_id(&r.parent, "tasks", "parent").map_err(invalid)?;
        let report = r
            .report
            .ok_or_else(|| Error::invalid("report", "must be set"))?;
        let mut v = Violations::new();
        let text = report.text.trim().to_string();
        if text.is_empty() || text.chars().count() > 4000 {
            v.add("report.text", "1 to 4000 characters");
        }
        if !(0..=100).contains(&report.percent_complete) {
            v.add("report.percent_complete", "0 to 100");
        }
        if report.evidence.len() > 20 {
            v.add("report.evidence", "at most 20 documents");
        }
        for (i, e) in report.evidence.iter().enumerate() {
            if e.trim().is_empty() || e.chars().count() > 1000 {
                v.add(format!("report.evidence[{i}]"), "1 to 1000 characters");
            }
        }
        v.finish()?;
        let state = &self.0;
        let mut mutation = self
            .begin(&principal, "ReportProgress", &r.request_id)
            .await?;
        if let Some(previous) = mutation.previous::<ReportProgressResponse>()? {
            return Ok(Response::new(previous));
        }
        let record = locked(&mut mutation, id, &r.parent).await?;
        access::may_read(
            &principal,
            &record.lead_agencies,
            &record.coordinating_agencies,
        )?;
        access::must_take_part(
            &principal,
            &record.lead_agencies,
            &record.coordinating_agencies,
        )?;
        let stage = record.stage()?;
        if !matches!(stage, Stage::Assigned | Stage::InProgress) {
            return Err(Error::precondition(
                "TASK_NOT_IN_PROGRESS",
                format!(
                    "progress is reported on assigned or in-progress tasks; this one is {}",
                    stage.as_str().to_lowercase().replace('_', " ")
                ),
            )
            .into());
        }
        let agency = principal.agency.clone().unwrap_or_default();
        let actor = actor_of(&principal, &state.clock);
        let saved = progress::insert(
            mutation.conn(),
            id,
            &agency,
            &text,
            report.percent_complete,
            &report.evidence,
            &actor,
        )
        .await?;
        let updated =
            tasks::set_percent(mutation.conn(), id, report.percent_complete, &actor).await?;
        tasks::record_history(
            mutation.conn(),
            id,
            "PROGRESS_REPORTED",
            Some(stage),
            stage,
            None,
            &format!("{}%: {text}", report.percent_complete),
            &actor,
        )
        .await?;
        let view = self.view(&updated);
        publish::task_event(
            mutation.conn(),
            &actor,
            TaskEventKind::ProgressReported,
            &view,
            &text,
        )
        .await?;
        let response = ReportProgressResponse {
            report: Some(progress_to_pb(&saved)),
        };
        mutation.commit(&response).await?;
        state.wake.wake();
        Ok(Response::new(response))
    }

    async fn list_progress_reports(
        &self,
        request: Request<ListProgressReportsRequest>,
    ) -> Result<Response<ListProgressReportsResponse>, Status> {
        let principal = principal(&request)?;
        let r = request.into_inner();
        let limit = PageSize {
            default: 20,
            max: 100,
        }
        .resolve(r.page_size)?;
        let records = self
            .0
            .hot
            .run(async |conn| {
                let task = Self::readable(conn, &principal, &r.parent).await?;
                let before: Option<i64> = decode_page_token(&r.parent, &r.page_token)?;
                progress::list(conn, task.id, before, limit + 1).await
            })
            .await?;
        let (page, next_page_token) = paginate(records, limit, &r.parent, |last| last.id);
        Ok(Response::new(ListProgressReportsResponse {
            reports: page.iter().map(progress_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn request_extension(
        &self,
        request: Request<RequestExtensionRequest>,
    ) -> Result<Response<RequestExtensionResponse>, Status> {
        let principal = principal(&request)?;
        let r = request.into_inner();
        let id = resource_id(&r.parent, "tasks", "parent").map_err(invalid)?;
        let extension = r
            .extension
            .ok_or_else(|| Error::invalid("extension", "must be set"))?;
        let mut v = Violations::new();
        let requested = match date_from_pb(
            extension.requested_due_date.as_ref(),
            "extension.requested_due_date",
        ) {
            Ok(Some(date)) => Some(date),
            Ok(None) => {
                v.add("extension.requested_due_date", "must be set");
                None
            }
            Err(e) => {
                v.add(e.field, e.description);
                None
            }
        };
        let reason = extension.reason.trim().to_string();
        if reason.is_empty() || reason.chars().count() > 4000 {
            v.add(
                "extension.reason",
                "a reason of 1 to 4000 characters is required",
            );
        }
        v.finish()?;
        let requested = requested.ok_or_else(|| Error::internal("checked above"))?;
        let state = &self.0;
        let mut mutation = self
            .begin(&principal, "RequestExtension", &r.request_id)
            .await?;
        if let Some(previous) = mutation.previous::<RequestExtensionResponse>()? {
            return Ok(Response::new(previous));
        }
        let record = locked(&mut mutation, id, &r.parent).await?;
        access::may_read(
            &principal,
            &record.lead_agencies,
            &record.coordinating_agencies,
        )?;
        access::must_lead(&principal, &record.lead_agencies)?;
        extension::check_requested_date(
            record.due_date,
            requested,
            "extension.requested_due_date",
        )?;
        let stage = record.stage()?;
        let pending = extensions::has_pending(mutation.conn(), id).await?;
        extension::check_request(TaskDeadline {
            stage,
            due: record.due_date,
            extension_count: record.extension_count,
            pending,
        })?;
        let actor = actor_of(&principal, &state.clock);
        let saved = extensions::insert(
            mutation.conn(),
            id,
            requested,
            record.due_date,
            &reason,
            &actor,
        )
        .await?;
        tasks::record_history(
            mutation.conn(),
            id,
            "EXTENSION_REQUESTED",
            Some(stage),
            stage,
            Some(requested),
            &reason,
            &actor,
        )
        .await?;
        let ext = extension_to_pb(&saved);
        publish::extension_event(
            mutation.conn(),
            &actor,
            TaskEventKind::ExtensionRequested,
            &self.view(&record),
            &reason,
            Some(ext.clone()),
        )
        .await?;
        let response = RequestExtensionResponse {
            extension: Some(ext),
        };
        mutation.commit(&response).await?;
        state.wake.wake();
        Ok(Response::new(response))
    }

    async fn decide_extension(
        &self,
        request: Request<DecideExtensionRequest>,
    ) -> Result<Response<DecideExtensionResponse>, Status> {
        let principal = principal(&request)?;
        access::must_be_office(&principal)?;
        let r = request.into_inner();
        let (id, request_number) = extension_name(&r.name)?;
        let note = r.note.trim().to_string();
        if !r.approve && note.is_empty() {
            return Err(Error::invalid("note", "a rejection needs a note to the agency").into());
        }
        if note.chars().count() > 4000 {
            return Err(Error::invalid("note", "at most 4000 characters").into());
        }
        let state = &self.0;
        let mut mutation = self
            .begin(&principal, "DecideExtension", &r.request_id)
            .await?;
        if let Some(previous) = mutation.previous::<DecideExtensionResponse>()? {
            return Ok(Response::new(previous));
        }
        let task_name = format!("tasks/{id}");
        let record = locked(&mut mutation, id, &task_name).await?;
        let asked = extensions::get(mutation.conn(), id, request_number)
            .await?
            .ok_or_else(|| Error::NotFound {
                resource: "extension request",
                name: r.name.clone(),
            })?;
        let stage = record.stage()?;
        extension::check_decision(
            asked.state()?,
            r.approve,
            TaskDeadline {
                stage,
                due: record.due_date,
                extension_count: record.extension_count,
                pending: true,
            },
            asked.requested_due_date,
        )?;
        let actor = actor_of(&principal, &state.clock);
        let decided = extensions::decide(
            mutation.conn(),
            asked.id,
            if r.approve {
                ExtensionState::Approved
            } else {
                ExtensionState::Rejected
            },
            &note,
            &actor,
        )
        .await?;
        let updated = if r.approve {
            let updated = tasks::set_due_date(
                mutation.conn(),
                id,
                Some(asked.requested_due_date),
                true,
                &actor,
            )
            .await?;
            let why = if note.is_empty() {
                asked.reason.clone()
            } else {
                note.clone()
            };
            tasks::record_history(
                mutation.conn(),
                id,
                "DEADLINE_EXTENDED",
                Some(stage),
                stage,
                updated.due_date,
                &why,
                &actor,
            )
            .await?;
            updated
        } else {
            tasks::record_history(
                mutation.conn(),
                id,
                "EXTENSION_REJECTED",
                Some(stage),
                stage,
                record.due_date,
                &note,
                &actor,
            )
            .await?;
            record
        };
        let view = self.view(&updated);
        let ext = extension_to_pb(&decided);
        publish::extension_event(
            mutation.conn(),
            &actor,
            TaskEventKind::ExtensionDecided,
            &view,
            &note,
            Some(ext.clone()),
        )
        .await?;
        let response = DecideExtensionResponse {
            extension: Some(ext),
            task: Some(view),
        };
        mutation.commit(&response).await?;
        state.wake.wake();
        Ok(Response::new(response))
    }

    async fn list_extension_requests(
        &self,
        request: Request<ListExtensionRequestsRequest>,
    ) -> Result<Response<ListExtensionRequestsResponse>, Status> {
        let principal = principal(&request)?;
        let parent = &request.get_ref().parent;
        let records = self
            .0
            .hot
            .run(async |conn| {
                let task = Self::readable(conn, &principal, parent).await?;
                extensions::list(conn, task.id).await
            })
            .await?;
        Ok(Response::new(ListExtensionRequestsResponse {
            extensions: records.iter().map(extension_to_pb).collect(),
        }))
    }

    async fn list_task_history(
        &self,
        request: Request<ListTaskHistoryRequest>,
    ) -> Result<Response<ListTaskHistoryResponse>, Status> {
        let principal = principal(&request)?;
        let parent = &request.get_ref().parent;
        let rows = self
            .0
            .hot
            .run(async |conn| {
                let task = Self::readable(conn, &principal, parent).await?;
                tasks::history(conn, task.id).await
            })
            .await?;
        let stage = |s: &str| Stage::parse(s).map(|s| stage_to_pb(s) as i32).unwrap_or(0);
        Ok(Response::new(ListTaskHistoryResponse {
            entries: rows
                .into_iter()
                .map(|h| TaskHistoryEntry {
                    action: h.action,
                    from_stage: h.from_stage.as_deref().map(stage).unwrap_or(0),
                    to_stage: stage(&h.to_stage),
                    due_date: h.due_date.map(date_to_pb),
                    reason: h.reason,
                    stamp: Some(stamp(&h.actor, h.agency.as_deref(), h.at)),
                })
                .collect(),
        }))
    }
}
