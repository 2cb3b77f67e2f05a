//! Connection limits of both HTTP listeners (hardening round two, item 1), against a real
//! daemon whose file descriptor limit is 1,024 (`ulimit -n 1024`, soft and hard).
//!
//! Before the limits, 1,097 idle connections from one client made the gateway and the API's
//! `/healthz` unreachable until the client closed them (every `accept` failed with `EMFILE`).
//! Asserts: one address gets at most `max_connections_per_ip` (the rest 429 and closed); many
//! addresses together get at most `max_connections` (the rest 503 with `Retry-After`); meanwhile
//! `/healthz` answers 200 and a gateway GET answers (200, or 503 while the listener is full)
//! within a second; idle and slowloris connections are closed after
//! `header_read_timeout_secs`, after which the gateway serves again; a response that takes
//! longer than that timeout to read is not cut.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::{Ports, Replica};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const NOFILE: u64 = 1024;
/// Long enough that the idle connections of the first phase are still held while the second
/// phase runs on a loaded machine.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const GATEWAY_MAX: usize = 400;
const GATEWAY_PER_IP: usize = 128;
const API_PER_IP: usize = 16;
/// The probe's count of idle connections from one client.
const FLOOD: usize = 1_100;

async fn connect_from(from: IpAddr, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(server).await.unwrap()
}

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

/// `count` connections from `from` that send nothing.
async fn idle_connections(from: &str, server: SocketAddr, count: usize) -> Vec<TcpStream> {
    let from: IpAddr = from.parse().unwrap();
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        streams.push(connect_from(from, server).await);
    }
    streams
}

