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
mod tests;
