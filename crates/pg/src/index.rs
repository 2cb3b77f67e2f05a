//! [`PgIndex`]: the block index in PostgreSQL.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use hydrant_index::sorter::{RowSorter, SORT_BUFFER_BYTES};
use hydrant_index::{
    BlockLocation, BlockLookup, CarCatalog, CarRecord, IndexError, MAX_LIST_CARS,
    MAX_LIST_MULTIHASHES, MAX_LOCATIONS, Multihash, StagedBlock,
};
use tokio::sync::mpsc;
use tokio_postgres::Row;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use crate::{PgError, PgPool, PoolConfig, describe};

/// Most multihashes one `locations_many` query carries; longer requests take several queries.
const LOCATIONS_MANY_CHUNK: usize = 1000;

/// Rows of a staged CAR written to `locations` per round at its commit, split over
/// [`COPY_STREAMS`] connections (about 5 MB of rows; two rounds wait while one is written).
const COMMIT_BATCH_ROWS: usize = 65_536;

/// The block index ([`BlockLookup`] and [`CarCatalog`]) in a PostgreSQL database (tables and commit protocol in the crate docs).
///
/// Several handles — in one process or in several replicas — over the same database and schema
/// see one index: a CAR committed through any of them is visible to all at once, a staged CAR
/// to none. The rule of the trait still holds across replicas: one CAR key is staged by one
/// writer at a time, and [`recover`](CarCatalog::recover) removes *every* open staging, so it
/// must run only while no replica is ingesting. A CAR is staged and committed through one
/// handle (or its clones): its rows wait in that handle's sorter until the commit.
#[derive(Clone)]
pub struct PgIndex {
    pool: PgPool,
    /// Rows of the CARs this handle is staging, by CAR key, sorted with bounded memory (runs
    /// in unnamed temporary files in `sort_dir`) until their commit writes them in key order.
    staged: Arc<Mutex<HashMap<String, Staged>>>,
    sort_dir: PathBuf,
}

/// One CAR being staged through this handle.
struct Staged {
    /// The staging's id (`stagings.id`), which its rows carry.
    id: i64,
    rows: Arc<Mutex<RowSorter>>,
}

impl std::fmt::Debug for PgIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgIndex")
            .field("pool", &self.pool)
            .field("sort_dir", &self.sort_dir)
            .finish_non_exhaustive()
    }
}

impl PgIndex {
    /// Opens a pool to `url` with `config` and migrates the schema; see [`PgPool::connect`].
    ///
    /// # Errors
    /// As [`PgPool::connect`].
    pub async fn connect(url: &str, config: &PoolConfig) -> Result<Self, PgError> {
        Ok(Self::new(PgPool::connect(url, config).await?))
    }

