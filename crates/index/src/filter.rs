//! The presence filter: an in-memory Bloom filter of the multihashes in the index, consulted
//! before every lookup so that a want for an absent block costs no index query (and so no
//! object-store request), apart from the filter's false-positive rate.
//!
//! - [`PresenceFilter`]: the filter itself. It starts *unbuilt*, answering "maybe" for every
//!   multihash (lookups pass through: never a false "absent"), until the first
//!   [`FilteredIndex::rebuild`] has loaded every committed multihash.
//! - [`FilteredIndex`]: a [`BlockLookup`] wrapper that answers `locations`, `locations_many` and
//!   `contains` from the filter when it says "absent"; as the ingest pipeline's
//!   [`StagingObserver`] it adds every staged multihash to the filter *before* the rows are
//!   staged (so a block is in the filter before its CAR can become visible); it rebuilds the
//!   filter from the [`CarCatalog`] at twice the size when it fills up.
//!
//! Blocks added from elsewhere (another replica committing to a shared index) are added with
//! [`PresenceFilter::insert`] by whoever learns of them (the node polls the shared index).
//! Removed or aborted CARs leave their multihashes in the filter: they only add false positives
//! until the next rebuild.
//!
//! Memory: about `-ln(p) / ln(2)^2` bits per expected block (14.4 bits at p = 0.001, so 18 MB
//! for 10 million blocks); twice that while a rebuild builds the next generation. Each build is
//! sized from the index itself ([`FilteredIndex::rebuild`]): twice the blocks its CARs hold, at
//! least [`FilterConfig::expected_blocks`], so a small repository gets a small filter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_trait::async_trait;
use fastbloom::AtomicBloomFilter;

use crate::{
    BlockLocation, BlockLookup, CarCatalog, CarRecord, IndexError, MAX_LIST_CARS, Multihash,
    StagedBlock, StagingObserver,
};

/// Sizing of a [`PresenceFilter`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterConfig {
    /// Fewest blocks a generation is sized for (the floor under twice the index's block
    /// count); it grows (by a rebuild at twice the count) when more are inserted. Default
    /// 100,000 (about 176 KiB at p = 0.001).
    pub expected_blocks: u64,
    /// Target false-positive rate at `expected_blocks`, in (0, 1). Default 0.001.
    pub false_positive_rate: f64,
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self {
            expected_blocks: 100_000,
            false_positive_rate: 0.001,
        }
    }
}

/// A snapshot of a [`PresenceFilter`]'s state and counters, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterStats {
    /// Whether the filter has been built (before that every check answers "maybe").
    pub built: bool,
    /// Blocks the current generation is sized for.
    pub capacity: u64,
    /// Insertions into the current generation (duplicates counted).
    pub inserted: u64,
    /// Bytes of bit vector held (both generations while a rebuild runs).
    pub bytes: u64,
    /// Checks answered "absent" (no index query followed).
    pub absent: u64,
    /// Checks answered "maybe present" (an index query followed).
    pub maybe: u64,
    /// Completed rebuilds.
    pub rebuilds: u64,
}

/// One Bloom filter and what it was sized for.
struct Generation {
    bloom: AtomicBloomFilter,
    /// The hasher's seed: random per generation (so that no one can aim false positives at a
    /// filter they have not seen), kept for snapshots.
    seed: u128,
    capacity: u64,
    bytes: u64,
    inserted: AtomicU64,
}

impl Generation {
    fn new(capacity: u64, fp: f64) -> Self {
        let capacity = capacity.max(1);
        let seed = random_seed();
        let bloom = AtomicBloomFilter::with_false_pos(fp)
            .seed(&seed)
            .expected_items(capacity as usize);
        let generation = Self::with_bloom(bloom, seed, capacity, 0);
        for canary in canaries() {
            generation.bloom.insert(&canary);
        }
        generation
    }

    fn with_bloom(bloom: AtomicBloomFilter, seed: u128, capacity: u64, inserted: u64) -> Self {
        let bytes = bloom.num_bits() as u64 / 8;
        Self {
            bloom,
            seed,
            capacity,
            bytes,
            inserted: AtomicU64::new(inserted),
        }
    }

