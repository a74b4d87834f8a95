//! The assignments domain: tasks, their stages and deadline states.
//! No tonic, no sqlx.

pub mod access;
pub mod deadline;
pub mod stage;
