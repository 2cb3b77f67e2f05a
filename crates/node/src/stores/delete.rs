//! Deleting CARs and garbage collection (issue 17, item 2).
//!
//! A CAR can be deleted when none of its roots is pinned ([`crate::stores::pins`]); `gc`
//! deletes every such CAR, then sweeps the store of objects no record points at.
//!
//! Order, for crash safety: the index first ([`CarCatalog::delete_car`]: the record and every
//! row go at once, durably), the object after. A kill between the two leaves an object that no
//! row points at, never a row pointing at a missing object; the next sweep (at start-up, or
//! `gc`) removes it. After the index step, blocks held only by the deleted CAR are absent
//! everywhere: Bitswap answers DONT_HAVE, the gateway 404, the DHT and the Delegated Routing
//! API no longer name this node, and the reprovider no longer announces them (they all ask the
//! index). The read cache is emptied, so no cached copy is served. The presence filter keeps
//! the deleted blocks as false positives, which cost one index lookup and never a storage
//! request.
//!
//! [`CarCatalog::delete_car`]: hydrant_index::CarCatalog::delete_car

use cid::Cid;
use hydrant_index::{CarRecord, IndexError, MAX_LIST_CARS};
use hydrant_ingest::{SweepConfig, SweepReport};
use object_store::ObjectStoreExt as _;

use crate::stores::services::Services;

/// Why a CAR was not deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// No CAR is committed under this key.
    #[error("no CAR is stored under {0:?}")]
    NotFound(String),
    /// A root of the CAR is pinned: unpin it first.
    #[error("{key} is kept: its root {root} is pinned (unpin it first)")]
    Pinned {
        /// The CAR's key.
        key: String,
        /// The pinned root.
        root: Cid,
    },
    /// The index or the pin store failed (nothing was deleted).
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The sweep after a `gc` failed (the CARs before it stay deleted).
    #[error("sweeping the store: {0}")]
    Sweep(String),
}

/// The first pinned root of `record`, if any.
async fn pinned_root(services: &Services, record: &CarRecord) -> Result<Option<Cid>, IndexError> {
    for root in &record.roots {
        let Ok(cid) = root.parse::<Cid>() else {
            continue;
        };
        if services.pins.pin(&cid).await?.is_some() {
            return Ok(Some(cid));
        }
    }
    Ok(None)
}

/// Deletes the CAR stored under `key` (index, then object; see the module docs) unless one of
/// its roots is pinned; returns its record.
///
/// # Errors
/// [`DeleteError::NotFound`], [`DeleteError::Pinned`] (nothing changes), [`DeleteError::Index`]
/// when the index step fails (nothing changes). A failure to remove the object is only logged:
/// the CAR is deleted from the index, and the next sweep removes the object.
pub async fn delete_car(services: &Services, key: &str) -> Result<CarRecord, DeleteError> {
    let record = services
        .catalog
        .car(key)
        .await?
        .ok_or_else(|| DeleteError::NotFound(key.to_owned()))?;
    if let Some(root) = pinned_root(services, &record).await? {
        return Err(DeleteError::Pinned {
            key: key.to_owned(),
            root,
        });
    }
    let record = services
        .catalog
        .delete_car(key)
        .await?
        .ok_or_else(|| DeleteError::NotFound(key.to_owned()))?;
    services.blockstore.clear_cache();
    if let Err(e) = services
        .store
        .delete(&object_store::path::Path::from(key))
        .await
    {
        tracing::warn!(car = %key, error = %e, "the CAR left the index but its object could not be removed; the next sweep removes it");
    }
    tracing::info!(car = %key, blocks = record.blocks, bytes = record.size, "CAR deleted");
    Ok(record)
}

/// What one [`gc`] did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct GcReport {
    /// The CARs deleted (none of their roots was pinned).
    pub deleted: Vec<CarRecord>,
    /// Bytes of the CARs deleted.
    pub bytes: u64,
    /// What the sweep after them removed (objects without a record, leftovers of interrupted
    /// ingests).
    pub sweep: SweepReport,
}

/// Deletes every CAR none of whose roots is pinned, then sweeps the store under `sweep`'s
/// rules. CARs are visited in key order, a page of [`MAX_LIST_CARS`] at a time; one pinned
/// meanwhile is kept.
///
/// A pin keeps the CARs that hold its root; blocks of its DAG stored only in other CARs (whose
/// own roots are not pinned) are not protected.
///
/// # Errors
/// [`DeleteError::Index`] or [`DeleteError::Sweep`]; what was deleted before stays deleted.
pub async fn gc(services: &Services, sweep: &SweepConfig) -> Result<GcReport, DeleteError> {
    let mut report = GcReport::default();
    let mut after: Option<String> = None;
    loop {
        let page = services
            .catalog
            .list_cars(after.as_deref(), MAX_LIST_CARS)
            .await?;
        let full = page.len() == MAX_LIST_CARS;
        after = page.last().map(|r| r.key.clone());
        for record in page {
            if pinned_root(services, &record).await?.is_some() {
                continue;
            }
            match delete_car(services, &record.key).await {
                Ok(deleted) => {
                    report.bytes += deleted.size;
                    report.deleted.push(deleted);
                }
                Err(DeleteError::Pinned { .. } | DeleteError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if !full {
            break;
        }
    }
    report.sweep = services
        .ingester
        .sweep(sweep)
        .await
        .map_err(|e| DeleteError::Sweep(e.to_string()))?;
    Ok(report)
}

/// Empties the read cache whenever another replica deletes a CAR (PostgreSQL's deletion
/// counter moved), every `poll`, until `stop`: no replica keeps serving a cached block of a
/// deleted CAR for longer than `poll` plus a query.
pub(crate) async fn follow_deletions(
    services: Services,
    pg: hydrant_pg::PgIndex,
    poll: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut seen: Option<i64> = None;
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        match pg.deletions().await {
            Ok(now) => {
                if seen.is_some_and(|before| before != now) {
                    services.blockstore.clear_cache();
                    tracing::info!("CARs were deleted: read cache emptied");
                }
                seen = Some(now);
            }
            Err(e) => tracing::debug!(error = %e, "polling the deletion counter failed"),
        }
    }
}

/// Runs [`gc`] every `every` (`[gc] interval_secs`), the first time `every` after start-up,
/// until `drain`; each run is logged with what it removed.
pub(crate) async fn periodic_gc(
    services: Services,
    every: std::time::Duration,
    mut drain: tokio::sync::watch::Receiver<bool>,
) {
    let sweep = services.sweep_config(true);
    loop {
        tokio::select! {
            _ = drain.wait_for(|d| *d) => return,
            () = tokio::time::sleep(every) => {}
        }
        match gc(&services, &sweep).await {
            Ok(report) => tracing::info!(
                cars = report.deleted.len(),
                bytes = report.bytes,
                swept = report.sweep.removed(),
                "periodic garbage collection done"
            ),
            Err(e) => tracing::warn!(error = %e, "periodic garbage collection failed"),
        }
    }
}
