//! [`RowSorter`]: the rows of one staging, sorted by multihash with bounded memory (an external
//! merge sort), so that the commit can write them in key order: fjall's bulk ingestion, and
//! PostgreSQL's `COPY` into the primary key (each B-tree leaf visited once per CAR instead of
//! once per row).
//!
//! Rows are buffered until [`SORT_BUFFER_BYTES`]; a full buffer is sorted, its duplicates
//! dropped (the row staged last wins) and written as one *run* to an unnamed temporary file in
//! the directory the backend names (gone with the process, whatever the way it ends). [`RowSorter::drain`]
//! merges the runs with a binary heap, again keeping the row staged last of a multihash.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{IndexError, StagedBlock};

/// Bytes of rows one staging buffers in memory before it sorts them and writes them as a run
/// (66 bytes per row of a sha2-256 multihash, so about 254,000 rows). The buffers grow to it
/// as rows come, so a small staging takes little.
pub const SORT_BUFFER_BYTES: usize = 16 * 1024 * 1024;

/// Bytes of read buffer all runs of one merge share; each run gets an equal part, but never
/// less than 4 KiB (so past `MERGE_BUFFER_BYTES / MIN_RUN_BUFFER` = 4096 runs,
/// about 10^9 rows, the merge takes more).
pub const MERGE_BUFFER_BYTES: usize = 16 * 1024 * 1024;

/// Smallest read buffer of one run in a merge, in bytes.
pub const MIN_RUN_BUFFER: usize = 4096;

/// Longest multihash encoding: varint code (at most 10 bytes), varint digest length (1 byte
/// for the at most 64 digest bytes of [`crate::Multihash`]), digest.
const MAX_MULTIHASH_BYTES: usize = 10 + 1 + 64;

/// Bytes of a run record after the multihash: offset (u64 LE) ++ length (u32 LE).
const LOCATION_BYTES: usize = 12;

/// One buffered row: its multihash bytes are `arena[start..start + len]`. `start` grows with
/// every row pushed, so it also orders rows by staging time.
#[derive(Clone, Copy)]
struct Pending {
    start: u32,
    len: u8,
    offset: u64,
    length: u32,
}

/// The rows of one staging, sorted with bounded memory (see the module docs).
pub struct RowSorter {
    dir: PathBuf,
    buffer_bytes: usize,
    arena: Vec<u8>,
    pending: Vec<Pending>,
    /// Runs written so far, as byte ranges of `file`.
    runs: Vec<(u64, u64)>,
    file: Option<File>,
    staged: u64,
}

impl RowSorter {
    /// An empty sorter whose runs go to an unnamed temporary file in `dir` (created at the
    /// first run), buffering at most about `buffer_bytes` bytes of rows.
    pub fn new(dir: &Path, buffer_bytes: usize) -> Self {
        Self {
            dir: dir.to_owned(),
            buffer_bytes: buffer_bytes.max(1),
            arena: Vec::new(),
            pending: Vec::new(),
            runs: Vec::new(),
            file: None,
            staged: 0,
        }
    }

    /// Rows pushed so far (duplicates counted).
    pub fn staged(&self) -> u64 {
        self.staged
    }

    /// True when every row pushed is still in memory (no run was written).
    pub fn in_memory(&self) -> bool {
        self.runs.is_empty()
    }

    /// Most rows and most multihash bytes the buffer holds: `buffer_bytes` split for rows of a
    /// sha2-256 multihash (34 bytes), the common case.
    fn limits(&self) -> (usize, usize) {
        let row = std::mem::size_of::<Pending>();
        let rows = (self.buffer_bytes / (row + 34)).max(1);
        let arena = self
            .buffer_bytes
            .saturating_sub(rows * row)
            .max(MAX_MULTIHASH_BYTES);
        (rows, arena)
    }

    /// Makes room for one more row: grows the buffers (never past [`limits`](Self::limits),
    /// so their capacity stays within `buffer_bytes`), or writes a run when they are full.
    fn make_room(&mut self) -> Result<(), IndexError> {
        let (max_rows, max_arena) = self.limits();
        if self.pending.len() == max_rows || self.arena.len() + MAX_MULTIHASH_BYTES > max_arena {
            return self.write_run();
        }
        if self.pending.len() == self.pending.capacity() {
            let more = self
                .pending
                .capacity()
                .max(1024)
                .min(max_rows - self.pending.len());
            self.pending.reserve_exact(more);
        }
        if self.arena.len() + MAX_MULTIHASH_BYTES > self.arena.capacity() {
            let more = self
                .arena
                .capacity()
                .max(64 * 1024)
                .min(max_arena - self.arena.len());
            self.arena.reserve_exact(more);
        }
        Ok(())
    }

