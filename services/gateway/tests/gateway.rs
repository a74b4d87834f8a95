//! The gateway against real backends on 127.0.0.1: a directives backend
//! (agencies and the event stream) behind the identity layer, an assignments
//! backend that is down, and clients generated from the contracts.

mod support;

use std::time::{Duration, Instant};

use dondoc_contracts::assignments::v1::GetTaskRequest;
use dondoc_contracts::assignments::v1::task_service_client::TaskServiceClient;
use dondoc_contracts::directives::v1::agency_service_client::AgencyServiceClient;
use dondoc_contracts::directives::v1::directive_event_service_client::DirectiveEventServiceClient;
use dondoc_contracts::directives::v1::{self as directives, watch_events_response};
use dondoc_contracts::service_names;
use dondoc_gateway::{JwtConfig, mint_token};
use dondoc_identity::{ASSERTION_HEADER, Principal, Role};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

use support::{
    Env, Events, gateway_signer, get_agency, get_agency_status, start, start_gateway, unix_now,
    with_token,
};

// ---------------------------------------------------------------------------
// Authentication and identity.

#[tokio::test]
async fn a_valid_token_reaches_the_backend_as_its_principal() {
    let env = start().await;
    let token = env.token(
        "users/nguyen-van-a",
        Some("vp-ubnd"),
        &[Role::Office, Role::Leader],
    );
    let mut request = with_token(get_agency(), &token);
    request
        .metadata_mut()
        .insert("x-request-id", "req-42".parse().unwrap());
    let agency = AgencyServiceClient::new(env.channel().await)
        .get_agency(request)
        .await
        .unwrap()
        .into_inner()
        .agency
        .unwrap();
    assert_eq!(agency.display_name, "users/nguyen-van-a");
    assert_eq!(agency.code, "vp-ubnd");
    assert_eq!(agency.short_name, "office,leader");
    assert_eq!(
        agency.name, "agencies/so-noi-vu",
        "the message passes unchanged"
    );
    assert!(
        agency.aliases.is_empty(),
        "authorization is not forwarded: {:?}",
        agency.aliases
    );
    assert_eq!(agency.parent, "req-42", "other metadata passes");
}

