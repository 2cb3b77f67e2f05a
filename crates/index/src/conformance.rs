//! The index contract as executable checks, shared by every backend: one suite per half,
//! [`lookup_suite`] and [`catalog_suite`], and [`pin_suite`] for the pin store.
//!
//! A backend's test calls both with a factory that returns a fresh, *empty* index each
//! time (a new temporary directory, a new database schema, ...). Every check panics with a
//! message naming the broken contract; each is also public so a backend can run one alone.
//!
//! ```no_run
//! # async fn demo() {
//! let parent = std::env::temp_dir().join("hydrant-conformance");
//! let counter = std::sync::atomic::AtomicU32::new(0);
//! let make = || {
//!     let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!     let dir = parent.join(n.to_string());
//!     async move { hydrant_index::FjallIndex::open(&dir).expect("open") }
//! };
//! hydrant_index::conformance::lookup_suite(make).await;
//! hydrant_index::conformance::catalog_suite(make).await;
//! # }
//! ```
//!
//! Crash recovery across a process restart is backend-specific (reopening storage) and is
//! tested by each backend beside this suite; [`recover_removes_abandoned_staging`] checks the
//! in-process half of it.

use std::future::Future;
use std::sync::Arc;

use cid::Cid;

use crate::{
    BlockIndex, BlockLocation, CarRecord, IndexError, MAX_LIST_CARS, MAX_LIST_PINS, MAX_LOCATIONS,
    Multihash, Pin, PinStore, StagedBlock,
};

/// Multicodec code of the raw codec.
const RAW: u64 = 0x55;
/// Multicodec code of DAG-PB.
const DAG_PB: u64 = 0x70;
/// Multicodec code of DAG-CBOR.
const DAG_CBOR: u64 = 0x71;
/// Multihash code of sha2-256.
const SHA2_256: u64 = 0x12;

/// The lookup half's suite ([`crate::BlockLookup`]): what `locations`, `locations_many` and
/// `contains` answer as CARs are staged and committed. Each check runs on a fresh index from
/// `make` (the catalogue half sets the data up).
///
/// # Panics
/// When the backend breaks a contract (the message says which), or `make` panics.
pub async fn lookup_suite<I, F, Fut>(make: F)
where
    I: BlockIndex,
    F: Fn() -> Fut,
    Fut: Future<Output = I>,
{
    staged_rows_are_invisible_until_commit(make().await).await;
    commit_makes_all_rows_visible_at_once(make().await).await;
    block_in_two_cars_has_two_locations(make().await).await;
    staged_rows_do_not_leak_into_committed_lookups(make().await).await;
    same_multihash_is_one_block_whatever_the_codec(make().await).await;
    locations_many_answers_in_order(make().await).await;
    locations_are_capped(make().await).await;
}

/// The catalogue half's suite ([`crate::CarCatalog`]): staging, commit, abort, recovery and
/// the CAR listings. Each check runs on a fresh index from `make`.
///
/// # Panics
/// As [`lookup_suite`].
pub async fn catalog_suite<I, F, Fut>(make: F)
where
    I: BlockIndex,
    F: Fn() -> Fut,
    Fut: Future<Output = I>,
{
    abort_removes_staged_rows(make().await).await;
    abort_leaves_committed_car_alone(make().await).await;
    recover_removes_abandoned_staging(make().await).await;
    commit_without_staging_is_refused(make().await).await;
    empty_car_commits_without_staging(make().await).await;
    restaging_a_committed_car_replaces_its_rows(make().await).await;
    list_cars_pages_in_key_order(make().await).await;
    car_returns_the_committed_record(make().await).await;
    car_multihashes_pages_in_byte_order(make().await).await;
    delete_removes_the_car_and_keeps_shared_blocks(make().await).await;
}

