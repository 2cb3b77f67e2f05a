//! [`CarBlockstore`]: blocks read by ranged GETs from CAR files in an object store.
//!
//! `get_many` plan, per batch of CIDs:
//! 1. identity CIDs are answered from their digest;
//! 2. the other CIDs' multihashes (deduplicated) are looked up in one
//!    [`BlockLookup::locations_many`] call;
//! 3. one location is chosen per block, preferring a CAR already being read in this batch;
//! 4. per CAR, wanted blocks sorted by offset are merged into ranges (gap between neighbours at
//!    most [`ReadConfig::max_gap`], range at most [`ReadConfig::max_range`]);
//! 5. one `get_range` per merged range, at most [`ReadConfig::concurrent_reads`] at a time; the
//!    blocks are zero-copy slices of the range's bytes, re-hashed when [`ReadConfig::verify`],
//!    and handed to `get_each`'s caller as soon as their range is read;
//! 6. a block whose read failed and that has other locations is retried from those, one by one.
//!
//! Before step 2, blocks found in the read cache ([`ReadConfig::cache_bytes`]) are answered from
//! it, with no index or storage request; blocks read in step 5 are added to it (copied out of
//! their range, so a cached block never pins a whole range in memory).

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;
use futures::StreamExt;
use hydrant_blocks::codes::IDENTITY;
use hydrant_blocks::{
    Blockstore, BlockstoreError, DigestError, Multihash, StoredLocation, identity_block,
};
use hydrant_index::{BlockLocation, BlockLookup, IndexError};
use object_store::{ObjectStore, ObjectStoreExt, path::Path};

/// Default of [`ReadConfig::concurrent_reads`].
pub const MAX_CONCURRENT_RANGE_READS: usize = 8;

/// How [`CarBlockstore`] reads blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadConfig {
    /// Largest gap in bytes between two wanted blocks of one CAR that are still fetched in one
    /// ranged read (the gap's bytes are read and dropped). Default 64 KiB.
    pub max_gap: u64,
    /// Largest coalesced ranged read in bytes. A single block larger than this is still read,
    /// alone, in one range. Default 8 MiB.
    pub max_range: u64,
    /// Re-hash every block read and fail with [`BlockstoreError::Corrupt`] on mismatch.
    /// Default `true`. The node turns it off for local storage unless `read.verify` asks
    /// (every block was hashed at ingest; `hydrant_node::config::Config::read_verify`).
    pub verify: bool,
    /// Bytes of recently read blocks kept in memory (block data plus [`CACHE_ENTRY_OVERHEAD`]
    /// per block); 0 turns the cache off. Default 256 MiB.
    pub cache_bytes: u64,
    /// Most ranged reads one `get_many` or `get_each` call has in flight at once (per call,
    /// not per process; at least 1 is used). Each holds up to `max_range` bytes, so one call
    /// holds at most `concurrent_reads × max_range` bytes of reads. Default
    /// [`MAX_CONCURRENT_RANGE_READS`].
    pub concurrent_reads: usize,
}

impl Default for ReadConfig {
    fn default() -> Self {
        Self {
            max_gap: 64 * 1024,
            max_range: 8 * 1024 * 1024,
            verify: true,
            cache_bytes: 256 * 1024 * 1024,
            concurrent_reads: MAX_CONCURRENT_RANGE_READS,
        }
    }
}

/// Bytes charged to the read cache per block on top of its data (key, handle, bookkeeping).
pub const CACHE_ENTRY_OVERHEAD: u64 = 128;

/// Charges a cached block its size plus [`CACHE_ENTRY_OVERHEAD`].
#[derive(Debug, Clone, Copy)]
struct BlockWeight;

impl quick_cache::Weighter<Multihash, Bytes> for BlockWeight {
    fn weight(&self, _: &Multihash, block: &Bytes) -> u64 {
        block.len() as u64 + CACHE_ENTRY_OVERHEAD
    }
}

type ReadCache = quick_cache::sync::Cache<Multihash, Bytes, BlockWeight>;

