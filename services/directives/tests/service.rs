//! The directives service against a real PostgreSQL: storage, full-text
//! search, reorganisation, amendments, import, idempotency, the fine
//! authorization rules and the contents of the event stream. Handlers are
//! called directly, with the principal the identity layer would attach.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use dondoc_contracts::common::v1::Date;
use dondoc_contracts::directives::v1::agency_service_server::AgencyService;
use dondoc_contracts::directives::v1::directive_event::Payload;
use dondoc_contracts::directives::v1::directive_service_server::DirectiveService;
use dondoc_contracts::directives::v1::*;
use dondoc_directives::State;
use dondoc_directives::grpc::agencies::Agencies;
use dondoc_directives::grpc::directives::Directives;
use dondoc_events::{Cursor, FollowSettings, Wake};
use dondoc_identity::{Principal, Role};
use dondoc_server::streams::StreamContext;
use dondoc_time::Clock;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

const QUANG_NGAI: &str =
    include_str!("../../../../shared/fixtures/documents/quangngai-tb-ket-luan-sldtbxh-2024.txt");

struct Service {
    state: Arc<State>,
    agencies: Agencies,
    directives: Directives,
}

async fn service() -> Service {
    let schema = dondoc_directives::schema();
    let (_db, pool) = dondoc_testing::migrated(
        "directives_template",
        &schema,
        &dondoc_directives::storage::MIGRATIONS,
    )
    .await;
    dondoc_directives::storage::make_consistent(&pool)
        .await
        .unwrap();
    let clock = Clock::manual(Utc.with_ymd_and_hms(2024, 9, 5, 2, 0, 0).unwrap());
    let wake = Wake::new();
    let hot = dondoc_database::HotConnections::new(pool.clone());
    let state = Arc::new(State {
        streams: StreamContext {
            hot: hot.clone(),
            wake: wake.clone(),
            follow: FollowSettings {
                poll_interval: Duration::from_millis(100),
                checkpoint_interval: Duration::from_millis(300),
                batch: 100,
                ..Default::default()
            },
            shutdown: CancellationToken::new(),
            clock: clock.clone(),
        },
        hot,
        clock,
        wake,
    });
    Service {
        agencies: Agencies(state.clone()),
        directives: Directives(state.clone()),
        state,
    }
}

fn office() -> Principal {
    Principal {
        subject: "users/van-phong".into(),
        agency: Some("vp-ubnd".into()),
        roles: vec![Role::Office],
    }
}

fn user(role: Role, agency: &str) -> Principal {
    Principal {
        subject: format!("users/{}-{agency}", role.as_str()),
        agency: Some(agency.into()),
        roles: vec![role],
    }
}

fn req<T>(principal: &Principal, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.extensions_mut().insert(principal.clone());
    request
}

fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

