//! The swarm side of pub/sub: the gossipsub behaviour's configuration ([`behaviour`]) and the
//! [`Driver`] the main swarm's loop runs.
//!
//! Configuration (gossipsub-v1.1.md, v1.2.md; values DESIGN.md, "Pub/sub", explains):
//! - protocols `/meshsub/1.2.0`, `/meshsub/1.1.0`, `/meshsub/1.0.0` and `/floodsub/1.0.0`
//!   (Kubo offers floodsub too);
//! - strict signing: every message we publish is signed with the node key
//!   (`MessageAuthenticity::Signed`), every message received must carry a valid signature,
//!   `from` and `seqno` (`ValidationMode::Strict`), whatever the key type (RSA, Ed25519,
//!   secp256k1, ECDSA);
//! - message ID: `from` bytes + `seqno` bytes, as go-libp2p-pubsub, so IHAVE/IWANT/IDONTWANT
//!   name the same messages as Kubo's;
//! - `max_transmit_size` = `pubsub.max_message_bytes`, `duplicate_cache_time` =
//!   `pubsub.seen_ttl_secs`, `connection_handler_queue_len` = `pubsub.peer_queue_len`;
//! - peer scoring: [`score_params`], [`score_thresholds`].

use std::collections::HashMap;
use std::time::Duration;

use libp2p::gossipsub::{
    self, ConfigBuilder, IdentTopic, MessageAuthenticity, MessageId, PeerScoreParams,
    PeerScoreThresholds, PublishError, TopicScoreParams, ValidationMode,
};
use libp2p::identity::Keypair;
use libp2p::{PeerId, Swarm};
use tokio::sync::mpsc;

use super::{DropReason, PubSub, PubSubMessage, Publish, message_id};
use crate::config::PubSubConfig;
use crate::p2p::swarm::Behaviour;

/// Messages a peer may fail to take (its queue full) before it is disconnected. Gossipsub
/// reports them once per heartbeat (1 s); a peer whose queue overflows this much over a few
/// heartbeats is not reading.
pub const SLOW_PEER_MAX_FAILED: u64 = 64;

/// How long a published message may wait in a peer's queue before it is dropped (counted as
/// a failed message of that peer).
pub const PUBLISH_QUEUE_DURATION: Duration = Duration::from_secs(5);

/// How long a forwarded message may wait in a peer's queue before it is dropped.
pub const FORWARD_QUEUE_DURATION: Duration = Duration::from_secs(1);

/// The peer-score parameters (gossipsub-v1.1.md, "Peer Scoring"): rust-libp2p's defaults,
/// which follow go-libp2p-pubsub's (application weight 10, IP colocation weight -5 past 10
/// peers on one IP, behaviour penalty weight -10 with decay 0.2, a slow-peer penalty of -0.2
/// per failed heartbeat, a topic score cap of 3600, scores kept 1 h after a disconnection).
/// Topics get [`topic_score_params`] when joined.
pub fn score_params() -> PeerScoreParams {
    PeerScoreParams::default()
}

/// Per-topic score parameters, the same for every topic joined. Kept simple: time in mesh
/// (P1, +0.01 per second up to 1 h), first deliveries (P2, +1 each, decaying by half, up to
/// 100), and invalid messages (P4, -100 each squared, decaying to 30 % per decay interval:
/// one invalid message at topic weight 0.5 puts a peer at the publish threshold). The mesh
/// delivery penalties (P3, P3b) are off: on a quiet topic they would punish honest peers for
/// the publishers' silence, and they need per-topic rates nobody configures.
pub fn topic_score_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 0.5,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 3600.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.5,
        first_message_deliveries_cap: 100.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -100.0,
        invalid_message_deliveries_decay: 0.3,
        ..TopicScoreParams::default()
    }
}

/// The score thresholds: go-libp2p-pubsub's usual values (gossip -10, publish -50, graylist
/// -80, accept PX 10, opportunistic graft 20).
pub fn score_thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds::default()
}

