//! The node's [`ContentRouter`] for the Delegated Routing V1 API (../shared/specs/http-routing-v1.md):
//! answers from Hydrant's own data first (block index, provider store), then from a DHT walk;
//! IPNS from the node's [`RecordStore`] (the one the DHT heads serve GET_VALUE/PUT_VALUE
//! from); closest peers from a DHT walk.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use cid::Cid;
use futures::{StreamExt as _, TryStreamExt as _};
use hydrant_dht::{DhtError, ProviderInfo};
use hydrant_index::{BlockLookup, Multihash};
use hydrant_records::{IPNS_PREFIX, RecordError, RecordStore, ValidRecord};
use hydrant_routing::{
    ContentRouter, IpnsRecord, PeerRecord, PutOutcome, Record, RecordStream, RouterError,
};
use libp2p::{Multiaddr, PeerId};

use crate::p2p::dht::{DhtService, local_providers};

/// Longest DHT walk behind one routing request. A provider walk that runs this long ends
/// with the providers found so far (written as they came, for NDJSON); a closest-peers walk
/// is answered 504.
const WALK_TIMEOUT: Duration = Duration::from_secs(20);
/// The transfer protocol our own peer record advertises (the IPIP-484 name for Bitswap).
const BITSWAP: &str = "transport-bitswap";
/// The transfer protocol of our gateway's record: the IPFS Trustless Gateway over HTTP, as
/// someguy's `--http-block-provider-endpoints` and IPNI name it.
const GATEWAY_HTTP: &str = "transport-ipfs-gateway-http";
/// `Retry-After` when the IPNS record store is full.
const STORE_FULL_RETRY: Duration = Duration::from_secs(60);

/// Routing answers of a node. `dht` is `None` when `dht.enabled = false`: then only the block
/// index answers providers, and closest peers are 501.
#[derive(Clone)]
pub struct NodeRouter {
    /// The block index.
    pub index: Arc<dyn BlockLookup>,
    /// The DHT, when enabled.
    pub dht: Option<Arc<DhtService>>,
    /// Our Bitswap peer and the addresses it is reachable at.
    pub me: ProviderInfo,
    /// `gateway.public_url` as a multiaddr (`GatewayConfig::public_multiaddr`): when set, a
    /// provider answer naming us also holds a [`GATEWAY_HTTP`] record with this address.
    pub gateway: Option<Multiaddr>,
    /// IPNS records: the DHT's value store ([`DhtService::records`]) when the DHT runs. One
    /// per process: replicas do not share it.
    pub records: RecordStore,
}

fn record(p: ProviderInfo, protocols: Vec<String>) -> Record {
    Record::Peer(PeerRecord {
        id: p.peer,
        addrs: p.addrs,
        protocols,
        extra: Default::default(),
    })
}

/// The record of a peer a FIND_NODE walk found (its protocols are unknown).
fn found_peer_record(p: hydrant_dht::PeerInfo) -> Record {
    record(
        ProviderInfo {
            peer: p.peer,
            addrs: p.addrs,
        },
        Vec::new(),
    )
}

impl NodeRouter {
    /// The records of provider `p`: ours are the Bitswap one and, with a public gateway URL,
    /// the HTTP one (same peer ID, as boxo and Kubo pair a peer's libp2p and HTTP
    /// addresses); another peer's has unknown protocols.
    fn provider_records(&self, p: ProviderInfo) -> Vec<Record> {
        if p.peer != self.me.peer {
            return vec![record(p, Vec::new())];
        }
        let mut out = vec![record(self.me.clone(), vec![BITSWAP.to_string()])];
        if let Some(addr) = &self.gateway {
            let http = ProviderInfo {
                peer: self.me.peer,
                addrs: vec![addr.clone()],
            };
            out.push(record(http, vec![GATEWAY_HTTP.to_string()]));
        }
        out
    }

