//! Benchmark of IPNI publishing (BENCHMARKS.md, "IPNI publishing"): an embedded index holding
//! `CARS` committed CARs of `PER_CAR` synthetic sha2-256 multihashes each (set up, not timed),
//! then one `Publisher::publish_pending` over a local-directory object store (timed): the
//! whole chain from nothing.
//!
//! `cargo run --release -p hydrant-ipni-publisher --example publish_bench -- [CARS] [PER_CAR]`
//! (default 1000 10000), or `scripts/bench.sh ipni [CARS] [PER_CAR]`. Prints one JSON line.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hydrant_index::conformance::test_multihash;
use hydrant_index::{CarCatalog, CarRecord, FjallIndex, StagedBlock};
use hydrant_ipni_publisher::{Publisher, PublisherConfig, PublisherStats};
use libp2p_identity::Keypair;

fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let cars: u32 = args.next().map_or(1000, |a| a.parse().expect("CARS"));
    let per_car: u32 = args.next().map_or(10_000, |a| a.parse().expect("PER_CAR"));
    let dir = tempfile::tempdir().unwrap();
    let index = FjallIndex::open(&dir.path().join("index")).unwrap();
    std::fs::create_dir_all(dir.path().join("store")).unwrap();
    let store = Arc::new(
        object_store::local::LocalFileSystem::new_with_prefix(dir.path().join("store")).unwrap(),
    );

    let setup = Instant::now();
    for n in 0..cars {
        let key = format!("cars/{n:064x}.car");
        let rows: Vec<StagedBlock> = (0..per_car)
            .map(|i| StagedBlock {
                multihash: test_multihash(n * per_car + i),
                offset: u64::from(i) * 1024,
                length: 1000,
            })
            .collect();
        index.stage_blocks(&key, &rows).await.unwrap();
        index
            .commit_car(&CarRecord {
                key,
                version: 1,
                roots: vec![],
                size: u64::from(per_car) * 1024,
                blocks: u64::from(per_car),
                block_bytes: u64::from(per_car) * 1000,
                ingested_at: 0,
            })
            .await
            .unwrap();
    }
    let setup = setup.elapsed();
    let rss_before = rss_bytes();

    let stats = Arc::new(PublisherStats::default());
    let publisher = Publisher::new(
        Arc::new(index.clone()),
        Arc::new(index.clone()),
        store,
        PublisherConfig::new(
            Keypair::ed25519_from_bytes([7u8; 32]).expect("32 bytes"),
            vec!["/ip4/127.0.0.1/tcp/4001".into()],
            hydrant_ipni::metadata::bitswap(),
        ),
        stats.clone(),
    );
    let start = Instant::now();
    let head = publisher.publish_pending().await.unwrap().expect("a head");
    let seconds = start.elapsed().as_secs_f64();
    let entries = stats.entries.load(Ordering::Relaxed);
    println!(
        "{{\"benchmark\":\"ipni-publish\",\"cars\":{cars},\"multihashes\":{entries},\
         \"advertisements\":{},\"entry_chunks\":{},\"bytes_written\":{},\"seconds\":{seconds:.2},\
         \"multihashes_per_s\":{:.0},\"setup_seconds\":{:.1},\"rss_before_bytes\":{rss_before},\
         \"peak_rss_bytes\":{}}}",
        head.ads,
        stats.entry_chunks.load(Ordering::Relaxed),
        stats.bytes_written.load(Ordering::Relaxed),
        entries as f64 / seconds,
        setup.as_secs_f64(),
        peak_rss_bytes(),
    );
}
