//! Sans-I/O iterative lookup (../shared/specs/kad-dht.md, "Lookup Process", "Client
//! behavior"): the state of one FIND_NODE or GET_PROVIDERS walk toward a target key.
//!
//! The caller loops on [`Lookup::next_action`]: [`Action::Send`] a request to a peer,
//! [`Action::Wait`] for an answer or for [`Lookup::next_deadline`], until
//! [`Action::Finished`]; and reports answers with [`Lookup::on_success`] and errors with
//! [`Lookup::on_failure`]. A request unanswered after `request_timeout` counts as failed (a
//! later answer is ignored).
//!
//! Stalled requests (as libp2p-kad's ClosestPeersIter with its `peer_timeout`): a request
//! unanswered after the lookup's stall timeout is *stalled*. It stays in flight until
//! `request_timeout` and an answer before then is taken as usual, but it no longer counts
//! toward `alpha`, so at most `alpha` non-stalled requests are in flight and a lookup goes on
//! past silent peers instead of waiting for their timeouts. The stall timeout adapts to the
//! round trips the node observes ([`RttEstimator`], TCP's SRTT/RTTVAR of RFC 6298:
//! `srtt + 4 × rttvar`, clamped to [`QueryConfig::min_stall_timeout`] ..
//! [`QueryConfig::stall_timeout`]); the caller passes the current value with
//! [`Lookup::set_stall_timeout`], stalls a request at once with [`Lookup::stall_now`] when it
//! knows no answer will come soon (its first try failed), and learns which peers stalled from
//! [`Lookup::take_stalled`] (to mark them suspect in the routing table, so that other lookups
//! skip them until they answer).
//!
//! Termination: walking the peers nearest first and skipping those that failed or are
//! stalled, when the first `k` of them have all answered (stricter than the spec's β = 3, as
//! ClosestPeersIter); a non-stalled request to a peer closer than the `k`-th answered one is
//! waited for (until it answers, fails or stalls). So a stalled peer closer than the `k`-th
//! answered peer does not hold the lookup up: it is given up on once the `k` closest answered
//! peers are known and no non-stalled request closer than them is pending. This is what
//! removes the tail of several request timeouts in a row behind silent peers; the price is
//! that a slow but honest peer (slower than the stall timeout) may be missing from the result
//! although it is among the `k` closest. The lookup also ends when nobody is left to ask and
//! nothing is in flight: while fewer than `k` peers answered and only stalled requests are
//! left, it waits for them (they are the only source of more peers) only while fewer than
//! [`BETA`] peers answered (the spec's "β closest reachable peers ... have been queried"):
//! with β answers it ends, instead of holding its result for the request timeout of peers
//! that are most likely dead (a GET_PROVIDERS with a provider limit not yet reached still
//! waits, since a late answer may hold the providers). GET_PROVIDERS with a limit also ends
//! once enough providers are known. Peers that failed, timed out or are still
//! stalled are never in the result (only peers that answered are). The peers kept are bounded
//! by [`MAX_LOOKUP_PEERS`]: the farthest not-yet-contacted ones are dropped. Each peer is asked
//! at most once, so a lookup has at most [`MAX_LOOKUP_PEERS`] requests in flight, at most
//! `alpha` of them not stalled.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};

use crate::kbucket::{Distance, K, Key};
use crate::protocol::PeerInfo;

/// The spec's resilience parameter β (../shared/specs/kad-dht.md, "Termination"): a lookup
/// that has nobody left to ask but stalled peers ends once this many peers answered.
pub const BETA: usize = 3;

/// Most peers a lookup keeps track of.
pub const MAX_LOOKUP_PEERS: usize = 10 * K;

/// Most providers a GET_PROVIDERS lookup collects.
pub const MAX_LOOKUP_PROVIDERS: usize = 1000;

/// Settings of a lookup.
#[derive(Clone, Debug)]
pub struct QueryConfig {
    /// Requests in flight at once (spec, "Concurrency": α = 10). 0 is read as 1.
    pub alpha: usize,
    /// Result size (k = 20). 0 is read as 1.
    pub k: usize,
    /// A request unanswered for this long has failed. Default 10 s.
    pub request_timeout: Duration,
    /// The longest stall timeout: a request unanswered for this long is stalled (it no longer
    /// counts toward `alpha` nor holds up the end of the lookup, but may still answer until
    /// `request_timeout`; module doc). Also the stall timeout before any round trip was
    /// observed. Default 1 s. 0 or at least `request_timeout` switches stalling off.
    pub stall_timeout: Duration,
    /// The shortest stall timeout, whatever the observed round trips ([`RttEstimator`]).
    /// Default 50 ms; values above `stall_timeout` are read as `stall_timeout`.
    pub min_stall_timeout: Duration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            alpha: 10,
            k: K,
            request_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(1),
            min_stall_timeout: Duration::from_millis(50),
        }
    }
}

