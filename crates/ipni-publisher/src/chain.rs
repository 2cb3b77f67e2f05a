//! The advertisement chain: one advertisement per committed CAR, a removal per deleted one
//! (ipni.md, "Advertisements", "EntryChunk Chain").
//!
//! [`Publisher::publish_pending`] compares the CAR catalogue with the CARs the chain
//! advertises (both paged in key order, merged: bounded memory whatever their size), and for
//! each difference writes the entry chunks, then the signed advertisement, as immutable
//! objects `ipni/<cid>`; after a batch it moves the head in the index database with a
//! compare-and-swap ([`IpniStore::advance_ipni`]). A crash before the swap leaves orphan
//! objects that no chain links to; a writer that lost the swap (another replica moved the
//! head) starts over from the new head. The chain therefore never forks and never breaks.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cid::Cid;
use hydrant_index::{
    CarCatalog, IndexError, IpniChanges, IpniHead, IpniStore, MAX_LIST_CARS,
    MAX_LIST_IPNI_CARS, MAX_LIST_MULTIHASHES, Multihash,
};
use hydrant_ipni::{Advertisement, DEFAULT_CHUNK_SIZE, EntryChunk, SignError, dag_json_cid};
use libp2p_identity::Keypair;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use sha2::{Digest as _, Sha256};

use crate::PublisherStats;

/// Object-store prefix of advertisement and entry-chunk blocks: `ipni/<cid>` (CIDv1 base32).
pub const BLOCK_PREFIX: &str = "ipni";

/// Most advertisements written before the head moves (one compare-and-swap per batch).
pub const DEFAULT_BATCH: usize = 100;

/// The object key of the block `cid`: `ipni/<cid>`, the CID in its default (base32) text.
pub fn block_path(cid: &Cid) -> Path {
    Path::from(format!("{BLOCK_PREFIX}/{cid}"))
}

/// The context ID of the CAR stored under `car_key`: the SHA-256 of the key's UTF-8 bytes (32
/// bytes). Stable (a function of the key alone, and the key of a CAR is derived from its
/// bytes), the same for its addition and its removal, within go-libipni's 64-byte limit
/// whatever the key's length, and it reveals nothing about the object store's layout.
pub fn context_id(car_key: &str) -> Vec<u8> {
    Sha256::digest(car_key.as_bytes()).to_vec()
}

/// Why publishing stopped. What was written before stays; the next round starts over from
/// the stored head.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The index (catalogue or chain state) failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// Writing a block to the object store failed.
    #[error("writing IPNI block {path}: {source}")]
    Store {
        /// The object key.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// The identity could not sign.
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// What the advertisements say besides their entries.
#[derive(Clone)]
pub struct PublisherConfig {
    /// The node identity: the provider, and the signer of advertisements and heads.
    pub keypair: Keypair,
    /// The provider's retrieval multiaddrs (`Addresses`), as strings.
    pub addresses: Vec<String>,
    /// The metadata of additions (`Metadata`; e.g. Bitswap, plus HTTP with a public gateway).
    pub metadata: Vec<u8>,
    /// Multihashes per entry chunk ([`DEFAULT_CHUNK_SIZE`], index-provider's default).
    pub chunk_size: usize,
    /// Advertisements per head move ([`DEFAULT_BATCH`]).
    pub batch: usize,
}

impl PublisherConfig {
    /// A configuration with the default chunk size and batch.
    pub fn new(keypair: Keypair, addresses: Vec<String>, metadata: Vec<u8>) -> Self {
        Self {
            keypair,
            addresses,
            metadata,
            chunk_size: DEFAULT_CHUNK_SIZE,
            batch: DEFAULT_BATCH,
        }
    }
}

/// One difference between the catalogue and the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    /// Committed, not advertised.
    Add(String),
    /// Advertised, no longer committed.
    Remove(String),
}

/// Builds and stores the advertisement chain of one node (see the module docs).
pub struct Publisher {
    catalog: Arc<dyn CarCatalog>,
    state: Arc<dyn IpniStore>,
    store: Arc<dyn ObjectStore>,
    config: PublisherConfig,
    stats: Arc<PublisherStats>,
}

