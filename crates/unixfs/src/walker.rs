//! A sans-I/O depth-first DAG walker: it says which block it wants next, is handed that
//! block's bytes, and pushes the links it must follow. It never holds block data.
//!
//! Spec: trustless-gateway.md § "`dag-scope`", § "`entity-bytes`", § "CAR `order`" (`dfs`),
//! § "CAR `dups`", and "A Gateway MUST NOT include virtual blocks identified by identity CIDs".

use std::collections::HashSet;
use std::str::FromStr;

use cid::Cid;

use crate::error::DagError;
use crate::links::{CODEC_DAG_PB, MULTIHASH_IDENTITY, links};
use crate::pb::{DataType, PbNode, UnixFsData};

/// Default bound on CIDs waiting on the walker's stack ([`WalkerLimits::max_pending`]).
///
/// A DFS stack holds at most `depth × fanout` CIDs; 262 144 CIDs is about 30 MiB and covers
/// e.g. 128 levels of 2048-link nodes. A block is at most 2 MiB, so a single DAG-PB block
/// cannot carry more than about 50 000 links.
pub const DEFAULT_MAX_PENDING: usize = 1 << 18;

/// Default bound on distinct blocks remembered when duplicates are suppressed
/// ([`WalkerLimits::max_seen`]): 4 194 304 CIDs, about 450 MiB in the worst case and enough
/// for a 1 TiB DAG of 256 KiB blocks.
pub const DEFAULT_MAX_SEEN: usize = 1 << 22;

/// How much of the DAG under the root to walk.
///
/// Spec: trustless-gateway.md § "`dag-scope`".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DagScope {
    /// `all` (the default): the entire DAG reachable from the root.
    #[default]
    All,
    /// `entity`: the blocks needed to read a whole UnixFS file, or enumerate a UnixFS
    /// directory (for a HAMT: all its shards, but none of the entries' blocks). For anything
    /// that is not UnixFS (raw blocks are files), the same as `Block`.
    Entity,
    /// `block`: the root block alone.
    Block,
}

impl DagScope {
    /// The query-parameter spelling: `all`, `entity`, `block`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Entity => "entity",
            Self::Block => "block",
        }
    }
}

/// Why a `dag-scope` or `entity-bytes` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// `dag-scope` is none of `all`, `entity`, `block`.
    #[error("dag-scope must be one of all, entity, block")]
    InvalidDagScope,
    /// `entity-bytes` is not `from:to` with integers (and `*` for `to`), or `from > to`.
    #[error(
        "entity-bytes must be from:to with from <= to (integers, negative from the end, to may be *)"
    )]
    InvalidEntityBytes,
}

impl FromStr for DagScope {
    type Err = ParamError;

    /// Parses a `dag-scope` query value.
    ///
    /// # Errors
    /// [`ParamError::InvalidDagScope`] for anything other than `all`, `entity`, `block`.
    fn from_str(s: &str) -> Result<Self, ParamError> {
        match s {
            "all" => Ok(Self::All),
            "entity" => Ok(Self::Entity),
            "block" => Ok(Self::Block),
            _ => Err(ParamError::InvalidDagScope),
        }
    }
}

/// An `entity-bytes=from:to` byte range of a file entity, before the file size is known.
///
/// `from` and `to` are byte offsets, inclusive; a negative value counts from the end of the
/// file (`-1` is the last byte); `to = None` is `*` (end of file).
///
/// Spec: trustless-gateway.md § "`entity-bytes`".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntityBytes {
    /// First byte offset (negative: from the end).
    pub from: i64,
    /// Last byte offset, inclusive (negative: from the end; `None`: `*`).
    pub to: Option<i64>,
}

impl EntityBytes {
    /// The inclusive byte range `(first, last)` this request covers in a file of `size` bytes:
    /// clamped to the file, or `None` when it is empty or entirely outside the file (the
    /// spec then makes the request equivalent to `dag-scope=block`).
    pub fn resolve(&self, size: u64) -> Option<(u64, u64)> {
        if size == 0 {
            return None;
        }
        let size_i = i128::from(size);
        let from = match i128::from(self.from) {
            f if f < 0 => (size_i + f).max(0),
            f => f,
        };
        let to = match self.to.map(i128::from) {
            None => size_i - 1,
            Some(t) if t < 0 => size_i + t,
            Some(t) => t.min(size_i - 1),
        };
        if to < 0 || from > to || from >= size_i {
            return None;
        }
        // Both are now within 0..size, so they fit in u64.
        Some((u64::try_from(from).ok()?, u64::try_from(to).ok()?))
    }
}

