//! Serving memory (renovation issue, item 6): what a fresh `hydrant daemon` holds idle and at
//! most while one Bitswap client fetches a 64 MiB file three times.
//!
//! `serving_memory_benchmark` (ignored; run by hand, see BENCHMARKS.md, "P2 serving memory"):
//!
//! ```text
//! cargo test --release -p hydrant-cli --test serving_memory -- --ignored --nocapture
//! ```
//!
//! The CAR is ingested with no daemon running (`hydrant ingest` writes the repository itself),
//! so the daemon's peak RSS (`VmHWM`) covers its start-up and the fetches only.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{BitswapClient, Ports, Replica};
use hydrant_bitswap::WantType;
use hydrant_node::ProcessMemory;

const MIB: f64 = 1024.0 * 1024.0;

async fn memory_report(api_url: &str) -> serde_json::Value {
    reqwest::get(format!("{api_url}/api/v1/debug/memory"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn summary(report: &serde_json::Value) -> String {
    format!(
        "rss {:.1} MiB, read cache {:.1} MiB, presence filter {:.3} MiB, budget in use {:.1} MiB",
        report["process"]["rss_bytes"].as_u64().unwrap() as f64 / MIB,
        report["caches"]["read_cache_bytes"].as_u64().unwrap() as f64 / MIB,
        report["caches"]["presence_filter_bytes"].as_u64().unwrap() as f64 / MIB,
        report["budget"]["in_use"].as_u64().unwrap() as f64 / MIB,
    )
}

/// Benchmark, run by hand (BENCHMARKS.md, "P2 serving memory"). `HYDRANT_BENCH_CONFIG` adds
/// lines to the repository's config (e.g. `[read]\ncache_bytes = 268435456` to compare).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark, run by hand: see BENCHMARKS.md"]
async fn serving_memory_benchmark() {
    let dir = tempfile::tempdir().unwrap();
    // 64 raw blocks of 1 MiB: a 64 MiB file's leaves, as Kubo chunks it.
    let (cids, car) = common::raw_file_car(64, 1024 * 1024);
    let extra = std::env::var("HYDRANT_BENCH_CONFIG").unwrap_or_default();
    let repo = common::offline_repo(dir.path(), &car, &extra);
    drop(car);

    let daemon = Replica::start(&repo, Ports::free());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = daemon.memory();
    let before = memory_report(&daemon.info.api_url).await;

    let pid = daemon.child.id();
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let sampling = sampling.clone();
        async move {
            let mut samples = Vec::new();
            while sampling.load(Ordering::Relaxed) {
                samples.push(ProcessMemory::of(pid).rss_bytes);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            samples
        }
    });
    let addr = daemon.swarm_addr();
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let mut client = BitswapClient::connect(&addr).await;
        client.want(&cids, WantType::Block).await;
        let heard = client
            .collect(Duration::from_secs(120), |h| h.blocks.len() >= cids.len())
            .await;
        assert_eq!(heard.blocks.len(), cids.len(), "every block arrived");
        times.push(started.elapsed());
    }
    sampling.store(false, Ordering::Relaxed);
    let samples = sampler.await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = memory_report(&daemon.info.api_url).await;
    let peak = daemon.memory().peak_rss_bytes;
    eprintln!(
        "serving memory: idle RSS {:.1} MiB (peak so far {:.1} MiB); 3 fetches of 64 MiB in {:?}; \
         peak RSS {:.1} MiB (sampled max {:.1} MiB); RSS after {:.1} MiB",
        idle.rss_bytes as f64 / MIB,
        idle.peak_rss_bytes as f64 / MIB,
        times,
        peak as f64 / MIB,
        samples.iter().copied().max().unwrap_or(0) as f64 / MIB,
        daemon.rss_bytes() as f64 / MIB,
    );
    eprintln!("debug/memory before: {}", summary(&before));
    eprintln!("debug/memory after:  {}", summary(&after));
}
