//! The block seam: what every reader of blocks (Bitswap, the trustless gateway, `export`)
//! reads through, what every store implements, and the one rule for a block's hash.
//!
//! This crate is small on purpose (no storage engine, no I/O): `bitswap` and `gateway` depend
//! on it alone, and `blockstore` implements it over stored CARs.
//!
//! Spec: a block is the bytes a CID's multihash names (`../shared/specs/carv1.md`, "Data";
//! `bitswap-protocol.md`, "Block"; `trustless-gateway.md` § "Block Responses"). Identity CIDs
//! (multihash 0x00) carry their block in the digest ([`identity_block`]).
//!
//! Public API:
//! - [`Blockstore`]: `has`, `size`, `get`, `get_many` by [`Cid`]; [`BlockstoreError`]; and, for
//!   readers of the stored CAR bytes themselves (the gateway's passthrough), `stored_location`,
//!   `read_stored`, `verifies_reads` ([`StoredLocation`]);
//! - [`verify_block`], [`matches`], [`digest`]: the verifier ([`verify`] has the digest rule);
//! - [`identity_block`]: the block of an identity CID;
//! - [`codes`]: multicodec and multihash codes;
//! - [`Multihash`]: the multihash type of every crate (digests up to 64 bytes).

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;

pub mod codes;
pub mod verify;

pub use verify::{DigestError, MIN_DIGEST_LEN, VerifyError, digest, matches, verify_block};

/// A multihash as used throughout Hydrant (digests up to 64 bytes: sha2-512 fits).
pub type Multihash = multihash::Multihash<64>;

/// The block an identity CID names (its digest), or `None` for any other multihash. Stores
/// answer identity CIDs with this, with no index or storage request
/// (trustless-gateway.md § "Dedicated Probe Paths": `bafkqaaa` is the empty identity block).
pub fn identity_block(cid: &Cid) -> Option<Bytes> {
    (cid.hash().code() == codes::IDENTITY).then(|| Bytes::copy_from_slice(cid.hash().digest()))
}

/// Errors of block reads. An error means "could not tell", never "absent": callers must not
/// answer DONT_HAVE or 404 for an error.
///
/// Two kinds: the store could not be reached ([`Index`](Self::Index),
/// [`Storage`](Self::Storage); retrying later may work) and the stored data is wrong
/// ([`Corrupt`](Self::Corrupt), [`Unverifiable`](Self::Unverifiable); a server fault);
/// [`BlockstoreError::is_unavailable`] tells them apart.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BlockstoreError {
    /// The index could not be read.
    #[error("index lookup for {cid} failed: {detail}")]
    Index {
        /// The block asked for.
        cid: Cid,
        /// The index's error text.
        detail: String,
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
    /// Verification is on and the CID's multihash cannot be checked ([`verify`]'s rule).
    /// Ingest refuses such blocks with the same rule, so this means an index written by
    /// something else.
    #[error("block {cid} cannot be verified: {reason}")]
    Unverifiable {
        /// The block asked for.
        cid: Cid,
        /// Why.
        reason: DigestError,
    },
}

impl BlockstoreError {
    /// Whether the store could not be reached (index or object store): retrying later may
    /// work. `false` for wrong stored data, which retrying does not fix.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Index { .. } | Self::Storage { .. })
    }
}

/// Where a block's data sits in a stored CAR file, for readers of the stored bytes
/// ([`Blockstore::stored_location`]).
///
/// Spec: `offset` is that of the section's *data* (after its varint and CID), carv1.md "Data".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLocation {
    /// Key of the stored CAR file (to pass to [`Blockstore::read_stored`]).
    pub car: String,
    /// Absolute byte offset of the block data in that file.
    pub offset: u64,
    /// Length of the block data in bytes.
    pub length: u32,
    /// Size of the whole stored file in bytes (reads must end at or before it).
    pub car_size: u64,
}

/// Read access to blocks by CID.
///
/// Lookups are by the CID's multihash: one block answers CIDs of any codec/version over it.
/// Implementations answer identity CIDs with [`identity_block`].
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
    ///
    /// # Cancel safety
    /// The future may be dropped at any await point (a client went away); implementations
    /// must not leave shared state inconsistent.
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

    /// [`get_many`](Self::get_many) that hands each answer over as soon as it is known:
    /// `each(i, result)` is called exactly once for every `i` in `0..cids.len()`, in any order,
    /// before the future completes (so a server can put a block on the wire while the others
    /// of the batch are still being read). The default calls `get_many` and then `each` in
    /// order; [`get_many`](Self::get_many)'s coalescing applies either way.
    async fn get_each(
        &self,
        cids: &[Cid],
        each: &mut (dyn FnMut(usize, Result<Option<Bytes>, BlockstoreError>) + Send),
    ) {
        for (i, result) in self.get_many(cids).await.into_iter().enumerate() {
            each(i, result);
        }
    }

    /// Where the block's data sits in a stored CAR file that can be read with
    /// [`read_stored`](Self::read_stored), or `None` when it is not stored or this store
    /// has no stored files (the default).
    ///
    /// # Errors
    /// As [`has`](Self::has).
    async fn stored_location(&self, cid: &Cid) -> Result<Option<StoredLocation>, BlockstoreError> {
        let _ = cid;
        Ok(None)
    }

    /// Bytes `range` of the stored CAR file `car` (a [`StoredLocation::car`]), exactly as
    /// stored: nothing is verified (a caller serving blocks from them hashes each one when
    /// [`verifies_reads`](Self::verifies_reads)). The default has no stored files.
    ///
    /// # Errors
    /// [`BlockstoreError::Storage`] when the range cannot be read in full.
    async fn read_stored(&self, car: &str, range: Range<u64>) -> Result<Bytes, BlockstoreError> {
        Err(BlockstoreError::Storage {
            key: car.to_owned(),
            start: range.start,
            end: range.end,
            detail: "this blockstore has no stored files".to_owned(),
        })
    }

    /// Whether [`get`](Self::get) re-hashes the blocks it returns (`read.verify`): a reader of
    /// stored bytes must then hash each block it serves too. Default `true`.
    fn verifies_reads(&self) -> bool {
        true
    }
}