#[tokio::test]
async fn a_call_without_a_token_is_unauthenticated() {
    let env = start().await;
    let status = get_agency_status(&env, Request::new(get_agency())).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.message(),
        "missing bearer token: send authorization: Bearer <token>"
    );
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "MISSING_TOKEN"
    );
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_unauthenticated() {
    let env = start().await;
    let forger = JwtConfig {
        hs256_secret: "somebody else's secret, also long enough".into(),
        ..env.jwt.clone()
    };
    let principal = Principal {
        subject: "users/mallory".into(),
        agency: None,
        roles: vec![Role::Admin],
    };
    let token = mint_token(&forger, &principal, Duration::from_secs(60));
    let status = get_agency_status(&env, with_token(get_agency(), &token)).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("signature"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn an_expired_token_is_unauthenticated() {
    let env = start().await;
    let now = unix_now();
    let claims = serde_json::json!({
        "iss": env.jwt.issuer, "aud": env.jwt.audience, "sub": "users/late",
        "roles": ["office"], "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600,
    });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(env.jwt.hs256_secret.as_bytes()),
    )
    .unwrap();
    let status = get_agency_status(&env, with_token(get_agency(), &token)).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().starts_with("token expired"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_token_for_another_audience_is_unauthenticated() {
    let env = start().await;
    let other = JwtConfig {
        audience: "some-other-system".into(),
        ..env.jwt.clone()
    };
    let principal = Principal {
        subject: "users/x".into(),
        agency: None,
        roles: vec![Role::Office],
    };
    let token = mint_token(&other, &principal, Duration::from_secs(60));
    let status = get_agency_status(&env, with_token(get_agency(), &token)).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("audience"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_token_claiming_the_service_role_is_unauthenticated() {
    let env = start().await;
    let token = env.token("services/assignments", None, &[Role::Service]);
    let status = get_agency_status(&env, with_token(get_agency(), &token)).await;
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn identity_metadata_sent_by_the_caller_is_dropped() {
    let env = start().await;
    // Even a genuine gateway assertion, replayed by a caller, is not believed.
    let admin = Principal {
        subject: "users/admin".into(),
        agency: None,
        roles: vec![Role::Admin],
    };
    let replayed = env.gateway_signer.sign(&admin);
    let token = env.token("users/can-bo-so", Some("so-noi-vu"), &[Role::Agency]);
    let mut request = with_token(get_agency(), &token);
    request
        .metadata_mut()
        .insert(ASSERTION_HEADER, replayed.parse().unwrap());
    request
        .metadata_mut()
        .insert("x-dondoc-principal", "users/admin".parse().unwrap());
    let agency = AgencyServiceClient::new(env.channel().await)
        .get_agency(request)
        .await
        .unwrap()
        .into_inner()
        .agency
        .unwrap();
    assert_eq!(agency.display_name, "users/can-bo-so");
    assert_eq!(agency.short_name, "agency");
    assert!(agency.aliases.is_empty(), "{:?}", agency.aliases);

    // Without a token, an assertion alone gets nowhere.
    let mut request = Request::new(get_agency());
    request.metadata_mut().insert(
        ASSERTION_HEADER,
        env.gateway_signer.sign(&admin).parse().unwrap(),
    );
    let status = get_agency_status(&env, request).await;
    assert_eq!(status.code(), Code::Unauthenticated);
}

// ---------------------------------------------------------------------------
// Authorization.

#[tokio::test]
async fn a_role_not_in_the_policy_is_permission_denied() {
    let env = start().await;
    let token = env.token("systems/cong-dich-vu-cong", None, &[Role::Subscriber]);
    let status = AgencyServiceClient::new(env.channel().await)
        .create_agency(with_token(
            directives::CreateAgencyRequest::default(),
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "ROLE_NOT_ALLOWED"
    );
}

/// A unary call to any path, with an empty message both ways.
async fn raw_call(env: &Env, path: &'static str, token: Option<&str>) -> Status {
    let mut grpc = tonic::client::Grpc::new(env.channel().await);
    grpc.ready().await.unwrap();
    let request = match token {
        Some(token) => with_token((), token),
        None => Request::new(()),
    };
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    grpc.unary(request, http::uri::PathAndQuery::from_static(path), codec)
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_method_missing_from_the_policy_is_permission_denied() {
    let env = start().await;
    let token = env.token("users/admin", None, &[Role::Admin]);
    let status = raw_call(
        &env,
        "/dondoc.directives.v1.AgencyService/DropTables",
        Some(&token),
    )
    .await;
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "METHOD_NOT_IN_POLICY"
    );
}

#[tokio::test]
async fn a_path_outside_dondoc_is_unimplemented() {
    let env = start().await;
    let status = raw_call(&env, "/acme.v1.Rockets/Launch", None).await;
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(
        status.message().contains("/acme.v1.Rockets/Launch"),
        "{}",
        status.message()
    );
}

// ---------------------------------------------------------------------------
// Forwarding.

#[tokio::test]
async fn error_details_from_the_backend_arrive_intact() {
    let env = start().await;
    let token = env.token("users/admin", None, &[Role::Admin]);
    let status = AgencyServiceClient::new(env.channel().await)
        .create_agency(with_token(
            directives::CreateAgencyRequest::default(),
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    let violations = &details.bad_request().unwrap().field_violations;
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "agency.code");
    assert_eq!(
        violations[0].description,
        "must be lowercase letters, digits and dashes"
    );
    let info = details.error_info().unwrap();
    assert_eq!(info.reason, "INVALID_ARGUMENT");
    assert_eq!(info.domain, dondoc_errors::ERROR_DOMAIN);
}

#[tokio::test]
async fn a_server_stream_flows_through() {
    let env = start().await;
    let token = env.token("users/thanh-tra", None, &[Role::Inspector]);
    let mut stream = DirectiveEventServiceClient::new(env.channel().await)
        .watch_events(with_token(
            directives::WatchEventsRequest::default(),
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut cursors = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        match item.item {
            Some(watch_events_response::Item::Checkpoint(checkpoint)) => {
                cursors.push(checkpoint.cursor)
            }
            other => panic!("unexpected item {other:?}"),
        }
    }
    assert_eq!(cursors, ["1", "2", "3"]);
}

/// A gateway in front of a [`crashable_backend`] (on a free port).
async fn gateway_before_crashable_backend() -> (
    support::Env,
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
) {
    let (backend, kill) = crashable_backend("127.0.0.1:0");
    let env = start_gateway(
        backend,
        gateway_signer(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await;
    (env, backend, kill)
}

/// A directives backend on `addr` on a runtime of its own, killed
/// (connections and all, as a crashing process would be) when `kill` is
/// sent.
fn crashable_backend(addr: &str) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    use dondoc_contracts::directives::v1::directive_event_service_server::DirectiveEventServiceServer;
    let listener = std::net::TcpListener::bind(addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (kill, killed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(DirectiveEventServiceServer::new(Events))
                    .serve_with_incoming(incoming),
            );
            let _ = killed.await;
        });
        // Dropping the runtime drops every connection task: sockets close.
        drop(runtime);
    });
    (addr, kill)
}

#[tokio::test]
async fn a_backend_dying_mid_stream_ends_the_call_with_unavailable() {
    let (env, _, kill) = gateway_before_crashable_backend().await;
    let token = env.token("users/thanh-tra", None, &[Role::Inspector]);
    let request = directives::WatchEventsRequest {
        after_cursor: "hold".into(),
    };
    let mut stream = DirectiveEventServiceClient::new(env.channel().await)
        .watch_events(with_token(request, &token))
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    kill.send(()).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(2), stream.message())
        .await
        .expect("the stream ended")
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("directives"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_backend_that_restarts_is_connected_to_again() {
    let (env, backend, kill) = gateway_before_crashable_backend().await;
    let token = env.token("users/thanh-tra", None, &[Role::Inspector]);
    let channel = env.channel().await;
    assert_eq!(checkpoints(&channel, &token).await.unwrap(), 3);
    kill.send(()).unwrap();
    // Down: the call gets UNAVAILABLE (after the read's retries).
    let down = loop {
        match checkpoints(&channel, &token).await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(status) => break status,
        }
    };
    assert_eq!(down.code(), Code::Unavailable, "{down:?}");
    // Up again on the same port: the next call opens a new connection.
    let (_, _keep) = crashable_backend(&backend.to_string());
    assert_eq!(checkpoints(&channel, &token).await.unwrap(), 3);
}

/// The checkpoints a `WatchEvents` call through `channel` receives.
async fn checkpoints(channel: &tonic::transport::Channel, token: &str) -> Result<usize, Status> {
    let mut stream = DirectiveEventServiceClient::new(channel.clone())
        .watch_events(with_token(directives::WatchEventsRequest::default(), token))
        .await?
        .into_inner();
    let mut count = 0;
    while stream.message().await?.is_some() {
        count += 1;
    }
    Ok(count)
}

#[tokio::test]
async fn a_backend_that_is_down_gives_unavailable_quickly() {
    let env = start().await;
    let token = env.token("users/office-1", Some("vp-ubnd"), &[Role::Office]);
    let started = Instant::now();
    let status = TaskServiceClient::new(env.channel().await)
        .get_task(with_token(
            GetTaskRequest {
                name: "tasks/1".into(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("assignments"),
        "{}",
        status.message()
    );
}

// ---------------------------------------------------------------------------
// Served locally: reflection and health, without credentials.

#[tokio::test]
async fn reflection_v1_lists_every_dondoc_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let env = start().await;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(env.channel().await)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected response {response:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert_all_listed(&names);
}

#[tokio::test]
async fn reflection_v1alpha_lists_every_dondoc_service() {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

    let env = start().await;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(env.channel().await)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected response {response:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert_all_listed(&names);
}

fn assert_all_listed(names: &[String]) {
    for expected in [
        service_names::AGENCY,
        service_names::DIRECTIVE,
        service_names::DIRECTIVE_EVENTS,
        service_names::TASK,
        service_names::STATISTICS,
        service_names::INDICATOR,
        service_names::TASK_EVENTS,
        service_names::NOTIFICATION,
        service_names::SUBSCRIPTION,
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

async fn health(client: &mut HealthClient<Channel>, service: &str) -> i32 {
    client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

#[tokio::test]
async fn health_reports_the_gateway_and_its_backends() {
    let env = start().await;
    let mut client = HealthClient::new(env.channel().await);
    assert_eq!(health(&mut client, "").await, ServingStatus::Serving as i32);
    assert_eq!(
        health(&mut client, service_names::AGENCY).await,
        ServingStatus::Serving as i32
    );
    // The assignments backend is down: the first probe finds out.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = health(&mut client, service_names::TASK).await;
        if status == ServingStatus::NotServing as i32 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "TaskService still reported {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        health(&mut client, service_names::AGENCY).await,
        ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn open_streams_end_with_unavailable_when_the_grace_period_is_over() {
    let mut env = start().await;
    let token = env.token("users/thanh-tra", None, &[Role::Inspector]);
    let request = directives::WatchEventsRequest {
        after_cursor: "hold".into(),
    };
    let mut stream = DirectiveEventServiceClient::new(env.channel().await)
        .watch_events(with_token(request, &token))
        .await
        .unwrap()
        .into_inner();
    // The first item arrives while the backend keeps the stream open.
    let first = stream.message().await.unwrap().unwrap();
    assert!(matches!(
        first.item,
        Some(watch_events_response::Item::Checkpoint(_))
    ));

    let started = Instant::now();
    env.shutdown.cancel();
    let status = stream.message().await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("shutting down"),
        "{}",
        status.message()
    );
    // The grace period is 500 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );

    env.stop_within(
        Duration::from_secs(3),
        "the gateway stopped after its grace period",
    )
    .await;
}

#[tokio::test]
async fn the_gateway_stops_at_once_when_nothing_is_running() {
    let mut env = start().await;
    let mut client = HealthClient::new(env.channel().await);
    assert_eq!(health(&mut client, "").await, ServingStatus::Serving as i32);
    drop(client);
    let started = Instant::now();
    env.stop_within(Duration::from_secs(3), "the gateway stopped")
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}
