//! The sans-I/O decision engine: per-peer wantlists (ledgers), the choice of what to look up
//! next, and the packing of answers into response messages (specs/bitswap-protocol.md,
//! "Interaction Pattern" of 1.0.0 and 1.2.0).
//!
//! It does no I/O and spawns nothing; the glue in `service.rs` feeds it decoded messages
//! ([`Engine::receive`]), asks for work ([`Engine::next_batch_within`]), performs the block
//! lookups and hands the results back as they come ([`Engine::complete_part`], which returns
//! framed messages at once, the last part ending the batch), and reports messages written
//! ([`Engine::message_done`]). No rule depends on time, so no clock is
//! taken.
//!
//! Rules (as boxo's server applies them):
//! - a full wantlist replaces the peer's wantlist; otherwise entries update it; a cancel removes
//!   a pending want and voids an answer being prepared;
//! - a WANT_HAVE does not downgrade a pending WANT_BLOCK for the same CID;
//! - a want is removed once it is answered (or found absent, or failed);
//! - WANT_BLOCK of a present block -> the block; WANT_HAVE of a present block -> HAVE (or the
//!   block itself when the lookup returned it, for tiny blocks); absent -> DONT_HAVE only if
//!   `send_dont_have`; a lookup error -> no answer at all (counted), so the peer asks again
//!   elsewhere or later;
//! - before 1.2.0 every want is a WANT_BLOCK without DONT_HAVE; 1.0.0 peers can only be sent
//!   CIDv0 blocks, so their CIDv1 wants are dropped (counted);
//! - a peer's wantlist holds at most `max_wantlist_entries_per_peer` wants; more are dropped
//!   (counted);
//! - peers take turns (round robin), one batch at a time each, highest priority first (oldest
//!   first among equal priorities);
//! - a peer gets a new batch only while its bytes queued for sending are under
//!   `max_outstanding_bytes_per_peer` and fewer than [`MAX_UNSENT_MESSAGES_PER_PEER`] messages
//!   are waiting.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use bytes::Bytes;
use cid::{Cid, Version};
use libp2p::PeerId;

use crate::protocol::{
    AddError, MAX_MESSAGE_SIZE, Message, PresenceType, ProtocolVersion, ResponseBuilder,
    ResponseCounts, WantType,
};

/// Default bound on one peer's wantlist, in entries; wants past it are ignored and counted.
pub const MAX_WANTLIST_ENTRIES_PER_PEER: usize = 8192;

/// Default bound on the bytes of response frames queued for one peer and not yet written. A
/// peer is given no new lookups while it is over; a peer that stops reading therefore holds at
/// most this plus one batch of lookups (at most 16 blocks, 32 MiB with 2 MiB blocks).
pub const MAX_OUTSTANDING_BYTES_PER_PEER: usize = 4 * 1024 * 1024;

/// Most wants in one batch (one round of lookups for one peer).
pub(crate) const MAX_WANTS_PER_BATCH: usize = 64;

/// Most WANT_BLOCK wants in one batch. With blocks of at most 2 MiB, one batch holds at most
/// 32 MiB of block data.
pub(crate) const MAX_BLOCK_WANTS_PER_BATCH: usize = 16;

/// Bytes of the peer's remaining allowance reserved for each WANT_BLOCK put in a batch before
/// any block was sent (a typical UnixFS leaf; the real size is unknown until the block is
/// read). Afterwards the engine uses the running mean of the blocks it sent, to any peer
/// ([`Engine::block_size_estimate`]). A batch takes WANT_BLOCKs until the reservations reach the
/// peer's remaining `max_outstanding_bytes_per_peer` (at least one), so one batch reads and
/// frames about that many bytes whatever the block size: with 1 MiB blocks 4 wants, not 16.
pub(crate) const BLOCK_SIZE_ESTIMATE: usize = 256 * 1024;

/// Most response messages waiting to be written to one peer before it gets a new batch.
pub(crate) const MAX_UNSENT_MESSAGES_PER_PEER: usize = 16;

