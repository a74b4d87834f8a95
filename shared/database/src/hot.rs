//! Connections handed out most recently used first.
//!
//! sqlx's pool hands out the connection that has been idle longest, so even
//! one caller at a time cycles through every connection the pool holds, and
//! each transaction runs in a server process whose caches went cold while
//! the others ran. Measured on the statements of `CreateTask`, one at a time:
//! 1.53 ms a transaction over a pool of 12 idle connections against 1.18 ms
//! over one. PgBouncer hands its server connections out last in, first out
//! for the same reason.
//!
//! [`HotConnections`] keeps a few connections back from committed
//! transactions (and from statements run outside one) on a stack and hands
//! out the top one first. It gives a connection back to sqlx's pool instead
//! whenever the pool may have callers waiting (no idle connection there and
//! no room for a new one), so under saturation every connection still goes
//! through the pool's fair queue. A connection whose transaction did not end
//! is rolled back and goes back to the pool, which checks it as it comes
//! back; so does one dropped without being released.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Connection as _, PgConnection, PgPool, Postgres};

use crate::CHECK_AFTER_IDLE;

/// Connections kept on the stack at most.
const KEEP: usize = 4;

/// How long a connection may go from stack to stack before it goes back to
/// the pool once, which closes it past its maximum lifetime; sooner when
/// that lifetime is shorter.
const RECYCLE_AFTER: Duration = Duration::from_secs(60);

/// A service's pool, with its most recently used connections first.
#[derive(Clone)]
pub struct HotConnections {
    pool: PgPool,
    stack: Arc<Stack>,
}

impl std::fmt::Debug for HotConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotConnections")
            .field("kept", &self.stack.len())
            .field("keep", &self.stack.keep)
            .finish_non_exhaustive()
    }
}

struct Stack {
    idle: Mutex<Vec<Kept>>,
    /// At most this many, and fewer than the pool's maximum: a caller
    /// waiting in the pool always has a connection outside the stack to wait for.
    keep: usize,
    /// A connection this long from the pool goes back to it rather than on
    /// the stack.
    recycle_after: Duration,
}

/// A connection on the stack.
struct Kept {
    conn: PoolConnection<Postgres>,
    /// When it went on the stack.
    since: Instant,
    /// When it last came from the pool.
    from_pool: Instant,
}

impl Stack {
    /// The kept connections. Nothing panics while holding them, but a
    /// poisoned lock still guards a valid stack.
    fn idle(&self) -> MutexGuard<'_, Vec<Kept>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn len(&self) -> usize {
        self.idle().len()
    }

    fn pop(&self) -> Option<Kept> {
        self.idle().pop()
    }

    fn drain(&self) -> Vec<Kept> {
        std::mem::take(&mut *self.idle())
    }

    /// Keeps `conn` on top, or gives it back to `pool`.
    fn give_back(&self, conn: PoolConnection<Postgres>, from_pool: Instant, pool: &PgPool) {
        let nobody_waits =
            pool.num_idle() > 0 || pool.size() < pool.options().get_max_connections();
        let keep = nobody_waits && !pool.is_closed() && from_pool.elapsed() < self.recycle_after;
        let rejected = {
            let mut idle = self.idle();
            if keep && idle.len() < self.keep {
                idle.push(Kept {
                    conn,
                    since: Instant::now(),
                    from_pool,
                });
                None
            } else {
                Some(conn)
            }
        };
        // Dropped outside the lock: the pool takes it back on a task of its own.
        drop(rejected);
    }
}

impl HotConnections {
    /// `pool`'s connections, most recently used first. Call from within a tokio
    /// runtime: a task lets the kept connections go when the pool closes, so
    /// that [`PgPool::close`] does not wait for them.
    pub fn new(pool: PgPool) -> Self {
        let options = pool.options();
        let max = options.get_max_connections() as usize;
        let recycle_after = options
            .get_max_lifetime()
            .map_or(RECYCLE_AFTER, |lifetime| lifetime.min(RECYCLE_AFTER));
        let stack = Arc::new(Stack {
            idle: Mutex::new(Vec::new()),
            keep: KEEP.min(max.saturating_sub(1)),
            recycle_after,
        });
        let closed = pool.close_event();
        let watched = Arc::downgrade(&stack);
        tokio::spawn(async move {
            closed.await;
            if let Some(stack) = watched.upgrade() {
                drop(stack.drain());
            }
        });
        Self { pool, stack }
    }

    /// The pool underneath: for work that takes connections in bulk or
    /// in the background (claims, sweeps, health checks) and to close it.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Connections on the stack now.
    pub fn kept(&self) -> usize {
        self.stack.len()
    }

