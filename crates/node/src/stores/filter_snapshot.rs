//! The presence filter's snapshot in the repository ([`SNAPSHOT_FILE`]), so that a restart
//! does not scan every multihash of the index before the node is ready (a scan is linear in
//! the block count: 13 s at 10^7 blocks, some 20 minutes at 10^9).
//!
//! The snapshot is written when the filter worker stops (a clean shutdown), and every
//! `filter.snapshot_interval_secs` while CARs are committed (so that a crash loses little), each
//! time tagged with the index's position at that moment, read *before* the bits are copied: every block the
//! position counts was added to the filter before its rows were written, so the bits hold at
//! least what the position says. At start-up it is used only when that position still
//! describes the index:
//!
//! - **fjall** (one process owns the index): its committed CAR count and next CAR number
//!   ([`FjallIndex::position`]) must be unchanged: no CAR was committed since, not even one
//!   whose staging had begun when the snapshot was taken. Otherwise (e.g. an offline ingest,
//!   or a crash after later commits) the filter is rebuilt.
//! - **PostgreSQL** (replicas share the index): the snapshot's commit sequence must not be
//!   ahead of the database's; the worker then adds every CAR committed after it (other
//!   replicas kept committing meanwhile) from the commit feed, as it does while running.
//!
//! With PostgreSQL the snapshot is also written to the object store the replicas share
//! ([`SHARED_SNAPSHOT_PREFIX`]`/<schema>.snapshot`), so a replica starting on an empty disk (a
//! new machine, a container without a volume) loads it instead of scanning: the local file is
//! read first, the shared object only when the local file is missing or unusable. Every replica
//! writes it (the last write wins; any of them is usable, since the commit feed catches up from
//! whatever position it holds).
//!
//! Either way the position names the index it came from (the fjall directory; the database
//! URL without password, and the schema), so a repository pointed at another index rebuilds.
//! A damaged or foreign snapshot is refused by [`PresenceFilter::load_snapshot`] (checksum,
//! canaries). A snapshot is never trusted into a false "absent".

use std::path::PathBuf;
use std::sync::Arc;

use hydrant_index::filter::PresenceFilter;
use hydrant_index::{FjallIndex, IndexError};
use hydrant_pg::PgIndex;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

/// The snapshot's file name in the repository.
pub const SNAPSHOT_FILE: &str = "filter.snapshot";

/// Prefix of the shared snapshots in the object store (PostgreSQL index only).
pub const SHARED_SNAPSHOT_PREFIX: &str = "filter-snapshots";

/// Bytes per part when the shared snapshot is uploaded (a multipart upload past one part).
pub const SHARED_UPLOAD_PART: usize = 16 * 1024 * 1024;

/// The index whose position tags a snapshot.
#[derive(Clone)]
pub enum Feed {
    /// The embedded index: position = [`FjallIndex::position`].
    Fjall(FjallIndex),
    /// The shared index: position = the last commit's sequence.
    Pg(PgIndex),
}

/// What a snapshot holds, and where to catch up from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// The fjall index's committed CARs and next CAR number.
    Fjall(u64, u64),
    /// The PostgreSQL commit sequence.
    Pg(i64),
}

/// Loads and saves the snapshot of one repository's filter.
#[derive(Clone)]
pub struct Snapshots {
    /// The snapshot file.
    pub path: PathBuf,
    /// The index the position is read from.
    pub feed: Feed,
    /// Names the index (fjall directory, or database and schema); a snapshot of another index
    /// is not used.
    pub origin: String,
    /// Time between snapshots while running (`filter.snapshot_interval_secs`); `None`: only
    /// at a clean stop.
    pub interval: Option<std::time::Duration>,
    /// The copy in the object store the replicas share (PostgreSQL index), and its key.
    pub shared: Option<(Arc<dyn ObjectStore>, ObjectPath)>,
}

impl Snapshots {
    async fn position(&self) -> Result<Position, IndexError> {
        Ok(match &self.feed {
            Feed::Fjall(index) => {
                let (cars, next) = index.position();
                Position::Fjall(cars, next)
            }
            Feed::Pg(pg) => Position::Pg(pg.last_commit().await?),
        })
    }

    fn encode(&self, position: &Position) -> Vec<u8> {
        match position {
            Position::Fjall(cars, next) => format!("fjall\n{}\n{cars} {next}", self.origin),
            Position::Pg(seq) => format!("pg\n{}\n{seq}", self.origin),
        }
        .into_bytes()
    }

