//! Pins at the node (issue 16, item 4): a pin is a root CID whose whole DAG Hydrant keeps
//! (Kubo's recursive pin), recorded in the index database ([`hydrant_index::PinStore`]).
//!
//! - [`pin_dag`] (`hydrant pin add`, `POST /api/v1/pins/{cid}`) first walks the DAG in the
//!   store and refuses, naming the first missing block, a DAG that is not complete.
//! - [`pin_roots`] pins the roots of an ingested CAR without a walk: a CAR may hold part of a
//!   DAG (a trustless gateway's partial CAR), and refusing those would refuse their ingest.
//!
//! Garbage collection of unpinned CARs is the next issue's; pins are only recorded here.

use std::time::{SystemTime, UNIX_EPOCH};

use cid::Cid;
use futures::TryStreamExt as _;
use hydrant_gateway::CarStreamError;
use hydrant_index::{IndexError, MAX_PIN_NAME_BYTES, Pin};

use crate::stores::services::Services;

/// Why a pin could not be added.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The name is longer than [`MAX_PIN_NAME_BYTES`] (its length in bytes).
    #[error("pin name of {0} bytes is longer than {MAX_PIN_NAME_BYTES}")]
    NameTooLong(usize),
    /// A block of the DAG is not in the store (the first one met, depth first).
    #[error("cannot pin {root}: block {missing} of its DAG is not in the store")]
    Incomplete {
        /// The root asked for.
        root: Cid,
        /// The first missing block.
        missing: Cid,
    },
    /// A block of the DAG could not be decoded or walked.
    #[error("cannot pin {root}: {detail}")]
    Walk {
        /// The root asked for.
        root: Cid,
        /// What failed.
        detail: String,
    },
    /// A root of an ingested CAR is not a CID (the ingest checked it: not expected).
    #[error("cannot pin root {0:?}: not a CID")]
    InvalidRoot(String),
    /// The index or the object store failed.
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// Pins `root` with `name` once its whole DAG is found in the store; returns whether the pin is
/// new (pinning again only renames). Every block of the DAG is read once (depth first, as
/// `hydrant export` reads it), so the time grows with the DAG.
///
/// # Errors
/// [`PinError::NameTooLong`]; [`PinError::Incomplete`] naming the first missing block;
/// [`PinError::Walk`] when a block does not decode or the store fails; [`PinError::Index`].
/// Nothing is pinned on error.
pub async fn pin_dag(services: &Services, root: Cid, name: String) -> Result<bool, PinError> {
    check_name(&name)?;
    let mut blocks = std::pin::pin!(crate::stores::export::car_stream(services, root));
    loop {
        match blocks.try_next().await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(CarStreamError::MissingBlock { cid }) => {
                return Err(PinError::Incomplete { root, missing: cid });
            }
            Err(e) => {
                return Err(PinError::Walk {
                    root,
                    detail: e.to_string(),
                });
            }
        }
    }
    Ok(services.pins.add_pin(&new_pin(root, name)).await?)
}

/// Pins `root` with `name` without walking its DAG, for a caller that has just ingested the
/// whole DAG itself (`hydrant import-kubo` walks it in the Kubo repository, verifying every
/// block, before writing its CAR); returns whether the pin is new.
///
/// # Errors
/// [`PinError::NameTooLong`]; [`PinError::Index`].
pub async fn pin_ingested(services: &Services, root: Cid, name: String) -> Result<bool, PinError> {
    check_name(&name)?;
    Ok(services.pins.add_pin(&new_pin(root, name)).await?)
}

/// Pins the roots of an ingested CAR (strings as in its header), unnamed, without walking
/// their DAGs (see the module docs); returns them as CIDs.
///
/// # Errors
/// [`PinError::InvalidRoot`]; [`PinError::Index`] (the roots pinned before it stay pinned).
pub async fn pin_roots(services: &Services, roots: &[String]) -> Result<Vec<Cid>, PinError> {
    let mut pinned = Vec::with_capacity(roots.len());
    for root in roots {
        let cid: Cid = root
            .parse()
            .map_err(|_| PinError::InvalidRoot(root.clone()))?;
        services.pins.add_pin(&new_pin(cid, String::new())).await?;
        pinned.push(cid);
    }
    Ok(pinned)
}

/// An ingest's answer, as the API and the CLI give it: the summary's fields plus `pinned`, the
/// roots [`pin_roots`] pinned (none when `pin` is false).
///
/// # Errors
/// As [`pin_roots`] (the CAR stays stored and indexed).
pub async fn with_pinned_roots(
    services: &Services,
    summary: &hydrant_ingest::IngestSummary,
    pin: bool,
) -> Result<serde_json::Value, PinError> {
    let pinned = if pin {
        pin_roots(services, &summary.roots).await?
    } else {
        Vec::new()
    };
    let mut body = serde_json::to_value(summary).unwrap_or_default();
    body["pinned"] = serde_json::json!(pinned.iter().map(ToString::to_string).collect::<Vec<_>>());
    Ok(body)
}

fn check_name(name: &str) -> Result<(), PinError> {
    if name.len() > MAX_PIN_NAME_BYTES {
        return Err(PinError::NameTooLong(name.len()));
    }
    Ok(())
}

fn new_pin(cid: Cid, name: String) -> Pin {
    Pin {
        cid,
        name,
        created_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    }
}

/// A pin as the API and `hydrant pin ls --json` show it: `{"cid", "name", "created_at"}`
/// (seconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PinView {
    /// The pinned root, in its own encoding (a CIDv0 stays `Qm...`).
    pub cid: String,
    /// The name, empty when none.
    pub name: String,
    /// When first pinned, seconds since the Unix epoch.
    pub created_at: u64,
}

impl From<&Pin> for PinView {
    fn from(pin: &Pin) -> Self {
        Self {
            cid: pin.cid.to_string(),
            name: pin.name.clone(),
            created_at: pin.created_at,
        }
    }
}