impl Publisher {
    /// A publisher of `catalog`'s CARs, keeping its head in `state` and its blocks in `store`.
    pub fn new(
        catalog: Arc<dyn CarCatalog>,
        state: Arc<dyn IpniStore>,
        store: Arc<dyn ObjectStore>,
        config: PublisherConfig,
        stats: Arc<PublisherStats>,
    ) -> Self {
        assert!(config.chunk_size >= 1 && config.batch >= 1);
        Self {
            catalog,
            state,
            store,
            config,
            stats,
        }
    }

    /// Publishes every difference between the catalogue and the chain, a batch of
    /// [`PublisherConfig::batch`] advertisements per head move. Returns the new head, or
    /// `None` when there was nothing to publish.
    ///
    /// Call it from one task at a time per process; across replicas the compare-and-swap keeps
    /// one chain (a round that loses it starts over from the winner's head).
    ///
    /// # Errors
    /// [`PublishError`]; what was durable before stays (at worst orphan blocks).
    pub async fn publish_pending(&self) -> Result<Option<IpniHead>, PublishError> {
        let mut published = None;
        loop {
            let head = self.state.ipni_head().await?;
            let changes = self.pending(self.config.batch).await?;
            if changes.is_empty() {
                return Ok(published);
            }
            let mut previous = head.as_ref().map(|h| h.head);
            let mut recorded = IpniChanges::default();
            let mut entries = 0u64;
            for change in &changes {
                let (ad, count) = match change {
                    Change::Add(key) => self.addition(key, previous).await?,
                    Change::Remove(key) => (self.removal(key, previous)?, 0),
                };
                let bytes = ad.to_dag_json();
                let cid = dag_json_cid(&bytes);
                self.put(&cid, bytes).await?;
                match change {
                    Change::Add(key) => recorded.added.push((key.clone(), cid)),
                    Change::Remove(key) => recorded.removed.push(key.clone()),
                }
                entries += count;
                previous = Some(cid);
            }
            let next = IpniHead {
                head: previous.expect("at least one advertisement"),
                ads: head.as_ref().map_or(0, |h| h.ads) + changes.len() as u64,
                updated_at: now_secs(),
            };
            if !self
                .state
                .advance_ipni(head.as_ref().map(|h| &h.head), &next, &recorded)
                .await?
            {
                tracing::info!("the IPNI head moved under this writer; starting over from it");
                continue;
            }
            self.stats.published(&next, changes.len() as u64, entries);
            tracing::debug!(head = %next.head, ads = changes.len(), entries, "IPNI head moved");
            published = Some(next);
        }
    }

    /// Up to `max` differences, in key order.
    async fn pending(&self, max: usize) -> Result<Vec<Change>, IndexError> {
        let mut cars = Cursor::default();
        let mut ads = Cursor::default();
        let mut out = Vec::new();
        while out.len() < max {
            let car = cars
                .peek(|after| async move {
                    let page = self.catalog.list_cars(after.as_deref(), MAX_LIST_CARS).await?;
                    Ok(page.into_iter().map(|r| r.key).collect())
                })
                .await?;
            let ad = ads
                .peek(|after| async move {
                    self.state
                        .ipni_cars(after.as_deref(), MAX_LIST_IPNI_CARS)
                        .await
                })
                .await?;
            match (car, ad) {
                (None, None) => break,
                (Some(car), None) => {
                    out.push(Change::Add(car));
                    cars.advance();
                }
                (None, Some(ad)) => {
                    out.push(Change::Remove(ad));
                    ads.advance();
                }
                (Some(car), Some(ad)) => match car.as_bytes().cmp(ad.as_bytes()) {
                    std::cmp::Ordering::Less => {
                        out.push(Change::Add(car));
                        cars.advance();
                    }
                    std::cmp::Ordering::Greater => {
                        out.push(Change::Remove(ad));
                        ads.advance();
                    }
                    std::cmp::Ordering::Equal => {
                        cars.advance();
                        ads.advance();
                    }
                },
            }
        }
        Ok(out)
    }