    /// An index over an already opened (and migrated) pool; staged rows are sorted in the
    /// system's temporary directory (about 46 bytes of disk per staged row past
    /// [`SORT_BUFFER_BYTES`] in memory, per CAR).
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            staged: Arc::default(),
            sort_dir: std::env::temp_dir(),
        }
    }

    /// The rows staged through this handle for `car_key`, taken out of it.
    fn take_staged(&self, car_key: &str) -> Option<Staged> {
        self.staged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(car_key)
    }

    /// Writes a staged CAR's rows into `locations` under its staging's id, in multihash order
    /// (the sorter's merge on a blocking thread, [`COMMIT_BATCH_ROWS`] at a time; each batch
    /// cut in [`COPY_STREAMS`] key ranges written at once).
    async fn write_staged(&self, car_key: &str, staged: Staged) -> Result<(), IndexError> {
        let sorter = Arc::try_unwrap(staged.rows)
            .map_err(|_| IndexError::Storage(format!("{car_key} is still being staged")))?
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let (tx, mut rx) = mpsc::channel::<Vec<Row3>>(2);
        let merge = tokio::task::spawn_blocking(move || {
            let mut batch = Vec::with_capacity(COMMIT_BATCH_ROWS);
            let stopped = || IndexError::Storage("commit_car: the writer stopped".into());
            sorter.drain(|multihash, offset, length| {
                let length = i32::try_from(length).map_err(|_| {
                    IndexError::Storage(format!("block length {length} exceeds 2^31-1"))
                })?;
                batch.push((multihash.to_vec(), to_i64(offset, "offset")?, length));
                if batch.len() == COMMIT_BATCH_ROWS {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(COMMIT_BATCH_ROWS));
                    tx.blocking_send(full).map_err(|_| stopped())?;
                }
                Ok(())
            })?;
            if !batch.is_empty() {
                tx.blocking_send(batch).map_err(|_| stopped())?;
            }
            Ok::<_, IndexError>(())
        });
        let written = async {
            while let Some(batch) = rx.recv().await {
                self.write_rows(car_key, staged.id, &batch).await?;
            }
            Ok::<_, IndexError>(())
        }
        .await;
        // A failed write stops the merge at its next batch.
        drop(rx);
        let merged = merge
            .await
            .map_err(|e| IndexError::Storage(e.to_string()))?;
        written.and(merged)
    }

    /// Writes `rows` (sorted by multihash) cut in [`COPY_STREAMS`] parts, each on a
    /// connection of its own at once: one PostgreSQL backend inserting into the primary key is
    /// CPU-bound on one core while the key fits in memory, and waits on one random read at a
    /// time once it does not. Parts split between two multihashes, so they never hold the same
    /// key and never wait for each other.
    async fn write_rows(&self, car_key: &str, id: i64, rows: &[Row3]) -> Result<(), IndexError> {
        let mut parts = vec![rows];
        while parts.len() < COPY_STREAMS {
            parts = parts
                .into_iter()
                .flat_map(|p| {
                    let (a, b) = p.split_at(split_point(p));
                    [a, b]
                })
                .collect();
        }
        futures::future::try_join_all(
            parts
                .into_iter()
                .map(|part| self.write_part(car_key, id, part)),
        )
        .await?;
        Ok(())
    }

    /// The pool this index uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The commit feed: `(commit_seq, CAR key)` of CARs committed with a sequence number above
    /// `after`, ascending, at most `limit` (capped at [`MAX_LIST_CARS`]). Sequence numbers
    /// become visible in order (see the crate docs), so polling with the last number seen
    /// misses no commit. A re-committed CAR appears again under its new number.
    ///
    /// # Errors
    /// [`IndexError::Storage`] when the query fails.
    pub async fn commits_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, IndexError> {
        const WHAT: &str = "commits_after";
        let limit = limit.min(MAX_LIST_CARS) as i64;
        let client = self.pool.client(WHAT).await.map_err(IndexError::Storage)?;
        let statement = client
            .prepare_cached(
                "SELECT commit_seq, key FROM cars WHERE commit_seq > $1 \
                 ORDER BY commit_seq LIMIT $2",
            )
            .await
            .map_err(|e| storage(WHAT, &e))?;
        Ok(client
            .query(&statement, &[&after, &limit])
            .await
            .map_err(|e| storage(WHAT, &e))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    /// The highest commit sequence number so far (0 when nothing was committed): where a new
    /// replica starts following [`commits_after`](Self::commits_after) before it loads the
    /// whole index.
    ///
    /// # Errors
    /// [`IndexError::Storage`] when the query fails.
    pub async fn last_commit(&self) -> Result<i64, IndexError> {
        const WHAT: &str = "last_commit";
        let client = self.pool.client(WHAT).await.map_err(IndexError::Storage)?;
        let row = client
            .query_one("SELECT COALESCE(MAX(commit_seq), 0) FROM cars", &[])
            .await
            .map_err(|e| storage(WHAT, &e))?;
        Ok(row.get(0))
    }

    /// How many CARs were ever deleted ([`CarCatalog::delete_car`]): replicas poll it and
    /// empty their read caches when it moves.
    ///
    /// # Errors
    /// [`IndexError::Storage`] when the database cannot answer.
    pub async fn deletions(&self) -> Result<i64, IndexError> {
        const WHAT: &str = "deletions";
        let client = self.pool.client(WHAT).await.map_err(IndexError::Storage)?;
        let row = client
            .query_one("SELECT seq FROM car_deletions", &[])
            .await
            .map_err(|e| storage(WHAT, &e))?;
        Ok(row.get(0))
    }

    /// Removes the stagings opened more than `older_than` ago and their staged rows: what
    /// crashed ingests of any replica left behind. Unlike [`CarCatalog::recover`] it spares
    /// younger stagings, so a replica can run it at start-up while others ingest (give it more
    /// than the longest ingest). Returns the CAR keys removed.
    ///
    /// # Errors
    /// [`IndexError::Storage`] when the removal fails (it can be retried).
    pub async fn recover_stale(
        &self,
        older_than: std::time::Duration,
    ) -> Result<Vec<String>, IndexError> {
        self.remove_stagings("recover_stale", Some(older_than))
            .await
    }

    /// Removes the stagings opened more than `older_than` ago (all of them for `None`) and
    /// their staged rows, in one transaction; returns their CAR keys, sorted. Only the rows of
    /// the stagings removed: a staging committed meanwhile (by another replica) keeps its rows.
    /// Rows never exist without their staging (they are written together).
    async fn remove_stagings(
        &self,
        what: &str,
        older_than: Option<std::time::Duration>,
    ) -> Result<Vec<String>, IndexError> {
        let mut client = self.pool.client(what).await.map_err(IndexError::Storage)?;
        let tx = client.transaction().await.map_err(|e| storage(what, &e))?;
        tx.batch_execute(crate::NO_STATEMENT_TIMEOUT)
            .await
            .map_err(|e| storage(what, &e))?;
        let removed = tx
            .query(
                "DELETE FROM stagings WHERE $1::float8 IS NULL \
                     OR opened_at < now() - make_interval(secs => $1) \
                 RETURNING car, id",
                &[&older_than.map(|d| d.as_secs_f64())],
            )
            .await
            .map_err(|e| storage(what, &e))?;
        let ids: Vec<i64> = removed.iter().map(|r| r.get("id")).collect();
        tx.execute("DELETE FROM locations WHERE car_id = ANY($1)", &[&ids])
            .await
            .map_err(|e| storage(what, &e))?;
        let mut keys: Vec<String> = removed.iter().map(|r| r.get("car")).collect();
        keys.sort();
        tx.commit().await.map_err(|e| storage(what, &e))?;
        for key in &keys {
            drop(self.take_staged(key));
        }
        Ok(keys)
    }

    /// Writes `rows` (sorted by multihash, possibly empty) of the staging `staging_id` of
    /// `car_key` in one transaction: `COPY` straight into `locations` (invisible until the CAR
    /// record with that id exists). A multihash staged before for this CAR, or twice in `rows`,
    /// breaks the primary key; `rows` are then written again by an upsert in which the last row
    /// of a multihash wins.
    async fn write_part(
        &self,
        car_key: &str,
        staging_id: i64,
        rows: &[Row3],
    ) -> Result<(), IndexError> {
        const WHAT: &str = "commit_car: writing the staged rows";
        if rows.is_empty() {
            return Ok(());
        }
        let mut client = self.pool.client(WHAT).await.map_err(IndexError::Storage)?;
        let tx = client.transaction().await.map_err(|e| storage(WHAT, &e))?;
        // Part of the commit, whose time grows with the CAR (a checkpoint can hold a COPY for
        // longer than a lookup's timeout).
        tx.batch_execute(crate::NO_STATEMENT_TIMEOUT)
            .await
            .map_err(|e| storage(WHAT, &e))?;
        // The staging must still be open, and stays so (an abort or recovery waits) until
        // these rows are in: rows never outlive their staging.
        tx.query_opt(
            "SELECT 1 FROM stagings WHERE car = $1 AND id = $2 FOR SHARE",
            &[&car_key, &staging_id],
        )
        .await
        .map_err(|e| storage(WHAT, &e))?
        .ok_or_else(|| IndexError::NotStaged(car_key.to_owned()))?;
        tx.batch_execute("SAVEPOINT copy")
            .await
            .map_err(|e| storage(WHAT, &e))?;
        match copy_locations(&tx, staging_id, rows).await {
            Ok(()) => {}
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT copy")
                    .await
                    .map_err(|e| storage(WHAT, &e))?;
                let multihashes: Vec<&[u8]> = rows.iter().map(|r| r.0.as_slice()).collect();
                let offsets: Vec<i64> = rows.iter().map(|r| r.1).collect();
                let lengths: Vec<i32> = rows.iter().map(|r| r.2).collect();
                tx.execute(
                    "INSERT INTO locations (car_id, \"offset\", length, multihash) \
                     SELECT DISTINCT ON (m) $1::bigint, o, l, m \
                     FROM unnest($2::bigint[], $3::int[], $4::bytea[]) \
                         WITH ORDINALITY AS t(o, l, m, i) \
                     ORDER BY m, i DESC \
                     ON CONFLICT (multihash, car_id) DO UPDATE \
                     SET \"offset\" = EXCLUDED.\"offset\", length = EXCLUDED.length",
                    &[&staging_id, &offsets, &lengths, &multihashes],
                )
                .await
                .map_err(|e| storage("stage_blocks: upsert of a batch with repeats", &e))?;
            }
            Err(e) => return Err(storage("stage_blocks: COPY", &e)),
        }
        tx.commit().await.map_err(|e| storage(WHAT, &e))
    }

    /// Whether the database answers a trivial query (readiness checks).
    ///
    /// # Errors
    /// [`IndexError::Storage`] with the reason.
    pub async fn ping(&self) -> Result<(), IndexError> {
        const WHAT: &str = "ping";
        let client = self.pool.client(WHAT).await.map_err(IndexError::Storage)?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| storage(WHAT, &e))?;
        Ok(())
    }
}

