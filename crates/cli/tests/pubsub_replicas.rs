//! Pub/sub across replicas (issue 19, "Replicas"): two replicas of one identity, one bucket
//! and one PostgreSQL database. A message published through one replica's Kubo RPC API
//! (`pubsub/pub`) reaches an RPC subscriber (`pubsub/sub`) of the other, through the
//! PostgreSQL fan-out, exactly once; large messages (through the `pubsub_messages` table)
//! too, both ways.

mod common;
#[path = "../../node/tests/pubsub_client/mod.rs"]
mod pubsub_client;

use common::Backends;
use pubsub_client::Api;

#[tokio::test(flavor = "multi_thread")]
async fn a_message_published_on_one_replica_reaches_a_subscriber_of_another() {
    let backends = Backends::start();
    let dir = tempfile::tempdir().unwrap();
    let replicas = common::start_replicas(dir.path(), &backends, 2, "");
    let peer_id = replicas[0].info.peer_id.clone();
    assert_eq!(replicas[1].info.peer_id, peer_id, "one identity");
    let (a, b) = (
        Api::new(&replicas[0].info.api_url),
        Api::new(&replicas[1].info.api_url),
    );
    let topic = "hydrant/replicas";
    let mut on_b = b.subscribe(topic).await;
    let mut on_a = a.subscribe(topic).await;

    // Small messages both ways, and one of 100 KB (over a NOTIFY payload) each way.
    let large: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let sent: Vec<(&Api, Vec<u8>)> = vec![
        (&a, b"from a".to_vec()),
        (&b, b"from b".to_vec()),
        (&a, large.clone()),
        (&b, large.iter().rev().copied().collect()),
    ];
    for (api, data) in &sent {
        let response = api.publish(topic, data).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    // Each subscriber sees all four (its own replica's and the other's), in each publisher's
    // order, each once.
    for lines in [&mut on_a, &mut on_b] {
        let mut got = Vec::new();
        for _ in 0..sent.len() {
            let m = lines.next_within(15).await.expect("stream open");
            assert_eq!(m.from, peer_id);
            assert_eq!(m.topics, [topic]);
            got.push(m.data);
        }
        let want: Vec<Vec<u8>> = sent.iter().map(|(_, d)| d.clone()).collect();
        for data in &want {
            assert_eq!(got.iter().filter(|g| *g == data).count(), 1, "each once");
        }
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(500), lines.next())
                .await
                .is_err(),
            "nothing more"
        );
    }
    for replica in &replicas {
        let metrics = replica.metrics().await;
        for (name, want) in [
            ("hydrant_pubsub_bus_forwarded_total", 2.0),
            ("hydrant_pubsub_bus_received_total", 2.0),
            ("hydrant_pubsub_bus_forwarded_large_total", 1.0),
            ("hydrant_pubsub_bus_listening", 1.0),
        ] {
            assert_eq!(common::metric(&metrics, name), want, "{name}");
        }
    }
}
