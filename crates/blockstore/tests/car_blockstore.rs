//! CarBlockstore over a real LocalFileSystem object store and a real FjallIndex: CAR-like files
//! are written by hand (the blockstore only needs the offsets the index records).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;
use hydrant_blocks::{Blockstore, BlockstoreError, DigestError};
use hydrant_blockstore::{CarBlockstore, ReadConfig, ReadStats};
use hydrant_index::{
    BlockLocation, BlockLookup, CarCatalog, CarRecord, FjallIndex, IndexError, Multihash,
    StagedBlock,
};
use multihash_codetable::{Code, MultihashDigest};
use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, ObjectStoreExt, path::Path};
use proptest::prelude::*;

const RAW: u64 = 0x55;
const DAG_PB: u64 = 0x70;
/// Filler byte between blocks (stands in for section varints and CIDs).
const FILLER: u8 = 0xEE;

struct Env {
    _dir: tempfile::TempDir,
    objects: PathBuf,
    index: Arc<FjallIndex>,
    store: Arc<LocalFileSystem>,
}

fn env() -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let objects = dir.path().join("objects");
    std::fs::create_dir_all(&objects).expect("mkdir");
    let index = Arc::new(FjallIndex::open(&dir.path().join("index")).expect("open index"));
    let store = Arc::new(LocalFileSystem::new_with_prefix(&objects).expect("local store"));
    Env {
        _dir: dir,
        objects,
        index,
        store,
    }
}

impl Env {
    fn blockstore(&self, config: ReadConfig) -> CarBlockstore {
        CarBlockstore::new(self.index.clone(), self.store.clone(), config)
    }

    fn file(&self, key: &str) -> PathBuf {
        self.objects.join(key)
    }

    /// Writes a file holding `blocks` at their offsets (filler elsewhere, `tail` filler bytes
    /// after the last), stages and commits its rows; returns each block's raw CID.
    async fn put_car(&self, key: &str, blocks: &[(u64, Vec<u8>)], tail: usize) -> Vec<Cid> {
        let len = blocks
            .iter()
            .map(|(o, d)| *o as usize + d.len())
            .max()
            .unwrap_or(0)
            + tail;
        let mut file = vec![FILLER; len];
        let mut rows = Vec::new();
        let mut cids = Vec::new();
        for (offset, data) in blocks {
            file[*offset as usize..*offset as usize + data.len()].copy_from_slice(data);
            let mh: Multihash = Code::Sha2_256.digest(data);
            rows.push(StagedBlock {
                multihash: mh,
                offset: *offset,
                length: data.len() as u32,
            });
            cids.push(Cid::new_v1(RAW, mh));
        }
        self.store
            .put(&Path::from(key), Bytes::from(file).into())
            .await
            .expect("put");
        self.index.stage_blocks(key, &rows).await.expect("stage");
        self.index
            .commit_car(&CarRecord {
                key: key.to_owned(),
                version: 1,
                roots: vec![],
                size: len as u64,
                blocks: blocks.len() as u64,
                block_bytes: blocks.iter().map(|(_, d)| d.len() as u64).sum(),
                ingested_at: 0,
            })
            .await
            .expect("commit");
        cids
    }
}

fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn absent_cid(seed: u64) -> Cid {
    Cid::new_v1(RAW, Code::Sha2_256.digest(&seed.to_be_bytes()))
}

/// The default read configuration without the read cache, for tests that count storage reads of
/// blocks read twice.
const NO_CACHE: ReadConfig = ReadConfig {
    max_gap: 64 * 1024,
    max_range: 8 * 1024 * 1024,
    verify: true,
    cache_bytes: 0,
    concurrent_reads: 8,
};

fn unwrap_all(results: Vec<Result<Option<Bytes>, BlockstoreError>>) -> Vec<Option<Bytes>> {
    results.into_iter().map(|r| r.expect("read")).collect()
}

