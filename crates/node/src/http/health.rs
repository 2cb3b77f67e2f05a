//! Liveness and readiness (`GET /healthz`, `GET /readyz` on the API listener), and the worker
//! that builds the presence filter and keeps it current.
//!
//! Readiness is what a load balancer asks before sending a replica new connections. It is false
//! while the object store or the index does not answer, and from the moment the replica starts
//! draining. It does not wait for the presence filter: until the filter is built (a scan, when
//! no usable snapshot exists: minutes at 10^9 blocks) every lookup passes through to the index,
//! which is correct, only without the filter's shortcut for absent blocks; `filter_built` in the
//! answer (and the `hydrant_presence_filter_built` gauge) says when the shortcut is in place.
//! Backends are probed only when readiness is asked for, at most once per
//! [`READINESS_CACHE`], each probe bounded by [`PROBE_TIMEOUT`]: an idle replica nobody polls
//! makes no request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hydrant_index::filter::FilteredIndex;
use hydrant_pg::PgIndex;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;
use tokio::sync::watch;

use crate::stores::filter_snapshot::{Position, Snapshots};

/// How long one readiness answer is reused.
pub const READINESS_CACHE: Duration = Duration::from_secs(1);
/// Longest a backend probe may take before it counts as unreachable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Object key probed with a HEAD request; it need not exist (not found means reachable).
const PROBE_KEY: &str = "hydrant/readiness-probe";

/// A readiness answer, served as JSON by `GET /readyz` (200 when `ready`, else 503).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Readiness {
    /// True when every check below passes.
    pub ready: bool,
    /// The replica is shutting down.
    pub draining: bool,
    /// The presence filter is built (true when the filter is disabled). Not a condition of
    /// `ready`: lookups pass through to the index until it is.
    pub filter_built: bool,
    /// `"ok"`, or why the object store did not answer.
    pub object_store: String,
    /// `"ok"`, or why the index did not answer.
    pub index: String,
}

/// Shared health state of a daemon.
pub struct Health {
    draining: AtomicBool,
    store: Arc<dyn ObjectStore>,
    pg: Option<PgIndex>,
    filtered: Option<FilteredIndex>,
    last: tokio::sync::Mutex<Option<(Instant, Readiness)>>,
}

impl Health {
    /// Health over these backends (`pg`: the shared index, probed with `SELECT 1`).
    pub fn new(
        store: Arc<dyn ObjectStore>,
        pg: Option<PgIndex>,
        filtered: Option<FilteredIndex>,
    ) -> Self {
        Self {
            draining: AtomicBool::new(false),
            store,
            pg,
            filtered,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// Marks the replica as draining: readiness is false from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether [`start_draining`](Self::start_draining) was called.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// The current readiness (probing the backends unless an answer younger than
    /// [`READINESS_CACHE`] exists; concurrent callers share one probe).
    pub async fn readiness(&self) -> Readiness {
        let mut last = self.last.lock().await;
        let draining = self.is_draining();
        if let Some((at, answer)) = last.as_ref()
            && at.elapsed() < READINESS_CACHE
            && answer.draining == draining
        {
            return answer.clone();
        }
        let store = async {
            match tokio::time::timeout(PROBE_TIMEOUT, self.store.head(&Path::from(PROBE_KEY))).await
            {
                Ok(Ok(_) | Err(object_store::Error::NotFound { .. })) => "ok".to_owned(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {PROBE_TIMEOUT:?}"),
            }
        };
        let index = async {
            let Some(pg) = &self.pg else {
                return "ok".to_owned();
            };
            match tokio::time::timeout(PROBE_TIMEOUT, pg.ping()).await {
                Ok(Ok(())) => "ok".to_owned(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {PROBE_TIMEOUT:?}"),
            }
        };
        let (object_store, index) = tokio::join!(store, index);
        let filter_built = self
            .filtered
            .as_ref()
            .is_none_or(|f| f.filter().stats().built);
        let answer = Readiness {
            ready: !draining && object_store == "ok" && index == "ok",
            draining,
            filter_built,
            object_store,
            index,
        };
        *last = Some((Instant::now(), answer.clone()));
        answer
    }
}

/// Builds the presence filter, from its snapshot when `snapshots` has a usable one (see
/// [`crate::stores::filter_snapshot`]), else by scanning the index (retrying with backoff while
/// the index is unreachable); then every `poll` adds CARs committed by other replicas
/// (PostgreSQL commit feed) and rebuilds the filter larger when it fills. Runs until `stop` is
/// set, then writes the snapshot.
pub async fn run_filter(
    filtered: FilteredIndex,
    pg: Option<PgIndex>,
    poll: Duration,
    mut stop: watch::Receiver<bool>,
    snapshots: Option<Snapshots>,
) {
    let loaded = match &snapshots {
        Some(s) => s.load(filtered.filter()).await,
        None => None,
    };
    // A restored snapshot becomes current once the commits made since are added (PostgreSQL:
    // other replicas kept committing); until then every check answers "maybe".
    let mut saved = loaded.clone();
    let restored = match (loaded, &pg) {
        (Some(Position::Pg(mut position)), Some(pg)) => {
            let caught_up = follow_commits(&filtered, pg, &mut position).await;
            if let Err(e) = &caught_up {
                tracing::warn!(error = %e, "catching up from the presence filter snapshot failed; rebuilding");
            }
            filtered.filter().finish_restore(caught_up.is_ok());
            caught_up.is_ok().then_some(Some(position))
        }
        (Some(Position::Fjall(..)), None) => {
            filtered.filter().finish_restore(true);
            Some(None)
        }
        (Some(_), _) => {
            filtered.filter().finish_restore(false);
            None
        }
        (None, _) => None,
    };
    let mut backoff = Duration::from_millis(500);
    // The feed position is taken before the scan: commits during the scan are polled again.
    let mut cursor = match restored {
        Some(cursor) => cursor,
        None => loop {
            let cursor = match &pg {
                Some(pg) => pg.last_commit().await.map(Some),
                None => Ok(None),
            };
            let built = match cursor {
                Ok(cursor) => filtered.rebuild().await.map(|n| (cursor, n)),
                Err(e) => Err(e),
            };
            match built {
                Ok((cursor, blocks)) => {
                    tracing::info!(blocks, "presence filter built");
                    break cursor;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "building the presence filter failed")
                }
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        },
    };
    let mut failing = false;
    let snapshot_every = snapshots.as_ref().and_then(|s| s.interval);
    let mut next_snapshot = snapshot_every.map(|every| Instant::now() + every);
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tick.tick() => {}
        }
        let mut result = Ok(());
        if let (Some(pg), Some(position)) = (&pg, cursor.as_mut()) {
            result = follow_commits(&filtered, pg, position).await;
        }
        if result.is_ok() && filtered.filter().needs_rebuild() {
            result = filtered.rebuild().await.map(|blocks| {
                tracing::info!(blocks, "presence filter rebuilt larger");
            });
        }
        match result {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("presence filter refresh works again");
            }
            Ok(()) => {}
            // Warn once per outage; the index's own errors are visible in readiness.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "presence filter refresh failed; retrying");
            }
            Err(e) => tracing::debug!(error = %e, "presence filter refresh failed"),
        }
        if let (Some(snapshots), Some(at), Some(every)) =
            (&snapshots, next_snapshot, snapshot_every)
            && Instant::now() >= at
        {
            next_snapshot = Some(Instant::now() + every);
            save_snapshot(snapshots, &filtered, cursor, &mut saved).await;
        }
    }
    if let Some(snapshots) = &snapshots {
        save_snapshot(snapshots, &filtered, cursor, &mut saved).await;
    }
}

