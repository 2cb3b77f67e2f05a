//! [`FjallProviderStore`]: the embedded [`ProviderStore`] backend on the fjall LSM-tree.
//!
//! Layout (three keyspaces of one fjall database in its own directory; integers big-endian so
//! keys sort by number). A record's *id* is `key length (u8) ++ key ++ provider peer ID bytes`:
//! the length prefix makes a prefix scan on `length ++ key` yield exactly that key's records
//! (keys are arbitrary bytes, not necessarily self-delimiting multihashes).
//!
//! | keyspace | key | value |
//! | --- | --- | --- |
//! | `records` | id | version (u8 = 1) ++ expires_at (u64) ++ addr count (u8) ++ (length (u16) ++ multiaddr bytes)* |
//! | `expiry` | expires_at (u64) ++ id | empty |
//! | `meta` | `count` | number of records (u64) |
//!
//! `gc` reads `expiry` from its start up to `now`: only expired entries, never a live record.
//! Writes (`put_batch`, `gc`) are serialized by a mutex, read the previous `expires_at` of each
//! id they touch, and commit the `records` row, its `expiry` entry (moving it when an upsert
//! changes the expiry) and the new count in one atomic fjall batch: the three keyspaces agree
//! after a crash. Readers take no lock. Batches are not fsynced (provider records are soft
//! state, republished by providers every 22 h): a power loss may lose the last writes, never
//! leave them half-applied.
//!
//! Why its own directory rather than the block index's database: `hydrant_index::FjallIndex`
//! does not expose its fjall `Database`, and provider records have nothing to do with blocks
//! (no cross-keyspace atomicity is needed). Use e.g. `<repo>/providers`.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use libp2p::{Multiaddr, PeerId};

use crate::{
    Cursor, MAX_ADDRS, MAX_GC_BATCH, MAX_KEY_LEN, MAX_LIST_PAGE, MAX_LIST_SCAN, MAX_PROVIDERS,
    MAX_PROVIDERS_SCAN, Page, ProviderError, ProviderRecord, ProviderStore, RecordCount,
    check_batch, check_key, normalized_addrs,
};

const KS_RECORDS: &str = "records";
const KS_EXPIRY: &str = "expiry";
const KS_META: &str = "meta";
const META_COUNT: &[u8] = b"count";

/// Format version of a `records` value.
const VALUE_VERSION: u8 = 1;
/// Bytes of an `expires_at` in keys and values.
const EXPIRY_LEN: usize = 8;

/// The embedded provider-record store (see the module docs for the on-disk layout).
///
/// Cheap to clone (an `Arc`). Memory: fjall's caches only; the record count is kept exactly
/// (persisted with every write). Listing order: by key length, then key bytes, then provider
/// peer ID bytes. Blocking fjall calls of the [`ProviderStore`] methods run under
/// [`tokio::task::spawn_blocking`]; [`FjallProviderStore::open`] itself blocks.
#[derive(Clone)]
pub struct FjallProviderStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FjallProviderStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallProviderStore")
            .field("records", &self.inner.count.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

struct Inner {
    db: Database,
    records: Keyspace,
    expiry: Keyspace,
    meta: Keyspace,
    /// Mirror of `meta/count`, updated after each committed write.
    count: AtomicU64,
    /// Serializes read-modify-write of `put_batch` and `gc`.
    write: Mutex<()>,
}

/// Most files the database keeps open at once (an LRU of table files; fjall's default is 900
/// per database). Counted in the node's file-descriptor budget.
pub const MAX_OPEN_FILES: usize = 128;

impl FjallProviderStore {
    /// Opens (or creates) the store in the directory `dir`. Blocks the calling thread (disk
    /// I/O, journal replay).
    ///
    /// # Errors
    /// [`ProviderError::Storage`] when fjall cannot open the directory (e.g. another process
    /// holds it); [`ProviderError::Corrupt`] when the stored record count does not decode.
    pub fn open(dir: &Path) -> Result<Self, ProviderError> {
        let db = Database::builder(dir)
            .max_cached_files(Some(MAX_OPEN_FILES))
            .open()
            .map_err(|e| storage(&format!("opening {}", dir.display()), e))?;
        let keyspace = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(|e| storage(&format!("opening keyspace {name}"), e))
        };
        let records = keyspace(KS_RECORDS)?;
        let expiry = keyspace(KS_EXPIRY)?;
        let meta = keyspace(KS_META)?;
        let count = match meta
            .get(META_COUNT)
            .map_err(|e| storage("reading record count", e))?
        {
            Some(value) => decode_u64("record count", &value)?,
            None => 0,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                records,
                expiry,
                meta,
                count: AtomicU64::new(count),
                write: Mutex::new(()),
            }),
        })
    }

    async fn blocking<T, F>(&self, op: &'static str, f: F) -> Result<T, ProviderError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, ProviderError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| storage(op, e))?
    }
}

