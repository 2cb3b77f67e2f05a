use super::*;

fn pubsub(queue: usize) -> (PubSub, mpsc::Receiver<Publish>, MemoryBudget) {
    let config = PubSubConfig {
        subscriber_queue_len: queue,
        max_topics: 2,
        max_subscribers: 3,
        ..PubSubConfig::default()
    };
    let budget = MemoryBudget::new(64 << 20);
    let (p, rx) = PubSub::new(PeerId::random(), &config, budget.clone());
    (p, rx, budget)
}

fn msg(from: PeerId, seq: u64, topic: &str) -> PubSubMessage {
    PubSubMessage {
        from,
        seqno: seq.to_be_bytes().to_vec(),
        data: Bytes::from(format!("m{seq}")),
        topic: topic.into(),
    }
}

#[tokio::test]
async fn each_message_reaches_each_subscriber_once() {
    let (ps, _rx, budget) = pubsub(8);
    let mut a = ps.subscribe("t").unwrap();
    let mut b = ps.subscribe("t").unwrap();
    let author = PeerId::random();
    ps.deliver_local(msg(author, 1, "t"));
    ps.deliver_local(msg(author, 1, "t")); // the same ID again: a duplicate
    ps.deliver_local(msg(author, 2, "other"));
    assert_eq!(a.recv().await.unwrap().data, "m1");
    assert_eq!(b.recv().await.unwrap().data, "m1");
    assert_eq!(ps.stats().duplicates.load(Ordering::Relaxed), 1);
    assert_eq!(ps.stats().delivered.load(Ordering::Relaxed), 2);
    assert_eq!(ps.seen_cache().0, 2);
    assert_eq!(ps.seen_cache().2, 0);
    assert_eq!(
        budget.stats().holders[5].in_use,
        0,
        "popped messages give their bytes back"
    );
    assert_eq!(ps.topics(), vec!["t".to_string()]);
}

#[tokio::test]
async fn a_full_queue_drops_its_subscriber_and_frees_its_messages() {
    let (ps, _rx, budget) = pubsub(2);
    let mut slow = ps.subscribe("t").unwrap();
    let mut fast = ps.subscribe("t").unwrap();
    let author = PeerId::random();
    for seq in 0..5 {
        ps.deliver_local(msg(author, seq, "t"));
        assert_eq!(fast.recv().await.unwrap().data, format!("m{seq}"));
    }
    assert_eq!(slow.recv().await, None, "dropped, its queue emptied");
    assert_eq!(slow.ended(), Some(Ended::SlowSubscriber));
    assert_eq!(fast.ended(), None);
    assert_eq!(ps.stats().dropped(DropReason::SubscriberSlow), 1);
    assert_eq!(ps.subscribers(), 1);
    assert_eq!(budget.stats().holders[5].in_use, 0);
}

#[tokio::test]
async fn limits_and_leaving() {
    let (ps, _rx, _) = pubsub(2);
    let a = ps.subscribe("a").unwrap();
    let b = ps.subscribe("b").unwrap();
    assert_eq!(
        ps.subscribe("c").unwrap_err(),
        PubSubError::TooManyTopics(2)
    );
    let a2 = ps.subscribe("a").unwrap();
    assert_eq!(
        ps.subscribe("a").unwrap_err(),
        PubSubError::TooManySubscribers(3)
    );
    drop(a);
    assert_eq!(
        ps.topics(),
        vec!["a".to_string(), "b".to_string()],
        "a2 still holds a"
    );
    drop(a2);
    assert_eq!(ps.topics(), vec!["b".to_string()]);
    drop(b);
    assert!(ps.topics().is_empty());
    assert_eq!(ps.subscribe("").unwrap_err(), PubSubError::BadTopic);
    let long = "t".repeat(MAX_TOPIC_BYTES + 1);
    assert_eq!(ps.subscribe(&long).unwrap_err(), PubSubError::BadTopic);
    assert_eq!(
        ps.publish(&long, Bytes::new()).unwrap_err(),
        PubSubError::BadTopic
    );
}

#[tokio::test]
async fn publish_checks_size_and_queues_for_the_swarm() {
    let (ps, mut rx, _) = pubsub(2);
    let big = Bytes::from(vec![0u8; ps.max_payload_bytes() + 1]);
    assert!(matches!(
        ps.publish("t", big),
        Err(PubSubError::TooLarge { .. })
    ));
    assert_eq!(ps.stats().dropped(DropReason::TooLarge), 1);
    ps.publish("t", Bytes::from_static(b"hi")).unwrap();
    let request = rx.recv().await.unwrap();
    assert_eq!(
        (request.topic.as_str(), &request.data[..]),
        ("t", &b"hi"[..])
    );
}

#[test]
fn local_seqnos_increase() {
    let (ps, _rx, _) = pubsub(2);
    let a = ps.local_seqno();
    let b = ps.local_seqno();
    assert_eq!(a.len(), 8);
    assert!(b > a);
}

#[tokio::test]
async fn the_outbox_gets_what_this_node_saw_first_hand_and_a_full_one_is_counted() {
    let (ps, _rx, _) = pubsub(2);
    let (tx, mut outbox) = mpsc::channel(1);
    assert!(ps.set_outbox(tx.clone()));
    assert!(!ps.set_outbox(tx), "only the first outbox is kept");
    let author = PeerId::random();
    // From another replica: local subscribers only, never back to the outbox.
    ps.deliver_local(msg(author, 1, "t"));
    assert!(outbox.try_recv().is_err());
    // Published or received here: to the outbox, dropped and counted when it is full.
    let first = Arc::new(msg(author, 2, "t"));
    ps.to_outbox(&first);
    ps.to_outbox(&Arc::new(msg(author, 3, "t")));
    assert_eq!(outbox.try_recv().unwrap(), first);
    assert_eq!(ps.stats().dropped(DropReason::OutboxFull), 1);
}
