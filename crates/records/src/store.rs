//! A bounded in-memory store of validated DHT value records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::{Choice, RecordError, ValidRecord, select, validate};

/// Bounds of a [`RecordStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Most records held at once.
    pub max_records: usize,
    /// Most bytes held at once, counting each record's key plus value.
    pub max_bytes: usize,
    /// Longest a record is kept after its last accepted PUT, however late its EOL: DHT peers
    /// keep records for up to 48 hours (../shared/specs/ipns-record.md, "Validity"), and `/pk/`
    /// records have no EOL of their own. Publishers republish well within this window.
    pub max_age: Duration,
}

impl Default for StoreLimits {
    /// 16 384 records, 32 MiB, 48 hours.
    fn default() -> Self {
        Self {
            max_records: 16 * 1024,
            max_bytes: 32 * 1024 * 1024,
            max_age: Duration::from_secs(48 * 60 * 60),
        }
    }
}

/// What [`RecordStore::put`] did with a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// The record is now the one held for its key: it was new, better than the one held
    /// (per [`select`]), or identical to it (which renews its stay to `now + max_age`).
    Stored,
    /// The record held for the key is better (per [`select`]) and was kept.
    KeptExisting,
}

/// A bounded, shareable in-memory store of validated `/ipns/` and `/pk/` records.
///
/// Cloning is cheap and clones share the same records (an `Arc` around a `std::sync::Mutex`);
/// signature verification runs before the lock is taken.
///
/// Bounds: at most [`StoreLimits::max_records`] records and [`StoreLimits::max_bytes`] bytes.
/// When a new key (or a larger replacement) would exceed either, expired records are purged
/// first; if that is not enough the PUT is refused with [`RecordError::StoreFull`]. Held records
/// are never evicted for newcomers: a flood of fresh names (cheap to make) cannot push out
/// records the network already relies on, updates to held keys still succeed, and a refused
/// PUT is harmless because each record is replicated on the 20 closest peers.
#[derive(Clone, Debug, Default)]
pub struct RecordStore {
    limits: StoreLimits,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Vec<u8>, Entry>,
    bytes: usize,
}

#[derive(Debug)]
struct Entry {
    record: ValidRecord,
    /// The earlier of the record's EOL and `stored_at + max_age`.
    expires_at: SystemTime,
}

impl Entry {
    fn size(&self, key: &[u8]) -> usize {
        key.len() + self.record.raw().len()
    }
}

impl Inner {
    fn remove(&mut self, key: &[u8]) {
        if let Some(entry) = self.entries.remove(key) {
            self.bytes -= entry.size(key);
        }
    }

    fn purge_expired(&mut self, now: SystemTime) -> usize {
        let before = self.entries.len();
        let mut freed = 0;
        self.entries.retain(|key, entry| {
            let keep = entry.expires_at > now;
            if !keep {
                freed += entry.size(key);
            }
            keep
        });
        self.bytes -= freed;
        before - self.entries.len()
    }

    fn fits(&self, key: &[u8], size: usize, limits: &StoreLimits) -> bool {
        let (count, bytes) = match self.entries.get(key) {
            Some(old) => (self.entries.len(), self.bytes - old.size(key)),
            None => (self.entries.len() + 1, self.bytes),
        };
        count <= limits.max_records && bytes.saturating_add(size) <= limits.max_bytes
    }
}

impl RecordStore {
    /// An empty store with the given bounds.
    pub fn new(limits: StoreLimits) -> Self {
        Self {
            limits,
            inner: Arc::default(),
        }
    }

    /// The bounds this store was made with.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // No code path panics while holding the lock; if one ever did, the map is still
        // consistent enough to serve, so poisoning is ignored rather than propagated.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn expiry(&self, record: &ValidRecord, now: SystemTime) -> SystemTime {
        let aged = now.checked_add(self.limits.max_age);
        match (record.eol(), aged) {
            (Some(eol), Some(aged)) => eol.min(aged),
            (Some(eol), None) => eol,
            (None, Some(aged)) => aged,
            (None, None) => now,
        }
    }

    /// Validates `value` for `key` as of `now` (see [`validate`]) and stores it unless the record
    /// already held for `key` is better (see [`select`]). A PUT_VALUE handler's whole job.
    ///
    /// # Errors
    /// Any validation error of [`validate`]; [`RecordError::StoreFull`] when the record would
    /// exceed the store's bounds even after purging expired records.
    pub fn put(
        &self,
        key: &[u8],
        value: &[u8],
        now: SystemTime,
    ) -> Result<PutOutcome, RecordError> {
        self.put_valid(validate(key, value, now)?, now)
    }

    /// Stores a record that already passed [`validate`] (or [`crate::validate_ipns`]) under
    /// its own [`ValidRecord::key`], unless the record held for that key is better (see
    /// [`select`]). For callers that validated first to answer precisely, e.g. the Delegated
    /// Routing `PUT /routing/v1/ipns/{name}`; the signature is not verified twice.
    ///
    /// # Errors
    /// [`RecordError::StoreFull`] when the record would exceed the store's bounds even after
    /// purging expired records.
    pub fn put_valid(
        &self,
        record: ValidRecord,
        now: SystemTime,
    ) -> Result<PutOutcome, RecordError> {
        let key = record.key();
        let size = key.len() + record.raw().len();
        let expires_at = self.expiry(&record, now);

        let mut inner = self.lock();
        if let Some(held) = inner.entries.get_mut(&key) {
            if held.expires_at <= now {
                inner.remove(&key);
            } else if held.record.raw() == record.raw() {
                held.expires_at = held.expires_at.max(expires_at);
                return Ok(PutOutcome::Stored);
            } else if select(&held.record, &record)? == Choice::First {
                return Ok(PutOutcome::KeptExisting);
            }
        }
        if !inner.fits(&key, size, &self.limits) {
            inner.purge_expired(now);
            if !inner.fits(&key, size, &self.limits) {
                return Err(RecordError::StoreFull {
                    records: inner.entries.len(),
                    bytes: inner.bytes,
                });
            }
        }
        inner.remove(&key);
        inner.bytes += size;
        inner.entries.insert(key, Entry { record, expires_at });
        Ok(PutOutcome::Stored)
    }

    /// The value held for `key` (bytes, exactly as PUT), or `None` when there is none or it
    /// has expired as of `now` (an expired record is dropped on the spot). A GET_VALUE handler's
    /// record lookup.
    pub fn get(&self, key: &[u8], now: SystemTime) -> Option<Vec<u8>> {
        self.get_record(key, now)
            .map(|record| record.raw().to_vec())
    }

    /// Like [`RecordStore::get`], but returns the decoded record.
    pub fn get_record(&self, key: &[u8], now: SystemTime) -> Option<ValidRecord> {
        let mut inner = self.lock();
        let entry = inner.entries.get(key)?;
        if entry.expires_at > now {
            return Some(entry.record.clone());
        }
        inner.remove(key);
        None
    }

    /// Drops every record expired as of `now`; returns how many were dropped. Call it
    /// periodically to return memory early; `put` also calls it when the store is full.
    pub fn purge_expired(&self, now: SystemTime) -> usize {
        self.lock().purge_expired(now)
    }

    /// Records held, expired or not yet purged included.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held: the sum of each record's key and value lengths.
    pub fn total_bytes(&self) -> usize {
        self.lock().bytes
    }
}
