use super::*;
use crate::protocol::{WantlistEntry, decode_message};
use multihash_codetable::{Code, MultihashDigest};
use proptest::prelude::*;

fn cid(i: u8) -> Cid {
    Cid::new_v1(0x55, Code::Sha2_256.digest(&[i]))
}

fn v0(i: u8) -> Cid {
    Cid::new_v0(Code::Sha2_256.digest(&[i])).unwrap()
}

fn want(cid: Cid, priority: i32, want_type: WantType, sdh: bool) -> WantlistEntry {
    WantlistEntry {
        cid,
        priority,
        cancel: false,
        want_type,
        send_dont_have: sdh,
    }
}

fn cancel(cid: Cid) -> WantlistEntry {
    WantlistEntry {
        cid,
        priority: 0,
        cancel: true,
        want_type: WantType::Block,
        send_dont_have: false,
    }
}

fn msg(entries: Vec<WantlistEntry>, full: bool) -> Message {
    Message {
        wantlist: entries,
        full,
        ..Default::default()
    }
}

fn decode(out: &Outgoing) -> Message {
    let body = futures::executor::block_on(crate::protocol::read_frame(
        &mut futures::io::Cursor::new(&out.frame),
        MAX_MESSAGE_SIZE,
    ))
    .unwrap()
    .unwrap();
    decode_message(&body).unwrap()
}

#[test]
fn answers_follow_the_rules() {
    let mut engine = Engine::new(EngineConfig::default());
    let peer = PeerId::random();
    let m = msg(
        vec![
            want(cid(1), 1, WantType::Block, true),  // present -> block
            want(cid(2), 5, WantType::Have, true),   // present -> HAVE
            want(cid(3), 3, WantType::Have, true),   // absent -> DONT_HAVE
            want(cid(4), 4, WantType::Block, false), // absent, no sdh -> nothing
            want(cid(5), 2, WantType::Block, true),  // error -> nothing
        ],
        false,
    );
    engine.receive(peer, ProtocolVersion::V1_2_0, &m);
    let batch = engine.next_batch().unwrap();
    let order: Vec<Cid> = batch.wants.iter().map(|w| w.cid).collect();
    assert_eq!(order, vec![cid(2), cid(4), cid(3), cid(5), cid(1)]);
    assert!(
        engine.next_batch().is_none(),
        "one batch per peer at a time"
    );
    let results = batch
        .wants
        .iter()
        .map(|w| match w.cid {
            c if c == cid(1) => Lookup::Block(Bytes::from_static(&[1])),
            c if c == cid(2) => Lookup::Present,
            c if c == cid(5) => Lookup::Failed,
            _ => Lookup::Absent,
        })
        .collect();
    let out = engine.complete_batch(batch, results);
    assert_eq!(out.len(), 1);
    let m = decode(&out[0]);
    assert_eq!(m.payload.len(), 1);
    assert_eq!(
        m.payload[0].prefix.to_cid(&m.payload[0].data).unwrap(),
        cid(1)
    );
    assert_eq!(m.block_presences.len(), 2);
    assert_eq!(m.block_presences[0].cid, cid(2));
    assert_eq!(m.block_presences[0].presence, PresenceType::Have);
    assert_eq!(m.block_presences[1].cid, cid(3));
    assert_eq!(m.block_presences[1].presence, PresenceType::DontHave);
    assert_eq!(out[0].counts.blocks, 1);
    assert_eq!(engine.counters().wants_failed, 1);
    // Every want was removed once handled; the peer waits only for the write.
    assert!(engine.pending(&peer).is_empty());
    engine.message_done(peer, out[0].epoch, out[0].frame.len());
    assert_eq!(engine.peer_count(), 0);
}

#[test]
fn old_versions_get_blocks_only() {
    let mut engine = Engine::new(EngineConfig::default());
    let peer = PeerId::random();
    engine.receive(
        peer,
        ProtocolVersion::V1_0_0,
        &msg(
            vec![
                want(v0(1), 1, WantType::Have, true),
                want(cid(2), 1, WantType::Block, false),
                want(v0(3), 1, WantType::Block, true),
            ],
            false,
        ),
    );
    assert_eq!(
        engine.counters().wants_dropped,
        1,
        "CIDv1 is not possible in 1.0.0"
    );
    let p = engine.pending(&peer);
    assert_eq!(p[&v0(1)], (WantType::Block, 1, false));
    let batch = engine.next_batch().unwrap();
    let results = vec![Lookup::Block(Bytes::from_static(b"x")), Lookup::Absent];
    let out = engine.complete_batch(batch, results);
    let m = decode(&out[0]);
    assert_eq!(m.blocks, vec![Bytes::from_static(b"x")]);
    assert!(m.payload.is_empty() && m.block_presences.is_empty());
}

