//! The DHT service over `libp2p_stream::Control`: one service serves many heads sharing one
//! [`RoutingTable`] (../shared/specs/kad-dht.md, "Client and Server Mode", "RPC Messages").
//!
//! Tasks (all end at [`DhtHandle::shutdown`] or when the handle is dropped):
//! - *accept*, one per head: takes `/ipfs/kad/1.0.0` streams, within
//!   [`DhtConfig::max_inbound_streams_per_head`] and [`DhtConfig::max_inbound_streams_per_peer`]
//!   (further streams are dropped, i.e. reset), and serves each in a task that answers any
//!   number of requests until the peer closes it or [`DhtConfig::inbound_idle_timeout`] passes
//!   without one. Invalid or refused requests close the stream without an answer (spec).
//! - *maintenance*: every [`DhtConfig::maintenance_interval`] probes candidates (peers that
//!   talked to us or were named in responses) with a FIND_NODE, at most
//!   [`DhtConfig::max_concurrent_probes`] at once, admitting those that answer; every
//!   [`DhtConfig::refresh_check_interval`] runs [`DhtHandle::refresh`].
//!
//! Admission: a peer enters the table only after answering one of our requests (a lookup
//! request or a probe) within [`QueryConfig::request_timeout`]. A lookup request that timed
//! out, or whose stream failed or ended unanswered on both tries (see "Retry"), evicts the
//! peer at once, as go-libp2p-kad-dht drops a peer from its table on the first failed query:
//! the retry already absorbs the one-slot stream reset a busy but healthy peer may cause, so
//! what is left is a peer that does not serve the protocol (any more), and keeping it costs
//! every lookup that meets it a slot of α for up to a request timeout. An evicted peer that
//! is in fact alive comes back as a candidate (named in answers, probed, admitted). Other
//! failed lookup requests (dial refused, invalid answer) count toward
//! [`TableConfig::max_failures`](crate::kbucket::TableConfig::max_failures); a failed liveness
//! probe evicts at once. Requests still in flight when a lookup ends (stalled ones, see
//! [`crate::query`], or farther than its k closest) are not dropped: a task follows them to
//! their answer or timeout (at most the request timeout) and records the outcome in the
//! table all the same.
//!
//! Retry: libp2p-stream 0.5.0-alpha hands inbound streams to the acceptor through a
//! one-slot channel and silently drops (resets) a stream that arrives while the slot is
//! full, so a busy but healthy peer can reset a stream before reading it, and the requester
//! sees the stream closed or reset without an answer. Every outbound request (lookups,
//! probes, ADD_PROVIDER) therefore retries once, on a new stream after a pause of 50 to
//! 250 ms (random, so that requesters do not collide again), when the stream could not be
//! opened or failed or ended before the answer; both tries share the one request timeout. A
//! peer that resets every stream fails both tries and is never admitted.
//!
//! Dialing: `Control::open_stream` dials a peer it is not connected to with no addresses, so
//! before every outbound stream the service calls [`Dialer::dial`] of the head, which must
//! make the head's swarm dial the peer with the given addresses (or do nothing when already
//! connected) and return once the dial has started. [`ChannelDialer`] and
//! [`handle_dial_request`] do this through a bounded channel served by the swarm task.

use hydrant_budget::{Holder, MemoryBudget};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncWrite, AsyncWriteExt as _, StreamExt as _};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, NetworkBehaviour};
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::kbucket::{FailureOutcome, InsertOutcome, Key, RoutingTable, TableConfig};
use crate::protocol::{
    DecodeError, FrameError, MAX_FRAME_SIZE, MAX_KEY_LEN, MAX_PEERS_PER_MESSAGE, MessageType,
    PROTOCOL, PeerInfo, Record, Request, Response, decode_request, decode_response, encode_request,
    encode_response, read_frame, write_frame,
};
use crate::query::{Action, Lookup, QueryConfig};

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

/// The link from the service to a head's swarm (see the module doc, "Dialing").
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

/// Serves a [`DialRequest`] in the swarm task: dials unless connected or dialing.
pub fn handle_dial_request<B: NetworkBehaviour>(swarm: &mut Swarm<B>, request: DialRequest) {
    let opts = DialOpts::peer_id(request.peer)
        .addresses(request.addrs)
        .condition(PeerCondition::DisconnectedAndNotDialing)
        .build();
    let result = match swarm.dial(opts) {
        Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    let _ = request.reply.send(result);
}

/// One head served by the service.
pub struct HeadHandle {
    /// The head's peer ID (the identity of the swarm behind `control`).
    pub peer_id: PeerId,
    /// The head swarm's stream control.
    pub control: libp2p_stream::Control,
    /// How to make the head's swarm dial.
    pub dialer: Arc<dyn Dialer>,
}

/// Settings of the service. `DhtConfig::default()` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct DhtConfig {
    /// Routing-table settings.
    pub table: TableConfig,
    /// Lookup settings (α, k, request timeout, which also bounds probes).
    pub query: QueryConfig,
    /// Most inbound streams served at once per head; more are reset. Default 256.
    pub max_inbound_streams_per_head: usize,
    /// Most inbound streams served at once per peer and head; more are reset. Default 8.
    pub max_inbound_streams_per_peer: usize,
    /// An inbound stream without a request for this long is closed. Default 60 s.
    pub inbound_idle_timeout: Duration,
    /// Deadline of [`ProviderLookup::providers`] per GET_PROVIDERS. Default 2 s.
    pub provider_lookup_deadline: Duration,
    /// Most probes (candidates, liveness) in flight at once. Default 16.
    pub max_concurrent_probes: usize,
    /// How often candidates are taken for probing. Default 1 s.
    pub maintenance_interval: Duration,
    /// How often the liveness checks and bucket refresh run. Default 60 s (each bucket is
    /// refreshed every [`TableConfig::refresh_interval`], each peer checked every
    /// [`TableConfig::liveness_interval`]).
    pub refresh_check_interval: Duration,
    /// Most tries to find a refresh key in a bucket (about 2^(cpl+1) needed; deeper buckets
    /// are covered by the self lookups). Default 2^20.
    pub max_refresh_key_tries: u64,
    /// The memory budget shared with the other serving paths: each inbound request holds
    /// [`REQUEST_CHARGE`] bytes of it until answered; when it is full the stream is reset
    /// (counted in [`DhtStats::inbound_shed`]). Default: unlimited.
    pub budget: MemoryBudget,
}

