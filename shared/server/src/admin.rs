//! Readiness, and the admin listener (`DONDOC_ADMIN_LISTEN`): `/metrics`
//! (Prometheus text), `/healthz` (liveness: the process serves) and
//! `/readyz` (readiness: the database answers, upstream streams are open,
//! no drain has started).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dondoc_events::consumer::ConsumerStatus;
use http_body_util::Full;
use hyper::body::Bytes;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::SharedMetrics;

/// When a service counts as ready.
#[derive(Debug, Clone)]
pub struct ReadinessSettings {
    /// How often the database is checked (`SELECT 1`).
    pub database_interval: Duration,
    /// How long one check may take before the database counts as down.
    pub database_timeout: Duration,
    /// A consumer whose upstream stream has been lost for longer than this
    /// makes the service unready (`DONDOC_UPSTREAM_STALE_SECS`).
    pub upstream_stale: Duration,
}

impl Default for ReadinessSettings {
    fn default() -> Self {
        Self {
            database_interval: Duration::from_secs(5),
            database_timeout: Duration::from_secs(2),
            upstream_stale: Duration::from_secs(30),
        }
    }
}

/// What readiness depends on.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    inner: Arc<ReadinessInner>,
}

#[derive(Debug, Default)]
struct ReadinessInner {
    database_down: AtomicBool,
    draining: AtomicBool,
    consumers: Mutex<Vec<ConsumerStatus>>,
    settings: Mutex<ReadinessSettings>,
}

impl Readiness {
    /// Makes `consumer`'s upstream part of readiness.
    pub fn watch_consumer(&self, consumer: ConsumerStatus) {
        self.inner
            .consumers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(consumer);
    }

    pub(crate) fn set_settings(&self, settings: ReadinessSettings) {
        *self
            .inner
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = settings;
    }

    pub(crate) fn settings(&self) -> ReadinessSettings {
        self.inner
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_database_down(&self, down: bool) {
        self.inner.database_down.store(down, Ordering::Relaxed);
    }

    pub(crate) fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
    }

    /// `Ok` when ready, or why not.
    pub fn check(&self) -> Result<(), String> {
        if self.inner.draining.load(Ordering::Relaxed) {
            return Err("draining".into());
        }
        if self.inner.database_down.load(Ordering::Relaxed) {
            return Err("database unreachable".into());
        }
        let stale = self.settings().upstream_stale;
        for consumer in self
            .inner
            .consumers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if let Some(lost) = consumer.disconnected_for()
                && lost > stale
            {
                return Err(format!(
                    "upstream stream {} lost for {} s",
                    consumer.source(),
                    lost.as_secs()
                ));
            }
        }
        Ok(())
    }
}

/// Serves the admin endpoints on `listener` until `stopped`.
pub(crate) async fn serve_admin(
    listener: TcpListener,
    metrics: SharedMetrics,
    readiness: Readiness,
    stopped: CancellationToken,
) {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    loop {
        let (stream, _) = tokio::select! {
            _ = stopped.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "admin listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        let readiness = readiness.clone();
        let service =
            hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                let readiness = readiness.clone();
                async move {
                    Ok::<_, Infallible>(
                        admin_response(request.uri().path(), &metrics, &readiness).await,
                    )
                }
            });
        let stopped = stopped.clone();
        tokio::spawn(async move {
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = stopped.cancelled() => {}
            }
        });
    }
}

async fn admin_response(
    path: &str,
    metrics: &SharedMetrics,
    readiness: &Readiness,
) -> http::Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" => {
            let mut text = metrics.render().await;
            let ready = readiness.check().is_ok();
            text.push_str(&format!(
                "# HELP dondoc_ready 1 while the service is ready (database reachable, upstream streams open, not draining).\n\
                 # TYPE dondoc_ready gauge\n\
                 dondoc_ready {}\n",
                u8::from(ready)
            ));
            (
                http::StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                text,
            )
        }
        "/healthz" => (http::StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" => match readiness.check() {
            Ok(()) => (http::StatusCode::OK, "text/plain", "ready\n".to_owned()),
            Err(reason) => (
                http::StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("not ready: {reason}\n"),
            ),
        },
        _ => (
            http::StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics, /healthz or /readyz\n".to_owned(),
        ),
    };
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}