    /// Adds `rows`, writing a run whenever the buffer is full.
    ///
    /// # Errors
    /// [`IndexError::Storage`] when a run cannot be written.
    pub fn push(&mut self, rows: &[StagedBlock]) -> Result<(), IndexError> {
        for row in rows {
            self.make_room()?;
            let start = self.arena.len();
            row.multihash
                .write(&mut self.arena)
                .map_err(|e| storage("encoding a multihash", e))?;
            let len = self.arena.len() - start;
            debug_assert!(len <= MAX_MULTIHASH_BYTES);
            self.pending.push(Pending {
                start: u32::try_from(start).expect("the buffer is far below 4 GiB"),
                len: u8::try_from(len).expect("a multihash is at most 75 bytes"),
                offset: row.offset,
                length: row.length,
            });
            self.staged += 1;
        }
        Ok(())
    }

    /// Sorts the buffer by multihash (the row staged last first among equal ones, for
    /// `dedup_by_key`-style keeping) and drops all but the last row of each multihash.
    fn sort_buffer(&mut self) {
        let arena = &self.arena;
        let key = |p: &Pending| &arena[p.start as usize..p.start as usize + p.len as usize];
        // Among equal multihashes the latest (largest `start`) sorts first and is kept.
        self.pending
            .sort_unstable_by(|a, b| key(a).cmp(key(b)).then(b.start.cmp(&a.start)));
        self.pending
            .dedup_by(|later, first| key(later) == key(first));
    }

    fn write_run(&mut self) -> Result<(), IndexError> {
        self.sort_buffer();
        if self.file.is_none() {
            let file = tempfile::tempfile_in(&self.dir)
                .map_err(|e| storage(&format!("temporary file in {}", self.dir.display()), e))?;
            self.file = Some(file);
        }
        let file = self.file.as_ref().expect("just created");
        let start = self.runs.last().map_or(0, |&(_, end)| end);
        let mut out = BufWriter::with_capacity(256 * 1024, PositionedWriter { file, at: start });
        let write = |out: &mut BufWriter<PositionedWriter<'_>>| -> std::io::Result<()> {
            for p in &self.pending {
                let mh = &self.arena[p.start as usize..p.start as usize + p.len as usize];
                out.write_all(&[p.len])?;
                out.write_all(mh)?;
                out.write_all(&p.offset.to_le_bytes())?;
                out.write_all(&p.length.to_le_bytes())?;
            }
            out.flush()
        };
        write(&mut out).map_err(|e| storage("writing a run of staged rows", e))?;
        let end = out.get_ref().at;
        self.runs.push((start, end));
        self.arena.clear();
        self.pending.clear();
        Ok(())
    }

    /// Calls `f(multihash bytes, offset, length)` for every distinct multihash pushed, in
    /// ascending byte order of the multihashes, with the row pushed last for each.
    ///
    /// # Errors
    /// The first error of `f`, or [`IndexError::Storage`] when a run cannot be read.
    pub fn drain<F>(mut self, mut f: F) -> Result<(), IndexError>
    where
        F: FnMut(&[u8], u64, u32) -> Result<(), IndexError>,
    {
        if self.runs.is_empty() {
            self.sort_buffer();
            for p in &self.pending {
                let mh = &self.arena[p.start as usize..p.start as usize + p.len as usize];
                f(mh, p.offset, p.length)?;
            }
            return Ok(());
        }
        if !self.pending.is_empty() {
            self.write_run()?;
        }
        // Free the sort buffer before the merge takes its read buffers.
        self.arena = Vec::new();
        self.pending = Vec::new();
        let file = self.file.as_ref().expect("runs were written");
        let per_run = (MERGE_BUFFER_BYTES / self.runs.len()).max(MIN_RUN_BUFFER);
        let mut readers: Vec<RunReader<'_>> = self
            .runs
            .iter()
            .map(|&(start, end)| RunReader::new(file, start, end, per_run))
            .collect();
        let mut heap = BinaryHeap::with_capacity(readers.len());
        for (run, reader) in readers.iter_mut().enumerate() {
            if let Some(head) = reader.next(run)? {
                heap.push(Reverse(head));
            }
        }
        while let Some(Reverse(mut best)) = heap.pop() {
            if let Some(next) = readers[best.run].next(best.run)? {
                heap.push(Reverse(next));
            }
            // Equal multihashes of later runs pop after it (runs break ties): the last wins.
            while let Some(Reverse(same)) = heap.peek()
                && same.key() == best.key()
            {
                let Some(Reverse(same)) = heap.pop() else {
                    break;
                };
                if let Some(next) = readers[same.run].next(same.run)? {
                    heap.push(Reverse(next));
                }
                best = same;
            }
            f(best.key(), best.offset, best.length)?;
        }
        Ok(())
    }
}

/// A row at the head of a run, in the merge heap: ordered by multihash, then run.
struct Head {
    mh: [u8; MAX_MULTIHASH_BYTES],
    len: u8,
    run: usize,
    offset: u64,
    length: u32,
}