/// Budget charged per inbound request while it is answered: the request frame, its decoded
/// form and the response frame, each at most [`MAX_FRAME_SIZE`].
pub const REQUEST_CHARGE: u64 = 3 * MAX_FRAME_SIZE as u64;

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            table: TableConfig::default(),
            query: QueryConfig::default(),
            max_inbound_streams_per_head: 256,
            max_inbound_streams_per_peer: 8,
            inbound_idle_timeout: Duration::from_secs(60),
            provider_lookup_deadline: Duration::from_secs(2),
            max_concurrent_probes: 16,
            maintenance_interval: Duration::from_secs(1),
            refresh_check_interval: Duration::from_secs(60),
            max_refresh_key_tries: 1 << 20,
            budget: MemoryBudget::unlimited(),
        }
    }
}

/// Errors of [`Dht::spawn`] and of the client calls.
#[derive(Debug, thiserror::Error)]
pub enum DhtError {
    /// No head given.
    #[error("no heads")]
    NoHeads,
    /// A count or duration of the configuration is zero.
    #[error("invalid configuration: {field} must be non-zero")]
    InvalidConfig {
        /// The field.
        field: &'static str,
    },
    /// Inbound `/ipfs/kad/1.0.0` streams of a head are already taken elsewhere.
    #[error("inbound kad streams of head {0} are already accepted elsewhere")]
    AlreadyRegistered(PeerId),
    /// A key that is empty or longer than 80 bytes.
    #[error("key of {0} bytes is not within 1..=80")]
    InvalidKey(usize),
    /// The routing table is empty: bootstrap first.
    #[error("routing table is empty")]
    NoPeers,
    /// The head is not served by this service.
    #[error("unknown head {0}")]
    UnknownHead(PeerId),
}