/// A response message holding at least this many bytes of blocks takes no further block: the
/// next block starts a new message, so a peer can take (and hash) the first block of a batch
/// while the next ones are still being written, instead of after a frame of up to
/// [`MAX_MESSAGE_SIZE`]. Small blocks and presences still share a message.
pub(crate) const SOFT_MESSAGE_BLOCK_BYTES: u64 = 256 * 1024;

/// Most response messages one batch can produce (each block alone, plus one of presences).
pub(crate) const MAX_MESSAGES_PER_BATCH: usize = MAX_WANTS_PER_BATCH + 1;

/// Limits of the engine.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EngineConfig {
    /// Bound on one peer's wantlist, in entries.
    pub max_wantlist_entries_per_peer: usize,
    /// Bound on queued, unwritten response bytes per peer.
    pub max_outstanding_bytes_per_peer: usize,
    /// Largest response frame, length prefix included, in bytes.
    pub max_frame_size: usize,
    /// Bound on the wants kept over all peers together (the wantlists' share of the memory
    /// budget); new wants past it are shed unanswered.
    pub max_total_wants: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_wantlist_entries_per_peer: MAX_WANTLIST_ENTRIES_PER_PEER,
            max_outstanding_bytes_per_peer: MAX_OUTSTANDING_BYTES_PER_PEER,
            max_frame_size: MAX_MESSAGE_SIZE,
            max_total_wants: usize::MAX,
        }
    }
}

/// What became of wants of one type, by outcome (specs/bitswap-protocol.md: a want is answered
/// with the block or HAVE, with DONT_HAVE or silence when absent, or not at all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WantOutcomes {
    /// Answered with the block or HAVE.
    pub found: u64,
    /// The block is not stored (DONT_HAVE sent when asked for).
    pub not_found: u64,
    /// Dropped unanswered by a bound (per-peer wantlist, wantlists' share of the memory
    /// budget); the peer re-sends its wantlist later.
    pub shed: u64,
    /// Left unanswered because the store failed, or unanswerable (too large, or CIDv1 for a
    /// 1.0.0 peer).
    pub error: u64,
}

/// Running totals kept by the engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct EngineCounters {
    /// WANT_BLOCK entries received (as counted after the version's rules).
    pub want_blocks: u64,
    /// WANT_HAVE entries received.
    pub want_haves: u64,
    /// Cancel entries received.
    pub cancels: u64,
    /// Wants ignored: over the wantlist bound, or unanswerable in the peer's version.
    pub wants_dropped: u64,
    /// Wants left unanswered because the block store failed.
    pub wants_failed: u64,
    /// Answers discarded because the want was cancelled during its lookup.
    pub answers_cancelled: u64,
    /// Blocks too large for any message.
    pub blocks_oversized: u64,
    /// Wants shed because every peer's wants together reached `max_total_wants`.
    pub wants_shed: u64,
    /// Outcomes of WANT_BLOCK entries.
    pub block_outcomes: WantOutcomes,
    /// Outcomes of WANT_HAVE entries.
    pub have_outcomes: WantOutcomes,
}

impl EngineCounters {
    fn outcomes(&mut self, want_type: WantType) -> &mut WantOutcomes {
        match want_type {
            WantType::Block => &mut self.block_outcomes,
            WantType::Have => &mut self.have_outcomes,
        }
    }
}

/// One want taken into a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BatchWant {
    pub cid: Cid,
    pub want_type: WantType,
    pub send_dont_have: bool,
}

/// Lookups to do for one peer; answer its wants with [`Engine::complete_part`].
#[derive(Clone, Debug)]
pub(crate) struct Batch {
    pub peer: PeerId,
    pub id: u64,
    /// In priority order.
    pub wants: Vec<BatchWant>,
}

/// The result of looking up one want of a batch.
#[derive(Clone, Debug)]
pub(crate) enum Lookup {
    /// The block's bytes (for WANT_BLOCK, or a tiny block for WANT_HAVE).
    Block(Bytes),
    /// The block is stored (answer to WANT_HAVE).
    Present,
    /// The block is not stored.
    Absent,
    /// The store could not tell.
    Failed,
}

