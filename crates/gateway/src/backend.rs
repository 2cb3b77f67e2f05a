//! The seam between the gateway and whatever stores blocks.

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;

/// Why the backend could not answer. Never means "absent": absence is `Ok(None)`.
///
/// The gateway maps these to HTTP statuses in `error.rs` (path-gateway.md § "Response Status
/// Codes"): [`BackendError::Unavailable`] → 502, [`BackendError::Overloaded`] → 503,
/// [`BackendError::Timeout`] → 504 (all three with `Retry-After`), [`BackendError::Internal`]
/// → 500. The text is logged, never sent to the client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The storage behind the backend (object store, index database) failed or could not be
    /// reached; retrying later may work.
    #[error("storage unavailable while reading {cid}: {reason}")]
    Unavailable {
        /// The block being read.
        cid: Cid,
        /// What went wrong (for logs).
        reason: String,
    },
    /// The backend sheds load (its queues are full); retry later.
    #[error("storage overloaded while reading {cid}")]
    Overloaded {
        /// The block being read.
        cid: Cid,
    },
    /// The storage did not answer within its deadline.
    #[error("storage timed out after {after_secs} s while reading {cid}")]
    Timeout {
        /// The block being read.
        cid: Cid,
        /// The deadline that passed, seconds.
        after_secs: u64,
    },
    /// Anything else (corrupt index, bug): a genuine server error.
    #[error("internal storage error while reading {cid}: {reason}")]
    Internal {
        /// The block being read.
        cid: Cid,
        /// What went wrong (for logs).
        reason: String,
    },
}

/// Read access to blocks, as the trustless gateway needs it. The node crate adapts its
/// `Blockstore` to this trait.
///
/// Blocks are returned as stored; the gateway does not re-hash them (ingest verified them,
/// and the client must verify anyway: trustless-gateway.md § "Block Responses").
#[async_trait]
pub trait GatewayBackend: Send + Sync + 'static {
    /// The bytes of block `cid`, or `Ok(None)` when this backend does not have it.
    ///
    /// # Errors
    /// [`BackendError`] when the store could not tell (never for plain absence).
    ///
    /// # Cancel safety
    /// The future may be dropped at any await point (the client went away); it must not
    /// leave shared state inconsistent.
    async fn get_block(&self, cid: &Cid) -> Result<Option<Bytes>, BackendError>;

    /// The blocks `cids`, one result per CID in the same order: used to prefetch a window of
    /// upcoming blocks (at most `GatewayConfig::prefetch_window` CIDs per call). Backends
    /// that can coalesce reads should override it; the default awaits [`Self::get_block`]
    /// for each CID in turn.
    async fn get_blocks(&self, cids: &[Cid]) -> Vec<Result<Option<Bytes>, BackendError>> {
        let mut out = Vec::with_capacity(cids.len());
        for cid in cids {
            out.push(self.get_block(cid).await);
        }
        out
    }
}

/// Reads a block, serving identity CIDs (multihash 0x00) from their digest without asking
/// the backend (trustless-gateway.md § "Dedicated Probe Paths": `bafkqaaa`).
pub(crate) async fn load_block(
    backend: &dyn GatewayBackend,
    cid: &Cid,
) -> Result<Option<Bytes>, BackendError> {
    if cid.hash().code() == hydrant_unixfs::MULTIHASH_IDENTITY {
        return Ok(Some(Bytes::copy_from_slice(cid.hash().digest())));
    }
    backend.get_block(cid).await
}
