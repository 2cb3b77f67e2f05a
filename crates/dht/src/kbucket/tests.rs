//! Unit tests of `kbucket`.

use super::*;

fn peer(i: u32) -> PeerId {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_be_bytes());
    seed[31] = 0xaa;
    libp2p::identity::Keypair::ed25519_from_bytes(seed)
        .expect("32 bytes")
        .public()
        .to_peer_id()
}

fn addr(i: u32) -> Vec<Multiaddr> {
    let b = i.to_be_bytes();
    vec![
        format!("/ip4/{}.{}.{}.{}/tcp/4001", 10 + b[1], b[2], b[3], 1)
            .parse()
            .unwrap(),
    ]
}

fn open_config() -> TableConfig {
    TableConfig {
        diversity: None,
        ..TableConfig::default()
    }
}

#[test]
fn key_of_spec_example() {
    // ../shared/specs/kad-dht.md, "Kademlia Keyspace" example.
    let peer: PeerId = "12D3KooWLU2znyJMtDiHArqAGbZn8CgUGp92kxDBtefftEEaHSZS"
        .parse()
        .unwrap();
    let key = Key::from_peer(&peer);
    let hex: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "e43d28f0996557c0d5571d75c62a57a59d7ac1d30a51ecedcdb9d5e4afa56100"
    );
}

#[test]
fn content_key_of_spec_example() {
    // "Content Kademlia Identifier" example.
    let mh: Vec<u8> = (0..34)
        .map(|i| {
            u8::from_str_radix(
                &"1220e536c7f88d731f374dccb568aff6f56e838a19382e488039b1ca8ad2599e82fe"
                    [2 * i..2 * i + 2],
                16,
            )
            .unwrap()
        })
        .collect();
    let hex: String = Key::from_bytes(&mh)
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        hex,
        "d623250f3f660ab4c3a53d3c97b3f6a0194c548053488d093520206248253bcb"
    );
}

#[test]
fn distance_is_symmetric_and_zero_on_self() {
    let a = Key::from_bytes(b"a");
    let b = Key::from_bytes(b"b");
    assert_eq!(a.distance(&b), b.distance(&a));
    assert_eq!(a.distance(&a).leading_zeros(), 256);
    assert!(a.distance(&a) < a.distance(&b));
}

#[test]
fn only_verified_peers_enter_and_candidates_do_not() {
    let head = peer(0);
    let mut t = RoutingTable::new(&[head], open_config());
    let now = Instant::now();
    assert!(t.add_candidate(peer(1), addr(1), now));
    assert!(!t.contains(&peer(1)), "a candidate is not in the table");
    assert!(t.closest(&Key::from_peer(&peer(1)), 20, None).is_empty());
    assert_eq!(t.take_candidates(10), vec![(peer(1), addr(1))]);
    assert!(matches!(
        t.insert_verified(peer(1), addr(1), now),
        InsertOutcome::Inserted { .. }
    ));
    assert!(t.contains(&peer(1)));
    assert!(
        !t.add_candidate(peer(1), addr(1), now),
        "already in the table"
    );
    assert_eq!(
        t.insert_verified(head, addr(0), now),
        InsertOutcome::Rejected(RejectReason::OwnHead)
    );
    assert_eq!(
        t.insert_verified(peer(2), vec![], now),
        InsertOutcome::Rejected(RejectReason::NoAddresses)
    );
}

#[test]
fn candidate_set_is_bounded_and_failed_candidates_wait() {
    let mut t = RoutingTable::new(
        &[peer(0)],
        TableConfig {
            max_candidates: 3,
            ..open_config()
        },
    );
    let now = Instant::now();
    let added = (1..10)
        .filter(|i| t.add_candidate(peer(*i), addr(*i), now))
        .count();
    assert_eq!(added, 3);
    assert_eq!(t.candidate_count(), 3);
    let taken = t.take_candidates(1);
    t.candidate_failed(taken[0].0, now);
    assert!(!t.add_candidate(taken[0].0, addr(1), now + Duration::from_secs(1)));
    assert!(t.add_candidate(taken[0].0, addr(1), now + Duration::from_secs(601)));
}

