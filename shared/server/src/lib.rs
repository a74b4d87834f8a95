//! What every dondoc gRPC server shares.
//!
//! * [`config`]: the typed configuration common to services.
//! * [`serve`]: the one place where the layer stack is composed (identity
//!   first), health and reflection are added, and SIGTERM drains within a
//!   grace period.
//! * [`listing`]: AIP-160 style filters and opaque keyset page tokens bound to
//!   their filter.
//! * [`convert`]: protobuf ↔ domain conversions of dates and timestamps.
//! * [`mutation`]: the transaction wrapper of every mutation with a
//!   `request_id`.

#![forbid(unsafe_code)]

pub mod config;
pub mod convert;
pub mod listing;
pub mod mutation;
pub mod serve;

pub use config::{IdentityConfig, ServiceConfig};
pub use serve::{Server, ServerParts, shutdown_signal};
