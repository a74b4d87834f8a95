//! The walking skeleton, end to end through the gateway: agencies, a
//! directive issued, its tasks created exactly once, and deadline reminders
//! streamed to the agency as the clock moves — plus the bad paths.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use dondoc_contracts::assignments::v1::task_service_client::TaskServiceClient;
use dondoc_contracts::assignments::v1::{
    DecideExtensionRequest, ExtensionRequest, ListTasksRequest, RequestExtensionRequest, Task,
};
use dondoc_contracts::common::v1::Date;
use dondoc_contracts::directives::v1::agency_service_client::AgencyServiceClient;
use dondoc_contracts::directives::v1::directive_service_client::DirectiveServiceClient;
use dondoc_contracts::directives::v1::*;
use dondoc_contracts::notifications::v1::notification_service_client::NotificationServiceClient;
use dondoc_contracts::notifications::v1::{
    Notification, NotificationKind, SubscribeRequest, subscribe_response,
};
use dondoc_e2e::{Bearer, TestSuite, channel, eventually, local_8am};
use dondoc_identity::Role;
use futures::StreamExt;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_types::StatusExt;

type Directives = DirectiveServiceClient<InterceptedService<Channel, Bearer>>;

struct Clients {
    agencies: AgencyServiceClient<InterceptedService<Channel, Bearer>>,
    directives: Directives,
    tasks: TaskServiceClient<InterceptedService<Channel, Bearer>>,
    notifications: NotificationServiceClient<InterceptedService<Channel, Bearer>>,
}

async fn clients(t: &TestSuite, token: &str) -> Clients {
    let channel = t.gateway().await;
    let bearer = Bearer::new(token);
    Clients {
        agencies: AgencyServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        directives: DirectiveServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        tasks: TaskServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        notifications: NotificationServiceClient::with_interceptor(channel, bearer),
    }
}

fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

fn office(t: &TestSuite) -> String {
    t.token("users/van-phong", Some("vp-ubnd"), &[Role::Office])
}

fn labour(t: &TestSuite) -> String {
    t.token("users/so-ldtbxh", Some("so-ldtbxh"), &[Role::Agency])
}

async fn create_agencies(c: &mut Clients) {
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
        c.agencies
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
}