    fn insert(&self, mh: &Multihash) {
        self.bloom.insert(mh);
        self.inserted.fetch_add(1, Ordering::Relaxed);
    }
}

/// An approximate set of the multihashes present: "absent" answers are exact, "maybe" answers
/// are wrong at the configured false-positive rate. Thread-safe; inserts and checks take no
/// lock beyond a brief read lock to find the current generation.
pub struct PresenceFilter {
    config: FilterConfig,
    /// `None` until the first rebuild completes.
    current: RwLock<Option<Arc<Generation>>>,
    /// The generation a rebuild is filling; inserts go to it as well.
    next: RwLock<Option<Arc<Generation>>>,
    /// Incremented whenever a rebuild starts.
    epoch: AtomicU64,
    rebuilding: AtomicBool,
    absent: AtomicU64,
    maybe: AtomicU64,
    rebuilds: AtomicU64,
}

impl std::fmt::Debug for PresenceFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceFilter")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl PresenceFilter {
    /// An unbuilt filter (every check answers "maybe") with `config`.
    ///
    /// # Panics
    /// When `config.false_positive_rate` is not in (0, 1) (the node validates it first).
    pub fn new(config: FilterConfig) -> Self {
        assert!(
            config.false_positive_rate > 0.0 && config.false_positive_rate < 1.0,
            "false_positive_rate must be in (0, 1)"
        );
        Self {
            config,
            current: RwLock::new(None),
            next: RwLock::new(None),
            epoch: AtomicU64::new(0),
            rebuilding: AtomicBool::new(false),
            absent: AtomicU64::new(0),
            maybe: AtomicU64::new(0),
            rebuilds: AtomicU64::new(0),
        }
    }

    fn current(&self) -> Option<Arc<Generation>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn next(&self) -> Option<Arc<Generation>> {
        self.next
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `false` only when `mh` is certainly absent; counted in [`FilterStats`].
    pub fn may_contain(&self, mh: &Multihash) -> bool {
        let maybe = self.current().is_none_or(|g| g.bloom.contains(mh));
        let counter = if maybe { &self.maybe } else { &self.absent };
        counter.fetch_add(1, Ordering::Relaxed);
        maybe
    }

    /// Adds `mh` (to the generation being built as well, during a rebuild).
    pub fn insert(&self, mh: &Multihash) {
        if let Some(g) = self.current() {
            g.insert(mh);
        }
        if let Some(g) = self.next() {
            g.insert(mh);
        }
    }

    /// Whether the current generation holds more insertions than it was sized for (or none is
    /// built yet): time for a [`FilteredIndex::rebuild`].
    pub fn needs_rebuild(&self) -> bool {
        self.current()
            .is_none_or(|g| g.inserted.load(Ordering::Relaxed) > g.capacity)
    }

    /// Counters and sizes now.
    pub fn stats(&self) -> FilterStats {
        let current = self.current();
        let next_bytes = self.next().map_or(0, |g| g.bytes);
        FilterStats {
            built: current.is_some(),
            capacity: current.as_ref().map_or(0, |g| g.capacity),
            inserted: current
                .as_ref()
                .map_or(0, |g| g.inserted.load(Ordering::Relaxed)),
            bytes: current.as_ref().map_or(0, |g| g.bytes) + next_bytes,
            absent: self.absent.load(Ordering::Relaxed),
            maybe: self.maybe.load(Ordering::Relaxed),
            rebuilds: self.rebuilds.load(Ordering::Relaxed),
        }
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }
}

/// 128 random bits from the standard library's per-process random keys.
fn random_seed() -> u128 {
    use std::hash::BuildHasher;
    let state = std::collections::hash_map::RandomState::new();
    u128::from(state.hash_one(1u8)) << 64 | u128::from(state.hash_one(2u8))
}

/// Multihashes every generation holds (identity multihashes no CAR indexes), checked when a
/// snapshot is loaded: if the bits, seed or hashing changed in any way (another build of the
/// hash function, a damaged file that kept its checksum), some canary is almost surely
/// missing (each is kept by chance at the false-positive rate), and the snapshot is refused
/// rather than trusted into a false "absent".
fn canaries() -> impl Iterator<Item = Multihash> {
    (0..SNAPSHOT_CANARIES).map(|i| {
        Multihash::wrap(
            0x00,
            format!("hydrant presence filter canary {i}").as_bytes(),
        )
        .expect("a short identity digest")
    })
}

