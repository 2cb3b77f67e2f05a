//! Three stateless replicas (one identity, one Garage bucket, one PostgreSQL database) behind a
//! real TCP load balancer (HAProxy): a Helia client fetches a 100 MB file through the balancer
//! while the replica serving it is killed with SIGKILL and the one it moves to is restarted
//! with SIGTERM. The fetch completes and the bytes match.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backends, Ports, Replica};
use hydrant_testkit::{Backend, Haproxy};

fn interop() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../interop"));
    assert!(
        dir.join("node_modules").is_dir(),
        "interop/node_modules is missing: run `scripts/interop.sh install` (scripts/test.sh does)"
    );
    dir
}

/// `node --import ./polyfill.mjs bin/lb-fetch.mjs <args>` in interop/.
fn lb_fetch(args: &[&str]) -> Command {
    let mut command = Command::new("node");
    command
        .current_dir(interop())
        .args(["--import", "./polyfill.mjs", "bin/lb-fetch.mjs"])
        .args(args);
    command
}

/// The replica whose Bitswap server has a peer now (the one the client is connected to).
async fn serving(replicas: &[Replica]) -> Option<usize> {
    for (i, replica) in replicas.iter().enumerate() {
        if replica.child_running()
            && common::metric(&replica.metrics().await, "hydrant_bitswap_peers") > 0.0
        {
            return Some(i);
        }
    }
    None
}

async fn wait_serving(replicas: &[Replica], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        if let Some(i) = serving(replicas).await {
            return i;
        }
        assert!(
            Instant::now() < deadline,
            "no replica is serving the client"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn helia_fetch_through_a_load_balancer_survives_sigkill_and_sigterm_restarts() {
    let backends = Backends::start();
    let dir = tempfile::tempdir().unwrap();
    let repos = common::make_replica_repos(dir.path(), &backends, 3, "");
    let ports: Vec<Ports> = (0..3).map(|_| Ports::free()).collect();
    let mut replicas: Vec<Replica> = repos
        .iter()
        .zip(&ports)
        .map(|(repo, ports)| Replica::start(repo, *ports))
        .collect();
    let peer_id = replicas[0].info.peer_id.clone();
    let lb = Haproxy::start(
        &ports
            .iter()
            .map(|p| Backend {
                addr: ([127, 0, 0, 1], p.swarm).into(),
                check_url_port: Some(p.api),
            })
            .collect::<Vec<_>>(),
    )
    .unwrap();

    // 100 MB of pseudo-random bytes as a UnixFS file, packed by ipfs-car.
    let car_path = dir.path().join("file.car");
    let made = common::run_json(&mut lb_fetch(&[
        "make-car",
        "100000000",
        "11",
        car_path.to_str().unwrap(),
    ]));
    let root = made["root"].as_str().unwrap().to_owned();
    replicas[0].ingest(&std::fs::read(&car_path).unwrap()).await;

    // Through the balancer, paced (60 ms per block, about 12 s in all) so that it lasts long
    // enough to kill and restart replicas under it: at 30 ms an idle machine finished the
    // fetch in 6.5 s, before the second restart.
    let lb_addr = format!("/ip4/127.0.0.1/tcp/{}/p2p/{peer_id}", lb.addr().port());
    let fetch = lb_fetch(&["fetch", &lb_addr, &root, "--delay-ms", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let first = wait_serving(&replicas, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("SIGKILL of replica {first}, which serves the client");
    replicas[first].signal_and_wait("KILL");
    let second = wait_serving(&replicas, Duration::from_secs(20)).await;
    assert_ne!(second, first);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let drained = replicas[second].signal_and_wait("TERM");
    eprintln!("SIGTERM of replica {second}, which took over: exited after {drained:?}");
    let restarted = Replica::start(&repos[second], ports[second]);
    replicas[second] = restarted;

    let output = tokio::task::spawn_blocking(move || fetch.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "fetch failed:\n{stderr}\nHAProxy:\n{}",
        lb.log()
    );
    let got: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    eprintln!("fetch through the balancer: {got}");
    assert_eq!(got["bytes"], made["bytes"]);
    assert_eq!(got["sha256"], made["sha256"], "the bytes differ");
    assert!(
        got["reconnects"].as_u64().unwrap() >= 2,
        "the client moved replicas twice: {got}"
    );
    assert!(
        drained < Duration::from_secs(10),
        "SIGTERM drain took {drained:?} (drain_timeout_secs = 3)"
    );
}