/// Four blocks 40 bytes apart: one CAR section header's worth.
fn neighbours() -> Vec<(u64, Vec<u8>)> {
    (0..4u64)
        .map(|i| (100 + i * 1_040, data(i, 1_000)))
        .collect()
}

#[tokio::test]
async fn get_has_size_answer_stored_blocks() {
    let env = env();
    let blocks = neighbours();
    let cids = env.put_car("cars/a.car", &blocks, 10).await;
    let bs = env.blockstore(NO_CACHE);
    for (cid, (_, data)) in cids.iter().zip(&blocks) {
        assert!(bs.has(cid).await.expect("has"));
        assert_eq!(bs.size(cid).await.expect("size"), Some(data.len() as u32));
        assert_eq!(
            bs.get(cid).await.expect("get").as_deref(),
            Some(data.as_slice())
        );
    }
    // A CID of another codec over the same multihash is the same block.
    let pb = Cid::new_v1(DAG_PB, *cids[1].hash());
    assert_eq!(
        bs.get(&pb).await.expect("get").as_deref(),
        Some(blocks[1].1.as_slice())
    );
    assert_eq!(
        bs.stats(),
        ReadStats {
            ranges: 5,
            blocks: 5,
            bytes: 5_000,
            ..ReadStats::default()
        }
    );
}

#[tokio::test]
async fn neighbouring_blocks_are_one_range_read() {
    let env = env();
    let blocks = neighbours();
    let cids = env.put_car("cars/a.car", &blocks, 0).await;
    let bs = env.blockstore(ReadConfig::default());
    // Out of order, with a duplicate and a CID of another codec over block 0.
    let wanted = [
        cids[3],
        cids[0],
        cids[2],
        cids[1],
        cids[3],
        Cid::new_v1(DAG_PB, *cids[0].hash()),
    ];
    let got = unwrap_all(bs.get_many(&wanted).await);
    let expect = [3, 0, 2, 1, 3, 0].map(|i| Some(Bytes::from(blocks[i].1.clone())));
    assert_eq!(got, expect);
    let stats = bs.stats();
    assert_eq!(stats.ranges, 1, "neighbours must be coalesced: {stats:?}");
    assert_eq!(stats.blocks, 4);
    assert_eq!(
        stats.bytes,
        3 * 1_040 + 1_000,
        "one range from block 0 to block 3"
    );
}

#[tokio::test]
async fn blocks_farther_apart_than_max_gap_are_two_reads() {
    let env = env();
    let blocks = vec![(0, data(1, 500)), (500 + 4_097, data(2, 500))];
    let cids = env.put_car("cars/a.car", &blocks, 0).await;
    let config = ReadConfig {
        max_gap: 4_096,
        ..ReadConfig::default()
    };
    let bs = env.blockstore(config);
    let got = unwrap_all(bs.get_many(&cids).await);
    assert_eq!(got[1].as_deref(), Some(blocks[1].1.as_slice()));
    assert_eq!(bs.stats().ranges, 2);
    assert_eq!(bs.stats().bytes, 1_000, "gap bytes must not be read");

    // One byte closer and they merge.
    let env = self::env();
    let blocks = vec![(0, data(1, 500)), (500 + 4_096, data(2, 500))];
    let cids = env.put_car("cars/a.car", &blocks, 0).await;
    let bs = env.blockstore(config);
    let got = unwrap_all(bs.get_many(&cids).await);
    assert_eq!(got[0].as_deref(), Some(blocks[0].1.as_slice()));
    assert_eq!(bs.stats().ranges, 1);
}