/// A framed response to write to a peer.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    pub peer: PeerId,
    /// Identifies the peer's ledger; pass it back to [`Engine::message_done`].
    pub epoch: u64,
    /// Protocol to open the stream with.
    pub version: ProtocolVersion,
    /// Length-prefixed message, at most `max_frame_size` bytes.
    pub frame: Vec<u8>,
    pub counts: ResponseCounts,
}

#[derive(Clone, Copy, Debug)]
struct Want {
    priority: i32,
    want_type: WantType,
    send_dont_have: bool,
    seq: u64,
}

#[derive(Clone, Copy, Debug)]
struct InFlightWant {
    want_type: WantType,
    cancelled: bool,
}

struct Ledger {
    epoch: u64,
    version: ProtocolVersion,
    wants: HashMap<Cid, Want>,
    /// Same wants as `wants`, in answering order.
    order: BTreeSet<(Reverse<i32>, u64, Cid)>,
    in_flight: Option<(u64, HashMap<Cid, InFlightWant>)>,
    outstanding_bytes: usize,
    unsent_messages: usize,
    /// Whether the peer is in the ready queue.
    queued: bool,
}

impl Ledger {
    fn remove_want(&mut self, cid: &Cid) -> Option<Want> {
        let want = self.wants.remove(cid)?;
        self.order.remove(&(Reverse(want.priority), want.seq, *cid));
        Some(want)
    }

    fn insert_want(&mut self, cid: Cid, want: Want) {
        self.order.insert((Reverse(want.priority), want.seq, cid));
        self.wants.insert(cid, want);
    }

    fn eligible(&self, config: &EngineConfig) -> bool {
        !self.order.is_empty()
            && self.in_flight.is_none()
            && self.outstanding_bytes < config.max_outstanding_bytes_per_peer
            && self.unsent_messages < MAX_UNSENT_MESSAGES_PER_PEER
    }

    fn idle(&self) -> bool {
        self.wants.is_empty() && self.in_flight.is_none() && self.unsent_messages == 0
    }
}

/// The decision engine. See the module documentation for its rules.
pub(crate) struct Engine {
    config: EngineConfig,
    ledgers: HashMap<PeerId, Ledger>,
    ready: VecDeque<PeerId>,
    next_id: u64,
    counters: EngineCounters,
    /// Wants kept over all ledgers (not counting those in flight).
    total_wants: usize,
    /// Expected bytes of the next block sent: [`BLOCK_SIZE_ESTIMATE`] at first, then a running
    /// mean (weight 1/4) of the blocks sent to any peer, so that a new peer's first batch is
    /// sized by what this server serves.
    block_size_estimate: usize,
}

impl Engine {
    pub(crate) fn new(config: EngineConfig) -> Self {
        Engine {
            config,
            ledgers: HashMap::new(),
            ready: VecDeque::new(),
            next_id: 0,
            counters: EngineCounters::default(),
            total_wants: 0,
            block_size_estimate: BLOCK_SIZE_ESTIMATE,
        }
    }

