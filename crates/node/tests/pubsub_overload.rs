//! Overload (issue 19): 200 RPC subscribers on one topic, one of which never reads, and
//! 10,000 messages published through the RPC API. The 199 readers receive every message, the
//! stalled one is dropped (counted), and the process's RSS stays flat.
//!
//! The benchmark variant prints messages/s and RSS over time (BENCHMARKS.md, "Pub/sub
//! overload"):
//!
//! ```sh
//! cargo nextest run -p hydrant-node --test pubsub_overload --run-ignored only --no-capture
//! ```

mod common;
mod pubsub_client;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hydrant_node::ProcessMemory;
use pubsub_client::Api;

const SUBSCRIBERS: usize = 200;
const MESSAGES: usize = 10_000;
/// Payload bytes: ~700 bytes per NDJSON line, 7 MB per subscriber over the run, more than the
/// stalled subscriber's sockets hold.
const PAYLOAD: usize = 512;
const SAMPLE_EVERY: usize = 1_000;

/// What one run measured.
struct Run {
    /// (messages published, RSS bytes) every [`SAMPLE_EVERY`] messages.
    rss: Vec<(usize, u64)>,
    seconds: f64,
    metrics: String,
}

async fn overload() -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (node, stop, task) = common::start_daemon(dir.path(), 0, |repo| {
        repo.config.api.max_connections = 512;
        repo.config.api.max_connections_per_ip = 512;
        // Slack for readers that fall a little behind on a loaded machine; the stalled
        // subscriber still overflows it (10,000 messages).
        repo.config.pubsub.subscriber_queue_len = 2048;
    })
    .await;
    let api = Api::new(&node.api_url);
    let _stalled = api.subscribe("load").await;
    let received = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for _ in 1..SUBSCRIBERS {
        let mut lines = api.subscribe("load").await;
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            let mut last = None;
            for _ in 0..MESSAGES {
                last = Some(lines.next_within(120).await.expect("every message"));
                received.fetch_add(1, Ordering::Relaxed);
            }
            (last.expect("messages").data, lines)
        }));
    }
    let started = Instant::now();
    let mut rss = Vec::new();
    for i in 0..MESSAGES {
        let mut data = format!("{i:08}").into_bytes();
        data.resize(PAYLOAD, b'.');
        assert_eq!(api.publish("load", &data).await.status(), 200);
        if (i + 1) % SAMPLE_EVERY == 0 {
            rss.push((i + 1, ProcessMemory::read().rss_bytes));
        }
    }
    let mut kept = Vec::new();
    for reader in readers {
        let (last, lines) = reader.await.unwrap();
        assert_eq!(&last[..8], format!("{:08}", MESSAGES - 1).as_bytes());
        kept.push(lines);
    }
    let seconds = started.elapsed().as_secs_f64();
    rss.push((MESSAGES, ProcessMemory::read().rss_bytes));
    assert_eq!(
        received.load(Ordering::Relaxed),
        (SUBSCRIBERS - 1) * MESSAGES
    );
    let metrics = api
        .http
        .get(format!("{}/metrics", api.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    drop(kept);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the daemon stops")
        .unwrap();
    Run {
        rss,
        seconds,
        metrics,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_subscribers_one_stalled_ten_thousand_messages_rss_flat() {
    let run = overload().await;
    assert!(
        run.metrics
            .contains("hydrant_pubsub_dropped_total{reason=\"subscriber_slow\"} 1\n"),
        "the stalled subscriber is dropped, and only it"
    );
    // Every reader got every message; the stalled one only until its queue filled.
    let line = run
        .metrics
        .lines()
        .find(|l| l.starts_with("hydrant_pubsub_delivered_total"))
        .unwrap();
    let n: usize = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        ((SUBSCRIBERS - 1) * MESSAGES..SUBSCRIBERS * MESSAGES).contains(&n),
        "{line}"
    );
    let first = run.rss[0].1;
    let last = run.rss.last().unwrap().1;
    eprintln!("RSS (messages, MiB): {:?}", mib(&run.rss));
    assert!(
        last.saturating_sub(first) < 64 << 20,
        "RSS grew from {} to {} MiB between 1,000 and 10,000 messages",
        first >> 20,
        last >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints messages/s and RSS over time"]
async fn overload_benchmark() {
    let run = overload().await;
    println!(
        "{MESSAGES} messages x {} readers in {:.1} s: {:.0} messages/s published, {:.0} deliveries/s",
        SUBSCRIBERS - 1,
        run.seconds,
        MESSAGES as f64 / run.seconds,
        ((SUBSCRIBERS - 1) * MESSAGES) as f64 / run.seconds
    );
    println!("RSS (messages published, MiB): {:?}", mib(&run.rss));
}

fn mib(samples: &[(usize, u64)]) -> Vec<(usize, u64)> {
    samples.iter().map(|(n, b)| (*n, b >> 20)).collect()
}
