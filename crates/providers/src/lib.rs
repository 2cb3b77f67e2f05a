//! The provider-record store shared by every DHT head ("server identity") of a Hydrant process.
//!
//! A provider record says "peer `provider` serves the content whose multihash is `key`, at
//! these multiaddrs" (`../shared/specs/kad-dht.md`, "Provider Records"). DHT servers accept
//! them through `ADD_PROVIDER` ("Content Provider Advertisement": key set and at most 80 bytes),
//! keep them for the Provide Validity of 48 h ("Provide Validity") and answer `GET_PROVIDERS`
//! with them ("Content Provider Lookup").
//!
//! All heads of one process share one [`ProviderStore`]; the heads never write to it directly
//! but through a [`ProviderWriter`], a bounded queue drained in batches that *drops* records
//! when the store falls behind. That is the lesson of libp2p's hydra-booster, whose heads
//! shared one PostgreSQL provider store: when it slowed down, unbounded queues of pending
//! writes took the heads down with it. Shedding `ADD_PROVIDER`s is harmless by comparison:
//! providers republish every 22 h and `k` = 20 servers hold each record.
//!
//! Time is in whole **seconds since the Unix epoch** (`u64`) throughout, passed in by the
//! caller as `now` so expiry is testable at the exact boundary: a record is live while
//! `now < expires_at` and expired from `now == expires_at` on. [`unix_now`] reads the clock.
//!
//! Public API:
//! - [`ProviderStore`]: the trait (`put_batch`, `providers`, `list`, `gc`, `count`);
//! - [`ProviderRecord`], [`Cursor`], [`Page`], [`RecordCount`], [`ProviderError`];
//! - limits [`MAX_KEY_LEN`], [`MAX_ADDRS`], [`MAX_ADDR_LEN`], [`MAX_PUT_BATCH`],
//!   [`MAX_PROVIDERS`], [`MAX_PROVIDERS_SCAN`], [`MAX_LIST_PAGE`], [`MAX_LIST_SCAN`],
//!   [`MAX_GC_BATCH`]; TTLs [`PROVIDER_RECORD_TTL`], [`PROVIDER_ADDRS_TTL`];
//! - backends [`FjallProviderStore`] (embedded, on disk) and [`MemoryProviderStore`] (bounded
//!   by record count, evicts the soonest-expiring);
//! - [`ProviderWriter`] (the bounded write path) and [`spawn_gc`] (periodic expiry);
//! - [`conformance`]: the contract suite every backend passes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
pub use libp2p::{Multiaddr, PeerId};

pub mod conformance;
#[cfg(feature = "fjall")]
mod fjall_store;
mod memory_store;
mod writer;

#[cfg(feature = "fjall")]
pub use fjall_store::{FjallProviderStore, MAX_OPEN_FILES as FJALL_MAX_OPEN_FILES};
pub use memory_store::MemoryProviderStore;
pub use writer::{
    GcHandle, GcStats, MAX_GC_ROUNDS_PER_TICK, ProviderWriter, WriterConfig, WriterStats, spawn_gc,
};

/// Provide Validity: a provider record is valid for 48 h after the `ADD_PROVIDER` that stored
/// it (`../shared/specs/kad-dht.md`, "Provide Validity": "DHT Servers MUST implement a Provide
/// Validity of `48h`, and discard the record after expiration").
pub const PROVIDER_RECORD_TTL: Duration = Duration::from_secs(48 * 3600);

/// Provider Addresses TTL: servers SHOULD serve a provider's multiaddrs for 24 h after its
/// `ADD_PROVIDER` (`../shared/specs/kad-dht.md`, "Provider Addresses TTL"). The store keeps the
/// addrs for the record's whole life; the serving layer checks
/// [`ProviderRecord::addrs_live`] before sending them.
pub const PROVIDER_ADDRS_TTL: Duration = Duration::from_secs(24 * 3600);

/// Largest provider-record key in bytes: servers MUST refuse an `ADD_PROVIDER` whose key is
/// unset or longer (`../shared/specs/kad-dht.md`, "Content Provider Advertisement", check 1).
pub const MAX_KEY_LEN: usize = 80;

/// Most multiaddrs kept per record: a record with more keeps its first `MAX_ADDRS`.
pub const MAX_ADDRS: usize = 32;

