//! Limits and resilience, observability and gRPC-Web, against generic
//! backends that answer any method.

mod support;

use std::time::{Duration, Instant};

use dondoc_gateway::GatewayExtras;
use dondoc_identity::Role;
use tonic::{Code, Request};
use tonic_types::StatusExt;

use support::{raw_unary, start_generic, test_jwt, with_token};

const GET_TASK: &str = "/dondoc.assignments.v1.TaskService/GetTask";
const CREATE_TASK: &str = "/dondoc.assignments.v1.TaskService/CreateTask";
const SUBSCRIBE: &str = "/dondoc.notifications.v1.NotificationService/Subscribe";

fn office_request(env: &support::Env) -> Request<()> {
    with_token(
        (),
        &env.token("users/office-1", Some("vp-ubnd"), &[Role::Office]),
    )
}

#[tokio::test]
async fn a_caller_over_its_rate_gets_resource_exhausted_with_retry_info() {
    let mut extras = GatewayExtras::default();
    extras.limits.rate_per_second = 1.0;
    extras.limits.burst = 2;
    extras.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    let (env, _) = start_generic(extras, test_jwt()).await;
    let channel = env.channel().await;
    for _ in 0..2 {
        raw_unary(channel.clone(), GET_TASK, office_request(&env))
            .await
            .unwrap();
    }
    let status = raw_unary(channel.clone(), GET_TASK, office_request(&env))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    let details = status.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "RATE_LIMITED");
    let delay = details.retry_info().unwrap().retry_delay.unwrap();
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(1),
        "{delay:?}"
    );
    assert!(
        status.message().contains("retry in"),
        "{}",
        status.message()
    );

    // Another principal has its own bucket.
    let other = env.token("users/other", Some("so-noi-vu"), &[Role::Agency]);
    raw_unary(channel.clone(), GET_TASK, with_token((), &other))
        .await
        .unwrap();

    let metrics = admin_get(&env, "/metrics").await;
    assert!(
        metrics.contains(&format!(
            "dondoc_gateway_rate_limited_total{{method=\"{GET_TASK}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "dondoc_gateway_requests_total{{method=\"{GET_TASK}\",code=\"RESOURCE_EXHAUSTED\"}} 1"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "dondoc_gateway_requests_total{{method=\"{GET_TASK}\",code=\"OK\"}} 3"
        )),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "dondoc_gateway_request_duration_seconds_count{{method=\"{GET_TASK}\"}} 4"
    )));
    assert_eq!(admin_get(&env, "/healthz").await, "ok\n");
}

/// GET on the admin listener.
async fn admin_get(env: &support::Env, path: &str) -> String {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes_of::Bytes>>();
    let uri: http::Uri = format!("http://{}{path}", env.admin.unwrap())
        .parse()
        .unwrap();
    let response = client.get(uri).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

mod bytes_of {
    pub use tonic::codegen::Bytes;
}

#[tokio::test]
async fn beyond_the_concurrency_limit_calls_are_shed_at_once() {
    let mut extras = GatewayExtras::default();
    extras.limits.max_concurrent_calls = 1;
    let (env, backends) = start_generic(extras, test_jwt()).await;
    // The slow call holds the only permit for 3 s; a shed call must not wait for it.
    *backends[1].1.delay.lock().unwrap() = Duration::from_secs(3);
    let channel = env.channel().await;
    let slow = tokio::spawn(raw_unary(channel.clone(), GET_TASK, office_request(&env)));
    while backends[1].1.count(GET_TASK) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let status = raw_unary(channel.clone(), GET_TASK, office_request(&env))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "shed after {:?}: it waited for the slow call",
        started.elapsed()
    );
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "OVERLOADED"
    );
    assert!(
        status.message().contains("overloaded"),
        "{}",
        status.message()
    );
    slow.await.unwrap().unwrap();
    // Once the first call ended, its permit is back.
    raw_unary(channel, GET_TASK, office_request(&env))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused_before_the_backend() {
    use dondoc_contracts::assignments::v1::GetTaskRequest;
    use dondoc_contracts::assignments::v1::task_service_client::TaskServiceClient;
    let mut extras = GatewayExtras::default();
    extras.limits.max_message_bytes = 1024;
    let (env, backends) = start_generic(extras, test_jwt()).await;
    let token = env.token("users/office-1", Some("vp-ubnd"), &[Role::Office]);
    let mut client = TaskServiceClient::new(env.channel().await);
    let big = GetTaskRequest {
        name: "x".repeat(4096),
    };
    let status = client.get_task(with_token(big, &token)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "MESSAGE_TOO_LARGE"
    );
    assert!(
        status.message().contains("at most 1024 bytes"),
        "{}",
        status.message()
    );
    assert_eq!(backends[1].1.count(GET_TASK), 0);
    // A small one passes (the generic backend answers an empty message).
    let small = GetTaskRequest {
        name: "tasks/1".into(),
    };
    client.get_task(with_token(small, &token)).await.unwrap();
}