/// Connections one `stage_blocks` batch is written on at once (a power of two; see
/// `stage_blocks`).
const COPY_STREAMS: usize = 4;

/// A staged row as written: multihash bytes, offset, length.
type Row3 = (Vec<u8>, i64, i32);

/// Where to cut `rows` (sorted by multihash) in two halves that share no multihash.
fn split_point(rows: &[Row3]) -> usize {
    let mut at = rows.len() / 2;
    while at > 0 && at < rows.len() && rows[at].0 == rows[at - 1].0 {
        at += 1;
    }
    at
}

/// Writes one batch of a staging's rows into `locations` with `COPY ... (FORMAT binary)`.
async fn copy_locations(
    tx: &tokio_postgres::Transaction<'_>,
    staging_id: i64,
    rows: &[Row3],
) -> Result<(), tokio_postgres::Error> {
    let sink = tx
        .copy_in(
            "COPY locations (car_id, \"offset\", length, multihash) FROM STDIN (FORMAT binary)",
        )
        .await?;
    let mut writer = pin!(BinaryCopyInWriter::new(
        sink,
        &[Type::INT8, Type::INT8, Type::INT4, Type::BYTEA],
    ));
    for (multihash, offset, length) in rows {
        writer
            .as_mut()
            .write(&[&staging_id, offset, length, multihash])
            .await?;
    }
    writer.finish().await.map(drop)
}