/// Errors of one outbound request.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The dialer refused.
    #[error("dial: {0}")]
    Dial(String),
    /// The stream could not be opened (connection failed, protocol unsupported).
    #[error("open stream: {0}")]
    Open(String),
    /// Reading the answer failed.
    #[error("read: {0}")]
    Frame(#[from] FrameError),
    /// Writing failed.
    #[error("write: {0}")]
    Io(#[from] std::io::Error),
    /// The answer is invalid.
    #[error("invalid answer: {0}")]
    Decode(#[from] DecodeError),
    /// The peer closed the stream without answering.
    #[error("closed without an answer")]
    Closed,
    /// No answer within the request timeout.
    #[error("timed out")]
    Timeout,
}

impl RequestError {
    /// Whether the stream failed or ended before an answer, with the connection usable
    /// (worth one retry; see the module doc, "Retry").
    fn is_stream_failure(&self) -> bool {
        match self {
            RequestError::Open(_)
            | RequestError::Io(_)
            | RequestError::Closed
            | RequestError::Frame(FrameError::Truncated | FrameError::Io(_)) => true,
            RequestError::Dial(_)
            | RequestError::Frame(_)
            | RequestError::Decode(_)
            | RequestError::Timeout => false,
        }
    }

    /// Whether a lookup request that failed so (after its retry, if any) evicts the peer at
    /// once rather than counting toward `max_failures` (module doc, "Admission"): a timeout,
    /// or a stream that failed or ended unanswered on both tries.
    fn evicts_at_once(&self) -> bool {
        matches!(self, RequestError::Timeout) || self.is_stream_failure()
    }
}

/// Least pause before the one retry of a request whose stream failed (module doc, "Retry").
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Random extra pause before that retry, below this many milliseconds.
const RETRY_JITTER_MS: u64 = 200;

/// Counters for metrics. Per-type arrays are indexed by [`MessageType::index`].
#[derive(Debug, Default)]
pub struct DhtStats {
    /// Peers in the routing table.
    pub routing_table_size: AtomicU64,
    /// Inbound requests answered with what was asked (providers / value found, or FIND_NODE,
    /// ADD_PROVIDER, PUT_VALUE, PING done).
    pub inbound_ok: [AtomicU64; 6],
    /// Inbound GET_PROVIDERS / GET_VALUE answered with closer peers only, nothing found.
    pub inbound_not_found: [AtomicU64; 6],
    /// Inbound GET_PROVIDERS whose [`ProviderLookup`] failed or missed its deadline (answered
    /// with closer peers only).
    pub inbound_error: [AtomicU64; 6],
    /// Inbound requests refused (stream closed without answer): ADD_PROVIDER not from the
    /// provider or with a key that is no multihash, PUT_VALUE refused by the store.
    pub inbound_refused: [AtomicU64; 6],
    /// Inbound messages that did not decode or were too large.
    pub inbound_invalid: AtomicU64,
    /// Inbound requests not answered (stream reset) because the memory budget was full.
    pub inbound_shed: AtomicU64,
    /// Inbound streams reset because of the stream limits.
    pub streams_refused: AtomicU64,
    /// ADD_PROVIDER records the sink dropped.
    pub providers_dropped: AtomicU64,
    /// Probes sent (candidates and liveness).
    pub probes: AtomicU64,
    /// Probes that failed.
    pub probe_failures: AtomicU64,
    /// Peers added to the table.
    pub admissions: AtomicU64,
    /// Verified peers not added (diversity, full bucket, no addresses).
    pub rejections: AtomicU64,
    /// Peers removed from the table.
    pub evictions: AtomicU64,
    /// Outbound requests sent.
    pub outbound_requests: AtomicU64,
    /// Outbound requests failed.
    pub outbound_failures: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why an inbound request was refused (the stream is closed without an answer).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// No `providerPeers` entry is the sending peer (spec, "Content Provider
    /// Advertisement", check 2).
    #[error("no provider entry is the sender")]
    ProviderNotSender,
    /// The ADD_PROVIDER key is not a multihash.
    #[error("key is not a multihash")]
    NotMultihash,
    /// The value store refused the record.
    #[error("record refused: {0}")]
    ValueRejected(String),
}

/// The rules for answering one inbound request; no I/O (used by the service, testable alone).
pub struct InboundHandler {
    table: Arc<Mutex<RoutingTable>>,
    providers: Arc<dyn ProviderLookup>,
    sink: Arc<dyn ProviderSink>,
    values: Arc<dyn ValueStore>,
    stats: Arc<DhtStats>,
    k: usize,
    provider_lookup_deadline: Duration,
    budget: MemoryBudget,
}

impl InboundHandler {
    /// Charges each request served by [`Self::serve`] to `budget` (default: unlimited).
    #[must_use]
    pub fn with_budget(mut self, budget: MemoryBudget) -> Self {
        self.budget = budget;
        self
    }

    /// A handler over a shared table and stores.
    pub fn new(
        table: Arc<Mutex<RoutingTable>>,
        providers: Arc<dyn ProviderLookup>,
        sink: Arc<dyn ProviderSink>,
        values: Arc<dyn ValueStore>,
        stats: Arc<DhtStats>,
        k: usize,
        provider_lookup_deadline: Duration,
    ) -> InboundHandler {
        InboundHandler {
            table,
            providers,
            sink,
            values,
            stats,
            k,
            provider_lookup_deadline,
            budget: MemoryBudget::unlimited(),
        }
    }

    fn closer(&self, key: &[u8], from: &PeerId) -> Vec<PeerInfo> {
        lock(&self.table)
            .closest(&Key::from_bytes(key), self.k, Some(from))
            .into_iter()
            .map(|(peer, addrs)| PeerInfo::new(peer, addrs))
            .collect()
    }

    /// Answers `request` from peer `from` (../shared/specs/kad-dht.md, "RPC Messages"):
    /// `Ok(Some(answer))`, or `Err` to close the stream without answer. `from_addrs` are the
    /// sender's known listen addresses, used for ADD_PROVIDER without addresses.
    ///
    /// # Errors
    /// [`Refusal`].
    pub async fn handle(
        &self,
        from: PeerId,
        from_addrs: Vec<Multiaddr>,
        request: Request,
    ) -> Result<Option<Response>, Refusal> {
        let kind = request.message_type();
        let i = kind.index();
        let result = self.answer(from, from_addrs, request).await;
        match &result {
            Ok(_) => {}
            Err(_) => bump(&self.stats.inbound_refused[i]),
        }
        result
    }

    async fn answer(
        &self,
        from: PeerId,
        from_addrs: Vec<Multiaddr>,
        request: Request,
    ) -> Result<Option<Response>, Refusal> {
        let stats = &self.stats;
        let i = request.message_type().index();
        match request {
            Request::FindNode { key } => {
                bump(&stats.inbound_ok[i]);
                Ok(Some(Response::FindNode {
                    closer_peers: self.closer(&key, &from),
                }))
            }
            Request::GetProviders { key } => {
                let closer_peers = self.closer(&key, &from);
                let found = tokio::time::timeout(
                    self.provider_lookup_deadline,
                    self.providers.providers(&key),
                )
                .await;
                let providers = match found {
                    Ok(Ok(list)) if list.is_empty() => {
                        bump(&stats.inbound_not_found[i]);
                        Vec::new()
                    }
                    Ok(Ok(list)) => {
                        bump(&stats.inbound_ok[i]);
                        list.into_iter()
                            .take(MAX_PEERS_PER_MESSAGE)
                            .map(|p| PeerInfo::new(p.peer, p.addrs))
                            .collect()
                    }
                    Ok(Err(_)) | Err(_) => {
                        bump(&stats.inbound_error[i]);
                        Vec::new()
                    }
                };
                Ok(Some(Response::GetProviders {
                    closer_peers,
                    providers,
                }))
            }
            Request::AddProvider { key, providers } => {
                if multihash::Multihash::<64>::from_bytes(&key).is_err() {
                    return Err(Refusal::NotMultihash);
                }
                let Some(mine) = providers.into_iter().find(|p| p.peer == from) else {
                    return Err(Refusal::ProviderNotSender);
                };
                let addrs = if mine.addrs.is_empty() {
                    from_addrs
                } else {
                    mine.addrs
                };
                if self
                    .sink
                    .add(key.clone(), ProviderInfo { peer: from, addrs })
                {
                    bump(&stats.inbound_ok[i]);
                } else {
                    bump(&stats.providers_dropped);
                }
                Ok(Some(Response::AddProvider { key }))
            }
            Request::GetValue { key } => {
                let closer_peers = self.closer(&key, &from);
                let record = self.values.get(&key).map(|value| Record {
                    key: key.clone(),
                    value,
                });
                bump(if record.is_some() {
                    &stats.inbound_ok[i]
                } else {
                    &stats.inbound_not_found[i]
                });
                Ok(Some(Response::GetValue {
                    record,
                    closer_peers,
                }))
            }
            Request::PutValue { record } => {
                self.values
                    .put(&record.key, record.value.clone())
                    .map_err(Refusal::ValueRejected)?;
                bump(&stats.inbound_ok[i]);
                Ok(Some(Response::PutValue { record }))
            }
            Request::Ping => {
                bump(&stats.inbound_ok[i]);
                Ok(Some(Response::Ping))
            }
        }
    }

    /// Serves one inbound stream: answers requests until the peer closes it, a request is
    /// invalid or refused, or `idle` passes without a request. Every frame is at most
    /// [`MAX_FRAME_SIZE`] bytes.
    pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        from: PeerId,
        from_addrs: Vec<Multiaddr>,
        stream: &mut S,
        idle: Duration,
    ) {
        loop {
            let body = match tokio::time::timeout(idle, read_frame(stream, MAX_FRAME_SIZE)).await {
                Ok(Ok(Some(body))) => body,
                Ok(Ok(None)) | Err(_) => break,
                Ok(Err(_)) => {
                    bump(&self.stats.inbound_invalid);
                    return;
                }
            };
            let Ok(_grant) = self.budget.try_acquire(Holder::Dht, REQUEST_CHARGE) else {
                bump(&self.stats.inbound_shed);
                return;
            };
            let request = match decode_request(&body) {
                Ok(r) => r,
                Err(_) => {
                    bump(&self.stats.inbound_invalid);
                    return;
                }
            };
            match self.handle(from, from_addrs.clone(), request).await {
                Ok(Some(response)) => {
                    let body = encode_response(&response);
                    match tokio::time::timeout(idle, write_frame(stream, &body)).await {
                        Ok(Ok(())) => {}
                        _ => return,
                    }
                }
                Ok(None) => {}
                Err(_) => return,
            }
        }
        let _ = stream.close().await;
    }
}

struct Head {
    peer_id: PeerId,
    control: libp2p_stream::Control,
    dialer: Arc<dyn Dialer>,
    streams: Arc<Semaphore>,
    per_peer: Mutex<HashMap<PeerId, usize>>,
}

struct Inner {
    config: DhtConfig,
    heads: Vec<Head>,
    table: Arc<Mutex<RoutingTable>>,
    handler: InboundHandler,
    providers: Arc<dyn ProviderLookup>,
    stats: Arc<DhtStats>,
    probe_slots: Arc<Semaphore>,
    probing: Mutex<HashSet<PeerId>>,
}

/// The service; see [`Dht::spawn`].
pub struct Dht;

impl Dht {
    /// Starts serving `heads` (see the module doc). Must be called within a tokio runtime.
    ///
    /// # Errors
    /// [`DhtError::NoHeads`], [`DhtError::InvalidConfig`], [`DhtError::AlreadyRegistered`].
    pub fn spawn(
        config: DhtConfig,
        heads: Vec<HeadHandle>,
        providers: Arc<dyn ProviderLookup>,
        provider_sink: Arc<dyn ProviderSink>,
        values: Arc<dyn ValueStore>,
    ) -> Result<DhtHandle, DhtError> {
        if heads.is_empty() {
            return Err(DhtError::NoHeads);
        }
        let zero = |field| Err(DhtError::InvalidConfig { field });
        if config.max_inbound_streams_per_head == 0 {
            return zero("max_inbound_streams_per_head");
        }
        if config.max_inbound_streams_per_peer == 0 {
            return zero("max_inbound_streams_per_peer");
        }
        if config.max_concurrent_probes == 0 {
            return zero("max_concurrent_probes");
        }
        if config.inbound_idle_timeout.is_zero() {
            return zero("inbound_idle_timeout");
        }
        if config.query.request_timeout.is_zero() {
            return zero("query.request_timeout");
        }
        if config.maintenance_interval.is_zero() {
            return zero("maintenance_interval");
        }
        if config.refresh_check_interval.is_zero() {
            return zero("refresh_check_interval");
        }
        let ids: Vec<PeerId> = heads.iter().map(|h| h.peer_id).collect();
        let table = Arc::new(Mutex::new(RoutingTable::new(&ids, config.table.clone())));
        let stats = Arc::new(DhtStats::default());
        let mut incoming = Vec::new();
        let mut head_states = Vec::new();
        for mut h in heads {
            let streams = h
                .control
                .accept(PROTOCOL)
                .map_err(|_| DhtError::AlreadyRegistered(h.peer_id))?;
            incoming.push(streams);
            head_states.push(Head {
                peer_id: h.peer_id,
                control: h.control,
                dialer: h.dialer,
                streams: Arc::new(Semaphore::new(config.max_inbound_streams_per_head)),
                per_peer: Mutex::new(HashMap::new()),
            });
        }
        let handler = InboundHandler::new(
            table.clone(),
            providers.clone(),
            provider_sink,
            values,
            stats.clone(),
            config.query.k.max(1),
            config.provider_lookup_deadline,
        )
        .with_budget(config.budget.clone());
        let inner = Arc::new(Inner {
            probe_slots: Arc::new(Semaphore::new(config.max_concurrent_probes)),
            config,
            heads: head_states,
            table,
            handler,
            providers,
            stats,
            probing: Mutex::new(HashSet::new()),
        });
        let mut tasks = Vec::new();
        for (i, streams) in incoming.into_iter().enumerate() {
            tasks.push(tokio::spawn(accept_loop(inner.clone(), i, streams)));
        }
        tasks.push(tokio::spawn(maintenance_loop(inner.clone())));
        Ok(DhtHandle { inner, tasks })
    }
}

async fn accept_loop(inner: Arc<Inner>, head: usize, mut streams: libp2p_stream::IncomingStreams) {
    let mut serving = JoinSet::new();
    loop {
        tokio::select! {
            next = streams.next() => {
                let Some((peer, stream)) = next else { break };
                accept_one(&inner, head, peer, stream, &mut serving);
            }
            Some(_) = serving.join_next(), if !serving.is_empty() => {}
        }
    }
}

struct PeerSlot {
    inner: Arc<Inner>,
    head: usize,
    peer: PeerId,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = lock(&self.inner.heads[self.head].per_peer);
        if let Some(n) = map.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.peer);
            }
        }
    }
}

