//! Block reads over stored CARs: the [`Blockstore`] trait and its CAR-backed implementation.
//!
//! A block is found through a [`hydrant_index::BlockIndex`] and read with a ranged read from the
//! object store that holds the CAR file unaltered. [`Blockstore::get_many`] coalesces
//! neighbouring blocks of one CAR into one ranged read. Identity-hash CIDs
//! (multihash code 0x00) are answered from the CID itself, with no index or storage request.

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;

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
    #[error("block {cid} read from {key} does not match its hash")]
    Corrupt {
        /// The block asked for.
        cid: Cid,
        /// Object key of the CAR it was read from.
        key: String,
    },
}

/// Read access to blocks by CID.
#[async_trait]
pub trait Blockstore: Send + Sync + 'static {
    /// Whether the block is stored.
    ///
    /// # Errors
    /// [`BlockstoreError`] when the answer is unknown.
    async fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError>;

    /// The block's size in bytes, or `None` when it is not stored.
    async fn size(&self, cid: &Cid) -> Result<Option<u32>, BlockstoreError>;

    /// The block's bytes, or `None` when it is not stored.
    async fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError>;

    /// Reads many blocks at once; element `i` of the result answers `cids[i]`. Implementations
    /// coalesce neighbouring ranges of one CAR into a single read.
    async fn get_many(&self, cids: &[Cid]) -> Vec<Result<Option<Bytes>, BlockstoreError>> {
        let mut out = Vec::with_capacity(cids.len());
        for cid in cids {
            out.push(self.get(cid).await);
        }
        out
    }
}
