//! Events between dondoc services.
//!
//! * [`outbox`]: a service writes its events into its own `outbox` table in
//!   the same transaction as the change, so an event exists exactly when the
//!   change does.
//! * [`cursor`] and [`follow`]: the gap-free read. Rows are served in
//!   `(tx_id, id)` order and only below the oldest running transaction
//!   (`pg_snapshot_xmin`), so a transaction that commits late can never be
//!   skipped by a reader that already moved past its sequence number.
//!   Streams send checkpoints while idle.
//! * [`consumer`]: follows another service's stream and applies each event in
//!   the same transaction as its cursor update: delivery is at least once,
//!   applying is exactly once.

#![forbid(unsafe_code)]

pub mod consumer;
pub mod cursor;
pub mod follow;
pub mod outbox;

pub use cursor::{Cursor, Window};
pub use follow::{FollowSettings, Followed, Page, Wake, follow};
