//! The gRPC edge of the notifications service.

mod notifications;

use std::sync::Arc;

use dondoc_contracts::notifications::v1::notification_service_server::NotificationServiceServer;
use dondoc_contracts::service_names;
use tonic::service::Routes;

use crate::State;

/// The service names this server answers for.
pub const SERVICE_NAMES: [&str; 1] = [service_names::NOTIFICATION];

/// Every RPC of the notifications service, routed.
pub fn routes(state: Arc<State>) -> Routes {
    Routes::new(NotificationServiceServer::new(
        notifications::Notifications(state),
    ))
}