    /// Writes the entry chunks of `key`'s multihashes and returns the signed addition and its
    /// multihash count. Chunks are linked as
    /// [`hydrant_ipni::EntryChain::build`] links them, one chunk in memory at a time.
    async fn addition(
        &self,
        key: &str,
        previous: Option<Cid>,
    ) -> Result<(Advertisement, u64), PublishError> {
        let size = self.config.chunk_size;
        let mut chunk: Vec<Multihash> = Vec::with_capacity(size.min(MAX_LIST_MULTIHASHES));
        let mut last: Option<Cid> = None;
        let mut count = 0u64;
        let mut after: Option<Multihash> = None;
        loop {
            let page = self
                .catalog
                .car_multihashes(key, after.as_ref(), MAX_LIST_MULTIHASHES)
                .await?;
            let done = page.len() < MAX_LIST_MULTIHASHES;
            after = page.last().copied();
            count += page.len() as u64;
            for mh in page {
                chunk.push(mh);
                if chunk.len() == size {
                    last = Some(self.put_chunk(&mut chunk, last).await?);
                }
            }
            if done {
                break;
            }
        }
        if !chunk.is_empty() {
            last = Some(self.put_chunk(&mut chunk, last).await?);
        }
        let entries = last.unwrap_or_else(hydrant_ipni::no_entries);
        let mut ad = self.advertisement(key, entries, previous);
        ad.metadata.clone_from(&self.config.metadata);
        ad.sign(&self.config.keypair)?;
        Ok((ad, count))
    }

    /// Encodes, stores and clears `chunk` linked to `next`; returns its CID.
    async fn put_chunk(
        &self,
        chunk: &mut Vec<Multihash>,
        next: Option<Cid>,
    ) -> Result<Cid, PublishError> {
        let block = EntryChunk {
            entries: std::mem::take(chunk),
            next,
        };
        let bytes = block.to_dag_json();
        let cid = dag_json_cid(&bytes);
        self.stats.chunk(block.entries.len() as u64);
        self.put(&cid, bytes).await?;
        *chunk = block.entries;
        chunk.clear();
        Ok(cid)
    }

    /// The signed removal of `key`'s context ID: no entries and empty metadata, as
    /// index-provider's `NotifyRemove` writes it.
    fn removal(&self, key: &str, previous: Option<Cid>) -> Result<Advertisement, PublishError> {
        let mut ad = self.advertisement(key, hydrant_ipni::no_entries(), previous);
        ad.is_rm = true;
        ad.sign(&self.config.keypair)?;
        Ok(ad)
    }

    fn advertisement(&self, key: &str, entries: Cid, previous: Option<Cid>) -> Advertisement {
        let mut ad = Advertisement::new(
            self.config.keypair.public().to_peer_id(),
            self.config.addresses.clone(),
            entries,
            context_id(key),
            Vec::new(),
        );
        ad.previous = previous;
        ad
    }

    async fn put(&self, cid: &Cid, bytes: Vec<u8>) -> Result<(), PublishError> {
        let path = block_path(cid);
        let len = bytes.len() as u64;
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|source| PublishError::Store {
                path: path.to_string(),
                source,
            })?;
        self.stats.wrote(len);
        Ok(())
    }
}

/// A paged walk over keys in byte order.
#[derive(Default)]
struct Cursor {
    page: std::collections::VecDeque<String>,
    after: Option<String>,
    exhausted: bool,
}

impl Cursor {
    /// The next key, fetching a page with `fetch(after)` when the buffer is empty.
    async fn peek<F, Fut>(&mut self, fetch: F) -> Result<Option<String>, IndexError>
    where
        F: FnOnce(Option<String>) -> Fut,
        Fut: Future<Output = Result<Vec<String>, IndexError>>,
    {
        if self.page.is_empty() && !self.exhausted {
            let page = fetch(self.after.clone()).await?;
            self.exhausted = page.is_empty();
            self.after = page.last().cloned().or(self.after.take());
            self.page = page.into();
        }
        Ok(self.page.front().cloned())
    }

    fn advance(&mut self) {
        self.page.pop_front();
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
