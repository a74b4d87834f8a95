//! The gRPC edge of the assignments service.

mod convert;
mod events;
mod filters;
mod indicators;
mod statistics;
mod tasks;

use std::sync::Arc;

use dondoc_contracts::assignments::v1::indicator_service_server::IndicatorServiceServer;
use dondoc_contracts::assignments::v1::statistics_service_server::StatisticsServiceServer;
use dondoc_contracts::assignments::v1::task_event_service_server::TaskEventServiceServer;
use dondoc_contracts::assignments::v1::task_service_server::TaskServiceServer;
use dondoc_contracts::service_names;
use tonic::service::Routes;

use crate::State;

pub use convert::task_to_pb;

/// The service names this server answers for.
pub const SERVICE_NAMES: [&str; 4] = [
    service_names::TASK,
    service_names::TASK_EVENTS,
    service_names::STATISTICS,
    service_names::INDICATOR,
];

/// Every RPC of the assignments service, routed.
pub fn routes(state: Arc<State>) -> Routes {
    Routes::new(TaskServiceServer::new(tasks::Tasks(state.clone())))
        .add_service(TaskEventServiceServer::new(events::Events(state.clone())))
        .add_service(StatisticsServiceServer::new(statistics::Statistics(
            state.clone(),
        )))
        .add_service(IndicatorServiceServer::new(indicators::Indicators(state)))
}
