//! Directory listings ([`DirLister`]) and whole-tree export ([`TreeExporter`]).
//!
//! Spec: unixfs.md § "`dag-pb` `Directory`", § "`dag-pb` `HAMTDirectory`" (a link named by
//! the bucket prefix alone is a sub-shard, prefix + name is an entry), § "`dag-pb` `Symlink`",
//! § "`dag-pb` Optional Metadata", § "Restricted Names".

use bytes::Bytes;
use cid::Cid;

use super::file::drive_file;
use super::{
    ExportError, FileReader, MAX_TREE_DEPTH, Node, fetch, identity_data, is_identity, join,
    valid_name,
};
use crate::error::DagError;
use crate::path::HAMT_HASH_BITS;
use crate::pb::{DataType, PbLink, PbNode, UnixFsData};

/// Multihash code of murmur3-x64-64, the only HAMT `hashType` (unixfs.md § "HAMT Structure
/// and Parameters").
const HAMT_HASH_MURMUR3: u64 = 0x22;

/// What a directory entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryType {
    /// A UnixFS directory (flat or HAMT).
    Directory,
    /// A UnixFS file (dag-pb `File` or legacy `Raw`).
    File,
    /// A UnixFS symlink.
    Symlink,
    /// A raw block (codec 0x55): a one-block file.
    Raw,
    /// A dag-pb child that was not fetched ([`DirLister::new`] with `fetch_children = false`).
    Unknown,
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Entry name (for a HAMT, without the bucket prefix).
    pub name: String,
    /// Target of the link.
    pub cid: Cid,
    /// `Tsize` of the link (cumulative size of the entry's DAG), if present.
    pub tsize: Option<u64>,
    /// What it is ([`EntryType::Raw`] is known from the CID; dag-pb children need a fetch).
    pub kind: EntryType,
    /// For files and raw blocks that were fetched: the file size in bytes.
    pub filesize: Option<u64>,
    /// UnixFS 1.5 `mode` of a fetched child, if present.
    pub mode: Option<u32>,
    /// UnixFS 1.5 `mtime` (seconds, nanoseconds) of a fetched child, if present.
    pub mtime: Option<(i64, u32)>,
}

/// One item of a HAMT shard.
enum ShardItem {
    Sub(Cid),
    Entry(String, PbLink),
}

/// The sub-shards and entries of HAMT shard `cid`, in link order; `depth` is this shard's
/// level (0 for the root), bounded by the hash bits its fanout leaves.
fn shard_items(
    cid: &Cid,
    pb: PbNode,
    ufs: &UnixFsData,
    depth: u32,
    path: &str,
) -> Result<Vec<ShardItem>, ExportError> {
    let invalid = |reason: String| ExportError::Dag {
        path: path.to_string(),
        source: DagError::InvalidUnixFs { cid: *cid, reason },
    };
    if ufs.hash_type != Some(HAMT_HASH_MURMUR3) {
        return Err(invalid(format!(
            "HAMT hashType {:?}, only murmur3-x64-64 (0x22) is supported",
            ufs.hash_type
        )));
    }
    let fanout = ufs.fanout.unwrap_or(0);
    let width = ufs.hamt_prefix_len().unwrap_or(0);
    let bits = fanout.trailing_zeros();
    let max_depth = HAMT_HASH_BITS / bits.max(1);
    if depth >= max_depth {
        return Err(ExportError::LimitExceeded {
            path: path.to_string(),
            what: "HAMT levels for this fanout",
            limit: max_depth as usize,
        });
    }
    let mut out = Vec::with_capacity(pb.links.len());
    for link in pb.links {
        let name = link.name.clone().unwrap_or_default();
        let prefix_ok = name.len() >= width
            && name.is_char_boundary(width)
            && u64::from_str_radix(&name[..width], 16).is_ok_and(|i| i < fanout);
        if !prefix_ok {
            return Err(invalid(format!(
                "HAMT link name {name:?} has no bucket prefix"
            )));
        }
        if name.len() == width {
            out.push(ShardItem::Sub(link.cid));
        } else {
            out.push(ShardItem::Entry(name[width..].to_string(), link));
        }
    }
    Ok(out)
}

