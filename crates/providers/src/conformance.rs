//! The [`ProviderStore`] contract as executable checks, shared by every backend.
//!
//! A backend's test calls [`run_all`] with a factory that returns a fresh, *empty* store each
//! time (a new temporary directory, a new database schema, ...). Every check panics with a
//! message naming the broken contract; each is also public so a backend can run one alone.
//! The checks pass `now` explicitly and use small made-up times (seconds since the Unix
//! epoch), so they never depend on the clock. A store must hold at least
//! [`MAX_PUT_BATCH`] + 10 records for the suite.
//!
//! ```no_run
//! # async fn demo() {
//! hydrant_providers::conformance::run_all(|| async {
//!     hydrant_providers::MemoryProviderStore::new(100_000)
//! })
//! .await;
//! # }
//! ```
//!
//! Persistence across a restart is backend-specific and tested beside this suite.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use libp2p::multiaddr::Protocol;
use libp2p::multihash::Multihash;
use libp2p::{Multiaddr, PeerId};

use crate::{
    Cursor, MAX_ADDR_LEN, MAX_ADDRS, MAX_KEY_LEN, MAX_LIST_PAGE, MAX_PROVIDERS, MAX_PUT_BATCH,
    ProviderError, ProviderRecord, ProviderStore,
};

/// Multihash code of sha2-256.
const SHA2_256: u64 = 0x12;

/// A base time for the checks (seconds since the Unix epoch; 2023-11-14).
const T0: u64 = 1_700_000_000;

/// Runs every check of this module, each on a fresh store from `make`. Must run on a Tokio
/// runtime ([`concurrent_upserts_keep_one_record`] spawns tasks).
///
/// # Panics
/// When the backend breaks a contract (the message says which), or `make` panics.
pub async fn run_all<S, F, Fut>(make: F)
where
    S: ProviderStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    put_then_providers_returns_the_record(make().await).await;
    keys_sharing_a_prefix_stay_apart(make().await).await;
    upsert_replaces_addrs_and_expiry(make().await).await;
    last_record_of_a_batch_wins(make().await).await;
    expiry_is_exact_at_the_boundary(make().await).await;
    providers_limit_is_honoured(make().await).await;
    list_visits_every_live_record_once(make().await).await;
    list_limit_is_clamped(make().await).await;
    gc_removes_only_expired_and_is_bounded(make().await).await;
    invalid_keys_are_refused(make().await).await;
    oversized_batch_is_refused(make().await).await;
    addrs_are_normalized(make().await).await;
    count_follows_puts_and_gc(make().await).await;
    concurrent_upserts_keep_one_record(make().await).await;
}

/// A distinct sha2-256-shaped multihash per `seed`, as key bytes (34 bytes).
pub fn test_key(seed: u32) -> Vec<u8> {
    test_multihash(seed).to_bytes()
}

fn test_multihash(seed: u32) -> Multihash<64> {
    let mut digest = [0u8; 32];
    digest[..4].copy_from_slice(&seed.to_be_bytes());
    digest[4..8].copy_from_slice(&seed.wrapping_mul(0x9E37_79B9).to_be_bytes());
    Multihash::wrap(SHA2_256, &digest).expect("a 32-byte digest fits")
}

/// A distinct peer ID per `seed` (a sha2-256 peer ID over a made-up digest).
pub fn test_peer(seed: u32) -> PeerId {
    PeerId::from_multihash(test_multihash(seed ^ 0x5A5A_5A5A)).expect("sha2-256 peer ID")
}

/// `/ip4/10.0.x.y/tcp/port`, distinct per `(seed, port)`.
pub fn test_addr(seed: u32, port: u16) -> Multiaddr {
    let [_, _, a, b] = seed.to_be_bytes();
    Multiaddr::empty()
        .with(Protocol::Ip4([10, 0, a, b].into()))
        .with(Protocol::Tcp(port))
}

fn rec(key: u32, peer: u32, expires_at: u64) -> ProviderRecord {
    ProviderRecord {
        key: test_key(key),
        provider: test_peer(peer),
        addrs: vec![test_addr(peer, 4001)],
        expires_at,
    }
}

async fn providers<S: ProviderStore>(store: &S, key: u32, now: u64) -> Vec<ProviderRecord> {
    sorted(
        store
            .providers(&test_key(key), now, MAX_PROVIDERS)
            .await
            .expect("providers"),
    )
}

