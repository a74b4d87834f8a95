//! The directives service end to end, through the gateway with real tokens:
//! the Quảng Ngãi conclusion notice imported from its text, fixed and issued
//! with its fifteen tasks; one deadline amended by a later document; the
//! Department of Labour merged into the Department of Home Affairs; and what
//! users then see — plus every bad input of the issue, each refused with
//! INVALID_ARGUMENT naming its field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dondoc_contracts::assignments::v1::task_service_client::TaskServiceClient;
use dondoc_contracts::assignments::v1::{GetTaskRequest, ListTasksRequest, Task};
use dondoc_contracts::common::v1::Date;
use dondoc_contracts::directives::v1::agency_service_client::AgencyServiceClient;
use dondoc_contracts::directives::v1::directive_event::Payload;
use dondoc_contracts::directives::v1::directive_event_service_client::DirectiveEventServiceClient;
use dondoc_contracts::directives::v1::directive_service_client::DirectiveServiceClient;
use dondoc_contracts::directives::v1::*;
use dondoc_e2e::{Bearer, TestSuite, eventually, local_8am};
use dondoc_identity::Role;
use futures::StreamExt;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

type Svc = InterceptedService<Channel, Bearer>;

const QUANG_NGAI: &str =
    include_str!("../../shared/fixtures/documents/quangngai-tb-ket-luan-sldtbxh-2024.txt");

struct Clients {
    agencies: AgencyServiceClient<Svc>,
    directives: DirectiveServiceClient<Svc>,
    tasks: TaskServiceClient<Svc>,
    events: DirectiveEventServiceClient<Svc>,
}

async fn clients(t: &TestSuite, subject: &str, agency: Option<&str>, role: Role) -> Clients {
    let channel = t.gateway().await;
    let bearer = Bearer::new(&t.token(subject, agency, &[role]));
    Clients {
        agencies: AgencyServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        directives: DirectiveServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        tasks: TaskServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        events: DirectiveEventServiceClient::with_interceptor(channel, bearer),
    }
}

fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

/// A `google.protobuf.FieldMask` of these paths (its type reached through a
/// generated message, so that this crate needs no prost-types of its own).
macro_rules! mask {
    ($($path:expr),*) => {{
        let mut m = ItemChange::default().update_mask.unwrap_or_default();
        m.paths = vec![$($path.to_string()),*];
        Some(m)
    }};
}