/// The gossipsub behaviour for `keypair` with `config`, its metrics registered in `pubsub`.
///
/// # Errors
/// Gossipsub's refusal of a parameter (only out-of-range values, which validation refuses
/// first).
pub(crate) fn behaviour(
    keypair: &Keypair,
    config: &PubSubConfig,
    pubsub: &PubSub,
) -> Result<gossipsub::Behaviour, String> {
    let gossip_config = ConfigBuilder::default()
        .support_floodsub()
        .validation_mode(ValidationMode::Strict)
        .message_id_fn(|m: &gossipsub::Message| {
            let seqno = m.sequence_number.unwrap_or_default().to_be_bytes();
            let from = m
                .source
                .unwrap_or(PeerId::from_bytes(&[0, 1, 0]).expect("valid"));
            MessageId::new(&message_id(&from, &seqno))
        })
        .max_transmit_size(config.max_message_bytes)
        .duplicate_cache_time(Duration::from_secs(config.seen_ttl_secs))
        .connection_handler_queue_len(config.peer_queue_len)
        .publish_queue_duration(PUBLISH_QUEUE_DURATION)
        .forward_queue_duration(FORWARD_QUEUE_DURATION)
        .build()
        .map_err(|e| e.to_string())?;
    let mut behaviour =
        gossipsub::Behaviour::new(MessageAuthenticity::Signed(keypair.clone()), gossip_config)
            .map_err(str::to_owned)?;
    behaviour.with_peer_score(score_params(), score_thresholds())?;
    let metrics = gossipsub::MetricsConfig {
        max_topics: config.max_topics,
        max_never_subscribed_topics: 0,
        ..Default::default()
    };
    let mut registry = crate::lock(&pubsub.inner.gossip_metrics);
    Ok(behaviour.with_metrics(
        registry.sub_registry_with_prefix("hydrant_gossipsub"),
        metrics,
    ))
}

/// What [`Driver::next_work`] found to do.
pub(crate) enum Work {
    /// Publish this.
    Publish(Publish),
    /// Join or leave topics.
    TopicsChanged,
}

/// The swarm loop's side of pub/sub: publish requests, topic changes, gossipsub events.
pub struct Driver {
    pubsub: PubSub,
    publish: mpsc::Receiver<Publish>,
    /// Messages each peer failed to take since it connected.
    failed: HashMap<PeerId, u64>,
}

impl Driver {
    pub(crate) fn new(pubsub: PubSub, publish: mpsc::Receiver<Publish>) -> Self {
        Self {
            pubsub,
            publish,
            failed: HashMap::new(),
        }
    }

    /// The next thing to do: a publish request, or the hub's topics changed. Never a
    /// publish request once every [`PubSub`] handle is gone.
    ///
    /// # Cancel safety
    /// Cancel safe: a request is taken only when returned, and a topic change stays noted
    /// (`Notify` keeps its permit).
    pub(crate) async fn next_work(&mut self) -> Work {
        let inner = self.pubsub.inner.clone();
        tokio::select! {
            Some(request) = self.publish.recv() => Work::Publish(request),
            () = inner.topics_changed.notified() => Work::TopicsChanged,
        }
    }

    /// Does `work` (from [`Self::next_work`]).
    pub(crate) fn work(&mut self, swarm: &mut Swarm<Behaviour>, work: Work) {
        match work {
            Work::Publish(request) => self.publish(swarm, request),
            Work::TopicsChanged => self.sync_topics(swarm),
        }
    }

