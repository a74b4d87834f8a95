//! One reader of the notifications log per replica, for every stream.
//!
//! The hub follows the log once (woken after this replica's commits, polling
//! for other replicas' writes) and hands each new notification to the
//! streams that want it, looked up by recipient. A stream reads PostgreSQL
//! only to catch up: when it opens, when it resumes from a cursor, and when
//! it fell so far behind that its buffer filled and the hub let it go. An
//! idle stream costs a channel and a timer, not a query.
//!
//! Why nothing is lost or doubled: a stream registers with the hub and reads
//! the hub's position in one step, so everything the hub dispatches after
//! that reaches the stream's channel; it then catches up from the database
//! until its own position is at least that one. Items at or before the
//! stream's position are skipped, whichever way they arrive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;

use dondoc_events::cursor::Window;
use dondoc_events::follow::Page;
use dondoc_events::{Cursor, FollowSettings, Followed, Wake, outbox};
use futures::Stream;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::{self, error::TryRecvError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::storage::notifications::{self, StoredNotification, StreamFilter};

/// A notification as streams receive it, with room for its wire form: the
/// first stream to send a dispatched notification encodes it, every other
/// stream sends the same bytes.
#[derive(Debug)]
pub struct StreamedNotification {
    notification: StoredNotification,
    wire: OnceLock<Bytes>,
}

impl StreamedNotification {
    /// A notification read from the log, not yet encoded.
    pub fn new(notification: StoredNotification) -> Arc<Self> {
        Arc::new(Self {
            notification,
            wire: OnceLock::new(),
        })
    }

    /// The wire form, encoded by `encode` on first use.
    pub fn wire(&self, encode: impl FnOnce(&StoredNotification) -> Bytes) -> Bytes {
        self.wire.get_or_init(|| encode(&self.notification)).clone()
    }
}

impl std::ops::Deref for StreamedNotification {
    type Target = StoredNotification;
    fn deref(&self) -> &StoredNotification {
        &self.notification
    }
}

/// Notifications a stream may have waiting before the hub lets it go (it
/// then catches up from the database).
pub const DEFAULT_STREAM_BUFFER: usize = 1024;

/// The per-replica dispatcher of notification streams. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    pool: PgPool,
    follow: FollowSettings,
    buffer: usize,
    routes: Mutex<Routes>,
    /// Catch-up reads running at once: thousands of streams opening
    /// together queue here, without a timeout, instead of timing out on the
    /// pool and leaving connections for the other calls.
    catch_up: Semaphore,
}

/// Who wants what. `position`: every notification at or before it has been
/// offered to every route registered at the time.
#[derive(Debug, Default)]
struct Routes {
    position: Cursor,
    next_id: u64,
    by_recipient: HashMap<String, HashMap<u64, Route>>,
    every_recipient: HashMap<u64, Route>,
}

#[derive(Debug)]
struct Route {
    filter: Arc<StreamFilter>,
    sender: mpsc::Sender<Arc<StreamedNotification>>,
}

/// What woke a live stream.
enum Next {
    Stop,
    Item(Option<Arc<StreamedNotification>>),
    Quiet,
}

