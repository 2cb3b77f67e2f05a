//! [`FjallIndex`]: the embedded [`BlockIndex`] backend on the fjall LSM-tree.
//!
//! Layout (five fjall keyspaces of one database; integers big-endian so keys sort by number):
//!
//! | keyspace | key | value |
//! | --- | --- | --- |
//! | `blocks` | multihash bytes ++ CAR number (u64) | offset (u64) ++ length (u32) |
//! | `car_blocks` | CAR number (u64) ++ multihash bytes | empty |
//! | `cars` | CAR key (UTF-8) | JSON `{number, record}`, committed CARs only |
//! | `staging` | CAR number (u64) | JSON `{key, state}`: rows written but not visible |
//! | `pins` | CID bytes | `created_at` (u64) ++ name (UTF-8), see [`PinStore`](crate::PinStore) |
//!
//! A multihash is self-delimiting (varint code, varint length, digest), so a prefix scan of
//! `blocks` on a multihash's bytes yields exactly that block's rows. Each CAR gets a number when
//! its staging opens; rows carry the number, not the key (8 bytes instead of ~73).
//!
//! Visibility: `locations` returns a row only if its CAR number is in the in-memory map of
//! committed numbers, loaded from `cars` at open. `commit_car` writes the `cars` record and
//! removes the `staging` entry in one atomic, fsynced batch, then flips the number into the map
//! under one write lock: all rows of a CAR become visible at once. Rows of numbers listed in
//! `staging` (crashed or aborted stagings, and rows of a CAR replaced by a re-ingest) are
//! removed by `abort_car`/`recover`, through `car_blocks`.
//!
//! Staging and the bulk load: `stage_blocks` writes the `staging` entry (first call) and hands
//! the rows to a [`RowSorter`] (bounded memory, sorted runs in an unnamed temporary
//! file in the index directory); nothing else reaches fjall before `commit_car`. The commit
//! then writes the rows in key order: up to [`SMALL_COMMIT_ROWS`] in the commit's own batch,
//! more through fjall's bulk ingestion (tables written directly, no journal, no memtable): the
//! journal is fsynced first (so the `staging` entry that lets `recover` find the rows is durable
//! before any row is), then `car_blocks` is ingested, then `blocks`, then the commit batch.
//! A random-key insert costs a skiplist search in the memtable, a journal write, a flush and
//! compactions of overlapping tables; a sorted bulk load writes each row once.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_trait::async_trait;
use fjall::config::{FilterPolicy, PartitioningPolicy};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::{
    BlockLocation, BlockLookup, CarCatalog, CarRecord, IndexError, MAX_LIST_CARS,
    MAX_LIST_MULTIHASHES, MAX_LOCATIONS, Multihash, StagedBlock,
};

mod ipni;
mod pins;
use crate::sorter::{RowSorter, SORT_BUFFER_BYTES};

/// Most distinct rows a commit writes in its own (fsynced) write batch; a CAR with more is
/// bulk-loaded through fjall's ingestion (see the module docs). About 100 bytes of batch memory
/// per row.
pub const SMALL_COMMIT_ROWS: usize = 4096;

/// Bytes of one batch of multihashes handed to the `car_blocks` bulk-load thread.
const INGEST_BATCH_BYTES: usize = 64 * 1024;
/// Batches that may wait for the `car_blocks` bulk-load thread.
const INGEST_QUEUE: usize = 4;

/// Rows removed per fjall write batch by `abort_car`, `recover` and the clean-up after a
/// replacing commit.
pub const DELETE_CHUNK_ROWS: usize = 4096;

const KS_BLOCKS: &str = "blocks";
const KS_CAR_BLOCKS: &str = "car_blocks";
const KS_CARS: &str = "cars";
const KS_STAGING: &str = "staging";
const KS_PINS: &str = "pins";
const KS_IPNI: &str = "ipni";

/// Bytes of a CAR number in keys.
const NUMBER_LEN: usize = 8;
/// Bytes of a `blocks` value: offset u64 ++ length u32.
const LOCATION_LEN: usize = 12;

