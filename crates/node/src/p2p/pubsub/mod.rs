//! Pub/sub: GossipSub on the main swarm (pubsub.md, gossipsub-v1.0.md to v1.2.md, through
//! `libp2p-gossipsub`) and the local subscriber hub that the Kubo RPC calls and the replica
//! fan-out build on.
//!
//! - [`PubSub`] (cloneable) is the handle: [`PubSub::publish`], [`PubSub::subscribe`],
//!   [`PubSub::deliver_local`], [`PubSub::topics`], [`PubSub::peers`], and the replica
//!   fan-out's outbox ([`PubSub::set_outbox`]).
//! - [`gossip::Driver`] is the swarm side, run inside the main swarm's loop: it publishes,
//!   joins and leaves gossipsub topics as the hub's topics change, hands received messages to
//!   the hub, and disconnects peers that stop reading.
//!
//! Every message is identified as go-libp2p-pubsub's default identifies it: the author's peer
//! ID bytes followed by the 8-byte big-endian sequence number (pubsub.md, "Message
//! Identification"), in gossipsub's IHAVE/IWANT/IDONTWANT as in the hub's seen cache.

pub(crate) mod gossip;
mod hub;
pub(crate) mod replicas;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hydrant_budget::{Holder, MemoryBudget};
use libp2p::PeerId;
use tokio::sync::{Notify, mpsc};

pub use hub::Ended;
use hub::{SeenCache, Slot, Topics};

use crate::config::PubSubConfig;

/// One pub/sub message as subscribers see it (pubsub.md, "The Message").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubSubMessage {
    /// The author (not the peer that forwarded it).
    pub from: PeerId,
    /// The author's sequence number: 8 bytes, big-endian.
    pub seqno: Vec<u8>,
    /// The payload.
    pub data: Bytes,
    /// The topic, as given by the publisher (any UTF-8 string).
    pub topic: String,
}

impl PubSubMessage {
    /// The message ID: `from`'s bytes then `seqno` (go-libp2p-pubsub's `DefaultMsgIdFn`).
    pub fn id(&self) -> Vec<u8> {
        message_id(&self.from, &self.seqno)
    }

    /// Bytes this message is charged in the memory budget while queued: its payload, topic
    /// and seqno, and a fixed overhead for the struct and its `Arc`.
    fn charge(&self) -> u64 {
        (self.data.len() + self.topic.len() + self.seqno.len() + 128) as u64
    }
}

/// go-libp2p-pubsub's default message ID: the author's peer ID bytes, then the seqno bytes.
pub(crate) fn message_id(from: &PeerId, seqno: &[u8]) -> Vec<u8> {
    let mut id = from.to_bytes();
    id.extend_from_slice(seqno);
    id
}

/// Errors of [`PubSub`]'s calls.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PubSubError {
    /// The message is larger than `pubsub.max_message_bytes` allows (`size` and `limit` in
    /// bytes; the limit is the payload room left under the wire limit).
    #[error("the message is {size} bytes, more than pubsub.max_message_bytes allows ({limit})")]
    TooLarge {
        /// Bytes of the payload.
        size: usize,
        /// Largest payload accepted, bytes.
        limit: usize,
    },
    /// `pubsub.max_topics` topics are subscribed already.
    #[error("already subscribed to pubsub.max_topics ({0}) topics")]
    TooManyTopics(usize),
    /// `pubsub.max_subscribers` subscribers are connected already.
    #[error("already serving pubsub.max_subscribers ({0}) subscribers")]
    TooManySubscribers(usize),
    /// The swarm's publish queue or the memory budget is full; try again.
    #[error("the publish queue or the memory budget is full; try again")]
    Busy,
    /// The topic name is empty, or longer than [`MAX_TOPIC_BYTES`].
    #[error("the topic name is empty or longer than {MAX_TOPIC_BYTES} bytes")]
    BadTopic,
    /// The swarm has stopped.
    #[error("pub/sub has stopped")]
    Stopped,
}