/// Canaries per generation (see [`canaries`]).
const SNAPSHOT_CANARIES: usize = 16;

/// First bytes of a snapshot file: the format's name and version (1).
const SNAPSHOT_MAGIC: &[u8; 16] = b"hydrant-filter\0\x01";

/// Why a snapshot was not loaded ([`PresenceFilter::load_snapshot`]).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Not a snapshot of this format, or cut short.
    #[error("not a presence filter snapshot (version 1), or cut short")]
    Format,
    /// The checksum does not match the contents.
    #[error("checksum mismatch: the snapshot is damaged")]
    Checksum,
    /// The bits do not hold the canaries every generation holds: another hash function or
    /// damaged bits.
    #[error("the snapshot's bits fail the canary check")]
    Canary,
    /// A rebuild or another restore is running.
    #[error("a rebuild or restore is running")]
    Busy,
    /// Written for another false-positive rate than the one configured.
    #[error("written for a false-positive rate of {found}, {configured} is configured")]
    FalsePositiveRate {
        /// The snapshot's rate.
        found: f64,
        /// The configured rate.
        configured: f64,
    },
}

impl PresenceFilter {
    /// The current generation as a snapshot tagged with `position` (the caller's opaque marker
    /// of what the filter holds, e.g. the index's commit-feed position), or `None` when no
    /// generation is built. Memory: a copy of the bit vector (the filter's `bytes`).
    ///
    /// Layout (little-endian): [`SNAPSHOT_MAGIC`] (16 bytes), false-positive rate (f64),
    /// capacity (u64), insertions (u64), hash count (u32), seed (u128), position length (u32)
    /// and bytes, bit-vector length in 64-bit words (u64) and the words, then the SHA-256 of
    /// everything before it (32 bytes).
    pub fn snapshot(&self, position: &[u8]) -> Option<Vec<u8>> {
        use sha2::Digest;
        let g = self.current()?;
        let words = g.bloom.as_slice();
        let mut out = Vec::with_capacity(128 + position.len() + words.len() * 8);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&self.config.false_positive_rate.to_le_bytes());
        out.extend_from_slice(&g.capacity.to_le_bytes());
        out.extend_from_slice(&g.inserted.load(Ordering::Relaxed).to_le_bytes());
        out.extend_from_slice(&g.bloom.num_hashes().to_le_bytes());
        out.extend_from_slice(&g.seed.to_le_bytes());
        out.extend_from_slice(&(position.len() as u32).to_le_bytes());
        out.extend_from_slice(position);
        out.extend_from_slice(&(words.len() as u64).to_le_bytes());
        for word in words {
            out.extend_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        let checksum = sha2::Sha256::digest(&out);
        out.extend_from_slice(&checksum);
        Some(out)
    }

    /// The position a snapshot was tagged with, read from its header (not yet checked: that
    /// is [`load_snapshot`](Self::load_snapshot)'s work).
    ///
    /// # Errors
    /// [`SnapshotError::Format`] when the header is not a snapshot's.
    pub fn snapshot_position(snapshot: &[u8]) -> Result<&[u8], SnapshotError> {
        Ok(SnapshotHeader::read(&mut Reader(snapshot))?.position)
    }

    /// Makes the generation in `snapshot` current (replacing any) and returns its position:
    /// [`begin_restore`](Self::begin_restore) then [`finish_restore`](Self::finish_restore)
    /// with nothing to catch up.
    ///
    /// # Errors
    /// As [`begin_restore`](Self::begin_restore).
    pub fn load_snapshot(&self, snapshot: &[u8]) -> Result<Vec<u8>, SnapshotError> {
        let position = self.begin_restore(snapshot)?;
        self.finish_restore(true);
        Ok(position)
    }

