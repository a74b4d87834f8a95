//! One reader of the notifications log per replica, for every stream.
//!
//! The hub follows the log once (woken after this replica's commits, polling
//! for other replicas' writes) and hands each new notification to the
//! streams that want it, looked up by recipient. A stream reads PostgreSQL
//! only to catch up: when it opens, when it resumes from a cursor, and when
//! it fell so far behind that its buffer filled and the hub let it go. An
//! idle stream costs a mailbox, not a query or a timer: the hub tells every
//! stream when a checkpoint interval has passed.
//!
//! Why nothing is lost or doubled: a stream registers with the hub and reads
//! the hub's position in one step, so everything the hub dispatches after
//! that reaches the stream's mailbox; it then catches up from the database
//! until its own position is at least that one. Items at or before the
//! stream's position are skipped, whichever way they arrive.
//!
//! Why a stream gets pages, not notifications: the hub splits the page it
//! read by recipient and hands each stream of one recipient that part (a
//! stream of several recipients, or of all, gets the whole page), shared
//! and in log order; the stream picks out what its filter selects. That is
//! one send to a mailbox and one wake-up per stream per page rather than per
//! notification, the hub visits each interested route once per page, and
//! the work stays proportional to what is delivered. With the wire form of
//! `Subscribe` (`grpc/wire.rs`), a burst of twenty notifications to 20,000
//! streams went from 0.45 to 0.71 of a bare tonic broadcast server's
//! deliveries per CPU-second (BENCHMARKS.md, round 6), and to 0.81–0.87
//! with a [`Mailbox`] per stream in place of a channel (round 7).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use dondoc_events::cursor::Window;
use dondoc_events::follow::Page;
use dondoc_events::{Cursor, FollowSettings, Followed, Wake, outbox};
use futures::{Stream, StreamExt};
use sqlx::PgPool;
use tokio::sync::Semaphore;
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
    pub fn wire(&self, encode: impl FnOnce(&StoredNotification) -> Bytes) -> &Bytes {
        self.wire.get_or_init(|| encode(&self.notification))
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

/// Notifications in log order, shared: what the hub hands to streams (one
/// recipient's part of a page, or the whole page), and what a stream
/// yields at once (with the last one's position).
pub type Notifications = Arc<[Arc<StreamedNotification>]>;

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
/// offered to every route registered at the time. `closed`: the hub has
/// stopped, and streams end rather than register.
#[derive(Debug, Default)]
struct Routes {
    position: Cursor,
    closed: bool,
    next_id: u64,
    by_recipient: HashMap<String, HashMap<u64, Route>>,
    every_recipient: HashMap<u64, Route>,
}

/// A registered stream as the hub sees it. The mailbox is unbounded in
/// mail; `waiting` bounds it in notifications (the ones the filter selects),
/// which is what the buffer is about, and `quiet_pending` to one quiet
/// check at a time.
#[derive(Debug, Clone)]
struct Route {
    filter: Arc<StreamFilter>,
    /// Filed under one recipient: offered that recipient's part of a page.
    one_recipient: bool,
    /// The filter selects everything for its one recipient: all of the
    /// part is selected, without asking the filter.
    whole_recipient: bool,
    mailbox: Arc<Mailbox>,
    waiting: Arc<AtomicUsize>,
    quiet_pending: Arc<AtomicBool>,
}

/// What the hub sends a live stream. A stream waits on its mailbox alone:
/// the checkpoint timer and the shutdown signal come from the hub too,
/// because polling a timer and a cancellation token (whose every poll takes
/// a lock all streams share) at each wake-up cost 6–10 % of a fan-out's
/// deliveries per CPU-second (BENCHMARKS.md, round 6).
#[derive(Debug)]
enum Mail {
    Page(Notifications),
    /// A checkpoint interval has passed.
    Quiet,
}

/// Where the hub leaves a stream's mail: a queue, the stream's waker and
/// whether the hub has let the stream go, under one lock that only the hub
/// and that stream take. A tokio channel spreads the same over several
/// cache lines and blocks of slots; woken 20,000 at a time in a fan-out,
/// sending and receiving on it were a sixth of the service's user CPU
/// (BENCHMARKS.md, round 7).
#[derive(Debug, Default)]
struct Mailbox {
    state: Mutex<MailboxState>,
}

#[derive(Debug, Default)]
struct MailboxState {
    mail: VecDeque<Mail>,
    waker: Option<Waker>,
    /// The hub let the stream go (full buffer, or the hub stopped) or the
    /// stream went away: no more mail. What is queued is still received.
    closed: bool,
}

/// What [`Mailbox::try_receive`] found.
enum Received {
    Mail(Mail),
    Empty,
    Closed,
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, MailboxState> {
        // Every step under the lock is a single push, pop or store.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Leaves `mail` and wakes the stream; false once closed.
    fn send(&self, mail: Mail) -> bool {
        let waker = {
            let mut state = self.lock();
            if state.closed {
                return false;
            }
            state.mail.push_back(mail);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// No more mail; the stream receives what is queued, then the end.
    fn close(&self) {
        let waker = {
            let mut state = self.lock();
            state.closed = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The next mail, `None` once closed and empty.
    fn poll_receive(&self, cx: &mut Context<'_>) -> Poll<Option<Mail>> {
        let mut state = self.lock();
        if let Some(mail) = state.mail.pop_front() {
            return Poll::Ready(Some(mail));
        }
        if state.closed {
            return Poll::Ready(None);
        }
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    async fn receive(&self) -> Option<Mail> {
        std::future::poll_fn(|cx| self.poll_receive(cx)).await
    }

    fn try_receive(&self) -> Received {
        let mut state = self.lock();
        match state.mail.pop_front() {
            Some(mail) => Received::Mail(mail),
            None if state.closed => Received::Closed,
            None => Received::Empty,
        }
    }
}

/// A stream's end of its route: the mail dispatched to it.
struct Inbox {
    mailbox: Arc<Mailbox>,
    waiting: Arc<AtomicUsize>,
    quiet_pending: Arc<AtomicBool>,
    filter: Arc<StreamFilter>,
    /// As the route's: every notification handed over is selected.
    whole_recipient: bool,
}

impl Drop for Inbox {
    fn drop(&mut self) {
        // The hub drops a route whose stream is gone at its next send.
        self.mailbox.close();
    }
}

impl Inbox {
    /// What the stream's filter selects from a page it received, after
    /// `after`, in log order. What the filter selects stops counting as
    /// waiting, whether or not it is after `after`.
    fn take(&self, page: Notifications, after: Cursor) -> Notifications {
        let selected = if self.whole_recipient {
            page.len()
        } else {
            page.iter().filter(|n| self.filter.matches(n)).count()
        };
        self.waiting.fetch_sub(selected, Ordering::AcqRel);
        // Most often all of it, shared as it came: no copy, and no count on
        // each notification's reference, which every stream would touch
        // (nor on the page's, which the hub counted for this stream).
        if selected == page.len() && page.first().is_some_and(|n| n.cursor > after) {
            return page;
        }
        page.iter()
            .filter(|n| n.cursor > after && self.filter.matches(n))
            .cloned()
            .collect()
    }
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
    /// Every checkpoint interval it tells each stream (see [`Hub::pages`]);
    /// on `shutdown` it closes, which ends every stream.
    pub async fn run(self, wake: Wake, shutdown: CancellationToken) {
        let everything = StreamFilter::default();
        let settings = self.shared.follow.clone();
        let mut quiet = tokio::time::interval_at(
            Instant::now() + settings.checkpoint_interval,
            settings.checkpoint_interval,
        );
        quiet.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
            let poll = tokio::time::sleep(settings.poll_interval);
            tokio::pin!(poll);
            loop {
                tokio::select! {
                    _ = &mut notified => break,
                    _ = &mut poll => break,
                    _ = quiet.tick() => self.quiet(),
                    _ = shutdown.cancelled() => {
                        self.close();
                        return;
                    }
                }
            }
        }
    }

    /// Tells every stream that a checkpoint interval has passed, unless it
    /// has not yet read the previous one.
    fn quiet(&self) {
        // Sent after the lock is released: the streams that wake up read
        // the hub's position, under the same lock.
        let mailboxes: Vec<_> = {
            let routes = self.shared.lock();
            let every = routes.by_recipient.values().flat_map(|map| map.values());
            every
                .chain(routes.every_recipient.values())
                // A route filed under several recipients is told once.
                .filter(|route| !route.quiet_pending.swap(true, Ordering::AcqRel))
                .map(|route| route.mailbox.clone())
                .collect()
        };
        for mailbox in mailboxes {
            mailbox.send(Mail::Quiet);
        }
    }

    /// Stops: every stream ends once it has sent what it was given, and
    /// none registers any more.
    fn close(&self) {
        let mut routes = self.shared.lock();
        routes.closed = true;
        let every = routes.by_recipient.values().flat_map(|map| map.values());
        for route in every.chain(routes.every_recipient.values()) {
            route.mailbox.close();
        }
        routes.by_recipient.clear();
        routes.every_recipient.clear();
    }

    /// Offers each recipient's part of the page to the routes of that one
    /// recipient, and the whole page, once, to every route of several
    /// recipients it concerns and to every route of all; a route whose
    /// buffer would overflow or whose stream is gone is dropped (a full one
    /// catches up from the database).
    fn dispatch(&self, items: Vec<(Cursor, StoredNotification)>, scanned_to: Cursor) {
        let mut routes = self.shared.lock();
        let routes = &mut *routes;
        if !items.is_empty() {
            let page = streamed(items);
            let mut parts: HashMap<&str, Vec<Arc<StreamedNotification>>> = HashMap::new();
            for n in page.iter() {
                parts
                    .entry(n.recipient.as_str())
                    .or_default()
                    .push(n.clone());
            }
            let buffer = self.shared.buffer;
            let mut dropped: HashMap<u64, Arc<StreamFilter>> = HashMap::new();
            let mut offer = |id: u64, route: &Route, items: &Notifications| {
                let selected = if route.whole_recipient {
                    items.len()
                } else {
                    items.iter().filter(|n| route.filter.matches(n)).count()
                };
                if selected == 0 {
                    return;
                }
                let waiting = route.waiting.fetch_add(selected, Ordering::AcqRel) + selected;
                if waiting > buffer || !route.mailbox.send(Mail::Page(items.clone())) {
                    // What is queued is still received, then the stream
                    // catches up.
                    route.mailbox.close();
                    dropped.insert(id, route.filter.clone());
                }
            };
            // Routes filed under several recipients get the whole page,
            // once.
            let mut whole_page: HashMap<u64, &Route> = HashMap::new();
            for (recipient, part) in parts {
                let part: Notifications = part.into();
                for (id, route) in routes.by_recipient.get(recipient).into_iter().flatten() {
                    if route.one_recipient {
                        offer(*id, route, &part);
                    } else {
                        whole_page.insert(*id, route);
                    }
                }
            }
            for (id, route) in whole_page.into_iter().chain(
                routes
                    .every_recipient
                    .iter()
                    .map(|(id, route)| (*id, route)),
            ) {
                offer(id, route, &page);
            }
            // Their mailboxes are closed: those streams catch up, and their
            // registrations' drop finds nothing left to remove.
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
        }
        routes.position = routes.position.max(scanned_to);
    }

    /// Registers a stream and returns its mailbox with the hub's position
    /// at that moment, in one step; `None` once the hub has closed.
    fn register(&self, filter: &Arc<StreamFilter>) -> Option<(Inbox, Cursor, Registration)> {
        let mailbox = Arc::new(Mailbox::default());
        let whole_recipient = filter.selects_everything_for_one_recipient();
        let waiting = Arc::new(AtomicUsize::new(0));
        let quiet_pending = Arc::new(AtomicBool::new(false));
        let route = Route {
            filter: filter.clone(),
            one_recipient: filter.recipients.as_ref().is_some_and(|l| l.len() == 1),
            whole_recipient,
            mailbox: mailbox.clone(),
            waiting: waiting.clone(),
            quiet_pending: quiet_pending.clone(),
        };
        let mut routes = self.shared.lock();
        if routes.closed {
            return None;
        }
        let id = routes.next_id;
        routes.next_id += 1;
        match &filter.recipients {
            None => {
                routes.every_recipient.insert(id, route);
            }
            Some(list) => {
                for recipient in list {
                    routes
                        .by_recipient
                        .entry(recipient.clone())
                        .or_default()
                        .insert(id, route.clone());
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
        let inbox = Inbox {
            mailbox,
            waiting,
            quiet_pending,
            filter: filter.clone(),
            whole_recipient,
        };
        Some((inbox, position, registration))
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
        let mut conn = self
            .shared
            .pool
            .acquire()
            .await
            .map_err(dondoc_database::storage_error)?;
        Box::pin(outbox::resume_point(
            &mut conn,
            notifications::STREAM,
            after,
        ))
        .await
    }

    /// A stream of the notifications `filter` selects after `start`, one at
    /// a time (see [`Hub::pages`]).
    pub fn stream(
        &self,
        filter: StreamFilter,
        start: Cursor,
    ) -> impl Stream<Item = Result<Followed<Arc<StreamedNotification>>, sqlx::Error>> + Send + 'static
    {
        one_at_a_time(self.pages(filter, start))
    }

    /// A stream of the notifications `filter` selects after `start`: every
    /// one once, in log order, as many at a time as arrived together, with
    /// a checkpoint when first caught up and whenever it has been quiet for
    /// the checkpoint interval (checked at the hub's ticks, once per
    /// interval, so after one to two intervals of quiet). Ends when the hub
    /// stops (its `shutdown`) or with the first failed catch-up read.
    pub fn pages(
        &self,
        filter: StreamFilter,
        start: Cursor,
    ) -> impl Stream<Item = Result<Followed<Notifications>, sqlx::Error>> + Send + 'static {
        let hub = self.clone();
        let filter = Arc::new(filter);
        async_stream::try_stream! {
            let batch = hub.shared.follow.batch;
            let mut cursor = start;
            let mut caught_up_once = false;
            // Whether the stream sent something since the hub's last quiet
            // tick: only a stream quiet for a whole interval checkpoints.
            let mut sent_since_tick = false;
            'attach: while let Some((inbox, hub_position, _registration)) = hub.register(&filter) {
                // Catch up from the database to at least where the hub was
                // when this stream registered; the mailbox has the rest.
                loop {
                    let page = hub.catch_up(&filter, cursor, batch).await?;
                    let items = streamed(page.items);
                    cursor = cursor.max(page.scanned_to);
                    if let Some(last) = items.last() {
                        cursor = cursor.max(last.cursor);
                        sent_since_tick = true;
                        yield Followed::Item(last.cursor, items);
                    }
                    if !page.full && cursor >= hub_position {
                        break;
                    }
                }
                if !caught_up_once {
                    caught_up_once = true;
                    // The first tick may come at once: it only starts the
                    // interval.
                    sent_since_tick = true;
                    yield Followed::Checkpoint(cursor);
                }
                // Ends when the hub lets the stream go (its buffer filled:
                // catch up again) or closes (`register` says so).
                while let Some(mail) = inbox.mailbox.receive().await {
                    match mail {
                        Mail::Page(page) => {
                            let items = inbox.take(page, cursor);
                            if let Some(last) = items.last() {
                                cursor = last.cursor;
                                sent_since_tick = true;
                                yield Followed::Item(cursor, items);
                            }
                        }
                        Mail::Quiet => {
                            inbox.quiet_pending.store(false, Ordering::Release);
                            if std::mem::take(&mut sent_since_tick) {
                                continue;
                            }
                            // Read the hub's position first, then take
                            // everything dispatched up to it.
                            let position = hub.position();
                            loop {
                                match inbox.mailbox.try_receive() {
                                    Received::Mail(Mail::Page(page)) => {
                                        let items = inbox.take(page, cursor);
                                        if let Some(last) = items.last() {
                                            cursor = last.cursor;
                                            yield Followed::Item(cursor, items);
                                        }
                                    }
                                    Received::Mail(Mail::Quiet) => {
                                        inbox.quiet_pending.store(false, Ordering::Release);
                                    }
                                    Received::Empty => break,
                                    Received::Closed => continue 'attach,
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

/// Notifications read from the log, in the form streams share.
fn streamed(items: Vec<(Cursor, StoredNotification)>) -> Notifications {
    items
        .into_iter()
        .map(|(_, item)| StreamedNotification::new(item))
        .collect()
}

/// The notifications of a stream of pages ([`Hub::pages`]), one at a time.
pub fn one_at_a_time(
    pages: impl Stream<Item = Result<Followed<Notifications>, sqlx::Error>> + Send + 'static,
) -> impl Stream<Item = Result<Followed<Arc<StreamedNotification>>, sqlx::Error>> + Send + 'static {
    pages.flat_map(|page| {
        let items: Vec<_> = match page {
            Ok(Followed::Item(_, items)) => items
                .iter()
                .map(|n| Ok(Followed::Item(n.cursor, n.clone())))
                .collect(),
            Ok(Followed::Checkpoint(cursor)) => vec![Ok(Followed::Checkpoint(cursor))],
            Err(e) => vec![Err(e)],
        };
        futures::stream::iter(items)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn page(n: usize) -> Mail {
        Mail::Page(Vec::with_capacity(n).into())
    }

    fn is_page(mail: Option<Mail>) -> bool {
        matches!(mail, Some(Mail::Page(_)))
    }

    #[tokio::test]
    async fn a_mailbox_hands_over_mail_in_order_and_then_its_end() {
        let mailbox = Arc::new(Mailbox::default());
        assert!(matches!(mailbox.try_receive(), Received::Empty));
        assert!(mailbox.send(page(0)));
        assert!(mailbox.send(Mail::Quiet));
        mailbox.close();
        assert!(!mailbox.send(page(0)), "closed: no more mail");
        // What was queued before the close is still received, in order.
        assert!(is_page(mailbox.receive().await));
        assert!(matches!(mailbox.receive().await, Some(Mail::Quiet)));
        assert!(mailbox.receive().await.is_none());
        assert!(matches!(mailbox.try_receive(), Received::Closed));
    }

    #[tokio::test]
    async fn a_waiting_stream_wakes_on_mail_and_on_the_close() {
        let mailbox = Arc::new(Mailbox::default());
        let receiving = tokio::spawn({
            let mailbox = mailbox.clone();
            async move { (mailbox.receive().await, mailbox.receive().await) }
        });
        // Both receives wait until the hub sends; nothing else wakes them.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!receiving.is_finished());
        assert!(mailbox.send(page(1)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!receiving.is_finished(), "one mail, one receive");
        mailbox.close();
        let (first, second) = tokio::time::timeout(Duration::from_secs(1), receiving)
            .await
            .expect("the close wakes the stream")
            .expect("joined");
        assert!(is_page(first));
        assert!(second.is_none());
    }

    #[tokio::test]
    async fn a_stream_that_goes_away_closes_its_mailbox() {
        let mailbox = Arc::new(Mailbox::default());
        let inbox = Inbox {
            mailbox: mailbox.clone(),
            waiting: Arc::default(),
            quiet_pending: Arc::default(),
            filter: Arc::default(),
            whole_recipient: false,
        };
        assert!(mailbox.send(Mail::Quiet));
        drop(inbox);
        // The hub's next send fails, and it drops the route.
        assert!(!mailbox.send(Mail::Quiet));
    }
}
