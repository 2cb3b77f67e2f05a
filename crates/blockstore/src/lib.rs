//! Block reads over stored CARs: the [`Blockstore`] trait and its CAR-backed implementation.
//!
//! A block is found through a [`hydrant_index::BlockIndex`] and read with a ranged read from the
//! object store that holds the CAR file unaltered. [`Blockstore::get_many`] coalesces
//! neighbouring blocks of one CAR into one ranged read. Identity-hash CIDs
//! (multihash code 0x00) are answered from the CID itself, with no index or storage request.
//!
//! Spec: blocks are the `data` of CAR sections (`../shared/specs/carv1.md`, "Data"), read at the
//! offsets the index recorded at ingest; a block is served only if it hashes to its CID's
//! multihash (`../shared/specs/trustless-gateway.md`, `bitswap-protocol.md`: peers verify, so
//! must we). Identity CIDs carry their block in the digest (multihash code 0x00).
//!
//! Public API:
//! - [`Blockstore`]: `has`, `size`, `get`, `get_many` by [`Cid`];
//! - [`BlockstoreError`]: an error is "could not tell", never "absent";
//! - [`CarBlockstore`] (`new(index, store, ReadConfig)`, `stats()`), [`ReadConfig`],
//!   [`ReadStats`], [`MAX_CONCURRENT_RANGE_READS`].

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;

mod car_blockstore;

pub use car_blockstore::{
    CACHE_ENTRY_OVERHEAD, CarBlockstore, MAX_CONCURRENT_RANGE_READS, ReadConfig, ReadStats,
};

/// Errors of block reads. An error means "could not tell", never "absent": callers must not
/// answer DONT_HAVE or 404 for an error.
#[derive(Debug, thiserror::Error)]
pub enum BlockstoreError {
    /// The index could not be read.
    #[error("index lookup for {cid} failed: {source}")]
    Index {
        /// The block asked for.
        cid: Cid,
        /// The index failure.
        #[source]
        source: hydrant_index::IndexError,
    },
    /// The object store failed to serve a range.
    #[error("reading {key} bytes {start}..{end} failed: {detail}")]
    Storage {
        /// Object key of the CAR.
        key: String,
        /// First byte of the range.
        start: u64,
        /// One past the last byte of the range.
        end: u64,
        /// The object store's error text.
        detail: String,
    },
    /// The bytes read do not hash to the CID (the stored CAR was altered after ingest).
    #[error("block {cid} read from {key} at byte {offset} does not match its hash")]
    Corrupt {
        /// The block asked for.
        cid: Cid,
        /// Object key of the CAR it was read from.
        key: String,
        /// Byte offset of the block data in that CAR.
        offset: u64,
    },
    /// Verification is on and the CID's hash function is not one this store can compute
    /// (sha2-256, sha2-512, blake2b-256, blake2b-512, blake3 are), or its digest length is not
    /// that function's. Ingest refuses such blocks, so this means an index written by
    /// something else.
    #[error("block {cid}: cannot verify multihash code {code:#x} with a {size}-byte digest")]
    UnsupportedHash {
        /// The block asked for.
        cid: Cid,
        /// The multihash code.
        code: u64,
        /// The digest length in bytes.
        size: u8,
    },
}

/// Read access to blocks by CID.
///
/// Lookups are by the CID's multihash: one block answers CIDs of any codec/version over it.
#[async_trait]
pub trait Blockstore: Send + Sync + 'static {
    /// Whether the block is stored.
    ///
    /// # Errors
    /// [`BlockstoreError`] when the answer is unknown.
    async fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError>;

    /// The block's size in bytes, or `None` when it is not stored.
    ///
    /// # Errors
    /// As [`has`](Self::has).
    async fn size(&self, cid: &Cid) -> Result<Option<u32>, BlockstoreError>;

    /// The block's bytes, or `None` when it is not stored.
    ///
    /// # Errors
    /// [`BlockstoreError::Index`] / [`BlockstoreError::Storage`] when the answer is unknown,
    /// [`BlockstoreError::Corrupt`] when the stored bytes do not match the CID.
    async fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError>;

    /// Reads many blocks at once; element `i` of the result answers `cids[i]`. Implementations
    /// coalesce neighbouring ranges of one CAR into a single read. Each element fails or
    /// succeeds on its own, with the errors of [`get`](Self::get).
    async fn get_many(&self, cids: &[Cid]) -> Vec<Result<Option<Bytes>, BlockstoreError>> {
        let mut out = Vec::with_capacity(cids.len());
        for cid in cids {
            out.push(self.get(cid).await);
        }
        out
    }
}
