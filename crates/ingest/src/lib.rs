//! The ingest pipeline: a CAR stream in, a verified CAR stored byte-for-byte and indexed out.
//!
//! ```text
//! reader ──chunks──▶ object store upload (staging/<id>.car)
//!    ├──────chunks──▶ hasher thread: BLAKE3 of the whole CAR (the content key)
//!    └──────chunks──▶ verifier thread: CAR decode (carv1.md, carv2.md), every block re-hashed
//!                     against its CID, index rows spilled to a temp file
//! then: staging/<id>.car ──rename──▶ cars/<blake3>.car, rows staged in batches, CAR committed
//! ```
//!
//! The chunks are reference-counted buffers: the upload, the hasher and the verifier share one
//! copy of each, and the two hashes run on two cores.
//!
//! Guarantees:
//! - **Streaming, bounded memory**: at most [`CHUNK_QUEUE`] chunks of [`CHUNK_SIZE`] bytes wait for
//!   the verifier (and as many for the hasher), the upload buffers at most `upload_buffer` bytes, and index rows go to a temp file
//!   so a CAR with millions of blocks costs no memory per block.
//! - **Idempotent**: the object key is derived from the CAR's content (`cars/<blake3-hex>.car`), so the
//!   same CAR ingested twice is stored and indexed once.
//! - **Atomic per CAR**: no block of a CAR is visible before the whole CAR is verified, stored and
//!   indexed ([`hydrant_index::CarCatalog::commit_car`]); a CAR that fails leaves no object and no
//!   index rows behind. A crash leaves at most a `staging/` object, an object store temporary file
//!   or an uncommitted `cars/` object (all removed by [`Ingester::sweep`], see [`sweep`]) and
//!   staged rows (removed by [`hydrant_index::CarCatalog::recover`]); the CAR can be ingested again.
//!
//! Zero-length sections and other format edge cases are decided by [`hydrant_car`].

use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use cid::Cid;
use futures::TryStreamExt;
use hydrant_car::{CarDecoder, CarError, CarHeader, Event, Limits, VerifyError};
use hydrant_index::{CarCatalog, CarRecord, IndexError, Multihash, StagedBlock, StagingObserver};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc};

pub mod sweep;
pub use sweep::{ORPHAN_AGE, STALE_STAGING, SweepConfig, SweepReport};

/// Bytes read from the input per chunk.
pub const CHUNK_SIZE: usize = 1024 * 1024;
/// Chunks that may wait for the verifier thread, and for the hasher thread (so at most
/// `CHUNK_QUEUE * CHUNK_SIZE` bytes each).
pub const CHUNK_QUEUE: usize = 8;
/// Object-store prefix of CARs being uploaded, not yet verified.
pub const STAGING_PREFIX: &str = "staging";
/// Object-store prefix of verified, committed CARs.
pub const CARS_PREFIX: &str = "cars";

/// Tuning of the pipeline. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// CAR decoding limits (largest block, largest header), in bytes.
    pub limits: Limits,
    /// Index rows handed to [`CarCatalog::stage_blocks`] per call. Default 8192.
    pub stage_batch: usize,
    /// Bytes buffered before the object-store upload switches to multipart. Default 8 MiB.
    pub upload_buffer: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            stage_batch: 8192,
            upload_buffer: 8 * 1024 * 1024,
        }
    }
}

/// Live counters of one ingest, for progress bars. Updated as chunks are verified.
#[derive(Debug, Default)]
pub struct IngestProgress {
    /// CAR bytes verified so far.
    pub bytes: AtomicU64,
    /// Block sections verified so far.
    pub blocks: AtomicU64,
}

/// What an ingest produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IngestSummary {
    /// Object-store key of the stored CAR (`cars/<blake3-hex>.car`).
    pub car_key: String,
    /// CAR version, 1 or 2.
    pub version: u8,
    /// Root CIDs of the CAR header.
    pub roots: Vec<String>,
    /// Block sections in the CAR (duplicates counted).
    pub blocks: u64,
    /// Size of the CAR in bytes.
    pub bytes: u64,
    /// Bytes of block data.
    pub block_bytes: u64,
    /// True when the same CAR was already stored and indexed (nothing was written).
    pub already_present: bool,
}

