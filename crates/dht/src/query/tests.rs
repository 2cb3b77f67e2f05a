//! Unit tests of `query`.

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
        min_stall_timeout: Duration::from_millis(50),
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

#[test]
fn rtt_estimator_follows_rfc_6298_and_is_clamped() {
    let config = QueryConfig::default(); // stall timeouts 50 ms ..= 1 s
    let ms = Duration::from_millis;
    let mut e = RttEstimator::default();
    assert_eq!(e.srtt(), None);
    assert_eq!(
        e.stall_timeout(&config),
        ms(1000),
        "no sample yet: the longest"
    );
    // First sample: srtt = r, rttvar = r / 2, so srtt + 4 rttvar = 3 r.
    e.observe(ms(100));
    assert_eq!(e.srtt(), Some(ms(100)));
    assert_eq!(e.stall_timeout(&config), ms(300));
    // rttvar = 3/4 × 50 + 1/4 × 100 = 62.5; srtt = 7/8 × 100 + 1/8 × 200 = 112.5.
    e.observe(ms(200));
    assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
    assert_eq!(e.stall_timeout(&config), Duration::from_micros(362_500));
    // Fast, steady answers: down to the floor, never below.
    for _ in 0..100 {
        e.observe(ms(2));
    }
    assert_eq!(e.stall_timeout(&config), ms(50));
    // Slow answers: up to the ceiling, never above.
    for _ in 0..10 {
        e.observe(ms(5000));
    }
    assert_eq!(e.stall_timeout(&config), ms(1000));
    // Stalling off: the configured value whatever the samples.
    let off = QueryConfig {
        stall_timeout: Duration::ZERO,
        ..config.clone()
    };
    assert_eq!(e.stall_timeout(&off), Duration::ZERO);
    // A floor above the ceiling is read as the ceiling.
    let odd = QueryConfig {
        min_stall_timeout: ms(5000),
        ..config
    };
    let mut fast = RttEstimator::default();
    fast.observe(ms(1));
    assert_eq!(fast.stall_timeout(&odd), ms(1000));
}

#[test]
fn a_new_stall_timeout_applies_to_requests_sent_after_it() {
    let target = Key::from_bytes(b"adaptive");
    let sorted = sorted_peers(6, &target);
    let mut lookup = Lookup::new(
        target,
        sorted.iter().map(|p| (*p, vec![])),
        stall_config(2, 3),
    );
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    assert_eq!(sends(&mut lookup, t0), sorted[..2]);
    lookup.set_stall_timeout(ms(40));
    assert!(lookup.on_success(&sorted[1], vec![], vec![]));
    assert_eq!(sends(&mut lookup, t0), sorted[2..3]);
    // 2 stalls after 40 ms; 0, sent before the change, keeps its 1 s.
    assert_eq!(lookup.next_deadline(), Some(t0 + ms(40)));
    assert_eq!(sends(&mut lookup, t0 + ms(40)), sorted[3..4]);
    assert_eq!(lookup.take_stalled(), vec![sorted[2]]);
    assert!(lookup.take_stalled().is_empty(), "reported once");
    assert_eq!(lookup.stalled(), 1);
    assert_eq!(lookup.next_deadline(), Some(t0 + ms(80)));
    // 3 and 4 stall too; 0 still counts toward alpha until its own 1 s, so one request at
    // a time goes out.
    assert_eq!(sends(&mut lookup, t0 + ms(80)), sorted[4..5]);
    assert_eq!(lookup.take_stalled(), vec![sorted[3]]);
    assert_eq!(sends(&mut lookup, t0 + ms(120)), sorted[5..6]);
    assert_eq!(lookup.take_stalled(), vec![sorted[4]]);
    assert_eq!(lookup.next_deadline(), Some(t0 + ms(160)));
    assert_eq!(lookup.next_action(t0 + ms(999)), Action::Wait);
    assert_eq!(lookup.take_stalled(), vec![sorted[5]]);
    assert_eq!(lookup.next_action(t0 + ms(1000)), Action::Wait);
    assert_eq!(lookup.take_stalled(), vec![sorted[0]]);
    assert_eq!(lookup.stalled(), 5);
}

#[test]
fn an_adaptive_stall_timeout_is_ignored_when_stalling_is_off() {
    let target = Key::from_bytes(b"adaptive off");
    let sorted = sorted_peers(2, &target);
    let config = QueryConfig {
        stall_timeout: Duration::ZERO,
        ..stall_config(1, 2)
    };
    let mut lookup = Lookup::new(target, sorted.iter().map(|p| (*p, vec![])), config);
    lookup.set_stall_timeout(Duration::from_millis(40));
    let t0 = Instant::now();
    assert_eq!(sends(&mut lookup, t0), sorted[..1]);
    assert_eq!(lookup.next_deadline(), Some(t0 + Duration::from_secs(10)));
    assert_eq!(sends(&mut lookup, t0 + Duration::from_secs(5)), vec![]);
    assert!(lookup.take_stalled().is_empty());
}

