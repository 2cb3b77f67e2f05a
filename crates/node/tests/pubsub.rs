//! Pub/sub end to end: two Hydrant daemons over GossipSub, plain rust-libp2p gossipsub peers
//! of every key type and a `/meshsub/1.1.0`-only one, and Kubo's RPC calls over HTTP.

mod common;
mod pubsub_client;

use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity};
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, noise, yamux};
use pubsub_client::{Api, mb, strings};
use tokio::sync::mpsc;

/// The RSA key of the IPNS tests (PKCS#8, 2048 bits): rust-libp2p cannot generate RSA keys.
const RSA_PKCS8: &[u8] = include_bytes!("../../records/testdata/rsa-2048.pk8");

#[tokio::test]
async fn two_hydrant_nodes_exchange_messages_both_ways() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, stop_a, task_a) = common::start_daemon(dir_a.path(), 0, |_| {}).await;
    let (b, stop_b, task_b) = common::start_daemon(dir_b.path(), 0, |_| {}).await;
    let (api_a, api_b) = (Api::new(&a.api_url), Api::new(&b.api_url));

    let mut sub_a = api_a.subscribe("chat").await;
    let mut sub_b = api_b.subscribe("chat").await;
    let connected = api_b
        .json("swarm/connect", &[("arg", &a.swarm_addrs[0])])
        .await;
    assert_eq!(
        strings(&connected),
        vec![format!("connect {} success", a.peer_id)]
    );
    api_a.wait_for_peer("chat", &b.peer_id).await;
    api_b.wait_for_peer("chat", &a.peer_id).await;
    assert_eq!(
        strings(&api_a.json("pubsub/ls", &[]).await),
        vec![mb(b"chat")]
    );
    assert_eq!(api_a.peers(None).await, vec![b.peer_id.clone()]);

    for i in 0..20u32 {
        let (from, api) = if i % 2 == 0 {
            (&a, &api_a)
        } else {
            (&b, &api_b)
        };
        let data = format!("message {i} from {}", from.peer_id);
        assert_eq!(api.publish("chat", data.as_bytes()).await.status(), 200);
        for sub in [&mut sub_a, &mut sub_b] {
            // Each node gets it once: the publisher locally, the other over gossipsub.
            let got = sub.next_within(10).await.expect("a message");
            assert_eq!(got.data, data.as_bytes());
            assert_eq!(got.from, from.peer_id);
            assert_eq!(got.topics, vec!["chat".to_string()]);
            assert_eq!(got.seqno.len(), 8);
        }
    }
    let metrics = metrics(&api_a).await;
    assert!(
        metrics.contains("hydrant_pubsub_published_total 10\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hydrant_pubsub_received_total 10\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hydrant_pubsub_delivered_total 20\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hydrant_pubsub_topic_peers{topic=\"chat\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hydrant_gossipsub_"),
        "gossipsub's own metrics"
    );

    for (stop, task) in [(stop_a, task_a), (stop_b, task_b)] {
        stop.send(()).unwrap();
        task.await.unwrap();
    }
}

