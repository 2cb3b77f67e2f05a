//! Overload (issue 5): hundreds of simulated Bitswap peers each wanting thousands of blocks, plus
//! one peer that never reads, against one `hydrant daemon` with a small memory budget.
//!
//! Asserts: the daemon stays up; its peak RSS (`VmHWM` from /proc) stays below the budget plus
//! [`FIXED_OVERHEAD`]; every well-behaved peer gets every block (re-sending the wants the server
//! shed, as real clients re-send their wantlist); the non-reading peer is dropped and
//! disconnected; the shed work shows in the metrics.
//!
//! `one_peer_gets_at_most_its_connection_limit`: `swarm.max_connections_per_peer` holds.
//!
//! `overload_benchmark` (ignored; run by hand, see BENCHMARKS.md) measures the throughput of
//! well-behaved peers with and without a non-reading peer, and RSS over time under 10x the
//! budget's worth of wants.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cid::Cid;
use common::{BitswapClient, ClientSwarm, Ports, Replica, metric};
use futures::StreamExt;
use hydrant_bitswap::{Message, ProtocolVersion, WantType, write_frame};
use libp2p::Multiaddr;
use libp2p::swarm::SwarmEvent;

/// Memory budget of the daemon under test (`limits.memory_budget_bytes`).
const BUDGET: u64 = 64 * 1024 * 1024;

/// What the process may hold beyond the budget: the runtime, the libp2p connections of every
/// simulated peer (noise and yamux buffers), the embedded index's caches and allocator slack.
/// Measured at about 60 MiB for 200 peers (BENCHMARKS.md, "Overload"); the bound leaves room.
const FIXED_OVERHEAD: u64 = 128 * 1024 * 1024;

/// A daemon on local storage with the DHT off and the given extra settings.
fn start_daemon(dir: &Path, budget: u64, write_timeout_secs: u64) -> Replica {
    std::fs::create_dir_all(dir).unwrap();
    common::run_json(
        std::process::Command::new(common::HYDRANT)
            .arg("--repo")
            .arg(dir)
            .args(["init", "--json"]),
    );
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[dht]\nenabled = false\n\n[read]\ncache_bytes = 0\n\n\
             [limits]\nmemory_budget_bytes = {budget}\n\n\
             [bitswap]\nwrite_timeout_secs = {write_timeout_secs}\n"
        ),
    )
    .unwrap();
    Replica::start(dir, Ports::free())
}

/// Result of one well-behaved peer.
struct Fetched {
    blocks: usize,
    resends: usize,
    reconnects: usize,
    elapsed: Duration,
}

/// A well-behaved peer: wants every CID as WANT_BLOCK, reads every answer, and re-sends the
/// wants still missing whenever nothing arrived for `resend_after`.
async fn fetch_all(addr: Multiaddr, cids: Arc<Vec<Cid>>, resend_after: Duration) -> Fetched {
    let start = Instant::now();
    let mut client = BitswapClient::connect(&addr).await;
    let wanted: HashSet<Cid> = cids.iter().copied().collect();
    let mut got: HashSet<Cid> = HashSet::new();
    let mut resends = 0;
    let mut reconnects = 0;
    let mut missing: Vec<Cid> = cids.to_vec();
    let deadline = Instant::now() + Duration::from_secs(240);
    while !missing.is_empty() && Instant::now() < deadline {
        if let Err(error) = client.try_want(&missing, WantType::Block).await {
            eprintln!("overload peer: {error}; reconnecting");
            reconnects += 1;
            client = BitswapClient::connect(&addr).await;
            continue;
        }
        // Read answers while they come; re-send what is missing once they stop.
        loop {
            let before = got.len();
            let heard = client
                .collect(resend_after, |h| h.blocks.len() >= cids.len())
                .await;
            got.extend(heard.blocks.keys().filter(|c| wanted.contains(c)));
            if got.len() >= cids.len() || got.len() == before {
                break;
            }
        }
        missing.retain(|c| !got.contains(c));
        resends += 1;
    }
    Fetched {
        blocks: got.len(),
        resends: resends - 1,
        reconnects,
        elapsed: start.elapsed(),
    }
}

