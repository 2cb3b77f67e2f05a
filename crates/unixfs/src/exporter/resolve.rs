//! Path resolution: `CID[/a/b/c]` to the CID of the node it names.
//!
//! Spec: unixfs.md § "UnixFS Paths", § "Relative Path Components", § "`dag-pb` `Directory`
//! Path Resolution", § "`dag-pb` `HAMTDirectory` Path Resolution". The per-block step is
//! [`crate::resolve_path`]; this drives it across blocks and names what went wrong.

use bytes::Bytes;
use cid::Cid;

use super::{ExportError, MAX_NAME_LEN, MAX_PATH_SEGMENTS, fetch, identity_data, is_identity};
use crate::path::{HAMT_HASH_BITS, HamtCursor, PathStep, resolve_path};

/// Where a path led.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The node the path names (the root when the path is empty).
    pub cid: Cid,
    /// The path as resolved, `ROOT/a/b` (for messages).
    pub path: String,
    /// The last segment (the name `get` gives the target), `None` for an empty path.
    pub name: Option<String>,
}

/// Resolves a content path one block at a time (sans I/O).
///
/// ```text
/// let mut r = Resolver::new(root, "a/b")?;
/// while let Some(cid) = r.next_wanted()? { r.on_block(&cid, &fetch(cid)?)?; }
/// let target = r.finish()?;
/// ```
///
/// Memory: the segments and one cursor; no block data is kept.
#[derive(Debug)]
pub struct Resolver {
    segments: Vec<String>,
    index: usize,
    current: Cid,
    cursor: HamtCursor,
    /// HAMT shards descended for the current segment.
    hamt_depth: u32,
    path: String,
}

impl Resolver {
    /// A resolution of `path` (segments separated by `/`; empty segments and `.` are dropped,
    /// `..` removes the segment before it, unixfs.md § "Relative Path Components") under
    /// `root`. Segments must already be percent-decoded.
    ///
    /// # Errors
    /// [`ExportError::InvalidPath`] for a `..` that would leave the root;
    /// [`ExportError::LimitExceeded`] for more than [`MAX_PATH_SEGMENTS`] segments or a
    /// segment longer than [`MAX_NAME_LEN`].
    pub fn new(root: Cid, path: &str) -> Result<Self, ExportError> {
        let mut segments: Vec<String> = Vec::new();
        for seg in path.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    if segments.pop().is_none() {
                        return Err(ExportError::InvalidPath {
                            path: format!("{root}/{path}"),
                        });
                    }
                }
                s => {
                    if s.len() > MAX_NAME_LEN {
                        return Err(ExportError::LimitExceeded {
                            path: root.to_string(),
                            what: "bytes in a path segment",
                            limit: MAX_NAME_LEN,
                        });
                    }
                    segments.push(s.to_string());
                }
            }
            if segments.len() > MAX_PATH_SEGMENTS {
                return Err(ExportError::LimitExceeded {
                    path: root.to_string(),
                    what: "path segments",
                    limit: MAX_PATH_SEGMENTS,
                });
            }
        }
        Ok(Resolver {
            segments,
            index: 0,
            current: root,
            cursor: HamtCursor::default(),
            hamt_depth: 0,
            path: root.to_string(),
        })
    }

    /// The block needed next, or `None` when the path is resolved (call [`Self::finish`]).
    /// Identity CIDs are read here, never asked for.
    ///
    /// # Errors
    /// As [`Self::on_block`], for an identity block on the path.
    pub fn next_wanted(&mut self) -> Result<Option<Cid>, ExportError> {
        while self.index < self.segments.len() {
            if is_identity(&self.current) {
                let cid = self.current;
                self.step(&cid, &identity_data(&cid))?;
                continue;
            }
            return Ok(Some(self.current));
        }
        Ok(None)
    }

    /// The path of the node being resolved (for a [`ExportError::MissingBlock`]).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Hands over the bytes of the block [`Self::next_wanted`] returned.
    ///
    /// # Errors
    /// [`ExportError::NotFound`] (naming the segment), [`ExportError::NotADirectory`],
    /// [`ExportError::Dag`] for an undecodable block, [`ExportError::LimitExceeded`] for a
    /// HAMT deeper than its hash allows, [`ExportError::UnexpectedBlock`].
    pub fn on_block(&mut self, cid: &Cid, data: &[u8]) -> Result<(), ExportError> {
        if self.index >= self.segments.len() || *cid != self.current {
            let expected = (self.index < self.segments.len()).then(|| Box::new(self.current));
            return Err(ExportError::UnexpectedBlock {
                expected,
                got: *cid,
            });
        }
        self.step(cid, data)
    }

    fn step(&mut self, cid: &Cid, data: &[u8]) -> Result<(), ExportError> {
        let rest = &self.segments[self.index..];
        let step = resolve_path(cid, data, &rest[..1], &mut self.cursor).map_err(|source| {
            ExportError::Dag {
                path: self.path.clone(),
                source,
            }
        })?;
        let segment = rest[0].clone();
        match step {
            PathStep::Link { cid: next, .. } => {
                self.path = format!("{}/{}", self.path, segment);
                self.index += 1;
                self.current = next;
                self.hamt_depth = 0;
                self.cursor = HamtCursor::default();
                Ok(())
            }
            PathStep::Shard(next) => {
                self.hamt_depth += 1;
                // A fanout of at least 8 uses 3 hash bits per level.
                if self.hamt_depth > HAMT_HASH_BITS / 3 {
                    return Err(ExportError::LimitExceeded {
                        path: self.path.clone(),
                        what: "HAMT levels",
                        limit: (HAMT_HASH_BITS / 3) as usize,
                    });
                }
                self.current = next;
                Ok(())
            }
            PathStep::NotFound { .. } => Err(ExportError::NotFound {
                path: self.path.clone(),
                segment,
                cid: *cid,
            }),
            PathStep::NotTraversable { .. } | PathStep::EndsInsideBlock => {
                Err(ExportError::NotADirectory {
                    path: self.path.clone(),
                    cid: *cid,
                    segment,
                })
            }
        }
    }

    /// The resolved target.
    ///
    /// # Errors
    /// [`ExportError::UnexpectedBlock`] when called before [`Self::next_wanted`] returned
    /// `None`.
    pub fn finish(self) -> Result<Resolved, ExportError> {
        if self.index < self.segments.len() {
            return Err(ExportError::UnexpectedBlock {
                expected: Some(Box::new(self.current)),
                got: self.current,
            });
        }
        Ok(Resolved {
            cid: self.current,
            path: self.path,
            name: self.segments.last().cloned(),
        })
    }
}

/// Resolves `path` under `root`, fetching blocks with `get` (`Ok(None)`: the block is
/// missing, reported as [`ExportError::MissingBlock`]).
///
/// # Errors
/// Those of [`Resolver::new`] and [`Resolver::on_block`], [`ExportError::MissingBlock`], and
/// whatever `get` returns.
pub fn resolve_with<G>(root: Cid, path: &str, mut get: G) -> Result<Resolved, ExportError>
where
    G: FnMut(&Cid) -> Result<Option<Bytes>, ExportError>,
{
    let mut r = Resolver::new(root, path)?;
    while let Some(cid) = r.next_wanted()? {
        let data = fetch(&mut get, &cid, r.path())?;
        r.on_block(&cid, &data)?;
    }
    r.finish()
}