/// The embedded block index (see the module docs for the on-disk layout).
///
/// Cheap to clone (an `Arc`). Memory: besides fjall's own caches, one entry per committed CAR
/// (number -> key), about 130 bytes for a 73-byte key such as `cars/<64 hex>.car`, i.e. about
/// 130 MB per million CARs; plus, per CAR being staged, up to [`SORT_BUFFER_BYTES`] of rows
/// (then [`MERGE_BUFFER_BYTES`](crate::sorter::MERGE_BUFFER_BYTES) of read buffers while it is
/// committed) and an unnamed temporary file of sorted runs in the index directory (about 46
/// bytes per row of a sha2-256 multihash).
///
/// Blocking fjall calls of the [`BlockIndex`] methods run under
/// [`tokio::task::spawn_blocking`]; [`FjallIndex::open`] itself blocks.
#[derive(Clone)]
pub struct FjallIndex {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FjallIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallIndex")
            .field("committed_cars", &self.inner.committed_len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    db: Database,
    blocks: Keyspace,
    car_blocks: Keyspace,
    cars: Keyspace,
    staging: Keyspace,
    pins: Keyspace,
    /// Held by pin writes (a pin's read and write go together).
    pin_writes: Mutex<()>,
    /// The IPNI chain's head and advertised CARs (`fjall_index/ipni.rs`).
    ipni: Keyspace,
    /// Held by IPNI head moves (the compare and the swap go together).
    ipni_writes: Mutex<()>,
    /// Bumped by every commit and deletion: `IpniStore::catalogue_version`.
    changes: AtomicU64,
    /// Committed CAR number -> CAR key: the visibility filter of `locations`.
    committed: RwLock<HashMap<u64, Arc<str>>>,
    /// CAR key -> the stagings opened by this process and not yet committed/aborted.
    live: Mutex<HashMap<String, Live>>,
    /// The index directory (the sorters' temporary files go there).
    dir: PathBuf,
    /// [`SORT_BUFFER_BYTES`], smaller in tests.
    sort_buffer_bytes: usize,
    /// Next CAR number to hand out (numbers are never reused while rows of them remain).
    next_number: AtomicU64,
    /// Keys of the stagings removed by the recovery run in `open`.
    recovered_at_open: Vec<String>,
}

/// A staging opened by this process.
struct Live {
    number: u64,
    /// Its rows until the commit takes them (`None` after a commit that failed part-way: the
    /// staging can then only be aborted).
    rows: Option<Arc<Mutex<RowSorter>>>,
}

/// State of a `staging` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum StagingState {
    /// Rows being written for a CAR that is not committed (yet).
    Staged,
    /// Rows of a committed CAR replaced by a newer commit of the same key, or deleted, awaiting
    /// removal.
    Retired,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StagingEntry {
    key: String,
    state: StagingState,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StoredCar {
    number: u64,
    record: CarRecord,
}

/// Default bytes of fjall's block cache (decompressed table blocks and their index and filter
/// blocks), shared by the keyspaces (fjall's default); [`FjallOptions::cache_bytes`].
pub const CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Bytes of one keyspace's active memtable before it is sealed and flushed. fjall's default,
/// 64 MiB for each of the four keyspaces, plus the sealed memtables waiting for their flush,
/// let an offline ingest of 10^6 rows peak at 357 MB RSS (133 MB with this bound). fjall 3.1
/// has no working bound on all memtables together (`max_write_buffer_size` is a no-op).
pub const MEMTABLE_BYTES: u64 = 16 * 1024 * 1024;

/// Default of [`FjallOptions::max_open_files`] (fjall's own default is 900 per database).
pub const MAX_OPEN_FILES: usize = 128;

/// How [`FjallIndex::open_with`] sizes the database's caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FjallOptions {
    /// Bytes of the block cache (default [`CACHE_BYTES`]).
    pub cache_bytes: u64,
    /// Most table files kept open at once, an LRU (default [`MAX_OPEN_FILES`]); counted in the
    /// node's file-descriptor budget. A lookup in a table whose file is not open pays an
    /// `open(2)` and the reload of the table's metadata.
    pub max_open_files: usize,
}

impl Default for FjallOptions {
    fn default() -> Self {
        Self {
            cache_bytes: CACHE_BYTES,
            max_open_files: MAX_OPEN_FILES,
        }
    }
}

impl FjallIndex {
    /// Memory the database holds now: `(block cache bytes in use, block cache capacity,
    /// memtable bytes of all keyspaces)`, for the memory report.
    pub fn memory(&self) -> (u64, u64, u64) {
        let db = &self.inner.db;
        (db.cache_size(), db.cache_capacity(), db.write_buffer_size())
    }

