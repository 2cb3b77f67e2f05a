//! The glue between libp2p streams, the decision engine and the block store
//! (specs/bitswap-protocol.md, "Interaction Pattern": wants arrive on streams the peer opens,
//! answers leave on a stream the server opens back with the same protocol).
//!
//! Memory: every message being read, every want kept, every block looked up and every response
//! frame waiting to be written is charged to the shared [`MemoryBudget`]
//! ([`BitswapConfig::budget`]). When it is full, a reader waits up to
//! [`BitswapConfig::budget_wait`] and then resets its stream, new wants are shed unanswered
//! (never DONT_HAVE for a stored block), and lookups wait for memory to be released.
//!
//! Tasks (all stop when the [`BitswapHandle`] is dropped or shut down):
//! - *accept*: takes inbound streams of the four protocol IDs and starts one *reader* per
//!   stream, within [`BitswapConfig::max_inbound_streams`] and
//!   [`BitswapConfig::max_inbound_streams_per_peer`] (further streams are reset);
//! - *reader*: reads length-prefixed messages (at most [`MAX_MESSAGE_SIZE`] bytes, closed after
//!   [`BitswapConfig::inbound_idle_timeout`] without one) and passes them to the engine task;
//! - *engine*: owns the [`Engine`](crate::engine), starts *lookup* tasks (at most
//!   [`BitswapConfig::max_concurrent_lookups`]) and hands framed answers to the peer's *sender*;
//! - *lookup*: one batch of one peer: `get_each` for its WANT_BLOCKs while `size` is asked for
//!   its WANT_HAVEs (then `get_many` for those small enough to send instead of HAVE); each
//!   answer goes to the engine as soon as it is known, so a block is framed and handed to the
//!   sender while the rest of its batch is still being read;
//! - *sender*: one per peer while it has answers: opens the outbound stream, writes frames
//!   (each within [`BitswapConfig::write_timeout`]), reopens once if a write fails, closes the
//!   stream after [`BitswapConfig::outbound_idle_timeout`] idle. A peer whose write times out or
//!   fails twice is forgotten (its wants are dropped); one whose write times out is also
//!   reported on [`BitswapHandle::take_unresponsive_peers`] so that the swarm disconnects it.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cid::Cid;
use futures::{FutureExt as _, StreamExt as _};
use hydrant_blocks::Blockstore;
use hydrant_budget::{Grant, Holder, MemoryBudget};
use libp2p::{PeerId, Stream, StreamProtocol};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::engine::{
    Batch, BatchWant, Engine, EngineConfig, Lookup, MAX_BLOCK_WANTS_PER_BATCH,
    MAX_MESSAGES_PER_BATCH, MAX_OUTSTANDING_BYTES_PER_PEER, MAX_UNSENT_MESSAGES_PER_PEER,
    MAX_WANTLIST_ENTRIES_PER_PEER, MAX_WANTS_PER_BATCH, Outgoing, WantOutcomes,
};
use crate::protocol::{
    FrameError, MAX_MESSAGE_SIZE, Message, MessageShape, ProtocolVersion, WantType, decode_message,
    measure_message, read_frame_body, read_frame_len, write_frame,
};

/// Capacity, in events, of the queue into the engine task (messages from readers, lookup
/// results, write reports). Readers wait when it is full, which stops them reading their
/// stream, which in turn slows the peer through the muxer's flow control. A decoded message
/// holds at most [`crate::MAX_WANTLIST_ENTRIES_PER_MESSAGE`] entries (about 1.6 MB), so the
/// queue holds at most about 100 MB of messages.
pub const EVENT_QUEUE_CAPACITY: usize = 64;

/// Capacity, in messages, of one peer's sender queue. The engine gives a peer a new batch only
/// while fewer than [`MAX_UNSENT_MESSAGES_PER_PEER`] are waiting, and one batch makes at most
/// [`MAX_MESSAGES_PER_BATCH`], so the queue is never full.
const PEER_OUTBOX_CAPACITY: usize = MAX_UNSENT_MESSAGES_PER_PEER + MAX_MESSAGES_PER_BATCH;

/// Buffer of a reader in front of its stream, in bytes.
const READ_BUFFER_SIZE: usize = 16 * 1024;

/// Capacity, in peer IDs, of the queue of unresponsive peers ([`BitswapHandle::take_unresponsive_peers`]).
/// When it is full (nobody reads it), further peers are not reported; their wants are dropped
/// all the same.
const UNRESPONSIVE_QUEUE_CAPACITY: usize = 64;

/// How often the engine task forgets the queues of senders that have exited.
const SENDER_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Memory charged per kept want, in bytes: the want's entries in the ledger's map and ordered
/// set (a CID is up to 88 bytes inline) with their overhead. A want is kept only when the
/// budget (and its cap for [`Holder::BitswapWantlists`]) has room for this much more.
pub const WANT_ENTRY_BYTES: u64 = 320;

/// Budget charged while a message is read and decoded, in two steps: its body (the length
/// prefix's `len` bytes) before the body is read, then, once its fields are counted
/// ([`measure_message`]), what decoding it allocates ([`MessageShape::decoded_bytes`]), which
/// stays charged while the decoded message is handled. The least budget that admits any
/// message a peer may legitimately send (a full wantlist in a 4 MiB body) is
/// [`MAX_MESSAGE_SIZE`] plus [`MessageShape::FULL_WANTLIST`]'s decoded bytes.
fn message_charge() -> u64 {
    MAX_MESSAGE_SIZE as u64 + MessageShape::FULL_WANTLIST.decoded_bytes()
}

