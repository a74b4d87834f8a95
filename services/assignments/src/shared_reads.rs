//! Callers who ask for the same figures at once share reads.
//!
//! A dashboard opened by many officials at the same moment would otherwise
//! run one province-wide statement per official, all competing for the
//! same cores. Here, reads of one key run one at a time, and a read serves
//! every caller of that key that was waiting when it began. A caller never
//! takes the result of a read that began before it arrived, so what it gets
//! includes every write acknowledged before it asked: sharing changes the
//! cost, not what a caller sees.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Reads of values of type `V` keyed by `K`, shared between callers.
#[derive(Debug)]
pub struct SharedReads<K, V> {
    /// Keys with at least one caller, with how many hold them; a key no
    /// caller holds is removed.
    keys: Mutex<HashMap<K, Holders<V>>>,
}

#[derive(Debug)]
struct Holders<V> {
    count: usize,
    reads: Arc<KeyReads<V>>,
}

#[derive(Debug)]
struct KeyReads<V> {
    /// How many reads of the key have begun.
    begun: AtomicU64,
    /// Held while a read runs: the result of the last read that succeeded,
    /// with its number in `begun`.
    last: tokio::sync::Mutex<Option<(u64, V)>>,
}

impl<K, V> Default for SharedReads<K, V> {
    fn default() -> Self {
        Self {
            keys: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> SharedReads<K, V> {
    /// The value of `key`: from a read of another caller that began after
    /// this call did, or from `read`. A failed read is not shared: the next
    /// caller waiting reads for itself.
    pub async fn read<E, F>(&self, key: K, read: impl FnOnce() -> F) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        let held = self.hold(key);
        let arrived = held.reads.begun.load(Ordering::SeqCst);
        let mut last = held.reads.last.lock().await;
        if let Some((number, value)) = &*last
            && *number > arrived
        {
            return Ok(value.clone());
        }
        let number = held.reads.begun.fetch_add(1, Ordering::SeqCst) + 1;
        let value = read().await?;
        *last = Some((number, value.clone()));
        Ok(value)
    }

    /// How many keys have callers now.
    pub fn keys_held(&self) -> usize {
        self.lock().len()
    }

    fn hold(&self, key: K) -> Held<'_, K, V> {
        let mut keys = self.lock();
        let holders = keys.entry(key.clone()).or_insert_with(|| Holders {
            count: 0,
            reads: Arc::new(KeyReads {
                begun: AtomicU64::new(0),
                last: tokio::sync::Mutex::new(None),
            }),
        });
        holders.count += 1;
        let reads = holders.reads.clone();
        drop(keys);
        Held {
            owner: self,
            key,
            reads,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Holders<V>>> {
        // The map is consistent at every await-free step, so a panic
        // elsewhere while it was held leaves nothing half done.
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A caller's hold on its key; the last one to let go removes the key, so
/// the map holds only keys being read (a caller who gives up, such as a
/// cancelled request, lets go too).
struct Held<'a, K: Eq + Hash + Clone, V: Clone> {
    owner: &'a SharedReads<K, V>,
    key: K,
    reads: Arc<KeyReads<V>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Drop for Held<'_, K, V> {
    fn drop(&mut self) {
        let mut keys = self.owner.lock();
        // Counted under the map's lock, as in `hold`.
        if let Some(holders) = keys.get_mut(&self.key) {
            holders.count -= 1;
            if holders.count == 0 {
                keys.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    use super::*;

    type Outcome = Result<usize, &'static str>;

    /// Callers of one `SharedReads` whose reads count themselves and wait
    /// at a gate: a read is numbered by when it began, and fails if its
    /// gate is dropped.
    #[derive(Clone, Default)]
    struct Callers {
        shared: Arc<SharedReads<&'static str, usize>>,
        begun: Arc<AtomicUsize>,
    }

    impl Callers {
        /// A caller of `key`, its read's gate, and its outcome.
        fn ask(&self, key: &'static str) -> (oneshot::Sender<()>, JoinHandle<Outcome>) {
            let (release, gate) = oneshot::channel();
            let this = self.clone();
            let caller = tokio::spawn(async move {
                let begun = this.begun.clone();
                this.shared
                    .read(key, || async move {
                        let number = begun.fetch_add(1, Ordering::SeqCst) + 1;
                        gate.await.map_err(|_| "released")?;
                        Ok(number)
                    })
                    .await
            });
            (release, caller)
        }

        fn begun(&self) -> usize {
            self.begun.load(Ordering::SeqCst)
        }

        /// Waits until `n` reads have begun; fails the test after a second.
        async fn until_begun(&self, n: usize) {
            tokio::time::timeout(Duration::from_secs(1), async {
                while self.begun() != n {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("the reads begin within a second");
        }
    }

    async fn outcome(caller: JoinHandle<Outcome>) -> Outcome {
        caller.await.expect("the caller ends")
    }

    /// Lets spawned callers reach the key's lock.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[tokio::test]
    async fn callers_waiting_on_a_read_share_the_next_one_not_the_running_one() {
        let callers = Callers::default();
        let (release_first, first) = callers.ask("province");
        callers.until_begun(1).await;

        // Three arrive while it runs: its result began before them, so
        // one of them reads again and the others take that second read.
        let later: Vec<_> = (0..3).map(|_| callers.ask("province")).collect();
        settle().await;
        assert_eq!(callers.begun(), 1, "one read at a time");

        release_first.send(()).expect("the first read waits");
        assert_eq!(outcome(first).await, Ok(1));
        callers.until_begun(2).await;
        let mut waiting = Vec::new();
        for (release, caller) in later {
            // Only the caller whose read began is listening.
            let _ = release.send(());
            waiting.push(caller);
        }
        let mut outcomes = Vec::new();
        for caller in waiting {
            outcomes.push(outcome(caller).await);
        }
        assert_eq!(outcomes, [Ok(2), Ok(2), Ok(2)]);
        assert_eq!(callers.begun(), 2);
        assert_eq!(callers.shared.keys_held(), 0, "no caller, no key");
    }

    #[tokio::test]
    async fn a_caller_alone_reads_for_itself_every_time() {
        let callers = Callers::default();
        for expected in 1..=3 {
            let (release, caller) = callers.ask("province");
            release.send(()).expect("open");
            assert_eq!(
                outcome(caller).await,
                Ok(expected),
                "a finished read serves no one later"
            );
        }
        assert_eq!(callers.shared.keys_held(), 0);
    }

    #[tokio::test]
    async fn keys_do_not_share_and_a_failed_read_is_not_shared() {
        let callers = Callers::default();
        let (fail_first, first) = callers.ask("province");
        callers.until_begun(1).await;

        // Another key reads at once, beside the running read.
        let (release, other) = callers.ask("ag-1");
        release.send(()).expect("open");
        assert_eq!(outcome(other).await, Ok(2));

        // A caller waiting behind a read that fails reads for itself.
        let (release_waiting, waiting) = callers.ask("province");
        settle().await;
        drop(fail_first);
        assert_eq!(outcome(first).await, Err("released"));
        callers.until_begun(3).await;
        release_waiting.send(()).expect("the waiting caller reads");
        assert_eq!(outcome(waiting).await, Ok(3));
        assert_eq!(callers.shared.keys_held(), 0);
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_lets_the_others_read() {
        let callers = Callers::default();
        let (_never, stuck) = callers.ask("province");
        callers.until_begun(1).await;
        let (release, next) = callers.ask("province");
        settle().await;
        // A cancelled request drops its read midway.
        stuck.abort();
        assert!(stuck.await.expect_err("aborted").is_cancelled());
        callers.until_begun(2).await;
        release.send(()).expect("the next caller reads");
        assert_eq!(outcome(next).await, Ok(2));
        assert_eq!(callers.shared.keys_held(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_key_outlives_its_callers() {
        let shared = Arc::new(SharedReads::<usize, usize>::default());
        let callers: Vec<_> = (0..2000)
            .map(|i| {
                let shared = shared.clone();
                tokio::spawn(async move {
                    shared
                        .read(i % 5, || async move {
                            tokio::task::yield_now().await;
                            Ok::<_, ()>(i)
                        })
                        .await
                })
            })
            .collect();
        for caller in callers {
            assert!(caller.await.expect("the caller ends").is_ok());
        }
        assert_eq!(shared.keys_held(), 0);
    }
}