#[tokio::test]
async fn get_each_answers_every_position_once() {
    let env = env();
    let blocks = vec![(0, data(1, 500)), (500 + 100_000, data(2, 500))];
    let cids = env.put_car("cars/a.car", &blocks, 0).await;
    // The first block again under another codec, an identity CID and an absent block.
    let same = Cid::new_v1(DAG_PB, *cids[0].hash());
    let identity = Cid::new_v1(RAW, Multihash::wrap(0x00, b"hi").unwrap());
    let wanted = vec![cids[1], same, identity, absent_cid(7), cids[0]];
    let bs = env.blockstore(ReadConfig {
        max_gap: 4_096,
        ..ReadConfig::default()
    });
    let mut heard: Vec<Vec<Option<Bytes>>> = vec![Vec::new(); wanted.len()];
    bs.get_each(&wanted, &mut |i, got| heard[i].push(got.expect("no error")))
        .await;
    let expected = [
        Some(&blocks[1].1[..]),
        Some(&blocks[0].1[..]),
        Some(&b"hi"[..]),
        None,
        Some(&blocks[0].1[..]),
    ];
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(heard[i].len(), 1, "position {i} answered once");
        assert_eq!(heard[i][0].as_deref(), *want, "position {i}");
    }
    assert_eq!(
        bs.stats().ranges,
        2,
        "two ranges, the shared block read once"
    );
}

#[tokio::test]
async fn max_range_splits_long_runs() {
    let env = env();
    let blocks = neighbours();
    let cids = env.put_car("cars/a.car", &blocks, 0).await;
    let bs = env.blockstore(ReadConfig {
        max_range: 2_100,
        ..ReadConfig::default()
    });
    let got = unwrap_all(bs.get_many(&cids).await);
    assert!(
        got.iter()
            .zip(&blocks)
            .all(|(g, (_, d))| g.as_deref() == Some(d.as_slice()))
    );
    assert_eq!(bs.stats().ranges, 2, "2 blocks (2040 bytes) per range");
}

#[tokio::test]
async fn absent_blocks_are_none_without_reads() {
    let env = env();
    let cids = env.put_car("cars/a.car", &neighbours(), 0).await;
    let bs = env.blockstore(NO_CACHE);
    let missing = absent_cid(7);
    assert!(!bs.has(&missing).await.expect("has"));
    assert_eq!(bs.size(&missing).await.expect("size"), None);
    assert_eq!(bs.get(&missing).await.expect("get"), None);
    assert_eq!(
        unwrap_all(bs.get_many(&[missing, absent_cid(8)]).await),
        vec![None, None]
    );
    assert_eq!(bs.stats(), ReadStats::default());

    let got = unwrap_all(bs.get_many(&[missing, cids[2]]).await);
    assert_eq!(got[0], None);
    assert!(got[1].is_some());
    assert_eq!(bs.stats().ranges, 1);
}

#[tokio::test]
async fn a_staged_car_is_not_served() {
    let env = env();
    let block = data(3, 100);
    let mh = Code::Sha2_256.digest(&block);
    env.store
        .put(&Path::from("cars/s.car"), Bytes::from(block).into())
        .await
        .expect("put");
    env.index
        .stage_blocks(
            "cars/s.car",
            &[StagedBlock {
                multihash: mh,
                offset: 0,
                length: 100,
            }],
        )
        .await
        .expect("stage");
    let bs = env.blockstore(ReadConfig::default());
    assert_eq!(bs.get(&Cid::new_v1(RAW, mh)).await.expect("get"), None);
    assert!(!bs.has(&Cid::new_v1(RAW, mh)).await.expect("has"));
}

