//! Caches that take signature checks off the hot path of every call: the
//! gateway reuses the assertion it signed for a principal while most of its
//! lifetime remains ([`AssertionCache`]); services remember the assertions,
//! and the gateway the bearer tokens, they have already verified until they
//! expire ([`VerifiedTokens`]).
//!
//! Both are bounded, hold their lock only to look up or insert (never while
//! signing or verifying), and read time from an injected [`Clock`].

use std::collections::HashMap;
use std::sync::RwLock;

use dondoc_time::Clock;
use http::HeaderValue;

use crate::Principal;
use crate::assertion::AssertionSigner;

/// Principals (gateway) or assertions (services) remembered at most.
pub(crate) const DEFAULT_CAPACITY: usize = 4096;

/// Unix seconds of `clock`'s now (0 before 1970, which no clock here is).
pub(crate) fn unix_seconds(clock: &Clock) -> u64 {
    u64::try_from(clock.now().timestamp()).unwrap_or(0)
}

/// Inserts into a full map only after dropping what `keep` refuses; when
/// everything is still worth keeping, starts over: the bound always holds
/// and a burst of new entries cannot make each insert scan the map.
fn insert_bounded<K, V>(
    map: &mut HashMap<K, V>,
    capacity: usize,
    key: K,
    value: V,
    keep: impl FnMut(&K, &mut V) -> bool,
) where
    K: std::hash::Hash + Eq,
{
    if map.len() >= capacity && !map.contains_key(&key) {
        map.retain(keep);
        if map.len() >= capacity {
            map.clear();
        }
    }
    map.insert(key, value);
}

/// A signed assertion and when it was signed (Unix seconds).
struct Signed {
    signed_at: u64,
    value: HeaderValue,
}

/// The gateway's assertions, one per principal, re-signed once half of
/// their lifetime has passed: a service always receives an assertion with
/// at least half its TTL left, and the gateway signs once per principal per
/// half TTL instead of once per call.
pub struct AssertionCache {
    signer: AssertionSigner,
    clock: Clock,
    /// Seconds an assertion is handed out after it was signed.
    reuse_for: u64,
    capacity: usize,
    entries: RwLock<HashMap<Principal, Signed>>,
}

impl std::fmt::Debug for AssertionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionCache")
            .field("issuer", &self.signer.issuer())
            .field("reuse_for_secs", &self.reuse_for)
            .field("capacity", &self.capacity)
            .field("cached", &self.len())
            .finish_non_exhaustive()
    }
}

impl AssertionCache {
    /// A cache of `signer`'s assertions for at most 4,096 principals.
    pub fn new(signer: AssertionSigner, clock: Clock) -> Self {
        Self::with_capacity(signer, clock, DEFAULT_CAPACITY)
    }

    /// A cache for at most `capacity` principals (at least one).
    pub fn with_capacity(signer: AssertionSigner, clock: Clock, capacity: usize) -> Self {
        // exp = iat + ttl (whole seconds, at least one): reuse for half of it.
        let reuse_for = signer.ttl().as_secs().max(1) / 2;
        Self {
            signer,
            clock,
            reuse_for,
            capacity: capacity.max(1),
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The signer's issuer.
    pub fn issuer(&self) -> &str {
        self.signer.issuer()
    }

    /// Principals currently cached.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when no principal is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn fresh(&self, signed: &Signed, now: u64) -> bool {
        // A clock that went back makes an entry "signed in the future":
        // re-sign rather than trust its arithmetic.
        signed.signed_at <= now && now < signed.signed_at + self.reuse_for
    }

    /// The assertion of `principal` as a header value: the cached one while
    /// more than half its lifetime remains, else a freshly signed one.
    pub fn assertion_for(&self, principal: &Principal) -> HeaderValue {
        let now = unix_seconds(&self.clock);
        {
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            if let Some(signed) = entries.get(principal)
                && self.fresh(signed, now)
            {
                return signed.value.clone();
            }
        }
        // Signed outside the lock: concurrent misses for one principal may
        // both sign, and the later one is kept; both are valid.
        let value = HeaderValue::from_str(&self.signer.sign_at(principal, now))
            .expect("a compact JWS (base64url and dots) is a valid header value");
        if self.reuse_for > 0 {
            let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
            let signed = Signed {
                signed_at: now,
                value: value.clone(),
            };
            insert_bounded(
                &mut entries,
                self.capacity,
                principal.clone(),
                signed,
                |_, s| self.fresh(s, now),
            );
        }
        value
    }
}

/// A verified assertion: whom it asserts and until when (Unix seconds).
#[derive(Debug, Clone)]
struct Verified {
    principal: Principal,
    expires: u64,
}

/// Signed tokens already verified in full, by their exact text: the
/// assertions one [`crate::AssertionVerifier`] checked, the bearer tokens the
/// gateway checked. The text includes the signature, so a tampered or
/// different token never matches an entry; an entry passes only while its
/// `exp` is in the future. A cache belongs to one immutable set of keys: keys
/// that change come with an empty cache, so a token verified with a key that
/// is no longer trusted does not pass.
#[derive(Debug)]
pub struct VerifiedTokens {
    capacity: usize,
    entries: RwLock<HashMap<Box<str>, Verified>>,
}

impl Default for VerifiedTokens {
    /// At most 4,096 tokens.
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl VerifiedTokens {
    /// A cache of at most `capacity` tokens (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The principal `token` proves, if it was verified and is not expired
    /// at `now` (Unix seconds).
    pub fn get(&self, token: &str, now: u64) -> Option<Principal> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .get(token)
            .filter(|verified| now < verified.expires)
            .map(|verified| verified.principal.clone())
    }

