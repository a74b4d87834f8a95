//! Everything the gateway can be configured with beyond [`crate::GatewayConfig`]:
//! TLS and client certificates, JWKS, API keys, limits, CORS and the admin
//! listener. [`GatewayExtras::default()`] is the development setup: plaintext
//! HTTP/2, HS256 tokens only, default limits, no CORS origin, no admin port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dondoc_identity::{Principal, Role};
use serde::Deserialize;

use crate::GatewayError;

/// Settings added to the gateway after its first release, all optional.
#[derive(Debug, Clone, Default)]
pub struct GatewayExtras {
    /// Serve TLS (and optionally require client certificates). Without it the
    /// gateway speaks plaintext HTTP/2 (h2c): development only.
    pub tls: Option<TlsSettings>,
    /// Verify RS256 and EdDSA bearer tokens with the keys of this JWKS file,
    /// re-read when it changes.
    pub jwks: Option<JwksSettings>,
    /// API keys for simple integrations, and where to re-read them from.
    pub api_keys: ApiKeySettings,
    /// Rate, concurrency, size and deadline limits.
    pub limits: Limits,
    /// Browser origins allowed to call the gateway with gRPC-Web.
    pub cors: CorsSettings,
    /// Address of the admin listener (`/metrics`, `/healthz`); none: not served.
    pub admin_listen: Option<SocketAddr>,
    /// How the gateway connects to the services behind it.
    pub backends: BackendSettings,
    /// How many threads serve calls.
    pub workers: WorkerSettings,
}

/// The threads that serve calls. Each has a single-threaded runtime of its
/// own, is dealt its share of the callers' connections in turn and keeps
/// its own connections to the backends, so that a call is read, proxied and
/// answered on one thread, as in nginx's worker processes. On one
/// multi-threaded runtime the two legs of a call and the connection tasks
/// between them hop from thread to thread: measured in round 9 of
/// BENCHMARKS.md, the gateway alone in its process spent 1.4 times the CPU
/// per call that it spends on threads of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSettings {
    /// Serving threads. Default: the number of CPUs. `0`: no thread of its
    /// own; calls are served on the runtime that runs the gateway, as in the
    /// embedded suite, where that runtime also runs the services and a call
    /// then goes from the gateway to its service without changing threads.
    pub threads: usize,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl WorkerSettings {
    /// No thread of its own: for a gateway beside the services it fronts, in
    /// one process (the embedded suite, the bench's in-process gateway). There
    /// a call goes from the gateway to its service without changing threads;
    /// with threads of its own beside the services, one client's `CreateTask`s
    /// ran at 0.61-0.62 of pgbench's rate in four runs out of four, against
    /// 0.65-0.68 on one runtime (BENCHMARKS.md, round 9).
    pub fn beside_the_services() -> Self {
        Self { threads: 0 }
    }
}

/// How the gateway connects to each backend service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSettings {
    /// HTTP/2 connections kept to each backend, used in turn, shared out
    /// among the serving threads ([`WorkerSettings`]), at least one each.
    /// Each connection is driven by its own task: one connection serialises
    /// every call of a thread through one task and one TCP stream, which
    /// queues calls under load. Default: the number of CPUs, at least 2.
    pub connections: usize,
}

impl Default for BackendSettings {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            connections: cpus.max(2),
        }
    }
}

/// The gateway's own certificate and, for mTLS, the client certificate
/// authority and the mapping of client certificates to principals.
#[derive(Clone)]
pub struct TlsSettings {
    /// PEM: the server certificate, then its intermediates.
    pub cert_chain_pem: Vec<u8>,
    /// PEM: the server's private key (PKCS#8, PKCS#1 or SEC1). Never logged.
    pub key_pem: Vec<u8>,
    /// PEM: the certificate authorities client certificates must chain to.
    /// None: client certificates are not asked for.
    pub client_ca_pem: Option<Vec<u8>>,
    /// Refuse the TLS handshake of clients without a certificate (when
    /// `client_ca_pem` is set). Otherwise a certificate is optional and
    /// callers without one authenticate with a token or an API key.
    pub require_client_cert: bool,
    /// Which principal each accepted client certificate stands for. A
    /// certificate matching no entry is refused (UNAUTHENTICATED).
    pub client_identities: Vec<ClientIdentity>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("key_pem", &"<redacted>")
            .field("client_ca", &self.client_ca_pem.is_some())
            .field("require_client_cert", &self.require_client_cert)
            .field("client_identities", &self.client_identities)
            .finish_non_exhaustive()
    }
}

