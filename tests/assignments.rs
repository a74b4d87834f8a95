//! The assignments workflow end to end through the gateway: an issued
//! directive becomes tasks; the lead starts, submits, gets a return with a
//! reason, submits again and the office confirms (completed on time); an
//! extension is requested and approved (due date moved, original kept,
//! history readable; a third request refused); bad inputs change nothing;
//! request_id retries return the first answer; an agency merge moves open
//! tasks to the successor.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dondoc_contracts::assignments::v1::statistics_service_client::StatisticsServiceClient;
use dondoc_contracts::assignments::v1::task_service_client::TaskServiceClient;
use dondoc_contracts::assignments::v1::*;
use dondoc_contracts::common::v1::Date;
use dondoc_contracts::directives::v1::agency_service_client::AgencyServiceClient;
use dondoc_contracts::directives::v1::directive_service_client::DirectiveServiceClient;
use dondoc_contracts::directives::v1::{
    Agency, AgencyKind, CreateAgencyRequest, CreateDirectiveRequest, Directive, DirectiveItem,
    DirectiveKind, IssueDirectiveRequest, MergeAgenciesRequest,
};
use dondoc_e2e::{Bearer, TestSuite, eventually, local_8am};
use dondoc_identity::Role;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_types::StatusExt;

type Tasks = TaskServiceClient<InterceptedService<Channel, Bearer>>;

fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

struct Actors {
    office: Tasks,
    labour: Tasks,
    finance: Tasks,
    agencies: AgencyServiceClient<InterceptedService<Channel, Bearer>>,
    directives: DirectiveServiceClient<InterceptedService<Channel, Bearer>>,
    stats: StatisticsServiceClient<InterceptedService<Channel, Bearer>>,
}

async fn actors(t: &TestSuite) -> Actors {
    let channel = t.gateway().await;
    let office = Bearer::new(&t.token("users/van-phong", Some("vp-ubnd"), &[Role::Office]));
    let labour = Bearer::new(&t.token("users/so-ldtbxh", Some("so-ldtbxh"), &[Role::Agency]));
    let finance =
        Bearer::new(&t.token("users/so-tai-chinh", Some("so-tai-chinh"), &[Role::Agency]));
    Actors {
        office: TaskServiceClient::with_interceptor(channel.clone(), office.clone()),
        labour: TaskServiceClient::with_interceptor(channel.clone(), labour),
        finance: TaskServiceClient::with_interceptor(channel.clone(), finance),
        agencies: AgencyServiceClient::with_interceptor(channel.clone(), office.clone()),
        directives: DirectiveServiceClient::with_interceptor(channel.clone(), office.clone()),
        stats: StatisticsServiceClient::with_interceptor(channel, office),
    }
}

