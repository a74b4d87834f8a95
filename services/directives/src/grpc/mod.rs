//! The gRPC edge: translates protobuf to the domain and back. Errors are
//! `dondoc_errors::Error` everywhere inside and become a `tonic::Status`
//! only here, through its one `From` implementation.

pub mod agencies;
pub mod convert;
pub mod directives;
pub mod events;

use std::sync::Arc;

use dondoc_contracts::directives::v1::agency_service_server::AgencyServiceServer;
use dondoc_contracts::directives::v1::directive_event_service_server::DirectiveEventServiceServer;
use dondoc_contracts::directives::v1::directive_service_server::DirectiveServiceServer;
use dondoc_contracts::service_names;
use tonic::service::Routes;

use crate::State;

/// The service names this server answers for.
pub const SERVICE_NAMES: [&str; 3] = [
    service_names::AGENCY,
    service_names::DIRECTIVE,
    service_names::DIRECTIVE_EVENTS,
];

/// Every RPC of the directives service, routed.
pub fn routes(state: Arc<State>) -> Routes {
    Routes::new(AgencyServiceServer::new(agencies::Agencies(state.clone())))
        .add_service(DirectiveServiceServer::new(directives::Directives(
            state.clone(),
        )))
        .add_service(DirectiveEventServiceServer::new(events::Events(state)))
}

/// Full method path, for idempotency keys.
fn method(service: &str, rpc: &str) -> String {
    format!("/{service}/{rpc}")
}
