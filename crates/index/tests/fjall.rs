//! FjallIndex against the shared conformance suite, plus what only a reopen can show: committed
//! CARs survive a restart, stagings of a "crashed" process do not; and a model-based property
//! test of the staging state machine.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};

use hydrant_index::conformance::{self, test_multihash};
use hydrant_index::{
    BlockLocation, BlockLookup, CarCatalog, CarRecord, FjallIndex, IndexError, StagedBlock,
};
use proptest::prelude::*;

fn record(key: &str, blocks: u64) -> CarRecord {
    CarRecord {
        key: key.to_owned(),
        version: 1,
        roots: vec![],
        size: 100,
        blocks,
        block_bytes: blocks * 10,
        ingested_at: 1,
    }
}

fn row(seed: u32, offset: u64) -> StagedBlock {
    StagedBlock {
        multihash: test_multihash(seed),
        offset,
        length: 10,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fjall_passes_the_conformance_suites() {
    let parent = tempfile::tempdir().expect("tempdir");
    let counter = AtomicU32::new(0);
    let make = || {
        let dir = parent
            .path()
            .join(counter.fetch_add(1, Ordering::Relaxed).to_string());
        async move { FjallIndex::open(&dir).expect("open") }
    };
    conformance::lookup_suite(make).await;
    conformance::catalog_suite(make).await;
    conformance::pin_suite(make).await;
}

#[tokio::test]
async fn pins_survive_a_reopen() {
    use hydrant_index::{Pin, PinStore};
    let dir = tempfile::tempdir().expect("tempdir");
    let pin = Pin {
        cid: cid::Cid::new_v1(0x70, test_multihash(5)),
        name: "kept".into(),
        created_at: 42,
    };
    {
        let index = FjallIndex::open(dir.path()).expect("open");
        assert!(index.add_pin(&pin).await.unwrap());
    }
    let index = FjallIndex::open(dir.path()).expect("reopen");
    assert_eq!(index.pin(&pin.cid).await.unwrap(), Some(pin));
}

#[tokio::test]
async fn reopen_keeps_committed_and_drops_staged() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let index = FjallIndex::open(dir.path()).expect("open");
        assert!(index.recovered_at_open().is_empty());
        index
            .stage_blocks("cars/kept.car", &[row(1, 10), row(2, 20)])
            .await
            .expect("stage");
        index
            .commit_car(&record("cars/kept.car", 2))
            .await
            .expect("commit");
        // The "crashed" ingest: staged, never committed nor aborted.
        index
            .stage_blocks("cars/crashed.car", &[row(2, 50), row(3, 60)])
            .await
            .expect("stage");
    }
    let index = FjallIndex::open(dir.path()).expect("reopen");
    assert_eq!(index.recovered_at_open(), ["cars/crashed.car"]);
    assert_eq!(index.committed_cars(), 1);
    assert_eq!(
        index.car("cars/kept.car").await.expect("car"),
        Some(record("cars/kept.car", 2))
    );
    assert_eq!(
        index
            .locations(&test_multihash(2))
            .await
            .expect("locations"),
        vec![BlockLocation {
            car: "cars/kept.car".into(),
            offset: 20,
            length: 10
        }]
    );
    assert!(
        matches!(
            index.commit_car(&record("cars/crashed.car", 2)).await,
            Err(IndexError::NotStaged(_))
        ),
        "the crashed staging survived the restart"
    );
    // A new CAR staged after the restart does not pick up the crashed rows.
    index
        .stage_blocks("cars/crashed.car", &[row(2, 70)])
        .await
        .expect("stage");
    index
        .commit_car(&record("cars/crashed.car", 1))
        .await
        .expect("commit");
    assert!(
        index
            .locations(&test_multihash(3))
            .await
            .expect("locations")
            .is_empty(),
        "a crashed row resurfaced"
    );
    assert_eq!(
        index
            .locations(&test_multihash(2))
            .await
            .expect("locations")
            .len(),
        2
    );
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = FjallIndex::open(dir.path()).expect("open");
    assert!(matches!(
        FjallIndex::open(dir.path()),
        Err(IndexError::Storage(_))
    ));
}

