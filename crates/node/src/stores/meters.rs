//! Meters of the index and of ingests, rendered by the HTTP floor's `/metrics`:
//!
//! - [`MeteredIndex`] wraps the block index (under the presence filter, so only the lookups
//!   that reach the index are timed) and times every lookup into [`IndexStats`];
//! - [`Buckets`] and the bucket bounds every latency histogram uses;
//! - [`IngestStats`] counts ingests through the API: CARs, blocks and bytes ingested, failures
//!   by reason, and the ingests running with the bytes they verified so far.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use hydrant_index::{BlockLocation, BlockLookup, IndexError, Multihash};
use hydrant_ingest::{IngestError, IngestProgress, IngestSummary};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use prometheus_client::metrics::family::MetricConstructor;

/// Upper bounds of the latency histograms, in seconds: 1 ms to 60 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Upper bounds of the latency histograms of the stores (index lookups, object-store calls),
/// in seconds: 100 µs to 30 s.
pub const FINE_LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Builds the histograms of a [`Family`] with fixed bucket bounds (seconds).
#[derive(Debug, Clone, Copy)]
pub struct Buckets(pub &'static [f64]);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

/// Latency of index lookups, by `kind`: `single` (one multihash) or `batch` (many in one call).
#[derive(Debug)]
pub struct IndexStats {
    latency: Family<Vec<(&'static str, &'static str)>, Histogram, Buckets>,
}

impl Default for IndexStats {
    fn default() -> Self {
        let latency = Family::new_with_constructor(Buckets(FINE_LATENCY_BUCKETS));
        for kind in ["single", "batch"] {
            let _ = latency.get_or_create(&vec![("kind", kind)]);
        }
        Self { latency }
    }
}

impl IndexStats {
    fn observe(&self, kind: &'static str, started: Instant) {
        self.latency
            .get_or_create(&vec![("kind", kind)])
            .observe(started.elapsed().as_secs_f64());
    }

    /// Registers `index_lookup_duration_seconds`.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "index_lookup_duration_seconds",
            "Seconds per index lookup call that got past the presence filter, by kind (single, batch)",
            self.latency.clone(),
        );
    }
}

/// A [`BlockLookup`] that times the lookups of `inner` (`locations`, `contains`: `single`;
/// `locations_many`: `batch`), failed ones included.
pub struct MeteredIndex {
    inner: Arc<dyn BlockLookup>,
    stats: Arc<IndexStats>,
}

impl MeteredIndex {
    /// `inner`, timed into `stats`.
    pub fn new(inner: Arc<dyn BlockLookup>, stats: Arc<IndexStats>) -> Self {
        Self { inner, stats }
    }
}

#[async_trait]
impl BlockLookup for MeteredIndex {
    async fn locations(&self, multihash: &Multihash) -> Result<Vec<BlockLocation>, IndexError> {
        let started = Instant::now();
        let result = self.inner.locations(multihash).await;
        self.stats.observe("single", started);
        result
    }

    async fn contains(&self, multihash: &Multihash) -> Result<bool, IndexError> {
        let started = Instant::now();
        let result = self.inner.contains(multihash).await;
        self.stats.observe("single", started);
        result
    }

    async fn locations_many(
        &self,
        multihashes: &[Multihash],
    ) -> Result<Vec<Vec<BlockLocation>>, IndexError> {
        let started = Instant::now();
        let result = self.inner.locations_many(multihashes).await;
        self.stats.observe("batch", started);
        result
    }
}

/// Why an ingest failed: the `reason` label.
const FAILURE_REASONS: [&str; 5] = ["invalid", "too_large", "interrupted", "not_found", "error"];

/// Counters of the ingests run through the API (uploads and in-place indexing).
#[derive(Debug, Default)]
pub struct IngestStats {
    ingested: AtomicU64,
    already_present: AtomicU64,
    blocks: AtomicU64,
    bytes: AtomicU64,
    failures: [AtomicU64; FAILURE_REASONS.len()],
    next_id: AtomicU64,
    /// Progress of the ingests running now, by ticket number.
    running: Mutex<HashMap<u64, Arc<IngestProgress>>>,
}

impl IngestStats {
    /// Counts an ingest as running until the ticket is finished or dropped (a dropped ticket
    /// counts as `interrupted`). Pass [`IngestTicket::progress`] to the ingester.
    pub fn start(self: &Arc<Self>) -> IngestTicket {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let progress = Arc::new(IngestProgress::default());
        self.running
            .lock()
            .expect("ingest registry lock")
            .insert(id, progress.clone());
        IngestTicket {
            stats: self.clone(),
            id,
            progress,
            finished: false,
        }
    }

