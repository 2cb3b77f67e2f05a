//! The service's tasks: [`Dht::spawn`] starts an accept loop per head and the maintenance
//! loop over one shared state (`Inner`: heads, routing table, inbound rules, counters), which
//! also sends outbound requests (with their one retry) and runs iterative lookups for
//! [`DhtHandle`](crate::DhtHandle).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{AsyncWriteExt as _, StreamExt as _};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::kbucket::{FailureOutcome, InsertOutcome, Key, RoutingTable};
use crate::protocol::{
    MAX_FRAME_SIZE, MAX_KEY_LEN, MessageType, PeerInfo, Request, Response, decode_response,
    encode_request, read_frame, write_frame,
};
use crate::query::{Action, Lookup, RttEstimator};
use crate::stats::bump;
use crate::{
    AddressPolicy, DhtConfig, DhtError, DhtHandle, DhtStats, Dialer, HeadHandle, InboundHandler,
    ProviderLookup, ProviderSink, RequestError, ValueStore, lock,
};
#[cfg(doc)]
use crate::{ChannelDialer, QueryConfig, TableConfig, handle_dial_request};

/// Least pause before the one retry of a request whose stream failed (`Dht`'s doc, "Retry").
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Random extra pause before that retry, below this many milliseconds.
const RETRY_JITTER_MS: u64 = 200;

/// One head as the service keeps it: its [`HeadHandle`] and its inbound stream limits.
pub(crate) struct Head {
    pub(crate) peer_id: PeerId,
    control: libp2p_stream::Control,
    dialer: Arc<dyn Dialer>,
    streams: Arc<Semaphore>,
    per_peer: Mutex<HashMap<PeerId, usize>>,
}

/// The state shared by the tasks and the [`DhtHandle`].
pub(crate) struct Inner {
    pub(crate) config: DhtConfig,
    pub(crate) heads: Vec<Head>,
    table: Arc<Mutex<RoutingTable>>,
    handler: InboundHandler,
    pub(crate) providers: Arc<dyn ProviderLookup>,
    pub(crate) stats: Arc<DhtStats>,
    probe_slots: Arc<Semaphore>,
    probing: Mutex<HashSet<PeerId>>,
    /// Round trips of answered requests, for the lookups' stall timeout.
    rtt: Mutex<RttEstimator>,
}