fn conclusion_notice() -> Directive {
    Directive {
        kind: DirectiveKind::ConclusionNotice as i32,
        number: "534/TB-UBND".into(),
        issuer: "agencies/vp-ubnd".into(),
        issue_date: date(2024, 9, 2),
        subject: "Kết luận của Chủ tịch UBND tỉnh tại buổi làm việc với Sở Lao động – Thương binh và Xã hội".into(),
        signer: Some(Signer {
            full_name: "Lê Chí Phương".into(),
            title: "Phó Chánh Văn phòng".into(),
            capacities: vec!["TL. CHỦ TỊCH".into(), "KT. CHÁNH VĂN PHÒNG".into()],
        }),
        items: vec![
            DirectiveItem {
                reference: "II.4".into(),
                text: "Tham mưu UBND tỉnh trình HĐND tỉnh Nghị quyết quy định chính sách hỗ trợ".into(),
                lead_agencies: vec!["agencies/so-ldtbxh".into()],
                coordinating_agencies: vec!["agencies/so-tai-chinh".into()],
                // Friday: 3 working days before is Tuesday 24/9.
                due_date: date(2024, 9, 27),
                deadline_text: "trước ngày 27/9/2024".into(),
                ..Default::default()
            },
            DirectiveItem {
                reference: "II.5".into(),
                text: "Thường xuyên theo dõi tình hình lao động".into(),
                lead_agencies: vec!["agencies/so-ldtbxh".into()],
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

async fn issue(c: &mut Clients) -> Directive {
    let created = c
        .directives
        .create_directive(CreateDirectiveRequest {
            directive: Some(conclusion_notice()),
            request_id: "create-534".into(),
        })
        .await
        .expect("create directive")
        .into_inner()
        .directive
        .unwrap();
    assert_eq!(created.state, DirectiveState::Draft as i32);
    c.directives
        .issue_directive(IssueDirectiveRequest {
            name: created.name.clone(),
            etag: created.etag.clone(),
            request_id: "issue-534".into(),
        })
        .await
        .expect("issue directive")
        .into_inner()
        .directive
        .unwrap()
}

async fn tasks_of(c: &mut Clients) -> Vec<Task> {
    c.tasks
        .list_tasks(ListTasksRequest::default())
        .await
        .expect("list tasks")
        .into_inner()
        .tasks
}

/// The directive's two tasks, once the assignments service has created them
/// from the issued directive (within 10 s).
async fn issued_tasks(c: &Clients) -> Vec<Task> {
    eventually(Duration::from_secs(10), || {
        let mut tasks = c.tasks.clone();
        async move {
            let list = tasks
                .list_tasks(ListTasksRequest::default())
                .await
                .ok()?
                .into_inner()
                .tasks;
            (list.len() == 2).then_some(list)
        }
    })
    .await
}

/// Reads the stream until a notification of `kind` arrives; returns
/// everything read, each with the cursor after it.
async fn read_until(
    stream: &mut tonic::Streaming<dondoc_contracts::notifications::v1::SubscribeResponse>,
    kind: NotificationKind,
) -> Vec<Notification> {
    let mut seen = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no {kind:?} within 10 s; got {:?}",
                    seen.iter()
                        .map(|n: &Notification| n.kind)
                        .collect::<Vec<_>>()
                )
            })
            .expect("stream open")
            .expect("stream healthy");
        if let Some(subscribe_response::Item::Notification(n)) = message.item {
            let done = n.kind == kind as i32;
            seen.push(n);
            if done {
                return seen;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directive_becomes_tasks_and_a_deadline_reminder() {
    let t = TestSuite::start(local_8am(2024, 9, 2) + chrono::Duration::hours(1)).await;
    let mut office_c = clients(&t, &office(&t)).await;
    create_agencies(&mut office_c).await;
    let directive = issue(&mut office_c).await;
    assert_eq!(directive.state, DirectiveState::Issued as i32);

    // A retry of the issue with the same request id gets the first answer.
    let retried = office_c
        .directives
        .issue_directive(IssueDirectiveRequest {
            name: directive.name.clone(),
            etag: String::new(),
            request_id: "issue-534".into(),
        })
        .await
        .expect("a retried issue answers as the first")
        .into_inner()
        .directive
        .unwrap();
    assert_eq!(retried, directive);

    // Shortly after, the agency sees the tasks: one per item.
    let mut labour_c = clients(&t, &labour(&t)).await;
    let tasks = issued_tasks(&labour_c).await;
    assert_eq!(tasks[0].directive_number, "534/TB-UBND");
    assert_eq!(tasks[0].reference, "II.4");
    assert_eq!(tasks[0].due_date, date(2024, 9, 27));
    assert_eq!(tasks[0].coordinating_agencies, ["agencies/so-tai-chinh"]);
    assert_eq!(tasks[1].due_date, None);

    // The agency subscribes and first hears of its new tasks.
    let mut stream = labour_c
        .notifications
        .subscribe(SubscribeRequest::default())
        .await
        .expect("subscribe")
        .into_inner();
    let mut seen = read_until(&mut stream, NotificationKind::TaskAssigned).await;
    seen.extend(read_until(&mut stream, NotificationKind::TaskAssigned).await);

    // Nothing is due yet. On 18/9 (7 working days before), then on 24/9 (3 before).
    t.clock.set(local_8am(2024, 9, 18));
    let got = read_until(&mut stream, NotificationKind::DueSoon).await;
    assert!(
        got.last().unwrap().body.contains("còn 7 ngày làm việc"),
        "{}",
        got.last().unwrap().body
    );
    seen.extend(got);
    t.clock.set(local_8am(2024, 9, 24));
    let got = read_until(&mut stream, NotificationKind::DueSoon).await;
    let due_soon = got.last().unwrap().clone();
    seen.extend(got);
    assert!(due_soon.body.contains("534/TB-UBND"), "{}", due_soon.body);
    assert!(
        due_soon
            .body
            .contains("Sở Lao động – Thương binh và Xã hội"),
        "{}",
        due_soon.body
    );
    assert!(due_soon.body.contains("27/9/2024"), "{}", due_soon.body);
    assert!(
        due_soon.body.contains("còn 3 ngày làm việc"),
        "{}",
        due_soon.body
    );
    assert_eq!(due_soon.task, tasks[0].name);

    // Disconnect; while away, the due day comes. Reconnect from the last cursor.
    drop(stream);
    let last_cursor = seen.last().unwrap().cursor.clone();
    t.clock.set(local_8am(2024, 9, 27));
    let mut stream = labour_c
        .notifications
        .subscribe(SubscribeRequest {
            after_cursor: last_cursor,
            ..Default::default()
        })
        .await
        .expect("resubscribe")
        .into_inner();
    let after = read_until(&mut stream, NotificationKind::DueToday).await;
    let before_ids: HashSet<_> = seen.iter().map(|n| n.notification_id.clone()).collect();
    for n in &after {
        assert!(
            !before_ids.contains(&n.notification_id),
            "repeated after reconnect: {n:?}"
        );
    }
    assert_eq!(
        after.len(),
        1,
        "exactly the one missed notification: {after:?}"
    );

    // From the start, the whole history comes again, each notification once.
    let mut replay = labour_c
        .notifications
        .subscribe(SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let all = read_until(&mut replay, NotificationKind::DueToday).await;
    let ids: Vec<_> = all.iter().map(|n| n.notification_id.clone()).collect();
    let unique: HashSet<_> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), unique.len(), "no duplicates in {ids:?}");
    assert_eq!(ids.len(), seen.len() + 1);

    // Tasks are never created twice, whatever was retried.
    assert_eq!(tasks_of(&mut labour_c).await.len(), 2);
    t.suite.stop().await.unwrap();
    // Shutdown ends an open stream with OK, after whatever it had to send.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match replay.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends with the shutdown");
    assert!(matches!(ended, Ok(None)), "ended with OK: {ended:?}");
}

/// An approved extension moves the task's reminders: once the clock passes
/// both the old and the new due date, the agency has heard only of the new
/// one, seven and three working days before and on the day, in that order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_extension_moves_the_reminders_to_the_new_due_date() {
    let t = TestSuite::start(local_8am(2024, 9, 2) + chrono::Duration::hours(1)).await;
    let mut office_c = clients(&t, &office(&t)).await;
    create_agencies(&mut office_c).await;
    issue(&mut office_c).await;
    let mut labour_c = clients(&t, &labour(&t)).await;
    let task = issued_tasks(&labour_c)
        .await
        .into_iter()
        .find(|t| t.due_date.is_some())
        .unwrap();
    assert_eq!(task.due_date, date(2024, 9, 27));
    let mut stream = labour_c
        .notifications
        .subscribe(SubscribeRequest::default())
        .await
        .expect("subscribe")
        .into_inner();
    read_until(&mut stream, NotificationKind::TaskAssigned).await;
    read_until(&mut stream, NotificationKind::TaskAssigned).await;

    let extension = labour_c
        .tasks
        .request_extension(RequestExtensionRequest {
            parent: task.name.clone(),
            extension: Some(ExtensionRequest {
                requested_due_date: date(2024, 10, 11),
                reason: "Chờ số liệu điều tra".into(),
                ..Default::default()
            }),
            request_id: "ext-534".into(),
        })
        .await
        .expect("request an extension")
        .into_inner()
        .extension
        .unwrap();
    let extended = office_c
        .tasks
        .decide_extension(DecideExtensionRequest {
            name: extension.name,
            approve: true,
            note: "Đồng ý".into(),
            request_id: "decide-534".into(),
        })
        .await
        .expect("approve the extension")
        .into_inner()
        .task
        .unwrap();
    assert_eq!(
        (extended.due_date, extended.deadline_version),
        (date(2024, 10, 11), 2)
    );
    // The decision reaches the agency with the new deadline applied.
    read_until(&mut stream, NotificationKind::ExtensionDecided).await;

    // Past both due dates at once: the new deadline's reminders all fall due
    // together and reach the agency in the order they fell due; none of the
    // old deadline's would have come first.
    t.clock.set(local_8am(2024, 10, 11));
    let all = read_until(&mut stream, NotificationKind::DueToday).await;
    let reminders: Vec<Notification> = all.into_iter().filter(|n| n.task == task.name).collect();
    let kinds: Vec<i32> = reminders.iter().map(|n| n.kind).collect();
    assert_eq!(
        kinds,
        [
            NotificationKind::DueSoon as i32,
            NotificationKind::DueSoon as i32,
            NotificationKind::DueToday as i32
        ],
        "{reminders:?}"
    );
    for n in &reminders {
        assert_eq!(n.due_date, date(2024, 10, 11), "{n:?}");
        assert!(!n.body.contains("27/9/2024"), "{}", n.body);
    }
    assert!(
        reminders[0].body.contains("còn 7 ngày làm việc"),
        "{}",
        reminders[0].body
    );
    assert!(
        reminders[1].body.contains("còn 3 ngày làm việc"),
        "{}",
        reminders[1].body
    );
    t.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_without_valid_credentials_get_nothing() {
    let t = TestSuite::start(local_8am(2024, 9, 2)).await;
    let gateway = t.gateway().await;
    let expect_unauthenticated =
        |result: Result<tonic::Response<ListAgenciesResponse>, tonic::Status>, what: &str| {
            let status = result.expect_err(what);
            assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
        };
    let mut anonymous = AgencyServiceClient::with_interceptor(gateway.clone(), Bearer::none());
    expect_unauthenticated(
        anonymous
            .list_agencies(ListAgenciesRequest::default())
            .await,
        "no token",
    );

    let forged_jwt = dondoc_gateway::JwtConfig {
        hs256_secret: "not-the-secret".into(),
        ..t.jwt.clone()
    };
    let forged = dondoc_gateway::mint_token(
        &forged_jwt,
        &dondoc_identity::Principal {
            subject: "users/x".into(),
            agency: None,
            roles: vec![Role::Office],
        },
        Duration::from_secs(600),
    );
    let mut forger = AgencyServiceClient::with_interceptor(gateway.clone(), Bearer::new(&forged));
    expect_unauthenticated(
        forger.list_agencies(ListAgenciesRequest::default()).await,
        "forged token",
    );

    // Expired two minutes ago: past any clock-skew leeway.
    let now = chrono::Utc::now().timestamp();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({
            "iss": t.jwt.issuer, "aud": t.jwt.audience, "sub": "users/x",
            "roles": ["office"], "iat": now - 3600, "nbf": now - 3600, "exp": now - 120,
        }),
        &jsonwebtoken::EncodingKey::from_secret(t.jwt.hs256_secret.as_bytes()),
    )
    .unwrap();
    let mut late = AgencyServiceClient::with_interceptor(gateway.clone(), Bearer::new(&expired));
    expect_unauthenticated(
        late.list_agencies(ListAgenciesRequest::default()).await,
        "expired token",
    );

    // Straight to a service port, even with a valid bearer token: nothing.
    let direct = channel(t.suite.directives).await;
    let mut direct = AgencyServiceClient::with_interceptor(direct, Bearer::new(&office(&t)));
    expect_unauthenticated(
        direct.list_agencies(ListAgenciesRequest::default()).await,
        "direct call",
    );
    t.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_directives_are_refused_precisely_and_change_nothing() {
    let t = TestSuite::start(local_8am(2024, 9, 2)).await;
    let mut c = clients(&t, &office(&t)).await;
    create_agencies(&mut c).await;

    let mut no_lead = conclusion_notice();
    no_lead.items[1].lead_agencies.clear();
    let status = c
        .directives
        .create_directive(CreateDirectiveRequest {
            directive: Some(no_lead),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(fields, ["directive.items[1].lead_agencies"]);

    let mut unknown = conclusion_notice();
    unknown.items[0].lead_agencies = vec!["agencies/so-khong-co".into()];
    let status = c
        .directives
        .create_directive(CreateDirectiveRequest {
            directive: Some(unknown),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let violations = status
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .clone();
    assert_eq!(violations[0].field, "directive.items[0].lead_agencies[0]");
    assert!(
        violations[0]
            .description
            .contains("not in the agency directory")
    );

    let listed = c
        .directives
        .list_directives(ListDirectivesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.directives.is_empty(),
        "refused requests change nothing"
    );

    // Issuing twice (without the first request id) is a failed precondition.
    let directive = issue(&mut c).await;
    let status = c
        .directives
        .issue_directive(IssueDirectiveRequest {
            name: directive.name.clone(),
            etag: String::new(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "DIRECTIVE_ALREADY_ISSUED"
    );

    // A duplicate number for the same issuer and year is refused.
    let status = c
        .directives
        .create_directive(CreateDirectiveRequest {
            directive: Some(conclusion_notice()),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations[0]
            .field,
        "directive.number"
    );
    t.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_resumed_from_a_pruned_cursor_is_out_of_range() {
    let t = TestSuite::start(local_8am(2024, 9, 2)).await;
    let mut office_c = clients(&t, &office(&t)).await;
    create_agencies(&mut office_c).await;
    issue(&mut office_c).await;
    let mut labour_c = clients(&t, &labour(&t)).await;
    let mut stream = labour_c
        .notifications
        .subscribe(SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = read_until(&mut stream, NotificationKind::TaskAssigned).await;
    drop(stream);

    // Retention removes everything written so far.
    let pool = sqlx::PgPool::connect_with(
        t.db.role_options("dondoc_notifications")
            .options([("search_path", "notifications")]),
    )
    .await
    .unwrap();
    let pruned = dondoc_events::outbox::prune_log(
        &pool,
        "notifications",
        "notifications",
        chrono::Utc::now() + chrono::Duration::hours(1),
    )
    .await
    .unwrap();
    assert!(pruned >= 2);
    let old_cursor = dondoc_events::Cursor::parse(&first[0].cursor).unwrap();
    let before_it = dondoc_events::Cursor {
        tx: old_cursor.tx,
        id: old_cursor.id - 1,
    };
    let status = labour_c
        .notifications
        .subscribe(SubscribeRequest {
            after_cursor: before_it.to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange);
    let status = labour_c
        .notifications
        .subscribe(SubscribeRequest {
            after_cursor: "not-a-cursor".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    t.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_role_reads_only_its_own_schema() {
    let t = TestSuite::start(local_8am(2024, 9, 2)).await;
    let mut office_c = clients(&t, &office(&t)).await;
    create_agencies(&mut office_c).await;
    for (role, own, foreign) in [
        (
            "dondoc_assignments",
            "assignments.tasks",
            "directives.agencies",
        ),
        (
            "dondoc_notifications",
            "notifications.notifications",
            "assignments.tasks",
        ),
        (
            "dondoc_directives",
            "directives.agencies",
            "notifications.notifications",
        ),
    ] {
        let pool = sqlx::PgPool::connect_with(t.db.role_options(role))
            .await
            .unwrap();
        sqlx::query(&format!("SELECT count(*) FROM {own}"))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{role} reads {own}: {e}"));
        let error = sqlx::query(&format!("SELECT count(*) FROM {foreign}"))
            .execute(&pool)
            .await
            .expect_err(&format!("{role} must not read {foreign}"));
        let code = error
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.to_string());
        assert_eq!(
            code.as_deref(),
            Some("42501"),
            "{role} on {foreign}: {error}"
        );
        pool.close().await;
    }
    t.suite.stop().await.unwrap();
}
