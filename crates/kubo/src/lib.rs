//! Read-only access to a Kubo (go-ipfs) repository, for `hydrant import-kubo` (issue 19,
//! item 4): what a Kubo 0.18+ repository holds and how it is laid out on disk.
//!
//! - [`KuboRepo::open`] checks `version` (repo versions [`MIN_REPO_VERSION`] to
//!   [`MAX_REPO_VERSION`]: Kubo 0.18 to 0.38 and later releases that kept version 18),
//!   `datastore_spec` (Kubo's default: flatfs under `/blocks`, LevelDB under `/`) and that no
//!   live Kubo holds `repo.lock`;
//! - [`flatfs`]: the blockstore under `blocks/` (`SHARDING`, `<base32 multihash>.data` files);
//! - [`pins`]: go-ipfs-pinner's `dspinner` records (`/pins/pin/<id>` → CBOR), read from a copy
//!   of the LevelDB datastore (opening LevelDB replays its log and rewrites its manifest, so the
//!   original is never opened).
//!
//! Nothing here writes under the repository.

pub mod flatfs;
pub mod pins;
mod repo;

pub use flatfs::{BlockFile, Shard};
pub use pins::{KuboPin, PinMode};
pub use repo::{KuboError, KuboRepo, MAX_REPO_VERSION, MIN_REPO_VERSION};