/// Largest multiaddr kept, in bytes (binary form); longer ones are dropped from the record.
/// Real addresses are well under 100 bytes (`/ip6/.../tcp/.../p2p/...` is about 60).
pub const MAX_ADDR_LEN: usize = 256;

/// Most records one [`ProviderStore::put_batch`] call accepts; larger calls are refused with
/// [`ProviderError::BatchTooLarge`] (bounds the memory and transaction size of one write).
pub const MAX_PUT_BATCH: usize = 10_000;

/// Most records [`ProviderStore::providers`] returns, whatever `limit` asks for.
pub const MAX_PROVIDERS: usize = 1000;

/// Most stored records [`ProviderStore::providers`] examines for one key (live or expired).
/// Only a key with this many expired records not yet collected by [`ProviderStore::gc`] can
/// hide live records past them.
pub const MAX_PROVIDERS_SCAN: usize = 10_000;

/// Most records one [`ProviderStore::list`] page returns, whatever `limit` asks for.
pub const MAX_LIST_PAGE: usize = 1000;

/// Most stored records one [`ProviderStore::list`] call examines (expired ones are skipped but
/// counted): a page may come back short, or even empty, with [`Page::next`] still set.
pub const MAX_LIST_SCAN: usize = 10_000;

/// Most records one [`ProviderStore::gc`] call removes, whatever `max` asks for.
pub const MAX_GC_BATCH: usize = 10_000;

/// One provider record: `provider` serves the content whose multihash is `key`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProviderRecord {
    /// The key the record is about: the multihash bytes of the content's CID (the `key` of
    /// `ADD_PROVIDER`/`GET_PROVIDERS`). 1 to [`MAX_KEY_LEN`] bytes; any bytes are stored (the
    /// DHT does not require a well-formed multihash).
    pub key: Vec<u8>,
    /// Peer ID of the peer providing the content.
    pub provider: PeerId,
    /// The provider's multiaddrs as announced; at most [`MAX_ADDRS`] of at most
    /// [`MAX_ADDR_LEN`] bytes each are kept (see [`normalized_addrs`]).
    pub addrs: Vec<Multiaddr>,
    /// When the record expires, in seconds since the Unix epoch: live while
    /// `now < expires_at`, never returned from `now >= expires_at`.
    pub expires_at: u64,
}

impl ProviderRecord {
    /// A record received at `received_at` (seconds since the Unix epoch), valid for
    /// [`PROVIDER_RECORD_TTL`]; `addrs` are normalized with [`normalized_addrs`].
    ///
    /// # Errors
    /// [`ProviderError::InvalidKey`] when `key` is empty or longer than [`MAX_KEY_LEN`] bytes.
    pub fn new(
        key: Vec<u8>,
        provider: PeerId,
        addrs: Vec<Multiaddr>,
        received_at: u64,
    ) -> Result<Self, ProviderError> {
        check_key(&key)?;
        Ok(Self {
            key,
            provider,
            addrs: normalized_addrs(addrs),
            expires_at: received_at.saturating_add(PROVIDER_RECORD_TTL.as_secs()),
        })
    }

    /// Whether the record is live at `now` (seconds since the Unix epoch): `now < expires_at`.
    pub fn is_live(&self, now: u64) -> bool {
        now < self.expires_at
    }

    /// Whether the record's multiaddrs may still be served at `now` (seconds since the Unix
    /// epoch): within [`PROVIDER_ADDRS_TTL`] of the `ADD_PROVIDER`, taken as
    /// `expires_at - PROVIDER_RECORD_TTL` (`../shared/specs/kad-dht.md`, "Provider Addresses
    /// TTL").
    pub fn addrs_live(&self, now: u64) -> bool {
        let received = self
            .expires_at
            .saturating_sub(PROVIDER_RECORD_TTL.as_secs());
        now < received.saturating_add(PROVIDER_ADDRS_TTL.as_secs()) && self.is_live(now)
    }

    /// Where this record sits in [`ProviderStore::list`] paging.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            key: self.key.clone(),
            provider: self.provider,
        }
    }
}