    fn fail(&self, reason: &str) {
        let i = FAILURE_REASONS
            .iter()
            .position(|r| *r == reason)
            .expect("a known reason");
        self.failures[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Registers the `ingest_*` metrics.
    pub fn register(&self, r: &mut Registry) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let cars = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        cars.get_or_create(&vec![("result", "ingested")])
            .inc_by(load(&self.ingested));
        cars.get_or_create(&vec![("result", "already_present")])
            .inc_by(load(&self.already_present));
        r.register(
            "ingest_cars",
            "CARs ingested through the API: newly ingested, or already present",
            cars,
        );
        let blocks = Counter::<u64>::default();
        blocks.inc_by(load(&self.blocks));
        r.register("ingest_blocks", "Blocks of newly ingested CARs", blocks);
        let bytes = Counter::<u64>::default();
        bytes.inc_by(load(&self.bytes));
        r.register("ingest_bytes", "Bytes of newly ingested CARs", bytes);
        let failures = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        for (reason, n) in FAILURE_REASONS.iter().zip(&self.failures) {
            failures
                .get_or_create(&vec![("reason", *reason)])
                .inc_by(load(n));
        }
        r.register(
            "ingest_failures",
            "Failed ingests by reason (invalid CAR, too_large, interrupted upload, not_found \
             stored CAR, server-side error)",
            failures,
        );
        let (running, verified) = {
            let running = self.running.lock().expect("ingest registry lock");
            let verified: u64 = running
                .values()
                .map(|p| p.bytes.load(Ordering::Relaxed))
                .sum();
            (running.len() as u64, verified)
        };
        for (name, help, value) in [
            ("ingest_in_progress", "Ingests running now", running),
            (
                "ingest_in_progress_bytes",
                "CAR bytes verified so far by the ingests running now",
                verified,
            ),
        ] {
            let g: Gauge = Gauge::default();
            g.set(i64::try_from(value).unwrap_or(i64::MAX));
            r.register(name, help, g);
        }
    }
}

/// One running ingest, from [`IngestStats::start`].
pub struct IngestTicket {
    stats: Arc<IngestStats>,
    id: u64,
    progress: Arc<IngestProgress>,
    finished: bool,
}

impl IngestTicket {
    /// The progress counters to hand to the ingester.
    pub fn progress(&self) -> Arc<IngestProgress> {
        self.progress.clone()
    }

    /// Counts the ingest's result and ends it.
    pub fn finish(mut self, result: &Result<IngestSummary, IngestError>) {
        self.finished = true;
        let stats = &self.stats;
        match result {
            Ok(s) if s.already_present => {
                stats.already_present.fetch_add(1, Ordering::Relaxed);
            }
            Ok(s) => {
                stats.ingested.fetch_add(1, Ordering::Relaxed);
                stats.blocks.fetch_add(s.blocks, Ordering::Relaxed);
                stats.bytes.fetch_add(s.bytes, Ordering::Relaxed);
            }
            Err(e) => stats.fail(failure_reason(e)),
        }
    }
}

impl Drop for IngestTicket {
    fn drop(&mut self) {
        if !self.finished {
            self.stats.fail("interrupted");
        }
        self.stats
            .running
            .lock()
            .expect("ingest registry lock")
            .remove(&self.id);
    }
}

/// The `reason` label of a failed ingest.
fn failure_reason(e: &IngestError) -> &'static str {
    match e {
        e if e.is_bad_input() => "invalid",
        IngestError::Read { source, .. } if source.kind() == std::io::ErrorKind::FileTooLarge => {
            "too_large"
        }
        IngestError::Read { .. } => "interrupted",
        IngestError::NotFound { .. } => "not_found",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_count_results_and_running_ingests() {
        let stats = Arc::new(IngestStats::default());
        let a = stats.start();
        let b = stats.start();
        a.progress().bytes.store(700, Ordering::Relaxed);
        b.progress().bytes.store(300, Ordering::Relaxed);
        let text = |stats: &IngestStats| {
            let mut r = Registry::with_prefix("hydrant");
            stats.register(&mut r);
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
            out
        };
        let during = text(&stats);
        assert!(
            during.contains("hydrant_ingest_in_progress 2\n"),
            "{during}"
        );
        assert!(
            during.contains("hydrant_ingest_in_progress_bytes 1000\n"),
            "{during}"
        );
        a.finish(&Ok(IngestSummary {
            car_key: "cars/x.car".into(),
            version: 1,
            roots: Vec::new(),
            blocks: 3,
            bytes: 700,
            block_bytes: 600,
            already_present: false,
        }));
        drop(b);
        let c = stats.start();
        c.finish(&Err(IngestError::Empty));
        let after = text(&stats);
        for line in [
            "hydrant_ingest_in_progress 0\n",
            "hydrant_ingest_cars_total{result=\"ingested\"} 1\n",
            "hydrant_ingest_blocks_total 3\n",
            "hydrant_ingest_bytes_total 700\n",
            "hydrant_ingest_failures_total{reason=\"interrupted\"} 1\n",
            "hydrant_ingest_failures_total{reason=\"invalid\"} 1\n",
        ] {
            assert!(after.contains(line), "{line} missing from\n{after}");
        }
    }
}
