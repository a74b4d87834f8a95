//! Who is calling: the [`Principal`], the short-lived signed assertion that
//! carries it from the gateway to the services, and the tower layer that
//! refuses every call without a valid one.
//!
//! The gateway authenticates people and systems, drops any identity metadata
//! the caller sent, and forwards an [`ASSERTION_HEADER`] signed with its
//! Ed25519 key. Services trust a fixed set of public keys. A key belongs to
//! one issuer: the gateway may assert any principal, while a service's own
//! key can only assert that service itself (`services/<name>`, role
//! `service`), so a compromised service cannot impersonate people.
//!
//! Ed25519 stays off the per-call path: the gateway reuses the assertion of a
//! principal while more than half its lifetime remains ([`AssertionCache`]),
//! and a service's [`AssertionVerifier`] remembers the exact assertions it
//! has verified until they expire.

#![forbid(unsafe_code)]

mod assertion;
mod cache;
mod layer;
mod principal;

pub use assertion::{
    ASSERTION_HEADER, AssertionError, AssertionSigner, AssertionVerifier, KeyPair,
    ServiceCredentials, TrustedKeys,
};
pub use cache::{AssertionCache, VerifiedTokens};
pub use layer::{RequireAssertion, RequireAssertionLayer, is_public_path};
pub use principal::{Principal, Role, principal};