fn sorted(mut v: Vec<ProviderRecord>) -> Vec<ProviderRecord> {
    v.sort_by(|a, b| (&a.key, a.provider).cmp(&(&b.key, b.provider)));
    v
}

/// Every live record, by following `list` pages of `limit`; panics if a record comes twice.
async fn list_all<S: ProviderStore>(store: &S, now: u64, limit: usize) -> Vec<ProviderRecord> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = store.list(after.as_ref(), now, limit).await.expect("list");
        assert!(
            page.records.len() <= limit.clamp(1, MAX_LIST_PAGE),
            "list returned {} records for limit {limit}",
            page.records.len()
        );
        for record in page.records {
            assert!(
                seen.insert(record.cursor()),
                "list returned a record twice (paging with limit {limit})"
            );
            out.push(record);
        }
        match page.next {
            Some(next) => {
                assert_ne!(after.as_ref(), Some(&next), "list made no progress");
                after = Some(next);
            }
            None => return sorted(out),
        }
    }
}

/// A stored record comes back field for field from `providers` of its key (and of no other
/// key); two providers of one key are two records.
pub async fn put_then_providers_returns_the_record<S: ProviderStore>(store: S) {
    let a = ProviderRecord {
        key: test_key(1),
        provider: test_peer(1),
        addrs: vec![test_addr(1, 4001), test_addr(1, 4002)],
        expires_at: T0 + 100,
    };
    let b = ProviderRecord {
        addrs: vec![],
        ..rec(1, 2, T0 + 200)
    };
    let c = rec(2, 1, T0 + 300);
    store.put_batch(&[]).await.expect("empty batch");
    store
        .put_batch(&[a.clone(), b.clone(), c.clone()])
        .await
        .expect("put");
    assert_eq!(
        providers(&store, 1, T0).await,
        sorted(vec![a, b]),
        "providers of key 1 differ from what was put"
    );
    assert_eq!(providers(&store, 2, T0).await, vec![c]);
    assert!(
        providers(&store, 3, T0).await.is_empty(),
        "an unknown key has providers"
    );
}

/// Keys that are prefixes of one another (any bytes are keys, not only multihashes) never see
/// each other's records.
pub async fn keys_sharing_a_prefix_stay_apart<S: ProviderStore>(store: S) {
    let long = test_key(7);
    let short = long[..long.len() - 1].to_vec();
    let one = vec![long[0]];
    let mk = |key: &Vec<u8>, peer| ProviderRecord {
        key: key.clone(),
        provider: test_peer(peer),
        addrs: vec![],
        expires_at: T0 + 10,
    };
    let records = [mk(&long, 1), mk(&short, 2), mk(&one, 3), mk(&short, 1)];
    store.put_batch(&records).await.expect("put");
    for key in [&long, &short, &one] {
        let got = store.providers(key, T0, 100).await.expect("providers");
        let want: Vec<_> = records.iter().filter(|r| &r.key == key).cloned().collect();
        assert_eq!(
            sorted(got),
            sorted(want),
            "providers of a {}-byte key mixed with a prefix-sharing key",
            key.len()
        );
    }
    assert_eq!(list_all(&store, T0, 2).await, sorted(records.to_vec()));
}

/// Putting a `(key, provider)` again replaces its addrs and expiry (later or earlier), and gc
/// follows the current expiry only.
pub async fn upsert_replaces_addrs_and_expiry<S: ProviderStore>(store: S) {
    let first = rec(1, 1, T0 + 100);
    store.put_batch(&[first]).await.expect("put");
    let later = ProviderRecord {
        addrs: vec![test_addr(9, 9)],
        ..rec(1, 1, T0 + 300)
    };
    store
        .put_batch(std::slice::from_ref(&later))
        .await
        .expect("upsert");
    assert_eq!(
        providers(&store, 1, T0).await,
        vec![later.clone()],
        "upsert did not replace the record"
    );
    assert_eq!(
        providers(&store, 1, T0 + 200).await,
        vec![later.clone()],
        "record gone at its old expiry after a refresh"
    );
    assert_eq!(
        store.gc(T0 + 200, 100).await.expect("gc"),
        0,
        "gc removed a refreshed record by its old expiry"
    );
    assert_eq!(providers(&store, 1, T0 + 200).await, vec![later]);

    let earlier = rec(1, 1, T0 + 150);
    store
        .put_batch(std::slice::from_ref(&earlier))
        .await
        .expect("upsert");
    assert_eq!(providers(&store, 1, T0 + 100).await, vec![earlier]);
    assert!(
        providers(&store, 1, T0 + 200).await.is_empty(),
        "an upsert to an earlier expiry kept the later one"
    );
    assert_eq!(store.gc(T0 + 200, 100).await.expect("gc"), 1);
    assert_eq!(
        store.gc(T0 + 1000, 100).await.expect("gc"),
        0,
        "a replaced expiry left a record behind"
    );
    assert!(list_all(&store, 0, 10).await.is_empty(), "gc left records");

    // Upserts that move one record's expiry leave nothing for gc to trip over: a gc of
    // `max = 3` over exactly 3 expired records removes all 3 in one call.
    for t in 1..=5 {
        store.put_batch(&[rec(5, 5, T0 + t)]).await.expect("upsert");
    }
    store
        .put_batch(&[rec(6, 6, T0 + 6), rec(7, 7, T0 + 7)])
        .await
        .expect("put");
    assert_eq!(
        store.gc(T0 + 10, 3).await.expect("gc"),
        3,
        "gc returned a short batch while expired records remained (stale expiry entries?)"
    );
}

