//! Gateway passthrough (renovation item 9, "Gateway (P6)"): a whole-DAG CAR request for the
//! root of a stored CAR in DFS order answers the stored file's own sections after the
//! gateway's header, at close to the speed of reading the file.
//!
//! `gateway_car_vs_reading_the_file` (ignored; run by hand, see BENCHMARKS.md, "P6 gateway"):
//!
//! ```text
//! cargo test --release -p hydrant-cli --test gateway_passthrough -- --ignored --nocapture
//! ```
//!
//! `HYDRANT_BENCH_MIB` sets the file size (default 128 MiB), `BENCH_RUNS` the runs (default 5),
//! `HYDRANT_BIN` the binary (main's, for the "before" row), `HYDRANT_BENCH_CONFIG` extra config
//! lines (e.g. `[read]\nverify = false`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cid::Cid;
use common::{Ports, Replica};
use hydrant_unixfs::{DataType, PbLink, PbNode, UnixFsData};
use multihash_codetable::{Code, MultihashDigest};

/// A block: its CID and bytes.
type Block = (Cid, Vec<u8>);

/// A UnixFS file of `mib` MiB in 256 KiB raw leaves (Kubo's chunker), 128 leaves per
/// intermediate node, written in DFS order (root, node, its leaves, next node, …) with the root
/// as the header's single root: what `ipfs dag export` and ipfs-car write.
fn dfs_file_car(mib: usize) -> (Cid, Vec<u8>) {
    let leaf = 256 * 1024;
    let leaves: Vec<Block> = (0..mib * 4)
        .map(|i| {
            let mut data = vec![0u8; leaf];
            for (j, chunk) in data.chunks_mut(8).enumerate() {
                chunk.copy_from_slice(&((i as u64) << 32 | j as u64).to_le_bytes());
            }
            (Cid::new_v1(0x55, Code::Sha2_256.digest(&data)), data)
        })
        .collect();
    let file_node = |links: &[(Cid, u64)]| {
        let mut ufs = UnixFsData::new(DataType::File);
        ufs.blocksizes = links.iter().map(|l| l.1).collect();
        ufs.filesize = ufs.blocksizes.iter().sum();
        let node = PbNode {
            links: links
                .iter()
                .map(|(cid, _)| PbLink {
                    cid: *cid,
                    name: None,
                    tsize: None,
                })
                .collect(),
            data: Some(Bytes::from(ufs.encode())),
        };
        let bytes = node.encode();
        (Cid::new_v1(0x70, Code::Sha2_256.digest(&bytes)), bytes)
    };
    let groups: Vec<(Block, &[Block])> = leaves
        .chunks(128)
        .map(|g| {
            let links: Vec<(Cid, u64)> = g.iter().map(|(c, d)| (*c, d.len() as u64)).collect();
            (file_node(&links), g)
        })
        .collect();
    let top: Vec<(Cid, u64)> = groups
        .iter()
        .map(|((c, _), g)| (*c, g.iter().map(|l| l.1.len() as u64).sum()))
        .collect();
    let (root, root_bytes) = file_node(&top);
    let mut car = hydrant_car::encode_v1_header(&[root]);
    hydrant_car::encode_section(&root, &root_bytes, &mut car);
    for ((cid, bytes), group) in &groups {
        hydrant_car::encode_section(cid, bytes, &mut car);
        for (cid, data) in *group {
            hydrant_car::encode_section(cid, data, &mut car);
        }
    }
    (root, car)
}

/// A repository (DHT off, `extra` config lines) with `car` ingested, and the stored file.
fn repo_with(dir: &Path, car: &[u8], extra: &str) -> (PathBuf, PathBuf) {
    let repo = common::offline_repo(dir, car, extra);
    let stored: Vec<PathBuf> = hydrant_testkit::files_under(&repo)
        .into_iter()
        .filter(|(path, size)| path.ends_with(".car") && *size == car.len() as u64)
        .map(|(path, _)| repo.join(path))
        .collect();
    assert_eq!(stored.len(), 1, "one stored CAR of that size: {stored:?}");
    (repo, stored[0].clone())
}

