//! The replicas' pub/sub fan-out (`PubSubBus`) against a real PostgreSQL: two buses on one
//! schema deliver to each other and not to themselves, a large message goes through the
//! `pubsub_messages` table, and delivery resumes after a connection is killed or the server
//! restarts.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hydrant_pg::{BusConfig, BusMessage, PgPool, PoolConfig, PubSubBus};
use hydrant_testkit::{PostgresServer, postgres_server, unique_schema};
use tokio::sync::mpsc;

fn server() -> PostgresServer {
    postgres_server().unwrap_or_else(|e| panic!("no PostgreSQL server for the tests: {e}"))
}

async fn pool(url: &str, schema: &str) -> PgPool {
    let config = PoolConfig {
        max_size: 2,
        schema: schema.to_owned(),
        statement_timeout: Some(Duration::from_secs(30)),
        ..PoolConfig::default()
    };
    PgPool::connect(url, &config).await.expect("connect")
}

fn config() -> BusConfig {
    BusConfig {
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(500),
        health_interval: Duration::from_secs(1),
        ..BusConfig::default()
    }
}

/// A bus whose deliveries land in the returned receiver.
async fn bus(pool: &PgPool) -> (PubSubBus, mpsc::UnboundedReceiver<BusMessage>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let bus = PubSubBus::start(pool, config(), move |m| {
        let _ = tx.send(m);
    })
    .await;
    assert!(bus.snapshot().listening, "the first LISTEN failed");
    (bus, rx)
}

