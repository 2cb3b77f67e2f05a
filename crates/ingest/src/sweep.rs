//! Finding and removing what interrupted ingests left in the object store.
//!
//! A killed ingest (CLI or API) can leave, depending on when it died:
//! - a `staging/<id>.car` object (the upload finished, the rename did not happen);
//! - an object store temporary file: object_store's `LocalFileSystem` writes a put or a
//!   multipart upload to `<key>#<n>` (`n` decimal digits) and renames it to `<key>` when it
//!   completes; its `list` never returns such names, so they are found by walking the directory;
//! - a `cars/<blake3>.car` object with no CAR record in the index (renamed, never committed).
//!
//! [`Ingester::sweep`] removes all three, within the age rules of [`SweepConfig`]. On S3 an
//! interrupted multipart upload leaves parts that no listing of objects shows and that
//! object_store cannot enumerate; a bucket lifecycle rule (`AbortIncompleteMultipartUpload`)
//! removes them (README.md, DESIGN.md).

use std::path::{Path as FsPath, PathBuf};
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::{CARS_PREFIX, IngestError, Ingester, STAGING_PREFIX, storage_err};

/// Age past which a `staging/` object, a store temporary file or an index staging is taken for a
/// crashed ingest's leftover when other processes may be ingesting into the same store. An
/// ingest never starts its index commit later than this after its upload finished
/// ([`Ingester::ingest`] fails instead).
pub const STALE_STAGING: Duration = Duration::from_secs(3600);

/// Age past which a `cars/` object without a CAR record is removed when other processes may be
/// ingesting into the same store: far more than [`STALE_STAGING`], the longest an ingest may wait
/// between its upload and the start of its commit, so that a commit in progress is never raced.
pub const ORPHAN_AGE: Duration = Duration::from_secs(24 * 3600);

/// What [`Ingester::sweep`] may remove. Ages compare an object's last modification (local:
/// the file's mtime; S3: the server's `Last-Modified`) with this machine's clock when the sweep
/// starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepConfig {
    /// `staging/` objects and store temporary files at least this old are removed.
    pub staging_age: Duration,
    /// `cars/` objects at least this old with no CAR record in the index are removed; `None`
    /// leaves `cars/` alone (the index is not the only catalogue of the store).
    pub orphan_age: Option<Duration>,
    /// Root directory of a local object store, walked for its temporary files (`None` for S3).
    pub local_root: Option<PathBuf>,
}

impl SweepConfig {
    /// The rule for a node whose object store is the local directory `local_root` (`None`: an
    /// S3 bucket) and whose index is shared with other processes (`shared_index`: PostgreSQL) or
    /// held by this one alone (the embedded index, locked by its process).
    ///
    /// - Local directory and embedded index: this process is the only writer of both, and the
    ///   sweep runs before it starts ingesting, so everything is a leftover whatever its age.
    /// - Shared index: replicas may be ingesting right now, so only leftovers older than
    ///   [`STALE_STAGING`] (staging, temporaries) and [`ORPHAN_AGE`] (`cars/` without record)
    ///   go; the shared index is the catalogue of the shared store.
    /// - S3 with the embedded index: staging leftovers older than [`STALE_STAGING`]; `cars/` is
    ///   left alone, since the bucket may also hold CARs indexed by other nodes.
    pub fn for_store(local_root: Option<PathBuf>, shared_index: bool) -> Self {
        match (local_root, shared_index) {
            (Some(root), false) => Self {
                staging_age: Duration::ZERO,
                orphan_age: Some(Duration::ZERO),
                local_root: Some(root),
            },
            (local_root, true) => Self {
                staging_age: STALE_STAGING,
                orphan_age: Some(ORPHAN_AGE),
                local_root,
            },
            (None, false) => Self {
                staging_age: STALE_STAGING,
                orphan_age: None,
                local_root: None,
            },
        }
    }

    /// The rule of [`for_store`](Self::for_store) for a sweep that runs while ingests may run
    /// in this process too (a `gc` through a running daemon): leftovers younger than
    /// [`STALE_STAGING`] (staging, temporaries) or [`ORPHAN_AGE`] (`cars/` without a record)
    /// stay, so that an ingest between its upload and its commit is never raced.
    pub fn while_serving(local_root: Option<PathBuf>, shared_index: bool) -> Self {
        let local = local_root.is_some();
        let mut config = Self::for_store(local_root, true);
        if !local && !shared_index {
            config.orphan_age = None;
        }
        config
    }

    /// True when the sweep removes leftovers of any age, which is only safe while no ingest
    /// runs (before the node accepts any).
    pub fn removes_everything(&self) -> bool {
        self.staging_age.is_zero()
    }
}

/// What one [`Ingester::sweep`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// `staging/` objects removed.
    pub staging: usize,
    /// Object store temporary files (`<key>#<n>`) removed.
    pub temporaries: usize,
    /// `cars/` objects without a CAR record removed.
    pub orphans: usize,
    /// Bytes of everything removed.
    pub bytes: u64,
}

impl SweepReport {
    /// Objects and files removed, of every kind.
    pub fn removed(&self) -> usize {
        self.staging + self.temporaries + self.orphans
    }
}

