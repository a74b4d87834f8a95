//! Reminder jobs and deliveries against a real PostgreSQL: leases are
//! rescued and fenced, concurrent workers never handle the same job, and
//! webhook deliveries retry on the schedule as the clock moves, end as dead
//! letters, replay, and disable endpoints that answer 410 or keep failing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use dondoc_events::Wake;
use dondoc_notifications::delivery::{Deliverer, DeliverySettings};
use dondoc_notifications::domain::policy::{Reminder, ReminderKind};
use dondoc_notifications::domain::webhook::{self, AllowList, RetrySchedule};
use dondoc_notifications::names::AgencyNames;
use dondoc_notifications::scheduler::Scheduler;
use dondoc_notifications::storage::deadlines::{self, Deadline};
use dondoc_notifications::storage::deliveries;
use dondoc_notifications::storage::jobs;
use dondoc_notifications::storage::notifications::{self, NewNotification};
use dondoc_notifications::storage::subscriptions::{self, NewSubscription};
use dondoc_notifications::{ReminderPolicy, SchedulerSettings};
use dondoc_time::Clock;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sqlx::PgPool;
use support::pool;

fn at8(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 1, 0, 0).unwrap()
}

fn settings(lease: Duration) -> SchedulerSettings {
    SchedulerSettings {
        lease,
        weekly_digest: false,
        ..SchedulerSettings::builtin()
    }
}

fn scheduler(pool: &PgPool, clock: &Clock, lease: Duration) -> Scheduler {
    Scheduler {
        pool: pool.clone(),
        clock: clock.clone(),
        policy: ReminderPolicy::default(),
        notifications: Wake::new(),
        jobs: Wake::new(),
        names: AgencyNames::offline(),
        settings: settings(lease),
    }
}