/// A distinct sha2-256-shaped multihash per `seed` (the digest is not a real hash: the index
/// never hashes).
pub fn test_multihash(seed: u32) -> Multihash {
    let mut digest = [0u8; 32];
    digest[..4].copy_from_slice(&seed.to_be_bytes());
    digest[4..8].copy_from_slice(&seed.wrapping_mul(0x9E37_79B9).to_be_bytes());
    Multihash::wrap(SHA2_256, &digest).expect("a 32-byte digest fits")
}

fn row(seed: u32, offset: u64, length: u32) -> StagedBlock {
    StagedBlock {
        multihash: test_multihash(seed),
        offset,
        length,
    }
}

fn record(key: &str, blocks: u64) -> CarRecord {
    CarRecord {
        key: key.to_owned(),
        version: 1,
        roots: vec!["bafkqaaa".to_owned()],
        size: 1000 + blocks,
        blocks,
        block_bytes: 10 * blocks,
        ingested_at: 1_700_000_000,
    }
}

fn location(car: &str, offset: u64, length: u32) -> BlockLocation {
    BlockLocation {
        car: car.to_owned(),
        offset,
        length,
    }
}

async fn locations<I: BlockIndex>(index: &I, seed: u32) -> Vec<BlockLocation> {
    index
        .locations(&test_multihash(seed))
        .await
        .expect("locations")
}

fn sorted(mut v: Vec<BlockLocation>) -> Vec<BlockLocation> {
    v.sort_by(|a, b| (&a.car, a.offset).cmp(&(&b.car, b.offset)));
    v
}

/// Staged rows are not returned by `locations`/`contains`, nor is the CAR by `car`/`list_cars`,
/// until `commit_car`; after it they are.
pub async fn staged_rows_are_invisible_until_commit<I: BlockIndex>(index: I) {
    let key = "cars/staged.car";
    index
        .stage_blocks(key, &[row(1, 10, 5), row(2, 20, 6)])
        .await
        .expect("stage");
    index
        .stage_blocks(key, &[row(3, 30, 7)])
        .await
        .expect("stage");
    for seed in 1..=3 {
        assert!(
            locations(&index, seed).await.is_empty(),
            "a staged row is visible before commit"
        );
        assert!(
            !index
                .contains(&test_multihash(seed))
                .await
                .expect("contains"),
            "contains() sees a staged row"
        );
    }
    assert_eq!(
        index.car(key).await.expect("car"),
        None,
        "staged CAR has a record"
    );
    assert!(
        index.list_cars(None, 10).await.expect("list").is_empty(),
        "staged CAR is listed"
    );

    index.commit_car(&record(key, 3)).await.expect("commit");
    assert_eq!(locations(&index, 1).await, vec![location(key, 10, 5)]);
    assert_eq!(locations(&index, 2).await, vec![location(key, 20, 6)]);
    assert_eq!(locations(&index, 3).await, vec![location(key, 30, 7)]);
    assert!(index.contains(&test_multihash(3)).await.expect("contains"));
    assert!(
        locations(&index, 4).await.is_empty(),
        "an unknown block has locations"
    );
}

/// While `commit_car` runs, a reader never sees some rows of the CAR without the others.
pub async fn commit_makes_all_rows_visible_at_once<I: BlockIndex>(index: I) {
    let key = "cars/atomic.car";
    let rows: Vec<_> = (0..500).map(|i| row(i, u64::from(i) * 100, 50)).collect();
    index.stage_blocks(key, &rows).await.expect("stage");
    let index = Arc::new(index);
    let reader = {
        let index = Arc::clone(&index);
        async move {
            let (first, last) = (test_multihash(0), test_multihash(499));
            for _ in 0..10_000 {
                // Read the first row, then the last: if commit is atomic, seeing the first
                // implies the last is visible too.
                let a = index.contains(&first).await.expect("contains");
                let b = index.contains(&last).await.expect("contains");
                assert!(!a || b, "saw part of a CAR's rows during its commit");
                if a && b {
                    return;
                }
                tokio::task::yield_now().await;
            }
        }
    };
    let committer = {
        let index = Arc::clone(&index);
        async move {
            tokio::task::yield_now().await;
            index.commit_car(&record(key, 500)).await.expect("commit");
        }
    };
    tokio::join!(reader, committer);
    for seed in [0, 123, 250, 499] {
        assert_eq!(
            locations(index.as_ref(), seed).await,
            vec![location(key, u64::from(seed) * 100, 50)],
            "row {seed} not visible after commit"
        );
    }
}