    /// Begins a transaction on the connection used last, or on one from
    /// the pool.
    pub async fn begin(&self) -> Result<HotTransaction, sqlx::Error> {
        let mut conn = self.acquire().await?;
        // Dropped on failure, the connection goes back to the pool, which
        // checks it.
        simple(&mut conn, "BEGIN").await?;
        Ok(HotTransaction { conn: Some(conn) })
    }

    /// Runs `statements` outside a transaction on the connection used last
    /// (or one from the pool), and puts it back on the stack when they
    /// succeed; after a failure it goes back to the pool, which checks it.
    pub async fn run<T>(
        &self,
        statements: impl AsyncFnOnce(&mut PgConnection) -> Result<T, dondoc_errors::Error>,
    ) -> Result<T, dondoc_errors::Error> {
        let mut conn = self.acquire().await.map_err(crate::storage_error)?;
        let done = statements(&mut conn).await;
        if done.is_ok() {
            conn.release();
        }
        done
    }

    /// The connection used last, or one from the pool, for
    /// statements outside a transaction. [`HotConnection::release`] puts it
    /// back on the stack once they have completed.
    pub async fn acquire(&self) -> Result<HotConnection, sqlx::Error> {
        while let Some(mut kept) = self.stack.pop() {
            // As the pool does: one idle for a while is checked, since the
            // server may have restarted or a firewall cut it meanwhile.
            if kept.since.elapsed() < CHECK_AFTER_IDLE || kept.conn.ping().await.is_ok() {
                return Ok(HotConnection {
                    conn: kept.conn,
                    from_pool: kept.from_pool,
                    home: self.clone(),
                });
            }
            kept.conn.close_on_drop();
        }
        Ok(HotConnection {
            conn: self.pool.acquire().await?,
            from_pool: Instant::now(),
            home: self.clone(),
        })
    }
}

/// A connection from [`HotConnections`]. Dropped rather than released (a
/// statement cut short, an error), it goes back to the pool, which checks it.
pub struct HotConnection {
    conn: PoolConnection<Postgres>,
    from_pool: Instant,
    home: HotConnections,
}

impl std::fmt::Debug for HotConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotConnection").finish_non_exhaustive()
    }
}

impl HotConnection {
    /// Its statements completed: it goes on top of the stack.
    pub fn release(self) {
        let HotConnection {
            conn,
            from_pool,
            home,
        } = self;
        home.stack.give_back(conn, from_pool, &home.pool);
    }
}

impl Deref for HotConnection {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for HotConnection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

/// An open transaction on one connection: rolled back unless committed.
pub struct HotTransaction {
    /// Taken when it commits or rolls back; present until then.
    conn: Option<HotConnection>,
}

impl std::fmt::Debug for HotTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotTransaction")
            .field("open", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl HotTransaction {
    /// Commits; the connection goes on top of the stack.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.end("COMMIT").await
    }

    /// Rolls back at once; the connection goes on top of the stack.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.end("ROLLBACK").await
    }

    async fn end(mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        let mut conn = self
            .conn
            .take()
            .expect("a transaction holds its connection until it ends");
        // On failure the server has ended the transaction (or the connection
        // is gone): the connection goes back to the pool, which checks it.
        simple(&mut conn, sql).await?;
        conn.release();
        Ok(())
    }

    fn open(&self) -> &HotConnection {
        self.conn
            .as_ref()
            .expect("a transaction holds its connection until it ends")
    }

    fn open_mut(&mut self) -> &mut HotConnection {
        self.conn
            .as_mut()
            .expect("a transaction holds its connection until it ends")
    }
}

impl Deref for HotTransaction {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.open()
    }
}

impl DerefMut for HotTransaction {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.open_mut()
    }
}

impl Drop for HotTransaction {
    /// Not committed: rolled back on a task (after whatever statement was
    /// cut short), then back to the pool; closed when that fails or no
    /// runtime is left to run it.
    fn drop(&mut self) {
        let Some(HotConnection { mut conn, .. }) = self.conn.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if simple(&mut conn, "ROLLBACK").await.is_err() {
                        conn.close_on_drop();
                    }
                });
            }
            Err(_) => conn.close_on_drop(),
        }
    }
}

/// Runs `sql` by the simple query protocol, as sqlx's own transactions do.
/// A named function with a plain borrow: the futures that call it stay
/// `Send` (through `PoolConnection`'s `DerefMut`, they would not).
async fn simple(conn: &mut PgConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    sqlx::Executor::execute(conn, sql).await.map(drop)
}