fn accept_one(
    inner: &Arc<Inner>,
    head: usize,
    peer: PeerId,
    mut stream: libp2p::Stream,
    serving: &mut JoinSet<()>,
) {
    let h = &inner.heads[head];
    let Ok(permit) = h.streams.clone().try_acquire_owned() else {
        bump(&inner.stats.streams_refused);
        return; // dropping the stream resets it
    };
    {
        let mut map = lock(&h.per_peer);
        let n = map.entry(peer).or_default();
        if *n >= inner.config.max_inbound_streams_per_peer {
            bump(&inner.stats.streams_refused);
            return;
        }
        *n += 1;
    }
    let slot = PeerSlot {
        inner: inner.clone(),
        head,
        peer,
    };
    let inner = inner.clone();
    serving.spawn(async move {
        let _permit: OwnedSemaphorePermit = permit;
        let _slot = slot;
        let from_addrs = inner.heads[head].dialer.listen_addrs_of(&peer);
        // A peer that talks to us is a candidate, never a member until it answers us.
        if !inner.table_read(|t| t.contains(&peer) || t.is_head(&peer)) {
            inner.with_table(|t| t.add_candidate(peer, from_addrs.clone(), Instant::now()));
        }
        inner
            .handler
            .serve(
                peer,
                from_addrs,
                &mut stream,
                inner.config.inbound_idle_timeout,
            )
            .await;
    });
}

