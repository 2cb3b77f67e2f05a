//! Deletion and garbage collection (issue 17, item 2): a deleted CAR's blocks are gone from
//! Bitswap (DONT_HAVE) and the gateway (404) even when they were cached, a block also in a kept
//! CAR is still served, a CAR with a pinned root is refused; `hydrant rm` killed at random
//! points never leaves a row pointing at a missing object, and `hydrant gc` leaves no orphaned
//! object; replicas on PostgreSQL stop serving a deleted block within a poll.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cid::Cid;
use common::{Backends, BitswapClient, Ports, Replica, hydrant_bin, run_json};
use hydrant_bitswap::WantType;
use multihash_codetable::{Code, MultihashDigest};

fn raw(data: &[u8]) -> Cid {
    Cid::new_v1(0x55, Code::Sha2_256.digest(data))
}

/// A CARv1 of raw blocks `data`, the first one its root.
fn car_of(data: &[&[u8]]) -> Vec<u8> {
    let mut car = hydrant_car::encode_v1_header(&[raw(data[0])]);
    for d in data {
        hydrant_car::encode_section(&raw(d), d, &mut car);
    }
    car
}

fn hydrant(repo: &Path) -> Command {
    let mut command = Command::new(hydrant_bin());
    command.arg("--repo").arg(repo);
    command
}

fn local_repo(dir: &Path) -> std::path::PathBuf {
    let repo = dir.join("repo");
    run_json(hydrant(&repo).args(["init", "--json"]));
    std::fs::write(repo.join("config.toml"), "[dht]\nenabled = false\n").unwrap();
    repo
}

async fn ingest(api: &str, car: Vec<u8>, pin: bool) -> String {
    let answer = reqwest::Client::new()
        .put(format!("{api}/api/v1/cars?pin={pin}"))
        .body(car)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    let summary: serde_json::Value = answer.json().await.unwrap();
    summary["car_key"].as_str().unwrap().to_owned()
}

