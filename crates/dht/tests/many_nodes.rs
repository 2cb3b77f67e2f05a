//! Many real DHT nodes over TCP on 127.0.0.1 (noise, yamux, identify, libp2p-stream), some
//! of them multi-head: providing and finding providers, then 60 % of the nodes turn into
//! peers that accept connections and reset every kad stream (the 2023 incident). No honest
//! routing table may hold one of them, including freshly bootstrapped nodes that are told
//! about them, and lookups must still succeed.
//!
//! Sized for 2 shared cores: nodes bootstrap at most 24 at a time, each from 3 random nodes
//! already up (not all from the same seeds); requests time out after 2 s; idle connections
//! close after 3 s (see [`IDLE_CONNECTION_TIMEOUT`]). Phase durations and open file
//! descriptors are printed, never asserted. `HYDRANT_DHT_TEST_NODES` overrides the node count
//! (200) for experiments.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use hydrant_dht::heads::head_keypair;
use hydrant_dht::kbucket::TableConfig;
use hydrant_dht::network::{
    ChannelDialer, Dht, DhtConfig, DhtHandle, HeadHandle, LookupError, ProviderInfo,
    ProviderLookup, ProviderSink, RejectAllValues, handle_dial_request,
};
use hydrant_dht::protocol::{PROTOCOL, Request, encode_request, read_frame, write_frame};
use hydrant_dht::query::QueryConfig;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, identify, noise, yamux};

/// Idle connections close after this long. Short because every connection costs two file
/// descriptors of this one process: the heads end up talking to most other heads, and with
/// 10 s idle connections 200 nodes (234 heads) exhausted a 20 000-descriptor limit during
/// bootstrap; with 3 s about 10 000 were open at most.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    stream: libp2p_stream::Behaviour,
}

/// An in-memory provider store (a real one, not a mock).
#[derive(Default)]
struct Store(Mutex<HashMap<Vec<u8>, Vec<ProviderInfo>>>);

#[async_trait::async_trait]
impl ProviderLookup for Store {
    async fn providers(&self, key: &[u8]) -> Result<Vec<ProviderInfo>, LookupError> {
        Ok(self.0.lock().unwrap().get(key).cloned().unwrap_or_default())
    }
}

impl ProviderSink for Store {
    fn add(&self, key: Vec<u8>, provider: ProviderInfo) -> bool {
        let mut map = self.0.lock().unwrap();
        let list = map.entry(key).or_default();
        list.retain(|p| p.peer != provider.peer);
        list.push(provider);
        true
    }
}

struct HeadSwarm {
    peer: PeerId,
    addr: Multiaddr,
    control: libp2p_stream::Control,
    dialer: Arc<ChannelDialer>,
}

struct Node {
    heads: Vec<HeadSwarm>,
    dht: Option<DhtHandle>,
}

impl Node {
    fn dht(&self) -> &DhtHandle {
        self.dht.as_ref().expect("honest node")
    }
    fn contacts(&self) -> Vec<(PeerId, Vec<Multiaddr>)> {
        self.heads
            .iter()
            .map(|h| (h.peer, vec![h.addr.clone()]))
            .collect()
    }
}

async fn start_swarm(keypair: libp2p::identity::Keypair) -> HeadSwarm {
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp")
        .with_behaviour(|key| Behaviour {
            identify: identify::Behaviour::new(identify::Config::new(
                "ipfs/0.1.0".into(),
                key.public(),
            )),
            stream: libp2p_stream::Behaviour::new(),
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .expect("listen");
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    let peer = *swarm.local_peer_id();
    let control = swarm.behaviour().stream.new_control();
    let (dialer, mut dials) = ChannelDialer::new();
    let dialer = Arc::new(dialer);
    let d = dialer.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(req) = dials.recv() => handle_dial_request(&mut swarm, req),
                ev = swarm.select_next_some() => {
                    if let SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) = ev {
                        d.set_listen_addrs(peer_id, info.listen_addrs);
                    }
                }
            }
        }
    });
    HeadSwarm {
        peer,
        addr,
        control,
        dialer,
    }
}