/// `abort_car` removes the staged rows: a later commit of the key cannot resurrect them.
pub async fn abort_removes_staged_rows<I: BlockIndex>(index: I) {
    let key = "cars/aborted.car";
    index
        .stage_blocks(key, &[row(1, 10, 5), row(2, 20, 5)])
        .await
        .expect("stage");
    index.abort_car(key).await.expect("abort");
    assert!(locations(&index, 1).await.is_empty());
    assert!(matches!(
        index.commit_car(&record(key, 2)).await,
        Err(IndexError::NotStaged(_))
    ));
    assert!(
        locations(&index, 1).await.is_empty(),
        "aborted rows came back"
    );
    assert_eq!(index.car(key).await.expect("car"), None);

    // The key can be staged again from scratch.
    index
        .stage_blocks(key, &[row(2, 40, 5)])
        .await
        .expect("restage");
    index.commit_car(&record(key, 1)).await.expect("commit");
    assert!(
        locations(&index, 1).await.is_empty(),
        "an aborted row leaked into a new staging"
    );
    assert_eq!(locations(&index, 2).await, vec![location(key, 40, 5)]);
    // Aborting an unknown key is not an error.
    index.abort_car("cars/unknown.car").await.expect("abort");
}

/// `abort_car` of a committed CAR changes nothing.
pub async fn abort_leaves_committed_car_alone<I: BlockIndex>(index: I) {
    let key = "cars/kept.car";
    index
        .stage_blocks(key, &[row(1, 10, 5)])
        .await
        .expect("stage");
    index.commit_car(&record(key, 1)).await.expect("commit");
    index.abort_car(key).await.expect("abort");
    assert_eq!(locations(&index, 1).await, vec![location(key, 10, 5)]);
    assert_eq!(index.car(key).await.expect("car"), Some(record(key, 1)));
}

/// A staging abandoned by its writer (neither committed nor aborted, as after a crash) is
/// removed by `recover`, which names it; committed CARs are untouched.
pub async fn recover_removes_abandoned_staging<I: BlockIndex>(index: I) {
    let committed = "cars/committed.car";
    let crashed = "cars/crashed.car";
    index
        .stage_blocks(committed, &[row(1, 10, 5)])
        .await
        .expect("stage");
    index
        .commit_car(&record(committed, 1))
        .await
        .expect("commit");
    index
        .stage_blocks(crashed, &[row(1, 99, 5), row(2, 20, 5)])
        .await
        .expect("stage");

    let recovered = index.recover().await.expect("recover");
    assert_eq!(recovered, vec![crashed.to_owned()], "recover() report");
    assert_eq!(
        index.recover().await.expect("recover"),
        Vec::<String>::new(),
        "recover() is not idempotent"
    );
    assert!(
        matches!(
            index.commit_car(&record(crashed, 2)).await,
            Err(IndexError::NotStaged(_))
        ),
        "commit after recover must fail"
    );
    assert_eq!(locations(&index, 1).await, vec![location(committed, 10, 5)]);
    assert!(locations(&index, 2).await.is_empty());
    assert_eq!(index.car(crashed).await.expect("car"), None);
}

/// `commit_car` of a key never staged, with blocks, is `NotStaged`.
pub async fn commit_without_staging_is_refused<I: BlockIndex>(index: I) {
    let err = index.commit_car(&record("cars/never.car", 3)).await;
    assert!(
        matches!(err, Err(IndexError::NotStaged(ref k)) if k == "cars/never.car"),
        "expected NotStaged, got {err:?}"
    );
    assert_eq!(index.car("cars/never.car").await.expect("car"), None);
}

