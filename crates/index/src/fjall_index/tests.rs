//! Unit tests of the embedded index (the conformance suite runs in `tests/fjall.rs`).

use super::*;
use proptest::prelude::*;

fn mh(code: u64, digest: &[u8]) -> Multihash {
    Multihash::wrap(code, digest).expect("digest fits in 64 bytes")
}

proptest! {
    #[test]
    fn location_value_roundtrips(offset: u64, length: u32) {
        let value = encode_location(offset, length);
        prop_assert_eq!(decode_location(b"x", &value).ok(), Some((offset, length)));
    }

    #[test]
    fn location_value_of_wrong_length_is_corrupt(value in proptest::collection::vec(any::<u8>(), 0..32)) {
        prop_assume!(value.len() != LOCATION_LEN);
        prop_assert!(
            matches!(decode_location(b"x", &value), Err(IndexError::Corrupt { .. })),
            "wrong-length value was accepted"
        );
    }

    /// The prefix of one multihash's row keys never selects another multihash's rows.
    #[test]
    fn block_key_prefix_is_exact(
        code_a in 0u64..0x20_0000, digest_a in proptest::collection::vec(any::<u8>(), 0..64),
        code_b in 0u64..0x20_0000, digest_b in proptest::collection::vec(any::<u8>(), 0..64),
        number: u64,
    ) {
        let a = mh(code_a, &digest_a).to_bytes();
        let b = mh(code_b, &digest_b).to_bytes();
        let key_b = block_key(&b, number);
        prop_assert_eq!(key_b.starts_with(&a), a == b);
    }
}

fn row(seed: u8, offset: u64) -> StagedBlock {
    StagedBlock {
        multihash: mh(0x12, &[seed; 32]),
        offset,
        length: 10,
    }
}

fn physical_rows(inner: &Inner) -> (usize, usize, usize) {
    (
        inner.blocks.iter().count(),
        inner.car_blocks.iter().count(),
        inner.staging.iter().count(),
    )
}

/// An index whose stagings write a run every `sort_buffer_bytes` bytes of rows.
fn open_with_buffer(dir: &Path, sort_buffer_bytes: usize) -> FjallIndex {
    let mut index = FjallIndex::open(dir).expect("open");
    Arc::get_mut(&mut index.inner)
        .expect("not shared yet")
        .sort_buffer_bytes = sort_buffer_bytes;
    index
}

/// What a crash in the middle of `commit` leaves: the rows written to fjall, the staging
/// entry, no CAR record.
fn write_without_commit(inner: &Inner, key: &str) {
    let (number, sorter) = {
        let mut live = inner.live.lock().expect("lock");
        let staging = live.get_mut(key).expect("staged");
        (staging.number, staging.rows.take().expect("rows"))
    };
    let sorter = Arc::try_unwrap(sorter)
        .ok()
        .expect("one owner")
        .into_inner()
        .expect("lock");
    let mut batch = inner.db.batch();
    inner
        .write_staged(number, sorter, &mut batch)
        .expect("write rows");
    batch.commit().expect("small rows");
}

fn record(key: &str, blocks: u64) -> CarRecord {
    CarRecord {
        key: key.into(),
        version: 1,
        roots: vec![],
        size: 100,
        blocks,
        block_bytes: 10 * blocks,
        ingested_at: 1,
    }
}

#[test]
fn abort_and_recover_remove_rows_physically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = FjallIndex::open(dir.path()).expect("open");
    let inner = &index.inner;
    let rows: Vec<_> = (0..10).map(|i| row(i, u64::from(i) * 100)).collect();

    inner.stage("cars/a.car", &rows).expect("stage a");
    inner.stage("cars/b.car", &rows[..3]).expect("stage b");
    inner.stage("cars/c.car", &rows[..2]).expect("stage c");
    assert_eq!(physical_rows(inner), (0, 0, 3), "rows wait for the commit");
    write_without_commit(inner, "cars/a.car");
    write_without_commit(inner, "cars/b.car");
    assert_eq!(physical_rows(inner), (13, 13, 3));

    inner.abort("cars/a.car").expect("abort a");
    assert_eq!(physical_rows(inner), (3, 3, 2));
    assert!(
        inner.commit(record("cars/b.car", 3)).is_err(),
        "a staging whose commit failed part-way is not committed later"
    );

    assert_eq!(
        inner.recover().expect("recover"),
        vec!["cars/b.car", "cars/c.car"]
    );
    assert_eq!(physical_rows(inner), (0, 0, 0));
}