/// One step of the model-based test.
#[derive(Debug, Clone)]
enum Op {
    Stage { car: u8, seeds: Vec<u8> },
    Commit { car: u8 },
    Abort { car: u8 },
    Recover,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, proptest::collection::vec(0u8..6, 0..4))
            .prop_map(|(car, seeds)| Op::Stage { car, seeds }),
        3 => (0u8..3).prop_map(|car| Op::Commit { car }),
        1 => (0u8..3).prop_map(|car| Op::Abort { car }),
        1 => Just(Op::Recover),
        1 => Just(Op::Reopen),
    ]
}

/// The reference model: per CAR, the committed rows and the rows staged since.
#[derive(Default)]
struct Model {
    committed: BTreeMap<u8, BTreeMap<u8, u64>>,
    staged: BTreeMap<u8, BTreeMap<u8, u64>>,
}

fn key(car: u8) -> String {
    format!("cars/{car}.car")
}

async fn run_ops(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut index = FjallIndex::open(dir.path()).expect("open");
    let mut model = Model::default();
    let mut offset = 0u64;
    for op in ops {
        match op {
            Op::Stage { car, seeds } => {
                let rows: Vec<_> = seeds
                    .iter()
                    .map(|&s| {
                        offset += 16;
                        row(u32::from(s), offset)
                    })
                    .collect();
                index.stage_blocks(&key(car), &rows).await.expect("stage");
                let staged = model.staged.entry(car).or_default();
                for (s, r) in seeds.iter().zip(&rows) {
                    staged.insert(*s, r.offset);
                }
            }
            Op::Commit { car } => {
                let blocks = model.staged.get(&car).map_or(1, |s| s.len() as u64);
                let result = index.commit_car(&record(&key(car), blocks)).await;
                match model.staged.remove(&car) {
                    Some(rows) => {
                        result.expect("commit of a staged CAR");
                        model.committed.insert(car, rows);
                    }
                    None if model.committed.contains_key(&car) => {
                        result.expect("record-only recommit");
                    }
                    None => prop_assert!(
                        matches!(result, Err(IndexError::NotStaged(_))),
                        "commit of unstaged CAR: {result:?}"
                    ),
                }
            }
            Op::Abort { car } => {
                index.abort_car(&key(car)).await.expect("abort");
                model.staged.remove(&car);
            }
            Op::Recover => {
                let recovered: BTreeSet<_> = index
                    .recover()
                    .await
                    .expect("recover")
                    .into_iter()
                    .collect();
                let expected: BTreeSet<_> = model.staged.keys().map(|&c| key(c)).collect();
                prop_assert_eq!(recovered, expected);
                model.staged.clear();
            }
            Op::Reopen => {
                drop(index);
                index = FjallIndex::open(dir.path()).expect("reopen");
                let recovered: BTreeSet<_> = index.recovered_at_open().iter().cloned().collect();
                let expected: BTreeSet<_> = model.staged.keys().map(|&c| key(c)).collect();
                prop_assert_eq!(recovered, expected);
                model.staged.clear();
            }
        }
        for seed in 0u8..6 {
            let mut got = index
                .locations(&test_multihash(u32::from(seed)))
                .await
                .expect("locations");
            got.sort_by(|a, b| a.car.cmp(&b.car));
            let want: Vec<_> = model
                .committed
                .iter()
                .filter_map(|(car, rows)| {
                    rows.get(&seed).map(|&offset| BlockLocation {
                        car: key(*car),
                        offset,
                        length: 10,
                    })
                })
                .collect();
            prop_assert_eq!(got, want, "locations of seed {}", seed);
        }
        let listed: Vec<_> = index
            .list_cars(None, 10)
            .await
            .expect("list")
            .into_iter()
            .map(|r| r.key)
            .collect();
        let want: Vec<_> = model.committed.keys().map(|&c| key(c)).collect();
        prop_assert_eq!(listed, want);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any sequence of stage/commit/abort/recover/reopen leaves `locations` and `list_cars`
    /// equal to a simple model's.
    #[test]
    fn staging_state_machine_matches_the_model(ops in proptest::collection::vec(op(), 1..24)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(run_ops(ops))?;
    }
}