/// A CAR with no blocks commits with or without an (empty) staging.
pub async fn empty_car_commits_without_staging<I: BlockIndex>(index: I) {
    index
        .commit_car(&record("cars/empty-a.car", 0))
        .await
        .expect("commit without staging");
    index
        .stage_blocks("cars/empty-b.car", &[])
        .await
        .expect("open staging");
    index
        .commit_car(&record("cars/empty-b.car", 0))
        .await
        .expect("commit");
    let keys: Vec<_> = index
        .list_cars(None, 10)
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(keys, vec!["cars/empty-a.car", "cars/empty-b.car"]);
}

/// One block stored in two CARs has one location per CAR.
pub async fn block_in_two_cars_has_two_locations<I: BlockIndex>(index: I) {
    for (key, offset) in [("cars/one.car", 100), ("cars/two.car", 200)] {
        index
            .stage_blocks(key, &[row(7, offset, 9), row(8, offset + 50, 9)])
            .await
            .expect("stage");
        index.commit_car(&record(key, 2)).await.expect("commit");
    }
    assert_eq!(
        sorted(locations(&index, 7).await),
        vec![
            location("cars/one.car", 100, 9),
            location("cars/two.car", 200, 9)
        ]
    );
}

/// `delete_car` removes the record and every row of one CAR at once; a block also in another
/// CAR keeps that location; deleting again, or an unknown key, changes nothing.
pub async fn delete_removes_the_car_and_keeps_shared_blocks<I: BlockIndex>(index: I) {
    index
        .stage_blocks("cars/gone.car", &[row(1, 10, 5), row(2, 20, 5)])
        .await
        .expect("stage");
    index
        .commit_car(&record("cars/gone.car", 2))
        .await
        .expect("commit");
    index
        .stage_blocks("cars/kept.car", &[row(2, 30, 5), row(3, 40, 5)])
        .await
        .expect("stage");
    index
        .commit_car(&record("cars/kept.car", 2))
        .await
        .expect("commit");

    let deleted = index.delete_car("cars/gone.car").await.expect("delete");
    assert_eq!(deleted, Some(record("cars/gone.car", 2)));
    assert!(
        locations(&index, 1).await.is_empty(),
        "only in the deleted CAR"
    );
    assert_eq!(
        locations(&index, 2).await,
        vec![location("cars/kept.car", 30, 5)],
        "shared with a kept CAR"
    );
    assert_eq!(locations(&index, 3).await.len(), 1);
    assert_eq!(index.car("cars/gone.car").await.expect("car"), None);
    let listed: Vec<String> = index
        .list_cars(None, 10)
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(listed, ["cars/kept.car"]);
    assert!(
        index
            .car_multihashes("cars/gone.car", None, 10)
            .await
            .map(|m| m.is_empty())
            .unwrap_or(true),
        "no rows of the deleted CAR are listed"
    );
    assert_eq!(
        index.delete_car("cars/gone.car").await.expect("again"),
        None
    );
    assert_eq!(
        index.delete_car("cars/never.car").await.expect("unknown"),
        None
    );
    assert!(index.recover().await.expect("recover").is_empty());
    assert_eq!(
        locations(&index, 3).await.len(),
        1,
        "recover keeps the kept CAR"
    );
}

/// Rows of a CAR still staged never appear next to the committed rows of the same block.
pub async fn staged_rows_do_not_leak_into_committed_lookups<I: BlockIndex>(index: I) {
    index
        .stage_blocks("cars/done.car", &[row(5, 10, 3)])
        .await
        .expect("stage");
    index
        .commit_car(&record("cars/done.car", 1))
        .await
        .expect("commit");
    index
        .stage_blocks("cars/pending.car", &[row(5, 77, 3)])
        .await
        .expect("stage");
    assert_eq!(
        locations(&index, 5).await,
        vec![location("cars/done.car", 10, 3)]
    );
}

