//! The six scenarios of issue 8, each measured side by side with its peer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use dondoc_assignments::storage::statistics;
use dondoc_contracts::assignments::v1 as apb;
use dondoc_contracts::common::v1::Date;
use dondoc_contracts::directives::v1 as dpb;
use dondoc_contracts::notifications::v1 as npb;
use dondoc_identity::Role;
use prost::Message;
use sqlx::PgConnection;
use tokio::io::{AsyncBufReadExt, BufReader};
use tonic::transport::Channel;

use crate::Args;
use crate::env::{Cluster, Running, token};
use crate::load::{self, RawCall, Stats};
use crate::peers::{self, ECHO_PATH, PUBLISH_PATH, SUBSCRIBE_PATH};
use crate::report::Row;

const CREATE_TASK: &str = "/dondoc.assignments.v1.TaskService/CreateTask";
const GET_TASK: &str = "/dondoc.assignments.v1.TaskService/GetTask";
const LIST_TASKS: &str = "/dondoc.assignments.v1.TaskService/ListTasks";
const STATISTICS: &str = "/dondoc.assignments.v1.StatisticsService/GetTaskStatistics";
const SUBSCRIBE: &str = "/dondoc.notifications.v1.NotificationService/Subscribe";

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

fn office_token() -> String {
    token("users/bench-office", "vp-ubnd", Role::Office)
}

async fn closed_loop(
    channels: &[Channel],
    call: &RawCall,
    workers: usize,
    duration: Duration,
    rate: Option<f64>,
) -> Stats {
    let channels: Arc<Vec<Channel>> = Arc::new(channels.to_vec());
    let call = call.clone();
    load::run(workers, duration, rate, move |w, _| {
        let channel = channels[w % channels.len()].clone();
        let call = call.clone();
        async move {
            call.send(&channel)
                .await
                .map(|_| ())
                .map_err(|s| s.to_string())
        }
    })
    .await
}

/// Scenario 1: Gateway overhead: the echo backend directly, through the gateway and
/// through nginx `grpc_pass`, at the same concurrency.
pub async fn gateway(args: &Args) -> anyhow::Result<Vec<Row>> {
    const S: &str = "1 gateway";
    // The echo, the gateway and nginx each in their own processes: this
    // one holds only the load generator.
    let echo = echo_child().await?;
    let nginx = peers::start_nginx(echo.addr).await?;
    let gateway = gateway_child(echo.addr).await?;
    let call = RawCall::new(
        ECHO_PATH,
        &dpb::GetAgencyRequest {
            name: "agencies/so-ldtbxh".into(),
        },
        &bearer(&office_token()),
    );
    let targets = [
        ("direct", echo.addr),
        ("gateway", gateway.addr),
        ("nginx", nginx.addr),
    ];
    let mut channels = Vec::new();
    for (_, addr) in targets {
        let c = load::connections(addr, args.connections).await?;
        // Warm up: connections, nginx's upstream keepalive, JIT-free but caches.
        let _ = closed_loop(
            &c,
            &call,
            args.concurrency,
            Duration::from_millis(300),
            None,
        )
        .await;
        channels.push(c);
    }
    // Interleaved rounds: each target runs a third of the time in each of
    // three rounds, so that a busy spell of the shared machine falls on all
    // three alike. The proxies' own CPU time is counted around their runs.
    let slice = (args.duration_resolved / ROUNDS).max(Duration::from_secs(1));
    let nginx_pid = nginx.pid().context("nginx pid")?;
    let proxy_cpu = |i: usize| match i {
        1 => load::process_cpu_seconds(gateway.pid),
        2 => load::process_tree_cpu_seconds(nginx_pid),
        _ => 0.0,
    };
    let mut saturated: Vec<Option<Stats>> = vec![None, None, None];
    let mut cpu = [0.0_f64; 3];
    for _ in 0..ROUNDS {
        for (i, c) in channels.iter().enumerate() {
            let before = proxy_cpu(i);
            let stats = closed_loop(c, &call, args.concurrency, slice, None).await;
            cpu[i] += proxy_cpu(i) - before;
            merge_into(&mut saturated[i], stats);
        }
    }
    let saturated: Vec<Stats> = saturated.into_iter().flatten().collect();
    for ((name, _), stats) in targets.iter().zip(&saturated) {
        println!(
            "  saturation {name:<8} c={} {}",
            args.concurrency,
            stats.line()
        );
    }
    // CPU milliseconds of the proxy process(es) per 1,000 calls.
    let cpu_per_k = |i: usize| 1e6 * cpu[i] / saturated[i].ok.max(1) as f64;
    println!(
        "  proxy CPU per 1,000 calls: gateway {:.1} ms, nginx {:.1} ms",
        cpu_per_k(1),
        cpu_per_k(2)
    );
    let half = 0.5 * saturated[1].rate().min(saturated[2].rate());
    let mut paced: Vec<Option<Stats>> = vec![None, None, None];
    for _ in 0..ROUNDS {
        for (i, c) in channels.iter().enumerate() {
            let stats = closed_loop(c, &call, args.concurrency, slice, Some(half)).await;
            merge_into(&mut paced[i], stats);
        }
    }
    let paced: Vec<Stats> = paced.into_iter().flatten().collect();
    for ((name, _), stats) in targets.iter().zip(&paced) {
        println!("  at {half:.0}/s  {name:<8} {}", stats.line());
    }
    gateway.stop().await;
    drop(nginx);
    echo.stop().await;
    let added = |i: usize| (paced[i].ms(0.5) - paced[0].ms(0.5)).max(0.0);
    let c = args.concurrency;
    Ok(vec![
        Row::info(
            S,
            format!("direct to echo, c={c}"),
            saturated[0].rate(),
            f64::NAN,
            "calls/s",
        ),
        Row::new(
            S,
            format!("throughput, c={c}"),
            saturated[1].rate(),
            saturated[2].rate(),
            "calls/s",
            ">= 1.0x nginx",
            |_, _, r| r >= 1.0,
        ),
        Row::info(
            S,
            "proxy CPU per 1,000 calls at saturation",
            cpu_per_k(1),
            cpu_per_k(2),
            "ms",
        ),
        Row::info(
            S,
            format!("p99 at saturation, c={c}"),
            saturated[1].ms(0.99),
            saturated[2].ms(0.99),
            "ms",
        ),
        Row::new(
            S,
            format!("added median at {half:.0}/s (half sat.)"),
            added(1),
            added(2),
            "ms",
            "<= nginx",
            |o, p, _| o <= p,
        ),
        Row::new(
            S,
            "added median at half sat.",
            added(1),
            1.0,
            "ms",
            "< 1 ms",
            |o, _, _| o < 1.0,
        ),
    ])
}