#[tokio::test]
async fn deadlines_are_clamped_forwarded_and_enforced() {
    let mut extras = GatewayExtras::default();
    extras.limits.max_deadline = Duration::from_millis(400);
    let (env, backends) = start_generic(extras, test_jwt()).await;
    let channel = env.channel().await;
    let recorder = &backends[1].1;

    // No deadline: the maximum is set.
    raw_unary(channel.clone(), GET_TASK, office_request(&env))
        .await
        .unwrap();
    let timeout = grpc_timeout(&recorder.last().1);
    assert!(
        timeout <= Duration::from_millis(400) && timeout > Duration::from_millis(300),
        "{timeout:?}"
    );

    // A shorter one is passed on, minus the time already spent.
    let mut request = office_request(&env);
    request.set_timeout(Duration::from_millis(250));
    raw_unary(channel.clone(), GET_TASK, request).await.unwrap();
    let timeout = grpc_timeout(&recorder.last().1);
    assert!(
        timeout <= Duration::from_millis(250) && timeout > Duration::from_millis(150),
        "{timeout:?}"
    );

    // A longer one is clamped, and a backend slower than it gets cut off.
    *recorder.delay.lock().unwrap() = Duration::from_secs(2);
    let mut request = office_request(&env);
    request.set_timeout(Duration::from_secs(60));
    let started = Instant::now();
    let status = raw_unary(channel.clone(), GET_TASK, request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let timeout = grpc_timeout(&recorder.last().1);
    assert!(timeout <= Duration::from_millis(400), "{timeout:?}");

    // Streams get no default deadline.
    *backends[2].1.delay.lock().unwrap() = Duration::ZERO;
    let token = env.token("users/sub", None, &[Role::Subscriber]);
    raw_unary(channel, SUBSCRIBE, with_token((), &token))
        .await
        .unwrap();
    assert!(backends[2].1.last().1.get("grpc-timeout").is_none());
}

fn grpc_timeout(headers: &http::HeaderMap) -> Duration {
    let value = headers.get("grpc-timeout").expect("grpc-timeout forwarded");
    let value = value.to_str().unwrap();
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().unwrap();
    match unit {
        "m" => Duration::from_millis(n),
        "S" => Duration::from_secs(n),
        other => panic!("unit {other}"),
    }
}

#[tokio::test]
async fn calls_are_spread_over_the_configured_backend_connections() {
    let mut extras = GatewayExtras::default();
    extras.backends.connections = 3;
    // One serving thread keeps all three (several would share them out).
    extras.workers.threads = 1;
    let (env, backends) = start_generic(extras, test_jwt()).await;
    let channel = env.channel().await;
    // Nine calls in turn cover all three connections even when health
    // probes, which take turns from the same pool, take one or two.
    for _ in 0..9 {
        raw_unary(channel.clone(), GET_TASK, office_request(&env))
            .await
            .unwrap();
    }
    let recorder = &backends[1].1;
    assert_eq!(recorder.count(GET_TASK), 9);
    assert_eq!(
        recorder.call_connections.lock().unwrap().len(),
        3,
        "calls take the three configured connections in turn"
    );
    assert_eq!(
        recorder
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        3,
        "no connection beyond the configured ones, health probes included"
    );
}

#[tokio::test]
async fn serving_threads_share_out_the_backend_connections_and_stop_together() {
    let mut extras = GatewayExtras::default();
    extras.backends.connections = 3;
    extras.workers.threads = 2;
    let (mut env, backends) = start_generic(extras, test_jwt()).await;
    // Callers' connections are dealt to the two threads in turn.
    for _ in 0..8 {
        let channel = env.channel().await;
        for _ in 0..3 {
            raw_unary(channel.clone(), GET_TASK, office_request(&env))
                .await
                .unwrap();
        }
    }
    let recorder = &backends[1].1;
    assert_eq!(recorder.count(GET_TASK), 24);
    let opened = recorder
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        opened, 3,
        "both threads served and opened their share of the three connections (two and one), \
         health probes included"
    );

    env.stop_within(Duration::from_secs(3), "both threads stopped")
        .await;
}