/// Staging a committed key again keeps the old rows visible until the new commit, which
/// replaces them all.
pub async fn restaging_a_committed_car_replaces_its_rows<I: BlockIndex>(index: I) {
    let key = "cars/again.car";
    index
        .stage_blocks(key, &[row(1, 10, 5), row(2, 20, 5)])
        .await
        .expect("stage");
    index.commit_car(&record(key, 2)).await.expect("commit");
    index
        .stage_blocks(key, &[row(1, 30, 5), row(3, 40, 5)])
        .await
        .expect("restage");
    assert_eq!(locations(&index, 1).await, vec![location(key, 10, 5)]);
    assert_eq!(locations(&index, 2).await, vec![location(key, 20, 5)]);
    assert!(locations(&index, 3).await.is_empty());
    index.commit_car(&record(key, 2)).await.expect("recommit");
    assert_eq!(locations(&index, 1).await, vec![location(key, 30, 5)]);
    assert!(
        locations(&index, 2).await.is_empty(),
        "a replaced row survived"
    );
    assert_eq!(locations(&index, 3).await, vec![location(key, 40, 5)]);
}

/// `list_cars` returns committed CARs in key order, pages with `after`, honours `limit`.
pub async fn list_cars_pages_in_key_order<I: BlockIndex>(index: I) {
    let keys = [
        "cars/c.car",
        "cars/a.car",
        "cars/e.car",
        "cars/b.car",
        "cars/d.car",
    ];
    for key in keys {
        index
            .stage_blocks(key, &[row(1, 10, 5)])
            .await
            .expect("stage");
        index.commit_car(&record(key, 1)).await.expect("commit");
    }
    index
        .stage_blocks("cars/bb-staged.car", &[row(2, 10, 5)])
        .await
        .expect("stage");
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = index
            .list_cars(after.as_deref(), 2)
            .await
            .expect("list_cars");
        assert!(page.len() <= 2, "page longer than limit");
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        seen.extend(page.into_iter().map(|r| r.key));
    }
    assert_eq!(
        seen,
        vec![
            "cars/a.car",
            "cars/b.car",
            "cars/c.car",
            "cars/d.car",
            "cars/e.car"
        ]
    );
    let from_b: Vec<_> = index
        .list_cars(Some("cars/b"), 2)
        .await
        .expect("list_cars")
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(
        from_b,
        vec!["cars/b.car", "cars/c.car"],
        "`after` is not a strict lower bound"
    );
    assert!(
        index.list_cars(None, 0).await.expect("list").is_empty(),
        "limit 0"
    );
    assert_eq!(
        index
            .list_cars(None, MAX_LIST_CARS + 5)
            .await
            .expect("list")
            .len(),
        5
    );
}

/// `car` returns exactly the record that was committed, and `None` for unknown keys.
pub async fn car_returns_the_committed_record<I: BlockIndex>(index: I) {
    let key = "cars/record.car";
    let mut rec = record(key, 2);
    rec.version = 2;
    rec.roots = vec![
        "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi".to_owned(),
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG".to_owned(),
    ];
    index
        .stage_blocks(key, &[row(1, 10, 5), row(2, 20, 5)])
        .await
        .expect("stage");
    index.commit_car(&rec).await.expect("commit");
    assert_eq!(index.car(key).await.expect("car"), Some(rec.clone()));
    assert_eq!(index.car("cars/other.car").await.expect("car"), None);

    // Committing again without staging replaces the record and keeps the rows.
    rec.ingested_at += 60;
    index.commit_car(&rec).await.expect("recommit record");
    assert_eq!(index.car(key).await.expect("car"), Some(rec));
    assert_eq!(locations(&index, 2).await, vec![location(key, 20, 5)]);
}