#[test]
fn refused_verified_peers_are_not_candidates_again_for_a_while() {
    let mut config = open_config();
    config.k = 1;
    let mut t = RoutingTable::new(&[peer(0)], config);
    let now = Instant::now();
    // Fill one bucket, then offer two more peers of that same bucket.
    let b = t.bucket_of(&Key::from_peer(&peer(1)));
    let same: Vec<PeerId> = (2..2000)
        .map(peer)
        .filter(|p| t.bucket_of(&Key::from_peer(p)) == b)
        .take(2)
        .collect();
    assert_eq!(same.len(), 2, "found two more peers of one bucket");
    assert!(matches!(
        t.insert_verified(peer(1), addr(1), now),
        InsertOutcome::Inserted { .. }
    ));
    assert!(matches!(
        t.insert_verified(same[0], addr(2), now),
        InsertOutcome::ProbeOldest { .. }
    ));
    assert_eq!(
        t.insert_verified(same[1], addr(3), now),
        InsertOutcome::Rejected(RejectReason::BucketFull)
    );
    assert!(!t.add_candidate(same[1], addr(3), now + Duration::from_secs(1)));
    // The oldest answers its probe: the waiting newcomer is dropped and not re-probed soon.
    assert_eq!(
        t.insert_verified(peer(1), addr(1), now),
        InsertOutcome::Updated
    );
    assert!(!t.add_candidate(same[0], addr(2), now + Duration::from_secs(1)));
    let later = now + t.config().candidate_retry_after + Duration::from_secs(1);
    assert!(t.add_candidate(same[0], addr(2), later));
    assert!(t.add_candidate(same[1], addr(3), later));
}

#[test]
fn failures_remove_after_the_configured_count() {
    let mut t = RoutingTable::new(&[peer(0)], open_config());
    let now = Instant::now();
    t.insert_verified(peer(1), addr(1), now);
    assert_eq!(t.record_failure(&peer(1), now), FailureOutcome::Counted);
    // An answer resets the count.
    t.insert_verified(peer(1), vec![], now);
    assert_eq!(t.record_failure(&peer(1), now), FailureOutcome::Counted);
    assert_eq!(
        t.record_failure(&peer(1), now),
        FailureOutcome::Removed { replaced_by: None }
    );
    assert!(!t.contains(&peer(1)));

    let mut t1 = RoutingTable::new(
        &[peer(0)],
        TableConfig {
            max_failures: 1,
            ..open_config()
        },
    );
    t1.insert_verified(peer(1), addr(1), now);
    assert_eq!(
        t1.record_failure(&peer(1), now),
        FailureOutcome::Removed { replaced_by: None }
    );
}

/// Peers that all fall in one bucket of `head`.
fn same_bucket_peers(t: &RoutingTable, n: usize) -> Vec<PeerId> {
    let mut by_bucket: HashMap<BucketId, Vec<PeerId>> = HashMap::new();
    for i in 1..10_000 {
        let p = peer(i);
        let b = t.bucket_of(&Key::from_peer(&p));
        let v = by_bucket.entry(b).or_default();
        v.push(p);
        if v.len() == n {
            return v.clone();
        }
    }
    panic!("no bucket with {n} peers");
}

#[test]
fn full_bucket_keeps_the_senior_peer_unless_it_fails_its_probe() {
    let mut t = RoutingTable::new(
        &[peer(0)],
        TableConfig {
            k: 3,
            ..open_config()
        },
    );
    let ps = same_bucket_peers(&t, 5);
    let t0 = Instant::now();
    for (i, p) in ps[..3].iter().enumerate() {
        let out = t.insert_verified(*p, addr(i as u32), t0 + Duration::from_secs(i as u64));
        assert!(matches!(out, InsertOutcome::Inserted { .. }));
    }
    let later = t0 + Duration::from_secs(10);
    // Newcomer: the oldest (ps[0]) is to be probed; nobody is replaced yet.
    let out = t.insert_verified(ps[3], addr(3), later);
    assert_eq!(
        out,
        InsertOutcome::ProbeOldest {
            oldest: ps[0],
            addrs: addr(0)
        }
    );
    assert!(!t.contains(&ps[3]));
    // A second newcomer while the probe is pending is refused.
    assert_eq!(
        t.insert_verified(ps[4], addr(4), later),
        InsertOutcome::Rejected(RejectReason::BucketFull)
    );
    // The oldest answers: it stays, the newcomer is dropped.
    assert_eq!(
        t.insert_verified(ps[0], vec![], later),
        InsertOutcome::Updated
    );
    assert!(t.contains(&ps[0]) && !t.contains(&ps[3]));
    // Next newcomer: now ps[1] is the oldest; it fails its probe and is replaced.
    let out = t.insert_verified(ps[3], addr(3), later);
    assert_eq!(
        out,
        InsertOutcome::ProbeOldest {
            oldest: ps[1],
            addrs: addr(1)
        }
    );
    assert_eq!(
        t.evict(&ps[1], later),
        FailureOutcome::Removed {
            replaced_by: Some(ps[3])
        }
    );
    assert!(t.contains(&ps[3]) && !t.contains(&ps[1]));
    assert_eq!(t.len(), 3);
}

