//! Where the IPNI advertisement chain stands: its head and the CARs it advertises.
//!
//! The advertisement and entry blocks themselves are immutable objects in the object store
//! (`ipni/<cid>`); this is only the mutable part, kept in the index database so that every
//! replica sharing a database sees one head (ipni.md, "Advertisements": one chain per provider).
//! A publisher writes the blocks first and then moves the head here with
//! [`IpniStore::advance_ipni`], a compare-and-swap on the head: a crash in between leaves
//! orphan blocks, never a broken chain, and two writers can never both extend one head (a fork).

use async_trait::async_trait;
use cid::Cid;

use crate::IndexError;

/// Most CAR keys [`IpniStore::ipni_cars`] returns per call, whatever `limit` asks for.
pub const MAX_LIST_IPNI_CARS: usize = 1000;

/// The head of the advertisement chain as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpniHead {
    /// The latest advertisement's CID.
    pub head: Cid,
    /// Advertisements in the chain (additions and removals).
    pub ads: u64,
    /// When the head last moved, seconds since the Unix epoch.
    pub updated_at: u64,
}

/// What one [`IpniStore::advance_ipni`] changes, besides the head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpniChanges {
    /// CAR keys now advertised, each with its advertisement's CID.
    pub added: Vec<(String, Cid)>,
    /// CAR keys whose removal was advertised.
    pub removed: Vec<String>,
}

/// Held while this process is the one that extends the chain (see
/// [`IpniStore::try_ipni_writer`]); dropping it lets another writer take over.
pub type IpniWriterLease = Box<dyn Send + Sync>;

/// The mutable state of the IPNI chain: head and advertised CARs. Implemented by both index
/// backends, in the same database as the CAR catalogue.
#[async_trait]
pub trait IpniStore: Send + Sync + 'static {
    /// The head of the chain, `None` before the first advertisement.
    ///
    /// # Errors
    /// [`IndexError::Storage`]; [`IndexError::Corrupt`] when the stored head does not decode.
    async fn ipni_head(&self) -> Result<Option<IpniHead>, IndexError>;

    /// Keys of the CARs the chain advertises (added and not removed since), in byte order,
    /// strictly after `after`, at most `min(limit, MAX_LIST_IPNI_CARS)` of them.
    ///
    /// # Errors
    /// As [`ipni_head`](Self::ipni_head).
    async fn ipni_cars(&self, after: Option<&str>, limit: usize)
    -> Result<Vec<String>, IndexError>;

    /// Moves the head from `expected` (`None`: no head yet) to `next` and records `changes`,
    /// atomically and durably. Returns `false`, changing nothing, when the stored head is not
    /// `expected` (another writer moved it).
    ///
    /// # Errors
    /// [`IndexError::Storage`] when the write fails (nothing changed).
    async fn advance_ipni(
        &self,
        expected: Option<&Cid>,
        next: &IpniHead,
        changes: &IpniChanges,
    ) -> Result<bool, IndexError>;

    /// A value that changes whenever a CAR is committed or deleted (by any replica), cheap to
    /// read, so a publisher only compares its CARs with the chain's when something happened.
    ///
    /// # Errors
    /// [`IndexError::Storage`].
    async fn catalogue_version(&self) -> Result<u64, IndexError>;

    /// Tries to become the one writer of the chain; `None` when another holds it. The
    /// embedded index is held by one process, so it always grants it; PostgreSQL takes a
    /// session-level advisory lock on a connection the lease keeps.
    ///
    /// # Errors
    /// [`IndexError::Storage`] when the database cannot be asked.
    async fn try_ipni_writer(&self) -> Result<Option<IpniWriterLease>, IndexError>;
}
