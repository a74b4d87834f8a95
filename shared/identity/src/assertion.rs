use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use dondoc_time::Clock;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::cache::{DEFAULT_CAPACITY, VerifiedTokens, unix_seconds};
use crate::{Principal, Role};

/// The metadata key that carries the gateway's signed assertion.
pub const ASSERTION_HEADER: &str = "x-dondoc-assertion";

/// Why an assertion was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// No assertion on the call.
    #[error("the call carries no identity assertion: call through the gateway")]
    Missing,
    /// Not three base64url parts, or bad JSON.
    #[error("the identity assertion is malformed")]
    Malformed,
    /// Signed by a key nobody trusts.
    #[error("the identity assertion is signed by an unknown key")]
    UnknownKey,
    /// Signature does not verify.
    #[error("the identity assertion's signature is invalid")]
    BadSignature,
    /// Past its expiry.
    #[error("the identity assertion has expired")]
    Expired,
    /// A service key asserting someone other than that service.
    #[error("a service key may only assert its own service")]
    ForeignSubject,
}

/// An Ed25519 key pair; its secret never appears in `Debug` output.
#[derive(Clone)]
pub struct KeyPair(SigningKey);

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair(public={})", self.public_base64())
    }
}

impl KeyPair {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// A key from its 32-byte seed in standard base64.
    pub fn from_base64(seed: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(seed.trim())
            .map_err(|e| format!("signing key is not base64: {e}"))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "signing key must be a 32-byte Ed25519 seed".to_string())?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// The seed in standard base64 (a secret: store it as one).
    pub fn secret_base64(&self) -> String {
        STANDARD.encode(self.0.to_bytes())
    }

    /// The public key in standard base64.
    pub fn public_base64(&self) -> String {
        STANDARD.encode(self.0.verifying_key().to_bytes())
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    kid: String,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agency: Option<String>,
    roles: Vec<Role>,
    iat: u64,
    exp: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs assertions as one issuer ("gateway", or a service name).
#[derive(Debug, Clone)]
pub struct AssertionSigner {
    issuer: String,
    key: KeyPair,
    ttl: Duration,
}

impl AssertionSigner {
    /// A signer for `issuer` with assertions valid for `ttl`.
    pub fn new(issuer: impl Into<String>, key: KeyPair, ttl: Duration) -> Self {
        Self {
            issuer: issuer.into(),
            key,
            ttl,
        }
    }

    /// The issuer name, which is also the key id.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The public half, for the verifiers' trusted keys.
    pub fn public_base64(&self) -> String {
        self.key.public_base64()
    }

    /// How long an assertion is valid after it is signed.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A compact EdDSA JWS asserting `principal`.
    pub fn sign(&self, principal: &Principal) -> String {
        self.sign_at(principal, unix_now())
    }

    /// [`AssertionSigner::sign`] as if now were `now` (Unix seconds).
    pub(crate) fn sign_at(&self, principal: &Principal, now: u64) -> String {
        let header = Header {
            alg: "EdDSA".into(),
            kid: self.issuer.clone(),
        };
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: principal.subject.clone(),
            agency: principal.agency.clone(),
            roles: principal.roles.clone(),
            iat: now,
            exp: now + self.ttl.as_secs().max(1),
        };
        // Serializing these plain structs cannot fail.
        let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default());
        let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signing_input = format!("{header}.{claims}");
        let signature = self.key.0.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }
}

/// The public keys a service trusts, by issuer.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys(HashMap<String, VerifyingKey>);

