//! Pins: the root CIDs whose DAGs Hydrant keeps (issue 16, item 4).
//!
//! A pin is Kubo's *recursive* pin: the root and every block reachable from it are kept.
//! Pins live in the index database (the embedded fjall index, or PostgreSQL, where every
//! replica sees the same pins). This module only records them; checking that a DAG is complete
//! before pinning it is the node's job, and deleting unpinned CARs is garbage collection's
//! (a later issue).

use async_trait::async_trait;
use cid::Cid;

use crate::IndexError;

/// Most pins [`PinStore::list_pins`] returns per call, whatever `limit` asks for.
pub const MAX_LIST_PINS: usize = 1000;

/// Longest pin name accepted, in bytes of UTF-8.
pub const MAX_PIN_NAME_BYTES: usize = 255;

/// One pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The pinned root, as given (a CIDv0 stays a CIDv0).
    pub cid: Cid,
    /// The name given when pinning (Kubo's `pin add --name`), empty when none; at most
    /// [`MAX_PIN_NAME_BYTES`].
    pub name: String,
    /// When the CID was first pinned, seconds since the Unix epoch.
    pub created_at: u64,
}

/// Where pins are kept: one per CID (its binary form is the key).
#[async_trait]
pub trait PinStore: Send + Sync + 'static {
    /// Pins `pin.cid`, durably once it returns. Pinning a CID that is already pinned changes
    /// only its name (the first `created_at` stays). Returns whether the pin is new.
    ///
    /// # Errors
    /// [`IndexError::Storage`] when the write fails (nothing changed).
    async fn add_pin(&self, pin: &Pin) -> Result<bool, IndexError>;

    /// Unpins `cid`, durably once it returns; returns whether it was pinned.
    ///
    /// # Errors
    /// [`IndexError::Storage`] when the write fails (nothing changed).
    async fn remove_pin(&self, cid: &Cid) -> Result<bool, IndexError>;

    /// The pin of `cid`, if it is pinned.
    ///
    /// # Errors
    /// [`IndexError::Storage`]; [`IndexError::Corrupt`] when the stored pin does not decode.
    async fn pin(&self, cid: &Cid) -> Result<Option<Pin>, IndexError>;

    /// Pins in byte order of their CID's binary form, starting strictly after `after`, at most
    /// `min(limit, MAX_LIST_PINS)` of them. Page by passing the last CID returned as `after`.
    ///
    /// # Errors
    /// As [`pin`](Self::pin).
    async fn list_pins(&self, after: Option<&Cid>, limit: usize) -> Result<Vec<Pin>, IndexError>;
}
