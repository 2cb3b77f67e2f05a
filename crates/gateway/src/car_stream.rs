//! A CARv1 byte stream of a DAG walk, with a bounded prefetch window. Shared by the HTTP
//! handler and `hydrant export`.
//!
//! Spec: trustless-gateway.md § "CAR Responses" (version 1, `order=dfs`, `dups`, no identity
//! blocks), § "Streaming and Missing Child Blocks"; carv1.md for the byte format.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;
use futures::Stream;
use hydrant_blocks::codes::IDENTITY;
use hydrant_blocks::{Blockstore, BlockstoreError};
use hydrant_unixfs::{DagError, DagScope, DagWalker, EntityBytes, WalkerLimits};

use crate::passthrough::{Run, Stored};

/// Default prefetch window, in blocks: at most this many blocks are read ahead of the one
/// being sent, so a stream holds at most `window × 2 MiB` of block data whatever the DAG size.
pub const DEFAULT_PREFETCH_WINDOW: usize = 16;

/// What to put in a CAR stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarRequest {
    /// The single root written in the CARv1 header (the CID the client asked for).
    pub root: Cid,
    /// Blocks that verify the content path from `root` down to (not including) `terminus`,
    /// sent first and in order; empty when there is no path. Identity CIDs are skipped.
    pub path_blocks: Vec<Cid>,
    /// Where the DAG walk starts (`root` when there is no path).
    pub terminus: Cid,
    /// `dag-scope` of the walk under `terminus`.
    pub scope: DagScope,
    /// `entity-bytes`, if requested (implies [`DagScope::Entity`]).
    pub entity_bytes: Option<EntityBytes>,
    /// `dups=y` (true) or `dups=n` (false).
    pub dups: bool,
}

impl CarRequest {
    /// The whole DAG (or `scope` of it) under `root`, no path.
    pub fn new(root: Cid, scope: DagScope, dups: bool) -> Self {
        CarRequest {
            root,
            path_blocks: Vec::new(),
            terminus: root,
            scope,
            entity_bytes: None,
            dups,
        }
    }
}

/// Tuning of [`car_stream`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CarStreamOptions {
    /// Most blocks read ahead of the one being sent (default [`DEFAULT_PREFETCH_WINDOW`]); at
    /// least 1 is used.
    pub prefetch_window: usize,
    /// Bytes of block data to read ahead, when bounded (`None`: the window alone bounds it).
    /// Block sizes are unknown until read, so the window ramps up: the first read asks for
    /// `prefetch_bytes / 2 MiB` blocks (the largest a block can be), each later read for twice
    /// the one before, but never more than `prefetch_bytes / largest block seen so far`, and
    /// always 1 to `prefetch_window`. With the default 4 MiB and 16: a stream of 1 MiB blocks
    /// reads 4 at a time, one of 256 KiB blocks ramps to 16 (one coalesced range each), and a
    /// stream holds about `prefetch_bytes`; blocks growing mid-stream can overshoot it once, up
    /// to `prefetch_window × 2 MiB`.
    pub prefetch_bytes: Option<u64>,
    /// Memory bounds of the DAG walk.
    pub walker_limits: WalkerLimits,
    /// Send the sections of a stored CAR as they are stored when they are the walk's blocks
    /// in the walk's order (default `true`; DESIGN.md § "Gateway passthrough of stored CAR
    /// sections"). Only for `dag-scope=all` without `entity-bytes` (from the terminus on,
    /// after any path blocks); the bytes sent are the same either way. The file is read at
    /// most `prefetch_bytes` at a time (4 MiB when `None`; at least one largest section), the
    /// first read 256 KiB, each next one twice the one before.
    pub passthrough: bool,
}

/// Bytes per ranged read of a stored CAR in passthrough when
/// [`CarStreamOptions::prefetch_bytes`] is `None`.
pub const DEFAULT_PASSTHROUGH_CHUNK: u64 = 4 * 1024 * 1024;

impl Default for CarStreamOptions {
    fn default() -> Self {
        CarStreamOptions {
            prefetch_window: DEFAULT_PREFETCH_WINDOW,
            prefetch_bytes: None,
            walker_limits: WalkerLimits::default(),
            passthrough: true,
        }
    }
}