    /// Remembers a token that was just verified in full, valid until
    /// `expires` (Unix seconds, exclusive).
    pub fn insert(&self, token: &str, principal: Principal, expires: u64, now: u64) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        insert_bounded(
            &mut entries,
            self.capacity,
            token.into(),
            Verified { principal, expires },
            |_, verified| now < verified.expires,
        );
    }

    /// Tokens currently remembered.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when no token is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::{AssertionError, AssertionVerifier, KeyPair, Role, TrustedKeys};

    const TTL: Duration = Duration::from_secs(60);

    fn clock() -> Clock {
        Clock::manual(chrono::Utc::now())
    }

    fn advance(clock: &Clock, seconds: i64) {
        clock.advance(chrono::Duration::seconds(seconds));
    }

    fn gateway() -> AssertionSigner {
        AssertionSigner::new("gateway", KeyPair::generate(), TTL)
    }

    fn trusting(signer: &AssertionSigner) -> TrustedKeys {
        let mut keys = TrustedKeys::default();
        keys.trust(signer);
        keys
    }

    fn user(n: usize) -> Principal {
        Principal {
            subject: format!("users/u-{n}"),
            agency: Some("so-ldtbxh".into()),
            roles: vec![Role::Agency],
        }
    }

    fn text(value: &HeaderValue) -> String {
        value.to_str().unwrap().to_owned()
    }

    #[test]
    fn an_assertion_is_reused_while_more_than_half_its_lifetime_remains() {
        let clock = clock();
        let signer = gateway();
        let cache = AssertionCache::new(signer.clone(), clock.clone());
        let verifier = AssertionVerifier::with_clock(trusting(&signer), clock.clone());
        let first = cache.assertion_for(&user(1));
        advance(&clock, 29);
        assert_eq!(
            cache.assertion_for(&user(1)),
            first,
            "reused within half the TTL"
        );
        assert_ne!(
            cache.assertion_for(&user(2)),
            first,
            "one assertion per principal"
        );
        assert_eq!(verifier.verify(&text(&first)), Ok(user(1)));
        advance(&clock, 1);
        let second = cache.assertion_for(&user(1));
        assert_ne!(second, first, "re-signed once half the TTL has passed");
        // The fresh one outlives the old one by the time that passed.
        advance(&clock, 30);
        assert_eq!(verifier.verify(&text(&first)), Err(AssertionError::Expired));
        assert_eq!(verifier.verify(&text(&second)), Ok(user(1)));
    }

    #[test]
    fn a_clock_moved_back_gets_a_fresh_assertion() {
        let clock = clock();
        let cache = AssertionCache::new(gateway(), clock.clone());
        let first = cache.assertion_for(&user(1));
        advance(&clock, -10);
        assert_ne!(cache.assertion_for(&user(1)), first);
    }

