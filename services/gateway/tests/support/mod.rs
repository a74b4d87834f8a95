//! What the gateway's integration tests share: a directives backend that
//! echoes its caller, and an environment with that backend, a dead
//! assignments backend and the gateway, all on 127.0.0.1 port 0.

#![allow(dead_code)]

pub mod generic;
pub mod pki;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dondoc_contracts::common::v1::Checkpoint;
use dondoc_contracts::directives::v1::agency_service_client::AgencyServiceClient;
use dondoc_contracts::directives::v1::agency_service_server::{AgencyService, AgencyServiceServer};
use dondoc_contracts::directives::v1::directive_event_service_server::{
    DirectiveEventService, DirectiveEventServiceServer,
};
use dondoc_contracts::directives::v1::{self as directives, watch_events_response};
use dondoc_contracts::service_names;
use dondoc_gateway::{Gateway, GatewayConfig, GatewayError, GatewayExtras, JwtConfig, mint_token};
use dondoc_identity::{
    ASSERTION_HEADER, AssertionSigner, AssertionVerifier, KeyPair, Principal, Role, TrustedKeys,
};
use dondoc_server::{Server, ServerParts};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

// ---------------------------------------------------------------------------
// The backend: a directives service that echoes who called it.

pub struct Agencies;

pub fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in the test backend"))
}

#[tonic::async_trait]
impl AgencyService for Agencies {
    /// Refuses every agency with a field violation on its code.
    async fn create_agency(
        &self,
        _request: Request<directives::CreateAgencyRequest>,
    ) -> Result<Response<directives::CreateAgencyResponse>, Status> {
        Err(dondoc_errors::Error::invalid(
            "agency.code",
            "must be lowercase letters, digits and dashes",
        )
        .into())
    }

    /// Echoes the verified principal and the identity metadata the backend saw:
    /// display_name = subject, short_name = roles, code = agency,
    /// aliases = `authorization` and `x-dondoc-*` keys other than the
    /// assertion, parent = x-request-id.
    async fn get_agency(
        &self,
        request: Request<directives::GetAgencyRequest>,
    ) -> Result<Response<directives::GetAgencyResponse>, Status> {
        let principal = dondoc_identity::principal(&request)?;
        let headers = request.metadata().clone().into_headers();
        let aliases = headers
            .keys()
            .map(|k| k.as_str().to_string())
            .filter(|k| {
                k == "authorization" || (k.starts_with("x-dondoc-") && k != ASSERTION_HEADER)
            })
            .collect();
        let agency = directives::Agency {
            name: request.get_ref().name.clone(),
            code: principal.agency.clone().unwrap_or_default(),
            display_name: principal.subject.clone(),
            short_name: principal
                .roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(","),
            aliases,
            parent: headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            ..Default::default()
        };
        Ok(Response::new(directives::GetAgencyResponse {
            agency: Some(agency),
        }))
    }

    async fn list_agencies(
        &self,
        _request: Request<directives::ListAgenciesRequest>,
    ) -> Result<Response<directives::ListAgenciesResponse>, Status> {
        unimplemented()
    }

    async fn update_agency(
        &self,
        _request: Request<directives::UpdateAgencyRequest>,
    ) -> Result<Response<directives::UpdateAgencyResponse>, Status> {
        unimplemented()
    }

    async fn resolve_agency(
        &self,
        _request: Request<directives::ResolveAgencyRequest>,
    ) -> Result<Response<directives::ResolveAgencyResponse>, Status> {
        unimplemented()
    }

    async fn merge_agencies(
        &self,
        _request: Request<directives::MergeAgenciesRequest>,
    ) -> Result<Response<directives::MergeAgenciesResponse>, Status> {
        unimplemented()
    }

    async fn rename_agency(
        &self,
        _request: Request<directives::RenameAgencyRequest>,
    ) -> Result<Response<directives::RenameAgencyResponse>, Status> {
        unimplemented()
    }

    async fn split_agency(
        &self,
        _request: Request<directives::SplitAgencyRequest>,
    ) -> Result<Response<directives::SplitAgencyResponse>, Status> {
        unimplemented()
    }

    async fn dissolve_agency(
        &self,
        _request: Request<directives::DissolveAgencyRequest>,
    ) -> Result<Response<directives::DissolveAgencyResponse>, Status> {
        unimplemented()
    }
}

pub struct Events;

#[tonic::async_trait]
impl DirectiveEventService for Events {
    type WatchEventsStream = ReceiverStream<Result<directives::WatchEventsResponse, Status>>;