/// `n` open tasks due on 27/9/2024, each with one DUE_TODAY job.
async fn tasks_with_due_jobs(pool: &PgPool, n: i64) {
    let mut tx = pool.begin().await.unwrap();
    for task_id in 1..=n {
        deadlines::upsert(
            &mut tx,
            &Deadline {
                task_id,
                title: format!("Nhiệm vụ {task_id}"),
                directive_number: "534/TB-UBND".into(),
                directive: "directives/1".into(),
                reference: String::new(),
                lead_agencies: vec!["so-ldtbxh".into()],
                coordinating_agencies: vec![],
                assigner: "vp-ubnd".into(),
                due_date: NaiveDate::from_ymd_opt(2024, 9, 27),
                deadline_version: 1,
                key_task: task_id % 2 == 0,
                open: true,
            },
        )
        .await
        .unwrap();
        jobs::schedule(
            &mut tx,
            task_id,
            1,
            &[Reminder {
                key: "due_today".into(),
                kind: ReminderKind::DueToday,
                fire_at: at8(2024, 9, 27),
            }],
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

/// What the task events consumer relies on: writing a projection returns
/// the one it replaced, and scheduling keeps the jobs already there.
#[tokio::test]
async fn writing_a_projection_returns_the_one_it_replaced_and_scheduling_keeps_existing_jobs() {
    let pool = pool().await;
    let mut tx = pool.begin().await.unwrap();
    let first = Deadline {
        task_id: 7,
        title: "Nhiệm vụ 7".into(),
        directive_number: "534/TB-UBND".into(),
        directive: "directives/1".into(),
        reference: String::new(),
        lead_agencies: vec!["so-ldtbxh".into()],
        coordinating_agencies: vec!["so-tai-chinh".into()],
        assigner: "vp-ubnd".into(),
        due_date: NaiveDate::from_ymd_opt(2024, 9, 27),
        deadline_version: 1,
        key_task: false,
        open: true,
    };
    assert_eq!(deadlines::upsert(&mut tx, &first).await.unwrap(), None);
    let second = Deadline {
        due_date: NaiveDate::from_ymd_opt(2024, 10, 4),
        deadline_version: 2,
        ..first.clone()
    };
    assert_eq!(
        deadlines::upsert(&mut tx, &second).await.unwrap(),
        Some(first)
    );
    assert_eq!(deadlines::get(&mut tx, 7).await.unwrap(), Some(second));

    let reminder = |key: &str, day: u32| Reminder {
        key: key.into(),
        kind: ReminderKind::DueSoon,
        fire_at: at8(2024, 10, day),
    };
    let first_two = [reminder("due_soon_3", 1), reminder("due_soon_1", 3)];
    assert_eq!(jobs::schedule(&mut tx, 7, 2, &first_two).await.unwrap(), 2);
    let again = [reminder("due_soon_3", 2), reminder("due_today", 4)];
    assert_eq!(jobs::schedule(&mut tx, 7, 2, &again).await.unwrap(), 1);
    assert_eq!(jobs::schedule(&mut tx, 7, 2, &[]).await.unwrap(), 0);
    let stored: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT key, fire_at FROM reminder_jobs WHERE task_id = 7 AND deadline_version = 2 ORDER BY id",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    assert_eq!(
        stored,
        [
            ("due_soon_3".to_string(), at8(2024, 10, 1)),
            ("due_soon_1".to_string(), at8(2024, 10, 3)),
            ("due_today".to_string(), at8(2024, 10, 4)),
        ]
    );
}

/// The task events consumer against a real PostgreSQL, event by event: an
/// assignment schedules its reminders and notifies every agency once; a
/// redelivery and a change that keeps the deadline add nothing; an
/// extension cancels the old deadline's reminders and schedules the new
/// one's; completion cancels what is left.
#[tokio::test]
async fn task_events_schedule_reschedule_and_cancel_reminders_and_notify_each_agency_once() {
    use dondoc_contracts::assignments::v1::{Task, TaskEvent, TaskEventKind, TaskStage};
    use dondoc_contracts::common::v1::Date;
    use dondoc_events::consumer::Apply;
    use dondoc_notifications::upstream::TaskEvents;

    let pool = pool().await;
    let clock = Clock::manual(at8(2024, 9, 2));
    let policy = ReminderPolicy::default();
    let events = TaskEvents {
        policy: policy.clone(),
        clock: clock.clone(),
        notifications: Wake::new(),
        jobs: Wake::new(),
        names: AgencyNames::offline(),
    };
    let task = |stage: TaskStage, due: (i32, i32), version: i32| Task {
        name: "tasks/9".into(),
        title: "Tham mưu trình HĐND tỉnh Nghị quyết hỗ trợ".into(),
        lead_agencies: vec!["agencies/so-ldtbxh".into()],
        coordinating_agencies: vec!["agencies/so-tai-chinh".into()],
        assigner: "agencies/vp-ubnd".into(),
        due_date: Some(Date {
            year: 2024,
            month: due.0,
            day: due.1,
        }),
        deadline_version: version,
        stage: stage as i32,
        ..Default::default()
    };
    let event = |id: &str, kind: TaskEventKind, task: Task| TaskEvent {
        event_id: id.into(),
        kind: kind as i32,
        task: Some(task),
        ..Default::default()
    };
    let apply = async |event: TaskEvent| {
        let mut tx = pool.begin().await.unwrap();
        events.apply(&mut tx, event).await.unwrap();
        tx.commit().await.unwrap();
    };
    let jobs = async |version: i32, state: &str| {
        count(
            &pool,
            &format!(
                "SELECT count(*) FROM reminder_jobs WHERE task_id = 9 \
                 AND deadline_version = {version} AND state = '{state}'"
            ),
        )
        .await
    };
    let notifications = async || -> Vec<(String, String)> {
        sqlx::query_as("SELECT kind, recipient FROM notifications ORDER BY tx_id, id")
            .fetch_all(&pool)
            .await
            .unwrap()
    };
    let ahead = |due: NaiveDate| {
        policy
            .schedule(due, false)
            .into_iter()
            .filter(|r| r.fire_at > clock.now())
            .count() as i64
    };
    let first_due = NaiveDate::from_ymd_opt(2024, 9, 27).unwrap();
    let second_due = NaiveDate::from_ymd_opt(2024, 10, 11).unwrap();
    assert!(ahead(first_due) >= 2 && ahead(second_due) >= 2);

    let assigned = event(
        "e1",
        TaskEventKind::Assigned,
        task(TaskStage::Assigned, (9, 27), 1),
    );
    apply(assigned.clone()).await;
    assert_eq!(jobs(1, "PENDING").await, ahead(first_due));
    let both = vec![
        ("TASK_ASSIGNED".to_string(), "so-ldtbxh".to_string()),
        ("TASK_ASSIGNED".to_string(), "so-tai-chinh".to_string()),
    ];
    assert_eq!(notifications().await, both);

    // Redelivered, then started: same deadline, nothing new.
    apply(assigned).await;
    apply(event(
        "e2",
        TaskEventKind::Started,
        task(TaskStage::InProgress, (9, 27), 1),
    ))
    .await;
    assert_eq!(jobs(1, "PENDING").await, ahead(first_due));
    assert_eq!(
        count(&pool, "SELECT count(*) FROM reminder_jobs").await,
        ahead(first_due)
    );
    assert_eq!(notifications().await, both);

    // Extended: the old deadline's reminders go, the new one's come.
    clock.set(at8(2024, 9, 10));
    apply(event(
        "e3",
        TaskEventKind::ExtensionDecided,
        task(TaskStage::InProgress, (10, 11), 2),
    ))
    .await;
    assert_eq!(jobs(1, "PENDING").await, 0);
    assert_eq!(jobs(1, "CANCELLED").await, ahead(first_due));
    assert_eq!(jobs(2, "PENDING").await, ahead(second_due));
    let mut expected = both.clone();
    expected.push(("EXTENSION_DECIDED".into(), "so-ldtbxh".into()));
    assert_eq!(notifications().await, expected);

    // Completed: nothing is left to remind of.
    apply(event(
        "e4",
        TaskEventKind::Completed,
        task(TaskStage::Completed, (10, 11), 2),
    ))
    .await;
    assert_eq!(jobs(2, "PENDING").await, 0);
    assert_eq!(jobs(2, "CANCELLED").await, ahead(second_due));
    expected.push(("TASK_COMPLETED".into(), "so-ldtbxh".into()));
    assert_eq!(notifications().await, expected);
    let open: bool = sqlx::query_scalar("SELECT open FROM task_deadlines WHERE task_id = 9")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!open);
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_of_a_dead_worker_is_rescued_and_its_token_cannot_finish() {
    let pool = pool().await;
    let clock = Clock::manual(at8(2024, 9, 27));
    tasks_with_due_jobs(&pool, 1).await;

    // A worker claims the job and dies before handling it.
    let dead = jobs::claim(&pool, clock.now(), 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    // While the lease holds, nobody else gets it.
    assert!(
        jobs::claim(&pool, clock.now(), 10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    // Leases are about processes and expire in real time; the test moves the
    // expiry into the past instead of waiting for it.
    sqlx::query("UPDATE reminder_jobs SET lease_until = clock_timestamp() - interval '1 second' WHERE lease_until IS NOT NULL")
        .execute(&pool)
        .await
        .unwrap();
    let live = scheduler(&pool, &clock, Duration::from_secs(60));
    assert_eq!(
        live.tick().await.unwrap(),
        1,
        "the expired lease is rescued"
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM notifications").await, 1);

    // The dead worker wakes up late: its token no longer holds the job.
    let late = scheduler(&pool, &clock, Duration::from_secs(60));
    late.handle(&dead[0]).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    assert!(!jobs::still_mine(&mut conn, &dead[0]).await.unwrap());
    assert_eq!(
        count(&pool, "SELECT count(*) FROM notifications").await,
        1,
        "never doubled"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM reminder_jobs WHERE state = 'DONE'"
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_claiming_at_once_never_handle_the_same_job() {
    let pool = pool().await;
    let clock = Clock::manual(at8(2024, 9, 27));
    tasks_with_due_jobs(&pool, 300).await;

    // Concurrent claims are disjoint while their leases hold (a lease long
    // enough that a loaded machine cannot outlive it between the claims).
    let claims = futures::future::join_all((0..4).map(|_| {
        let pool = pool.clone();
        let now = clock.now();
        async move {
            jobs::claim(&pool, now, 40, Duration::from_secs(60))
                .await
                .unwrap()
        }
    }))
    .await;
    let mut seen = HashSet::new();
    for claim in &claims {
        for job in claim {
            assert!(seen.insert(job.id), "job {} claimed twice", job.id);
        }
    }
    assert_eq!(seen.len(), 160);
    // Those four workers die: their leases run out (set in the past rather
    // than waited for).
    sqlx::query("UPDATE reminder_jobs SET lease_until = clock_timestamp() - interval '1 second' WHERE lease_until IS NOT NULL")
        .execute(&pool)
        .await
        .unwrap();

    // Two workers drain everything concurrently (including the rescued ones).
    let run = |s: Scheduler, clock: Clock| async move {
        let mut handled = 0;
        loop {
            let n = s.tick_reminders(clock.now()).await.unwrap();
            if n == 0 {
                return handled;
            }
            handled += n;
        }
    };
    let a = scheduler(&pool, &clock, Duration::from_secs(60));
    let b = scheduler(&pool, &clock, Duration::from_secs(60));
    let (ha, hb) = tokio::join!(
        tokio::spawn(run(a, clock.clone())),
        tokio::spawn(run(b, clock.clone()))
    );
    assert_eq!(ha.unwrap() + hb.unwrap(), 300, "every job claimed once");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM reminder_jobs WHERE state = 'DONE'"
        )
        .await,
        300
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM notifications").await,
        300
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(DISTINCT dedupe_key) FROM notifications"
        )
        .await,
        300
    );
}

/// What a receiver got: the headers and the body of each request.
type Received = Arc<Mutex<Vec<(HashMap<String, String>, Bytes)>>>;

/// A webhook receiver on 127.0.0.1 that answers with a settable status.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    retry_after: Arc<Mutex<Option<String>>>,
    received: Received,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            addr: listener.local_addr().unwrap(),
            status: Arc::new(AtomicU16::new(200)),
            retry_after: Arc::default(),
            received: Arc::default(),
        };
        let r = receiver.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let r = r.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let r = r.clone();
                            async move {
                                let headers = req
                                    .headers()
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.to_string(), v.to_str().unwrap_or("").to_string())
                                    })
                                    .collect();
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                r.received.lock().unwrap().push((headers, body));
                                let mut response = hyper::Response::builder()
                                    .status(r.status.load(Ordering::SeqCst));
                                if let Some(after) = r.retry_after.lock().unwrap().clone() {
                                    response = response.header("retry-after", after);
                                }
                                Ok::<_, Infallible>(response.body(Full::new(Bytes::new())).unwrap())
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        receiver
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

async fn webhook_subscription(pool: &PgPool, url: &str, secret: &str) -> i64 {
    let mut conn = pool.acquire().await.unwrap();
    subscriptions::create(
        &mut conn,
        &NewSubscription {
            subscriber: "so-ldtbxh".into(),
            scope_all: false,
            agencies: vec![],
            kinds: vec![],
            key_tasks_only: false,
            directive: String::new(),
            channel: "WEBHOOK",
            webhook_url: Some(url.into()),
            secret: Some(secret.into()),
            email_addresses: vec![],
            created_by: "users/so-ldtbxh".into(),
            created_agency: Some("so-ldtbxh".into()),
            created_at: at8(2024, 9, 2),
        },
    )
    .await
    .unwrap()
    .id
}

async fn notify(pool: &PgPool, clock: &Clock, key: &str, recipient: &str) {
    let mut tx = pool.begin().await.unwrap();
    notifications::insert(
        &mut tx,
        &NewNotification {
            dedupe_key: key.into(),
            kind: "DUE_SOON".into(),
            recipient: recipient.into(),
            task_id: Some(1),
            directive_number: "534/TB-UBND".into(),
            directive: "directives/1".into(),
            lead_agency: "so-ldtbxh".into(),
            due_date: NaiveDate::from_ymd_opt(2024, 9, 27),
            key_task: true,
            title: "Sắp đến hạn".into(),
            body: "Đôn đốc".into(),
            notified_at: clock.now(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// Every combination of a push subscription's scope and filter, and the
/// subscriptions that never get deliveries (a stream, a disabled and a
/// deleted webhook): the statement that writes notifications queues a
/// delivery for exactly the pairs that the rule below selects, once.
#[tokio::test]
async fn deliveries_are_queued_for_exactly_the_push_subscriptions_that_select_a_notification() {
    struct Sub {
        id: i64,
        scope_all: bool,
        agencies: Vec<String>,
        kinds: Vec<String>,
        key_tasks_only: bool,
        directive: String,
        pushes: bool,
    }
    let pool = pool().await;
    let clock = Clock::manual(at8(2024, 9, 24));
    let mut conn = pool.acquire().await.unwrap();
    let mut subs = Vec::new();
    let mut add = async |sub: Sub, channel: &'static str| {
        let id = subscriptions::create(
            &mut conn,
            &NewSubscription {
                subscriber: "so-ldtbxh".into(),
                scope_all: sub.scope_all,
                agencies: sub.agencies.clone(),
                kinds: sub.kinds.clone(),
                key_tasks_only: sub.key_tasks_only,
                directive: sub.directive.clone(),
                channel,
                webhook_url: (channel == "WEBHOOK").then(|| "https://hook.example/".into()),
                secret: (channel == "WEBHOOK").then(|| "s".into()),
                email_addresses: if channel == "EMAIL" {
                    vec!["vanthu@ldtbxh.gov.vn".into()]
                } else {
                    vec![]
                },
                created_by: "users/so-ldtbxh".into(),
                created_agency: Some("so-ldtbxh".into()),
                created_at: clock.now(),
            },
        )
        .await
        .unwrap()
        .id;
        Sub { id, ..sub }
    };
    let mut channel = ["WEBHOOK", "EMAIL"].into_iter().cycle();
    for scope_all in [false, true] {
        for agencies in [vec![], vec!["so-tai-chinh".to_string()]] {
            for kinds in [vec![], vec!["OVERDUE".to_string()]] {
                for key_tasks_only in [false, true] {
                    for directive in ["", "directives/1"] {
                        let sub = Sub {
                            id: 0,
                            scope_all,
                            agencies: agencies.clone(),
                            kinds: kinds.clone(),
                            key_tasks_only,
                            directive: directive.into(),
                            pushes: true,
                        };
                        subs.push(add(sub, channel.next().unwrap()).await);
                    }
                }
            }
        }
    }
    let everything = || Sub {
        id: 0,
        scope_all: true,
        agencies: vec![],
        kinds: vec![],
        key_tasks_only: false,
        directive: String::new(),
        pushes: false,
    };
    subs.push(add(everything(), "STREAM").await);
    let disabled = add(everything(), "WEBHOOK").await;
    let deleted = add(everything(), "WEBHOOK").await;
    for (column, id) in [("disabled", disabled.id), ("deleted", deleted.id)] {
        sqlx::query(&format!(
            "UPDATE subscriptions SET {column} = true WHERE id = $1"
        ))
        .bind(id)
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    subs.extend([disabled, deleted]);

    let mut written = Vec::new();
    for recipient in ["so-ldtbxh", "so-tai-chinh", "so-xay-dung"] {
        for kind in ["DUE_SOON", "OVERDUE"] {
            for key_task in [false, true] {
                for directive in ["", "directives/1", "directives/2"] {
                    written.push(NewNotification {
                        dedupe_key: format!("{recipient}-{kind}-{key_task}-{directive}"),
                        kind: kind.into(),
                        recipient: recipient.into(),
                        task_id: Some(1),
                        directive_number: String::new(),
                        directive: directive.into(),
                        lead_agency: recipient.into(),
                        due_date: None,
                        key_task,
                        title: "Sắp đến hạn".into(),
                        body: "Đôn đốc".into(),
                        notified_at: clock.now(),
                    });
                }
            }
        }
    }
    let write = async |items: &[NewNotification]| {
        let mut tx = pool.begin().await.unwrap();
        let n = notifications::insert_many(&mut tx, items).await.unwrap();
        tx.commit().await.unwrap();
        n
    };
    // In two statements, the second repeating one of the first's.
    assert_eq!(write(&written[..20]).await, 20);
    assert_eq!(write(&written[19..]).await, written.len() as u64 - 20);

    let queued: HashSet<(i64, String)> = sqlx::query_as::<_, (i64, String)>(
        "SELECT d.subscription_id, n.dedupe_key FROM deliveries d \
         JOIN notifications n USING (notification_id)",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let rows = count(&pool, "SELECT count(*) FROM deliveries").await;
    let selects = |s: &Sub, n: &NewNotification| {
        s.pushes
            && (s.scope_all || n.recipient == "so-ldtbxh")
            && (s.agencies.is_empty() || s.agencies.contains(&n.recipient))
            && (s.kinds.is_empty() || s.kinds.contains(&n.kind))
            && (!s.key_tasks_only || n.key_task)
            && (s.directive.is_empty() || s.directive == n.directive)
    };
    let expected: HashSet<(i64, String)> = subs
        .iter()
        .flat_map(|s| {
            written
                .iter()
                .filter(move |n| selects(s, n))
                .map(|n| (s.id, n.dedupe_key.clone()))
        })
        .collect();
    assert_eq!(queued, expected);
    assert_eq!(rows as usize, expected.len(), "one delivery per pair");
    // Not a vacuous match: every push subscription that can select something
    // did, and nothing went to those that never push.
    assert!(expected.len() > 100, "{}", expected.len());
    assert!(
        queued
            .iter()
            .all(|(id, _)| subs.iter().any(|s| s.id == *id && s.pushes))
    );
}

fn deliverer(pool: &PgPool, clock: &Clock, tweak: impl FnOnce(&mut DeliverySettings)) -> Deliverer {
    let mut settings = DeliverySettings {
        allow_list: AllowList::parse("http://127.0.0.1:"),
        timeout: Duration::from_secs(5),
        ..Default::default()
    };
    tweak(&mut settings);
    Deliverer {
        metrics: None,
        pool: pool.clone(),
        clock: clock.clone(),
        notifications: Wake::new(),
        settings,
    }
}

async fn delivery_row(pool: &PgPool) -> (String, i32, DateTime<Utc>) {
    sqlx::query_as("SELECT state, attempts, next_attempt_at FROM deliveries ORDER BY id LIMIT 1")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_retry_on_the_schedule_then_dead_letter_then_replay() {
    let pool = pool().await;
    let start = at8(2024, 9, 24);
    let clock = Clock::manual(start);
    let receiver = Receiver::start().await;
    receiver.status.store(500, Ordering::SeqCst);
    let secret = webhook::generate_secret();
    let sub = webhook_subscription(&pool, &receiver.url(), &secret).await;
    // Another agency's notification is never queued for it.
    notify(&pool, &clock, "other", "so-tai-chinh").await;
    notify(&pool, &clock, "n1", "so-ldtbxh").await;
    assert_eq!(count(&pool, "SELECT count(*) FROM deliveries").await, 1);
    let worker = deliverer(&pool, &clock, |_| {});

    // Attempt 1 at once; then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    assert_eq!(worker.tick().await.unwrap(), 1);
    let mut elapsed = chrono::Duration::zero();
    for (attempt, delay) in [5i64, 300, 1800, 7200, 18000, 36000, 36000]
        .into_iter()
        .enumerate()
    {
        let (state, attempts, next) = delivery_row(&pool).await;
        assert_eq!((state.as_str(), attempts), ("PENDING", attempt as i32 + 1));
        elapsed += chrono::Duration::seconds(delay);
        assert_eq!(
            next,
            start + elapsed,
            "attempt {} after {delay} s",
            attempt + 2
        );
        // Not a moment early.
        clock.set(next - chrono::Duration::seconds(1));
        assert_eq!(worker.tick().await.unwrap(), 0);
        clock.set(next);
        assert_eq!(worker.tick().await.unwrap(), 1);
    }
    let (state, attempts, _) = delivery_row(&pool).await;
    assert_eq!((state.as_str(), attempts), ("DEAD_LETTER", 8));
    assert_eq!(receiver.count(), 8);
    let id: i64 = sqlx::query_scalar("SELECT id FROM deliveries")
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let log = deliveries::attempts(&mut conn, id).await.unwrap();
    assert_eq!(log.len(), 8, "every attempt is recorded");
    assert!(log.iter().all(|a| a.status_code == Some(500)));

    // Every attempt carried the same id and a valid signature.
    for (headers, body) in receiver.received.lock().unwrap().iter() {
        let id = &headers["webhook-id"];
        let ts: i64 = headers["webhook-timestamp"].parse().unwrap();
        assert!(webhook::verify(
            &secret,
            id,
            ts,
            body,
            &headers["webhook-signature"]
        ));
        let json: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(json["data"]["notification_id"].as_str().unwrap(), id);
        assert_eq!(json["data"]["directive_number"], "534/TB-UBND");
        assert_eq!(json["data"]["due_date"], "2024-09-27");
    }
    let ids: HashSet<_> = receiver
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|(h, _)| h["webhook-id"].clone())
        .collect();
    assert_eq!(ids.len(), 1, "webhook-id is stable across retries");

    // The receiver is fixed; a replay delivers.
    receiver.status.store(204, Ordering::SeqCst);
    assert_eq!(
        deliveries::replay(&mut conn, sub, None, clock.now())
            .await
            .unwrap(),
        1
    );
    assert_eq!(worker.tick().await.unwrap(), 1);
    assert_eq!(delivery_row(&pool).await.0, "DELIVERED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_a_floor_and_410_disables_the_endpoint() {
    let pool = pool().await;
    let clock = Clock::manual(at8(2024, 9, 24));
    let receiver = Receiver::start().await;
    receiver.status.store(503, Ordering::SeqCst);
    *receiver.retry_after.lock().unwrap() = Some("600".into());
    let sub = webhook_subscription(&pool, &receiver.url(), &webhook::generate_secret()).await;
    notify(&pool, &clock, "n1", "so-ldtbxh").await;
    let worker = deliverer(&pool, &clock, |_| {});
    worker.tick().await.unwrap();
    let (_, _, next) = delivery_row(&pool).await;
    assert_eq!(next, clock.now() + chrono::Duration::seconds(600));

    // 410 Gone: dead letter, the endpoint disabled, its owner told.
    receiver.status.store(410, Ordering::SeqCst);
    *receiver.retry_after.lock().unwrap() = None;
    clock.set(next);
    worker.tick().await.unwrap();
    assert_eq!(delivery_row(&pool).await.0, "DEAD_LETTER");
    let disabled: bool = sqlx::query_scalar("SELECT disabled FROM subscriptions WHERE id = $1")
        .bind(sub)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(disabled);
    let told: Vec<(String, String)> = sqlx::query_as(
        "SELECT recipient, body FROM notifications WHERE kind = 'ENDPOINT_DISABLED'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].0, "so-ldtbxh");
    assert!(told[0].1.contains("410"), "{}", told[0].1);
    // A disabled endpoint gets nothing more.
    notify(&pool, &clock, "n2", "so-ldtbxh").await;
    let before = receiver.count();
    worker.tick().await.unwrap();
    assert_eq!(receiver.count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_with_dead_letters_in_a_row_is_disabled() {
    let pool = pool().await;
    let clock = Clock::manual(at8(2024, 9, 24));
    let receiver = Receiver::start().await;
    receiver.status.store(500, Ordering::SeqCst);
    let sub = webhook_subscription(&pool, &receiver.url(), &webhook::generate_secret()).await;
    let worker = deliverer(&pool, &clock, |s| {
        s.retry = RetrySchedule(vec![Duration::ZERO]);
        s.disable_after_dead_letters = 2;
    });
    notify(&pool, &clock, "n1", "so-ldtbxh").await;
    worker.tick().await.unwrap();
    let disabled = |pool: PgPool| async move {
        sqlx::query_scalar::<_, bool>("SELECT disabled FROM subscriptions WHERE id = $1")
            .bind(sub)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert!(!disabled(pool.clone()).await);
    notify(&pool, &clock, "n2", "so-ldtbxh").await;
    worker.tick().await.unwrap();
    assert!(disabled(pool.clone()).await, "two dead letters in a row");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM notifications WHERE kind = 'ENDPOINT_DISABLED'"
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weekly_digest_goes_out_once_per_agency_and_week() {
    let pool = pool().await;
    // Wednesday 18/9/2024; the task is due Friday 27/9.
    let clock = Clock::manual(at8(2024, 9, 18));
    tasks_with_due_jobs(&pool, 3).await;
    let mut s = scheduler(&pool, &clock, Duration::from_secs(60));
    s.settings.weekly_digest = true;
    s.plan_digests(clock.now()).await.unwrap();
    assert_eq!(
        s.tick_digests(clock.now()).await.unwrap(),
        0,
        "not before Monday"
    );
    clock.set(at8(2024, 9, 23));
    let replica = s.clone();
    let (a, b) = tokio::join!(
        s.tick_digests(clock.now()),
        replica.tick_digests(clock.now())
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    let digests: Vec<(String, String)> =
        sqlx::query_as("SELECT recipient, body FROM notifications WHERE kind = 'WEEKLY_DIGEST'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(digests.len(), 1);
    assert_eq!(digests[0].0, "so-ldtbxh");
    assert!(
        digests[0]
            .1
            .contains("3 nhiệm vụ đến hạn trong 14 ngày tới"),
        "{}",
        digests[0].1
    );
    s.plan_digests(clock.now()).await.unwrap();
    assert_eq!(
        s.tick_digests(clock.now()).await.unwrap(),
        0,
        "once per week"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_handles_each_job_by_its_own_task_and_skips_jobs_it_no_longer_holds() {
    let pool = pool().await;
    let clock = Clock::manual(at8(2024, 9, 27));
    tasks_with_due_jobs(&pool, 5).await;
    let mut conn = pool.acquire().await.unwrap();
    // Task 2 gains a coordinating agency, task 3 is completed, task 4's due
    // date moved (a new deadline version), all before the reminders fire.
    let mut d2 = deadlines::get(&mut conn, 2).await.unwrap().unwrap();
    d2.coordinating_agencies = vec!["so-tc".into()];
    deadlines::upsert(&mut conn, &d2).await.unwrap();
    let mut d3 = deadlines::get(&mut conn, 3).await.unwrap().unwrap();
    d3.open = false;
    deadlines::upsert(&mut conn, &d3).await.unwrap();
    let mut d4 = deadlines::get(&mut conn, 4).await.unwrap().unwrap();
    d4.deadline_version = 2;
    deadlines::upsert(&mut conn, &d4).await.unwrap();

    let worker = scheduler(&pool, &clock, Duration::from_secs(60));
    let claimed = jobs::claim(&pool, clock.now(), 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 5);
    // Task 5's job was rescued by another replica meanwhile: a new token.
    sqlx::query(
        "UPDATE reminder_jobs SET lease_token = nextval('reminder_fencing') WHERE task_id = 5",
    )
    .execute(&pool)
    .await
    .unwrap();
    worker.handle_batch(&claimed).await.unwrap();

    let written: Vec<(i64, String)> =
        sqlx::query_as("SELECT task_id, recipient FROM notifications ORDER BY tx_id, id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        written,
        [
            (1, "so-ldtbxh".to_string()),
            (2, "so-ldtbxh".to_string()),
            (2, "so-tc".to_string()),
        ],
        "one per recipient of each live task, in job order"
    );
    let states: Vec<(i64, String)> =
        sqlx::query_as("SELECT task_id, state FROM reminder_jobs ORDER BY task_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        states,
        [
            (1, "DONE".to_string()),
            (2, "DONE".to_string()),
            (3, "CANCELLED".to_string()),
            (4, "CANCELLED".to_string()),
            (5, "PENDING".to_string()),
        ],
        "the job held by another claim is left to it"
    );
    // Handling the same claim again changes nothing.
    worker.handle_batch(&claimed).await.unwrap();
    assert_eq!(count(&pool, "SELECT count(*) FROM notifications").await, 3);
}
