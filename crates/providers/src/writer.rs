//! The bounded write path ([`ProviderWriter`]) and periodic expiry ([`spawn_gc`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::{
    MAX_GC_BATCH, MAX_PUT_BATCH, ProviderRecord, ProviderStore, check_key, normalized_addrs,
    unix_now,
};

/// Settings of a [`ProviderWriter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterConfig {
    /// Most records waiting in the queue (at least 1). Records offered while it is full are
    /// dropped. Memory: up to `queue_capacity + batch_size` records of at most
    /// [`crate::MAX_ADDRS`] addrs each (about 300 bytes for a record with a few addrs).
    pub queue_capacity: usize,
    /// Most records per [`ProviderStore::put_batch`] call, clamped to
    /// `1..=`[`MAX_PUT_BATCH`].
    pub batch_size: usize,
    /// Longest wait, after the first record of a batch arrives, for the batch to fill before
    /// it is written anyway.
    pub batch_interval: Duration,
}

impl Default for WriterConfig {
    /// 10 000 queued records, batches of 500, written at least every 200 ms.
    fn default() -> Self {
        Self {
            queue_capacity: 10_000,
            batch_size: 500,
            batch_interval: Duration::from_millis(200),
        }
    }
}

/// A snapshot of a [`ProviderWriter`]'s counters (all since [`ProviderWriter::spawn`]; the node
/// exports them as Prometheus metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriterStats {
    /// Records in the queue now (not counting the batch being written).
    pub queue_depth: usize,
    /// The queue's capacity in records.
    pub queue_capacity: usize,
    /// Records accepted into the queue.
    pub accepted: u64,
    /// Records dropped because the queue was full (or the writer task had stopped).
    pub dropped: u64,
    /// Records refused because their key is empty or over [`crate::MAX_KEY_LEN`] bytes.
    pub invalid: u64,
    /// Records written by successful `put_batch` calls.
    pub written: u64,
    /// `put_batch` calls that failed (their records are lost, not retried).
    pub write_errors: u64,
    /// Records in the failed `put_batch` calls.
    pub failed_records: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    dropped: AtomicU64,
    invalid: AtomicU64,
    written: AtomicU64,
    write_errors: AtomicU64,
    failed_records: AtomicU64,
}

/// The bounded, load-shedding write path into a [`ProviderStore`], shared by all DHT heads.
///
/// [`try_add`](Self::try_add) never waits: it enqueues into a bounded channel, or drops the
/// record and counts it when the channel is full. A background task drains the channel in
/// batches of up to `batch_size` records (or whatever arrived within `batch_interval` of a
/// batch's first record) and calls [`ProviderStore::put_batch`] once per batch; a failed batch
/// is counted and logged, never retried. A store that slows down or hangs thus costs at most
/// `queue_capacity + batch_size` records of memory and dropped `ADD_PROVIDER`s, never the
/// heads' liveness (hydra-booster's PostgreSQL lesson; see the crate docs).
///
/// Cheap to clone. The task ends once every clone is dropped and the queue is drained.
#[derive(Debug, Clone)]
pub struct ProviderWriter {
    tx: mpsc::Sender<ProviderRecord>,
    capacity: usize,
    counters: Arc<Counters>,
}

impl ProviderWriter {
    /// Starts the writer task on the current Tokio runtime; returns the writer and the task's
    /// handle, which completes after every clone of the writer is dropped and the queue has
    /// been written out, yielding the final counters (`queue_depth` 0).
    ///
    /// # Panics
    /// Outside a Tokio runtime (as [`tokio::spawn`]).
    pub fn spawn(
        store: Arc<dyn ProviderStore>,
        config: WriterConfig,
    ) -> (ProviderWriter, JoinHandle<WriterStats>) {
        let capacity = config.queue_capacity.max(1);
        let batch_size = config.batch_size.clamp(1, MAX_PUT_BATCH);
        let (tx, rx) = mpsc::channel(capacity);
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(run_writer(
            store,
            rx,
            batch_size,
            config.batch_interval,
            Arc::clone(&counters),
            capacity,
        ));
        let writer = ProviderWriter {
            tx,
            capacity,
            counters,
        };
        (writer, task)
    }