fn check_name(name: &str, dir: &Cid, path: &str) -> Result<(), ExportError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ExportError::InvalidName {
            path: path.to_string(),
            cid: *dir,
            name: name.to_string(),
        })
    }
}

fn dag(path: &str, source: DagError) -> ExportError {
    ExportError::Dag {
        path: path.to_string(),
        source,
    }
}

#[derive(Clone, Copy, Debug)]
enum ListWant {
    Root(Cid),
    Shard(Cid, u32),
    Child(usize),
}

/// Lists a directory (flat, or HAMT with every shard flattened), sans I/O.
///
/// Drive with [`Self::next_wanted`] / [`Self::on_block`], then [`Self::finish`]. Blocks asked
/// for: the directory, its sub-shards (depth first), then, with `fetch_children`, each entry's
/// root block (to learn its type, file size and metadata).
///
/// Memory: the entries (name + CID + a few numbers each) and the pending sub-shards.
#[derive(Debug)]
pub struct DirLister {
    path: String,
    fetch_children: bool,
    root_read: bool,
    root: Cid,
    shards: Vec<(Cid, u32)>,
    entries: Vec<DirEntry>,
    next_child: usize,
}

impl DirLister {
    /// A listing of directory `cid` (`path` for errors); `fetch_children`: also fetch each
    /// entry's root block to fill [`DirEntry::kind`], `filesize`, `mode` and `mtime`.
    pub fn new(cid: Cid, path: impl Into<String>, fetch_children: bool) -> Self {
        DirLister {
            path: path.into(),
            fetch_children,
            root_read: false,
            root: cid,
            shards: Vec::new(),
            entries: Vec::new(),
            next_child: 0,
        }
    }

    fn want(&self) -> Option<ListWant> {
        if !self.root_read {
            return Some(ListWant::Root(self.root));
        }
        if let Some(&(cid, depth)) = self.shards.last() {
            return Some(ListWant::Shard(cid, depth));
        }
        if self.fetch_children && self.next_child < self.entries.len() {
            return Some(ListWant::Child(self.next_child));
        }
        None
    }

    fn want_cid(&self, w: ListWant) -> Cid {
        match w {
            ListWant::Root(c) | ListWant::Shard(c, _) => c,
            ListWant::Child(i) => self.entries[i].cid,
        }
    }

    /// The path of the block wanted next (for a [`ExportError::MissingBlock`]).
    pub fn path(&self) -> String {
        match self.want() {
            Some(ListWant::Child(i)) => join(&self.path, &self.entries[i].name),
            _ => self.path.clone(),
        }
    }

    /// The block needed next, or `None` when the listing is complete. Identity CIDs are read
    /// here, never asked for.
    ///
    /// # Errors
    /// As [`Self::on_block`], for identity blocks.
    pub fn next_wanted(&mut self) -> Result<Option<Cid>, ExportError> {
        while let Some(w) = self.want() {
            let cid = self.want_cid(w);
            if is_identity(&cid) {
                self.read(w, &cid, &identity_data(&cid))?;
                continue;
            }
            return Ok(Some(cid));
        }
        Ok(None)
    }

    /// Hands over the bytes of the block [`Self::next_wanted`] returned.
    ///
    /// # Errors
    /// [`ExportError::WrongType`] when the root is not a directory; [`ExportError::Dag`] for
    /// an undecodable block or a sub-shard that is not a HAMT shard;
    /// [`ExportError::InvalidName`]; [`ExportError::LimitExceeded`] for a HAMT deeper than
    /// its hash allows; [`ExportError::UnexpectedBlock`].
    pub fn on_block(&mut self, cid: &Cid, data: &[u8]) -> Result<(), ExportError> {
        match self.want() {
            Some(w) if self.want_cid(w) == *cid => self.read(w, cid, data),
            w => Err(ExportError::UnexpectedBlock {
                expected: w.map(|w| Box::new(self.want_cid(w))),
                got: *cid,
            }),
        }
    }