#[tokio::test]
async fn corrupted_bytes_are_corrupt_not_served() {
    let env = env();
    let blocks = neighbours();
    let cids = env.put_car("cars/a.car", &blocks, 0).await;
    let path = env.file("cars/a.car");
    let mut file = std::fs::read(&path).expect("read");
    file[blocks[1].0 as usize + 17] ^= 0x01;
    std::fs::write(&path, &file).expect("write");

    let bs = env.blockstore(ReadConfig::default());
    let got = bs.get_many(&cids).await;
    match &got[1] {
        Err(BlockstoreError::Corrupt { cid, key, offset }) => {
            assert_eq!(*cid, cids[1]);
            assert_eq!(key, "cars/a.car");
            assert_eq!(*offset, blocks[1].0);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Its neighbours in the same range are fine.
    assert_eq!(
        got[0].as_ref().expect("block 0").as_deref(),
        Some(blocks[0].1.as_slice())
    );
    assert_eq!(
        got[2].as_ref().expect("block 2").as_deref(),
        Some(blocks[2].1.as_slice())
    );
    assert!(matches!(
        bs.get(&cids[1]).await,
        Err(BlockstoreError::Corrupt { .. })
    ));

    // Without verification the stored bytes are returned as they are.
    let unverified = env.blockstore(ReadConfig {
        verify: false,
        ..ReadConfig::default()
    });
    let raw = unverified
        .get(&cids[1])
        .await
        .expect("get")
        .expect("present");
    assert_ne!(raw.as_ref(), blocks[1].1.as_slice());
}

#[tokio::test]
async fn storage_failures_are_errors_not_absent() {
    let env = env();
    let blocks = neighbours();
    let cids = env.put_car("cars/gone.car", &blocks, 0).await;
    let cut = env.put_car("cars/cut.car", &[(0, data(9, 300))], 0).await;
    std::fs::remove_file(env.file("cars/gone.car")).expect("delete");
    let path = env.file("cars/cut.car");
    let file = std::fs::read(&path).expect("read");
    std::fs::write(&path, &file[..200]).expect("truncate");

    let bs = env.blockstore(ReadConfig::default());
    for result in bs.get_many(&cids).await {
        match result {
            Err(BlockstoreError::Storage { key, .. }) => assert_eq!(key, "cars/gone.car"),
            other => panic!("expected Storage, got {other:?}"),
        }
    }
    match bs.get(&cut[0]).await {
        Err(BlockstoreError::Storage {
            key, start, end, ..
        }) => {
            assert_eq!((key.as_str(), start, end), ("cars/cut.car", 0, 300));
        }
        other => panic!("expected Storage for a truncated CAR, got {other:?}"),
    }
    // has/size answer from the index alone.
    assert!(bs.has(&cids[0]).await.expect("has"));
}

#[tokio::test]
async fn a_failed_location_falls_back_to_another_car() {
    let env = env();
    let shared = data(5, 700);
    let cids = env
        .put_car("cars/first.car", &[(10, shared.clone())], 0)
        .await;
    env.put_car("cars/second.car", &[(90, shared.clone())], 0)
        .await;
    let bs = env.blockstore(NO_CACHE);
    assert_eq!(
        bs.get(&cids[0]).await.expect("get").as_deref(),
        Some(shared.as_slice())
    );
    assert_eq!(bs.stats().ranges, 1);

    std::fs::remove_file(env.file("cars/first.car")).expect("delete");
    assert_eq!(
        bs.get(&cids[0]).await.expect("fallback").as_deref(),
        Some(shared.as_slice())
    );
    assert_eq!(bs.stats().ranges, 3, "one failed read, one fallback read");
}

#[tokio::test]
async fn prefers_a_car_already_read_in_the_batch() {
    let env = env();
    let x = data(1, 400);
    let y = data(2, 400);
    let z = data(3, 400);
    // X is in both CARs; Y and Z only in "b", right next to X.
    let in_a = env.put_car("cars/a.car", &[(0, x.clone())], 0).await;
    let in_b = env
        .put_car(
            "cars/b.car",
            &[(0, y.clone()), (450, x.clone()), (900, z.clone())],
            0,
        )
        .await;
    let bs = env.blockstore(ReadConfig::default());
    let got = unwrap_all(bs.get_many(&[in_a[0], in_b[0], in_b[2]]).await);
    assert_eq!(got, vec![Some(x.into()), Some(y.into()), Some(z.into())]);
    assert_eq!(bs.stats().ranges, 1, "X must be read from b, with Y and Z");
}

/// An index that fails every call, and counts them.
#[derive(Default)]
struct FailingIndex {
    calls: AtomicU64,
}

#[async_trait]
impl BlockLookup for FailingIndex {
    async fn locations(&self, _: &Multihash) -> Result<Vec<BlockLocation>, IndexError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Err(IndexError::Storage("disk on fire".into()))
    }
}

#[tokio::test]
async fn identity_cids_need_no_index_and_index_errors_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = Arc::new(FailingIndex::default());
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("store"));
    let bs = CarBlockstore::new(index.clone(), store, NO_CACHE);

    let inline = Cid::new_v1(RAW, Multihash::wrap(0x00, b"hello").expect("fits"));
    assert!(bs.has(&inline).await.expect("has"));
    assert_eq!(bs.size(&inline).await.expect("size"), Some(5));
    assert_eq!(
        bs.get(&inline).await.expect("get").as_deref(),
        Some(&b"hello"[..])
    );
    let missing = absent_cid(1);
    let got = bs.get_many(&[inline, missing, inline]).await;
    assert_eq!(
        got[0].as_ref().expect("identity").as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        got[2].as_ref().expect("identity").as_deref(),
        Some(&b"hello"[..])
    );
    match &got[1] {
        Err(BlockstoreError::Index { cid, detail }) => {
            assert_eq!(*cid, missing);
            assert!(detail.contains("disk on fire"), "{detail}");
        }
        other => panic!("expected an index error, got {other:?}"),
    }
    assert_eq!(
        index.calls.load(Ordering::Relaxed),
        1,
        "only the non-identity CID was looked up"
    );
    assert!(matches!(
        bs.has(&missing).await,
        Err(BlockstoreError::Index { .. })
    ));
    assert!(matches!(
        bs.size(&missing).await,
        Err(BlockstoreError::Index { .. })
    ));
    assert_eq!(bs.stats(), ReadStats::default());
}