/// Budget reserved for one WANT_BLOCK of a batch until its block is read: the largest block
/// (2 MiB, specs/bitswap-protocol.md) plus its framing.
const BLOCK_CHARGE: u64 = 2 * 1024 * 1024 + 256;

/// How often the engine task retries lookups that wait for memory.
const BUDGET_RETRY_INTERVAL: Duration = Duration::from_millis(5);

/// Default for [`BitswapConfig::want_have_replace_size`], in bytes (as boxo and Helia).
pub const DEFAULT_WANT_HAVE_REPLACE_SIZE: u32 = 1024;

/// Settings of the Bitswap server. `BitswapConfig::default()` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct BitswapConfig {
    /// Most wants kept per peer; more are ignored and counted in
    /// [`BitswapStats::wants_dropped`]. Default [`MAX_WANTLIST_ENTRIES_PER_PEER`] (8192).
    pub max_wantlist_entries_per_peer: usize,
    /// Most bytes of answers read from the store and not yet written to one peer; the peer gets
    /// no new lookups while over. Default [`MAX_OUTSTANDING_BYTES_PER_PEER`] (4 MiB).
    pub max_outstanding_bytes_per_peer: usize,
    /// A WANT_HAVE for a block of at most this many bytes is answered with the block itself
    /// (specs/bitswap-protocol.md 1.2.0, "MAY instead respond with the block itself"); 0 turns
    /// this off. Default [`DEFAULT_WANT_HAVE_REPLACE_SIZE`] (1024 bytes).
    pub want_have_replace_size: u32,
    /// Most batches looked up in the store at once, over all peers. Default 4.
    pub max_concurrent_lookups: usize,
    /// Most inbound streams read at once, over all peers; more are reset. Each holds a buffer of
    /// up to [`MAX_MESSAGE_SIZE`] while a message arrives. Default 256.
    pub max_inbound_streams: usize,
    /// Most inbound streams read at once from one peer; more are reset. Default 16.
    pub max_inbound_streams_per_peer: usize,
    /// An inbound stream with no complete message for this long is closed. Default 60 s.
    pub inbound_idle_timeout: Duration,
    /// The outbound stream to a peer is closed after this long without an answer to send
    /// (below Helia's 5 s receive timeout). Default 3 s.
    pub outbound_idle_timeout: Duration,
    /// Longest wait to open the outbound stream or to write one message; past it the peer is
    /// dropped (a peer that stops reading holds its share of memory at most this long).
    /// Default 30 s.
    pub write_timeout: Duration,
    /// The memory budget shared with the other serving paths. Its cap for
    /// [`Holder::BitswapWantlists`] divided by [`WANT_ENTRY_BYTES`] bounds the wants kept over
    /// all peers. Default: unlimited.
    pub budget: MemoryBudget,
    /// How long a reader waits for budget for an incoming message before it resets the stream.
    /// Default 1 s.
    pub budget_wait: Duration,
}

impl Default for BitswapConfig {
    fn default() -> Self {
        BitswapConfig {
            max_wantlist_entries_per_peer: MAX_WANTLIST_ENTRIES_PER_PEER,
            max_outstanding_bytes_per_peer: MAX_OUTSTANDING_BYTES_PER_PEER,
            want_have_replace_size: DEFAULT_WANT_HAVE_REPLACE_SIZE,
            max_concurrent_lookups: 4,
            max_inbound_streams: 256,
            max_inbound_streams_per_peer: 16,
            inbound_idle_timeout: Duration::from_secs(60),
            outbound_idle_timeout: Duration::from_secs(3),
            write_timeout: Duration::from_secs(30),
            budget: MemoryBudget::unlimited(),
            budget_wait: Duration::from_secs(1),
        }
    }
}

impl BitswapConfig {
    fn validate(&self) -> Result<(), BitswapError> {
        let zero = |field: &'static str| Err(BitswapError::InvalidConfig { field });
        if self.max_wantlist_entries_per_peer == 0 {
            return zero("max_wantlist_entries_per_peer");
        }
        if self.max_outstanding_bytes_per_peer == 0 {
            return zero("max_outstanding_bytes_per_peer");
        }
        if self.max_concurrent_lookups == 0 {
            return zero("max_concurrent_lookups");
        }
        if self.max_inbound_streams == 0 {
            return zero("max_inbound_streams");
        }
        if self.max_inbound_streams_per_peer == 0 {
            return zero("max_inbound_streams_per_peer");
        }
        if self.inbound_idle_timeout.is_zero() {
            return zero("inbound_idle_timeout");
        }
        if self.outbound_idle_timeout.is_zero() {
            return zero("outbound_idle_timeout");
        }
        if self.write_timeout.is_zero() {
            return zero("write_timeout");
        }
        if self.budget.limit() < message_charge() + BLOCK_CHARGE {
            return Err(BitswapError::BudgetTooSmall {
                limit: self.budget.limit(),
                min: message_charge() + BLOCK_CHARGE,
            });
        }
        Ok(())
    }
}

