//! The Hydrant node: configuration, repository, identity, the libp2p swarm, and the wiring of the
//! stores (object store, block index) to the servers (Bitswap, trustless gateway, API).
//!
//! The crate has three floors, each a private module; a floor uses the ones below it, never one
//! above:
//!
//! | floor | holds |
//! | --- | --- |
//! | `stores` | the object store, the index meters, [`Services`] (every store and the ingest pipeline, opened from the configuration), `export` |
//! | `p2p` | the libp2p swarm, the DHT heads and provider store, the Delegated Routing answers |
//! | `http` | both HTTP listeners: the middleware, the admin API and its one error type, metrics, memory report and shedding, health, slow-client limits |
//!
//! with [`config`], [`repo`] (repository, identity, [`DaemonInfo`]) under them all and
//! [`daemon`] on top, which starts the floors in order.
//!
//! Public surface (for `hydrant-cli` and the tests): [`Repo`], [`Config`](config::Config),
//! [`Services`], [`run`] with [`Overrides`], [`DaemonInfo`], [`car_stream`], [`ApiToken`],
//! [`ProcessMemory`], and for the DHT tests the swarm pieces in [`p2p_testing`].

pub mod config;
pub mod daemon;
pub mod descriptors;
mod http;
mod p2p;
pub mod repo;
mod stores;

pub use daemon::{Overrides, run};
pub use http::memory::ProcessMemory;
pub use http::state::ApiToken;
pub use p2p::pubsub::{
    DropReason, Ended, PubSub, PubSubError, PubSubMessage, PubSubStats, Subscription,
};
pub use p2p::swarm::SwarmError;
pub use repo::{API_FILE, DaemonInfo, Repo, RepoError};
pub use stores::delete::{DeleteError, GcReport, delete_car, gc};
pub use stores::export::car_stream;
pub use stores::filter_snapshot::SHARED_UPLOAD_PART;
pub use stores::pins::{PinError, PinView, pin_dag, pin_ingested, pin_roots, with_pinned_roots};
pub use stores::services::Services;
pub use stores::spill::CarSpill;

/// Parsers of outside bytes that live in this crate, for the fuzz targets (`fuzz/`).
pub mod fuzzing {
    pub use crate::http::kubo::pubsub::{decode_arg as pubsub_decode_arg, multibase};
}

/// The swarm pieces the node's DHT tests drive directly (a bare swarm with the node's
/// transports, and the loop that runs it). Not for production callers.
pub mod p2p_testing {
    pub use crate::p2p::swarm::{SwarmLoop, build, drive_swarm};
}

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

/// Errors of the node as a whole. Each carries what failed and where.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The repository could not be opened or created.
    #[error(transparent)]
    Repo(#[from] repo::RepoError),
    /// A configuration value is refused.
    #[error(transparent)]
    Config(config::ConfigError),
    /// The object store could not be opened.
    #[error("object store {what}: {detail}")]
    Storage {
        /// Which store.
        what: String,
        /// Why.
        detail: String,
    },
    /// The block index could not be opened.
    #[error("block index {what}: {detail} (is another hydrant process using this repository?)")]
    Index {
        /// Which index.
        what: String,
        /// Why.
        detail: String,
    },
    /// The swarm could not be built or could not listen.
    #[error(transparent)]
    Swarm(#[from] p2p::swarm::SwarmError),
    /// The Bitswap server could not be started.
    #[error("Bitswap: {0}")]
    Bitswap(#[from] hydrant_bitswap::BitswapError),
    /// The DHT could not be started.
    #[error("DHT: {0}")]
    Dht(String),
    /// GossipSub could not be set up.
    #[error("pubsub: {0}")]
    PubSub(String),
    /// A denylist (`denylists/*.deny`) cannot be read or does not parse: the message names the
    /// file and line.
    #[error("denylist {0}")]
    Denylist(String),
    /// The file descriptor limit is below what the connection limits may need.
    #[error("{0}")]
    Descriptors(String),
    /// An HTTP listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Locks `m`, taking the value of a poisoned lock as it is (every critical section here leaves
/// the value consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