/// A peer that asks for every block and never reads the answers: it accepts the server's
/// stream and holds it, so the server's writes stall once the stream's window is full. Returns
/// once the server has started answering, so its wants are kept before other peers fill the
/// wantlists' share (it never re-sends them). The task ends when the server closes the
/// connection.
async fn never_read(addr: Multiaddr, cids: Arc<Vec<Cid>>) -> tokio::task::JoinHandle<()> {
    let ClientSwarm {
        server,
        mut swarm,
        mut control,
        mut incoming,
    } = ClientSwarm::connect(&addr, Duration::from_secs(600)).await;
    let (answered_tx, answered) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut answered_tx = Some(answered_tx);
        let mut held = Vec::new();
        let message = Message {
            wantlist: common::wantlist(&cids, WantType::Block),
            full: true,
            ..Default::default()
        };
        let mut stream = control
            .open_stream(server, ProtocolVersion::V1_2_0.protocol())
            .await
            .unwrap();
        write_frame(&mut stream, &message.encode_frame())
            .await
            .unwrap();
        held.push(stream);
        loop {
            tokio::select! {
                event = swarm.select_next_some() => {
                    if let SwarmEvent::ConnectionClosed { num_established: 0, .. } = event {
                        return;
                    }
                }
                Some((_, stream)) = incoming.next() => {
                    held.push(stream);
                    if let Some(tx) = answered_tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), answered)
        .await
        .expect("the server answers the non-reading peer")
        .unwrap();
    task
}

const MIB: f64 = 1024.0 * 1024.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_keeps_memory_bounded_and_serves_every_well_behaved_peer() {
    const PEERS: usize = 200;
    const BLOCKS: usize = 2000;
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_daemon(dir.path(), BUDGET, 3);
    let (cids, car) = common::raw_file_car(BLOCKS, 1024);
    daemon.ingest(&car).await;
    let cids = Arc::new(cids);
    let addr = daemon.swarm_addr();
    let rss_before = daemon.rss_bytes();

    let slow = never_read(addr.clone(), cids.clone()).await;
    let Fleet {
        elapsed,
        slowest,
        resends,
        reconnects,
    } = fleet(&addr, &cids, PEERS).await;
    assert!(daemon.child_running(), "the daemon stayed up");
    let peak = daemon.memory().peak_rss_bytes;
    let m = daemon.metrics().await;
    let shed = metric(
        &m,
        "hydrant_bitswap_wants_total{type=\"block\",outcome=\"shed\"}",
    );
    let refused: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("hydrant_budget_refused_total"))
        .map(|(_, v)| v)
        .sum();
    let dropped = metric(&m, "hydrant_bitswap_peers_dropped_total");
    // The peers are done but still connected (the idle timeout is 60 s).
    let connected = metric(&m, "hydrant_connected_peers{swarm=\"main\"}");
    assert!(
        connected >= PEERS as f64,
        "{connected} connected peers, {PEERS} expected"
    );
    let streams_reset = metric(&m, "hydrant_bitswap_streams_refused_total")
        + metric(&m, "hydrant_bitswap_streams_shed_total");
    let budget_peak = daemon_budget_peak(&daemon).await;
    eprintln!(
        "overload: {PEERS} peers x {BLOCKS} blocks in {:.1} s (slowest peer {:.1} s), {resends} \
         re-sends, {reconnects} reconnects; streams reset {streams_reset}; wants shed {shed}, budget refusals {refused}, peers dropped {dropped}; RSS \
         {:.0} MiB before, peak {:.0} MiB; budget {:.0} MiB, its peak {:.1} MiB",
        elapsed.as_secs_f64(),
        slowest.as_secs_f64(),
        rss_before as f64 / MIB,
        peak as f64 / MIB,
        BUDGET as f64 / MIB,
        budget_peak as f64 / MIB,
    );
    assert!(
        peak < BUDGET + FIXED_OVERHEAD,
        "peak RSS {peak} over budget + overhead"
    );
    assert!(budget_peak <= BUDGET, "grants stayed within the budget");
    assert!(shed > 0.0, "wants past the wantlists' share were shed");
    assert!(dropped >= 1.0, "the non-reading peer was dropped");
    tokio::time::timeout(Duration::from_secs(30), slow)
        .await
        .expect("the daemon disconnected the non-reading peer")
        .unwrap();
    // No DONT_HAVE for a stored block, whatever was shed.
    assert_eq!(
        metric(
            &m,
            "hydrant_bitswap_wants_total{type=\"block\",outcome=\"not_found\"}"
        ),
        0.0
    );
}