    fn read(&mut self, w: ListWant, cid: &Cid, data: &[u8]) -> Result<(), ExportError> {
        match w {
            ListWant::Root(_) => {
                self.root_read = true;
                match Node::decode(cid, data).map_err(|e| dag(&self.path, e))? {
                    Node::Pb(pb, ufs) if ufs.data_type == DataType::Directory => {
                        for link in pb.links {
                            let name = link.name.clone().unwrap_or_default();
                            self.push_entry(cid, name, link)?;
                        }
                        Ok(())
                    }
                    Node::Pb(pb, ufs) if ufs.data_type == DataType::HamtShard => {
                        self.shard(cid, pb, &ufs, 0)
                    }
                    other => Err(ExportError::WrongType {
                        path: self.path.clone(),
                        cid: *cid,
                        found: other.kind_name(),
                        wanted: "directory",
                    }),
                }
            }
            ListWant::Shard(_, depth) => {
                self.shards.pop();
                match Node::decode(cid, data).map_err(|e| dag(&self.path, e))? {
                    Node::Pb(pb, ufs) if ufs.data_type == DataType::HamtShard => {
                        self.shard(cid, pb, &ufs, depth)
                    }
                    other => Err(dag(
                        &self.path,
                        DagError::InvalidUnixFs {
                            cid: *cid,
                            reason: format!("HAMT sub-shard is a {}", other.kind_name()),
                        },
                    )),
                }
            }
            ListWant::Child(i) => {
                self.next_child += 1;
                let path = join(&self.path, &self.entries[i].name);
                let node = Node::decode(cid, data).map_err(|e| dag(&path, e))?;
                let e = &mut self.entries[i];
                match node {
                    Node::Raw(b) => {
                        e.kind = EntryType::Raw;
                        e.filesize = Some(b.len() as u64);
                    }
                    Node::Pb(_, ufs) => {
                        e.kind = match ufs.data_type {
                            DataType::Directory | DataType::HamtShard => EntryType::Directory,
                            DataType::Symlink => EntryType::Symlink,
                            DataType::File | DataType::Raw => EntryType::File,
                            DataType::Metadata => EntryType::Unknown,
                        };
                        if ufs.data_type.is_file() {
                            let size = ufs
                                .blocksizes
                                .iter()
                                .fold(ufs.data.len() as u64, |a, b| a.saturating_add(*b));
                            e.filesize = Some(if ufs.data_type == DataType::File {
                                ufs.filesize
                            } else {
                                size
                            });
                        }
                        e.mode = ufs.mode;
                        e.mtime = ufs.mtime;
                    }
                }
                Ok(())
            }
        }
    }

    fn push_entry(&mut self, dir: &Cid, name: String, link: PbLink) -> Result<(), ExportError> {
        check_name(&name, dir, &self.path)?;
        let raw = link.cid.codec() == crate::links::CODEC_RAW;
        self.entries.push(DirEntry {
            name,
            cid: link.cid,
            tsize: link.tsize,
            kind: if raw {
                EntryType::Raw
            } else {
                EntryType::Unknown
            },
            filesize: None,
            mode: None,
            mtime: None,
        });
        Ok(())
    }

    fn shard(
        &mut self,
        cid: &Cid,
        pb: PbNode,
        ufs: &UnixFsData,
        depth: u32,
    ) -> Result<(), ExportError> {
        let items = shard_items(cid, pb, ufs, depth, &self.path)?;
        let mut subs = Vec::new();
        for item in items {
            match item {
                ShardItem::Sub(c) => subs.push((c, depth + 1)),
                ShardItem::Entry(name, link) => self.push_entry(cid, name, link)?,
            }
        }
        self.shards.extend(subs.into_iter().rev());
        Ok(())
    }

