//! [`DhtHandle`]: the client side of a running service (bootstrap, lookups, providing,
//! the routing table, counters, shutdown).

use std::collections::HashSet;
use std::sync::Arc;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::protocol::{MAX_KEY_LEN, MessageType, PeerInfo, Request};
use crate::query::MAX_LOOKUP_PROVIDERS;
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
        self.providers_as_found(key, limit)?.try_collect().await
    }

    /// [`DhtHandle::get_providers`] as a stream: the local providers at once, then each
    /// provider as soon as the lookup takes it from an answer, each peer once, at most
    /// `limit`. The stream ends when the lookup does (it stops once `limit` are known, or
    /// when its usual bounds end it); an `Err` item ([`DhtError::NoPeers`] when nothing was
    /// found locally) is the last. Dropping the stream cancels the lookup.
    ///
    /// # Errors
    /// [`DhtError::InvalidKey`] (empty or over 80 bytes), before any lookup.
    pub fn provider_stream(
        &self,
        key: &[u8],
        limit: usize,
    ) -> Result<BoxStream<'static, Result<ProviderInfo, DhtError>>, DhtError> {
        self.providers_as_found(key, Some(limit))
    }

    fn providers_as_found(
        &self,
        key: &[u8],
        limit: Option<usize>,
    ) -> Result<BoxStream<'static, Result<ProviderInfo, DhtError>>, DhtError> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(DhtError::InvalidKey(key.len()));
        }
        let (inner, key) = (self.inner.clone(), key.to_vec());
        let found = futures::stream::once(async move {
            let mut local: Vec<ProviderInfo> =
                inner.providers.providers(&key).await.unwrap_or_default();
            if let Some(n) = limit {
                local.truncate(n);
            }
            let wanted = limit.map(|n| n - local.len());
            let walk = if wanted == Some(0) {
                futures::stream::empty().boxed()
            } else {
                walk(inner, key, wanted, !local.is_empty()).boxed()
            };
            futures::stream::iter(local.into_iter().map(Ok)).chain(walk)
        })
        .flatten();
        let mut seen = HashSet::new();
        Ok(found
            .filter(move |r| {
                futures::future::ready(r.as_ref().map_or(true, |p| seen.insert(p.peer)))
            })
            .take(limit.unwrap_or(usize::MAX))
            .boxed())
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

/// The providers a GET_PROVIDERS lookup of `key` takes, as it takes them, through a channel
/// with room for all a lookup can collect ([`MAX_LOOKUP_PROVIDERS`]); then its error, unless
/// it is [`DhtError::NoPeers`] and `have_local`.
fn walk(
    inner: Arc<Inner>,
    key: Vec<u8>,
    wanted: Option<usize>,
    have_local: bool,
) -> impl Stream<Item = Result<ProviderInfo, DhtError>> + Send + 'static {
    let (tx, mut rx) = mpsc::channel(MAX_LOOKUP_PROVIDERS);
    let lookup = async move {
        let result = inner
            .lookup_reporting(&key, MessageType::GetProviders, wanted, Some(&tx))
            .await;
        match result {
            Err(DhtError::NoPeers) if have_local => None,
            Err(e) => Some(Err(e)),
            Ok(_) => None,
        }
    };
    let found = futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(|p: PeerInfo| {
        Ok(ProviderInfo {
            peer: p.peer,
            addrs: p.addrs,
        })
    });
    futures::stream::select(
        futures::stream::once(lookup).filter_map(futures::future::ready),
        found,
    )
}