/// One peer dialing many times gets `swarm.max_connections_per_peer` connections; the rest
/// are closed by the daemon as they are established.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_gets_at_most_its_connection_limit() {
    const PER_PEER: u32 = 2;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();
    common::run_json(
        std::process::Command::new(common::HYDRANT)
            .arg("--repo")
            .arg(dir.path())
            .args(["init", "--json"]),
    );
    std::fs::write(
        dir.path().join("config.toml"),
        format!("[dht]\nenabled = false\n\n[swarm]\nmax_connections_per_peer = {PER_PEER}\n"),
    )
    .unwrap();
    let daemon = Replica::start(dir.path(), Ports::free());
    let ClientSwarm {
        server, mut swarm, ..
    } = ClientSwarm::connect(&daemon.swarm_addr(), Duration::from_secs(60)).await;
    let mut open = 1;
    for _ in 0..4 {
        let dial = libp2p::swarm::dial_opts::DialOpts::peer_id(server)
            .addresses(vec![daemon.swarm_addr()])
            .condition(libp2p::swarm::dial_opts::PeerCondition::Always)
            .build();
        swarm.dial(dial).unwrap();
    }
    // Follow the connections until nothing has changed for 2 s.
    while let Ok(event) =
        tokio::time::timeout(Duration::from_secs(2), swarm.select_next_some()).await
    {
        match event {
            SwarmEvent::ConnectionEstablished { .. } => open += 1,
            SwarmEvent::ConnectionClosed { .. } => open -= 1,
            _ => {}
        }
    }
    assert_eq!(open, PER_PEER, "connections left open to one peer");
    assert_eq!(
        metric(
            &daemon.metrics().await,
            "hydrant_connected_peers{swarm=\"main\"}"
        ),
        1.0
    );
}

