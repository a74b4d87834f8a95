//! Authentication of callers: bearer JWTs (HS256 with a configured secret in
//! this release), checked for signature, `iss`, `aud`, `exp` and `nbf`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dondoc_errors::Error;
use dondoc_identity::{Principal, Role};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// How the gateway checks bearer tokens.
#[derive(Clone)]
pub struct JwtConfig {
    /// The shared HS256 secret (development and simple deployments). A
    /// secret: never logged, and `Debug` does not show it.
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
/// the validation itself).
#[derive(Deserialize)]
struct TokenClaims {
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

/// Checks the `authorization` metadata of calls.
#[derive(Clone)]
pub(crate) struct Authenticator {
    key: DecodingKey,
    validation: Validation,
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
    pub(crate) fn new(jwt: &JwtConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&jwt.issuer]);
        validation.set_audience(&[&jwt.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        Self {
            key: DecodingKey::from_secret(jwt.hs256_secret.as_bytes()),
            validation,
        }
    }

    /// The principal the call's bearer token proves, or UNAUTHENTICATED
    /// saying what to do about it.
    pub(crate) fn authenticate(&self, headers: &http::HeaderMap) -> Result<Principal, Error> {
        let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(unauthenticated(
                "MISSING_TOKEN",
                "missing bearer token: send authorization: Bearer <token>",
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
        self.verify(token)
    }

    fn verify(&self, token: &str) -> Result<Principal, Error> {
        let claims = jsonwebtoken::decode::<TokenClaims>(token, &self.key, &self.validation)
            .map_err(|e| describe(e.kind()))?
            .claims;
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
            "token algorithm is not accepted: HS256 expected",
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
        assert_eq!(auth.authenticate(&headers(&token)).unwrap(), officer());
    }

    #[test]
    fn the_service_role_is_refused() {
        let token = mint_token(
            &jwt(),
            &Principal::service("directives"),
            Duration::from_secs(60),
        );
        let error = Authenticator::new(&jwt())
            .authenticate(&headers(&token))
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
            auth.authenticate(&headers(&token)).unwrap_err().reason(),
            "UNKNOWN_ROLE"
        );
        let mut basic = http::HeaderMap::new();
        basic.insert(http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(
            auth.authenticate(&basic).unwrap_err().reason(),
            "MALFORMED_AUTHORIZATION"
        );
        assert_eq!(
            auth.authenticate(&headers("not.a.jwt"))
                .unwrap_err()
                .reason(),
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
            .authenticate(&headers(&token))
            .unwrap_err();
        assert_eq!(error.reason(), "TOKEN_NOT_YET_VALID");
    }

    #[test]
    fn the_secret_is_not_in_debug_output() {
        assert!(!format!("{:?}", jwt()).contains("development secret"));
    }
}
