//! Authentication of callers: bearer JWTs (RS256 and EdDSA with the keys of
//! a JWKS file, HS256 with a development secret), checked for signature,
//! `iss`, `aud`, `exp` and `nbf`; API keys stored as SHA-256 hashes; and
//! verified TLS client certificates mapped to principals.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::extras::{ApiKey, ApiKeySettings, CertMatch, ClientIdentity, JwksSettings};
use crate::watched::Watched;

use dondoc_errors::Error;
use dondoc_identity::{Principal, Role, VerifiedTokens};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// How the gateway checks bearer tokens.
#[derive(Clone)]
pub struct JwtConfig {
    /// The shared HS256 secret, for development. Empty: HS256 tokens are
    /// refused (then a JWKS must be configured). A secret: never logged, and
    /// `Debug` does not show it.
    pub hs256_secret: String,
    /// The expected `iss` claim, e.g. `"https://id.dondoc.example"`.
    pub issuer: String,
    /// The expected `aud` claim, e.g. `"dondoc"`.
    pub audience: String,
}

impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("hs256_secret", &"<redacted>")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECONDS: u64 = 30;

/// The claims [`mint_token`] writes.
#[derive(Serialize)]
struct MintedClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    agency: Option<&'a str>,
    roles: Vec<&'static str>,
    iat: u64,
    nbf: u64,
    exp: u64,
}

/// The claims the gateway reads (`iss`, `aud`, `exp`, `nbf` are checked by
/// the validation itself; `exp` also bounds how long the token is remembered).
#[derive(Deserialize)]
struct TokenClaims {
    exp: u64,
    sub: String,
    #[serde(default)]
    agency: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Mints an HS256 token for `principal`, valid from now for `ttl`: for
/// development credentials and tests. A token naming the role `service` is
/// minted as asked, and refused by the gateway.
pub fn mint_token(jwt: &JwtConfig, principal: &Principal, ttl: Duration) -> String {
    let now = unix_now();
    let claims = MintedClaims {
        iss: &jwt.issuer,
        aud: &jwt.audience,
        sub: &principal.subject,
        agency: principal.agency.as_deref(),
        roles: principal.roles.iter().map(|r| r.as_str()).collect(),
        iat: now,
        nbf: now,
        exp: now + ttl.as_secs(),
    };
    // HMAC signing of a plain struct cannot fail: there is no key format to
    // reject and the claims always serialize.
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(jwt.hs256_secret.as_bytes()),
    )
    .expect("HS256 signing of serializable claims cannot fail")
}

/// How a caller proved who it is, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// A bearer JWT.
    Jwt,
    /// An `x-api-key`.
    ApiKey,
    /// A TLS client certificate.
    ClientCert,
}

impl Method {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Jwt => "jwt",
            Method::ApiKey => "api_key",
            Method::ClientCert => "client_cert",
        }
    }
}

/// The header API keys are sent in.
pub(crate) const API_KEY_HEADER: &str = "x-api-key";

/// How often, at most, an unknown `kid` makes the gateway re-read the JWKS.
const JWKS_ON_DEMAND_INTERVAL: Duration = Duration::from_secs(1);

/// The verification keys of a JWKS file, by `kid`, and the tokens they
/// verified: a reloaded JWKS is a new set with an empty cache, so a token of
/// a key that was removed is refused at once.
pub(crate) struct KeySet {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    verified: VerifiedTokens,
}

impl KeySet {
    /// Parses a JWKS. Keys other than RSA (RS256) and Ed25519 (EdDSA)
    /// signature keys with a `kid` are skipped; a set without any is refused.
    pub(crate) fn parse(raw: &[u8]) -> Result<KeySet, String> {
        use jsonwebtoken::jwk::{
            AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse,
        };
        let set: JwkSet = serde_json::from_slice(raw).map_err(|e| format!("not a JWKS: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                tracing::warn!("JWKS key without kid skipped");
                continue;
            };
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
                (AlgorithmParameters::OctetKeyPair(okp), None | Some(KeyAlgorithm::EdDSA))
                    if okp.curve == EllipticCurve::Ed25519 =>
                {
                    Algorithm::EdDSA
                }
                _ => {
                    tracing::warn!(
                        kid,
                        "JWKS key skipped: only RS256 and EdDSA (Ed25519) keys are accepted"
                    );
                    continue;
                }
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid}: {e}"))?;
            keys.insert(kid, (algorithm, key));
        }
        if keys.is_empty() {
            return Err("no RS256 or EdDSA key with a kid".into());
        }
        Ok(KeySet {
            keys,
            verified: VerifiedTokens::default(),
        })
    }
}