/// Errors of [`Bitswap::spawn`].
#[derive(Debug, thiserror::Error)]
pub enum BitswapError {
    /// Inbound streams of this protocol are already taken by another user of the same
    /// `libp2p_stream` behaviour (e.g. a previous Bitswap not yet shut down).
    #[error("inbound streams of {protocol} are already accepted elsewhere")]
    AlreadyRegistered {
        /// The protocol ID.
        protocol: StreamProtocol,
    },
    /// A count or duration of the configuration is zero.
    #[error("bitswap configuration field {field} must be greater than zero")]
    InvalidConfig {
        /// The field's name.
        field: &'static str,
    },
    /// The memory budget cannot hold one message being read plus one block being sent.
    #[error("a memory budget of {limit} bytes cannot hold one message and one block ({min} bytes)")]
    BudgetTooSmall {
        /// The budget, in bytes.
        limit: u64,
        /// The least that works, in bytes.
        min: u64,
    },
    /// Called outside a tokio runtime.
    #[error("Bitswap::spawn must be called within a tokio runtime")]
    NoRuntime,
}

/// Counters since start, from [`BitswapHandle::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BitswapStats {
    /// Messages received and decoded.
    pub messages_received: u64,
    /// WANT_BLOCK entries received (every entry of a peer before 1.2.0 is one).
    pub want_blocks_received: u64,
    /// WANT_HAVE entries received.
    pub want_haves_received: u64,
    /// Cancel entries received.
    pub cancels_received: u64,
    /// Response messages written.
    pub messages_sent: u64,
    /// Blocks written.
    pub blocks_sent: u64,
    /// Bytes of block data written.
    pub block_bytes_sent: u64,
    /// Bytes written, length prefixes and protobuf included.
    pub bytes_sent: u64,
    /// HAVE presences written.
    pub haves_sent: u64,
    /// DONT_HAVE presences written.
    pub dont_haves_sent: u64,
    /// Wants left unanswered because the block store failed (never answered DONT_HAVE).
    pub store_errors: u64,
    /// Inbound streams closed for a malformed or oversized message.
    pub protocol_errors: u64,
    /// Failures to open or write an outbound stream (the peer is then dropped).
    pub stream_errors: u64,
    /// Wants ignored: past the per-peer bound, CIDv1 from a 1.0.0 peer, or a block too large
    /// for a message.
    pub wants_dropped: u64,
    /// Answers discarded because the peer cancelled the want during its lookup.
    pub answers_cancelled: u64,
    /// Inbound streams reset because of the stream limits.
    pub streams_refused: u64,
    /// Inbound streams reset because the memory budget had no room for their next message.
    pub streams_shed: u64,
    /// Wants shed because the wantlists' share of the memory budget was full.
    pub wants_shed: u64,
    /// Peers dropped because writing to them failed or timed out (e.g. they stopped reading).
    pub peers_dropped: u64,
    /// Outcomes of WANT_BLOCK entries.
    pub want_block_outcomes: WantOutcomes,
    /// Outcomes of WANT_HAVE entries.
    pub want_have_outcomes: WantOutcomes,
    /// Wants kept over all peers, waiting for a lookup (a gauge).
    pub wants_pending: u64,
    /// Inbound streams being read now (a gauge).
    pub inbound_streams: u64,
    /// Outbound streams (one per peer being answered) now (a gauge).
    pub outbound_streams: u64,
    /// Peers with wants, lookups or answers in progress now (a gauge, not a counter).
    pub peers: u64,
}

#[derive(Default)]
struct Stats {
    messages_received: AtomicU64,
    want_blocks_received: AtomicU64,
    want_haves_received: AtomicU64,
    cancels_received: AtomicU64,
    messages_sent: AtomicU64,
    blocks_sent: AtomicU64,
    block_bytes_sent: AtomicU64,
    bytes_sent: AtomicU64,
    haves_sent: AtomicU64,
    dont_haves_sent: AtomicU64,
    store_errors: AtomicU64,
    protocol_errors: AtomicU64,
    stream_errors: AtomicU64,
    wants_dropped: AtomicU64,
    answers_cancelled: AtomicU64,
    streams_refused: AtomicU64,
    streams_shed: AtomicU64,
    peers_dropped: AtomicU64,
    inbound_streams: AtomicU64,
    outbound_streams: AtomicU64,
    peers: AtomicU64,
    /// Copied from the engine by [`Stats::publish`].
    engine: Mutex<(u64, WantOutcomes, WantOutcomes, u64)>,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Stats {
    fn snapshot(&self) -> BitswapStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (wants_shed, want_block_outcomes, want_have_outcomes, wants_pending) =
            *self.engine.lock().unwrap_or_else(|e| e.into_inner());
        BitswapStats {
            messages_received: get(&self.messages_received),
            want_blocks_received: get(&self.want_blocks_received),
            want_haves_received: get(&self.want_haves_received),
            cancels_received: get(&self.cancels_received),
            messages_sent: get(&self.messages_sent),
            blocks_sent: get(&self.blocks_sent),
            block_bytes_sent: get(&self.block_bytes_sent),
            bytes_sent: get(&self.bytes_sent),
            haves_sent: get(&self.haves_sent),
            dont_haves_sent: get(&self.dont_haves_sent),
            store_errors: get(&self.store_errors),
            protocol_errors: get(&self.protocol_errors),
            stream_errors: get(&self.stream_errors),
            wants_dropped: get(&self.wants_dropped),
            answers_cancelled: get(&self.answers_cancelled),
            streams_refused: get(&self.streams_refused),
            streams_shed: get(&self.streams_shed),
            peers_dropped: get(&self.peers_dropped),
            inbound_streams: get(&self.inbound_streams),
            outbound_streams: get(&self.outbound_streams),
            peers: get(&self.peers),
            wants_shed,
            want_block_outcomes,
            want_have_outcomes,
            wants_pending,
        }
    }