/// Within one batch the last record of a `(key, provider)` wins.
pub async fn last_record_of_a_batch_wins<S: ProviderStore>(store: S) {
    let last = ProviderRecord {
        addrs: vec![test_addr(3, 3)],
        ..rec(1, 1, T0 + 50)
    };
    store
        .put_batch(&[rec(1, 1, T0 + 500), rec(2, 2, T0 + 10), last.clone()])
        .await
        .expect("put");
    assert_eq!(providers(&store, 1, T0).await, vec![last]);
    assert_eq!(store.gc(T0 + 100, 100).await.expect("gc"), 2);
    assert!(
        list_all(&store, 0, 10).await.is_empty(),
        "a record overwritten within its batch left an entry behind"
    );
}

/// A record is returned at `now = expires_at - 1` and never from `now = expires_at` on, by
/// `providers` and `list` alike; gc takes it exactly from `expires_at`.
pub async fn expiry_is_exact_at_the_boundary<S: ProviderStore>(store: S) {
    let exp = T0 + 1000;
    let r = rec(1, 1, exp);
    store
        .put_batch(&[r.clone(), rec(2, 1, T0)])
        .await
        .expect("put");
    assert_eq!(providers(&store, 1, exp - 1).await, vec![r.clone()]);
    assert!(
        providers(&store, 1, exp).await.is_empty(),
        "record returned at its expiry"
    );
    assert!(providers(&store, 1, exp + 1).await.is_empty());
    assert_eq!(list_all(&store, exp - 1, 10).await, vec![r]);
    assert!(
        list_all(&store, exp, 10).await.is_empty(),
        "list returned a record at its expiry"
    );
    assert!(
        providers(&store, 2, T0 - 1).await.len() == 1 && providers(&store, 2, T0).await.is_empty(),
        "an already-expired record was not stored as given"
    );
    assert_eq!(store.gc(exp - 1, 100).await.expect("gc"), 1, "gc at T0");
    assert_eq!(
        store.gc(exp - 1, 100).await.expect("gc"),
        0,
        "gc removed a live record"
    );
    assert_eq!(
        store.gc(exp, 100).await.expect("gc"),
        1,
        "gc missed a record at its expiry"
    );
}

/// `providers` returns `min(limit, live records)` distinct live records; 0 gives none, and
/// expired records do not use up the limit.
pub async fn providers_limit_is_honoured<S: ProviderStore>(store: S) {
    let live: Vec<_> = (0..30).map(|p| rec(1, p, T0 + 100)).collect();
    let expired: Vec<_> = (30..60).map(|p| rec(1, p, T0)).collect();
    store.put_batch(&expired).await.expect("put");
    store.put_batch(&live).await.expect("put");
    for limit in [0, 1, 7, 29, 30, 31, 1000] {
        let got = store
            .providers(&test_key(1), T0, limit)
            .await
            .expect("providers");
        assert_eq!(
            got.len(),
            limit.min(30),
            "providers returned {} records for limit {limit}",
            got.len()
        );
        let distinct: HashSet<_> = got.iter().map(|r| r.provider).collect();
        assert_eq!(distinct.len(), got.len(), "a provider returned twice");
        assert!(
            got.iter().all(|r| live.contains(r)),
            "providers returned an expired or unknown record"
        );
    }
}

