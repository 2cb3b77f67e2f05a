//! Files: a fixed-size chunker and boxo's `balanced` layout, built as bytes arrive.
//!
//! Spec: unixfs.md § "`dag-pb` `File`" (`filesize`, `blocksizes`, `Tsize`); ipip-0499
//! § "`balanced`" (boxo `ipld/unixfs/importer/balanced/builder.go`).
//!
//! boxo builds the tree top-down (`fillNodeRec`): the root at depth `d` holds up to
//! `max_links` subtrees of depth `d - 1`, filled left to right, every leaf at depth `d`, and
//! `d` grows by one (the old root becoming the first child of the new one) only when a full
//! tree of depth `d` is followed by more data. The same tree is built here bottom-up with one
//! list of pending links per level: a level's links become a node when the level already holds
//! `max_links` links and another arrives, and at [`FileImporter::finish`], from the bottom up
//! until a single link is left. A file of one chunk is that chunk's leaf; an empty file is an
//! empty leaf (boxo `NewLeafNode(nil)`).

use bytes::Bytes;

use super::{Block, ImportError, ImportProfile, Imported, Metadata, pb_block, raw_block};
use crate::pb::{DataType, PbLink, UnixFsData};

/// A link to a finished subtree of the file.
#[derive(Clone, Debug)]
struct Pending {
    link: PbLink,
    /// Bytes of file content under the link (its `blocksizes` entry).
    content: u64,
}

/// A sans-I/O file importer: push the file's bytes, get its blocks.
///
/// Memory: one chunk ([`ImportProfile::chunk_size`] bytes) plus at most `max_links` pending
/// links per level of the tree (a level per factor of `max_links` in the number of chunks),
/// whatever the file size.
///
/// ```
/// use hydrant_unixfs::{FileImporter, ImportProfile};
/// let mut file = FileImporter::new(&ImportProfile::unixfs_v1_2025(), Default::default())?;
/// let mut blocks = file.push(b"hello ");
/// blocks.extend(file.push(b"world"));
/// let done = file.finish();
/// assert_eq!(
///     done.cid.to_string(),
///     "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
/// );
/// # Ok::<(), hydrant_unixfs::ImportError>(())
/// ```
#[derive(Debug)]
pub struct FileImporter {
    profile: ImportProfile,
    metadata: Metadata,
    /// The chunk being filled: at most `chunk_size` bytes (a full one waits for one more byte).
    chunk: Vec<u8>,
    /// `levels[i]`: links to finished subtrees of depth `i` (0: leaves) not yet in a node.
    levels: Vec<Vec<Pending>>,
    /// Bytes pushed so far.
    content_len: u64,
}

impl FileImporter {
    /// A new, empty file. `metadata` (if any) goes on the root node only (boxo
    /// `SetFileAttributes`), which must then be dag-pb.
    ///
    /// # Errors
    /// [`ImportError::Profile`] when the profile is invalid;
    /// [`ImportError::MetadataWithRawLeaves`] for metadata with raw leaves (as Kubo).
    pub fn new(profile: &ImportProfile, metadata: Metadata) -> Result<Self, ImportError> {
        profile.validate()?;
        if profile.raw_leaves && !metadata.is_empty() {
            return Err(ImportError::MetadataWithRawLeaves);
        }
        Ok(FileImporter {
            profile: *profile,
            metadata,
            chunk: Vec::new(),
            levels: Vec::new(),
            content_len: 0,
        })
    }

