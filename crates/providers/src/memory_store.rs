//! [`MemoryProviderStore`]: the in-process [`ProviderStore`] backend, bounded by record count.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use libp2p::{Multiaddr, PeerId};

use crate::{
    Cursor, MAX_GC_BATCH, MAX_LIST_PAGE, MAX_LIST_SCAN, MAX_PROVIDERS, MAX_PROVIDERS_SCAN, Page,
    ProviderError, ProviderRecord, ProviderStore, RecordCount, check_batch, check_key,
    normalized_addrs,
};

/// Provider records in memory, at most `max_records` of them.
///
/// When a write would exceed `max_records`, the **soonest-expiring** records are evicted
/// (expired ones first, as they expire soonest), the new ones included if they expire sooner
/// than everything else: the store always holds the `max_records` latest-expiring records it
/// was given. Eviction rather than refusal, because a fresh `ADD_PROVIDER` is worth more than
/// one about to expire. [`evicted`](Self::evicted) counts evictions.
///
/// Listing order: by key bytes, then provider ([`PeerId`]'s order). Memory: roughly
/// 200 bytes per record plus its addrs. Every operation holds one mutex for its bounded work.
pub struct MemoryProviderStore {
    max_records: usize,
    state: Mutex<State>,
    evicted: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// key -> provider -> (addrs, expires_at).
    records: BTreeMap<Vec<u8>, BTreeMap<PeerId, Entry>>,
    /// Number of (key, provider) entries in `records`.
    len: usize,
    /// (expires_at, key, provider) of every record in `records`.
    expiry: BTreeSet<(u64, Vec<u8>, PeerId)>,
}

/// A stored record's addrs and `expires_at` (seconds since the Unix epoch).
type Entry = (Vec<Multiaddr>, u64);

impl State {
    fn remove(&mut self, key: &[u8], provider: &PeerId) {
        if let Some(of_key) = self.records.get_mut(key) {
            if of_key.remove(provider).is_some() {
                self.len -= 1;
            }
            if of_key.is_empty() {
                self.records.remove(key);
            }
        }
    }
}

impl std::fmt::Debug for MemoryProviderStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryProviderStore")
            .field("max_records", &self.max_records)
            .field("records", &self.state().len)
            .field("evicted", &self.evicted())
            .finish()
    }
}

/// The `(key, provider, entry)` triples of one key's providers.
fn flatten<'a>(
    (key, of_key): (&'a Vec<u8>, &'a BTreeMap<PeerId, Entry>),
) -> impl Iterator<Item = (&'a [u8], &'a PeerId, &'a Entry)> {
    of_key.iter().map(move |(p, e)| (key.as_slice(), p, e))
}

impl MemoryProviderStore {
    /// An empty store holding at most `max_records` records (at least 1).
    pub fn new(max_records: usize) -> Self {
        Self {
            max_records: max_records.max(1),
            state: Mutex::new(State::default()),
            evicted: AtomicU64::new(0),
        }
    }

    /// The record bound given to [`new`](Self::new).
    pub fn max_records(&self) -> usize {
        self.max_records
    }

    /// Records evicted because the store was full (expired or not), since creation.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn record(key: &[u8], provider: PeerId, addrs: &[Multiaddr], expires_at: u64) -> ProviderRecord {
    ProviderRecord {
        key: key.to_vec(),
        provider,
        addrs: addrs.to_vec(),
        expires_at,
    }
}