#[test]
fn diversity_limits_per_table_and_per_bucket() {
    let mut t = RoutingTable::new(&[peer(0)], TableConfig::default());
    let now = Instant::now();
    let same_group =
        |i: u32| -> Vec<Multiaddr> { vec![format!("/ip4/7.7.{i}.1/tcp/1").parse().unwrap()] };
    // Per bucket: the 3rd peer of one group in one bucket is refused.
    let ps = same_bucket_peers(&t, 3);
    assert!(matches!(
        t.insert_verified(ps[0], same_group(1), now),
        InsertOutcome::Inserted { .. }
    ));
    assert!(matches!(
        t.insert_verified(ps[1], same_group(2), now),
        InsertOutcome::Inserted { .. }
    ));
    assert_eq!(
        t.insert_verified(ps[2], same_group(3), now),
        InsertOutcome::Rejected(RejectReason::Diversity)
    );
    // Per table: a 3rd in another bucket is fine, a 4th is refused.
    let b0 = t.bucket_of(&Key::from_peer(&ps[0]));
    let others: Vec<PeerId> = (1..1000)
        .map(peer)
        .filter(|p| t.bucket_of(&Key::from_peer(p)) != b0)
        .take(2)
        .collect();
    assert!(matches!(
        t.insert_verified(others[0], same_group(4), now),
        InsertOutcome::Inserted { .. }
    ));
    assert_eq!(
        t.insert_verified(others[1], same_group(5), now),
        InsertOutcome::Rejected(RejectReason::Diversity)
    );
    // A peer with one good and one over-represented address is refused too.
    let mut mixed = addr(77);
    mixed.extend(same_group(6));
    assert_eq!(
        t.insert_verified(others[1], mixed, now),
        InsertOutcome::Rejected(RejectReason::Diversity)
    );
    // Removing one frees a slot.
    t.evict(&others[0], now);
    assert!(matches!(
        t.insert_verified(others[1], same_group(7), now),
        InsertOutcome::Inserted { .. }
    ));
}

#[test]
fn closest_is_exact_and_excludes() {
    let mut t = RoutingTable::new(
        &[peer(0)],
        TableConfig {
            k: 1000,
            ..open_config()
        },
    );
    let now = Instant::now();
    let ps: Vec<PeerId> = (1..200).map(peer).collect();
    for (i, p) in ps.iter().enumerate() {
        t.insert_verified(*p, addr(i as u32), now);
    }
    let target = Key::from_bytes(b"some content");
    let mut expected: Vec<PeerId> = ps.clone();
    expected.sort_by_key(|p| Key::from_peer(p).distance(&target));
    let got: Vec<PeerId> = t
        .closest(&target, 20, None)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(got, expected[..20]);
    let got: Vec<PeerId> = t
        .closest(&target, 20, Some(&expected[0]))
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(got, expected[1..21]);
}

#[test]
fn buckets_belong_to_the_closest_head() {
    let heads = [peer(0), peer(1), peer(2)];
    let t = RoutingTable::new(&heads, open_config());
    for i in 10..200 {
        let k = Key::from_peer(&peer(i));
        let b = t.bucket_of(&k);
        let closest = heads
            .iter()
            .min_by_key(|h| Key::from_peer(h).distance(&k))
            .unwrap();
        assert_eq!(heads[b.head], *closest);
        assert_eq!(
            u32::from(b.cpl),
            Key::from_peer(closest).common_prefix_len(&k)
        );
    }
}

#[test]
fn refresh_targets_fall_in_stale_buckets() {
    let mut t = RoutingTable::new(&[peer(0), peer(1)], open_config());
    let t0 = Instant::now();
    for i in 2..60 {
        t.insert_verified(peer(i), addr(i), t0);
    }
    let stale = t.stale_buckets(t0);
    assert!(!stale.is_empty());
    for b in &stale {
        if b.cpl > 12 {
            continue;
        }
        let key = t
            .random_key_in_bucket(*b, 1 << 16, &mut entropy)
            .expect("found");
        assert!(
            PeerId::from_bytes(&key).is_ok(),
            "refresh keys are peer IDs"
        );
        assert_eq!(t.bucket_of(&Key::from_bytes(&key)), *b);
        t.mark_refreshed(&Key::from_bytes(&key), t0);
    }
    let still: Vec<_> = t
        .stale_buckets(t0)
        .into_iter()
        .filter(|b| b.cpl <= 12)
        .collect();
    assert!(still.is_empty(), "{still:?}");
    // After the interval they are stale again.
    assert!(!t.stale_buckets(t0 + Duration::from_secs(601)).is_empty());
}