impl Ingester {
    /// Removes what interrupted ingests left in the object store, under the rules of `config`:
    /// old `staging/` objects, old temporary files of a local store, and old `cars/` objects
    /// that the index has no CAR record for. A `cars/` object is removed only after a second
    /// look at the index, right before its deletion.
    ///
    /// # Errors
    /// [`IngestError::Storage`] when a listing or a directory walk fails, [`IngestError::Index`]
    /// when the index cannot answer; what was removed before the failure stays removed. A
    /// deletion that fails is logged and skipped.
    pub async fn sweep(&self, config: &SweepConfig) -> Result<SweepReport, IngestError> {
        let now = SystemTime::now();
        let mut report = SweepReport::default();

        let staging = Path::from(STAGING_PREFIX);
        for (path, size) in self.listed(&staging, now - config.staging_age).await? {
            if self.delete_quietly(&path).await {
                report.staging += 1;
                report.bytes += size;
            }
        }

        if let Some(root) = &config.local_root {
            let (root, cutoff) = (root.clone(), now - config.staging_age);
            let (count, bytes) = tokio::task::spawn_blocking(move || {
                remove_temporaries(&root, cutoff).map_err(|e| IngestError::Storage {
                    key: root.display().to_string(),
                    detail: e.to_string(),
                })
            })
            .await
            .map_err(|e| IngestError::Spill(e.into()))??;
            report.temporaries = count;
            report.bytes += bytes;
        }

        if let Some(age) = config.orphan_age {
            let (cars, cutoff) = (Path::from(CARS_PREFIX), now - age);
            for (path, size) in self.listed(&cars, cutoff).await? {
                let key = path.to_string();
                if self.index.car(&key).await?.is_some() {
                    continue;
                }
                // Since the listing, a commit may have landed or another ingest of the same
                // bytes may have renamed a fresh copy onto the key: look again just before.
                let _guard = self.commit_lock.lock().await;
                if self.index.car(&key).await?.is_some() || !self.still_old(&path, cutoff).await? {
                    continue;
                }
                if self.delete_quietly(&path).await {
                    tracing::info!(key = %key, bytes = size, "removed a CAR object that was never committed");
                    report.orphans += 1;
                    report.bytes += size;
                }
            }
        }
        Ok(report)
    }

    /// True when `path` exists and was last modified at or before `cutoff`.
    async fn still_old(&self, path: &Path, cutoff: SystemTime) -> Result<bool, IngestError> {
        match self.store.head(path).await {
            Ok(meta) => Ok(SystemTime::from(meta.last_modified) <= cutoff),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(storage_err(path, e)),
        }
    }

    /// Objects under `prefix` last modified at or before `cutoff`, with their sizes.
    async fn listed(
        &self,
        prefix: &Path,
        cutoff: SystemTime,
    ) -> Result<Vec<(Path, u64)>, IngestError> {
        self.store
            .list(Some(prefix))
            .try_filter(|meta| std::future::ready(SystemTime::from(meta.last_modified) <= cutoff))
            .map_ok(|meta| (meta.location, meta.size))
            .try_collect()
            .await
            .map_err(|e| storage_err(prefix, e))
    }
}

/// True for the names object_store's `LocalFileSystem` gives its in-progress files:
/// `<name>#<digits>`, exactly the names its `list` skips (`is_valid_file_path` in
/// object_store 0.14's `local.rs`), so that no listed object is ever taken for one.
pub fn is_store_temporary(file_name: &str) -> bool {
    match file_name.split_once('#') {
        Some((_, suffix)) => !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// Deletes the store temporary files under `root` modified at or before `cutoff`; returns how
/// many and their bytes. A file that vanished meanwhile (its upload completed) is skipped.
fn remove_temporaries(root: &FsPath, cutoff: SystemTime) -> std::io::Result<(usize, u64)> {
    let (mut count, mut bytes) = (0, 0);
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
                continue;
            }
            if !kind.is_file() || !entry.file_name().to_str().is_some_and(is_store_temporary) {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if meta.modified()? > cutoff {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::debug!(file = %entry.path().display(), bytes = meta.len(), "removed an object store temporary file");
                    count += 1;
                    bytes += meta.len();
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok((count, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_are_exactly_what_the_local_store_does_not_list() {
        for name in ["x.car#1", "x.car#0", "x.car#123"] {
            assert!(is_store_temporary(name), "{name}");
        }
        for name in ["x.car", "x.car#", "x.car#1a", "x#a#1", "#"] {
            assert!(!is_store_temporary(name), "{name}");
        }
    }

    #[test]
    fn only_a_local_store_with_the_embedded_index_sweeps_everything() {
        let local = Some(PathBuf::from("/r/objects"));
        assert!(SweepConfig::for_store(local.clone(), false).removes_everything());
        let shared = SweepConfig::for_store(local, true);
        assert!(!shared.removes_everything());
        assert_eq!(shared.orphan_age, Some(ORPHAN_AGE));
        assert_eq!(SweepConfig::for_store(None, false).orphan_age, None);
    }
}