/// One multihash is one block: CIDs of any codec and version over it find the same rows.
pub async fn same_multihash_is_one_block_whatever_the_codec<I: BlockIndex>(index: I) {
    let mh = test_multihash(42);
    let key = "cars/codec.car";
    let raw = Cid::new_v1(RAW, mh);
    index
        .stage_blocks(
            key,
            &[StagedBlock {
                multihash: *raw.hash(),
                offset: 64,
                length: 32,
            }],
        )
        .await
        .expect("stage");
    index.commit_car(&record(key, 1)).await.expect("commit");
    let cids = [
        raw,
        Cid::new_v1(DAG_PB, mh),
        Cid::new_v1(DAG_CBOR, mh),
        Cid::new_v0(mh).expect("sha2-256 makes a CIDv0"),
    ];
    for cid in cids {
        assert_eq!(
            index.locations(cid.hash()).await.expect("locations"),
            vec![location(key, 64, 32)],
            "lookup through {cid} differs"
        );
    }
}

/// `locations_many` answers element `i` for multihash `i`, absent ones included.
pub async fn locations_many_answers_in_order<I: BlockIndex>(index: I) {
    let key = "cars/many.car";
    index
        .stage_blocks(key, &[row(1, 10, 5), row(3, 30, 5)])
        .await
        .expect("stage");
    index.commit_car(&record(key, 2)).await.expect("commit");
    let answer = index
        .locations_many(&[
            test_multihash(3),
            test_multihash(2),
            test_multihash(1),
            test_multihash(3),
        ])
        .await
        .expect("locations_many");
    assert_eq!(
        answer,
        vec![
            vec![location(key, 30, 5)],
            vec![],
            vec![location(key, 10, 5)],
            vec![location(key, 30, 5)]
        ]
    );
    assert!(
        index
            .locations_many(&[])
            .await
            .expect("locations_many")
            .is_empty()
    );
}

/// A block in more than [`MAX_LOCATIONS`] CARs yields exactly `MAX_LOCATIONS` locations.
pub async fn locations_are_capped<I: BlockIndex>(index: I) {
    for i in 0..MAX_LOCATIONS + 3 {
        let key = format!("cars/cap-{i:04}.car");
        index
            .stage_blocks(&key, &[row(9, i as u64, 1)])
            .await
            .expect("stage");
        index.commit_car(&record(&key, 1)).await.expect("commit");
    }
    let found = locations(&index, 9).await;
    assert_eq!(found.len(), MAX_LOCATIONS);
    let mut cars: Vec<_> = found.iter().map(|l| l.car.clone()).collect();
    cars.sort();
    cars.dedup();
    assert_eq!(cars.len(), MAX_LOCATIONS, "duplicate locations");
}

/// `car_multihashes` lists a committed CAR's multihashes in byte order, pages with `after`,
/// honours `limit`, shows the replacement rows after a re-stage, and nothing for a staged or
/// unknown CAR.
pub async fn car_multihashes_pages_in_byte_order<I: BlockIndex>(index: I) {
    let key = "cars/listed.car";
    let rows: Vec<_> = (0..25).map(|s| row(s, u64::from(s) * 10, 5)).collect();
    index.stage_blocks(key, &rows).await.expect("stage");
    index
        .stage_blocks("cars/staged-only.car", &[row(90, 0, 5)])
        .await
        .expect("stage");
    index.commit_car(&record(key, 25)).await.expect("commit");
    let mut expected: Vec<Multihash> = rows.iter().map(|r| r.multihash).collect();
    expected.sort_by_key(Multihash::to_bytes);

    let mut seen = Vec::new();
    let mut after: Option<Multihash> = None;
    loop {
        let page = index
            .car_multihashes(key, after.as_ref(), 7)
            .await
            .expect("car_multihashes");
        assert!(page.len() <= 7, "page longer than limit");
        let Some(last) = page.last() else { break };
        after = Some(*last);
        seen.extend(page);
    }
    assert_eq!(seen, expected, "not every multihash once, in byte order");
    for unseen in ["cars/staged-only.car", "cars/unknown.car"] {
        assert!(
            index
                .car_multihashes(unseen, None, 10)
                .await
                .expect("car_multihashes")
                .is_empty(),
            "{unseen} is not committed"
        );
    }

    index
        .stage_blocks(key, &[row(40, 0, 5)])
        .await
        .expect("restage");
    index.commit_car(&record(key, 1)).await.expect("recommit");
    assert_eq!(
        index.car_multihashes(key, None, 100).await.expect("list"),
        vec![test_multihash(40)],
        "a replaced CAR lists its new rows only"
    );
}