    /// Starts restoring `snapshot`: its generation becomes the one being built, as in a
    /// rebuild (every insert goes to it too, stagings in progress add their rows again at
    /// commit), while checks keep their current answers. The caller then adds what was
    /// committed after the returned position and calls
    /// [`finish_restore`](Self::finish_restore).
    ///
    /// # Errors
    /// [`SnapshotError`], the filter then left as it was: a damaged or foreign snapshot, or
    /// [`SnapshotError::Busy`] when a rebuild or restore is running.
    pub fn begin_restore(&self, snapshot: &[u8]) -> Result<Vec<u8>, SnapshotError> {
        let (generation, position) = self.read_snapshot(snapshot)?;
        if self.rebuilding.swap(true, Ordering::AcqRel) {
            return Err(SnapshotError::Busy);
        }
        *self.next.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(generation));
        self.epoch.fetch_add(1, Ordering::AcqRel);
        Ok(position)
    }

    /// Ends a restore begun by [`begin_restore`](Self::begin_restore): with `keep`, the
    /// restored generation becomes current; without, it is dropped (then rebuild).
    pub fn finish_restore(&self, keep: bool) {
        let mut next_slot = self.next.write().unwrap_or_else(PoisonError::into_inner);
        let restored = next_slot.take();
        if keep && let Some(restored) = restored {
            *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(restored);
        }
        drop(next_slot);
        self.rebuilding.store(false, Ordering::Release);
    }

    fn read_snapshot(&self, snapshot: &[u8]) -> Result<(Generation, Vec<u8>), SnapshotError> {
        use sha2::Digest;
        let (body, checksum) = snapshot
            .split_at_checked(
                snapshot
                    .len()
                    .checked_sub(32)
                    .ok_or(SnapshotError::Format)?,
            )
            .ok_or(SnapshotError::Format)?;
        if !body.starts_with(SNAPSHOT_MAGIC) {
            return Err(SnapshotError::Format);
        }
        if sha2::Sha256::digest(body).as_slice() != checksum {
            return Err(SnapshotError::Checksum);
        }
        let mut r = Reader(body);
        let SnapshotHeader {
            false_positive_rate: fp,
            capacity,
            inserted,
            hashes,
            seed,
            position,
        } = SnapshotHeader::read(&mut r)?;
        if fp != self.config.false_positive_rate {
            return Err(SnapshotError::FalsePositiveRate {
                found: fp,
                configured: self.config.false_positive_rate,
            });
        }
        let word_count =
            usize::try_from(u64::from_le_bytes(r.array()?)).map_err(|_| SnapshotError::Format)?;
        let bits = r.take(word_count.checked_mul(8).ok_or(SnapshotError::Format)?)?;
        if !r.0.is_empty() || word_count == 0 || hashes == 0 {
            return Err(SnapshotError::Format);
        }
        let words = bits
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
            .collect();
        let bloom = AtomicBloomFilter::from_vec(words)
            .seed(&seed)
            .hashes(hashes);
        if !canaries().all(|c| bloom.contains(&c)) {
            return Err(SnapshotError::Canary);
        }
        Ok((
            Generation::with_bloom(bloom, seed, capacity, inserted),
            position.to_vec(),
        ))
    }
}

/// A snapshot's fields before its bit vector (the layout is on [`PresenceFilter::snapshot`]).
struct SnapshotHeader<'a> {
    false_positive_rate: f64,
    capacity: u64,
    inserted: u64,
    hashes: u32,
    seed: u128,
    position: &'a [u8],
}

impl<'a> SnapshotHeader<'a> {
    /// Reads the magic and the header fields, leaving `r` at the bit vector's length.
    fn read(r: &mut Reader<'a>) -> Result<Self, SnapshotError> {
        if r.take(16)? != SNAPSHOT_MAGIC {
            return Err(SnapshotError::Format);
        }
        Ok(Self {
            false_positive_rate: f64::from_le_bytes(r.array()?),
            capacity: u64::from_le_bytes(r.array()?),
            inserted: u64::from_le_bytes(r.array()?),
            hashes: u32::from_le_bytes(r.array()?),
            seed: u128::from_le_bytes(r.array()?),
            position: {
                let len = u32::from_le_bytes(r.array()?) as usize;
                r.take(len)?
            },
        })
    }
}

/// Reads a snapshot's fields in order.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(SnapshotError::Format)?;
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
}