    /// Publishes `request` on gossipsub, then hands it to local subscribers and the outbox.
    fn publish(&mut self, swarm: &mut Swarm<Behaviour>, request: Publish) {
        let Some(gossip) = swarm.behaviour_mut().gossipsub.as_mut() else {
            return;
        };
        let stats = &self.pubsub.inner.stats;
        let topic = IdentTopic::new(request.topic.clone());
        let seqno = match gossip.publish(topic, request.data.to_vec()) {
            Ok(id) => id.0[id.0.len().saturating_sub(8)..].to_vec(),
            Err(PublishError::NoPeersSubscribedToTopic) => self.pubsub.local_seqno(),
            Err(PublishError::AllQueuesFull(peers)) => {
                stats.drop_one(DropReason::PeerQueueFull, peers as u64);
                self.pubsub.local_seqno()
            }
            Err(PublishError::MessageTooLarge) => {
                stats.drop_one(DropReason::TooLarge, 1);
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "gossipsub refused a message to publish");
                return;
            }
        };
        stats
            .published
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let message = std::sync::Arc::new(PubSubMessage {
            from: self.pubsub.inner.local,
            seqno,
            data: request.data,
            topic: request.topic,
        });
        self.pubsub.deliver(message.clone());
        self.pubsub.to_outbox(&message);
    }

    /// Joins the topics that gained local subscribers and leaves those that lost them all.
    pub(crate) fn sync_topics(&mut self, swarm: &mut Swarm<Behaviour>) {
        let Some(gossip) = swarm.behaviour_mut().gossipsub.as_mut() else {
            return;
        };
        let wanted = self.pubsub.topics();
        let joined: Vec<String> = gossip.topics().map(|t| t.to_string()).collect();
        for topic in joined.iter().filter(|t| !wanted.contains(t)) {
            gossip.unsubscribe(&IdentTopic::new(topic.clone()));
        }
        for topic in wanted.iter().filter(|t| !joined.contains(t)) {
            let ident = IdentTopic::new(topic.clone());
            if let Err(e) = gossip.subscribe(&ident) {
                tracing::warn!(error = %e, "cannot join a pubsub topic");
                continue;
            }
            if let Err(e) = gossip.set_topic_params(ident, topic_score_params()) {
                tracing::warn!(error = %e, "cannot set a pubsub topic's score parameters");
            }
        }
        self.refresh_peers(swarm);
    }

    /// Handles one gossipsub event: messages to the hub and the outbox, subscriptions into
    /// the peer list, slow peers counted and disconnected.
    pub(crate) fn on_event(&mut self, swarm: &mut Swarm<Behaviour>, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message { message, .. } => {
                let (Some(from), Some(seqno)) = (message.source, message.sequence_number) else {
                    return; // strict signing: never happens
                };
                let stats = &self.pubsub.inner.stats;
                stats
                    .received
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let message = std::sync::Arc::new(PubSubMessage {
                    from,
                    seqno: seqno.to_be_bytes().to_vec(),
                    data: message.data.into(),
                    topic: message.topic.into_string(),
                });
                tracing::trace!(from = %message.from, "pubsub message received");
                self.pubsub.deliver(message.clone());
                self.pubsub.to_outbox(&message);
            }
            gossipsub::Event::Subscribed { .. }
            | gossipsub::Event::Unsubscribed { .. }
            | gossipsub::Event::GossipsubNotSupported { .. } => self.refresh_peers(swarm),
            gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            } => {
                let n = (failed_messages.priority + failed_messages.non_priority) as u64;
                let stats = &self.pubsub.inner.stats;
                stats.drop_one(DropReason::PeerQueueFull, n);
                let failed = self.failed.entry(peer_id).or_default();
                *failed += n;
                if *failed >= SLOW_PEER_MAX_FAILED {
                    tracing::debug!(peer = %peer_id, failed = *failed, "disconnecting a pubsub peer that stopped reading");
                    self.failed.remove(&peer_id);
                    stats
                        .slow_peers_disconnected
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let _ = swarm.disconnect_peer_id(peer_id);
                }
            }
            #[allow(unreachable_patterns)] // other events of later gossipsub releases
            _ => {}
        }
    }

    /// Forgets a disconnected peer's failure count and refreshes the peer list.
    pub(crate) fn on_disconnected(&mut self, swarm: &mut Swarm<Behaviour>, peer: &PeerId) {
        self.failed.remove(peer);
        self.refresh_peers(swarm);
    }

    /// Copies gossipsub's peers and their topics for [`PubSub::peers`].
    fn refresh_peers(&self, swarm: &Swarm<Behaviour>) {
        let Some(gossip) = swarm.behaviour().gossipsub.as_ref() else {
            return;
        };
        let peers = gossip
            .all_peers()
            .map(|(p, topics)| (*p, topics.iter().map(|t| t.to_string()).collect()))
            .collect();
        *crate::lock(&self.pubsub.inner.peers) = peers;
    }

    /// Ends every subscription (the loop is stopping).
    pub(crate) fn close(&self) {
        self.pubsub.close();
    }
}