/// A stream's place in the hub; leaving it (drop) unregisters the stream.
struct Registration {
    shared: Arc<Shared>,
    id: u64,
    filter: Arc<StreamFilter>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut routes = self.shared.lock();
        match &self.filter.recipients {
            None => {
                routes.every_recipient.remove(&self.id);
            }
            Some(list) => {
                for recipient in list {
                    if let Some(map) = routes.by_recipient.get_mut(recipient) {
                        map.remove(&self.id);
                        if map.is_empty() {
                            routes.by_recipient.remove(recipient);
                        }
                    }
                }
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Routes> {
        // A panic while holding the lock leaves the maps consistent (every
        // step is a single insert or remove), so poisoning is ignored.
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Hub {
    /// A hub positioned at the log's present: everything committed before
    /// now is for catch-up reads, everything after is dispatched. It must be
    /// positioned before the first stream registers, hence async.
    pub async fn start(
        pool: PgPool,
        follow: FollowSettings,
        buffer: usize,
    ) -> Result<Hub, sqlx::Error> {
        let mut conn = pool.acquire().await?;
        let present = Window::open(&mut conn, Cursor::START)
            .await?
            .scanned_to(None, false);
        drop(conn);
        let catch_up = (pool.options().get_max_connections() as usize / 2).max(1);
        Ok(Hub {
            shared: Arc::new(Shared {
                pool,
                follow,
                buffer: buffer.max(1),
                catch_up: Semaphore::new(catch_up),
                routes: Mutex::new(Routes {
                    position: present,
                    ..Routes::default()
                }),
            }),
        })
    }

    /// How far the hub has dispatched.
    pub fn position(&self) -> Cursor {
        self.shared.lock().position
    }

    /// Streams registered now.
    pub fn streams(&self) -> usize {
        let routes = self.shared.lock();
        let mut ids: std::collections::HashSet<u64> =
            routes.every_recipient.keys().copied().collect();
        for map in routes.by_recipient.values() {
            ids.extend(map.keys().copied());
        }
        ids.len()
    }

    /// Follows the log until `shutdown`: reads after the hub's position
    /// when woken or every poll interval, dispatches, moves the position.
    /// A failed read is retried from the same position: nothing is skipped.
    pub async fn run(self, wake: Wake, shutdown: CancellationToken) {
        let everything = StreamFilter::default();
        let settings = self.shared.follow.clone();
        loop {
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let position = self.position();
            match notifications::read_filtered(
                &self.shared.pool,
                &everything,
                position,
                settings.batch,
            )
            .await
            {
                Ok(page) => {
                    let full = page.full;
                    self.dispatch(page.items, page.scanned_to);
                    if full {
                        continue;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading notifications for streams failed; retrying");
                }
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(settings.poll_interval) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }

    /// Offers each item to the routes of its recipient and to those of every
    /// recipient; a route whose buffer is full or whose stream is gone is
    /// dropped (a full one catches up from the database).
    fn dispatch(&self, items: Vec<(Cursor, StoredNotification)>, scanned_to: Cursor) {
        let mut routes = self.shared.lock();
        let routes = &mut *routes;
        // Routes to let go, with the recipients they are filed under. A
        // route let go gets nothing more from this dispatch: its stream may
        // be draining its buffer meanwhile, and a later item slipping in
        // after a refused one would move the stream past the refused one
        // before it catches up.
        let mut dropped: HashMap<u64, Arc<StreamFilter>> = HashMap::new();
        for (_, item) in items {
            let item = StreamedNotification::new(item);
            let offer = |id: u64, route: &Route, dropped: &mut HashMap<u64, Arc<StreamFilter>>| {
                if route.filter.matches(&item)
                    && !dropped.contains_key(&id)
                    && route.sender.try_send(item.clone()).is_err()
                {
                    dropped.insert(id, route.filter.clone());
                }
            };
            if let Some(map) = routes.by_recipient.get(&item.recipient) {
                for (id, route) in map {
                    offer(*id, route, &mut dropped);
                }
            }
            for (id, route) in &routes.every_recipient {
                offer(*id, route, &mut dropped);
            }
        }
        // Dropping the senders now is what tells those streams to catch up;
        // their registrations' drop finds nothing left to remove.
        for (id, filter) in dropped {
            match &filter.recipients {
                None => {
                    routes.every_recipient.remove(&id);
                }
                Some(list) => {
                    for recipient in list {
                        if let Some(map) = routes.by_recipient.get_mut(recipient) {
                            map.remove(&id);
                        }
                    }
                }
            }
        }
        routes.position = routes.position.max(scanned_to);
    }

    /// Registers a stream and returns its channel with the hub's position
    /// at that moment, in one step.
    fn register(
        &self,
        filter: &Arc<StreamFilter>,
    ) -> (
        mpsc::Receiver<Arc<StreamedNotification>>,
        Cursor,
        Registration,
    ) {
        let (sender, receiver) = mpsc::channel(self.shared.buffer);
        let mut routes = self.shared.lock();
        let id = routes.next_id;
        routes.next_id += 1;
        match &filter.recipients {
            None => {
                routes.every_recipient.insert(
                    id,
                    Route {
                        filter: filter.clone(),
                        sender,
                    },
                );
            }
            Some(list) => {
                for recipient in list {
                    routes
                        .by_recipient
                        .entry(recipient.clone())
                        .or_default()
                        .insert(
                            id,
                            Route {
                                filter: filter.clone(),
                                sender: sender.clone(),
                            },
                        );
                }
            }
        }
        let position = routes.position;
        drop(routes);
        let registration = Registration {
            shared: self.shared.clone(),
            id,
            filter: filter.clone(),
        };
        (receiver, position, registration)
    }

    /// One catch-up read, when its turn comes. Boxed after the turn comes,
    /// so that a waiting or idle stream does not carry a read's state.
    async fn catch_up(
        &self,
        filter: &StreamFilter,
        after: Cursor,
        limit: i64,
    ) -> Result<Page<StoredNotification>, sqlx::Error> {
        // The semaphore is never closed.
        let _turn = self.shared.catch_up.acquire().await.ok();
        Box::pin(notifications::read_filtered(
            &self.shared.pool,
            filter,
            after,
            limit,
        ))
        .await
    }

    /// Where a stream asked to start after `after` starts: `after` itself,
    /// or the oldest retained notification for [`Cursor::START`];
    /// OUT_OF_RANGE when `after` is older than what is retained. Queued
    /// like catch-up reads.
    pub async fn resume_point(&self, after: Cursor) -> Result<Cursor, dondoc_errors::Error> {
        let _turn = self.shared.catch_up.acquire().await.ok();
        Box::pin(outbox::resume_point(
            &self.shared.pool,
            notifications::STREAM,
            after,
        ))
        .await
    }

    /// A stream of the notifications `filter` selects after `start`: every
    /// one once, in log order, with a checkpoint when first caught up and
    /// whenever it has been quiet for the checkpoint interval (checked once
    /// per interval, so after one to two intervals of quiet). Ends on
    /// `shutdown` or with the first failed catch-up read.
    pub fn stream(
        &self,
        filter: StreamFilter,
        start: Cursor,
        shutdown: CancellationToken,
    ) -> impl Stream<Item = Result<Followed<Arc<StreamedNotification>>, sqlx::Error>> + Send + 'static
    {
        let hub = self.clone();
        let filter = Arc::new(filter);
        async_stream::try_stream! {
            let interval = hub.shared.follow.checkpoint_interval;
            let batch = hub.shared.follow.batch;
            let mut cursor = start;
            let mut caught_up_once = false;
            // Made once per stream, not per message: the shutdown signal and
            // the checkpoint timer, re-armed only when it fires (a stream
            // that sent something since it was armed is not quiet yet).
            let stop = shutdown.cancelled_owned();
            tokio::pin!(stop);
            let quiet = tokio::time::sleep(interval);
            tokio::pin!(quiet);
            let mut sent_since_armed = false;
            'attach: loop {
                let (mut receiver, hub_position, _registration) = hub.register(&filter);
                // Catch up from the database to at least where the hub was
                // when this stream registered; the channel has the rest.
                loop {
                    let page = hub.catch_up(&filter, cursor, batch).await?;
                    sent_since_armed |= !page.items.is_empty();
                    for (position, item) in page.items {
                        cursor = position;
                        yield Followed::Item(position, StreamedNotification::new(item));
                    }
                    cursor = cursor.max(page.scanned_to);
                    if !page.full && cursor >= hub_position {
                        break;
                    }
                }
                if !caught_up_once {
                    caught_up_once = true;
                    sent_since_armed = false;
                    quiet.as_mut().reset(Instant::now() + interval);
                    yield Followed::Checkpoint(cursor);
                }
                loop {
                    // Waiting items first: checking the shutdown signal on
                    // every message is measurable in a fan-out, and the hub
                    // stops dispatching on shutdown anyway.
                    let next = tokio::select! {
                        biased;
                        item = receiver.recv() => Next::Item(item),
                        _ = &mut stop => Next::Stop,
                        _ = &mut quiet => Next::Quiet,
                    };
                    match next {
                        Next::Stop => break 'attach,
                        Next::Item(Some(item)) => {
                            if item.cursor > cursor {
                                cursor = item.cursor;
                                sent_since_armed = true;
                                yield Followed::Item(item.cursor, item);
                            }
                        }
                        // Let go by the hub (buffer full): catch up again.
                        Next::Item(None) => continue 'attach,
                        Next::Quiet => {
                            quiet.as_mut().reset(Instant::now() + interval);
                            if std::mem::take(&mut sent_since_armed) {
                                continue;
                            }
                            // Read the hub's position first, then take
                            // everything dispatched up to it.
                            let position = hub.position();
                            loop {
                                match receiver.try_recv() {
                                    Ok(item) => {
                                        if item.cursor > cursor {
                                            cursor = item.cursor;
                                            yield Followed::Item(item.cursor, item);
                                        }
                                    }
                                    Err(TryRecvError::Empty) => break,
                                    Err(TryRecvError::Disconnected) => continue 'attach,
                                }
                            }
                            cursor = cursor.max(position);
                            yield Followed::Checkpoint(cursor);
                        }
                    }
                }
            }
        }
    }
}