/// A [`BlockLookup`] that consults a [`PresenceFilter`] before every lookup (see the module
/// docs), and the [`StagingObserver`] that keeps the filter ahead of the index. Cheap to clone.
#[derive(Clone)]
pub struct FilteredIndex {
    inner: Arc<dyn BlockLookup>,
    catalog: Arc<dyn CarCatalog>,
    filter: Arc<PresenceFilter>,
    /// Filter epoch at the first `stage_blocks` of each open staging: a rebuild that started
    /// after it may have missed the staged rows, so the commit adds them again.
    staging_epochs: Arc<Mutex<HashMap<String, u64>>>,
    /// Multihashes looked up in the inner index (after the filter said "maybe").
    lookups: Arc<AtomicU64>,
}

impl std::fmt::Debug for FilteredIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilteredIndex")
            .field("filter", &self.filter)
            .field("lookups", &self.lookups())
            .finish_non_exhaustive()
    }
}

impl FilteredIndex {
    /// The lookups of `inner` behind `filter`, which is built from `catalog`'s CARs. The
    /// filter answers "maybe" until [`rebuild`](Self::rebuild) has run once. Give it to the
    /// ingest pipeline as its [`StagingObserver`].
    pub fn new(
        inner: Arc<dyn BlockLookup>,
        catalog: Arc<dyn CarCatalog>,
        filter: Arc<PresenceFilter>,
    ) -> Self {
        Self {
            inner,
            catalog,
            filter,
            staging_epochs: Arc::default(),
            lookups: Arc::default(),
        }
    }

    /// The filter.
    pub fn filter(&self) -> &Arc<PresenceFilter> {
        &self.filter
    }

    /// Multihashes looked up in the inner index so far (each one the filter could not rule
    /// out); the inner index's own queries for `car`, `list_cars` and ingest are not counted.
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    /// Builds a new generation from every committed CAR's multihashes, sized for
    /// `max(expected_blocks, 2 × blocks of the committed CARs, 2 × insertions so far)` (the
    /// blocks are counted from the CAR records first, [`CarRecord::blocks`], duplicates
    /// included), and makes it current. Inserts made while it runs go to both generations.
    /// Returns the multihashes loaded. Only one rebuild runs at a time: a call while another
    /// runs returns `Ok(0)` at once.
    ///
    /// # Errors
    /// The inner index's error; the current generation then stays in place.
    pub async fn rebuild(&self) -> Result<u64, IndexError> {
        let f = &self.filter;
        if f.rebuilding.swap(true, Ordering::AcqRel) {
            return Ok(0);
        }
        let inserted = f
            .current()
            .map_or(0, |g| g.inserted.load(Ordering::Relaxed));
        let counted = match self.count_blocks().await {
            Ok(n) => n,
            Err(e) => {
                f.rebuilding.store(false, Ordering::Release);
                return Err(e);
            }
        };
        let capacity = f
            .config
            .expected_blocks
            .max(inserted.saturating_mul(2))
            .max(counted.saturating_mul(2));
        let next = Arc::new(Generation::new(capacity, f.config.false_positive_rate));
        *f.next.write().unwrap_or_else(PoisonError::into_inner) = Some(next.clone());
        f.epoch.fetch_add(1, Ordering::AcqRel);
        let loaded = self.load_all(&next).await;
        let mut next_slot = f.next.write().unwrap_or_else(PoisonError::into_inner);
        *next_slot = None;
        if loaded.is_ok() {
            *f.current.write().unwrap_or_else(PoisonError::into_inner) = Some(next);
            f.rebuilds.fetch_add(1, Ordering::Relaxed);
        }
        drop(next_slot);
        f.rebuilding.store(false, Ordering::Release);
        loaded
    }

    /// Blocks of every committed CAR, from their records (no row is read).
    async fn count_blocks(&self) -> Result<u64, IndexError> {
        let mut blocks = 0u64;
        let mut after = None;
        loop {
            let cars = self.next_cars(&mut after).await?;
            if cars.is_empty() {
                return Ok(blocks);
            }
            blocks = cars
                .iter()
                .fold(blocks, |n, car| n.saturating_add(car.blocks));
        }
    }

    async fn load_all(&self, into: &Generation) -> Result<u64, IndexError> {
        let mut loaded = 0;
        let mut after = None;
        loop {
            let cars = self.next_cars(&mut after).await?;
            if cars.is_empty() {
                return Ok(loaded);
            }
            for car in &cars {
                loaded += self.add_car(&car.key, |mh| into.insert(mh)).await?;
            }
        }
    }