/// Why a CAR stream stopped early. The bytes sent before it form a valid but incomplete CAR.
#[derive(Debug, thiserror::Error)]
pub enum CarStreamError {
    /// A block of the DAG is not in the store (trustless-gateway.md § "Streaming and
    /// Missing Child Blocks": the stream is terminated).
    #[error("block {cid} is missing")]
    MissingBlock {
        /// The missing block.
        cid: Cid,
    },
    /// The block store failed.
    #[error(transparent)]
    Store(#[from] BlockstoreError),
    /// A block could not be walked (undecodable under its codec, limits reached).
    #[error(transparent)]
    Dag(#[from] DagError),
}

/// The CARv1 bytes of `request`: the header (roots = `[request.root]`), then one section per
/// block, path blocks first, then the walk of `request.terminus` in DFS order. Each item is
/// the header or one section (`varint | CID | block`).
///
/// Reads go through [`Blockstore::get_many`] a window of upcoming blocks at a time
/// ([`CarStreamOptions::prefetch_window`]); memory stays bounded by that window plus the
/// walker's bounds, whatever the DAG size. Nothing is read until the stream is polled.
///
/// # Errors
/// The stream yields one `Err` and then ends when a block is missing, the store fails, or
/// the walk fails ([`CarStreamError`]); the client then holds an incomplete CAR.
///
/// # Cancel safety
/// Dropping the stream stops all work; nothing is left behind.
pub fn car_stream(
    blocks: Arc<dyn Blockstore>,
    request: CarRequest,
    options: CarStreamOptions,
) -> impl Stream<Item = Result<Bytes, CarStreamError>> + Send + 'static {
    let walker = match request.entity_bytes {
        Some(range) => DagWalker::with_entity_bytes(request.terminus, range, request.dups),
        None => DagWalker::new(request.terminus, request.scope, request.dups),
    }
    .with_limits(options.walker_limits);
    let passthrough =
        options.passthrough && request.entity_bytes.is_none() && request.scope == DagScope::All;
    let state = State {
        blocks,
        header: Some(Bytes::from(hydrant_car::encode_v1_header(&[request.root]))),
        path: request.path_blocks.into(),
        walker,
        buffer: HashMap::new(),
        window: options.prefetch_window.max(1),
        prefetch_bytes: options.prefetch_bytes,
        largest_seen: 0,
        ramp: options.prefetch_bytes.map_or(usize::MAX, |b| {
            usize::try_from(b / hydrant_car::MAX_BLOCK_SIZE as u64).map_or(usize::MAX, |n| n.max(1))
        }),
        pending_error: None,
        done: false,
        open_stored: passthrough,
        stored: None,
    };
    futures::stream::unfold(state, |mut state| async move {
        let item = state.next_item().await?;
        if item.is_err() {
            state.done = true;
        }
        Some((item, state))
    })
}

struct State {
    blocks: Arc<dyn Blockstore>,
    header: Option<Bytes>,
    path: VecDeque<Cid>,
    walker: DagWalker,
    /// Prefetched blocks; at most `window` entries, all among the walker's upcoming CIDs.
    buffer: HashMap<Cid, Bytes>,
    window: usize,
    prefetch_bytes: Option<u64>,
    /// Largest block read so far, bytes (0 before the first).
    largest_seen: u64,
    /// Blocks the next read may ask for at most, doubling after each read.
    ramp: usize,
    /// An error found after the block that caused it was sent; yielded next.
    pending_error: Option<CarStreamError>,
    done: bool,
    /// Whether to look for a stored CAR to pass through at the walk's first block.
    open_stored: bool,
    /// The stored CAR being passed through, while it is.
    stored: Option<Stored>,
}

impl State {
    async fn next_item(&mut self) -> Option<Result<Bytes, CarStreamError>> {
        if self.done {
            return None;
        }
        if let Some(header) = self.header.take() {
            return Some(Ok(header));
        }
        if let Some(err) = self.pending_error.take() {
            return Some(Err(err));
        }
        while let Some(cid) = self.path.pop_front() {
            if cid.hash().code() == IDENTITY {
                continue;
            }
            return Some(match self.blocks.get(&cid).await {
                Ok(Some(data)) => Ok(section(&cid, &data)),
                Ok(None) => Err(CarStreamError::MissingBlock { cid }),
                Err(e) => Err(e.into()),
            });
        }
        let mut cid = self.walker.next_wanted()?;
        if std::mem::take(&mut self.open_stored) {
            let chunk = self.prefetch_bytes.unwrap_or(DEFAULT_PASSTHROUGH_CHUNK);
            self.stored = Stored::open(self.blocks.clone(), &cid, chunk).await;
        }
        if let Some(stored) = &mut self.stored {
            match stored.run(&mut self.walker).await {
                Run::Sections(bytes, error) => {
                    self.pending_error = error.map(Into::into);
                    return Some(Ok(bytes));
                }
                Run::Miss => {
                    // One block by the block-by-block path; the file stays open.
                    return Some(match self.blocks.get(&cid).await {
                        Ok(Some(data)) => {
                            if let Err(e) = self.walker.on_block(&cid, &data) {
                                self.pending_error = Some(e.into());
                            }
                            Ok(section(&cid, &data))
                        }
                        Ok(None) => Err(CarStreamError::MissingBlock { cid }),
                        Err(e) => Err(e.into()),
                    });
                }
                Run::Done => {
                    self.stored = None;
                    cid = self.walker.next_wanted()?;
                }
            }
        }
        let data = match self.take_block(cid).await {
            Ok(data) => data,
            Err(e) => return Some(Err(e)),
        };
        if let Err(e) = self.walker.on_block(&cid, &data) {
            self.pending_error = Some(e.into());
        }
        Some(Ok(section(&cid, &data)))
    }

