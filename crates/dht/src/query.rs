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
//! unanswered after [`QueryConfig::stall_timeout`] (default 1 s, below `request_timeout`) is
//! *stalled*. It stays in flight until `request_timeout` and an answer before then is taken as
//! usual, but it no longer counts toward `alpha`, so at most `alpha` non-stalled requests are
//! in flight and a lookup goes on past silent peers instead of waiting for their timeouts.
//!
//! Termination: walking the peers nearest first and skipping those that failed or are
//! stalled, when the first `k` of them have all answered (stricter than the spec's β = 3, as
//! ClosestPeersIter); a non-stalled request to a peer closer than the `k`-th answered one is
//! waited for (until it answers, fails or stalls). So a stalled peer closer than the `k`-th
//! answered peer does not hold the lookup up: it is given up on once the `k` closest answered
//! peers are known and no non-stalled request closer than them is pending. This is what
//! removes the tail of several request timeouts in a row behind silent peers; the price is
//! that a slow but honest peer (slower than `stall_timeout`) may be missing from the result
//! although it is among the `k` closest. The lookup also ends when nobody is left to ask and
//! nothing is in flight: while fewer than `k` peers answered and only stalled requests are
//! left, it waits for them (they are the only source of more peers). GET_PROVIDERS with a
//! limit also ends once enough providers are known. Peers that failed, timed out or are still
//! stalled are never in the result (only peers that answered are). The peers kept are bounded
//! by [`MAX_LOOKUP_PEERS`]: the farthest not-yet-contacted ones are dropped.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};