    /// The page of committed CARs after `after` (empty at the end), moving `after` past it.
    async fn next_cars(&self, after: &mut Option<String>) -> Result<Vec<CarRecord>, IndexError> {
        let cars = self
            .catalog
            .list_cars(after.as_deref(), MAX_LIST_CARS)
            .await?;
        if let Some(last) = cars.last() {
            *after = Some(last.key.clone());
        }
        Ok(cars)
    }

    /// Feeds every committed multihash of the CAR `key` to `add`; returns how many.
    async fn add_car(&self, key: &str, add: impl Fn(&Multihash)) -> Result<u64, IndexError> {
        let mut n = 0;
        let mut after: Option<Multihash> = None;
        loop {
            let page = self
                .catalog
                .car_multihashes(key, after.as_ref(), crate::MAX_LIST_MULTIHASHES)
                .await?;
            let Some(last) = page.last() else {
                return Ok(n);
            };
            after = Some(*last);
            page.iter().for_each(&add);
            n += page.len() as u64;
        }
    }

    /// Adds the multihashes of a CAR committed elsewhere (another replica) to the filter.
    ///
    /// # Errors
    /// The inner index's error (the CAR stays partly added; call again).
    pub async fn add_committed_car(&self, key: &str) -> Result<u64, IndexError> {
        self.add_car(key, |mh| self.filter.insert(mh)).await
    }
}

#[async_trait]
impl BlockLookup for FilteredIndex {
    async fn locations(&self, multihash: &Multihash) -> Result<Vec<BlockLocation>, IndexError> {
        if !self.filter.may_contain(multihash) {
            return Ok(Vec::new());
        }
        self.lookups.fetch_add(1, Ordering::Relaxed);
        self.inner.locations(multihash).await
    }

    async fn contains(&self, multihash: &Multihash) -> Result<bool, IndexError> {
        if !self.filter.may_contain(multihash) {
            return Ok(false);
        }
        self.lookups.fetch_add(1, Ordering::Relaxed);
        self.inner.contains(multihash).await
    }

    async fn locations_many(
        &self,
        multihashes: &[Multihash],
    ) -> Result<Vec<Vec<BlockLocation>>, IndexError> {
        let maybe: Vec<usize> = (0..multihashes.len())
            .filter(|&i| self.filter.may_contain(&multihashes[i]))
            .collect();
        let mut out = vec![Vec::new(); multihashes.len()];
        if maybe.is_empty() {
            return Ok(out);
        }
        self.lookups
            .fetch_add(maybe.len() as u64, Ordering::Relaxed);
        let asked: Vec<Multihash> = maybe.iter().map(|&i| multihashes[i]).collect();
        let found = self.inner.locations_many(&asked).await?;
        if found.len() != asked.len() {
            return Err(IndexError::Storage(format!(
                "locations_many answered {} of {} blocks",
                found.len(),
                asked.len()
            )));
        }
        for (i, locations) in maybe.into_iter().zip(found) {
            out[i] = locations;
        }
        Ok(out)
    }
}

#[async_trait]
impl StagingObserver for FilteredIndex {
    fn staged(&self, car_key: &str, rows: &[StagedBlock]) {
        self.staging_epochs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(car_key.to_owned())
            .or_insert_with(|| self.filter.epoch());
        for row in rows {
            self.filter.insert(&row.multihash);
        }
    }

    async fn committed(&self, car_key: &str) {
        let staged_at = self
            .staging_epochs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(car_key);
        if staged_at.is_some_and(|epoch| epoch != self.filter.epoch()) {
            // A rebuild started after these rows were staged and may have listed the CARs
            // before this one was committed: add them again.
            if let Err(e) = self.add_committed_car(car_key).await {
                tracing::warn!(car = %car_key, error = %e, "re-adding a CAR to the presence filter failed; rebuilding");
                self.filter
                    .current
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
            }
        }
    }

