//! The block index: multihash -> where the block's bytes sit inside stored CAR files.
//!
//! Every block Hydrant serves is found through a [`BlockLookup`]: one row per (block, CAR) pair
//! giving the object-store key of the CAR, the byte offset of the block *data* (after the
//! section's varint and CID) and its length in bytes. The [`CarCatalog`] keeps the CARs: their
//! records, and their rows while they are staged. A CAR's rows are staged while it streams in
//! and become visible all at once when the CAR is committed ("atomic per CAR"): readers never
//! see a half-ingested CAR, and a crash leaves only staged rows that [`CarCatalog::recover`]
//! removes.
//!
//! The two halves are separate traits because their users are: Bitswap, the gateway and the
//! DHT only look up (and the presence filter and the metrics wrap only lookups), while the
//! ingest pipeline, the API and the filter's rebuild only use the catalogue. A backend
//! implements both ([`BlockIndex`] names the pair).
//!
//! Spec: the offsets are those of the block data inside CAR sections
//! (`../shared/specs/carv1.md`, "Data"; `carv2.md` for the inner CARv1 payload); the key is the
//! multihash, not the CID, so one block reached through CIDs of different codecs is one entry
//! (`../shared/specs/bitswap-protocol.md`: blocks are exchanged by multihash).
//!
//! Public API:
//! - [`BlockLookup`] (`locations`, `locations_many`, `contains`) and [`CarCatalog`] (`car`,
//!   `list_cars`, `car_multihashes`, `stage_blocks`, `commit_car`, `abort_car`, `recover`);
//!   [`BlockIndex`], both; [`StagingObserver`], told of stagings by the ingest pipeline;
//! - [`BlockLocation`], [`StagedBlock`], [`CarRecord`], [`IndexError`], [`Multihash`];
//! - limits [`MAX_LOCATIONS`], [`MAX_LIST_CARS`], [`MAX_LIST_MULTIHASHES`];
//! - `FjallIndex`: the embedded backend (the default), behind the `fjall` feature so that
//!   crates using only the traits do not build an embedded database;
//! - [`PinStore`] and [`Pin`]: the pinned roots, kept in the same database;
//! - [`IpniStore`]: where the IPNI advertisement chain stands (head, advertised CARs), in the
//!   same database;
//! - [`filter`]: the in-memory presence filter ([`filter::PresenceFilter`]) and the lookup
//!   wrapper that consults it first ([`filter::FilteredIndex`]);
//! - [`conformance`]: the contract suites every backend passes, one per half.

use async_trait::async_trait;

pub mod conformance;
pub mod filter;
#[cfg(feature = "fjall")]
mod fjall_index;
pub mod ipni;
mod pins;
pub mod sorter;

#[cfg(feature = "fjall")]
pub use fjall_index::{
    CACHE_BYTES as FJALL_CACHE_BYTES, FjallIndex, FjallOptions,
    MAX_OPEN_FILES as FJALL_MAX_OPEN_FILES, MEMTABLE_BYTES as FJALL_MEMTABLE_BYTES,
};
pub use hydrant_blocks::Multihash;
pub use ipni::{IpniChanges, IpniHead, IpniStore, IpniWriterLease, MAX_LIST_IPNI_CARS};
pub use pins::{MAX_LIST_PINS, MAX_PIN_NAME_BYTES, Pin, PinStore};

/// Most locations [`BlockIndex::locations`] returns for one block (the first ones in the
/// backend's order). A block present in more CARs is still served; the rest are not listed,
/// which bounds the memory and time of one lookup.
pub const MAX_LOCATIONS: usize = 64;

/// Most CAR records [`BlockIndex::list_cars`] returns per call, whatever `limit` asks for.
pub const MAX_LIST_CARS: usize = 1000;

/// Most multihashes [`BlockIndex::car_multihashes`] returns per call, whatever `limit` asks for.
pub const MAX_LIST_MULTIHASHES: usize = 10_000;

/// Where one block's bytes are: `length` bytes at absolute byte `offset` in the object `car`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlockLocation {
    /// Object-store key of the CAR file holding the block, e.g. `cars/<blake3-hex>.car`.
    pub car: String,
    /// Absolute byte offset of the block data within the stored CAR file (CARv2 included).
    pub offset: u64,
    /// Length of the block data in bytes.
    pub length: u32,
}

