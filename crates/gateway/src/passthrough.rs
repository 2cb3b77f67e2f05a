//! The stored-bytes passthrough of a CAR stream: when the DAG walk wants, block after block,
//! exactly the sections that follow one another in a stored CAR file, those sections are sent
//! as they are stored (big ranged reads, zero-copy slices) instead of one re-encoded section per
//! block. Each section is still checked against the walk before it is sent: the bytes sent are
//! identical to those of the block-by-block path, whatever the stored file holds.
//!
//! Spec: carv1.md § "Format Description" (a section is `varint(len(CID) + len(data)) | CID |
//! data`, varints minimal); trustless-gateway.md § "CAR Responses" (`order=dfs`, `dups`, no
//! identity blocks). See DESIGN.md § "Gateway passthrough of stored CAR sections".

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;
use hydrant_blocks::{Blockstore, StoredLocation};
use hydrant_unixfs::{DagError, DagWalker};

/// Consecutive blocks the walk wants that the stored file does not hold next, after which
/// the passthrough is given up for the rest of the stream (the file is not in this walk's
/// order; each such block was served by the block-by-block path).
pub(crate) const MAX_MISSES: usize = 64;

/// Smallest read: one section of the largest block with the largest CID and varint.
const MIN_CHUNK: u64 = (hydrant_car::MAX_BLOCK_SIZE + hydrant_car::MAX_CID_SIZE + 10) as u64;

/// Bytes of the first ranged read of a stored file (then doubling up to the chunk size).
const FIRST_READ: u64 = 256 * 1024;

/// A stored CAR file being read through, from the section of the walk's first block on.
pub(crate) struct Stored {
    blocks: Arc<dyn Blockstore>,
    car: String,
    car_size: u64,
    /// Bytes read so far that are not yet consumed, starting at file offset `buf_start`.
    buf: Bytes,
    buf_start: u64,
    /// File offset of the next section to look at.
    pos: u64,
    /// Most bytes per ranged read.
    chunk: u64,
    /// Bytes of the next ranged read: [`FIRST_READ`] (at most `chunk`), doubling after each
    /// read up to `chunk`, so a small DAG in a big file costs a small read.
    read_size: u64,
    verify: bool,
    /// Consecutive wanted blocks the file did not hold next.
    misses: usize,
    /// Nothing more is read (see [`Run::Done`]).
    done: bool,
}

/// What [`Stored::run`] produced.
pub(crate) enum Run {
    /// Stored sections, each one the walk's next block, to send as they are; with the walk's
    /// error on the last of them, if any (to report after sending them).
    Sections(Bytes, Option<DagError>),
    /// The next wanted block is not next in the file: serve it block by block.
    Miss,
    /// The file cannot be read through any further (its end, a read error, an unexpected
    /// byte, a block that does not hash to its CID): serve the rest block by block.
    Done,
}

/// A section parsed at the start of a buffer.
enum Parsed {
    /// `len` bytes in all, of which the CID and data start at `body_start` (after the
    /// length varint).
    Section { len: usize, body_start: usize },
    /// The buffer ends inside the section (or its varint).
    Incomplete,
    /// Not a section we can read (varint too long or not minimal, zero or oversized length).
    Invalid,
}

impl Stored {
    /// Opens the stored CAR holding `first` (the walk's first block) at its section, reading
    /// at most `chunk` bytes at a time (at least one largest section), starting with
    /// [`FIRST_READ`]. `None` when the store has no
    /// stored file for it or cannot say (the block-by-block path then reports any error).
    pub(crate) async fn open(blocks: Arc<dyn Blockstore>, first: &Cid, chunk: u64) -> Option<Self> {
        let StoredLocation {
            car,
            offset,
            length,
            car_size,
        } = blocks.stored_location(first).await.ok()??;
        let cid_len = first.encoded_len() as u64;
        let len = cid_len + u64::from(length);
        let pos = offset.checked_sub(cid_len + varint_len(len))?;
        let verify = blocks.verifies_reads();
        Some(Stored {
            blocks,
            car,
            car_size,
            buf: Bytes::new(),
            buf_start: pos,
            pos,
            chunk: chunk.max(MIN_CHUNK),
            read_size: FIRST_READ.min(chunk.max(MIN_CHUNK)),
            verify,
            misses: 0,
            done: false,
        })
    }

