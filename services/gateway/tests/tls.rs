//! Authentication through real TLS: client certificates from a test CA
//! mapped to principals, JWKS-signed tokens (EdDSA and RS256, with a key
//! added while the gateway runs), and API keys (one revoked while it runs).
//! Every certificate and key is made by the test.

mod support;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dondoc_contracts::directives::v1::agency_service_client::AgencyServiceClient;
use dondoc_gateway::{
    ApiKey, CertMatch, ClientIdentity, GatewayExtras, JwksSettings, JwtConfig, TlsSettings,
};
use dondoc_identity::Role;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_types::StatusExt;

use support::pki::{Ca, Issued, tls_channel};
use support::{Env, get_agency, start_with, unix_now, with_token};

/// The CA of provincial systems, the gateway's own certificate and a
/// gateway that requires (or not) client certificates.
struct Pki {
    ca: Ca,
    env: Env,
}

fn tls_settings(ca: &Ca, require_client_cert: bool) -> TlsSettings {
    let server = ca.server();
    TlsSettings {
        cert_chain_pem: server.cert_pem.into_bytes(),
        key_pem: server.key_pem.into_bytes(),
        client_ca_pem: Some(ca.pem().into_bytes()),
        require_client_cert,
        client_identities: vec![
            ClientIdentity {
                matcher: CertMatch::Uri("spiffe://tinh.gov.vn/qlvb".into()),
                subject: "systems/qlvb".into(),
                agency: Some("so-noi-vu".into()),
                roles: vec![Role::Agency],
            },
            ClientIdentity {
                matcher: CertMatch::CommonName("dvc.tinh.gov.vn".into()),
                subject: "systems/dvc".into(),
                agency: Some("vp-ubnd".into()),
                roles: vec![Role::Office],
            },
        ],
    }
}

async fn start_tls(require_client_cert: bool, mut extras: GatewayExtras, jwt: JwtConfig) -> Pki {
    let ca = Ca::new("UBND tinh test CA");
    extras.tls = Some(tls_settings(&ca, require_client_cert));
    let env = start_with(extras, jwt).await;
    Pki { ca, env }
}

impl Pki {
    async fn channel(&self, client: Option<&Issued>) -> Channel {
        tls_channel(self.env.addr, &self.ca.pem(), client)
            .await
            .unwrap()
    }
}

async fn echo(
    channel: Channel,
    request: Request<dondoc_contracts::directives::v1::GetAgencyRequest>,
) -> Result<(String, String, String), tonic::Status> {
    let agency = AgencyServiceClient::new(channel)
        .get_agency(request)
        .await?
        .into_inner()
        .agency
        .unwrap();
    Ok((agency.display_name, agency.code, agency.short_name))
}

#[tokio::test]
async fn a_mapped_client_certificate_gets_through_as_its_agency() {
    let pki = start_tls(true, GatewayExtras::default(), support::test_jwt()).await;
    let by_uri = pki.ca.client("qlvb", Some("spiffe://tinh.gov.vn/qlvb"));
    let channel = pki.channel(Some(&by_uri)).await;
    let seen = echo(channel, Request::new(get_agency())).await.unwrap();
    assert_eq!(
        seen,
        ("systems/qlvb".into(), "so-noi-vu".into(), "agency".into())
    );

    let by_cn = pki.ca.client("dvc.tinh.gov.vn", None);
    let seen = echo(pki.channel(Some(&by_cn)).await, Request::new(get_agency()))
        .await
        .unwrap();
    assert_eq!(seen.0, "systems/dvc");
    assert_eq!(seen.2, "office");
}

