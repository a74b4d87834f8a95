//! Serving a service's outbox as a `WatchEvents` stream: resume point
//! checked against the horizon (OUT_OF_RANGE when too old), then the
//! gap-free follower with checkpoints, ended on shutdown.

use std::pin::Pin;

use chrono::{DateTime, Utc};
use dondoc_database::{HotConnections, storage_error};
use dondoc_events::outbox::{self, StoredEvent};
use dondoc_events::{Cursor, FollowSettings, Followed, Wake, follow};
use dondoc_time::Clock;
use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::Status;

/// A boxed server stream.
pub type ResponseStream<R> = Pin<Box<dyn Stream<Item = Result<R, Status>> + Send>>;

/// What following a service's own logs needs.
#[derive(Debug, Clone)]
pub struct StreamContext {
    /// The service's pool, with the connection used last first.
    pub hot: HotConnections,
    /// Woken after commits.
    pub wake: Wake,
    /// Pacing.
    pub follow: FollowSettings,
    /// Ends streams on shutdown.
    pub shutdown: CancellationToken,
    /// Timestamps of checkpoints.
    pub clock: Clock,
}

/// Streams the outbox after `after_cursor`, each item rendered by `render`
/// (which decodes the payload into the service's event message).
pub async fn watch_outbox<R, F>(
    context: &StreamContext,
    after_cursor: &str,
    render: F,
) -> Result<ResponseStream<R>, dondoc_errors::Error>
where
    R: Send + 'static,
    F: Fn(Followed<StoredEvent>, DateTime<Utc>) -> Result<R, dondoc_errors::Error>
        + Send
        + Sync
        + 'static,
{
    let after = Cursor::parse_field(after_cursor, "after_cursor")?;
    let mut conn = context.hot.acquire().await.map_err(storage_error)?;
    let start = outbox::resume_point(&mut conn, outbox::OUTBOX_STREAM, after).await?;
    conn.release();
    let hot = context.hot.clone();
    let stream = follow(
        start,
        move |after, limit| {
            let hot = hot.clone();
            async move {
                let mut conn = hot.acquire().await?;
                let page = outbox::read(&mut conn, after, limit).await?;
                conn.release();
                Ok(page)
            }
        },
        context.wake.clone(),
        context.follow.clone(),
        context.shutdown.clone(),
    );
    let clock = context.clock.clone();
    Ok(Box::pin(stream.map(move |item| match item {
        Ok(item) => render(item, clock.now()).map_err(Status::from),
        Err(e) => Err(Status::from(storage_error(e))),
    })))
}
