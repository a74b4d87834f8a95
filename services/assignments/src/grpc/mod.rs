//! The gRPC edge of the assignments service.

mod convert;
mod events;
mod tasks;

use std::sync::Arc;

use dondoc_contracts::assignments::v1::task_event_service_server::TaskEventServiceServer;
use dondoc_contracts::assignments::v1::task_service_server::TaskServiceServer;
use dondoc_contracts::service_names;
use tonic::service::Routes;

use crate::State;

pub use convert::task_to_pb;

/// The service names this server answers for.
pub const SERVICE_NAMES: [&str; 2] = [service_names::TASK, service_names::TASK_EVENTS];

/// Every RPC of the assignments service, routed.
pub fn routes(state: Arc<State>) -> Routes {
    Routes::new(TaskServiceServer::new(tasks::Tasks(state.clone())))
        .add_service(TaskEventServiceServer::new(events::Events(state)))
}
