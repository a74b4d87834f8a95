//! Agency A's data stays A's: through the gateway, agency B can neither read
//! nor change it by any method — get, list, search, history, progress,
//! extensions, statistics, streams — and every refusal changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dondoc_contracts::assignments::v1::statistics_service_client::StatisticsServiceClient;
use dondoc_contracts::assignments::v1::task_service_client::TaskServiceClient;
use dondoc_contracts::assignments::v1::*;
use dondoc_contracts::common::v1::Date;
use dondoc_contracts::directives::v1::agency_service_client::AgencyServiceClient;
use dondoc_contracts::directives::v1::directive_event_service_client::DirectiveEventServiceClient;
use dondoc_contracts::directives::v1::directive_service_client::DirectiveServiceClient;
use dondoc_contracts::directives::v1::*;
use dondoc_contracts::notifications::v1::notification_service_client::NotificationServiceClient;
use dondoc_contracts::notifications::v1::{ListNotificationsRequest, SubscribeRequest};
use dondoc_e2e::{Bearer, TestSuite, eventually, local_8am};
use dondoc_identity::Role;
use tonic::Code;
use tonic::transport::Channel;

fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

fn denied<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agency_b_cannot_read_or_change_agency_a_data() {
    let t = TestSuite::start(local_8am(2024, 9, 2)).await;
    let gateway: Channel = t.gateway().await;
    let office = Bearer::new(&t.token("users/van-phong", Some("vp-ubnd"), &[Role::Office]));
    let a = Bearer::new(&t.token("users/a", Some("so-ldtbxh"), &[Role::Agency]));
    let b = Bearer::new(&t.token("users/b", Some("so-tai-chinh"), &[Role::Agency]));

    let mut agencies = AgencyServiceClient::with_interceptor(gateway.clone(), office.clone());
    for (code, name, kind) in [
        (
            "vp-ubnd",
            "Văn phòng Ủy ban nhân dân tỉnh",
            AgencyKind::Office,
        ),
        (
            "so-ldtbxh",
            "Sở Lao động – Thương binh và Xã hội",
            AgencyKind::Department,
        ),
        ("so-tai-chinh", "Sở Tài chính", AgencyKind::Department),
    ] {
        agencies
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
            .unwrap();
    }
    let mut office_directives =
        DirectiveServiceClient::with_interceptor(gateway.clone(), office.clone());
    let draft = office_directives
        .create_directive(CreateDirectiveRequest {
            directive: Some(Directive {
                kind: DirectiveKind::ConclusionNotice as i32,
                number: "534/TB-UBND".into(),
                issuer: "agencies/vp-ubnd".into(),
                issue_date: date(2024, 9, 2),
                subject: "Kết luận về giải quyết việc làm cho người lao động".into(),
                items: vec![DirectiveItem {
                    reference: "1".into(),
                    text: "Đẩy mạnh giải quyết việc làm".into(),
                    lead_agencies: vec!["agencies/so-ldtbxh".into()],
                    due_date: date(2024, 9, 30),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .directive
        .unwrap();
    let directive = office_directives
        .issue_directive(IssueDirectiveRequest {
            name: draft.name.clone(),
            etag: String::new(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .directive
        .unwrap();

    let a_tasks = TaskServiceClient::with_interceptor(gateway.clone(), a.clone());
    let task = eventually(Duration::from_secs(10), || {
        let mut tasks = a_tasks.clone();
        async move {
            tasks
                .list_tasks(ListTasksRequest::default())
                .await
                .ok()?
                .into_inner()
                .tasks
                .into_iter()
                .next()
        }
    })
    .await;

    // Directives: B sees nothing of a directive that does not involve it.
    let mut b_directives = DirectiveServiceClient::with_interceptor(gateway.clone(), b.clone());
    denied(
        b_directives
            .get_directive(GetDirectiveRequest {
                name: directive.name.clone(),
            })
            .await,
        "GetDirective",
    );
    let listed = b_directives
        .list_directives(ListDirectivesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.directives.is_empty(),
        "ListDirectives shows B {:?}",
        listed.directives
    );
    let found = b_directives
        .search_directives(SearchDirectivesRequest {
            query: "giai quyet viec lam".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        found.results.is_empty(),
        "SearchDirectives shows B {:?}",
        found.results
    );
    // …while A, which leads its item, finds it.
    let mut a_directives = DirectiveServiceClient::with_interceptor(gateway.clone(), a.clone());
    let found = a_directives
        .search_directives(SearchDirectivesRequest {
            query: "giai quyet viec lam".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.results.len(), 1);

    // Tasks: no read, no move.
    let mut b_tasks = TaskServiceClient::with_interceptor(gateway.clone(), b.clone());
    denied(
        b_tasks
            .get_task(GetTaskRequest {
                name: task.name.clone(),
            })
            .await,
        "GetTask",
    );
    assert!(
        b_tasks
            .list_tasks(ListTasksRequest::default())
            .await
            .unwrap()
            .into_inner()
            .tasks
            .is_empty()
    );
    let by_lead = b_tasks
        .list_tasks(ListTasksRequest {
            filter: "lead = \"agencies/so-ldtbxh\"".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        by_lead.tasks.is_empty(),
        "filtering by A's name shows B nothing"
    );
    denied(
        b_tasks
            .list_task_history(ListTaskHistoryRequest {
                parent: task.name.clone(),
            })
            .await,
        "ListTaskHistory",
    );
    denied(
        b_tasks
            .list_progress_reports(ListProgressReportsRequest {
                parent: task.name.clone(),
                ..Default::default()
            })
            .await,
        "ListProgressReports",
    );
    denied(
        b_tasks
            .list_extension_requests(ListExtensionRequestsRequest {
                parent: task.name.clone(),
            })
            .await,
        "ListExtensionRequests",
    );
    denied(
        b_tasks
            .start_task(StartTaskRequest {
                name: task.name.clone(),
                ..Default::default()
            })
            .await,
        "StartTask",
    );
    denied(
        b_tasks
            .submit_task(SubmitTaskRequest {
                name: task.name.clone(),
                summary: "xong".into(),
                ..Default::default()
            })
            .await,
        "SubmitTask",
    );
    denied(
        b_tasks
            .refuse_task(RefuseTaskRequest {
                name: task.name.clone(),
                reason: "không thuộc thẩm quyền".into(),
                ..Default::default()
            })
            .await,
        "RefuseTask",
    );
    denied(
        b_tasks
            .report_progress(ReportProgressRequest {
                parent: task.name.clone(),
                report: Some(ProgressReport {
                    text: "đã làm".into(),
                    percent_complete: 50,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await,
        "ReportProgress",
    );
    denied(
        b_tasks
            .request_extension(RequestExtensionRequest {
                parent: task.name.clone(),
                extension: Some(ExtensionRequest {
                    requested_due_date: date(2024, 10, 30),
                    reason: "cần thêm thời gian".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await,
        "RequestExtension",
    );
    // Nothing changed.
    let mut a_tasks = a_tasks.clone();
    let after = a_tasks
        .get_task(GetTaskRequest {
            name: task.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(after.stage, TaskStage::Assigned as i32);
    assert_eq!(after.etag, task.etag);
    assert_eq!(after.percent_complete, 0);

    // Statistics are scoped to B's own agency, whatever the filter names.
    let mut b_stats = StatisticsServiceClient::with_interceptor(gateway.clone(), b.clone());
    let stats = b_stats
        .get_task_statistics(GetTaskStatisticsRequest {
            filter: "lead = \"agencies/so-ldtbxh\"".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.all.unwrap().total, 0, "B counts none of A's tasks");
    let mut a_stats = StatisticsServiceClient::with_interceptor(gateway.clone(), a.clone());
    let stats = a_stats
        .get_task_statistics(GetTaskStatisticsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.all.unwrap().total, 1);

    // Notifications: neither A's stream nor A's inbox.
    let mut b_notifications =
        NotificationServiceClient::with_interceptor(gateway.clone(), b.clone());
    denied(
        b_notifications
            .subscribe(SubscribeRequest {
                agency: "agencies/so-ldtbxh".into(),
                ..Default::default()
            })
            .await,
        "Subscribe to A",
    );
    denied(
        b_notifications
            .list_notifications(ListNotificationsRequest {
                parent: "agencies/so-ldtbxh".into(),
                ..Default::default()
            })
            .await,
        "ListNotifications of A",
    );
    let own = b_notifications
        .list_notifications(ListNotificationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        own.notifications.is_empty(),
        "B was told of A's task: {:?}",
        own.notifications
    );

    // The raw event streams carry everything: not for agencies.
    let mut b_events = DirectiveEventServiceClient::with_interceptor(gateway.clone(), b.clone());
    denied(
        b_events
            .watch_events(dondoc_contracts::directives::v1::WatchEventsRequest::default())
            .await,
        "WatchEvents",
    );
    t.suite.stop().await.unwrap();
}
