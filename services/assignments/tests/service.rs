//! The assignments service against a real PostgreSQL: the SQL deadline rule
//! against the domain's, statistics (the 58/36/22 and 7/1 report), roll-ups,
//! indicators, recurring occurrences as the clock moves, the directive
//! events it consumes, and authorization — through the service's own gRPC
//! port with a signed assertion, as the gateway would call it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use dondoc_assignments::domain::deadline::{DeadlinePolicy, DeadlineState, classify};
use dondoc_assignments::domain::stage::Stage;
use dondoc_assignments::domain::statistics::Counts;
use dondoc_assignments::storage::statistics::{
    Figures, Scope, counter_scope, figures, figures_from_counters, figures_from_tasks,
    fold_tallies, roll_tallies, roll_until, rolled_before, sum_overdue_tallies, sum_overdue_until,
};
use dondoc_assignments::storage::tasks::{self, NewTask, deadline_predicate};
use dondoc_assignments::storage::{self as storage_mod};
use dondoc_assignments::upstream::DirectiveEvents;
use dondoc_assignments::{App, AssignmentsConfig};
use dondoc_contracts::assignments::v1 as pb;
use dondoc_contracts::assignments::v1::indicator_service_client::IndicatorServiceClient;
use dondoc_contracts::assignments::v1::statistics_service_client::StatisticsServiceClient;
use dondoc_contracts::assignments::v1::task_service_client::TaskServiceClient;
use dondoc_contracts::common::v1::{AuditStamp, Date, MonthlyRule, Recurrence, recurrence};
use dondoc_contracts::directives::v1 as dpb;
use dondoc_database::{PoolSettings, migrate};
use dondoc_events::Wake;
use dondoc_events::consumer::Apply;
use dondoc_identity::{AssertionSigner, AssertionVerifier, KeyPair, Principal, Role, TrustedKeys};
use dondoc_server::{Actor, IdentityConfig, ServiceConfig};
use dondoc_testing::TestDatabase;
use dondoc_time::Clock;
use sqlx::{Connection, PgPool};
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const ROLE: &str = "dondoc_assignments";

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn pbdate(date: NaiveDate) -> Option<Date> {
    Some(dondoc_server::convert::date_to_pb(date))
}

/// 09:00 local time on a date.
fn at(date: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_hms_opt(2, 0, 0).unwrap())
}

async fn database() -> (TestDatabase, PgPool) {
    dondoc_testing::migrated(
        "assignments_template",
        &dondoc_assignments::schema(),
        &storage_mod::MIGRATIONS,
    )
    .await
}

/// The service on a port-0 listener with a manual clock.
struct Service {
    _db: TestDatabase,
    pool: PgPool,
    clock: Clock,
    addr: SocketAddr,
    gateway: AssertionSigner,
    shutdown: CancellationToken,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[derive(Clone)]
struct Assert(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl Interceptor for Assert {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        r.metadata_mut()
            .insert(dondoc_identity::ASSERTION_HEADER, self.0.clone());
        Ok(r)
    }
}

type Tasks = TaskServiceClient<InterceptedService<Channel, Assert>>;
type Stats = StatisticsServiceClient<InterceptedService<Channel, Assert>>;
type Indicators = IndicatorServiceClient<InterceptedService<Channel, Assert>>;

fn office() -> Principal {
    who("users/van-phong", Some("vp-ubnd"), Role::Office)
}

fn agency(code: &str) -> Principal {
    who(&format!("users/{code}"), Some(code), Role::Agency)
}

fn who(subject: &str, agency: Option<&str>, role: Role) -> Principal {
    Principal {
        subject: subject.into(),
        agency: agency.map(str::to_string),
        roles: vec![role],
    }
}

impl Service {
    async fn start(now: DateTime<Utc>) -> Service {
        let (db, pool) = database().await;
        let clock = Clock::manual(now);
        let gateway =
            AssertionSigner::new("gateway", KeyPair::generate(), Duration::from_secs(600));
        let mut trusted = TrustedKeys::default();
        trusted.trust(&gateway);
        let shutdown = CancellationToken::new();
        let app = App::build(
            AssignmentsConfig {
                service: ServiceConfig {
                    listen: "127.0.0.1:0".parse().unwrap(),
                    database: db.role_options(ROLE),
                    pool: PoolSettings::default(),
                    identity: IdentityConfig {
                        signer: AssertionSigner::new(
                            "assignments",
                            KeyPair::generate(),
                            Duration::from_secs(600),
                        ),
                        verifier: AssertionVerifier::new(trusted),
                    },
                    follow: Default::default(),
                    shutdown_grace: Duration::from_secs(1),
                    migrate_on_start: false,
                    admin_listen: None,
                    readiness: Default::default(),
                },
                // Nothing listens there: the consumer retries quietly.
                directives: "http://127.0.0.1:9".parse().unwrap(),
                policy: DeadlinePolicy::default(),
            },
            clock.clone(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let addr = app.local_addr();
        tokio::spawn(app.run_until_stopped());
        Service {
            _db: db,
            pool,
            clock,
            addr,
            gateway,
            shutdown,
        }
    }

    async fn channel(&self, principal: &Principal) -> (Channel, Assert) {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        (
            channel,
            Assert(self.gateway.sign(principal).parse().unwrap()),
        )
    }

    async fn tasks(&self, principal: &Principal) -> Tasks {
        let (c, a) = self.channel(principal).await;
        TaskServiceClient::with_interceptor(c, a)
    }

    async fn stats(&self, principal: &Principal) -> Stats {
        let (c, a) = self.channel(principal).await;
        StatisticsServiceClient::with_interceptor(c, a)
    }

    async fn indicators(&self, principal: &Principal) -> Indicators {
        let (c, a) = self.channel(principal).await;
        IndicatorServiceClient::with_interceptor(c, a)
    }
}

fn actor(at_: DateTime<Utc>) -> Actor {
    Actor {
        subject: "users/van-phong".into(),
        agency: Some("vp-ubnd".into()),
        at: at_,
    }
}

fn new_task(lead: &str, assigned: NaiveDate, due: Option<NaiveDate>, key: bool) -> NewTask {
    NewTask {
        title: "Nhiệm vụ".into(),
        description: String::new(),
        directive_id: None,
        directive_item_id: None,
        directive_number: String::new(),
        reference: String::new(),
        lead_agencies: vec![lead.into()],
        coordinating_agencies: vec![],
        assigner: "vp-ubnd".into(),
        assign_date: assigned,
        due_date: due,
        recurrence: None,
        priority: "NORMAL".into(),
        key_task: key,
    }
}

/// Inserts a task and forces its stage and completion date.
async fn seed(pool: &PgPool, task: NewTask, stage: Stage, completed: Option<NaiveDate>) -> i64 {
    let mut conn = pool.acquire().await.unwrap();
    let record = tasks::insert(&mut conn, &task, &actor(at(task.assign_date)))
        .await
        .unwrap()
        .unwrap();
    sqlx::query("UPDATE tasks SET stage = $2, completion_date = $3 WHERE id = $1")
        .bind(record.id)
        .bind(stage.as_str())
        .bind(completed)
        .execute(&mut *conn)
        .await
        .unwrap();
    record.id
}

#[tokio::test]
async fn the_sql_rule_agrees_with_classify_everywhere() {
    let (_db, pool) = database().await;
    let today = d(2024, 9, 30);
    let policy = DeadlinePolicy::default();
    let dues = [
        None,
        Some(d(2024, 9, 29)),
        Some(today),
        Some(d(2024, 10, 1)),
    ];
    let completions = [
        None,
        Some(d(2024, 9, 28)),
        Some(d(2024, 9, 29)),
        Some(today),
        Some(d(2024, 10, 2)),
    ];
    let mut expected = Vec::new();
    for stage in Stage::ALL {
        for due in dues {
            for completed in completions {
                let id = seed(
                    &pool,
                    new_task("so-a", d(2024, 9, 1), due, false),
                    stage,
                    completed,
                )
                .await;
                expected.push((id, classify(stage, due, completed, today, &policy).state));
            }
        }
    }
    let mut conn = pool.acquire().await.unwrap();
    for state in DeadlineState::ALL {
        let mut got: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT id FROM tasks WHERE {} ORDER BY id",
            deadline_predicate(state, today)
        ))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        got.sort();
        let want: Vec<i64> = expected
            .iter()
            .filter(|(_, s)| *s == state)
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(got, want, "{state:?}");
    }
    // Every task is in exactly one state.
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(total as usize, expected.len());
}

/// Officials who open the dashboard at the same moment share reads, and
/// each still counts every task written before it asked; an agency user
/// asking at that moment gets its own figures, not the province's.
#[tokio::test]
async fn statistics_asked_at_once_count_every_task_written_before_they_asked() {
    let today = d(2024, 12, 16);
    let s = Service::start(at(today)).await;
    let due = Some(d(2024, 12, 31));
    seed(
        &s.pool,
        new_task("so-tai-chinh", today, due, false),
        Stage::Assigned,
        None,
    )
    .await;
    let office_stats = s.stats(&office()).await;
    let agency_stats = s.stats(&agency("so-tai-chinh")).await;
    for written in 1..=3 {
        seed(
            &s.pool,
            new_task("so-ldtbxh", today, due, false),
            Stage::Assigned,
            None,
        )
        .await;
        let calls = (0..8).map(|i| {
            let (mut client, province) = if i % 4 == 3 {
                (agency_stats.clone(), false)
            } else {
                (office_stats.clone(), true)
            };
            async move {
                let r = client
                    .get_task_statistics(pb::GetTaskStatisticsRequest::default())
                    .await
                    .unwrap()
                    .into_inner();
                (province, r.all.unwrap().total)
            }
        });
        for (province, total) in futures::future::join_all(calls).await {
            if province {
                assert_eq!(total, written + 1, "the province, after {written} writes");
            } else {
                assert_eq!(total, 1, "an agency user sees its own");
            }
        }
    }
}

/// Server processes of this database whose last statement is `GetTask`'s.
async fn backends_that_read_a_task(pool: &PgPool) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND query LIKE 'SELECT % FROM tasks WHERE id = $1'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn reads_one_at_a_time_run_on_the_connection_used_last() {
    let today = d(2024, 12, 16);
    let s = Service::start(at(today)).await;
    let id = seed(
        &s.pool,
        new_task("so-tai-chinh", today, Some(d(2024, 12, 31)), false),
        Stage::Assigned,
        None,
    )
    .await;
    // Six lists held up by a lock at once: the service's pool opens six
    // connections, idle once the lock goes.
    let mut lock = s.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let office_tasks = s.tasks(&office()).await;
    let lists: Vec<_> = (0..6)
        .map(|_| {
            let mut client = office_tasks.clone();
            tokio::spawn(async move { client.list_tasks(pb::ListTasksRequest::default()).await })
        })
        .collect();
    // Counted by their statement: the service's upkeep, which reads tasks
    // at start, may be held up by the lock too.
    dondoc_testing::eventually(Duration::from_secs(10), || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock' \
             AND query LIKE 'SELECT % FROM tasks WHERE true%'",
        )
        .fetch_one(&s.pool)
        .await
        .unwrap();
        (waiting == 6).then_some(())
    })
    .await;
    lock.commit().await.unwrap();
    for list in lists {
        list.await.unwrap().unwrap();
    }
    assert_eq!(backends_that_read_a_task(&s.pool).await, Vec::<i32>::new());

    let mut tasks = s.tasks(&office()).await;
    let mut backends = std::collections::BTreeSet::new();
    for _ in 0..10 {
        tasks
            .get_task(pb::GetTaskRequest {
                name: format!("tasks/{id}"),
            })
            .await
            .unwrap();
        // Which process served it, looked at after every read: background
        // work (the event consumer reading its cursor as it retries) takes
        // the connection on top of the stack too, and its statement then
        // hides the read's.
        backends.extend(backends_that_read_a_task(&s.pool).await);
    }
    // sqlx's pool alone hands out the connection idle longest: ten reads
    // would go round all six. The event consumer may take the top one
    // between two reads, hence at most two.
    let activity: Vec<(i32, String, String)> = sqlx::query_as(
        "SELECT pid, COALESCE(state, ''), query FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY pid",
    )
    .fetch_all(&s.pool)
    .await
    .unwrap();
    assert!(
        (1..=2).contains(&backends.len()),
        "ten reads one after another ran on the server processes {backends:?}: {activity:#?}"
    );
}