/// How many turns the sides of a comparison take (scenarios 1 and 2), each
/// running a third of the duration in each, so that a busy spell of the
/// shared machine falls on all of them alike.
const ROUNDS: u32 = 3;

/// Adds a round's measurement to those gathered in `total`.
fn merge_into<T: load::Merge>(total: &mut Option<T>, round: T) {
    match total {
        Some(total) => total.merge(round),
        None => *total = Some(round),
    }
}

fn create_task_request(tag: &str, w: usize, i: u64) -> Bytes {
    let today = chrono::Utc::now().date_naive() + chrono::Days::new(60);
    use chrono::Datelike;
    Bytes::from(
        apb::CreateTaskRequest {
            task: Some(apb::Task {
                title: format!("Báo cáo kết quả thực hiện nhiệm vụ {w}-{i}"),
                lead_agencies: vec!["agencies/so-bench".into()],
                due_date: Some(Date {
                    year: today.year(),
                    month: today.month() as i32,
                    day: today.day() as i32,
                }),
                ..Default::default()
            }),
            request_id: format!("{tag}-{w}-{i}"),
        }
        .encode_to_vec(),
    )
}

fn write_script() -> String {
    let method = CREATE_TASK;
    let payload = "ab".repeat(200);
    let response = "cd".repeat(150);
    format!(
        "\\set r random(1, 1000000000000)\n\
BEGIN;\n\
INSERT INTO idempotency_keys (method, principal, request_id) VALUES ('{method}', 'users/bench-office', 'pgb-' || :client_id || '-' || :r) ON CONFLICT DO NOTHING;\n\
WITH task AS (INSERT INTO tasks (title, description, directive_id, directive_item_id, directive_number, reference, lead_agencies, coordinating_agencies, assigner, assign_date, due_date, original_due_date, recurrence, priority, key_task, created_by, created_agency, created_at, updated_by, updated_agency, updated_at) VALUES ('Báo cáo kết quả thực hiện nhiệm vụ ' || :r, '', NULL, NULL, '', '', '{{so-bench}}', '{{}}', 'vp-ubnd', current_date, current_date + 60, current_date + 60, NULL, 'NORMAL', false, 'users/bench-office', 'vp-ubnd', now(), 'users/bench-office', 'vp-ubnd', now()) ON CONFLICT (directive_item_id) DO NOTHING RETURNING id, title, description, lead_agencies, coordinating_agencies, assigner, assign_date, due_date, priority, key_task, stage, percent_complete, extension_count, deadline_version, version, created_by, created_at, updated_by, updated_at), history AS (INSERT INTO task_history (task_id, action, from_stage, to_stage, due_date, reason, actor, agency, at) SELECT id, 'ASSIGNED', NULL, 'ASSIGNED', due_date, '', 'users/bench-office', 'vp-ubnd', now() FROM task) SELECT * FROM task \\gset t_\n\
INSERT INTO outbox (event_id, kind, aggregate, payload) VALUES (gen_random_uuid(), 'TASK_ASSIGNED', 'tasks/' || :t_id, '\\x{payload}'::bytea);\n\
UPDATE idempotency_keys SET response = '\\x{response}'::bytea WHERE method = '{method}' AND principal = 'users/bench-office' AND request_id = 'pgb-' || :client_id || '-' || :r;\n\
END;\n"
    )
}

/// Scenario 2: Write path: CreateTask through the gateway against pgbench running
/// the same statements, at 1, 16 and 64 clients, on a durable cluster.
pub async fn write(args: &Args) -> anyhow::Result<Vec<Row>> {
    const S: &str = "2 write";
    let cluster = Cluster::start(true).await?;
    let running = Running::start(&cluster).await?;
    let token = office_token();
    let call = RawCall::new(
        CREATE_TASK,
        &apb::CreateTaskRequest::default(),
        &bearer(&token),
    );
    let mut rows = Vec::new();
    let clients: &[usize] = if args.quick { &[1, 16] } else { &[1, 16, 64] };
    let channels = load::connections(running.gateway, args.connections).await?;
    // Warm-up (and a check that the call works).
    call.send_with(&channels[0], create_task_request("warm", 0, 0))
        .await
        .context("CreateTask through the gateway")?;
    let target = cluster.pgbench_target("dondoc_assignments");
    let mut admin = cluster.connect().await?;
    let nonce: u32 = rand::random();
    // Interleaved rounds, as in scenario 1 (before round 14, ten seconds of
    // one side, then ten of the other). pgbench takes whole seconds.
    let slice = Duration::from_secs((args.duration_resolved.as_secs() / ROUNDS as u64).max(1));
    for &c in clients {
        let (mut ours, mut peer) = (None, None::<peers::PgbenchResult>);
        let (mut ours_syncs, mut ours_commits, mut peer_syncs, mut peer_commits) = (0, 0, 0, 0);
        for round in 0..ROUNDS {
            let ch: Arc<Vec<Channel>> = Arc::new(channels.clone());
            let call2 = call.clone();
            let tag = format!("b{nonce:x}c{c}r{round}");
            let syncs_before = wal_syncs(&mut admin).await?;
            let commits_before = commits(&mut admin).await?;
            let stats = load::run(c, slice, None, move |w, i| {
                let channel = ch[w % ch.len()].clone();
                let call = call2.clone();
                let body = create_task_request(&tag, w, i);
                async move {
                    call.send_with(&channel, body)
                        .await
                        .map(|_| ())
                        .map_err(|s| s.to_string())
                }
            })
            .await;
            // Backends report these counters within a second of going idle.
            tokio::time::sleep(STATISTICS_REPORTED).await;
            ours_syncs += wal_syncs(&mut admin).await? - syncs_before;
            ours_commits += commits(&mut admin).await? - commits_before;
            merge_into(&mut ours, stats);
            let syncs_before = wal_syncs(&mut admin).await?;
            let commits_before = commits(&mut admin).await?;
            let pg = peers::pgbench(&target, &write_script(), c, slice).await?;
            tokio::time::sleep(STATISTICS_REPORTED).await;
            peer_syncs += wal_syncs(&mut admin).await? - syncs_before;
            peer_commits += commits(&mut admin).await? - commits_before;
            merge_into(&mut peer, pg);
        }
        let (stats, pg) = (ours.context("no round ran")?, peer.context("no round ran")?);
        println!("  gateway CreateTask c={c:<3} {}", stats.line());
        println!(
            "  pgbench same SQL   c={c:<3} {:>9.0}/s avg {:.3} ms ({} transactions)",
            pg.tps, pg.latency_ms, pg.transactions
        );
        // WAL flushes per transaction: shows group commit at work (below 1) and
        // commits the peer does not make (above it).
        rows.push(Row::info(
            S,
            format!("WAL flushes per transaction, {c} clients"),
            ours_syncs as f64 / stats.ok.max(1) as f64,
            peer_syncs as f64 / pg.transactions.max(1) as f64,
            "flushes/tx",
        ));
        // Commits per transaction: beside the call's own, the services' (the
        // consumers' batches; the followers' reads, as every statement
        // outside a transaction block counts as one).
        rows.push(Row::info(
            S,
            format!("commits per transaction, {c} clients"),
            ours_commits as f64 / stats.ok.max(1) as f64,
            peer_commits as f64 / pg.transactions.max(1) as f64,
            "commits/tx",
        ));
        rows.push(Row::new(
            S,
            format!("CreateTask tx/s, {c} clients"),
            stats.rate(),
            pg.tps,
            "tx/s",
            ">= 0.7x pgbench",
            |_, _, r| r >= 0.7,
        ));
        rows.push(Row::info(
            S,
            format!("mean latency, {c} clients"),
            stats.hist.mean() / 1000.0,
            pg.latency_ms,
            "ms",
        ));
    }
    running.stop().await;
    Ok(rows)
}