fn fields_of(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

fn reason_of(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

async fn agency(s: &Service, code: &str, name: &str, short: &str, kind: AgencyKind) -> Agency {
    s.agencies
        .create_agency(req(
            &office(),
            CreateAgencyRequest {
                agency: Some(Agency {
                    code: code.into(),
                    display_name: name.into(),
                    short_name: short.into(),
                    kind: kind as i32,
                    effective_from: date(2008, 1, 1),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .agency
        .unwrap()
}

async fn directory(s: &Service) {
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
    ] {
        agency(s, code, name, short, kind).await;
    }
}

fn notice(number: &str) -> Directive {
    Directive {
        kind: DirectiveKind::ConclusionNotice as i32,
        number: number.into(),
        issuer: "agencies/ubnd-quang-ngai".into(),
        issue_date: date(2024, 9, 5),
        subject: "Kết luận của Chủ tịch UBND tỉnh tại buổi làm việc với Sở Lao động – Thương binh và Xã hội".into(),
        body: "Chủ tịch UBND tỉnh kết luận về công tác giảm nghèo bền vững.".into(),
        items: vec![
            DirectiveItem {
                reference: "II.4".into(),
                text: "Trình HĐND tỉnh Nghị quyết hỗ trợ bà mẹ Việt Nam anh hùng".into(),
                lead_agencies: vec!["agencies/so-ldtbxh".into()],
                due_date: date(2024, 9, 30),
                deadline_text: "trong kỳ họp tháng 9/2024".into(),
                key_task: true,
                ..Default::default()
            },
            DirectiveItem {
                reference: "III.3".into(),
                text: "Số hóa hồ sơ người có công".into(),
                lead_agencies: vec!["agencies/so-tt-tt".into()],
                coordinating_agencies: vec!["agencies/so-tai-chinh".into()],
                due_date: date(2024, 9, 30),
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

async fn create(s: &Service, directive: Directive, request_id: &str) -> Result<Directive, Status> {
    s.directives
        .create_directive(req(
            &office(),
            CreateDirectiveRequest {
                directive: Some(directive),
                request_id: request_id.into(),
            },
        ))
        .await
        .map(|r| r.into_inner().directive.unwrap())
}

async fn issue(s: &Service, name: &str) -> Result<Directive, Status> {
    s.directives
        .issue_directive(req(
            &office(),
            IssueDirectiveRequest {
                name: name.into(),
                ..Default::default()
            },
        ))
        .await
        .map(|r| r.into_inner().directive.unwrap())
}

/// Every event written so far. The gap-free read serves rows only below the
/// oldest running transaction of the cluster (other tests' included), so it
/// waits until it has served every committed row.
async fn events(s: &Service) -> Vec<DirectiveEvent> {
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(s.state.hot.pool())
        .await
        .unwrap();
    let mut page = dondoc_events::outbox::read(
        &mut s.state.hot.pool().acquire().await.unwrap(),
        Cursor::START,
        1000,
    )
    .await
    .unwrap();
    for _ in 0..100 {
        if page.items.len() as i64 >= written {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        page = dondoc_events::outbox::read(
            &mut s.state.hot.pool().acquire().await.unwrap(),
            Cursor::START,
            1000,
        )
        .await
        .unwrap();
    }
    page.items
        .into_iter()
        .map(|(_, e)| DirectiveEvent::decode(e.payload.as_slice()).unwrap())
        .collect()
}

#[tokio::test]
async fn a_retried_create_returns_the_first_answer_and_the_stream_has_every_change() {
    let s = service().await;
    directory(&s).await;
    let first = create(&s, notice("534/TB-UBND"), "create-534")
        .await
        .unwrap();
    let again = create(&s, notice("534/TB-UBND"), "create-534")
        .await
        .unwrap();
    assert_eq!(first, again, "a retry returns the first answer");
    let issued = issue(&s, &first.name).await.unwrap();
    assert_eq!(issued.state, DirectiveState::Issued as i32);
    assert_eq!(
        issued.items[0].name, first.items[0].name,
        "items keep their names"
    );
    let issue_stamp = issued.issue_stamp.clone().unwrap();
    assert_eq!(issue_stamp.actor, "users/van-phong");
    assert_eq!(
        issue_stamp.time.unwrap().seconds,
        s.state.clock.now().timestamp()
    );

    let stream = events(&s).await;
    let kinds: Vec<&str> = stream
        .iter()
        .map(|e| match e.payload.as_ref().unwrap() {
            Payload::AgencyCreated(_) => "agency_created",
            Payload::DirectiveDrafted(_) => "drafted",
            Payload::DirectiveIssued(_) => "issued",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "agency_created").count(), 8);
    assert_eq!(
        &kinds[8..],
        ["drafted", "issued"],
        "one draft despite the retry"
    );
    let Some(Payload::DirectiveIssued(event)) = &stream[9].payload else {
        panic!()
    };
    assert_eq!(event.directive.as_ref().unwrap(), &issued);
    assert_eq!(
        stream[9].stamp.as_ref().unwrap().actor_agency,
        "agencies/vp-ubnd"
    );

    // A duplicate number, even without a request id, is refused and changes nothing.
    let status = create(&s, notice("534/TB-UBND"), "").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(fields_of(&status), ["directive.number"]);
    assert_eq!(events(&s).await.len(), 10);
}

#[tokio::test]
async fn search_ignores_diacritics_ranks_and_keeps_agencies_to_their_own() {
    let s = service().await;
    directory(&s).await;
    let a = create(&s, notice("534/TB-UBND"), "").await.unwrap();
    issue(&s, &a.name).await.unwrap();
    let mut other = notice("535/TB-UBND");
    other.subject = "Kế hoạch xây dựng nghĩa trang liệt sỹ".into();
    other.body = "Giảm nghèo được nhắc một lần.".into();
    other.items.truncate(1);
    other.items[0].lead_agencies = vec!["agencies/so-xay-dung".into()];
    other.items[0].text = "Sửa chữa nghĩa trang".into();
    let b = create(&s, other, "").await.unwrap();
    issue(&s, &b.name).await.unwrap();

    let search = |principal: Principal, query: &str, page_size: i32, page_token: String| {
        let d = &s.directives;
        let query = query.to_string();
        async move {
            d.search_directives(req(
                &principal,
                SearchDirectivesRequest {
                    query,
                    page_size,
                    page_token,
                },
            ))
            .await
            .map(|r| r.into_inner())
        }
    };
    let found = search(office(), "GIAM NGHEO", 0, String::new())
        .await
        .unwrap();
    assert_eq!(found.results.len(), 2);
    // Found in the subject weighs more than in the body.
    let found = search(office(), "nghia trang", 0, String::new())
        .await
        .unwrap();
    assert_eq!(found.results[0].directive.as_ref().unwrap().name, b.name);
    assert!(
        found.results[0].snippet.contains("**nghĩa**"),
        "{}",
        found.results[0].snippet
    );
    let found = search(office(), "giảm nghèo", 1, String::new())
        .await
        .unwrap();
    assert_eq!(found.results.len(), 1);
    assert!(found.results[0].score >= 0.0);
    let next = search(office(), "giảm nghèo", 1, found.next_page_token.clone())
        .await
        .unwrap();
    assert_eq!(next.results.len(), 1);
    assert_ne!(next.results[0].directive, found.results[0].directive);
    // A token from another query is refused.
    let status = search(office(), "nghia trang", 1, found.next_page_token)
        .await
        .unwrap_err();
    assert_eq!(fields_of(&status), ["page_token"]);
    let status = search(office(), "  ;; ", 1, String::new())
        .await
        .unwrap_err();
    assert_eq!(fields_of(&status), ["query"]);
    let status = search(office(), "x", -1, String::new()).await.unwrap_err();
    assert_eq!(fields_of(&status), ["page_size"]);
    // The department of construction finds only what involves it.
    let found = search(
        user(Role::Agency, "so-xay-dung"),
        "giam ngheo",
        0,
        String::new(),
    )
    .await
    .unwrap();
    assert_eq!(found.results.len(), 1);
    assert_eq!(found.results[0].directive.as_ref().unwrap().name, b.name);
    let status = search(
        user(Role::Subscriber, "so-xay-dung"),
        "giam ngheo",
        0,
        String::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_merged_agency_resolves_to_its_successor_and_keeps_its_history() {
    let s = service().await;
    directory(&s).await;
    let d = create(&s, notice("534/TB-UBND"), "").await.unwrap();
    issue(&s, &d.name).await.unwrap();
    // Rename first: Sở Nội vụ gets a new name from 2025-01-01.
    let renamed = s
        .agencies
        .rename_agency(req(
            &office(),
            RenameAgencyRequest {
                name: "agencies/so-noi-vu".into(),
                display_name: "Sở Nội vụ tỉnh Quảng Ngãi".into(),
                short_name: "SNV".into(),
                effective_date: date(2025, 1, 1),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .agency
        .unwrap();
    assert_eq!(renamed.name_history.len(), 1);
    assert_eq!(renamed.name_history[0].display_name, "Sở Nội vụ");
    assert_eq!(renamed.name_history[0].valid_until, date(2024, 12, 31));

    let merge = |request_id: &str| {
        s.agencies.merge_agencies(req(
            &office(),
            MergeAgenciesRequest {
                sources: vec!["agencies/so-ldtbxh".into()],
                successor: "agencies/so-noi-vu".into(),
                effective_date: date(2025, 3, 1),
                reason: "Nghị quyết 12/NQ-HĐND".into(),
                request_id: request_id.into(),
            },
        ))
    };
    let merged = merge("merge-1").await.unwrap().into_inner();
    assert_eq!(merged.successor.unwrap().code, "so-noi-vu");
    let retried = merge("merge-1").await.unwrap().into_inner();
    assert_eq!(retried.successor.unwrap().code, "so-noi-vu");
    let status = merge("").await.unwrap_err();
    assert_eq!(fields_of(&status), ["sources[0]"], "already merged");

    let old = s
        .agencies
        .get_agency(req(
            &office(),
            GetAgencyRequest {
                name: "agencies/so-ldtbxh".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .agency
        .unwrap();
    assert_eq!(old.state, AgencyState::Merged as i32);
    assert_eq!(old.successors, ["agencies/so-noi-vu"]);
    assert_eq!(old.effective_until, date(2025, 2, 28));

    let resolve = |query: &str, as_of: Option<Date>| {
        s.agencies.resolve_agency(req(
            &user(Role::Agency, "so-tai-chinh"),
            ResolveAgencyRequest {
                query: query.into(),
                as_of,
            },
        ))
    };
    for query in [
        "so lao dong thuong binh va xa hoi",
        "Sở LĐTB&XH",
        "agencies/so-ldtbxh",
        "so-ldtbxh",
    ] {
        let r = resolve(query, None).await.unwrap().into_inner();
        assert_eq!(r.matched.unwrap().code, "so-ldtbxh", "{query}");
        assert_eq!(r.current.len(), 1);
        assert_eq!(r.current[0].code, "so-noi-vu");
    }
    // The name a document of 2024 used is the name of 2024.
    let r = resolve("Sở Nội vụ", date(2024, 9, 5))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.matched.as_ref().unwrap().code, "so-noi-vu");
    assert_eq!(r.matched.unwrap().display_name, "Sở Nội vụ");
    let r = resolve("agencies/so-noi-vu", date(2026, 1, 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.matched.unwrap().display_name, "Sở Nội vụ tỉnh Quảng Ngãi");
    assert_eq!(
        resolve("Sở Không Có", None).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(fields_of(&resolve(" ", None).await.unwrap_err()), ["query"]);

    // The issued directive still names the department as it was.
    let kept = s
        .directives
        .get_directive(req(
            &office(),
            GetDirectiveRequest {
                name: d.name.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .directive
        .unwrap();
    assert_eq!(kept.items[0].lead_agencies, ["agencies/so-ldtbxh"]);
    // A new draft naming it is refused, naming the successor.
    let status = create(&s, notice("600/TB-UBND"), "").await.unwrap_err();
    assert_eq!(fields_of(&status), ["directive.items[0].lead_agencies[0]"]);
    assert!(
        status.message().contains("agencies/so-noi-vu"),
        "{}",
        status.message()
    );
    // Search by the old name still finds the merged agency.
    let listed = s
        .agencies
        .list_agencies(req(
            &office(),
            ListAgenciesRequest {
                filter: "search = \"so lao dong\"".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.agencies.len(), 1);

    // One AgencyReorganized event per reorganisation, filled.
    let reorganized: Vec<AgencyReorganized> = events(&s)
        .await
        .into_iter()
        .filter_map(|e| match e.payload {
            Some(Payload::AgencyReorganized(r)) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(reorganized.len(), 2);
    assert_eq!(reorganized[1].kind, ReorganizationKind::Merge as i32);
    assert_eq!(reorganized[1].sources, ["agencies/so-ldtbxh"]);
    assert_eq!(reorganized[1].successors, ["agencies/so-noi-vu"]);
    assert_eq!(reorganized[1].effective_date, date(2025, 3, 1));

    // Split and dissolve.
    agency(&s, "so-a", "Sở A", "", AgencyKind::Department).await;
    agency(&s, "so-b", "Sở B", "", AgencyKind::Department).await;
    agency(&s, "so-c", "Sở C", "", AgencyKind::Department).await;
    s.agencies
        .split_agency(req(
            &office(),
            SplitAgencyRequest {
                name: "agencies/so-a".into(),
                successors: vec!["agencies/so-b".into(), "agencies/so-c".into()],
                effective_date: date(2025, 7, 1),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap();
    let r = resolve("Sở A", None).await.unwrap().into_inner();
    let current: Vec<_> = r.current.iter().map(|a| a.code.as_str()).collect();
    assert_eq!(current, ["so-b", "so-c"]);
    let dissolved = s
        .agencies
        .dissolve_agency(req(
            &office(),
            DissolveAgencyRequest {
                name: "agencies/so-c".into(),
                effective_date: date(2025, 8, 1),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .agency
        .unwrap();
    assert_eq!(dissolved.state, AgencyState::Dissolved as i32);
    // Only the office and admins reorganise.
    let status = s
        .agencies
        .dissolve_agency(req(
            &user(Role::Leader, "ubnd-quang-ngai"),
            DissolveAgencyRequest {
                name: "agencies/so-b".into(),
                effective_date: date(2025, 8, 1),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn an_amending_directive_changes_adds_and_cancels_items_when_issued() {
    let s = service().await;
    directory(&s).await;
    let target = create(&s, notice("534/TB-UBND"), "").await.unwrap();
    let target = issue(&s, &target.name).await.unwrap();
    let letter = |due: Option<Date>| Directive {
        kind: DirectiveKind::OfficialLetter as i32,
        number: "612/UBND-KGVX".into(),
        issuer: "agencies/ubnd-quang-ngai".into(),
        issue_date: date(2024, 9, 20),
        subject: "Điều chỉnh thời hạn thực hiện Thông báo 534/TB-UBND".into(),
        links: vec![DirectiveLink {
            kind: DirectiveLinkKind::Amends as i32,
            target: target.name.clone(),
        }],
        amendments: vec![
            ItemAmendment {
                target: target.items[0].name.clone(),
                change: Some(item_amendment::Change::ChangeItem(ItemChange {
                    item: Some(DirectiveItem {
                        due_date: due,
                        deadline_text: "trước ngày 31/10/2024".into(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["due_date".into(), "deadline_text".into()],
                    }),
                })),
            },
            ItemAmendment {
                target: target.items[1].name.clone(),
                change: Some(item_amendment::Change::CancelItem(ItemCancellation {
                    reason: "Đã hoàn thành theo kế hoạch khác".into(),
                })),
            },
            ItemAmendment {
                target: target.name.clone(),
                change: Some(item_amendment::Change::AddItem(DirectiveItem {
                    reference: "III.5".into(),
                    text: "Báo cáo kết quả giảm nghèo".into(),
                    lead_agencies: vec!["agencies/so-ldtbxh".into()],
                    due_date: date(2024, 12, 15),
                    ..Default::default()
                })),
            },
        ],
        ..Default::default()
    };
    // A new due date before the target's issue date is refused, naming the field.
    let status = create(&s, letter(date(2024, 9, 1)), "").await.unwrap_err();
    assert_eq!(
        fields_of(&status),
        ["directive.amendments[0].change_item.item.due_date"]
    );
    // An item of another directive is refused.
    let mut wrong = letter(date(2024, 10, 31));
    wrong.amendments[0].target = format!("{}/items/999999", target.name);
    assert_eq!(
        fields_of(&create(&s, wrong, "").await.unwrap_err()),
        ["directive.amendments[0].target"]
    );
    let draft = create(&s, letter(date(2024, 10, 31)), "").await.unwrap();
    assert_eq!(draft.amendments.len(), 3);
    let before = events(&s).await.len();
    let issued = issue(&s, &draft.name).await.unwrap();
    assert_eq!(issued.state, DirectiveState::Issued as i32);

    let after = s
        .directives
        .get_directive(req(
            &office(),
            GetDirectiveRequest {
                name: target.name.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .directive
        .unwrap();
    assert_eq!(after.items.len(), 3);
    assert_eq!(after.items[0].name, target.items[0].name);
    assert_eq!(after.items[0].due_date, date(2024, 10, 31));
    assert_eq!(after.items[0].text, target.items[0].text);
    assert_eq!(after.items[1].state, ItemState::Cancelled as i32);
    assert_eq!(after.items[2].reference, "III.5");
    assert_eq!(after.state, DirectiveState::Issued as i32);

    let new_events = events(&s).await.split_off(before);
    assert_eq!(
        new_events.len(),
        2,
        "issued, then one amendment event for the one target"
    );
    let Some(Payload::DirectiveItemsAmended(amended)) = &new_events[1].payload else {
        panic!("{:?}", new_events[1].payload)
    };
    assert_eq!(amended.amended_by, issued.name);
    assert_eq!(amended.amended_by_number, "612/UBND-KGVX");
    assert_eq!(amended.directive.as_ref().unwrap(), &after);
    assert_eq!(amended.changed_items, [target.items[0].name.clone()]);
    assert_eq!(amended.cancelled_items, [target.items[1].name.clone()]);
    assert_eq!(amended.added_items, [after.items[2].name.clone()]);

    // An issued directive is immutable; revoking needs a reason.
    let status = s
        .directives
        .update_directive(req(
            &office(),
            UpdateDirectiveRequest {
                directive: Some(Directive {
                    name: target.name.clone(),
                    subject: "x".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["subject".into()],
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(reason_of(&status), "DIRECTIVE_NOT_DRAFT");
    let revoke = |reason: &str| {
        s.directives.revoke_directive(req(
            &office(),
            RevokeDirectiveRequest {
                name: target.name.clone(),
                reason: reason.into(),
                ..Default::default()
            },
        ))
    };
    assert_eq!(fields_of(&revoke("").await.unwrap_err()), ["reason"]);
    let revoked = revoke("Thay thế bởi Thông báo 700/TB-UBND")
        .await
        .unwrap()
        .into_inner()
        .directive
        .unwrap();
    assert_eq!(revoked.state, DirectiveState::Revoked as i32);
    assert_eq!(revoked.revoke_reason, "Thay thế bởi Thông báo 700/TB-UBND");
    assert!(revoked.revoke_stamp.is_some());
    let last = events(&s).await.pop().unwrap();
    assert!(
        matches!(last.payload, Some(Payload::DirectiveRevoked(_))),
        "{last:?}"
    );
}

#[tokio::test]
async fn the_quang_ngai_notice_is_imported_fixed_and_issued() {
    let s = service().await;
    directory(&s).await;
    let parse_request = ParseDirectiveRequest {
        source: Some(parse_directive_request::Source::Text(QUANG_NGAI.into())),
        resolve_as_of: None,
    };
    let parsed = s
        .directives
        .parse_directive(req(&office(), parse_request.clone()))
        .await
        .unwrap()
        .into_inner();
    let proposal = parsed.directive.unwrap();
    assert_eq!(proposal.items.len(), 15);
    assert_eq!(proposal.issuer, "agencies/ubnd-quang-ngai");
    assert_eq!(proposal.items[3].lead_agencies, ["agencies/so-ldtbxh"]);
    assert_eq!(proposal.items[3].due_date, date(2024, 9, 30));
    assert!(
        proposal.items[9].lead_agencies.is_empty(),
        "groups do not resolve"
    );
    assert!(
        parsed
            .unresolved_agencies
            .iter()
            .any(|n| n == "Các sở, ban, ngành")
    );
    assert_eq!(parsed.item_notes.len(), 15);
    assert!(events(&s).await.len() == 8, "parsing saves nothing");
    // Agency users do not parse.
    let status = s
        .directives
        .parse_directive(req(&user(Role::Agency, "so-ldtbxh"), parse_request.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    let import = |request_id: &str| {
        s.directives.import_directive(req(
            &office(),
            ImportDirectiveRequest {
                source: Some(parse_request.clone()),
                request_id: request_id.into(),
            },
        ))
    };
    let imported = import("import-1").await.unwrap().into_inner();
    assert_eq!(import("import-1").await.unwrap().into_inner(), imported);
    let draft = imported.directive.unwrap();
    assert_eq!(draft.state, DirectiveState::Draft as i32);
    assert_eq!(draft.items.len(), 15);
    // Not issued while the number, date and leads are missing.
    assert_eq!(
        reason_of(&issue(&s, &draft.name).await.unwrap_err()),
        "DIRECTIVE_INCOMPLETE"
    );
    let mut fixed = draft.clone();
    fixed.number = "534/TB-UBND".into();
    fixed.issue_date = date(2024, 9, 5);
    let updated = s
        .directives
        .update_directive(req(
            &office(),
            UpdateDirectiveRequest {
                directive: Some(fixed.clone()),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["number".into(), "issue_date".into()],
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .directive
        .unwrap();
    let status = issue(&s, &updated.name).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason_of(&status), "ITEM_WITHOUT_LEAD");
    assert!(
        status.message().contains("items[9] (II.9)"),
        "{}",
        status.message()
    );
    // A stale etag is refused.
    let stale = s
        .directives
        .update_directive(req(
            &office(),
            UpdateDirectiveRequest {
                directive: Some(fixed.clone()),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["place".into()],
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let mut items = updated.items.clone();
    items[9].lead_agencies = vec!["agencies/so-ldtbxh".into()];
    let status = s
        .directives
        .update_directive(req(
            &office(),
            UpdateDirectiveRequest {
                directive: Some(Directive {
                    items: items.clone(),
                    etag: "\"1\"".into(),
                    ..updated.clone()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["items".into(), "colour".into()],
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(fields_of(&status), ["update_mask"]);
    let updated = s
        .directives
        .update_directive(req(
            &office(),
            UpdateDirectiveRequest {
                directive: Some(Directive {
                    items,
                    ..updated.clone()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["items".into()],
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .directive
        .unwrap();
    let issued = issue(&s, &updated.name).await.unwrap();
    assert_eq!(issued.items.len(), 15);
    assert!(issued.items.iter().all(|i| !i.lead_agencies.is_empty()));

    // The department reads it; another department does not; nor drafts.
    let read = |p: Principal, name: String| {
        s.directives
            .get_directive(req(&p, GetDirectiveRequest { name }))
    };
    assert!(
        read(user(Role::Agency, "so-ldtbxh"), issued.name.clone())
            .await
            .is_ok()
    );
    assert!(
        read(user(Role::Agency, "so-tt-tt"), issued.name.clone())
            .await
            .is_ok()
    );
    let other = create(
        &s,
        Directive {
            number: String::new(),
            ..notice("")
        },
        "",
    )
    .await
    .unwrap();
    assert_eq!(
        read(user(Role::Agency, "so-ldtbxh"), other.name.clone())
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    assert!(
        read(user(Role::Inspector, "thanh-tra"), other.name.clone())
            .await
            .is_ok()
    );
    let listed = s
        .directives
        .list_directives(req(
            &user(Role::Agency, "so-noi-vu"),
            ListDirectivesRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.directives.is_empty());
    let listed = s
        .directives
        .list_directives(req(
            &user(Role::Agency, "so-ldtbxh"),
            ListDirectivesRequest {
                filter: "key_task = false AND kind = \"CONCLUSION_NOTICE\"".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.directives.len(), 1);
    // A leader writes; an inspector does not.
    let status = s
        .directives
        .create_directive(req(
            &user(Role::Inspector, "thanh-tra"),
            CreateDirectiveRequest {
                directive: Some(notice("")),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        s.directives
            .create_directive(req(
                &user(Role::Leader, "ubnd-quang-ngai"),
                CreateDirectiveRequest {
                    directive: Some(notice("")),
                    request_id: String::new()
                },
            ))
            .await
            .is_ok()
    );
}