    /// Copies the engine's totals (the engine task is their only writer).
    fn publish(&self, engine: &Engine) {
        let c = engine.counters();
        let set = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        set(&self.want_blocks_received, c.want_blocks);
        set(&self.want_haves_received, c.want_haves);
        set(&self.cancels_received, c.cancels);
        set(&self.store_errors, c.wants_failed);
        set(&self.wants_dropped, c.wants_dropped + c.blocks_oversized);
        set(&self.answers_cancelled, c.answers_cancelled);
        set(&self.peers, engine.peer_count() as u64);
        *self.engine.lock().unwrap_or_else(|e| e.into_inner()) = (
            c.wants_shed,
            c.block_outcomes,
            c.have_outcomes,
            engine.total_wants() as u64,
        );
    }
}

/// The Bitswap server. See [`Bitswap::spawn`].
pub struct Bitswap;

/// Handle to a running Bitswap server. Dropping it stops the server (as [`Self::shutdown`]
/// does, without waiting).
pub struct BitswapHandle {
    stats: Arc<Stats>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    unresponsive: Option<mpsc::Receiver<PeerId>>,
}

impl BitswapHandle {
    /// Counters since start.
    pub fn stats(&self) -> BitswapStats {
        self.stats.snapshot()
    }

    /// The peers dropped because they stopped reading: opening the answer stream or writing one
    /// message took longer than [`BitswapConfig::write_timeout`]. The swarm that owns the
    /// connections should close them, which frees the muxer's buffers held for the peer (they
    /// are outside the budget). `None` after the first call. The queue holds
    /// [`UNRESPONSIVE_QUEUE_CAPACITY`] peers; past that, peers are not reported.
    pub fn take_unresponsive_peers(&mut self) -> Option<mpsc::Receiver<PeerId>> {
        self.unresponsive.take()
    }

    /// Stops accepting streams (the protocols are deregistered), stops every reader, lookup
    /// and sender, and waits for the accept and engine tasks to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for BitswapHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Resolves once the server is stopping (signal sent or handle gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

enum Event {
    Message {
        peer: PeerId,
        version: ProtocolVersion,
        message: Message,
        /// The message's memory, released once the engine has applied it.
        _grant: Grant,
    },
    /// Answers of one batch, sent as the lookups find them.
    Answers {
        peer: PeerId,
        /// The batch's id.
        id: u64,
        answers: Vec<(BatchWant, Lookup)>,
        /// Memory reserved for these answers (with `last`, the rest of the batch's reservation);
        /// becomes the frames' grants.
        grant: Grant,
        /// The batch's lookups are over; wants still unanswered failed.
        last: bool,
    },
    Sent {
        peer: PeerId,
        epoch: u64,
        frame_len: usize,
    },
    PeerFailed {
        peer: PeerId,
    },
}

impl Bitswap {
    /// Starts a Bitswap server (specs/bitswap-protocol.md, 1.0.0, 1.1.0 and 1.2.0) on the
    /// swarm behind `control` (a `libp2p_stream::Behaviour` in the node's swarm), answering
    /// from `store`. It accepts inbound streams of `/ipfs/bitswap/1.2.0`, `/ipfs/bitswap/1.1.0`,
    /// `/ipfs/bitswap/1.0.0` and `/ipfs/bitswap`, and answers each peer on a stream it opens to
    /// that peer with the protocol the peer used.
    ///
    /// # Errors
    /// [`BitswapError::AlreadyRegistered`] when one of the protocols is already accepted through
    /// this behaviour, [`BitswapError::InvalidConfig`] for a zero limit,
    /// [`BitswapError::NoRuntime`] outside a tokio runtime.
    pub fn spawn(
        mut control: libp2p_stream::Control,
        store: Arc<dyn Blockstore>,
        config: BitswapConfig,
    ) -> Result<BitswapHandle, BitswapError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BitswapError::NoRuntime)?;
        let mut incoming = Vec::with_capacity(ProtocolVersion::ALL.len());
        for version in ProtocolVersion::ALL {
            let streams = control.accept(version.protocol()).map_err(|_| {
                BitswapError::AlreadyRegistered {
                    protocol: version.protocol(),
                }
            })?;
            incoming.push(streams.map(move |(peer, stream)| (peer, version, stream)));
        }
        let incoming = futures::stream::select_all(incoming);

        let stats = Arc::new(Stats::default());
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE_CAPACITY);
        let (unresponsive_tx, unresponsive_rx) = mpsc::channel(UNRESPONSIVE_QUEUE_CAPACITY);
        let config = Arc::new(config);

        let accept = Acceptor {
            config: config.clone(),
            stats: stats.clone(),
            events: events_tx.clone(),
            shutdown: shutdown_rx.clone(),
            streams: Arc::new(Semaphore::new(config.max_inbound_streams)),
            per_peer: Arc::new(Mutex::new(HashMap::new())),
        };
        let engine = EngineTask {
            engine: Engine::new(EngineConfig {
                max_wantlist_entries_per_peer: config.max_wantlist_entries_per_peer,
                max_outstanding_bytes_per_peer: config.max_outstanding_bytes_per_peer,
                max_frame_size: MAX_MESSAGE_SIZE,
                max_total_wants: 0,
            }),
            wants_grant: config.budget.track(Holder::BitswapWantlists),
            budget_blocked: false,
            store,
            config,
            control,
            stats: stats.clone(),
            events_tx,
            events_rx,
            unresponsive: unresponsive_tx,
            senders: HashMap::new(),
            lookups_in_flight: 0,
            shutdown: shutdown_rx,
        };
        let tasks = vec![
            runtime.spawn(accept.run(incoming)),
            runtime.spawn(engine.run()),
        ];
        Ok(BitswapHandle {
            stats,
            shutdown: shutdown_tx,
            tasks,
            unresponsive: Some(unresponsive_rx),
        })
    }
}