impl Head {
    fn key(&self) -> &[u8] {
        &self.mh[..self.len as usize]
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(other.key()).then(self.run.cmp(&other.run))
    }
}

/// Reads one run's records through its own buffer, by position (the runs share one file).
struct RunReader<'a> {
    file: &'a File,
    /// File position of the next byte to read into `buf`.
    at: u64,
    end: u64,
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
}

impl<'a> RunReader<'a> {
    fn new(file: &'a File, start: u64, end: u64, capacity: usize) -> Self {
        Self {
            file,
            at: start,
            end,
            buf: vec![0; capacity.max(1 + MAX_MULTIHASH_BYTES + LOCATION_BYTES)],
            pos: 0,
            filled: 0,
        }
    }

    /// Makes at least `n` bytes available at `pos`; false at the end of the run.
    fn fill(&mut self, n: usize) -> Result<bool, IndexError> {
        if self.filled - self.pos >= n {
            return Ok(true);
        }
        self.buf.copy_within(self.pos..self.filled, 0);
        self.filled -= self.pos;
        self.pos = 0;
        while self.filled < n && self.at < self.end {
            let room = (self.buf.len() - self.filled).min((self.end - self.at) as usize);
            let read = self
                .file
                .read_at(&mut self.buf[self.filled..self.filled + room], self.at)
                .map_err(|e| storage("reading a run of staged rows", e))?;
            if read == 0 {
                return Err(corrupt_run("ends early"));
            }
            self.filled += read;
            self.at += read as u64;
        }
        Ok(self.filled >= n)
    }

    fn next(&mut self, run: usize) -> Result<Option<Head>, IndexError> {
        if !self.fill(1)? {
            return Ok(None);
        }
        let len = self.buf[self.pos] as usize;
        if len > MAX_MULTIHASH_BYTES {
            return Err(corrupt_run("multihash longer than 75 bytes"));
        }
        if !self.fill(1 + len + LOCATION_BYTES)? {
            return Err(corrupt_run("ends inside a record"));
        }
        let record = &self.buf[self.pos + 1..self.pos + 1 + len + LOCATION_BYTES];
        let mut head = Head {
            mh: [0; MAX_MULTIHASH_BYTES],
            len: len as u8,
            run,
            offset: u64::from_le_bytes(record[len..len + 8].try_into().expect("8 bytes")),
            length: u32::from_le_bytes(record[len + 8..].try_into().expect("4 bytes")),
        };
        head.mh[..len].copy_from_slice(&record[..len]);
        self.pos += 1 + len + LOCATION_BYTES;
        Ok(Some(head))
    }
}

/// `Write` at a moving position of a shared file.
struct PositionedWriter<'a> {
    file: &'a File,
    at: u64,
}

impl Write for PositionedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn storage(op: &str, e: impl std::fmt::Display) -> IndexError {
    IndexError::Storage(format!("{op}: {e}"))
}

fn corrupt_run(detail: &str) -> IndexError {
    IndexError::Corrupt {
        what: "temporary run of staged rows".to_owned(),
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Multihash;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn drained(sorter: RowSorter) -> Vec<(Vec<u8>, u64, u32)> {
        let mut out = Vec::new();
        sorter
            .drain(|mh, offset, length| {
                out.push((mh.to_vec(), offset, length));
                Ok(())
            })
            .expect("drain");
        out
    }

    proptest! {
        /// Whatever the buffer size (many runs or none), the output is the distinct
        /// multihashes in byte order, each with its last row.
        #[test]
        fn sorts_and_keeps_the_last_row(
            seeds in proptest::collection::vec((0u8..40, 0u8..3), 0..400),
            buffer in 1usize..4000,
            batch in 1usize..50,
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let rows: Vec<StagedBlock> = seeds
                .iter()
                .enumerate()
                .map(|(i, &(seed, code))| StagedBlock {
                    multihash: Multihash::wrap(
                        [0x12, 0xb220, 0x1e][code as usize],
                        &vec![seed; 1 + seed as usize % 33],
                    )
                    .expect("fits"),
                    offset: i as u64,
                    length: u32::from(seed),
                })
                .collect();
            let mut sorter = RowSorter::new(dir.path(), buffer);
            for chunk in rows.chunks(batch) {
                sorter.push(chunk).expect("push");
            }
            prop_assert_eq!(sorter.staged(), rows.len() as u64);
            let mut expected = BTreeMap::new();
            for row in &rows {
                expected.insert(row.multihash.to_bytes(), (row.offset, row.length));
            }
            let expected: Vec<_> = expected.into_iter().map(|(k, (o, l))| (k, o, l)).collect();
            prop_assert_eq!(drained(sorter), expected);
        }
    }
}