fn config() -> DhtConfig {
    DhtConfig {
        table: TableConfig {
            // Every node is on 127.0.0.1: the IP diversity filter would admit 3 peers.
            diversity: None,
            // Every refresh() re-checks every peer (the test calls it once, after the switch).
            liveness_interval: Duration::ZERO,
            ..TableConfig::default()
        },
        query: QueryConfig {
            request_timeout: Duration::from_secs(2),
            ..QueryConfig::default()
        },
        maintenance_interval: Duration::from_millis(200),
        // Refresh only when the test asks.
        refresh_check_interval: Duration::from_secs(3600),
        ..DhtConfig::default()
    }
}

async fn start_node(seed: usize, heads: u32) -> Node {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&(seed as u64).to_be_bytes());
    let mut swarms = Vec::new();
    for i in 0..heads {
        let key = head_keypair(&secret, i, heads).expect("head key");
        swarms.push(start_swarm(key).await);
    }
    let store = Arc::new(Store::default());
    let handles = swarms
        .iter()
        .map(|h| HeadHandle {
            peer_id: h.peer,
            control: h.control.clone(),
            dialer: h.dialer.clone(),
        })
        .collect();
    let dht = Dht::spawn(
        config(),
        handles,
        store.clone(),
        store,
        Arc::new(RejectAllValues),
    )
    .expect("spawn");
    Node {
        heads: swarms,
        dht: Some(dht),
    }
}

/// Turns a node into one that accepts connections and kad streams and resets every stream
/// without reading it.
async fn turn_bad(node: &mut Node) {
    if let Some(dht) = node.dht.take() {
        dht.shutdown();
    }
    for h in &node.heads {
        let mut control = h.control.clone();
        tokio::spawn(async move {
            // The aborted service releases the protocol shortly.
            let mut incoming = loop {
                match control.accept(PROTOCOL) {
                    Ok(s) => break s,
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            };
            while let Some((_peer, stream)) = incoming.next().await {
                drop(stream); // reset, unread
            }
        });
    }
}

/// A bad head talks to `target` (so that the target hears of it inbound, as a candidate).
async fn pester(bad: &HeadSwarm, target: &HeadSwarm) {
    bad.dialer
        .set_listen_addrs(target.peer, vec![target.addr.clone()]);
    let _ =
        hydrant_dht::network::Dialer::dial(&*bad.dialer, target.peer, vec![target.addr.clone()])
            .await;
    let mut control = bad.control.clone();
    if let Ok(Ok(mut s)) = tokio::time::timeout(
        Duration::from_secs(5),
        control.open_stream(target.peer, PROTOCOL),
    )
    .await
    {
        let body = encode_request(&Request::FindNode {
            key: bad.peer.to_bytes(),
        });
        let _ = write_frame(&mut s, &body).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s, 65536)).await;
    }
}

async fn find_provider(node: &Node, key: &[u8]) -> Vec<ProviderInfo> {
    node.dht()
        .get_providers(key, Some(1))
        .await
        .expect("lookup")
}

fn content_key(i: u32) -> Vec<u8> {
    use sha2::Digest as _;
    let mut k = vec![0x12, 0x20];
    k.extend_from_slice(&sha2::Sha256::digest(format!("content {i}").as_bytes()));
    k
}

/// A deterministic pseudo-random sequence (splitmix64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

fn table_sizes(nodes: &[Node], which: &[usize]) -> String {
    let sizes: Vec<usize> = which
        .iter()
        .map(|&i| nodes[i].dht().routing_table().len())
        .collect();
    let min = sizes.iter().min().copied().unwrap_or(0);
    let max = sizes.iter().max().copied().unwrap_or(0);
    let avg = sizes.iter().sum::<usize>() / sizes.len().max(1);
    format!("table sizes min {min} avg {avg} max {max}")
}

