//! The suite on loopback for end-to-end tests: a fresh database, the three
//! services and the gateway on port-0 listeners, a manual clock, and
//! clients that go through the gateway with real bearer tokens.

#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use dondoc::suite::{RolePasswords, Suite, SuiteConfig, SuiteKeys, bootstrap_all, migrate_all};
use dondoc_events::FollowSettings;
use dondoc_gateway::JwtConfig;
use dondoc_identity::{Principal, Role};
use dondoc_testing::{TEST_ROLE_PASSWORD, TestDatabase};
use dondoc_time::Clock;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::Channel;

pub use dondoc_contracts as contracts;

/// A running suite for one test.
pub struct TestSuite {
    /// The suite.
    pub suite: Suite,
    /// Its database.
    pub db: TestDatabase,
    /// The clock every service reads.
    pub clock: Clock,
    /// Token settings.
    pub jwt: JwtConfig,
}

fn passwords() -> RolePasswords {
    RolePasswords {
        directives: TEST_ROLE_PASSWORD.into(),
        assignments: TEST_ROLE_PASSWORD.into(),
        notifications: TEST_ROLE_PASSWORD.into(),
    }
}

/// 08:00 in Asia/Ho_Chi_Minh on a date, as an instant.
pub fn local_8am(year: i32, month: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, 1, 0, 0).unwrap()
}

impl TestSuite {
    /// Starts the suite on a fresh database with the clock at `now`.
    pub async fn start(now: DateTime<Utc>) -> TestSuite {
        let scheduler = dondoc_notifications::SchedulerSettings {
            poll_interval: Duration::from_millis(100),
            ..Default::default()
        };
        TestSuite::start_with(now, scheduler, SuiteKeys::generate()).await
    }

    /// Starts the suite like [`TestSuite::start`], with the notifications
    /// worker's settings and the signing keys given (so that a separate
    /// notifications process can join it with the same identity).
    pub async fn start_with(
        now: DateTime<Utc>,
        scheduler: dondoc_notifications::SchedulerSettings,
        keys: SuiteKeys,
    ) -> TestSuite {
        let db = dondoc_testing::database("suite", |admin| async move {
            bootstrap_all(&admin, &passwords()).await.unwrap();
            migrate_all(&admin, &passwords()).await.unwrap();
        })
        .await;
        let clock = Clock::manual(now);
        let jwt = JwtConfig {
            hs256_secret: "end-to-end-test-secret".into(),
            issuer: "dondoc".into(),
            audience: "dondoc".into(),
        };
        let suite = Suite::start(SuiteConfig {
            admin: db.admin_options(),
            passwords: passwords(),
            keys,
            jwt: jwt.clone(),
            gateway_listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            service_host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            clock: clock.clone(),
            follow: FollowSettings {
                poll_interval: Duration::from_millis(100),
                checkpoint_interval: Duration::from_millis(300),
                batch: 256,
                ..Default::default()
            },
            deadline_policy: Default::default(),
            reminder_policy: Default::default(),
            scheduler,
            shutdown_grace: Duration::from_secs(5),
        })
        .await
        .expect("the suite starts");
        TestSuite {
            suite,
            db,
            clock,
            jwt,
        }
    }

    /// A bearer token for a principal.
    pub fn token(&self, subject: &str, agency: Option<&str>, roles: &[Role]) -> String {
        dondoc_gateway::mint_token(
            &self.jwt,
            &Principal {
                subject: subject.into(),
                agency: agency.map(str::to_string),
                roles: roles.to_vec(),
            },
            Duration::from_secs(3600),
        )
    }

    /// A channel to the gateway.
    pub async fn gateway(&self) -> Channel {
        channel(self.suite.gateway).await
    }
}

/// A channel to an address.
pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect")
}

/// Adds `authorization: Bearer …` to every call.
#[derive(Clone)]
pub struct Bearer(pub Option<MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    /// With a token.
    pub fn new(token: &str) -> Self {
        Self(Some(format!("Bearer {token}").parse().unwrap()))
    }

    /// Without one.
    pub fn none() -> Self {
        Self(None)
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub use dondoc_testing::eventually;