/// Accepts inbound streams and starts their readers.
struct Acceptor {
    config: Arc<BitswapConfig>,
    stats: Arc<Stats>,
    events: mpsc::Sender<Event>,
    shutdown: watch::Receiver<bool>,
    streams: Arc<Semaphore>,
    per_peer: Arc<Mutex<HashMap<PeerId, usize>>>,
}

/// A reader's claim on the stream limits, released on drop.
struct StreamSlot {
    _permit: OwnedSemaphorePermit,
    peer: PeerId,
    per_peer: Arc<Mutex<HashMap<PeerId, usize>>>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut per_peer = self.per_peer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = per_peer.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                per_peer.remove(&self.peer);
            }
        }
    }
}

impl Acceptor {
    fn claim(&self, peer: PeerId) -> Option<StreamSlot> {
        let permit = self.streams.clone().try_acquire_owned().ok()?;
        let mut per_peer = self.per_peer.lock().unwrap_or_else(|e| e.into_inner());
        let count = per_peer.entry(peer).or_insert(0);
        if *count >= self.config.max_inbound_streams_per_peer {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            _permit: permit,
            peer,
            per_peer: self.per_peer.clone(),
        })
    }

    async fn run(
        mut self,
        mut incoming: impl futures::Stream<Item = (PeerId, ProtocolVersion, Stream)> + Unpin,
    ) {
        loop {
            let next = tokio::select! {
                _ = stopped(&mut self.shutdown) => return,
                next = incoming.next() => next,
            };
            let Some((peer, version, stream)) = next else {
                return;
            };
            let Some(slot) = self.claim(peer) else {
                bump(&self.stats.streams_refused, 1);
                tracing::debug!(%peer, "bitswap: inbound stream limit reached, resetting stream");
                drop(stream);
                continue;
            };
            let reader = Reader {
                peer,
                version,
                idle_timeout: self.config.inbound_idle_timeout,
                budget: self.config.budget.clone(),
                budget_wait: self.config.budget_wait,
                stats: self.stats.clone(),
                events: self.events.clone(),
                shutdown: self.shutdown.clone(),
                _slot: slot,
            };
            tokio::spawn(reader.run(stream));
        }
    }
}

/// Reads the messages of one inbound stream.
struct Reader {
    peer: PeerId,
    version: ProtocolVersion,
    idle_timeout: Duration,
    budget: MemoryBudget,
    budget_wait: Duration,
    stats: Arc<Stats>,
    events: mpsc::Sender<Event>,
    shutdown: watch::Receiver<bool>,
    _slot: StreamSlot,
}

impl Reader {
    async fn run(mut self, stream: Stream) {
        let peer = self.peer;
        bump(&self.stats.inbound_streams, 1);
        let _gauge = DecOnDrop(&self.stats.inbound_streams);
        let mut reader = futures::io::BufReader::with_capacity(READ_BUFFER_SIZE, stream);
        loop {
            let len = tokio::select! {
                _ = stopped(&mut self.shutdown) => return,
                read = tokio::time::timeout(
                    self.idle_timeout,
                    read_frame_len(&mut reader, MAX_MESSAGE_SIZE),
                ) => read,
            };
            let len = match len {
                Err(_) => {
                    tracing::debug!(%peer, "bitswap: inbound stream idle, closing");
                    return;
                }
                Ok(Ok(Some(len))) => len,
                Ok(Ok(None)) => return,
                Ok(Err(error)) => return self.frame_failed(&error),
            };
            let grant = match self
                .budget
                .acquire_within(Holder::BitswapMessages, len as u64, self.budget_wait)
                .await
            {
                Ok(grant) => grant,
                Err(refused) => return self.shed(&refused),
            };
            let body = tokio::select! {
                _ = stopped(&mut self.shutdown) => return,
                read = tokio::time::timeout(
                    self.idle_timeout,
                    read_frame_body(&mut reader, len),
                ) => read,
            };
            let body = match body {
                Err(_) => {
                    tracing::debug!(%peer, "bitswap: inbound message too slow, closing");
                    return;
                }
                Ok(Ok(body)) => body,
                Ok(Err(error)) => return self.frame_failed(&error),
            };
            let decoded = match measure_message(&body) {
                Ok(shape) => {
                    self.budget
                        .acquire_within(
                            Holder::BitswapMessages,
                            shape.decoded_bytes(),
                            self.budget_wait,
                        )
                        .await
                }
                Err(error) => return self.undecodable(&error),
            };
            let decoded = match decoded {
                Ok(grant) => grant,
                Err(refused) => return self.shed(&refused),
            };
            let message = match decode_message(&body) {
                Ok(message) => message,
                Err(error) => return self.undecodable(&error),
            };
            drop((body, grant));
            bump(&self.stats.messages_received, 1);
            let event = Event::Message {
                peer,
                version: self.version,
                message,
                _grant: decoded,
            };
            tokio::select! {
                _ = stopped(&mut self.shutdown) => return,
                sent = self.events.send(event) => if sent.is_err() { return },
            }
        }
    }

    fn shed(&self, refused: &hydrant_budget::Refused) {
        bump(&self.stats.streams_shed, 1);
        tracing::debug!(peer = %self.peer, %refused, "bitswap: resetting inbound stream");
    }