/// What part of a client certificate an entry matches, exactly.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertMatch {
    /// The subject's common name (CN).
    CommonName(String),
    /// A DNS name among the subject alternative names.
    DnsName(String),
    /// A URI among the subject alternative names, e.g. a SPIFFE ID.
    Uri(String),
}

/// A client certificate's principal. In JSON:
/// `{"dns_name": "qlvb.tinh.gov.vn", "subject": "systems/qlvb", "agency": "vp-ubnd", "roles": ["office"]}`
/// (exactly one of `common_name`, `dns_name`, `uri`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClientIdentity {
    /// What the certificate must carry.
    #[serde(flatten)]
    pub matcher: CertMatch,
    /// The principal's subject, e.g. `systems/qlvb-so-noi-vu`.
    pub subject: String,
    /// The agency it acts for.
    #[serde(default)]
    pub agency: Option<String>,
    /// Its roles (never `service`).
    pub roles: Vec<Role>,
}

impl ClientIdentity {
    /// The principal this entry grants.
    pub fn principal(&self) -> Principal {
        Principal {
            subject: self.subject.clone(),
            agency: self.agency.clone(),
            roles: self.roles.clone(),
        }
    }
}

/// Where the JWKS lives.
#[derive(Debug, Clone)]
pub struct JwksSettings {
    /// A JSON Web Key Set file (`{"keys": [...]}`) with RSA (RS256) and
    /// Ed25519 (EdDSA) public keys, each with a `kid`.
    pub path: PathBuf,
    /// How often the file is re-read; it is also re-read (at most once a
    /// second) when a token names an unknown `kid`.
    pub poll_interval: Duration,
}

impl JwksSettings {
    /// The file at `path`, polled every 5 s.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            poll_interval: Duration::from_secs(5),
        }
    }
}

/// One API key, stored as the SHA-256 of the key. In JSON:
/// `{"sha256": "<64 hex>", "subject": "systems/cong-dvc", "agency": "vp-ubnd", "roles": ["subscriber"], "revoked": false}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiKey {
    /// Lowercase or uppercase hex of SHA-256(key).
    pub sha256: String,
    /// The principal's subject.
    pub subject: String,
    /// The agency it acts for.
    #[serde(default)]
    pub agency: Option<String>,
    /// Its roles (never `service`).
    pub roles: Vec<Role>,
    /// A revoked key is refused with reason `API_KEY_REVOKED`.
    #[serde(default)]
    pub revoked: bool,
}

/// The API keys: listed inline and/or in a file re-read when it changes.
#[derive(Debug, Clone, Default)]
pub struct ApiKeySettings {
    /// Keys fixed for the process's life.
    pub keys: Vec<ApiKey>,
    /// A JSON array of [`ApiKey`], re-read every `poll_interval`: add, revoke
    /// or remove keys without a restart.
    pub file: Option<PathBuf>,
    /// How often `file` is re-read (default 5 s when zero).
    pub poll_interval: Duration,
}

/// The gateway's limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Calls per second each principal (subject) may make, sustained.
    pub rate_per_second: f64,
    /// How many calls a principal may make at once above the sustained rate.
    pub burst: u32,
    /// Proxied calls in progress at once (an open stream counts until it
    /// ends); beyond it calls are shed with UNAVAILABLE at once.
    pub max_concurrent_calls: usize,
    /// Largest request message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Longest deadline of a unary call; also the deadline of calls that set
    /// none. Streams keep the caller's deadline, if any.
    pub max_deadline: Duration,
    /// Extra attempts of a read method answered UNAVAILABLE before any response.
    pub max_retries: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rate_per_second: 50.0,
            burst: 100,
            max_concurrent_calls: 1024,
            max_message_bytes: 4 * 1024 * 1024,
            max_deadline: Duration::from_secs(30),
            max_retries: 2,
        }
    }
}

