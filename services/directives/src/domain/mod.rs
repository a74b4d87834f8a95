//! The directives domain: agencies and directive documents, and their rules.
//! No tonic, no sqlx: values are parsed here, stored in `storage`, and
//! translated to and from protobuf in `grpc`.

pub mod access;
pub mod agency;
pub mod directive;
pub mod import;
pub mod text;