/// One row staged for a CAR: the block's multihash, the absolute byte offset of its data and
/// its length in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedBlock {
    /// The block's multihash (the CID's codec is not part of the key: one block, many CIDs).
    pub multihash: Multihash,
    /// Absolute byte offset of the block data within the CAR file.
    pub offset: u64,
    /// Length of the block data in bytes.
    pub length: u32,
}

/// What Hydrant keeps about a committed CAR.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CarRecord {
    /// Object-store key of the CAR, derived from its content (`cars/<blake3-hex>.car`).
    pub key: String,
    /// CAR format version (1 or 2).
    pub version: u8,
    /// Root CIDs from the CAR header, as strings in their original encoding.
    pub roots: Vec<String>,
    /// Size of the stored CAR in bytes.
    pub size: u64,
    /// Number of block sections (duplicates counted).
    pub blocks: u64,
    /// Total bytes of block data.
    pub block_bytes: u64,
    /// When the CAR was committed, seconds since the Unix epoch.
    pub ingested_at: u64,
}

/// Errors of index operations. An error means "could not tell", never "absent".
#[derive(Debug, Clone, thiserror::Error)]
pub enum IndexError {
    /// The storage engine failed.
    #[error("index storage error: {0}")]
    Storage(String),
    /// A stored value could not be decoded (corruption or a newer format).
    #[error("index value for {what} is corrupt: {detail}")]
    Corrupt {
        /// What was being read (a key description).
        what: String,
        /// What was wrong with it.
        detail: String,
    },
    /// `commit_car` for a CAR with blocks but neither a staging nor a prior record (never
    /// staged, aborted, or removed by [`CarCatalog::recover`]). Carries the CAR key.
    #[error("CAR {0} is not staged")]
    NotStaged(String),
}

/// The lookup half of the index: multihash -> locations of committed blocks.
#[async_trait]
pub trait BlockLookup: Send + Sync + 'static {
    /// All committed locations of the block with this multihash (empty when absent), at most
    /// [`MAX_LOCATIONS`] of them. Rows of CARs that are staged but not committed are never
    /// returned.
    ///
    /// # Errors
    /// [`IndexError`] when the backend cannot answer; never used to mean "absent".
    async fn locations(&self, multihash: &Multihash) -> Result<Vec<BlockLocation>, IndexError>;

    /// Whether any committed CAR holds the block.
    ///
    /// # Errors
    /// As [`locations`](Self::locations).
    async fn contains(&self, multihash: &Multihash) -> Result<bool, IndexError> {
        Ok(!self.locations(multihash).await?.is_empty())
    }

    /// [`locations`](Self::locations) for many blocks at once: element `i` answers
    /// `multihashes[i]`. Backends override it to answer in one round trip.
    ///
    /// # Errors
    /// As [`locations`](Self::locations); one failure fails the whole call.
    async fn locations_many(
        &self,
        multihashes: &[Multihash],
    ) -> Result<Vec<Vec<BlockLocation>>, IndexError> {
        let mut out = Vec::with_capacity(multihashes.len());
        for multihash in multihashes {
            out.push(self.locations(multihash).await?);
        }
        Ok(out)
    }
}