#[async_trait]
impl ProviderStore for FjallProviderStore {
    async fn put_batch(&self, records: &[ProviderRecord]) -> Result<(), ProviderError> {
        check_batch(records)?;
        if records.is_empty() {
            return Ok(());
        }
        let records = records.to_vec();
        self.blocking("put_batch", move |inner| inner.put_batch(records))
            .await
    }

    async fn providers(
        &self,
        key: &[u8],
        now: u64,
        limit: usize,
    ) -> Result<Vec<ProviderRecord>, ProviderError> {
        check_key(key)?;
        let limit = limit.min(MAX_PROVIDERS);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let key = key.to_vec();
        self.blocking("providers", move |inner| inner.providers(&key, now, limit))
            .await
    }

    async fn list(
        &self,
        after: Option<&Cursor>,
        now: u64,
        limit: usize,
    ) -> Result<Page, ProviderError> {
        let limit = limit.clamp(1, MAX_LIST_PAGE);
        let start = after.map(|c| record_id(&c.key, &c.provider));
        self.blocking("list", move |inner| inner.list(start, now, limit))
            .await
    }

    async fn gc(&self, now: u64, max: usize) -> Result<usize, ProviderError> {
        let max = max.min(MAX_GC_BATCH);
        if max == 0 {
            return Ok(0);
        }
        self.blocking("gc", move |inner| inner.gc(now, max)).await
    }

    async fn count(&self) -> Result<RecordCount, ProviderError> {
        Ok(RecordCount {
            records: self.inner.count.load(Ordering::Relaxed),
            exact: true,
        })
    }
}

impl Inner {
    fn put_batch(&self, records: Vec<ProviderRecord>) -> Result<(), ProviderError> {
        // One entry per id, the last record of the batch winning: a fjall batch must not hold
        // two writes of one key.
        let mut latest: HashMap<Vec<u8>, ProviderRecord> = HashMap::with_capacity(records.len());
        for record in records {
            latest.insert(record_id(&record.key, &record.provider), record);
        }
        let _write = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let mut count = self.count.load(Ordering::Relaxed);
        let mut batch = self.db.batch();
        for (id, record) in latest {
            let old = self
                .records
                .get(&id)
                .map_err(|e| storage("reading a provider record", e))?;
            match old {
                Some(value) => {
                    let (old_expiry, _) = decode_value(&id, &value)?;
                    if old_expiry != record.expires_at {
                        batch.remove(&self.expiry, expiry_key(old_expiry, &id));
                    }
                }
                None => count += 1,
            }
            batch.insert(&self.expiry, expiry_key(record.expires_at, &id), []);
            batch.insert(
                &self.records,
                id,
                encode_value(record.expires_at, &normalized_addrs(record.addrs)),
            );
        }
        batch.insert(&self.meta, META_COUNT, count.to_be_bytes());
        batch
            .commit()
            .map_err(|e| storage("writing provider records", e))?;
        self.count.store(count, Ordering::Relaxed);
        Ok(())
    }