#[test]
fn cancel_during_lookup_voids_answer() {
    let mut engine = Engine::new(EngineConfig::default());
    let peer = PeerId::random();
    engine.receive(
        peer,
        ProtocolVersion::V1_2_0,
        &msg(
            vec![
                want(cid(1), 1, WantType::Block, true),
                want(cid(2), 1, WantType::Block, true),
            ],
            false,
        ),
    );
    let batch = engine.next_batch().unwrap();
    engine.receive(
        peer,
        ProtocolVersion::V1_2_0,
        &msg(vec![cancel(cid(1))], false),
    );
    let out = engine.complete_batch(
        batch,
        vec![
            Lookup::Block(Bytes::from_static(b"1")),
            Lookup::Block(Bytes::from_static(b"2")),
        ],
    );
    let m = decode(&out[0]);
    assert_eq!(m.payload.len(), 1);
    assert_eq!(m.payload[0].data, Bytes::from_static(b"2"));
    assert_eq!(engine.counters().answers_cancelled, 1);
}

#[test]
fn full_wantlist_replaces() {
    let mut engine = Engine::new(EngineConfig::default());
    let peer = PeerId::random();
    engine.receive(
        peer,
        ProtocolVersion::V1_2_0,
        &msg(
            vec![
                want(cid(1), 1, WantType::Block, true),
                want(cid(2), 1, WantType::Block, true),
            ],
            false,
        ),
    );
    engine.receive(
        peer,
        ProtocolVersion::V1_2_0,
        &msg(vec![want(cid(3), 9, WantType::Have, false)], true),
    );
    let p = engine.pending(&peer);
    assert_eq!(p.len(), 1);
    assert_eq!(p[&cid(3)], (WantType::Have, 9, false));
    // An empty full wantlist clears everything and forgets the peer.
    engine.receive(peer, ProtocolVersion::V1_2_0, &msg(vec![], true));
    assert_eq!(engine.peer_count(), 0);
    assert!(engine.next_batch().is_none());
}

#[test]
fn have_does_not_downgrade_block() {
    let mut engine = Engine::new(EngineConfig::default());
    let peer = PeerId::random();
    engine.receive(
        peer,
        ProtocolVersion::V1_2_0,
        &msg(vec![want(cid(1), 1, WantType::Block, false)], false),
    );
    engine.receive(
        peer,
        ProtocolVersion::V1_2_0,
        &msg(vec![want(cid(1), 7, WantType::Have, true)], false),
    );
    assert_eq!(engine.pending(&peer)[&cid(1)], (WantType::Block, 1, false));
    engine.receive(
        peer,
        ProtocolVersion::V1_2_0,
        &msg(vec![want(cid(1), 7, WantType::Block, true)], false),
    );
    assert_eq!(engine.pending(&peer)[&cid(1)], (WantType::Block, 7, true));
}

#[test]
fn wantlist_is_bounded() {
    let mut engine = Engine::new(EngineConfig {
        max_wantlist_entries_per_peer: 3,
        ..EngineConfig::default()
    });
    let peer = PeerId::random();
    let entries = (0..5)
        .map(|i| want(cid(i), 1, WantType::Block, false))
        .collect();
    engine.receive(peer, ProtocolVersion::V1_2_0, &msg(entries, false));
    assert_eq!(engine.pending(&peer).len(), 3);
    assert_eq!(engine.counters().wants_dropped, 2);
}

#[test]
fn wants_over_all_peers_are_bounded_and_shed_unanswered() {
    let mut engine = Engine::new(EngineConfig {
        max_total_wants: 4,
        ..EngineConfig::default()
    });
    let (a, b) = (PeerId::random(), PeerId::random());
    let wants = |from: u8| {
        (from..from + 3)
            .map(|i| want(cid(i), 1, WantType::Block, true))
            .collect()
    };
    engine.receive(a, ProtocolVersion::V1_2_0, &msg(wants(0), false));
    engine.receive(b, ProtocolVersion::V1_2_0, &msg(wants(10), false));
    assert_eq!(engine.pending(&a).len(), 3);
    assert_eq!(
        engine.pending(&b).len(),
        1,
        "b gets what is left of the total"
    );
    assert_eq!(engine.total_wants(), 4);
    let c = engine.counters();
    assert_eq!((c.wants_shed, c.block_outcomes.shed), (2, 2));
    // A full wantlist from a replaces its wants: the total follows.
    engine.receive(a, ProtocolVersion::V1_2_0, &msg(vec![], true));
    assert_eq!(engine.total_wants(), 1);
    // Taking a batch moves wants out of the total; the shed ones were never answered.
    let batch = engine.next_batch().unwrap();
    assert_eq!(engine.total_wants(), 0);
    let n = batch.wants.len();
    let out = engine.complete_batch(batch, vec![Lookup::Absent; n]);
    assert_eq!(out.len(), 1, "one DONT_HAVE message for b's one kept want");
    assert_eq!(engine.counters().block_outcomes.not_found, 1);
}