#[async_trait]
impl ProviderStore for MemoryProviderStore {
    async fn put_batch(&self, records: &[ProviderRecord]) -> Result<(), ProviderError> {
        check_batch(records)?;
        let mut state = self.state();
        for r in records {
            let value = (normalized_addrs(r.addrs.clone()), r.expires_at);
            let old = state
                .records
                .entry(r.key.clone())
                .or_default()
                .insert(r.provider, value);
            match old {
                Some((_, old_expiry)) => {
                    state
                        .expiry
                        .remove(&(old_expiry, r.key.clone(), r.provider));
                }
                None => state.len += 1,
            }
            state
                .expiry
                .insert((r.expires_at, r.key.clone(), r.provider));
        }
        while state.len > self.max_records {
            let Some((_, key, provider)) = state.expiry.pop_first() else {
                break;
            };
            state.remove(&key, &provider);
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn providers(
        &self,
        key: &[u8],
        now: u64,
        limit: usize,
    ) -> Result<Vec<ProviderRecord>, ProviderError> {
        check_key(key)?;
        let limit = limit.min(MAX_PROVIDERS);
        let state = self.state();
        let Some(of_key) = state.records.get(key) else {
            return Ok(Vec::new());
        };
        Ok(of_key
            .iter()
            .take(MAX_PROVIDERS_SCAN)
            .filter(|(_, (_, expires_at))| now < *expires_at)
            .take(limit)
            .map(|(provider, (addrs, expires_at))| record(key, *provider, addrs, *expires_at))
            .collect())
    }

    async fn list(
        &self,
        after: Option<&Cursor>,
        now: u64,
        limit: usize,
    ) -> Result<Page, ProviderError> {
        let limit = limit.clamp(1, MAX_LIST_PAGE);
        let state = self.state();
        let mut iter: Box<dyn Iterator<Item = (&[u8], &PeerId, &Entry)>> = match after {
            Some(c) => {
                let rest_of_key = state
                    .records
                    .get_key_value(c.key.as_slice())
                    .into_iter()
                    .flat_map(move |(key, of_key)| {
                        of_key
                            .range((Bound::Excluded(c.provider), Bound::Unbounded))
                            .map(move |(p, e)| (key.as_slice(), p, e))
                    });
                let later_keys = state
                    .records
                    .range::<[u8], _>((Bound::Excluded(c.key.as_slice()), Bound::Unbounded))
                    .flat_map(flatten);
                Box::new(rest_of_key.chain(later_keys))
            }
            None => Box::new(state.records.iter().flat_map(flatten)),
        };
        let mut page = Page::default();
        let mut last = None;
        for _ in 0..MAX_LIST_SCAN {
            let Some((key, provider, (addrs, expires_at))) = iter.next() else {
                return Ok(page);
            };
            last = Some((key, *provider));
            if now < *expires_at {
                page.records
                    .push(record(key, *provider, addrs, *expires_at));
                if page.records.len() >= limit {
                    break;
                }
            }
        }
        if iter.next().is_some() {
            page.next = last.map(|(key, provider)| Cursor {
                key: key.to_vec(),
                provider,
            });
        }
        Ok(page)
    }

    async fn gc(&self, now: u64, max: usize) -> Result<usize, ProviderError> {
        let max = max.min(MAX_GC_BATCH);
        let mut state = self.state();
        let mut removed = 0;
        while removed < max {
            match state.expiry.first() {
                Some((expires_at, _, _)) if *expires_at <= now => {}
                _ => break,
            }
            let Some((_, key, provider)) = state.expiry.pop_first() else {
                break;
            };
            state.remove(&key, &provider);
            removed += 1;
        }
        Ok(removed)
    }

    async fn count(&self) -> Result<RecordCount, ProviderError> {
        Ok(RecordCount {
            records: self.state().len as u64,
            exact: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{self, test_key, test_peer};

    #[tokio::test]
    async fn conformance() {
        conformance::run_all(|| async { MemoryProviderStore::new(100_000) }).await;
    }

    fn rec(key: u32, expires_at: u64) -> ProviderRecord {
        ProviderRecord {
            key: test_key(key),
            provider: test_peer(1),
            addrs: vec![],
            expires_at,
        }
    }

    /// When full, the store keeps the `max_records` latest-expiring records, whichever batch
    /// they came in, and counts the evictions.
    #[tokio::test]
    async fn full_store_evicts_the_soonest_expiring() {
        let store = MemoryProviderStore::new(3);
        store
            .put_batch(&[rec(1, 500), rec(2, 100), rec(3, 300)])
            .await
            .expect("put");
        store.put_batch(&[rec(4, 400)]).await.expect("put");
        assert_eq!(store.evicted(), 1);
        // A record expiring sooner than everything kept is itself the one evicted.
        store.put_batch(&[rec(5, 50)]).await.expect("put");
        assert_eq!(store.evicted(), 2);
        // An upsert of a kept record does not evict.
        store.put_batch(&[rec(3, 600)]).await.expect("upsert");
        assert_eq!(store.evicted(), 2);
        let page = store.list(None, 0, 10).await.expect("list");
        let mut kept: Vec<_> = page.records.iter().map(|r| r.expires_at).collect();
        kept.sort_unstable();
        assert_eq!(kept, vec![400, 500, 600]);
        assert_eq!(store.count().await.expect("count").records, 3);
        for gone in [2, 5] {
            assert!(
                store
                    .providers(&test_key(gone), 0, 10)
                    .await
                    .expect("providers")
                    .is_empty(),
                "evicted record {gone} still served"
            );
        }
    }
}
