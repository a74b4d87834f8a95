//! Operations end to end: a rolling restart of a service loses no
//! acknowledged request and doubles none (clients retry UNAVAILABLE with the
//! same `request_id`); the drain lets a slow call started before shutdown
//! finish; each service serves Prometheus metrics and readiness on its
//! admin listener, and readiness follows the upstream stream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use dondoc_contracts::directives::v1::agency_service_client::AgencyServiceClient;
use dondoc_contracts::directives::v1::{
    Agency, AgencyKind, CreateAgencyRequest, ListAgenciesRequest,
};
use dondoc_e2e::{Bearer, TestSuite, eventually, local_8am};
use dondoc_identity::Role;
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Agencies = AgencyServiceClient<InterceptedService<Channel, Bearer>>;

fn request(i: usize) -> CreateAgencyRequest {
    CreateAgencyRequest {
        agency: Some(Agency {
            code: format!("xa-{i:03}"),
            display_name: format!("UBND xã số {i}"),
            kind: AgencyKind::Commune as i32,
            ..Default::default()
        }),
        request_id: format!("create-xa-{i:03}"),
    }
}

/// Sends `request(i)` until it is acknowledged, retrying every outcome
/// that leaves the result unknown with the same request_id. Returns how
/// many attempts it took.
async fn create_until_acknowledged(client: &mut Agencies, i: usize) -> usize {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match client.create_agency(request(i)).await {
            Ok(response) => {
                let agency = response.into_inner().agency.unwrap();
                assert_eq!(agency.code, format!("xa-{i:03}"));
                return attempts;
            }
            Err(status)
                if matches!(
                    status.code(),
                    Code::Unavailable | Code::Cancelled | Code::Unknown | Code::DeadlineExceeded
                ) =>
            {
                assert!(attempts < 400, "request {i} never acknowledged: {status:?}");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Err(status) => panic!("request {i} refused: {status:?}"),
        }
    }
}