    pub(crate) fn counters(&self) -> EngineCounters {
        self.counters
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Applies the wantlist of `message`, received from `peer` over `version`. Other fields
    /// (blocks, presences) are not for a server and are ignored.
    pub(crate) fn receive(&mut self, peer: PeerId, version: ProtocolVersion, message: &Message) {
        if message.wantlist.is_empty() && !message.full {
            return;
        }
        let epoch = self.fresh_id();
        let max_wants = self.config.max_wantlist_entries_per_peer;
        let ledger = self.ledgers.entry(peer).or_insert_with(|| Ledger {
            epoch,
            version,
            wants: HashMap::new(),
            order: BTreeSet::new(),
            in_flight: None,
            outstanding_bytes: 0,
            unsent_messages: 0,
            queued: false,
        });
        ledger.version = version;
        let before = ledger.wants.len();
        if message.full {
            let kept: HashSet<Cid> = message
                .wantlist
                .iter()
                .filter(|e| !e.cancel)
                .map(|e| e.cid)
                .collect();
            ledger.wants.clear();
            ledger.order.clear();
            if let Some((_, in_flight)) = &mut ledger.in_flight {
                for (cid, want) in in_flight.iter_mut() {
                    if !kept.contains(cid) {
                        want.cancelled = true;
                    }
                }
            }
        }
        for entry in &message.wantlist {
            if entry.cancel {
                self.counters.cancels += 1;
                ledger.remove_want(&entry.cid);
                if let Some((_, in_flight)) = &mut ledger.in_flight
                    && let Some(want) = in_flight.get_mut(&entry.cid)
                {
                    want.cancelled = true;
                }
                continue;
            }
            let (want_type, send_dont_have) = if version.supports_presences() {
                (entry.want_type, entry.send_dont_have)
            } else {
                (WantType::Block, false)
            };
            match want_type {
                WantType::Block => self.counters.want_blocks += 1,
                WantType::Have => self.counters.want_haves += 1,
            }
            if !version.supports_payload() && entry.cid.version() != Version::V0 {
                self.counters.wants_dropped += 1;
                self.counters.outcomes(want_type).error += 1;
                continue;
            }
            // Already being answered: only an upgrade from HAVE to BLOCK needs a new want.
            if let Some((_, in_flight)) = &ledger.in_flight
                && let Some(active) = in_flight.get(&entry.cid)
                && !active.cancelled
                && !(active.want_type == WantType::Have && want_type == WantType::Block)
            {
                continue;
            }
            match ledger.wants.get(&entry.cid) {
                Some(existing)
                    if existing.want_type == WantType::Block && want_type == WantType::Have =>
                {
                    continue;
                }
                Some(_) => {
                    ledger.remove_want(&entry.cid);
                }
                None if ledger.wants.len() >= max_wants => {
                    self.counters.wants_dropped += 1;
                    self.counters.outcomes(want_type).shed += 1;
                    continue;
                }
                None if self.total_wants - before + ledger.wants.len()
                    >= self.config.max_total_wants =>
                {
                    self.counters.wants_shed += 1;
                    self.counters.outcomes(want_type).shed += 1;
                    continue;
                }
                None => {}
            }
            self.next_id += 1;
            let seq = self.next_id;
            ledger.insert_want(
                entry.cid,
                Want {
                    priority: entry.priority,
                    want_type,
                    send_dont_have,
                    seq,
                },
            );
        }
        self.total_wants = self.total_wants - before + ledger.wants.len();
        self.settle(peer);
    }

    /// Wants kept over all peers, waiting for a batch.
    pub(crate) fn total_wants(&self) -> usize {
        self.total_wants
    }

    /// Sets the bound on wants kept over all peers (see [`EngineConfig::max_total_wants`]).
    pub(crate) fn set_max_total_wants(&mut self, max: usize) {
        self.config.max_total_wants = max;
    }

    /// Whether a peer is waiting for a batch.
    pub(crate) fn has_ready_peer(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Puts the peer in the ready queue if it can take a batch, or forgets it if it is idle.
    fn settle(&mut self, peer: PeerId) {
        let Some(ledger) = self.ledgers.get_mut(&peer) else {
            return;
        };
        if ledger.idle() {
            if ledger.queued {
                self.ready.retain(|p| *p != peer);
            }
            self.ledgers.remove(&peer);
        } else if !ledger.queued && ledger.eligible(&self.config) {
            ledger.queued = true;
            self.ready.push_back(peer);
        }
    }

    /// The next batch of lookups: the next ready peer in turn, its highest-priority wants. The
    /// wants leave the wantlist; the peer gets no other batch until this one is completed.
    #[cfg(test)]
    pub(crate) fn next_batch(&mut self) -> Option<Batch> {
        self.next_batch_within(MAX_BLOCK_WANTS_PER_BATCH)
    }

    /// [`Self::next_batch`] with at most `max_block_wants` (at least 1) WANT_BLOCKs, as many
    /// blocks as the caller has memory budget for.
    pub(crate) fn next_batch_within(&mut self, max_block_wants: usize) -> Option<Batch> {
        let max_block_wants = max_block_wants.clamp(1, MAX_BLOCK_WANTS_PER_BATCH);
        while let Some(peer) = self.ready.pop_front() {
            let Some(ledger) = self.ledgers.get_mut(&peer) else {
                continue;
            };
            ledger.queued = false;
            if !ledger.eligible(&self.config) {
                continue;
            }
            let available = self
                .config
                .max_outstanding_bytes_per_peer
                .saturating_sub(ledger.outstanding_bytes);
            let mut reserved = 0usize;
            let mut block_wants = 0usize;
            let mut wants = Vec::new();
            let mut in_flight = HashMap::new();
            let before = ledger.wants.len();
            while wants.len() < MAX_WANTS_PER_BATCH {
                let Some(&(_, _, cid)) = ledger.order.first() else {
                    break;
                };
                let Some(want) = ledger.remove_want(&cid) else {
                    break;
                };
                if want.want_type == WantType::Block {
                    if block_wants > 0
                        && (block_wants >= max_block_wants
                            || reserved + self.block_size_estimate > available)
                    {
                        ledger.insert_want(cid, want);
                        break;
                    }
                    block_wants += 1;
                    reserved += self.block_size_estimate;
                }
                in_flight.insert(
                    cid,
                    InFlightWant {
                        want_type: want.want_type,
                        cancelled: false,
                    },
                );
                wants.push(BatchWant {
                    cid,
                    want_type: want.want_type,
                    send_dont_have: want.send_dont_have,
                });
            }
            self.total_wants -= before - ledger.wants.len();
            self.next_id += 1;
            let id = self.next_id;
            ledger.in_flight = Some((id, in_flight));
            return Some(Batch { peer, id, wants });
        }
        None
    }

    /// Turns the lookups of `batch` into framed responses; `results[i]` answers
    /// `batch.wants[i]` (missing results count as failures) and ends the batch: as
    /// [`Self::complete_part`] with every answer at once.
    #[cfg(test)]
    pub(crate) fn complete_batch(&mut self, batch: Batch, results: Vec<Lookup>) -> Vec<Outgoing> {
        let mut results = results.into_iter();
        let answers = batch
            .wants
            .into_iter()
            .map(|want| (want, results.next().unwrap_or(Lookup::Failed)))
            .collect();
        self.complete_part(batch.peer, batch.id, answers, true)
    }

    /// Turns some answers of the batch `id` of `peer` into framed responses, at once, so that a
    /// block goes on the wire as soon as it is read rather than when the whole batch is. Each
    /// want of the batch is answered at most once; with `last`, the batch ends, and its wants
    /// left unanswered count as failures (the store could not tell). Frames are queued against
    /// the peer's budget until [`Engine::message_done`]. Answers for a forgotten peer or an
    /// ended batch are ignored.
    pub(crate) fn complete_part(
        &mut self,
        peer: PeerId,
        id: u64,
        answers: Vec<(BatchWant, Lookup)>,
        last: bool,
    ) -> Vec<Outgoing> {
        let Some(ledger) = self.ledgers.get_mut(&peer) else {
            return Vec::new();
        };
        let Some((current, in_flight)) = &mut ledger.in_flight else {
            return Vec::new();
        };
        if *current != id {
            return Vec::new();
        }
        let version = ledger.version;
        let max_frame = self.config.max_frame_size;
        let mut finished: Vec<ResponseBuilder> = Vec::new();
        let mut builder = ResponseBuilder::new(version, max_frame);
        for (want, result) in answers {
            // Answered wants leave the batch: a new want for the CID is a new want.
            if in_flight.remove(&want.cid).is_none_or(|w| w.cancelled) {
                self.counters.answers_cancelled += 1;
                continue;
            }
            let outcomes = self.counters.outcomes(want.want_type);
            let item = match (result, want.want_type) {
                (Lookup::Failed, _) | (Lookup::Present, WantType::Block) => {
                    outcomes.error += 1;
                    self.counters.wants_failed += 1;
                    continue;
                }
                (Lookup::Absent, _) if !want.send_dont_have => {
                    outcomes.not_found += 1;
                    continue;
                }
                (Lookup::Absent, _) => {
                    outcomes.not_found += 1;
                    Item::Presence(PresenceType::DontHave)
                }
                (Lookup::Present, WantType::Have) => {
                    outcomes.found += 1;
                    Item::Presence(PresenceType::Have)
                }
                (Lookup::Block(data), _) => {
                    outcomes.found += 1;
                    self.block_size_estimate = (3 * self.block_size_estimate + data.len()) / 4;
                    Item::Block(data)
                }
            };
            let add = |b: &mut ResponseBuilder| match &item {
                Item::Block(data) => b.add_block(&want.cid, data),
                Item::Presence(p) => b.add_presence(&want.cid, *p),
            };
            if matches!(item, Item::Block(_))
                && builder.counts().block_bytes >= SOFT_MESSAGE_BLOCK_BYTES
            {
                finished.push(std::mem::replace(
                    &mut builder,
                    ResponseBuilder::new(version, max_frame),
                ));
            }
            match add(&mut builder) {
                Ok(()) => {}
                Err(AddError::Unsupported) => self.counters.wants_dropped += 1,
                Err(AddError::Full) if builder.is_empty() => self.counters.blocks_oversized += 1,
                Err(AddError::Full) => {
                    finished.push(std::mem::replace(
                        &mut builder,
                        ResponseBuilder::new(version, max_frame),
                    ));
                    if add(&mut builder).is_err() {
                        self.counters.blocks_oversized += 1;
                    }
                }
            }
        }
        if last && let Some((_, unanswered)) = ledger.in_flight.take() {
            for want in unanswered.values() {
                if want.cancelled {
                    self.counters.answers_cancelled += 1;
                } else {
                    self.counters.outcomes(want.want_type).error += 1;
                    self.counters.wants_failed += 1;
                }
            }
        }
        if !builder.is_empty() {
            finished.push(builder);
        }
        let mut pending: u64 = finished.iter().map(|b| b.counts().block_bytes).sum();
        let mut out = Vec::with_capacity(finished.len());
        for builder in finished {
            let counts = builder.counts();
            pending -= counts.block_bytes;
            let frame = builder.finish(pending);
            ledger.outstanding_bytes += frame.len();
            ledger.unsent_messages += 1;
            out.push(Outgoing {
                peer,
                epoch: ledger.epoch,
                version,
                frame,
                counts,
            });
        }
        if last {
            self.settle(peer);
        }
        out
    }

    /// Releases the budget of one frame of `frame_len` bytes, written or given up on.
    pub(crate) fn message_done(&mut self, peer: PeerId, epoch: u64, frame_len: usize) {
        let Some(ledger) = self.ledgers.get_mut(&peer) else {
            return;
        };
        if ledger.epoch != epoch {
            return;
        }
        ledger.outstanding_bytes = ledger.outstanding_bytes.saturating_sub(frame_len);
        ledger.unsent_messages = ledger.unsent_messages.saturating_sub(1);
        self.settle(peer);
    }

    /// Forgets everything about `peer` (its stream failed); later results for it are ignored.
    pub(crate) fn remove_peer(&mut self, peer: &PeerId) {
        if let Some(ledger) = self.ledgers.remove(peer) {
            self.total_wants -= ledger.wants.len();
            if ledger.queued {
                self.ready.retain(|p| p != peer);
            }
        }
    }

    /// Peers with state.
    pub(crate) fn peer_count(&self) -> usize {
        self.ledgers.len()
    }

    /// The pending (not yet batched) wants of `peer`, as (CID, type, priority, send_dont_have).
    #[cfg(test)]
    fn pending(&self, peer: &PeerId) -> HashMap<Cid, (WantType, i32, bool)> {
        self.ledgers
            .get(peer)
            .map(|l| {
                assert_eq!(l.wants.len(), l.order.len());
                l.wants
                    .iter()
                    .map(|(c, w)| (*c, (w.want_type, w.priority, w.send_dont_have)))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[cfg(test)]
    fn outstanding(&self, peer: &PeerId) -> usize {
        self.ledgers.get(peer).map_or(0, |l| l.outstanding_bytes)
    }
}

enum Item {
    Block(Bytes),
    Presence(PresenceType),
}

#[cfg(test)]
mod tests {
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
}