/// Writes the filter's snapshot unless the index is where the last one said. With PostgreSQL
/// the filter holds the commits up to the feed's `cursor` (the database may be further on); with
/// fjall, the index's position is read first.
async fn save_snapshot(
    snapshots: &Snapshots,
    filtered: &FilteredIndex,
    cursor: Option<i64>,
    saved: &mut Option<Position>,
) {
    if let Err(e) = snapshots
        .save(filtered.filter(), cursor.map(Position::Pg), saved)
        .await
    {
        tracing::warn!(error = %e, "writing the presence filter snapshot failed; the next start rebuilds");
    }
}

/// Adds every CAR committed after `position` to the filter, advancing `position` past each.
async fn follow_commits(
    filtered: &FilteredIndex,
    pg: &PgIndex,
    position: &mut i64,
) -> Result<(), hydrant_index::IndexError> {
    loop {
        let commits = pg
            .commits_after(*position, hydrant_index::MAX_LIST_CARS)
            .await?;
        if commits.is_empty() {
            return Ok(());
        }
        for (seq, key) in commits {
            let blocks = filtered.add_committed_car(&key).await?;
            tracing::debug!(car = %key, blocks, "CAR committed elsewhere added to the presence filter");
            *position = seq;
        }
    }
}

#[cfg(test)]
mod tests {
    use hydrant_index::FjallIndex;
    use hydrant_index::filter::{FilterConfig, PresenceFilter};

    use super::*;

    /// A replica whose presence filter is still being built (no usable snapshot: a scan) is
    /// ready, since its lookups pass through to the index; it says the filter is not built.
    /// Draining still makes it unready.
    #[tokio::test]
    async fn readiness_does_not_wait_for_the_presence_filter() {
        let dir = tempfile::tempdir().unwrap();
        let index = FjallIndex::open(dir.path()).unwrap();
        let filtered = FilteredIndex::new(
            Arc::new(index.clone()),
            Arc::new(index),
            Arc::new(PresenceFilter::new(FilterConfig::default())),
        );
        let store = Arc::new(object_store::memory::InMemory::new());
        let health = Health::new(store, None, Some(filtered.clone()));
        let answer = health.readiness().await;
        assert!(answer.ready && !answer.filter_built, "{answer:?}");

        filtered.rebuild().await.unwrap();
        health.start_draining();
        let answer = health.readiness().await;
        assert!(!answer.ready && answer.draining, "{answer:?}");
    }
}