#[test]
fn silent_peers_cost_about_an_adaptive_stall_timeout_each_round() {
    // As silent_peers_cost_a_stall_timeout_not_request_timeouts, with the stall timeout an
    // estimator gives for the simulated 10 ms answers (30 ms; floor 20 ms here).
    let all = peers(300);
    let target = Key::from_bytes(b"silent");
    let silent: HashSet<PeerId> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 5 < 3)
        .map(|(_, p)| *p)
        .collect();
    let seeds: Vec<PeerId> = all.iter().step_by(7).take(20).copied().collect();
    let mut rtt = RttEstimator::default();
    rtt.observe(Duration::from_millis(10));
    let config = QueryConfig {
        min_stall_timeout: Duration::from_millis(20),
        ..QueryConfig::default()
    };
    let adaptive = QueryConfig {
        stall_timeout: rtt.stall_timeout(&config),
        ..config.clone()
    };
    assert_eq!(adaptive.stall_timeout, Duration::from_millis(30));
    let (fixed, took_fixed) = run_timed(&all, &silent, &seeds, target, config);
    let (fast, took) = run_timed(&all, &silent, &seeds, target, adaptive);
    eprintln!("60 % silent: {took:?} with a 30 ms stall timeout, {took_fixed:?} with 1 s");
    assert_eq!(
        fast.closest, fixed.closest,
        "the same k closest responsive peers"
    );
    assert!(took < Duration::from_millis(400), "took {took:?}");
    assert!(took_fixed >= Duration::from_secs(1));
}

#[test]
fn with_nobody_left_but_stalled_peers_a_lookup_ends_once_beta_answered() {
    let target = Key::from_bytes(b"beta");
    let sorted = sorted_peers(5, &target);
    let start = |n: usize, providers: Option<usize>| {
        let mut lookup = Lookup::new(
            target,
            sorted[..n].iter().map(|p| (*p, vec![])),
            stall_config(10, 20),
        );
        if let Some(p) = providers {
            lookup = lookup.stop_after_providers(p);
        }
        let t0 = Instant::now();
        assert_eq!(sends(&mut lookup, t0).len(), n);
        (lookup, t0)
    };
    // 3 = β answer, 2 stall: nobody else to ask, the lookup ends at the stall.
    let (mut lookup, t0) = start(5, None);
    for p in &sorted[2..5] {
        assert!(lookup.on_success(p, vec![], vec![]));
    }
    assert_eq!(
        lookup.next_action(t0 + Duration::from_millis(999)),
        Action::Wait
    );
    assert_eq!(
        lookup.next_action(t0 + Duration::from_secs(1)),
        Action::Finished
    );
    assert_eq!(lookup.into_result().closest.len(), 3);
    // 2 answers only: the stalled requests are waited for until their timeout.
    let (mut lookup, t0) = start(4, None);
    for p in &sorted[2..4] {
        assert!(lookup.on_success(p, vec![], vec![]));
    }
    assert_eq!(
        lookup.next_action(t0 + Duration::from_secs(1)),
        Action::Wait
    );
    assert_eq!(lookup.next_deadline(), Some(t0 + Duration::from_secs(10)));
    assert_eq!(
        lookup.next_action(t0 + Duration::from_secs(10)),
        Action::Finished
    );
    // A GET_PROVIDERS still short of providers waits too: a late answer may hold them.
    let (mut lookup, t0) = start(5, Some(1));
    for p in &sorted[2..5] {
        assert!(lookup.on_success(p, vec![], vec![]));
    }
    assert_eq!(
        lookup.next_action(t0 + Duration::from_secs(1)),
        Action::Wait
    );
    assert!(lookup.on_success(&sorted[0], vec![], vec![info(&sorted[4])]));
    assert_eq!(
        lookup.next_action(t0 + Duration::from_secs(2)),
        Action::Finished
    );
}

#[test]
fn a_request_stalled_at_once_frees_its_slot_and_may_still_answer() {
    let target = Key::from_bytes(b"stall now");
    let sorted = sorted_peers(4, &target);
    let mut lookup = Lookup::new(
        target,
        sorted.iter().map(|p| (*p, vec![])),
        stall_config(1, 2),
    );
    let t0 = Instant::now();
    assert_eq!(sends(&mut lookup, t0), sorted[..1]);
    // Its first try was reset; the retry is under way.
    lookup.stall_now(&sorted[0]);
    assert_eq!(lookup.stalled(), 1);
    assert_eq!(lookup.take_stalled(), vec![sorted[0]]);
    assert_eq!(
        sends(&mut lookup, t0),
        sorted[1..2],
        "its slot is free at once"
    );
    // Only requests in flight and not yet stalled are affected.
    lookup.stall_now(&sorted[0]);
    lookup.stall_now(&sorted[3]);
    assert_eq!(lookup.stalled(), 1);
    assert!(lookup.take_stalled().is_empty());
    // The retry succeeds: the answer is taken.
    assert!(lookup.on_success(&sorted[0], vec![], vec![]));
    assert!(lookup.on_success(&sorted[1], vec![], vec![]));
    assert_eq!(lookup.next_action(t0), Action::Finished);
    let got: Vec<PeerId> = lookup
        .into_result()
        .closest
        .into_iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(got, sorted[..2]);
}
