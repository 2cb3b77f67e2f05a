//! Lookup latency of the scale benchmark (issue 15, item 4; BENCHMARKS.md, "Scale benchmark"):
//! want-to-block over Bitswap and `GET /ipfs/<cid>?format=raw` on the gateway, against a
//! running daemon holding the blocks of `scripts/gen_small_blocks_car.py` (block `i` is
//! `struct.pack('<QQQQ', i, i+1, i+2, i+3)`, a raw CIDv1 sha2-256 block of 32 bytes).
//!
//! `scale_lookup_latency` (ignored) is driven by `scripts/bench.sh scale`, which starts the
//! daemon; by hand:
//!
//! ```text
//! SCALE_SWARM_ADDR=/ip4/127.0.0.1/tcp/4001/p2p/12D3Koo... SCALE_GATEWAY_URL=http://127.0.0.1:8080 \
//! SCALE_BLOCKS=1000000 cargo test --release -p hydrant-cli --test scale_lookup -- --ignored --nocapture
//! ```
//!
//! - `SCALE_BLOCKS`: the daemon holds blocks `0 .. SCALE_BLOCKS`; the samples are distinct
//!   blocks drawn uniformly from them (a fixed pseudo-random sequence, `SCALE_SEED`, default 1);
//! - `SCALE_SAMPLES` (default 2000) lookups of each kind, one at a time, after 20 untimed ones;
//! - Bitswap: one connection and one long-lived want stream; a single WANT_BLOCK per block, timed
//!   from writing the want to decoding the message holding the block;
//! - gateway: one keep-alive HTTP/1.1 connection; timed from sending the request to having the
//!   whole 32-byte body (checked).
//!
//! Prints one line `SCALE_LOOKUP {json}` on stdout: milliseconds, p50/p90/p99/max per kind.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cid::Cid;
use common::{WantStream, percentile};
use multihash_codetable::{Code, MultihashDigest};

/// Lookups done before timing (connections, the server's answer stream, first page faults).
const WARMUP: usize = 20;

/// Block `i` of `scripts/gen_small_blocks_car.py`.
fn block(i: u64) -> Vec<u8> {
    [i, i + 1, i + 2, i + 3]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect()
}

fn block_cid(i: u64) -> Cid {
    Cid::new_v1(0x55, Code::Sha2_256.digest(&block(i)))
}

/// splitmix64: a fixed pseudo-random sequence, no dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// `count` distinct block numbers below `blocks`, drawn uniformly.
fn sample(rng: &mut SplitMix, blocks: u64, count: usize, taken: &mut HashSet<u64>) -> Vec<u64> {
    assert!(
        (taken.len() + count) as u64 <= blocks,
        "{count} more distinct samples of {blocks} blocks"
    );
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let i = rng.next() % blocks;
        if taken.insert(i) {
            out.push(i);
        }
    }
    out
}

fn env<T: std::str::FromStr>(name: &str, default: Option<T>) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not valid")),
        Err(_) => default.unwrap_or_else(|| panic!("{name} is not set (see the module docs)")),
    }
}

/// p50/p90/p99/max of `ms` as JSON.
fn summary(mut ms: Vec<f64>) -> serde_json::Value {
    ms.sort_by(f64::total_cmp);
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    serde_json::json!({
        "samples": ms.len(),
        "p50_ms": round(percentile(&ms, 0.5)),
        "p90_ms": round(percentile(&ms, 0.9)),
        "p99_ms": round(percentile(&ms, 0.99)),
        "max_ms": round(*ms.last().expect("samples")),
    })
}

async fn bitswap_latency(addr: &libp2p::Multiaddr, warmup: &[u64], timed: &[u64]) -> Vec<f64> {
    let mut client = WantStream::connect(addr).await;
    let mut ms = Vec::with_capacity(timed.len());
    for (n, &i) in warmup.iter().chain(timed).enumerate() {
        let cid = block_cid(i);
        let sent = Instant::now();
        client.want(std::slice::from_ref(&cid)).await;
        loop {
            let (at, blocks) = client.next().await;
            if blocks.contains(&cid) {
                if n >= warmup.len() {
                    ms.push(at.duration_since(sent).as_secs_f64() * 1e3);
                }
                break;
            }
        }
    }
    ms
}

async fn gateway_latency(gateway: &str, warmup: &[u64], timed: &[u64]) -> Vec<f64> {
    // One connection, kept alive: the pool holds at most one idle connection and requests are
    // sequential, so every request after the first reuses it.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .http1_only()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    let mut ms = Vec::with_capacity(timed.len());
    for (n, &i) in warmup.iter().chain(timed).enumerate() {
        let url = format!("{gateway}/ipfs/{}?format=raw", block_cid(i));
        let sent = Instant::now();
        let answer = client.get(&url).send().await.expect("GET");
        let status = answer.status();
        let body = answer.bytes().await.expect("the body");
        let took = sent.elapsed();
        assert!(status.is_success(), "{url}: {status}");
        assert_eq!(body.as_ref(), block(i).as_slice(), "{url}: wrong bytes");
        if n >= warmup.len() {
            ms.push(took.as_secs_f64() * 1e3);
        }
    }
    ms
}

/// Benchmark, driven by `scripts/bench.sh scale` (BENCHMARKS.md, "Scale benchmark").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark, run by scripts/bench.sh scale: see BENCHMARKS.md"]
async fn scale_lookup_latency() {
    let addr: libp2p::Multiaddr = env("SCALE_SWARM_ADDR", None);
    let gateway: String = env("SCALE_GATEWAY_URL", None);
    let blocks: u64 = env("SCALE_BLOCKS", None);
    let samples: usize = env("SCALE_SAMPLES", Some(2000));
    let mut rng = SplitMix(env("SCALE_SEED", Some(1)));
    let mut taken = HashSet::new();
    let mut draw = |count| sample(&mut rng, blocks, count, &mut taken);
    let (bitswap_warmup, bitswap_timed) = (draw(WARMUP), draw(samples));
    let (gateway_warmup, gateway_timed) = (draw(WARMUP), draw(samples));

    let bitswap = bitswap_latency(&addr, &bitswap_warmup, &bitswap_timed).await;
    let gateway = gateway_latency(
        gateway.trim_end_matches('/'),
        &gateway_warmup,
        &gateway_timed,
    )
    .await;
    let report = serde_json::json!({
        "blocks": blocks,
        "bitswap_want_to_block": summary(bitswap),
        "gateway_raw": summary(gateway),
    });
    println!("SCALE_LOOKUP {report}");
}