/// `addrs` as stored: those longer than [`MAX_ADDR_LEN`] bytes dropped, then the first
/// [`MAX_ADDRS`] kept (order preserved). Every backend stores exactly this.
pub fn normalized_addrs(addrs: Vec<Multiaddr>) -> Vec<Multiaddr> {
    addrs
        .into_iter()
        .filter(|addr| addr.len() <= MAX_ADDR_LEN)
        .take(MAX_ADDRS)
        .collect()
}

/// Checks a provider-record key: set (non-empty) and at most [`MAX_KEY_LEN`] bytes.
///
/// # Errors
/// [`ProviderError::InvalidKey`] with the key's length in bytes.
pub fn check_key(key: &[u8]) -> Result<(), ProviderError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(ProviderError::InvalidKey { len: key.len() });
    }
    Ok(())
}

/// The current time in seconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    unix_seconds(SystemTime::now())
}

/// `time` in whole seconds since the Unix epoch (0 before 1970).
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A position in [`ProviderStore::list`] paging: the (key, provider) of the last record a page
/// examined. The next page starts strictly after it, even if that record is gone by then.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// Key of the last record examined.
    pub key: Vec<u8>,
    /// Provider of the last record examined.
    pub provider: PeerId,
}

/// One page of [`ProviderStore::list`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// Live records, in the backend's listing order.
    pub records: Vec<ProviderRecord>,
    /// Where the next page starts; `None` when the listing is complete. A page may be short
    /// or empty and still have a `next` (expired records were skipped).
    pub next: Option<Cursor>,
}

/// What [`ProviderStore::count`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordCount {
    /// Stored records, including expired ones that [`ProviderStore::gc`] has not removed yet.
    pub records: u64,
    /// Whether `records` is exact (true for [`FjallProviderStore`] and
    /// [`MemoryProviderStore`]; a database backend may estimate).
    pub exact: bool,
}

/// Errors of provider-store operations. An error means "could not tell", never "absent".
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The key is empty or longer than [`MAX_KEY_LEN`] bytes (carries its length in bytes).
    #[error("provider record key of {len} bytes (must be 1 to {MAX_KEY_LEN})")]
    InvalidKey {
        /// Length of the refused key in bytes.
        len: usize,
    },
    /// A `put_batch` of more than [`MAX_PUT_BATCH`] records.
    #[error("batch of {len} provider records (at most {MAX_PUT_BATCH})")]
    BatchTooLarge {
        /// Number of records in the refused batch.
        len: usize,
    },
    /// The storage engine failed.
    #[error("provider store storage error: {0}")]
    Storage(String),
    /// A stored value could not be decoded (corruption or a newer format).
    #[error("provider store value for {what} is corrupt: {detail}")]
    Corrupt {
        /// What was being read (a key description).
        what: String,
        /// What was wrong with it.
        detail: String,
    },
}

/// Checks a whole batch before any of it is written.
///
/// # Errors
/// [`ProviderError::BatchTooLarge`] or the first [`ProviderError::InvalidKey`].
pub(crate) fn check_batch(records: &[ProviderRecord]) -> Result<(), ProviderError> {
    if records.len() > MAX_PUT_BATCH {
        return Err(ProviderError::BatchTooLarge { len: records.len() });
    }
    records.iter().try_for_each(|r| check_key(&r.key))
}