/// Counters of the object-store reads a [`CarBlockstore`] made since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Ranged reads (GET requests) issued, failed ones included.
    pub ranges: u64,
    /// Blocks sliced out of those reads (whether or not they then verified).
    pub blocks: u64,
    /// Bytes received from the object store, gap bytes included.
    pub bytes: u64,
    /// Blocks answered from the read cache.
    pub cache_hits: u64,
    /// Blocks looked for in the read cache and not found (0 while the cache is off).
    pub cache_misses: u64,
    /// Bytes charged to the read cache now (see [`ReadConfig::cache_bytes`]).
    pub cache_bytes: u64,
    /// Blocks in the read cache now.
    pub cache_blocks: u64,
}

#[derive(Debug, Default)]
struct Counters {
    ranges: AtomicU64,
    blocks: AtomicU64,
    bytes: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

/// A [`Blockstore`] over CAR files in an object store, located through a [`BlockLookup`].
///
/// The object key of a location is `object_store::path::Path::from(location.car)`.
pub struct CarBlockstore {
    index: Arc<dyn BlockLookup>,
    store: Arc<dyn ObjectStore>,
    config: ReadConfig,
    counters: Counters,
    cache: Option<ReadCache>,
}

impl std::fmt::Debug for CarBlockstore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarBlockstore")
            .field("store", &self.store.to_string())
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// What happened to one wanted block (one multihash) in a batch.
#[derive(Debug, Clone)]
enum Outcome {
    Found(Bytes),
    Absent,
    Failed(Failure),
}

/// A failure, kept CID-free so it can be reported for every CID over the same multihash.
#[derive(Debug, Clone)]
enum Failure {
    Index(String),
    Storage {
        key: String,
        range: Range<u64>,
        detail: String,
    },
    Corrupt {
        key: String,
        offset: u64,
    },
    Unverifiable(DigestError),
}

impl Failure {
    fn into_error(self, cid: Cid) -> BlockstoreError {
        match self {
            Self::Index(detail) => BlockstoreError::Index { cid, detail },
            Self::Storage { key, range, detail } => BlockstoreError::Storage {
                key,
                start: range.start,
                end: range.end,
                detail,
            },
            Self::Corrupt { key, offset } => BlockstoreError::Corrupt { cid, key, offset },
            Self::Unverifiable(reason) => BlockstoreError::Unverifiable { cid, reason },
        }
    }
}

/// One wanted block at its chosen location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Want {
    /// Index of the block in the batch's list of distinct multihashes.
    block: usize,
    /// Byte range of the block data in the CAR.
    offset: u64,
    end: u64,
}

/// One ranged read: `range` of the CAR, holding the blocks `wants`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RangeRead {
    range: Range<u64>,
    wants: Vec<Want>,
}

impl CarBlockstore {
    /// A blockstore reading CARs from `store`, located through `index`.
    pub fn new(
        index: Arc<dyn BlockLookup>,
        store: Arc<dyn ObjectStore>,
        config: ReadConfig,
    ) -> Self {
        let cache = (config.cache_bytes > 0).then(|| {
            let estimated_blocks = (config.cache_bytes / (16 * 1024)).clamp(16, 1 << 20);
            ReadCache::with_weighter(estimated_blocks as usize, config.cache_bytes, BlockWeight)
        });
        Self {
            index,
            store,
            config,
            counters: Counters::default(),
            cache,
        }
    }

    /// The read counters so far (a snapshot; each counter is read atomically on its own).
    pub fn stats(&self) -> ReadStats {
        let c = &self.counters;
        ReadStats {
            ranges: c.ranges.load(Ordering::Relaxed),
            blocks: c.blocks.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            cache_misses: c.cache_misses.load(Ordering::Relaxed),
            cache_bytes: self.cache.as_ref().map_or(0, ReadCache::weight),
            cache_blocks: self.cache.as_ref().map_or(0, |c| c.len() as u64),
        }
    }