#[test]
fn liveness_due_after_interval() {
    let mut t = RoutingTable::new(&[peer(0)], open_config());
    let t0 = Instant::now();
    t.insert_verified(peer(1), addr(1), t0);
    assert!(t.due_for_liveness(t0 + Duration::from_secs(10)).is_empty());
    let due = t.due_for_liveness(t0 + Duration::from_secs(301));
    assert_eq!(due, vec![(peer(1), addr(1))]);
}

#[test]
fn suspects_are_skipped_by_lookups_until_they_answer_or_expire() {
    let mut t = RoutingTable::new(&[peer(0)], open_config());
    let t0 = Instant::now();
    for i in 1..=5 {
        t.insert_verified(peer(i), addr(i), t0);
    }
    let target = Key::from_bytes(b"suspects");
    let all: Vec<PeerId> = t
        .closest(&target, 5, None)
        .into_iter()
        .map(|p| p.0)
        .collect();
    let seeds = |t: &RoutingTable, now| -> Vec<PeerId> {
        t.closest_for_lookup(&target, 3, now)
            .into_iter()
            .map(|p| p.0)
            .collect()
    };
    assert_eq!(seeds(&t, t0), all[..3]);
    // The closest stalls: lookups skip it, but it stays in the table (and in answers to
    // others) until its request times out.
    t.mark_suspect(all[0], t0);
    assert!(t.is_suspect(&all[0], t0));
    assert!(t.contains(&all[0]));
    assert_eq!(t.closest(&target, 1, None)[0].0, all[0]);
    assert_eq!(seeds(&t, t0), all[1..4]);
    // A peer only named by others (not in the table) can be a suspect too.
    t.mark_suspect(peer(99), t0);
    assert!(t.is_suspect(&peer(99), t0));
    // Any answer clears the mark.
    t.insert_verified(all[0], vec![], t0 + Duration::from_secs(1));
    assert!(!t.is_suspect(&all[0], t0 + Duration::from_secs(1)));
    assert_eq!(seeds(&t, t0 + Duration::from_secs(1)), all[..3]);
    // Without an answer the mark lapses after `suspect_for` (60 s).
    let minute = Duration::from_secs(60);
    assert!(t.is_suspect(&peer(99), t0 + minute - Duration::from_secs(1)));
    assert!(!t.is_suspect(&peer(99), t0 + minute));
    // Heads are never suspects.
    t.mark_suspect(peer(0), t0);
    assert!(!t.is_suspect(&peer(0), t0));
}

#[test]
fn a_lookup_starts_from_suspects_when_nobody_else_is_left() {
    let mut t = RoutingTable::new(&[peer(0)], open_config());
    let t0 = Instant::now();
    t.insert_verified(peer(1), addr(1), t0);
    t.insert_verified(peer(2), addr(2), t0);
    t.mark_suspect(peer(1), t0);
    let target = Key::from_bytes(b"x");
    let only = t.closest_for_lookup(&target, 20, t0);
    assert_eq!(only, vec![(peer(2), addr(2))]);
    t.mark_suspect(peer(2), t0);
    assert_eq!(
        t.closest_for_lookup(&target, 20, t0),
        t.closest(&target, 20, None)
    );
    assert_eq!(t.closest_for_lookup(&target, 20, t0).len(), 2);
}

#[test]
fn suspect_memory_is_bounded_and_forgets_the_oldest_first() {
    let config = TableConfig {
        max_candidates: 2, // 8 suspects at most
        ..open_config()
    };
    let mut t = RoutingTable::new(&[peer(0)], config);
    let t0 = Instant::now();
    for i in 1..=20 {
        t.mark_suspect(peer(i), t0 + Duration::from_millis(u64::from(i)));
        assert!(t.suspect_count() <= 8);
    }
    let now = t0 + Duration::from_secs(1);
    assert!(!t.is_suspect(&peer(1), now), "the oldest were forgotten");
    for i in 13..=20 {
        assert!(t.is_suspect(&peer(i), now), "the newest {i} are kept");
    }
    // When full, the expired marks (13 to 15 here) go first, and no live one.
    let later = t0 + Duration::from_secs(60) + Duration::from_millis(15);
    t.mark_suspect(peer(21), later);
    assert_eq!(t.suspect_count(), 6);
    for i in 16..=21 {
        assert!(t.is_suspect(&peer(i), later), "{i} kept");
    }
}