/// One API key entry, its hash decoded.
struct StoredKey {
    hash: [u8; 32],
    principal: Principal,
    revoked: bool,
}

/// The API keys in force.
pub(crate) struct ApiKeys(Vec<StoredKey>);

impl ApiKeys {
    pub(crate) fn new(keys: &[ApiKey]) -> Result<ApiKeys, String> {
        let mut stored = Vec::with_capacity(keys.len());
        for key in keys {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(key.sha256.trim(), &mut hash).map_err(|_| {
                format!(
                    "the API key of {} must be given as the 64 hex digits of its SHA-256",
                    key.subject
                )
            })?;
            check_roles(&key.subject, &key.roles)?;
            stored.push(StoredKey {
                hash,
                principal: Principal {
                    subject: key.subject.clone(),
                    agency: key.agency.clone().filter(|a| !a.trim().is_empty()),
                    roles: key.roles.clone(),
                },
                revoked: key.revoked,
            });
        }
        Ok(ApiKeys(stored))
    }

    fn parse(raw: &[u8]) -> Result<ApiKeys, String> {
        let keys: Vec<ApiKey> = serde_json::from_slice(raw)
            .map_err(|e| format!("not a JSON array of API keys: {e}"))?;
        ApiKeys::new(&keys)
    }

    /// The entry whose hash is SHA-256(`presented`), compared in constant
    /// time against every entry.
    fn find(&self, presented: &[u8]) -> Option<&StoredKey> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let mut found = None;
        for key in &self.0 {
            if bool::from(key.hash.ct_eq(&digest)) && found.is_none() {
                found = Some(key);
            }
        }
        found
    }
}

/// A principal may hold every role but `service`.
pub(crate) fn check_roles(subject: &str, roles: &[Role]) -> Result<(), String> {
    if roles.contains(&Role::Service) {
        return Err(format!(
            "{subject}: the role service cannot be granted to callers"
        ));
    }
    if subject.trim().is_empty() {
        return Err("a principal's subject must not be empty".into());
    }
    Ok(())
}

/// What the caller's connection proved, if anything.
pub(crate) struct Peer<'a> {
    /// The DER of a verified client certificate.
    pub(crate) client_cert: Option<&'a [u8]>,
}

/// Checks the credentials of calls: a bearer JWT (`authorization`), else an
/// API key (`x-api-key`), else a verified client certificate.
#[derive(Clone)]
pub(crate) struct Authenticator {
    hs256: Option<DecodingKey>,
    /// The HS256 tokens verified with the (immutable) secret.
    hs256_verified: Arc<VerifiedTokens>,
    jwks: Option<Arc<Watched<KeySet>>>,
    validations: Arc<HashMap<Algorithm, Validation>>,
    inline_keys: Arc<ApiKeys>,
    key_file: Option<Arc<Watched<ApiKeys>>>,
    identities: Arc<Vec<ClientIdentity>>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

fn unauthenticated(reason: &'static str, message: impl Into<String>) -> Error {
    Error::Unauthenticated {
        reason,
        message: message.into(),
    }
}

impl Authenticator {
    /// HS256 tokens with `jwt`'s secret only (the first release's behaviour).
    #[cfg(test)]
    pub(crate) fn new(jwt: &JwtConfig) -> Self {
        Self::build(jwt, None, &ApiKeySettings::default(), &[])
            .expect("an HS256-only authenticator needs no files")
    }

