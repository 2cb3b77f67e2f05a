//! The UnixFS exporter: stored blocks back into file bytes, directory listings and path
//! resolution (the read side of [`crate::importer`]), for `hydrant cat|get|ls CID[/path]`.
//!
//! Sans-I/O, in the house style of [`crate::DagWalker`]: each state machine says which block
//! it needs next, the caller fetches it (from a blockstore, the network, …) and hands the bytes
//! back; no machine does I/O or holds more than one block's data.
//!
//! - [`Resolver`]: `CID[/a/b/c]` to the CID of the target node, through flat directories and
//!   HAMT shards (unixfs.md § "UnixFS Paths", § "`dag-pb` `HAMTDirectory`"). Drive with
//!   [`Resolver::next_wanted`] / [`Resolver::on_block`], then [`Resolver::finish`].
//! - [`FileReader`]: a file's bytes in order, optionally a byte range (`offset`/`length`,
//!   Kubo's `cat --offset --length`), fetching only the blocks covering it (unixfs.md
//!   § "`dag-pb` `File`"). Drive with [`FileReader::next`] ([`FileStep`]) / [`FileReader::on_block`].
//! - [`DirLister`]: the entries of a directory (flat or HAMT, every shard flattened), sorted by
//!   name, optionally with each child fetched for its type and file size.
//! - [`TreeExporter`]: a whole DAG as [`TreeEntry`]s, each directory before its contents, for
//!   `get`; files come with a [`FileReader`] already fed their root block.
//!
//! For blocking callers (and tests) the `*_with` functions drive a machine with a
//! `get(&Cid) -> Result<Option<Bytes>, ExportError>` closure: [`resolve_with`],
//! [`read_file_with`], [`list_dir_with`], [`export_tree_with`].
//!
//! Identity CIDs (multihash 0x00) are never asked for: their data is the digest.
//!
//! Machines do not share blocks: the block a [`Resolver`] ends at is asked for again by the
//! machine that reads the target ([`FileReader`], [`DirLister`], [`TreeExporter`]); a caller
//! over a slow source keeps the last block it fetched. Symlinks are not followed (a path
//! through one is [`ExportError::NotADirectory`]); a [`TreeExporter`] exports them as
//! symlinks.
//!
//! Limits (all bounded, see the constants): [`MAX_PATH_SEGMENTS`], [`MAX_NAME_LEN`],
//! [`MAX_TREE_DEPTH`], and a HAMT may be at most `64 / log2(fanout)` shards deep (the hash
//! bits run out, unixfs.md § "HAMT Structure and Parameters").
//!
//! Not bounded here (the caller's to cap): the total bytes and blocks read (a DAG reusing a
//! subtree many times is read as often as it is linked, as Kubo does), the number of entries
//! of one listing (kept in memory to be sorted), and duplicate entry names in a directory
//! (listed and exported as they come).

mod dir;
mod file;
mod resolve;

use bytes::Bytes;
use cid::Cid;

use crate::error::DagError;
use crate::links::{CODEC_DAG_PB, CODEC_RAW, MULTIHASH_IDENTITY};
use crate::pb::{DataType, PbNode, UnixFsData};

pub use dir::{
    DirEntry, DirLister, EntryType, TreeEntry, TreeEntryKind, TreeEvent, TreeExporter, TreeStep,
    export_tree_with, list_dir_with,
};
pub use file::{FileReader, FileStep, read_file_with};
pub use resolve::{Resolved, Resolver, resolve_with};

/// Most segments in a content path given to [`Resolver`] (more is
/// [`ExportError::LimitExceeded`]).
pub const MAX_PATH_SEGMENTS: usize = 4096;

/// Longest directory entry name accepted, in bytes, by [`DirLister`] and [`TreeExporter`]
/// (and the longest path segment [`Resolver`] accepts): 4096, Linux's `PATH_MAX`. (Most file
/// systems accept 255 only; the caller writing to disk reports that itself.)
pub const MAX_NAME_LEN: usize = 4096;

/// Deepest directory nesting [`TreeExporter`] follows below its root (deeper is
/// [`ExportError::LimitExceeded`]).
pub const MAX_TREE_DEPTH: usize = 1024;

