//! Pub/sub across replicas (issue 19, "Replicas"; DESIGN.md, "Pub/sub behind a load
//! balancer"): when the index is PostgreSQL, every message this replica publishes or receives
//! from gossipsub goes from [`PubSub`]'s outbox to the [`PubSubBus`], and what the other
//! replicas forward comes out of the bus into [`PubSub::deliver_local`] (which drops a message
//! already seen, by author and seqno).

use std::sync::Arc;

use hydrant_pg::{BusConfig, BusMessage, PgPool, PubSubBus};
use libp2p::PeerId;
use tokio::sync::mpsc;

use super::{PubSub, PubSubMessage};

/// Messages waiting between the outbox and the bus's own queue (the task moving them never
/// waits, so this only absorbs scheduling delays).
const OUTBOX_LEN: usize = 1024;

/// Bytes of a bus frame beyond the message's data: peer ID, seqno, topic and their lengths
/// (topics are not limited by themselves, only by the wire limit, so this is generous).
const FRAME_OVERHEAD: usize = 4096;

/// Starts the fan-out of `pubsub` through `pool`'s database; the returned bus carries the
/// counters (`/metrics`), and dropping it (with the daemon) stops the fan-out.
pub(crate) async fn start(
    pubsub: &PubSub,
    pool: &PgPool,
    max_message_bytes: usize,
) -> Arc<PubSubBus> {
    let config = BusConfig {
        max_frame_bytes: max_message_bytes + FRAME_OVERHEAD,
        ..BusConfig::default()
    };
    let local = pubsub.clone();
    let bus = Arc::new(
        PubSubBus::start(pool, config, move |msg| match from_bus(msg) {
            Some(msg) => local.deliver_local(msg),
            None => tracing::debug!("pub/sub bus: a message with an invalid author was dropped"),
        })
        .await,
    );
    let (outbox, mut rx) = mpsc::channel::<Arc<PubSubMessage>>(OUTBOX_LEN);
    if !pubsub.set_outbox(outbox) {
        tracing::warn!("pub/sub: the outbox was already set; replicas are not fanned out");
    }
    // Holds only a weak reference, so the bus stops when the daemon drops it.
    let weak = Arc::downgrade(&bus);
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let Some(bus) = weak.upgrade() else { return };
            bus.forward(&to_bus(&msg));
        }
    });
    bus
}

fn to_bus(msg: &PubSubMessage) -> BusMessage {
    BusMessage {
        from: msg.from.to_bytes(),
        seqno: msg.seqno.clone(),
        topic: msg.topic.clone(),
        data: msg.data.clone(),
    }
}

fn from_bus(msg: BusMessage) -> Option<PubSubMessage> {
    Some(PubSubMessage {
        from: PeerId::from_bytes(&msg.from).ok()?,
        seqno: msg.seqno,
        data: msg.data,
        topic: msg.topic,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_convert_both_ways() {
        let msg = PubSubMessage {
            from: PeerId::random(),
            seqno: 7u64.to_be_bytes().to_vec(),
            data: bytes::Bytes::from_static(b"hello"),
            topic: "t".into(),
        };
        assert_eq!(from_bus(to_bus(&msg)), Some(msg));
        let mut bad = to_bus(&PubSubMessage {
            from: PeerId::random(),
            seqno: vec![],
            data: bytes::Bytes::new(),
            topic: String::new(),
        });
        bad.from = vec![1, 2, 3];
        assert_eq!(from_bus(bad), None);
    }
}
