//! [`DhtHandle`]: the client side of a running service (bootstrap, lookups, providing,
//! the routing table, counters, shutdown).

use std::sync::Arc;

use futures::StreamExt as _;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio::task::JoinHandle;

use crate::protocol::{MAX_KEY_LEN, MessageType, PeerInfo, Request};
use crate::service::{Inner, ProbeKind, probe, refresh};
#[cfg(doc)]
use crate::{Dht, DhtConfig, ProviderLookup, TableConfig};
use crate::{DhtError, DhtStats, ProviderInfo};

/// Handle to a running [`Dht`]; dropping it stops the service.
pub struct DhtHandle {
    pub(crate) inner: Arc<Inner>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

impl Drop for DhtHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl DhtHandle {
    /// The heads' peer IDs.
    pub fn heads(&self) -> Vec<PeerId> {
        self.inner.heads.iter().map(|h| h.peer_id).collect()
    }

    /// The protocol this service serves and speaks ([`DhtConfig::protocol`]).
    pub fn protocol(&self) -> &StreamProtocol {
        &self.inner.config.protocol
    }

    /// Probes `peers` (FIND_NODE) and admits those that answer, then runs a self lookup per
    /// head (../shared/specs/kad-dht.md, "Routing Table Refresh"). Bootstrap peers are
    /// verified like any other. Returns how many of `peers` are in the table afterwards.
    pub async fn bootstrap(&self, peers: Vec<(PeerId, Vec<Multiaddr>)>) -> usize {
        let ids: Vec<PeerId> = peers.iter().map(|(p, _)| *p).collect();
        let inner = &self.inner;
        futures::stream::iter(peers)
            .for_each_concurrent(
                inner.config.max_concurrent_probes,
                |(peer, addrs)| async move {
                    probe(inner, peer, addrs, ProbeKind::Candidate).await;
                },
            )
            .await;
        let keys: Vec<Vec<u8>> = inner.heads.iter().map(|h| h.peer_id.to_bytes()).collect();
        futures::stream::iter(keys)
            .for_each_concurrent(4, |key| async move {
                let _ = inner.lookup(&key, MessageType::FindNode, None).await;
            })
            .await;
        inner.table_read(|t| ids.iter().filter(|p| t.contains(p)).count())
    }

    /// The k closest peers to `sha256(key)` that answered (GetClosestPeers;
    /// ../shared/specs/kad-dht.md, "Peer Routing").
    ///
    /// # Errors
    /// [`DhtError::InvalidKey`] (empty or over 80 bytes), [`DhtError::NoPeers`].
    pub async fn find_node(&self, key: &[u8]) -> Result<Vec<PeerInfo>, DhtError> {
        let result = self.inner.lookup(key, MessageType::FindNode, None).await?;
        Ok(result
            .closest
            .into_iter()
            .map(|(peer, addrs)| PeerInfo::new(peer, addrs))
            .collect())
    }

    /// Providers of `key` (a multihash): the local [`ProviderLookup`]'s, then those found by a
    /// GET_PROVIDERS lookup ("Content Provider Lookup"), which stops once `limit` are known.
    ///
    /// # Errors
    /// [`DhtError::InvalidKey`], [`DhtError::NoPeers`] (when nothing was found locally).
    pub async fn get_providers(
        &self,
        key: &[u8],
        limit: Option<usize>,
    ) -> Result<Vec<ProviderInfo>, DhtError> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(DhtError::InvalidKey(key.len()));
        }
        let mut found: Vec<ProviderInfo> = self
            .inner
            .providers
            .providers(key)
            .await
            .unwrap_or_default();
        if limit.is_some_and(|n| found.len() >= n) {
            found.truncate(limit.unwrap_or(usize::MAX));
            return Ok(found);
        }
        let remote = match self
            .inner
            .lookup(
                key,
                MessageType::GetProviders,
                limit.map(|n| n - found.len()),
            )
            .await
        {
            Ok(r) => r.providers,
            Err(DhtError::NoPeers) if !found.is_empty() => Vec::new(),
            Err(e) => return Err(e),
        };
        for p in remote {
            if !found.iter().any(|f| f.peer == p.peer) {
                found.push(ProviderInfo {
                    peer: p.peer,
                    addrs: p.addrs,
                });
            }
        }
        if let Some(n) = limit {
            found.truncate(n);
        }
        Ok(found)
    }

    /// Announces head `head` as a provider of `key` (a multihash) reachable at `addrs`: finds
    /// the k closest peers and sends each an ADD_PROVIDER ("Content Provider
    /// Advertisement"). Returns how many were sent without error.
    ///
    /// # Errors
    /// [`DhtError::UnknownHead`], [`DhtError::InvalidKey`], [`DhtError::NoPeers`].
    pub async fn provide_as(
        &self,
        head: PeerId,
        key: &[u8],
        addrs: Vec<Multiaddr>,
    ) -> Result<usize, DhtError> {
        let index = self
            .inner
            .heads
            .iter()
            .position(|h| h.peer_id == head)
            .ok_or(DhtError::UnknownHead(head))?;
        let closest = self
            .inner
            .lookup(key, MessageType::FindNode, None)
            .await?
            .closest;
        let request = Request::AddProvider {
            key: key.to_vec(),
            providers: vec![PeerInfo::new(head, addrs)],
        };
        let inner = &self.inner;
        let sent = futures::stream::iter(closest)
            .map(|(peer, addrs)| {
                let request = &request;
                async move { inner.request(index, peer, addrs, request).await.is_ok() }
            })
            .buffer_unordered(inner.config.query.alpha.max(1))
            .filter(|ok| futures::future::ready(*ok))
            .count()
            .await;
        Ok(sent)
    }

    /// [`DhtHandle::provide_as`] the first head.
    ///
    /// # Errors
    /// As [`DhtHandle::provide_as`].
    pub async fn provide(&self, key: &[u8], addrs: Vec<Multiaddr>) -> Result<usize, DhtError> {
        let head = self.inner.heads[0].peer_id;
        self.provide_as(head, key, addrs).await
    }

    /// Runs the periodic maintenance now: liveness probes of peers not heard from within
    /// [`TableConfig::liveness_interval`] (evicting those that fail), a lookup in every stale
    /// bucket, and a self lookup per head.
    pub async fn refresh(&self) {
        refresh(&self.inner).await;
    }

    /// The peers of the routing table with their addresses.
    pub fn routing_table(&self) -> Vec<(PeerId, Vec<Multiaddr>)> {
        self.inner.table_read(|t| {
            t.peers()
                .map(|p| (*p, t.addrs(p).map(<[_]>::to_vec).unwrap_or_default()))
                .collect()
        })
    }

    /// Whether `peer` is in the routing table.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.inner.table_read(|t| t.contains(peer))
    }

    /// The counters.
    pub fn stats(&self) -> Arc<DhtStats> {
        self.inner.stats.clone()
    }

    /// Stops every task (also done on drop); inbound streams are no longer accepted, so the
    /// heads' controls may accept the service's protocol again.
    pub fn shutdown(self) {
        drop(self);
    }
}