#[test]
fn batches_shrink_to_the_peers_allowance_once_block_sizes_are_known() {
    let mut engine = Engine::new(EngineConfig::default());
    let allowance = MAX_OUTSTANDING_BYTES_PER_PEER;
    let block = Bytes::from(vec![7u8; 1024 * 1024]);
    let mut sizes = Vec::new();
    // Three peers in turn, each a new ledger, each fetching 1 MiB blocks.
    for _ in 0..3 {
        let peer = PeerId::random();
        let wants = (0..64).map(|i| want(cid(i), 1, WantType::Block, true));
        engine.receive(peer, ProtocolVersion::V1_2_0, &msg(wants.collect(), false));
        let batch = engine.next_batch().unwrap();
        sizes.push(batch.wants.len());
        let n = batch.wants.len();
        for out in engine.complete_batch(batch, vec![Lookup::Block(block.clone()); n]) {
            engine.message_done(peer, out.epoch, out.frame.len());
        }
        engine.remove_peer(&peer);
    }
    assert_eq!(sizes[0], allowance / BLOCK_SIZE_ESTIMATE, "{sizes:?}");
    // Later peers' first batches read about the allowance, not 16 MiB of 1 MiB blocks.
    assert!(
        sizes[1..]
            .iter()
            .all(|&n| n * block.len() <= allowance + block.len()),
        "{sizes:?} wants of 1 MiB against a {allowance}-byte allowance"
    );
}

#[test]
fn round_robin_between_peers() {
    let mut engine = Engine::new(EngineConfig::default());
    let (a, b) = (PeerId::random(), PeerId::random());
    // Peer a asks first, with more than one batch of wants.
    let many = (0..=MAX_WANTS_PER_BATCH as u8)
        .map(|i| want(cid(i), 1, WantType::Have, false))
        .collect();
    engine.receive(a, ProtocolVersion::V1_2_0, &msg(many, false));
    engine.receive(
        b,
        ProtocolVersion::V1_2_0,
        &msg(vec![want(cid(200), 1, WantType::Have, false)], false),
    );
    let first = engine.next_batch().unwrap();
    assert_eq!(first.peer, a);
    assert_eq!(first.wants.len(), MAX_WANTS_PER_BATCH);
    let second = engine.next_batch().unwrap();
    assert_eq!(second.peer, b);
    assert!(engine.next_batch().is_none());
    let n = first.wants.len();
    assert!(
        engine
            .complete_batch(first, vec![Lookup::Absent; n])
            .is_empty()
    );
    let third = engine.next_batch().unwrap();
    assert_eq!(third.peer, a);
    assert_eq!(third.wants.len(), 1);
}

#[test]
fn budget_and_splitting() {
    let max_frame = 1000;
    let mut engine = Engine::new(EngineConfig {
        max_outstanding_bytes_per_peer: 2000,
        max_frame_size: max_frame,
        ..EngineConfig::default()
    });
    let peer = PeerId::random();
    let entries = (0..10)
        .map(|i| want(cid(i), 10 - i32::from(i), WantType::Block, false))
        .collect();
    engine.receive(peer, ProtocolVersion::V1_2_0, &msg(entries, false));
    let batch = engine.next_batch().unwrap();
    assert_eq!(
        batch.wants.len(),
        1,
        "a 2000-byte budget reserves one block"
    );
    let batch_cid = batch.wants[0].cid;
    assert_eq!(batch_cid, cid(0), "highest priority first");
    let out = engine.complete_batch(batch, vec![Lookup::Block(Bytes::from(vec![0u8; 2500]))]);
    assert!(out.is_empty(), "a block over the frame size is not sent");
    assert_eq!(engine.counters().blocks_oversized, 1);

    // Fill past the budget: messages stay within the frame size, then the peer waits.
    let mut outs = Vec::new();
    while let Some(batch) = engine.next_batch() {
        let n = batch.wants.len();
        outs.extend(
            engine.complete_batch(batch, vec![Lookup::Block(Bytes::from(vec![1u8; 600])); n]),
        );
    }
    assert!(outs.len() >= 4, "over the budget stops new batches");
    assert!(outs.iter().all(|o| o.frame.len() <= max_frame));
    assert!(engine.outstanding(&peer) >= 2000);
    assert!(engine.next_batch().is_none());
    for o in &outs {
        engine.message_done(peer, o.epoch, o.frame.len());
    }
    assert!(engine.next_batch().is_some(), "budget released");
}