pub(crate) fn storage(what: &str, err: &tokio_postgres::Error) -> IndexError {
    IndexError::Storage(format!("{what}: {}", describe(err)))
}

fn location(row: &Row) -> Result<BlockLocation, IndexError> {
    let car: String = row.get("car");
    let offset: i64 = row.get("offset");
    let length: i32 = row.get("length");
    let corrupt = |detail: String| IndexError::Corrupt {
        what: format!("location in {car}"),
        detail,
    };
    Ok(BlockLocation {
        offset: u64::try_from(offset).map_err(|_| corrupt(format!("negative offset {offset}")))?,
        length: u32::try_from(length).map_err(|_| corrupt(format!("negative length {length}")))?,
        car,
    })
}

fn car_record(row: &Row) -> Result<CarRecord, IndexError> {
    let key: String = row.get("key");
    let corrupt = |field: &str| IndexError::Corrupt {
        what: format!("CAR record {key}"),
        detail: format!("{field} out of range"),
    };
    let unsigned = |field: &str| -> Result<u64, IndexError> {
        u64::try_from(row.get::<_, i64>(field)).map_err(|_| corrupt(field))
    };
    Ok(CarRecord {
        version: u8::try_from(row.get::<_, i16>("version")).map_err(|_| corrupt("version"))?,
        roots: row.get("roots"),
        size: unsigned("size")?,
        blocks: unsigned("blocks")?,
        block_bytes: unsigned("block_bytes")?,
        ingested_at: unsigned("ingested_at")?,
        key,
    })
}