    /// The provider records of `cid`, ours first, at most `limit`: the block index and the
    /// provider store, else the DHT as it finds them (cut at [`WALK_TIMEOUT`]).
    fn providers(self, cid: Cid, limit: usize) -> RecordStream {
        let key = cid.hash().to_bytes();
        futures::stream::once(async move {
            let local = match &self.dht {
                None => {
                    let mh = Multihash::from_bytes(&key).map_err(internal)?;
                    if self.index.contains(&mh).await.map_err(internal)? {
                        vec![self.me.clone()]
                    } else {
                        Vec::new()
                    }
                }
                Some(dht) => local_providers(&*self.index, &*dht.store, &dht.self_provider, &key)
                    .await
                    .map_err(internal)?,
            };
            let found = match (&self.dht, local.is_empty()) {
                (Some(dht), true) => match dht.provider_stream(&key, limit) {
                    Ok(walk) => walk
                        .take_until(tokio::time::sleep(WALK_TIMEOUT))
                        .filter_map(|found| {
                            futures::future::ready(match found {
                                Ok(p) => Some(Ok(p)),
                                Err(DhtError::NoPeers) => None,
                                Err(e) => Some(Err(internal(e))),
                            })
                        })
                        .boxed(),
                    // A multihash over the DHT's 80-byte key limit: no DHT answer.
                    Err(_) => futures::stream::empty().boxed(),
                },
                _ => futures::stream::iter(local.into_iter().map(Ok)).boxed(),
            };
            let this = self.clone();
            Ok::<_, RouterError>(found.flat_map(move |p| {
                futures::stream::iter(match p {
                    Ok(p) => this.provider_records(p).into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                })
            }))
        })
        .map(|r| match r {
            Ok(records) => records.boxed(),
            Err(e) => futures::stream::iter([Err(e)]).boxed(),
        })
        .flatten()
        .take(limit)
        .boxed()
    }
}

fn internal(e: impl std::fmt::Display) -> RouterError {
    RouterError::Internal(e.to_string())
}

#[async_trait]
impl ContentRouter for NodeRouter {
    async fn find_providers(&self, cid: &Cid, limit: usize) -> Result<Vec<Record>, RouterError> {
        self.clone().providers(*cid, limit).try_collect().await
    }

    fn provider_stream(self: Arc<Self>, cid: Cid, limit: usize) -> RecordStream {
        (*self).clone().providers(cid, limit)
    }

    async fn find_peers(&self, peer: &PeerId, limit: usize) -> Result<Vec<Record>, RouterError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        if *peer == self.me.peer {
            let mut ours = self.provider_records(self.me.clone());
            ours.truncate(limit);
            return Ok(ours);
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
        let closest = walk(dht.find_node(&peer.to_bytes())).await?;
        Ok(closest
            .into_iter()
            .filter(|p| p.peer == *peer)
            .map(found_peer_record)
            .collect())
    }

    /// A FIND_NODE walk from the heads: the k closest peers that answered, nearest first
    /// (http-routing-v1.md § "DHT Routing API"), with the addresses they were reached at.
    async fn closest_peers(&self, key: &[u8], limit: usize) -> Result<Vec<Record>, RouterError> {
        let Some(dht) = &self.dht else {
            return Err(RouterError::NotSupported);
        };
        if key.len() > hydrant_dht::MAX_KEY_LEN {
            return Ok(Vec::new()); // no DHT key is that long
        }
        let closest = walk(dht.find_node(key)).await?;
        Ok(closest
            .into_iter()
            .take(limit)
            .map(found_peer_record)
            .collect())
    }

    async fn get_ipns(&self, name: &PeerId) -> Result<Option<IpnsRecord>, RouterError> {
        let key = [IPNS_PREFIX, &name.to_bytes()].concat();
        Ok(match self.records.get_record(&key, SystemTime::now()) {
            Some(ValidRecord::Ipns(r)) => Some(r),
            _ => None,
        })
    }

    async fn put_ipns(&self, record: IpnsRecord) -> Result<PutOutcome, RouterError> {
        match self
            .records
            .put_valid(ValidRecord::Ipns(record), SystemTime::now())
        {
            Err(RecordError::StoreFull { .. }) => Err(RouterError::Overloaded {
                retry_after: STORE_FULL_RETRY,
            }),
            other => other.map_err(internal),
        }
    }
}

/// A DHT walk cut at [`WALK_TIMEOUT`] (504); no peers to ask is an empty answer.
async fn walk<T>(
    lookup: impl Future<Output = Result<Vec<T>, DhtError>>,
) -> Result<Vec<T>, RouterError> {
    match tokio::time::timeout(WALK_TIMEOUT, lookup).await {
        Err(_) => Err(RouterError::Timeout),
        Ok(Err(DhtError::NoPeers)) => Ok(Vec::new()),
        Ok(Err(e)) => Err(internal(e)),
        Ok(Ok(found)) => Ok(found),
    }
}