async fn maintenance_loop(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(inner.config.maintenance_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_refresh = Instant::now();
    loop {
        tick.tick().await;
        probe_candidates(&inner);
        if last_refresh.elapsed() >= inner.config.refresh_check_interval {
            last_refresh = Instant::now();
            refresh(&inner).await;
        }
    }
}

fn probe_candidates(inner: &Arc<Inner>) {
    let free = inner.probe_slots.available_permits();
    if free == 0 {
        return;
    }
    let candidates = inner.with_table(|t| t.take_candidates(free));
    for (peer, addrs) in candidates {
        let Ok(permit) = inner.probe_slots.clone().try_acquire_owned() else {
            break;
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            let _permit = permit;
            probe(&inner, peer, addrs, ProbeKind::Candidate).await;
        });
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    /// A candidate: admitted if it answers.
    Candidate,
    /// A table member: evicted if it does not answer.
    Liveness,
}

/// Sends a FIND_NODE for the probing head's own ID to `peer`; returns whether it answered.
async fn probe(inner: &Arc<Inner>, peer: PeerId, addrs: Vec<Multiaddr>, kind: ProbeKind) -> bool {
    if !lock(&inner.probing).insert(peer) {
        return false;
    }
    bump(&inner.stats.probes);
    let head = inner.table_read(|t| t.owner(&Key::from_peer(&peer)));
    let key = inner.heads[head].peer_id.to_bytes();
    let request = Request::FindNode { key };
    let result = inner.request(head, peer, addrs.clone(), &request).await;
    lock(&inner.probing).remove(&peer);
    let now = Instant::now();
    match result {
        Ok(Some(Response::FindNode { closer_peers })) => {
            let addrs = if addrs.is_empty() {
                inner.heads[head].dialer.listen_addrs_of(&peer)
            } else {
                addrs
            };
            inner.admit(peer, addrs);
            inner.offer_candidates(closer_peers, now);
            true
        }
        other => {
            if let Err(e) = &other {
                tracing::debug!(%peer, error = %e, "probe failed");
            }
            bump(&inner.stats.probe_failures);
            match kind {
                ProbeKind::Candidate => inner.with_table(|t| t.candidate_failed(peer, now)),
                ProbeKind::Liveness => inner.evict(&peer),
            }
            false
        }
    }
}

/// Liveness checks, then a lookup per stale bucket, then a self lookup per head.
async fn refresh(inner: &Arc<Inner>) {
    let now = Instant::now();
    let due = inner.table_read(|t| t.due_for_liveness(now));
    futures::stream::iter(due)
        .for_each_concurrent(inner.config.max_concurrent_probes, |(peer, addrs)| {
            let inner = inner.clone();
            async move {
                let Ok(_permit) = inner.probe_slots.clone().acquire_owned().await else {
                    return;
                };
                probe(&inner, peer, addrs, ProbeKind::Liveness).await;
            }
        })
        .await;
    let stale = inner.table_read(|t| t.stale_buckets(Instant::now()));
    let mut keys = Vec::new();
    for bucket in stale {
        let tries = inner.config.max_refresh_key_tries;
        let key = inner
            .table_read(|t| t.random_key_in_bucket(bucket, tries, &mut crate::kbucket::entropy));
        if let Some(key) = key {
            keys.push(key);
        }
    }
    keys.extend(inner.heads.iter().map(|h| h.peer_id.to_bytes()));
    futures::stream::iter(keys)
        .for_each_concurrent(4, |key| {
            let inner = inner.clone();
            async move {
                let _ = inner.lookup(&key, MessageType::FindNode, None).await;
            }
        })
        .await;
}

impl Inner {
    fn with_table<R>(&self, f: impl FnOnce(&mut RoutingTable) -> R) -> R {
        let mut t = lock(&self.table);
        let r = f(&mut t);
        self.stats
            .routing_table_size
            .store(t.len() as u64, Ordering::Relaxed);
        r
    }

    fn table_read<R>(&self, f: impl FnOnce(&RoutingTable) -> R) -> R {
        f(&lock(&self.table))
    }

    fn evict(&self, peer: &PeerId) {
        let out = self.with_table(|t| t.evict(peer, Instant::now()));
        self.count_removal(&out);
    }

    fn count_removal(&self, out: &FailureOutcome) {
        if let FailureOutcome::Removed { replaced_by } = out {
            bump(&self.stats.evictions);
            if replaced_by.is_some() {
                bump(&self.stats.admissions);
            }
        }
    }

    /// `peer` answered one of our requests in time: insert or refresh it.
    fn admit(self: &Arc<Self>, peer: PeerId, addrs: Vec<Multiaddr>) {
        let out = self.with_table(|t| t.insert_verified(peer, addrs, Instant::now()));
        match out {
            InsertOutcome::Inserted { .. } => bump(&self.stats.admissions),
            InsertOutcome::Updated => {}
            InsertOutcome::Rejected(_) => bump(&self.stats.rejections),
            InsertOutcome::ProbeOldest { oldest, addrs } => {
                let inner = self.clone();
                tokio::spawn(async move {
                    let Ok(_permit) = inner.probe_slots.clone().acquire_owned().await else {
                        return;
                    };
                    probe(&inner, oldest, addrs, ProbeKind::Liveness).await;
                });
            }
        }
    }

    fn offer_candidates(&self, peers: Vec<PeerInfo>, now: Instant) {
        self.with_table(|t| {
            for p in peers {
                t.add_candidate(p.peer, p.addrs, now);
            }
        });
    }

    /// A lookup request to `peer` failed with `error` (module doc, "Admission").
    fn failed(&self, peer: &PeerId, error: Option<&RequestError>) {
        bump(&self.stats.outbound_failures);
        let now = Instant::now();
        let evict = error.is_some_and(RequestError::evicts_at_once);
        let out = self.with_table(|t| {
            if evict {
                t.evict(peer, now)
            } else {
                t.record_failure(peer, now)
            }
        });
        self.count_removal(&out);
    }

    /// The answer (closer peers, providers) of a lookup request to `peer`, or `None` after
    /// recording the failure in the table.
    fn lookup_answer(
        &self,
        peer: &PeerId,
        result: Result<Option<Response>, RequestError>,
    ) -> Option<(Vec<PeerInfo>, Vec<PeerInfo>)> {
        match result {
            Ok(Some(Response::FindNode { closer_peers })) => Some((closer_peers, Vec::new())),
            Ok(Some(Response::GetProviders {
                closer_peers,
                providers,
            })) => Some((closer_peers, providers)),
            // No answer or one of another type (decode_response is given the request's type,
            // so this does not happen): counted like an invalid answer.
            Ok(_) => {
                self.failed(peer, None);
                None
            }
            Err(e) => {
                self.failed(peer, Some(&e));
                None
            }
        }
    }

    /// One request to `peer` from head `head`: `Ok(None)` for ADD_PROVIDER (no answer is
    /// awaited, as go-libp2p-kad-dht and libp2p-kad send none).
    async fn request(
        &self,
        head: usize,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: &Request,
    ) -> Result<Option<Response>, RequestError> {
        bump(&self.stats.outbound_requests);
        let timeout = self.config.query.request_timeout;
        let body = encode_request(request);
        let kind = request.message_type();
        let attempt = || self.exchange(head, peer, addrs.clone(), &body, kind);
        // See the module doc, "Retry".
        let work = async {
            match attempt().await {
                Err(e) if e.is_stream_failure() => {
                    let jitter = crate::kbucket::entropy() % RETRY_JITTER_MS;
                    tokio::time::sleep(RETRY_PAUSE + Duration::from_millis(jitter)).await;
                    attempt().await
                }
                other => other,
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(RequestError::Timeout),
        }
    }

    /// One try of [`Inner::request`]: dial, open a stream, write `body`, read the answer.
    async fn exchange(
        &self,
        head: usize,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        body: &[u8],
        kind: MessageType,
    ) -> Result<Option<Response>, RequestError> {
        let h = &self.heads[head];
        h.dialer
            .dial(peer, addrs)
            .await
            .map_err(RequestError::Dial)?;
        let mut control = h.control.clone();
        let mut stream = control
            .open_stream(peer, PROTOCOL)
            .await
            .map_err(|e| RequestError::Open(e.to_string()))?;
        write_frame(&mut stream, body).await?;
        if kind == MessageType::AddProvider {
            let _ = stream.close().await;
            return Ok(None);
        }
        let answer = read_frame(&mut stream, MAX_FRAME_SIZE)
            .await?
            .ok_or(RequestError::Closed)?;
        let _ = stream.close().await;
        Ok(Some(decode_response(&answer, kind)?))
    }

    /// An iterative lookup of `key` with FIND_NODE or GET_PROVIDERS requests.
    async fn lookup(
        self: &Arc<Self>,
        key: &[u8],
        kind: MessageType,
        stop_after_providers: Option<usize>,
    ) -> Result<crate::query::LookupResult, DhtError> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(DhtError::InvalidKey(key.len()));
        }
        let target = Key::from_bytes(key);
        let k = self.config.query.k.max(1);
        let (seeds, head) = self.table_read(|t| (t.closest(&target, k, None), t.owner(&target)));
        if seeds.is_empty() {
            return Err(DhtError::NoPeers);
        }
        let mut lookup = Lookup::new(target, seeds, self.config.query.clone());
        if let Some(n) = stop_after_providers {
            lookup = lookup.stop_after_providers(n);
        }
        let request = match kind {
            MessageType::GetProviders => Request::GetProviders { key: key.to_vec() },
            _ => Request::FindNode { key: key.to_vec() },
        };
        let mut in_flight = futures::stream::FuturesUnordered::new();
        loop {
            match lookup.next_action(Instant::now()) {
                Action::Send(peer) => {
                    let addrs = lookup.addrs(&peer).to_vec();
                    let request = request.clone();
                    let inner = self.clone();
                    in_flight.push(async move {
                        let r = inner.request(head, peer, addrs.clone(), &request).await;
                        (peer, addrs, r)
                    });
                }
                Action::Finished => break,
                Action::Wait => {
                    let deadline = lookup
                        .next_deadline()
                        .unwrap_or_else(|| Instant::now() + self.config.query.request_timeout);
                    tokio::select! {
                        Some((peer, addrs, result)) = in_flight.next() => {
                            let now = Instant::now();
                            match self.lookup_answer(&peer, result) {
                                Some((closer, providers)) => {
                                    if lookup.on_success(&peer, closer.clone(), providers) {
                                        self.admit(peer, addrs);
                                        self.offer_candidates(closer, now);
                                    }
                                }
                                None => lookup.on_failure(&peer),
                            }
                        }
                        () = tokio::time::sleep_until(deadline.into()) => {}
                    }
                }
            }
        }
        self.with_table(|t| t.mark_refreshed(&target, Instant::now()));
        if !in_flight.is_empty() {
            // Requests the lookup no longer waits for (stalled, or farther than its k
            // closest): record their outcome in the table all the same (module doc,
            // "Admission"). Each ends within the request timeout.
            let inner = self.clone();
            tokio::spawn(async move {
                while let Some((peer, addrs, result)) = in_flight.next().await {
                    if let Some((closer, _)) = inner.lookup_answer(&peer, result) {
                        inner.admit(peer, addrs);
                        inner.offer_candidates(closer, Instant::now());
                    }
                }
            });
        }
        Ok(lookup.into_result())
    }
}