    /// Where the index stands, for a presence filter snapshot: `(committed CARs, next CAR
    /// number)`. Every commit adds a CAR and every staging takes a number, so an index with the
    /// same pair has committed no CAR since (fjall's own sequence number is no such mark: it
    /// is not restored to the same value after a restart).
    pub fn position(&self) -> (u64, u64) {
        (
            self.inner.committed_len() as u64,
            self.inner.next_number.load(Ordering::Acquire),
        )
    }

    /// Opens (or creates) the index in the directory `dir`, then removes rows left staged by a
    /// previous process (see [`BlockIndex::recover`]; their keys are in
    /// [`recovered_at_open`](Self::recovered_at_open)).
    ///
    /// Blocks the calling thread (disk I/O, journal replay, a scan of the committed CARs).
    ///
    /// # Errors
    /// [`IndexError::Storage`] when fjall cannot open the directory (e.g. another process holds
    /// it); [`IndexError::Corrupt`] when a stored CAR record does not decode.
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        Self::open_with(dir, FjallOptions::default())
    }

    /// [`open`](Self::open) with the caches sized by `options`.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(dir: &Path, options: FjallOptions) -> Result<Self, IndexError> {
        let db = Database::builder(dir)
            .max_cached_files(Some(options.max_open_files))
            .cache_size(options.cache_bytes)
            .open()
            .map_err(|e| storage(&format!("opening {}", dir.display()), e))?;
        let keyspace = |name: &str, point_reads: bool| {
            db.keyspace(name, || {
                let options = KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES);
                if point_reads {
                    options
                } else {
                    // Prefix and range scans never consult a bloom filter (lsm-tree 3.1 has no
                    // prefix filters): building them only costs ingest time and memory.
                    // Two-level block indexes on every level: a table keeps only its small
                    // top-level index in memory and a lookup reads one 4 KiB index partition.
                    // fjall's default gives the tables of levels 1 and 2 (where the bulk-loaded
                    // tables go) one full index each, pinned on level 1 and otherwise read
                    // whole through the block cache at every lookup: at 10^8 blocks that
                    // tripled the lookup time (BENCHMARKS.md, "Scale"). fjall stores these
                    // options with the keyspace when it creates it: an index created by an
                    // older build keeps fjall's default.
                    options
                        .filter_policy(FilterPolicy::disabled())
                        .index_block_partitioning_policy(PartitioningPolicy::all(true))
                }
            })
            .map_err(|e| storage(&format!("opening keyspace {name}"), e))
        };
        let blocks = keyspace(KS_BLOCKS, false)?;
        let car_blocks = keyspace(KS_CAR_BLOCKS, false)?;
        let cars = keyspace(KS_CARS, true)?;
        let staging = keyspace(KS_STAGING, false)?;
        let pins = keyspace(KS_PINS, true)?;
        let ipni = keyspace(KS_IPNI, true)?;

        let mut committed = HashMap::new();
        let mut max_number = 0u64;
        for guard in cars.iter() {
            let (key, value) = guard
                .into_inner()
                .map_err(|e| storage("scanning cars", e))?;
            let stored = decode_stored_car(&key, &value)?;
            max_number = max_number.max(stored.number);
            let key: Arc<str> = Arc::from(String::from_utf8_lossy(&key).as_ref());
            committed.insert(stored.number, key);
        }
        if let Some(guard) = staging.last_key_value() {
            let key = guard.key().map_err(|e| storage("reading staging", e))?;
            max_number = max_number.max(decode_number("staging key", &key)?);
        }

        let mut inner = Inner {
            db,
            blocks,
            car_blocks,
            cars,
            staging,
            pins,
            pin_writes: Mutex::new(()),
            ipni,
            ipni_writes: Mutex::new(()),
            changes: AtomicU64::new(0),
            committed: RwLock::new(committed),
            live: Mutex::new(HashMap::new()),
            dir: dir.to_owned(),
            sort_buffer_bytes: SORT_BUFFER_BYTES,
            next_number: AtomicU64::new(max_number + 1),
            recovered_at_open: Vec::new(),
        };
        let recovered = inner.recover()?;
        if !recovered.is_empty() {
            tracing::warn!(
                cars = recovered.len(),
                "removed index rows of CARs left staged by an interrupted ingest"
            );
        }
        inner.recovered_at_open = recovered;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Keys of the CARs whose staged rows [`open`](Self::open) removed (ingests interrupted by
    /// a crash or a kill), in staging order.
    pub fn recovered_at_open(&self) -> &[String] {
        &self.inner.recovered_at_open
    }

    /// Number of committed CARs (from the in-memory map; no I/O).
    pub fn committed_cars(&self) -> usize {
        self.inner.committed_len()
    }

    async fn blocking<T, F>(&self, op: &'static str, f: F) -> Result<T, IndexError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, IndexError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| storage(op, e))?
    }
}

