//! Killed ingests leak nothing (renovation issue, item 10): `hydrant ingest` processes and a
//! daemon receiving a CAR through its API are killed (SIGKILL) at random moments of large
//! generated CARs; the next daemon start (its start-up sweep) must leave exactly the committed
//! CARs in the store (zero stray bytes), and every acknowledged CAR must still be served.
//!
//! The kill moments are drawn from a seed printed by the test (`HYDRANT_CRASH_SEED` replays
//! one), uniformly over 0 to 1.2 times the duration of a complete ingest, so that they fall in
//! every phase: start-up, upload and verification, rename, index commit, after the answer.
//! `HYDRANT_BIN` runs another binary than the one cargo built (e.g. a copy, when several
//! worktrees share one target directory).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cid::Cid;
use common::HYDRANT;
use hydrant_node::DaemonInfo;
use hydrant_testkit::files_under;
use multihash_codetable::{Code, MultihashDigest};

/// Bytes of each generated CAR, in raw blocks of `BLOCK` bytes.
const CAR_BYTES: usize = 48 * 1024 * 1024;
const BLOCK: usize = 256 * 1024;
/// `hydrant ingest` processes killed, then daemons killed during an upload.
const CLI_KILLS: u64 = 14;
const API_KILLS: u64 = 4;

/// A CAR of pseudo-random raw blocks (sha2-256 CIDs), distinct for each `seed`; its root is
/// the first block.
fn generate_car(seed: u64) -> (Vec<u8>, Cid) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut blocks = Vec::new();
    let mut body = Vec::with_capacity(CAR_BYTES + 4096);
    while body.len() < CAR_BYTES {
        let data: Vec<u8> = (0..BLOCK / 8).flat_map(|_| next().to_le_bytes()).collect();
        let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(&data));
        hydrant_car::encode_section(&cid, &data, &mut body);
        blocks.push(cid);
    }
    let mut car = hydrant_car::encode_v1_header(&[blocks[0]]);
    car.extend_from_slice(&body);
    (car, blocks[0])
}

/// Records an answered ingest: CAR key -> (root, size).
fn acknowledge(
    acknowledged: &mut HashMap<String, (Cid, u64)>,
    summary: serde_json::Value,
    root: Cid,
) {
    let key = summary["car_key"].as_str().unwrap().to_owned();
    acknowledged.insert(key, (root, summary["bytes"].as_u64().unwrap()));
}

/// Deterministic kill delays from a seed (xorshift).
struct Delays(u64);

impl Delays {
    fn next(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        max.mul_f64((self.0 % 10_000) as f64 / 10_000.0)
    }
}

fn hydrant(repo: &Path) -> Command {
    let mut command = Command::new(std::env::var("HYDRANT_BIN").unwrap_or_else(|_| HYDRANT.into()));
    command
        .arg("--repo")
        .arg(repo)
        .env_remove("HYDRANT_REPO")
        .env("HYDRANT_LOG", "warn");
    command
}

/// A daemon child process, killed when dropped (also when the test fails).
struct Daemon(Child);

