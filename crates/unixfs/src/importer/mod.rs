//! The UnixFS importer: files, directories and symlinks in, dag-pb/raw blocks out, with the
//! CIDs Kubo (boxo) makes for the same input and [`ImportProfile`]. Sans-I/O: the caller reads
//! the file system and stores the blocks.
//!
//! - Files: [`FileImporter`] (fixed-size chunks, boxo's balanced layout). Push bytes in any
//!   slicing with [`FileImporter::push`], then [`FileImporter::finish`].
//! - Directories: [`DirectoryBuilder`] (flat, or a HAMT past the profile's threshold). Add
//!   `(name, cid, cumulative size)` entries, then [`DirectoryBuilder::finish`].
//! - Symlinks: [`symlink_block`].
//!
//! Blocks always come out children first, each block after every block it links to; the root
//! is the last block of `finish`. A directory tree is built bottom-up: import the files and
//! subdirectories of a directory first, then add their [`Imported::cid`] and
//! [`Imported::size`] to its builder.
//!
//! Specs: unixfs.md § "`dag-pb` Node", § "`dag-pb` `File`", § "`dag-pb` `Directory`",
//! § "`dag-pb` `Symlink`", § "`dag-pb` `HAMTDirectory`"; ipip-0499-unixfs-cid-profiles.md
//! (profiles, `balanced` layout, HAMT threshold with `>`).
//!
//! Where the reference JS importer (`ipfs-unixfs-importer` 17.1.1) differs from boxo, this
//! module follows boxo/Kubo. Differences found (each pinned by a test in
//! `tests/reference.rs`):
//! - the HAMT estimate (`block-bytes` or `links-bytes`) of a directory with a non-empty
//!   subdirectory: boxo (MFS) counts the subdirectory's link with its final CID and `Tsize`;
//!   JS counts it as 0 bytes from the moment its first child is added until it is flushed,
//!   and checks the threshold at each addition, so its result depends on the order entries
//!   arrive and it may keep flat a directory Kubo shards;
//! - metadata of a file of one dag-pb leaf: JS makes a root whose `Data` is the encoded leaf
//!   block, boxo adds the metadata to the leaf;
//! - metadata of a file of two or more levels: JS writes it on every intermediate node too,
//!   boxo on the root only;
//! - a `mode` equal to JS's defaults (0644 files, 0755 directories) is left out by JS and
//!   written by boxo (not compared).
//!
//! Everything else compared matches: file layouts, raw and dag-pb leaves, CIDv0/v1, empty
//! files and directories, symlinks, names, HAMTs of fanout 8 to 256 on both sides of the
//! threshold, `mode`/`mtime` on directories, HAMT roots, symlinks and one-level files.

mod dir;
mod file;
mod profile;

use bytes::Bytes;
use cid::Cid;

pub use dir::DirectoryBuilder;
pub use file::FileImporter;
pub use profile::{HamtEstimation, ImportProfile, MAX_CHUNK_SIZE, ProfileError, ProfileOverrides};

use crate::links::{CODEC_DAG_PB, CODEC_RAW};
use crate::pb::{DataType, PbLink, UnixFsData, encode_dag_pb};

/// One block made by the importer: its CID and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The block's CID (dag-pb, or raw for raw leaves).
    pub cid: Cid,
    /// The block's bytes.
    pub data: Bytes,
}

/// A finished file, directory or symlink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// CID of the root block (the last of [`blocks`](Self::blocks)).
    pub cid: Cid,
    /// Cumulative size in bytes: the root block's length plus the `Tsize` of each of its
    /// links (for a raw block, its length). This is the `Tsize` a parent directory gives the
    /// link to this node (unixfs.md § "`dag-pb` Node": `Tsize`).
    pub size: u64,
    /// The blocks not yet handed out, children before parents, the root last.
    pub blocks: Vec<Block>,
}

