//! The seams between the service and the node that runs it: where GET_PROVIDERS answers
//! come from ([`ProviderLookup`]), where accepted ADD_PROVIDER records go ([`ProviderSink`]),
//! where GET_VALUE / PUT_VALUE go ([`ValueStore`]), and how a head's swarm is made to dial
//! ([`Dialer`], with [`ChannelDialer`] and [`handle_dial_request`] for the swarm task); and
//! [`HeadHandle`], one head handed to [`Dht::spawn`](crate::Dht::spawn).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, NetworkBehaviour};
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};

use crate::lock;
#[cfg(doc)]
use crate::{DhtConfig, DhtStats, MAX_PEERS_PER_MESSAGE};

/// A provider of a key: a peer and its addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderInfo {
    /// The provider's peer ID.
    pub peer: PeerId,
    /// Its addresses (may be empty).
    pub addrs: Vec<Multiaddr>,
}

/// Error of a [`ProviderLookup`]; answered with closer peers only and counted apart from
/// "not found".
#[derive(Debug, thiserror::Error)]
#[error("provider lookup failed: {0}")]
pub struct LookupError(pub String);

/// Where GET_PROVIDERS answers come from (Hydrant: its block index plus the provider store).
#[async_trait::async_trait]
pub trait ProviderLookup: Send + Sync + 'static {
    /// Providers of `key` (a multihash, at most 80 bytes); empty when none. Called under a
    /// deadline of [`DhtConfig::provider_lookup_deadline`]; at most
    /// [`MAX_PEERS_PER_MESSAGE`] are sent.
    ///
    /// # Errors
    /// [`LookupError`] when the stores cannot answer.
    async fn providers(&self, key: &[u8]) -> Result<Vec<ProviderInfo>, LookupError>;
}

/// Where accepted ADD_PROVIDER records go (the provider store).
pub trait ProviderSink: Send + Sync + 'static {
    /// Stores `provider` for `key` (a multihash). Must not block; `false` means dropped
    /// (e.g. under load), counted in [`DhtStats::providers_dropped`].
    fn add(&self, key: Vec<u8>, provider: ProviderInfo) -> bool;
}

/// Where GET_VALUE / PUT_VALUE go (../shared/specs/kad-dht.md, "Value Storage and
/// Retrieval"). The implementation validates records (IPNS, `/pk/`).
pub trait ValueStore: Send + Sync + 'static {
    /// The value stored under `key`, if any.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Validates and stores `value` under `key`.
    ///
    /// # Errors
    /// Why the record was refused (the stream is then closed without an answer).
    fn put(&self, key: &[u8], value: Vec<u8>) -> Result<(), String>;
}

/// A [`ValueStore`] that holds nothing and refuses every PUT_VALUE.
#[derive(Clone, Copy, Debug, Default)]
pub struct RejectAllValues;