    /// Number of entries read so far (to cap a listing's memory while it is being read).
    pub fn entries_read(&self) -> usize {
        self.entries.len()
    }

    /// The entries, sorted by name (bytewise, as `ipfs ls` shows them).
    ///
    /// # Errors
    /// [`ExportError::UnexpectedBlock`] when called before [`Self::next_wanted`] returned
    /// `None`.
    pub fn finish(self) -> Result<Vec<DirEntry>, ExportError> {
        if let Some(w) = self.want() {
            let c = self.want_cid(w);
            return Err(ExportError::UnexpectedBlock {
                expected: Some(Box::new(c)),
                got: c,
            });
        }
        let mut entries = self.entries;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }
}

/// Lists directory `cid` with blocks from `get`; see [`DirLister`].
///
/// # Errors
/// Those of [`DirLister::on_block`], [`ExportError::MissingBlock`], and whatever `get`
/// returns.
pub fn list_dir_with<G>(
    cid: Cid,
    path: &str,
    fetch_children: bool,
    mut get: G,
) -> Result<Vec<DirEntry>, ExportError>
where
    G: FnMut(&Cid) -> Result<Option<Bytes>, ExportError>,
{
    let mut l = DirLister::new(cid, path, fetch_children);
    while let Some(c) = l.next_wanted()? {
        let data = fetch(&mut get, &c, &l.path())?;
        l.on_block(&c, &data)?;
    }
    l.finish()
}

/// What a [`TreeEntry`] is.
#[derive(Debug)]
pub enum TreeEntryKind {
    /// A directory: create it; its contents follow.
    Directory,
    /// A file: its bytes come from this reader (root block already read, so
    /// [`FileReader::size`] is known).
    File(Box<FileReader>),
    /// A symlink and its target (bytes, as stored; usually UTF-8).
    Symlink(Bytes),
}

/// One node of an exported tree.
#[derive(Debug)]
pub struct TreeEntry {
    /// Path relative to the export root: `""` for the root itself, then `a`, `a/b`, … (each
    /// name checked against unixfs.md § "Restricted Names", so joining it under a
    /// destination cannot leave it).
    pub path: String,
    /// The node's CID.
    pub cid: Cid,
    /// What it is.
    pub kind: TreeEntryKind,
    /// UnixFS 1.5 `mode`, if present.
    pub mode: Option<u32>,
    /// UnixFS 1.5 `mtime` (seconds, nanoseconds), if present.
    pub mtime: Option<(i64, u32)>,
}

/// One step of a [`TreeExporter`].
#[derive(Debug)]
pub enum TreeStep {
    /// Fetch this block and pass it to [`TreeExporter::on_block`].
    Need(Cid),
    /// The next entry (every directory comes before its contents).
    Entry(Box<TreeEntry>),
    /// The whole tree was exported.
    Done,
}

#[derive(Clone, Debug)]
enum TreeFrame {
    /// A node at `path`, `depth` directories below the root.
    Node {
        cid: Cid,
        path: String,
        depth: usize,
    },
    /// A HAMT sub-shard of the directory at `path`.
    Shard {
        cid: Cid,
        path: String,
        depth: usize,
        level: u32,
    },
}

impl TreeFrame {
    fn cid(&self) -> Cid {
        match self {
            TreeFrame::Node { cid, .. } | TreeFrame::Shard { cid, .. } => *cid,
        }
    }
}

/// Exports a whole UnixFS DAG (for `get`), sans I/O: depth first, a directory's entry before
/// its contents, flat directories' entries by name, HAMT entries in shard order.
///
/// Memory: a stack of pending (CID, path) pairs (the widths of the directories on the
/// current branch) plus one block; file bytes come from each file's [`FileReader`].
#[derive(Debug)]
pub struct TreeExporter {
    stack: Vec<TreeFrame>,
    current: Option<TreeFrame>,
    ready: Option<Box<TreeEntry>>,
}