#[tokio::test]
async fn an_unmapped_certificate_is_unauthenticated_with_a_clear_message() {
    let pki = start_tls(true, GatewayExtras::default(), support::test_jwt()).await;
    let stranger = pki.ca.client("unknown-system", None);
    let status = echo(
        pki.channel(Some(&stranger)).await,
        Request::new(get_agency()),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "CERTIFICATE_NOT_MAPPED"
    );
    assert!(
        status.message().contains("CN=unknown-system"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_certificate_from_another_ca_or_none_is_refused_when_required() {
    let pki = start_tls(true, GatewayExtras::default(), support::test_jwt()).await;
    let rogue_ca = Ca::new("rogue");
    let rogue = rogue_ca.client("dvc.tinh.gov.vn", None);
    for client in [Some(&rogue), None] {
        // With TLS 1.3 the refusal may surface at connect or at the first call.
        let outcome = match tls_channel(pki.env.addr, &pki.ca.pem(), client).await {
            Err(_) => None,
            Ok(channel) => Some(echo(channel, Request::new(get_agency())).await),
        };
        if let Some(result) = outcome {
            let status = result.expect_err("the handshake must be refused");
            assert_ne!(status.code(), Code::Ok);
        }
    }
}

#[tokio::test]
async fn without_a_required_certificate_a_token_over_tls_still_works() {
    let pki = start_tls(false, GatewayExtras::default(), support::test_jwt()).await;
    let token = pki
        .env
        .token("users/can-bo", Some("so-tai-chinh"), &[Role::Agency]);
    let seen = echo(pki.channel(None).await, with_token(get_agency(), &token))
        .await
        .unwrap();
    assert_eq!(seen.0, "users/can-bo");
    // Without any credential: told what to send.
    let status = echo(pki.channel(None).await, Request::new(get_agency()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "MISSING_TOKEN"
    );
}

// ---------------------------------------------------------------------------
// JWKS.

struct EdKey {
    kid: String,
    signing: ed25519_dalek::SigningKey,
}

impl EdKey {
    fn new(kid: &str) -> EdKey {
        EdKey {
            kid: kid.into(),
            signing: ed25519_dalek::SigningKey::generate(&mut rand_core_os()),
        }
    }

    fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(self.signing.verifying_key().as_bytes()),
        })
    }

    fn token(&self, claims: &serde_json::Value) -> String {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let der = self.signing.to_pkcs8_der().unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
        )
        .unwrap()
    }
}

fn rand_core_os() -> rand_core_shim::OsRng {
    rand_core_shim::OsRng
}

mod rand_core_shim {
    pub use ed25519_dalek::ed25519::signature::rand_core::OsRng;
}

fn claims(jwt: &JwtConfig, subject: &str, exp_from_now: i64) -> serde_json::Value {
    let now = unix_now() as i64;
    serde_json::json!({
        "iss": jwt.issuer, "aud": jwt.audience, "sub": subject, "agency": "so-noi-vu",
        "roles": ["agency"], "iat": now, "nbf": now - 10, "exp": now + exp_from_now,
    })
}

fn write_jwks(path: &std::path::Path, keys: &[serde_json::Value]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::json!({ "keys": keys }).to_string()).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

fn production_jwt() -> JwtConfig {
    JwtConfig {
        hs256_secret: String::new(), // no development tokens
        issuer: "https://id.tinh.gov.vn".into(),
        audience: "dondoc".into(),
    }
}

#[tokio::test]
async fn jwks_tokens_are_verified_and_rotated_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    let first = EdKey::new("ed-2026-01");
    // An RS256 key too: the provider's other algorithm.
    let rsa_key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let rsa_jwk = {
        use rsa::traits::PublicKeyParts;
        serde_json::json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "rsa-1",
            "n": URL_SAFE_NO_PAD.encode(rsa_key.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(rsa_key.e().to_bytes_be()),
        })
    };
    write_jwks(&jwks_path, &[first.jwk(), rsa_jwk.clone()]);
    let jwt = production_jwt();
    let extras = GatewayExtras {
        jwks: Some(JwksSettings {
            path: jwks_path.clone(),
            poll_interval: Duration::from_secs(3600), // only on-demand reloads here
        }),
        ..Default::default()
    };
    let pki = start_tls(false, extras, jwt.clone()).await;
    let channel = pki.channel(None).await;

    let first_token = first.token(&claims(&jwt, "users/ed", 300));
    for _ in 0..2 {
        // The second call is answered from the verified-token cache.
        let seen = echo(channel.clone(), with_token(get_agency(), &first_token))
            .await
            .unwrap();
        assert_eq!(
            seen,
            ("users/ed".into(), "so-noi-vu".into(), "agency".into())
        );
    }

    let rs256 = {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let der = rsa_key.to_pkcs1_der().unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some("rsa-1".into());
        jsonwebtoken::encode(
            &header,
            &claims(&jwt, "users/rsa", 300),
            &jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()),
        )
        .unwrap()
    };
    let seen = echo(channel.clone(), with_token(get_agency(), &rs256))
        .await
        .unwrap();
    assert_eq!(seen.0, "users/rsa");

    // Expired: refused, and told so.
    let expired = first.token(&claims(&jwt, "users/ed", -3600));
    let status = echo(channel.clone(), with_token(get_agency(), &expired))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "TOKEN_EXPIRED"
    );

    // A key published after the start is accepted without a restart.
    let second = EdKey::new("ed-2026-02");
    let token = second.token(&claims(&jwt, "users/rotated", 300));
    write_jwks(&jwks_path, &[first.jwk(), second.jwk(), rsa_jwk.clone()]);
    let seen = echo(channel.clone(), with_token(get_agency(), &token))
        .await
        .unwrap();
    assert_eq!(seen.0, "users/rotated");

    // A key nobody published is refused.
    let stranger = EdKey::new("ed-unknown");
    let stranger_token = stranger.token(&claims(&jwt, "users/x", 300));
    let status = echo(channel.clone(), with_token(get_agency(), &stranger_token))
        .await
        .unwrap_err();
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "UNKNOWN_SIGNING_KEY"
    );

    // A key withdrawn from the JWKS: once the file is re-read, its tokens
    // are refused, even one the gateway verified and remembered before.
    write_jwks(&jwks_path, &[second.jwk(), rsa_jwk]);
    let status = dondoc_testing::eventually(Duration::from_secs(10), || {
        let (channel, stranger, first) =
            (channel.clone(), stranger_token.clone(), first_token.clone());
        async move {
            // An unknown kid makes the gateway re-read the JWKS, at most once a second.
            let _ = echo(channel.clone(), with_token(get_agency(), &stranger)).await;
            echo(channel, with_token(get_agency(), &first)).await.err()
        }
    })
    .await;
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "UNKNOWN_SIGNING_KEY"
    );
    let seen = echo(channel.clone(), with_token(get_agency(), &token))
        .await
        .unwrap();
    assert_eq!(seen.0, "users/rotated", "the remaining keys still verify");

    // No HS256 secret configured: development tokens are refused.
    let dev = support::test_jwt();
    let hs = dondoc_gateway::mint_token(
        &JwtConfig {
            issuer: jwt.issuer.clone(),
            ..dev
        },
        &dondoc_identity::Principal {
            subject: "users/dev".into(),
            agency: None,
            roles: vec![Role::Admin],
        },
        Duration::from_secs(60),
    );
    let status = echo(channel, with_token(get_agency(), &hs))
        .await
        .unwrap_err();
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "UNSUPPORTED_ALGORITHM"
    );
}