impl TrustedKeys {
    /// Parses `issuer:base64,issuer:base64,…`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut keys = TrustedKeys::default();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (issuer, key) = entry
                .split_once(':')
                .ok_or_else(|| format!("trusted key {entry:?} is not issuer:base64"))?;
            keys.insert_base64(issuer, key)?;
        }
        Ok(keys)
    }

    /// Adds one issuer's public key in standard base64.
    pub fn insert_base64(&mut self, issuer: &str, key: &str) -> Result<(), String> {
        let bytes = STANDARD
            .decode(key.trim())
            .map_err(|e| format!("public key of {issuer} is not base64: {e}"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| format!("public key of {issuer} must be 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|e| format!("public key of {issuer} is invalid: {e}"))?;
        self.0.insert(issuer.to_string(), key);
        Ok(())
    }

    /// Adds a signer's public key.
    pub fn trust(&mut self, signer: &AssertionSigner) {
        // A signer's own public key always parses.
        let _ = self.insert_base64(signer.issuer(), &signer.public_base64());
    }

    /// The `issuer:base64,…` form that [`TrustedKeys::parse`] reads.
    pub fn to_spec(&self) -> String {
        let mut entries: Vec<_> = self
            .0
            .iter()
            .map(|(issuer, key)| format!("{issuer}:{}", STANDARD.encode(key.to_bytes())))
            .collect();
        entries.sort();
        entries.join(",")
    }
}

/// Verifies assertions against the trusted keys. An assertion verified once
/// is remembered by its exact text until it expires (at most 4,096 at once),
/// so the calls that carry the same assertion skip the Ed25519 check. Clones
/// share the keys and what was verified; a verifier built with other keys
/// remembers nothing of this one's.
#[derive(Debug, Clone)]
pub struct AssertionVerifier {
    keys: Arc<TrustedKeys>,
    clock: Clock,
    pub(crate) verified: Arc<VerifiedTokens>,
}

/// The issuer whose key may assert any principal.
const GATEWAY_ISSUER: &str = "gateway";

impl AssertionVerifier {
    /// A verifier trusting `keys`, on the system clock.
    pub fn new(keys: TrustedKeys) -> Self {
        Self::with_clock(keys, Clock::system())
    }

    /// A verifier trusting `keys` that reads expiry against `clock`.
    pub fn with_clock(keys: TrustedKeys, clock: Clock) -> Self {
        Self::with_capacity(keys, clock, DEFAULT_CAPACITY)
    }

    pub(crate) fn with_capacity(keys: TrustedKeys, clock: Clock, capacity: usize) -> Self {
        Self {
            keys: Arc::new(keys),
            clock,
            verified: Arc::new(VerifiedTokens::new(capacity)),
        }
    }

    /// The principal `token` asserts, if it is valid now.
    pub fn verify(&self, token: &str) -> Result<Principal, AssertionError> {
        let now = unix_seconds(&self.clock);
        if let Some(principal) = self.verified.get(token, now) {
            return Ok(principal);
        }
        let (principal, expires) = self.verify_at(token, now)?;
        self.verified.insert(token, principal.clone(), expires, now);
        Ok(principal)
    }

    /// The principal `token` asserts and its expiry, if it is valid at
    /// `now` (Unix seconds): the full check, signature included.
    fn verify_at(&self, token: &str, now: u64) -> Result<(Principal, u64), AssertionError> {
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AssertionError::Malformed);
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| AssertionError::Malformed)
        };
        let parsed_header: Header =
            serde_json::from_slice(&decode(header)?).map_err(|_| AssertionError::Malformed)?;
        if parsed_header.alg != "EdDSA" {
            return Err(AssertionError::Malformed);
        }
        let key = self
            .keys
            .0
            .get(&parsed_header.kid)
            .ok_or(AssertionError::UnknownKey)?;
        let signature =
            Signature::from_slice(&decode(signature)?).map_err(|_| AssertionError::Malformed)?;
        key.verify(format!("{header}.{claims}").as_bytes(), &signature)
            .map_err(|_| AssertionError::BadSignature)?;
        let claims: Claims =
            serde_json::from_slice(&decode(claims)?).map_err(|_| AssertionError::Malformed)?;
        if claims.iss != parsed_header.kid {
            return Err(AssertionError::Malformed);
        }
        if claims.exp <= now {
            return Err(AssertionError::Expired);
        }
        let principal = Principal {
            subject: claims.sub,
            agency: claims.agency,
            roles: claims.roles,
        };
        if claims.iss != GATEWAY_ISSUER && principal != Principal::service(&claims.iss) {
            return Err(AssertionError::ForeignSubject);
        }
        Ok((principal, claims.exp))
    }
}

