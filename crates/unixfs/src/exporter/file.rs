//! File bytes, in order, one block at a time.
//!
//! Spec: unixfs.md § "`dag-pb` `File`" (the sister-lists `Links`/`blocksizes`, DFS order, a
//! node's own `Data` before its children's), § "`decode(PBNode.Data).Blocksize`", § "Offset
//! List", § "Identity CID Size Limit".

use bytes::Bytes;
use cid::Cid;

use super::{ExportError, Node, fetch, identity_data, is_identity};
use crate::error::DagError;
use crate::pb::DataType;

/// One step of a [`FileReader`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileStep {
    /// Fetch this block and pass it to [`FileReader::on_block`].
    Need(Cid),
    /// The next bytes of the file (or of the range), in order; never empty.
    Bytes(Bytes),
    /// Every byte was produced and every size checked.
    Done,
}

/// A node still to read: its CID and the absolute offset of its first byte.
#[derive(Clone, Copy, Debug)]
struct Pending {
    cid: Cid,
    offset: u64,
    /// Bytes its parent's `blocksizes` says it holds (`None` for the root).
    expected: Option<u64>,
}

/// Reads a UnixFS file (a raw block, or a dag-pb `File`/`Raw` DAG) in order, sans I/O.
///
/// ```text
/// let mut f = FileReader::new(cid, path, 0, None);
/// loop { match f.next()? {
///     FileStep::Need(c) => f.on_block(&c, &fetch(c)?)?,
///     FileStep::Bytes(b) => out.write_all(&b)?,
///     FileStep::Done => break,
/// } }
/// ```
///
/// Memory: one block's bytes at a time (handed out as [`FileStep::Bytes`]) plus a stack of
/// pending links (depth × width of the DAG); never the whole file.
///
/// Checks: every dag-pb node's `blocksizes` has one entry per link (else
/// [`ExportError::Dag`] with [`DagError::BlocksizesMismatch`]), its `filesize` equals its own
/// data plus its `blocksizes` and its parent's `blocksizes` entry equals what it holds (else
/// [`ExportError::SizeMismatch`]). Children that hold none of the requested range are not
/// fetched (so their sizes are not checked); children whose `blocksizes` entry is 0 are never
/// fetched.
#[derive(Debug)]
pub struct FileReader {
    path: String,
    /// First byte wanted and one past the last (`end` is clamped to the file size once the
    /// root is read).
    start: u64,
    end: u64,
    stack: Vec<Pending>,
    current: Option<Pending>,
    ready: Option<Bytes>,
    /// Size of the file, known once the root is read.
    size: Option<u64>,
    done: bool,
}

impl FileReader {
    /// A reader of `length` bytes (`None`: to the end) from `offset` of file `cid`; `path` is
    /// used in errors. A range past the end of the file reads nothing (after the root block).
    pub fn new(cid: Cid, path: impl Into<String>, offset: u64, length: Option<u64>) -> Self {
        let end = length.map_or(u64::MAX, |l| offset.saturating_add(l));
        FileReader {
            path: path.into(),
            start: offset,
            end,
            stack: Vec::new(),
            current: Some(Pending {
                cid,
                offset: 0,
                expected: None,
            }),
            ready: None,
            size: None,
            done: false,
        }
    }

    /// Size of the file in bytes, once its root block has been read.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The path given to [`Self::new`].
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Number of links waiting on the stack (for tests and metrics).
    pub fn pending(&self) -> usize {
        self.stack.len() + usize::from(self.current.is_some())
    }