// ---------------------------------------------------------------------------
// API keys.

fn api_key(key: &str, subject: &str, revoked: bool) -> ApiKey {
    ApiKey {
        sha256: hex_of(&Sha256::digest(key.as_bytes())),
        subject: subject.into(),
        agency: Some("vp-ubnd".into()),
        roles: vec![Role::Inspector],
        revoked,
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn api_key_json(keys: &[ApiKey]) -> String {
    let keys: Vec<_> = keys
        .iter()
        .map(|k| {
            serde_json::json!({
                "sha256": k.sha256, "subject": k.subject, "agency": k.agency,
                "roles": k.roles, "revoked": k.revoked,
            })
        })
        .collect();
    serde_json::Value::Array(keys).to_string()
}

fn with_api_key<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-api-key", key.parse().unwrap());
    request
}

#[tokio::test]
async fn api_keys_work_until_revoked_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let keys_path = dir.path().join("api-keys.json");
    let live = api_key("key-of-the-portal", "systems/cong-thong-tin", false);
    std::fs::write(&keys_path, api_key_json(std::slice::from_ref(&live))).unwrap();
    let mut extras = GatewayExtras::default();
    extras.api_keys.keys = vec![api_key("an-old-key", "systems/old", true)];
    extras.api_keys.file = Some(keys_path.clone());
    extras.api_keys.poll_interval = Duration::from_millis(100);
    let pki = start_tls(false, extras, support::test_jwt()).await;
    let channel = pki.channel(None).await;

    let seen = echo(
        channel.clone(),
        with_api_key(get_agency(), "key-of-the-portal"),
    )
    .await
    .unwrap();
    assert_eq!(
        seen,
        (
            "systems/cong-thong-tin".into(),
            "vp-ubnd".into(),
            "inspector".into()
        )
    );

    let status = echo(channel.clone(), with_api_key(get_agency(), "an-old-key"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "API_KEY_REVOKED"
    );

    let status = echo(channel.clone(), with_api_key(get_agency(), "guessed"))
        .await
        .unwrap_err();
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "INVALID_API_KEY"
    );

    // Revoked in the file while the gateway runs.
    let revoked = ApiKey {
        revoked: true,
        ..live
    };
    let tmp = keys_path.with_extension("tmp");
    std::fs::write(&tmp, api_key_json(&[revoked])).unwrap();
    std::fs::rename(&tmp, &keys_path).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let result = echo(
            channel.clone(),
            with_api_key(get_agency(), "key-of-the-portal"),
        )
        .await;
        match result {
            Err(status) => {
                assert_eq!(
                    status.get_error_details().error_info().unwrap().reason,
                    "API_KEY_REVOKED"
                );
                break;
            }
            Ok(_) => assert!(std::time::Instant::now() < deadline, "never revoked"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