impl IngestSummary {
    fn of(record: &CarRecord, already_present: bool) -> Self {
        Self {
            car_key: record.key.clone(),
            version: record.version,
            roots: record.roots.clone(),
            blocks: record.blocks,
            bytes: record.size,
            block_bytes: record.block_bytes,
            already_present,
        }
    }
}

/// Why an ingest failed. Every failure leaves no object and no visible index row behind.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The input is not a valid CAR (the error names the problem and the byte offset).
    #[error("invalid CAR: {0}")]
    Car(#[from] CarError),
    /// A block's bytes do not hash to its CID, or its hash function is not supported.
    #[error("block {cid} (section at byte {offset}): {source}")]
    Verify {
        /// The block's CID as given in the CAR.
        cid: Cid,
        /// Absolute byte offset of the section in the CAR.
        offset: u64,
        /// What was wrong.
        #[source]
        source: VerifyError,
    },
    /// Reading the input failed.
    #[error("reading the CAR failed after {offset} bytes: {source}")]
    Read {
        /// Bytes read successfully before the failure.
        offset: u64,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The object store failed.
    #[error("object store error on {key}: {detail}")]
    Storage {
        /// The object key involved.
        key: String,
        /// The object store's error text.
        detail: String,
    },
    /// The index failed.
    #[error("index error: {0}")]
    Index(#[from] IndexError),
    /// [`Ingester::index_stored`]: the key cannot name an object (empty, `/`, an empty or
    /// `.`/`..` segment, or characters object stores refuse).
    #[error("{key:?} is not an object key: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// Why it is refused.
        reason: String,
    },
    /// [`Ingester::index_stored`]: no object under this key.
    #[error("no object {key} in the object store")]
    NotFound {
        /// The object key asked for.
        key: String,
    },
    /// The input was empty: not even a CAR header.
    #[error("invalid CAR: the input is empty (no header at byte 0)")]
    Empty,
    /// The local temporary file for index rows failed.
    #[error("temporary row file: {0}")]
    Spill(std::io::Error),
    /// The index commit could not start within [`STALE_STAGING`] of the upload's end (staging
    /// the rows took too long); the CAR was not committed and can be ingested again. Past that
    /// age a sweep may take the stored object for a leftover ([`sweep`]).
    #[error(
        "the index commit could not start within {limit_secs} s of the upload (took {elapsed_secs} s); nothing was committed"
    )]
    CommitTooLate {
        /// Seconds from the end of the upload to the commit.
        elapsed_secs: u64,
        /// [`STALE_STAGING`] in seconds.
        limit_secs: u64,
    },
}

impl IngestError {
    /// True when the input itself is at fault (bad CAR, bad block), false for server-side failures.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::Car(_) | Self::Verify { .. } | Self::Empty | Self::InvalidKey { .. }
        )
    }
}

fn storage_err(key: &Path, e: impl std::fmt::Display) -> IngestError {
    IngestError::Storage {
        key: key.to_string(),
        detail: e.to_string(),
    }
}

/// Ingests CARs into an object store and a block index.
pub struct Ingester {
    store: Arc<dyn ObjectStore>,
    index: Arc<dyn CarCatalog>,
    /// Told of every staging, commit and abort (the presence filter).
    observer: Option<Arc<dyn StagingObserver>>,
    config: IngestConfig,
    /// Serialises the short commit phase, so that two uploads of the same CAR never stage the
    /// same key at once.
    commit_lock: Mutex<()>,
}

/// The verifier thread's result.
struct Verified {
    header: CarHeader,
    blocks: u64,
    block_bytes: u64,
    size: u64,
    /// BLAKE3 of the whole CAR, from the hasher thread (only when the CAR was uploaded).
    blake3: Option<blake3::Hash>,
    rows: std::fs::File,
}