fn message(seqno: u64, data: impl Into<Bytes>) -> BusMessage {
    BusMessage {
        from: b"\x00\x24\x08\x01\x12\x20peer".to_vec(),
        seqno: seqno.to_be_bytes().to_vec(),
        topic: "hydrant/test".to_owned(),
        data: data.into(),
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<BusMessage>) -> BusMessage {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a delivery within 10 s")
        .expect("bus alive")
}

/// Nothing (more) arrives within `wait`.
async fn quiet(rx: &mut mpsc::UnboundedReceiver<BusMessage>, wait: Duration) {
    if let Ok(got) = tokio::time::timeout(wait, rx.recv()).await {
        panic!("unexpected delivery: {got:?}");
    }
}

fn dropped(bus: &PubSubBus, reason: &str) -> u64 {
    bus.snapshot()
        .dropped
        .iter()
        .find(|(r, _)| *r == reason)
        .map(|(_, n)| *n)
        .expect("known reason")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_buses_deliver_both_ways_not_to_themselves() {
    let server = server();
    let schema = unique_schema("bus");
    let pool = pool(&server.url(), &schema).await;
    let (a, mut a_rx) = bus(&pool).await;
    let (b, mut b_rx) = bus(&pool).await;
    assert_ne!(a.replica_id(), b.replica_id());
    // A bus of another schema on the same database hears nothing.
    let other = self::pool(&server.url(), &unique_schema("bus")).await;
    let (_c, mut c_rx) = bus(&other).await;

    for i in 0..100u64 {
        a.forward(&message(i, format!("from a {i}")));
        b.forward(&message(1000 + i, format!("from b {i}")));
    }
    for i in 0..100u64 {
        assert_eq!(next(&mut b_rx).await, message(i, format!("from a {i}")));
        assert_eq!(
            next(&mut a_rx).await,
            message(1000 + i, format!("from b {i}"))
        );
    }
    quiet(&mut a_rx, Duration::from_millis(300)).await;
    quiet(&mut b_rx, Duration::ZERO).await;
    quiet(&mut c_rx, Duration::ZERO).await;

    // One frame over the inline limit (about 5.9 KB) and one of 1 MiB: through the table.
    for (seqno, len) in [(7, 6_000), (8, 1 << 20)] {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        a.forward(&message(seqno, data.clone()));
        assert_eq!(next(&mut b_rx).await, message(seqno, data));
    }
    quiet(&mut a_rx, Duration::from_millis(300)).await;
    let (sa, sb) = (a.snapshot(), b.snapshot());
    assert_eq!(
        (sa.forwarded, sa.forwarded_large, sa.received),
        (102, 2, 100)
    );
    assert_eq!(
        (sb.forwarded, sb.forwarded_large, sb.received),
        (100, 0, 102)
    );
    assert!(sa.dropped.iter().chain(&sb.dropped).all(|(_, n)| *n == 0));
    let (client, connection) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {schema}.pubsub_messages"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 2, "large messages are kept for the retention");

    // Over max_frame_bytes: dropped at once, counted.
    a.forward(&message(9, vec![0u8; config().max_frame_bytes]));
    assert_eq!(dropped(&a, "too_large"), 1);
    quiet(&mut b_rx, Duration::from_millis(300)).await;
}

/// Sends from `from` every 100 ms until `to_rx` receives one (after an outage); returns how
/// many were sent.
async fn until_delivered(
    from: &PubSubBus,
    to_rx: &mut mpsc::UnboundedReceiver<BusMessage>,
    within: Duration,
) -> u64 {
    let deadline = Instant::now() + within;
    let mut sent = 0;
    loop {
        from.forward(&message(10_000 + sent, "after"));
        sent += 1;
        if let Ok(Some(got)) = tokio::time::timeout(Duration::from_millis(100), to_rx.recv()).await
        {
            assert_eq!(got.data, Bytes::from_static(b"after"));
            return sent;
        }
        assert!(Instant::now() < deadline, "no delivery within {within:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_resumes_after_the_connections_are_killed() {
    let server = server();
    let schema = unique_schema("bus");
    let pool_a = pool(&server.url(), &schema).await;
    // B's connections carry their own application_name, so they can be told apart.
    let pool_b = pool(&format!("{} application_name=bus_b", server.url()), &schema).await;
    let (a, mut a_rx) = bus(&pool_a).await;
    let (b, mut b_rx) = bus(&pool_b).await;
    a.forward(&message(1, "before"));
    assert_eq!(next(&mut b_rx).await.data, Bytes::from_static(b"before"));
    b.forward(&message(2, "before"));
    assert_eq!(next(&mut a_rx).await.data, Bytes::from_static(b"before"));

    let (client, connection) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let killed: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'bus_b') t",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed >= 2, "B's listener and sender: {killed}");

    // Both directions come back: B's listener and B's sender reconnect.
    until_delivered(&a, &mut b_rx, Duration::from_secs(20)).await;
    until_delivered(&b, &mut a_rx, Duration::from_secs(20)).await;
    let snapshot = b.snapshot();
    assert!(snapshot.listening);
    assert!(snapshot.reconnects >= 1, "{snapshot:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_drops_without_blocking_then_resumes() {
    let mut server = server();
    let Some(cluster) = server.cluster() else {
        eprintln!("HYDRANT_PG_URL is set: the server cannot be stopped, skipped");
        return;
    };
    let url = cluster.url();
    let schema = unique_schema("bus");
    let pool = pool(&url, &schema).await;
    let (a, _a_rx) = bus(&pool).await;
    let (b, mut b_rx) = bus(&pool).await;
    a.forward(&message(1, "before"));
    next(&mut b_rx).await;

    cluster.stop().unwrap();
    // Forwarding never waits, whatever the server's state; the messages are dropped, counted.
    let started = Instant::now();
    for i in 0..5_000 {
        a.forward(&message(100 + i, "while down"));
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let down = a.snapshot();
        let lost: u64 = down.dropped.iter().map(|(_, n)| n).sum();
        if down.forwarded + lost == 5_001 {
            assert_eq!(down.forwarded, 1, "{down:?}");
            break;
        }
        assert!(Instant::now() < deadline, "not all accounted for: {down:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!b.snapshot().listening);

    cluster.restart().unwrap();
    until_delivered(&a, &mut b_rx, Duration::from_secs(30)).await;
    assert!(b.snapshot().listening);
    assert!(a.snapshot().reconnects >= 1);
}

/// Throughput of the fan-out (BENCHMARKS.md, "Pub/sub across replicas"): 20,000 messages of
/// 200 bytes from one bus to another on a private cluster, paced in bursts the queue holds.
/// `cargo nextest run -p hydrant-pg --test pubsub_bus --run-ignored only --no-capture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints messages per second"]
async fn bench_fan_out_throughput() {
    let server = server();
    let pool = pool(&server.url(), &unique_schema("bus")).await;
    let (a, _a_rx) = bus(&pool).await;
    let (_b, mut b_rx) = bus(&pool).await;
    const N: u64 = 20_000;
    let started = Instant::now();
    let mut received = 0;
    for i in 0..N {
        a.forward(&message(i, vec![7u8; 200]));
        // Bursts of 512, well under the queue's 1,024 messages.
        if i % 512 == 511 {
            while received + 256 < i {
                next(&mut b_rx).await;
                received += 1;
            }
        }
    }
    while received < N {
        next(&mut b_rx).await;
        received += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let s = a.snapshot();
    println!(
        "fan-out: {N} messages of 200 bytes in {secs:.2} s = {:.0} messages/s; dropped {:?}",
        N as f64 / secs,
        s.dropped
    );
    assert!(s.dropped.iter().all(|(_, n)| *n == 0));
}