/// Node count: 200, or `HYDRANT_DHT_TEST_NODES`.
fn node_count() -> usize {
    std::env::var("HYDRANT_DHT_TEST_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// Node `i` has 3 heads if `i % 12 == 4` (both honest and bad ones), else 1.
fn heads_of(i: usize) -> u32 {
    if i % 12 == 4 { 3 } else { 1 }
}

/// Nodes `i % 5 < 3` turn bad; the others stay honest.
fn turns_bad(i: usize) -> bool {
    i % 5 < 3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_nodes_survive_sixty_percent_stream_resetters() {
    let n = node_count();
    let start = Instant::now();
    let mut phase = Instant::now();
    let mut report = |what: &str| {
        eprintln!(
            "[{:>6.1}s] {what} ({:.1}s, {} open fds)",
            start.elapsed().as_secs_f64(),
            phase.elapsed().as_secs_f64(),
            open_fds()
        );
        phase = Instant::now();
    };
    let mut nodes = Vec::new();
    for i in 0..n {
        nodes.push(start_node(i, heads_of(i)).await);
    }
    let head_count: usize = nodes.iter().map(|n| n.heads.len()).sum();
    let multi = nodes.iter().filter(|n| n.heads.len() > 1).count();
    report(&format!(
        "started {n} nodes, {multi} of them with 3 heads, {head_count} heads"
    ));

    // Bootstrap: at most 24 nodes at once, each from 3 random nodes already up.
    let up = Mutex::new(vec![0usize]);
    let rng = Mutex::new(Rng(7));
    let (nodes_ref, up_ref, rng_ref) = (&nodes, &up, &rng);
    futures::stream::iter(1..n)
        .for_each_concurrent(24, |i| async move {
            let seeds: Vec<(PeerId, Vec<Multiaddr>)> = {
                let up = up_ref.lock().unwrap();
                let mut rng = rng_ref.lock().unwrap();
                let mut from = HashSet::new();
                while from.len() < 3.min(up.len()) {
                    from.insert(up[rng.below(up.len())]);
                }
                from.iter().flat_map(|&s| nodes_ref[s].contacts()).collect()
            };
            nodes_ref[i].dht().bootstrap(seeds).await;
            up_ref.lock().unwrap().push(i);
        })
        .await;
    let all: Vec<usize> = (0..n).collect();
    report(&format!("bootstrapped; {}", table_sizes(&nodes, &all)));
    for (i, node) in nodes.iter().enumerate() {
        assert!(!node.dht().routing_table().is_empty(), "node {i} has peers");
    }

    // An honest node provides some keys; honest nodes (single- and multi-head) find it.
    let provider = &nodes[3];
    assert!(!turns_bad(3));
    let provider_head = provider.heads[0].peer;
    let keys: Vec<Vec<u8>> = (0..4).map(content_key).collect();
    for key in &keys {
        let sent = provider
            .dht()
            .provide(key, vec![provider.heads[0].addr.clone()])
            .await
            .expect("provide");
        assert!(sent > 0, "provider records sent");
    }
    let honest: Vec<usize> = (0..n).filter(|&i| !turns_bad(i)).collect();
    let queriers: Vec<usize> = honest.iter().copied().step_by(5).take(8).collect();
    assert!(queriers.iter().any(|&q| heads_of(q) > 1));
    let nodes_ref = &nodes;
    let keys_ref = &keys;
    futures::stream::iter(&queriers)
        .for_each_concurrent(None, |&q| async move {
            for key in keys_ref {
                let found = find_provider(&nodes_ref[q], key).await;
                let p = found.iter().find(|p| p.peer == provider_head);
                let p = p.unwrap_or_else(|| panic!("node {q} finds the provider"));
                assert!(
                    p.addrs.contains(&provider.heads[0].addr),
                    "with its address"
                );
            }
        })
        .await;
    report("provided and found");

    // 60 % of the nodes turn into stream resetters (never the provider).
    let bad_nodes: Vec<usize> = (0..n).filter(|&i| turns_bad(i)).collect();
    assert_eq!(bad_nodes.len(), n * 3 / 5);
    assert!(bad_nodes.iter().any(|&b| heads_of(b) > 1));
    for &b in &bad_nodes {
        turn_bad(&mut nodes[b]).await;
    }
    let bad_peers: HashSet<PeerId> = bad_nodes
        .iter()
        .flat_map(|&b| nodes[b].heads.iter().map(|h| h.peer))
        .collect();
    // Bad peers talk to honest nodes, which hear of them inbound.
    let nodes_ref = &nodes;
    futures::stream::iter(bad_nodes.iter().enumerate())
        .for_each_concurrent(32, |(j, &b)| {
            let bad = &nodes_ref[b].heads[0];
            let target = &nodes_ref[honest[j % honest.len()]].heads[0];
            pester(bad, target)
        })
        .await;
    // Let requests that were answered before the switch complete.
    tokio::time::sleep(Duration::from_secs(1)).await;
    report(&format!("{} nodes turned bad", bad_nodes.len()));
    futures::stream::iter(&honest)
        .for_each_concurrent(16, |&h| nodes_ref[h].dht().refresh())
        .await;
    report(&format!(
        "honest nodes refreshed; {}",
        table_sizes(&nodes, &honest)
    ));
    for &h in &honest {
        let table = nodes[h].dht().routing_table();
        assert!(!table.is_empty(), "honest node {h} keeps peers");
        for (p, _) in &table {
            assert!(!bad_peers.contains(p), "honest node {h} holds bad peer {p}");
        }
    }

    // Fresh nodes bootstrap from a list that mixes bad and honest peers, and bad peers talk
    // to them first.
    let mut fresh = Vec::new();
    for i in 0..6 {
        fresh.push(start_node(n + i, heads_of(i)).await);
    }
    let mut mixed: Vec<(PeerId, Vec<Multiaddr>)> = bad_nodes[..6]
        .iter()
        .flat_map(|&b| nodes[b].contacts())
        .collect();
    mixed.extend(honest[..3].iter().flat_map(|&h| nodes[h].contacts()));
    let nodes_ref = &nodes;
    let (bad_ref, mixed_ref, bad_peers_ref) = (&bad_nodes, &mixed, &bad_peers);
    futures::stream::iter(fresh.iter().enumerate())
        .for_each_concurrent(None, |(j, node)| async move {
            for m in 0..3 {
                let b = bad_ref[(6 + 3 * j + m) % bad_ref.len()];
                pester(&nodes_ref[b].heads[0], &node.heads[0]).await;
            }
            let admitted = node.dht().bootstrap(mixed_ref.clone()).await;
            assert!(
                admitted >= 1,
                "fresh node {j} admits some honest bootstrap peer"
            );
            node.dht().refresh().await;
            let failures = node
                .dht()
                .stats()
                .probe_failures
                .load(std::sync::atomic::Ordering::Relaxed);
            assert!(failures >= 6, "bad peers were probed and failed");
            let table = node.dht().routing_table();
            assert!(!table.is_empty());
            for (p, _) in &table {
                assert!(
                    !bad_peers_ref.contains(p),
                    "fresh node {j} holds bad peer {p}"
                );
            }
        })
        .await;
    report("fresh nodes bootstrapped");

    // Lookups still succeed, from old and fresh honest nodes, and return no bad peer.
    let lookers: Vec<&Node> = queriers.iter().map(|&q| &nodes[q]).chain(&fresh).collect();
    futures::stream::iter(lookers)
        .for_each_concurrent(None, |node| async move {
            for key in keys_ref {
                let found = find_provider(node, key).await;
                assert!(
                    found.iter().any(|p| p.peer == provider_head),
                    "provider still found"
                );
            }
            let closest = node.dht().find_node(&keys_ref[0]).await.expect("find_node");
            assert!(!closest.is_empty());
            assert!(closest.iter().all(|p| !bad_peers_ref.contains(&p.peer)));
        })
        .await;
    report("lookups after the switch succeeded");
}