/// An assertion and when it was signed (Unix seconds).
type SignedAt = (u64, tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

/// A tonic interceptor that adds a service's own assertion to its calls to
/// other services, re-signing before the previous one gets old.
#[derive(Debug, Clone)]
pub struct ServiceCredentials {
    signer: AssertionSigner,
    principal: Principal,
    cached: Arc<Mutex<Option<SignedAt>>>,
}

impl ServiceCredentials {
    /// Credentials for the service the signer's issuer names.
    pub fn new(signer: AssertionSigner) -> Self {
        let principal = Principal::service(signer.issuer());
        Self {
            signer,
            principal,
            cached: Arc::default(),
        }
    }

    fn current(&self) -> tonic::metadata::MetadataValue<tonic::metadata::Ascii> {
        let now = unix_now();
        let refresh_after = (self.signer.ttl.as_secs() / 2).max(1);
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((signed_at, value)) = cached.as_ref()
            && now < signed_at + refresh_after
        {
            return value.clone();
        }
        // A JWS is base64url and dots: always valid ASCII metadata.
        let value = self
            .signer
            .sign(&self.principal)
            .parse()
            .expect("a compact JWS is valid ASCII metadata");
        *cached = Some((now, value));
        cached.as_ref().map(|(_, v)| v.clone()).expect("just set")
    }
}

impl tonic::service::Interceptor for ServiceCredentials {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert(ASSERTION_HEADER, self.current());
        // The trace continues in the called service.
        let traceparent = dondoc_telemetry::current_traceparent();
        if !traceparent.is_empty()
            && let Ok(value) = traceparent.parse()
        {
            request.metadata_mut().insert("traceparent", value);
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (AssertionSigner, AssertionSigner, AssertionVerifier) {
        let gateway = AssertionSigner::new("gateway", KeyPair::generate(), Duration::from_secs(60));
        let service =
            AssertionSigner::new("assignments", KeyPair::generate(), Duration::from_secs(60));
        let mut keys = TrustedKeys::default();
        keys.trust(&gateway);
        keys.trust(&service);
        (gateway, service, AssertionVerifier::new(keys))
    }

    fn officer() -> Principal {
        Principal {
            subject: "users/office-1".into(),
            agency: Some("vp-ubnd".into()),
            roles: vec![Role::Office],
        }
    }

    #[test]
    fn the_gateway_may_assert_anyone() {
        let (gateway, _, verifier) = setup();
        assert_eq!(verifier.verify(&gateway.sign(&officer())), Ok(officer()));
    }

    #[test]
    fn a_service_may_assert_only_itself() {
        let (_, service, verifier) = setup();
        assert_eq!(
            verifier.verify(&service.sign(&Principal::service("assignments"))),
            Ok(Principal::service("assignments"))
        );
        assert_eq!(
            verifier.verify(&service.sign(&officer())),
            Err(AssertionError::ForeignSubject)
        );
        assert_eq!(
            verifier.verify(&service.sign(&Principal::service("directives"))),
            Err(AssertionError::ForeignSubject)
        );
    }

    #[test]
    fn forged_tampered_and_expired_assertions_are_refused() {
        let (gateway, _, verifier) = setup();
        let stranger =
            AssertionSigner::new("gateway", KeyPair::generate(), Duration::from_secs(60));
        assert_eq!(
            verifier.verify(&stranger.sign(&officer())),
            Err(AssertionError::BadSignature)
        );
        let unknown =
            AssertionSigner::new("intruder", KeyPair::generate(), Duration::from_secs(60));
        assert_eq!(
            verifier.verify(&unknown.sign(&officer())),
            Err(AssertionError::UnknownKey)
        );
        let token = gateway.sign(&officer());
        let mut parts: Vec<&str> = token.split('.').collect();
        let mut admin = officer();
        admin.roles = vec![Role::Admin];
        let forged_claims = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&serde_json::json!({
                "iss": "gateway", "sub": admin.subject, "roles": ["admin"],
                "iat": unix_now(), "exp": unix_now() + 60
            }))
            .unwrap(),
        );
        parts[1] = &forged_claims;
        assert_eq!(
            verifier.verify(&parts.join(".")),
            Err(AssertionError::BadSignature)
        );
        assert_eq!(
            verifier.verify("not-a-token"),
            Err(AssertionError::Malformed)
        );
        let token = gateway.sign(&officer());
        assert_eq!(
            verifier.verify_at(&token, unix_now() + 61).map(|(p, _)| p),
            Err(AssertionError::Expired)
        );
    }

    #[test]
    fn trusted_keys_round_trip_through_their_spec() {
        let (gateway, service, _) = setup();
        let mut keys = TrustedKeys::default();
        keys.trust(&gateway);
        keys.trust(&service);
        let parsed = TrustedKeys::parse(&keys.to_spec()).unwrap();
        let verifier = AssertionVerifier::new(parsed);
        assert!(verifier.verify(&gateway.sign(&officer())).is_ok());
        assert!(TrustedKeys::parse("gateway:not base64").is_err());
    }
}