impl QueryConfig {
    /// Whether requests stall at all: `stall_timeout` is neither 0 nor at least
    /// `request_timeout`.
    pub fn stalling(&self) -> bool {
        !self.stall_timeout.is_zero() && self.stall_timeout < self.request_timeout
    }
}

/// Round-trip estimate of the node's answered requests, as TCP's retransmission timer
/// (RFC 6298, section 2): the first sample `r` sets `srtt = r`, `rttvar = r / 2`; each later
/// one `rttvar = 3/4 rttvar + 1/4 |srtt - r|`, then `srtt = 7/8 srtt + 1/8 r`. Samples are
/// the times from sending a request to its answer; as Karn's algorithm, the caller gives no
/// sample for a request that was retried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RttEstimator {
    /// (srtt, rttvar), once a sample was taken.
    state: Option<(Duration, Duration)>,
}

impl RttEstimator {
    /// Takes one round-trip sample.
    pub fn observe(&mut self, rtt: Duration) {
        self.state = Some(match self.state {
            None => (rtt, rtt / 2),
            Some((srtt, rttvar)) => {
                let dev = srtt.abs_diff(rtt);
                (srtt * 7 / 8 + rtt / 8, rttvar * 3 / 4 + dev / 4)
            }
        });
    }

    /// The smoothed round trip (`srtt`), once a sample was taken.
    pub fn srtt(&self) -> Option<Duration> {
        self.state.map(|(srtt, _)| srtt)
    }

    /// The stall timeout for new requests: `srtt + 4 × rttvar` clamped to
    /// `min_stall_timeout ..= stall_timeout` of `config`, or `stall_timeout` before the first
    /// sample or when stalling is off ([`QueryConfig::stalling`]).
    pub fn stall_timeout(&self, config: &QueryConfig) -> Duration {
        let max = config.stall_timeout;
        match self.state {
            Some((srtt, rttvar)) if config.stalling() => {
                (srtt + rttvar * 4).clamp(config.min_stall_timeout.min(max), max)
            }
            _ => max,
        }
    }
}

/// What the caller should do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send the request to this peer (its addresses: [`Lookup::addrs`]).
    Send(PeerId),
    /// Wait for an answer or until [`Lookup::next_deadline`].
    Wait,
    /// The lookup is over; call [`Lookup::into_result`].
    Finished,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    NotContacted,
    /// In flight, not stalled: stalls at the first instant, times out at the second.
    Waiting {
        stall_at: Instant,
        deadline: Instant,
    },
    /// In flight past the stall timeout; times out at the deadline.
    Stalled(Instant),
    Succeeded,
    Failed,
}

#[derive(Clone, Debug)]
struct Candidate {
    peer: PeerId,
    addrs: Vec<Multiaddr>,
    state: State,
}

/// A peer found by a lookup, with its addresses.
pub type FoundPeer = (PeerId, Vec<Multiaddr>);

/// The outcome of a lookup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LookupResult {
    /// Up to k peers closest to the target that answered, nearest first.
    pub closest: Vec<FoundPeer>,
    /// Providers collected (GET_PROVIDERS), in order of discovery, one entry per peer.
    pub providers: Vec<PeerInfo>,
    /// Requests sent.
    pub requests: usize,
    /// Requests failed or timed out.
    pub failures: usize,
}

/// One iterative lookup.
#[derive(Clone, Debug)]
pub struct Lookup {
    target: Key,
    config: QueryConfig,
    peers: BTreeMap<Distance, Candidate>,
    index: HashMap<PeerId, Distance>,
    providers: Vec<PeerInfo>,
    stop_after_providers: Option<usize>,
    /// Requests in flight, not stalled (bounded by alpha).
    in_flight: usize,
    /// Requests in flight, stalled.
    stalled: usize,
    /// Stall timeout of requests sent from now on (module doc).
    stall_timeout: Duration,
    /// Peers whose request stalled since the last [`Lookup::take_stalled`].
    newly_stalled: Vec<PeerId>,
    requests: usize,
    failures: usize,
    finished: bool,
}