/// Why messages were dropped, as labelled in `hydrant_pubsub_dropped_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// A peer's send queue (`pubsub.peer_queue_len`) was full.
    PeerQueueFull,
    /// A local subscriber's queue was full: the subscriber was dropped.
    SubscriberSlow,
    /// The replica fan-out's outbox was full.
    OutboxFull,
    /// Larger than `pubsub.max_message_bytes`.
    TooLarge,
    /// The memory budget had no room for the message (`[limits]`).
    MemoryBudget,
    /// The swarm's publish queue was full.
    PublishQueueFull,
}

impl DropReason {
    /// Every reason, in [`PubSubStats::dropped`] order.
    pub const ALL: [DropReason; 6] = [
        DropReason::PeerQueueFull,
        DropReason::SubscriberSlow,
        DropReason::OutboxFull,
        DropReason::TooLarge,
        DropReason::MemoryBudget,
        DropReason::PublishQueueFull,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::PeerQueueFull => "peer_queue_full",
            DropReason::SubscriberSlow => "subscriber_slow",
            DropReason::OutboxFull => "outbox_full",
            DropReason::TooLarge => "too_large",
            DropReason::MemoryBudget => "memory_budget",
            DropReason::PublishQueueFull => "publish_queue_full",
        }
    }
}

/// Counters of the pub/sub service (all since start).
#[derive(Default, Debug)]
pub struct PubSubStats {
    /// Messages published by this node (API or [`PubSub::publish`]).
    pub published: AtomicU64,
    /// Messages received from gossipsub peers (valid and new to gossipsub).
    pub received: AtomicU64,
    /// Message copies queued for local subscribers.
    pub delivered: AtomicU64,
    /// Messages not delivered again because their ID was seen within `seen_ttl_secs`.
    pub duplicates: AtomicU64,
    /// Messages (or, for `subscriber_slow`, subscribers) dropped, per [`DropReason::ALL`].
    pub dropped: [AtomicU64; 6],
    /// Peers disconnected for not reading their messages.
    pub slow_peers_disconnected: AtomicU64,
}

impl PubSubStats {
    fn drop_one(&self, why: DropReason, n: u64) {
        let i = DropReason::ALL
            .iter()
            .position(|r| *r == why)
            .expect("listed");
        self.dropped[i].fetch_add(n, Ordering::Relaxed);
    }

    /// Messages dropped for `why`.
    pub fn dropped(&self, why: DropReason) -> u64 {
        let i = DropReason::ALL
            .iter()
            .position(|r| *r == why)
            .expect("listed");
        self.dropped[i].load(Ordering::Relaxed)
    }
}

/// Most message IDs the hub's seen cache holds (about 120 bytes each, so at most ~30 MiB);
/// past it the oldest are forgotten before their TTL (counted).
pub const MAX_SEEN_ENTRIES: usize = 262_144;

/// Publish requests that may wait for the swarm loop.
const PUBLISH_QUEUE_LEN: usize = 1024;

/// Bytes of the protobuf envelope around a published payload besides its topic (RPC and
/// Message framing, `from`, `seqno`, a signature and an RSA public key up to 600 bytes): the
/// payload may use `max_message_bytes` less this and the topic's length.
pub const ENVELOPE_BYTES: usize = 1024;

/// Longest topic name accepted, in bytes (gossipsub sets no limit; this keeps topics, their
/// metric labels and every message's envelope small).
pub const MAX_TOPIC_BYTES: usize = 1024;

/// Checks a topic name's length.
fn check_topic(topic: &str) -> Result<(), PubSubError> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_BYTES {
        return Err(PubSubError::BadTopic);
    }
    Ok(())
}

/// A publish request for the swarm loop, with its bytes charged to the memory budget until
/// gossipsub took it.
pub(crate) struct Publish {
    pub(crate) topic: String,
    pub(crate) data: Bytes,
    pub(crate) _charge: hydrant_budget::Grant,
}

