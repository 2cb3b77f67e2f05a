//! The node's [`ContentRouter`] for the Delegated Routing V1 API (../shared/specs/http-routing-v1.md):
//! answers from Hydrant's own data first (block index, provider store), then from a DHT walk.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cid::Cid;
use hydrant_dht::{DhtError, ProviderInfo};
use hydrant_index::{BlockLookup, Multihash};
use hydrant_routing::{ContentRouter, PeerRecord, Record, RouterError};
use libp2p::PeerId;

use crate::p2p::dht::{DhtService, local_providers};

/// Longest DHT walk behind one routing request.
const WALK_TIMEOUT: Duration = Duration::from_secs(20);
/// The transfer protocol our own peer record advertises (the IPIP-484 name for Bitswap).
const BITSWAP: &str = "transport-bitswap";

/// Routing answers of a node. `dht` is `None` when `dht.enabled = false`: then only the block
/// index answers.
pub struct NodeRouter {
    /// The block index.
    pub index: Arc<dyn BlockLookup>,
    /// The DHT, when enabled.
    pub dht: Option<Arc<DhtService>>,
    /// Our Bitswap peer and the addresses it is reachable at.
    pub me: ProviderInfo,
}

fn record(p: ProviderInfo, protocols: Vec<String>) -> Record {
    Record::Peer(PeerRecord {
        id: p.peer,
        addrs: p.addrs,
        protocols,
        extra: Default::default(),
    })
}

impl NodeRouter {
    fn provider_record(&self, p: ProviderInfo) -> Record {
        let protocols = if p.peer == self.me.peer {
            vec![BITSWAP.to_string()]
        } else {
            Vec::new()
        };
        record(p, protocols)
    }
}

#[async_trait]
impl ContentRouter for NodeRouter {
    async fn find_providers(&self, cid: &Cid, limit: usize) -> Result<Vec<Record>, RouterError> {
        let key = cid.hash().to_bytes();
        let Some(dht) = &self.dht else {
            let mh =
                Multihash::from_bytes(&key).map_err(|e| RouterError::Internal(e.to_string()))?;
            let ours = self
                .index
                .contains(&mh)
                .await
                .map_err(|e| RouterError::Internal(e.to_string()))?;
            return Ok(if ours {
                vec![self.provider_record(self.me.clone())]
            } else {
                Vec::new()
            });
        };
        let mut found = local_providers(&*self.index, &*dht.store, &dht.self_provider, &key)
            .await
            .map_err(|e| RouterError::Internal(e.to_string()))?;
        if found.is_empty() {
            found = match tokio::time::timeout(WALK_TIMEOUT, dht.get_providers(&key, limit)).await {
                Err(_) => return Err(RouterError::Timeout),
                Ok(Err(DhtError::NoPeers)) => Vec::new(),
                Ok(Err(e)) => return Err(RouterError::Internal(e.to_string())),
                Ok(Ok(found)) => found,
            };
        }
        found.truncate(limit);
        Ok(found.into_iter().map(|p| self.provider_record(p)).collect())
    }

    async fn find_peers(&self, peer: &PeerId, limit: usize) -> Result<Vec<Record>, RouterError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        if *peer == self.me.peer {
            return Ok(vec![self.provider_record(self.me.clone())]);
        }
        let Some(dht) = &self.dht else {
            return Ok(Vec::new());
        };
        if let Some(m) = dht.members.iter().find(|m| m.peer_id == *peer) {
            let addrs = crate::p2p::dht::provider_addrs(&[], &m.addrs);
            return Ok(vec![record(
                ProviderInfo { peer: *peer, addrs },
                Vec::new(),
            )]);
        }
        if let Some((_, addrs)) = dht
            .sides()
            .into_iter()
            .flat_map(|(_, side)| side.routing_table())
            .find(|(p, _)| p == peer)
        {
            return Ok(vec![record(
                ProviderInfo { peer: *peer, addrs },
                Vec::new(),
            )]);
        }
        let closest =
            match tokio::time::timeout(WALK_TIMEOUT, dht.find_node(&peer.to_bytes())).await {
                Err(_) => return Err(RouterError::Timeout),
                Ok(Err(DhtError::NoPeers)) => Vec::new(),
                Ok(Err(e)) => return Err(RouterError::Internal(e.to_string())),
                Ok(Ok(closest)) => closest,
            };
        Ok(closest
            .into_iter()
            .filter(|p| p.peer == *peer)
            .map(|p| {
                record(
                    ProviderInfo {
                        peer: p.peer,
                        addrs: p.addrs,
                    },
                    Vec::new(),
                )
            })
            .collect())
    }
}
