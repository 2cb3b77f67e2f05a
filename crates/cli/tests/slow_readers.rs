//! Slow HTTP readers (renovation issue, item 10): 120 clients of one address ask the gateway
//! for a 16 MiB CAR and never read it, against a daemon with a 64 MiB budget, while a client
//! of another address keeps fetching raw blocks and the whole CAR.
//!
//! Asserts: the other client gets 200 and complete bodies every time; the stalled address gets
//! at most `gateway.max_requests_per_ip` responses, the rest 429 with `Retry-After`; the
//! responses it got are cut off (the connection closed, the CAR incomplete) once
//! `gateway.write_timeout_secs` passes, and their budget share is given back; the daemon's
//! peak RSS stays within the budget plus a fixed overhead.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::{Ports, Replica};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const BUDGET: u64 = 64 * 1024 * 1024;
/// The daemon's memory beyond the budget: runtime, index, allocator slack, the 120
/// connections' buffers (see the overload test for the same bound's reasoning).
const FIXED_OVERHEAD: u64 = 64 * 1024 * 1024;
const STALLED: usize = 120;
const PER_IP: usize = 4;
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
const MIB: f64 = 1024.0 * 1024.0;

/// A TCP connection to `server` from the loopback address `from`, with a small receive
/// buffer so that a client that does not read stalls the server early.
async fn connect_from(from: IpAddr, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(server).await.unwrap()
}

/// The gateway's share of the budget in use now, from the memory report.
async fn gateway_in_use(api_url: &str) -> u64 {
    let report: serde_json::Value = reqwest::get(format!("{api_url}/api/v1/debug/memory"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    report["budget"]["holders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "gateway")
        .unwrap()["in_use"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_car_readers_cost_others_nothing_and_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    common::run_json(
        std::process::Command::new(common::hydrant_bin())
            .arg("--repo")
            .arg(&repo)
            .args(["init", "--json"]),
    );
    std::fs::write(
        repo.join("config.toml"),
        format!(
            "[dht]\nenabled = false\n\n[limits]\nmemory_budget_bytes = {BUDGET}\n\n\
             [gateway]\nwrite_timeout_secs = {}\nmax_requests_per_ip = {PER_IP}\n",
            WRITE_TIMEOUT.as_secs()
        ),
    )
    .unwrap();
    let (root, leaves, car) = common::dag_car();
    let car_path = dir.path().join("dag.car");
    std::fs::write(&car_path, &car).unwrap();
    // Ingested before the daemon starts, so that its peak RSS is the serving's alone.
    common::run_json(
        std::process::Command::new(common::hydrant_bin())
            .arg("--repo")
            .arg(&repo)
            .args(["ingest", "--json"])
            .arg(&car_path),
    );
    let daemon = Replica::start(&repo, Ports::free());
    let gateway: SocketAddr = daemon
        .info
        .gateway_url
        .trim_start_matches("http://")
        .parse()
        .unwrap();

    // 120 clients of 127.0.0.2 ask for the CAR and never read.
    let stalled_ip: IpAddr = "127.0.0.2".parse().unwrap();
    let request = format!(
        "GET /ipfs/{root} HTTP/1.1\r\nHost: test\r\nAccept: application/vnd.ipld.car\r\n\r\n"
    );
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let mut stream = connect_from(stalled_ip, gateway).await;
        stream.write_all(request.as_bytes()).await.unwrap();
        stalled.push(stream);
    }
    let stalled_at = Instant::now();

    // Meanwhile a client of 127.0.0.3 keeps getting blocks and the whole CAR.
    let other = reqwest::Client::builder()
        .local_address("127.0.0.3".parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    let mut answers = 0;
    let mut held_while_stalled = 0;
    while stalled_at.elapsed() < WRITE_TIMEOUT + Duration::from_secs(2) {
        let leaf = leaves[answers % leaves.len()];
        let block = other
            .get(format!(
                "{}/ipfs/{leaf}?format=raw",
                daemon.info.gateway_url
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(block.status(), 200, "raw block {answers}");
        assert_eq!(block.bytes().await.unwrap().len(), 1024 * 1024);
        let dag = other
            .get(format!("{}/ipfs/{root}", daemon.info.gateway_url))
            .header("accept", "application/vnd.ipld.car")
            .send()
            .await
            .unwrap();
        assert_eq!(dag.status(), 200, "CAR {answers}");
        assert_eq!(
            dag.bytes().await.unwrap().len(),
            car.len(),
            "a complete CAR"
        );
        answers += 1;
        if stalled_at.elapsed() < WRITE_TIMEOUT {
            held_while_stalled = held_while_stalled.max(gateway_in_use(&daemon.info.api_url).await);
        }
    }

    // Each stalled client: a 429 it can read whole, or a CAR that ends early with the
    // connection closed by the server.
    let (mut refused, mut cut_off) = (0, 0);
    for (i, mut stream) in stalled.into_iter().enumerate() {
        let mut received = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return true,
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                }
                if received.len() >= 12 && common::status_of(&received) == 429 {
                    return false;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("stalled client {i}: neither refused nor cut off"));
        match common::status_of(&received) {
            429 => {
                let text = String::from_utf8_lossy(&received).to_ascii_lowercase();
                assert!(text.contains("retry-after: 1"), "{text}");
                refused += 1;
            }
            200 => {
                assert!(
                    closed,
                    "stalled client {i}: the server closed the connection"
                );
                assert!(
                    received.len() < car.len(),
                    "stalled client {i}: its CAR was cut off ({} bytes)",
                    received.len()
                );
                cut_off += 1;
            }
            other => panic!("stalled client {i}: status {other}"),
        }
    }
    let held_after = gateway_in_use(&daemon.info.api_url).await;
    let peak = daemon.memory().peak_rss_bytes;
    eprintln!(
        "slow readers: {answers} rounds of block + CAR served to the other client; stalled \
         address: {cut_off} responses cut off, {refused} refused with 429; gateway budget held \
         while stalled {:.1} MiB, after {:.1} MiB; daemon peak RSS {:.1} MiB",
        held_while_stalled as f64 / MIB,
        held_after as f64 / MIB,
        peak as f64 / MIB,
    );
    assert!(answers >= 2, "the other client was served throughout");
    assert!(
        (1..=PER_IP).contains(&cut_off),
        "{cut_off} stalled responses were started; at most {PER_IP} per address"
    );
    assert_eq!(refused + cut_off, STALLED);
    assert_eq!(
        held_after, 0,
        "the cut-off responses gave their budget back"
    );
    assert!(
        peak < BUDGET + FIXED_OVERHEAD,
        "peak RSS {peak} over budget + overhead"
    );
}
