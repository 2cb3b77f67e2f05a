//! The one error type of this crate.

use cid::Cid;

/// Why a block could not be decoded, walked or resolved.
///
/// Every variant names the CID of the block at fault.
#[derive(Debug, thiserror::Error)]
pub enum DagError {
    /// The block is not valid DAG-PB (unixfs.md § "`dag-pb` Node").
    #[error("block {cid} is not valid dag-pb: {reason}")]
    InvalidDagPb {
        /// The block.
        cid: Cid,
        /// What was wrong.
        reason: String,
    },
    /// The DAG-PB `Data` field is not a valid UnixFS `Data` message.
    #[error("block {cid} has invalid UnixFS data: {reason}")]
    InvalidUnixFs {
        /// The block.
        cid: Cid,
        /// What was wrong.
        reason: String,
    },
    /// The block is not valid DAG-CBOR.
    #[error("block {cid} is not valid dag-cbor: {reason}")]
    InvalidDagCbor {
        /// The block.
        cid: Cid,
        /// What the decoder said.
        reason: String,
    },
    /// The block is not valid DAG-JSON.
    #[error("block {cid} is not valid dag-json: {reason}")]
    InvalidDagJson {
        /// The block.
        cid: Cid,
        /// What the decoder said.
        reason: String,
    },
    /// The CID's codec is not one this crate can find links in.
    #[error("block {cid} has codec 0x{codec:x}, whose links this crate cannot read")]
    UnsupportedCodec {
        /// The block.
        cid: Cid,
        /// Its multicodec.
        codec: u64,
    },
    /// A UnixFS file node whose `blocksizes` and `Links` differ in length (unixfs.md § "The
    /// sister-lists": "MUST reject the node").
    #[error("file node {cid} has {links} links but {blocksizes} blocksizes")]
    BlocksizesMismatch {
        /// The block.
        cid: Cid,
        /// Number of links.
        links: usize,
        /// Number of blocksizes.
        blocksizes: usize,
    },
    /// [`crate::DagWalker::on_block`] was given a block other than the one it asked for.
    #[error("walker expected block {expected:?}, was given {got}")]
    UnexpectedBlock {
        /// What [`crate::DagWalker::next_wanted`] returned (None: nothing was wanted); boxed
        /// to keep the error small.
        expected: Option<Box<Cid>>,
        /// What the caller passed.
        got: Cid,
    },
    /// The walker's bound on pending CIDs or on the seen set was reached.
    #[error("DAG walk under {cid} exceeds the limit of {limit} {what}")]
    LimitExceeded {
        /// The block whose links would have crossed the limit.
        cid: Cid,
        /// Which limit ("pending links" or "distinct blocks").
        what: &'static str,
        /// The limit.
        limit: usize,
    },
}

impl DagError {
    /// The block whose bytes could not be decoded, for the errors that are about a block's
    /// content (invalid DAG-PB, UnixFS, DAG-CBOR or DAG-JSON, mismatched blocksizes); `None`
    /// for the walker's own errors (unsupported codec, unexpected block, limits).
    pub fn undecodable_block(&self) -> Option<&Cid> {
        match self {
            Self::InvalidDagPb { cid, .. }
            | Self::InvalidUnixFs { cid, .. }
            | Self::InvalidDagCbor { cid, .. }
            | Self::InvalidDagJson { cid, .. }
            | Self::BlocksizesMismatch { cid, .. } => Some(cid),
            Self::UnsupportedCodec { .. }
            | Self::UnexpectedBlock { .. }
            | Self::LimitExceeded { .. } => None,
        }
    }
}
