//! The block index: multihash -> where the block's bytes sit inside stored CAR files.
//!
//! Every block Hydrant serves is found through a [`BlockIndex`]: one row per (block, CAR) pair
//! giving the object-store key of the CAR, the byte offset of the block *data* (after the
//! section's varint and CID) and its length in bytes. A CAR's rows are staged while it streams
//! in and become visible all at once when the CAR is committed ("atomic per CAR"): readers never
//! see a half-ingested CAR, and a crash leaves only staged rows that [`BlockIndex::recover`]
//! removes.
//!
//! Backends: [`FjallIndex`] (embedded, the default). Every backend passes the shared
//! conformance suite in [`conformance`].

use async_trait::async_trait;
use cid::Cid;

/// A multihash as used throughout Hydrant (digests up to 64 bytes: sha2-512 fits).
pub type Multihash = multihash::Multihash<64>;

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
#[derive(Debug, thiserror::Error)]
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
    /// `commit_car` for a CAR with no staged rows and no prior record, or a similar misuse.
    #[error("CAR {0} is not staged")]
    NotStaged(String),
}

/// The multihash -> locations index, plus CAR records.
///
/// Staging protocol for one CAR (the ingest pipeline's side):
/// 1. [`stage_blocks`](Self::stage_blocks) any number of times, in batches (bounded memory);
/// 2. then exactly one of [`commit_car`](Self::commit_car) (all rows visible at once) or
///    [`abort_car`](Self::abort_car) (all staged rows removed).
///
/// A process crash between 1 and 2 leaves staged rows that [`recover`](Self::recover) removes.
/// Callers must not stage the same CAR key from two tasks at once.
#[async_trait]
pub trait BlockIndex: Send + Sync + 'static {
    /// All committed locations of the block with this multihash (empty when absent).
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

    /// The committed record of the CAR stored under `key`, if any.
    async fn car(&self, key: &str) -> Result<Option<CarRecord>, IndexError>;

    /// Committed CARs ordered by key, starting after `after`, at most `limit` of them.
    async fn list_cars(&self, after: Option<&str>, limit: usize)
    -> Result<Vec<CarRecord>, IndexError>;

    /// Stages rows for the CAR `car_key`; they stay invisible until [`commit_car`](Self::commit_car).
    async fn stage_blocks(&self, car_key: &str, rows: &[StagedBlock]) -> Result<(), IndexError>;

    /// Makes every row staged for `record.key` visible and stores the record, atomically.
    async fn commit_car(&self, record: &CarRecord) -> Result<(), IndexError>;

    /// Removes every row staged for `car_key` (no effect on a committed CAR).
    async fn abort_car(&self, car_key: &str) -> Result<(), IndexError>;

    /// Removes rows left staged by a crash; returns the keys of the CARs cleaned up.
    async fn recover(&self) -> Result<Vec<String>, IndexError>;
}