impl Ingester {
    /// An ingester writing CARs to `store` and rows to `index`.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        index: Arc<dyn CarCatalog>,
        config: IngestConfig,
    ) -> Self {
        Self {
            store,
            index,
            observer: None,
            config,
            commit_lock: Mutex::new(()),
        }
    }

    /// Tells `observer` of every CAR this ingester stages, commits or aborts (the presence
    /// filter, so that it knows a block before its CAR becomes visible).
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn StagingObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Reads a CARv1 or CARv2 from `reader` to its end, verifies every block, stores the CAR
    /// unaltered and indexes its blocks. `progress`, when given, is updated as bytes are verified.
    ///
    /// # Errors
    /// [`IngestError`]; on any error nothing of this CAR stays visible or stored.
    ///
    /// # Cancel safety
    /// Not cancel safe: a dropped future may leave a `staging/` object, a store temporary file or
    /// an uncommitted `cars/` object (see [`sweep`](Self::sweep)) but never a visible
    /// half-indexed CAR.
    pub async fn ingest<R>(
        &self,
        reader: R,
        progress: Option<Arc<IngestProgress>>,
    ) -> Result<IngestSummary, IngestError>
    where
        R: AsyncRead + Unpin + Send,
    {
        let staging = Path::from(format!("{STAGING_PREFIX}/{}.car", unique_name()));
        let verified = match self
            .upload(reader, &staging, Some(&staging), progress)
            .await
        {
            Ok(v) => v,
            Err(e) => {
                self.delete_quietly(&staging).await;
                return Err(e);
            }
        };
        let uploaded = Instant::now();
        tracing::debug!(
            blocks = verified.blocks,
            bytes = verified.size,
            "CAR uploaded and verified"
        );
        let blake3 = verified.blake3.expect("uploads are hashed");
        let car_key = format!("{CARS_PREFIX}/{}.car", blake3.to_hex());
        let _guard = self.commit_lock.lock().await;
        if let Some(existing) = self.index.car(&car_key).await? {
            self.delete_quietly(&staging).await;
            return Ok(IngestSummary::of(&existing, true));
        }
        let final_path = Path::from(car_key.as_str());
        if let Err(e) = self.store.rename(&staging, &final_path).await {
            self.delete_quietly(&staging).await;
            return Err(storage_err(&final_path, e));
        }
        let record = verified.record(car_key);
        if let Err(e) = self.commit(&record, verified.rows, Some(uploaded)).await {
            self.delete_quietly(&final_path).await;
            return Err(e);
        }
        tracing::info!(car = %record.key, blocks = record.blocks, bytes = record.size, "CAR ingested");
        Ok(IngestSummary::of(&record, false))
    }

    /// Indexes a CAR that is already in the object store under `key` (for example uploaded
    /// straight to the bucket), without copying it: the object is streamed once, every block is
    /// verified, and the rows point into the object as it is. The CAR record's key is `key`.
    /// A `key` already indexed is answered `already_present` without reading it.
    ///
    /// # Errors
    /// [`IngestError::NotFound`] when there is no such object, [`IngestError::Storage`] when it
    /// cannot be read, and the
    /// errors of [`ingest`](Self::ingest); on any error nothing becomes visible and the object
    /// is left as it was.
    pub async fn index_stored(
        &self,
        key: &str,
        progress: Option<Arc<IngestProgress>>,
    ) -> Result<IngestSummary, IngestError> {
        let invalid = |reason: String| IngestError::InvalidKey {
            key: key.to_owned(),
            reason,
        };
        match Path::parse(key) {
            Ok(parsed) if parsed.as_ref().is_empty() => {
                return Err(invalid("it names no object".to_owned()));
            }
            Ok(_) => {}
            Err(e) => return Err(invalid(e.to_string())),
        }
        let path = Path::from(key);
        if let Some(existing) = self.index.car(key).await? {
            return Ok(IngestSummary::of(&existing, true));
        }
        let object = self.store.get(&path).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => IngestError::NotFound {
                key: key.to_owned(),
            },
            e => storage_err(&path, e),
        })?;
        let reader = tokio_util::io::StreamReader::new(
            object
                .into_stream()
                .map_err(|e| std::io::Error::other(e.to_string())),
        );
        let verified = self.upload(reader, &path, None, progress).await?;
        let record = verified.record(key.to_owned());
        let _guard = self.commit_lock.lock().await;
        self.commit(&record, verified.rows, None).await?;
        tracing::info!(car = %key, blocks = record.blocks, bytes = record.size, "stored CAR indexed in place");
        Ok(IngestSummary::of(&record, false))
    }

    /// Stages the spilled `rows` and commits `record`; on failure the staged rows are aborted.
    /// With `uploaded` (when the object was stored), the commit does not start later than
    /// [`STALE_STAGING`] after it.
    async fn commit(
        &self,
        record: &CarRecord,
        rows: std::fs::File,
        uploaded: Option<Instant>,
    ) -> Result<(), IngestError> {
        let result = self.stage_and_commit(record, rows, uploaded).await;
        match (&result, &self.observer) {
            (Ok(()), Some(observer)) => observer.committed(&record.key).await,
            (Err(_), observer) => {
                if let Some(observer) = observer {
                    observer.aborted(&record.key);
                }
                if let Err(abort) = self.index.abort_car(&record.key).await {
                    tracing::warn!(car = %record.key, error = %abort, "aborting staged rows failed; recover() removes them");
                }
            }
            (Ok(()), None) => {}
        }
        result
    }

    /// Streams the input to `staging` while the verifier thread checks it and the hasher thread
    /// computes its BLAKE3 (on another core).
    ///
    /// `staging: None` only verifies (the CAR is already stored; `key` names it in errors) and
    /// computes no BLAKE3.
    async fn upload<R>(
        &self,
        mut reader: R,
        key: &Path,
        staging: Option<&Path>,
        progress: Option<Arc<IngestProgress>>,
    ) -> Result<Verified, IngestError>
    where
        R: AsyncRead + Unpin + Send,
    {
        let (tx, rx) = mpsc::channel::<Bytes>(CHUNK_QUEUE);
        let limits = self.config.limits;
        let verifier = tokio::task::spawn_blocking(move || verify(rx, limits, progress));
        let mut upload = staging.map(|staging| {
            let (hash_tx, hash_rx) = mpsc::channel::<Bytes>(CHUNK_QUEUE);
            let writer = object_store::buffered::BufWriter::with_capacity(
                self.store.clone(),
                staging.clone(),
                self.config.upload_buffer,
            );
            (
                writer,
                Some(hash_tx),
                tokio::task::spawn_blocking(move || hash(hash_rx)),
            )
        });

        let mut read = 0u64;
        let mut recycled = Recycler::default();
        let pumped: Result<(), IngestError> =
            async {
                loop {
                    let mut buf = recycled.buffer();
                    while buf.len() < CHUNK_SIZE {
                        let n = reader.read_buf(&mut buf).await.map_err(|source| {
                            IngestError::Read {
                                offset: read + buf.len() as u64,
                                source,
                            }
                        })?;
                        if n == 0 {
                            break;
                        }
                    }
                    if buf.is_empty() {
                        return Ok(());
                    }
                    read += buf.len() as u64;
                    let chunk = recycled.keep(buf.freeze());
                    // Both hashes start before the write, which may wait for the store.
                    if tx.send(chunk.clone()).await.is_err() {
                        // The verifier stopped early: its error is the one to report.
                        return Ok(());
                    }
                    if let Some((writer, Some(hash_tx), _)) = upload.as_mut() {
                        // The hasher only stops when this sender is dropped.
                        let _ = hash_tx.send(chunk.clone()).await;
                        writer.put(chunk).await.map_err(|e| storage_err(key, e))?;
                    }
                }
            }
            .await;
        drop(tx);
        let verified = verifier.await.map_err(|e| IngestError::Spill(e.into()));
        let mut verified = match (pumped, verified) {
            (Err(e), _) | (Ok(()), Ok(Err(e)) | Err(e)) => {
                if let Some((mut writer, _, _)) = upload {
                    let _ = writer.abort().await;
                }
                return Err(e);
            }
            (Ok(()), Ok(Ok(v))) => v,
        };
        let upload = match upload {
            Some((writer, hash_tx, hasher)) => {
                drop(hash_tx);
                verified.blake3 = Some(hasher.await.map_err(|e| IngestError::Spill(e.into()))?);
                Some(writer)
            }
            None => None,
        };
        if let Some(mut writer) = upload {
            writer.shutdown().await.map_err(|e| storage_err(key, e))?;
        }
        Ok(verified)
    }

    async fn stage_and_commit(
        &self,
        record: &CarRecord,
        rows: std::fs::File,
        uploaded: Option<Instant>,
    ) -> Result<(), IngestError> {
        let batch_size = self.config.stage_batch.max(1);
        let (tx, mut rx) = mpsc::channel::<Result<Vec<StagedBlock>, IngestError>>(2);
        let reader = tokio::task::spawn_blocking(move || read_rows(rows, batch_size, &tx));
        while let Some(batch) = rx.recv().await {
            let batch = batch?;
            if let Some(observer) = &self.observer {
                observer.staged(&record.key, &batch);
            }
            self.index.stage_blocks(&record.key, &batch).await?;
        }
        reader.await.map_err(|e| IngestError::Spill(e.into()))?;
        tracing::debug!(car = %record.key, "rows staged");
        if let Some(elapsed) = uploaded.map(|t| t.elapsed())
            && elapsed > STALE_STAGING
        {
            return Err(IngestError::CommitTooLate {
                elapsed_secs: elapsed.as_secs(),
                limit_secs: STALE_STAGING.as_secs(),
            });
        }
        self.index.commit_car(record).await?;
        Ok(())
    }

    /// Deletes `path`; true when it was deleted (or already gone), false after logging a failure.
    async fn delete_quietly(&self, path: &Path) -> bool {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => true,
            Err(e) => {
                tracing::warn!(key = %path, error = %e, "could not delete object");
                false
            }
        }
    }
}

