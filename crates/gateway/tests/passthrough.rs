//! The passthrough of stored CAR sections (DESIGN.md § "Gateway passthrough of stored CAR
//! sections"): whatever the stored file holds (the walk's order or not, duplicates or not,
//! extra blocks, a corrupt block), a CAR stream sends the same bytes as the block-by-block
//! path; when the file is the walk itself, those bytes are the file's own sections.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;
use futures::StreamExt;
use hydrant_blocks::{Blockstore, BlockstoreError, Multihash, StoredLocation, identity_block};
use hydrant_car::{CarDecoder, Event, Limits, encode_section, encode_v1_header, verify_block};
use hydrant_gateway::{CarRequest, CarStreamOptions, GatewayConfig, car_stream, router};
use hydrant_unixfs::{DagScope, PbLink, PbNode};
use multihash_codetable::{Code, MultihashDigest};
use proptest::prelude::*;

/// Stored CAR files and an index of their sections, like `CarBlockstore`: `get` reads a block
/// from the first file listing it (verifying it when `verify`), `read_stored` reads the files.
#[derive(Default)]
struct StoredBackend {
    cars: HashMap<String, Bytes>,
    index: HashMap<Multihash, Vec<(String, u64, u32)>>,
    verify: bool,
    gets: AtomicUsize,
    stored_reads: AtomicUsize,
}

impl StoredBackend {
    fn new(verify: bool) -> Self {
        StoredBackend {
            verify,
            ..Default::default()
        }
    }

    /// Stores a CAR (v1 or v2) under `key`, indexing its sections in file order.
    fn add(&mut self, key: &str, car: Vec<u8>) {
        let mut decoder = CarDecoder::new(Limits::default());
        decoder.push(&car);
        while let Some(event) = decoder.next_event().unwrap() {
            if let Event::Section(s) = event {
                self.index.entry(*s.cid.hash()).or_default().push((
                    key.to_owned(),
                    s.data_offset,
                    s.data.len() as u32,
                ));
            }
        }
        self.cars.insert(key.to_owned(), Bytes::from(car));
    }
}

#[async_trait]
impl Blockstore for StoredBackend {
    async fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
        Ok(self.get(cid).await?.is_some())
    }

    async fn size(&self, cid: &Cid) -> Result<Option<u32>, BlockstoreError> {
        Ok(self.get(cid).await?.map(|b| b.len() as u32))
    }

    async fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        if let Some(block) = identity_block(cid) {
            return Ok(Some(block));
        }
        self.gets.fetch_add(1, Ordering::Relaxed);
        let Some((key, offset, len)) = self.index.get(cid.hash()).and_then(|l| l.first()) else {
            return Ok(None);
        };
        let start = *offset as usize;
        let data = self.cars[key].slice(start..start + *len as usize);
        if self.verify && !hydrant_blocks::matches(cid.hash(), &data).unwrap() {
            return Err(BlockstoreError::Corrupt {
                cid: *cid,
                key: key.clone(),
                offset: *offset,
            });
        }
        Ok(Some(data))
    }

    async fn stored_location(&self, cid: &Cid) -> Result<Option<StoredLocation>, BlockstoreError> {
        Ok(self
            .index
            .get(cid.hash())
            .and_then(|l| l.first())
            .map(|(key, offset, length)| StoredLocation {
                car: key.clone(),
                offset: *offset,
                length: *length,
                car_size: self.cars[key].len() as u64,
            }))
    }

    async fn read_stored(&self, car: &str, range: Range<u64>) -> Result<Bytes, BlockstoreError> {
        self.stored_reads.fetch_add(1, Ordering::Relaxed);
        Ok(self.cars[car].slice(range.start as usize..range.end as usize))
    }

    fn verifies_reads(&self) -> bool {
        self.verify
    }
}