impl TreeExporter {
    /// An export of the DAG under `root`; entry paths are relative to it.
    pub fn new(root: Cid) -> Self {
        TreeExporter {
            stack: Vec::new(),
            current: Some(TreeFrame::Node {
                cid: root,
                path: String::new(),
                depth: 0,
            }),
            ready: None,
        }
    }

    /// Path of the node being fetched (for a [`ExportError::MissingBlock`]).
    pub fn path(&self) -> &str {
        match &self.current {
            Some(TreeFrame::Node { path, .. } | TreeFrame::Shard { path, .. }) => path,
            None => "",
        }
    }

    /// The next step.
    ///
    /// # Errors
    /// As [`Self::on_block`], for identity blocks (read here, never asked for).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<TreeStep, ExportError> {
        loop {
            if let Some(e) = self.ready.take() {
                return Ok(TreeStep::Entry(e));
            }
            if self.current.is_none() {
                self.current = self.stack.pop();
            }
            let Some(frame) = self.current.take() else {
                return Ok(TreeStep::Done);
            };
            let cid = frame.cid();
            if is_identity(&cid) {
                self.read(frame, &identity_data(&cid))?;
                continue;
            }
            self.current = Some(frame);
            return Ok(TreeStep::Need(cid));
        }
    }

    /// Hands over the bytes of the block [`Self::next`] asked for.
    ///
    /// # Errors
    /// [`ExportError::Dag`] for an undecodable block (or a UnixFS `Metadata` node, or a
    /// sub-shard that is not a shard); [`ExportError::InvalidName`];
    /// [`ExportError::LimitExceeded`] for nesting deeper than [`MAX_TREE_DEPTH`] or a HAMT
    /// deeper than its hash allows; [`ExportError::UnexpectedBlock`]; and those of
    /// [`FileReader::on_block`] for a file's root block.
    pub fn on_block(&mut self, cid: &Cid, data: &[u8]) -> Result<(), ExportError> {
        match self.current.take() {
            Some(f) if f.cid() == *cid && self.ready.is_none() => self.read(f, data),
            other => {
                let expected = other.as_ref().map(|f| Box::new(f.cid()));
                self.current = other;
                Err(ExportError::UnexpectedBlock {
                    expected,
                    got: *cid,
                })
            }
        }
    }

    fn read(&mut self, frame: TreeFrame, data: &[u8]) -> Result<(), ExportError> {
        match frame {
            TreeFrame::Node { cid, path, depth } => {
                let node = Node::decode(&cid, data).map_err(|e| dag(&path, e))?;
                let (mode, mtime) = match &node {
                    Node::Raw(_) => (None, None),
                    Node::Pb(_, u) => (u.mode, u.mtime),
                };
                let kind = match node {
                    Node::Raw(_) => self.file(&cid, &path, data)?,
                    Node::Pb(_, ufs) if ufs.data_type.is_file() => self.file(&cid, &path, data)?,
                    Node::Pb(_, ufs) if ufs.data_type == DataType::Symlink => {
                        TreeEntryKind::Symlink(ufs.data)
                    }
                    Node::Pb(pb, ufs) if ufs.data_type == DataType::Directory => {
                        self.check_depth(depth, &path)?;
                        let mut children = Vec::with_capacity(pb.links.len());
                        for link in pb.links {
                            let name = link.name.unwrap_or_default();
                            check_name(&name, &cid, &path)?;
                            children.push((name, link.cid));
                        }
                        children.sort_by(|a, b| a.0.cmp(&b.0));
                        self.stack
                            .extend(children.into_iter().rev().map(|(name, c)| TreeFrame::Node {
                                cid: c,
                                path: join(&path, &name),
                                depth: depth + 1,
                            }));
                        TreeEntryKind::Directory
                    }
                    Node::Pb(pb, ufs) if ufs.data_type == DataType::HamtShard => {
                        self.check_depth(depth, &path)?;
                        self.shard(&cid, pb, &ufs, &path, depth, 0)?;
                        TreeEntryKind::Directory
                    }
                    Node::Pb(_, ufs) => {
                        return Err(dag(
                            &path,
                            DagError::InvalidUnixFs {
                                cid,
                                reason: format!(
                                    "cannot export a {}",
                                    super::type_name(ufs.data_type)
                                ),
                            },
                        ));
                    }
                };
                self.ready = Some(Box::new(TreeEntry {
                    path,
                    cid,
                    kind,
                    mode,
                    mtime,
                }));
                Ok(())
            }
            TreeFrame::Shard {
                cid,
                path,
                depth,
                level,
            } => match Node::decode(&cid, data).map_err(|e| dag(&path, e))? {
                Node::Pb(pb, ufs) if ufs.data_type == DataType::HamtShard => {
                    self.shard(&cid, pb, &ufs, &path, depth, level)
                }
                other => Err(dag(
                    &path,
                    DagError::InvalidUnixFs {
                        cid,
                        reason: format!("HAMT sub-shard is a {}", other.kind_name()),
                    },
                )),
            },
        }
    }

    fn check_depth(&self, depth: usize, path: &str) -> Result<(), ExportError> {
        if depth >= MAX_TREE_DEPTH {
            return Err(ExportError::LimitExceeded {
                path: path.to_string(),
                what: "nested directories",
                limit: MAX_TREE_DEPTH,
            });
        }
        Ok(())
    }

    fn file(&self, cid: &Cid, path: &str, data: &[u8]) -> Result<TreeEntryKind, ExportError> {
        let mut reader = FileReader::new(*cid, path, 0, None);
        reader.on_block(cid, data)?;
        Ok(TreeEntryKind::File(Box::new(reader)))
    }

    fn shard(
        &mut self,
        cid: &Cid,
        pb: PbNode,
        ufs: &UnixFsData,
        path: &str,
        depth: usize,
        level: u32,
    ) -> Result<(), ExportError> {
        let items = shard_items(cid, pb, ufs, level, path)?;
        let mut frames = Vec::with_capacity(items.len());
        for item in items {
            frames.push(match item {
                ShardItem::Sub(c) => TreeFrame::Shard {
                    cid: c,
                    path: path.to_string(),
                    depth,
                    level: level + 1,
                },
                ShardItem::Entry(name, link) => {
                    check_name(&name, cid, path)?;
                    TreeFrame::Node {
                        cid: link.cid,
                        path: join(path, &name),
                        depth: depth + 1,
                    }
                }
            });
        }
        self.stack.extend(frames.into_iter().rev());
        Ok(())
    }
}

