//! Serving speed (renovation issue, item 8, "Serving (P1)"): how long a want takes to become a
//! block on the wire, and how fast a client with a window of wants fetches a file, from a real
//! `hydrant daemon` over loopback TCP (noise, yamux).
//!
//! `serving_speed_benchmark` (ignored; run by hand, see BENCHMARKS.md, "P1 serving speed"):
//!
//! ```text
//! cargo test --release -p hydrant-cli --test serving_speed -- --ignored --nocapture
//! HYDRANT_BIN=/path/to/other/hydrant cargo test ...   # the same client against another binary
//! ```
//!
//! The file is 64 MiB in 256 raw blocks of 256 KiB (all different), ingested with no daemon
//! running. The client is a Bitswap 1.2.0 peer of its own: one long-lived stream for its wants,
//! every answer time-stamped as the frame is decoded.
//!
//! - *latency*: 200 single WANT_BLOCKs, one at a time, each for a block not sent before on
//!   this connection (the daemon's read cache is off for local storage; the OS page cache holds
//!   the CAR): the time from writing the want to decoding the message holding its block, in ms
//!   (median, p90, max);
//! - *throughput*: a fresh connection fetches all 256 blocks keeping `WINDOW` wants
//!   outstanding (a new want per block received), in MiB/s from the first want to the last
//!   block; `RUNS` runs, median reported. The time to the first block of each run is printed
//!   too (a window of wants at once: what batching delays).
//!
//! `HYDRANT_BENCH_CONFIG` adds lines to the repository's config (e.g. `[read]\nverify = true`).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Ports, Replica, WantStream};

const MIB: f64 = 1024.0 * 1024.0;
const BLOCK_SIZE: usize = 256 * 1024;
const BLOCKS: usize = 256;
/// Single wants timed for the latency figures.
const LATENCY_WANTS: usize = 200;
/// Wants a throughput client keeps outstanding.
const WINDOW: usize = 32;
/// Throughput runs; the median is reported.
const RUNS: usize = 5;

/// Benchmark, run by hand (BENCHMARKS.md, "P1 serving speed").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark, run by hand: see BENCHMARKS.md"]
async fn serving_speed_benchmark() {
    let dir = tempfile::tempdir().unwrap();
    let (cids, car) = common::raw_file_car(BLOCKS, BLOCK_SIZE);
    let extra = std::env::var("HYDRANT_BENCH_CONFIG").unwrap_or_default();
    let repo = common::offline_repo(dir.path(), &car, &extra);
    drop(car);
    let daemon = Replica::start(&repo, Ports::free());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let addr = daemon.swarm_addr();

    // (a) Want-to-block latency: one WANT_BLOCK at a time, each for a new block.
    let mut client = WantStream::connect(&addr).await;
    // One untimed want opens the server's answer stream.
    client.want(&cids[BLOCKS - 1..]).await;
    client.next().await;
    let mut latencies = Vec::with_capacity(LATENCY_WANTS);
    for cid in &cids[..LATENCY_WANTS] {
        let sent = Instant::now();
        client.want(std::slice::from_ref(cid)).await;
        loop {
            let (at, blocks) = client.next().await;
            if blocks.contains(cid) {
                latencies.push(at.duration_since(sent).as_secs_f64() * 1e3);
                break;
            }
        }
    }
    drop(client);
    latencies.sort_by(f64::total_cmp);
    eprintln!(
        "serving speed: want-to-block latency over {LATENCY_WANTS} single WANT_BLOCKs of \
         {} KiB blocks: median {:.3} ms, p90 {:.3} ms, max {:.3} ms",
        BLOCK_SIZE / 1024,
        common::percentile(&latencies, 0.5),
        common::percentile(&latencies, 0.9),
        latencies.last().unwrap(),
    );

    // (b) Throughput with a window of wants, fresh connection per run.
    let mut rates = Vec::with_capacity(RUNS);
    for run in 1..=RUNS {
        let mut client = WantStream::connect(&addr).await;
        let started = Instant::now();
        client.want(&cids[..WINDOW]).await;
        let mut next = WINDOW;
        let mut got = HashSet::new();
        let mut first = None;
        let mut last = started;
        while got.len() < BLOCKS {
            let (at, blocks) = client.next().await;
            if blocks.is_empty() {
                continue;
            }
            first.get_or_insert(at);
            last = at;
            let fresh = blocks.into_iter().filter(|c| got.insert(*c)).count();
            let more = fresh.min(BLOCKS - next);
            if more > 0 {
                client.want(&cids[next..next + more]).await;
                next += more;
            }
        }
        let secs = last.duration_since(started).as_secs_f64();
        let rate = (BLOCKS * BLOCK_SIZE) as f64 / MIB / secs;
        eprintln!(
            "serving speed: run {run}: {BLOCKS} blocks in {secs:.3} s = {rate:.1} MiB/s \
             (window {WINDOW}; first block after {:.3} ms)",
            first.unwrap().duration_since(started).as_secs_f64() * 1e3
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    eprintln!(
        "serving speed: throughput, window {WINDOW}, median of {RUNS}: {:.1} MiB/s (min {:.1}, \
         max {:.1})",
        common::percentile(&rates, 0.5),
        rates[0],
        rates[RUNS - 1]
    );
}