impl Daemon {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A daemon on `repo` (no DHT, loopback ports the OS picks, so tests running at once never
/// collide); returns once it printed its info line, which
/// it does after the start-up sweep.
fn start_daemon(repo: &Path) -> (Daemon, DaemonInfo) {
    let mut child = hydrant(repo)
        .args([
            "daemon",
            "--heads",
            "0",
            "--swarm-listen",
            "/ip4/127.0.0.1/tcp/0",
        ])
        .args(["--gateway-listen", "127.0.0.1:0"])
        .args(["--api-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info = serde_json::from_str(&line).unwrap_or_else(|e| panic!("daemon: {e}: {line:?}"));
    (Daemon(child), info)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_ingests_leave_no_stray_bytes_and_lose_nothing_acknowledged() {
    let seed = std::env::var("HYDRANT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("HYDRANT_CRASH_SEED={seed}");
    let mut delays = Delays(seed);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    assert!(hydrant(&repo).arg("init").status().unwrap().success());
    let car_file: PathBuf = dir.path().join("input.car");
    // Acknowledged CARs: key -> (root, size).
    let mut acknowledged: HashMap<String, (Cid, u64)> = HashMap::new();

    // Two complete ingests (the first creates the index); the second times the phases the
    // kills are spread over.
    let mut full = Duration::ZERO;
    for seed in [0, 1] {
        let (car, root) = generate_car(seed);
        std::fs::write(&car_file, &car).unwrap();
        let started = Instant::now();
        let out = hydrant(&repo)
            .args(["ingest", "--json"])
            .arg(&car_file)
            .output()
            .unwrap();
        full = started.elapsed();
        assert!(out.status.success(), "{out:?}");
        acknowledge(
            &mut acknowledged,
            serde_json::from_slice(&out.stdout).unwrap(),
            root,
        );
    }

    let mut killed = 0;
    for run in 2..CLI_KILLS + 2 {
        let (car, root) = generate_car(run);
        std::fs::write(&car_file, &car).unwrap();
        let delay = delays.next(full.mul_f64(1.2));
        let mut child = hydrant(&repo)
            .args(["ingest", "--json"])
            .arg(&car_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        match out.status.code() {
            Some(0) => acknowledge(
                &mut acknowledged,
                serde_json::from_slice(&out.stdout).unwrap(),
                root,
            ),
            Some(code) => panic!("ingest failed ({code}) before it was killed"),
            None => killed += 1,
        }
    }

    // Each daemon start below sweeps: count what the killed CLI ingests left first.
    let store = repo.join("objects");
    let unacknowledged = |acknowledged: &HashMap<String, (Cid, u64)>| {
        files_under(&store)
            .into_iter()
            .filter(|(name, _)| !acknowledged.contains_key(name))
            .count()
    };
    let mut leftovers = unacknowledged(&acknowledged);
    let client = reqwest::Client::new();
    for run in 0..API_KILLS {
        let (car, root) = generate_car(1000 + run);
        let (mut daemon, info) = start_daemon(&repo);
        let delay = delays.next(full.mul_f64(1.2));
        let upload = tokio::spawn(
            client
                .put(format!("{}/api/v1/cars", info.api_url))
                .body(car)
                .send(),
        );
        tokio::time::sleep(delay).await;
        daemon.kill();
        if let Ok(answer) = upload.await.unwrap()
            && answer.status().is_success()
            && let Ok(summary) = answer.json().await
        {
            acknowledge(&mut acknowledged, summary, root);
        } else {
            killed += 1;
        }
    }
    eprintln!(
        "{killed} of {} ingests killed before their answer; {} acknowledged",
        CLI_KILLS + API_KILLS,
        acknowledged.len()
    );

    // Recovery: a daemon start sweeps before it prints its info line.
    leftovers += unacknowledged(&acknowledged);
    let (mut daemon, info) = start_daemon(&repo);
    let committed = common::committed_cars(&info.api_url).await;
    let committed: HashMap<String, u64> = committed
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_owned(),
                c["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let stray: Vec<(String, u64)> = files_under(&store)
        .into_iter()
        .filter(|(name, size)| committed.get(name) != Some(size))
        .collect();
    let stray_bytes: u64 = stray.iter().map(|(_, size)| size).sum();
    eprintln!(
        "{leftovers} unacknowledged files met by the sweeps; {} committed CARs after them",
        committed.len()
    );
    // Otherwise the kills all missed the upload and the sweep was not exercised.
    assert!(
        leftovers > 0,
        "no leftover to sweep: every kill missed the upload"
    );
    assert_eq!(stray_bytes, 0, "stray files after the sweep: {stray:?}");
    for (key, (root, size)) in &acknowledged {
        assert_eq!(committed.get(key), Some(size), "acknowledged {key} lost");
        let block = client
            .get(format!("{}/ipfs/{root}?format=raw", info.gateway_url))
            .send()
            .await
            .unwrap();
        assert_eq!(block.status(), 200, "{root} of {key} not served");
        let bytes = block.bytes().await.unwrap();
        assert_eq!(Code::Sha2_256.digest(&bytes), *root.hash(), "{root}");
    }
    daemon.kill();
}
