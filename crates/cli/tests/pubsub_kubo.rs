//! Pub/sub interop with a real Kubo v0.22 (issue 19: "Kubo releases that speak only
//! `/meshsub/1.1.0` interoperate"). The Kubo is the one the `kubo-python` wheel embeds
//! (`scripts/kubo-python.sh` installs it once); `scripts/kubo-pubsub.py` runs it on a fresh repo
//! (RSA identity, Kubo's default StrictSign), connects it to a `hydrant daemon`, subscribes and
//! publishes. The test shows, on one topic:
//!
//! - 100 messages Kubo publishes reach a `pubsub/sub` subscriber of Hydrant's RPC API, each once,
//!   `from` Kubo's peer ID (so Hydrant verified Kubo's RSA signature: it accepts only signed
//!   messages);
//! - 100 messages published through Hydrant's `pubsub/pub` reach Kubo, each once, `from`
//!   Hydrant's peer ID (so Kubo verified Hydrant's Ed25519 signature, as StrictSign requires);
//! - the protocol negotiated is `/meshsub/1.1.0` (`hydrant_gossipsub_peers_per_protocol`
//!   counts Kubo under Gossipsub v1.1: go-libp2p-pubsub 0.9 of Kubo 0.22 knows no 1.2);
//! - `pubsub/peers` and `hydrant_pubsub_topic_peers` list Kubo on the topic.

mod common;
#[path = "../../node/tests/pubsub_client/mod.rs"]
mod pubsub_client;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Ports, Replica, hydrant_bin, metric, run_json};
use pubsub_client::{Api, Received, unmb};

const TOPIC: &str = "hydrant-kubo-interop";
/// Messages each way.
const COUNT: usize = 100;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The interpreter with the `kubo-python` wheel (installed once by `scripts/kubo-python.sh`).
fn kubo_python() -> String {
    let out = Command::new(workspace().join("scripts/kubo-python.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/kubo-python.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A `hydrant daemon` on a fresh repository (no DHT: the test is offline).
fn hydrant(dir: &Path) -> Replica {
    let repo = dir.join("hydrant");
    run_json(
        Command::new(hydrant_bin())
            .arg("--repo")
            .arg(&repo)
            .args(["init", "--json"]),
    );
    std::fs::write(repo.join("config.toml"), "[dht]\nenabled = false\n").unwrap();
    Replica::start(&repo, Ports::free())
}

/// The data of the messages in `messages`, as text.
fn texts<'a>(messages: impl IntoIterator<Item = &'a Received>) -> Vec<String> {
    messages
        .into_iter()
        .map(|m| String::from_utf8(m.data.clone()).unwrap())
        .collect()
}

/// `"{prefix}0"` ... `"{prefix}{COUNT - 1}"`.
fn expected(prefix: &str) -> BTreeSet<String> {
    (0..COUNT).map(|i| format!("{prefix}{i}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_kubo_0_22_exchanges_messages_both_ways_over_meshsub_1_1() {
    let dir = tempfile::tempdir().unwrap();
    let node = hydrant(dir.path());
    let api = Api::new(&node.info.api_url);
    let mut sub = api.subscribe(TOPIC).await;

    let kubo = Command::new(kubo_python())
        .arg(workspace().join("scripts/kubo-pubsub.py"))
        .arg(&node.info.swarm_addrs[0])
        .arg(TOPIC)
        .args(["--count", &COUNT.to_string(), "--timeout", "90"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Kubo -> Hydrant: Kubo publishes once Hydrant is among its topic peers.
    let mut from_kubo = Vec::new();
    while from_kubo.len() < COUNT {
        let message = sub.next_within(60).await.expect("the subscription lasts");
        assert_eq!(message.topics, [TOPIC]);
        from_kubo.push(message);
    }
    let kubo_id = from_kubo[0].from.clone();
    assert_ne!(kubo_id, node.info.peer_id);
    assert!(from_kubo.iter().all(|m| m.from == kubo_id), "one sender");

    // Kubo is on the topic and speaks /meshsub/1.1.0 only.
    api.wait_for_peer(TOPIC, &kubo_id).await;
    let metrics = node.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            &format!("hydrant_pubsub_topic_peers{{topic=\"{TOPIC}\"}}")
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "hydrant_gossipsub_peers_per_protocol{protocol=\"Gossipsubv1_1\"}"
        ),
        1.0,
        "Kubo 0.22 negotiates /meshsub/1.1.0"
    );
    for newer in ["Gossipsubv1_2", "Gossipsubv1_3"] {
        let series = format!("hydrant_gossipsub_peers_per_protocol{{protocol=\"{newer}\"}}");
        assert_eq!(metric(&metrics, &series), 0.0, "{newer}");
    }

    // Hydrant -> Kubo, through the RPC API.
    for i in 0..COUNT {
        let answer = api.publish(TOPIC, format!("hydrant-{i}").as_bytes()).await;
        assert_eq!(answer.status(), 200);
    }
    let out = tokio::task::spawn_blocking(move || kubo.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/kubo-pubsub.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["peer_id"], kubo_id.as_str(), "{result}");
    assert_eq!(result["published"], COUNT, "{result}");
    assert_eq!(result["timed_out"], false, "{result}");
    let received = result["received"].as_array().unwrap();
    assert!(
        received
            .iter()
            .all(|m| m["from"] == node.info.peer_id.as_str()),
        "{result}"
    );
    let at_kubo: Vec<String> = received
        .iter()
        .map(|m| String::from_utf8(unmb(m["data"].as_str().unwrap())).unwrap())
        .collect();
    assert_eq!(at_kubo.len(), COUNT, "none twice: {result}");
    assert_eq!(
        at_kubo.into_iter().collect::<BTreeSet<_>>(),
        expected("hydrant-")
    );

    // Hydrant's subscriber: its own 100 (local copies), and Kubo's once each. Kubo stayed
    // connected a second after its last message, time for any duplicate to arrive.
    let mut local = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(1), sub.next()).await {
        if message.from == node.info.peer_id {
            local.push(message);
        } else {
            from_kubo.push(message);
        }
    }
    let at_hydrant = texts(&from_kubo);
    assert_eq!(at_hydrant.len(), COUNT, "none twice");
    assert_eq!(
        at_hydrant.into_iter().collect::<BTreeSet<_>>(),
        expected("kubo-")
    );
    assert_eq!(local.len(), COUNT, "local copies, once each");
    assert_eq!(
        texts(&local).into_iter().collect::<BTreeSet<_>>(),
        expected("hydrant-")
    );

    let metrics = node.metrics().await;
    assert_eq!(
        metric(&metrics, "hydrant_pubsub_received_total"),
        COUNT as f64
    );
    assert_eq!(
        metric(&metrics, "hydrant_pubsub_published_total"),
        COUNT as f64
    );
    assert_eq!(
        metric(&metrics, "hydrant_pubsub_dropped_total{reason=\"invalid\"}"),
        0.0
    );
}
