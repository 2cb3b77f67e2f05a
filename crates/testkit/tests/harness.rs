//! The harnesses against the real servers: Garage through an S3 client, HAProxy through TCP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use hydrant_testkit::{Backend, Haproxy, TempGarage};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, path::Path,
};

/// An S3 client of `garage` that gives up quickly (one retry, 2 s connect timeout), so a
/// request to a stopped server fails in seconds rather than minutes.
fn s3_client(garage: &TempGarage) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(garage.endpoint())
        .with_region(garage.region())
        .with_bucket_name(garage.bucket())
        .with_access_key_id(garage.access_key_id())
        .with_secret_access_key(garage.secret_access_key())
        // Before `with_allow_http`: the client options replace all earlier ones.
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(2))
                .with_timeout(Duration::from_secs(10)),
        )
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 1,
            retry_timeout: Duration::from_secs(5),
        })
        .build()
        .expect("S3 client")
}

#[test]
fn garage_serves_s3_and_keeps_its_data_across_restarts() {
    let started = Instant::now();
    let mut garage = TempGarage::start().expect("start garage");
    eprintln!("garage started in {:?}", started.elapsed());
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let s3 = s3_client(&garage);

    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let path = Path::from("blocks/some-object");
    rt.block_on(s3.put(&path, PutPayload::from(data.clone())))
        .expect("put");
    let part = rt
        .block_on(s3.get_range(&path, 1000..5000))
        .expect("ranged get");
    assert_eq!(part, data[1000..5000]);
    let listed: Vec<_> = rt
        .block_on(s3.list(Some(&Path::from("blocks"))).try_collect())
        .expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].location, path);
    assert_eq!(listed[0].size, data.len() as u64);
    let whole = rt
        .block_on(async { s3.get(&path).await?.bytes().await })
        .expect("get");
    assert_eq!(whole, data);

    // A graceful stop, then a crash: the object survives both.
    for crash in [false, true] {
        let stopping = Instant::now();
        if crash {
            garage.kill().expect("kill garage");
        } else {
            garage.stop().expect("stop garage");
        }
        eprintln!(
            "garage stopped (crash: {crash}) in {:?}",
            stopping.elapsed()
        );
        assert!(!garage.is_running());
        let err = rt
            .block_on(s3.get(&path))
            .expect_err("get from a stopped garage");
        eprintln!("get while stopped: {err}");

        let restarted = Instant::now();
        garage.restart().expect("restart garage");
        eprintln!("garage restarted in {:?}", restarted.elapsed());
        let deadline = Instant::now() + Duration::from_secs(10);
        let again = loop {
            match rt.block_on(s3.get_range(&path, 0..10)) {
                Ok(bytes) => break bytes,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("get after restart: {e}");
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("object unreadable 10 s after the restart: {e}"),
            }
        };
        eprintln!("readable {:?} after the restart began", restarted.elapsed());
        assert_eq!(again, data[..10]);
    }
}

/// A backend of the load-balancing test: a TCP server that greets each connection with its
/// name then echoes, and a readiness server answering `GET /readyz` with 200 or 503.
struct TestBackend {
    backend: Backend,
    ready: Arc<AtomicBool>,
}

fn test_backend(name: &'static str) -> TestBackend {
    let traffic = TcpListener::bind("127.0.0.1:0").expect("bind");
    let checks = TcpListener::bind("127.0.0.1:0").expect("bind");
    let ready = Arc::new(AtomicBool::new(true));
    let backend = Backend {
        addr: traffic.local_addr().expect("addr"),
        check_url_port: Some(checks.local_addr().expect("addr").port()),
    };
    thread::spawn(move || {
        for stream in traffic.incoming().flatten() {
            thread::spawn(move || {
                let mut stream = stream;
                let _ = writeln!(stream, "{name}");
                if let Ok(mut reader) = stream.try_clone() {
                    let _ = std::io::copy(&mut reader, &mut stream);
                }
            });
        }
    });
    let is_ready = Arc::clone(&ready);
    thread::spawn(move || {
        for mut stream in checks.incoming().flatten() {
            let mut request = Vec::new();
            let mut buf = [0; 512];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let status = if is_ready.load(Ordering::Relaxed) {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let _ = write!(
                stream,
                "HTTP/1.0 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    TestBackend { backend, ready }
}

/// Connects through the load balancer, checks the echo, and returns the backend's name.
fn reached(frontend: SocketAddr) -> String {
    let mut stream = TcpStream::connect(frontend).expect("connect to haproxy");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    stream.write_all(b"ping\n").expect("write");
    let mut reader = BufReader::new(stream);
    let (mut name, mut echo) = (String::new(), String::new());
    reader.read_line(&mut name).expect("greeting");
    reader.read_line(&mut echo).expect("echo");
    assert_eq!(echo, "ping\n");
    name.trim().to_owned()
}

/// Connects until `want` holds for the last `run` backends reached; panics after 10 s.
fn until(frontend: SocketAddr, haproxy: &Haproxy, what: &str, want: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        seen.push(reached(frontend));
        if want(&seen) {
            eprintln!("{what} after {:?}: {seen:?}", started.elapsed());
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not {what} within 10 s; reached {seen:?}\nhaproxy log:\n{}",
            haproxy.log()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn haproxy_balances_and_skips_a_backend_that_is_not_ready() {
    let (a, b) = (test_backend("a"), test_backend("b"));
    let haproxy = Haproxy::start(&[a.backend, b.backend]).expect("start haproxy");
    let frontend = haproxy.addr();
    let last = |seen: &[String], n: usize| seen[seen.len().saturating_sub(n)..].to_vec();

    until(frontend, &haproxy, "both backends reached", |seen| {
        seen.iter().any(|n| n == "a") && seen.iter().any(|n| n == "b")
    });

    b.ready.store(false, Ordering::Relaxed);
    until(frontend, &haproxy, "only a reached", |seen| {
        seen.len() >= 6 && last(seen, 6).iter().all(|n| n == "a")
    });

    b.ready.store(true, Ordering::Relaxed);
    until(frontend, &haproxy, "b back in rotation", |seen| {
        last(seen, 1) == ["b"]
    });
}