/// The DHT service over `libp2p_stream::Control`: one service serves many heads sharing one
/// [`RoutingTable`] (../shared/specs/kad-dht.md, "Client and Server Mode", "RPC Messages").
///
/// One service speaks one protocol ([`DhtConfig::protocol`]) under one [`AddressPolicy`]
/// ([`DhtConfig::addresses`]); a node serving both the Amino DHT and the LAN DHT, as
/// go-libp2p-kad-dht's `dual` package does, runs two services over the same heads
/// ([`DhtConfig::wan`], [`DhtConfig::lan`]), each with its own table and counters.
///
/// Tasks (all end at [`DhtHandle::shutdown`] or when the handle is dropped):
/// - *accept*, one per head: takes streams of the service's protocol, within
///   [`DhtConfig::max_inbound_streams_per_head`] and [`DhtConfig::max_inbound_streams_per_peer`]
///   (further streams are dropped, i.e. reset), and serves each in a task that answers any
///   number of requests until the peer closes it or [`DhtConfig::inbound_idle_timeout`] passes
///   without one. Invalid or refused requests close the stream without an answer (spec).
/// - *maintenance*: every [`DhtConfig::maintenance_interval`] probes candidates (peers that
///   talked to us or were named in responses) with a FIND_NODE, at most
///   [`DhtConfig::max_concurrent_probes`] at once, admitting those that answer; every
///   [`DhtConfig::refresh_check_interval`] runs [`DhtHandle::refresh`].
///
/// Admission: a peer enters the table only after answering one of our requests (a lookup
/// request or a probe) within [`QueryConfig::request_timeout`]. A lookup request that timed
/// out, or whose stream failed or ended unanswered on both tries (see "Retry"), evicts the
/// peer at once, as go-libp2p-kad-dht drops a peer from its table on the first failed query:
/// the retry already absorbs the stream reset a busy but healthy peer may cause, so
/// what is left is a peer that does not serve the protocol (any more), and keeping it costs
/// every lookup that meets it a slot of α for up to a request timeout. An evicted peer that
/// is in fact alive comes back as a candidate (named in answers, probed, admitted). Other
/// failed lookup requests (dial refused, invalid answer) count toward
/// [`TableConfig::max_failures`]; a failed liveness
/// probe evicts at once. A lookup request that failed, stalled (see [`Lookup`]; its stall
/// timeout follows the round trips of answered requests, [`crate::RttEstimator`]) or whose
/// first try failed (it is then stalled at once, `Lookup::stall_now`) makes its peer a
/// suspect, which lookups skip until it answers ([`RoutingTable::mark_suspect`]). Requests still in flight when a lookup ends (stalled ones, see
/// [`Lookup`], or farther than its k closest) are not dropped: a task follows them to
/// their answer or timeout (at most the request timeout) and records the outcome in the
/// table all the same.
///
/// Retry: libp2p-stream hands inbound streams to the acceptor through a bounded queue (one
/// slot upstream; 128 in `vendor/libp2p-stream`) and silently drops (resets) a stream that
/// arrives while it is full, and a peer may refuse a stream past its own limits, so a busy
/// but healthy peer can reset a stream before reading it, and the requester sees the stream
/// closed or reset without an answer. Every outbound request (lookups,
/// probes, ADD_PROVIDER) therefore retries once, on a new stream after a pause of 50 to
/// 250 ms (random, so that requesters do not collide again), when the stream could not be
/// opened or failed or ended before the answer; both tries share the one request timeout. A
/// peer that resets every stream fails both tries and is never admitted.
///
/// Dialing: `Control::open_stream` dials a peer it is not connected to with no addresses, so
/// before every outbound stream the service calls [`Dialer::dial`] of the head, which must
/// make the head's swarm dial the peer with the given addresses (or do nothing when already
/// connected) and return once the dial has started. [`ChannelDialer`] and
/// [`handle_dial_request`] do this through a bounded channel served by the swarm task.
pub struct Dht;

