//! The ingest pipeline against a real local object store and the embedded index, fed real CARs
//! made by other projects (testdata/fixtures) and damaged copies of them.

use std::sync::Arc;

use futures::TryStreamExt;
use hydrant_car::{CarDecoder, Event, Limits};
use hydrant_index::{BlockLookup, CarCatalog, FjallIndex};
use hydrant_ingest::{IngestConfig, IngestError, Ingester, SweepConfig, SweepReport};
use hydrant_testkit::{BAD_FIXTURE_CARS, files_under, fixture, valid_fixture_cars};
use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, ObjectStoreExt};

struct Repo {
    dir: tempfile::TempDir,
    store: Arc<dyn ObjectStore>,
    index: Arc<FjallIndex>,
    ingester: Ingester,
}

fn repo() -> Repo {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("objects")).unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path().join("objects")).unwrap());
    let index = Arc::new(FjallIndex::open(&dir.path().join("index")).unwrap());
    let ingester = Ingester::new(store.clone(), index.clone(), IngestConfig::default());
    Repo {
        dir,
        store,
        index,
        ingester,
    }
}

/// Every (CID, data) of a CAR, read with the decoder as far as it goes.
fn sections(bytes: &[u8]) -> Vec<(cid::Cid, Vec<u8>)> {
    let mut d = CarDecoder::new(Limits::default());
    d.push(bytes);
    let mut out = Vec::new();
    while let Ok(Some(e)) = d.next_event() {
        if let Event::Section(s) = e {
            out.push((s.cid, s.data.to_vec()));
        }
    }
    out
}

async fn objects(store: &Arc<dyn ObjectStore>) -> Vec<String> {
    store
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_valid_fixture_is_stored_unaltered_and_indexed() {
    let r = repo();
    let valid = valid_fixture_cars();
    for f in &valid {
        let bytes = fixture(f);
        let summary = r
            .ingester
            .ingest(&bytes[..], None)
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(summary.bytes, bytes.len() as u64, "{f}");
        let stored = r
            .store
            .get(&summary.car_key.as_str().into())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            &stored[..],
            &bytes[..],
            "{f}: stored CAR differs from the upload"
        );
        let secs = sections(&bytes);
        assert_eq!(summary.blocks, secs.len() as u64, "{f}");
        for (cid, data) in &secs {
            let locations = r.index.locations(cid.hash()).await.unwrap();
            let here = locations
                .iter()
                .find(|l| l.car == summary.car_key)
                .unwrap_or_else(|| panic!("{f}: {cid} not indexed in its CAR"));
            let start = here.offset as usize;
            assert_eq!(
                &bytes[start..start + here.length as usize],
                &data[..],
                "{f}: {cid}"
            );
        }
        assert!(r.index.car(&summary.car_key).await.unwrap().is_some());
    }
    // Nothing is left in staging.
    assert!(
        objects(&r.store)
            .await
            .iter()
            .all(|k| k.starts_with("cars/"))
    );
}

#[tokio::test]
async fn same_car_twice_is_stored_once() {
    let r = repo();
    let bytes = fixture("go-car/sample-v1.car");
    let first = r.ingester.ingest(&bytes[..], None).await.unwrap();
    let second = r.ingester.ingest(&bytes[..], None).await.unwrap();
    assert!(!first.already_present);
    assert!(second.already_present);
    assert_eq!(first.car_key, second.car_key);
    assert_eq!(objects(&r.store).await, vec![first.car_key.clone()]);
    assert_eq!(r.index.list_cars(None, 10).await.unwrap().len(), 1);
}

/// The state a failed ingest must leave: no object at all, no CAR record, no row.
async fn assert_nothing_left(r: &Repo, what: &str, blocks: &[(cid::Cid, Vec<u8>)]) {
    assert_eq!(
        objects(&r.store).await,
        Vec::<String>::new(),
        "{what}: objects left"
    );
    assert!(
        r.index.list_cars(None, 10).await.unwrap().is_empty(),
        "{what}: CAR record left"
    );
    for (cid, _) in blocks {
        assert!(
            r.index.locations(cid.hash()).await.unwrap().is_empty(),
            "{what}: row of {cid} visible"
        );
    }
}