    /// The next step: bytes ready, a block to fetch, or done.
    ///
    /// # Errors
    /// As [`Self::on_block`], for identity blocks (read here, never asked for).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<FileStep, ExportError> {
        loop {
            if let Some(b) = self.ready.take() {
                return Ok(FileStep::Bytes(b));
            }
            if self.current.is_none() {
                self.current = self.stack.pop();
            }
            match self.current {
                None => {
                    self.done = true;
                    return Ok(FileStep::Done);
                }
                Some(p) if is_identity(&p.cid) => {
                    self.current = None;
                    self.read(p, &identity_data(&p.cid))?;
                }
                Some(p) => return Ok(FileStep::Need(p.cid)),
            }
        }
    }

    /// Hands over the bytes of the block [`Self::next`] asked for.
    ///
    /// # Errors
    /// [`ExportError::UnexpectedBlock`]; [`ExportError::Dag`] for an undecodable block or a
    /// non-file node inside the file; [`ExportError::WrongType`] when the root is not a file;
    /// [`ExportError::SizeMismatch`] when stated sizes disagree with the bytes.
    pub fn on_block(&mut self, cid: &Cid, data: &[u8]) -> Result<(), ExportError> {
        match self.current {
            Some(p) if p.cid == *cid && self.ready.is_none() => {
                self.current = None;
                self.read(p, data)
            }
            other => Err(ExportError::UnexpectedBlock {
                expected: other.map(|p| Box::new(p.cid)),
                got: *cid,
            }),
        }
    }

    fn dag_err(&self, source: DagError) -> ExportError {
        ExportError::Dag {
            path: self.path.clone(),
            source,
        }
    }

    fn mismatch(&self, cid: Cid, what: &'static str, expected: u64, actual: u64) -> ExportError {
        ExportError::SizeMismatch {
            path: self.path.clone(),
            cid,
            what,
            expected,
            actual,
        }
    }

    fn read(&mut self, p: Pending, data: &[u8]) -> Result<(), ExportError> {
        let is_root = p.expected.is_none();
        let node = Node::decode(&p.cid, data).map_err(|e| self.dag_err(e))?;
        let (own, children, total) = match node {
            Node::Raw(bytes) => {
                let len = bytes.len() as u64;
                (bytes, Vec::new(), len)
            }
            Node::Pb(pb, ufs) if ufs.data_type.is_file() => {
                if pb.links.len() != ufs.blocksizes.len() {
                    return Err(self.dag_err(DagError::BlocksizesMismatch {
                        cid: p.cid,
                        links: pb.links.len(),
                        blocksizes: ufs.blocksizes.len(),
                    }));
                }
                let total = ufs
                    .blocksizes
                    .iter()
                    .try_fold(ufs.data.len() as u64, |a, b| a.checked_add(*b))
                    .ok_or_else(|| self.mismatch(p.cid, "blocksizes overflow", u64::MAX, 0))?;
                // Legacy `Raw` nodes (Type 0) may omit filesize; File nodes must state it.
                if ufs.data_type == DataType::File && ufs.filesize != total {
                    return Err(self.mismatch(
                        p.cid,
                        "filesize vs data + blocksizes",
                        ufs.filesize,
                        total,
                    ));
                }
                let children: Vec<(Cid, u64)> = pb
                    .links
                    .iter()
                    .map(|l| l.cid)
                    .zip(ufs.blocksizes.iter().copied())
                    .collect();
                (ufs.data, children, total)
            }
            Node::Pb(_, ufs) if is_root => {
                return Err(ExportError::WrongType {
                    path: self.path.clone(),
                    cid: p.cid,
                    found: super::type_name(ufs.data_type),
                    wanted: "file",
                });
            }
            Node::Pb(_, ufs) => {
                return Err(self.dag_err(DagError::InvalidUnixFs {
                    cid: p.cid,
                    reason: format!(
                        "file chunk is a {}, not a file",
                        super::type_name(ufs.data_type)
                    ),
                }));
            }
        };
        if let Some(expected) = p.expected
            && expected != total
        {
            return Err(self.mismatch(p.cid, "parent's blocksizes", expected, total));
        }
        if is_root {
            self.size = Some(total);
            self.end = self.end.min(total);
        }
        // Own data first (unixfs.md § "`dag-pb` `File`"), the part inside start..end.
        let own_len = own.len() as u64;
        let (lo, hi) = (p.offset, p.offset + own_len);
        if hi > self.start && lo < self.end {
            let a = self.start.saturating_sub(lo);
            let b = self.end.min(hi) - lo;
            // Both are within own's length: a < b <= own_len, and own_len fits in usize.
            let (a, b) = (
                usize::try_from(a).unwrap_or(0),
                usize::try_from(b).unwrap_or(0),
            );
            if a < b {
                self.ready = Some(own.slice(a..b));
            }
        }
        // Then the children covering start..end, leftmost popped first.
        let mut pos = hi;
        let mut wanted = Vec::new();
        for (cid, size) in children {
            let next = pos.saturating_add(size);
            if size > 0 && next > self.start && pos < self.end {
                wanted.push(Pending {
                    cid,
                    offset: pos,
                    expected: Some(size),
                });
            }
            pos = next;
        }
        self.stack.extend(wanted.into_iter().rev());
        Ok(())
    }

    /// True once [`Self::next`] has returned [`FileStep::Done`].
    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// Reads `length` bytes (`None`: to the end) from `offset` of file `cid`, fetching blocks with
/// `get` and handing each piece to `sink` in order. Returns the file's size.
///
/// # Errors
/// Those of [`FileReader::on_block`], [`ExportError::MissingBlock`], and whatever `get` and
/// `sink` return.
pub fn read_file_with<G, S>(
    cid: Cid,
    path: &str,
    offset: u64,
    length: Option<u64>,
    mut get: G,
    mut sink: S,
) -> Result<u64, ExportError>
where
    G: FnMut(&Cid) -> Result<Option<Bytes>, ExportError>,
    S: FnMut(Bytes) -> Result<(), ExportError>,
{
    let mut f = FileReader::new(cid, path, offset, length);
    drive_file(&mut f, &mut get, &mut sink)?;
    Ok(f.size().unwrap_or(0))
}

/// Drives `f` to the end.
pub(crate) fn drive_file<G, S>(
    f: &mut FileReader,
    get: &mut G,
    sink: &mut S,
) -> Result<(), ExportError>
where
    G: FnMut(&Cid) -> Result<Option<Bytes>, ExportError>,
    S: FnMut(Bytes) -> Result<(), ExportError>,
{
    loop {
        match f.next()? {
            FileStep::Need(c) => {
                let data = fetch(get, &c, f.path())?;
                f.on_block(&c, &data)?;
            }
            FileStep::Bytes(b) => sink(b)?,
            FileStep::Done => return Ok(()),
        }
    }
}
