//! The notifications domain: when to remind, and what to say (in
//! Vietnamese). No tonic, no sqlx.

pub mod message;
pub mod policy;