/// Handle to a running [`Dht`]; dropping it stops the service.
pub struct DhtHandle {
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
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
    /// heads' controls may accept `/ipfs/kad/1.0.0` again.
    pub fn shutdown(self) {
        drop(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{encode_request, frame};
    use std::pin::Pin;
    use std::task::{Context, Poll};

    #[derive(Default)]
    struct Sink(Mutex<Vec<(Vec<u8>, ProviderInfo)>>);
    impl ProviderSink for Sink {
        fn add(&self, key: Vec<u8>, provider: ProviderInfo) -> bool {
            lock(&self.0).push((key, provider));
            true
        }
    }

    struct Failing;
    #[async_trait::async_trait]
    impl ProviderLookup for Failing {
        async fn providers(&self, _key: &[u8]) -> Result<Vec<ProviderInfo>, LookupError> {
            Err(LookupError("index unavailable".into()))
        }
    }

    /// An in-memory stream: reads `input`, collects writes.
    struct Pipe {
        input: futures::io::Cursor<Vec<u8>>,
        output: Vec<u8>,
    }
    impl AsyncRead for Pipe {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.input).poll_read(cx, buf)
        }
    }
    impl AsyncWrite for Pipe {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.output.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn peer(i: u8) -> PeerId {
        libp2p::identity::Keypair::ed25519_from_bytes([i; 32])
            .unwrap()
            .public()
            .to_peer_id()
    }