#[tokio::test]
async fn known_bad_fixtures_leave_nothing_behind() {
    let r = repo();
    for f in BAD_FIXTURE_CARS {
        let bytes = fixture(f);
        let err = r.ingester.ingest(&bytes[..], None).await.unwrap_err();
        assert!(err.is_bad_input(), "{f}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains("byte") || msg.contains("offset"),
            "{f}: the error names no offset: {msg}"
        );
        assert_nothing_left(&r, f, &sections(&bytes)).await;
    }
}

#[tokio::test]
async fn a_block_that_does_not_match_its_cid_is_refused_with_its_offset() {
    let r = repo();
    let mut bytes = fixture("go-car/sample-v1.car");
    let secs = {
        let mut d = CarDecoder::new(Limits::default());
        d.push(&bytes);
        let mut v = Vec::new();
        while let Ok(Some(e)) = d.next_event() {
            if let Event::Section(s) = e {
                v.push(s);
            }
        }
        v
    };
    let victim = &secs[secs.len() / 2];
    let (victim_offset, victim_cid) = (victim.section_offset, victim.cid);
    bytes[victim.data_offset as usize] ^= 0xff;
    let err = r.ingester.ingest(&bytes[..], None).await.unwrap_err();
    match &err {
        IngestError::Verify { cid, offset, .. } => {
            assert_eq!((*cid, *offset), (victim_cid, victim_offset));
        }
        other => panic!("expected a verification error, got {other}"),
    }
    assert!(
        err.to_string().contains(&victim_offset.to_string()),
        "{err}"
    );
    let good: Vec<_> = secs.iter().map(|s| (s.cid, s.data.to_vec())).collect();
    assert_nothing_left(&r, "corrupted block", &good).await;
}

/// A reader that fails after `limit` bytes: a client that disconnects mid-upload.
struct FailingReader {
    data: Vec<u8>,
    pos: usize,
    limit: usize,
}

impl tokio::io::AsyncRead for FailingReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.pos >= self.limit {
            return std::task::Poll::Ready(Err(std::io::Error::other("connection reset")));
        }
        let n = (self.limit - self.pos).min(buf.remaining()).min(4096);
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn an_interrupted_upload_leaves_nothing_and_can_be_retried() {
    let r = repo();
    let bytes = fixture("go-car/sample-v1.car");
    let reader = FailingReader {
        data: bytes.clone(),
        pos: 0,
        limit: bytes.len() / 2,
    };
    let err = r.ingester.ingest(reader, None).await.unwrap_err();
    assert!(matches!(err, IngestError::Read { .. }), "{err}");
    assert_nothing_left(&r, "interrupted upload", &sections(&bytes)).await;
    let summary = r.ingester.ingest(&bytes[..], None).await.unwrap();
    assert!(!summary.already_present);
}

#[tokio::test]
async fn empty_input_is_refused() {
    let r = repo();
    let err = r.ingester.ingest(&b""[..], None).await.unwrap_err();
    assert!(err.is_bad_input(), "{err}");
    assert_nothing_left(&r, "empty input", &[]).await;
}

#[tokio::test]
async fn concurrent_uploads_of_one_car_store_it_once() {
    let r = Arc::new(repo());
    let bytes = Arc::new(fixture("go-car/sample-wrapped-v2.car"));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (r, bytes) = (r.clone(), bytes.clone());
        tasks.push(tokio::spawn(async move {
            r.ingester.ingest(&bytes[..], None).await.unwrap()
        }));
    }
    let mut fresh = 0;
    for t in tasks {
        fresh += usize::from(!t.await.unwrap().already_present);
    }
    assert_eq!(fresh, 1);
    assert_eq!(objects(&r.store).await.len(), 1);
}

