//! The stores and pipelines a node runs on, opened from the repository's configuration, and the
//! adapters that hand them to the protocol crates.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;
use hydrant_blockstore::{Blockstore, CarBlockstore};
use hydrant_index::{BlockIndex, FjallIndex};
use hydrant_ingest::{IngestConfig, Ingester};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;

use crate::NodeError;
use crate::config::{Config, IndexConfig, StorageConfig};
use crate::repo::Repo;

/// Everything that serves and ingests blocks, shared by the daemon's tasks. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// The block index.
    pub index: Arc<dyn BlockIndex>,
    /// The object store holding CAR files.
    pub store: Arc<dyn ObjectStore>,
    /// Block reads over the index and the object store.
    pub blockstore: Arc<CarBlockstore>,
    /// The ingest pipeline.
    pub ingester: Arc<Ingester>,
}

impl Services {
    /// Opens the object store and the index named by the repository's configuration.
    ///
    /// # Errors
    /// [`NodeError::Storage`] or [`NodeError::Index`] when one cannot be opened (for the embedded
    /// index, also when another process holds it).
    pub fn open(repo: &Repo) -> Result<Self, NodeError> {
        let store: Arc<dyn ObjectStore> = match &repo.config.storage {
            StorageConfig::Local { path } => {
                let dir = repo.resolve(path);
                std::fs::create_dir_all(&dir).map_err(|e| NodeError::Storage {
                    what: dir.display().to_string(),
                    detail: e.to_string(),
                })?;
                Arc::new(LocalFileSystem::new_with_prefix(&dir).map_err(|e| {
                    NodeError::Storage {
                        what: dir.display().to_string(),
                        detail: e.to_string(),
                    }
                })?)
            }
        };
        let index: Arc<dyn BlockIndex> = match &repo.config.index {
            IndexConfig::Fjall { path } => {
                let dir = repo.resolve(path);
                Arc::new(FjallIndex::open(&dir).map_err(|e| NodeError::Index {
                    what: dir.display().to_string(),
                    detail: e.to_string(),
                })?)
            }
        };
        let read = &repo.config.read;
        let blockstore = Arc::new(CarBlockstore::new(
            index.clone(),
            store.clone(),
            hydrant_blockstore::ReadConfig {
                max_gap: read.max_gap_bytes,
                max_range: read.max_range_bytes,
                verify: read.verify,
            },
        ));
        let ingester = Arc::new(Ingester::new(
            store.clone(),
            index.clone(),
            IngestConfig::default(),
        ));
        Ok(Self {
            index,
            store,
            blockstore,
            ingester,
        })
    }

    /// The Bitswap server's configuration from `[bitswap]`.
    pub fn bitswap_config(&self, config: &Config) -> hydrant_bitswap::BitswapConfig {
        hydrant_bitswap::BitswapConfig {
            max_wantlist_entries_per_peer: config.bitswap.max_wantlist_entries,
            max_outstanding_bytes_per_peer: config.bitswap.max_outstanding_bytes_per_peer,
            ..Default::default()
        }
    }

    /// The trustless gateway's HTTP router over this node's blocks.
    pub fn gateway_router(&self, _config: &Config) -> axum::Router {
        hydrant_gateway::router(
            self.gateway_backend(),
            hydrant_gateway::GatewayConfig::default(),
        )
    }

    /// The blockstore seen through the gateway's backend trait (also used by `export`).
    pub fn gateway_backend(&self) -> Arc<dyn hydrant_gateway::GatewayBackend> {
        Arc::new(GatewayBlocks(self.blockstore.clone()))
    }
}

/// Adapts a [`Blockstore`] to [`hydrant_gateway::GatewayBackend`].
struct GatewayBlocks(Arc<CarBlockstore>);

fn backend_err(cid: &Cid, e: hydrant_blockstore::BlockstoreError) -> hydrant_gateway::BackendError {
    use hydrant_blockstore::BlockstoreError as E;
    tracing::warn!(error = %e, "block read failed");
    match e {
        E::Corrupt { .. } => hydrant_gateway::BackendError::Internal {
            cid: *cid,
            reason: e.to_string(),
        },
        _ => hydrant_gateway::BackendError::Unavailable {
            cid: *cid,
            reason: e.to_string(),
        },
    }
}

#[async_trait]
impl hydrant_gateway::GatewayBackend for GatewayBlocks {
    async fn get_block(&self, cid: &Cid) -> Result<Option<Bytes>, hydrant_gateway::BackendError> {
        self.0.get(cid).await.map_err(|e| backend_err(cid, e))
    }

    async fn get_blocks(
        &self,
        cids: &[Cid],
    ) -> Vec<Result<Option<Bytes>, hydrant_gateway::BackendError>> {
        self.0
            .get_many(cids)
            .await
            .into_iter()
            .zip(cids)
            .map(|(r, cid)| r.map_err(|e| backend_err(cid, e)))
            .collect()
    }
}
