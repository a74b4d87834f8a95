//! Traces and logs end to end, in a process of their own (the tracing
//! subscriber is global): telemetry is initialised once with an in-process
//! OTLP receiver as the endpoint and a JSON log writer that keeps every
//! line. One flow through the gateway (register agencies, create and issue
//! a directive; assignments turns its items into tasks) must give:
//!
//! * the gateway's server span, child of the client's `traceparent`;
//! * the directives service's server span in the same trace, child of the
//!   gateway's span, with `rpc.system=grpc` and the status code;
//! * a `db.transaction` span under the service span;
//! * the assignments consumer's apply span linked to the producer's trace;
//! * JSON log lines inside the request carrying its `trace_id`;
//! * no bearer token, JWT secret or database password in any log line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dondoc_contracts::assignments::v1::ListTasksRequest;
use dondoc_contracts::assignments::v1::task_service_client::TaskServiceClient;
use dondoc_contracts::common::v1::Date;
use dondoc_contracts::directives::v1::agency_service_client::AgencyServiceClient;
use dondoc_contracts::directives::v1::directive_service_client::DirectiveServiceClient;
use dondoc_contracts::directives::v1::{
    Agency, AgencyKind, CreateAgencyRequest, CreateDirectiveRequest, Directive, DirectiveItem,
    DirectiveKind, IssueDirectiveRequest,
};
use dondoc_e2e::{Bearer, TestSuite, eventually, local_8am};
use dondoc_identity::Role;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio_stream::wrappers::TcpListenerStream;

/// The test OTLP receiver: keeps every span it is sent.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Keeps every log line.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
        .map(|v| match v {
            Value::StringValue(s) => s.clone(),
            Value::IntValue(i) => i.to_string(),
            Value::BoolValue(b) => b.to_string(),
            other => format!("{other:?}"),
        })
}

fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