    fn addr(i: u8) -> Multiaddr {
        format!("/ip4/10.{i}.0.1/tcp/4001").parse().unwrap()
    }

    fn handler(
        sink: Arc<Sink>,
        providers: Arc<dyn ProviderLookup>,
    ) -> (InboundHandler, Arc<DhtStats>) {
        let table = Arc::new(Mutex::new(RoutingTable::new(
            &[peer(0)],
            TableConfig::default(),
        )));
        {
            let mut t = lock(&table);
            for i in 1..30 {
                t.insert_verified(peer(i), vec![addr(i)], Instant::now());
            }
        }
        let stats = Arc::new(DhtStats::default());
        let h = InboundHandler::new(
            table,
            providers,
            sink,
            Arc::new(RejectAllValues),
            stats.clone(),
            20,
            Duration::from_secs(1),
        );
        (h, stats)
    }

    fn multihash_key() -> Vec<u8> {
        let mut k = vec![0x12, 0x20];
        k.extend_from_slice(&[5u8; 32]);
        k
    }

    #[test]
    fn only_stream_failures_are_retried() {
        let io = || std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(RequestError::Closed.is_stream_failure());
        assert!(RequestError::Io(io()).is_stream_failure());
        assert!(RequestError::Frame(FrameError::Io(io())).is_stream_failure());
        assert!(RequestError::Frame(FrameError::Truncated).is_stream_failure());
        assert!(RequestError::Open("reset".into()).is_stream_failure());
        assert!(!RequestError::Timeout.is_stream_failure());
        assert!(!RequestError::Dial("no addresses".into()).is_stream_failure());
        assert!(!RequestError::Frame(FrameError::InvalidLength).is_stream_failure());
    }

    #[test]
    fn timeouts_and_stream_failures_evict_at_once() {
        let io = || std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(RequestError::Timeout.evicts_at_once());
        assert!(RequestError::Closed.evicts_at_once());
        assert!(RequestError::Io(io()).evicts_at_once());
        assert!(RequestError::Frame(FrameError::Truncated).evicts_at_once());
        assert!(RequestError::Open("reset".into()).evicts_at_once());
        assert!(!RequestError::Dial("dialer busy".into()).evicts_at_once());
        assert!(!RequestError::Frame(FrameError::InvalidLength).evicts_at_once());
    }

    #[tokio::test]
    async fn add_provider_from_another_peer_is_refused() {
        let sink = Arc::new(Sink::default());
        let (h, stats) = handler(sink.clone(), Arc::new(NoProviders));
        let request = Request::AddProvider {
            key: multihash_key(),
            providers: vec![PeerInfo::new(peer(50), vec![addr(50)])],
        };
        assert_eq!(
            h.handle(peer(51), vec![], request).await,
            Err(Refusal::ProviderNotSender)
        );
        assert!(lock(&sink.0).is_empty());
        assert_eq!(
            stats.inbound_refused[MessageType::AddProvider.index()].load(Ordering::Relaxed),
            1
        );
    }

    #[tokio::test]
    async fn add_provider_from_the_provider_is_stored_with_fallback_addresses() {
        let sink = Arc::new(Sink::default());
        let (h, _) = handler(sink.clone(), Arc::new(NoProviders));
        let request = Request::AddProvider {
            key: multihash_key(),
            providers: vec![
                PeerInfo::new(peer(60), vec![]),
                PeerInfo::new(peer(61), vec![addr(61)]),
            ],
        };
        let answer = h.handle(peer(60), vec![addr(99)], request).await.unwrap();
        assert_eq!(
            answer,
            Some(Response::AddProvider {
                key: multihash_key()
            })
        );
        let stored = lock(&sink.0).clone();
        assert_eq!(
            stored,
            vec![(
                multihash_key(),
                ProviderInfo {
                    peer: peer(60),
                    addrs: vec![addr(99)]
                }
            )]
        );
        // A key that is no multihash is refused.
        let bad = Request::AddProvider {
            key: vec![0xff, 0xff, 0xff],
            providers: vec![PeerInfo::new(peer(60), vec![addr(60)])],
        };
        assert_eq!(
            h.handle(peer(60), vec![], bad).await,
            Err(Refusal::NotMultihash)
        );
    }