// ---- property test against a reference model ----

#[derive(Clone, Debug)]
enum Op {
    Receive {
        peer: usize,
        full: bool,
        entries: Vec<(u8, i32, bool, bool, bool)>,
    },
    Batch,
    Complete {
        idx: usize,
        outcome: u8,
        /// Answer only the first half of the batch's wants (the batch goes on).
        part: bool,
    },
    Sent {
        idx: usize,
    },
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..3, any::<bool>(), proptest::collection::vec((0u8..12, -2i32..3, any::<bool>(), any::<bool>(), any::<bool>()), 0..8))
            .prop_map(|(peer, full, entries)| Op::Receive { peer, full: full && entries.len() % 3 == 0, entries }),
        2 => Just(Op::Batch),
        2 => (any::<usize>(), any::<u8>(), any::<bool>()).prop_map(|(idx, outcome, part)| Op::Complete { idx, outcome, part }),
        1 => any::<usize>().prop_map(|idx| Op::Sent { idx }),
    ]
}

/// The bytes whose CID is `cid` (one of `cid(0..12)`), so payload CIDs can be checked.
fn block_of(target: &Cid) -> Bytes {
    let i = (0u8..12).find(|i| cid(*i) == *target).expect("a test CID");
    Bytes::from(vec![i])
}