    fn decode(&self, bytes: &[u8]) -> Option<Position> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, '\n');
        let (kind, origin, n) = (parts.next()?, parts.next()?, parts.next()?);
        if origin != self.origin {
            return None;
        }
        match kind {
            "fjall" => {
                let (cars, next) = n.split_once(' ')?;
                Some(Position::Fjall(cars.parse().ok()?, next.parse().ok()?))
            }
            "pg" => n.parse().ok().map(Position::Pg),
            _ => None,
        }
    }

    /// Begins restoring the snapshot into `filter` ([`PresenceFilter::begin_restore`]) when it
    /// still describes the index (see the module docs) and returns its position: for
    /// PostgreSQL, where the commit feed resumes before the caller finishes the restore.
    /// `None` (the filter untouched, a rebuild needed) when there is none, or it is stale,
    /// foreign or damaged; the reason is logged.
    pub async fn load(&self, filter: &PresenceFilter) -> Option<Position> {
        let local = match tokio::fs::read(&self.path).await {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read the presence filter snapshot");
                None
            }
        };
        if let Some(bytes) = local
            && let Some(position) = self.restore(filter, &bytes, "local file").await
        {
            return Some(position);
        }
        let (store, key) = self.shared.as_ref()?;
        let shared = match store.get(key).await {
            Ok(got) => got.bytes().await,
            Err(e) => Err(e),
        };
        match shared {
            Ok(bytes) => self.restore(filter, &bytes, "object store").await,
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "cannot read the shared presence filter snapshot");
                None
            }
        }
    }

    /// [`load`](Self::load)'s check and restore of one snapshot, read from `source`.
    async fn restore(
        &self,
        filter: &PresenceFilter,
        bytes: &[u8],
        source: &str,
    ) -> Option<Position> {
        let refuse = |why: &str| {
            tracing::info!(source, reason = why, "presence filter snapshot not used");
            None
        };
        let Some(saved) = PresenceFilter::snapshot_position(bytes)
            .ok()
            .and_then(|p| self.decode(p))
        else {
            return refuse("written for another index, or not a snapshot");
        };
        let now = match self.position().await {
            Ok(now) => now,
            Err(e) => return refuse(&format!("the index's position is unknown: {e}")),
        };
        let usable = match (&saved, &now) {
            (Position::Fjall(..), Position::Fjall(..)) => saved == now,
            (Position::Pg(saved), Position::Pg(now)) => saved <= now,
            _ => false,
        };
        if !usable {
            return refuse(&format!("the index changed since ({saved:?}, now {now:?})"));
        }
        match filter.begin_restore(bytes) {
            Ok(_) => {
                tracing::info!(source, position = ?saved, bytes = bytes.len(), "presence filter loaded from its snapshot");
                Some(saved)
            }
            Err(e) => refuse(&e.to_string()),
        }
    }

    /// Writes the snapshot of `filter` (nothing when it is not built, or when the position is
    /// `last`, the one written before), tagged with the index's position read first, or with
    /// `known` when the caller knows it (the commit feed's); `last` becomes that position. With
    /// a shared copy, the object is written after the file.
    ///
    /// # Errors
    /// The index's error (position), the file's or the object store's.
    pub async fn save(
        &self,
        filter: &PresenceFilter,
        known: Option<Position>,
        last: &mut Option<Position>,
    ) -> Result<(), String> {
        let position = match known {
            Some(p) => p,
            None => self.position().await.map_err(|e| e.to_string())?,
        };
        if last.as_ref() == Some(&position) {
            return Ok(());
        }
        let Some(bytes) = filter.snapshot(&self.encode(&position)) else {
            return Ok(());
        };
        let bytes = bytes::Bytes::from(bytes);
        let path = self.path.clone();
        let local = bytes.clone();
        tokio::task::spawn_blocking(move || crate::repo::write_atomic(&path, &local))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if let Some((store, key)) = &self.shared {
            // Parts of SHARED_UPLOAD_PART bytes: one PUT would be capped at 5 GB on S3 (a
            // filter of 1.4 * 10^9 blocks), and a failed request resends one part, not all of it.
            use tokio::io::AsyncWriteExt as _;
            let mut writer = object_store::buffered::BufWriter::with_capacity(
                Arc::clone(store),
                key.clone(),
                SHARED_UPLOAD_PART,
            );
            let written = match writer.put(bytes.clone()).await {
                Ok(()) => writer.shutdown().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = written {
                let _ = writer.abort().await;
                return Err(format!("object store: {e}"));
            }
        }
        tracing::info!(position = ?position, bytes = bytes.len(), shared = self.shared.is_some(), "presence filter snapshot written");
        *last = Some(position);
        Ok(())
    }
}