/// CORS for gRPC-Web from browsers.
#[derive(Debug, Clone, Default)]
pub struct CorsSettings {
    /// Exact origins (`https://dondoc.tinh.gov.vn`) allowed; `*` allows any
    /// (development). Empty: no cross-origin call is allowed.
    pub allowed_origins: Vec<String>,
}

impl GatewayExtras {
    /// Reads the extras from the process environment; see
    /// [`GatewayExtras::from_lookup`] for the variables.
    pub fn from_env() -> Result<Self, GatewayError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the extras from `lookup` (the environment, in production):
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `DONDOC_GATEWAY_TLS_CERT`, `DONDOC_GATEWAY_TLS_KEY` | PEM files of the server certificate chain and key; both or neither |
    /// | `DONDOC_GATEWAY_CLIENT_CA` | PEM file of the CAs of client certificates (mTLS) |
    /// | `DONDOC_GATEWAY_REQUIRE_CLIENT_CERT` | `true`: refuse clients without a certificate (default `false`) |
    /// | `DONDOC_GATEWAY_CLIENT_IDENTITIES` | JSON file: array of [`ClientIdentity`] |
    /// | `DONDOC_JWT_JWKS_FILE` | JWKS file (RS256, EdDSA) |
    /// | `DONDOC_JWT_JWKS_POLL_SECS` | re-read interval (default 5) |
    /// | `DONDOC_GATEWAY_API_KEYS_FILE` | JSON file: array of [`ApiKey`], re-read every 5 s |
    /// | `DONDOC_GATEWAY_RATE_PER_SECOND`, `DONDOC_GATEWAY_BURST` | per principal (default 50, 100) |
    /// | `DONDOC_GATEWAY_MAX_CONCURRENT_CALLS` | default 1024 |
    /// | `DONDOC_GATEWAY_MAX_MESSAGE_BYTES` | default 4194304 |
    /// | `DONDOC_GATEWAY_MAX_DEADLINE_SECS` | default 30 |
    /// | `DONDOC_GATEWAY_MAX_RETRIES` | default 2 |
    /// | `DONDOC_GATEWAY_CORS_ORIGINS` | comma-separated origins, `*` for any |
    /// | `DONDOC_GATEWAY_ADMIN_LISTEN` | e.g. `127.0.0.1:9700`; unset: no admin listener |
    /// | `DONDOC_GATEWAY_BACKEND_CONNECTIONS` | HTTP/2 connections to each service, shared out among the serving threads, at least one each (default: CPUs, at least 2) |
    /// | `DONDOC_GATEWAY_WORKERS` | threads serving calls, each on a runtime of its own (default: CPUs); `0`: on the gateway's runtime |
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, GatewayError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let read = |name: &str, path: &str| {
            std::fs::read(path).map_err(|e| GatewayError::Config(format!("{name}={path}: {e}")))
        };
        fn parse<T: std::str::FromStr>(
            name: &str,
            value: Option<String>,
            default: T,
        ) -> Result<T, GatewayError>
        where
            T::Err: std::fmt::Display,
        {
            match value {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|e| GatewayError::Config(format!("{name}={v:?}: {e}"))),
            }
        }
        let defaults = Limits::default();
        let mut extras = GatewayExtras {
            limits: Limits {
                rate_per_second: parse(
                    "DONDOC_GATEWAY_RATE_PER_SECOND",
                    get("DONDOC_GATEWAY_RATE_PER_SECOND"),
                    defaults.rate_per_second,
                )?,
                burst: parse(
                    "DONDOC_GATEWAY_BURST",
                    get("DONDOC_GATEWAY_BURST"),
                    defaults.burst,
                )?,
                max_concurrent_calls: parse(
                    "DONDOC_GATEWAY_MAX_CONCURRENT_CALLS",
                    get("DONDOC_GATEWAY_MAX_CONCURRENT_CALLS"),
                    defaults.max_concurrent_calls,
                )?,
                max_message_bytes: parse(
                    "DONDOC_GATEWAY_MAX_MESSAGE_BYTES",
                    get("DONDOC_GATEWAY_MAX_MESSAGE_BYTES"),
                    defaults.max_message_bytes,
                )?,
                max_deadline: Duration::from_secs(parse(
                    "DONDOC_GATEWAY_MAX_DEADLINE_SECS",
                    get("DONDOC_GATEWAY_MAX_DEADLINE_SECS"),
                    defaults.max_deadline.as_secs(),
                )?),
                max_retries: parse(
                    "DONDOC_GATEWAY_MAX_RETRIES",
                    get("DONDOC_GATEWAY_MAX_RETRIES"),
                    defaults.max_retries,
                )?,
            },
            backends: BackendSettings {
                connections: parse(
                    "DONDOC_GATEWAY_BACKEND_CONNECTIONS",
                    get("DONDOC_GATEWAY_BACKEND_CONNECTIONS"),
                    BackendSettings::default().connections,
                )?,
            },
            workers: WorkerSettings {
                threads: parse(
                    "DONDOC_GATEWAY_WORKERS",
                    get("DONDOC_GATEWAY_WORKERS"),
                    WorkerSettings::default().threads,
                )?,
            },
            ..Default::default()
        };
        if extras.backends.connections == 0 {
            return Err(GatewayError::Config(
                "DONDOC_GATEWAY_BACKEND_CONNECTIONS must be at least 1".into(),
            ));
        }
        match (
            get("DONDOC_GATEWAY_TLS_CERT"),
            get("DONDOC_GATEWAY_TLS_KEY"),
        ) {
            (Some(cert), Some(key)) => {
                let client_identities = match get("DONDOC_GATEWAY_CLIENT_IDENTITIES") {
                    None => Vec::new(),
                    Some(path) => {
                        serde_json::from_slice(&read("DONDOC_GATEWAY_CLIENT_IDENTITIES", &path)?)
                            .map_err(|e| {
                                GatewayError::Config(format!(
                                    "DONDOC_GATEWAY_CLIENT_IDENTITIES={path}: {e}"
                                ))
                            })?
                    }
                };
                extras.tls = Some(TlsSettings {
                    cert_chain_pem: read("DONDOC_GATEWAY_TLS_CERT", &cert)?,
                    key_pem: read("DONDOC_GATEWAY_TLS_KEY", &key)?,
                    client_ca_pem: get("DONDOC_GATEWAY_CLIENT_CA")
                        .map(|path| read("DONDOC_GATEWAY_CLIENT_CA", &path))
                        .transpose()?,
                    require_client_cert: parse(
                        "DONDOC_GATEWAY_REQUIRE_CLIENT_CERT",
                        get("DONDOC_GATEWAY_REQUIRE_CLIENT_CERT"),
                        false,
                    )?,
                    client_identities,
                });
            }
            (None, None) => {
                if get("DONDOC_GATEWAY_CLIENT_CA").is_some() {
                    return Err(GatewayError::Config(
                        "DONDOC_GATEWAY_CLIENT_CA needs DONDOC_GATEWAY_TLS_CERT and \
                         DONDOC_GATEWAY_TLS_KEY"
                            .into(),
                    ));
                }
            }
            _ => {
                return Err(GatewayError::Config(
                    "set both DONDOC_GATEWAY_TLS_CERT and DONDOC_GATEWAY_TLS_KEY, or neither"
                        .into(),
                ));
            }
        }
        if let Some(path) = get("DONDOC_JWT_JWKS_FILE") {
            extras.jwks = Some(JwksSettings {
                path: path.into(),
                poll_interval: Duration::from_secs(parse(
                    "DONDOC_JWT_JWKS_POLL_SECS",
                    get("DONDOC_JWT_JWKS_POLL_SECS"),
                    5,
                )?),
            });
        }
        extras.api_keys.file = get("DONDOC_GATEWAY_API_KEYS_FILE").map(PathBuf::from);
        extras.cors.allowed_origins = get("DONDOC_GATEWAY_CORS_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|o| o.trim().to_string())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        extras.admin_listen = get("DONDOC_GATEWAY_ADMIN_LISTEN")
            .map(|v| {
                v.trim().parse::<SocketAddr>().map_err(|e| {
                    GatewayError::Config(format!("DONDOC_GATEWAY_ADMIN_LISTEN={v:?}: {e}"))
                })
            })
            .transpose()?;
        Ok(extras)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_and_keys_read_from_json() {
        let identities: Vec<ClientIdentity> = serde_json::from_str(
            r#"[{"dns_name": "qlvb.tinh.gov.vn", "subject": "systems/qlvb", "agency": "vp-ubnd", "roles": ["office"]},
                {"uri": "spiffe://tinh/dvc", "subject": "systems/dvc", "roles": ["subscriber"]}]"#,
        )
        .unwrap();
        assert_eq!(
            identities[0].matcher,
            CertMatch::DnsName("qlvb.tinh.gov.vn".into())
        );
        assert_eq!(identities[1].principal().agency, None);
        let keys: Vec<ApiKey> = serde_json::from_str(
            r#"[{"sha256": "00", "subject": "systems/x", "roles": ["inspector"], "revoked": true}]"#,
        )
        .unwrap();
        assert!(keys[0].revoked);
    }

    #[test]
    fn the_environment_fills_the_extras() {
        let env = |name: &str| match name {
            "DONDOC_GATEWAY_RATE_PER_SECOND" => Some("7.5".to_string()),
            "DONDOC_GATEWAY_MAX_DEADLINE_SECS" => Some("12".to_string()),
            "DONDOC_GATEWAY_CORS_ORIGINS" => Some("https://a.vn, https://b.vn".to_string()),
            "DONDOC_GATEWAY_ADMIN_LISTEN" => Some("127.0.0.1:9700".to_string()),
            "DONDOC_JWT_JWKS_FILE" => Some("/etc/dondoc/jwks.json".to_string()),
            "DONDOC_GATEWAY_BACKEND_CONNECTIONS" => Some("3".to_string()),
            "DONDOC_GATEWAY_WORKERS" => Some("4".to_string()),
            _ => None,
        };
        let extras = GatewayExtras::from_lookup(env).unwrap();
        assert_eq!(extras.limits.rate_per_second, 7.5);
        assert_eq!(extras.limits.max_deadline, Duration::from_secs(12));
        assert_eq!(extras.limits.burst, 100);
        assert_eq!(
            extras.cors.allowed_origins,
            ["https://a.vn", "https://b.vn"]
        );
        assert_eq!(extras.admin_listen, Some("127.0.0.1:9700".parse().unwrap()));
        assert_eq!(extras.backends.connections, 3);
        assert_eq!(extras.workers.threads, 4);
        assert!(extras.tls.is_none());
        assert_eq!(
            extras.jwks.unwrap().path,
            PathBuf::from("/etc/dondoc/jwks.json")
        );
        let half = |name: &str| (name == "DONDOC_GATEWAY_TLS_CERT").then(|| "x".to_string());
        assert!(GatewayExtras::from_lookup(half).is_err());
        let none =
            |name: &str| (name == "DONDOC_GATEWAY_BACKEND_CONNECTIONS").then(|| "0".to_string());
        assert!(GatewayExtras::from_lookup(none).is_err());
        let shared = |name: &str| (name == "DONDOC_GATEWAY_WORKERS").then(|| "0".to_string());
        assert_eq!(
            GatewayExtras::from_lookup(shared).unwrap().workers.threads,
            0
        );
        let words = |name: &str| (name == "DONDOC_GATEWAY_WORKERS").then(|| "two".to_string());
        assert!(GatewayExtras::from_lookup(words).is_err());
        let defaults = GatewayExtras::from_lookup(|_| None).unwrap();
        assert!(defaults.backends.connections >= 2);
        assert!(defaults.workers.threads >= 1);
    }
}
