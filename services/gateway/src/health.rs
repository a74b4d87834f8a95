//! The gateway's aggregate health: SERVING for the gateway itself (`""`)
//! while it runs, and for each dondoc service what its backend's own health
//! service says, probed periodically.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus as ProbedStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::server::HealthReporter;

use crate::connections::ConnectionPool;
use crate::proxy::Backend;

/// How often each backend is probed.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// How long one probe may take before the service counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Sets the gateway and every routed service to `status`.
pub(crate) async fn set_all(
    reporter: &HealthReporter,
    backends: &[Backend],
    status: ServingStatus,
) {
    reporter.set_service_status("", status).await;
    for backend in backends {
        for service in backend.services {
            reporter.set_service_status(*service, status).await;
        }
    }
}

/// Probes `backend` through `pool` until `shutdown`, reporting each of its
/// services.
pub(crate) async fn monitor(
    reporter: HealthReporter,
    backend: Backend,
    pool: ConnectionPool,
    shutdown: CancellationToken,
) {
    let mut interval = tokio::time::interval(PROBE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Vec<Option<ServingStatus>> = vec![None; backend.services.len()];
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        // Each round probes through the next pooled connection.
        let mut client = HealthClient::new(pool.connection());
        for (service, last) in backend.services.iter().zip(last.iter_mut()) {
            let request = HealthCheckRequest {
                service: (*service).to_string(),
            };
            let status = match tokio::time::timeout(PROBE_TIMEOUT, client.check(request)).await {
                Ok(Ok(response)) if response.get_ref().status == ProbedStatus::Serving as i32 => {
                    ServingStatus::Serving
                }
                _ => ServingStatus::NotServing,
            };
            if shutdown.is_cancelled() {
                // Draining: the gateway reports NOT_SERVING for everything.
                return;
            }
            if *last != Some(status) {
                if status == ServingStatus::Serving {
                    tracing::info!(
                        backend = backend.name,
                        service,
                        "backend service is serving"
                    );
                } else {
                    tracing::warn!(
                        backend = backend.name,
                        service,
                        "backend service is not serving"
                    );
                }
                *last = Some(status);
            }
            reporter.set_service_status(*service, status).await;
        }
    }
}
