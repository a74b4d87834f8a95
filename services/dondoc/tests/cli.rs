//! The `dondoc` binary as a user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dondoc_contracts::directives::v1::agency_service_client::AgencyServiceClient;
use dondoc_contracts::directives::v1::{Agency, AgencyKind, CreateAgencyRequest, GetAgencyRequest};

const BIN: &str = env!("CARGO_BIN_EXE_dondoc");

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/documents")
}

#[test]
fn parse_prints_the_fixture_format_offline() {
    let file = fixtures().join("vpcp-tb-659-2025.txt");
    let output = Command::new(BIN)
        .arg("parse")
        .arg(&file)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["source"], "vpcp-tb-659-2025.txt");
    assert_eq!(json["document"]["kind"], "thong_bao");
    assert_eq!(json["document"]["number"], "659/TB-VPCP");
    assert!(
        json["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["due"] == "2025-12-05")
    );
}

#[test]
fn parse_names_a_missing_file() {
    let output = Command::new(BIN)
        .args(["parse", "/no/such/file.txt"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/no/such/file.txt"));
}

#[test]
fn keygen_prints_matching_keys() {
    let output = Command::new(BIN).arg("keygen").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
            .to_string()
    };
    let trusted = dondoc_identity::TrustedKeys::parse(&value("DONDOC_TRUSTED_KEYS")).unwrap();
    let gateway =
        dondoc_identity::KeyPair::from_base64(&value("DONDOC_GATEWAY_ASSERTION_KEY")).unwrap();
    let signer = dondoc_identity::AssertionSigner::new("gateway", gateway, Duration::from_secs(60));
    let verifier = dondoc_identity::AssertionVerifier::new(trusted);
    let principal = dondoc_identity::Principal::service("gateway");
    assert!(verifier.verify(&signer.sign(&principal)).is_ok());
    assert_eq!(value("DONDOC_NOTIFICATIONS_DB_PASSWORD").len(), 32);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `dondoc up` and waits until it says it is up.
fn up(data: &Path, port: u16) -> Child {
    let mut child = Command::new(BIN)
        .args(["up", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data)
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("dondoc is up") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("dondoc up starts");
    child
}

/// Ctrl-C, then the exit; the cluster must be stopped too.
fn interrupt(mut child: Child, data: &Path) {
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "dondoc up did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status}");
    assert!(
        !data.join("pgdata/postmaster.pid").exists(),
        "PostgreSQL was left running"
    );
}

fn office_token(data: &Path) -> String {
    let env = std::fs::read_to_string(data.join("tokens.env")).unwrap();
    env.lines()
        .find_map(|l| l.strip_prefix("OFFICE_TOKEN="))
        .unwrap()
        .to_string()
}

type Agencies = AgencyServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>,
    >,
>;

async fn connect(port: u16, data: &Path) -> Agencies {
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let token: tonic::metadata::MetadataValue<_> =
        format!("Bearer {}", office_token(data)).parse().unwrap();
    AgencyServiceClient::with_interceptor(
        channel,
        Box::new(move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", token.clone());
            Ok(r)
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_keeps_data_across_a_restart_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join(".dondoc");
    let port = free_port();
    let child = tokio::task::block_in_place(|| up(&data, port));
    let mut client = connect(port, &data).await;
    client
        .create_agency(CreateAgencyRequest {
            agency: Some(Agency {
                code: "so-noi-vu".into(),
                display_name: "Sở Nội vụ".into(),
                kind: AgencyKind::Department as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create an agency");
    tokio::task::block_in_place(|| interrupt(child, &data));

    let child = tokio::task::block_in_place(|| up(&data, port));
    let mut client = connect(port, &data).await;
    let agency = client
        .get_agency(GetAgencyRequest {
            name: "agencies/so-noi-vu".into(),
        })
        .await
        .expect("the agency survived the restart")
        .into_inner()
        .agency
        .unwrap();
    assert_eq!(agency.display_name, "Sở Nội vụ");
    tokio::task::block_in_place(|| interrupt(child, &data));
}