    /// Appends `bytes` to the file and returns the blocks finished by them (leaves and any
    /// tree node that is complete), children before parents; often none.
    ///
    /// A full chunk is kept until at least one more byte arrives, so that
    /// [`finish`](Self::finish) knows whether it is the whole file.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Block> {
        let mut out = Vec::new();
        self.content_len += bytes.len() as u64;
        let size = self.profile.chunk_size;
        while !bytes.is_empty() {
            if self.chunk.len() == size {
                let chunk = std::mem::take(&mut self.chunk);
                self.leaf(chunk, false, &mut out);
            }
            if self.chunk.is_empty() && bytes.len() > size {
                // A whole chunk straight from the caller's slice, with more bytes after it.
                let (chunk, rest) = bytes.split_at(size);
                self.leaf(chunk.to_vec(), false, &mut out);
                bytes = rest;
                continue;
            }
            if self.chunk.capacity() < size {
                self.chunk.reserve_exact(size - self.chunk.len());
            }
            let take = (size - self.chunk.len()).min(bytes.len());
            self.chunk.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        out
    }

    /// Bytes pushed so far (the file's size once finished).
    pub fn content_len(&self) -> u64 {
        self.content_len
    }

    /// Ends the file: returns its root CID, its cumulative size (the `Tsize` of a link to it)
    /// and the blocks not yet returned, the root last.
    pub fn finish(mut self) -> Imported {
        let mut out = Vec::new();
        let chunk = std::mem::take(&mut self.chunk);
        // The last chunk (or the empty leaf of an empty file) is the root when it is alone.
        let alone = self.levels.iter().all(Vec::is_empty);
        if !chunk.is_empty() || alone {
            self.leaf(chunk, alone, &mut out);
        }
        let mut level = 0;
        loop {
            let top = self.levels[level + 1..].iter().all(Vec::is_empty);
            if top && self.levels[level].len() == 1 {
                break;
            }
            // Sealing the top level makes the root: it goes alone to the level above.
            self.seal(level, top, &mut out);
            level += 1;
        }
        let root = self.levels[level].swap_remove(0).link;
        Imported {
            cid: root.cid,
            size: root.tsize.unwrap_or(0),
            blocks: out,
        }
    }

    /// Emits the leaf of one chunk and queues its link at level 0.
    /// `root`: this leaf is the whole file (it then carries the metadata).
    fn leaf(&mut self, chunk: Vec<u8>, root: bool, out: &mut Vec<Block>) {
        let content = chunk.len() as u64;
        let block = if self.profile.raw_leaves {
            raw_block(&self.profile, chunk)
        } else {
            let mut data = UnixFsData::new(DataType::File);
            data.data = Bytes::from(chunk);
            data.filesize = content;
            if root {
                self.metadata.apply(&mut data);
            }
            pb_block(&self.profile, &[], &data)
        };
        let link = PbLink {
            cid: block.cid,
            name: Some(String::new()),
            tsize: Some(block.data.len() as u64),
        };
        out.push(block);
        self.queue(0, Pending { link, content }, out);
    }

    /// Adds a link at `level`, first sealing that level into a node when it is full.
    fn queue(&mut self, level: usize, pending: Pending, out: &mut Vec<Block>) {
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, Vec::new);
        }
        if self.levels[level].len() == self.profile.max_links {
            self.seal(level, false, out);
        }
        self.levels[level].push(pending);
    }

    /// Turns the links pending at `level` into one file node, queued at `level + 1`;
    /// `root`: that node is the file's root (it then carries the metadata).
    fn seal(&mut self, level: usize, root: bool, out: &mut Vec<Block>) {
        let children = std::mem::take(&mut self.levels[level]);
        let mut data = UnixFsData::new(DataType::File);
        data.blocksizes = children.iter().map(|c| c.content).collect();
        data.filesize = data.blocksizes.iter().sum();
        if root {
            self.metadata.apply(&mut data);
        }
        let links: Vec<PbLink> = children.into_iter().map(|c| c.link).collect();
        let block = pb_block(&self.profile, &links, &data);
        let tsize = block.data.len() as u64 + links.iter().filter_map(|l| l.tsize).sum::<u64>();
        let pending = Pending {
            link: PbLink {
                cid: block.cid,
                name: Some(String::new()),
                tsize: Some(tsize),
            },
            content: data.filesize,
        };
        out.push(block);
        self.queue(level + 1, pending, out);
    }
}
