//! The peers every figure is compared with: a stock tonic echo server, a
//! minimal tonic broadcast server, Debian's nginx with `grpc_pass`, and
//! pgbench with generated scripts.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use dondoc_contracts::notifications::v1 as pb;
use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tonic::body::Body;
use tonic::server::{NamedService, ServerStreamingService, UnaryService};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::load::RawCodec;

/// The path both the echo server and (through the gateway's routing) the
/// backends answer: a read that every role may call.
pub const ECHO_PATH: &str = "/dondoc.directives.v1.AgencyService/GetAgency";

/// A stock tonic server that answers every unary call on
/// `dondoc.directives.v1.AgencyService` with the request's bytes.
#[derive(Debug, Clone, Default)]
pub struct Echo;

impl NamedService for Echo {
    const NAME: &'static str = "dondoc.directives.v1.AgencyService";
}

struct EchoUnary;

impl UnaryService<Bytes> for EchoUnary {
    type Response = Bytes;
    type Future = std::future::Ready<Result<Response<Bytes>, Status>>;
    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        std::future::ready(Ok(Response::new(request.into_inner())))
    }
}

impl tower::Service<http::Request<Body>> for Echo {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec);
            Ok(grpc.unary(EchoUnary, request).await)
        })
    }
}

/// Serves [`Echo`] on `127.0.0.1:0` with tonic's defaults (plus
/// TCP_NODELAY, as every server here) until killed, printing
/// `READY <addr>` first (the child-process mode).
pub async fn serve_echo() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("READY {addr}");
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(Echo)
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}

/// The path of the broadcast server's stream (the notification stream's).
pub const SUBSCRIBE_PATH: &str = "/dondoc.notifications.v1.NotificationService/Subscribe";
/// The broadcast server's publish method: the request is a u32 count.
pub const PUBLISH_PATH: &str = "/dondoc.notifications.v1.NotificationService/Publish";

/// A minimal tonic broadcast server: every `Subscribe` stream gets every
/// message published after it opened (tokio's broadcast channel).
#[derive(Clone)]
pub struct Broadcast {
    sender: broadcast::Sender<Bytes>,
    message: Bytes,
}

impl NamedService for Broadcast {
    const NAME: &'static str = "dondoc.notifications.v1.NotificationService";
}

type BoxStream = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>;

impl ServerStreamingService<Bytes> for Broadcast {
    type Response = Bytes;
    type ResponseStream = BoxStream;
    type Future = std::future::Ready<Result<Response<BoxStream>, Status>>;
    fn call(&mut self, _: Request<Bytes>) -> Self::Future {
        let receiver = self.sender.subscribe();
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(message) => return Some((Ok(message), receiver)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        std::future::ready(Ok(Response::new(Box::pin(stream))))
    }
}

struct Publish(Broadcast);

impl UnaryService<Bytes> for Publish {
    type Response = Bytes;
    type Future = std::future::Ready<Result<Response<Bytes>, Status>>;
    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let body = request.into_inner();
        let count = body
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(1);
        for _ in 0..count {
            let _ = self.0.sender.send(self.0.message.clone());
        }
        std::future::ready(Ok(Response::new(Bytes::new())))
    }
}

impl tower::Service<http::Request<Body>> for Broadcast {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec);
            if request.uri().path() == PUBLISH_PATH {
                Ok(grpc.unary(Publish(this), request).await)
            } else {
                Ok(grpc.server_streaming(this, request).await)
            }
        })
    }
}

/// A notification like the ones the service streams, encoded as a
/// `SubscribeResponse`.
pub fn sample_notification(i: u64) -> pb::SubscribeResponse {
    pb::SubscribeResponse {
        item: Some(pb::subscribe_response::Item::Notification(
            pb::Notification {
                name: format!("agencies/so-bench/notifications/{i}"),
                notification_id: uuid::Uuid::new_v4().to_string(),
                kind: 2,
                recipient: "agencies/so-bench".into(),
                task: format!("tasks/{i}"),
                directive_number: "534/TB-UBND".into(),
                lead_agency: "agencies/so-bench".into(),
                due_date: None,
                key_task: false,
                title: "Nhiệm vụ sắp đến hạn".into(),
                body: "Nhiệm vụ \"Tham mưu trình HĐND tỉnh Nghị quyết hỗ trợ\" (534/TB-UBND) \
                   đến hạn ngày 04/12/2026, còn 3 ngày làm việc."
                    .into(),
                create_time: None,
                read: false,
                cursor: format!("{i:016x}.{i}"),
            },
        )),
    }
}

/// Runs the broadcast server on `127.0.0.1:0` until killed, printing
/// `READY <addr>` first (the child-process mode).
pub async fn serve_broadcast() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (sender, _) = broadcast::channel(8192);
    let service = Broadcast {
        sender,
        message: Bytes::from(prost::Message::encode_to_vec(&sample_notification(1))),
    };
    println!("READY {addr}");
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}

/// A running nginx; stopped when dropped.
pub struct Nginx {
    child: tokio::process::Child,
    /// Its listen address.
    pub addr: SocketAddr,
    _dir: TempDir,
}

impl Nginx {
    /// The master's process id (its workers are its children).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers (SIGKILL would orphan them).
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
}