impl Dht {
    /// Starts serving `heads` (see [`Dht`]). Must be called within a tokio runtime.
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
        let head_infos: Vec<(PeerId, Vec<Multiaddr>)> =
            heads.iter().map(|h| (h.peer_id, h.addrs.clone())).collect();
        let table = Arc::new(Mutex::new(RoutingTable::new(&ids, config.table.clone())));
        let stats = Arc::new(DhtStats::default());
        let mut incoming = Vec::new();
        let mut head_states = Vec::new();
        for mut h in heads {
            let streams = h
                .control
                .accept(config.protocol.clone())
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
        .with_budget(config.budget.clone())
        .with_heads(head_infos)
        .with_addresses(config.addresses);
        let inner = Arc::new(Inner {
            probe_slots: Arc::new(Semaphore::new(config.max_concurrent_probes)),
            config,
            heads: head_states,
            table,
            handler,
            providers,
            stats,
            probing: Mutex::new(HashSet::new()),
            rtt: Mutex::new(RttEstimator::default()),
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
        // A peer that talks to us is a candidate, never a member until it answers us, and
        // only when the table could admit it (`AddressPolicy::admits`).
        if inner.config.addresses.admits(&from_addrs)
            && !inner.table_read(|t| t.contains(&peer) || t.is_head(&peer))
        {
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
pub(crate) enum ProbeKind {
    /// A candidate: admitted if it answers.
    Candidate,
    /// A table member: evicted if it does not answer.
    Liveness,
}

/// Sends a FIND_NODE for the probing head's own ID to `peer`; returns whether it answered.
pub(crate) async fn probe(
    inner: &Arc<Inner>,
    peer: PeerId,
    addrs: Vec<Multiaddr>,
    kind: ProbeKind,
) -> bool {
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
pub(crate) async fn refresh(inner: &Arc<Inner>) {
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

    pub(crate) fn table_read<R>(&self, f: impl FnOnce(&RoutingTable) -> R) -> R {
        f(&lock(&self.table))
    }

    /// Takes a round-trip sample for the stall timeout (published in
    /// [`DhtStats::stall_timeout_ms`]).
    fn observe_rtt(&self, rtt: Duration) {
        let stall = {
            let mut e = lock(&self.rtt);
            e.observe(rtt);
            e.stall_timeout(&self.config.query)
        };
        let ms = u64::try_from(stall.as_millis()).unwrap_or(u64::MAX);
        self.stats.stall_timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// The stall timeout of lookup requests sent now ([`RttEstimator::stall_timeout`]).
    fn stall_timeout(&self) -> Duration {
        lock(&self.rtt).stall_timeout(&self.config.query)
    }

    /// Drops the suspects from the peers an answer named (the lookup would only stall on
    /// them again; [`RoutingTable::mark_suspect`]), counting them in
    /// [`DhtStats::suspects_skipped`].
    fn without_suspects(&self, mut peers: Vec<PeerInfo>, now: Instant) -> Vec<PeerInfo> {
        let before = peers.len();
        self.table_read(|t| peers.retain(|p| !t.is_suspect(&p.peer, now)));
        let skipped = (before - peers.len()) as u64;
        self.stats
            .suspects_skipped
            .fetch_add(skipped, Ordering::Relaxed);
        peers
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

    /// `peer` answered one of our requests in time: insert or refresh it, if the policy admits
    /// a peer reached at `addrs` (a refused one counts as a rejection).
    fn admit(self: &Arc<Self>, peer: PeerId, addrs: Vec<Multiaddr>) {
        if !self.config.addresses.admits(&addrs) {
            bump(&self.stats.rejections);
            return;
        }
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

    /// What an answer taught us about `peers`, under the policy: their addresses
    /// [filtered](AddressPolicy::filter), and only those worth querying
    /// ([`AddressPolicy::queries`]), except the peer whose ID is `target` (a lookup for a peer
    /// keeps it, as go-libp2p-kad-dht's query does).
    fn learned(&self, target: Option<&[u8]>, peers: Vec<PeerInfo>) -> Vec<PeerInfo> {
        let policy = self.config.addresses;
        if policy == AddressPolicy::Any {
            return peers;
        }
        peers
            .into_iter()
            .filter_map(|mut p| {
                p.addrs = policy.filter(std::mem::take(&mut p.addrs));
                let is_target = target.is_some_and(|t| t == p.peer.to_bytes().as_slice());
                (is_target || policy.queries(&p.addrs)).then_some(p)
            })
            .collect()
    }

    fn offer_candidates(&self, peers: Vec<PeerInfo>, now: Instant) {
        let peers = self.learned(None, peers);
        self.with_table(|t| {
            for p in peers {
                t.add_candidate(p.peer, p.addrs, now);
            }
        });
    }

    /// A lookup request to `peer` failed with `error` ([`Dht`], "Admission").
    fn failed(&self, peer: &PeerId, error: Option<&RequestError>) {
        bump(&self.stats.outbound_failures);
        let now = Instant::now();
        let evict = error.is_some_and(RequestError::evicts_at_once);
        let out = self.with_table(|t| {
            t.mark_suspect(*peer, now);
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
    pub(crate) async fn request(
        &self,
        head: usize,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: &Request,
    ) -> Result<Option<Response>, RequestError> {
        self.request_with(head, peer, addrs, request, || {}).await
    }

    /// [`Inner::request`], calling `on_retry` when the first try failed and the request is
    /// tried again (`Dht`'s doc, "Retry").
    async fn request_with(
        &self,
        head: usize,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: &Request,
        on_retry: impl FnOnce(),
    ) -> Result<Option<Response>, RequestError> {
        bump(&self.stats.outbound_requests);
        let timeout = self.config.query.request_timeout;
        let body = encode_request(request);
        let kind = request.message_type();
        let attempt = || self.exchange(head, peer, addrs.clone(), &body, kind);
        let sent = Instant::now();
        // See `Dht`'s doc, "Retry".
        let work = async {
            match attempt().await {
                Err(e) if e.is_stream_failure() => {
                    on_retry();
                    let jitter = crate::kbucket::entropy() % RETRY_JITTER_MS;
                    tokio::time::sleep(RETRY_PAUSE + Duration::from_millis(jitter)).await;
                    attempt().await
                }
                // A round-trip sample only from an answer to the first try (Karn).
                Ok(Some(answer)) => {
                    self.observe_rtt(sent.elapsed());
                    Ok(Some(answer))
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
            .open_stream(peer, self.config.protocol.clone())
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
    pub(crate) async fn lookup(
        self: &Arc<Self>,
        key: &[u8],
        kind: MessageType,
        stop_after_providers: Option<usize>,
    ) -> Result<crate::query::LookupResult, DhtError> {
        self.lookup_reporting(key, kind, stop_after_providers, None)
            .await
    }

    /// [`Inner::lookup`], also sending each provider to `found` as the lookup takes it
    /// (first sighting of a peer only). Never waits on `found`: a provider that does not fit
    /// is dropped, so give it room for [`crate::MAX_LOOKUP_PROVIDERS`] (what one lookup
    /// collects at most) to lose none.
    pub(crate) async fn lookup_reporting(
        self: &Arc<Self>,
        key: &[u8],
        kind: MessageType,
        stop_after_providers: Option<usize>,
        found: Option<&tokio::sync::mpsc::Sender<PeerInfo>>,
    ) -> Result<crate::query::LookupResult, DhtError> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(DhtError::InvalidKey(key.len()));
        }
        let target = Key::from_bytes(key);
        let k = self.config.query.k.max(1);
        let (seeds, head) = self.table_read(|t| {
            let seeds = t.closest_for_lookup(&target, k, Instant::now());
            (seeds, t.owner(&target))
        });
        if seeds.is_empty() {
            return Err(DhtError::NoPeers);
        }
        let mut lookup = Lookup::new(target, seeds, self.config.query.clone());
        lookup.set_stall_timeout(self.stall_timeout());
        if let Some(n) = stop_after_providers {
            lookup = lookup.stop_after_providers(n);
        }
        let request = match kind {
            MessageType::GetProviders => Request::GetProviders { key: key.to_vec() },
            _ => Request::FindNode { key: key.to_vec() },
        };
        let mut in_flight = futures::stream::FuturesUnordered::new();
        // Peers whose first try failed: their request is stalled at once (`Lookup::stall_now`).
        // At most one message per request, so the channel never fills.
        let (retry_tx, mut retries) = tokio::sync::mpsc::channel(crate::MAX_LOOKUP_PEERS);
        loop {
            let action = lookup.next_action(Instant::now());
            let stalled = lookup.take_stalled();
            if !stalled.is_empty() {
                // Other lookups skip them until they answer (`RoutingTable::mark_suspect`).
                self.stats
                    .stalled_requests
                    .fetch_add(stalled.len() as u64, Ordering::Relaxed);
                let now = Instant::now();
                self.with_table(|t| stalled.into_iter().for_each(|p| t.mark_suspect(p, now)));
            }
            match action {
                Action::Send(peer) => {
                    let addrs = lookup.addrs(&peer).to_vec();
                    let request = request.clone();
                    let inner = self.clone();
                    let retry_tx = retry_tx.clone();
                    in_flight.push(async move {
                        let on_retry = move || {
                            let _ = retry_tx.try_send(peer);
                        };
                        let r = inner
                            .request_with(head, peer, addrs.clone(), &request, on_retry)
                            .await;
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
                                    let closer = self.learned(Some(key), closer);
                                    // Before `admit`, which clears the peer's own mark.
                                    let next = self.without_suspects(closer.clone(), now);
                                    let known = lookup.providers().len();
                                    if lookup.on_success(&peer, next, providers) {
                                        self.admit(peer, addrs);
                                        self.offer_candidates(closer, now);
                                    }
                                    lookup.set_stall_timeout(self.stall_timeout());
                                    if let Some(tx) = found {
                                        for p in &lookup.providers()[known..] {
                                            let _ = tx.try_send(p.clone());
                                        }
                                    }
                                }
                                None => lookup.on_failure(&peer),
                            }
                        }
                        Some(peer) = retries.recv() => lookup.stall_now(&peer),
                        () = tokio::time::sleep_until(deadline.into()) => {}
                    }
                }
            }
        }
        self.with_table(|t| t.mark_refreshed(&target, Instant::now()));
        if !in_flight.is_empty() {
            // Requests the lookup no longer waits for (stalled, or farther than its k
            // closest): record their outcome in the table all the same (`Dht`'s doc,
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