    fn undecodable(&self, error: &crate::DecodeError) {
        bump(&self.stats.protocol_errors, 1);
        tracing::debug!(peer = %self.peer, %error, "bitswap: undecodable message, resetting stream");
    }

    fn frame_failed(&self, error: &FrameError) {
        let peer = self.peer;
        if let FrameError::Io(error) = error {
            tracing::debug!(%peer, %error, "bitswap: inbound stream failed");
        } else {
            bump(&self.stats.protocol_errors, 1);
            tracing::debug!(%peer, %error, "bitswap: bad frame, resetting stream");
        }
    }
}

/// Decrements a gauge when dropped.
struct DecOnDrop<'a>(&'a AtomicU64);

impl Drop for DecOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Owns the engine; the only task that touches it.
struct EngineTask {
    engine: Engine,
    store: Arc<dyn Blockstore>,
    config: Arc<BitswapConfig>,
    control: libp2p_stream::Control,
    stats: Arc<Stats>,
    events_tx: mpsc::Sender<Event>,
    events_rx: mpsc::Receiver<Event>,
    /// Where senders report peers that stopped reading.
    unresponsive: mpsc::Sender<PeerId>,
    senders: HashMap<PeerId, mpsc::Sender<(Outgoing, Grant)>>,
    lookups_in_flight: usize,
    /// The wants kept, charged at [`WANT_ENTRY_BYTES`] each.
    wants_grant: Grant,
    /// Whether a peer waits for a lookup that the budget has no room for.
    budget_blocked: bool,
    shutdown: watch::Receiver<bool>,
}

impl EngineTask {
    /// Budget held for a batch's answers while its blocks are read: a whole largest block per
    /// WANT_BLOCK (the size is unknown until read), a tiny block or presence per WANT_HAVE.
    fn have_charge(&self) -> u64 {
        u64::from(self.config.want_have_replace_size) + 128
    }

    /// Starts lookups while there is a ready peer, a lookup slot and budget for at least one
    /// block.
    fn start_lookups(&mut self) {
        self.budget_blocked = false;
        let budget = self.config.budget.clone();
        while self.lookups_in_flight < self.config.max_concurrent_lookups
            && self.engine.has_ready_peer()
        {
            let haves = MAX_WANTS_PER_BATCH as u64 * self.have_charge();
            let room = budget
                .available(Holder::BitswapResponses)
                .saturating_sub(haves);
            let blocks = (room / BLOCK_CHARGE).min(MAX_BLOCK_WANTS_PER_BATCH as u64);
            let reserve = haves + blocks * BLOCK_CHARGE;
            let Some(mut grant) = (blocks > 0)
                .then(|| budget.try_acquire(Holder::BitswapResponses, reserve).ok())
                .flatten()
            else {
                self.budget_blocked = true;
                return;
            };
            let Some(batch) = self.engine.next_batch_within(blocks as usize) else {
                return;
            };
            let block_wants = batch
                .wants
                .iter()
                .filter(|w| w.want_type == WantType::Block)
                .count() as u64;
            let have_wants = batch.wants.len() as u64 - block_wants;
            grant.shrink_to(block_wants * BLOCK_CHARGE + have_wants * self.have_charge());
            self.lookups_in_flight += 1;
            let store = self.store.clone();
            let events = self.events_tx.clone();
            let replace = self.config.want_have_replace_size;
            let have_charge = self.have_charge();
            tokio::spawn(async move {
                // Answers go to the engine as they are found (a block is framed and handed to
                // the sender while the rest of the batch is still being read); `read` ends
                // when every want has its answer, which closes the channel. Each want is
                // answered at most once, so the channel holds at most the batch's wants.
                let (tx, mut rx) = mpsc::channel(batch.wants.len().max(1));
                let read = async {
                    let looked_up = AssertUnwindSafe(lookup(store.as_ref(), &batch, replace, tx))
                        .catch_unwind()
                        .await;
                    if looked_up.is_err() {
                        tracing::error!(peer = %batch.peer, "bitswap: block store panicked");
                    }
                };
                let forward = async {
                    while let Some(first) = rx.recv().await {
                        let mut answers = vec![first];
                        while let Ok(more) = rx.try_recv() {
                            answers.push(more);
                        }
                        let answers: Vec<(BatchWant, Lookup)> = answers
                            .into_iter()
                            .map(|(i, found)| (batch.wants[i].clone(), found))
                            .collect();
                        let charge = answers
                            .iter()
                            .map(|(want, _)| match want.want_type {
                                WantType::Block => BLOCK_CHARGE,
                                WantType::Have => have_charge,
                            })
                            .sum();
                        let event = Event::Answers {
                            peer: batch.peer,
                            id: batch.id,
                            answers,
                            grant: grant.split(charge),
                            last: false,
                        };
                        if events.send(event).await.is_err() {
                            return;
                        }
                    }
                    let _ = events
                        .send(Event::Answers {
                            peer: batch.peer,
                            id: batch.id,
                            answers: Vec::new(),
                            grant,
                            last: true,
                        })
                        .await;
                };
                futures::join!(read, forward);
            });
        }
    }

    /// Grows the wantlists' grant for the new wants `message` may add, as far as the budget
    /// allows, and lets the engine keep that many more wants (it sheds the rest).
    fn reserve_wants(&mut self, message: &Message) {
        let entries = message.wantlist.iter().filter(|e| !e.cancel).count() as u64;
        let room = self.config.budget.available(Holder::BitswapWantlists) / WANT_ENTRY_BYTES;
        let grow = entries.min(room) * WANT_ENTRY_BYTES;
        if grow > 0 {
            self.wants_grant.try_grow(grow);
        }
        let reserved =
            usize::try_from(self.wants_grant.bytes() / WANT_ENTRY_BYTES).unwrap_or(usize::MAX);
        self.engine
            .set_max_total_wants(reserved.max(self.engine.total_wants()));
    }