/// A DAG: `groups` dag-pb nodes (no UnixFS data) under a dag-pb root, each linking the leaves
/// listed (indices into `leaves`, repeats allowed); returns the root and every block.
fn dag(leaves: &[Vec<u8>], groups: &[Vec<usize>]) -> (Cid, HashMap<Cid, Bytes>) {
    let mut blocks = HashMap::new();
    let leaf_cids: Vec<Cid> = leaves
        .iter()
        .map(|data| {
            let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(data));
            blocks.insert(cid, Bytes::from(data.clone()));
            cid
        })
        .collect();
    let mut node = |links: Vec<Cid>, tag: usize| {
        let node = PbNode {
            links: links
                .into_iter()
                .map(|cid| PbLink {
                    cid,
                    name: None,
                    tsize: None,
                })
                .collect(),
            data: Some(Bytes::from(format!("node {tag}"))),
        };
        let bytes = node.encode();
        let cid = Cid::new_v1(0x70, Code::Sha2_256.digest(&bytes));
        blocks.insert(cid, Bytes::from(bytes));
        cid
    };
    let children: Vec<Cid> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| node(g.iter().map(|&l| leaf_cids[l]).collect(), i))
        .collect();
    let root = node(children, usize::MAX);
    (root, blocks)
}

/// A backend holding `blocks` (in one file, in no particular order).
fn all_blocks(root: Cid, blocks: &HashMap<Cid, Bytes>) -> Arc<StoredBackend> {
    let mut b = StoredBackend::new(true);
    let order: Vec<Cid> = blocks.keys().copied().collect();
    b.add("all", car_of(&[root], &order, blocks));
    Arc::new(b)
}

/// A CARv1 of `order` (each a block of `blocks`), with `roots` in its header.
fn car_of(roots: &[Cid], order: &[Cid], blocks: &HashMap<Cid, Bytes>) -> Vec<u8> {
    let mut out = encode_v1_header(roots);
    for cid in order {
        encode_section(cid, &blocks[cid], &mut out);
    }
    out
}

/// The CIDs of a CAR's sections, in order.
fn sections(car: &[u8]) -> Vec<Cid> {
    let mut decoder = CarDecoder::new(Limits::default());
    decoder.push(car);
    let mut out = Vec::new();
    while let Some(event) = decoder.next_event().unwrap() {
        if let Event::Section(s) = event {
            verify_block(&s.cid, &s.data).unwrap();
            out.push(s.cid);
        }
    }
    decoder.finish().unwrap();
    out
}

/// Bytes after which [`stream`] stops reading (a dups=y walk of a DAG with much sharing, as
/// some fixtures are, grows exponentially).
const CAP: usize = 16 << 20;

/// The stream's items (until [`CAP`] bytes), and whether it ended with an error.
async fn stream(
    backend: Arc<StoredBackend>,
    root: Cid,
    dups: bool,
    options: CarStreamOptions,
) -> (Vec<Bytes>, bool) {
    let mut s = Box::pin(car_stream(
        backend,
        CarRequest::new(root, DagScope::All, dups),
        options,
    ));
    let mut items = Vec::new();
    let mut total = 0;
    while let Some(item) = s.next().await {
        match item {
            Ok(bytes) => {
                total += bytes.len();
                items.push(bytes);
                if total >= CAP {
                    break;
                }
            }
            Err(_) => return (items, true),
        }
    }
    (items, false)
}

fn block_by_block() -> CarStreamOptions {
    CarStreamOptions {
        passthrough: false,
        ..Default::default()
    }
}

/// Passthrough and block-by-block streams of `root` over `backend` send the same bytes and
/// end the same way; returns the passthrough's items.
async fn same_as_block_by_block(
    backend: &Arc<StoredBackend>,
    root: Cid,
    dups: bool,
    options: CarStreamOptions,
) -> Vec<Bytes> {
    let (want, want_err) = stream(backend.clone(), root, dups, block_by_block()).await;
    backend.gets.store(0, Ordering::Relaxed);
    let (got, got_err) = stream(backend.clone(), root, dups, options).await;
    let (g, w) = (got.concat(), want.concat());
    if g.len() >= CAP && w.len() >= CAP {
        let n = g.len().min(w.len());
        assert_eq!(g[..n], w[..n], "dups={dups} (first {n} bytes)");
    } else {
        assert_eq!(g, w, "dups={dups}");
        assert_eq!(got_err, want_err, "dups={dups}");
    }
    got
}

/// Leaves 0..n of `size` bytes each (distinct).
fn leaves(n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut data = format!("leaf {i} ").into_bytes();
            data.resize(size.max(data.len()), b'a' + (i % 26) as u8);
            data
        })
        .collect()
}