    fn providers(
        &self,
        key: &[u8],
        now: u64,
        limit: usize,
    ) -> Result<Vec<ProviderRecord>, ProviderError> {
        let prefix = key_prefix(key);
        let mut out = Vec::new();
        for guard in self.records.prefix(&prefix).take(MAX_PROVIDERS_SCAN) {
            let (id, value) = guard
                .into_inner()
                .map_err(|e| storage("scanning provider records", e))?;
            let record = decode_record(&id, &value)?;
            if record.is_live(now) {
                out.push(record);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn list(&self, after: Option<Vec<u8>>, now: u64, limit: usize) -> Result<Page, ProviderError> {
        let start = match after {
            Some(id) => Bound::Excluded(id),
            None => Bound::Unbounded,
        };
        let mut iter = self.records.range::<Vec<u8>, _>((start, Bound::Unbounded));
        let mut page = Page::default();
        let mut last = None;
        for _ in 0..MAX_LIST_SCAN {
            let Some(guard) = iter.next() else {
                return Ok(page);
            };
            let (id, value) = guard
                .into_inner()
                .map_err(|e| storage("scanning provider records", e))?;
            let record = decode_record(&id, &value)?;
            last = Some(record.cursor());
            if record.is_live(now) {
                page.records.push(record);
                if page.records.len() >= limit {
                    break;
                }
            }
        }
        if iter.next().is_some() {
            page.next = last;
        }
        Ok(page)
    }

    fn gc(&self, now: u64, max: usize) -> Result<usize, ProviderError> {
        let _write = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        // Entries with expires_at <= now, i.e. keys < (now + 1) big-endian.
        let end = match now.checked_add(1) {
            Some(end) => Bound::Excluded(end.to_be_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        let mut entries = Vec::new();
        for guard in self
            .expiry
            .range::<Vec<u8>, _>((Bound::Unbounded, end))
            .take(max)
        {
            let key = guard.key().map_err(|e| storage("scanning expiry", e))?;
            entries.push(key);
        }
        let mut count = self.count.load(Ordering::Relaxed);
        let mut removed = 0;
        let mut batch = self.db.batch();
        for entry in entries {
            let (expires_at, id) = split_expiry_key(&entry)?;
            let current = self
                .records
                .get(id)
                .map_err(|e| storage("reading a provider record", e))?;
            // The record is removed only if this entry is its current one; an entry left by an
            // upsert that moved the expiry is only dropped (defensive: writes move it
            // atomically).
            if let Some(value) = current
                && decode_value(id, &value)?.0 == expires_at
            {
                batch.remove(&self.records, id.to_vec());
                count = count.saturating_sub(1);
                removed += 1;
            }
            batch.remove(&self.expiry, entry.clone());
        }
        batch.insert(&self.meta, META_COUNT, count.to_be_bytes());
        batch
            .commit()
            .map_err(|e| storage("removing expired provider records", e))?;
        self.count.store(count, Ordering::Relaxed);
        Ok(removed)
    }
}

fn storage(op: &str, e: impl std::fmt::Display) -> ProviderError {
    ProviderError::Storage(format!("{op}: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `key length (u8) ++ key`: the prefix of all record ids of `key` (at most 81 bytes).
fn key_prefix(key: &[u8]) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(1 + key.len());
    // Keys are checked to be at most MAX_KEY_LEN (80) bytes before reaching here.
    prefix.push(u8::try_from(key.len()).unwrap_or(u8::MAX));
    prefix.extend_from_slice(key);
    prefix
}

/// A record id: `key length (u8) ++ key ++ provider peer ID bytes`.
pub(crate) fn record_id(key: &[u8], provider: &PeerId) -> Vec<u8> {
    let mut id = key_prefix(key);
    id.extend_from_slice(&provider.to_bytes());
    id
}

/// Splits a record id into key and provider.
pub(crate) fn split_record_id(id: &[u8]) -> Result<(Vec<u8>, PeerId), ProviderError> {
    let corrupt = |detail: String| ProviderError::Corrupt {
        what: format!("provider record id {}", hex(id)),
        detail,
    };
    let (&len, rest) = id
        .split_first()
        .ok_or_else(|| corrupt("empty id".to_owned()))?;
    let len = usize::from(len);
    if len == 0 || len > MAX_KEY_LEN || rest.len() < len {
        return Err(corrupt(format!(
            "key length {len} of a {}-byte id",
            id.len()
        )));
    }
    let (key, peer) = rest.split_at(len);
    let provider = PeerId::from_bytes(peer).map_err(|e| corrupt(format!("peer ID: {e}")))?;
    Ok((key.to_vec(), provider))
}

/// An `expiry` key: `expires_at (u64 BE) ++ id`.
pub(crate) fn expiry_key(expires_at: u64, id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(EXPIRY_LEN + id.len());
    key.extend_from_slice(&expires_at.to_be_bytes());
    key.extend_from_slice(id);
    key
}

/// Splits an `expiry` key into `expires_at` and the record id.
pub(crate) fn split_expiry_key(key: &[u8]) -> Result<(u64, &[u8]), ProviderError> {
    if key.len() <= EXPIRY_LEN {
        return Err(ProviderError::Corrupt {
            what: format!("expiry entry {}", hex(key)),
            detail: format!("{} bytes, expected more than {EXPIRY_LEN}", key.len()),
        });
    }
    let (expiry, id) = key.split_at(EXPIRY_LEN);
    Ok((decode_u64("expiry entry", expiry)?, id))
}

/// A `records` value (see the module docs). `addrs` are already normalized: at most
/// [`MAX_ADDRS`] of at most [`crate::MAX_ADDR_LEN`] bytes, so the counts fit in u8 and u16.
pub(crate) fn encode_value(expires_at: u64, addrs: &[Multiaddr]) -> Vec<u8> {
    let addrs: Vec<&Multiaddr> = addrs
        .iter()
        .filter(|a| u16::try_from(a.len()).is_ok())
        .take(MAX_ADDRS.min(usize::from(u8::MAX)))
        .collect();
    let mut value =
        Vec::with_capacity(2 + EXPIRY_LEN + addrs.iter().map(|a| 2 + a.len()).sum::<usize>());
    value.push(VALUE_VERSION);
    value.extend_from_slice(&expires_at.to_be_bytes());
    value.push(u8::try_from(addrs.len()).unwrap_or(u8::MAX));
    for addr in addrs {
        let bytes = addr.to_vec();
        value.extend_from_slice(&u16::try_from(bytes.len()).unwrap_or(0).to_be_bytes());
        value.extend_from_slice(&bytes);
    }
    value
}

/// Decodes a `records` value of the record `id` into `(expires_at, addrs)`.
pub(crate) fn decode_value(
    id: &[u8],
    value: &[u8],
) -> Result<(u64, Vec<Multiaddr>), ProviderError> {
    let corrupt = |detail: String| ProviderError::Corrupt {
        what: format!("provider record {}", hex(id)),
        detail,
    };
    let mut rest = value;
    let mut take = |n: usize| -> Result<&[u8], ProviderError> {
        if rest.len() < n {
            return Err(corrupt(format!(
                "value of {} bytes is truncated",
                value.len()
            )));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let version = take(1)?[0];
    if version != VALUE_VERSION {
        return Err(corrupt(format!("unknown value version {version}")));
    }
    let expires_at = decode_u64("provider record expiry", take(EXPIRY_LEN)?)?;
    let n = usize::from(take(1)?[0]);
    let mut addrs = Vec::with_capacity(n.min(MAX_ADDRS));
    for _ in 0..n {
        let len = take(2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let bytes = take(len)?.to_vec();
        addrs.push(Multiaddr::try_from(bytes).map_err(|e| corrupt(format!("multiaddr: {e}")))?);
    }
    if !rest.is_empty() {
        return Err(corrupt(format!("{} trailing bytes", rest.len())));
    }
    Ok((expires_at, addrs))
}

fn decode_record(id: &[u8], value: &[u8]) -> Result<ProviderRecord, ProviderError> {
    let (key, provider) = split_record_id(id)?;
    let (expires_at, addrs) = decode_value(id, value)?;
    Ok(ProviderRecord {
        key,
        provider,
        addrs,
        expires_at,
    })
}

fn decode_u64(what: &str, bytes: &[u8]) -> Result<u64, ProviderError> {
    let bytes: [u8; 8] = bytes.try_into().map_err(|_| ProviderError::Corrupt {
        what: what.to_owned(),
        detail: format!("{} bytes, expected 8", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{self, test_addr, test_key, test_peer};
    use libp2p::multihash::Multihash;
    use proptest::prelude::*;

    #[tokio::test]
    async fn conformance() {
        let parent = tempfile::tempdir().expect("tempdir");
        let counter = AtomicU64::new(0);
        conformance::run_all(|| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let dir = parent.path().join(n.to_string());
            async move { FjallProviderStore::open(&dir).expect("open") }
        })
        .await;
    }

    fn peer_strategy() -> impl Strategy<Value = PeerId> {
        prop_oneof![
            any::<[u8; 32]>().prop_map(|d| {
                PeerId::from_multihash(Multihash::wrap(0x12, &d).expect("fits")).expect("sha256")
            }),
            // Identity peer IDs (inlined ed25519 public keys are 36 bytes).
            proptest::collection::vec(any::<u8>(), 0..=42).prop_filter_map("identity", |d| {
                PeerId::from_multihash(Multihash::wrap(0, &d).ok()?).ok()
            }),
        ]
    }

    proptest! {
        #[test]
        fn record_id_roundtrips(
            key in proptest::collection::vec(any::<u8>(), 1..=MAX_KEY_LEN),
            provider in peer_strategy(),
        ) {
            let id = record_id(&key, &provider);
            prop_assert_eq!(split_record_id(&id).ok(), Some((key, provider)));
        }

        /// The id prefix of one key never selects another key's records.
        #[test]
        fn key_prefix_is_exact(
            a in proptest::collection::vec(any::<u8>(), 1..=MAX_KEY_LEN),
            b in proptest::collection::vec(any::<u8>(), 1..=MAX_KEY_LEN),
            provider in peer_strategy(),
        ) {
            let id_b = record_id(&b, &provider);
            prop_assert_eq!(id_b.starts_with(&key_prefix(&a)), a == b);
        }

        /// Expiry keys sort by `expires_at` first, and split back into what they were made of.
        #[test]
        fn expiry_key_roundtrips_and_orders(
            t1: u64, t2: u64,
            key in proptest::collection::vec(any::<u8>(), 1..=MAX_KEY_LEN),
            provider in peer_strategy(),
        ) {
            let id = record_id(&key, &provider);
            let k1 = expiry_key(t1, &id);
            let (t, rest) = split_expiry_key(&k1).expect("split");
            prop_assert_eq!((t, rest), (t1, id.as_slice()));
            if t1 < t2 {
                prop_assert!(k1 < expiry_key(t2, &record_id(&[0], &provider)));
            }
        }

        #[test]
        fn value_roundtrips(
            expires_at: u64,
            ports in proptest::collection::vec(any::<u16>(), 0..=MAX_ADDRS),
        ) {
            let addrs: Vec<_> = ports.iter().map(|&p| test_addr(u32::from(p), p)).collect();
            let value = encode_value(expires_at, &addrs);
            prop_assert_eq!(decode_value(b"id", &value).ok(), Some((expires_at, addrs)));
        }

        /// Any truncation or extension of a value is reported as corrupt, never misread.
        #[test]
        fn damaged_value_is_corrupt(expires_at: u64, cut in 0usize..40, extra: u8) {
            let addrs = vec![test_addr(1, 1), test_addr(2, 2)];
            let value = encode_value(expires_at, &addrs);
            let cut = cut.min(value.len() - 1);
            let truncated = matches!(
                decode_value(b"id", &value[..cut]),
                Err(ProviderError::Corrupt { .. })
            );
            prop_assert!(truncated, "a truncated value was accepted");
            let mut longer = value.clone();
            longer.push(extra);
            let extended = matches!(
                decode_value(b"id", &longer),
                Err(ProviderError::Corrupt { .. })
            );
            prop_assert!(extended, "a value with trailing bytes was accepted");
        }
    }

    fn rec(key: u32, expires_at: u64) -> ProviderRecord {
        ProviderRecord {
            key: test_key(key),
            provider: test_peer(key),
            addrs: vec![test_addr(key, 4001)],
            expires_at,
        }
    }

    #[tokio::test]
    async fn records_expiry_index_and_count_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let records: Vec<_> = (0..10).map(|k| rec(k, 100 + u64::from(k))).collect();
        {
            let store = FjallProviderStore::open(dir.path()).expect("open");
            store.put_batch(&records).await.expect("put");
            assert_eq!(store.gc(101, 100).await.expect("gc"), 2);
        }
        let store = FjallProviderStore::open(dir.path()).expect("reopen");
        assert_eq!(store.count().await.expect("count").records, 8);
        let page = store.list(None, 0, 100).await.expect("list");
        let mut got = page.records;
        got.sort_by_key(|r| r.expires_at);
        assert_eq!(got, records[2..]);
        assert_eq!(store.gc(105, 100).await.expect("gc"), 4);
        assert_eq!(store.count().await.expect("count").records, 4);
    }

    /// Upserts move the expiry entry: the `expiry` keyspace holds exactly one entry per record.
    #[tokio::test]
    async fn upserts_keep_one_expiry_entry_per_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FjallProviderStore::open(dir.path()).expect("open");
        for t in [100, 300, 200, 200] {
            store
                .put_batch(&[rec(1, t), rec(2, t + 1)])
                .await
                .expect("put");
        }
        let inner = &store.inner;
        assert_eq!(inner.records.iter().count(), 2);
        let entries: Vec<u64> = inner
            .expiry
            .iter()
            .map(|g| {
                let key = g.key().expect("key");
                split_expiry_key(&key).expect("split").0
            })
            .collect();
        assert_eq!(entries, vec![200, 201]);
    }

    #[tokio::test]
    async fn corrupt_value_is_an_error_not_absent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FjallProviderStore::open(dir.path()).expect("open");
        store.put_batch(&[rec(1, 100)]).await.expect("put");
        store
            .inner
            .records
            .insert(record_id(&test_key(1), &test_peer(1)), [9u8, 9, 9])
            .expect("overwrite");
        assert!(matches!(
            store.providers(&test_key(1), 0, 10).await,
            Err(ProviderError::Corrupt { .. })
        ));
        assert!(matches!(
            store.list(None, 0, 10).await,
            Err(ProviderError::Corrupt { .. })
        ));
    }
}