/// The pin store's suite ([`PinStore`]): add, rename, remove, and paging in CID byte order.
/// Runs on one fresh store from `make`.
///
/// # Panics
/// When the backend breaks a contract (the message says which), or `make` panics.
pub async fn pin_suite<P, F, Fut>(make: F)
where
    P: PinStore,
    F: Fn() -> Fut,
    Fut: Future<Output = P>,
{
    let store = make().await;
    let pin = |seed: u32, codec: u64, name: &str, at: u64| Pin {
        cid: Cid::new_v1(codec, test_multihash(seed)),
        name: name.to_owned(),
        created_at: at,
    };
    let first = pin(1, DAG_PB, "first", 100);
    assert_eq!(
        store.pin(&first.cid).await.unwrap(),
        None,
        "nothing pinned yet"
    );
    assert!(store.add_pin(&first).await.unwrap(), "a new pin");
    assert_eq!(store.pin(&first.cid).await.unwrap(), Some(first.clone()));
    // Pinning again renames it and keeps when it was first pinned.
    assert!(
        !store
            .add_pin(&pin(1, DAG_PB, "renamed", 200))
            .await
            .unwrap(),
        "not new"
    );
    assert_eq!(
        store.pin(&first.cid).await.unwrap(),
        Some(pin(1, DAG_PB, "renamed", 100)),
        "renamed, first created_at kept"
    );
    // The same multihash under another codec, and a CIDv0, are other pins.
    let raw = pin(1, RAW, "", 300);
    let v0 = Pin {
        cid: Cid::new_v0(test_multihash(2)).expect("sha2-256"),
        name: "v0".into(),
        created_at: 400,
    };
    assert!(store.add_pin(&raw).await.unwrap());
    assert!(store.add_pin(&v0).await.unwrap());
    for seed in 10..40 {
        store
            .add_pin(&pin(seed, DAG_CBOR, "", u64::from(seed)))
            .await
            .unwrap();
    }
    // Pages in byte order of the binary CIDs, strictly after `after`, capped by `limit`.
    let mut all = Vec::new();
    let mut after: Option<Cid> = None;
    loop {
        let page = store.list_pins(after.as_ref(), 7).await.unwrap();
        assert!(page.len() <= 7, "a page holds at most `limit` pins");
        let Some(last) = page.last() else { break };
        after = Some(last.cid);
        all.extend(page);
    }
    assert_eq!(all.len(), 33, "every pin listed once");
    let keys: Vec<Vec<u8>> = all.iter().map(|p| p.cid.to_bytes()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "pins listed in byte order of their CIDs");
    assert!(all.contains(&v0) && all.contains(&raw));
    assert!(
        store.list_pins(None, usize::MAX).await.unwrap().len() <= MAX_LIST_PINS,
        "capped"
    );
    // Removal.
    assert!(store.remove_pin(&raw.cid).await.unwrap(), "was pinned");
    assert!(!store.remove_pin(&raw.cid).await.unwrap(), "already gone");
    assert_eq!(store.pin(&raw.cid).await.unwrap(), None);
    assert_eq!(
        store.pin(&first.cid).await.unwrap().map(|p| p.name),
        Some("renamed".to_owned()),
        "the same multihash's other pin stays"
    );
}