/// The catalogue half of the index: committed CARs, and the rows of CARs being ingested.
///
/// Staging protocol for one CAR (the ingest pipeline's side):
/// 1. [`stage_blocks`](Self::stage_blocks) any number of times, in batches (bounded memory);
/// 2. then exactly one of [`commit_car`](Self::commit_car) (all rows visible at once) or
///    [`abort_car`](Self::abort_car) (all staged rows removed).
///
/// A process crash between 1 and 2 leaves staged rows that [`recover`](Self::recover) removes.
/// Callers must not stage the same CAR key from two tasks at once, and commit or abort a CAR
/// through the handle (or a clone of it) that staged it: a backend may hold staged rows in
/// that handle until the commit (both do, sorted with bounded memory).
#[async_trait]
pub trait CarCatalog: Send + Sync + 'static {
    /// The committed record of the CAR stored under `key`, if any.
    ///
    /// # Errors
    /// [`IndexError`] when the backend cannot answer or the record does not decode.
    async fn car(&self, key: &str) -> Result<Option<CarRecord>, IndexError>;

    /// Committed CARs ordered by key (byte order), starting strictly after `after`, at most
    /// `min(limit, MAX_LIST_CARS)` of them. Page by passing the last key returned as `after`.
    ///
    /// # Errors
    /// As [`car`](Self::car).
    async fn list_cars(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CarRecord>, IndexError>;

    /// Multihashes of the blocks of the committed CAR `key`, in byte order of their binary
    /// encoding, starting strictly after `after`, at most `min(limit, MAX_LIST_MULTIHASHES)` of
    /// them; empty for a CAR that is not committed. Page by passing the last one returned as
    /// `after`. Used to rebuild and refresh the presence filter ([`filter`]).
    ///
    /// # Errors
    /// As [`car`](Self::car).
    async fn car_multihashes(
        &self,
        key: &str,
        after: Option<&Multihash>,
        limit: usize,
    ) -> Result<Vec<Multihash>, IndexError>;

    /// Stages rows for the CAR `car_key`; they stay invisible until [`commit_car`](Self::commit_car).
    ///
    /// The first call for a key opens its staging (an empty `rows` slice does just that).
    /// Staging a key that is already committed prepares a replacement: the committed rows stay
    /// visible until the commit, which then swaps the old rows for the new ones atomically. A
    /// multihash staged twice for one CAR keeps one row (the last).
    ///
    /// # Errors
    /// [`IndexError::Storage`] when the rows cannot be written; the caller then aborts the CAR.
    async fn stage_blocks(&self, car_key: &str, rows: &[StagedBlock]) -> Result<(), IndexError>;

    /// Makes every row staged for `record.key` visible and stores the record, atomically, and
    /// durably (the commit survives a power loss once this returns).
    ///
    /// Without a staging: a committed key gets its record replaced (rows unchanged); an unknown
    /// key is accepted only when `record.blocks == 0` (a CAR with no blocks has no rows).
    ///
    /// # Errors
    /// [`IndexError::NotStaged`] for an unknown key with `record.blocks > 0` (e.g. its staging
    /// was removed by [`recover`](Self::recover)); [`IndexError::Storage`] when the write fails
    /// (nothing became visible).
    async fn commit_car(&self, record: &CarRecord) -> Result<(), IndexError>;

    /// Removes every row staged for `car_key` (no effect on a committed CAR, nor on an unknown
    /// key).
    ///
    /// # Errors
    /// [`IndexError::Storage`] when the removal fails; [`recover`](Self::recover) finishes it.
    async fn abort_car(&self, car_key: &str) -> Result<(), IndexError>;

    /// Removes the committed CAR stored under `key`: its record and every one of its rows, at
    /// once (a lookup sees all of the CAR's rows or none of them) and durably before it
    /// returns. Rows of other CARs holding the same blocks stay. Returns the removed record, or
    /// `None` when no CAR is committed under `key` (nothing changes). The stored object is the
    /// caller's to delete, after this returns, so that no row ever points at a missing object.
    ///
    /// # Errors
    /// [`IndexError::Storage`] when the removal fails before it is durable (nothing changed).
    /// A failure after it, while the invisible rows are cleaned up, is only logged:
    /// [`recover`](Self::recover) finishes it.
    async fn delete_car(&self, key: &str) -> Result<Option<CarRecord>, IndexError>;

    /// Removes rows left staged by a crash; returns the keys of the CARs cleaned up.
    ///
    /// Every staging not yet committed is removed, including one opened by a live writer of this
    /// process: call it when no CAR is being ingested (at start-up). A writer whose staging was
    /// removed sees [`IndexError::NotStaged`] on commit.
    ///
    /// # Errors
    /// [`IndexError::Storage`] when the removal fails (it can be retried).
    async fn recover(&self) -> Result<Vec<String>, IndexError>;
}

/// Both halves of the index: what a backend (embedded, PostgreSQL) implements.
pub trait BlockIndex: BlockLookup + CarCatalog {}

impl<T: BlockLookup + CarCatalog + ?Sized> BlockIndex for T {}

/// Told by the ingest pipeline of each CAR it stages, commits or aborts, so that a cache of
/// the lookups (the presence filter) knows a block before it becomes visible.
#[async_trait]
pub trait StagingObserver: Send + Sync + 'static {
    /// Rows about to be staged for `car_key` (called before [`CarCatalog::stage_blocks`]).
    fn staged(&self, car_key: &str, rows: &[StagedBlock]);

    /// `car_key` was committed ([`CarCatalog::commit_car`] returned `Ok`).
    async fn committed(&self, car_key: &str);

    /// `car_key`'s staging was given up (aborted, or its commit failed).
    fn aborted(&self, car_key: &str);
}