impl Lookup {
    /// A lookup for `target` starting from `seeds` (typically the table's k closest).
    pub fn new(
        target: Key,
        seeds: impl IntoIterator<Item = FoundPeer>,
        config: QueryConfig,
    ) -> Lookup {
        let stall_timeout = config.stall_timeout;
        let mut lookup = Lookup {
            target,
            config,
            peers: BTreeMap::new(),
            index: HashMap::new(),
            providers: Vec::new(),
            stop_after_providers: None,
            in_flight: 0,
            stalled: 0,
            stall_timeout,
            newly_stalled: Vec::new(),
            requests: 0,
            failures: 0,
            finished: false,
        };
        for (peer, addrs) in seeds {
            lookup.add_peer(peer, addrs);
        }
        lookup
    }

    /// Makes this a GET_PROVIDERS lookup that finishes once `n` distinct providers are known.
    pub fn stop_after_providers(mut self, n: usize) -> Lookup {
        self.stop_after_providers = Some(n);
        self
    }

    /// The target key.
    pub fn target(&self) -> &Key {
        &self.target
    }

    /// Addresses known for `peer` (from the seeds or the responses that named it).
    pub fn addrs(&self, peer: &PeerId) -> &[Multiaddr] {
        self.index
            .get(peer)
            .and_then(|d| self.peers.get(d))
            .map_or(&[], |c| c.addrs.as_slice())
    }

    fn add_peer(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if let Some(d) = self.index.get(&peer) {
            if let Some(c) = self.peers.get_mut(d) {
                for a in addrs {
                    if c.addrs.len() < crate::protocol::MAX_ADDRS_PER_PEER && !c.addrs.contains(&a)
                    {
                        c.addrs.push(a);
                    }
                }
            }
            return;
        }
        let d = Key::from_peer(&peer).distance(&self.target);
        if self.peers.len() >= MAX_LOOKUP_PEERS {
            // Drop the farthest peer not yet contacted, if it is farther than the newcomer.
            let victim = self
                .peers
                .iter()
                .rev()
                .find(|(_, c)| c.state == State::NotContacted)
                .map(|(d, c)| (*d, c.peer));
            match victim {
                Some((vd, vp)) if vd > d => {
                    self.peers.remove(&vd);
                    self.index.remove(&vp);
                }
                _ => return,
            }
        }
        self.index.insert(peer, d);
        self.peers.insert(
            d,
            Candidate {
                peer,
                addrs,
                state: State::NotContacted,
            },
        );
    }

    fn enough_providers(&self) -> bool {
        self.stop_after_providers
            .is_some_and(|n| self.providers.len() >= n)
    }

    /// Sets the stall timeout of requests sent from now on (typically
    /// [`RttEstimator::stall_timeout`]); requests in flight keep theirs. Ignored when stalling
    /// is off ([`QueryConfig::stalling`]); 0 is read as 1 ms.
    pub fn set_stall_timeout(&mut self, timeout: Duration) {
        self.stall_timeout = timeout.max(Duration::from_millis(1));
    }

    /// Stalls the request to `peer` now, before its stall timeout: the caller knows it will
    /// not be answered soon (its first try failed and it is tried again). As any stalled
    /// request it stops counting toward `alpha` and holding up the end, may still answer
    /// until `request_timeout`, and is reported by [`Lookup::take_stalled`]. Ignored unless
    /// the request is in flight and not stalled yet.
    pub fn stall_now(&mut self, peer: &PeerId) {
        let Some(c) = self.index.get(peer).and_then(|d| self.peers.get_mut(d)) else {
            return;
        };
        if let State::Waiting { deadline, .. } = c.state {
            c.state = State::Stalled(deadline);
            self.in_flight -= 1;
            self.stalled += 1;
            self.newly_stalled.push(c.peer);
        }
    }

    /// The peers whose request stalled since the last call, in no particular order (each
    /// request stalls at most once).
    pub fn take_stalled(&mut self) -> Vec<PeerId> {
        std::mem::take(&mut self.newly_stalled)
    }

    /// The time after which a request sent at `now` is stalled.
    fn stall_at(&self, now: Instant) -> Instant {
        if self.config.stalling() {
            now + self.stall_timeout.min(self.config.request_timeout)
        } else {
            now + self.config.request_timeout
        }
    }