/// Following `list` pages visits every live record exactly once, whatever the page size,
/// skipping expired ones, and survives the removal of the record a cursor points at.
pub async fn list_visits_every_live_record_once<S: ProviderStore>(store: S) {
    let mut live = Vec::new();
    let mut all = Vec::new();
    for key in 0..25 {
        for peer in 0..(key % 5 + 1) {
            let r = rec(key, peer, if (key + peer) % 3 == 0 { T0 } else { T0 + 100 });
            if r.expires_at > T0 {
                live.push(r.clone());
            }
            all.push(r);
        }
    }
    store.put_batch(&all).await.expect("put");
    let live = sorted(live);
    for limit in [1, 2, 7, 50, 1000] {
        assert_eq!(
            list_all(&store, T0, limit).await,
            live,
            "paging with limit {limit} did not visit every live record once"
        );
    }
    assert!(
        list_all(&store, T0 + 100, 3).await.is_empty(),
        "list returned expired records"
    );

    // A cursor stays valid after its record is removed.
    let first = store.list(None, T0, 4).await.expect("list");
    let cursor = first.next.expect("more pages");
    let gone = ProviderRecord {
        key: cursor.key.clone(),
        provider: cursor.provider,
        addrs: vec![],
        expires_at: T0,
    };
    store
        .put_batch(&[gone])
        .await
        .expect("expire the cursor's record");
    assert!(store.gc(T0, 1000).await.expect("gc") > 0);
    let mut rest = first.records;
    let mut after = Some(cursor);
    while let Some(c) = after {
        let page = store.list(Some(&c), T0, 4).await.expect("list");
        rest.extend(page.records);
        after = page.next;
    }
    assert_eq!(
        sorted(rest),
        live,
        "paging across a gc lost or repeated records"
    );
}

/// `list` returns at most `MAX_LIST_PAGE` records per page, and a `limit` of 0 acts as 1.
pub async fn list_limit_is_clamped<S: ProviderStore>(store: S) {
    let records: Vec<_> = (0..(MAX_LIST_PAGE as u32 + 5))
        .map(|k| rec(k, 1, T0 + 10))
        .collect();
    store.put_batch(&records).await.expect("put");
    let page = store.list(None, T0, usize::MAX).await.expect("list");
    assert_eq!(page.records.len(), MAX_LIST_PAGE, "page not clamped");
    assert!(page.next.is_some(), "a clamped page claims to be the last");
    let page = store.list(None, T0, 0).await.expect("list");
    assert_eq!(page.records.len(), 1, "limit 0 did not act as 1");
    assert!(page.next.is_some());
}

/// gc removes only records with `expires_at <= now`, at most `max` per call, returns how many
/// it removed, and leaves every live record in place.
pub async fn gc_removes_only_expired_and_is_bounded<S: ProviderStore>(store: S) {
    let expired: Vec<_> = (0..10u32).map(|k| rec(k, 1, T0 + u64::from(k))).collect();
    let live: Vec<_> = (0..5).map(|k| rec(k, 2, T0 + 100)).collect();
    store.put_batch(&live).await.expect("put");
    store.put_batch(&expired).await.expect("put");
    let now = T0 + 9;
    assert_eq!(store.gc(now, 0).await.expect("gc"), 0, "gc ignored max = 0");
    let mut calls = Vec::new();
    loop {
        let removed = store.gc(now, 3).await.expect("gc");
        assert!(removed <= 3, "gc removed {removed} records with max 3");
        calls.push(removed);
        if removed == 0 {
            break;
        }
        assert!(calls.len() <= 10, "gc keeps removing records");
    }
    assert_eq!(
        calls,
        vec![3, 3, 3, 1, 0],
        "gc did not work in full batches"
    );
    assert_eq!(
        list_all(&store, 0, 100).await,
        sorted(live),
        "gc removed a live record or left an expired one"
    );
}