#[tokio::test]
async fn a_stored_walk_is_sent_as_stored() {
    // 40 leaves of 256 KiB: 10 MiB, read in 256 KiB, 512 KiB, ... then 4 MiB (or 3 MiB)
    // chunks (sections straddle chunk ends).
    let leaves = leaves(40, 256 * 1024);
    let groups = vec![(0..20).collect(), (20..40).collect::<Vec<_>>()];
    let (root, blocks) = dag(&leaves, &groups);
    let (reference, _) = stream(all_blocks(root, &blocks), root, false, block_by_block()).await;
    let walk = sections(&reference.concat());
    // The stored file has another header (two roots); its sections are the walk.
    let other = Cid::new_v1(0x55, Code::Sha2_256.digest(b"other"));
    let stored = car_of(&[root, other], &walk, &blocks);
    let stored_header = encode_v1_header(&[root, other]).len();
    let mut backend = StoredBackend::new(true);
    backend.add("walk.car", stored.clone());
    let backend = Arc::new(backend);

    for prefetch_bytes in [None, Some(3 * 1024 * 1024)] {
        let options = CarStreamOptions {
            prefetch_bytes,
            ..Default::default()
        };
        let got = same_as_block_by_block(&backend, root, false, options).await;
        assert_eq!(
            backend.gets.swap(0, Ordering::Relaxed),
            0,
            "no block read one by one"
        );
        // The client's header names the requested root alone; then the file's sections.
        assert_eq!(got[0], Bytes::from(encode_v1_header(&[root])));
        assert_eq!(got[1..].concat(), stored[stored_header..]);
        assert!(
            got.len() <= 1 + 10,
            "a few big items, not one per block: {}",
            got.len()
        );
    }
    assert!(backend.stored_reads.load(Ordering::Relaxed) >= 2 * 3);

    // Over HTTP: a valid CAR of the walk.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(backend.clone(), GatewayConfig::default());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let body = reqwest::get(format!("http://{addr}/ipfs/{root}?format=car"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body[..], reference.concat()[..]);
    assert_eq!(sections(&body), walk);
}

#[tokio::test]
async fn dups_y_and_n_against_stored_files_with_and_without_duplicates() {
    // Leaf 1 appears three times, leaf 0 twice: the dups=y walk repeats them.
    let leaves = leaves(4, 1000);
    let groups = vec![vec![0, 1, 1], vec![2, 1, 0, 3]];
    let (root, blocks) = dag(&leaves, &groups);
    let walk = |dups: bool| {
        let blocks = blocks.clone();
        async move {
            let b = all_blocks(root, &blocks);
            sections(&stream(b, root, dups, block_by_block()).await.0.concat())
        }
    };
    let (walk_n, walk_y) = (walk(false).await, walk(true).await);
    assert!(walk_y.len() > walk_n.len());
    for (stored_order, name) in [(&walk_n, "dups=n file"), (&walk_y, "dups=y file")] {
        let stored = car_of(&[root], stored_order, &blocks);
        let mut backend = StoredBackend::new(true);
        backend.add("stored", stored.clone());
        let backend = Arc::new(backend);
        for dups in [false, true] {
            let got = same_as_block_by_block(&backend, root, dups, Default::default()).await;
            assert_eq!(
                sections(&got.concat()),
                if dups { walk_y.clone() } else { walk_n.clone() },
                "{name}, dups={dups}"
            );
            if (dups && stored_order == &walk_y) || (!dups && stored_order == &walk_n) {
                let header = encode_v1_header(&[root]).len();
                assert_eq!(got[1..].concat(), stored[header..], "{name}, dups={dups}");
            }
        }
    }
}

#[tokio::test]
async fn a_corrupt_stored_block_ends_the_stream_as_block_by_block_does() {
    let leaves = leaves(6, 5000);
    let (root, blocks) = dag(&leaves, &[vec![0, 1, 2], vec![3, 4, 5]]);
    let (reference, _) = stream(all_blocks(root, &blocks), root, false, block_by_block()).await;
    let walk = sections(&reference.concat());
    let mut stored = car_of(&[root], &walk, &blocks);
    let last = stored.len() - 10;
    stored[last] ^= 1; // inside the last leaf
    for verify in [true, false] {
        let mut backend = StoredBackend::new(verify);
        backend.add("corrupt", stored.clone());
        let backend = Arc::new(backend);
        let (got, failed) = stream(backend.clone(), root, false, Default::default()).await;
        assert_eq!(failed, verify, "verified reads refuse the corrupt block");
        same_as_block_by_block(&backend, root, false, Default::default()).await;
        drop(got);
    }
}

