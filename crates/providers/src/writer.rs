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

async fn run_writer(
    store: Arc<dyn ProviderStore>,
    mut rx: mpsc::Receiver<ProviderRecord>,
    batch_size: usize,
    batch_interval: Duration,
    counters: Arc<Counters>,
    capacity: usize,
) -> WriterStats {
    let mut batch = Vec::with_capacity(batch_size);
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
            }
            Err(error) => {
                counters.write_errors.fetch_add(1, Ordering::Relaxed);
                counters.failed_records.fetch_add(n, Ordering::Relaxed);
                tracing::warn!(records = n, %error, "provider store write failed; records dropped");
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