/// Keys that are empty or over `MAX_KEY_LEN` bytes are refused, and a batch holding one writes
/// nothing; an 80-byte key is fine.
pub async fn invalid_keys_are_refused<S: ProviderStore>(store: S) {
    let with_key = |key: Vec<u8>| ProviderRecord {
        key,
        ..rec(0, 1, T0 + 10)
    };
    for len in [0, MAX_KEY_LEN + 1, 200] {
        let result = store
            .put_batch(&[rec(1, 1, T0 + 10), with_key(vec![7; len])])
            .await;
        assert!(
            matches!(result, Err(ProviderError::InvalidKey { len: l }) if l == len),
            "a {len}-byte key was not refused: {result:?}"
        );
        assert!(
            matches!(
                store.providers(&vec![7; len], T0, 10).await,
                Err(ProviderError::InvalidKey { .. })
            ),
            "providers accepted a {len}-byte key"
        );
    }
    assert!(
        list_all(&store, T0, 10).await.is_empty(),
        "a refused batch was partly written"
    );
    let max = with_key(vec![0xAB; MAX_KEY_LEN]);
    store
        .put_batch(std::slice::from_ref(&max))
        .await
        .expect("80-byte key");
    assert_eq!(
        store.providers(&max.key, T0, 10).await.expect("providers"),
        vec![max]
    );
}

/// A `put_batch` of more than `MAX_PUT_BATCH` records is refused whole; exactly
/// `MAX_PUT_BATCH` is accepted.
pub async fn oversized_batch_is_refused<S: ProviderStore>(store: S) {
    let records: Vec<_> = (0..=MAX_PUT_BATCH as u32)
        .map(|k| rec(k, 1, T0 + 10))
        .collect();
    assert!(
        matches!(
            store.put_batch(&records).await,
            Err(ProviderError::BatchTooLarge { len }) if len == MAX_PUT_BATCH + 1
        ),
        "an oversized batch was not refused"
    );
    assert!(
        providers(&store, 0, T0).await.is_empty(),
        "refused batch written"
    );
    store
        .put_batch(&records[..MAX_PUT_BATCH])
        .await
        .expect("a full batch");
    assert_eq!(providers(&store, 0, T0).await.len(), 1);
}

/// Addrs longer than `MAX_ADDR_LEN` bytes are dropped, then the first `MAX_ADDRS` are kept.
pub async fn addrs_are_normalized<S: ProviderStore>(store: S) {
    let huge = Multiaddr::empty().with(Protocol::Dns("h".repeat(MAX_ADDR_LEN).into()));
    assert!(huge.len() > MAX_ADDR_LEN);
    let mut addrs = vec![huge];
    addrs.extend((0..40).map(|p| test_addr(1, p)));
    let r = ProviderRecord {
        addrs,
        ..rec(1, 1, T0 + 10)
    };
    store
        .put_batch(std::slice::from_ref(&r))
        .await
        .expect("put");
    let got = providers(&store, 1, T0).await;
    let want: Vec<_> = (0..MAX_ADDRS as u16).map(|p| test_addr(1, p)).collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].addrs, want, "addrs not normalized as documented");
}

/// `count` (when exact) counts stored records: upserts do not add, gc subtracts.
pub async fn count_follows_puts_and_gc<S: ProviderStore>(store: S) {
    let count = store.count().await.expect("count");
    if !count.exact {
        return;
    }
    assert_eq!(count.records, 0, "a fresh store is not empty");
    let records: Vec<_> = (0..20).map(|k| rec(k, 1, T0 + u64::from(k))).collect();
    store.put_batch(&records).await.expect("put");
    store.put_batch(&records[..5]).await.expect("upsert");
    assert_eq!(store.count().await.expect("count").records, 20);
    assert_eq!(store.gc(T0 + 4, 100).await.expect("gc"), 5);
    assert_eq!(
        store.count().await.expect("count").records,
        15,
        "count does not follow gc"
    );
}

/// Concurrent `put_batch` calls upserting the same `(key, provider)` (and distinct records)
/// leave one record per `(key, provider)`, one expiry entry each (gc removes them all in one
/// full batch), and an exact count.
pub async fn concurrent_upserts_keep_one_record<S: ProviderStore>(store: S) {
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..4u32)
        .map(|task| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..50u32 {
                    let shared = rec(1, 1, T0 + u64::from(i * 4 + task) + 1);
                    let own = rec(100 + task, 1, T0 + 1);
                    store.put_batch(&[shared, own]).await.expect("put");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer task");
    }
    let got = providers(store.as_ref(), 1, T0).await;
    assert_eq!(
        got.len(),
        1,
        "concurrent upserts left {} records",
        got.len()
    );
    let count = store.count().await.expect("count");
    if count.exact {
        assert_eq!(count.records, 5, "count drifted under concurrent upserts");
    }
    assert_eq!(
        store.gc(T0 + 1000, 5).await.expect("gc"),
        5,
        "concurrent upserts left stale expiry entries"
    );
    assert!(list_all(store.as_ref(), 0, 10).await.is_empty());
}