/// `n` rows, row i at offset i with a sha2-256 multihash whose digest is `digest(i)`.
fn numbered_rows(n: usize, digest: fn(u64) -> [u8; 8]) -> Vec<StagedBlock> {
    (0..n as u64)
        .map(|i| StagedBlock {
            multihash: mh(0x12, &digest(i)),
            offset: i,
            length: 1,
        })
        .collect()
}

#[test]
fn large_stagings_are_bulk_loaded_in_runs_and_fully_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    // About 40 rows per run.
    let index = open_with_buffer(dir.path(), 40 * 60);
    let inner = &index.inner;
    let n = SMALL_COMMIT_ROWS + 7;
    let rows = numbered_rows(n, u64::to_be_bytes);
    for chunk in rows.chunks(1000) {
        inner.stage("cars/big.car", chunk).expect("stage");
    }
    // Staged again later (another run): the last row of a multihash wins.
    inner.stage("cars/big.car", &rows[..5]).expect("restage");
    inner.stage("cars/big.car", &rows[2..3]).expect("restage");
    let moved = StagedBlock {
        offset: 1_000_000,
        ..rows[3].clone()
    };
    inner.stage("cars/big.car", &[moved]).expect("restage");
    inner
        .commit(record("cars/big.car", n as u64 + 7))
        .expect("commit");
    assert_eq!(physical_rows(inner), (n, n, 0));
    let offsets = |i: usize| -> Vec<u64> {
        inner
            .locations(&rows[i].multihash)
            .expect("locations")
            .iter()
            .map(|l| l.offset)
            .collect()
    };
    assert_eq!(offsets(0), vec![0]);
    assert_eq!(offsets(3), vec![1_000_000]);
    assert_eq!(offsets(n - 1), vec![n as u64 - 1]);

    inner.stage("cars/other.car", &rows).expect("stage other");
    write_without_commit(inner, "cars/other.car");
    assert_eq!(physical_rows(inner), (2 * n, 2 * n, 1));
    inner.abort("cars/other.car").expect("abort");
    assert_eq!(physical_rows(inner), (n, n, 0));
    assert_eq!(offsets(3), vec![1_000_000]);
}

#[test]
fn bulk_loaded_rows_survive_a_reopen_and_a_crash_before_commit_is_recovered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = SMALL_COMMIT_ROWS * 2;
    let rows = numbered_rows(n, u64::to_le_bytes);
    {
        let index = open_with_buffer(dir.path(), 100 * 60);
        let inner = &index.inner;
        inner.stage("cars/a.car", &rows).expect("stage");
        inner
            .commit(record("cars/a.car", n as u64))
            .expect("commit");
        inner.stage("cars/crashed.car", &rows).expect("stage");
        write_without_commit(inner, "cars/crashed.car");
    }
    let index = FjallIndex::open(dir.path()).expect("reopen");
    assert_eq!(index.recovered_at_open(), ["cars/crashed.car"]);
    assert_eq!(physical_rows(&index.inner), (n, n, 0));
    for row in &rows {
        let found = index.inner.locations(&row.multihash).expect("locations");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].offset, row.offset);
    }
}

#[test]
fn replacing_commit_removes_the_old_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = FjallIndex::open(dir.path()).expect("open");
    let inner = &index.inner;
    inner
        .stage("cars/a.car", &[row(1, 10), row(2, 20)])
        .expect("stage");
    inner.commit(record("cars/a.car", 2)).expect("commit");
    inner.stage("cars/a.car", &[row(1, 30)]).expect("restage");
    inner.commit(record("cars/a.car", 1)).expect("recommit");
    assert_eq!(physical_rows(inner), (1, 1, 0));
    let locations = inner.locations(&row(1, 0).multihash).expect("locations");
    assert_eq!(locations.len(), 1);
    assert_eq!(locations[0].offset, 30);
    assert!(
        inner
            .locations(&row(2, 0).multihash)
            .expect("locations")
            .is_empty()
    );
}

#[test]
fn corrupt_row_value_is_an_error_not_absent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = FjallIndex::open(dir.path()).expect("open");
    let inner = &index.inner;
    inner.stage("cars/a.car", &[row(1, 10)]).expect("stage");
    inner
        .commit(CarRecord {
            key: "cars/a.car".into(),
            version: 1,
            roots: vec![],
            size: 1,
            blocks: 1,
            block_bytes: 10,
            ingested_at: 0,
        })
        .expect("commit");
    let number = *inner
        .committed
        .read()
        .expect("lock")
        .keys()
        .next()
        .expect("one CAR");
    let mhb = row(1, 0).multihash.to_bytes();
    inner
        .blocks
        .insert(block_key(&mhb, number), [1u8, 2, 3])
        .expect("overwrite");
    assert!(matches!(
        inner.locations(&row(1, 0).multihash),
        Err(IndexError::Corrupt { .. })
    ));
}