#[tokio::test]
async fn unsupported_hash_is_an_error_when_verifying() {
    let env = env();
    let block = b"some block".to_vec();
    // sha3-256 (0x16) is not in the verification table.
    let mh = Multihash::wrap(0x16, &[7; 32]).expect("fits");
    env.store
        .put(&Path::from("cars/u.car"), Bytes::from(block.clone()).into())
        .await
        .expect("put");
    env.index
        .stage_blocks(
            "cars/u.car",
            &[StagedBlock {
                multihash: mh,
                offset: 0,
                length: 10,
            }],
        )
        .await
        .expect("stage");
    env.index
        .commit_car(&CarRecord {
            key: "cars/u.car".into(),
            version: 1,
            roots: vec![],
            size: 10,
            blocks: 1,
            block_bytes: 10,
            ingested_at: 0,
        })
        .await
        .expect("commit");
    let cid = Cid::new_v1(RAW, mh);
    let bs = env.blockstore(ReadConfig::default());
    assert!(matches!(
        bs.get(&cid).await,
        Err(BlockstoreError::Unverifiable {
            reason: DigestError::UnsupportedHash(0x16),
            ..
        })
    ));
}

/// Shared environment for the property test (one index, one store, a new CAR per case).
fn shared() -> &'static (tokio::runtime::Runtime, Env) {
    static SHARED: OnceLock<(tokio::runtime::Runtime, Env)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        (rt, env())
    })
}