#[async_trait]
impl BlockLookup for FjallIndex {
    async fn locations(&self, multihash: &Multihash) -> Result<Vec<BlockLocation>, IndexError> {
        let multihash = *multihash;
        self.blocking("locations", move |inner| inner.locations(&multihash))
            .await
    }

    async fn locations_many(
        &self,
        multihashes: &[Multihash],
    ) -> Result<Vec<Vec<BlockLocation>>, IndexError> {
        let multihashes = multihashes.to_vec();
        self.blocking("locations_many", move |inner| {
            multihashes.iter().map(|mh| inner.locations(mh)).collect()
        })
        .await
    }
}

#[async_trait]
impl CarCatalog for FjallIndex {
    async fn car(&self, key: &str) -> Result<Option<CarRecord>, IndexError> {
        let key = key.to_owned();
        self.blocking("car", move |inner| {
            Ok(inner.stored_car(&key)?.map(|stored| stored.record))
        })
        .await
    }

    async fn list_cars(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CarRecord>, IndexError> {
        let after = after.map(str::to_owned);
        let limit = limit.min(MAX_LIST_CARS);
        self.blocking("list_cars", move |inner| inner.list_cars(after, limit))
            .await
    }

    async fn car_multihashes(
        &self,
        key: &str,
        after: Option<&Multihash>,
        limit: usize,
    ) -> Result<Vec<Multihash>, IndexError> {
        let key = key.to_owned();
        let after = after.copied();
        let limit = limit.min(MAX_LIST_MULTIHASHES);
        self.blocking("car_multihashes", move |inner| {
            inner.car_multihashes(&key, after.as_ref(), limit)
        })
        .await
    }

    async fn stage_blocks(&self, car_key: &str, rows: &[StagedBlock]) -> Result<(), IndexError> {
        let car_key = car_key.to_owned();
        let rows = rows.to_vec();
        self.blocking("stage_blocks", move |inner| inner.stage(&car_key, &rows))
            .await
    }

    async fn commit_car(&self, record: &CarRecord) -> Result<(), IndexError> {
        let record = record.clone();
        self.blocking("commit_car", move |inner| {
            inner.commit(record)?;
            inner.changes.fetch_add(1, Ordering::AcqRel);
            Ok(())
        })
        .await
    }

    async fn abort_car(&self, car_key: &str) -> Result<(), IndexError> {
        let car_key = car_key.to_owned();
        self.blocking("abort_car", move |inner| inner.abort(&car_key))
            .await
    }

    async fn delete_car(&self, key: &str) -> Result<Option<CarRecord>, IndexError> {
        let key = key.to_owned();
        self.blocking("delete_car", move |inner| {
            let deleted = inner.delete(&key)?;
            inner.changes.fetch_add(1, Ordering::AcqRel);
            Ok(deleted)
        })
        .await
    }

    async fn recover(&self) -> Result<Vec<String>, IndexError> {
        self.blocking("recover", Inner::recover).await
    }
}

impl Inner {
    fn committed_len(&self) -> usize {
        self.committed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn locations(&self, multihash: &Multihash) -> Result<Vec<BlockLocation>, IndexError> {
        let prefix = multihash.to_bytes();
        let committed = self
            .committed
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        for guard in self.blocks.prefix(&prefix) {
            let (key, value) = guard
                .into_inner()
                .map_err(|e| storage("scanning blocks", e))?;
            let number = key
                .get(prefix.len()..)
                .filter(|rest| rest.len() == NUMBER_LEN)
                .ok_or_else(|| IndexError::Corrupt {
                    what: format!("blocks row of {}", hex(&prefix)),
                    detail: format!("key is {} bytes, expected {}", key.len(), prefix.len() + 8),
                })
                .and_then(|rest| decode_number("blocks key", rest))?;
            let Some(car) = committed.get(&number) else {
                continue;
            };
            let (offset, length) = decode_location(&prefix, &value)?;
            out.push(BlockLocation {
                car: car.to_string(),
                offset,
                length,
            });
            if out.len() == MAX_LOCATIONS {
                break;
            }
        }
        Ok(out)
    }

    fn stored_car(&self, key: &str) -> Result<Option<StoredCar>, IndexError> {
        let Some(value) = self
            .cars
            .get(key)
            .map_err(|e| storage(&format!("reading CAR record {key}"), e))?
        else {
            return Ok(None);
        };
        decode_stored_car(key.as_bytes(), &value).map(Some)
    }

    fn list_cars(&self, after: Option<String>, limit: usize) -> Result<Vec<CarRecord>, IndexError> {
        let start = match &after {
            Some(after) => Bound::Excluded(after.as_bytes()),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        for guard in self.cars.range::<&[u8], _>((start, Bound::Unbounded)) {
            let (key, value) = guard
                .into_inner()
                .map_err(|e| storage("scanning cars", e))?;
            out.push(decode_stored_car(&key, &value)?.record);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn car_multihashes(
        &self,
        key: &str,
        after: Option<&Multihash>,
        limit: usize,
    ) -> Result<Vec<Multihash>, IndexError> {
        let Some(stored) = self.stored_car(key)? else {
            return Ok(Vec::new());
        };
        let prefix = stored.number.to_be_bytes();
        let start = match after {
            Some(mh) => Bound::Excluded(car_block_key(stored.number, &mh.to_bytes())),
            None => Bound::Included(prefix.to_vec()),
        };
        let mut out = Vec::new();
        for guard in self
            .car_blocks
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
        {
            if out.len() >= limit {
                break;
            }
            let key = guard.key().map_err(|e| storage("scanning car_blocks", e))?;
            let Some(mh) = key.strip_prefix(prefix.as_slice()) else {
                break;
            };
            out.push(Multihash::from_bytes(mh).map_err(|e| IndexError::Corrupt {
                what: format!("car_blocks row {}", hex(&key)),
                detail: e.to_string(),
            })?);
        }
        Ok(out)
    }

    fn stage(&self, car_key: &str, rows: &[StagedBlock]) -> Result<(), IndexError> {
        let (number, sorter, opened) = {
            let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
            match live.get(car_key) {
                Some(Live {
                    number,
                    rows: Some(sorter),
                }) => (*number, Arc::clone(sorter), false),
                Some(Live { rows: None, .. }) => {
                    return Err(IndexError::Storage(format!(
                        "staging rows of {car_key}: a commit of this staging failed; abort it"
                    )));
                }
                None => {
                    let number = self.next_number.fetch_add(1, Ordering::Relaxed);
                    let sorter = Arc::new(Mutex::new(RowSorter::new(
                        &self.dir,
                        self.sort_buffer_bytes,
                    )));
                    live.insert(
                        car_key.to_owned(),
                        Live {
                            number,
                            rows: Some(Arc::clone(&sorter)),
                        },
                    );
                    (number, sorter, true)
                }
            }
        };
        if opened {
            // Written before any row of the number reaches fjall (the commit fsyncs the journal
            // before it ingests), so that `recover` can always find the rows.
            let entry = StagingEntry {
                key: car_key.to_owned(),
                state: StagingState::Staged,
            };
            self.staging
                .insert(number.to_be_bytes(), encode_json(&entry)?)
                .map_err(|e| storage(&format!("opening the staging of {car_key}"), e))?;
        }
        sorter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(rows)
    }

    /// Writes the staged rows of CAR `number` in key order: into `batch` when there are at
    /// most [`SMALL_COMMIT_ROWS`] of them, through fjall's bulk ingestion otherwise.
    fn write_staged(
        &self,
        number: u64,
        sorter: RowSorter,
        batch: &mut fjall::OwnedWriteBatch,
    ) -> Result<(), IndexError> {
        let what = || format!("writing the rows of CAR number {number}");
        if sorter.in_memory() && sorter.staged() <= SMALL_COMMIT_ROWS as u64 {
            return sorter.drain(|mh, offset, length| {
                batch.insert(
                    &self.blocks,
                    block_key(mh, number),
                    encode_location(offset, length),
                );
                batch.insert(&self.car_blocks, car_block_key(number, mh), []);
                Ok(())
            });
        }
        // The `staging` entry must be durable before the first ingested table is.
        self.db
            .persist(PersistMode::SyncAll)
            .map_err(|e| storage(&what(), e))?;
        // Two bulk loads on two threads: this one merges the runs and writes `blocks`, the
        // other writes `car_blocks` from batches of multihashes (bounded channel).
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(INGEST_QUEUE);
            let car_blocks = scope.spawn(move || -> Result<(), IndexError> {
                let mut ingestion = self
                    .car_blocks
                    .start_ingestion()
                    .map_err(|e| storage(&what(), e))?;
                for batch in rx {
                    // Each entry: length (u8) ++ multihash bytes.
                    let mut rest = batch.as_slice();
                    while let Some((&len, tail)) = rest.split_first() {
                        let (mh, tail) = tail.split_at(len as usize);
                        ingestion
                            .write(car_block_key(number, mh), [])
                            .map_err(|e| storage(&what(), e))?;
                        rest = tail;
                    }
                }
                ingestion.finish().map_err(|e| storage(&what(), e))
            });
            let written = (|| {
                let mut blocks = self
                    .blocks
                    .start_ingestion()
                    .map_err(|e| storage(&what(), e))?;
                let mut batch = Vec::with_capacity(INGEST_BATCH_BYTES);
                // Multihashes are prefix-free (varint code, varint length, digest), so keys
                // with the number appended sort as the multihashes do: both streams ascend.
                sorter.drain(|mh, offset, length| {
                    batch.push(mh.len() as u8);
                    batch.extend_from_slice(mh);
                    if batch.len() >= INGEST_BATCH_BYTES - 1 - mh.len() {
                        let full =
                            std::mem::replace(&mut batch, Vec::with_capacity(INGEST_BATCH_BYTES));
                        tx.send(full).map_err(|_| {
                            IndexError::Storage(format!("{}: car_blocks writer stopped", what()))
                        })?;
                    }
                    blocks
                        .write(block_key(mh, number), encode_location(offset, length))
                        .map_err(|e| storage(&what(), e))
                })?;
                if !batch.is_empty() {
                    tx.send(batch).map_err(|_| {
                        IndexError::Storage(format!("{}: car_blocks writer stopped", what()))
                    })?;
                }
                Ok::<_, IndexError>(blocks)
            })();
            drop(tx);
            // `car_blocks` finishes first: `recover` finds the rows of `blocks` through it.
            let car_blocks = car_blocks
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            // Its error first: when it stopped early, the merge's error is only "stopped".
            car_blocks?;
            let blocks = written?;
            blocks.finish().map_err(|e| storage(&what(), e))
        })
    }

    fn commit(&self, record: CarRecord) -> Result<(), IndexError> {
        let key = record.key.clone();
        let previous = self.stored_car(&key)?.map(|stored| stored.number);
        let (live_number, sorter) = {
            let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
            match live.get_mut(&key) {
                Some(staging) => (Some(staging.number), Some(staging.rows.take())),
                None => (None, None),
            }
        };
        let number = match (live_number, previous) {
            (Some(number), _) | (None, Some(number)) => number,
            (None, None) if record.blocks == 0 => self.next_number.fetch_add(1, Ordering::Relaxed),
            (None, None) => return Err(IndexError::NotStaged(key)),
        };
        let retired = previous.filter(|&old| old != number);

        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        match sorter {
            Some(Some(sorter)) => {
                let sorter = Arc::try_unwrap(sorter)
                    .map_err(|_| {
                        IndexError::Storage(format!(
                            "committing {key}: rows are still being staged"
                        ))
                    })?
                    .into_inner()
                    .unwrap_or_else(PoisonError::into_inner);
                self.write_staged(number, sorter, &mut batch)?;
            }
            Some(None) => {
                return Err(IndexError::Storage(format!(
                    "committing {key}: an earlier commit of this staging failed; abort it"
                )));
            }
            None => {}
        }
        batch.insert(
            &self.cars,
            key.as_str(),
            encode_json(&StoredCar { number, record })?,
        );
        if live_number.is_some() {
            batch.remove(&self.staging, number.to_be_bytes());
        }
        if let Some(old) = retired {
            let entry = StagingEntry {
                key: key.clone(),
                state: StagingState::Retired,
            };
            batch.insert(&self.staging, old.to_be_bytes(), encode_json(&entry)?);
        }
        batch
            .commit()
            .map_err(|e| storage(&format!("committing {key}"), e))?;

        {
            let mut committed = self
                .committed
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(old) = retired {
                committed.remove(&old);
            }
            committed.insert(number, Arc::from(key.as_str()));
        }
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);

        if let Some(old) = retired {
            // The commit has succeeded; a failed clean-up only leaves invisible rows that the
            // `staging` entry lets `recover` find.
            if let Err(e) = self.remove_rows(old) {
                tracing::warn!(car = %key, error = %e, "removing replaced index rows failed; recover() finishes it");
            }
        }
        Ok(())
    }

    /// Deletes a committed CAR as a replacing commit retires the rows it replaces: the record
    /// goes and a `Retired` staging entry for its number comes in one fsynced batch, the number
    /// leaves the visibility map (every row invisible at once), then the rows are removed.
    fn delete(&self, key: &str) -> Result<Option<CarRecord>, IndexError> {
        let Some(stored) = self.stored_car(key)? else {
            return Ok(None);
        };
        let number = stored.number;
        let entry = StagingEntry {
            key: key.to_owned(),
            state: StagingState::Retired,
        };
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        batch.remove(&self.cars, key);
        batch.insert(&self.staging, number.to_be_bytes(), encode_json(&entry)?);
        batch
            .commit()
            .map_err(|e| storage(&format!("deleting {key}"), e))?;
        self.committed
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&number);
        if let Err(e) = self.remove_rows(number) {
            tracing::warn!(car = %key, error = %e, "removing a deleted CAR's index rows failed; recover() finishes it");
        }
        Ok(Some(stored.record))
    }