#[tokio::test]
async fn a_stored_carv2_is_read_from_its_payload() {
    for name in [
        "go-car/sample-unixfs-v2.car",
        "go-car/sample-wrapped-v2.car",
    ] {
        let bytes = hydrant_testkit::fixture(name);
        let mut decoder = CarDecoder::new(Limits::default());
        decoder.push(&bytes);
        let Some(Event::Header(header)) = decoder.next_event().unwrap() else {
            panic!("{name}: no header");
        };
        let mut backend = StoredBackend::new(true);
        backend.add(name, bytes.clone());
        let backend = Arc::new(backend);
        for root in header.roots {
            for dups in [false, true] {
                let got = same_as_block_by_block(&backend, root, dups, Default::default()).await;
                assert!(!got.is_empty());
            }
        }
    }
}

#[tokio::test]
async fn every_valid_fixture_car_streams_as_block_by_block() {
    for name in hydrant_testkit::valid_fixture_cars() {
        let bytes = hydrant_testkit::fixture(&name);
        let mut decoder = CarDecoder::new(Limits::default());
        decoder.push(&bytes);
        let Ok(Some(Event::Header(header))) = decoder.next_event() else {
            continue;
        };
        let mut backend = StoredBackend::new(true);
        backend.add(&name, bytes.clone());
        let backend = Arc::new(backend);
        for root in header.roots {
            for dups in [false, true] {
                same_as_block_by_block(&backend, root, dups, Default::default()).await;
            }
        }
    }
}

/// How a stored file orders the blocks of a DAG.
#[derive(Debug, Clone)]
enum Layout {
    /// The dups=n walk.
    WalkN,
    /// The dups=y walk.
    WalkY,
    /// The dups=n walk reversed.
    Reversed,
    /// The dups=n walk with an unrelated block inserted at this index (mod length).
    Extra(usize),
    /// The dups=n walk with this many sections rotated from the front to the back.
    Rotated(usize),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_stored_layout_streams_as_block_by_block(
        groups in proptest::collection::vec(proptest::collection::vec(0usize..6, 0..6), 0..5),
        layout in prop_oneof![
            Just(Layout::WalkN),
            Just(Layout::WalkY),
            Just(Layout::Reversed),
            (0usize..40).prop_map(Layout::Extra),
            (1usize..40).prop_map(Layout::Rotated),
        ],
        also_alone in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let leaves = leaves(6, 300);
            let (root, mut blocks) = dag(&leaves, &groups);
            let b = all_blocks(root, &blocks);
            let walk_n = sections(&stream(b.clone(), root, false, block_by_block()).await.0.concat());
            let walk_y = sections(&stream(b, root, true, block_by_block()).await.0.concat());
            let order = match layout {
                Layout::WalkN => walk_n.clone(),
                Layout::WalkY => walk_y,
                Layout::Reversed => walk_n.iter().rev().copied().collect(),
                Layout::Extra(at) => {
                    let extra = Cid::new_v1(0x55, Code::Sha2_256.digest(b"extra"));
                    blocks.insert(extra, Bytes::from_static(b"extra"));
                    let mut o = walk_n.clone();
                    o.insert(at % (o.len() + 1), extra);
                    o
                }
                Layout::Rotated(n) => {
                    let mut o = walk_n.clone();
                    let len = o.len();
                    o.rotate_left(n % len);
                    o
                }
            };
            let mut backend = StoredBackend::new(true);
            backend.add("stored", car_of(&[root], &order, &blocks));
            if also_alone {
                // Every block also in a file of its own, listed second.
                for (i, cid) in walk_n.iter().enumerate() {
                    backend.add(&format!("alone-{i}"), car_of(&[*cid], &[*cid], &blocks));
                }
            }
            let backend = Arc::new(backend);
            for dups in [false, true] {
                same_as_block_by_block(&backend, root, dups, Default::default()).await;
            }
        });
    }
}