impl Verified {
    /// The CAR record of this CAR stored under `key`, committed now.
    fn record(&self, key: String) -> CarRecord {
        CarRecord {
            key,
            version: self.header.version,
            roots: self.header.roots.iter().map(Cid::to_string).collect(),
            size: self.size,
            blocks: self.blocks,
            block_bytes: self.block_bytes,
            ingested_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

/// What the verifier thread has seen so far.
struct Tally {
    header: Option<CarHeader>,
    blocks: u64,
    block_bytes: u64,
    rows: BufWriter<std::fs::File>,
}

impl Tally {
    fn on_event(&mut self, event: Event) -> Result<(), IngestError> {
        match event {
            Event::Header(h) => self.header = Some(h),
            Event::Section(s) => {
                hydrant_car::verify_block(&s.cid, &s.data).map_err(|source| {
                    IngestError::Verify {
                        cid: s.cid,
                        offset: s.section_offset,
                        source,
                    }
                })?;
                write_row(
                    &mut self.rows,
                    s.cid.hash(),
                    s.data_offset,
                    s.data.len() as u32,
                )
                .map_err(IngestError::Spill)?;
                self.blocks += 1;
                self.block_bytes += s.data.len() as u64;
            }
        }
        Ok(())
    }
}

/// Chunk buffers handed out, oldest first, reused once every consumer (verifier, hasher,
/// upload) dropped its copy: a fresh 1 MiB allocation per chunk costs page faults and zeroing
/// of new pages, about as much CPU as hashing the chunk with BLAKE3.
#[derive(Default)]
struct Recycler(std::collections::VecDeque<Bytes>);

impl Recycler {
    /// Chunks kept for reuse at most (more than the pipeline holds at once: both queues, the
    /// upload's buffer and its parts in flight).
    const MAX: usize = 128;

    /// An empty buffer of [`CHUNK_SIZE`]: the oldest chunk if no one holds it any more.
    fn buffer(&mut self) -> BytesMut {
        if let Some(oldest) = self.0.pop_front() {
            match oldest.try_into_mut() {
                Ok(mut buf) if buf.capacity() >= CHUNK_SIZE => {
                    buf.clear();
                    return buf;
                }
                Ok(_) => {}
                Err(oldest) => self.0.push_front(oldest),
            }
        }
        BytesMut::with_capacity(CHUNK_SIZE)
    }

    /// Remembers `chunk` for reuse and gives it back.
    fn keep(&mut self, chunk: Bytes) -> Bytes {
        if self.0.len() == Self::MAX {
            self.0.pop_front();
        }
        self.0.push_back(chunk.clone());
        chunk
    }
}

/// Runs on a blocking thread: BLAKE3 of every chunk received, in order.
fn hash(mut rx: mpsc::Receiver<Bytes>) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    while let Some(chunk) = rx.blocking_recv() {
        hasher.update(&chunk);
    }
    hasher.finalize()
}

/// Runs on a blocking thread: decodes and verifies the CAR, spilling index rows.
fn verify(
    mut rx: mpsc::Receiver<Bytes>,
    limits: Limits,
    progress: Option<Arc<IngestProgress>>,
) -> Result<Verified, IngestError> {
    let mut decoder = CarDecoder::new(limits);
    let mut size = 0u64;
    let mut tally = Tally {
        header: None,
        blocks: 0,
        block_bytes: 0,
        rows: BufWriter::with_capacity(
            256 * 1024,
            tempfile::tempfile().map_err(IngestError::Spill)?,
        ),
    };
    while let Some(chunk) = rx.blocking_recv() {
        size += chunk.len() as u64;
        decoder.push(&chunk);
        while let Some(event) = decoder.next_event()? {
            tally.on_event(event)?;
        }
        if let Some(p) = &progress {
            p.bytes.store(size, Ordering::Relaxed);
            p.blocks.store(tally.blocks, Ordering::Relaxed);
        }
    }
    decoder.finish()?;
    let header = tally.header.ok_or(IngestError::Empty)?;
    let mut rows = tally
        .rows
        .into_inner()
        .map_err(|e| IngestError::Spill(e.into_error()))?;
    rows.seek(SeekFrom::Start(0)).map_err(IngestError::Spill)?;
    Ok(Verified {
        header,
        blocks: tally.blocks,
        block_bytes: tally.block_bytes,
        size,
        blake3: None,
        rows,
    })
}

/// Row encoding in the spill file: multihash length (u8), multihash bytes, offset (u64 LE),
/// length (u32 LE).
fn write_row(
    out: &mut impl Write,
    mh: &Multihash,
    offset: u64,
    length: u32,
) -> std::io::Result<()> {
    out.write_all(&[mh.encoded_len() as u8])?;
    mh.write(&mut *out)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    out.write_all(&offset.to_le_bytes())?;
    out.write_all(&length.to_le_bytes())
}

fn read_rows(
    file: std::fs::File,
    batch_size: usize,
    tx: &mpsc::Sender<Result<Vec<StagedBlock>, IngestError>>,
) {
    let mut input = BufReader::with_capacity(256 * 1024, file);
    let mut batch = Vec::with_capacity(batch_size);
    let mut mh = Vec::with_capacity(u8::MAX as usize);
    let mut next = || -> std::io::Result<Option<StagedBlock>> {
        let mut len = [0u8; 1];
        if input.read(&mut len)? == 0 {
            return Ok(None);
        }
        mh.resize(len[0] as usize, 0);
        input.read_exact(&mut mh)?;
        let mut fixed = [0u8; 12];
        input.read_exact(&mut fixed)?;
        let multihash = Multihash::from_bytes(&mh)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        Ok(Some(StagedBlock {
            multihash,
            offset: u64::from_le_bytes(fixed[..8].try_into().expect("8 bytes")),
            length: u32::from_le_bytes(fixed[8..].try_into().expect("4 bytes")),
        }))
    };
    loop {
        match next() {
            Ok(Some(row)) => {
                batch.push(row);
                if batch.len() == batch_size
                    && tx
                        .blocking_send(Ok(std::mem::replace(
                            &mut batch,
                            Vec::with_capacity(batch_size),
                        )))
                        .is_err()
                {
                    return;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let _ = tx.blocking_send(Err(IngestError::Spill(e)));
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Ok(batch));
    }
}

/// A name unique to this process and moment, for staging objects.
fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{nanos:x}-{:x}-{:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