    /// Blocks to read at once: see [`CarStreamOptions::prefetch_bytes`].
    fn read_ahead(&self) -> usize {
        let by_size = match (self.prefetch_bytes, self.largest_seen) {
            (Some(bytes), seen) if seen > 0 => usize::try_from(bytes / seen).unwrap_or(usize::MAX),
            _ => usize::MAX,
        };
        self.ramp.min(by_size).clamp(1, self.window)
    }

    /// The bytes of `cid`, from the prefetch buffer or by reading the next window.
    async fn take_block(&mut self, cid: Cid) -> Result<Bytes, CarStreamError> {
        if let Some(data) = self.buffer.remove(&cid) {
            return Ok(data);
        }
        let window = self.read_ahead();
        self.ramp = self.ramp.saturating_mul(2);
        let mut upcoming: Vec<Cid> = Vec::with_capacity(window);
        for c in self.walker.upcoming(window) {
            if !upcoming.contains(&c) {
                upcoming.push(c);
            }
        }
        if !upcoming.contains(&cid) {
            upcoming.insert(0, cid);
            upcoming.truncate(window);
        }
        self.buffer.retain(|c, _| upcoming.contains(c));
        let to_read: Vec<Cid> = upcoming
            .into_iter()
            .filter(|c| !self.buffer.contains_key(c))
            .collect();
        let results = self.blocks.get_many(&to_read).await;
        let mut wanted = None;
        for (c, result) in to_read.iter().zip(results) {
            if let Ok(Some(data)) = &result {
                self.largest_seen = self.largest_seen.max(data.len() as u64);
            }
            if *c == cid {
                wanted = Some(result);
            } else if let Ok(Some(data)) = result {
                // Failures of blocks read ahead are reported when (if) they are wanted.
                self.buffer.insert(*c, data);
            }
        }
        match wanted {
            Some(Ok(Some(data))) => Ok(data),
            Some(Ok(None)) => Err(CarStreamError::MissingBlock { cid }),
            Some(Err(e)) => Err(e.into()),
            // A store that answered fewer results than asked.
            None => Err(CarStreamError::Store(BlockstoreError::Index {
                cid,
                detail: "get_many returned too few results".into(),
            })),
        }
    }
}

/// One CARv1 section: `varint(len(cid) + len(data)) | cid | data`.
fn section(cid: &Cid, data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 64);
    hydrant_car::encode_section(cid, data, &mut out);
    Bytes::from(out)
}