/// Why an export step failed. Every variant names the CID and/or the content path
/// (`CID/a/b`) where it happened.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A path segment names nothing in its directory.
    #[error("{path}: no entry {segment:?} in directory {cid}")]
    NotFound {
        /// Path of the directory searched.
        path: String,
        /// The missing segment.
        segment: String,
        /// The directory (or HAMT shard) searched last.
        cid: Cid,
    },
    /// A path goes below something that is not a directory.
    #[error("{path} ({cid}) is not a directory (cannot resolve {segment:?} below it)")]
    NotADirectory {
        /// Path of the node.
        path: String,
        /// The node.
        cid: Cid,
        /// The segment that asked to go below it.
        segment: String,
    },
    /// A content path that climbs above its root with `..` (unixfs.md § "Relative Path
    /// Components": "MUST reject").
    #[error("{path}: invalid path traversal above the root CID")]
    InvalidPath {
        /// The path as given (`ROOT/…`).
        path: String,
    },
    /// The caller has no block for this CID.
    #[error("{path}: block {cid} is missing")]
    MissingBlock {
        /// The missing block.
        cid: Cid,
        /// Path of the node it belongs to.
        path: String,
    },
    /// A block could not be decoded, or is not UnixFS where UnixFS was needed.
    #[error("{path}: {source}")]
    Dag {
        /// Path of the node.
        path: String,
        /// The decoding error (names the block).
        #[source]
        source: DagError,
    },
    /// A node is not of the kind the operation needs (e.g. `cat` of a directory).
    #[error("{path} ({cid}) is a {found}, not a {wanted}")]
    WrongType {
        /// Path of the node.
        path: String,
        /// The node.
        cid: Cid,
        /// What it is.
        found: &'static str,
        /// What was needed.
        wanted: &'static str,
    },
    /// The sizes a file node states (`filesize`, `blocksizes`, its parent's `blocksizes`)
    /// disagree with the bytes actually under it.
    #[error("{path}: file block {cid} holds {actual} bytes, {expected} expected ({what})")]
    SizeMismatch {
        /// Path of the file.
        path: String,
        /// The block at fault.
        cid: Cid,
        /// Which statement was contradicted.
        what: &'static str,
        /// Bytes stated.
        expected: u64,
        /// Bytes found.
        actual: u64,
    },
    /// A directory entry name is empty, `.`, `..`, longer than [`MAX_NAME_LEN`], or contains
    /// `/` or NUL (unixfs.md § "Restricted Names"): refused, so `get` cannot write outside
    /// its destination.
    #[error("{path}: directory {cid} has an invalid entry name {name:?}")]
    InvalidName {
        /// Path of the directory.
        path: String,
        /// The directory block.
        cid: Cid,
        /// The name.
        name: String,
    },
    /// A bound of this module was reached.
    #[error("{path}: more than {limit} {what}")]
    LimitExceeded {
        /// Where.
        path: String,
        /// Which limit.
        what: &'static str,
        /// Its value.
        limit: usize,
    },
    /// `on_block` was given another block than the one asked for.
    #[error("expected block {expected:?}, was given {got}")]
    UnexpectedBlock {
        /// What was asked (None: nothing).
        expected: Option<Box<Cid>>,
        /// What was given.
        got: Cid,
    },
    /// The caller's block source failed (for the `*_with` drivers).
    #[error("fetching block {cid}: {reason}")]
    Fetch {
        /// The block.
        cid: Cid,
        /// What the source said.
        reason: String,
    },
}

impl ExportError {
    /// The CID named by this error, if one (the missing, undecodable or offending block).
    pub fn cid(&self) -> Option<&Cid> {
        match self {
            Self::NotFound { cid, .. }
            | Self::NotADirectory { cid, .. }
            | Self::MissingBlock { cid, .. }
            | Self::WrongType { cid, .. }
            | Self::SizeMismatch { cid, .. }
            | Self::InvalidName { cid, .. }
            | Self::Fetch { cid, .. } => Some(cid),
            Self::Dag { source, .. } => source.undecodable_block(),
            Self::UnexpectedBlock { got, .. } => Some(got),
            Self::LimitExceeded { .. } | Self::InvalidPath { .. } => None,
        }
    }
}

/// What a UnixFS node is, decoded from its block.
#[derive(Debug)]
pub(crate) enum Node {
    /// A raw block (codec 0x55): a whole file, or a file leaf.
    Raw(Bytes),
    /// A dag-pb node with UnixFS data.
    Pb(PbNode, UnixFsData),
}

impl Node {
    /// Decodes block `cid` (bytes `data`): raw, or dag-pb with UnixFS `Data`.
    pub(crate) fn decode(cid: &Cid, data: &[u8]) -> Result<Node, DagError> {
        match cid.codec() {
            CODEC_RAW => Ok(Node::Raw(Bytes::copy_from_slice(data))),
            CODEC_DAG_PB => {
                let node = PbNode::decode(cid, data)?;
                let Some(d) = node.data.as_deref() else {
                    return Err(DagError::InvalidUnixFs {
                        cid: *cid,
                        reason: "dag-pb node without UnixFS Data".into(),
                    });
                };
                let ufs = UnixFsData::decode(cid, d)?;
                Ok(Node::Pb(node, ufs))
            }
            codec => Err(DagError::UnsupportedCodec { cid: *cid, codec }),
        }
    }

    /// A short name of the node's kind, for errors.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Node::Raw(_) => "raw block",
            Node::Pb(_, u) => type_name(u.data_type),
        }
    }
}

pub(crate) fn type_name(t: DataType) -> &'static str {
    match t {
        DataType::Raw | DataType::File => "file",
        DataType::Directory => "directory",
        DataType::HamtShard => "HAMT directory",
        DataType::Symlink => "symlink",
        DataType::Metadata => "metadata node",
    }
}

/// True for identity CIDs, whose data is their digest and are never fetched.
pub(crate) fn is_identity(cid: &Cid) -> bool {
    cid.hash().code() == MULTIHASH_IDENTITY
}

/// The data of an identity CID.
pub(crate) fn identity_data(cid: &Cid) -> Bytes {
    Bytes::copy_from_slice(cid.hash().digest())
}

/// A directory entry name is acceptable for export (unixfs.md § "Restricted Names", plus `/`
/// and [`MAX_NAME_LEN`]).
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= MAX_NAME_LEN
        && !name.contains(['/', '\0'])
}

/// `a/b` joined, with `base` possibly empty.
pub(crate) fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}/{name}")
    }
}

/// Fetches `cid` with `get`, mapping `None` to [`ExportError::MissingBlock`] at `path`.
pub(crate) fn fetch<G>(get: &mut G, cid: &Cid, path: &str) -> Result<Bytes, ExportError>
where
    G: FnMut(&Cid) -> Result<Option<Bytes>, ExportError>,
{
    get(cid)?.ok_or_else(|| ExportError::MissingBlock {
        cid: *cid,
        path: path.to_string(),
    })
}
