//! Pub/sub peers that misbehave on the wire, written by hand over a raw `/meshsub/1.1.0`
//! stream (pubsub.md, "The RPC"): one that never reads what Hydrant sends, one that sends a
//! message with a bad signature.

mod common;
mod pubsub_client;

use std::time::Duration;

use futures::{AsyncWriteExt as _, StreamExt};
use hydrant_node::DaemonInfo;
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, noise, yamux};
use pubsub_client::Api;
use tokio::sync::mpsc;

/// A peer with a raw `/meshsub/1.1.0` stream to Hydrant. Streams Hydrant opens to it are
/// accepted and held, never read.
struct RawPeer {
    id: PeerId,
    out: libp2p::Stream,
    /// Gets a value when the connection to Hydrant closes.
    closed: mpsc::Receiver<()>,
    held: tokio::task::JoinHandle<()>,
}

/// A protobuf length-delimited field.
fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![number << 3 | 2];
    let mut len = bytes.len();
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(bytes);
    out
}

impl RawPeer {
    async fn connect(node: &DaemonInfo, key: Keypair) -> Self {
        let id = key.public().to_peer_id();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                Default::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|_| libp2p_stream::Behaviour::new())
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        let protocol = libp2p::StreamProtocol::new("/meshsub/1.1.0");
        let mut control = swarm.behaviour().new_control();
        let mut incoming = control.accept(protocol.clone()).unwrap();
        let held = tokio::spawn(async move {
            let mut streams = Vec::new();
            while let Some((_, stream)) = incoming.next().await {
                streams.push(stream);
            }
        });
        let hydrant: PeerId = node.peer_id.parse().unwrap();
        swarm
            .dial(node.swarm_addrs[0].parse::<Multiaddr>().unwrap())
            .unwrap();
        let (closed_tx, closed) = mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                if let SwarmEvent::ConnectionClosed { peer_id, .. } = swarm.select_next_some().await
                    && peer_id == hydrant
                {
                    let _ = closed_tx.send(()).await;
                }
            }
        });
        let out = loop {
            match control.open_stream(hydrant, protocol.clone()).await {
                Ok(stream) => break stream,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Self {
            id,
            out,
            closed,
            held,
        }
    }

    /// Sends one RPC (its protobuf fields), length-prefixed.
    async fn send(&mut self, rpc: &[u8]) {
        let mut frame = Vec::new();
        let mut len = rpc.len();
        while len >= 0x80 {
            frame.push((len as u8) | 0x80);
            len >>= 7;
        }
        frame.push(len as u8);
        frame.extend_from_slice(rpc);
        self.out.write_all(&frame).await.unwrap();
        self.out.flush().await.unwrap();
    }

    /// Sends `RPC { subscriptions: [{ subscribe: true, topicid: topic }] }`.
    async fn subscribe(&mut self, topic: &str) {
        let mut opts = vec![0x08, 0x01];
        opts.extend(field(2, topic.as_bytes()));
        self.send(&field(1, &opts)).await;
    }
}

#[tokio::test]
async fn a_gossipsub_peer_that_stops_reading_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let (node, stop, task) = common::start_daemon(dir.path(), 0, |repo| {
        repo.config.pubsub.peer_queue_len = 16;
    })
    .await;
    let api = Api::new(&node.api_url);
    let _sub = api.subscribe("stalled").await;
    let mut peer = RawPeer::connect(&node, Keypair::generate_ed25519()).await;
    peer.subscribe("stalled").await;
    api.wait_for_peer("stalled", &peer.id.to_string()).await;

    let data = vec![b'x'; 64 << 10];
    let mut disconnected = false;
    for _ in 0..400 {
        assert_eq!(api.publish("stalled", &data).await.status(), 200);
        if peer.closed.try_recv().is_ok() {
            disconnected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !disconnected {
        tokio::time::timeout(Duration::from_secs(10), peer.closed.recv())
            .await
            .expect("the peer is disconnected")
            .unwrap();
    }
    assert_eq!(
        api.metric("hydrant_pubsub_slow_peers_disconnected_total")
            .await,
        1
    );
    let failed = api
        .metric("hydrant_pubsub_dropped_total{reason=\"peer_queue_full\"}")
        .await;
    assert!(
        failed >= 64,
        "{failed} messages counted as lost for the peer"
    );
    peer.held.abort();
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_message_with_a_bad_signature_is_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (node, stop, task) = common::start_daemon(dir.path(), 0, |_| {}).await;
    let api = Api::new(&node.api_url);
    let mut sub = api.subscribe("signed").await;
    let key = Keypair::generate_ed25519();
    let mut peer = RawPeer::connect(&node, key.clone()).await;
    peer.subscribe("signed").await;
    api.wait_for_peer("signed", &peer.id.to_string()).await;

    // Message { from, data, seqno, topic, signature }: signed over the fields before it
    // (pubsub.md, "Message Signing"), then sent with one byte of the data changed.
    let from = peer.id.to_bytes();
    let fields = |data: &[u8]| {
        let mut m = field(1, &from);
        m.extend(field(2, data));
        m.extend(field(3, &7u64.to_be_bytes()));
        m.extend(field(4, b"signed"));
        m
    };
    let mut signed_bytes = b"libp2p-pubsub:".to_vec();
    signed_bytes.extend(fields(b"genuine"));
    let signature = field(5, &key.sign(&signed_bytes).unwrap());
    let forged = [fields(b"genuinE"), signature.clone()].concat();
    let genuine = [fields(b"genuine"), signature].concat();
    peer.send(&field(2, &forged)).await;
    for _ in 0..100 {
        if api
            .metric("hydrant_pubsub_dropped_total{reason=\"invalid\"}")
            .await
            > 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        api.metric("hydrant_pubsub_dropped_total{reason=\"invalid\"}")
            .await,
        1
    );
    // The same message with its real data verifies and is delivered: the forged one was not.
    peer.send(&field(2, &genuine)).await;
    let got = sub.next_within(10).await.expect("a message");
    assert_eq!(
        (got.from, got.data),
        (peer.id.to_string(), b"genuine".to_vec())
    );
    assert_eq!(api.metric("hydrant_pubsub_received_total").await, 1);
    peer.held.abort();
    stop.send(()).unwrap();
    task.await.unwrap();
}