/// `value` as a BIGINT, or a storage error naming `what` (PostgreSQL has no unsigned types).
fn to_i64(value: u64, what: &str) -> Result<i64, IndexError> {
    i64::try_from(value).map_err(|_| IndexError::Storage(format!("{what} {value} exceeds 2^63-1")))
}

const LOCATIONS_SQL: &str = "SELECT c.key AS car, l.\"offset\", l.length \
     FROM locations l JOIN cars c ON c.id = l.car_id \
     WHERE l.multihash = $1 ORDER BY c.key LIMIT $2";

const LOCATIONS_MANY_SQL: &str = "SELECT q.i, b.car, b.\"offset\", b.length \
     FROM unnest($1::bytea[]) WITH ORDINALITY AS q(mh, i) \
     CROSS JOIN LATERAL (SELECT c.key AS car, l.\"offset\", l.length \
         FROM locations l JOIN cars c ON c.id = l.car_id \
         WHERE l.multihash = q.mh ORDER BY c.key LIMIT $2) AS b";

const CAR_COLUMNS: &str = "key, version, roots, size, blocks, block_bytes, ingested_at";

#[async_trait]
impl BlockLookup for PgIndex {
    async fn locations(&self, multihash: &Multihash) -> Result<Vec<BlockLocation>, IndexError> {
        const WHAT: &str = "locations";
        let client = self.pool.client(WHAT).await.map_err(IndexError::Storage)?;
        let statement = client
            .prepare_cached(LOCATIONS_SQL)
            .await
            .map_err(|e| storage(WHAT, &e))?;
        let limit = MAX_LOCATIONS as i64;
        client
            .query(&statement, &[&multihash.to_bytes(), &limit])
            .await
            .map_err(|e| storage(WHAT, &e))?
            .iter()
            .map(location)
            .collect()
    }