/// How long after a run the cumulative statistics below have been reported:
/// a backend reports them within a second of going idle.
const STATISTICS_REPORTED: Duration = Duration::from_millis(1100);

/// Transactions committed in every database of the cluster so far. Like
/// `wal_sync`, a cumulative statistic that backends report within a second.
async fn commits(admin: &mut PgConnection) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT sum(xact_commit)::bigint FROM pg_stat_database")
            .fetch_one(admin)
            .await?,
    )
}

/// WAL flushes (fsync calls) of the whole cluster so far.
async fn wal_syncs(admin: &mut PgConnection) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT wal_sync FROM pg_stat_wal")
        .fetch_one(admin)
        .await?)
}

/// Generates `tasks` tasks over 500 agencies and 20,000 directives straight
/// into the assignments schema, then ANALYZE. Every field is drawn from its
/// own hash of the row number, so agencies, due dates and stages combine
/// as in real data (as many distinct counter rows); assign dates span the
/// 700 days up to today and due dates up to 180 days after them, so today
/// falls inside the data: open tasks long overdue, overdue, nearly overdue
/// and due months ahead, as on a real dashboard.
async fn generate_tasks(cluster: &Cluster, tasks: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut admin = cluster.connect().await?;
    sqlx::query(
        "INSERT INTO assignments.tasks (title, directive_id, directive_number, reference, lead_agencies, \
           coordinating_agencies, assigner, assign_date, due_date, original_due_date, priority, key_task, stage, \
           completion_date, created_by, created_agency, created_at, updated_by, updated_agency, updated_at) \
         SELECT 'Nhiệm vụ số ' || g, h.directive, h.directive || '/TB-UBND', 'II.' || (g % 9), \
           ARRAY['ag-' || h.lead], \
           CASE WHEN h.other % 3 = 0 THEN ARRAY['ag-' || ((h.lead + 1 + h.other % 499) % 500)] ELSE '{}'::text[] END, \
           'vp-ubnd', d.assign, d.due, d.due, 'NORMAL', h.other % 50 = 7, s.stage, \
           CASE WHEN s.stage = 'COMPLETED' THEN LEAST(current_date, d.assign + (h.took % 120)::int) END, \
           'users/gen', 'vp-ubnd', now(), 'users/gen', 'vp-ubnd', now() \
         FROM generate_series(1, $1::bigint) AS g \
         CROSS JOIN LATERAL (SELECT abs(hashint8(g)) % 500 AS lead, \
           1 + abs(hashint8(g + 10000000)) % 20000 AS directive, \
           abs(hashint8(g + 20000000)) % 700 AS assigned, abs(hashint8(g + 30000000)) % 180 AS lasts, \
           abs(hashint8(g + 40000000)) % 70 AS kind, abs(hashint8(g + 50000000)) AS other, \
           abs(hashint8(g + 60000000)) AS took) AS h \
         CROSS JOIN LATERAL (SELECT current_date - 700 + h.assigned::int AS assign, \
           CASE WHEN h.kind % 10 = 0 THEN NULL ELSE current_date - 700 + h.assigned::int + h.lasts::int END AS due) AS d \
         CROSS JOIN LATERAL (SELECT (ARRAY['ASSIGNED','IN_PROGRESS','SUBMITTED','COMPLETED','COMPLETED','COMPLETED','WITHDRAWN'])\
           [1 + (h.kind % 7)::int] AS stage) AS s",
    )
    .bind(tasks as i64)
    .execute(&mut admin)
    .await?;
    // The side tables that the triggers filled in the same statement too.
    sqlx::query(
        "ANALYZE assignments.tasks, assignments.task_agencies, assignments.task_tally_totals, \
         assignments.task_tally_days",
    )
    .execute(&mut admin)
    .await?;
    Ok(started.elapsed())
}

/// The plan's node lines (no costs), for comparing shapes.
async fn plan(cluster: &Cluster, sql: &str) -> anyhow::Result<Vec<String>> {
    let mut admin = cluster.connect().await?;
    // For statements taken from the service, which name its tables unqualified.
    sqlx::query("SET search_path TO assignments")
        .execute(&mut admin)
        .await?;
    let lines: Vec<(String,)> = sqlx::query_as(&format!("EXPLAIN (COSTS OFF) {sql}"))
        .fetch_all(&mut admin)
        .await?;
    Ok(lines
        .into_iter()
        .map(|(l,)| l)
        .filter(|l| !l.trim_start().starts_with("Filter") && !l.trim_start().starts_with("Recheck"))
        .collect())
}