    /// Offers a record for writing without waiting: `true` when it was queued, `false` when it
    /// was dropped because the queue is full or the writer task has stopped (counted in
    /// [`WriterStats::dropped`]), or refused because its key is invalid (counted in
    /// [`WriterStats::invalid`]; such a record would fail a whole batch). Its addrs are
    /// normalized ([`normalized_addrs`]) before queueing, bounding a queued record's size.
    pub fn try_add(&self, mut record: ProviderRecord) -> bool {
        if check_key(&record.key).is_err() {
            self.counters.invalid.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        record.addrs = normalized_addrs(std::mem::take(&mut record.addrs));
        match self.tx.try_send(record) {
            Ok(()) => {
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// The writer's counters now.
    pub fn stats(&self) -> WriterStats {
        self.counters.snapshot(
            self.capacity.saturating_sub(self.tx.capacity()),
            self.capacity,
        )
    }
}

impl Counters {
    fn snapshot(&self, queue_depth: usize, queue_capacity: usize) -> WriterStats {
        let c = self;
        WriterStats {
            queue_depth,
            queue_capacity,
            accepted: c.accepted.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            invalid: c.invalid.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            write_errors: c.write_errors.load(Ordering::Relaxed),
            failed_records: c.failed_records.load(Ordering::Relaxed),
        }
    }
}

/// While the store keeps failing, one warning per this many failed batches.
const LOG_EVERY_ERRORS: u64 = 1000;

async fn run_writer(
    store: Arc<dyn ProviderStore>,
    mut rx: mpsc::Receiver<ProviderRecord>,
    batch_size: usize,
    batch_interval: Duration,
    counters: Arc<Counters>,
    capacity: usize,
) -> WriterStats {
    let mut batch = Vec::with_capacity(batch_size);
    let mut consecutive_errors = 0u64;
    loop {
        if rx.recv_many(&mut batch, batch_size).await == 0 {
            break; // every sender dropped and the queue is empty
        }
        let deadline = Instant::now() + batch_interval;
        while batch.len() < batch_size {
            let room = batch_size - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let n = batch.len() as u64;
        match store.put_batch(&batch).await {
            Ok(()) => {
                counters.written.fetch_add(n, Ordering::Relaxed);
                if consecutive_errors > 0 {
                    tracing::info!(
                        failed_batches = consecutive_errors,
                        "provider store writes recovered"
                    );
                    consecutive_errors = 0;
                }
            }
            Err(error) => {
                counters.write_errors.fetch_add(1, Ordering::Relaxed);
                counters.failed_records.fetch_add(n, Ordering::Relaxed);
                consecutive_errors += 1;
                // A store that is down fails every batch: log the first failure and then one
                // in LOG_EVERY_ERRORS, not thousands of lines a second.
                if consecutive_errors % LOG_EVERY_ERRORS == 1 {
                    tracing::warn!(
                        records = n,
                        consecutive_errors,
                        %error,
                        "provider store write failed; records dropped"
                    );
                }
            }
        }
        batch.clear();
    }
    tracing::debug!("provider writer stopped: all senders dropped");
    counters.snapshot(0, capacity)
}

/// Most `gc` calls per tick of [`spawn_gc`] (each removes at most `batch` records), so one
/// tick's work stays bounded even when far behind; the next tick continues.
pub const MAX_GC_ROUNDS_PER_TICK: usize = 100;

/// A snapshot of the counters of a [`spawn_gc`] task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GcStats {
    /// Ticks completed (each one or more `gc` calls).
    pub runs: u64,
    /// Expired records removed.
    pub removed: u64,
    /// `gc` calls that failed (logged; the next tick tries again).
    pub errors: u64,
}

#[derive(Debug, Default)]
struct GcCounters {
    runs: AtomicU64,
    removed: AtomicU64,
    errors: AtomicU64,
}

/// Reads the counters of a [`spawn_gc`] task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GcHandle {
    counters: Arc<GcCounters>,
}

impl GcHandle {
    /// The GC task's counters now.
    pub fn stats(&self) -> GcStats {
        GcStats {
            runs: self.counters.runs.load(Ordering::Relaxed),
            removed: self.counters.removed.load(Ordering::Relaxed),
            errors: self.counters.errors.load(Ordering::Relaxed),
        }
    }
}

/// Starts a task that removes expired records every `interval` (at least 1 ms; the first run
/// is immediate): each tick calls [`ProviderStore::gc`] with the wall clock ([`unix_now`]) and
/// `max = batch` (clamped to `1..=`[`MAX_GC_BATCH`]) until a call removes fewer than `batch` records, at most
/// [`MAX_GC_ROUNDS_PER_TICK`] times. Runs until its handle is aborted.
///
/// # Panics
/// Outside a Tokio runtime (as [`tokio::spawn`]).
pub fn spawn_gc(
    store: Arc<dyn ProviderStore>,
    interval: Duration,
    batch: usize,
) -> (GcHandle, JoinHandle<()>) {
    let counters = Arc::new(GcCounters::default());
    let handle = GcHandle {
        counters: Arc::clone(&counters),
    };
    let batch = batch.clamp(1, MAX_GC_BATCH);
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            for _ in 0..MAX_GC_ROUNDS_PER_TICK {
                match store.gc(unix_now(), batch).await {
                    Ok(removed) => {
                        counters
                            .removed
                            .fetch_add(removed as u64, Ordering::Relaxed);
                        if removed < batch {
                            break;
                        }
                    }
                    Err(error) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, "provider record gc failed");
                        break;
                    }
                }
                tokio::task::yield_now().await;
            }
            counters.runs.fetch_add(1, Ordering::Relaxed);
        }
    });
    (handle, task)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::{Mutex, PoisonError};

    use async_trait::async_trait;
    use tokio::sync::{Notify, Semaphore, watch};

    use super::*;
    use crate::conformance::{test_key, test_peer};
    use crate::{
        Cursor, MAX_KEY_LEN, MemoryProviderStore, Page, ProviderError, RecordCount, unix_now,
    };

    /// Fault injection around a real [`MemoryProviderStore`]: `put_batch` can be held until
    /// permits are added to `gate`, and can fail while `fail` is set.
    struct FaultyStore {
        inner: MemoryProviderStore,
        /// One permit per `put_batch` allowed to proceed.
        gate: Semaphore,
        /// Notified when a `put_batch` call starts (before waiting at the gate).
        entered: Notify,
        fail: AtomicBool,
        /// Records offered to `put_batch` so far, failed calls included.
        offered: watch::Sender<usize>,
        /// Size of every `put_batch` call.
        batches: Mutex<Vec<usize>>,
    }

    impl FaultyStore {
        fn new(open: bool) -> Arc<Self> {
            Arc::new(Self {
                inner: MemoryProviderStore::new(100_000),
                gate: Semaphore::new(if open { Semaphore::MAX_PERMITS } else { 0 }),
                entered: Notify::new(),
                fail: AtomicBool::new(false),
                offered: watch::Sender::new(0),
                batches: Mutex::new(Vec::new()),
            })
        }

        async fn stored_keys(&self) -> Vec<Vec<u8>> {
            let page = self.inner.list(None, 0, 1000).await.expect("list");
            assert!(page.next.is_none());
            let mut keys: Vec<_> = page.records.into_iter().map(|r| r.key).collect();
            keys.sort();
            keys
        }
    }

    #[async_trait]
    impl ProviderStore for FaultyStore {
        async fn put_batch(&self, records: &[ProviderRecord]) -> Result<(), ProviderError> {
            self.entered.notify_one();
            self.gate.acquire().await.expect("gate open").forget();
            self.batches
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(records.len());
            let result = if self.fail.load(Ordering::SeqCst) {
                Err(ProviderError::Storage("injected failure".into()))
            } else {
                self.inner.put_batch(records).await
            };
            self.offered.send_modify(|n| *n += records.len());
            result
        }
        async fn providers(
            &self,
            key: &[u8],
            now: u64,
            limit: usize,
        ) -> Result<Vec<ProviderRecord>, ProviderError> {
            self.inner.providers(key, now, limit).await
        }
        async fn list(
            &self,
            after: Option<&Cursor>,
            now: u64,
            limit: usize,
        ) -> Result<Page, ProviderError> {
            self.inner.list(after, now, limit).await
        }
        async fn gc(&self, now: u64, max: usize) -> Result<usize, ProviderError> {
            self.inner.gc(now, max).await
        }
        async fn count(&self) -> Result<RecordCount, ProviderError> {
            self.inner.count().await
        }
    }

    fn rec(key: u32) -> ProviderRecord {
        ProviderRecord {
            key: test_key(key),
            provider: test_peer(1),
            addrs: vec![],
            expires_at: u64::MAX,
        }
    }

    fn keys(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
        let mut keys: Vec<_> = range.map(test_key).collect();
        keys.sort();
        keys
    }

    /// While the store is stuck, the queue fills to its capacity and no further; the extra
    /// records are dropped and counted; once the store is released every accepted record is
    /// written, in batches of at most `batch_size`.
    #[tokio::test]
    async fn stuck_store_sheds_load_and_accepted_records_are_written() {
        let store = FaultyStore::new(false);
        let config = WriterConfig {
            queue_capacity: 8,
            batch_size: 4,
            batch_interval: Duration::from_millis(5),
        };
        let (writer, task) = ProviderWriter::spawn(store.clone(), config);

        assert!(writer.try_add(rec(0)));
        // The writer took record 0 out of the queue and is now stuck in put_batch.
        store.entered.notified().await;

        let results: Vec<bool> = (1..=20).map(|k| writer.try_add(rec(k))).collect();
        assert_eq!(
            results,
            (1..=20).map(|k| k <= 8).collect::<Vec<_>>(),
            "exactly the first queue_capacity records offered to a stuck writer are accepted"
        );
        let stats = writer.stats();
        assert_eq!(stats.queue_depth, 8);
        assert_eq!(stats.queue_capacity, 8);
        assert_eq!((stats.accepted, stats.dropped, stats.written), (9, 12, 0));
        assert!(
            !writer.try_add(rec(21)),
            "a full queue accepted another record"
        );

        store.gate.add_permits(Semaphore::MAX_PERMITS / 2);
        drop(writer);
        let last = task.await.expect("writer task");
        assert_eq!(last.accepted, 9);
        assert_eq!(last.dropped, 13);
        assert_eq!(last.written, 9, "accepted records were not all written");
        assert_eq!((last.write_errors, last.failed_records), (0, 0));
        assert_eq!(store.stored_keys().await, keys(0..9));
        let batches = store.batches.lock().expect("lock").clone();
        assert_eq!(batches.iter().sum::<usize>(), 9);
        assert!(
            batches.iter().all(|&n| (1..=4).contains(&n)),
            "batch sizes {batches:?} exceed batch_size 4"
        );
        assert!(
            batches.contains(&4),
            "a full queue was not drained in full batches: {batches:?}"
        );
    }

    /// A failing store costs the records of the failed batches (counted), not the writer:
    /// once the store recovers, later records are written.
    #[tokio::test]
    async fn failing_store_counts_errors_and_writer_keeps_running() {
        let store = FaultyStore::new(true);
        store.fail.store(true, Ordering::SeqCst);
        let config = WriterConfig {
            queue_capacity: 100,
            batch_size: 2,
            batch_interval: Duration::from_millis(1),
        };
        let (writer, task) = ProviderWriter::spawn(store.clone(), config);
        for k in 0..5 {
            assert!(writer.try_add(rec(k)));
        }
        let mut offered = store.offered.subscribe();
        // Every failing call has been made (the counters follow when each call returns).
        offered.wait_for(|&n| n >= 5).await.expect("store alive");

        store.fail.store(false, Ordering::SeqCst);
        for k in 5..8 {
            assert!(
                writer.try_add(rec(k)),
                "writer stopped accepting after errors"
            );
        }
        drop(writer);
        let last = task.await.expect("writer task");
        assert_eq!((last.written, last.failed_records), (3, 5));
        assert!(
            last.write_errors >= 3,
            "5 records in batches of 2 failed in fewer than 3 calls"
        );
        assert_eq!(store.stored_keys().await, keys(5..8));
    }

    /// Records with an invalid key are refused at `try_add` (they would fail a whole batch).
    #[tokio::test]
    async fn invalid_keys_are_refused_before_queueing() {
        let store = FaultyStore::new(true);
        let (writer, task) = ProviderWriter::spawn(store.clone(), WriterConfig::default());
        for len in [0, MAX_KEY_LEN + 1] {
            let bad = ProviderRecord {
                key: vec![1; len],
                ..rec(0)
            };
            assert!(!writer.try_add(bad), "a {len}-byte key was queued");
        }
        assert!(writer.try_add(rec(1)));
        drop(writer);
        let last = task.await.expect("writer task");
        assert_eq!((last.invalid, last.accepted, last.written), (2, 1, 1));
        assert_eq!(store.stored_keys().await, keys(1..2));
    }

    /// The GC task removes every expired record in bounded rounds and leaves live ones.
    #[tokio::test]
    async fn gc_task_removes_expired_records() {
        let store = Arc::new(MemoryProviderStore::new(1000));
        let live = unix_now() + 3600;
        let records: Vec<_> = (0..12)
            .map(|k| ProviderRecord {
                expires_at: if k < 7 { 1 } else { live },
                ..rec(k)
            })
            .collect();
        store.put_batch(&records).await.expect("put");
        let (gc, task) = spawn_gc(store.clone(), Duration::from_secs(3600), 2);
        // The first tick runs at once; wait for it to complete (bounded as a liveness guard).
        let done = tokio::time::timeout(Duration::from_secs(60), async {
            while gc.stats().runs == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        task.abort();
        assert!(done.is_ok(), "the GC task never completed a run");
        let stats = gc.stats();
        assert_eq!((stats.removed, stats.errors), (7, 0));
        let left = store.list(None, 0, 100).await.expect("list");
        assert_eq!(left.records.len(), 5);
        assert!(left.records.iter().all(|r| r.expires_at == live));
    }
}