async fn raw_status(gateway: &str, cid: &Cid) -> u16 {
    reqwest::get(format!("{gateway}/ipfs/{cid}?format=raw"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn deleted_blocks_are_gone_everywhere_and_shared_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let repo = local_repo(dir.path());
    let daemon = Replica::start(&repo, Ports::free());
    let (api, gateway) = (daemon.info.api_url.clone(), daemon.info.gateway_url.clone());
    let http = reqwest::Client::new();

    let (only_a, shared, only_b): (&[u8], &[u8], &[u8]) =
        (b"only in A", b"in A and in B", b"only in B");
    let a = ingest(&api, car_of(&[only_a, shared]), false).await;
    let b = ingest(&api, car_of(&[only_b, shared]), true).await;
    // Warm the read cache with every block.
    for data in [only_a, shared, only_b] {
        assert_eq!(raw_status(&gateway, &raw(data)).await, 200);
    }

    // B's root is pinned: refused, nothing changes.
    let refused = http
        .delete(format!("{api}/api/v1/cars/{b}"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("pinned"), "{body}");

    let deleted = http
        .delete(format!("{api}/api/v1/cars/{a}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let body: serde_json::Value = deleted.json().await.unwrap();
    assert_eq!(body["deleted"]["key"], a.as_str());

    assert_eq!(
        raw_status(&gateway, &raw(only_a)).await,
        404,
        "cached, then deleted"
    );
    assert_eq!(raw_status(&gateway, &raw(shared)).await, 200, "still in B");
    assert_eq!(raw_status(&gateway, &raw(only_b)).await, 200);
    let mut bitswap = BitswapClient::connect(&daemon.swarm_addr()).await;
    bitswap
        .want(&[raw(only_a), raw(shared)], WantType::Block)
        .await;
    let heard = bitswap
        .collect(Duration::from_secs(10), |h| {
            h.dont_haves.len() + h.blocks.len() >= 2
        })
        .await;
    assert!(heard.dont_haves.contains(&raw(only_a)), "{heard:?}");
    assert_eq!(heard.blocks.get(&raw(shared)).map(|b| &b[..]), Some(shared));
    assert!(
        !repo.join("objects").join(&a).exists(),
        "the object is removed"
    );
    assert!(repo.join("objects").join(&b).exists());

    let again = http
        .delete(format!("{api}/api/v1/cars/{a}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);

    // `hydrant rm` by root CID (through the daemon): every CAR with that root goes.
    let d = ingest(&api, car_of(&[b"only in D"]), false).await;
    let removed = run_json(hydrant(&repo).args(["rm", "--json", &raw(b"only in D").to_string()]));
    assert_eq!(removed["deleted"]["key"], d.as_str());
    assert_eq!(raw_status(&gateway, &raw(b"only in D")).await, 404);
    let unknown = hydrant(&repo)
        .args(["rm", &raw(b"never stored").to_string()])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no stored CAR has"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );

    // gc: an unpinned CAR goes (through the CLI, which uses the daemon), the pinned one stays.
    let c = ingest(&api, car_of(&[b"only in C"]), false).await;
    let report = run_json(hydrant(&repo).args(["gc", "--json"]));
    let deleted: Vec<&str> = report["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(deleted, [c.as_str()]);
    assert_eq!(raw_status(&gateway, &raw(b"only in C")).await, 404);
    assert_eq!(raw_status(&gateway, &raw(only_b)).await, 200);

    // Kubo's pin/rm then repo/gc: B goes, named by its root.
    let unpin = http
        .post(format!("{api}/api/v0/pin/rm?arg={}", raw(only_b)))
        .send()
        .await
        .unwrap();
    assert_eq!(unpin.status(), 200);
    let gc = http
        .post(format!("{api}/api/v0/repo/gc"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        gc.trim(),
        serde_json::json!({ "Key": { "/": raw(only_b).to_string() } }).to_string()
    );
    assert_eq!(raw_status(&gateway, &raw(shared)).await, 404);
}

/// The CAR keys of the index and the object keys under `cars/` of the store, read in this
/// process (no daemon runs).
async fn index_and_store(repo: &Path) -> (Vec<String>, Vec<String>) {
    let services = hydrant_node::Services::open(&hydrant_node::Repo::open(repo).unwrap())
        .await
        .unwrap();
    let records: Vec<String> = services
        .catalog
        .list_cars(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .collect();
    let mut objects = Vec::new();
    let cars = repo.join("objects/cars");
    for entry in std::fs::read_dir(&cars).into_iter().flatten() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        objects.push(format!("cars/{name}"));
    }
    objects.sort();
    (records, objects)
}

#[tokio::test]
async fn killed_deletions_leave_no_dangling_row_and_gc_no_orphan() {
    let dir = tempfile::tempdir().unwrap();
    let repo = local_repo(dir.path());
    let car_a = car_of(&[b"the CAR that is deleted", b"second block"]);
    let car_b = car_of(&[b"the pinned CAR"]);
    let path_a = dir.path().join("a.car");
    let path_b = dir.path().join("b.car");
    std::fs::write(&path_a, &car_a).unwrap();
    std::fs::write(&path_b, &car_b).unwrap();
    run_json(hydrant(&repo).args(["ingest", "--json"]).arg(&path_b));

    // A small linear congruential generator: the kill points vary, the test is reproducible.
    let mut seed: u64 = 0x5eed;
    let mut outcomes = [0usize; 2];
    for run in 0..24 {
        let summary = run_json(
            hydrant(&repo)
                .args(["ingest", "--json", "--pin=false"])
                .arg(&path_a),
        );
        let key = summary["car_key"].as_str().unwrap().to_owned();
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let delay = Duration::from_micros((seed >> 33) % 30_000);
        let mut rm = hydrant(&repo)
            .args(["rm", &key])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = rm.kill();
        let status = rm.wait().unwrap();
        outcomes[usize::from(status.success())] += 1;

        // No row points at a missing object: every record's object is there.
        let (records, objects) = index_and_store(&repo).await;
        for record in &records {
            assert!(
                objects.contains(record),
                "run {run} (killed after {delay:?}): {record} has no object"
            );
        }
        // gc leaves no orphan: every object has a record.
        run_json(hydrant(&repo).args(["gc", "--json"]));
        let (records, objects) = index_and_store(&repo).await;
        assert_eq!(records, objects, "run {run}: after gc");
        assert_eq!(records.len(), 1, "run {run}: only the pinned CAR stays");
    }
    eprintln!(
        "rm killed in {} runs, finished in {}",
        outcomes[0], outcomes[1]
    );
    assert!(
        outcomes[0] > 0,
        "no run was killed part-way: the test tests nothing"
    );
}

#[tokio::test]
async fn replicas_on_postgres_stop_serving_a_deleted_block() {
    let backends = Backends::start();
    let dir = tempfile::tempdir().unwrap();
    let replicas = common::start_replicas(dir.path(), &backends, 2, "");
    let (api, gateways) = (
        replicas[0].info.api_url.clone(),
        replicas
            .iter()
            .map(|r| r.info.gateway_url.clone())
            .collect::<Vec<_>>(),
    );
    let block: &[u8] = b"served by both replicas, then deleted";
    let key = ingest(&api, car_of(&[block]), false).await;
    // Both serve it, so both have it cached.
    let deadline = Instant::now() + Duration::from_secs(10);
    for gateway in &gateways {
        while raw_status(gateway, &raw(block)).await != 200 {
            assert!(
                Instant::now() < deadline,
                "{gateway} never served the block"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let deleted = reqwest::Client::new()
        .delete(format!("{api}/api/v1/cars/{key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    // The filter polls every second by default (make_repo sets 200 ms): converged well within 5 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    for gateway in &gateways {
        while raw_status(gateway, &raw(block)).await != 404 {
            assert!(
                Instant::now() < deadline,
                "{gateway} still serves a deleted block"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let objects = backends.bucket();
    let gone =
        object_store::ObjectStoreExt::head(&objects, &object_store::path::Path::from(key.as_str()))
            .await;
    assert!(gone.is_err(), "the object is removed from the shared store");
}

#[tokio::test]
async fn periodic_gc_removes_unpinned_cars_and_keeps_pinned_ones() {
    let dir = tempfile::tempdir().unwrap();
    let repo = local_repo(dir.path());
    std::fs::write(
        repo.join("config.toml"),
        "[dht]\nenabled = false\n[gc]\ninterval_secs = 1\n",
    )
    .unwrap();
    let daemon = Replica::start(&repo, Ports::free());
    let (api, gateway) = (daemon.info.api_url.clone(), daemon.info.gateway_url.clone());
    ingest(&api, car_of(&[b"pinned, kept"]), true).await;
    ingest(&api, car_of(&[b"unpinned, collected"]), false).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while raw_status(&gateway, &raw(b"unpinned, collected")).await != 404 {
        assert!(Instant::now() < deadline, "the periodic gc never ran");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(raw_status(&gateway, &raw(b"pinned, kept")).await, 200);
    assert!(daemon.log().contains("periodic garbage collection done"));
}
