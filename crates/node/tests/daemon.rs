//! The whole daemon in-process on loopback with a fresh repository: every real fixture CAR goes in
//! through the HTTP API, every block comes back out of the trustless gateway, and every DAG
//! comes back out of `export`. Known-bad CARs are refused with an offset and change nothing.

mod common;

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use cid::Cid;
use futures::StreamExt;
use hydrant_car::{CarDecoder, Event, Limits, verify_block};
use hydrant_node::DaemonInfo;
use hydrant_node::Repo;
use hydrant_testkit::{BAD_FIXTURE_CARS, fixture, valid_fixture_cars};

struct Car {
    roots: Vec<Cid>,
    blocks: HashMap<Cid, Bytes>,
}

fn read_car(bytes: &[u8]) -> Car {
    let mut d = CarDecoder::new(Limits::default());
    d.push(bytes);
    let mut car = Car {
        roots: Vec::new(),
        blocks: HashMap::new(),
    };
    while let Some(e) = d.next_event().unwrap() {
        match e {
            Event::Header(h) => car.roots = h.roots,
            Event::Section(s) => {
                car.blocks.insert(s.cid, s.data);
            }
        }
    }
    car
}

/// The blocks reachable from `root` inside the CAR itself, or the first link that is absent.
fn reachable(car: &Car, root: Cid) -> Result<HashSet<Cid>, Cid> {
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    while let Some(cid) = stack.pop() {
        if cid.hash().code() == 0 || !seen.insert(cid) {
            continue;
        }
        let data = car.blocks.get(&cid).ok_or(cid)?;
        match hydrant_unixfs::links(&cid, data) {
            Ok(links) => stack.extend(links),
            Err(hydrant_unixfs::DagError::UnsupportedCodec { .. }) => {}
            Err(e) => panic!("{cid}: {e}"),
        }
    }
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_round_trip_through_api_gateway_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let (info, stop, task) = common::start_daemon(&repo_dir, 0, |_| {}).await;
    assert!(info.swarm_addrs[0].ends_with(&format!("/p2p/{}", info.peer_id)));
    let http = reqwest::Client::new();

    // Known-bad CARs: 400 with an offset, nothing indexed.
    for f in BAD_FIXTURE_CARS {
        let body = fixture(f);
        let response = http
            .put(format!("{}/api/v1/cars", info.api_url))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{f}");
        let error: serde_json::Value = response.json().await.unwrap();
        let message = error["error"].as_str().unwrap();
        assert!(
            message.contains("offset") || message.contains("byte"),
            "{f}: {message}"
        );
    }
    let listed: Vec<serde_json::Value> = http
        .get(format!("{}/api/v1/cars", info.api_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listed.is_empty(), "a refused CAR was recorded: {listed:?}");

    let valid = valid_fixture_cars();
    // The store holds the union of all CARs: a DAG incomplete in one CAR may be completed by
    // another (cmd-simple-unixfs-missing-blocks.car and cmd-simple-unixfs.car).
    let mut all = Car {
        roots: Vec::new(),
        blocks: HashMap::new(),
    };
    for f in &valid {
        all.blocks.extend(read_car(&fixture(f)).blocks);
    }
    let mut complete_dags = 0;
    let mut exports = Vec::new();
    for f in &valid {
        let bytes = fixture(f);
        let response = http
            .put(format!("{}/api/v1/cars", info.api_url))
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{f}");
    }
    for f in &valid {
        let car = read_car(&fixture(f));

        // Every block through the raw gateway: the bytes hash to the CID.
        for cid in car.blocks.keys() {
            let response = http
                .get(format!("{}/ipfs/{cid}?format=raw", info.gateway_url))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{f}: {cid}");
            let body = response.bytes().await.unwrap();
            verify_block(cid, &body).unwrap_or_else(|e| panic!("{f}: {cid}: {e}"));
        }

        // Every root through the gateway's CAR: exactly the blocks reachable from the root,
        // each verified. A DAG with blocks missing from the CAR ends early.
        for root in &car.roots {
            let gateway_car = gateway_car(&info, *root).await;
            match reachable(&all, *root) {
                Ok(expected) => {
                    let raw = gateway_car.unwrap_or_else(|e| panic!("{f}: {root}: {e}"));
                    let exported = read_car(&raw);
                    let got: HashSet<Cid> = exported.blocks.keys().copied().collect();
                    assert_eq!(got, expected, "{f}: CAR of {root}");
                    assert_eq!(exported.roots, vec![*root]);
                    for (cid, data) in &exported.blocks {
                        verify_block(cid, data).unwrap();
                    }
                    complete_dags += 1;
                    exports.push((*root, Ok(raw)));
                }
                Err(_) => {
                    assert!(
                        gateway_car.is_err(),
                        "{f}: {root}: an incomplete DAG streamed whole"
                    );
                    exports.push((
                        *root,
                        Err(all.blocks.keys().copied().collect::<HashSet<_>>()),
                    ));
                }
            }
        }
    }
    assert!(
        complete_dags >= 30,
        "only {complete_dags} complete DAGs exported"
    );
    let listed: Vec<serde_json::Value> = http
        .get(format!("{}/api/v1/cars?limit=1000", info.api_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let distinct: HashSet<Vec<u8>> = valid.iter().map(|f| fixture(f)).collect();
    assert_eq!(listed.len(), distinct.len(), "one record per distinct CAR");

    stop.send(()).unwrap();
    task.await.unwrap();
    assert!(
        !repo_dir.join("api.json").exists(),
        "api.json left after shutdown"
    );

    // `hydrant export` without a daemon reads the local store: byte-identical to the gateway's
    // CAR, and an incomplete DAG fails naming a block that is not stored.
    let services = hydrant_node::Services::open(&Repo::open(&repo_dir).unwrap())
        .await
        .unwrap();
    for (root, expected) in exports {
        let mut stream = Box::pin(hydrant_node::car_stream(&services, root));
        let mut raw = Vec::new();
        let mut failure = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => raw.extend_from_slice(&chunk),
                Err(e) => failure = Some(e),
            }
        }
        match (expected, failure) {
            (Ok(gateway), None) => assert_eq!(Bytes::from(raw), gateway, "export of {root}"),
            (Err(present), Some(hydrant_gateway::CarStreamError::MissingBlock { cid })) => {
                assert!(
                    !present.contains(&cid),
                    "export of {root} called {cid} missing"
                );
            }
            (expected, failure) => panic!("export of {root}: {expected:?} vs {failure:?}"),
        }
    }
}

/// The gateway's `?format=car` answer for `root`, or the transport error of a cut-short stream.
async fn gateway_car(info: &DaemonInfo, root: Cid) -> Result<Bytes, String> {
    let response = reqwest::get(format!(
        "{}/ipfs/{root}?format=car&dag-scope=all&car-dups=n",
        info.gateway_url
    ))
    .await
    .map_err(|e| e.to_string())?;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut raw = Vec::new();
    while let Some(chunk) = stream.next().await {
        raw.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
    }
    Ok(Bytes::from(raw))
}

/// A listener on `0.0.0.0` reports one address per interface: `api.json` lists them all, for
/// the main peer's TCP and WebSocket listeners and for every DHT head (issue 18: only the first
/// interface's address used to be listed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_listeners_list_every_interface() {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let overrides = hydrant_node::Overrides {
        swarm_listen: vec![
            "/ip4/0.0.0.0/tcp/0".parse().unwrap(),
            "/ip4/0.0.0.0/tcp/0/ws".parse().unwrap(),
        ],
        gateway_listen: Some("127.0.0.1:0".parse().unwrap()),
        api_listen: Some("127.0.0.1:0".parse().unwrap()),
        heads: Some(2),
        dht_port_base: Some(0),
        bootstrap: Vec::new(),
    };
    let (info, stop, task) = common::start_daemon_with(&repo_dir, overrides, |repo| {
        repo.config.dht.listen_ip = "0.0.0.0".parse().unwrap();
    })
    .await;
    // The machine's IPv4 interfaces, as the kernel lists them.
    let interfaces: HashSet<String> = std::fs::read_to_string("/proc/net/fib_trie")
        .unwrap_or_default()
        .lines()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[1].contains("/32 host LOCAL"))
        .filter_map(|w| w[0].trim().strip_prefix("|-- ").map(str::to_owned))
        .collect();
    assert!(interfaces.contains("127.0.0.1"), "{interfaces:?}");
    let ips = |addrs: &[String], ws: bool| -> HashSet<String> {
        addrs
            .iter()
            .filter(|a| a.contains("/ws") == ws)
            .filter_map(|a| {
                a.strip_prefix("/ip4/")?
                    .split('/')
                    .next()
                    .map(str::to_owned)
            })
            .collect()
    };
    assert_eq!(
        ips(&info.swarm_addrs, false),
        interfaces,
        "TCP: {:?}",
        info.swarm_addrs
    );
    assert_eq!(
        ips(&info.swarm_addrs, true),
        interfaces,
        "WS: {:?}",
        info.swarm_addrs
    );
    for head in 0..2 {
        let of_head: Vec<String> = {
            let mut peers: Vec<&str> = info
                .dht_heads
                .iter()
                .filter_map(|a| a.rsplit("/p2p/").next())
                .collect();
            peers.sort_unstable();
            peers.dedup();
            let peer = peers[head];
            info.dht_heads
                .iter()
                .filter(|a| a.ends_with(peer))
                .cloned()
                .collect()
        };
        assert_eq!(ips(&of_head, false), interfaces, "head {head}: {of_head:?}");
    }
    let _ = stop.send(());
    task.await.unwrap();
}