    async fn run(mut self) {
        let mut sweep = tokio::time::interval(SENDER_SWEEP_INTERVAL);
        loop {
            self.start_lookups();
            self.stats.publish(&self.engine);
            self.wants_grant
                .shrink_to(self.engine.total_wants() as u64 * WANT_ENTRY_BYTES);
            let event = tokio::select! {
                _ = stopped(&mut self.shutdown) => return,
                _ = sweep.tick() => {
                    self.senders.retain(|_, tx| !tx.is_closed());
                    continue;
                }
                () = tokio::time::sleep(BUDGET_RETRY_INTERVAL), if self.budget_blocked => continue,
                event = self.events_rx.recv() => event,
            };
            let Some(event) = event else {
                return;
            };
            match event {
                Event::Message {
                    peer,
                    version,
                    message,
                    _grant,
                } => {
                    self.reserve_wants(&message);
                    self.engine.receive(peer, version, &message);
                }
                Event::Answers {
                    peer,
                    id,
                    answers,
                    mut grant,
                    last,
                } => {
                    if last {
                        self.lookups_in_flight -= 1;
                    }
                    let outgoing = self.engine.complete_part(peer, id, answers, last);
                    grant.shrink_to(outgoing.iter().map(|o| o.frame.len() as u64).sum());
                    for out in outgoing {
                        let frame_grant = grant.split(out.frame.len() as u64);
                        self.dispatch(out, frame_grant);
                    }
                }
                Event::Sent {
                    peer,
                    epoch,
                    frame_len,
                } => self.engine.message_done(peer, epoch, frame_len),
                Event::PeerFailed { peer } => {
                    self.engine.remove_peer(&peer);
                    self.senders.remove(&peer);
                }
            }
        }
    }

    /// Hands `out` to the peer's sender, starting one if there is none (or it has exited).
    fn dispatch(&mut self, out: Outgoing, grant: Grant) {
        let mut item = (out, grant);
        for _ in 0..2 {
            let peer = item.0.peer;
            let tx = self.senders.entry(peer).or_insert_with(|| {
                let (tx, rx) = mpsc::channel(PEER_OUTBOX_CAPACITY);
                let sender = Sender {
                    peer,
                    control: self.control.clone(),
                    stream: None,
                    config: self.config.clone(),
                    stats: self.stats.clone(),
                    events: self.events_tx.clone(),
                    unresponsive: self.unresponsive.clone(),
                    shutdown: self.shutdown.clone(),
                };
                tokio::spawn(sender.run(rx));
                tx
            });
            match tx.try_send(item) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Closed(back)) => {
                    self.senders.remove(&peer);
                    item = back;
                }
                Err(mpsc::error::TrySendError::Full(back)) => {
                    // Not reachable by construction (see PEER_OUTBOX_CAPACITY); give up on it.
                    item = back;
                    break;
                }
            }
        }
        let out = item.0;
        bump(&self.stats.stream_errors, 1);
        self.engine
            .message_done(out.peer, out.epoch, out.frame.len());
    }
}

/// Looks up the wants of one batch and sends `(i, answer)` for `batch.wants[i]` on `answers`
/// as soon as it is known: the WANT_BLOCKs through `get_each` (each block as its range is
/// read) while the WANT_HAVEs' sizes are asked at the same time; a WANT_HAVE of a block of at
/// most `replace_size` bytes is answered with the block when it can be read, else with HAVE.
/// A want whose answer is never sent (a panic) counts as failed when the batch ends.
async fn lookup(
    store: &dyn Blockstore,
    batch: &Batch,
    replace_size: u32,
    answers: mpsc::Sender<(usize, Lookup)>,
) {
    let peer = batch.peer;
    let answer = |i: usize, found: Lookup| {
        // The receiver only goes away when the server stops.
        // Never full (one slot per want, each answered once); were it full, the want would
        // count as failed when the batch ends, as an unanswered one does.
        let _ = answers.try_send((i, found));
    };
    let failed = |cid: &Cid, error: &dyn std::error::Error| {
        // Counted (store_errors); one line per want would flood the log during an outage.
        tracing::debug!(%peer, %cid, %error, "bitswap: block store failed");
    };
    let of_type = |want_type: WantType| -> Vec<usize> {
        (0..batch.wants.len())
            .filter(|&i| batch.wants[i].want_type == want_type)
            .collect()
    };

    let blocks = of_type(WantType::Block);
    let read_blocks = async {
        if blocks.is_empty() {
            return;
        }
        let cids: Vec<Cid> = blocks.iter().map(|&i| batch.wants[i].cid).collect();
        store
            .get_each(&cids, &mut |k, got| {
                let i = blocks[k];
                answer(
                    i,
                    match got {
                        Ok(Some(data)) => Lookup::Block(data),
                        Ok(None) => Lookup::Absent,
                        Err(error) => {
                            failed(&batch.wants[i].cid, &error);
                            Lookup::Failed
                        }
                    },
                );
            })
            .await;
    };

    let haves = of_type(WantType::Have);
    let find_haves = async {
        let sizes =
            futures::future::join_all(haves.iter().map(|&i| store.size(&batch.wants[i].cid))).await;
        let mut small = Vec::new();
        for (&i, size) in haves.iter().zip(sizes) {
            match size {
                Ok(Some(size)) if size <= replace_size => small.push(i),
                Ok(Some(_)) => answer(i, Lookup::Present),
                Ok(None) => answer(i, Lookup::Absent),
                Err(error) => {
                    failed(&batch.wants[i].cid, &error);
                    answer(i, Lookup::Failed);
                }
            }
        }
        if !small.is_empty() {
            let cids: Vec<Cid> = small.iter().map(|&i| batch.wants[i].cid).collect();
            for (&i, got) in small.iter().zip(store.get_many(&cids).await) {
                // Otherwise the HAVE already found stands.
                answer(
                    i,
                    match got {
                        Ok(Some(data)) => Lookup::Block(data),
                        _ => Lookup::Present,
                    },
                );
            }
        }
    };
    futures::join!(read_blocks, find_haves);
}

