//! The assignments domain: tasks, their stages and deadline states,
//! extensions, recurring duties, statistics and indicators.
//! No tonic, no sqlx.

pub mod access;
pub mod deadline;
pub mod extension;
pub mod indicator;
pub mod recurring;
pub mod stage;
pub mod statistics;