/// Optional UnixFS 1.5 metadata of a file, directory or symlink root node. Both fields are
/// absent by default (ipip-0499 profiles: "Mode ... excluded (opt-in)").
///
/// Spec: unixfs.md § "`mode` Field", § "`mtime` Field".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Metadata {
    /// POSIX permission bits (the low 12 bits: `0o7777`), as boxo writes them.
    pub mode: Option<u32>,
    /// Modification time: seconds since the Unix epoch and nanoseconds (0 to 999 999 999;
    /// 0 is not written, as in boxo).
    pub mtime: Option<(i64, u32)>,
}

impl Metadata {
    /// True when neither field is set.
    pub fn is_empty(&self) -> bool {
        self.mode.is_none() && self.mtime.is_none()
    }

    fn apply(&self, data: &mut UnixFsData) {
        data.mode = self.mode.map(|m| m & 0o7777);
        data.mtime = self.mtime;
    }
}

/// Why an import step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The profile is unusable.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// A directory entry name is empty, `.` or `..`, or contains `/` or NUL.
    #[error("invalid directory entry name {0:?}")]
    InvalidName(String),
    /// The same name was added twice to one directory.
    #[error("duplicate directory entry {0:?}")]
    DuplicateName(String),
    /// Mode or mtime was asked for a file with raw leaves: they need a dag-pb root, and Kubo
    /// refuses `--raw-leaves` with them (it turns raw leaves off when they were not asked
    /// for: use a profile with `raw_leaves = false`).
    #[error("UnixFS mode and mtime need dag-pb leaves (raw_leaves = false)")]
    MetadataWithRawLeaves,
    /// Two names of a HAMT directory share all 64 bits of their hash (boxo: "sharded
    /// directory too deep").
    #[error("HAMT hash collision: {0:?} and {1:?} share every hash bit")]
    HamtTooDeep(String, String),
}

/// A block of `data` under `codec`, with the CID version of `profile` (CIDv0 only for dag-pb).
fn make_block(profile: &ImportProfile, codec: u64, data: Vec<u8>) -> Block {
    let len = profile::digest_len(profile.hash);
    // validate() has checked that this hash function and length are computed here.
    let mh = hydrant_blocks::digest(profile.hash, len, &data).unwrap_or_default();
    let cid = if codec == CODEC_DAG_PB && profile.cid_version == 0 {
        Cid::new_v0(mh).unwrap_or_else(|_| Cid::new_v1(codec, mh))
    } else {
        Cid::new_v1(codec, mh)
    };
    Block {
        cid,
        data: Bytes::from(data),
    }
}

/// A dag-pb block with these links (in this order) and UnixFS `Data`.
fn pb_block(profile: &ImportProfile, links: &[PbLink], data: &UnixFsData) -> Block {
    make_block(
        profile,
        CODEC_DAG_PB,
        encode_dag_pb(links, Some(&data.encode())),
    )
}

/// A raw (codec 0x55) block, always CIDv1.
fn raw_block(profile: &ImportProfile, data: Vec<u8>) -> Block {
    make_block(profile, CODEC_RAW, data)
}

/// The UnixFS `Symlink` node pointing at `target` (boxo `SymlinkData`: `Type = Symlink`,
/// `Data = target`, no `filesize`), with `metadata.mtime` if set. `metadata.mode` is not
/// written, as Kubo's adder (`addSymlink`) writes only the mtime of a symlink.
///
/// Spec: unixfs.md § "`dag-pb` `Symlink`".
///
/// # Errors
/// [`ImportError::Profile`] when the profile is invalid.
pub fn symlink_block(
    profile: &ImportProfile,
    target: &str,
    metadata: Metadata,
) -> Result<Imported, ImportError> {
    profile.validate()?;
    let mut data = UnixFsData::new(DataType::Symlink);
    data.data = Bytes::copy_from_slice(target.as_bytes());
    data.mtime = metadata.mtime;
    let block = pb_block(profile, &[], &data);
    Ok(Imported {
        cid: block.cid,
        size: block.data.len() as u64,
        blocks: vec![block],
    })
}

#[cfg(test)]
mod tests;