    /// Three checkpoints, one every 20 ms, then the end of the stream; after
    /// cursor "hold": one checkpoint, then nothing until the caller leaves.
    async fn watch_events(
        &self,
        request: Request<directives::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let hold = request.get_ref().after_cursor == "hold";
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            let cursors: &[&str] = if hold { &["1"] } else { &["1", "2", "3"] };
            for cursor in cursors {
                let item = directives::WatchEventsResponse {
                    item: Some(watch_events_response::Item::Checkpoint(Checkpoint {
                        cursor: (*cursor).into(),
                        time: None,
                    })),
                };
                if sender.send(Ok(item)).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if hold {
                sender.closed().await;
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

// ---------------------------------------------------------------------------
// The environment: backend + gateway, both on port 0.

pub struct Env {
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub jwt: JwtConfig,
    pub gateway_signer: AssertionSigner,
    pub shutdown: CancellationToken,
    pub gateway: Option<JoinHandle<Result<(), GatewayError>>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An address where nothing listens.
pub fn dead_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

pub fn uri(addr: SocketAddr) -> http::Uri {
    format!("http://{addr}").parse().unwrap()
}

/// A signer for the gateway.
pub fn gateway_signer() -> AssertionSigner {
    AssertionSigner::new("gateway", KeyPair::generate(), Duration::from_secs(60))
}

/// The echoing directives backend (behind the identity layer) and the gateway.
pub async fn start() -> Env {
    start_with(GatewayExtras::default(), test_jwt()).await
}

/// The JWT settings of the tests: HS256 with a test secret.
pub fn test_jwt() -> JwtConfig {
    JwtConfig {
        hs256_secret: "the test secret, long enough for HS256 use".into(),
        issuer: "https://id.dondoc.test".into(),
        audience: "dondoc".into(),
    }
}

/// The echoing directives backend and a gateway with `extras` and `jwt`.
pub async fn start_with(extras: GatewayExtras, jwt: JwtConfig) -> Env {
    let gateway_signer = gateway_signer();
    let mut keys = TrustedKeys::default();
    keys.trust(&gateway_signer);
    let shutdown = CancellationToken::new();

    let backend = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        shutdown.child_token(),
        Duration::from_millis(200),
    )
    .await
    .unwrap();
    let directives_addr = backend.local_addr();
    tokio::spawn(
        backend.serve(ServerParts {
            routes: Routes::new(AgencyServiceServer::new(Agencies))
                .add_service(DirectiveEventServiceServer::new(Events)),
            service_names: vec![service_names::AGENCY, service_names::DIRECTIVE_EVENTS],
            verifier: Some(AssertionVerifier::new(keys)),
        }),
    );

    let backends = [directives_addr, dead_address(), dead_address()];
    start_gateway_with(backends, gateway_signer, shutdown, extras, jwt).await
}

/// The gateway alone, in front of `directives_addr`.
pub async fn start_gateway(
    directives_addr: SocketAddr,
    gateway_signer: AssertionSigner,
    shutdown: CancellationToken,
) -> Env {
    let backends = [directives_addr, dead_address(), dead_address()];
    start_gateway_with(
        backends,
        gateway_signer,
        shutdown,
        GatewayExtras::default(),
        test_jwt(),
    )
    .await
}

/// A gateway in front of `[directives, assignments, notifications]`.
pub async fn start_gateway_with(
    backends: [SocketAddr; 3],
    gateway_signer: AssertionSigner,
    shutdown: CancellationToken,
    extras: GatewayExtras,
    jwt: JwtConfig,
) -> Env {
    let gateway = Gateway::build_with(
        GatewayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            directives: uri(backends[0]),
            assignments: uri(backends[1]),
            notifications: uri(backends[2]),
            jwt: jwt.clone(),
            signer: gateway_signer.clone(),
            shutdown_grace: Duration::from_millis(500),
        },
        extras,
        shutdown.child_token(),
    )
    .await
    .unwrap();
    let addr = gateway.local_addr();
    let admin = gateway.admin_addr();
    let gateway = tokio::spawn(gateway.run_until_stopped());
    Env {
        addr,
        admin,
        jwt,
        gateway_signer,
        shutdown,
        gateway: Some(gateway),
    }
}

impl Env {
    /// Cancels the shutdown token and waits at most `within` for
    /// `run_until_stopped` to return, which it must do with `Ok`.
    pub async fn stop_within(&mut self, within: Duration, what: &str) {
        self.shutdown.cancel();
        let gateway = self.gateway.take().expect("the gateway is running");
        let result = tokio::time::timeout(within, gateway)
            .await
            .unwrap_or_else(|_| panic!("{what} within {within:?}"))
            .unwrap();
        assert!(result.is_ok(), "{result:?}");
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub fn token(&self, subject: &str, agency: Option<&str>, roles: &[Role]) -> String {
        let principal = Principal {
            subject: subject.into(),
            agency: agency.map(str::to_string),
            roles: roles.to_vec(),
        };
        mint_token(&self.jwt, &principal, Duration::from_secs(300))
    }
}

pub fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

pub fn get_agency() -> directives::GetAgencyRequest {
    directives::GetAgencyRequest {
        name: "agencies/so-noi-vu".into(),
    }
}

pub async fn get_agency_status(
    env: &Env,
    request: Request<directives::GetAgencyRequest>,
) -> Status {
    AgencyServiceClient::new(env.channel().await)
        .get_agency(request)
        .await
        .unwrap_err()
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Three generic backends (directives, assignments, notifications) that
/// answer OK to any method, and a gateway with `extras` in front of them.
pub async fn start_generic(
    extras: GatewayExtras,
    jwt: JwtConfig,
) -> (Env, [(SocketAddr, generic::Recorder); 3]) {
    let gateway_signer = gateway_signer();
    let mut keys = TrustedKeys::default();
    keys.trust(&gateway_signer);
    let verifier = AssertionVerifier::new(keys);
    let shutdown = CancellationToken::new();
    let (a, ra) = generic::start(verifier.clone(), shutdown.child_token()).await;
    let (b, rb) = generic::start(verifier.clone(), shutdown.child_token()).await;
    let (c, rc) = generic::start(verifier, shutdown.child_token()).await;
    let env = start_gateway_with([a, b, c], gateway_signer, shutdown, extras, jwt).await;
    (env, [(a, ra), (b, rb), (c, rc)])
}

/// A unary call to any path with an empty message both ways.
pub async fn raw_unary(
    channel: Channel,
    path: &str,
    request: Request<()>,
) -> Result<tonic::Response<()>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = http::uri::PathAndQuery::try_from(path.to_string()).unwrap();
    grpc.unary(request, path, codec).await
}