    #[test]
    fn the_signing_cache_is_bounded() {
        let cache = AssertionCache::with_capacity(gateway(), clock(), 3);
        for n in 0..10 {
            cache.assertion_for(&user(n));
            assert!(cache.len() <= 3, "{} cached", cache.len());
        }
        assert!(!cache.is_empty());
    }

    #[test]
    fn a_verified_assertion_is_remembered_until_it_expires() {
        let clock = clock();
        let signer = gateway();
        let verifier = AssertionVerifier::with_clock(trusting(&signer), clock.clone());
        let token = signer.sign_at(&user(1), unix_seconds(&clock));
        assert_eq!(verifier.verify(&token), Ok(user(1)));
        let now = unix_seconds(&clock);
        assert_eq!(
            verifier.verified.get(&token, now),
            Some(user(1)),
            "cached after the first verification"
        );
        assert_eq!(verifier.verify(&token), Ok(user(1)), "a cache hit");
        assert_eq!(verifier.verified.len(), 1);
        advance(&clock, 59);
        assert_eq!(verifier.verify(&token), Ok(user(1)));
        advance(&clock, 1);
        assert_eq!(verifier.verified.get(&token, now + 60), None);
        assert_eq!(verifier.verify(&token), Err(AssertionError::Expired));
    }

    #[test]
    fn refused_assertions_are_never_remembered_and_tampering_misses_the_cache() {
        let clock = clock();
        let signer = gateway();
        let verifier = AssertionVerifier::with_clock(trusting(&signer), clock.clone());
        let token = signer.sign_at(&user(1), unix_seconds(&clock));
        assert_eq!(verifier.verify(&token), Ok(user(1)));

        // Claims swapped for an admin's, signature kept: a different text.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let now = unix_seconds(&clock);
        parts[1] = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&serde_json::json!({
                "iss": "gateway", "sub": "users/u-1", "agency": "so-ldtbxh",
                "roles": ["admin"], "iat": now, "exp": now + 60
            }))
            .unwrap(),
        );
        let forged = parts.join(".");
        for _ in 0..2 {
            assert_eq!(verifier.verify(&forged), Err(AssertionError::BadSignature));
        }
        // One character of the signature changed.
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for _ in 0..2 {
            assert!(verifier.verify(&flipped).is_err());
        }
        let stranger = AssertionSigner::new("gateway", KeyPair::generate(), TTL);
        let foreign = stranger.sign_at(&user(1), now);
        for _ in 0..2 {
            assert_eq!(verifier.verify(&foreign), Err(AssertionError::BadSignature));
        }
        assert_eq!(verifier.verified.len(), 1, "only the valid assertion");
    }

    #[test]
    fn an_assertion_verified_with_a_key_no_longer_trusted_does_not_pass() {
        let clock = clock();
        let signer = gateway();
        let before = AssertionVerifier::with_clock(trusting(&signer), clock.clone());
        let token = signer.sign_at(&user(1), unix_seconds(&clock));
        assert_eq!(before.verify(&token), Ok(user(1)));
        // Keys rotated: the gateway signs with a new key, the old is removed.
        let rotated = gateway();
        let after = AssertionVerifier::with_clock(trusting(&rotated), clock.clone());
        assert_eq!(after.verify(&token), Err(AssertionError::BadSignature));
        // Or the issuer is no longer trusted at all.
        let none = AssertionVerifier::with_clock(TrustedKeys::default(), clock);
        assert_eq!(none.verify(&token), Err(AssertionError::UnknownKey));
        assert_eq!(before.clone().verify(&token), Ok(user(1)), "clones share");
    }

    #[test]
    fn the_verified_cache_is_bounded() {
        let clock = clock();
        let signer = gateway();
        let verifier = AssertionVerifier::with_capacity(trusting(&signer), clock.clone(), 3);
        let now = unix_seconds(&clock);
        let tokens: Vec<_> = (0..10).map(|n| signer.sign_at(&user(n), now)).collect();
        for (n, token) in tokens.iter().enumerate() {
            assert_eq!(verifier.verify(token), Ok(user(n)));
            assert!(verifier.verified.len() <= 3);
        }
        for (n, token) in tokens.iter().enumerate() {
            assert_eq!(
                verifier.verify(token),
                Ok(user(n)),
                "evicted ones verify again"
            );
        }
    }
}