#[tokio::test]
async fn the_classic_report_58_36_22_and_7_1() {
    let today = d(2024, 12, 16);
    let s = Service::start(at(today)).await;
    // so-ldtbxh: 30 tasks, 20 completed on time; so-tai-chinh: 28, 16 completed on time.
    // Key tasks: 7 in all, 1 of them completed.
    let mut key_left = 7;
    let mut key_done_left = 1;
    for (lead, total, done) in [("so-ldtbxh", 30, 20), ("so-tai-chinh", 28, 16)] {
        for i in 0..total {
            let completed = i < done;
            let key = if completed && key_done_left > 0 {
                key_done_left -= 1;
                key_left -= 1;
                true
            } else if !completed && key_left > 0 {
                key_left -= 1;
                true
            } else {
                false
            };
            let (stage, completion) = if completed {
                (Stage::Completed, Some(d(2024, 11, 20)))
            } else {
                (
                    [Stage::Assigned, Stage::InProgress, Stage::Submitted][i % 3],
                    None,
                )
            };
            seed(
                &s.pool,
                new_task(lead, d(2024, 10, 1), Some(d(2024, 12, 31)), key),
                stage,
                completion,
            )
            .await;
        }
    }
    // Withdrawn tasks and tasks assigned outside the period are not counted.
    seed(
        &s.pool,
        new_task("so-ldtbxh", d(2024, 10, 1), Some(d(2024, 12, 31)), true),
        Stage::Withdrawn,
        None,
    )
    .await;
    seed(
        &s.pool,
        new_task("so-ldtbxh", d(2023, 10, 1), Some(d(2023, 12, 31)), false),
        Stage::InProgress,
        None,
    )
    .await;

    let mut stats = s.stats(&office()).await;
    let r = stats
        .get_task_statistics(pb::GetTaskStatisticsRequest {
            filter: r#"assign_date >= "2024-01-01" AND assign_date <= "2024-12-31""#.into(),
            order_by: "completion_rate desc".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let all = r.all.unwrap();
    assert_eq!(
        (all.total, all.completed_on_time, all.in_progress),
        (58, 36, 22)
    );
    assert_eq!(
        (
            all.completed_late,
            all.in_progress_overdue,
            all.in_progress_on_time
        ),
        (0, 0, 22)
    );
    let key = r.key_tasks.unwrap();
    assert_eq!((key.total, key.completed), (7, 1));
    assert_eq!(
        r.summary,
        "Tổng số 58 nhiệm vụ được giao, đã hoàn thành đúng hạn 36 nhiệm vụ, đang thực hiện 22 nhiệm vụ; \
         trong 7 nhiệm vụ trọng tâm, đã hoàn thành 1 nhiệm vụ"
    );
    assert_eq!(r.as_of, pbdate(today));
    // Sorted by completion rate, largest first: 20/30 > 16/28.
    let order: Vec<_> = r.by_agency.iter().map(|a| a.agency.as_str()).collect();
    assert_eq!(order, ["agencies/so-ldtbxh", "agencies/so-tai-chinh"]);
    // 16/12 due within 3 working days? 31/12 is 11 working days away: none nearly overdue.
    assert_eq!(all.nearly_overdue, 0);

    // Scoped to one lead; and an agency user sees only its own figures.
    let lead = stats
        .get_task_statistics(pb::GetTaskStatisticsRequest {
            filter: r#"lead = "agencies/so-tai-chinh" AND key_task = true"#.into(),
            order_by: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(lead.all.unwrap().total <= 7);
    let mut theirs = s.stats(&agency("so-tai-chinh")).await;
    let own = theirs
        .get_task_statistics(pb::GetTaskStatisticsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.all.unwrap().total, 28);
    let bad = stats
        .get_task_statistics(pb::GetTaskStatisticsRequest {
            filter: String::new(),
            order_by: "colour".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    // The clock moves past the due date: the open 22 become overdue, and by
    // more than 30 days a month later.
    s.clock.set(at(d(2025, 2, 5)));
    let later = stats
        .get_task_statistics(pb::GetTaskStatisticsRequest {
            filter: r#"assign_date >= "2024-01-01" AND assign_date <= "2024-12-31""#.into(),
            order_by: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .all
        .unwrap();
    assert_eq!(
        (later.in_progress_overdue, later.overdue_over_30_days),
        (22, 22)
    );
}

#[tokio::test]
async fn directive_rollups_are_done_when_all_their_tasks_are() {
    let today = d(2024, 12, 16);
    let s = Service::start(at(today)).await;
    for (directive, stages) in [
        (7, vec![Stage::Completed, Stage::Withdrawn]),
        (8, vec![Stage::Completed, Stage::InProgress]),
    ] {
        for stage in stages {
            let mut t = new_task("so-a", d(2024, 10, 1), Some(d(2024, 12, 31)), false);
            t.directive_id = Some(directive);
            t.directive_number = format!("{directive}/TB-UBND");
            let done = (stage == Stage::Completed).then(|| d(2024, 11, 1));
            seed(&s.pool, t, stage, done).await;
        }
    }
    let mut stats = s.stats(&office()).await;
    let first = stats
        .list_directive_rollups(pb::ListDirectiveRollupsRequest {
            filter: r#"issuer = "agencies/vp-ubnd""#.into(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.rollups.len(), 1);
    let r7 = &first.rollups[0];
    assert_eq!(
        (r7.directive.as_str(), r7.directive_number.as_str(), r7.done),
        ("directives/7", "7/TB-UBND", true)
    );
    assert_eq!(r7.counts.as_ref().unwrap().total, 1);
    let second = stats
        .list_directive_rollups(pb::ListDirectiveRollupsRequest {
            filter: r#"issuer = "agencies/vp-ubnd""#.into(),
            page_size: 1,
            page_token: first.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.rollups[0].directive, "directives/8");
    assert!(!second.rollups[0].done);
    assert!(second.next_page_token.is_empty());
}

fn indicator(
    agency: &str,
    code: &str,
    kind: pb::PeriodKind,
    year: i32,
    period: i32,
    target: f64,
    actual: Option<f64>,
) -> pb::Indicator {
    pb::Indicator {
        agency: format!("agencies/{agency}"),
        code: code.into(),
        display_name: "Giải quyết việc làm".into(),
        unit: "người".into(),
        period_kind: kind as i32,
        year,
        period,
        target,
        actual,
        ..Default::default()
    }
}

#[tokio::test]
async fn indicators_against_plan_and_a_year_earlier() {
    let s = Service::start(at(d(2025, 10, 5))).await;
    let mut office_c = s.indicators(&office()).await;
    let create = |i: pb::Indicator, id: &str| pb::CreateIndicatorRequest {
        indicator: Some(i),
        request_id: id.into(),
    };
    office_c
        .create_indicator(create(
            indicator(
                "so-ldtbxh",
                "jobs-created",
                pb::PeriodKind::Quarter,
                2024,
                3,
                12_000.0,
                Some(10_000.0),
            ),
            "a",
        ))
        .await
        .unwrap();
    let jobs = office_c
        .create_indicator(create(
            indicator(
                "so-ldtbxh",
                "jobs-created",
                pb::PeriodKind::Quarter,
                2025,
                3,
                13_304.0,
                None,
            ),
            "b",
        ))
        .await
        .unwrap()
        .into_inner()
        .indicator
        .unwrap();
    assert_eq!(jobs.percent_of_plan, None, "no actual yet");
    assert_eq!(jobs.previous_year_actual, Some(10_000.0));
    // A retry returns the first answer; a duplicate is refused.
    let again = office_c
        .create_indicator(create(
            indicator(
                "so-ldtbxh",
                "jobs-created",
                pb::PeriodKind::Quarter,
                2025,
                3,
                13_304.0,
                None,
            ),
            "b",
        ))
        .await
        .unwrap()
        .into_inner()
        .indicator
        .unwrap();
    assert_eq!(again.name, jobs.name);
    let dup = office_c
        .create_indicator(create(
            indicator(
                "so-ldtbxh",
                "jobs-created",
                pb::PeriodKind::Quarter,
                2025,
                3,
                1.0,
                None,
            ),
            "c",
        ))
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
    let bad = office_c
        .create_indicator(create(
            indicator(
                "so-ldtbxh",
                "jobs-created",
                pb::PeriodKind::Quarter,
                2025,
                5,
                1.0,
                None,
            ),
            "d",
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().contains("indicator.period"),
        "{}",
        bad.message()
    );

    // The agency reports its actual; another agency may not.
    let mut labour = s.indicators(&agency("so-ldtbxh")).await;
    let reported = labour
        .report_indicator_actual(pb::ReportIndicatorActualRequest {
            name: jobs.name.clone(),
            actual: 10_550.0,
            request_id: "q3".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .indicator
        .unwrap();
    let round = |x: f64, p: i32| (x * 10f64.powi(p)).round() / 10f64.powi(p);
    assert_eq!(round(reported.percent_of_plan.unwrap(), 1), 79.3);
    assert_eq!(round(reported.year_on_year_change.unwrap(), 1), 5.5);
    let mut finance = s.indicators(&agency("so-tai-chinh")).await;
    let denied = finance
        .report_indicator_actual(pb::ReportIndicatorActualRequest {
            name: jobs.name.clone(),
            actual: 1.0,
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = finance
        .get_indicator(pb::GetIndicatorRequest {
            name: jobs.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = labour
        .set_indicator_target(pb::SetIndicatorTargetRequest {
            name: jobs.name.clone(),
            target: 1.0,
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Houses: 1.876/1.956, 95,91%.
    let houses = office_c
        .create_indicator(create(
            indicator(
                "so-xay-dung",
                "houses-built",
                pb::PeriodKind::Year,
                2025,
                0,
                1_900.0,
                Some(1_876.0),
            ),
            "e",
        ))
        .await
        .unwrap()
        .into_inner()
        .indicator
        .unwrap();
    let houses = office_c
        .set_indicator_target(pb::SetIndicatorTargetRequest {
            name: houses.name,
            target: 1_956.0,
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .indicator
        .unwrap();
    assert_eq!(round(houses.percent_of_plan.unwrap(), 2), 95.91);
    assert_eq!(houses.year_on_year_change, None);

    // Under 80% of plan in 2025: only jobs.
    let under = office_c
        .list_indicators(pb::ListIndicatorsRequest {
            filter: "year = 2025 AND percent_of_plan < 80".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .indicators;
    assert_eq!(
        under.iter().map(|i| i.code.as_str()).collect::<Vec<_>>(),
        ["jobs-created"]
    );
    // An agency lists only its own.
    let own = labour
        .list_indicators(pb::ListIndicatorsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .indicators;
    assert!(own.iter().all(|i| i.agency == "agencies/so-ldtbxh") && own.len() == 2);
}

#[tokio::test]
async fn recurring_duties_get_one_occurrence_per_period_as_the_clock_moves() {
    let s = Service::start(at(d(2024, 9, 2))).await;
    let mut office_c = s.tasks(&office()).await;
    let duty = office_c
        .create_task(pb::CreateTaskRequest {
            task: Some(pb::Task {
                title: "Báo cáo tình hình lao động hằng tháng".into(),
                lead_agencies: vec!["agencies/so-ldtbxh".into()],
                recurrence: Some(Recurrence {
                    rule: Some(recurrence::Rule::Monthly(MonthlyRule { day: 15 })),
                }),
                ..Default::default()
            }),
            request_id: "duty".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let occurrences = |mut c: Tasks, duty: String| async move {
        let all = c
            .list_tasks(pb::ListTasksRequest::default())
            .await
            .unwrap()
            .into_inner()
            .tasks;
        all.into_iter()
            .filter(|t| t.recurrence_parent == duty)
            .map(|t| t.due_date.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        occurrences(office_c.clone(), duty.name.clone()).await,
        [pbdate(d(2024, 9, 15)).unwrap()]
    );
    // Three months later, three more periods, and no duplicates.
    s.clock.set(at(d(2024, 11, 16)));
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = occurrences(office_c.clone(), duty.name.clone()).await;
        if seen.len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen,
        [
            d(2024, 9, 15),
            d(2024, 10, 15),
            d(2024, 11, 15),
            d(2024, 12, 15)
        ]
        .map(|x| pbdate(x).unwrap())
    );
    dondoc_assignments::recurring::generate(
        &s.pool,
        &s.clock,
        &DeadlinePolicy::default(),
        &Wake::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        occurrences(office_c.clone(), duty.name.clone()).await.len(),
        4
    );
    // Statistics count the occurrences, not the duty: three past due, one current.
    let all = s
        .stats(&office())
        .await
        .get_task_statistics(pb::GetTaskStatisticsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .all
        .unwrap();
    assert_eq!(
        (all.total, all.in_progress_overdue, all.in_progress_on_time),
        (4, 3, 1)
    );
}

fn stamp() -> Option<AuditStamp> {
    Some(AuditStamp {
        actor: "users/van-phong".into(),
        actor_agency: "agencies/vp-ubnd".into(),
        time: Some(prost_types::Timestamp {
            seconds: at(d(2024, 9, 2)).timestamp(),
            nanos: 0,
        }),
    })
}

fn item(id: i64, lead: &str, coord: &[&str], due: Option<NaiveDate>) -> dpb::DirectiveItem {
    dpb::DirectiveItem {
        name: format!("directives/5/items/{id}"),
        reference: format!("{id}"),
        text: format!("Nội dung {id}"),
        lead_agencies: vec![format!("agencies/{lead}")],
        coordinating_agencies: coord.iter().map(|c| format!("agencies/{c}")).collect(),
        due_date: due.and_then(pbdate),
        state: dpb::ItemState::Active as i32,
        ..Default::default()
    }
}

fn directive(items: Vec<dpb::DirectiveItem>) -> dpb::Directive {
    dpb::Directive {
        name: "directives/5".into(),
        number: "5/TB-UBND".into(),
        issuer: "agencies/vp-ubnd".into(),
        issue_date: pbdate(d(2024, 9, 2)),
        items,
        ..Default::default()
    }
}

async fn apply(pool: &PgPool, payload: dpb::directive_event::Payload) {
    let consumer = DirectiveEvents {
        wake: Wake::new(),
        policy: DeadlinePolicy::default(),
    };
    // Twice, each in its own transaction: every effect is safe to re-apply.
    for _ in 0..2 {
        let mut tx = pool.begin().await.unwrap();
        consumer
            .apply(
                &mut tx,
                dpb::DirectiveEvent {
                    stamp: stamp(),
                    payload: Some(payload.clone()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

async fn task_of_item(pool: &PgPool, item: i64) -> tasks::TaskRecord {
    let mut conn = pool.acquire().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    let t = tasks::by_item(&mut tx, item).await.unwrap().unwrap();
    tx.rollback().await.unwrap();
    t
}

async fn history(pool: &PgPool, id: i64) -> Vec<String> {
    let mut conn = pool.acquire().await.unwrap();
    tasks::history(&mut conn, id)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.action)
        .collect()
}

#[tokio::test]
async fn directive_events_amend_revoke_and_reorganize_tasks_once() {
    use dpb::directive_event::Payload;
    let (_db, pool) = database().await;
    let original = vec![
        item(1, "so-ldtbxh", &["so-tai-chinh"], Some(d(2024, 9, 30))),
        item(2, "so-ldtbxh", &[], Some(d(2024, 10, 31))),
        item(3, "so-tai-chinh", &["so-ldtbxh"], None),
    ];
    apply(
        &pool,
        Payload::DirectiveIssued(dpb::DirectiveIssued {
            directive: Some(directive(original.clone())),
        }),
    )
    .await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 3);

    // Amendment: item 1's due date moves, item 2 is cancelled, item 4 is added.
    let mut amended = original.clone();
    amended[0].due_date = pbdate(d(2024, 10, 15));
    amended[1].state = dpb::ItemState::Cancelled as i32;
    amended.push(item(4, "so-tai-chinh", &[], Some(d(2024, 12, 31))));
    apply(
        &pool,
        Payload::DirectiveItemsAmended(dpb::DirectiveItemsAmended {
            amended_by: "directives/6".into(),
            amended_by_number: "6/TB-UBND".into(),
            directive: Some(directive(amended)),
            added_items: vec!["directives/5/items/4".into()],
            changed_items: vec!["directives/5/items/1".into()],
            cancelled_items: vec!["directives/5/items/2".into()],
        }),
    )
    .await;
    let one = task_of_item(&pool, 1).await;
    assert_eq!(
        (one.due_date, one.original_due_date, one.deadline_version),
        (Some(d(2024, 10, 15)), Some(d(2024, 9, 30)), 2)
    );
    assert_eq!(
        history(&pool, one.id).await,
        ["ASSIGNED", "DEADLINE_CHANGED"]
    );
    assert_eq!(task_of_item(&pool, 2).await.stage, "WITHDRAWN");
    assert_eq!(task_of_item(&pool, 4).await.stage, "ASSIGNED");

    // Labour merges into Home Affairs: its open tasks, led or coordinated, move.
    apply(
        &pool,
        Payload::AgencyReorganized(dpb::AgencyReorganized {
            kind: dpb::ReorganizationKind::Merge as i32,
            sources: vec!["agencies/so-ldtbxh".into()],
            successors: vec!["agencies/so-noi-vu".into()],
            effective_date: pbdate(d(2025, 3, 1)),
        }),
    )
    .await;
    let one = task_of_item(&pool, 1).await;
    assert_eq!(one.lead_agencies, ["so-noi-vu"]);
    assert_eq!(one.coordinating_agencies, ["so-tai-chinh"]);
    assert_eq!(one.stage, "ASSIGNED");
    assert_eq!(
        history(&pool, one.id).await,
        ["ASSIGNED", "DEADLINE_CHANGED", "TRANSFERRED"]
    );
    let three = task_of_item(&pool, 3).await;
    assert_eq!(three.coordinating_agencies, ["so-noi-vu"]);
    // The withdrawn task keeps its old agency.
    assert_eq!(task_of_item(&pool, 2).await.lead_agencies, ["so-ldtbxh"]);
    assert_read_models_match(&pool, "a merge").await;

    // A dissolution is noted once, and nothing moves.
    apply(
        &pool,
        Payload::AgencyReorganized(dpb::AgencyReorganized {
            kind: dpb::ReorganizationKind::Dissolve as i32,
            sources: vec!["agencies/so-tai-chinh".into()],
            successors: vec![],
            effective_date: pbdate(d(2025, 3, 1)),
        }),
    )
    .await;
    let four = task_of_item(&pool, 4).await;
    assert_eq!(four.lead_agencies, ["so-tai-chinh"]);
    assert_eq!(
        history(&pool, four.id).await,
        ["ASSIGNED", "AGENCY_DISSOLVED"]
    );

    // Revocation withdraws what is open, once.
    apply(
        &pool,
        Payload::DirectiveRevoked(dpb::DirectiveRevoked {
            directive: Some(directive(vec![])),
        }),
    )
    .await;
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE stage <> 'WITHDRAWN'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(open, 0);
    assert_eq!(
        history(&pool, four.id).await,
        ["ASSIGNED", "AGENCY_DISSOLVED", "WITHDRAWN"]
    );
    assert_read_models_match(&pool, "a revocation").await;
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE kind = 'TASK_EVENT_KIND_WITHDRAWN'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(events, 4);
}

#[tokio::test]
async fn who_may_do_what() {
    let s = Service::start(at(d(2024, 9, 2))).await;
    let mut office_c = s.tasks(&office()).await;
    let task = office_c
        .create_task(pb::CreateTaskRequest {
            task: Some(pb::Task {
                title: "Rà soát lao động".into(),
                lead_agencies: vec!["agencies/so-ldtbxh".into()],
                coordinating_agencies: vec!["agencies/so-tai-chinh".into()],
                due_date: pbdate(d(2024, 9, 30)),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let mut lead = s.tasks(&agency("so-ldtbxh")).await;
    let mut coord = s.tasks(&agency("so-tai-chinh")).await;
    let mut other = s.tasks(&agency("so-xay-dung")).await;
    let mut inspector = s
        .tasks(&who("users/thanh-tra", Some("thanh-tra"), Role::Inspector))
        .await;

    // Reading: lead, coordinator, inspector yes; another agency no.
    let get = |name: &str| pb::GetTaskRequest { name: name.into() };
    assert!(lead.get_task(get(&task.name)).await.is_ok());
    assert!(coord.get_task(get(&task.name)).await.is_ok());
    assert!(inspector.get_task(get(&task.name)).await.is_ok());
    assert_eq!(
        other.get_task(get(&task.name)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert!(
        other
            .list_tasks(pb::ListTasksRequest::default())
            .await
            .unwrap()
            .into_inner()
            .tasks
            .is_empty()
    );
    let history = pb::ListTaskHistoryRequest {
        parent: task.name.clone(),
    };
    assert_eq!(
        other.list_task_history(history).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    // Progress: lead and coordinator report; the office does not.
    let report = |pct: i32| pb::ReportProgressRequest {
        parent: task.name.clone(),
        report: Some(pb::ProgressReport {
            text: "Đã khảo sát 5/9 huyện".into(),
            percent_complete: pct,
            evidence: vec!["Báo cáo 12/BC-SLĐTBXH".into()],
            ..Default::default()
        }),
        request_id: String::new(),
    };
    assert_eq!(
        coord.report_progress(report(150)).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    coord.report_progress(report(40)).await.unwrap();
    lead.report_progress(report(55)).await.unwrap();
    assert_eq!(
        office_c
            .report_progress(report(60))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let reports = inspector
        .list_progress_reports(pb::ListProgressReportsRequest {
            parent: task.name.clone(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reports.reports[0].percent_complete, 55, "newest first");
    assert!(!reports.next_page_token.is_empty());
    assert_eq!(
        lead.get_task(get(&task.name))
            .await
            .unwrap()
            .into_inner()
            .task
            .unwrap()
            .percent_complete,
        55
    );

    // Only the lead asks for an extension; only the office decides.
    let ask = pb::RequestExtensionRequest {
        parent: task.name.clone(),
        extension: Some(pb::ExtensionRequest {
            requested_due_date: pbdate(d(2024, 10, 15)),
            reason: "Chờ số liệu".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    assert_eq!(
        coord
            .request_extension(ask.clone())
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let ext = lead
        .request_extension(ask)
        .await
        .unwrap()
        .into_inner()
        .extension
        .unwrap();
    let decide = pb::DecideExtensionRequest {
        name: ext.name.clone(),
        approve: true,
        note: String::new(),
        request_id: String::new(),
    };
    assert_eq!(
        lead.decide_extension(decide.clone())
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let decided = office_c
        .decide_extension(decide)
        .await
        .unwrap()
        .into_inner();
    let t = decided.task.unwrap();
    assert_eq!(
        (
            t.due_date,
            t.original_due_date,
            t.extension_count,
            t.deadline_version
        ),
        (pbdate(d(2024, 10, 15)), pbdate(d(2024, 9, 30)), 1, 2)
    );

    // Reassignment by the office, update by the office only.
    let update = pb::UpdateTaskRequest {
        task: Some(pb::Task {
            name: task.name.clone(),
            key_task: true,
            title: "Rà soát".into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["key_task".into()],
        }),
        request_id: String::new(),
    };
    assert_eq!(
        lead.update_task(update.clone()).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let updated = office_c
        .update_task(update)
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert!(updated.key_task);
    assert_eq!(
        updated.title, "Rà soát lao động",
        "only masked fields change"
    );
    let bad_mask = pb::UpdateTaskRequest {
        task: Some(pb::Task {
            name: task.name.clone(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["due_date".into()],
        }),
        request_id: String::new(),
    };
    assert_eq!(
        office_c.update_task(bad_mask).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let reassigned = office_c
        .reassign_task(pb::ReassignTaskRequest {
            name: task.name.clone(),
            lead_agencies: vec!["agencies/so-xay-dung".into()],
            coordinating_agencies: vec![],
            reason: "Đúng chức năng".into(),
            etag: updated.etag.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(reassigned.stage, pb::TaskStage::Assigned as i32);
    assert!(other.get_task(get(&task.name)).await.is_ok());
    assert_eq!(
        lead.get_task(get(&task.name)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
}

/// What the read models must hold, computed here from the task rows alone:
/// `task_agencies` rows, and for statistics the domain's `classify`.
async fn all_tasks(pool: &PgPool) -> Vec<tasks::TaskRecord> {
    sqlx::query_as("SELECT * FROM tasks ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Counts of `records` in a scope on `today`, by the domain's rule.
fn classified(records: &[&tasks::TaskRecord], today: NaiveDate) -> Counts {
    let policy = DeadlinePolicy::default();
    let mut counts = Counts::default();
    for r in records {
        let stage = r.stage().unwrap();
        let c = classify(stage, r.due_date, r.completion_date, today, &policy);
        if c.state == DeadlineState::Withdrawn {
            continue;
        }
        counts.total += 1;
        match c.state {
            DeadlineState::CompletedOnTime => counts.completed_on_time += 1,
            DeadlineState::CompletedLate => counts.completed_late += 1,
            DeadlineState::InProgressOnTime => counts.in_progress_on_time += 1,
            DeadlineState::InProgressOverdue => counts.in_progress_overdue += 1,
            DeadlineState::NoDeadline => counts.no_deadline += 1,
            DeadlineState::Withdrawn => {}
        }
        counts.nearly_overdue += i64::from(c.nearly_overdue);
        counts.overdue_over_30_days += i64::from(c.long_overdue);
        counts.completed += i64::from(stage == Stage::Completed);
    }
    counts
}

/// The figures of `scope` on `today` by the domain's rule.
fn expected_figures(records: &[tasks::TaskRecord], scope: &Scope, today: NaiveDate) -> Figures {
    let involves = |r: &tasks::TaskRecord, a: &String| {
        r.lead_agencies.contains(a) || r.coordinating_agencies.contains(a)
    };
    let in_scope: Vec<&tasks::TaskRecord> = records
        .iter()
        .filter(|r| r.recurrence.is_none())
        .filter(|r| scope.agency.as_ref().is_none_or(|a| involves(r, a)))
        .filter(|r| {
            scope
                .visible_to_agency
                .as_ref()
                .is_none_or(|a| involves(r, a))
        })
        .filter(|r| {
            scope
                .lead
                .as_ref()
                .is_none_or(|a| r.lead_agencies.contains(a))
        })
        .filter(|r| scope.key_task.is_none_or(|k| r.key_task == k))
        .collect();
    let key: Vec<&tasks::TaskRecord> = in_scope.iter().copied().filter(|r| r.key_task).collect();
    let mut leads: Vec<&String> = in_scope.iter().flat_map(|r| &r.lead_agencies).collect();
    leads.sort();
    leads.dedup();
    Figures {
        all: classified(&in_scope, today),
        key_tasks: classified(&key, today),
        by_agency: leads
            .into_iter()
            .map(|lead| {
                // A task counts once per occurrence of the agency among its leads.
                let led: Vec<&tasks::TaskRecord> = in_scope
                    .iter()
                    .flat_map(|r| {
                        r.lead_agencies
                            .iter()
                            .filter(|l| *l == lead)
                            .map(move |_| *r)
                    })
                    .collect();
                (lead.clone(), classified(&led, today))
            })
            .collect(),
    }
}

fn sorted(mut figures: Figures) -> Figures {
    figures.by_agency.sort_by(|a, b| a.0.cmp(&b.0));
    figures
}

/// Checks `task_agencies` against the task rows, and the statistics read
/// from the counters against `classify` and against counting the tasks, for
/// every scope the counters serve, on days around every due date in use:
/// the counters wherever no day they must tell apart is rolled, and what
/// `figures` answers (counters or tasks) on every day.
async fn assert_read_models_match(pool: &PgPool, step: &str) {
    let records = all_tasks(pool).await;
    let mut want: Vec<(String, i64, bool, bool, String, NaiveDate)> = Vec::new();
    for r in &records {
        let mut agencies: Vec<&String> = r
            .lead_agencies
            .iter()
            .chain(&r.coordinating_agencies)
            .collect();
        agencies.sort();
        agencies.dedup();
        for a in agencies {
            want.push((
                a.clone(),
                r.id,
                r.lead_agencies.contains(a),
                r.coordinating_agencies.contains(a),
                r.stage.clone(),
                tasks::sort_due(r),
            ));
        }
    }
    want.sort();
    let got: Vec<(String, i64, bool, bool, String, NaiveDate)> = sqlx::query_as(
        "SELECT agency, task_id, leads, coordinates, task_stage, due_key FROM task_agencies \
         ORDER BY agency, task_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(got, want, "task_agencies after {step}");
    let unrolled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM task_tally_days, task_tally_watermark \
         WHERE due_date > DATE '0001-01-01' AND due_date < rolled_before",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        unrolled, 0,
        "day rows left before the watermark after {step}"
    );
    // The overdue sums (migration 0106) are those of the day rows due from
    // one watermark up to the other, counter by counter (a fold moves day
    // rows and sums to shard 0 in steps of its own, so shard by shard they
    // may differ for a while).
    let sums_off: Vec<(String, Option<i64>, Option<i64>)> =
        sqlx::query_as(
            "SELECT concat_ws('/', scope, scope_leads, lead_agency, key_task, stage), days.tasks, sums.tasks \
             FROM (SELECT scope, scope_leads, lead_agency, key_task, stage, sum(tasks)::bigint AS tasks \
                   FROM task_tally_days d, task_tally_watermark w \
                   WHERE d.due_date >= w.rolled_before AND d.due_date < w.overdue_before \
                     AND d.due_date > DATE '0001-01-01' \
                   GROUP BY 1, 2, 3, 4, 5 HAVING sum(tasks) <> 0) AS days \
             FULL JOIN (SELECT scope, scope_leads, lead_agency, key_task, stage, sum(tasks)::bigint AS tasks \
                        FROM task_tally_overdue GROUP BY 1, 2, 3, 4, 5 HAVING sum(tasks) <> 0) AS sums \
               USING (scope, scope_leads, lead_agency, key_task, stage) \
             WHERE days.tasks IS DISTINCT FROM sums.tasks",
        )
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(
        sums_off,
        vec![],
        "overdue sums unlike their day rows after {step}"
    );

    let mut agencies: Vec<String> = records
        .iter()
        .flat_map(|r| {
            r.lead_agencies
                .iter()
                .chain(&r.coordinating_agencies)
                .cloned()
        })
        .chain(["so-none".to_string()])
        .collect();
    agencies.sort();
    agencies.dedup();
    let mut scopes = vec![Scope::default()];
    for a in &agencies {
        scopes.push(Scope {
            agency: Some(a.clone()),
            ..Default::default()
        });
        scopes.push(Scope {
            lead: Some(a.clone()),
            visible_to_agency: Some(a.clone()),
            ..Default::default()
        });
    }
    for key in [true, false] {
        scopes.push(Scope {
            key_task: Some(key),
            ..Default::default()
        });
        scopes.push(Scope {
            visible_to_agency: Some(agencies[0].clone()),
            key_task: Some(key),
            ..Default::default()
        });
    }
    let mut days: Vec<NaiveDate> = records
        .iter()
        .filter_map(|r| r.due_date)
        .flat_map(|due| {
            [-31, -30, -29, -1, 0, 1, 2, 3, 4, 5, 6, 7, 31].map(|n| due + chrono::Duration::days(n))
        })
        // The days whose figures read the overdue sums in the test below.
        .chain([d(2024, 9, 30), d(2024, 10, 1), d(2024, 10, 31)])
        .collect();
    days.sort();
    days.dedup();
    let policy = DeadlinePolicy::default();
    let mut conn = pool.acquire().await.unwrap();
    let rolled = rolled_before(&mut conn).await.unwrap();
    for scope in &scopes {
        for &today in &days {
            let counted = counter_scope(scope, today, &policy)
                .unwrap_or_else(|| panic!("{scope:?} is held by the counters"));
            let mut answers = vec![
                (
                    "tasks",
                    sorted(
                        figures_from_tasks(&mut conn, scope, today, &policy)
                            .await
                            .unwrap(),
                    ),
                ),
                (
                    "figures",
                    sorted(figures(&mut conn, scope, today, &policy).await.unwrap()),
                ),
            ];
            // The counters answer unless a day they would tell apart is
            // rolled; `figures` then counts the tasks.
            let from_counters = figures_from_counters(&mut conn, &counted, today, &policy)
                .await
                .unwrap();
            assert_eq!(
                from_counters.is_some(),
                rolled <= counted.detail_from(),
                "the counters answer after {step}, {scope:?} on {today}, rolled before {rolled}"
            );
            if let Some(from_counters) = from_counters {
                answers.push(("counters", sorted(from_counters)));
            }
            let expected = expected_figures(&records, scope, today);
            for (what, got) in &answers {
                assert_eq!(
                    (got.all, got.key_tasks, &got.by_agency),
                    (expected.all, expected.key_tasks, &expected.by_agency),
                    "statistics from {what} after {step}, {scope:?} on {today}"
                );
            }
        }
    }
}

/// Counter rows outside shard 0: none right after a fold.
async fn sharded_rows(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM task_tally_totals WHERE shard <> 0) \
         + (SELECT count(*) FROM task_tally_days WHERE shard <> 0) \
         + (SELECT count(*) FROM task_tally_overdue WHERE shard <> 0)",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

/// The watermark up to which the overdue sums go.
async fn overdue_before(conn: &mut sqlx::PgConnection) -> NaiveDate {
    sqlx::query_scalar("SELECT overdue_before FROM task_tally_watermark")
        .fetch_one(conn)
        .await
        .unwrap()
}

fn task_with(lead: &[&str], coordinating: &[&str], due: Option<NaiveDate>, key: bool) -> NewTask {
    NewTask {
        lead_agencies: lead.iter().map(|a| a.to_string()).collect(),
        coordinating_agencies: coordinating.iter().map(|a| a.to_string()).collect(),
        ..new_task("unused", d(2024, 9, 1), due, key)
    }
}

#[tokio::test]
async fn agency_index_and_counters_follow_every_change() {
    let (_db, pool) = database().await;
    let mut conn = pool.acquire().await.unwrap();
    let who = actor(at(d(2024, 9, 2)));
    let mut ids = Vec::new();
    for task in [
        task_with(&["so-a"], &[], Some(d(2024, 9, 30)), false),
        task_with(&["so-a"], &["so-b"], Some(d(2024, 10, 3)), true),
        task_with(&["so-b"], &["so-a", "so-c"], None, false),
        task_with(&["so-a", "so-c"], &["so-b"], Some(d(2024, 8, 15)), true),
        task_with(&["so-c"], &[], Some(d(2024, 11, 30)), false),
    ] {
        ids.push(
            tasks::insert(&mut conn, &task, &who)
                .await
                .unwrap()
                .unwrap()
                .id,
        );
    }
    assert_read_models_match(&pool, "create").await;
    // Days before the long-overdue boundary roll into one row (the task due
    // 2024-08-15); the writes below then file such tasks there directly.
    assert_eq!(
        roll_tallies(&mut conn, d(2024, 9, 1)).await.unwrap(),
        d(2024, 9, 1)
    );
    assert_read_models_match(&pool, "a roll to 2024-09-01").await;
    // The days from there to 2024-10-01 summed: the figures of 2024-10-01
    // read the sums, which the writes below keep.
    assert_eq!(
        sum_overdue_tallies(&mut conn, d(2024, 10, 1))
            .await
            .unwrap(),
        d(2024, 10, 1)
    );
    assert_read_models_match(&pool, "sums to 2024-10-01").await;

    tasks::set_stage(&mut conn, ids[0], Stage::InProgress, None, &who)
        .await
        .unwrap();
    tasks::set_stage(
        &mut conn,
        ids[1],
        Stage::Completed,
        Some(d(2024, 10, 4)),
        &who,
    )
    .await
    .unwrap();
    tasks::set_stage(
        &mut conn,
        ids[3],
        Stage::Completed,
        Some(d(2024, 8, 15)),
        &who,
    )
    .await
    .unwrap();
    // Completed without a completion date: classified against today.
    tasks::set_stage(&mut conn, ids[4], Stage::Completed, None, &who)
        .await
        .unwrap();
    assert_read_models_match(&pool, "stage changes and completion").await;
    assert_eq!(
        roll_tallies(&mut conn, d(2024, 10, 1)).await.unwrap(),
        d(2024, 10, 1)
    );
    // The watermark never moves back.
    assert_eq!(
        roll_tallies(&mut conn, d(2024, 9, 15)).await.unwrap(),
        d(2024, 10, 1)
    );
    assert_read_models_match(&pool, "a roll to 2024-10-01").await;
    // Never back either; then on to 2024-10-31.
    assert_eq!(
        sum_overdue_tallies(&mut conn, d(2024, 9, 20))
            .await
            .unwrap(),
        d(2024, 10, 1)
    );
    assert_eq!(
        sum_overdue_tallies(&mut conn, d(2024, 10, 31))
            .await
            .unwrap(),
        d(2024, 10, 31)
    );
    assert_read_models_match(&pool, "sums to 2024-10-31").await;
    // Writes inside the summed days: a task due there, completed without a
    // date (still counted against today), then given more time.
    let summed = tasks::insert(
        &mut conn,
        &task_with(&["so-b"], &["so-c"], Some(d(2024, 10, 15)), true),
        &who,
    )
    .await
    .unwrap()
    .unwrap()
    .id;
    tasks::set_stage(&mut conn, summed, Stage::Completed, None, &who)
        .await
        .unwrap();
    tasks::set_due_date(&mut conn, summed, Some(d(2024, 10, 20)), true, &who)
        .await
        .unwrap();
    assert_read_models_match(&pool, "writes inside the summed days").await;
    assert!(fold_tallies(&mut conn).await.unwrap() > 0);
    assert_eq!(sharded_rows(&mut conn).await, 0, "every counter in one row");
    assert_read_models_match(&pool, "a fold").await;

    tasks::set_percent(&mut conn, ids[0], 40, &who)
        .await
        .unwrap();
    tasks::update_fields(
        &mut conn,
        ids[2],
        Some("Đổi tên"),
        None,
        None,
        Some(true),
        &who,
    )
    .await
    .unwrap();
    assert_read_models_match(&pool, "progress and key-task flag").await;

    // An approved extension, and a due date removed.
    tasks::set_due_date(&mut conn, ids[0], Some(d(2024, 10, 31)), true, &who)
        .await
        .unwrap();
    tasks::set_due_date(&mut conn, ids[2], Some(d(2024, 9, 29)), false, &who)
        .await
        .unwrap();
    tasks::set_due_date(&mut conn, ids[4], None, false, &who)
        .await
        .unwrap();
    assert_read_models_match(&pool, "due date changes").await;

    // Refused then reassigned, and an amended item's agencies.
    tasks::set_stage(&mut conn, ids[2], Stage::Refused, None, &who)
        .await
        .unwrap();
    tasks::set_agencies(
        &mut conn,
        ids[2],
        &["so-d".into()],
        &["so-b".into()],
        Stage::Assigned,
        &who,
    )
    .await
    .unwrap();
    tasks::amend(
        &mut conn,
        ids[0],
        "Sửa",
        "",
        true,
        &["so-b".into(), "so-a".into()],
        &["so-a".into()],
        &who,
    )
    .await
    .unwrap();
    assert_read_models_match(&pool, "reassignment and amendment").await;

    // Several tasks in one statement (as a transfer after a merge writes them one by one,
    // a bulk statement must balance too), a withdrawal, then a deletion.
    sqlx::query(
        "UPDATE tasks SET lead_agencies = array_replace(lead_agencies, 'so-a', 'so-e'), \
         coordinating_agencies = array_replace(coordinating_agencies, 'so-a', 'so-e') \
         WHERE stage NOT IN ('COMPLETED', 'WITHDRAWN')",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    tasks::set_stage(&mut conn, ids[2], Stage::Withdrawn, None, &who)
        .await
        .unwrap();
    assert_read_models_match(&pool, "bulk transfer and withdrawal").await;
    sqlx::query("DELETE FROM task_history WHERE task_id = $1")
        .bind(ids[4])
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM tasks WHERE id = $1")
        .bind(ids[4])
        .execute(&mut *conn)
        .await
        .unwrap();
    assert_read_models_match(&pool, "deletion").await;

    // A recurring duty is not counted; its occurrences are.
    let mut duty = task_with(&["so-c"], &["so-e"], Some(d(2024, 9, 15)), false);
    duty.recurrence = Some("monthly:15".into());
    let duty = tasks::insert(&mut conn, &duty, &who)
        .await
        .unwrap()
        .unwrap();
    let occurrence = dondoc_assignments::domain::recurring::Occurrence {
        assign_date: d(2024, 9, 1),
        due_date: d(2024, 9, 15),
    };
    tasks::insert_occurrence(&mut conn, &duty, occurrence, &who)
        .await
        .unwrap()
        .unwrap();
    assert_read_models_match(&pool, "recurring duty and occurrence").await;
}

#[tokio::test]
async fn the_service_rolls_and_folds_the_counters_as_the_clock_moves() {
    let s = Service::start(at(d(2024, 9, 2))).await;
    let policy = DeadlinePolicy::default();
    let upkept = |today: NaiveDate| {
        let pool = s.pool.clone();
        let policy = policy.clone();
        move || {
            let pool = pool.clone();
            let policy = policy.clone();
            async move {
                let mut conn = pool.acquire().await.unwrap();
                let sharded = sharded_rows(&mut conn).await;
                let rolled = rolled_before(&mut conn).await.unwrap();
                let summed = overdue_before(&mut conn).await;
                (rolled == roll_until(today, &policy)
                    && summed == sum_overdue_until(today, &policy)
                    && sharded == 0)
                    .then_some(())
            }
        }
    };
    // At start: rolled to the long-overdue boundary of the service's today,
    // and the days from there to today summed.
    dondoc_testing::eventually(Duration::from_secs(10), upkept(d(2024, 9, 2))).await;
    // Tasks written since land in their shards (ids 1, 2, 3)...
    let mut conn = s.pool.acquire().await.unwrap();
    let who = actor(at(d(2024, 9, 2)));
    for due in [d(2024, 8, 20), d(2024, 9, 20), d(2024, 10, 20)] {
        let task = task_with(&["so-a"], &["so-b"], Some(due), false);
        tasks::insert(&mut conn, &task, &who)
            .await
            .unwrap()
            .unwrap();
    }
    // ...and a day later the service has rolled and summed one day further
    // and folded every counter into one row.
    s.clock.set(at(d(2024, 9, 3)));
    dondoc_testing::eventually(Duration::from_secs(10), upkept(d(2024, 9, 3))).await;
    assert_read_models_match(&s.pool, "the service's roll and fold").await;
}

#[tokio::test]
async fn two_replicas_rolling_and_folding_at_once_agree() {
    let (_db, pool) = database().await;
    let mut conn = pool.acquire().await.unwrap();
    let who = actor(at(d(2024, 9, 2)));
    for (i, due) in (0..40).map(|i| (i, d(2024, 6, 1) + chrono::Duration::days(3 * i))) {
        let lead = if i % 2 == 0 { "so-a" } else { "so-b" };
        let task = task_with(&[lead], &["so-c"], Some(due), i % 5 == 0);
        tasks::insert(&mut conn, &task, &who)
            .await
            .unwrap()
            .unwrap();
    }
    // Each replica's upkeep, on its own connection, at the same time.
    let replica = |pool: PgPool| async move {
        let mut conn = pool.acquire().await.unwrap();
        let rolled = roll_tallies(&mut conn, d(2024, 9, 1)).await.unwrap();
        fold_tallies(&mut conn).await.unwrap();
        let summed = sum_overdue_tallies(&mut conn, d(2024, 10, 1))
            .await
            .unwrap();
        (rolled, summed)
    };
    let (a, b) = tokio::join!(
        tokio::spawn(replica(pool.clone())),
        tokio::spawn(replica(pool.clone()))
    );
    let both = (d(2024, 9, 1), d(2024, 10, 1));
    assert_eq!((a.unwrap(), b.unwrap()), (both, both));
    assert_eq!(sharded_rows(&mut conn).await, 0, "every counter in one row");
    assert_read_models_match(&pool, "two replicas' rolls and folds").await;
}

/// Runs `upkeep` (a roll or a sum) on a connection of its own while a
/// writer has inserted `task` and not committed: checks that it waits for
/// the writer, lets the writer commit, and returns the upkeep's watermark.
async fn upkeep_behind_a_writer(
    pool: &PgPool,
    task: &NewTask,
    who: &Actor,
    upkeep: impl AsyncFnOnce(&mut sqlx::PgConnection) -> Result<NaiveDate, dondoc_errors::Error>,
) -> NaiveDate {
    let mut writer = pool.begin().await.unwrap();
    tasks::insert(&mut writer, task, who)
        .await
        .unwrap()
        .unwrap();
    let upkeep = async {
        let mut conn = pool.acquire().await.unwrap();
        upkeep(&mut conn).await.unwrap()
    };
    tokio::pin!(upkeep);
    tokio::select! {
        _ = &mut upkeep => panic!("the upkeep did not wait for the writer"),
        _ = dondoc_testing::lock_waiter(pool) => {}
    }
    writer.commit().await.unwrap();
    upkeep.await
}

#[tokio::test]
async fn a_roll_waits_for_writers_and_writers_wait_for_a_roll() {
    let (_db, pool) = database().await;
    let who = actor(at(d(2024, 9, 2)));
    // A writer files a task due 2024-08-20 by day, and has not committed.
    // Were the roll not to wait, it would move the days it sees and leave
    // this one behind, filed by day before the watermark.
    let early = task_with(&["so-a"], &["so-b"], Some(d(2024, 8, 20)), false);
    let rolled = upkeep_behind_a_writer(&pool, &early, &who, async |conn| {
        roll_tallies(conn, d(2024, 9, 1)).await
    })
    .await;
    assert_eq!(rolled, d(2024, 9, 1));
    assert_read_models_match(&pool, "a roll that waited for a writer").await;

    // A roll in progress (here: one holding the lock) holds back writers,
    // which then file by the watermark it leaves.
    let mut rolling = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(task_tally_lock_key(), 0)")
        .execute(&mut *rolling)
        .await
        .unwrap();
    sqlx::query("UPDATE task_tally_watermark SET rolled_before = DATE '2024-09-10'")
        .execute(&mut *rolling)
        .await
        .unwrap();
    let write = tokio::spawn({
        let pool = pool.clone();
        let who = who.clone();
        async move {
            let mut conn = pool.acquire().await.unwrap();
            let due = task_with(&["so-b"], &[], Some(d(2024, 9, 5)), true);
            tasks::insert(&mut conn, &due, &who).await.unwrap().unwrap()
        }
    });
    dondoc_testing::lock_waiter(&pool).await;
    assert!(!write.is_finished(), "the writer waits for the roll");
    rolling.commit().await.unwrap();
    write.await.unwrap();
    assert_read_models_match(&pool, "a write that waited for a roll").await;

    // Summing waits for a writer in flight too: were it not to, it would
    // sum the days without this task, which the writer, filing by the
    // watermark before, would not add either.
    let overdue = task_with(&["so-c"], &["so-a"], Some(d(2024, 9, 20)), false);
    let summed = upkeep_behind_a_writer(&pool, &overdue, &who, async |conn| {
        sum_overdue_tallies(conn, d(2024, 10, 1)).await
    })
    .await;
    assert_eq!(summed, d(2024, 10, 1));
    assert_read_models_match(&pool, "sums that waited for a writer").await;
}

/// Open tasks led by `so-a`, one due on each of `dues`.
async fn insert_due(conn: &mut sqlx::PgConnection, dues: impl IntoIterator<Item = NaiveDate>) {
    let who = actor(at(d(2024, 9, 2)));
    for due in dues {
        let task = task_with(&["so-a"], &["so-b"], Some(due), false);
        tasks::insert(&mut *conn, &task, &who)
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn statistics_read_the_overdue_sums_only_when_the_watermarks_are_at_their_boundaries() {
    let (_db, pool) = database().await;
    let mut conn = pool.acquire().await.unwrap();
    insert_due(
        &mut conn,
        [
            d(2024, 8, 10),
            d(2024, 9, 12),
            d(2024, 9, 25),
            d(2024, 10, 2),
        ],
    )
    .await;
    let policy = DeadlinePolicy::default();
    let today = d(2024, 10, 1);
    // As the service keeps them: rolled, folded (one row per counter), summed.
    roll_tallies(&mut conn, roll_until(today, &policy))
        .await
        .unwrap();
    fold_tallies(&mut conn).await.unwrap();
    sum_overdue_tallies(&mut conn, sum_overdue_until(today, &policy))
        .await
        .unwrap();
    let province = |today| counter_scope(&Scope::default(), today, &policy).unwrap();
    let before = figures_from_counters(&mut conn, &province(today), today, &policy)
        .await
        .unwrap()
        .expect("nothing rolled past the boundaries");
    let tomorrow = today.succ_opt().unwrap();
    let before_tomorrow = figures_from_counters(&mut conn, &province(tomorrow), tomorrow, &policy)
        .await
        .unwrap()
        .expect("nothing rolled past the boundaries");
    assert_eq!(
        (
            before.all.in_progress_overdue,
            before.all.overdue_over_30_days
        ),
        (3, 1),
        "due 2024-08-10, 2024-09-12 and 2024-09-25; the first over 30 days"
    );
    // Sums made wrong on purpose show which figures read them: today's,
    // whose boundaries the watermarks are at, and not tomorrow's, which
    // read the day rows.
    sqlx::query(
        "UPDATE task_tally_overdue SET tasks = tasks + 100 WHERE scope = '' AND lead_agency = ''",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    let after = figures_from_counters(&mut conn, &province(today), today, &policy)
        .await
        .unwrap()
        .expect("nothing rolled past the boundaries");
    assert_eq!(
        after.all.in_progress_overdue,
        before.all.in_progress_overdue + 100
    );
    let after_tomorrow = figures_from_counters(&mut conn, &province(tomorrow), tomorrow, &policy)
        .await
        .unwrap()
        .expect("nothing rolled past the boundaries");
    assert_eq!(
        (after_tomorrow.all, after_tomorrow.key_tasks),
        (before_tomorrow.all, before_tomorrow.key_tasks),
        "tomorrow's figures read the day rows"
    );
}

#[tokio::test]
async fn statistics_count_the_tasks_when_a_day_they_tell_apart_is_rolled() {
    let (_db, pool) = database().await;
    let mut conn = pool.acquire().await.unwrap();
    insert_due(
        &mut conn,
        [
            d(2024, 8, 10),
            d(2024, 9, 1),
            d(2024, 9, 25),
            d(2024, 10, 5),
        ],
    )
    .await;
    let policy = DeadlinePolicy::default();
    let today = d(2024, 10, 1);
    let tomorrow = today.succ_opt().unwrap();
    // A replica whose clock is already in tomorrow rolls tomorrow's
    // long-overdue days: 2024-09-01 joins the stand-in, while today it is
    // overdue by 30 days, not more.
    roll_tallies(&mut conn, roll_until(tomorrow, &policy))
        .await
        .unwrap();
    let province = |today| counter_scope(&Scope::default(), today, &policy).unwrap();
    assert!(
        figures_from_counters(&mut conn, &province(today), today, &policy)
            .await
            .unwrap()
            .is_none(),
        "today's figures tell apart a day the counters rolled"
    );
    let from_counters = figures_from_counters(&mut conn, &province(tomorrow), tomorrow, &policy)
        .await
        .unwrap()
        .expect("tomorrow's figures do not");
    let answered = figures(&mut conn, &Scope::default(), today, &policy)
        .await
        .unwrap();
    let counted = figures_from_tasks(&mut conn, &Scope::default(), today, &policy)
        .await
        .unwrap();
    assert_eq!(
        (answered.all, answered.key_tasks),
        (counted.all, counted.key_tasks),
        "today's figures are the tasks' count"
    );
    assert_eq!(
        (
            answered.all.in_progress_overdue,
            answered.all.overdue_over_30_days
        ),
        (3, 1),
        "due 2024-08-10, 2024-09-01 and 2024-09-25; the first over 30 days"
    );
    assert_eq!(
        (
            from_counters.all.in_progress_overdue,
            from_counters.all.overdue_over_30_days
        ),
        (3, 2),
        "tomorrow 2024-09-01 is over 30 days too"
    );
}

#[tokio::test]
async fn agency_pages_are_the_array_filter_in_list_order() {
    let (_db, pool) = database().await;
    let mut conn = pool.acquire().await.unwrap();
    let who = actor(at(d(2024, 9, 2)));
    let agencies = ["so-a", "so-b", "so-c"];
    for i in 0..40u32 {
        let lead = agencies[(i % 3) as usize];
        let coordinating: Vec<&str> = if i % 4 == 0 {
            vec![agencies[((i + 1) % 3) as usize]]
        } else {
            vec![]
        };
        let due = (i % 5 != 0).then(|| d(2024, 9, 1 + i % 7));
        let id = tasks::insert(
            &mut conn,
            &task_with(&[lead], &coordinating, due, i % 6 == 0),
            &who,
        )
        .await
        .unwrap()
        .unwrap()
        .id;
        let stage = [Stage::Assigned, Stage::InProgress, Stage::Completed][(i / 3 % 3) as usize];
        tasks::set_stage(&mut conn, id, stage, None, &who)
            .await
            .unwrap();
    }
    let queries = [
        tasks::TaskQuery {
            agency: Some("so-a".into()),
            ..Default::default()
        },
        tasks::TaskQuery {
            lead: Some("so-b".into()),
            stage: Some(Stage::InProgress),
            ..Default::default()
        },
        tasks::TaskQuery {
            agency: Some("so-b".into()),
            stage: Some(Stage::Completed),
            ..Default::default()
        },
        tasks::TaskQuery {
            visible_to_agency: Some("so-c".into()),
            key_task: Some(false),
            ..Default::default()
        },
        tasks::TaskQuery {
            agency: Some("so-a".into()),
            visible_to_agency: Some("so-b".into()),
            ..Default::default()
        },
        tasks::TaskQuery {
            lead: Some("so-a".into()),
            agency: Some("so-b".into()),
            ..Default::default()
        },
        tasks::TaskQuery {
            lead: Some("so-c".into()),
            visible_to_agency: Some("so-c".into()),
            ..Default::default()
        },
    ];
    let today = d(2024, 9, 4);
    for query in &queries {
        let mut want: Vec<&tasks::TaskRecord> = Vec::new();
        let records = all_tasks(&pool).await;
        let involves = |r: &tasks::TaskRecord, a: &String| {
            r.lead_agencies.contains(a) || r.coordinating_agencies.contains(a)
        };
        for r in &records {
            if query.agency.as_ref().is_none_or(|a| involves(r, a))
                && query
                    .visible_to_agency
                    .as_ref()
                    .is_none_or(|a| involves(r, a))
                && query
                    .lead
                    .as_ref()
                    .is_none_or(|a| r.lead_agencies.contains(a))
                && query.stage.is_none_or(|s| r.stage == s.as_str())
                && query.key_task.is_none_or(|k| r.key_task == k)
            {
                want.push(r);
            }
        }
        want.sort_by_key(|r| (tasks::sort_due(r), r.id));
        assert!(!want.is_empty(), "{query:?} selects something");
        // Pages of 4, each after the previous page's last key.
        let mut got = Vec::new();
        let mut after = None;
        loop {
            let page = tasks::list(&mut conn, query, today, after, 4)
                .await
                .unwrap();
            after = page.last().map(|r| (tasks::sort_due(r), r.id));
            let done = page.len() < 4;
            got.extend(page.into_iter().map(|r| r.id));
            if done {
                break;
            }
        }
        assert_eq!(
            got,
            want.iter().map(|r| r.id).collect::<Vec<_>>(),
            "{query:?}"
        );
    }
}

#[tokio::test]
async fn the_migration_fills_the_read_models_from_existing_tasks() {
    // A database migrated up to, not including, `task_agencies` and the counters.
    let before_read_models = || sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(
            storage_mod::MIGRATIONS
                .iter()
                .filter(|m| m.version < 103)
                .cloned()
                .collect(),
        ),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    };
    let (_db, pool) = dondoc_testing::migrated(
        "assignments_before_0103",
        &dondoc_assignments::schema(),
        &before_read_models(),
    )
    .await;
    let mut conn = pool.acquire().await.unwrap();
    let who = actor(at(d(2024, 9, 2)));
    for task in [
        task_with(&["so-a"], &["so-b"], Some(d(2024, 9, 30)), true),
        task_with(&["so-b", "so-c"], &[], None, false),
        task_with(&["so-c"], &["so-a"], Some(d(2024, 8, 1)), false),
    ] {
        let id = tasks::insert(&mut conn, &task, &who)
            .await
            .unwrap()
            .unwrap()
            .id;
        if task.due_date == Some(d(2024, 8, 1)) {
            tasks::set_stage(&mut conn, id, Stage::Completed, Some(d(2024, 8, 2)), &who)
                .await
                .unwrap();
        }
    }
    drop(conn);
    migrate(&pool, &storage_mod::MIGRATIONS).await.unwrap();
    assert_read_models_match(&pool, "the migration").await;
}