/// An event of [`export_tree_with`].
#[derive(Debug)]
pub enum TreeEvent<'a> {
    /// A new entry (for a file, its bytes follow as [`TreeEvent::Bytes`]).
    Entry(&'a TreeEntry),
    /// The next bytes of the last file entry.
    Bytes(Bytes),
}

/// Exports the DAG under `root` with blocks from `get`, calling `visit` with each entry and,
/// after a file's entry, its bytes in order.
///
/// # Errors
/// Those of [`TreeExporter::on_block`] and [`FileReader::on_block`],
/// [`ExportError::MissingBlock`], and whatever `get` and `visit` return.
pub fn export_tree_with<G, V>(root: Cid, mut get: G, mut visit: V) -> Result<(), ExportError>
where
    G: FnMut(&Cid) -> Result<Option<Bytes>, ExportError>,
    V: FnMut(TreeEvent<'_>) -> Result<(), ExportError>,
{
    let mut t = TreeExporter::new(root);
    loop {
        match t.next()? {
            TreeStep::Need(c) => {
                let data = fetch(&mut get, &c, t.path())?;
                t.on_block(&c, &data)?;
            }
            TreeStep::Entry(entry) => {
                visit(TreeEvent::Entry(&entry))?;
                if let TreeEntryKind::File(mut reader) = entry.kind {
                    drive_file(&mut reader, &mut get, &mut |b| visit(TreeEvent::Bytes(b)))?;
                }
            }
            TreeStep::Done => return Ok(()),
        }
    }
}