impl FromStr for EntityBytes {
    type Err = ParamError;

    /// Parses `from:to` (e.g. `0:*`, `-1024:*`, `499:-1000`, `0:0`).
    ///
    /// # Errors
    /// [`ParamError::InvalidEntityBytes`] when either side is not an integer (`to` may be
    /// `*`), or both sides have the same sign and `from > to`.
    fn from_str(s: &str) -> Result<Self, ParamError> {
        let (from, to) = s.split_once(':').ok_or(ParamError::InvalidEntityBytes)?;
        let from: i64 = from.parse().map_err(|_| ParamError::InvalidEntityBytes)?;
        let to = match to {
            "*" => None,
            t => Some(
                t.parse::<i64>()
                    .map_err(|_| ParamError::InvalidEntityBytes)?,
            ),
        };
        if let Some(t) = to
            && (from >= 0) == (t >= 0)
            && from > t
        {
            return Err(ParamError::InvalidEntityBytes);
        }
        Ok(EntityBytes { from, to })
    }
}

/// Memory bounds of one [`DagWalker`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkerLimits {
    /// Most CIDs waiting on the DFS stack at once (default [`DEFAULT_MAX_PENDING`]).
    pub max_pending: usize,
    /// Most distinct blocks remembered to suppress duplicates when `dups` is false (default
    /// [`DEFAULT_MAX_SEEN`]). Unused when duplicates are sent.
    pub max_seen: usize,
}

impl Default for WalkerLimits {
    fn default() -> Self {
        WalkerLimits {
            max_pending: DEFAULT_MAX_PENDING,
            max_seen: DEFAULT_MAX_SEEN,
        }
    }
}

/// What to do with a block once it has been emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Follow every link (dag-scope=all, and everything under a file in scope=entity).
    All,
    /// Follow nothing.
    Block,
    /// The root of a dag-scope=entity walk; what to follow depends on what the block is.
    Entity(Option<EntityBytes>),
    /// A node of a file whose content starts at absolute byte `offset`; follow only the
    /// children holding bytes of `first..=last`.
    FileRange { offset: u64, first: u64, last: u64 },
    /// A HAMT shard in scope=entity: follow sub-shards only, not entries.
    HamtShard,
}

#[derive(Clone, Copy, Debug)]
struct Frame {
    cid: Cid,
    mode: Mode,
}

/// A sans-I/O, depth-first, left-to-right DAG walker.
///
/// Drive it with a loop: `while let Some(cid) = walker.next_wanted() { fetch cid; emit it;
/// walker.on_block(&cid, &data)? }`. Blocks come out in "car-order=dfs": a block, then
/// (recursively) each of its links in the order the block lists them.
///
/// - With `dups = true` every occurrence of a block in the walk is wanted; with
///   `dups = false` a seen set makes each distinct CID wanted once (a repeated subtree is
///   skipped whole, since it was walked in full the first time).
/// - Identity CIDs (multihash 0x00) are never wanted: their data is the digest, which the
///   walker reads itself to follow any links inside.
/// - A block whose codec this crate cannot read links from (see [`crate::links`]) is treated
///   as a leaf: it is still emitted, its links (if any) are not followed.
///
/// Memory: the DFS stack holds O(depth × fanout) CIDs (bounded by
/// [`WalkerLimits::max_pending`]) plus, when `dups = false`, one CID per distinct block
/// emitted (bounded by [`WalkerLimits::max_seen`]). No block data is kept.
///
/// Spec: trustless-gateway.md § "`dag-scope`", § "`entity-bytes`", § "CAR `order`",
/// § "CAR `dups`".
#[derive(Debug)]
pub struct DagWalker {
    stack: Vec<Frame>,
    current: Option<Frame>,
    dups: bool,
    seen: HashSet<Cid>,
    limits: WalkerLimits,
}

impl DagWalker {
    /// A walk of `scope` under `root`; `dups`: whether repeated blocks are wanted again.
    pub fn new(root: Cid, scope: DagScope, dups: bool) -> Self {
        let mode = match scope {
            DagScope::All => Mode::All,
            DagScope::Entity => Mode::Entity(None),
            DagScope::Block => Mode::Block,
        };
        DagWalker {
            stack: vec![Frame { cid: root, mode }],
            current: None,
            dups,
            seen: HashSet::new(),
            limits: WalkerLimits::default(),
        }
    }