/// A folder removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh folder under `base`.
    pub fn new(base: &Path, prefix: &str) -> anyhow::Result<Self> {
        let path = base.join(format!(
            "{prefix}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Finds nginx.
pub fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Starts Debian's nginx in front of `backend` with `grpc_pass` and
/// upstream keepalive, one worker per core. Its access log is off, or, when
/// the bench logs as `dondoc up` does, one line per call written to
/// `/dev/null` as the gateway's are: when, who, what, the gRPC status and
/// the time taken, unbuffered. `keepalive_requests`
/// is lifted on both sides: at its default (1,000) nginx closes a busy
/// HTTP/2 connection every thousand calls and fails the calls in flight.
pub async fn start_nginx(backend: SocketAddr) -> anyhow::Result<Nginx> {
    let binary = nginx_binary().context("nginx not found (apt-get install nginx)")?;
    let dir = TempDir::new(&std::env::temp_dir(), "dondoc-bench-nginx")?;
    let port = free_port()?;
    let access_log = if crate::logging() {
        "log_format calls '$time_iso8601 $remote_addr \"$request\" $status \
         grpc_status=$upstream_trailer_grpc_status $request_time $request_id';\n  \
         access_log /dev/null calls;"
    } else {
        "access_log off;"
    };
    let conf = format!(
        "worker_processes auto;\ndaemon off;\nmaster_process on;\n\
         error_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 16384; }}\n\
         http {{\n  {access_log}\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           upstream backend {{ server {backend}; keepalive 256; keepalive_requests 1000000; }}\n\
           server {{\n    listen 127.0.0.1:{port} http2;\n    http2_max_concurrent_streams 1024;\n    keepalive_requests 1000000;\n\
               location / {{ grpc_pass grpc://backend; }}\n  }}\n}}\n",
        d = dir.0.display()
    );
    let path = dir.0.join("nginx.conf");
    std::fs::write(&path, conf)?;
    let child = tokio::process::Command::new(binary)
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(&dir.0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(Nginx {
                child,
                addr,
                _dir: dir,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(dir.0.join("error.log")).unwrap_or_default();
    bail!("nginx did not start: {log}")
}

/// What pgbench reported.
#[derive(Debug, Clone)]
pub struct PgbenchResult {
    /// Transactions per second (without initial connection time).
    pub tps: f64,
    /// Average latency in milliseconds.
    pub latency_ms: f64,
    /// Transactions processed.
    pub transactions: u64,
}

impl crate::load::Merge for PgbenchResult {
    /// Adds another run's transactions, time and latencies to these.
    fn merge(&mut self, other: PgbenchResult) {
        let seconds = |r: &PgbenchResult| r.transactions as f64 / r.tps.max(1e-9);
        let transactions = self.transactions + other.transactions;
        let weight = |r: &PgbenchResult| r.transactions as f64 / transactions.max(1) as f64;
        self.latency_ms = self.latency_ms * weight(self) + other.latency_ms * weight(&other);
        self.tps = transactions as f64 / (seconds(self) + seconds(&other)).max(1e-9);
        self.transactions = transactions;
    }
}

/// Where pgbench connects: the cluster's socket, a role and a database.
#[derive(Debug, Clone)]
pub struct PgTarget {
    /// Unix socket folder.
    pub socket_dir: PathBuf,
    /// Role.
    pub user: String,
    /// Password.
    pub password: String,
    /// Database.
    pub database: String,
}

/// Finds pgbench next to the server binaries, or on the PATH.
pub fn pgbench_binary() -> Option<PathBuf> {
    let bindir = dondoc_database::embedded::find_binaries().ok();
    bindir
        .map(|d| d.join("pgbench"))
        .filter(|p| p.is_file())
        .or_else(|| Some(PathBuf::from("/usr/bin/pgbench")).filter(|p| p.is_file()))
}

/// Runs pgbench with `script` for `duration` with `clients` clients.
pub async fn pgbench(
    target: &PgTarget,
    script: &str,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<PgbenchResult> {
    let binary =
        pgbench_binary().context("pgbench not found (apt-get install postgresql-contrib)")?;
    let dir = TempDir::new(&std::env::temp_dir(), "dondoc-bench-pgbench")?;
    let file = dir.0.join("script.sql");
    std::fs::write(&file, script)?;
    let output = tokio::process::Command::new(binary)
        .env("PGPASSWORD", &target.password)
        .arg("-h")
        .arg(&target.socket_dir)
        .args(["-p", "5432", "-U", &target.user, "-n", "-M", "prepared"])
        .args(["-c", &clients.to_string()])
        .args(["-j", &clients.min(2).to_string()])
        .args(["-T", &duration.as_secs().max(1).to_string()])
        .arg("-f")
        .arg(&file)
        .arg(&target.database)
        .stdin(Stdio::null())
        .output()
        .await?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let find = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
    };
    match (find("tps = "), find("latency average = ")) {
        (Some(tps), latency) => Ok(PgbenchResult {
            tps,
            latency_ms: latency.unwrap_or(0.0),
            transactions: find("number of transactions actually processed: ").unwrap_or(0.0) as u64,
        }),
        _ => bail!(
            "pgbench failed: {}{}",
            text,
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}