use crate::kbucket::{Distance, K, Key};
use crate::protocol::PeerInfo;

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
    /// A request unanswered for this long is stalled: it no longer counts toward `alpha` nor
    /// holds up the end of the lookup, but may still answer until `request_timeout` (module
    /// doc). Default 1 s. 0 or at least `request_timeout` switches stalling off.
    pub stall_timeout: Duration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            alpha: 10,
            k: K,
            request_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(1),
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
        let mut lookup = Lookup {
            target,
            config,
            peers: BTreeMap::new(),
            index: HashMap::new(),
            providers: Vec::new(),
            stop_after_providers: None,
            in_flight: 0,
            stalled: 0,
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

    /// The time after which a request sent at `now` is stalled.
    fn stall_at(&self, now: Instant) -> Instant {
        let timeout = self.config.request_timeout;
        let stall = self.config.stall_timeout;
        if stall.is_zero() || stall >= timeout {
            now + timeout
        } else {
            now + stall
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
        // stalled ones included (the only source of more peers).
        if self.in_flight + self.stalled > 0 {
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
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn peers(n: u32) -> Vec<PeerId> {
        (0..n)
            .map(|i| {
                let mut seed = [7u8; 32];
                seed[..4].copy_from_slice(&i.to_be_bytes());
                libp2p::identity::Keypair::ed25519_from_bytes(seed)
                    .unwrap()
                    .public()
                    .to_peer_id()
            })
            .collect()
    }

    fn info(p: &PeerId) -> PeerInfo {
        PeerInfo::new(*p, vec!["/ip4/1.2.3.4/tcp/1".parse().unwrap()])
    }

    /// Simulated network: every peer knows every other peer and answers with its k closest
    /// to the target, except `bad` peers, which fail.
    fn run(
        all: &[PeerId],
        bad: &HashSet<PeerId>,
        seeds: &[PeerId],
        target: Key,
        config: QueryConfig,
    ) -> LookupResult {
        let mut lookup = Lookup::new(target, seeds.iter().map(|p| (*p, vec![])), config.clone());
        let now = Instant::now();
        let mut pending = Vec::new();
        loop {
            match lookup.next_action(now) {
                Action::Send(p) => {
                    assert!(pending.len() < config.alpha, "alpha respected");
                    pending.push(p);
                }
                Action::Wait => {
                    let p = pending.remove(0);
                    if bad.contains(&p) {
                        lookup.on_failure(&p);
                    } else {
                        let mut others: Vec<PeerId> =
                            all.iter().filter(|q| **q != p).copied().collect();
                        others.sort_by_key(|q| Key::from_peer(q).distance(&target));
                        // Honest peers know the k closest honest peers and a few bad ones.
                        let mut closer: Vec<PeerInfo> = others
                            .iter()
                            .filter(|q| !bad.contains(q))
                            .take(config.k)
                            .map(info)
                            .collect();
                        closer.extend(others.iter().filter(|q| bad.contains(q)).take(5).map(info));
                        assert!(lookup.on_success(&p, closer, vec![]));
                    }
                }
                Action::Finished => break,
            }
        }
        lookup.into_result()
    }

    #[test]
    fn finds_the_true_k_closest() {
        let all = peers(300);
        let target = Key::from_bytes(b"target");
        let mut expected = all.clone();
        expected.sort_by_key(|q| Key::from_peer(q).distance(&target));
        let result = run(
            &all,
            &HashSet::new(),
            &all[..3],
            target,
            QueryConfig::default(),
        );
        let got: Vec<PeerId> = result.closest.iter().map(|(p, _)| *p).collect();
        assert_eq!(got, expected[..20]);
    }

    #[test]
    fn failed_peers_are_never_in_the_result() {
        let all = peers(300);
        let target = Key::from_bytes(b"target 2");
        let mut sorted = all.clone();
        sorted.sort_by_key(|q| Key::from_peer(q).distance(&target));
        // 60 % of peers fail, including most of the closest.
        let bad: HashSet<PeerId> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 5 < 3)
            .map(|(_, p)| *p)
            .collect();
        let seeds: Vec<PeerId> = all
            .iter()
            .filter(|p| !bad.contains(p))
            .take(3)
            .copied()
            .collect();
        let result = run(&all, &bad, &seeds, target, QueryConfig::default());
        let got: Vec<PeerId> = result.closest.iter().map(|(p, _)| *p).collect();
        let expected: Vec<PeerId> = sorted
            .iter()
            .filter(|p| !bad.contains(p))
            .take(20)
            .copied()
            .collect();
        assert_eq!(got, expected);
        assert!(result.failures > 0);
    }

    #[test]
    fn timeouts_fail_requests_and_late_answers_are_ignored() {
        let all = peers(5);
        let config = QueryConfig {
            request_timeout: Duration::from_secs(10),
            // Stalling off: this test is about the full request timeout.
            stall_timeout: Duration::ZERO,
            ..QueryConfig::default()
        };
        let mut lookup = Lookup::new(
            Key::from_bytes(b"t"),
            all.iter().map(|p| (*p, vec![])),
            config,
        );
        let t0 = Instant::now();
        let mut sent = Vec::new();
        while let Action::Send(p) = lookup.next_action(t0) {
            sent.push(p);
        }
        assert_eq!(sent.len(), 5);
        assert_eq!(lookup.next_deadline(), Some(t0 + Duration::from_secs(10)));
        assert!(lookup.on_success(&sent[0], vec![], vec![]));
        // Everyone else times out.
        assert_eq!(
            lookup.next_action(t0 + Duration::from_secs(11)),
            Action::Finished
        );
        assert!(
            !lookup.on_success(&sent[1], vec![], vec![]),
            "late answer ignored"
        );
        let result = lookup.into_result();
        assert_eq!(result.closest.len(), 1);
        assert_eq!(result.closest[0].0, sent[0]);
        assert_eq!(result.failures, 4);
    }

    fn sorted_peers(n: u32, target: &Key) -> Vec<PeerId> {
        let mut all = peers(n);
        all.sort_by_key(|q| Key::from_peer(q).distance(target));
        all
    }

    fn stall_config(alpha: usize, k: usize) -> QueryConfig {
        QueryConfig {
            alpha,
            k,
            request_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(1),
        }
    }

    fn sends(lookup: &mut Lookup, now: Instant) -> Vec<PeerId> {
        let mut sent = Vec::new();
        loop {
            match lookup.next_action(now) {
                Action::Send(p) => sent.push(p),
                Action::Wait => return sent,
                Action::Finished => panic!("finished early"),
            }
        }
    }

    /// Simulated network with a clock: honest peers answer after 10 ms with the k closest
    /// honest peers and 5 silent ones; silent peers never answer. Returns the result and the
    /// time the lookup took.
    fn run_timed(
        all: &[PeerId],
        silent: &HashSet<PeerId>,
        seeds: &[PeerId],
        target: Key,
        config: QueryConfig,
    ) -> (LookupResult, Duration) {
        let mut lookup = Lookup::new(target, seeds.iter().map(|p| (*p, vec![])), config.clone());
        let t0 = Instant::now();
        let mut now = t0;
        let mut answers: Vec<(Instant, PeerId)> = Vec::new();
        loop {
            match lookup.next_action(now) {
                Action::Send(p) => {
                    if !silent.contains(&p) {
                        answers.push((now + Duration::from_millis(10), p));
                    }
                }
                Action::Wait => {
                    answers.sort();
                    let next_answer = answers.first().map(|(t, _)| *t);
                    let wake = match (next_answer, lookup.next_deadline()) {
                        (Some(a), Some(d)) => a.min(d),
                        (a, d) => a.or(d).expect("something to wait for"),
                    };
                    now = now.max(wake);
                    while answers.first().is_some_and(|(t, _)| *t <= now) {
                        let (_, p) = answers.remove(0);
                        let mut others: Vec<PeerId> =
                            all.iter().filter(|q| **q != p).copied().collect();
                        others.sort_by_key(|q| Key::from_peer(q).distance(&target));
                        let mut closer: Vec<PeerInfo> = others
                            .iter()
                            .filter(|q| !silent.contains(q))
                            .take(config.k)
                            .map(info)
                            .collect();
                        closer.extend(
                            others
                                .iter()
                                .filter(|q| silent.contains(q))
                                .take(5)
                                .map(info),
                        );
                        lookup.on_success(&p, closer, vec![]);
                    }
                }
                Action::Finished => break,
            }
        }
        (lookup.into_result(), now - t0)
    }

    #[test]
    fn silent_peers_cost_a_stall_timeout_not_request_timeouts() {
        let all = peers(300);
        let target = Key::from_bytes(b"silent");
        let mut sorted = all.clone();
        sorted.sort_by_key(|q| Key::from_peer(q).distance(&target));
        let silent: HashSet<PeerId> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 5 < 3)
            .map(|(_, p)| *p)
            .collect();
        // Seeds: as a routing table that still holds the silent peers.
        let seeds: Vec<PeerId> = all.iter().step_by(7).take(20).copied().collect();
        let expected: Vec<PeerId> = sorted
            .iter()
            .filter(|p| !silent.contains(p))
            .take(20)
            .copied()
            .collect();
        let config = QueryConfig {
            request_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(1),
            ..QueryConfig::default()
        };
        let (with_stall, took) = run_timed(&all, &silent, &seeds, target, config.clone());
        let got: Vec<PeerId> = with_stall.closest.iter().map(|(p, _)| *p).collect();
        assert_eq!(got, expected);
        assert!(took < Duration::from_secs(4), "took {took:?}");
        let off = QueryConfig {
            stall_timeout: Duration::ZERO,
            ..config
        };
        let (without, took_off) = run_timed(&all, &silent, &seeds, target, off);
        eprintln!("60 % silent: {took:?} with stalling, {took_off:?} without");
        let got: Vec<PeerId> = without.closest.iter().map(|(p, _)| *p).collect();
        assert_eq!(got, expected);
        assert!(took_off >= Duration::from_secs(10), "took {took_off:?}");
    }

    #[test]
    fn stalled_requests_do_not_count_toward_alpha() {
        let target = Key::from_bytes(b"stall");
        let sorted = sorted_peers(12, &target);
        let mut lookup = Lookup::new(
            target,
            sorted.iter().map(|p| (*p, vec![])),
            stall_config(2, 3),
        );
        let t0 = Instant::now();
        // The two closest are silent.
        assert_eq!(sends(&mut lookup, t0), sorted[..2]);
        assert_eq!(lookup.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(
            lookup.next_action(t0 + Duration::from_millis(999)),
            Action::Wait
        );
        // After the stall timeout, two more go out although the first two are in flight.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(sends(&mut lookup, t1), sorted[2..4]);
        assert_eq!(lookup.stalled(), 2);
        for p in &sorted[2..4] {
            assert!(lookup.on_success(p, vec![], vec![]));
        }
        assert_eq!(sends(&mut lookup, t1), sorted[4..6]);
        assert!(lookup.on_success(&sorted[4], vec![], vec![]));
        // k = 3 answered, the stalled 0 and 1 are closer, 5 (not stalled) is farther: done,
        // long before the silent peers' 10 s timeout.
        assert_eq!(lookup.next_action(t1), Action::Finished);
        let result = lookup.into_result();
        let got: Vec<PeerId> = result.closest.iter().map(|(p, _)| *p).collect();
        assert_eq!(got, sorted[2..5], "stalled peers are not in the result");
        assert_eq!(result.requests, 6);
        assert_eq!(result.failures, 0);
    }

    #[test]
    fn finishes_without_waiting_for_stalled_peers_once_k_closer_answered() {
        let target = Key::from_bytes(b"stall 2");
        let sorted = sorted_peers(6, &target);
        let mut lookup = Lookup::new(
            target,
            sorted.iter().map(|p| (*p, vec![])),
            stall_config(10, 3),
        );
        let t0 = Instant::now();
        assert_eq!(sends(&mut lookup, t0).len(), 6);
        // All but the closest answer at once; the closest is silent.
        for p in &sorted[1..] {
            assert!(lookup.on_success(p, vec![], vec![]));
        }
        // Not stalled yet: still waited for (it may answer with closer peers).
        assert_eq!(
            lookup.next_action(t0 + Duration::from_millis(500)),
            Action::Wait
        );
        assert_eq!(lookup.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(
            lookup.next_action(t0 + Duration::from_secs(1)),
            Action::Finished
        );
        let got: Vec<PeerId> = lookup
            .into_result()
            .closest
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(got, sorted[1..4]);
    }

    #[test]
    fn a_non_stalled_closer_request_is_still_waited_for() {
        let target = Key::from_bytes(b"stall 3");
        let sorted = sorted_peers(6, &target);
        let mut lookup = Lookup::new(
            target,
            sorted[..1].iter().map(|p| (*p, vec![])),
            stall_config(10, 2),
        );
        let t0 = Instant::now();
        assert_eq!(sends(&mut lookup, t0), sorted[..1]);
        // 0 stalls; it is the only one known, so the lookup waits for it.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(lookup.next_action(t1), Action::Wait);
        assert_eq!(lookup.next_deadline(), Some(t0 + Duration::from_secs(10)));
        // Its late answer is taken and names 1..6.
        let t2 = t0 + Duration::from_secs(3);
        assert!(lookup.on_success(&sorted[0], sorted[1..].iter().map(info).collect(), vec![]));
        assert_eq!(sends(&mut lookup, t2).len(), 5);
        // 3 and 4 answer; 1 and 2 (closer than them, not stalled) are waited for.
        assert!(lookup.on_success(&sorted[3], vec![], vec![]));
        assert!(lookup.on_success(&sorted[4], vec![], vec![]));
        assert_eq!(
            lookup.next_action(t2 + Duration::from_millis(500)),
            Action::Wait
        );
        assert!(lookup.on_success(&sorted[2], vec![], vec![]));
        // 0 and 2 answered, 1 is pending and not stalled: wait.
        assert_eq!(
            lookup.next_action(t2 + Duration::from_millis(600)),
            Action::Wait
        );
        // 1 stalls: 0 and 2 are the k = 2 closest that answered.
        assert_eq!(
            lookup.next_action(t2 + Duration::from_secs(1)),
            Action::Finished
        );
        let got: Vec<PeerId> = lookup
            .into_result()
            .closest
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(got, vec![sorted[0], sorted[2]]);
    }

    #[test]
    fn late_answers_of_stalled_peers_are_taken_until_the_timeout() {
        let target = Key::from_bytes(b"stall 4");
        let sorted = sorted_peers(4, &target);
        let mut lookup = Lookup::new(
            target,
            sorted.iter().map(|p| (*p, vec![])),
            stall_config(1, 3),
        );
        let t0 = Instant::now();
        assert_eq!(sends(&mut lookup, t0), sorted[..1]);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(sends(&mut lookup, t1), sorted[1..2]);
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(sends(&mut lookup, t2), sorted[2..3]);
        // 0 answers late (stalled): taken; 1 never answers; 2 answers in time.
        assert!(lookup.on_success(&sorted[0], vec![], vec![]));
        assert_eq!(lookup.stalled(), 1);
        assert!(lookup.on_success(&sorted[2], vec![], vec![]));
        assert_eq!(sends(&mut lookup, t2), sorted[3..4]);
        assert!(lookup.on_success(&sorted[3], vec![], vec![]));
        // 1 is stalled and skipped: 0, 2, 3 are the k = 3 closest that answered.
        assert_eq!(lookup.next_action(t2), Action::Finished);
        assert!(
            !lookup.on_success(&sorted[1], vec![], vec![]),
            "an answer after the end is ignored"
        );
        let got: Vec<PeerId> = lookup
            .into_result()
            .closest
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(got, vec![sorted[0], sorted[2], sorted[3]]);
    }

    #[test]
    fn stalled_requests_are_waited_for_when_nobody_else_is_left() {
        let target = Key::from_bytes(b"stall 5");
        let sorted = sorted_peers(2, &target);
        let mut lookup = Lookup::new(
            target,
            sorted.iter().map(|p| (*p, vec![])),
            stall_config(10, 20),
        );
        let t0 = Instant::now();
        assert_eq!(sends(&mut lookup, t0).len(), 2);
        assert_eq!(
            lookup.next_action(t0 + Duration::from_secs(5)),
            Action::Wait
        );
        assert_eq!(lookup.stalled(), 2);
        assert_eq!(lookup.next_deadline(), Some(t0 + Duration::from_secs(10)));
        // A stalled request times out like any other; its answer is then ignored.
        assert_eq!(
            lookup.next_action(t0 + Duration::from_secs(10)),
            Action::Finished
        );
        assert!(!lookup.on_success(&sorted[0], vec![], vec![]));
        let result = lookup.into_result();
        assert!(result.closest.is_empty());
        assert_eq!(result.failures, 2);
    }

    #[test]
    fn stalling_is_off_when_not_below_the_request_timeout() {
        for stall in [
            Duration::ZERO,
            Duration::from_secs(10),
            Duration::from_secs(20),
        ] {
            let target = Key::from_bytes(b"stall 6");
            let sorted = sorted_peers(3, &target);
            let config = QueryConfig {
                stall_timeout: stall,
                ..stall_config(1, 3)
            };
            let mut lookup = Lookup::new(target, sorted.iter().map(|p| (*p, vec![])), config);
            let t0 = Instant::now();
            assert_eq!(sends(&mut lookup, t0), sorted[..1]);
            assert_eq!(lookup.next_deadline(), Some(t0 + Duration::from_secs(10)));
            assert_eq!(
                lookup.next_action(t0 + Duration::from_secs(9)),
                Action::Wait
            );
            assert_eq!(lookup.stalled(), 0);
        }
    }

    #[test]
    fn does_not_finish_while_a_closer_peer_is_pending() {
        let all = peers(40);
        let target = Key::from_bytes(b"x");
        let mut sorted = all.clone();
        sorted.sort_by_key(|q| Key::from_peer(q).distance(&target));
        let config = QueryConfig {
            alpha: 40,
            k: 3,
            ..QueryConfig::default()
        };
        let mut lookup = Lookup::new(target, sorted[..5].iter().map(|p| (*p, vec![])), config);
        let now = Instant::now();
        for _ in 0..5 {
            assert!(matches!(lookup.next_action(now), Action::Send(_)));
        }
        // Peers 1..5 answer; the closest (0) is still pending.
        for p in &sorted[1..5] {
            lookup.on_success(p, vec![], vec![]);
        }
        assert_eq!(lookup.next_action(now), Action::Wait);
        lookup.on_success(&sorted[0], vec![], vec![]);
        assert_eq!(lookup.next_action(now), Action::Finished);
        let got: Vec<PeerId> = lookup
            .into_result()
            .closest
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(got, sorted[..3]);
    }

    #[test]
    fn provider_lookup_stops_after_enough_providers() {
        let all = peers(30);
        let mut lookup = Lookup::new(
            Key::from_bytes(b"p"),
            all.iter().map(|p| (*p, vec![])),
            QueryConfig::default(),
        )
        .stop_after_providers(2);
        let now = Instant::now();
        let Action::Send(first) = lookup.next_action(now) else {
            panic!("expected a request");
        };
        lookup.on_success(&first, vec![], vec![info(&all[20]), info(&all[20])]);
        let Action::Send(second) = lookup.next_action(now) else {
            panic!("one distinct provider only: the lookup goes on");
        };
        lookup.on_success(&second, vec![], vec![info(&all[21])]);
        assert_eq!(lookup.next_action(now), Action::Finished);
        let providers: Vec<PeerId> = lookup
            .into_result()
            .providers
            .into_iter()
            .map(|p| p.peer)
            .collect();
        assert_eq!(providers, vec![all[20], all[21]]);
    }

    #[test]
    fn empty_lookup_finishes() {
        let mut lookup = Lookup::new(Key::from_bytes(b"e"), Vec::new(), QueryConfig::default());
        assert_eq!(lookup.next_action(Instant::now()), Action::Finished);
        assert!(lookup.into_result().closest.is_empty());
    }

    #[test]
    fn tracked_peers_are_bounded() {
        let all = peers(MAX_LOOKUP_PEERS as u32 + 50);
        let lookup = Lookup::new(
            Key::from_bytes(b"b"),
            all.iter().map(|p| (*p, vec![])),
            QueryConfig::default(),
        );
        assert_eq!(lookup.peers.len(), MAX_LOOKUP_PEERS);
        assert_eq!(lookup.index.len(), MAX_LOOKUP_PEERS);
    }
}