async fn all_codes(client: &mut Agencies) -> Vec<String> {
    let mut codes = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_agencies(ListAgenciesRequest {
                page_size: 100,
                page_token: page_token.clone(),
                filter: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        codes.extend(page.agencies.into_iter().map(|a| a.code));
        if page.next_page_token.is_empty() {
            return codes;
        }
        page_token = page.next_page_token;
    }
}

/// GET `path` on an admin listener: (status code, body).
async fn admin_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: admin\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_loses_no_acknowledged_request_and_doubles_none() {
    let mut t = TestSuite::start(local_8am(2024, 9, 2)).await;
    let token = t.token("users/van-phong", Some("vp-ubnd"), &[Role::Office]);
    let client = AgencyServiceClient::with_interceptor(t.gateway().await, Bearer::new(&token));
    const N: usize = 120;
    let writer = {
        let mut client = client.clone();
        tokio::spawn(async move {
            let mut retried = 0;
            for i in 0..N {
                retried += create_until_acknowledged(&mut client, i).await - 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            retried
        })
    };
    // Restart the directives service twice while the client writes.
    let assignments_admin = t.suite.admin.assignments.unwrap();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let restart = t.suite.restart_directives(Duration::from_millis(600));
        tokio::pin!(restart);
        // While directives is down, the assignments consumer reports its
        // upstream lost.
        let lost = async {
            eventually(Duration::from_secs(5), || async {
                let (_, body) = admin_get(assignments_admin, "/metrics").await;
                (metric(&body, "dondoc_consumer_connected{source=\"directives\"}") == Some(0.0))
                    .then_some(())
            })
            .await
        };
        let (restarted, ()) = tokio::join!(&mut restart, lost);
        restarted.unwrap();
    }
    let retried = writer.await.unwrap();
    assert!(retried > 0, "the restarts were seen by the client");

    let mut client = client;
    let codes = all_codes(&mut client).await;
    let unique: BTreeSet<&String> = codes.iter().collect();
    assert_eq!(unique.len(), codes.len(), "no agency is doubled");
    for i in 0..N {
        assert!(
            unique.contains(&format!("xa-{i:03}")),
            "acknowledged agency xa-{i:03} is kept"
        );
    }
    assert_eq!(codes.len(), N);
    // A retry after the restart still gets the first answer.
    let again = client.create_agency(request(7)).await.unwrap().into_inner();
    assert_eq!(again.agency.unwrap().code, "xa-007");

    // The consumer reconnected: ready and connected again.
    eventually(Duration::from_secs(10), || async {
        let (_, body) = admin_get(assignments_admin, "/metrics").await;
        (metric(&body, "dondoc_consumer_connected{source=\"directives\"}") == Some(1.0))
            .then_some(())
    })
    .await;
    let (status, _) = admin_get(assignments_admin, "/readyz").await;
    assert_eq!(status, 200);
    t.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_a_slow_call_started_before_it() {
    let mut t = TestSuite::start(local_8am(2024, 9, 2)).await;
    let token = t.token("users/van-phong", Some("vp-ubnd"), &[Role::Office]);
    let mut client = AgencyServiceClient::with_interceptor(t.gateway().await, Bearer::new(&token));
    // Warm up: the table exists and the connection is open.
    create_until_acknowledged(&mut client, 0).await;

    // Hold the agencies table: the next creation waits for it.
    let mut admin = sqlx::PgConnection::connect_with(&t.db.admin_options())
        .await
        .unwrap();
    let mut lock = admin.begin().await.unwrap();
    sqlx::query("LOCK TABLE directives.agencies IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let slow = {
        let mut client = client.clone();
        tokio::spawn(async move { client.create_agency(request(1)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!slow.is_finished(), "the call is waiting for the lock");

    // SIGTERM: the drain must wait for the slow call.
    {
        let mut restart = Box::pin(t.suite.restart_directives(Duration::ZERO));
        tokio::select! {
            _ = &mut restart => panic!("the service stopped before its in-flight call finished"),
            _ = tokio::time::sleep(Duration::from_millis(700)) => {}
        }
        assert!(!slow.is_finished());
        lock.commit().await.unwrap();
        let answered = slow
            .await
            .unwrap()
            .expect("the slow call completes during the drain");
        assert_eq!(answered.into_inner().agency.unwrap().code, "xa-001");
        restart.await.unwrap();
    }

    let codes = all_codes(&mut client).await;
    assert!(codes.contains(&"xa-001".to_owned()));
    t.suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_serves_metrics_and_readiness() {
    let t = TestSuite::start(local_8am(2024, 9, 2)).await;
    let token = t.token("users/van-phong", Some("vp-ubnd"), &[Role::Office]);
    let mut client = AgencyServiceClient::with_interceptor(t.gateway().await, Bearer::new(&token));
    create_until_acknowledged(&mut client, 1).await;
    let duplicate = client
        .create_agency(CreateAgencyRequest {
            request_id: String::new(),
            ..request(1)
        })
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists);

    let admin = t.suite.admin;
    let directives = admin.directives.unwrap();
    let (status, body) = admin_get(directives, "/metrics").await;
    assert_eq!(status, 200);
    let method = "/dondoc.directives.v1.AgencyService/CreateAgency";
    assert_eq!(
        metric(
            &body,
            &format!("dondoc_rpc_requests_total{{method=\"{method}\",code=\"OK\"}}")
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        metric(
            &body,
            &format!("dondoc_rpc_requests_total{{method=\"{method}\",code=\"ALREADY_EXISTS\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &body,
            &format!("dondoc_rpc_duration_seconds_count{{method=\"{method}\"}}")
        ),
        Some(2.0)
    );
    assert!(metric(&body, "dondoc_db_pool_connections{state=\"idle\"}").is_some());
    assert!(metric(&body, "dondoc_db_pool_max_connections").is_some());
    // The assignments consumer follows directives: one open stream.
    assert_eq!(
        metric(
            &body,
            "dondoc_rpc_active_streams{method=\"/dondoc.directives.v1.DirectiveEventService/WatchEvents\"}"
        ),
        Some(1.0)
    );
    assert_eq!(metric(&body, "dondoc_ready"), Some(1.0));

    let (_, body) = admin_get(admin.assignments.unwrap(), "/metrics").await;
    assert!(metric(&body, "dondoc_consumer_lag_seconds{source=\"directives\"}").is_some());
    let (_, body) = admin_get(admin.notifications.unwrap(), "/metrics").await;
    assert_eq!(
        metric(&body, "dondoc_reminder_backlog"),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        metric(&body, "dondoc_reminder_oldest_due_age_seconds"),
        Some(0.0)
    );
    assert!(metric(&body, "dondoc_consumer_connected{source=\"assignments\"}").is_some());

    for addr in [
        directives,
        admin.assignments.unwrap(),
        admin.notifications.unwrap(),
    ] {
        assert_eq!(admin_get(addr, "/healthz").await.0, 200);
        assert_eq!(admin_get(addr, "/readyz").await.0, 200);
    }

    // The directives service loses its database: its role may no longer
    // connect to this database, and its connections are ended. It turns
    // unready (still live); the other services, whose database access is
    // untouched, stay ready. The database back, it is ready again.
    let mut pg = sqlx::PgConnection::connect_with(&t.db.admin_options())
        .await
        .unwrap();
    let grants = |sql: &'static str| format!("{sql} ON DATABASE \"{}\"", t.db.name);
    for statement in [
        format!("{} FROM PUBLIC", grants("REVOKE CONNECT")),
        format!(
            "{} TO dondoc_assignments, dondoc_notifications",
            grants("GRANT CONNECT")
        ),
    ] {
        sqlx::query(&statement).execute(&mut pg).await.unwrap();
    }
    sqlx::query(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
         WHERE datname = current_database() AND usename = 'dondoc_directives'",
    )
    .execute(&mut pg)
    .await
    .unwrap();
    let readyz = |addr: SocketAddr| async move { admin_get(addr, "/readyz").await };
    let (_, reason) = eventually(Duration::from_secs(15), || async move {
        let (status, body) = readyz(directives).await;
        (status == 503).then_some(((), body))
    })
    .await;
    assert!(reason.contains("database unreachable"), "{reason}");
    assert_eq!(admin_get(directives, "/healthz").await.0, 200, "still live");
    let (_, body) = admin_get(directives, "/metrics").await;
    assert_eq!(metric(&body, "dondoc_ready"), Some(0.0));
    for addr in [admin.assignments.unwrap(), admin.notifications.unwrap()] {
        assert_eq!(readyz(addr).await.0, 200);
    }
    sqlx::query(&format!("{} TO PUBLIC", grants("GRANT CONNECT")))
        .execute(&mut pg)
        .await
        .unwrap();
    eventually(Duration::from_secs(15), || async move {
        (readyz(directives).await.0 == 200).then_some(())
    })
    .await;
    pg.close().await.unwrap();
    t.suite.stop().await.unwrap();
}