/// The daemon's memory report (`GET /api/v1/debug/memory`).
async fn memory_report(api_url: &str) -> serde_json::Value {
    reqwest::get(format!("{api_url}/api/v1/debug/memory"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Peak of the shared budget, from the memory report.
async fn daemon_budget_peak(daemon: &Replica) -> u64 {
    memory_report(&daemon.info.api_url).await["budget"]["peak"]
        .as_u64()
        .unwrap()
}

/// What [`fleet`] measured.
struct Fleet {
    /// From the first peer's start to the last one's end.
    elapsed: Duration,
    slowest: Duration,
    resends: usize,
    reconnects: usize,
}

/// `peers` well-behaved peers fetch every block of `cids` at once; asserts each got them all.
async fn fleet(addr: &Multiaddr, cids: &Arc<Vec<Cid>>, peers: usize) -> Fleet {
    let started = Instant::now();
    let fetches: Vec<_> = (0..peers)
        .map(|_| {
            tokio::spawn(fetch_all(
                addr.clone(),
                cids.clone(),
                Duration::from_millis(1500),
            ))
        })
        .collect();
    let (mut slowest, mut resends, mut reconnects) = (Duration::ZERO, 0, 0);
    for fetch in fetches {
        let fetched = fetch.await.unwrap();
        assert_eq!(
            fetched.blocks,
            cids.len(),
            "a well-behaved peer got every block"
        );
        slowest = slowest.max(fetched.elapsed);
        resends += fetched.resends;
        reconnects += fetched.reconnects;
    }
    Fleet {
        elapsed: started.elapsed(),
        slowest,
        resends,
        reconnects,
    }
}

/// Block bytes per second a [`fleet`] of `peers` received, over all of them.
fn bytes_per_sec(fleet: &Fleet, peers: usize, blocks: usize, block_size: usize) -> f64 {
    (peers * blocks * block_size) as f64 / fleet.elapsed.as_secs_f64()
}

/// Wants shed so far (`hydrant_bitswap_wants_total{outcome="shed"}`, WANT_BLOCK).
async fn shed(daemon: &Replica) -> f64 {
    metric(
        &daemon.metrics().await,
        "hydrant_bitswap_wants_total{type=\"block\",outcome=\"shed\"}",
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Benchmark, run by hand (BENCHMARKS.md, "Overload"):
///
/// ```text
/// cargo test --release -p hydrant-cli --test overload -- --ignored --nocapture overload_benchmark
/// ```
///
/// 1. Throughput of 24 well-behaved peers, each fetching 1,000 blocks of 16 KiB, with and
///    without one peer that wants the same blocks and never reads; rounds alternate, 5 of each,
///    medians compared. The write timeout is the default 30 s, longer than a round, so the
///    non-reading peer holds its share for the whole round.
/// 2. RSS over time (sampled every 250 ms) while 200 peers want 2,000 blocks of 1 KiB each,
///    400 MiB of blocks wanted at once: 10x the 40 MiB budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark, run by hand: see BENCHMARKS.md"]
async fn overload_benchmark() {
    const BENCH_BUDGET: u64 = 40 * 1024 * 1024;
    const LARGE: usize = 16 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_daemon(dir.path(), BENCH_BUDGET, 30);
    let (large, car) = common::raw_file_car(1000, LARGE);
    daemon.ingest(&car).await;
    let (small, car) = common::raw_file_car(2000, 1024);
    daemon.ingest(&car).await;
    let (large, small) = (Arc::new(large), Arc::new(small));
    let addr = daemon.swarm_addr();

    // 1. Throughput with and without a non-reading peer.
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for round in 0..5 {
        for slow_present in [false, true] {
            let slow = if slow_present {
                Some(never_read(addr.clone(), large.clone()).await)
            } else {
                None
            };
            // Let the non-reading peer fill its share, and the last round's peers go idle.
            tokio::time::sleep(Duration::from_millis(1000)).await;
            let shed_before = shed(&daemon).await;
            let measured = fleet(&addr, &large, 24).await;
            let (rate, resends) = (
                bytes_per_sec(&measured, 24, large.len(), LARGE),
                measured.resends,
            );
            eprintln!(
                "round {round}, non-reading peer {}: {:.1} MiB/s, {resends} re-sends, {} wants shed",
                if slow_present { "present" } else { "absent" },
                rate / MIB,
                shed(&daemon).await - shed_before,
            );
            if let Some(slow) = slow {
                // The others are done: what Bitswap responses hold now is the non-reading
                // peer's share.
                let report = memory_report(&daemon.info.api_url).await;
                let held = report["budget"]["holders"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|h| h["name"] == "bitswap_responses")
                    .unwrap()["in_use"]
                    .as_u64()
                    .unwrap();
                eprintln!("  the non-reading peer holds {:.1} MiB", held as f64 / MIB);
                slow.abort();
                with.push(rate);
            } else {
                without.push(rate);
            }
        }
    }
    let (without, with) = (median(without), median(with));
    eprintln!(
        "throughput (median of 5): {:.1} MiB/s without, {:.1} MiB/s with a non-reading peer; \
         ratio {:.3}",
        without / MIB,
        with / MIB,
        with / without
    );

    // 2. RSS over time under 10x overload.
    let rss_idle = daemon.rss_bytes();
    let pid = daemon.child.id();
    let api_url = daemon.info.api_url.clone();
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = tokio::spawn({
        let sampling = sampling.clone();
        async move {
            let start = Instant::now();
            let mut samples = Vec::new();
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                let rss = hydrant_node::ProcessMemory::of(pid).rss_bytes;
                let budget = memory_report(&api_url).await["budget"]["in_use"]
                    .as_u64()
                    .unwrap();
                samples.push((start.elapsed(), rss, budget));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            samples
        }
    });
    let slow = never_read(addr.clone(), small.clone()).await;
    let overload = fleet(&addr, &small, 200).await;
    let (rate, resends, elapsed) = (
        bytes_per_sec(&overload, 200, small.len(), 1024),
        overload.resends,
        overload.elapsed,
    );
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let samples = sampler.await.unwrap();
    slow.abort();
    eprintln!(
        "10x overload: 200 peers x 2000 blocks of 1 KiB in {:.1} s ({:.1} MiB/s, {resends} \
         re-sends); RSS idle {:.0} MiB, peak {:.0} MiB; budget {:.0} MiB",
        elapsed.as_secs_f64(),
        rate / MIB,
        rss_idle as f64 / MIB,
        daemon.memory().peak_rss_bytes as f64 / MIB,
        BENCH_BUDGET as f64 / MIB,
    );
    eprintln!("t (s)  RSS (MiB)  budget in use (MiB)");
    for (t, rss, budget) in samples {
        eprintln!(
            "{:5.2}  {:9.0}  {:19.1}",
            t.as_secs_f64(),
            rss as f64 / MIB,
            budget as f64 / MIB
        );
    }
    assert!(daemon.child_running(), "the daemon stayed up");
}
