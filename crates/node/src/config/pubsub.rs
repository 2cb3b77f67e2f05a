//! `[pubsub]`: GossipSub on the main swarm and Kubo's RPC pub/sub calls (pubsub.md,
//! gossipsub-v1.0.md to gossipsub-v1.2.md; the node side is `crate::p2p::pubsub`).

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[pubsub]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PubSubConfig {
    /// Run GossipSub (`/meshsub/1.2.0`, `/meshsub/1.1.0`, `/floodsub/1.0.0`) on the main swarm
    /// and answer `/api/v0/pubsub/*`. Default true; false answers those calls with Kubo's
    /// "pubsub not enabled" error.
    pub enabled: bool,
    /// Seconds a message ID is remembered as seen (gossipsub's duplicate cache and the local
    /// hub's), so a message that comes back is neither delivered nor forwarded twice.
    /// 10 to 86400; default 120, as Kubo (`Pubsub.SeenMessagesTTL`).
    pub seen_ttl_secs: u64,
    /// Largest message accepted or published, in bytes (the whole protobuf RPC on the wire).
    /// 1 KiB to 16 MiB; default 1 MiB, as go-libp2p-pubsub.
    pub max_message_bytes: usize,
    /// Messages that may wait to be sent to one peer (gossipsub's per-connection queue). A
    /// peer whose queue is full loses messages, counted, and is disconnected after
    /// `SLOW_PEER_MAX_FAILED` of them. 16 to 65536; default 256.
    pub peer_queue_len: usize,
    /// Messages an RPC subscriber (`pubsub/sub`) may have waiting; one more and it is dropped
    /// (its stream ends), never buffered further. 1 to 65536; default 256.
    pub subscriber_queue_len: usize,
    /// Local subscribers (RPC streams) at once, over all topics; one more is refused.
    /// 1 to 1048576; default 1024.
    pub max_subscribers: usize,
    /// Topics subscribed to at once; one more is refused. 1 to 65536; default 256.
    pub max_topics: usize,
}

impl Default for PubSubConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            seen_ttl_secs: 120,
            max_message_bytes: 1 << 20,
            peer_queue_len: 256,
            subscriber_queue_len: 256,
            max_subscribers: 1024,
            max_topics: 256,
        }
    }
}

impl PubSubConfig {
    /// Checks every value against its documented range.
    ///
    /// # Errors
    /// The first value out of range, naming the field and the range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ranges: [(&'static str, u64, u64, u64, &str); 6] = [
            (
                "pubsub.seen_ttl_secs",
                self.seen_ttl_secs,
                10,
                86_400,
                "default 120, as Kubo; shorter lets a late copy of a message through twice",
            ),
            (
                "pubsub.max_message_bytes",
                self.max_message_bytes as u64,
                1024,
                16 << 20,
                "default 1048576, as go-libp2p-pubsub",
            ),
            (
                "pubsub.peer_queue_len",
                self.peer_queue_len as u64,
                16,
                65_536,
                "default 256",
            ),
            (
                "pubsub.subscriber_queue_len",
                self.subscriber_queue_len as u64,
                1,
                65_536,
                "default 256",
            ),
            (
                "pubsub.max_subscribers",
                self.max_subscribers as u64,
                1,
                1 << 20,
                "default 1024",
            ),
            (
                "pubsub.max_topics",
                self.max_topics as u64,
                1,
                65_536,
                "default 256",
            ),
        ];
        for (field, value, min, max, note) in ranges {
            if !(min..=max).contains(&value) {
                return Err(ConfigError {
                    field,
                    value: value.to_string(),
                    reason: format!("use {min} to {max} ({note})"),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kubos_and_ranges_are_enforced() {
        let d = PubSubConfig::default();
        assert!(d.enabled);
        assert_eq!((d.seen_ttl_secs, d.max_message_bytes), (120, 1 << 20));
        d.validate().unwrap();
        let parsed = crate::config::Config::from_toml(crate::config::DEFAULT_CONFIG).unwrap();
        assert_eq!(
            parsed.pubsub, d,
            "default_config.toml documents the defaults"
        );
        let refused = PubSubConfig {
            seen_ttl_secs: 1,
            ..d.clone()
        }
        .validate()
        .unwrap_err();
        assert_eq!(refused.field, "pubsub.seen_ttl_secs");
        assert!(refused.to_string().contains("use 10 to 86400"), "{refused}");
        let refused = PubSubConfig {
            subscriber_queue_len: 0,
            ..d
        }
        .validate()
        .unwrap_err();
        assert_eq!(refused.field, "pubsub.subscriber_queue_len");
    }
}