    fn aborted(&self, car_key: &str) {
        self.staging_epochs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(car_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::test_multihash;

    /// A built filter holding `test_multihash(0..n)`.
    fn built(n: u32) -> PresenceFilter {
        let filter = PresenceFilter::new(FilterConfig::default());
        *filter.current.write().unwrap() = Some(Arc::new(Generation::new(1000, 0.001)));
        for i in 0..n {
            filter.insert(&test_multihash(i));
        }
        filter
    }

    #[test]
    fn a_snapshot_loads_into_the_same_answers_and_position() {
        let filter = built(500);
        assert!(
            PresenceFilter::new(FilterConfig::default())
                .snapshot(b"x")
                .is_none(),
            "an unbuilt filter has no snapshot"
        );
        let snapshot = filter.snapshot(b"fjall:42").unwrap();
        let loaded = PresenceFilter::new(FilterConfig::default());
        assert_eq!(loaded.load_snapshot(&snapshot).unwrap(), b"fjall:42");
        assert!(loaded.stats().built);
        assert_eq!(loaded.stats().inserted, 500);
        for i in 0..2000 {
            let mh = test_multihash(i);
            assert_eq!(loaded.may_contain(&mh), filter.may_contain(&mh), "{i}");
        }
        assert!((0..500).all(|i| loaded.may_contain(&test_multihash(i))));
    }

    #[test]
    fn a_damaged_or_foreign_snapshot_is_refused_and_changes_nothing() {
        let snapshot = built(10).snapshot(b"p").unwrap();
        let target = PresenceFilter::new(FilterConfig::default());
        let mut flipped = snapshot.clone();
        flipped[100] ^= 1;
        assert!(matches!(
            target.load_snapshot(&flipped),
            Err(SnapshotError::Checksum)
        ));
        for cut in [0, 10, snapshot.len() - 33, snapshot.len() - 1] {
            assert!(
                target.load_snapshot(&snapshot[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        // Bits cleared, checksum recomputed: only the canaries notice.
        let body_len = snapshot.len() - 32;
        let mut cleared = snapshot[..body_len].to_vec();
        // Magic, rate, capacity, insertions, hashes, seed, position length, "p", word count.
        let bits_start = 16 + 8 + 8 + 8 + 4 + 16 + 4 + 1 + 8;
        cleared[bits_start..].fill(0);
        use sha2::Digest;
        let checksum = sha2::Sha256::digest(&cleared);
        cleared.extend_from_slice(&checksum);
        assert!(matches!(
            target.load_snapshot(&cleared),
            Err(SnapshotError::Canary)
        ));
        let other_rate = PresenceFilter::new(FilterConfig {
            false_positive_rate: 0.01,
            ..FilterConfig::default()
        });
        assert!(matches!(
            other_rate.load_snapshot(&snapshot),
            Err(SnapshotError::FalsePositiveRate { .. })
        ));
        assert!(!target.stats().built, "nothing was loaded");
        assert!(
            target.may_contain(&test_multihash(12345)),
            "unbuilt: every answer is maybe"
        );
    }

    fn staged(seed: u32) -> StagedBlock {
        StagedBlock {
            multihash: test_multihash(seed),
            offset: u64::from(seed) * 10,
            length: 5,
        }
    }

    fn record(key: &str, blocks: u64) -> CarRecord {
        CarRecord {
            key: key.to_owned(),
            version: 1,
            roots: Vec::new(),
            size: 100,
            blocks,
            block_bytes: blocks * 5,
            ingested_at: 0,
        }
    }

    /// Commits a CAR of the blocks `seeds`, telling `observer` as the ingest pipeline does.
    async fn commit(
        index: &dyn crate::BlockIndex,
        observer: Option<&FilteredIndex>,
        key: &str,
        seeds: std::ops::Range<u32>,
    ) {
        let rows: Vec<_> = seeds.map(staged).collect();
        if let Some(o) = observer {
            o.staged(key, &rows);
        }
        index.stage_blocks(key, &rows).await.unwrap();
        index
            .commit_car(&record(key, rows.len() as u64))
            .await
            .unwrap();
        if let Some(o) = observer {
            o.committed(key).await;
        }
    }

    fn filtered(
        expected_blocks: u64,
    ) -> (tempfile::TempDir, Arc<crate::FjallIndex>, FilteredIndex) {
        let dir = tempfile::tempdir().unwrap();
        let inner = Arc::new(crate::FjallIndex::open(dir.path()).unwrap());
        let filter = Arc::new(PresenceFilter::new(FilterConfig {
            expected_blocks,
            false_positive_rate: 0.01,
        }));
        let index = FilteredIndex::new(inner.clone(), inner.clone(), filter);
        (dir, inner, index)
    }

    #[tokio::test]
    async fn unbuilt_filter_passes_every_lookup_through() {
        let (_dir, inner, index) = filtered(100);
        commit(inner.as_ref(), None, "cars/a.car", 0..10).await;
        assert!(index.contains(&test_multihash(3)).await.unwrap());
        assert!(!index.contains(&test_multihash(99)).await.unwrap());
        assert_eq!(index.lookups(), 2);
        assert!(index.filter().needs_rebuild());
    }

    #[tokio::test]
    async fn absent_blocks_cost_no_index_lookup_once_built() {
        let (_dir, inner, index) = filtered(1000);
        commit(inner.as_ref(), None, "cars/a.car", 0..200).await;
        assert_eq!(index.rebuild().await.unwrap(), 200);
        assert!(!index.filter().needs_rebuild());
        // Every present block is found.
        let present: Vec<_> = (0..200).map(test_multihash).collect();
        let found = index.locations_many(&present).await.unwrap();
        assert!(found.iter().all(|l| l.len() == 1));
        // 10,000 absent ones: only false positives reach the index (p = 0.01).
        let before = index.lookups();
        for seed in 10_000..20_000 {
            assert!(
                index
                    .locations(&test_multihash(seed))
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        let passed = index.lookups() - before;
        assert!(
            passed < 300,
            "{passed} of 10000 absent lookups reached the index"
        );
        assert!(index.filter().stats().absent >= 9_700);
    }

    #[tokio::test]
    async fn ingested_and_remote_blocks_are_added() {
        let (_dir, inner, index) = filtered(1000);
        index.rebuild().await.unwrap();
        // Observed: staged rows enter the filter.
        commit(inner.as_ref(), Some(&index), "cars/local.car", 0..50).await;
        // Behind its back (another replica): absent until added.
        commit(inner.as_ref(), None, "cars/remote.car", 100..150).await;
        assert!(index.contains(&test_multihash(10)).await.unwrap());
        let misses = (100..150)
            .filter(|&s| !index.filter().may_contain(&test_multihash(s)))
            .count();
        assert!(misses > 40, "remote blocks should be unknown to the filter");
        assert_eq!(
            index.add_committed_car("cars/remote.car").await.unwrap(),
            50
        );
        for seed in 100..150 {
            assert!(index.contains(&test_multihash(seed)).await.unwrap());
        }
    }

    #[tokio::test]
    async fn a_full_filter_asks_for_a_rebuild_and_grows() {
        let (_dir, inner, index) = filtered(10);
        index.rebuild().await.unwrap();
        commit(inner.as_ref(), Some(&index), "cars/a.car", 0..40).await;
        assert!(index.filter().needs_rebuild());
        let small = index.filter().stats().bytes;
        assert_eq!(index.rebuild().await.unwrap(), 40);
        let stats = index.filter().stats();
        assert_eq!(stats.capacity, 80);
        assert!(stats.bytes > small);
        assert_eq!(stats.rebuilds, 2);
        for seed in 0..40 {
            assert!(index.contains(&test_multihash(seed)).await.unwrap());
        }
    }

    /// The first build is sized from the index (twice its blocks), not only from the floor:
    /// a large index never starts with a filter that is full at once, a small one never gets
    /// a large filter.
    #[tokio::test]
    async fn a_build_is_sized_from_the_index_block_count() {
        let (_dir, inner, index) = filtered(10);
        commit(inner.as_ref(), None, "cars/a.car", 0..300).await;
        commit(inner.as_ref(), None, "cars/b.car", 300..500).await;
        assert_eq!(index.rebuild().await.unwrap(), 500);
        let stats = index.filter().stats();
        assert_eq!(stats.capacity, 1000, "twice the 500 blocks of the records");
        assert!(!index.filter().needs_rebuild());
        // The floor holds when the index is small.
        let (_dir, inner, index) = filtered(4096);
        commit(inner.as_ref(), None, "cars/a.car", 0..3).await;
        index.rebuild().await.unwrap();
        assert_eq!(index.filter().stats().capacity, 4096);
    }
}