    /// An authenticator from the configuration; files are read now.
    pub(crate) fn build(
        jwt: &JwtConfig,
        jwks: Option<&JwksSettings>,
        api_keys: &ApiKeySettings,
        identities: &[ClientIdentity],
    ) -> Result<Self, String> {
        let mut validations = HashMap::new();
        for algorithm in [Algorithm::HS256, Algorithm::RS256, Algorithm::EdDSA] {
            let mut validation = Validation::new(algorithm);
            validation.set_issuer(&[&jwt.issuer]);
            validation.set_audience(&[&jwt.audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.validate_exp = true;
            validation.validate_nbf = true;
            validation.leeway = LEEWAY_SECONDS;
            validations.insert(algorithm, validation);
        }
        let jwks = jwks
            .map(|settings| Watched::load(&settings.path, "JWKS", KeySet::parse).map(Arc::new))
            .transpose()?;
        let key_file = api_keys
            .file
            .as_deref()
            .map(|path| Watched::load(path, "API keys", ApiKeys::parse).map(Arc::new))
            .transpose()?;
        for identity in identities {
            check_roles(&identity.subject, &identity.roles)?;
        }
        Ok(Self {
            hs256: (!jwt.hs256_secret.is_empty())
                .then(|| DecodingKey::from_secret(jwt.hs256_secret.as_bytes())),
            hs256_verified: Arc::new(VerifiedTokens::default()),
            jwks,
            validations: Arc::new(validations),
            inline_keys: Arc::new(ApiKeys::new(&api_keys.keys)?),
            key_file,
            identities: Arc::new(identities.to_vec()),
        })
    }

    /// Starts re-reading the JWKS and API key files.
    pub(crate) fn watch(
        &self,
        jwks: Option<&JwksSettings>,
        api_keys: &ApiKeySettings,
        shutdown: &CancellationToken,
    ) {
        if let (Some(watched), Some(settings)) = (&self.jwks, jwks) {
            watched.spawn_poll(settings.poll_interval, shutdown.clone());
        }
        if let Some(watched) = &self.key_file {
            watched.spawn_poll(api_keys.poll_interval, shutdown.clone());
        }
    }

    fn accepts_api_keys(&self) -> bool {
        self.key_file.is_some() || !self.inline_keys.0.is_empty()
    }

    /// The principal the call's credentials prove, or UNAUTHENTICATED
    /// saying what to do about it.
    pub(crate) async fn authenticate(
        &self,
        headers: &http::HeaderMap,
        peer: &Peer<'_>,
    ) -> Result<(Principal, Method), Error> {
        if headers.contains_key(http::header::AUTHORIZATION) {
            return self.bearer(headers).await.map(|p| (p, Method::Jwt));
        }
        if headers.contains_key(API_KEY_HEADER) {
            return self.api_key(headers).map(|p| (p, Method::ApiKey));
        }
        if let Some(der) = peer.client_cert {
            return self.certificate(der).map(|p| (p, Method::ClientCert));
        }
        let message = if self.accepts_api_keys() {
            "missing credentials: send authorization: Bearer <token>, or x-api-key: <key>"
        } else {
            "missing bearer token: send authorization: Bearer <token>"
        };
        Err(unauthenticated("MISSING_TOKEN", message))
    }

    async fn bearer(&self, headers: &http::HeaderMap) -> Result<Principal, Error> {
        let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(unauthenticated(
                "MALFORMED_AUTHORIZATION",
                "send exactly one authorization: Bearer <token>",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                unauthenticated(
                    "MALFORMED_AUTHORIZATION",
                    "the authorization metadata must be: Bearer <token>",
                )
            })?;
        self.verify(token).await
    }

    /// The principal of a bearer token. A token verified once is
    /// remembered by its exact text until its `exp`, so a caller's later
    /// calls skip the signature check, the JSON and the claim checks.
    async fn verify(&self, token: &str) -> Result<Principal, Error> {
        let now = unix_now();
        if let Some(principal) = self.hs256_verified.get(token, now) {
            return Ok(principal);
        }
        let jwks = self.jwks.as_ref().map(|jwks| jwks.current());
        if let Some(principal) = jwks.as_ref().and_then(|set| set.verified.get(token, now)) {
            return Ok(principal);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| describe(e.kind()))?;
        let (key, key_set) = match header.alg {
            Algorithm::HS256 => {
                let key = self.hs256.clone().ok_or_else(|| {
                    unauthenticated(
                        "UNSUPPORTED_ALGORITHM",
                        "HS256 tokens are not accepted here: use a token signed by the identity \
                         provider (RS256 or EdDSA)",
                    )
                })?;
                (key, None)
            }
            Algorithm::RS256 | Algorithm::EdDSA => {
                let (key, set) = self.signing_key(&header).await?;
                (key, Some(set))
            }
            _ => return Err(unsupported(self.hs256.is_some(), self.jwks.is_some())),
        };
        let validation = self
            .validations
            .get(&header.alg)
            .ok_or_else(|| unsupported(self.hs256.is_some(), self.jwks.is_some()))?;
        let claims = jsonwebtoken::decode::<TokenClaims>(token, &key, validation)
            .map_err(|e| describe(e.kind()))?
            .claims;
        let expires = claims.exp;
        let principal = principal_of(claims)?;
        let verified = match &key_set {
            Some(set) => &set.verified,
            None => &*self.hs256_verified,
        };
        verified.insert(token, principal.clone(), expires, now);
        Ok(principal)
    }

    /// The JWKS key the token names and the set it is in, re-reading the
    /// JWKS once when unknown.
    async fn signing_key(&self, header: &Header) -> Result<(DecodingKey, Arc<KeySet>), Error> {
        let Some(jwks) = &self.jwks else {
            return Err(unsupported(self.hs256.is_some(), false));
        };
        let Some(kid) = header.kid.as_deref() else {
            return Err(unauthenticated(
                "MISSING_KEY_ID",
                "the token's header has no kid: the gateway cannot tell which key signed it",
            ));
        };
        let lookup = |set: Arc<KeySet>| {
            let found = set.keys.get(kid).cloned();
            found.map(|found| (found, set))
        };
        let found = match lookup(jwks.current()) {
            Some(found) => Some(found),
            None => {
                if jwks.reload_on_demand(JWKS_ON_DEMAND_INTERVAL).await {
                    lookup(jwks.current())
                } else {
                    None
                }
            }
        };
        let Some(((algorithm, key), set)) = found else {
            return Err(unauthenticated(
                "UNKNOWN_SIGNING_KEY",
                format!(
                    "the token was signed with a key (kid {kid:?}) this gateway does not trust: \
                     obtain a new token from the identity provider"
                ),
            ));
        };
        if algorithm != header.alg {
            return Err(unauthenticated(
                "UNSUPPORTED_ALGORITHM",
                format!(
                    "the key {kid:?} signs {algorithm:?} tokens, not {:?}",
                    header.alg
                ),
            ));
        }
        Ok((key, set))
    }

    fn api_key(&self, headers: &http::HeaderMap) -> Result<Principal, Error> {
        let mut values = headers.get_all(API_KEY_HEADER).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(unauthenticated(
                "MALFORMED_API_KEY",
                "send exactly one x-api-key",
            ));
        };
        let presented = value.as_bytes();
        let file = self.key_file.as_ref().map(|f| f.current());
        let found = self
            .inline_keys
            .find(presented)
            .or_else(|| file.as_deref().and_then(|keys| keys.find(presented)));
        match found {
            Some(key) if key.revoked => Err(unauthenticated(
                "API_KEY_REVOKED",
                "this API key has been revoked: ask the administrator of dondoc for a new one",
            )),
            Some(key) => Ok(key.principal.clone()),
            None => Err(unauthenticated(
                "INVALID_API_KEY",
                "this API key is not valid: check it, or ask the administrator of dondoc for one",
            )),
        }
    }

    fn certificate(&self, der: &[u8]) -> Result<Principal, Error> {
        let names = CertNames::parse(der).ok_or_else(|| {
            unauthenticated(
                "INVALID_CLIENT_CERTIFICATE",
                "the client certificate cannot be read",
            )
        })?;
        self.identities
            .iter()
            .find(|identity| names.matches(&identity.matcher))
            .map(ClientIdentity::principal)
            .ok_or_else(|| {
                unauthenticated(
                    "CERTIFICATE_NOT_MAPPED",
                    format!(
                        "the client certificate ({}) is trusted but not mapped to an agency: ask \
                         the administrator of dondoc to map it",
                        names.describe()
                    ),
                )
            })
    }
}

/// The names a client certificate carries.
struct CertNames {
    common_names: Vec<String>,
    dns_names: Vec<String>,
    uris: Vec<String>,
}

impl CertNames {
    fn parse(der: &[u8]) -> Option<CertNames> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let common_names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
            .collect();
        let mut dns_names = Vec::new();
        let mut uris = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                    GeneralName::URI(uri) => uris.push((*uri).to_owned()),
                    _ => {}
                }
            }
        }
        Some(CertNames {
            common_names,
            dns_names,
            uris,
        })
    }

    fn matches(&self, matcher: &CertMatch) -> bool {
        match matcher {
            CertMatch::CommonName(cn) => self.common_names.iter().any(|c| c == cn),
            CertMatch::DnsName(dns) => self.dns_names.iter().any(|d| d.eq_ignore_ascii_case(dns)),
            CertMatch::Uri(uri) => self.uris.iter().any(|u| u == uri),
        }
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        parts.extend(self.common_names.iter().map(|n| format!("CN={n}")));
        parts.extend(self.dns_names.iter().map(|n| format!("DNS:{n}")));
        parts.extend(self.uris.iter().map(|n| format!("URI:{n}")));
        if parts.is_empty() {
            "without names".into()
        } else {
            parts.join(", ")
        }
    }
}