    async fn locations_many(
        &self,
        multihashes: &[Multihash],
    ) -> Result<Vec<Vec<BlockLocation>>, IndexError> {
        const WHAT: &str = "locations_many";
        let mut out = vec![Vec::new(); multihashes.len()];
        if multihashes.is_empty() {
            return Ok(out);
        }
        let client = self.pool.client(WHAT).await.map_err(IndexError::Storage)?;
        let statement = client
            .prepare_cached(LOCATIONS_MANY_SQL)
            .await
            .map_err(|e| storage(WHAT, &e))?;
        let limit = MAX_LOCATIONS as i64;
        for (chunk_no, chunk) in multihashes.chunks(LOCATIONS_MANY_CHUNK).enumerate() {
            let keys: Vec<Vec<u8>> = chunk.iter().map(Multihash::to_bytes).collect();
            let rows = client
                .query(&statement, &[&keys, &limit])
                .await
                .map_err(|e| storage(WHAT, &e))?;
            for row in &rows {
                let ordinal: i64 = row.get("i");
                let slot = usize::try_from(ordinal - 1)
                    .ok()
                    .map(|i| chunk_no * LOCATIONS_MANY_CHUNK + i)
                    .filter(|&i| i < multihashes.len())
                    .ok_or_else(|| IndexError::Storage(format!("{WHAT}: bad ordinal {ordinal}")))?;
                out[slot].push(location(row)?);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl CarCatalog for PgIndex {
    async fn car(&self, key: &str) -> Result<Option<CarRecord>, IndexError> {
        const WHAT: &str = "car";
        let client = self.pool.client(WHAT).await.map_err(IndexError::Storage)?;
        let statement = client
            .prepare_cached(&format!("SELECT {CAR_COLUMNS} FROM cars WHERE key = $1"))
            .await
            .map_err(|e| storage(WHAT, &e))?;
        client
            .query_opt(&statement, &[&key])
            .await
            .map_err(|e| storage(WHAT, &e))?
            .as_ref()
            .map(car_record)
            .transpose()
    }

    async fn list_cars(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CarRecord>, IndexError> {
        const WHAT: &str = "list_cars";
        let limit = limit.min(MAX_LIST_CARS);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = limit as i64;
        let client = self.pool.client(WHAT).await.map_err(IndexError::Storage)?;
        let rows = match after {
            Some(after) => {
                let statement = client
                    .prepare_cached(&format!(
                        "SELECT {CAR_COLUMNS} FROM cars WHERE key > $1 ORDER BY key LIMIT $2"
                    ))
                    .await
                    .map_err(|e| storage(WHAT, &e))?;
                client.query(&statement, &[&after, &limit]).await
            }
            None => {
                let statement = client
                    .prepare_cached(&format!(
                        "SELECT {CAR_COLUMNS} FROM cars ORDER BY key LIMIT $1"
                    ))
                    .await
                    .map_err(|e| storage(WHAT, &e))?;
                client.query(&statement, &[&limit]).await
            }
        }
        .map_err(|e| storage(WHAT, &e))?;
        rows.iter().map(car_record).collect()
    }

    async fn car_multihashes(
        &self,
        key: &str,
        after: Option<&Multihash>,
        limit: usize,
    ) -> Result<Vec<Multihash>, IndexError> {
        const WHAT: &str = "car_multihashes";
        let limit = limit.min(MAX_LIST_MULTIHASHES) as i64;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let after = after.map_or_else(Vec::new, Multihash::to_bytes);
        let client = self.pool.client(WHAT).await.map_err(IndexError::Storage)?;
        // The empty bytea sorts before every multihash.
        let statement = client
            .prepare_cached(
                "SELECT multihash FROM locations \
                 WHERE car_id = (SELECT id FROM cars WHERE key = $1) AND multihash > $2 \
                 ORDER BY multihash LIMIT $3",
            )
            .await
            .map_err(|e| storage(WHAT, &e))?;
        client
            .query(&statement, &[&key, &after, &limit])
            .await
            .map_err(|e| storage(WHAT, &e))?
            .iter()
            .map(|row| {
                let bytes: &[u8] = row.get(0);
                Multihash::from_bytes(bytes).map_err(|e| IndexError::Corrupt {
                    what: format!("multihash of a block in {key}"),
                    detail: e.to_string(),
                })
            })
            .collect()
    }

    /// Opens the staging (its `stagings` row and id) at the first call; the rows go to this
    /// handle's sorter, and reach `locations` only at the commit, in key order.
    async fn stage_blocks(&self, car_key: &str, rows: &[StagedBlock]) -> Result<(), IndexError> {
        const WHAT: &str = "stage_blocks";
        if let Some(r) = rows.iter().find(|r| i32::try_from(r.length).is_err()) {
            return Err(IndexError::Storage(format!(
                "block length {} exceeds 2^31-1",
                r.length
            )));
        }
        let open = self
            .staged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(car_key)
            .map(|s| Arc::clone(&s.rows));
        let sorter = match open {
            Some(sorter) => sorter,
            None => {
                // The staging's id, new or (for a CAR whose staging a crashed process left
                // open) the one it has.
                let client = self.pool.client(WHAT).await.map_err(IndexError::Storage)?;
                let id: i64 = client
                    .query_one(
                        "INSERT INTO stagings (car) VALUES ($1) \
                         ON CONFLICT (car) DO UPDATE SET car = EXCLUDED.car RETURNING id",
                        &[&car_key],
                    )
                    .await
                    .map_err(|e| storage(WHAT, &e))?
                    .get(0);
                let rows = Arc::new(Mutex::new(RowSorter::new(
                    &self.sort_dir,
                    SORT_BUFFER_BYTES,
                )));
                self.staged
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(
                        car_key.to_owned(),
                        Staged {
                            id,
                            rows: Arc::clone(&rows),
                        },
                    );
                rows
            }
        };
        let rows = rows.to_vec();
        tokio::task::spawn_blocking(move || {
            sorter
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(&rows)
        })
        .await
        .map_err(|e| IndexError::Storage(e.to_string()))?
    }

    async fn commit_car(&self, record: &CarRecord) -> Result<(), IndexError> {
        const WHAT: &str = "commit_car";
        let key = record.key.as_str();
        let values = (
            i16::from(record.version),
            to_i64(record.size, "size")?,
            to_i64(record.blocks, "blocks")?,
            to_i64(record.block_bytes, "block_bytes")?,
            to_i64(record.ingested_at, "ingested_at")?,
        );
        // The rows first, under the staging's id: invisible until the record below carries it.
        let wrote_rows = match self.take_staged(key) {
            Some(staged) => {
                self.write_staged(key, staged).await?;
                true
            }
            None => false,
        };
        let mut client = self.pool.client(WHAT).await.map_err(IndexError::Storage)?;
        let tx = client.transaction().await.map_err(|e| storage(WHAT, &e))?;
        // Removing a replaced CAR's rows takes as long as it has blocks.
        tx.batch_execute(crate::NO_STATEMENT_TIMEOUT)
            .await
            .map_err(|e| storage(WHAT, &e))?;
        // Closing the staging locks its row: an abort or recover running now waits, then finds
        // nothing to remove.
        let staging_id: Option<i64> = tx
            .query_opt("DELETE FROM stagings WHERE car = $1 RETURNING id", &[&key])
            .await
            .map_err(|e| storage(WHAT, &e))?
            .map(|r| r.get(0));
        // The record of a CAR committed before (locked against a concurrent re-commit).
        let committed_id: Option<i64> = tx
            .query_opt("SELECT id FROM cars WHERE key = $1 FOR UPDATE", &[&key])
            .await
            .map_err(|e| storage(WHAT, &e))?
            .map(|r| r.get(0));
        let car_id = match (staging_id, committed_id) {
            // The staged rows carry the staging's id: the record takes it, and the rows of the
            // CAR it replaces go.
            (Some(staging_id), committed) => {
                // Staged through another handle (whose rows never left its process): nothing
                // to make visible, and committing the record would lose the CAR's blocks.
                if !wrote_rows && record.blocks > 0 {
                    let any: bool = tx
                        .query_one(
                            "SELECT EXISTS (SELECT 1 FROM locations WHERE car_id = $1)",
                            &[&staging_id],
                        )
                        .await
                        .map_err(|e| storage(WHAT, &e))?
                        .get(0);
                    if !any {
                        return Err(IndexError::NotStaged(key.to_owned()));
                    }
                }
                if let Some(old) = committed {
                    tx.execute("DELETE FROM locations WHERE car_id = $1", &[&old])
                        .await
                        .map_err(|e| storage("commit_car: removing replaced rows", &e))?;
                }
                Some(staging_id)
            }
            // Dropping the transaction rolls it back.
            (None, None) if record.blocks > 0 => {
                return Err(IndexError::NotStaged(key.to_owned()));
            }
            // A record without rows, or a committed CAR's record updated.
            (None, committed) => committed,
        };
        // Serialise the numbering of commits (see the crate docs): held until the commit.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.car_commit_seq'))",
            &[],
        )
        .await
        .map_err(|e| storage("commit_car: locking the commit feed", &e))?;
        tx.execute(
            "INSERT INTO cars (key, version, roots, size, blocks, block_bytes, ingested_at, \
                 commit_seq, id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, nextval('car_commit_seq'), \
                 COALESCE($8, nextval('car_ids'))) \
             ON CONFLICT (key) DO UPDATE SET version = EXCLUDED.version, \
                 roots = EXCLUDED.roots, size = EXCLUDED.size, blocks = EXCLUDED.blocks, \
                 block_bytes = EXCLUDED.block_bytes, ingested_at = EXCLUDED.ingested_at, \
                 commit_seq = EXCLUDED.commit_seq, id = EXCLUDED.id",
            &[
                &key,
                &values.0,
                &record.roots,
                &values.1,
                &values.2,
                &values.3,
                &values.4,
                &car_id,
            ],
        )
        .await
        .map_err(|e| storage("commit_car: storing the record", &e))?;
        tx.commit().await.map_err(|e| storage(WHAT, &e))
    }

    async fn abort_car(&self, car_key: &str) -> Result<(), IndexError> {
        const WHAT: &str = "abort_car";
        // Dropping the sorter drops its temporary file.
        drop(self.take_staged(car_key));
        let mut client = self.pool.client(WHAT).await.map_err(IndexError::Storage)?;
        let tx = client.transaction().await.map_err(|e| storage(WHAT, &e))?;
        tx.batch_execute(crate::NO_STATEMENT_TIMEOUT)
            .await
            .map_err(|e| storage(WHAT, &e))?;
        let staging_id: Option<i64> = tx
            .query_opt(
                "DELETE FROM stagings WHERE car = $1 RETURNING id",
                &[&car_key],
            )
            .await
            .map_err(|e| storage(WHAT, &e))?
            .map(|r| r.get(0));
        if let Some(staging_id) = staging_id {
            tx.execute("DELETE FROM locations WHERE car_id = $1", &[&staging_id])
                .await
                .map_err(|e| storage(WHAT, &e))?;
        }
        tx.commit().await.map_err(|e| storage(WHAT, &e))
    }

    /// One transaction removes the record and the rows (a lookup joins `cars`, so they vanish
    /// together at its commit).
    async fn delete_car(&self, key: &str) -> Result<Option<CarRecord>, IndexError> {
        const WHAT: &str = "delete_car";
        let mut client = self.pool.client(WHAT).await.map_err(IndexError::Storage)?;
        let tx = client.transaction().await.map_err(|e| storage(WHAT, &e))?;
        // Removing the rows takes as long as the CAR has blocks.
        tx.batch_execute(crate::NO_STATEMENT_TIMEOUT)
            .await
            .map_err(|e| storage(WHAT, &e))?;
        let Some(row) = tx
            .query_opt(
                &format!("DELETE FROM cars WHERE key = $1 RETURNING id, {CAR_COLUMNS}"),
                &[&key],
            )
            .await
            .map_err(|e| storage(WHAT, &e))?
        else {
            return Ok(None);
        };
        let id: i64 = row.get("id");
        let record = car_record(&row)?;
        tx.execute("DELETE FROM locations WHERE car_id = $1", &[&id])
            .await
            .map_err(|e| storage(WHAT, &e))?;
        tx.execute("UPDATE car_deletions SET seq = seq + 1", &[])
            .await
            .map_err(|e| storage(WHAT, &e))?;
        tx.commit().await.map_err(|e| storage(WHAT, &e))?;
        Ok(Some(record))
    }

    async fn recover(&self) -> Result<Vec<String>, IndexError> {
        let keys = self.remove_stagings("recover", None).await?;
        if !keys.is_empty() {
            tracing::info!(cars = keys.len(), "removed abandoned CAR stagings");
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_never_share_a_multihash() {
        let row = |m: u8| (vec![m], 0, 0);
        for (keys, at) in [
            (vec![], 0),
            (vec![1], 0),
            (vec![1, 2], 1),
            (vec![1, 1], 2),
            (vec![1, 2, 2, 2, 3], 4),
            (vec![1, 1, 2, 3], 2),
            (vec![5, 5, 5, 5], 4),
        ] {
            let rows: Vec<Row3> = keys.iter().map(|&k| row(k)).collect();
            let split = split_point(&rows);
            assert_eq!(split, at, "{keys:?}");
            if split > 0 && split < rows.len() {
                assert_ne!(rows[split - 1].0, rows[split].0);
            }
        }
    }
}