#[tokio::test]
async fn signed_messages_of_every_key_type_and_meshsub_1_1_peers_are_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (node, stop, task) = common::start_daemon(dir.path(), 0, |_| {}).await;
    let api = Api::new(&node.api_url);
    let hydrant: PeerId = node.peer_id.parse().unwrap();
    let addr: Multiaddr = node.swarm_addrs[0].parse().unwrap();
    let mut sub = api.subscribe("keys").await;

    let mut rsa_der = RSA_PKCS8.to_vec();
    let peers = [
        ("rsa", Keypair::rsa_from_pkcs8(&mut rsa_der).unwrap(), false),
        ("ed25519", Keypair::generate_ed25519(), false),
        ("secp256k1", Keypair::generate_secp256k1(), false),
        ("meshsub-1.1.0", Keypair::generate_ed25519(), true),
    ];
    for (name, key, only_1_1) in peers {
        let peer = key.public().to_peer_id();
        let data = format!("signed by a {name} key");
        let mut received =
            external_peer(key, only_1_1, addr.clone(), "keys", hydrant, data.clone());
        let got = sub.next_within(20).await.expect("a message");
        assert_eq!(
            (got.from, got.data),
            (peer.to_string(), data.into_bytes()),
            "{name}"
        );
        // And the other way: Hydrant's signed message verifies at the peer.
        api.wait_for_peer("keys", &peer.to_string()).await;
        let reply = format!("hello {name}");
        assert_eq!(api.publish("keys", reply.as_bytes()).await.status(), 200);
        let back = tokio::time::timeout(Duration::from_secs(20), received.recv())
            .await
            .expect("in time")
            .expect("a message");
        assert_eq!((back.0, back.1), (hydrant, reply.into_bytes()), "{name}");
        assert_eq!(
            sub.next_within(10).await.unwrap().from,
            node.peer_id,
            "local copy"
        );
    }
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_dropped_and_the_others_get_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (node, stop, task) = common::start_daemon(dir.path(), 0, |repo| {
        repo.config.pubsub.subscriber_queue_len = 16;
    })
    .await;
    let api = Api::new(&node.api_url);
    let _never_read = api.subscribe("busy").await;
    let mut reader = api.subscribe("busy").await;
    const MESSAGES: usize = 600;
    let reading = tokio::spawn(async move {
        let mut n = 0;
        while n < MESSAGES {
            let got = reader.next_within(30).await.expect("a message");
            assert_eq!(
                &got.data[..8],
                format!("{n:08}").as_bytes(),
                "in order, none lost"
            );
            n += 1;
        }
        (n, reader)
    });
    // 600 x 32 KiB: more than the sockets of the stalled subscriber can buffer.
    for i in 0..MESSAGES {
        let mut data = format!("{i:08}").into_bytes();
        data.resize(32 << 10, b'.');
        assert_eq!(api.publish("busy", &data).await.status(), 200);
    }
    let (read, _reader) = reading.await.unwrap();
    assert_eq!(read, MESSAGES);
    let metrics = metrics(&api).await;
    assert!(
        metrics.contains("hydrant_pubsub_dropped_total{reason=\"subscriber_slow\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hydrant_pubsub_subscribers 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hydrant_budget_holder_bytes{holder=\"pubsub\"}"),
        "{metrics}"
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn rpc_calls_answer_as_kubo() {
    let dir = tempfile::tempdir().unwrap();
    let (node, stop, task) = common::start_daemon(dir.path(), 0, |_| {}).await;
    let api = Api::new(&node.api_url);
    assert_eq!(
        strings(&api.json("pubsub/ls", &[]).await),
        Vec::<String>::new()
    );
    assert_eq!(api.peers(None).await, Vec::<String>::new());
    // Topics must be multibase base64url, as Kubo requires.
    let refused = api.post("pubsub/sub", &[("arg", "mY2hhdA")]).await;
    assert_eq!(refused.status(), 500);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["Message"], "URL arg must be base64url encoded");
    let missing = api.post("pubsub/sub", &[]).await;
    assert_eq!(missing.status(), 400);
    // Any bytes survive the trip: a topic with a slash and a space, binary data.
    let topic = "a/topic with spaces";
    let mut sub = api.subscribe(topic).await;
    assert_eq!(
        strings(&api.json("pubsub/ls", &[]).await),
        vec![mb(topic.as_bytes())]
    );
    let data: Vec<u8> = (0..=255).collect();
    assert_eq!(api.publish(topic, &data).await.status(), 200);
    let got = sub.next_within(10).await.unwrap();
    assert_eq!((got.data, got.topics), (data, vec![topic.to_string()]));
    let too_big = vec![0u8; 2 << 20];
    assert_eq!(api.publish(topic, &too_big).await.status(), 500);
    drop(sub);
    for _ in 0..100 {
        if strings(&api.json("pubsub/ls", &[]).await).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        strings(&api.json("pubsub/ls", &[]).await).is_empty(),
        "left on disconnect"
    );
    stop.send(()).unwrap();
    task.await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (node, stop, task) = common::start_daemon(dir.path(), 0, |repo| {
        repo.config.pubsub.enabled = false;
    })
    .await;
    let off = Api::new(&node.api_url).post("pubsub/ls", &[]).await;
    assert_eq!(off.status(), 500);
    let body: serde_json::Value = off.json().await.unwrap();
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .starts_with("experimental pubsub feature not enabled"),
        "{body}"
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

async fn metrics(api: &Api) -> String {
    api.http
        .get(format!("{}/metrics", api.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A plain rust-libp2p gossipsub peer with `key` (speaking only `/meshsub/1.1.0` when
/// `only_1_1`): dials `addr`, joins `topic`, publishes `data` once `hydrant` joined it, and
/// sends back every message it receives (author, data).
fn external_peer(
    key: Keypair,
    only_1_1: bool,
    addr: Multiaddr,
    topic: &str,
    hydrant: PeerId,
    data: String,
) -> mpsc::Receiver<(PeerId, Vec<u8>)> {
    let mut config = gossipsub::ConfigBuilder::default();
    if only_1_1 {
        config.protocol_id("/meshsub/1.1.0", gossipsub::Version::V1_1);
    }
    let config = config.build().unwrap();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            Default::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|k| {
            gossipsub::Behaviour::<gossipsub::IdentityTransform>::new(
                MessageAuthenticity::Signed(k.clone()),
                config,
            )
            .unwrap()
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let topic = IdentTopic::new(topic);
    swarm.behaviour_mut().subscribe(&topic).unwrap();
    swarm.dial(addr).unwrap();
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut sent = false;
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(gossipsub::Event::Subscribed { peer_id, .. })
                    if peer_id == hydrant && !sent =>
                {
                    swarm
                        .behaviour_mut()
                        .publish(topic.clone(), data.clone().into_bytes())
                        .unwrap();
                    sent = true;
                }
                SwarmEvent::Behaviour(gossipsub::Event::Message { message, .. }) => {
                    let from = message.source.unwrap();
                    if tx.send((from, message.data)).await.is_err() {
                        return;
                    }
                }
                _ => {}
            }
        }
    });
    rx
}

/// A peer that joins a topic by hand (a SUBSCRIBE on its own `/meshsub/1.1.0` stream) and
/// then never reads the stream Hydrant sends messages on: it loses messages, counted, and is
/// disconnected.
#[tokio::test]
async fn a_gossipsub_peer_that_stops_reading_is_disconnected() {
    use futures::AsyncWriteExt as _;
    let dir = tempfile::tempdir().unwrap();
    let (node, stop, task) = common::start_daemon(dir.path(), 0, |repo| {
        repo.config.pubsub.peer_queue_len = 16;
    })
    .await;
    let api = Api::new(&node.api_url);
    let _sub = api.subscribe("stalled").await;

    let key = Keypair::generate_ed25519();
    let me = key.public().to_peer_id();
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
    // Streams Hydrant opens to us are accepted and held, never read.
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
    let (closed_tx, mut closed) = mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::ConnectionClosed { peer_id, .. } = swarm.select_next_some().await
                && peer_id == hydrant
            {
                let _ = closed_tx.send(()).await;
            }
        }
    });
    // RPC { subscriptions: [SubOpts { subscribe: true, topicid: "stalled" }] }, length-prefixed.
    let topic = b"stalled";
    let mut sub_opts = vec![0x08, 0x01, 0x12, topic.len() as u8];
    sub_opts.extend_from_slice(topic);
    let mut rpc = vec![0x0a, sub_opts.len() as u8];
    rpc.extend_from_slice(&sub_opts);
    let mut frame = vec![rpc.len() as u8];
    frame.extend_from_slice(&rpc);
    let mut out = loop {
        match control.open_stream(hydrant, protocol.clone()).await {
            Ok(stream) => break stream,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    out.write_all(&frame).await.unwrap();
    out.flush().await.unwrap();
    api.wait_for_peer("stalled", &me.to_string()).await;

    let data = vec![b'x'; 64 << 10];
    let mut disconnected = false;
    for _ in 0..400 {
        assert_eq!(api.publish("stalled", &data).await.status(), 200);
        if closed.try_recv().is_ok() {
            disconnected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !disconnected {
        tokio::time::timeout(Duration::from_secs(10), closed.recv())
            .await
            .expect("the peer is disconnected")
            .unwrap();
    }
    let metrics = metrics(&api).await;
    assert!(
        metrics.contains("hydrant_pubsub_slow_peers_disconnected_total 1\n"),
        "{metrics}"
    );
    let failed: u64 = metrics
        .lines()
        .find(|l| l.starts_with("hydrant_pubsub_dropped_total{reason=\"peer_queue_full\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        failed >= 64,
        "{failed} messages counted as lost for the peer"
    );
    held.abort();
    stop.send(()).unwrap();
    task.await.unwrap();
}