#[tokio::test]
async fn a_car_already_in_the_store_is_indexed_in_place() {
    let r = repo();
    let bytes = fixture("go-car/sample-v1-noidentity.car");
    let key = "uploads/straight-to-bucket.car";
    r.store
        .put(&object_store::path::Path::from(key), bytes.clone().into())
        .await
        .unwrap();

    let summary = r.ingester.index_stored(key, None).await.unwrap();
    assert_eq!(summary.car_key, key);
    assert!(!summary.already_present);
    assert_eq!(summary.bytes, bytes.len() as u64);
    // Not copied: the only object is the one uploaded.
    assert_eq!(objects(&r.store).await, vec![key.to_owned()]);
    let blocks = sections(&bytes);
    assert_eq!(summary.blocks, blocks.len() as u64);
    for (cid, data) in &blocks {
        let location = &r.index.locations(cid.hash()).await.unwrap()[0];
        assert_eq!(location.car, key);
        let start = location.offset as usize;
        assert_eq!(
            &bytes[start..start + location.length as usize],
            data.as_slice()
        );
    }
    let again = r.ingester.index_stored(key, None).await.unwrap();
    assert!(again.already_present);

    // A damaged CAR in the bucket: refused, nothing visible, the object left alone.
    let bad_key = "uploads/bad.car";
    let bad = fixture("go-car/sample-v1-tailing-corrupt-section.car");
    r.store
        .put(&object_store::path::Path::from(bad_key), bad.into())
        .await
        .unwrap();
    let err = r.ingester.index_stored(bad_key, None).await.unwrap_err();
    assert!(err.is_bad_input(), "{err}");
    assert!(r.index.car(bad_key).await.unwrap().is_none());
    assert_eq!(objects(&r.store).await.len(), 2);
    for key in ["", "/", "uploads//x.car", "uploads/../x.car"] {
        let refused = r.ingester.index_stored(key, None).await.unwrap_err();
        assert!(
            matches!(refused, IngestError::InvalidKey { .. }) && refused.is_bad_input(),
            "{key:?}: {refused}"
        );
    }
    let missing = r.ingester.index_stored("uploads/none.car", None).await;
    assert!(
        matches!(missing, Err(IngestError::NotFound { .. })),
        "{missing:?}"
    );
}

#[tokio::test]
async fn the_sweep_removes_every_kind_of_leftover_and_nothing_committed() {
    let r = repo();
    let root = r.dir.path().join("objects");
    let bytes = fixture("go-car/sample-v1.car");
    let kept = r.ingester.ingest(&bytes[..], None).await.unwrap();
    // What a killed ingest leaves: a finished upload not yet renamed, the local store's
    // in-progress files (which its `list` does not return), and a renamed CAR never committed.
    r.store
        .put(&"staging/killed.car".into(), vec![1u8; 1000].into())
        .await
        .unwrap();
    std::fs::write(root.join("staging/uploading.car#1"), vec![2u8; 3000]).unwrap();
    std::fs::write(root.join("cars/copying.car#2"), vec![3u8; 500]).unwrap();
    let orphan = fixture("go-car/sample-wrapped-v2.car");
    r.store
        .put(&"cars/never-committed.car".into(), orphan.clone().into())
        .await
        .unwrap();
    assert_eq!(files_under(&root).len(), 5);

    // Shared store: all of them are too young to be taken for leftovers.
    let shared = SweepConfig::for_store(Some(root.clone()), true);
    assert_eq!(
        r.ingester.sweep(&shared).await.unwrap(),
        SweepReport::default()
    );
    assert_eq!(files_under(&root).len(), 5);

    // This process alone, before ingesting: every leftover goes, the committed CAR stays.
    let exclusive = SweepConfig::for_store(Some(root.clone()), false);
    let report = r.ingester.sweep(&exclusive).await.unwrap();
    assert_eq!(
        report,
        SweepReport {
            staging: 1,
            temporaries: 2,
            orphans: 1,
            bytes: 1000 + 3000 + 500 + orphan.len() as u64,
        }
    );
    assert_eq!(
        files_under(&root),
        vec![(kept.car_key.clone(), bytes.len() as u64)]
    );
    assert!(r.index.car(&kept.car_key).await.unwrap().is_some());
    let again = r.ingester.ingest(&bytes[..], None).await.unwrap();
    assert!(again.already_present);
}