struct Inner {
    local: PeerId,
    config: PubSubConfig,
    budget: MemoryBudget,
    stats: PubSubStats,
    topics: Mutex<Topics>,
    seen: Mutex<SeenCache>,
    /// Woken when the set of topics with subscribers changes (the driver joins or leaves).
    topics_changed: Notify,
    publish: mpsc::Sender<Publish>,
    outbox: OnceLock<mpsc::Sender<Arc<PubSubMessage>>>,
    /// Gossipsub peers and the topics each subscribed to, kept by the driver.
    peers: Mutex<Vec<(PeerId, Vec<String>)>>,
    /// Gossipsub's own metrics (mesh, scores, invalid messages per topic), appended to
    /// `/metrics`.
    gossip_metrics: Mutex<prometheus_client::registry::Registry>,
    /// Last sequence number given to a message published while no peer took it.
    last_local_seqno: AtomicU64,
}

/// The pub/sub handle; cheap to clone, every clone the same service.
#[derive(Clone)]
pub struct PubSub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSub")
            .field("local", &self.inner.local)
            .finish()
    }
}

impl PubSub {
    /// A pub/sub service for peer `local` and the receiving end of its publish queue (for
    /// [`gossip::Driver`]). Queued messages are charged to `budget` under [`Holder::PubSub`].
    pub(crate) fn new(
        local: PeerId,
        config: &PubSubConfig,
        budget: MemoryBudget,
    ) -> (Self, mpsc::Receiver<Publish>) {
        let (publish, requests) = mpsc::channel(PUBLISH_QUEUE_LEN);
        let inner = Inner {
            local,
            config: config.clone(),
            budget,
            stats: PubSubStats::default(),
            topics: Mutex::default(),
            seen: Mutex::new(SeenCache::new(
                Duration::from_secs(config.seen_ttl_secs),
                MAX_SEEN_ENTRIES,
            )),
            topics_changed: Notify::new(),
            publish,
            outbox: OnceLock::new(),
            peers: Mutex::default(),
            gossip_metrics: Mutex::new(prometheus_client::registry::Registry::default()),
            last_local_seqno: AtomicU64::new(0),
        };
        (
            PubSub {
                inner: Arc::new(inner),
            },
            requests,
        )
    }

    /// Our peer ID (the `from` of what we publish).
    pub fn local_peer_id(&self) -> PeerId {
        self.inner.local
    }

    /// The counters.
    pub fn stats(&self) -> &PubSubStats {
        &self.inner.stats
    }

    /// Largest payload [`PubSub::publish`] accepts on a one-byte topic, in bytes:
    /// `max_message_bytes` less [`ENVELOPE_BYTES`] (and, for a given topic, less its length).
    pub fn max_payload_bytes(&self) -> usize {
        self.inner
            .config
            .max_message_bytes
            .saturating_sub(ENVELOPE_BYTES)
    }