#[tokio::test]
async fn reads_are_retried_on_unavailable_and_mutations_are_not() {
    let (env, backends) = start_generic(GatewayExtras::default(), test_jwt()).await;
    let channel = env.channel().await;
    let recorder = &backends[1].1;

    recorder
        .fail_next
        .store(1, std::sync::atomic::Ordering::SeqCst);
    raw_unary(channel.clone(), GET_TASK, office_request(&env))
        .await
        .unwrap();
    assert_eq!(recorder.count(GET_TASK), 2, "the read was retried once");

    recorder
        .fail_next
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let status = raw_unary(channel.clone(), CREATE_TASK, office_request(&env))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        recorder.count(CREATE_TASK),
        1,
        "a mutation is never replayed"
    );

    // A read failing every time ends after the configured retries.
    recorder
        .fail_next
        .store(10, std::sync::atomic::Ordering::SeqCst);
    let status = raw_unary(channel, GET_TASK, office_request(&env))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(recorder.count(GET_TASK), 2 + 3);
}

#[tokio::test]
async fn trace_context_is_continued_and_started() {
    let (env, backends) = start_generic(GatewayExtras::default(), test_jwt()).await;
    let channel = env.channel().await;
    let recorder = &backends[1].1;
    let mut request = office_request(&env);
    request.metadata_mut().insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap(),
    );
    raw_unary(channel.clone(), GET_TASK, request).await.unwrap();
    let forwarded = recorder.last().1["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        forwarded.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{forwarded}"
    );
    assert!(
        !forwarded.contains("00f067aa0ba902b7"),
        "the gateway is a hop: {forwarded}"
    );

    raw_unary(channel, GET_TASK, office_request(&env))
        .await
        .unwrap();
    let started = recorder.last().1["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(started.len(), 55, "{started}");
}

#[tokio::test]
async fn a_browser_calls_through_grpc_web_from_an_allowed_origin() {
    use dondoc_contracts::assignments::v1::GetTaskRequest;
    use dondoc_contracts::assignments::v1::task_service_client::TaskServiceClient;
    let mut extras = GatewayExtras::default();
    extras.cors.allowed_origins = vec!["https://dondoc.tinh.gov.vn".into()];
    let (env, backends) = start_generic(extras, test_jwt()).await;

    // gRPC-Web over HTTP/1.1, as a browser sends it.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(false)
        .build_http();
    let service = tower::ServiceBuilder::new()
        .layer(tonic_web::GrpcWebClientLayer::new())
        .service(client);
    let origin: http::Uri = format!("http://{}", env.addr).parse().unwrap();
    let mut tasks = TaskServiceClient::with_origin(service, origin);
    let token = env.token("users/office-1", Some("vp-ubnd"), &[Role::Office]);
    let request = GetTaskRequest {
        name: "tasks/7".into(),
    };
    tasks.get_task(with_token(request, &token)).await.unwrap();
    let (path, _, principal) = backends[1].1.last();
    assert_eq!(path, GET_TASK);
    assert_eq!(principal.subject, "users/office-1");

    // A refusal reaches the browser as a gRPC status too.
    let status = tasks
        .get_task(Request::new(GetTaskRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    // CORS preflight: the configured origin is allowed, another is not.
    let preflight = |origin: &'static str| {
        http::Request::builder()
            .method(http::Method::OPTIONS)
            .uri(format!("http://{}{GET_TASK}", env.addr))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-grpc-web,authorization",
            )
            .body(http_body_util::Empty::<tonic::codegen::Bytes>::new())
            .unwrap()
    };
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let allowed = http
        .request(preflight("https://dondoc.tinh.gov.vn"))
        .await
        .unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://dondoc.tinh.gov.vn"
    );
    let allowed_headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    let refused = http
        .request(preflight("https://evil.example"))
        .await
        .unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