fn unsupported(hs256: bool, jwks: bool) -> Error {
    let accepted = match (hs256, jwks) {
        (true, true) => "RS256, EdDSA and HS256",
        (true, false) => "HS256",
        _ => "RS256 and EdDSA",
    };
    unauthenticated(
        "UNSUPPORTED_ALGORITHM",
        format!("token algorithm is not accepted: {accepted} expected"),
    )
}

fn principal_of(claims: TokenClaims) -> Result<Principal, Error> {
    if claims.sub.trim().is_empty() {
        return Err(unauthenticated(
            "INVALID_TOKEN",
            "the token's subject (sub) is empty",
        ));
    }
    let mut roles = Vec::with_capacity(claims.roles.len());
    for name in &claims.roles {
        match name.parse::<Role>() {
            Ok(Role::Service) => {
                tracing::warn!(subject = %claims.sub, "a caller's token claims the service role");
                return Err(unauthenticated(
                    "FORBIDDEN_ROLE",
                    "the role \"service\" cannot be held by callers of the gateway",
                ));
            }
            Ok(role) => {
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
            Err(_) => {
                return Err(unauthenticated(
                    "UNKNOWN_ROLE",
                    format!(
                        "the token names an unknown role {name:?}; roles are office, leader, \
                         agency, inspector, subscriber and admin"
                    ),
                ));
            }
        }
    }
    Ok(Principal {
        subject: claims.sub,
        agency: claims.agency.filter(|a| !a.trim().is_empty()),
        roles,
    })
}

/// A caller-facing explanation of why a token was refused, without internals.
fn describe(kind: &ErrorKind) -> Error {
    match kind {
        ErrorKind::ExpiredSignature => {
            unauthenticated("TOKEN_EXPIRED", "token expired: obtain a new one")
        }
        ErrorKind::ImmatureSignature => unauthenticated(
            "TOKEN_NOT_YET_VALID",
            "token not yet valid (nbf is in the future): check the clock of its issuer",
        ),
        ErrorKind::InvalidAudience => unauthenticated(
            "WRONG_AUDIENCE",
            "token was issued for another audience (aud): request a token for dondoc",
        ),
        ErrorKind::InvalidIssuer => unauthenticated(
            "WRONG_ISSUER",
            "token was issued by an issuer this gateway does not trust (iss)",
        ),
        ErrorKind::InvalidSignature => unauthenticated(
            "INVALID_SIGNATURE",
            "token signature is invalid: obtain a token from the configured issuer",
        ),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => unauthenticated(
            "UNSUPPORTED_ALGORITHM",
            "token algorithm is not accepted: RS256, EdDSA (or HS256 in development) expected",
        ),
        ErrorKind::MissingRequiredClaim(claim) => unauthenticated(
            "MISSING_CLAIM",
            format!("token lacks the required {claim} claim"),
        ),
        _ => unauthenticated(
            "MALFORMED_TOKEN",
            "malformed bearer token: send authorization: Bearer <JWT>",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Authenticator {
        fn check(&self, headers: &http::HeaderMap) -> Result<Principal, Error> {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(self.authenticate(headers, &Peer { client_cert: None }))
                .map(|(principal, _)| principal)
        }
    }

    fn jwt() -> JwtConfig {
        JwtConfig {
            hs256_secret: "a development secret of some length".into(),
            issuer: "https://id.test".into(),
            audience: "dondoc".into(),
        }
    }

    fn headers(token: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    fn officer() -> Principal {
        Principal {
            subject: "users/office-1".into(),
            agency: Some("vp-ubnd".into()),
            roles: vec![Role::Office, Role::Leader],
        }
    }

    #[test]
    fn a_minted_token_authenticates_its_principal() {
        let token = mint_token(&jwt(), &officer(), Duration::from_secs(60));
        let auth = Authenticator::new(&jwt());
        assert_eq!(auth.check(&headers(&token)).unwrap(), officer());
    }

    #[test]
    fn the_service_role_is_refused() {
        let token = mint_token(
            &jwt(),
            &Principal::service("directives"),
            Duration::from_secs(60),
        );
        let error = Authenticator::new(&jwt())
            .check(&headers(&token))
            .unwrap_err();
        assert_eq!(error.reason(), "FORBIDDEN_ROLE");
    }

    #[test]
    fn unknown_roles_and_bad_schemes_are_refused() {
        let now = unix_now();
        let claims = serde_json::json!({
            "iss": "https://id.test", "aud": "dondoc", "sub": "users/x",
            "roles": ["Office"], "exp": now + 60,
        });
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(jwt().hs256_secret.as_bytes()),
        )
        .unwrap();
        let auth = Authenticator::new(&jwt());
        assert_eq!(
            auth.check(&headers(&token)).unwrap_err().reason(),
            "UNKNOWN_ROLE"
        );
        let mut basic = http::HeaderMap::new();
        basic.insert(http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(
            auth.check(&basic).unwrap_err().reason(),
            "MALFORMED_AUTHORIZATION"
        );
        assert_eq!(
            auth.check(&headers("not.a.jwt")).unwrap_err().reason(),
            "MALFORMED_TOKEN"
        );
    }

    #[test]
    fn a_token_not_yet_valid_is_refused() {
        let now = unix_now();
        let claims = serde_json::json!({
            "iss": "https://id.test", "aud": "dondoc", "sub": "users/x",
            "roles": ["office"], "nbf": now + 600, "exp": now + 1200,
        });
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(jwt().hs256_secret.as_bytes()),
        )
        .unwrap();
        let error = Authenticator::new(&jwt())
            .check(&headers(&token))
            .unwrap_err();
        assert_eq!(error.reason(), "TOKEN_NOT_YET_VALID");
    }

    #[test]
    fn a_verified_token_is_remembered_by_its_exact_text_until_it_expires() {
        let auth = Authenticator::new(&jwt());
        let token = mint_token(&jwt(), &officer(), Duration::from_secs(60));
        assert_eq!(auth.check(&headers(&token)).unwrap(), officer());
        assert_eq!(auth.hs256_verified.get(&token, unix_now()), Some(officer()));
        assert_eq!(auth.check(&headers(&token)).unwrap(), officer());
        assert_eq!(auth.hs256_verified.len(), 1);

        // Another signature is another text: checked in full, refused.
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
        let tampered = format!("{signed}.{flipped}{}", &signature[1..]);
        assert_eq!(
            auth.check(&headers(&tampered)).unwrap_err().reason(),
            "INVALID_SIGNATURE"
        );
        assert_eq!(auth.hs256_verified.len(), 1);

        // Past its exp (accepted within the leeway), a token is never
        // answered from the cache: every call checks it again.
        let now = unix_now();
        let claims = serde_json::json!({
            "iss": "https://id.test", "aud": "dondoc", "sub": "users/late",
            "roles": ["office"], "nbf": now - 60, "exp": now - 5,
        });
        let late = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(jwt().hs256_secret.as_bytes()),
        )
        .unwrap();
        assert_eq!(auth.check(&headers(&late)).unwrap().subject, "users/late");
        assert_eq!(auth.hs256_verified.get(&late, unix_now()), None);
    }

    #[test]
    fn the_secret_is_not_in_debug_output() {
        assert!(!format!("{:?}", jwt()).contains("development secret"));
    }
}