    /// Sends as many stored sections as follow one another in the file and are, each in
    /// turn, the walk's next wanted block (the same CID bytes after a minimal length varint,
    /// and hashing to the CID when reads are verified), feeding each to `walker`. A stored
    /// section of a block the walk already sent and will not want again (`dups=n`) is
    /// skipped. Holds at most one chunk of the file.
    pub(crate) async fn run(&mut self, walker: &mut DagWalker) -> Run {
        if self.done {
            return Run::Done;
        }
        let mut run: Option<Range<usize>> = None;
        let mut refilled = false;
        while let Some(wanted) = walker.next_wanted() {
            let at = (self.pos - self.buf_start) as usize;
            let (len, body_start) = match parse(&self.buf[at..]) {
                Parsed::Section { len, body_start } => (len, body_start),
                Parsed::Invalid => return self.end(run),
                Parsed::Incomplete if run.is_some() => break,
                Parsed::Incomplete => {
                    let read_all = self.buf_start + self.buf.len() as u64 >= self.car_size;
                    let at_most = refilled && (self.read_size >= self.chunk || read_all);
                    if at_most || self.pos >= self.car_size || !self.refill().await {
                        return self.end(run);
                    }
                    refilled = true;
                    continue;
                }
            };
            let body = &self.buf[at + body_start..at + len];
            let cid = wanted.to_bytes();
            if body.starts_with(&cid) {
                // CIDs are self-delimiting: the stored CID is `wanted`, byte for byte.
                let data = &body[cid.len()..];
                if self.verify && !matches!(hydrant_blocks::matches(wanted.hash(), data), Ok(true))
                {
                    // Served (or reported) by the block-by-block path, which also tries the
                    // block's other locations.
                    return self.end(run);
                }
                let walked = walker.on_block(&wanted, data);
                let start = run.map_or(at, |r| r.start);
                run = Some(start..at + len);
                self.pos += len as u64;
                self.misses = 0;
                refilled = false;
                if let Err(e) = walked {
                    return Run::Sections(self.buf.slice(start..at + len), Some(e));
                }
                continue;
            }
            if run.is_some() {
                break;
            }
            if Cid::read_bytes(body).is_ok_and(|stored| walker.has_seen(&stored)) {
                self.pos += len as u64;
                refilled = false;
                continue;
            }
            self.misses += 1;
            return if self.misses > MAX_MISSES {
                self.end(None)
            } else {
                Run::Miss
            };
        }
        match run {
            Some(r) => Run::Sections(self.buf.slice(r), None),
            None => self.end(None),
        }
    }

    /// The run so far, if any, else [`Run::Done`]; either way nothing more is read.
    fn end(&mut self, run: Option<Range<usize>>) -> Run {
        let out = match run {
            Some(r) => Run::Sections(self.buf.slice(r), None),
            None => Run::Done,
        };
        self.done = true;
        self.buf = Bytes::new();
        out
    }

    /// Reads the next chunk from the next section on; `false` when the read failed.
    async fn refill(&mut self) -> bool {
        let end = self.car_size.min(self.pos.saturating_add(self.read_size));
        self.read_size = self.read_size.saturating_mul(2).min(self.chunk);
        match self.blocks.read_stored(&self.car, self.pos..end).await {
            Ok(bytes) => {
                self.buf = bytes;
                self.buf_start = self.pos;
                true
            }
            Err(e) => {
                tracing::debug!(car = %self.car, error = %e, "stored CAR read failed; block by block");
                false
            }
        }
    }
}

/// Bytes of the minimal unsigned varint of `n`.
fn varint_len(n: u64) -> u64 {
    u64::from((64 - n.max(1).leading_zeros()).div_ceil(7))
}

/// The section at the start of `buf`: its length varint must be minimal, at most 10 bytes,
/// and announce 1 to `MAX_BLOCK_SIZE + MAX_CID_SIZE` bytes (a zero length, which some writers
/// use to end a CAR, is [`Parsed::Invalid`] here: the passthrough simply stops).
fn parse(buf: &[u8]) -> Parsed {
    let mut value: u64 = 0;
    for (i, byte) in buf.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 != 0 {
            continue;
        }
        let varint = i + 1;
        let max = (hydrant_car::MAX_BLOCK_SIZE + hydrant_car::MAX_CID_SIZE) as u64;
        if value == 0 || value > max || varint_len(value) != varint as u64 {
            return Parsed::Invalid;
        }
        let len = varint + value as usize;
        return if buf.len() < len {
            Parsed::Incomplete
        } else {
            Parsed::Section {
                len,
                body_start: varint,
            }
        };
    }
    if buf.len() >= 10 {
        Parsed::Invalid
    } else {
        Parsed::Incomplete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths() {
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(16_383), 2);
        assert_eq!(varint_len(16_384), 3);
    }

    #[test]
    fn parses_sections() {
        assert!(matches!(parse(&[]), Parsed::Incomplete));
        assert!(matches!(parse(&[0x80]), Parsed::Incomplete));
        assert!(matches!(parse(&[0x00]), Parsed::Invalid));
        // 1 as a two-byte varint: not minimal.
        assert!(matches!(parse(&[0x81, 0x00, 0xaa]), Parsed::Invalid));
        assert!(matches!(parse(&[0x03, 1, 2]), Parsed::Incomplete));
        assert!(matches!(
            parse(&[0x03, 1, 2, 3, 4]),
            Parsed::Section {
                len: 4,
                body_start: 1
            }
        ));
        assert!(matches!(parse(&[0xff; 12]), Parsed::Invalid));
    }
}