    /// The cached copy of a block, counting the hit or miss (`None` when the cache is off).
    fn cached(&self, mh: &Multihash) -> Option<Bytes> {
        let cache = self.cache.as_ref()?;
        let hit = cache.get(mh);
        let counter = if hit.is_some() {
            &self.counters.cache_hits
        } else {
            &self.counters.cache_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    /// Empties the read cache, so that no block of a deleted CAR is answered from it (a
    /// deletion is rare; the cache refills from the reads that follow).
    pub fn clear_cache(&self) {
        if let Some(cache) = &self.cache {
            cache.clear();
        }
    }

    /// The configuration this blockstore reads with.
    pub fn config(&self) -> &ReadConfig {
        &self.config
    }

    /// Reads the distinct blocks `mhs`; element `i` answers `mhs[i]`. Each block found is also
    /// handed to `found(i, block)` as soon as its range is read (and verified), before the
    /// other reads of the batch end.
    async fn read_blocks(
        &self,
        mhs: &[Multihash],
        found: &mut (dyn FnMut(usize, &Bytes) + Send),
    ) -> Vec<Outcome> {
        let candidates = match self.index.locations_many(mhs).await {
            Ok(c) if c.len() == mhs.len() => c,
            Ok(c) => {
                let e = format!(
                    "locations_many answered {} of {} blocks",
                    c.len(),
                    mhs.len()
                );
                return vec![Outcome::Failed(Failure::Index(e)); mhs.len()];
            }
            Err(e) => {
                return vec![Outcome::Failed(Failure::Index(e.to_string())); mhs.len()];
            }
        };
        let chosen = choose_locations(&candidates);

        let mut outcomes = vec![Outcome::Absent; mhs.len()];
        let mut by_car: HashMap<&str, Vec<Want>> = HashMap::new();
        for (block, choice) in chosen.iter().enumerate() {
            let Some(choice) = *choice else { continue };
            let location = &candidates[block][choice];
            match location_range(location) {
                Ok(range) => by_car.entry(&location.car).or_default().push(Want {
                    block,
                    offset: range.start,
                    end: range.end,
                }),
                Err(failure) => outcomes[block] = Outcome::Failed(failure),
            }
        }

        let reads: Vec<(String, RangeRead)> = by_car
            .into_iter()
            .flat_map(|(car, wants)| {
                coalesce(wants, self.config.max_gap, self.config.max_range)
                    .into_iter()
                    .map(move |read| (car.to_owned(), read))
            })
            .collect();
        let mut done = futures::stream::iter(
            reads
                .into_iter()
                .map(|(car, read)| self.fetch_read(car, read)),
        )
        .buffer_unordered(self.config.concurrent_reads.max(1));
        while let Some((car, read, bytes)) = done.next().await {
            for want in &read.wants {
                outcomes[want.block] = match &bytes {
                    Ok(bytes) => {
                        let start = usize::try_from(want.offset - read.range.start);
                        let end = usize::try_from(want.end - read.range.start);
                        match (start, end) {
                            (Ok(start), Ok(end)) => {
                                self.counters.blocks.fetch_add(1, Ordering::Relaxed);
                                self.check(
                                    &mhs[want.block],
                                    &car,
                                    want.offset,
                                    bytes.slice(start..end),
                                )
                            }
                            _ => Outcome::Failed(Failure::Storage {
                                key: car.clone(),
                                range: want.offset..want.end,
                                detail: "range does not fit in memory".to_owned(),
                            }),
                        }
                    }
                    Err(failure) => Outcome::Failed(failure.clone()),
                };
                if let Outcome::Found(block) = &outcomes[want.block] {
                    found(want.block, block);
                }
            }
        }
        drop(done);

        // Retry failed blocks from their other locations, one ranged read each.
        for (block, outcome) in outcomes.iter_mut().enumerate() {
            let (Outcome::Failed(first), Some(choice)) = (&*outcome, chosen[block]) else {
                continue;
            };
            if matches!(first, Failure::Unverifiable(_)) {
                continue;
            }
            for (i, location) in candidates[block].iter().enumerate() {
                if i == choice {
                    continue;
                }
                tracing::warn!(block = ?mhs[block], failed = ?first, retry = %location.car, "block read failed; trying another CAR");
                let retried = match location_range(location) {
                    Ok(range) => match self.fetch(&location.car, range.clone()).await {
                        Ok(bytes) => {
                            self.counters.blocks.fetch_add(1, Ordering::Relaxed);
                            self.check(&mhs[block], &location.car, range.start, bytes)
                        }
                        Err(failure) => Outcome::Failed(failure),
                    },
                    Err(failure) => Outcome::Failed(failure),
                };
                if let Outcome::Found(data) = &retried {
                    found(block, data);
                    *outcome = retried;
                    break;
                }
            }
        }
        outcomes
    }

    /// [`fetch`](Self::fetch) of one planned read, returned with its plan.
    async fn fetch_read(
        &self,
        car: String,
        read: RangeRead,
    ) -> (String, RangeRead, Result<Bytes, Failure>) {
        let bytes = self.fetch(&car, read.range.clone()).await;
        (car, read, bytes)
    }

    /// One ranged GET of `range` from the CAR `car`; a short answer is a failure. An empty
    /// range (a block of 0 bytes, such as an empty file's raw leaf) costs no request: object
    /// stores refuse empty ranges.
    async fn fetch(&self, car: &str, range: Range<u64>) -> Result<Bytes, Failure> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        self.counters.ranges.fetch_add(1, Ordering::Relaxed);
        let failure = |detail: String| Failure::Storage {
            key: car.to_owned(),
            range: range.clone(),
            detail,
        };
        let bytes = self
            .store
            .get_range(&Path::from(car), range.clone())
            .await
            .map_err(|e| failure(e.to_string()))?;
        self.counters
            .bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let want = range.end - range.start;
        if bytes.len() as u64 != want {
            return Err(failure(format!(
                "short read: {} of {want} bytes",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// Verifies `data` against `mh` when configured to.
    fn check(&self, mh: &Multihash, car: &str, offset: u64, data: Bytes) -> Outcome {
        if !self.config.verify {
            return Outcome::Found(data);
        }
        match hydrant_blocks::matches(mh, &data) {
            Ok(true) => Outcome::Found(data),
            Ok(false) => Outcome::Failed(Failure::Corrupt {
                key: car.to_owned(),
                offset,
            }),
            Err(reason) => Outcome::Failed(Failure::Unverifiable(reason)),
        }
    }
}

#[async_trait]
impl Blockstore for CarBlockstore {
    async fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
        if identity_block(cid).is_some() {
            return Ok(true);
        }
        self.index
            .contains(cid.hash())
            .await
            .map_err(|e| index_error(cid, &e))
    }

    async fn size(&self, cid: &Cid) -> Result<Option<u32>, BlockstoreError> {
        if let Some(block) = identity_block(cid) {
            return Ok(Some(block.len() as u32));
        }
        if let Some(block) = self.cached(cid.hash()) {
            return Ok(Some(block.len() as u32));
        }
        let locations = self
            .index
            .locations(cid.hash())
            .await
            .map_err(|e| index_error(cid, &e))?;
        Ok(locations.first().map(|l| l.length))
    }

    async fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        self.get_many(std::slice::from_ref(cid))
            .await
            .pop()
            .unwrap_or(Ok(None))
    }

    async fn get_many(&self, cids: &[Cid]) -> Vec<Result<Option<Bytes>, BlockstoreError>> {
        let mut results: Vec<Result<Option<Bytes>, BlockstoreError>> = vec![Ok(None); cids.len()];
        self.get_each(cids, &mut |i, result| results[i] = result)
            .await;
        results
    }

    async fn get_each(
        &self,
        cids: &[Cid],
        each: &mut (dyn FnMut(usize, Result<Option<Bytes>, BlockstoreError>) + Send),
    ) {
        // The distinct multihashes, and for each the positions in `cids` it answers.
        let mut distinct: Vec<Multihash> = Vec::new();
        let mut users: Vec<Vec<usize>> = Vec::new();
        let mut slot_of: HashMap<Multihash, usize> = HashMap::new();
        for (i, cid) in cids.iter().enumerate() {
            let mh = cid.hash();
            if mh.code() == IDENTITY {
                each(i, Ok(identity_block(cid)));
                continue;
            }
            let slot = *slot_of.entry(*mh).or_insert_with(|| {
                distinct.push(*mh);
                users.push(Vec::new());
                distinct.len() - 1
            });
            users[slot].push(i);
        }
        let mut missing: Vec<Multihash> = Vec::new();
        let mut missing_slot: Vec<usize> = Vec::new();
        for (slot, mh) in distinct.iter().enumerate() {
            match self.cached(mh) {
                Some(block) => {
                    for &i in &users[slot] {
                        each(i, Ok(Some(block.clone())));
                    }
                }
                None => {
                    missing.push(*mh);
                    missing_slot.push(slot);
                }
            }
        }
        if missing.is_empty() {
            return;
        }
        let mut reported = vec![false; missing.len()];
        let outcomes = {
            let mut found = |k: usize, block: &Bytes| {
                if let Some(cache) = &self.cache {
                    cache.insert(missing[k], Bytes::copy_from_slice(block));
                }
                reported[k] = true;
                for &i in &users[missing_slot[k]] {
                    each(i, Ok(Some(block.clone())));
                }
            };
            self.read_blocks(&missing, &mut found).await
        };
        for (k, outcome) in outcomes.into_iter().enumerate() {
            if reported[k] {
                continue;
            }
            for &i in &users[missing_slot[k]] {
                each(
                    i,
                    match outcome.clone() {
                        Outcome::Found(bytes) => Ok(Some(bytes)),
                        Outcome::Absent => Ok(None),
                        Outcome::Failed(failure) => Err(failure.into_error(cids[i])),
                    },
                );
            }
        }
    }

    /// The first committed location of the block (the index's order), with the size of its
    /// CAR (one `head` request). Identity CIDs have none.
    async fn stored_location(&self, cid: &Cid) -> Result<Option<StoredLocation>, BlockstoreError> {
        if cid.hash().code() == IDENTITY {
            return Ok(None);
        }
        let locations = self
            .index
            .locations(cid.hash())
            .await
            .map_err(|e| index_error(cid, &e))?;
        let Some(location) = locations.into_iter().next() else {
            return Ok(None);
        };
        let meta = self
            .store
            .head(&Path::from(location.car.as_str()))
            .await
            .map_err(|e| BlockstoreError::Storage {
                key: location.car.clone(),
                start: 0,
                end: 0,
                detail: e.to_string(),
            })?;
        Ok(Some(StoredLocation {
            car: location.car,
            offset: location.offset,
            length: location.length,
            car_size: meta.size,
        }))
    }

    async fn read_stored(&self, car: &str, range: Range<u64>) -> Result<Bytes, BlockstoreError> {
        self.fetch(car, range).await.map_err(|f| match f {
            Failure::Storage { key, range, detail } => BlockstoreError::Storage {
                key,
                start: range.start,
                end: range.end,
                detail,
            },
            other => BlockstoreError::Storage {
                key: car.to_owned(),
                start: 0,
                end: 0,
                detail: format!("{other:?}"),
            },
        })
    }

    fn verifies_reads(&self) -> bool {
        self.config.verify
    }
}

/// The byte range of a location, or a failure when `offset + length` overflows.
fn location_range(location: &BlockLocation) -> Result<Range<u64>, Failure> {
    location
        .offset
        .checked_add(u64::from(location.length))
        .map(|end| location.offset..end)
        .ok_or_else(|| Failure::Storage {
            key: location.car.clone(),
            range: location.offset..u64::MAX,
            detail: format!(
                "index location {}+{} overflows",
                location.offset, location.length
            ),
        })
}

/// Picks one location per block (`None` when it has none), preferring CARs that must be read
/// anyway: first the CARs of blocks with a single location, then, for each block in turn, a
/// CAR already picked, else the CAR that could serve the most blocks of the batch.
fn choose_locations(candidates: &[Vec<BlockLocation>]) -> Vec<Option<usize>> {
    let mut reading: HashSet<&str> = candidates
        .iter()
        .filter(|c| c.len() == 1)
        .map(|c| c[0].car.as_str())
        .collect();
    let mut servable: HashMap<&str, usize> = HashMap::new();
    for locations in candidates {
        let cars: HashSet<&str> = locations.iter().map(|l| l.car.as_str()).collect();
        for car in cars {
            *servable.entry(car).or_default() += 1;
        }
    }
    candidates
        .iter()
        .map(|locations| match locations.len() {
            0 => None,
            1 => Some(0),
            _ => {
                let pick = locations
                    .iter()
                    .position(|l| reading.contains(l.car.as_str()))
                    .unwrap_or_else(|| {
                        // max_by_key keeps the last maximum; iterate reversed to keep the first.
                        locations
                            .iter()
                            .enumerate()
                            .rev()
                            .max_by_key(|(_, l)| servable.get(l.car.as_str()).copied().unwrap_or(0))
                            .map_or(0, |(i, _)| i)
                    });
                reading.insert(locations[pick].car.as_str());
                Some(pick)
            }
        })
        .collect()
}

/// Merges the wanted blocks of one CAR into ranged reads: sorted by offset, a block joins the
/// current range when the gap before it is at most `max_gap` bytes and the grown range is at
/// most `max_range` bytes; otherwise it starts a new range.
fn coalesce(mut wants: Vec<Want>, max_gap: u64, max_range: u64) -> Vec<RangeRead> {
    wants.sort_by_key(|w| (w.offset, w.end));
    let mut reads: Vec<RangeRead> = Vec::new();
    for want in wants {
        if let Some(last) = reads.last_mut() {
            let gap = want.offset.saturating_sub(last.range.end);
            let end = last.range.end.max(want.end);
            if gap <= max_gap && end - last.range.start <= max_range {
                last.range.end = end;
                last.wants.push(want);
                continue;
            }
        }
        reads.push(RangeRead {
            range: want.offset..want.end,
            wants: vec![want],
        });
    }
    reads
}

/// A [`BlockstoreError::Index`] for `cid` from an index failure.
fn index_error(cid: &Cid, e: &IndexError) -> BlockstoreError {
    BlockstoreError::Index {
        cid: *cid,
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn loc(car: &str, offset: u64) -> BlockLocation {
        BlockLocation {
            car: car.to_owned(),
            offset,
            length: 1,
        }
    }

    #[test]
    fn prefers_a_car_already_read() {
        let candidates = vec![
            vec![loc("b", 0)],
            vec![loc("a", 0), loc("b", 5)],
            vec![],
            vec![loc("c", 0), loc("a", 9)],
        ];
        // Block 1: "b" is read for block 0. Block 3: neither "c" nor "a" is read; "a" could
        // serve two blocks of the batch, "c" one.
        assert_eq!(
            choose_locations(&candidates),
            vec![Some(0), Some(1), None, Some(1)]
        );
        // A tie goes to the first listed.
        let candidates = vec![vec![loc("p", 0), loc("q", 0)]];
        assert_eq!(choose_locations(&candidates), vec![Some(0)]);
        let candidates = vec![
            vec![loc("x", 0), loc("y", 0)],
            vec![loc("z", 0), loc("y", 8)],
        ];
        // "y" serves both blocks: picked for the first, then reused.
        assert_eq!(choose_locations(&candidates), vec![Some(1), Some(1)]);
    }

    fn wants() -> impl Strategy<Value = Vec<Want>> {
        proptest::collection::vec((0u64..10_000, 0u64..500), 0..40).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(block, (offset, len))| Want {
                    block,
                    offset,
                    end: offset + len,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn coalesce_covers_each_block_once_within_limits(
            wants in wants(), max_gap in 0u64..2_000, max_range in 1u64..3_000,
        ) {
            let reads = coalesce(wants.clone(), max_gap, max_range);
            prop_assert!(reads.len() <= wants.len());
            let mut seen: Vec<usize> = reads.iter().flat_map(|r| r.wants.iter().map(|w| w.block)).collect();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..wants.len()).collect::<Vec<_>>());
            for read in &reads {
                let largest = read.wants.iter().map(|w| w.end - w.offset).max().unwrap_or(0);
                prop_assert!(read.range.end - read.range.start <= max_range.max(largest));
                for w in &read.wants {
                    prop_assert!(read.range.start <= w.offset && w.end <= read.range.end);
                }
            }
            for pair in reads.windows(2) {
                prop_assert!(pair[0].range.start <= pair[1].range.start, "ranges out of order");
                // Two ranges were not merged: the gap was too big or the merge too long.
                let first = pair[1].wants[0];
                let gap = first.offset.saturating_sub(pair[0].range.end);
                let merged = pair[0].range.end.max(first.end) - pair[0].range.start;
                prop_assert!(gap > max_gap || merged > max_range, "mergeable ranges left apart");
            }
        }
    }
}