/// Wall time of `program args` with stdout to /dev/null (must succeed).
fn timed(program: &str, args: &[&str]) -> Duration {
    let started = Instant::now();
    let status = Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(status.success(), "{program} {args:?}");
    elapsed
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The body after the gateway's header is the stored file after its header (both name the one
/// root, so here the whole bodies are equal), and the body is what curl saves.
async fn check_body(gateway: &str, root: &Cid, stored: &Path) {
    let body = reqwest::get(format!("{gateway}/ipfs/{root}?format=car"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let file = std::fs::read(stored).unwrap();
    let header = hydrant_car::encode_v1_header(&[*root]).len();
    assert_eq!(body.len(), file.len());
    assert!(body[header..] == file[header..], "sections sent as stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dfs_car_is_answered_with_its_stored_sections() {
    let dir = tempfile::tempdir().unwrap();
    let (root, car) = dfs_file_car(8);
    let (repo, stored) = repo_with(dir.path(), &car, "");
    let daemon = Replica::start(&repo, Ports::free());
    check_body(&daemon.info.gateway_url, &root, &stored).await;
    // dups=y of a file without repeated blocks: the same blocks.
    let body = reqwest::Client::new()
        .get(format!("{}/ipfs/{root}", daemon.info.gateway_url))
        .header("accept", "application/vnd.ipld.car; dups=y")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(body[..] == car[..]);
}

/// Benchmark, run by hand (BENCHMARKS.md, "P6 gateway").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark, run by hand: see BENCHMARKS.md"]
async fn gateway_car_vs_reading_the_file() {
    let mib: usize = std::env::var("HYDRANT_BENCH_MIB").map_or(128, |v| v.parse().unwrap());
    let runs: usize = std::env::var("BENCH_RUNS").map_or(5, |v| v.parse().unwrap());
    let extra = std::env::var("HYDRANT_BENCH_CONFIG").unwrap_or_default();
    let dir = tempfile::tempdir().unwrap();
    let (root, car) = dfs_file_car(mib);
    let (repo, stored) = repo_with(dir.path(), &car, &extra);
    drop(car);
    let daemon = Replica::start(&repo, Ports::free());
    check_body(&daemon.info.gateway_url, &root, &stored).await;
    let url = format!("{}/ipfs/{root}?format=car", daemon.info.gateway_url);
    let before = common::store_requests(&daemon.metrics().await);
    let started = Instant::now();
    timed("curl", &["-sf", "-o", "/dev/null", &url]);
    eprintln!(
        "one response: {} object-store requests, {:?} (cold read cache)",
        common::store_requests(&daemon.metrics().await) - before,
        started.elapsed()
    );
    let file = stored.to_str().unwrap().to_owned();
    // Warm both (page cache, read cache) once, then alternate.
    timed("cat", &[&file]);
    timed("curl", &["-sf", "-o", "/dev/null", &url]);
    if let Ok(secs) = std::env::var("HYDRANT_BENCH_PAUSE_SECS") {
        // Time to attach a profiler to the daemon (its pid is printed).
        eprintln!("daemon pid {}", daemon.child.id());
        tokio::time::sleep(Duration::from_secs(secs.parse().unwrap())).await;
    }
    let (mut raw, mut gateway) = (Vec::new(), Vec::new());
    for i in 0..runs {
        raw.push(timed("cat", &[&file]));
        gateway.push(timed("curl", &["-sf", "-o", "/dev/null", &url]));
        eprintln!("run {i}: cat {:?}, curl {:?}", raw[i], gateway[i]);
    }
    let (r, g) = (median(raw), median(gateway));
    let bytes = std::fs::metadata(&stored).unwrap().len() as f64;
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{{\"benchmark\":\"gateway-car-vs-file\",\"car_bytes\":{bytes},\"runs\":{runs},\
         \"cat_seconds\":{:.4},\"gateway_seconds\":{:.4},\"cat_gb_per_s\":{:.2},\
         \"gateway_gb_per_s\":{:.2},\"ratio\":{:.3},\"loadavg\":{:?}}}",
        r.as_secs_f64(),
        g.as_secs_f64(),
        bytes / r.as_secs_f64() / 1e9,
        bytes / g.as_secs_f64() / 1e9,
        r.as_secs_f64() / g.as_secs_f64(),
        loadavg.trim(),
    );
}