    /// A dag-scope=entity walk restricted to `range` (trustless-gateway.md § "`entity-bytes`"):
    /// for a UnixFS file (dag-pb File or a raw block), only the blocks holding those bytes
    /// (located with `Data.blocksizes`); for anything else, the same as
    /// `new(root, DagScope::Entity, dups)`. A range that is empty or entirely outside the
    /// file yields the root block alone.
    pub fn with_entity_bytes(root: Cid, range: EntityBytes, dups: bool) -> Self {
        let mut walker = Self::new(root, DagScope::Entity, dups);
        walker.stack[0].mode = Mode::Entity(Some(range));
        walker
    }

    /// Replaces the default memory bounds.
    pub fn with_limits(mut self, limits: WalkerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The CID of the next block the walk needs, or `None` when the walk is complete.
    ///
    /// Calling it again before [`Self::on_block`] returns the same CID.
    pub fn next_wanted(&mut self) -> Option<Cid> {
        loop {
            if let Some(frame) = &self.current {
                return Some(frame.cid);
            }
            let frame = self.stack.pop()?;
            if frame.cid.hash().code() == MULTIHASH_IDENTITY {
                // Never emitted; follow links inside it if it has any. Its content is at
                // most 64 bytes (the largest digest `Cid` holds), so a decoding failure
                // only means it has no links we can follow.
                let data = frame.cid.hash().digest().to_vec();
                let _ = self.expand(frame, &data);
                continue;
            }
            if !self.dups && self.seen.contains(&frame.cid) {
                continue;
            }
            self.current = Some(frame);
        }
    }

    /// Up to `n` CIDs the walk will most likely want next, in order, starting with the one
    /// [`Self::next_wanted`] returned: a hint for prefetching (the walk may still want
    /// blocks in between, the children of these).
    pub fn upcoming(&self, n: usize) -> impl Iterator<Item = Cid> + '_ {
        self.current
            .iter()
            .chain(self.stack.iter().rev())
            .filter(|f| f.cid.hash().code() != MULTIHASH_IDENTITY)
            .filter(|f| self.dups || !self.seen.contains(&f.cid))
            .map(|f| f.cid)
            .take(n)
    }

    /// Whether `cid` was already walked and will not be wanted again: only with
    /// `dups = false` (with `dups = true` every occurrence is wanted, so always `false`).
    pub fn has_seen(&self, cid: &Cid) -> bool {
        !self.dups && self.seen.contains(cid)
    }

    /// Number of CIDs waiting on the DFS stack (for metrics and tests).
    pub fn pending(&self) -> usize {
        self.stack.len() + usize::from(self.current.is_some())
    }

    /// Hands the walker the bytes of the block [`Self::next_wanted`] returned (already
    /// emitted by the caller) so it can push the links to follow. The bytes are not kept.
    ///
    /// After an error the walk cannot go on; drop the walker.
    ///
    /// # Errors
    /// - [`DagError::UnexpectedBlock`] when `cid` is not the wanted CID;
    /// - a decoding error when the block must be decoded to be walked and is invalid for its
    ///   codec (see [`crate::links`]), or is a UnixFS file node whose `blocksizes` do not
    ///   match its links ([`DagError::BlocksizesMismatch`]);
    /// - [`DagError::LimitExceeded`] when a [`WalkerLimits`] bound would be crossed.
    pub fn on_block(&mut self, cid: &Cid, data: &[u8]) -> Result<(), DagError> {
        let frame = match self.current.take() {
            Some(frame) if frame.cid == *cid => frame,
            other => {
                let expected = other.map(|f| Box::new(f.cid));
                self.current = other;
                return Err(DagError::UnexpectedBlock {
                    expected,
                    got: *cid,
                });
            }
        };
        if !self.dups {
            if self.seen.len() >= self.limits.max_seen {
                return Err(DagError::LimitExceeded {
                    cid: *cid,
                    what: "distinct blocks",
                    limit: self.limits.max_seen,
                });
            }
            self.seen.insert(*cid);
        }
        self.expand(frame, data)
    }

    /// Pushes the children of `frame` (whose bytes are `data`) in reverse, so the leftmost
    /// is popped first.
    fn expand(&mut self, frame: Frame, data: &[u8]) -> Result<(), DagError> {
        let children = children(&frame, data)?;
        if self.stack.len() + children.len() > self.limits.max_pending {
            return Err(DagError::LimitExceeded {
                cid: frame.cid,
                what: "pending links",
                limit: self.limits.max_pending,
            });
        }
        self.stack.extend(children.into_iter().rev());
        Ok(())
    }
}