/// Storage of provider records, shared by all DHT heads of a process.
///
/// A record is identified by `(key, provider)`: one provider appears at most once per key.
/// Backends are expected to be reached concurrently from many tasks; every read is bounded
/// (see the `MAX_*` constants) and expiry never needs a scan of live records (backends index
/// records by `expires_at`).
///
/// The shape suits a database backend as well as the embedded ones: `put_batch` is one
/// multi-row upsert (`INSERT ... ON CONFLICT (key, provider) DO UPDATE`), `providers` and
/// `list` are bounded range reads on the `(key, provider)` primary key, `gc` is a bounded
/// `DELETE` of the oldest rows through an index on `expires_at`, and `count` may be an
/// estimate. Every backend must pass [`conformance::run_all`].
#[async_trait]
pub trait ProviderStore: Send + Sync + 'static {
    /// Upserts `records`: a record whose `(key, provider)` is stored replaces it entirely
    /// (addrs and `expires_at`, even an earlier one); within one batch the last record of a
    /// `(key, provider)` wins. Addrs are stored as [`normalized_addrs`] makes them. Records
    /// already expired are accepted (and never returned). Writes need not be durable at once
    /// (provider records are soft state, republished every 22 h).
    ///
    /// # Errors
    /// [`ProviderError::BatchTooLarge`] for more than [`MAX_PUT_BATCH`] records,
    /// [`ProviderError::InvalidKey`] when any key is empty or over [`MAX_KEY_LEN`] bytes
    /// (nothing of the batch is written in both cases); [`ProviderError::Storage`] when the
    /// write fails (any part of the batch may have been written).
    async fn put_batch(&self, records: &[ProviderRecord]) -> Result<(), ProviderError>;

    /// Live records (`now < expires_at`, `now` in seconds since the Unix epoch) of `key`, at
    /// most `min(limit, MAX_PROVIDERS)` of them, in the backend's order; empty when none.
    /// At most [`MAX_PROVIDERS_SCAN`] stored records of the key are examined.
    ///
    /// # Errors
    /// [`ProviderError::InvalidKey`] for a key that could never be stored;
    /// [`ProviderError::Storage`]/[`ProviderError::Corrupt`] when the backend cannot answer.
    async fn providers(
        &self,
        key: &[u8],
        now: u64,
        limit: usize,
    ) -> Result<Vec<ProviderRecord>, ProviderError>;

    /// One page of all live records (at `now`, seconds since the Unix epoch), for the admin
    /// API: records strictly after `after` in the backend's total order over
    /// `(key, provider)`, at most `limit` clamped to `1..=MAX_LIST_PAGE`, examining at most
    /// [`MAX_LIST_SCAN`] stored records. Following [`Page::next`] until it is `None` visits
    /// every record live throughout the listing exactly once.
    ///
    /// # Errors
    /// [`ProviderError::Storage`]/[`ProviderError::Corrupt`] when the backend cannot answer.
    async fn list(
        &self,
        after: Option<&Cursor>,
        now: u64,
        limit: usize,
    ) -> Result<Page, ProviderError>;

    /// Removes up to `min(max, MAX_GC_BATCH)` expired records (`expires_at <= now`, seconds
    /// since the Unix epoch), soonest-expiring first, reading only expired index entries;
    /// returns how many records were removed. Call again while it returns a full batch.
    ///
    /// # Errors
    /// [`ProviderError::Storage`] when the backend fails (some records may have been removed).
    async fn gc(&self, now: u64, max: usize) -> Result<usize, ProviderError>;

    /// Number of stored records, expired ones not yet collected included; see
    /// [`RecordCount::exact`].
    ///
    /// # Errors
    /// [`ProviderError::Storage`] when the backend cannot answer.
    async fn count(&self) -> Result<RecordCount, ProviderError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{test_addr, test_peer};
    use proptest::prelude::*;

    const TTL: u64 = PROVIDER_RECORD_TTL.as_secs();

    #[test]
    fn new_record_is_live_for_48_hours_and_addrs_for_24() {
        let received = 1_700_000_000;
        let r = ProviderRecord::new(vec![1, 2, 3], test_peer(1), vec![test_addr(1, 1)], received)
            .expect("valid key");
        assert_eq!(r.expires_at, received + 48 * 3600);
        assert!(r.is_live(received + TTL - 1));
        assert!(!r.is_live(received + TTL), "live at its expiry");
        let addrs_until = received + PROVIDER_ADDRS_TTL.as_secs();
        assert!(r.addrs_live(received) && r.addrs_live(addrs_until - 1));
        assert!(!r.addrs_live(addrs_until), "addrs served past 24 h");
    }

    #[test]
    fn new_record_normalizes_addrs() {
        let addrs: Vec<_> = (0..50).map(|p| test_addr(2, p)).collect();
        let r = ProviderRecord::new(vec![1], test_peer(1), addrs.clone(), 0).expect("valid");
        assert_eq!(r.addrs, addrs[..MAX_ADDRS]);
    }

    proptest! {
        #[test]
        fn keys_are_accepted_iff_1_to_80_bytes(len in 0usize..200) {
            let ok = ProviderRecord::new(vec![0; len], test_peer(1), vec![], 0).is_ok();
            prop_assert_eq!(ok, (1..=MAX_KEY_LEN).contains(&len));
            prop_assert_eq!(check_key(&vec![0; len]).is_ok(), ok);
        }
    }
}
