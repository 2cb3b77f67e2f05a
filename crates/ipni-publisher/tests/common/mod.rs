//! Helpers of the publisher tests: an embedded index with synthetic CARs, and a chain walker
//! that checks every CID and signature the way an indexer does.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;

use cid::Cid;
use hydrant_index::conformance::test_multihash;
use hydrant_index::{CarCatalog, CarRecord, FjallIndex, Multihash, StagedBlock};
use hydrant_ipni::{Advertisement, EntryChunk, dag_json_cid};
use hydrant_ipni_publisher::{AdSource, Publisher, PublisherConfig, PublisherStats};
use libp2p_identity::Keypair;
use object_store::ObjectStore;
use object_store::memory::InMemory;

/// An embedded index in a temporary directory, and an in-memory object store.
pub struct World {
    pub dir: tempfile::TempDir,
    pub index: FjallIndex,
    pub store: Arc<dyn ObjectStore>,
    pub keypair: Keypair,
}

impl World {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let index = FjallIndex::open(dir.path()).unwrap();
        Self {
            dir,
            index,
            store: Arc::new(InMemory::new()),
            keypair: Keypair::ed25519_from_bytes([7u8; 32]).expect("32 bytes"),
        }
    }

    pub fn publisher(&self, chunk_size: usize, batch: usize) -> Publisher {
        let mut config = PublisherConfig::new(
            self.keypair.clone(),
            vec!["/ip4/127.0.0.1/tcp/4001".into()],
            hydrant_ipni::metadata::bitswap(),
        );
        config.chunk_size = chunk_size;
        config.batch = batch;
        Publisher::new(
            Arc::new(self.index.clone()),
            Arc::new(self.index.clone()),
            self.store.clone(),
            config,
            Arc::new(PublisherStats::default()),
        )
    }

    pub fn source(&self) -> AdSource {
        AdSource::new(
            Arc::new(self.index.clone()),
            self.store.clone(),
            self.keypair.clone(),
            hydrant_ipni_publisher::DEFAULT_TOPIC.into(),
            1 << 20,
        )
    }
}

/// The multihashes of synthetic CAR `n` with `count` blocks (seeds distinct per CAR).
pub fn car_multihashes(n: u32, count: u32) -> Vec<Multihash> {
    (0..count).map(|i| test_multihash(n * 1_000_000 + i)).collect()
}

pub fn car_key(n: u32) -> String {
    format!("cars/{n:064x}.car")
}

/// Stages and commits synthetic CAR `n` with `count` blocks.
pub async fn commit_car(index: &dyn CarCatalog, n: u32, count: u32) {
    let key = car_key(n);
    let rows: Vec<StagedBlock> = car_multihashes(n, count)
        .into_iter()
        .enumerate()
        .map(|(i, multihash)| StagedBlock {
            multihash,
            offset: i as u64 * 100,
            length: 10,
        })
        .collect();
    index.stage_blocks(&key, &rows).await.unwrap();
    index
        .commit_car(&CarRecord {
            key,
            version: 1,
            roots: vec![],
            size: 100,
            blocks: u64::from(count),
            block_bytes: 10,
            ingested_at: 0,
        })
        .await
        .unwrap();
}

/// One advertisement of a walked chain.
#[derive(Debug)]
pub struct Walked {
    pub cid: Cid,
    pub ad: Advertisement,
    /// Its entries, from the head chunk on.
    pub entries: Vec<Multihash>,
    pub chunks: usize,
}

/// Walks the chain from the signed head, as an indexer does: every block's bytes must hash to
/// its CID, every advertisement's signature must verify and name the provider. Returns the
/// advertisements from the first (genesis) to the head.
pub async fn walk(source: &AdSource, provider: &libp2p_identity::PeerId) -> Vec<Walked> {
    let Some(head) = source.signed_head().await.unwrap() else {
        return Vec::new();
    };
    let head = hydrant_ipni::SignedHead::from_dag_json(&head).unwrap();
    assert_eq!(head.verify().unwrap(), *provider, "the head is signed by the node");
    let mut out = Vec::new();
    let mut next = Some(head.head);
    while let Some(cid) = next {
        let bytes = source.block(&cid).await.unwrap().expect("every link is served");
        assert_eq!(dag_json_cid(&bytes), cid);
        let ad = Advertisement::from_dag_json(&bytes).unwrap();
        assert_eq!(ad.verify().unwrap(), *provider, "signature of {cid}");
        let mut entries = Vec::new();
        let mut chunks = 0;
        let mut link = (ad.entries != hydrant_ipni::no_entries()).then_some(ad.entries);
        while let Some(c) = link {
            let bytes = source.block(&c).await.unwrap().expect("every chunk is served");
            assert_eq!(dag_json_cid(&bytes), c);
            let chunk = EntryChunk::from_dag_json(&bytes).unwrap();
            entries.extend(chunk.entries);
            chunks += 1;
            link = chunk.next;
        }
        next = ad.previous;
        out.push(Walked {
            cid,
            ad,
            entries,
            chunks,
        });
    }
    out.reverse();
    out
}

pub fn set(mhs: &[Multihash]) -> BTreeSet<Vec<u8>> {
    mhs.iter().map(Multihash::to_bytes).collect()
}