    #[tokio::test]
    async fn find_node_answers_k_closest_without_the_requester() {
        let (h, _) = handler(Arc::new(Sink::default()), Arc::new(NoProviders));
        let key = peer(3).to_bytes();
        let Some(Response::FindNode { closer_peers }) = h
            .handle(peer(3), vec![], Request::FindNode { key: key.clone() })
            .await
            .unwrap()
        else {
            panic!("wrong answer");
        };
        assert_eq!(closer_peers.len(), 20);
        assert!(closer_peers.iter().all(|p| p.peer != peer(3)));
        let mut expected: Vec<PeerId> = (1..30).map(peer).filter(|p| *p != peer(3)).collect();
        expected.sort_by_key(|p| Key::from_peer(p).distance(&Key::from_bytes(&key)));
        let got: Vec<PeerId> = closer_peers.iter().map(|p| p.peer).collect();
        assert_eq!(got, expected[..20]);
    }

    #[tokio::test]
    async fn provider_lookup_errors_answer_closer_peers_and_count_apart() {
        let (h, stats) = handler(Arc::new(Sink::default()), Arc::new(Failing));
        let answer = h
            .handle(
                peer(70),
                vec![],
                Request::GetProviders {
                    key: multihash_key(),
                },
            )
            .await
            .unwrap();
        let Some(Response::GetProviders {
            closer_peers,
            providers,
        }) = answer
        else {
            panic!("wrong answer");
        };
        assert!(providers.is_empty());
        assert_eq!(closer_peers.len(), 20);
        let i = MessageType::GetProviders.index();
        assert_eq!(stats.inbound_error[i].load(Ordering::Relaxed), 1);
        assert_eq!(stats.inbound_not_found[i].load(Ordering::Relaxed), 0);

        let (h, stats) = handler(Arc::new(Sink::default()), Arc::new(NoProviders));
        h.handle(
            peer(70),
            vec![],
            Request::GetProviders {
                key: multihash_key(),
            },
        )
        .await
        .unwrap();
        assert_eq!(stats.inbound_not_found[i].load(Ordering::Relaxed), 1);
        assert_eq!(stats.inbound_error[i].load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn put_value_is_refused_by_reject_all() {
        let (h, _) = handler(Arc::new(Sink::default()), Arc::new(NoProviders));
        let record = Record {
            key: b"/ipns/x".to_vec(),
            value: b"v".to_vec(),
        };
        assert!(matches!(
            h.handle(peer(9), vec![], Request::PutValue { record })
                .await,
            Err(Refusal::ValueRejected(_))
        ));
    }

    #[tokio::test]
    async fn a_full_memory_budget_resets_the_stream_unanswered() {
        let (h, stats) = handler(Arc::new(Sink::default()), Arc::new(NoProviders));
        let budget = MemoryBudget::new(REQUEST_CHARGE);
        let h = h.with_budget(budget.clone());
        let held = budget.try_acquire(Holder::Gateway, 1).unwrap();
        let mut pipe = Pipe {
            input: futures::io::Cursor::new(frame(&encode_request(&Request::Ping))),
            output: Vec::new(),
        };
        h.serve(peer(5), vec![], &mut pipe, Duration::from_secs(5))
            .await;
        assert!(pipe.output.is_empty(), "no answer while the budget is full");
        assert_eq!(stats.inbound_shed.load(Ordering::Relaxed), 1);
        drop(held);
        let mut pipe = Pipe {
            input: futures::io::Cursor::new(frame(&encode_request(&Request::Ping))),
            output: Vec::new(),
        };
        h.serve(peer(5), vec![], &mut pipe, Duration::from_secs(5))
            .await;
        assert!(!pipe.output.is_empty(), "answered once memory is free");
        assert_eq!(budget.in_use(), 0, "the request's charge is released");
    }

    #[tokio::test]
    async fn stream_serves_many_requests_and_closes_on_an_oversized_key() {
        let (h, stats) = handler(Arc::new(Sink::default()), Arc::new(NoProviders));
        let mut input = frame(&encode_request(&Request::Ping));
        input.extend(frame(&encode_request(&Request::FindNode {
            key: b"abc".to_vec(),
        })));
        // A key over 80 bytes: the stream is closed without an answer...
        let mut oversized = crate::protocol::proto::Message {
            r#type: MessageType::FindNode.to_wire(),
            key: vec![1; MAX_KEY_LEN + 1],
            ..Default::default()
        };
        input.extend(frame(&prost::Message::encode_to_vec(&oversized)));
        // ...so this later request is never answered.
        oversized.key = vec![1; 4];
        input.extend(frame(&prost::Message::encode_to_vec(&oversized)));
        let mut pipe = Pipe {
            input: futures::io::Cursor::new(input),
            output: Vec::new(),
        };
        h.serve(peer(5), vec![], &mut pipe, Duration::from_secs(5))
            .await;
        let mut out = futures::io::Cursor::new(pipe.output);
        let first = read_frame(&mut out, MAX_FRAME_SIZE).await.unwrap().unwrap();
        assert_eq!(
            decode_response(&first, MessageType::Ping).unwrap(),
            Response::Ping
        );
        let second = read_frame(&mut out, MAX_FRAME_SIZE).await.unwrap().unwrap();
        assert!(matches!(
            decode_response(&second, MessageType::FindNode).unwrap(),
            Response::FindNode { .. }
        ));
        assert!(
            read_frame(&mut out, MAX_FRAME_SIZE)
                .await
                .unwrap()
                .is_none(),
            "no third answer"
        );
        assert_eq!(stats.inbound_invalid.load(Ordering::Relaxed), 1);
    }
}
