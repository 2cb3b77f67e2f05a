//! `[ipni]`: publishing the node's CARs to IPNI indexers (ipni.md; the publisher is
//! `hydrant-ipni-publisher`).

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

/// `[ipni]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IpniConfig {
    /// Publish the advertisement chain (one advertisement per CAR, blocks under `ipni/` in the
    /// object store) and serve it on the gateway listener at `/ipni/v1/ad/`. Default true.
    pub enabled: bool,
    /// Indexers to announce each new head to, as their ingest URLs (`http://host:port`;
    /// `/announce` is added when the URL has no path). Empty (the default): nothing is
    /// announced; indexers may still poll the head.
    pub indexers: Vec<String>,
    /// The publisher address put in announcements, where indexers fetch the chain. Default:
    /// `gateway.public_url` as a multiaddr, else the gateway's listen address as
    /// `/ip4/<ip>/tcp/<port>/http`.
    pub announce_address: Option<Multiaddr>,
    /// Bytes of advertisement and entry blocks kept in memory for serving. Default 16 MiB.
    pub cache_bytes: u64,
    /// Milliseconds between checks for CARs committed or deleted since the chain was last
    /// extended (by any replica). 100 to 600000; default 1000.
    pub poll_interval_ms: u64,
}

impl Default for IpniConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            indexers: Vec::new(),
            announce_address: None,
            cache_bytes: 16 << 20,
            poll_interval_ms: 1000,
        }
    }
}
