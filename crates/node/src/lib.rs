//! The Hydrant node: configuration, repository, identity, the libp2p swarm, and the wiring of the
//! stores (object store, block index) to the servers (Bitswap, trustless gateway, API).
//!
//! Public API:
//! - [`repo::Repo`]: `init` and `open` a repository (config + Ed25519 identity);
//! - [`config::Config`]: the documented `config.toml`, with [`config::Config::validate`];
//! - [`services::Services`]: opened stores and the ingest pipeline, for the daemon and the CLI;
//! - [`daemon::run`]: runs the daemon until a shutdown future completes;
//! - [`export::export_car`]: writes a CARv1 of a DAG from the local store;
//! - [`storage`]: the object store of `[storage]` (local or S3), with request counters;
//! - [`health`]: liveness, readiness, draining, and the presence-filter worker;
//! - [`http`]: request IDs, spans, timeouts and metrics around both HTTP listeners;
//! - [`meters`]: index lookup latency and ingest progress, for [`metrics`];
//! - [`dht::start`]: the DHT heads, provider store and announcer; [`routing::NodeRouter`]: the
//!   Delegated Routing V1 answers.

pub mod api;
mod api_error;
mod api_state;
pub mod config;
pub mod daemon;
pub mod dht;
pub mod export;
pub mod health;
pub mod http;
pub mod memory;
pub mod meters;
pub mod metrics;
pub mod repo;
pub mod routing;
pub mod services;
pub mod slow_clients;
pub mod storage;
#[allow(missing_docs)] // the NetworkBehaviour derive generates an undocumented event enum
pub mod swarm;

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
    Swarm(#[from] swarm::SwarmError),
    /// The Bitswap server could not be started.
    #[error("Bitswap: {0}")]
    Bitswap(#[from] hydrant_bitswap::BitswapError),
    /// The DHT could not be started.
    #[error("DHT: {0}")]
    Dht(String),
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