    fn abort(&self, car_key: &str) -> Result<(), IndexError> {
        let staging = self
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(car_key);
        match staging {
            // Dropping the sorter drops its temporary file.
            Some(staging) => self.remove_rows(staging.number),
            None => Ok(()),
        }
    }

    fn recover(&self) -> Result<Vec<String>, IndexError> {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let mut entries = Vec::new();
        for guard in self.staging.iter() {
            let (key, value) = guard
                .into_inner()
                .map_err(|e| storage("scanning staging", e))?;
            let number = decode_number("staging key", &key)?;
            let entry: StagingEntry =
                serde_json::from_slice(&value).map_err(|e| IndexError::Corrupt {
                    what: format!("staging entry {number}"),
                    detail: e.to_string(),
                })?;
            entries.push((number, entry));
        }
        let mut recovered = Vec::new();
        for (number, entry) in entries {
            self.remove_rows(number)?;
            if entry.state == StagingState::Staged {
                recovered.push(entry.key);
            }
        }
        Ok(recovered)
    }

    /// Removes every row of CAR number `number`, then its `staging` entry (last, so a failure
    /// part-way leaves the entry for `recover` to find).
    fn remove_rows(&self, number: u64) -> Result<(), IndexError> {
        let what = || format!("removing rows of CAR number {number}");
        let prefix = number.to_be_bytes();
        let mut batch = self.db.batch();
        for guard in self.car_blocks.prefix(prefix) {
            let key = guard.key().map_err(|e| storage(&what(), e))?;
            let mh = key.get(NUMBER_LEN..).unwrap_or_default();
            batch.remove(&self.blocks, block_key(mh, number));
            batch.remove(&self.car_blocks, key);
            if batch.len() >= 2 * DELETE_CHUNK_ROWS {
                std::mem::replace(&mut batch, self.db.batch())
                    .commit()
                    .map_err(|e| storage(&what(), e))?;
            }
        }
        batch.remove(&self.staging, prefix);
        batch.commit().map_err(|e| storage(&what(), e))
    }
}

fn storage(op: &str, e: impl std::fmt::Display) -> IndexError {
    IndexError::Storage(format!("{op}: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `blocks` key: multihash bytes ++ CAR number (big-endian).
fn block_key(multihash: &[u8], number: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(multihash.len() + NUMBER_LEN);
    key.extend_from_slice(multihash);
    key.extend_from_slice(&number.to_be_bytes());
    key
}

/// `car_blocks` key: CAR number (big-endian) ++ multihash bytes.
fn car_block_key(number: u64, multihash: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(NUMBER_LEN + multihash.len());
    key.extend_from_slice(&number.to_be_bytes());
    key.extend_from_slice(multihash);
    key
}

/// `blocks` value: offset (u64 BE) ++ length (u32 BE).
fn encode_location(offset: u64, length: u32) -> [u8; LOCATION_LEN] {
    let mut value = [0u8; LOCATION_LEN];
    value[..8].copy_from_slice(&offset.to_be_bytes());
    value[8..].copy_from_slice(&length.to_be_bytes());
    value
}

fn decode_location(multihash: &[u8], value: &[u8]) -> Result<(u64, u32), IndexError> {
    let corrupt = || IndexError::Corrupt {
        what: format!("blocks row of {}", hex(multihash)),
        detail: format!("value is {} bytes, expected {LOCATION_LEN}", value.len()),
    };
    let value: &[u8; LOCATION_LEN] = value.try_into().map_err(|_| corrupt())?;
    let (offset, length) = value.split_at(8);
    let offset = u64::from_be_bytes(offset.try_into().map_err(|_| corrupt())?);
    let length = u32::from_be_bytes(length.try_into().map_err(|_| corrupt())?);
    Ok((offset, length))
}

fn decode_number(what: &str, bytes: &[u8]) -> Result<u64, IndexError> {
    let bytes: [u8; NUMBER_LEN] = bytes.try_into().map_err(|_| IndexError::Corrupt {
        what: what.to_owned(),
        detail: format!("CAR number is {} bytes, expected {NUMBER_LEN}", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

fn decode_stored_car(key: &[u8], value: &[u8]) -> Result<StoredCar, IndexError> {
    serde_json::from_slice(value).map_err(|e| IndexError::Corrupt {
        what: format!("CAR record {}", String::from_utf8_lossy(key)),
        detail: e.to_string(),
    })
}

fn encode_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, IndexError> {
    serde_json::to_vec(value).map_err(|e| IndexError::Storage(format!("encoding JSON: {e}")))
}

#[cfg(test)]
mod tests;