impl ValueStore for RejectAllValues {
    fn get(&self, _key: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn put(&self, _key: &[u8], _value: Vec<u8>) -> Result<(), String> {
        Err("values are not stored by this node".into())
    }
}

/// A [`ProviderLookup`] and [`ProviderSink`] that knows no provider and drops every record.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProviders;

#[async_trait::async_trait]
impl ProviderLookup for NoProviders {
    async fn providers(&self, _key: &[u8]) -> Result<Vec<ProviderInfo>, LookupError> {
        Ok(Vec::new())
    }
}

impl ProviderSink for NoProviders {
    fn add(&self, _key: Vec<u8>, _provider: ProviderInfo) -> bool {
        false
    }
}

/// The link from the service to a head's swarm (see [`Dht`](crate::Dht), "Dialing").
#[async_trait::async_trait]
pub trait Dialer: Send + Sync + 'static {
    /// Makes the swarm dial `peer` at `addrs` unless it is connected or dialing; returns once
    /// the dial has started (not when it completes).
    ///
    /// # Errors
    /// Why no dial could start (e.g. no addresses and not connected).
    async fn dial(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<(), String>;

    /// The listen addresses the swarm learned for `peer` (e.g. from identify); used for
    /// peers that reached us inbound and for ADD_PROVIDER without addresses. Default: none.
    fn listen_addrs_of(&self, _peer: &PeerId) -> Vec<Multiaddr> {
        Vec::new()
    }
}

/// A dial asked of a swarm task through a [`ChannelDialer`].
#[derive(Debug)]
pub struct DialRequest {
    /// The peer.
    pub peer: PeerId,
    /// Its addresses.
    pub addrs: Vec<Multiaddr>,
    /// Where the result goes (see [`handle_dial_request`]).
    pub reply: oneshot::Sender<Result<(), String>>,
}

/// Capacity of a [`ChannelDialer`]'s channel, in requests.
pub const DIAL_CHANNEL_CAPACITY: usize = 256;

/// A [`Dialer`] sending [`DialRequest`]s to the head's swarm task over a bounded channel; the
/// task passes each to [`handle_dial_request`].
#[derive(Clone, Debug)]
pub struct ChannelDialer {
    sender: mpsc::Sender<DialRequest>,
    listen_addrs: Arc<Mutex<HashMap<PeerId, Vec<Multiaddr>>>>,
}

impl ChannelDialer {
    /// A dialer and the receiver for the swarm task (capacity [`DIAL_CHANNEL_CAPACITY`]).
    pub fn new() -> (ChannelDialer, mpsc::Receiver<DialRequest>) {
        let (sender, receiver) = mpsc::channel(DIAL_CHANNEL_CAPACITY);
        (
            ChannelDialer {
                sender,
                listen_addrs: Arc::default(),
            },
            receiver,
        )
    }

    /// Records the listen addresses of `peer` (at most 16 kept; the swarm task calls this on
    /// identify). The map is cleared when it reaches 10 000 peers.
    pub fn set_listen_addrs(&self, peer: PeerId, mut addrs: Vec<Multiaddr>) {
        addrs.truncate(crate::protocol::MAX_ADDRS_PER_PEER);
        let mut map = lock(&self.listen_addrs);
        if map.len() >= 10_000 {
            map.clear();
        }
        map.insert(peer, addrs);
    }
}

#[async_trait::async_trait]
impl Dialer for ChannelDialer {
    async fn dial(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.sender
            .send(DialRequest { peer, addrs, reply })
            .await
            .map_err(|_| "swarm task gone".to_string())?;
        rx.await.map_err(|_| "swarm task gone".to_string())?
    }

    fn listen_addrs_of(&self, peer: &PeerId) -> Vec<Multiaddr> {
        lock(&self.listen_addrs)
            .get(peer)
            .cloned()
            .unwrap_or_default()
    }
}

/// Serves a [`DialRequest`] in the swarm task: dials unless connected or dialing, from a new
/// local port.
///
/// Not from the listening port (libp2p's default, "port reuse"): every outbound connection
/// then has the same local address, so dialing a peer again within the TCP `TIME_WAIT` of a
/// closed connection to it (60 s on Linux) fails with `EADDRINUSE` ("Address already in use").
/// Heads close idle connections and re-dial the same peers often; in the 200-node test one node
/// failed every dial to its seeds that way (CI, 2026-12-07). Heads are servers: nothing needs
/// their outbound connections to come from the listening port.
pub fn handle_dial_request<B: NetworkBehaviour>(swarm: &mut Swarm<B>, request: DialRequest) {
    let opts = DialOpts::peer_id(request.peer)
        .addresses(request.addrs)
        .condition(PeerCondition::DisconnectedAndNotDialing)
        .allocate_new_port()
        .build();
    let result = match swarm.dial(opts) {
        Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    let _ = request.reply.send(result);
}

/// One head served by the service. Cloned to serve the same head in a second service (the
/// LAN DHT beside the WAN one): each service registers its own protocol on the control.
#[derive(Clone)]
pub struct HeadHandle {
    /// The head's peer ID (the identity of the swarm behind `control`).
    pub peer_id: PeerId,
    /// The head swarm's stream control.
    pub control: libp2p_stream::Control,
    /// How to make the head's swarm dial.
    pub dialer: Arc<dyn Dialer>,
    /// The addresses the head listens on (without `/p2p/`): with them every head offers its
    /// siblings, and itself, as closer peers (see [`crate::InboundHandler::with_heads`]).
    pub addrs: Vec<Multiaddr>,
}
