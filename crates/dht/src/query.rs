//! Sans-I/O iterative lookup (../shared/specs/kad-dht.md, "Lookup Process", "Client
//! behavior"): the state of one FIND_NODE or GET_PROVIDERS walk toward a target key.
//!
//! The caller loops on [`Lookup::next_action`]: [`Action::Send`] a request to a peer,
//! [`Action::Wait`] for an answer or for [`Lookup::next_deadline`], until
//! [`Action::Finished`]; and reports answers with [`Lookup::on_success`] and errors with
//! [`Lookup::on_failure`]. At most `alpha` requests are in flight; a request unanswered
//! after `request_timeout` counts as failed (a late answer is ignored).
//!
//! Termination: when the `k` closest peers not known to have failed have all answered (this
//! is stricter than the spec's β = 3, as libp2p-kad's ClosestPeersIter), or when nobody is left
//! to ask, or (GET_PROVIDERS with a limit) once enough providers are known. Peers that failed
//! or timed out are never in the result. The peers kept are bounded by
//! [`MAX_LOOKUP_PEERS`]: the farthest not-yet-contacted ones are dropped.

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
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            alpha: 10,
            k: K,
            request_timeout: Duration::from_secs(10),
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
    Waiting(Instant),
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
    in_flight: usize,
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

    /// The next step at time `now`; requests past their timeout are marked failed first.
    pub fn next_action(&mut self, now: Instant) -> Action {
        if self.finished {
            return Action::Finished;
        }
        for c in self.peers.values_mut() {
            if let State::Waiting(deadline) = c.state
                && deadline <= now
            {
                c.state = State::Failed;
                self.in_flight -= 1;
                self.failures += 1;
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
        for c in self.peers.values_mut() {
            match c.state {
                State::Failed => {}
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
                State::Waiting(_) => waiting_before = true,
                State::NotContacted => {
                    if self.in_flight < alpha {
                        c.state = State::Waiting(now + self.config.request_timeout);
                        self.in_flight += 1;
                        self.requests += 1;
                        return Action::Send(c.peer);
                    }
                    return Action::Wait;
                }
            }
        }
        if self.in_flight > 0 {
            Action::Wait
        } else {
            self.finished = true;
            Action::Finished
        }
    }

    /// The earliest timeout of a request in flight.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|c| match c.state {
                State::Waiting(d) => Some(d),
                _ => None,
            })
            .min()
    }

    fn take_waiting(&mut self, peer: &PeerId) -> Option<&mut Candidate> {
        let d = self.index.get(peer)?;
        let c = self.peers.get_mut(d)?;
        if matches!(c.state, State::Waiting(_)) {
            self.in_flight -= 1;
            Some(c)
        } else {
            None
        }
    }

    /// `peer` answered with `closer_peers` (and, for GET_PROVIDERS, `providers`). Ignored
    /// unless a request to `peer` is in flight (e.g. it timed out already). Returns whether
    /// the answer was taken.
    pub fn on_success(
        &mut self,
        peer: &PeerId,
        closer_peers: Vec<PeerInfo>,
        providers: Vec<PeerInfo>,
    ) -> bool {
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

    /// The request to `peer` failed (error, reset, invalid answer). Ignored unless in flight.
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
