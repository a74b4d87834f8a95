//! The gRPC edge of the notifications service.

mod notifications;
pub(crate) mod subscriptions;
mod wire;

use std::sync::Arc;

use dondoc_contracts::notifications::v1::subscription_service_server::SubscriptionServiceServer;
use dondoc_contracts::service_names;
use tonic::service::Routes;

use crate::State;

/// The service names this server answers for.
pub const SERVICE_NAMES: [&str; 2] = [service_names::NOTIFICATION, service_names::SUBSCRIPTION];

/// Every RPC of the notifications service, routed.
pub fn routes(state: Arc<State>) -> Routes {
    Routes::new(notifications::NotificationRoutes::new(state.clone())).add_service(
        SubscriptionServiceServer::new(subscriptions::Subscriptions(state)),
    )
}