/// The caller's trace: the gateway must continue it.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_the_gateway_to_postgresql_and_across_the_event_stream() {
    // The receiver.
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    // Telemetry, once for this process.
    let logs = Logs::default();
    let writer = logs.clone();
    let guard = dondoc_telemetry::init_with(dondoc_telemetry::Settings {
        service: "suite".into(),
        filter: "debug,h2=info,hyper=info,hyper_util=info,tower=info,tonic=info".into(),
        json: true,
        otlp_endpoint: Some(endpoint),
        export_interval: Duration::from_millis(100),
        writer: Some(tracing_subscriber::fmt::writer::BoxMakeWriter::new(
            move || writer.clone(),
        )),
    });

    let t = TestSuite::start(local_8am(2024, 9, 2)).await;
    let office_token = t.token("users/van-phong", Some("vp-ubnd"), &[Role::Office]);
    let labour_token = t.token("users/so-ldtbxh", Some("so-ldtbxh"), &[Role::Agency]);
    let channel = t.gateway().await;
    let office = Bearer::new(&office_token);
    let mut agencies = AgencyServiceClient::with_interceptor(channel.clone(), office.clone());
    let mut directives = DirectiveServiceClient::with_interceptor(channel.clone(), office);
    let labour = TaskServiceClient::with_interceptor(channel.clone(), Bearer::new(&labour_token));

    for (code, name, kind) in [
        ("vp-ubnd", "Văn phòng UBND tỉnh", AgencyKind::Office),
        (
            "so-ldtbxh",
            "Sở Lao động – Thương binh và Xã hội",
            AgencyKind::Department,
        ),
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
            .expect("create agency");
    }
    let created = directives
        .create_directive(CreateDirectiveRequest {
            directive: Some(Directive {
                kind: DirectiveKind::ConclusionNotice as i32,
                number: "534/TB-UBND".into(),
                issuer: "agencies/vp-ubnd".into(),
                issue_date: date(2024, 9, 2),
                subject: "Kết luận của Chủ tịch UBND tỉnh".into(),
                items: vec![DirectiveItem {
                    reference: "II.4".into(),
                    text: "Tham mưu trình HĐND tỉnh Nghị quyết hỗ trợ".into(),
                    lead_agencies: vec!["agencies/so-ldtbxh".into()],
                    due_date: date(2024, 9, 27),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: "create-534".into(),
        })
        .await
        .expect("create directive")
        .into_inner()
        .directive
        .unwrap();
    // The issue call carries the client's trace context.
    let mut issue = tonic::Request::new(IssueDirectiveRequest {
        name: created.name.clone(),
        etag: created.etag.clone(),
        request_id: "issue-534".into(),
    });
    issue.metadata_mut().insert(
        "traceparent",
        format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")
            .parse()
            .unwrap(),
    );
    directives.issue_directive(issue).await.expect("issue");
    eventually(Duration::from_secs(10), || {
        let mut labour = labour.clone();
        async move {
            let tasks = labour
                .list_tasks(ListTasksRequest::default())
                .await
                .ok()?
                .into_inner()
                .tasks;
            (!tasks.is_empty()).then_some(())
        }
    })
    .await;

    // Every span of the flow, exported.
    let issue_name = "dondoc.directives.v1.DirectiveService/IssueDirective";
    let spans = eventually(Duration::from_secs(10), || {
        tokio::task::block_in_place(|| guard.force_flush());
        let spans = receiver.0.lock().unwrap().clone();
        async move {
            let linked = spans.iter().any(|s| {
                s.name == "directives apply"
                    && s.links.iter().any(|l| hex(&l.trace_id) == CLIENT_TRACE)
            });
            let servers = spans
                .iter()
                .filter(|s| s.name == issue_name && hex(&s.trace_id) == CLIENT_TRACE)
                .count();
            (linked && servers >= 2).then_some(spans)
        }
    })
    .await;

    let in_trace: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == CLIENT_TRACE)
        .collect();
    let gateway = in_trace
        .iter()
        .find(|s| s.name == issue_name && hex(&s.parent_span_id) == CLIENT_SPAN)
        .expect("the gateway's span is the child of the client's");
    let service = in_trace
        .iter()
        .find(|s| s.name == issue_name && s.parent_span_id == gateway.span_id)
        .expect("the service's span is the child of the gateway's");
    assert_eq!(attribute(service, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(
        attribute(service, "rpc.method").as_deref(),
        Some("IssueDirective")
    );
    assert_eq!(
        attribute(service, "rpc.grpc.status_code").as_deref(),
        Some("0")
    );
    let database: Vec<&str> = in_trace
        .iter()
        .filter(|s| {
            s.parent_span_id == service.span_id
                && attribute(s, "db.system").as_deref() == Some("postgresql")
        })
        .map(|s| s.name.as_str())
        .collect();
    assert!(
        database.contains(&"BEGIN IssueDirective") && database.contains(&"db.outbox.append"),
        "the transaction and the outbox write are under the service's span: {database:?}"
    );
    let apply = spans
        .iter()
        .find(|s| {
            s.name == "directives apply" && s.links.iter().any(|l| hex(&l.trace_id) == CLIENT_TRACE)
        })
        .expect("the consumer's apply span is linked to the producer's trace");
    let link = apply
        .links
        .iter()
        .find(|l| hex(&l.trace_id) == CLIENT_TRACE)
        .unwrap();
    assert!(
        in_trace.iter().any(|s| s.span_id == link.span_id),
        "the link points at a span of the producer's trace"
    );

    // Logs: JSON, with the trace id inside the request, and no secrets.
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("every log line is JSON"))
        .collect();
    assert!(
        lines.iter().any(|l| l["trace_id"] == CLIENT_TRACE
            && l["target"].as_str().is_some_and(|t| !t.contains("gateway"))),
        "a service's log line inside the request carries the trace id"
    );
    for secret in [
        office_token.as_str(),
        labour_token.as_str(),
        t.jwt.hs256_secret.as_str(),
        dondoc_testing::TEST_ROLE_PASSWORD,
    ] {
        let leaked: Vec<&str> = text.lines().filter(|l| l.contains(secret)).collect();
        assert!(leaked.is_empty(), "a secret was logged: {leaked:?}");
    }
    // A token's signature alone must not appear either.
    let signature = office_token.rsplit('.').next().unwrap();
    assert!(!text.contains(signature), "a token signature was logged");
    t.suite.stop().await.unwrap();
}
