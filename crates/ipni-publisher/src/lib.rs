//! IPNI publishing: the advertisement chain of the node's CARs, served over HTTP and announced
//! to indexers.
//!
//! Specs: ../shared/specs/ipni.md ("Advertisements", "EntryChunk Chain", "Advertisement
//! Transfer", "Announcements") and ../shared/specs/ipni-http-provider.md. Where they are
//! silent the reference is go-libipni (`dagsync/ipnisync` publisher, `announce/httpsender`,
//! `announce/message`) and index-provider (`engine`).
//!
//! Public API:
//! - [`Publisher`] ([`chain`]): one advertisement per committed CAR, a removal per deleted
//!   one; blocks as objects `ipni/<cid>`, the head in the index database ([`IpniStore`]);
//!   [`context_id`] derives a CAR's context ID from its key;
//! - [`run_writer`]: the task that takes the writer lease and keeps the chain current;
//! - [`AdSource`] and [`router`] ([`serve`]): `GET /ipni/v1/ad/head` and `/ipni/v1/ad/{cid}`;
//! - [`announce`]: the announce message and the per-indexer sender with back-off;
//! - [`PublisherStats`]: counters for the node's metrics.
//!
//! [`IpniStore`]: hydrant_index::IpniStore

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cid::Cid;
use hydrant_index::{IpniHead, IpniStore};
use tokio::sync::watch;

pub mod announce;
pub mod chain;
pub mod serve;

pub use chain::{
    BLOCK_PREFIX, DEFAULT_BATCH, PublishError, Publisher, PublisherConfig, block_path, context_id,
};
pub use serve::{AdSource, DEFAULT_CACHE_BYTES, DEFAULT_TOPIC, router};

/// Counters of the publisher and the announcers, read by the node's `/metrics`.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// Advertisements published (additions and removals).
    pub advertisements: AtomicU64,
    /// Multihashes published in entry chunks.
    pub entries: AtomicU64,
    /// Entry chunks written.
    pub entry_chunks: AtomicU64,
    /// Bytes of blocks written to the object store (orphans of a lost race included).
    pub bytes_written: AtomicU64,
    /// Announce requests sent (each attempt to each indexer).
    pub announce_attempts: AtomicU64,
    /// Announce requests that failed.
    pub announce_failures: AtomicU64,
    /// When this writer last moved the head, seconds since the Unix epoch (0: never).
    pub head_updated_at: AtomicU64,
}

impl PublisherStats {
    fn published(&self, head: &IpniHead, ads: u64, entries: u64) {
        self.advertisements.fetch_add(ads, Ordering::Relaxed);
        self.entries.fetch_add(entries, Ordering::Relaxed);
        self.head_updated_at
            .store(head.updated_at, Ordering::Relaxed);
    }

    fn chunk(&self, _multihashes: u64) {
        self.entry_chunks.fetch_add(1, Ordering::Relaxed);
    }

    fn wrote(&self, bytes: u64) {
        self.bytes_written.fetch_add(bytes, Ordering::Relaxed);
    }

    fn announce_attempt(&self) {
        self.announce_attempts.fetch_add(1, Ordering::Relaxed);
    }

    fn announce_failure(&self) {
        self.announce_failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// How the writer task waits.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// How often the catalogue's version is compared with the last one published (1 s).
    pub poll: Duration,
    /// How often a replica that is not the writer tries to become it, and how long the writer
    /// waits after a failed round (5 s).
    pub retry: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(1),
            retry: Duration::from_secs(5),
        }
    }
}

/// Keeps the chain current until `stop`: takes the writer lease (retrying every
/// `config.retry` while another replica holds it), then publishes what the catalogue gained
/// or lost since the chain was last extended, at start and whenever
/// [`IpniStore::catalogue_version`] moves (checked every `config.poll`, or at once when
/// `wake` is notified). Every head it reaches, and the stored head when it becomes the writer,
/// goes to `heads` (the announcers).
pub async fn run_writer(
    publisher: Arc<Publisher>,
    state: Arc<dyn IpniStore>,
    heads: watch::Sender<Option<Cid>>,
    wake: Arc<tokio::sync::Notify>,
    config: WriterConfig,
    mut stop: watch::Receiver<bool>,
) {
    let _lease = loop {
        match state.try_ipni_writer().await {
            Ok(Some(lease)) => break lease,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not ask for the IPNI writer lease"),
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(config.retry) => {}
        }
    };
    tracing::info!("this replica publishes the IPNI chain");
    match state.ipni_head().await {
        Ok(Some(head)) => {
            heads.send_replace(Some(head.head));
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "could not read the IPNI head"),
    }
    let mut published_version: Option<u64> = None;
    loop {
        let mut wait = config.poll;
        match state.catalogue_version().await {
            Ok(version) if Some(version) == published_version => {}
            Ok(version) => match publisher.publish_pending().await {
                Ok(head) => {
                    published_version = Some(version);
                    if let Some(head) = head {
                        tracing::info!(head = %head.head, ads = head.ads, "IPNI chain extended");
                        heads.send_replace(Some(head.head));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "publishing IPNI advertisements failed; retrying");
                    wait = config.retry;
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "reading the catalogue version failed");
                wait = config.retry;
            }
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}
