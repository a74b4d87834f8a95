//! The `dondoc` binary's library: configuration from the environment, the
//! whole suite in one process (the embedded default and the end-to-end
//! tests share it), migrations and the command line.

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod embedded;
pub mod suite;