    /// Publishes `data` on `topic`: signed with the node's key, sent to gossipsub peers by
    /// the swarm loop, and delivered to local subscribers of `topic` (as go-libp2p-pubsub
    /// delivers its own messages), once the loop took it. Publishing with no peer on the
    /// topic is not an error, as in Kubo.
    ///
    /// # Errors
    /// [`PubSubError::TooLarge`] past [`Self::max_payload_bytes`], [`PubSubError::BadTopic`],
    /// [`PubSubError::Busy`] when the swarm loop's queue (1024 requests) or the memory budget
    /// is full,
    /// [`PubSubError::Stopped`] after the node stopped.
    pub fn publish(&self, topic: &str, data: Bytes) -> Result<(), PubSubError> {
        check_topic(topic)?;
        let limit = self.max_payload_bytes().saturating_sub(topic.len() - 1);
        if data.len() > limit {
            self.inner.stats.drop_one(DropReason::TooLarge, 1);
            return Err(PubSubError::TooLarge {
                size: data.len(),
                limit,
            });
        }
        let charge = (data.len() + topic.len() + 128) as u64;
        let Ok(grant) = self.inner.budget.try_acquire(Holder::PubSub, charge) else {
            self.inner.stats.drop_one(DropReason::MemoryBudget, 1);
            return Err(PubSubError::Busy);
        };
        let request = Publish {
            topic: topic.to_owned(),
            data,
            _charge: grant,
        };
        match self.inner.publish.try_send(request) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.inner.stats.drop_one(DropReason::PublishQueueFull, 1);
                Err(PubSubError::Busy)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(PubSubError::Stopped),
        }
    }

    /// Subscribes to `topic`: the first local subscriber of a topic makes the node join it
    /// on gossipsub; the last one dropped makes it leave. The [`Subscription`] receives each
    /// message of the topic once (published here, received from peers, or given to
    /// [`Self::deliver_local`]), with at most `subscriber_queue_len` waiting; one more ends it
    /// ([`Ended::SlowSubscriber`]).
    ///
    /// # Errors
    /// [`PubSubError::TooManyTopics`], [`PubSubError::TooManySubscribers`] at the configured
    /// limits, [`PubSubError::BadTopic`].
    pub fn subscribe(&self, topic: &str) -> Result<Subscription, PubSubError> {
        check_topic(topic)?;
        let c = &self.inner.config;
        let mut topics = crate::lock(&self.inner.topics);
        if topics.subscribers() >= c.max_subscribers {
            return Err(PubSubError::TooManySubscribers(c.max_subscribers));
        }
        let new_topic = !topics.contains(topic);
        if new_topic && topics.len() >= c.max_topics {
            return Err(PubSubError::TooManyTopics(c.max_topics));
        }
        let (id, slot) = topics.add(topic);
        drop(topics);
        if new_topic {
            tracing::debug!(topic, "joining a pubsub topic");
            self.inner.topics_changed.notify_one();
        }
        Ok(Subscription {
            topic: topic.to_owned(),
            id,
            slot,
            pubsub: self.clone(),
        })
    }

    /// Delivers `msg`, which came from elsewhere (another replica), to local subscribers of
    /// its topic, unless its ID was seen within `seen_ttl_secs`. It does not go to the outbox
    /// nor to gossipsub.
    pub fn deliver_local(&self, msg: PubSubMessage) {
        self.deliver(Arc::new(msg));
    }

    /// Sets the replica fan-out's outbox: every message this node publishes or receives from
    /// gossipsub is `try_send` to it (dropped and counted as `outbox_full` when it is full).
    /// Only the first call has an effect; it returns `false` for the others.
    pub fn set_outbox(&self, outbox: mpsc::Sender<Arc<PubSubMessage>>) -> bool {
        self.inner.outbox.set(outbox).is_ok()
    }

    /// Topics with local subscribers (what `pubsub/ls` lists), sorted.
    pub fn topics(&self) -> Vec<String> {
        let mut names: Vec<String> = crate::lock(&self.inner.topics).names().cloned().collect();
        names.sort();
        names
    }

    /// Gossipsub peers connected to us, or only those subscribed to `topic`, sorted.
    pub fn peers(&self, topic: Option<&str>) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = crate::lock(&self.inner.peers)
            .iter()
            .filter(|(_, topics)| topic.is_none_or(|t| topics.iter().any(|x| x == t)))
            .map(|(p, _)| *p)
            .collect();
        peers.sort();
        peers
    }

    /// Entries, approximate bytes, and entries forgotten before their TTL (the cache was
    /// full) of the hub's seen-message cache.
    pub fn seen_cache(&self) -> (usize, usize, u64) {
        let seen = crate::lock(&self.inner.seen);
        (seen.len(), seen.bytes(), seen.evicted_early)
    }

    /// Local subscribers now, over all topics.
    pub fn subscribers(&self) -> usize {
        crate::lock(&self.inner.topics).subscribers()
    }

    /// Gossipsub's own metrics as Prometheus text (without the final `# EOF`).
    pub(crate) fn gossip_metrics_text(&self) -> String {
        let mut out = String::new();
        let registry = crate::lock(&self.inner.gossip_metrics);
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out.strip_suffix("# EOF\n")
            .map(str::to_owned)
            .unwrap_or(out)
    }

    /// Messages gossipsub refused as invalid (a bad or missing signature, `from` or `seqno`,
    /// too large for the topic), summed over gossipsub's `invalid_messages_per_topic`: it
    /// drops them in its codec and tells the application nothing else.
    pub fn invalid_messages(&self) -> u64 {
        self.gossip_metrics_text()
            .lines()
            .filter(|l| l.starts_with("hydrant_gossipsub_invalid_messages_per_topic_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// Delivers `msg` to local subscribers if its ID is new; returns whether it was new.
    fn deliver(&self, msg: Arc<PubSubMessage>) -> bool {
        let stats = &self.inner.stats;
        if !crate::lock(&self.inner.seen).insert(&msg.id(), Instant::now()) {
            stats.duplicates.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let mut topics = crate::lock(&self.inner.topics);
        if !topics.contains(&msg.topic) {
            return true;
        }
        let Ok(grant) = self.inner.budget.try_acquire(Holder::PubSub, msg.charge()) else {
            stats.drop_one(DropReason::MemoryBudget, 1);
            return true;
        };
        let cap = self.inner.config.subscriber_queue_len;
        let (delivered, dropped, emptied) = topics.fan_out(&(msg, Arc::new(grant)), cap);
        drop(topics);
        stats.delivered.fetch_add(delivered, Ordering::Relaxed);
        if dropped > 0 {
            tracing::debug!(dropped, "dropped slow pubsub subscribers");
            stats.drop_one(DropReason::SubscriberSlow, dropped);
        }
        if emptied {
            self.inner.topics_changed.notify_one();
        }
        true
    }

    /// Hands `msg` (published here or received from gossipsub) to the outbox, if one is set.
    fn to_outbox(&self, msg: &Arc<PubSubMessage>) {
        if let Some(outbox) = self.inner.outbox.get()
            && outbox.try_send(msg.clone()).is_err()
        {
            self.inner.stats.drop_one(DropReason::OutboxFull, 1);
        }
    }

    /// A sequence number for a message gossipsub did not take (no peer on the topic): the
    /// current Unix time in nanoseconds, kept increasing. Gossipsub numbers its own messages
    /// from its start time upwards by one, so the two never meet.
    fn local_seqno(&self) -> Vec<u8> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        let last = &self.inner.last_local_seqno;
        let mut seqno = now;
        let _ = last.fetch_update(Ordering::AcqRel, Ordering::Acquire, |prev| {
            seqno = now.max(prev + 1);
            Some(seqno)
        });
        seqno.to_be_bytes().to_vec()
    }

    /// Ends every subscription (the node is stopping).
    pub(crate) fn close(&self) {
        crate::lock(&self.inner.topics).close_all();
    }
}

/// A local subscription to one topic (see [`PubSub::subscribe`]). Dropping it unsubscribes.
pub struct Subscription {
    topic: String,
    id: u64,
    slot: Arc<Slot>,
    pubsub: PubSub,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic)
            .field("ended", &self.slot.ended())
            .finish()
    }
}

impl Subscription {
    /// The next message, or `None` once the subscription ended ([`Self::ended`] says why).
    ///
    /// # Cancel safety
    /// Cancel safe: no message is lost when the future is dropped before it completes.
    pub async fn recv(&mut self) -> Option<Arc<PubSubMessage>> {
        self.slot.recv().await
    }

    /// Why the subscription ended, once it has.
    pub fn ended(&self) -> Option<Ended> {
        self.slot.ended()
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let inner = &self.pubsub.inner;
        if crate::lock(&inner.topics).remove(&self.topic, self.id) {
            tracing::debug!(topic = %self.topic, "leaving a pubsub topic");
            inner.topics_changed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests;
