//! A configuration file re-read while the gateway runs (the JWKS, the API
//! keys): rotation and revocation without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Parses a file's bytes.
pub(crate) type Parser<T> = fn(&[u8]) -> Result<T, String>;

/// The parsed content of a file, replaced when the file changes. A change
/// that does not parse is logged and ignored: the previous content stays.
pub(crate) struct Watched<T> {
    path: PathBuf,
    what: &'static str,
    parse: Parser<T>,
    state: RwLock<(Vec<u8>, Arc<T>)>,
    last_on_demand: Mutex<Option<Instant>>,
}

impl<T: Send + Sync + 'static> Watched<T> {
    /// Reads and parses `path` now; failing is a configuration error.
    pub(crate) fn load(path: &Path, what: &'static str, parse: Parser<T>) -> Result<Self, String> {
        let raw = std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
        let value = parse(&raw).map_err(|e| format!("{what} {}: {e}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            what,
            parse,
            state: RwLock::new((raw, Arc::new(value))),
            last_on_demand: Mutex::new(None),
        })
    }

    /// The content in force.
    pub(crate) fn current(&self) -> Arc<T> {
        match self.state.read() {
            Ok(state) => state.1.clone(),
            Err(poisoned) => poisoned.into_inner().1.clone(),
        }
    }

    /// Re-reads the file; true when its content changed and was accepted.
    pub(crate) async fn reload(&self) -> bool {
        let raw = match tokio::fs::read(&self.path).await {
            Ok(raw) => raw,
            Err(error) => {
                tracing::warn!(what = self.what, path = %self.path.display(), %error, "cannot re-read; keeping the previous content");
                return false;
            }
        };
        {
            let state = match self.state.read() {
                Ok(state) => state,
                Err(poisoned) => poisoned.into_inner(),
            };
            if state.0 == raw {
                return false;
            }
        }
        match (self.parse)(&raw) {
            Ok(value) => {
                let mut state = match self.state.write() {
                    Ok(state) => state,
                    Err(poisoned) => poisoned.into_inner(),
                };
                *state = (raw, Arc::new(value));
                tracing::info!(what = self.what, path = %self.path.display(), "reloaded");
                true
            }
            Err(error) => {
                tracing::warn!(what = self.what, path = %self.path.display(), %error, "invalid; keeping the previous content");
                false
            }
        }
    }

    /// Re-reads the file unless that was done on demand less than `min` ago
    /// (a caller sending unknown key ids cannot make the gateway read files
    /// in a loop).
    pub(crate) async fn reload_on_demand(&self, min: Duration) -> bool {
        {
            let mut last = match self.last_on_demand.lock() {
                Ok(last) => last,
                Err(poisoned) => poisoned.into_inner(),
            };
            if last.is_some_and(|at| at.elapsed() < min) {
                return false;
            }
            *last = Some(Instant::now());
        }
        self.reload().await
    }

    /// Re-reads the file every `interval` until `shutdown`.
    pub(crate) fn spawn_poll(self: &Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let this = self.clone();
        let interval = if interval.is_zero() {
            Duration::from_secs(5)
        } else {
            interval
        };
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticks.tick() => { this.reload().await; }
                }
            }
        });
    }
}
