//! One structured access-log line per call, with the principal, the method,
//! the status code, the latency and the caller's request id.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dondoc_contracts::directives::v1::agency_service_client::AgencyServiceClient;
use dondoc_contracts::directives::v1::directive_event_service_client::DirectiveEventServiceClient;
use dondoc_contracts::directives::v1::{GetAgencyRequest, WatchEventsRequest};
use dondoc_identity::Role;
use tonic::Request;

use support::{start, with_token};

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The access-log lines logged so far, as JSON.
    fn access_lines(&self) -> Vec<serde_json::Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|v| v["target"] == "dondoc_gateway::access")
            .collect()
    }

    /// Waits for the line of the call with `request_id`.
    async fn line_for(&self, request_id: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let lines: Vec<_> = self
                .access_lines()
                .into_iter()
                .filter(|v| v["fields"]["request_id"] == request_id)
                .collect();
            assert!(
                lines.len() <= 1,
                "more than one line for {request_id}: {lines:?}"
            );
            if let Some(line) = lines.into_iter().next() {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no access-log line for {request_id}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn with_request_id<T>(mut request: Request<T>, id: &str) -> Request<T> {
    request
        .metadata_mut()
        .insert("x-request-id", id.parse().unwrap());
    request
}

#[tokio::test]
async fn every_call_leaves_one_access_log_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .init();

    let env = start().await;
    let token = env.token("users/nguyen-van-a", Some("vp-ubnd"), &[Role::Office]);
    let mut agencies = AgencyServiceClient::new(env.channel().await);

    let request = with_request_id(with_token(GetAgencyRequest::default(), &token), "ok-1");
    agencies.get_agency(request).await.unwrap();
    let line = captured.line_for("ok-1").await;
    assert_eq!(line["fields"]["principal"], "users/nguyen-van-a");
    assert_eq!(
        line["fields"]["method"],
        "/dondoc.directives.v1.AgencyService/GetAgency"
    );
    assert_eq!(line["fields"]["code"], "Ok");
    assert_eq!(line["fields"]["grpc_status"], 0);
    assert!(line["fields"]["latency_ms"].is_u64(), "{line}");

    let request = with_request_id(Request::new(GetAgencyRequest::default()), "anon-1");
    agencies.get_agency(request).await.unwrap_err();
    let line = captured.line_for("anon-1").await;
    assert_eq!(line["fields"]["principal"], "-");
    assert_eq!(line["fields"]["code"], "Unauthenticated");

    let admin = env.token("users/admin", None, &[Role::Admin]);
    let request = with_request_id(with_token(Default::default(), &admin), "invalid-1");
    agencies.create_agency(request).await.unwrap_err();
    let line = captured.line_for("invalid-1").await;
    assert_eq!(line["fields"]["code"], "InvalidArgument");

    let inspector = env.token("users/thanh-tra", None, &[Role::Inspector]);
    let request = with_request_id(
        with_token(WatchEventsRequest::default(), &inspector),
        "stream-1",
    );
    let mut stream = DirectiveEventServiceClient::new(env.channel().await)
        .watch_events(request)
        .await
        .unwrap()
        .into_inner();
    while stream.message().await.unwrap().is_some() {}
    let line = captured.line_for("stream-1").await;
    assert_eq!(line["fields"]["code"], "Ok");
    assert_eq!(
        line["fields"]["method"],
        "/dondoc.directives.v1.DirectiveEventService/WatchEvents"
    );
}
