//! The notifications domain: when to remind, what to say (in Vietnamese),
//! who may subscribe to what, and how webhooks are signed and retried. No
//! tonic, no sqlx.

pub mod digest;
pub mod message;
pub mod policy;
pub mod subscription;
pub mod webhook;