static CASE: AtomicU64 = AtomicU64::new(0);

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// For random layouts, wanted subsets and read configs, get_many returns exactly the
    /// stored bytes (None for absent CIDs) and never issues more reads than wanted blocks.
    #[test]
    fn get_many_returns_exactly_the_wanted_bytes(
        layout in proptest::collection::vec((0u64..3_000, 1usize..2_000, any::<bool>()), 1..30),
        absent in 0usize..3,
        max_gap in 0u64..4_096,
        max_range in 1u64..10_000,
        verify: bool,
    ) {
        let (rt, env) = shared();
        let case = CASE.fetch_add(1, Ordering::Relaxed);
        let key = format!("cars/case-{case}.car");
        let mut offset = 0u64;
        let blocks: Vec<(u64, Vec<u8>)> = layout
            .iter()
            .enumerate()
            .map(|(i, &(gap, len, _))| {
                offset += gap;
                let at = offset;
                offset += len as u64;
                let mut bytes = data(case * 1_000 + i as u64, len);
                bytes[..len.min(8)].copy_from_slice(&(case * 1_000 + i as u64).to_be_bytes()[..len.min(8)]);
                (at, bytes)
            })
            .collect();
        let cids = rt.block_on(env.put_car(&key, &blocks, 0));
        let mut wanted = Vec::new();
        let mut expected = Vec::new();
        for (i, &(_, _, want)) in layout.iter().enumerate() {
            if want {
                wanted.push(cids[i]);
                expected.push(Some(blocks[i].1.clone()));
            }
        }
        for a in 0..absent {
            wanted.insert(a * 2 % (wanted.len() + 1), absent_cid(u64::MAX - case * 10 - a as u64));
            expected.insert(a * 2 % (expected.len() + 1), None);
        }
        let bs = env.blockstore(ReadConfig { max_gap, max_range, verify, cache_bytes: 0, concurrent_reads: 8 });
        let mut got: Vec<Option<Vec<u8>>> = Vec::new();
        for result in rt.block_on(bs.get_many(&wanted)) {
            match result {
                Ok(block) => got.push(block.map(|b| b.to_vec())),
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            }
        }
        prop_assert_eq!(got, expected);
        // Tiny blocks may repeat content: count distinct wanted blocks.
        let present = layout
            .iter()
            .zip(&cids)
            .filter(|(l, _)| l.2)
            .map(|(_, cid)| *cid.hash())
            .collect::<std::collections::HashSet<_>>()
            .len() as u64;
        let stats = bs.stats();
        prop_assert!(stats.ranges <= present, "{} reads for {} blocks", stats.ranges, present);
        prop_assert_eq!(stats.blocks, present);
    }
}

#[tokio::test]
async fn read_cache_answers_repeat_reads_and_stays_within_its_budget() {
    let env = env();
    let blocks: Vec<(u64, Vec<u8>)> = (0..8u64).map(|i| (i * 1_000, data(i, 900))).collect();
    let cids = env.put_car("cars/a.car", &blocks, 0).await;
    // Room for about three 900-byte blocks.
    let budget = 3 * (900 + hydrant_blockstore::CACHE_ENTRY_OVERHEAD);
    let bs = env.blockstore(ReadConfig {
        cache_bytes: budget,
        ..ReadConfig::default()
    });
    let first = unwrap_all(bs.get_many(&cids[..2]).await);
    let ranges = bs.stats().ranges;
    let again = unwrap_all(bs.get_many(&cids[..2]).await);
    assert_eq!(first, again);
    let stats = bs.stats();
    assert_eq!(stats.ranges, ranges, "a cached block was read again");
    assert_eq!(stats.cache_hits, 2);
    assert_eq!(bs.size(&cids[0]).await.unwrap(), Some(900));

    unwrap_all(bs.get_many(&cids).await);
    let stats = bs.stats();
    assert!(
        stats.cache_bytes <= budget,
        "{} > {budget}",
        stats.cache_bytes
    );
    assert!(stats.cache_blocks <= 3);

    let off = env.blockstore(ReadConfig {
        cache_bytes: 0,
        ..ReadConfig::default()
    });
    unwrap_all(off.get_many(&cids[..1]).await);
    unwrap_all(off.get_many(&cids[..1]).await);
    assert_eq!(
        off.stats().ranges,
        2,
        "with the cache off every read goes to storage"
    );
    assert_eq!(off.stats().cache_misses, 0);
}