/// Why a response could not be written.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("opening {protocol} to {peer} failed: {source}")]
    Open {
        peer: PeerId,
        protocol: StreamProtocol,
        #[source]
        source: libp2p_stream::OpenStreamError,
    },
    #[error("opening {protocol} to {peer} timed out")]
    OpenTimeout {
        peer: PeerId,
        protocol: StreamProtocol,
    },
    #[error("writing to {peer} failed: {source}")]
    Write {
        peer: PeerId,
        #[source]
        source: std::io::Error,
    },
    #[error("writing to {peer} timed out")]
    WriteTimeout { peer: PeerId },
}

impl SendError {
    /// Whether the peer stopped reading (as opposed to refusing or closing the stream).
    fn is_timeout(&self) -> bool {
        matches!(self, Self::OpenTimeout { .. } | Self::WriteTimeout { .. })
    }
}

/// Writes one peer's answers on the outbound stream it opens.
struct Sender {
    peer: PeerId,
    control: libp2p_stream::Control,
    stream: Option<(ProtocolVersion, Stream)>,
    config: Arc<BitswapConfig>,
    stats: Arc<Stats>,
    events: mpsc::Sender<Event>,
    unresponsive: mpsc::Sender<PeerId>,
    shutdown: watch::Receiver<bool>,
}

impl Sender {
    async fn run(mut self, mut rx: mpsc::Receiver<(Outgoing, Grant)>) {
        let peer = self.peer;
        let stats = self.stats.clone();
        bump(&stats.outbound_streams, 1);
        let _gauge = DecOnDrop(&stats.outbound_streams);
        loop {
            let next = tokio::select! {
                _ = stopped(&mut self.shutdown) => return,
                next = tokio::time::timeout(self.config.outbound_idle_timeout, rx.recv()) => next,
            };
            let (out, _grant) = match next {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) => {
                    // Idle: refuse new messages, write those already queued, then end.
                    rx.close();
                    continue;
                }
            };
            let outcome = self.deliver(&out).await;
            match &outcome {
                Ok(()) => {
                    let c = out.counts;
                    bump(&self.stats.messages_sent, 1);
                    bump(&self.stats.bytes_sent, out.frame.len() as u64);
                    bump(&self.stats.blocks_sent, c.blocks);
                    bump(&self.stats.block_bytes_sent, c.block_bytes);
                    bump(&self.stats.haves_sent, c.haves);
                    bump(&self.stats.dont_haves_sent, c.dont_haves);
                }
                Err(error) => {
                    bump(&self.stats.stream_errors, 1);
                    bump(&self.stats.peers_dropped, 1);
                    tracing::debug!(%error, "bitswap: dropping peer");
                    if error.is_timeout() {
                        let _ = self.unresponsive.try_send(peer);
                    }
                }
            }
            let event = match outcome {
                Ok(()) => Event::Sent {
                    peer,
                    epoch: out.epoch,
                    frame_len: out.frame.len(),
                },
                Err(_) => Event::PeerFailed { peer },
            };
            let failed = matches!(event, Event::PeerFailed { .. });
            tokio::select! {
                _ = stopped(&mut self.shutdown) => return,
                _ = self.events.send(event) => {}
            }
            if failed {
                // The engine forgets the peer; what is queued is dropped with the queue.
                return;
            }
        }
        if let Some((_, mut stream)) = self.stream.take() {
            let _ = tokio::time::timeout(
                self.config.write_timeout,
                futures::AsyncWriteExt::close(&mut stream),
            )
            .await;
        }
    }

    /// Writes `out`, opening the stream if needed; on a write error, reopens once (the peer may
    /// have closed an idle stream).
    async fn deliver(&mut self, out: &Outgoing) -> Result<(), SendError> {
        let peer = self.peer;
        let timeout = self.config.write_timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let stream = match &mut self.stream {
                Some((version, stream)) if *version == out.version => stream,
                _ => {
                    self.stream = None;
                    let protocol = out.version.protocol();
                    let opened = tokio::time::timeout(
                        timeout,
                        self.control.open_stream(peer, protocol.clone()),
                    )
                    .await
                    .map_err(|_| SendError::OpenTimeout {
                        peer,
                        protocol: protocol.clone(),
                    })?
                    .map_err(|source| SendError::Open {
                        peer,
                        protocol,
                        source,
                    })?;
                    &mut self.stream.insert((out.version, opened)).1
                }
            };
            match tokio::time::timeout(timeout, write_frame(stream, &out.frame)).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(source)) => {
                    self.stream = None;
                    if attempt >= 2 {
                        return Err(SendError::Write { peer, source });
                    }
                }
                Err(_) => {
                    self.stream = None;
                    return Err(SendError::WriteTimeout { peer });
                }
            }
        }
    }
}