/// What autovacuum does within minutes of a million inserted tasks (or a
/// roll that moved most day rows), done at once so that it does not run
/// during the measurements.
async fn vacuum_tasks(admin: &mut PgConnection) -> anyhow::Result<()> {
    let started = Instant::now();
    sqlx::query(
        "VACUUM (ANALYZE) assignments.tasks, assignments.task_agencies, \
         assignments.task_tally_totals, assignments.task_tally_days",
    )
    .execute(admin)
    .await?;
    println!("  vacuumed in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Runs a statistics statement `runs` times: the median in milliseconds,
/// and its figures (per lead agency, sorted; key-task counts of the scope's
/// row only, the only ones the service reads).
async fn time_statement(
    admin: &mut PgConnection,
    sql: &str,
    runs: usize,
) -> anyhow::Result<(f64, Vec<(String, Vec<i64>)>)> {
    let mut took = Vec::with_capacity(runs);
    let mut figures = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let rows: Vec<sqlx::postgres::PgRow> = sqlx::query(sql).fetch_all(&mut *admin).await?;
        took.push(started.elapsed().as_secs_f64() * 1e3);
        figures = rows
            .iter()
            .map(|r| {
                let lead: String = sqlx::Row::try_get(r, 0)?;
                let columns = if lead.is_empty() { 18 } else { 9 };
                let counts = (1..=columns)
                    .map(|c| sqlx::Row::try_get::<i64, _>(r, c))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((lead, counts))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        figures.sort();
    }
    took.sort_by(f64::total_cmp);
    Ok((took[took.len() / 2], figures))
}

/// Scenario 3: Read path at province scale.
pub async fn read(args: &Args) -> anyhow::Result<Vec<Row>> {
    const S: &str = "3 read";
    let tasks = if args.quick { 50_000 } else { 1_000_000 };
    let cluster = Cluster::start(false).await?;
    let took = generate_tasks(&cluster, tasks).await?;
    println!("  generated {tasks} tasks in {:.1} s", took.as_secs_f64());
    let today = dondoc_time::Clock::system().today();
    let policy = dondoc_assignments::DeadlinePolicy::default();
    let until = statistics::roll_until(today, &policy);
    let mut admin = cluster.connect().await?;
    sqlx::query("SET search_path TO assignments")
        .execute(&mut admin)
        .await?;
    vacuum_tasks(&mut admin).await?;
    let detail_from = until;
    let nearly_until = dondoc_assignments::domain::deadline::nearly_overdue_until(today, &policy);
    let counts = |only: &str| {
        [
            "stage <> 'WITHDRAWN'".to_string(),
            format!("stage = 'COMPLETED' AND due_date IS NOT NULL AND COALESCE(completion_date, DATE '{today}') <= due_date"),
            format!("stage = 'COMPLETED' AND due_date IS NOT NULL AND COALESCE(completion_date, DATE '{today}') > due_date"),
            format!("stage NOT IN ('COMPLETED', 'WITHDRAWN') AND due_date >= DATE '{today}'"),
            format!("stage NOT IN ('COMPLETED', 'WITHDRAWN') AND due_date < DATE '{today}'"),
            "stage <> 'WITHDRAWN' AND due_date IS NULL".to_string(),
            format!("stage NOT IN ('COMPLETED', 'WITHDRAWN') AND due_date >= DATE '{today}' AND due_date <= DATE '{nearly_until}'"),
            format!("stage NOT IN ('COMPLETED', 'WITHDRAWN') AND due_date < DATE '{detail_from}'"),
            "stage = 'COMPLETED'".to_string(),
        ]
        .iter()
        .map(|p| format!("COALESCE(SUM(tasks) FILTER (WHERE ({only}) AND ({p})), 0)::bigint"))
        .collect::<Vec<_>>()
        .join(", ")
    };
    // The statement the service sends for the province, from the service's
    // own code; its only binds are the scope, `''`, in each of its five
    // reads (totals, three ranges of day rows, the overdue sums).
    let counted = statistics::counter_scope(&statistics::Scope::default(), today, &policy)
        .context("the province is held by the counters")?;
    let service_statistics = statistics::counters_statement(&counted, today, &policy)
        .sql()
        .to_string();
    anyhow::ensure!(
        !service_statistics.contains("$6"),
        "the province statement binds more than its scope"
    );
    let service_statistics = (1..=5).fold(service_statistics, |sql, n| {
        sql.replace(&format!("${n}"), "''")
    });
    // The same figures by the statement sent before migration 0105 (every
    // day row from the long-overdue boundary on, however far ahead; its
    // text as it was): timed by SQL alone on the generated counters, then
    // today's on the same counters rolled and folded.
    let before_0105 = format!(
        "SELECT lead_agency, {}, {} FROM (\
         SELECT lead_agency, key_task, stage, NULLIF(due_date, 'infinity') AS due_date, \
         NULLIF(completion_date, 'infinity') AS completion_date, tasks FROM assignments.task_tally_totals WHERE scope = '' \
         UNION ALL SELECT lead_agency, key_task, stage, due_date, NULL, tasks FROM assignments.task_tally_days \
         WHERE scope = '' AND due_date >= DATE '{detail_from}' \
         UNION ALL SELECT lead_agency, key_task, stage, DATE '0001-01-01', NULL, -tasks FROM assignments.task_tally_days \
         WHERE scope = '' AND due_date >= DATE '{detail_from}') AS tally GROUP BY lead_agency HAVING SUM(tasks) > 0",
        counts("true"),
        counts("key_task"),
    );
    let runs = if args.quick { 10 } else { 40 };
    let (before, before_figures) = time_statement(&mut admin, &before_0105, runs).await?;
    // The roll and fold the service starts with (migration 0105), timed
    // here so that no read below meets them half done.
    let started = Instant::now();
    statistics::roll_tallies(&mut admin, until).await?;
    let rolled = started.elapsed();
    let folded = statistics::fold_tallies(&mut admin).await?;
    println!(
        "  rolled the counters of days before {until} in {:.1} s, folded {folded} shard rows in {:.1} s",
        rolled.as_secs_f64(),
        (started.elapsed() - rolled).as_secs_f64()
    );
    vacuum_tasks(&mut admin).await?;
    // The same statement before the days up to today are summed (migration
    // 0106): it reads them day by day, as the statement before 0106 did.
    let (unsummed, unsummed_figures) =
        time_statement(&mut admin, &service_statistics, runs).await?;
    let started = Instant::now();
    let summed_until = statistics::sum_overdue_until(today, &policy);
    statistics::sum_overdue_tallies(&mut admin, summed_until).await?;
    println!(
        "  summed the counters of days from {until} to {summed_until} in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    sqlx::query("VACUUM (ANALYZE) assignments.task_tally_overdue")
        .execute(&mut admin)
        .await?;
    let (now, now_figures) = time_statement(&mut admin, &service_statistics, runs).await?;
    anyhow::ensure!(
        before_figures == now_figures && unsummed_figures == now_figures,
        "the statements before 0105, before 0106 and today's disagree"
    );
    println!(
        "  province statistics by SQL alone, median: {now:.1} ms, before migration 0106 {unsummed:.1} ms, \
         before migration 0105 {before:.1} ms (same figures)"
    );
    let running = Running::start(&cluster).await?;
    let token = office_token();
    let channels = load::connections(running.gateway, args.connections).await?;
    // Name, method, request, goal (p99, ms), and whether it is also
    // measured with one caller.
    let queries: Vec<(&str, &str, Vec<u8>, f64, bool)> = vec![
        (
            "ListTasks page of 50, agency filter",
            LIST_TASKS,
            apb::ListTasksRequest {
                page_size: 50,
                filter: r#"agency = "agencies/ag-17""#.into(),
                ..Default::default()
            }
            .encode_to_vec(),
            20.0,
            false,
        ),
        (
            "ListTasks page of 50, lead + stage",
            LIST_TASKS,
            apb::ListTasksRequest {
                page_size: 50,
                filter: r#"lead = "agencies/ag-42" AND stage = IN_PROGRESS"#.into(),
                ..Default::default()
            }
            .encode_to_vec(),
            20.0,
            false,
        ),
        (
            "ListTasks page of 50, no filter",
            LIST_TASKS,
            apb::ListTasksRequest {
                page_size: 50,
                ..Default::default()
            }
            .encode_to_vec(),
            20.0,
            false,
        ),
        (
            "ListTasks page of 50, directive",
            LIST_TASKS,
            apb::ListTasksRequest {
                page_size: 50,
                filter: r#"directive = "directives/1234""#.into(),
                ..Default::default()
            }
            .encode_to_vec(),
            20.0,
            false,
        ),
        (
            "GetTaskStatistics, one agency",
            STATISTICS,
            apb::GetTaskStatisticsRequest {
                filter: r#"agency = "agencies/ag-17""#.into(),
                ..Default::default()
            }
            .encode_to_vec(),
            50.0,
            false,
        ),
        (
            "GetTaskStatistics, province-wide",
            STATISTICS,
            apb::GetTaskStatisticsRequest::default().encode_to_vec(),
            50.0,
            // Also asked by one caller at a time: the floor that callers
            // asking at once share (`shared_reads` in the assignments
            // service).
            true,
        ),
    ];
    let mut rows = vec![
        Row::info(
            S,
            "GetTaskStatistics province statement, SQL alone, median: now / before 0106",
            now,
            unsummed,
            "ms",
        ),
        Row::info(
            S,
            "GetTaskStatistics province statement, SQL alone, median: now / before 0105",
            now,
            before,
            "ms",
        ),
    ];
    for (name, path, body, goal, one_caller_too) in queries {
        let call = RawCall {
            body: Bytes::from(body),
            ..RawCall::new(path, &apb::ListTasksRequest::default(), &bearer(&token))
        };
        call.send(&channels[0])
            .await
            .with_context(|| format!("{name} through the gateway"))?;
        let workers = args.concurrency.min(4);
        let callers = if one_caller_too {
            vec![1, workers]
        } else {
            vec![workers]
        };
        for workers in callers {
            let stats = closed_loop(&channels, &call, workers, args.duration_resolved, None).await;
            println!("  {name:<40} c={workers} {}", stats.line());
            rows.push(Row::new(
                S,
                format!("{name}: p99 (c={workers})"),
                stats.ms(0.99),
                goal,
                "ms",
                &format!("< {goal} ms"),
                |o, g, _| o < g,
            ));
        }
    }
    // The plans of the statements the service sends (as `storage::tasks::list`
    // and `storage::statistics::figures_from_counters` build them, binds
    // written in) next to hand-written SQL.
    let plans: [(&str, String, &str); 3] = [
        (
            "agency page",
            "SELECT id, title, lead_agencies, due_date, stage FROM assignments.task_agencies a \
             JOIN assignments.tasks ON tasks.id = a.task_id WHERE a.agency = 'ag-17' \
             ORDER BY a.due_key, a.task_id LIMIT 51"
                .into(),
            "SELECT t.* FROM assignments.tasks t JOIN assignments.task_agencies a ON a.task_id = t.id \
             WHERE a.agency = 'ag-17' ORDER BY a.due_key, a.task_id LIMIT 51",
        ),
        (
            "lead + stage page",
            "SELECT id, title, lead_agencies, due_date, stage FROM assignments.task_agencies a \
             JOIN assignments.tasks ON tasks.id = a.task_id WHERE a.agency = 'ag-42' AND a.leads \
             AND a.task_stage = 'IN_PROGRESS' ORDER BY a.due_key, a.task_id LIMIT 51"
                .into(),
            "SELECT t.* FROM assignments.tasks t JOIN assignments.task_agencies a ON a.task_id = t.id \
             WHERE a.agency = 'ag-42' AND a.leads AND a.task_stage = 'IN_PROGRESS' \
             ORDER BY a.due_key, a.task_id LIMIT 51",
        ),
        (
            "province statistics",
            service_statistics,
            "SELECT lead_agency, SUM(tasks) FILTER (WHERE stage <> 'WITHDRAWN'), \
             SUM(tasks) FILTER (WHERE stage = 'COMPLETED') FROM assignments.task_tally_totals \
             WHERE scope = '' GROUP BY lead_agency",
        ),
    ];
    // For comparison: the agency page as sent before `task_agencies`.
    println!("  EXPLAIN agency page, previous statement (arrays, GIN):");
    for line in plan(&cluster, crate::SERVICE_AGENCY_PAGE).await? {
        println!("    {line}");
    }
    for (what, service_sql, hand_sql) in &plans {
        for (label, sql) in [
            ("service", service_sql.as_str()),
            ("hand-written", hand_sql),
        ] {
            println!("  EXPLAIN {what}, {label}:");
            for line in plan(&cluster, sql).await? {
                println!("    {line}");
            }
        }
    }
    running.stop().await;
    Ok(rows)
}

/// A server in a child process (this executable in one of its hidden
/// `serve-*` modes): killed when dropped, and it exits by itself when its
/// stdin (held here) closes, so it does not outlive this process either.
struct Child {
    child: tokio::process::Child,
    pid: u32,
    addr: std::net::SocketAddr,
    extra: String,
}

impl Child {
    /// Kills the child and waits for it to go.
    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Starts this executable with `args` and waits for its `READY <addr>
/// [extra]` line.
async fn spawn_child(args: &[String]) -> anyhow::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new(exe)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("child pid")?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .context("child did not start in time")??
        .context("child exited")?;
    let mut parts = line.split_whitespace().skip(1);
    let addr = parts.next().context("child address")?.parse()?;
    let extra = parts.next().unwrap_or("").to_string();
    Ok(Child {
        child,
        pid,
        addr,
        extra,
    })
}

/// The stock tonic echo server in a child process.
async fn echo_child() -> anyhow::Result<Child> {
    spawn_child(&["serve-echo".into()]).await
}

/// A benchmark gateway (`env::start_gateway`, `env::bench_extras`) in a
/// child process, every route going to `backend`.
async fn gateway_child(backend: std::net::SocketAddr) -> anyhow::Result<Child> {
    spawn_child(&[
        "serve-gateway".into(),
        "--backend".into(),
        backend.to_string(),
    ])
    .await
}

/// Opens `streams` server streams over `streams / per_conn` connections;
/// each counts the messages it receives into `received`, and its first
/// checkpoint (caught up with the log) into `caught_up`.
async fn open_streams(
    addr: std::net::SocketAddr,
    call: &RawCall,
    streams: usize,
    per_conn: usize,
    received: Arc<AtomicU64>,
    caught_up: Arc<AtomicU64>,
    limit: Duration,
) -> anyhow::Result<(usize, Duration)> {
    let started = Instant::now();
    let channels = load::connections(addr, streams.div_ceil(per_conn)).await?;
    let opened = Arc::new(AtomicU64::new(0));
    let mut joins = tokio::task::JoinSet::new();
    for s in 0..streams {
        let channel = channels[s / per_conn].clone();
        let call = call.clone();
        let received = received.clone();
        let caught_up = caught_up.clone();
        let opened = opened.clone();
        joins.spawn(async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            if grpc.ready().await.is_err() {
                return;
            }
            let mut request = tonic::Request::new(call.body.clone());
            for (k, v) in call.metadata.iter() {
                request.metadata_mut().insert(k.clone(), v.clone());
            }
            let Ok(response) = grpc
                .server_streaming(request, call.path.clone(), load::RawCodec)
                .await
            else {
                return;
            };
            opened.fetch_add(1, Ordering::Relaxed);
            let mut stream = response.into_inner();
            let mut first_checkpoint = true;
            while let Ok(Some(message)) = stream.message().await {
                // Checkpoints (field 2 of SubscribeResponse) are not messages.
                if message.first() != Some(&0x12) {
                    received.fetch_add(1, Ordering::Relaxed);
                } else if first_checkpoint {
                    first_checkpoint = false;
                    caught_up.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        // Pace the opening a little so the server is not handed 20,000 at once.
        if s % 500 == 499 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    while (opened.load(Ordering::Relaxed) as usize) < streams && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let open = opened.load(Ordering::Relaxed) as usize;
    // The streams live as long as the process (the children are killed after).
    std::mem::forget(joins);
    Ok((open, started.elapsed()))
}

async fn wait_for(received: &AtomicU64, target: u64, limit: Duration) -> (u64, Duration) {
    let started = Instant::now();
    while received.load(Ordering::Relaxed) < target && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (received.load(Ordering::Relaxed), started.elapsed())
}

/// Waits for `target` messages; returns how many arrived and the time from
/// the first to the last (the fan-out itself, without the time it took the
/// server to notice the burst).
async fn wait_for_spread(received: &AtomicU64, target: u64, limit: Duration) -> (u64, Duration) {
    let started = Instant::now();
    while received.load(Ordering::Relaxed) == 0 && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (got, took) = wait_for(received, target, limit.saturating_sub(started.elapsed())).await;
    (got, took)
}

/// Fan-out bursts, summed.
#[derive(Default)]
struct FanOut {
    deliveries: u64,
    spread: Duration,
    cpu: f64,
    bursts: u32,
}

impl FanOut {
    /// One burst, which `start` sets off: until `expected` deliveries have
    /// arrived (or `limit`), with the server's `cpu` before and after; then
    /// a pause, so that bursts do not overlap.
    async fn measure(
        &mut self,
        received: &AtomicU64,
        expected: u64,
        cpu: impl Fn() -> f64,
        start: impl std::future::Future<Output = anyhow::Result<()>>,
        limit: Duration,
    ) -> anyhow::Result<()> {
        received.store(0, Ordering::Relaxed);
        let cpu0 = cpu();
        start.await?;
        let (deliveries, spread) = wait_for_spread(received, expected, limit).await;
        self.deliveries += deliveries;
        self.spread += spread;
        self.cpu += cpu() - cpu0;
        self.bursts += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(())
    }

    fn rate(&self) -> f64 {
        self.deliveries as f64 / self.cpu.max(0.01)
    }

    fn mean_spread(&self) -> f64 {
        self.spread.as_secs_f64() / f64::from(self.bursts.max(1))
    }
}

impl std::fmt::Display for FanOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} deliveries in {} bursts, {:.3} s first to last on average, {:.2} CPU-s",
            self.deliveries,
            self.bursts,
            self.mean_spread(),
            self.cpu
        )
    }
}

/// Scenario 4: Subscribers: idle notification streams' memory and a fan-out burst,
/// against a minimal tonic broadcast server (each in its own process).
pub async fn subscribers(args: &Args) -> anyhow::Result<Vec<Row>> {
    const S: &str = "4 subscribers";
    let streams = if args.quick { 1_000 } else { 20_000 };
    let burst: u64 = if args.quick { 10 } else { 20 };
    // One burst is about a fifth of a CPU-second, near the resolution of
    // /proc's CPU times (10 ms) and within the machine's noise: the two
    // servers take turns, several bursts each, and each figure is a sum.
    let bursts: u32 = if args.quick { 2 } else { 6 };
    let per_conn = 100;
    let limit = Duration::from_secs(60);

    // The reference.
    let reference = spawn_child(&["serve-broadcast".into()]).await?;
    let rss0 = load::rss_kib(reference.pid);
    let received_ref = Arc::new(AtomicU64::new(0));
    let call = RawCall::new(SUBSCRIBE_PATH, &npb::SubscribeRequest::default(), &[]);
    let (open_ref, _) = open_streams(
        reference.addr,
        &call,
        streams,
        per_conn,
        received_ref.clone(),
        Arc::new(AtomicU64::new(0)),
        limit,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ref_per_stream = (load::rss_kib(reference.pid).saturating_sub(rss0)) as f64 * 1024.0
        / open_ref.max(1) as f64;
    println!(
        "  broadcast reference: {open_ref} streams, {:.0} B/stream",
        ref_per_stream
    );
    // dondoc's notification service.
    let cluster = Cluster::start(false).await?;
    let options = cluster.cluster.options();
    let ours = spawn_child(&[
        "serve-notifications".into(),
        options.socket_dir.display().to_string(),
    ])
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss0 = load::rss_kib(ours.pid);
    let received = Arc::new(AtomicU64::new(0));
    let call = RawCall::new(
        SUBSCRIBE,
        &npb::SubscribeRequest::default(),
        &[(dondoc_identity::ASSERTION_HEADER, ours.extra.clone())],
    );
    let caught_up = Arc::new(AtomicU64::new(0));
    let (open_ours, open_took) = open_streams(
        ours.addr,
        &call,
        streams,
        per_conn,
        received.clone(),
        caught_up.clone(),
        limit,
    )
    .await?;
    // Idle means caught up: each stream has read the log and sent its
    // first checkpoint.
    let (ready, ready_took) = wait_for(&caught_up, open_ours as u64, limit).await;
    println!(
        "  dondoc notifications: {ready} streams caught up {:.1} s after opening",
        ready_took.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ours_per_stream =
        (load::rss_kib(ours.pid).saturating_sub(rss0)) as f64 * 1024.0 / open_ours.max(1) as f64;
    println!(
        "  dondoc notifications: {open_ours} streams opened in {:.1} s, {:.0} B/stream",
        open_took.as_secs_f64(),
        ours_per_stream
    );
    let idle_cpu0 = load::process_cpu_seconds(ours.pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_cpu = (load::process_cpu_seconds(ours.pid) - idle_cpu0) / 2.0;
    println!(
        "  dondoc notifications: idle CPU {:.2} cores for {open_ours} idle streams",
        idle_cpu
    );
    let postmaster = load::postmaster_pid(&options.data_dir).context("postmaster pid")?;
    let cpu =
        || load::process_tree_cpu_seconds(ours.pid) + load::process_tree_cpu_seconds(postmaster);
    let mut admin = cluster.connect().await?;
    let publish = RawCall::new(PUBLISH_PATH, &npb::SubscribeRequest::default(), &[]);
    let ch = load::connections(reference.addr, 1).await?;
    let (mut fan_ref, mut fan_ours) = (FanOut::default(), FanOut::default());
    let insert = "INSERT INTO notifications.notifications (notification_id, dedupe_key, kind, recipient, task_id, \
           directive_number, lead_agency, title, body, notified_at) \
         SELECT gen_random_uuid(), 'bench:' || gen_random_uuid(), 'DUE_SOON', 'so-bench', g, '534/TB-UBND', 'so-bench', \
           'Nhiệm vụ sắp đến hạn', 'Nhiệm vụ \"Tham mưu trình HĐND tỉnh Nghị quyết hỗ trợ\" (534/TB-UBND) đến hạn ngày 04/12/2026, còn 3 ngày làm việc.', now() \
         FROM generate_series(1, $1::bigint) g";
    let reference_cpu = || load::process_tree_cpu_seconds(reference.pid);
    for _ in 0..bursts {
        let publish = async {
            let count = Bytes::copy_from_slice(&(burst as u32).to_be_bytes());
            publish.send_with(&ch[0], count).await?;
            Ok(())
        };
        fan_ref
            .measure(
                &received_ref,
                open_ref as u64 * burst,
                reference_cpu,
                publish,
                limit,
            )
            .await?;
        let write = async {
            sqlx::query(insert)
                .bind(burst as i64)
                .execute(&mut admin)
                .await?;
            Ok(())
        };
        fan_ours
            .measure(&received, open_ours as u64 * burst, cpu, write, limit)
            .await?;
    }
    println!("  broadcast reference: {fan_ref}");
    println!("  dondoc notifications (server and PostgreSQL): {fan_ours}");
    drop(reference.child);
    drop(ours.child);
    Ok(vec![
        Row::info(
            S,
            "idle streams open",
            open_ours as f64,
            open_ref as f64,
            "streams",
        ),
        Row::new(
            S,
            "memory per idle stream",
            ours_per_stream,
            ref_per_stream,
            "bytes",
            "<= 1.5x broadcast",
            |_, _, r| r <= 1.5,
        ),
        Row::info(S, "idle CPU of the stream server", idle_cpu, 0.0, "cores"),
        Row::info(
            S,
            format!(
                "fan-out: burst of {burst} to every stream, first to last delivery (mean of {bursts})"
            ),
            fan_ours.mean_spread(),
            fan_ref.mean_spread(),
            "s",
        ),
        Row::new(
            S,
            format!("fan-out deliveries per CPU-second ({bursts} bursts)"),
            fan_ours.rate(),
            fan_ref.rate(),
            "msg/core-s",
            ">= 0.8x broadcast",
            |_, _, r| r >= 0.8,
        ),
    ])
}

/// Scenario 5: Reminder pipeline: reminders falling due at once, until the last one
/// reaches its stream subscriber; claims against pgbench's SKIP LOCKED claim.
pub async fn reminders(args: &Args) -> anyhow::Result<Vec<Row>> {
    const S: &str = "5 reminders";
    let jobs: i64 = if args.quick { 5_000 } else { 100_000 };
    let cluster = Cluster::start(false).await?;
    let running = Running::start(&cluster).await?;
    let token = token("users/bench-agency", "so-bench", Role::Agency);
    let received = Arc::new(AtomicU64::new(0));
    let call = RawCall::new(
        SUBSCRIBE,
        &npb::SubscribeRequest::default(),
        &bearer(&token),
    );
    let (open, _) = open_streams(
        running.gateway,
        &call,
        1,
        1,
        received.clone(),
        Arc::new(AtomicU64::new(0)),
        Duration::from_secs(10),
    )
    .await?;
    anyhow::ensure!(
        open == 1,
        "the subscription through the gateway did not open"
    );
    let mut admin = cluster.connect().await?;
    let started = Instant::now();
    let mut tx = sqlx::Connection::begin(&mut admin).await?;
    sqlx::query(
        "INSERT INTO notifications.task_deadlines (task_id, title, directive_number, reference, lead_agencies, \
           assigner, due_date, deadline_version, open) \
         SELECT g, 'Nhiệm vụ số ' || g, '534/TB-UBND', 'II.4', ARRAY['so-bench'], 'vp-ubnd', \
           (now() AT TIME ZONE 'Asia/Ho_Chi_Minh')::date, 1, true FROM generate_series(1, $1::bigint) g",
    )
    .bind(jobs)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO notifications.reminder_jobs (task_id, key, kind, deadline_version, fire_at) \
         SELECT g, 'due-today', 'DUE_TODAY', 1, now() - interval '1 minute' FROM generate_series(1, $1::bigint) g",
    )
    .bind(jobs)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let inserted = started.elapsed();
    let (got, took) = wait_for(
        &received,
        jobs as u64,
        Duration::from_secs(60).min(args.duration_resolved * 6),
    )
    .await;
    let done: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notifications.reminder_jobs WHERE state <> 'PENDING'",
    )
    .fetch_one(&mut admin)
    .await?;
    let service_rate = done as f64 / took.as_secs_f64();
    println!(
        "  {jobs} jobs inserted in {:.2} s; {got} reached the subscriber in {:.2} s; {done} jobs handled ({service_rate:.0}/s)",
        inserted.as_secs_f64(),
        took.as_secs_f64()
    );
    running.stop().await;

    // The peer: the same claim statement, batch 100, on a copy of the table.
    sqlx::query("CREATE SCHEMA bench_peer")
        .execute(&mut admin)
        .await?;
    sqlx::query(
        "CREATE TABLE bench_peer.reminder_jobs (LIKE notifications.reminder_jobs INCLUDING ALL)",
    )
    .execute(&mut admin)
    .await?;
    sqlx::query("CREATE SEQUENCE bench_peer.reminder_fencing")
        .execute(&mut admin)
        .await?;
    sqlx::query(
        "INSERT INTO bench_peer.reminder_jobs (id, task_id, key, kind, deadline_version, fire_at) \
         SELECT g, g, 'due-today', 'DUE_TODAY', 1, now() - interval '1 minute' FROM generate_series(1, $1::bigint) g",
    )
    .bind(jobs)
    .execute(&mut admin)
    .await?;
    sqlx::query("ANALYZE bench_peer.reminder_jobs")
        .execute(&mut admin)
        .await?;
    let script = "WITH claimed AS (UPDATE bench_peer.reminder_jobs SET lease_token = nextval('bench_peer.reminder_fencing'), \
         lease_until = clock_timestamp() + make_interval(secs => 60), attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM bench_peer.reminder_jobs WHERE state = 'PENDING' AND fire_at <= now() \
           AND (lease_until IS NULL OR lease_until < clock_timestamp()) \
           ORDER BY fire_at, id LIMIT 100 FOR UPDATE SKIP LOCKED) \
         RETURNING id, task_id, key, kind, deadline_version, fire_at, lease_token) \
         SELECT * FROM claimed ORDER BY fire_at, id;\n";
    let pg = peers::pgbench(
        &cluster.pgbench_target("postgres"),
        script,
        1,
        args.duration_resolved.min(Duration::from_secs(10)),
    )
    .await?;
    let claimed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bench_peer.reminder_jobs WHERE lease_token IS NOT NULL",
    )
    .fetch_one(&mut admin)
    .await?;
    // Each transaction claims 100 until the table runs out.
    let peer_rate = if claimed < jobs {
        pg.tps * 100.0
    } else {
        claimed as f64 / (claimed as f64 / 100.0 / pg.tps)
    };
    println!(
        "  pgbench claim batch 100: {:.0} claims/s ({claimed} claimed)",
        peer_rate
    );
    Ok(vec![
        Row::info(
            S,
            format!("{jobs} due at once: time until the last reaches its subscriber"),
            took.as_secs_f64(),
            f64::NAN,
            "s",
        ),
        Row::info(
            S,
            "reminders delivered to the subscriber",
            got as f64,
            jobs as f64,
            "msgs",
        ),
        Row::info(
            S,
            "jobs claimed+handled per second vs claim-only",
            service_rate,
            peer_rate,
            "jobs/s",
        ),
    ])
}

/// Scenario 6: Latency floor: one call at a time through the whole path against a
/// stock tonic echo server.
pub async fn latency(args: &Args) -> anyhow::Result<Vec<Row>> {
    const S: &str = "6 latency";
    // The echo and the gateway in front of it each in their own processes;
    // the suite and its gateway (which signs with the keys the suite
    // trusts) in this one.
    let echo = echo_child().await?;
    let echo_gw = gateway_child(echo.addr).await?;
    let cluster = Cluster::start(false).await?;
    let running = Running::start(&cluster).await?;
    let token = office_token();
    let ch_gw = load::connections(running.gateway, 1).await?;
    let created = RawCall::new(
        CREATE_TASK,
        &apb::CreateTaskRequest::default(),
        &bearer(&token),
    )
    .send_with(&ch_gw[0], create_task_request("latency", 0, 0))
    .await?;
    let task = apb::CreateTaskResponse::decode(created)?
        .task
        .context("task")?;
    let get = RawCall::new(
        GET_TASK,
        &apb::GetTaskRequest { name: task.name },
        &bearer(&token),
    );
    let echo_call = RawCall::new(
        ECHO_PATH,
        &dpb::GetAgencyRequest {
            name: "agencies/x".into(),
        },
        &bearer(&token),
    );
    let ch_echo = load::connections(echo.addr, 1).await?;
    let ch_echo_gw = load::connections(echo_gw.addr, 1).await?;
    let _ = closed_loop(&ch_echo, &echo_call, 1, Duration::from_millis(300), None).await;
    let _ = closed_loop(&ch_gw, &get, 1, Duration::from_millis(300), None).await;
    let _ = closed_loop(&ch_echo_gw, &echo_call, 1, Duration::from_millis(300), None).await;
    let stock = closed_loop(&ch_echo, &echo_call, 1, args.duration_resolved, None).await;
    println!("  stock tonic echo          {}", stock.line());
    let via_gw = closed_loop(&ch_echo_gw, &echo_call, 1, args.duration_resolved, None).await;
    println!("  gateway -> echo           {}", via_gw.line());
    let whole = closed_loop(&ch_gw, &get, 1, args.duration_resolved, None).await;
    println!("  gateway -> GetTask -> PG  {}", whole.line());
    running.stop().await;
    echo_gw.stop().await;
    echo.stop().await;
    let e = stock.ms(0.5);
    let budget = 1.3 * e + e;
    Ok(vec![
        Row::info(S, "median, stock tonic echo (one hop)", e, f64::NAN, "ms"),
        Row::new(
            S,
            "median, gateway -> echo (two hops)",
            via_gw.ms(0.5),
            budget,
            "ms",
            "<= 1.3x echo + one hop",
            |o, b, _| o <= b,
        ),
        Row::new(
            S,
            "median, gateway -> GetTask -> PostgreSQL",
            whole.ms(0.5),
            budget,
            "ms",
            "<= 1.3x echo + one hop",
            |o, b, _| o <= b,
        ),
        Row::info(
            S,
            "p99, gateway -> GetTask -> PostgreSQL",
            whole.ms(0.99),
            stock.ms(0.99),
            "ms",
        ),
    ])
}