    /// The next step at time `now`; requests past their timeout are marked failed, and those
    /// past their stall timeout stalled, first.
    pub fn next_action(&mut self, now: Instant) -> Action {
        if self.finished {
            return Action::Finished;
        }
        for c in self.peers.values_mut() {
            match c.state {
                State::Waiting { deadline, .. } if deadline <= now => {
                    c.state = State::Failed;
                    self.in_flight -= 1;
                    self.failures += 1;
                }
                State::Waiting { stall_at, deadline } if stall_at <= now => {
                    c.state = State::Stalled(deadline);
                    self.in_flight -= 1;
                    self.stalled += 1;
                    self.newly_stalled.push(c.peer);
                }
                State::Stalled(deadline) if deadline <= now => {
                    c.state = State::Failed;
                    self.stalled -= 1;
                    self.failures += 1;
                }
                _ => {}
            }
        }
        if self.enough_providers() {
            self.finished = true;
            return Action::Finished;
        }
        let k = self.config.k.max(1);
        let alpha = self.config.alpha.max(1);
        let mut succeeded = 0;
        let mut waiting_before = false;
        let stall_at = self.stall_at(now);
        let deadline = now + self.config.request_timeout;
        for c in self.peers.values_mut() {
            match c.state {
                // Skipped: neither counted nor waited for (module doc, "Termination").
                State::Failed | State::Stalled(_) => {}
                State::Succeeded => {
                    succeeded += 1;
                    if succeeded >= k {
                        if waiting_before {
                            return Action::Wait;
                        }
                        self.finished = true;
                        return Action::Finished;
                    }
                }
                State::Waiting { .. } => waiting_before = true,
                State::NotContacted => {
                    if self.in_flight < alpha {
                        c.state = State::Waiting { stall_at, deadline };
                        self.in_flight += 1;
                        self.requests += 1;
                        return Action::Send(c.peer);
                    }
                    return Action::Wait;
                }
            }
        }
        // Nobody left to ask and fewer than k answers: wait for the requests in flight,
        // stalled ones included (the only source of more peers), unless only stalled ones are
        // left and β peers answered (module doc, "Termination").
        let dry = self.in_flight == 0 && succeeded >= BETA && self.stop_after_providers.is_none();
        if self.in_flight + self.stalled > 0 && !dry {
            Action::Wait
        } else {
            self.finished = true;
            Action::Finished
        }
    }

    /// The earliest instant at which a request in flight stalls or times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|c| match c.state {
                State::Waiting { stall_at, .. } => Some(stall_at),
                State::Stalled(d) => Some(d),
                _ => None,
            })
            .min()
    }

    /// Requests in flight that are stalled.
    pub fn stalled(&self) -> usize {
        self.stalled
    }

    fn take_waiting(&mut self, peer: &PeerId) -> Option<&mut Candidate> {
        let d = self.index.get(peer)?;
        let c = self.peers.get_mut(d)?;
        match c.state {
            State::Waiting { .. } => self.in_flight -= 1,
            State::Stalled(_) => self.stalled -= 1,
            _ => return None,
        }
        Some(c)
    }

    /// `peer` answered with `closer_peers` (and, for GET_PROVIDERS, `providers`). Ignored
    /// unless a request to `peer` is in flight, stalled or not (e.g. it timed out already).
    /// Returns whether the answer was taken; answers after [`Action::Finished`] are not.
    pub fn on_success(
        &mut self,
        peer: &PeerId,
        closer_peers: Vec<PeerInfo>,
        providers: Vec<PeerInfo>,
    ) -> bool {
        if self.finished {
            return false;
        }
        let Some(c) = self.take_waiting(peer) else {
            return false;
        };
        c.state = State::Succeeded;
        for p in closer_peers {
            self.add_peer(p.peer, p.addrs);
        }
        for p in providers {
            if self.providers.len() >= MAX_LOOKUP_PROVIDERS {
                break;
            }
            if let Some(known) = self.providers.iter_mut().find(|q| q.peer == p.peer) {
                if known.addrs.is_empty() {
                    known.addrs = p.addrs;
                }
            } else {
                self.providers.push(p);
            }
        }
        true
    }

    /// The request to `peer` failed (error, reset, invalid answer). Ignored unless in flight
    /// (stalled or not).
    pub fn on_failure(&mut self, peer: &PeerId) {
        if let Some(c) = self.take_waiting(peer) {
            c.state = State::Failed;
            self.failures += 1;
        }
    }

    /// Providers collected so far.
    pub fn providers(&self) -> &[PeerInfo] {
        &self.providers
    }

    /// The result: the k closest peers that answered, and the providers.
    pub fn into_result(self) -> LookupResult {
        let k = self.config.k.max(1);
        LookupResult {
            closest: self
                .peers
                .into_values()
                .filter(|c| c.state == State::Succeeded)
                .take(k)
                .map(|c| (c.peer, c.addrs))
                .collect(),
            providers: self.providers,
            requests: self.requests,
            failures: self.failures,
        }
    }
}

#[cfg(test)]
mod tests;