fn violated(status: &Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

async fn register_directory(c: &mut Clients) {
    for (code, name, short, kind) in [
        (
            "ubnd-quang-ngai",
            "Ủy ban nhân dân tỉnh Quảng Ngãi",
            "UBND tỉnh",
            AgencyKind::PeoplesCommittee,
        ),
        (
            "vp-ubnd",
            "Văn phòng Ủy ban nhân dân tỉnh",
            "VP UBND tỉnh",
            AgencyKind::Office,
        ),
        (
            "so-ldtbxh",
            "Sở Lao động – Thương binh và Xã hội",
            "Sở LĐTB&XH",
            AgencyKind::Department,
        ),
        ("so-tai-chinh", "Sở Tài chính", "", AgencyKind::Department),
        ("so-noi-vu", "Sở Nội vụ", "", AgencyKind::Department),
        (
            "so-kh-dt",
            "Sở Kế hoạch và Đầu tư",
            "Sở KH&ĐT",
            AgencyKind::Department,
        ),
        ("so-xay-dung", "Sở Xây dựng", "", AgencyKind::Department),
        (
            "so-tt-tt",
            "Sở Thông tin và Truyền thông",
            "Sở TT&TT",
            AgencyKind::Department,
        ),
        ("so-cu", "Sở Cũ", "", AgencyKind::Department),
    ] {
        c.agencies
            .create_agency(CreateAgencyRequest {
                agency: Some(Agency {
                    code: code.into(),
                    display_name: name.into(),
                    short_name: short.into(),
                    kind: kind as i32,
                    parent: if code == "ubnd-quang-ngai" {
                        String::new()
                    } else {
                        "agencies/ubnd-quang-ngai".into()
                    },
                    effective_from: date(2008, 4, 1),
                    ..Default::default()
                }),
                request_id: format!("agency-{code}"),
            })
            .await
            .expect("create agency");
    }
}

async fn all_tasks(c: &mut Clients, directive: &str) -> Vec<Task> {
    c.tasks
        .list_tasks(ListTasksRequest {
            page_size: 100,
            filter: format!("directive = \"{directive}\""),
            ..Default::default()
        })
        .await
        .expect("list tasks")
        .into_inner()
        .tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quang_ngai_notice_its_amendment_and_the_merger() {
    let t = TestSuite::start(local_8am(2024, 9, 5)).await;
    let mut office = clients(&t, "users/van-phong", Some("vp-ubnd"), Role::Office).await;
    let mut admin = clients(&t, "users/quan-tri", None, Role::Admin).await;
    register_directory(&mut admin).await;

    // 1. The office imports the text: a draft, with what it could not resolve said.
    let imported = office
        .directives
        .import_directive(ImportDirectiveRequest {
            source: Some(ParseDirectiveRequest {
                source: Some(parse_directive_request::Source::Text(QUANG_NGAI.into())),
                resolve_as_of: None,
            }),
            request_id: "import-534".into(),
        })
        .await
        .expect("import")
        .into_inner();
    let draft = imported.directive.unwrap();
    let parse = imported.parse.unwrap();
    assert_eq!(draft.state, DirectiveState::Draft as i32);
    assert_eq!(draft.kind, DirectiveKind::ConclusionNotice as i32);
    assert_eq!(draft.issuer, "agencies/ubnd-quang-ngai");
    assert_eq!(
        draft.signer.as_ref().unwrap().capacities,
        ["TL. CHỦ TỊCH", "KT. CHÁNH VĂN PHÒNG"]
    );
    assert_eq!(draft.items.len(), 15);
    assert_eq!(draft.number, "", "the number is blank in the document");
    assert!(
        parse
            .unresolved_agencies
            .iter()
            .any(|n| n == "Các sở, ban, ngành")
    );
    let ii9 = draft
        .items
        .iter()
        .position(|i| i.reference == "II.9")
        .unwrap();
    assert!(draft.items[ii9].lead_agencies.is_empty());
    assert!(
        parse.item_notes[ii9]
            .warnings
            .iter()
            .any(|w| w.contains("no lead agency"))
    );

    // Not issued until complete: the number and date first, then the lead of II.9.
    let status = office
        .directives
        .issue_directive(IssueDirectiveRequest {
            name: draft.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let mut items = draft.items.clone();
    items[ii9].lead_agencies = vec!["agencies/so-ldtbxh".into()];
    let fixed = office
        .directives
        .update_directive(UpdateDirectiveRequest {
            directive: Some(Directive {
                number: "534/TB-UBND".into(),
                issue_date: date(2024, 9, 5),
                items,
                ..draft.clone()
            }),
            update_mask: mask!("number", "issue_date", "items"),
            request_id: "fix-534".into(),
        })
        .await
        .expect("fix the draft")
        .into_inner()
        .directive
        .unwrap();
    let notice = office
        .directives
        .issue_directive(IssueDirectiveRequest {
            name: fixed.name.clone(),
            etag: fixed.etag.clone(),
            request_id: "issue-534".into(),
        })
        .await
        .expect("issue")
        .into_inner()
        .directive
        .unwrap();
    assert_eq!(notice.state, DirectiveState::Issued as i32);

    // 2. The assignments service turns the fifteen items into fifteen tasks.
    let tasks = eventually(Duration::from_secs(15), || {
        let mut c = office.tasks.clone();
        let name = notice.name.clone();
        async move {
            let list = c
                .list_tasks(ListTasksRequest {
                    page_size: 100,
                    filter: format!("directive = \"{name}\""),
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .tasks;
            (list.len() == 15).then_some(list)
        }
    })
    .await;
    let ii4_item = notice
        .items
        .iter()
        .find(|i| i.reference == "II.4")
        .unwrap()
        .clone();
    let ii4_task = tasks
        .iter()
        .find(|t| t.directive_item == ii4_item.name)
        .unwrap()
        .clone();
    assert_eq!(ii4_task.due_date, date(2024, 9, 30));
    assert_eq!(ii4_task.directive_number, "534/TB-UBND");

    // 3. A later letter moves the deadline of II.4 to 31/10/2024.
    t.clock.set(local_8am(2024, 9, 20));
    let letter = office
        .directives
        .create_directive(CreateDirectiveRequest {
            directive: Some(Directive {
                kind: DirectiveKind::OfficialLetter as i32,
                number: "612/UBND-KGVX".into(),
                issuer: "agencies/ubnd-quang-ngai".into(),
                issue_date: date(2024, 9, 20),
                subject: "Điều chỉnh thời hạn thực hiện nhiệm vụ tại Thông báo số 534/TB-UBND"
                    .into(),
                links: vec![DirectiveLink {
                    kind: DirectiveLinkKind::Amends as i32,
                    target: notice.name.clone(),
                }],
                amendments: vec![ItemAmendment {
                    target: ii4_item.name.clone(),
                    change: Some(item_amendment::Change::ChangeItem(ItemChange {
                        item: Some(DirectiveItem {
                            due_date: date(2024, 10, 31),
                            deadline_text: "trước ngày 31/10/2024".into(),
                            ..Default::default()
                        }),
                        update_mask: mask!("due_date", "deadline_text"),
                    })),
                }],
                ..Default::default()
            }),
            request_id: "create-612".into(),
        })
        .await
        .expect("create the amending letter")
        .into_inner()
        .directive
        .unwrap();
    let letter = office
        .directives
        .issue_directive(IssueDirectiveRequest {
            name: letter.name.clone(),
            ..Default::default()
        })
        .await
        .expect("issue the amending letter")
        .into_inner()
        .directive
        .unwrap();
    let amended = office
        .directives
        .get_directive(GetDirectiveRequest {
            name: notice.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .directive
        .unwrap();
    let item = amended
        .items
        .iter()
        .find(|i| i.name == ii4_item.name)
        .unwrap();
    assert_eq!(item.due_date, date(2024, 10, 31));
    assert_eq!(item.deadline_text, "trước ngày 31/10/2024");
    assert_eq!(item.text, ii4_item.text);

    // The change is on the stream, for assignments and provincial systems.
    let mut inspector = clients(&t, "users/thanh-tra", Some("thanh-tra"), Role::Inspector).await;
    let mut stream = inspector
        .events
        .watch_events(WatchEventsRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let message = stream.next().await.unwrap().unwrap();
            if let Some(watch_events_response::Item::Event(e)) = message.item
                && let Some(Payload::DirectiveItemsAmended(a)) = e.payload
            {
                return a;
            }
        }
    })
    .await
    .expect("the amendment on the stream");
    assert_eq!(event.amended_by, letter.name);
    assert_eq!(event.amended_by_number, "612/UBND-KGVX");
    assert_eq!(event.changed_items, std::slice::from_ref(&ii4_item.name));
    assert!(event.added_items.is_empty() && event.cancelled_items.is_empty());
    assert_eq!(event.directive.unwrap(), amended);
    // The assignments service follows the amendment: the task's deadline moves,
    // its original deadline is kept.
    let task = eventually(Duration::from_secs(10), || {
        let mut tasks = office.tasks.clone();
        let name = ii4_task.name.clone();
        async move {
            let task = tasks
                .get_task(GetTaskRequest { name })
                .await
                .ok()?
                .into_inner()
                .task?;
            (task.due_date == date(2024, 10, 31)).then_some(task)
        }
    })
    .await;
    assert_eq!(task.original_due_date, ii4_task.due_date);

    // 4. On 1/3/2025 the Department of Labour merges into Home Affairs.
    t.clock.set(local_8am(2025, 3, 3));
    let merged = admin
        .agencies
        .merge_agencies(MergeAgenciesRequest {
            sources: vec!["agencies/so-ldtbxh".into()],
            successor: "agencies/so-noi-vu".into(),
            effective_date: date(2025, 3, 1),
            reason: "Quyết định sắp xếp tổ chức bộ máy".into(),
            request_id: "merge-ldtbxh".into(),
        })
        .await
        .expect("merge")
        .into_inner();
    assert_eq!(merged.successor.unwrap().name, "agencies/so-noi-vu");

    // 5. What users then see. Anyone resolves the old name to the successor…
    let mut labour = clients(&t, "users/so-ldtbxh", Some("so-ldtbxh"), Role::Agency).await;
    for query in [
        "Sở Lao động – Thương binh và Xã hội",
        "so lao dong thuong binh va xa hoi",
        "Sở LĐTB&XH",
    ] {
        let resolved = labour
            .agencies
            .resolve_agency(ResolveAgencyRequest {
                query: query.into(),
                as_of: None,
            })
            .await
            .expect("resolve")
            .into_inner();
        assert_eq!(
            resolved.matched.unwrap().name,
            "agencies/so-ldtbxh",
            "{query}"
        );
        let current: Vec<_> = resolved.current.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(current, ["agencies/so-noi-vu"], "{query}");
    }
    // …the directive keeps its original issuer and leads, under their names of 2024…
    let seen = labour
        .directives
        .get_directive(GetDirectiveRequest {
            name: notice.name.clone(),
        })
        .await
        .expect("the department still reads its directive")
        .into_inner()
        .directive
        .unwrap();
    assert_eq!(seen.issuer, "agencies/ubnd-quang-ngai");
    assert_eq!(seen.items[3].lead_agencies, ["agencies/so-ldtbxh"]);
    let as_then = labour
        .agencies
        .resolve_agency(ResolveAgencyRequest {
            query: seen.items[3].lead_agencies[0].clone(),
            as_of: seen.issue_date,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        as_then.matched.unwrap().display_name,
        "Sở Lao động – Thương binh và Xã hội"
    );
    // …and a new draft naming the merged department is refused, naming the successor.
    let status = office
        .directives
        .create_directive(CreateDirectiveRequest {
            directive: Some(Directive {
                kind: DirectiveKind::ConclusionNotice as i32,
                number: "120/TB-UBND".into(),
                issuer: "agencies/ubnd-quang-ngai".into(),
                issue_date: date(2025, 3, 3),
                subject: "Kết luận về công tác giảm nghèo".into(),
                items: vec![DirectiveItem {
                    text: "Tổng kết Chương trình giảm nghèo".into(),
                    lead_agencies: vec!["agencies/so-ldtbxh".into()],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated(&status), ["directive.items[0].lead_agencies[0]"]);
    assert!(
        status.message().contains("agencies/so-noi-vu"),
        "{}",
        status.message()
    );
    // Tasks are never duplicated by any of this.
    assert_eq!(all_tasks(&mut office, &notice.name).await.len(), 15);
    t.suite.stop().await.unwrap();
}

fn valid_draft() -> Directive {
    Directive {
        kind: DirectiveKind::ConclusionNotice as i32,
        number: "700/TB-UBND".into(),
        issuer: "agencies/ubnd-quang-ngai".into(),
        issue_date: date(2024, 9, 5),
        subject: "Kết luận của Chủ tịch UBND tỉnh".into(),
        items: vec![DirectiveItem {
            reference: "1".into(),
            text: "Tham mưu UBND tỉnh".into(),
            lead_agencies: vec!["agencies/so-tai-chinh".into()],
            due_date: date(2024, 10, 1),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_refused_by_field_and_who_may_do_what() {
    let t = TestSuite::start(local_8am(2024, 9, 5)).await;
    let mut office = clients(&t, "users/van-phong", Some("vp-ubnd"), Role::Office).await;
    let mut admin = clients(&t, "users/quan-tri", None, Role::Admin).await;
    register_directory(&mut admin).await;
    admin
        .agencies
        .dissolve_agency(DissolveAgencyRequest {
            name: "agencies/so-cu".into(),
            effective_date: date(2024, 9, 1),
            request_id: String::new(),
        })
        .await
        .expect("dissolve");

    let writer = office.directives.clone();
    let refused = |d: Directive| {
        let mut c = writer.clone();
        async move {
            c.create_directive(CreateDirectiveRequest {
                directive: Some(d),
                request_id: String::new(),
            })
            .await
            .unwrap_err()
        }
    };
    let mut d = valid_draft();
    d.subject = "   ".into();
    assert_eq!(
        violated(&refused(d).await),
        ["directive.subject"],
        "empty subject"
    );
    let mut d = valid_draft();
    d.subject = "x".repeat(1001);
    assert_eq!(
        violated(&refused(d).await),
        ["directive.subject"],
        "over-long subject"
    );
    let mut d = valid_draft();
    d.items[0].lead_agencies.clear();
    assert_eq!(
        violated(&refused(d).await),
        ["directive.items[0].lead_agencies"],
        "no lead"
    );
    let mut d = valid_draft();
    d.items[0].lead_agencies = vec!["agencies/so-khong-co".into()];
    assert_eq!(
        violated(&refused(d).await),
        ["directive.items[0].lead_agencies[0]"],
        "unknown agency"
    );
    let mut d = valid_draft();
    d.items[0].coordinating_agencies = vec!["agencies/so-cu".into()];
    let status = refused(d).await;
    assert_eq!(
        violated(&status),
        ["directive.items[0].coordinating_agencies[0]"],
        "dissolved agency"
    );
    assert!(
        status.message().contains("dissolved"),
        "{}",
        status.message()
    );
    let mut d = valid_draft();
    d.items[0].due_date = date(2024, 9, 1);
    assert_eq!(
        violated(&refused(d).await),
        ["directive.items[0].due_date"],
        "due before issue"
    );
    let mut d = valid_draft();
    d.number = "700-TB".into();
    assert_eq!(
        violated(&refused(d).await),
        ["directive.number"],
        "malformed number"
    );

    // A retry with the same request id returns the first answer.
    let create = |request_id: &str| {
        let mut c = writer.clone();
        let request_id = request_id.to_string();
        async move {
            c.create_directive(CreateDirectiveRequest {
                directive: Some(valid_draft()),
                request_id,
            })
            .await
        }
    };
    let first = create("create-700").await.unwrap().into_inner();
    assert_eq!(create("create-700").await.unwrap().into_inner(), first);
    assert_eq!(
        violated(&create("").await.unwrap_err()),
        ["directive.number"],
        "duplicate number"
    );

    // Listings: an unknown filter field, a token from another query, a negative size.
    let list = |filter: &str, page_size: i32, page_token: String| {
        let mut c = writer.clone();
        let filter = filter.to_string();
        async move {
            c.list_directives(ListDirectivesRequest {
                page_size,
                page_token,
                filter,
            })
            .await
        }
    };
    assert_eq!(
        violated(
            &list("colour = \"red\"", 0, String::new())
                .await
                .unwrap_err()
        ),
        ["filter"]
    );
    assert_eq!(
        violated(&list("", -1, String::new()).await.unwrap_err()),
        ["page_size"]
    );
    let mut second = valid_draft();
    second.number = "701/TB-UBND".into();
    office
        .directives
        .create_directive(CreateDirectiveRequest {
            directive: Some(second),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let page = list("state = \"DRAFT\"", 1, String::new())
        .await
        .unwrap()
        .into_inner();
    assert!(!page.next_page_token.is_empty());
    assert_eq!(
        violated(
            &list("kind = \"PLAN\"", 1, page.next_page_token.clone())
                .await
                .unwrap_err()
        ),
        ["page_token"]
    );
    let rest = list("state = \"DRAFT\"", 1, page.next_page_token)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.directives.len(), 1);

    // Who may do what. Agencies do not write; inspectors read everything; an
    // agency reads only issued directives that involve it.
    let draft = first.directive.unwrap();
    let mut labour = clients(&t, "users/so-ldtbxh", Some("so-ldtbxh"), Role::Agency).await;
    let mut finance = clients(&t, "users/so-tai-chinh", Some("so-tai-chinh"), Role::Agency).await;
    let mut inspector = clients(&t, "users/thanh-tra", Some("thanh-tra"), Role::Inspector).await;
    let status = labour
        .directives
        .create_directive(CreateDirectiveRequest {
            directive: Some(valid_draft()),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let get = |c: &mut Clients, name: &str| {
        let mut d = c.directives.clone();
        let name = name.to_string();
        async move { d.get_directive(GetDirectiveRequest { name }).await }
    };
    assert_eq!(
        get(&mut finance, &draft.name).await.unwrap_err().code(),
        Code::PermissionDenied,
        "a draft"
    );
    assert!(get(&mut inspector, &draft.name).await.is_ok());
    office
        .directives
        .issue_directive(IssueDirectiveRequest {
            name: draft.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        get(&mut finance, &draft.name).await.is_ok(),
        "it leads the item"
    );
    assert_eq!(
        get(&mut labour, &draft.name).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let status = office
        .agencies
        .merge_agencies(MergeAgenciesRequest {
            sources: vec!["agencies/so-xay-dung".into()],
            successor: "agencies/so-xay-dung".into(),
            effective_date: date(2025, 1, 1),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated(&status), ["sources[0]"]);
    let status = labour
        .agencies
        .merge_agencies(MergeAgenciesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = labour
        .events
        .watch_events(WatchEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // Search finds the issued directive without diacritics; the department
    // not involved finds nothing.
    let found = inspector
        .directives
        .search_directives(SearchDirectivesRequest {
            query: "ket luan chu tich".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!found.results.is_empty());
    let found = labour
        .directives
        .search_directives(SearchDirectivesRequest {
            query: "ket luan".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(found.results.is_empty());
    t.suite.stop().await.unwrap();
}