/// The frames to walk after `frame`, in DFS order.
fn children(frame: &Frame, data: &[u8]) -> Result<Vec<Frame>, DagError> {
    let cid = &frame.cid;
    let all = |cids: Vec<Cid>| {
        cids.into_iter()
            .map(|cid| Frame {
                cid,
                mode: Mode::All,
            })
            .collect()
    };
    match frame.mode {
        Mode::Block => Ok(Vec::new()),
        Mode::All => match links(cid, data) {
            Ok(cids) => Ok(all(cids)),
            Err(DagError::UnsupportedCodec { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        },
        Mode::Entity(range) => {
            if cid.codec() != CODEC_DAG_PB {
                // raw: the block is the whole file; anything else is not UnixFS.
                return Ok(Vec::new());
            }
            let node = PbNode::decode(cid, data)?;
            let Some(ufs) = node
                .data
                .as_ref()
                .and_then(|d| UnixFsData::decode(cid, d).ok())
            else {
                // DAG-PB that is not UnixFS: entity is the same as block.
                return Ok(Vec::new());
            };
            match ufs.data_type {
                t if t.is_file() => match range {
                    None => Ok(all(node.links.into_iter().map(|l| l.cid).collect())),
                    Some(range) => {
                        let size = file_size(&ufs);
                        match range.resolve(size) {
                            None => Ok(Vec::new()),
                            Some((first, last)) => {
                                file_range_children(cid, &node, &ufs, 0, first, last)
                            }
                        }
                    }
                },
                DataType::HamtShard => Ok(hamt_children(node, &ufs)),
                _ => Ok(Vec::new()),
            }
        }
        Mode::FileRange {
            offset,
            first,
            last,
        } => {
            if cid.codec() != CODEC_DAG_PB {
                // raw leaves (and anything else) hold no further links.
                return Ok(Vec::new());
            }
            let node = PbNode::decode(cid, data)?;
            let ufs = UnixFsData::decode(cid, node.data.as_deref().unwrap_or_default())?;
            if !ufs.data_type.is_file() {
                return Err(DagError::InvalidUnixFs {
                    cid: *cid,
                    reason: format!("file chunk has type {:?}", ufs.data_type),
                });
            }
            file_range_children(cid, &node, &ufs, offset, first, last)
        }
        Mode::HamtShard => {
            if cid.codec() != CODEC_DAG_PB {
                return Ok(Vec::new());
            }
            let node = PbNode::decode(cid, data)?;
            match node
                .data
                .as_ref()
                .and_then(|d| UnixFsData::decode(cid, d).ok())
            {
                Some(ufs) if ufs.data_type == DataType::HamtShard => Ok(hamt_children(node, &ufs)),
                _ => Ok(Vec::new()),
            }
        }
    }
}

/// File size in bytes as the offsets see it: bytes in this node plus the sum of `blocksizes`
/// (unixfs.md § "`decode(PBNode.Data).Blocksize`"; `filesize` must equal it).
fn file_size(ufs: &UnixFsData) -> u64 {
    ufs.blocksizes
        .iter()
        .fold(ufs.data.len() as u64, |acc, b| acc.saturating_add(*b))
}

/// Children of a file node whose content starts at `offset` that hold any byte of
/// `first..=last` (unixfs.md § "The sister-lists", § "Offset List").
fn file_range_children(
    cid: &Cid,
    node: &PbNode,
    ufs: &UnixFsData,
    offset: u64,
    first: u64,
    last: u64,
) -> Result<Vec<Frame>, DagError> {
    if node.links.len() != ufs.blocksizes.len() {
        return Err(DagError::BlocksizesMismatch {
            cid: *cid,
            links: node.links.len(),
            blocksizes: ufs.blocksizes.len(),
        });
    }
    let mut pos = offset.saturating_add(ufs.data.len() as u64);
    let mut out = Vec::new();
    for (link, size) in node.links.iter().zip(&ufs.blocksizes) {
        let end = pos.saturating_add(*size);
        if *size > 0 && pos <= last && end > first {
            out.push(Frame {
                cid: link.cid,
                mode: Mode::FileRange {
                    offset: pos,
                    first,
                    last,
                },
            });
        }
        pos = end;
    }
    Ok(out)
}

/// Sub-shards of a HAMT shard: links whose name is exactly the bucket prefix (entries carry
/// the prefix followed by the entry name). Spec: unixfs.md § "HAMT Structure and Parameters".
fn hamt_children(node: PbNode, ufs: &UnixFsData) -> Vec<Frame> {
    let Some(width) = ufs.hamt_prefix_len() else {
        return Vec::new();
    };
    node.links
        .into_iter()
        .filter(|l| l.name.as_ref().is_some_and(|n| n.len() == width))
        .map(|l| Frame {
            cid: l.cid,
            mode: Mode::HamtShard,
        })
        .collect()
}

#[cfg(test)]
#[path = "walker_tests.rs"]
mod tests;