/// Waits until `listener` (`gateway`, `api`) has accepted at least `total` connections so far,
/// by its metrics: held open, or refused (a refusal is counted after its answer was written).
/// Under load the accept loop can lag behind the clients' connects by seconds.
async fn wait_accepted(daemon: &Replica, listener: &str, total: usize) {
    for _ in 0..200 {
        let metrics = daemon.metrics().await;
        let series = |name: &str, reason: Option<&str>| {
            let labels = match reason {
                Some(r) => format!(r#"{{listener="{listener}",reason="{r}"}}"#),
                None => format!(r#"{{listener="{listener}"}}"#),
            };
            metrics
                .get(&format!("{name}{labels}"))
                .copied()
                .unwrap_or(0.0)
        };
        let seen = series("hydrant_http_connections_open", None)
            + series("hydrant_http_connections_refused_total", Some("per_ip"))
            + series("hydrant_http_connections_refused_total", Some("full"))
            + series("hydrant_http_header_read_timeouts_total", None);
        if seen as usize >= total {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the {listener} listener did not accept {total} connections within 10 s");
}

/// Sorts `streams`, all accepted by the server (see [`wait_accepted`]), into those it refused
/// (answered and closed: their status codes, 0 for closed without an answer) and those it holds
/// (nothing received).
async fn sort_out(streams: Vec<TcpStream>) -> (Vec<u16>, Vec<TcpStream>) {
    let mut refused = Vec::new();
    let mut held = Vec::new();
    for stream in streams {
        let mut buf = [0u8; 512];
        match stream.try_read(&mut buf) {
            Ok(0) => refused.push(0),
            Ok(n) => refused.push(common::status_of(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => held.push(stream),
            Err(_) => refused.push(0),
        }
    }
    (refused, held)
}

/// A GET on a fresh connection from 127.0.0.1: (status, retry-after, time to the answer head).
async fn timed_get(server: SocketAddr, target: &str) -> (u16, Option<String>, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(server).await.unwrap();
    stream
        .write_all(
            format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "closed without an answer to GET {target}");
        head.extend_from_slice(&buf[..n]);
    }
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let retry_after = text
        .lines()
        .find_map(|l| l.strip_prefix("retry-after:"))
        .map(|v| v.trim().to_owned());
    (common::status_of(&head), retry_after, elapsed)
}

/// `/healthz` and a gateway GET from 127.0.0.1 answer within a second; returns the gateway's
/// status and `Retry-After`.
async fn both_answer(daemon: &Replica, block: &str, when: &str) -> (u16, Option<String>) {
    let (health, _, health_took) = timed_get(addr(&daemon.info.api_url), "/healthz").await;
    assert_eq!(health, 200, "{when}: /healthz");
    assert!(
        health_took < Duration::from_secs(1),
        "{when}: /healthz took {health_took:?}"
    );
    let target = format!("/ipfs/{block}?format=raw");
    let (status, retry_after, took) = timed_get(addr(&daemon.info.gateway_url), &target).await;
    assert!(
        took < Duration::from_secs(1),
        "{when}: gateway GET took {took:?}"
    );
    (status, retry_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slowloris_connections_cannot_take_the_listeners() {
    // The client side holds ~2,000 sockets.
    rlimit::increase_nofile_limit(8192).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (root, leaves, car) = common::dag_car();
    let repo = common::offline_repo(
        dir.path(),
        &car,
        &format!(
            "[swarm]\nmax_connections = 64\n\n\
             [gateway]\nheader_read_timeout_secs = {}\nmax_connections = {GATEWAY_MAX}\n\
             max_connections_per_ip = {GATEWAY_PER_IP}\n\n\
             [api]\nheader_read_timeout_secs = {}\nmax_connections = 32\n\
             max_connections_per_ip = {API_PER_IP}\n",
            HEADER_TIMEOUT.as_secs(),
            HEADER_TIMEOUT.as_secs()
        ),
    );
    let daemon = Replica::start_with_nofile(&repo, Ports::free(), NOFILE);
    assert!(
        daemon.log().contains("file descriptors") && daemon.log().contains("limit=1024"),
        "the limit is reported at start-up:\n{}",
        daemon.log()
    );
    let gateway = addr(&daemon.info.gateway_url);
    let api = addr(&daemon.info.api_url);
    let block = leaves[0].to_string();

    // One client address opens the probe's 1,100 idle connections to the gateway, 200 to the API.
    let flood = idle_connections("127.0.0.2", gateway, FLOOD).await;
    let api_flood = idle_connections("127.0.0.2", api, 200).await;
    wait_accepted(&daemon, "gateway", FLOOD).await;
    wait_accepted(&daemon, "api", 200).await;
    let (refused, held) = sort_out(flood).await;
    assert_eq!(
        held.len(),
        GATEWAY_PER_IP,
        "held of one address's connections"
    );
    assert!(refused.iter().all(|s| *s == 429), "refused: {refused:?}");
    let (api_refused, api_held) = sort_out(api_flood).await;
    assert_eq!(api_held.len(), API_PER_IP);
    assert!(api_refused.iter().all(|s| *s == 429));
    let (status, _) = both_answer(&daemon, &block, "one address flooding").await;
    assert_eq!(status, 200, "another address is served");

    // Four more addresses: together they fill the gateway's max_connections.
    let mut more = Vec::new();
    for ip in ["127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"] {
        more.extend(idle_connections(ip, gateway, GATEWAY_PER_IP).await);
    }
    wait_accepted(&daemon, "gateway", FLOOD + more.len()).await;
    let (more_refused, more_held) = sort_out(more).await;
    assert_eq!(held.len() + more_held.len(), GATEWAY_MAX);
    assert!(more_refused.iter().all(|s| *s == 503), "{more_refused:?}");
    let (status, retry_after) = both_answer(&daemon, &block, "gateway full").await;
    assert_eq!(status, 503, "a full gateway says so");
    assert_eq!(retry_after.as_deref(), Some("1"));

    // A slowloris client: one header byte every 300 ms.
    let mut slowloris = connect_from("127.0.0.7".parse().unwrap(), api).await;
    let started = Instant::now();
    let closed_after = async {
        for byte in b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if slowloris.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut buf = [0u8; 64];
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::ZERO, slowloris.read(&mut buf)).await
            {
                break;
            }
        }
        started.elapsed()
    }
    .await;
    assert!(
        closed_after >= HEADER_TIMEOUT && closed_after < HEADER_TIMEOUT + Duration::from_secs(3),
        "the slowloris connection was closed after {closed_after:?}"
    );

    // By now every idle connection has outlived the header timeout: each is closed.
    for (i, mut stream) in held
        .into_iter()
        .chain(more_held)
        .chain(api_held)
        .enumerate()
    {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "idle connection {i} is still open: {read:?}"
        );
    }
    let (status, _) = both_answer(&daemon, &block, "after the idle connections closed").await;
    assert_eq!(status, 200, "the gateway serves again");

    let metrics = daemon.metrics().await;
    let refused_per_ip = common::metric(
        &metrics,
        r#"hydrant_http_connections_refused_total{listener="gateway",reason="per_ip"}"#,
    );
    assert_eq!(refused_per_ip as usize, refused.len());
    let timeouts = common::metric(
        &metrics,
        r#"hydrant_http_header_read_timeouts_total{listener="gateway"}"#,
    );
    assert!(timeouts as usize >= GATEWAY_MAX, "{timeouts}");

    // A response read more slowly than the header timeout is not cut: a 16 MiB CAR (more than
    // the socket buffers hold) read over more than 3 s.
    let mut reader = {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(gateway).await.unwrap()
    };
    let request =
        format!("GET /ipfs/{root}?format=car HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    reader.write_all(request.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut received = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        received += n;
        if started.elapsed() < HEADER_TIMEOUT + Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert!(
        received > car.len(),
        "cut after {received} of more than {} bytes, {:?}",
        car.len(),
        started.elapsed()
    );
}