/// Registers the agencies and issues a conclusion notice with two items
/// led by Labour (Finance coordinating the first); returns its tasks.
async fn issued_tasks(a: &mut Actors) -> Vec<Task> {
    for (code, name, kind) in [
        ("vp-ubnd", "Văn phòng UBND tỉnh", AgencyKind::Office),
        (
            "so-ldtbxh",
            "Sở Lao động – Thương binh và Xã hội",
            AgencyKind::Department,
        ),
        ("so-tai-chinh", "Sở Tài chính", AgencyKind::Department),
        ("so-noi-vu", "Sở Nội vụ", AgencyKind::Department),
    ] {
        a.agencies
            .create_agency(CreateAgencyRequest {
                agency: Some(Agency {
                    code: code.into(),
                    display_name: name.into(),
                    kind: kind as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("create agency");
    }
    let item = |reference: &str, text: &str, coord: Vec<String>, due: Option<Date>| DirectiveItem {
        reference: reference.into(),
        text: text.into(),
        lead_agencies: vec!["agencies/so-ldtbxh".into()],
        coordinating_agencies: coord,
        due_date: due,
        ..Default::default()
    };
    let created = a
        .directives
        .create_directive(CreateDirectiveRequest {
            directive: Some(Directive {
                kind: DirectiveKind::ConclusionNotice as i32,
                number: "534/TB-UBND".into(),
                issuer: "agencies/vp-ubnd".into(),
                issue_date: date(2024, 9, 2),
                subject: "Kết luận của Chủ tịch UBND tỉnh".into(),
                items: vec![
                    item(
                        "II.4",
                        "Tham mưu trình HĐND tỉnh Nghị quyết hỗ trợ",
                        vec!["agencies/so-tai-chinh".into()],
                        date(2024, 9, 27),
                    ),
                    item(
                        "II.5",
                        "Rà soát lao động mất việc làm",
                        vec![],
                        date(2024, 10, 31),
                    ),
                ],
                ..Default::default()
            }),
            request_id: "create-534".into(),
        })
        .await
        .expect("create directive")
        .into_inner()
        .directive
        .unwrap();
    a.directives
        .issue_directive(IssueDirectiveRequest {
            name: created.name.clone(),
            etag: created.etag.clone(),
            request_id: "issue-534".into(),
        })
        .await
        .expect("issue directive");
    let labour = a.labour.clone();
    let mut tasks = eventually(Duration::from_secs(10), || {
        let mut labour = labour.clone();
        async move {
            let tasks = labour
                .list_tasks(ListTasksRequest::default())
                .await
                .ok()?
                .into_inner()
                .tasks;
            (tasks.len() == 2).then_some(tasks)
        }
    })
    .await;
    tasks.sort_by(|a, b| a.reference.cmp(&b.reference));
    tasks
}

async fn get(c: &mut Tasks, name: &str) -> Task {
    c.get_task(GetTaskRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap()
}

fn field_of(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_an_issued_directive_to_a_confirmed_completion_and_an_extension() {
    let t = TestSuite::start(local_8am(2024, 9, 2) + chrono::Duration::hours(1)).await;
    let mut a = actors(&t).await;
    let tasks = issued_tasks(&mut a).await;
    let task = &tasks[0];
    assert_eq!(task.reference, "II.4");
    assert_eq!(task.stage, TaskStage::Assigned as i32);

    // Start; a retry of the start with the same request id returns the first answer.
    let start = StartTaskRequest {
        name: task.name.clone(),
        etag: task.etag.clone(),
        request_id: "start-1".into(),
    };
    let started = a
        .labour
        .start_task(start.clone())
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let retried = a
        .labour
        .start_task(start)
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(started, retried);

    // A stale etag is ABORTED and changes nothing.
    let stale = a
        .labour
        .submit_task(SubmitTaskRequest {
            name: task.name.clone(),
            summary: "Đã trình".into(),
            etag: task.etag.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    // The coordinating agency may not submit.
    let denied = a
        .finance
        .submit_task(SubmitTaskRequest {
            name: task.name.clone(),
            summary: "Đã trình".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    // A wrong transition is FAILED_PRECONDITION.
    let wrong = a
        .office
        .confirm_task(ConfirmTaskRequest {
            name: task.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::FailedPrecondition);
    assert_eq!(
        get(&mut a.office, &task.name).await,
        get(&mut a.office, &started.name).await
    );
    assert_eq!(
        get(&mut a.office, &task.name).await.etag,
        started.etag,
        "nothing changed"
    );

    // Submit, return with a reason, submit again, confirm.
    a.labour
        .submit_task(SubmitTaskRequest {
            name: task.name.clone(),
            summary: "Đã trình dự thảo Nghị quyết".into(),
            evidence: vec!["Tờ trình 45/TTr-SLĐTBXH".into()],
            etag: started.etag.clone(),
            request_id: "submit-1".into(),
        })
        .await
        .unwrap();
    let no_reason = a
        .office
        .return_task(ReturnTaskRequest {
            name: task.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(no_reason.code(), Code::InvalidArgument);
    assert_eq!(field_of(&no_reason), ["reason"]);
    let returned = a
        .office
        .return_task(ReturnTaskRequest {
            name: task.name.clone(),
            reason: "Thiếu ý kiến của Sở Tài chính".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(returned.stage, TaskStage::InProgress as i32);
    a.labour
        .submit_task(SubmitTaskRequest {
            name: task.name.clone(),
            summary: "Đã bổ sung ý kiến".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    t.clock.set(local_8am(2024, 9, 26));
    let confirmed = a
        .office
        .confirm_task(ConfirmTaskRequest {
            name: task.name.clone(),
            note: "Đạt yêu cầu".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(confirmed.stage, TaskStage::Completed as i32);
    assert_eq!(
        confirmed.deadline_state,
        DeadlineState::CompletedOnTime as i32
    );
    assert_eq!(confirmed.completion_date, date(2024, 9, 26));
    let history = a
        .finance
        .list_task_history(ListTaskHistoryRequest {
            parent: task.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions: Vec<_> = history.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "ASSIGNED",
            "STARTED",
            "SUBMITTED",
            "RETURNED",
            "SUBMITTED",
            "COMPLETED"
        ]
    );
    assert_eq!(history[3].reason, "Thiếu ý kiến của Sở Tài chính");
    assert_eq!(history[3].stamp.as_ref().unwrap().actor, "users/van-phong");

    // The second task: an extension.
    let other = &tasks[1];
    let ask = |day: i32, id: &str| RequestExtensionRequest {
        parent: other.name.clone(),
        extension: Some(ExtensionRequest {
            requested_due_date: date(2024, 11, day),
            reason: "Chờ số liệu điều tra".into(),
            ..Default::default()
        }),
        request_id: id.into(),
    };
    // Earlier than the current due date: INVALID_ARGUMENT on the field.
    let earlier = a
        .labour
        .request_extension(RequestExtensionRequest {
            extension: Some(ExtensionRequest {
                requested_due_date: date(2024, 10, 1),
                reason: "Sớm hơn".into(),
                ..Default::default()
            }),
            ..ask(1, "")
        })
        .await
        .unwrap_err();
    assert_eq!(earlier.code(), Code::InvalidArgument);
    assert_eq!(field_of(&earlier), ["extension.requested_due_date"]);
    let first = a
        .labour
        .request_extension(ask(15, "ext-1"))
        .await
        .unwrap()
        .into_inner()
        .extension
        .unwrap();
    let again = a
        .labour
        .request_extension(ask(15, "ext-1"))
        .await
        .unwrap()
        .into_inner()
        .extension
        .unwrap();
    assert_eq!(first, again, "a retry returns the first answer");
    let pending = a.labour.request_extension(ask(20, "")).await.unwrap_err();
    assert_eq!(pending.code(), Code::FailedPrecondition);
    let decided = a
        .office
        .decide_extension(DecideExtensionRequest {
            name: first.name.clone(),
            approve: true,
            note: "Đồng ý".into(),
            request_id: "decide-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        decided.extension.unwrap().state,
        ExtensionState::Approved as i32
    );
    let extended = decided.task.unwrap();
    assert_eq!(extended.due_date, date(2024, 11, 15));
    assert_eq!(extended.original_due_date, date(2024, 10, 31));
    assert_eq!(
        (extended.extension_count, extended.deadline_version),
        (1, 2)
    );
    let second = a
        .labour
        .request_extension(ask(30, "ext-2"))
        .await
        .unwrap()
        .into_inner()
        .extension
        .unwrap();
    a.office
        .decide_extension(DecideExtensionRequest {
            name: second.name.clone(),
            approve: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let third = a
        .labour
        .request_extension(ask(30, "ext-3"))
        .await
        .unwrap_err();
    assert_eq!(third.code(), Code::FailedPrecondition);
    let requests = a
        .labour
        .list_extension_requests(ListExtensionRequestsRequest {
            parent: other.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .extensions;
    assert_eq!(requests.len(), 2);
    let deadlines: Vec<_> = a
        .labour
        .list_task_history(ListTaskHistoryRequest {
            parent: other.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .entries
        .into_iter()
        .filter(|e| e.action == "DEADLINE_EXTENDED")
        .map(|e| e.due_date)
        .collect();
    assert_eq!(deadlines, [date(2024, 11, 15), date(2024, 11, 30)]);
    let now = get(&mut a.labour, &other.name).await;
    assert_eq!(
        (now.due_date, now.original_due_date, now.extension_count),
        (date(2024, 11, 30), date(2024, 10, 31), 2)
    );

    // The report line.
    let stats = a
        .stats
        .get_task_statistics(GetTaskStatisticsRequest {
            filter: r#"directive = "directives/1""#.into(),
            order_by: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        stats.summary,
        "Tổng số 2 nhiệm vụ được giao, đã hoàn thành đúng hạn 1 nhiệm vụ, đang thực hiện 1 nhiệm vụ"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_merge_moves_open_tasks_to_the_successor() {
    let t = TestSuite::start(local_8am(2024, 9, 2) + chrono::Duration::hours(1)).await;
    let mut a = actors(&t).await;
    let tasks = issued_tasks(&mut a).await;
    let merged = a
        .agencies
        .merge_agencies(MergeAgenciesRequest {
            sources: vec!["agencies/so-ldtbxh".into()],
            successor: "agencies/so-noi-vu".into(),
            effective_date: date(2024, 9, 10),
            reason: "Quyết định 123/QĐ-UBND".into(),
            request_id: "merge-1".into(),
        })
        .await;
    if let Err(status) = &merged {
        assert_ne!(
            status.code(),
            Code::Unimplemented,
            "MergeAgencies is not served yet"
        );
    }
    merged.unwrap();
    let office = a.office.clone();
    let name = tasks[0].name.clone();
    let moved = eventually(Duration::from_secs(10), || {
        let mut office = office.clone();
        let name = name.clone();
        async move {
            let task = office
                .get_task(GetTaskRequest { name })
                .await
                .ok()?
                .into_inner()
                .task?;
            (task.lead_agencies == ["agencies/so-noi-vu"]).then_some(task)
        }
    })
    .await;
    assert_eq!(moved.stage, TaskStage::Assigned as i32);
    let history = a
        .office
        .list_task_history(ListTaskHistoryRequest { parent: name })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(history.last().unwrap().action, "TRANSFERRED");
}