#[derive(Default, Clone)]
struct ModelPeer {
    pending: HashMap<Cid, (WantType, i32, bool)>,
    in_flight: HashMap<Cid, (WantType, bool)>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn engine_matches_model(ops in proptest::collection::vec(arb_op(), 1..60)) {
        const BOUND: usize = 5;
        let mut engine = Engine::new(EngineConfig {
            max_wantlist_entries_per_peer: BOUND,
            max_outstanding_bytes_per_peer: 64 * 1024,
            max_frame_size: 4096,
            ..EngineConfig::default()
        });
        let peers = [PeerId::random(), PeerId::random(), PeerId::random()];
        let mut model: HashMap<PeerId, ModelPeer> = HashMap::new();
        let mut batches: Vec<Batch> = Vec::new();
        let mut unsent: Vec<Outgoing> = Vec::new();
        for op in ops {
            match op {
                Op::Receive { peer, full, entries } => {
                    let peer = peers[peer];
                    let m = model.entry(peer).or_default();
                    let entries: Vec<WantlistEntry> = entries.into_iter().map(|(c, prio, cancel, have, sdh)| WantlistEntry {
                        cid: cid(c), priority: prio, cancel,
                        want_type: if have { WantType::Have } else { WantType::Block },
                        send_dont_have: sdh,
                    }).collect();
                    if full {
                        let kept: HashSet<Cid> = entries.iter().filter(|e| !e.cancel).map(|e| e.cid).collect();
                        m.pending.clear();
                        for (c, w) in m.in_flight.iter_mut() { if !kept.contains(c) { w.1 = true; } }
                    }
                    for e in &entries {
                        if e.cancel {
                            m.pending.remove(&e.cid);
                            if let Some(w) = m.in_flight.get_mut(&e.cid) { w.1 = true; }
                            continue;
                        }
                        if let Some(&(t, cancelled)) = m.in_flight.get(&e.cid)
                            && !cancelled && !(t == WantType::Have && e.want_type == WantType::Block) { continue; }
                        match m.pending.get(&e.cid) {
                            Some(&(WantType::Block, _, _)) if e.want_type == WantType::Have => continue,
                            Some(_) => {}
                            None if m.pending.len() >= BOUND => continue,
                            None => {}
                        }
                        m.pending.insert(e.cid, (e.want_type, e.priority, e.send_dont_have));
                    }
                    engine.receive(peer, ProtocolVersion::V1_2_0, &msg(entries, full));
                }
                Op::Batch => {
                    if let Some(batch) = engine.next_batch() {
                        let m = model.get_mut(&batch.peer).expect("batch for a peer with wants");
                        prop_assert!(m.in_flight.is_empty(), "one batch per peer");
                        let mut last: Option<i32> = None;
                        for w in &batch.wants {
                            let (t, prio, sdh) = m.pending.remove(&w.cid).expect("batched want was pending");
                            prop_assert_eq!((t, sdh), (w.want_type, w.send_dont_have));
                            prop_assert!(last.is_none_or(|l| l >= prio), "priority order");
                            last = Some(prio);
                            m.in_flight.insert(w.cid, (t, false));
                        }
                        prop_assert!(!batch.wants.is_empty());
                        batches.push(batch);
                    }
                }
                Op::Complete { idx, outcome, part } => {
                    if batches.is_empty() { continue; }
                    let mut batch = batches.remove(idx % batches.len());
                    let peer = batch.peer;
                    // A part answers the first half and leaves the rest of the batch.
                    let rest = if part && batch.wants.len() > 1 {
                        let half = batch.wants.len() / 2;
                        Some(Batch { peer, id: batch.id, wants: batch.wants.split_off(half) })
                    } else {
                        None
                    };
                    let results: Vec<Lookup> = batch.wants.iter().enumerate().map(|(i, w)| {
                        match (outcome as usize + i) % 3 {
                            0 => Lookup::Failed,
                            1 => Lookup::Absent,
                            _ => if w.want_type == WantType::Have { Lookup::Present } else { Lookup::Block(block_of(&w.cid)) },
                        }
                    }).collect();
                    let m = model.get_mut(&peer).unwrap();
                    let mut expected_blocks = HashSet::new();
                    let mut expected_haves = HashSet::new();
                    let mut expected_dont = HashSet::new();
                    for (w, r) in batch.wants.iter().zip(&results) {
                        // An answered want leaves the batch.
                        if m.in_flight.remove(&w.cid).expect("answered once").1 { continue; }
                        match r {
                            Lookup::Block(_) => { expected_blocks.insert(w.cid); }
                            Lookup::Present => { expected_haves.insert(w.cid); }
                            Lookup::Absent if w.send_dont_have => { expected_dont.insert(w.cid); }
                            _ => {}
                        }
                    }
                    let out = match rest {
                        Some(rest) => {
                            let answers = batch.wants.into_iter().zip(results).collect();
                            batches.push(rest);
                            engine.complete_part(peer, batch.id, answers, false)
                        }
                        None => {
                            prop_assert!(m.in_flight.is_empty(), "the last part answers the rest");
                            engine.complete_batch(batch, results)
                        }
                    };
                    let (mut blocks, mut haves, mut dont) = (HashSet::new(), HashSet::new(), HashSet::new());
                    for o in &out {
                        prop_assert!(o.frame.len() <= 4096);
                        let d = decode(o);
                        for b in &d.payload { blocks.insert(b.prefix.to_cid(&b.data).unwrap()); }
                        for p in &d.block_presences {
                            match p.presence { PresenceType::Have => haves.insert(p.cid), PresenceType::DontHave => dont.insert(p.cid) };
                        }
                    }
                    prop_assert_eq!(blocks, expected_blocks);
                    prop_assert_eq!(haves, expected_haves);
                    prop_assert_eq!(dont, expected_dont);
                    unsent.extend(out);
                }
                Op::Sent { idx } => {
                    if unsent.is_empty() { continue; }
                    let o = unsent.remove(idx % unsent.len());
                    engine.message_done(o.peer, o.epoch, o.frame.len());
                }
            }
            for peer in &peers {
                let expected = model.get(peer).map(|m| m.pending.clone()).unwrap_or_default();
                let actual = engine.pending(peer);
                prop_assert!(actual.len() <= BOUND);
                prop_assert_eq!(actual, expected);
            }
            let kept: usize = peers.iter().map(|p| engine.pending(p).len()).sum();
            prop_assert_eq!(engine.total_wants(), kept);
        }
        // Drain: every want is eventually batched and every state released.
        loop {
            let mut progressed = false;
            while let Some(batch) = engine.next_batch() {
                progressed = true;
                let n = batch.wants.len();
                unsent.extend(engine.complete_batch(batch, vec![Lookup::Absent; n]));
            }
            if let Some(b) = batches.pop() {
                progressed = true;
                let n = b.wants.len();
                unsent.extend(engine.complete_batch(b, vec![Lookup::Absent; n]));
            }
            if let Some(o) = unsent.pop() {
                progressed = true;
                engine.message_done(o.peer, o.epoch, o.frame.len());
            }
            if !progressed {
                break;
            }
        }
        prop_assert_eq!(engine.peer_count(), 0, "all state released");
    }
}
