//! The stores and pipelines a node runs on, opened from the repository's configuration, and the
//! adapters that hand them to the protocol crates.

use std::sync::Arc;
use std::time::Duration;

use hydrant_blockstore::CarBlockstore;
use hydrant_index::filter::{FilteredIndex, PresenceFilter};
use hydrant_index::{BlockIndex, BlockLookup, CarCatalog, FjallIndex, IpniStore, PinStore};
use hydrant_ingest::{IngestConfig, Ingester};
use hydrant_pg::{PgIndex, PgPool, PoolConfig};
use object_store::ObjectStore;

use crate::NodeError;
use crate::config::{Config, IndexConfig, PostgresConfig};
use crate::repo::Repo;
use crate::stores::filter_snapshot::{Feed, SHARED_SNAPSHOT_PREFIX, SNAPSHOT_FILE, Snapshots};
use crate::stores::meters::{IndexStats, IngestStats, MeteredIndex};
use crate::stores::storage::{self, StoreStats};

/// Everything that serves and ingests blocks, shared by the daemon's tasks. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// Block lookups: the index, timed, behind the presence filter when `[filter]` is enabled.
    pub index: Arc<dyn BlockLookup>,
    /// The CAR catalogue of the index (records, staging), unfiltered.
    pub catalog: Arc<dyn CarCatalog>,
    /// The pins, in the index's database.
    pub pins: Arc<dyn PinStore>,
    /// Where the IPNI chain stands (head, advertised CARs), in the index's database.
    pub ipni_state: Arc<dyn IpniStore>,
    /// Counters of the IPNI publisher and announcers.
    pub ipni_stats: Arc<hydrant_ipni_publisher::PublisherStats>,
    /// The presence filter and its index wrapper (`None` when `[filter]` is disabled).
    pub filtered: Option<FilteredIndex>,
    /// The PostgreSQL index when `[index] kind = "postgres"` (for its commit feed and pool).
    pub pg: Option<PgIndex>,
    /// The embedded index when `[index] kind = "fjall"` (for its memory report).
    pub fjall: Option<FjallIndex>,
    /// The presence filter's snapshot in the repository (`None` when `[filter]` is disabled).
    pub snapshots: Option<Snapshots>,
    /// The object store holding CAR files (counted).
    pub store: Arc<dyn ObjectStore>,
    /// Request counters of `store`.
    pub store_stats: Arc<StoreStats>,
    /// Block reads over the index and the object store.
    pub blockstore: Arc<CarBlockstore>,
    /// The ingest pipeline.
    pub ingester: Arc<Ingester>,
    /// The memory budget shared by Bitswap, the gateway and the DHT (`[limits]`).
    pub budget: hydrant_budget::MemoryBudget,
    /// Latency of the lookups that reach the index (past the presence filter).
    pub index_stats: Arc<IndexStats>,
    /// Ingests through the API: results, failures, the ones running.
    pub ingest_stats: Arc<IngestStats>,
    /// Peers connected to the main (Bitswap) swarm, kept by the daemon's swarm loop.
    pub main_peers: crate::p2p::swarm::ConnectedPeers,
    /// The directory of a local object store (`None` for S3), for the sweep's rules.
    pub local_store: Option<std::path::PathBuf>,
    /// The denylists in force; [`Services::index`] already applies them.
    pub denylists: Arc<crate::stores::denylists::Denylists>,
}

impl Services {
    /// Opens the object store and the index named by the repository's configuration (for
    /// PostgreSQL: connects and applies migrations). The presence filter, when enabled, starts
    /// unbuilt (every lookup passes through); the daemon builds it.
    ///
    /// # Errors
    /// [`NodeError::Storage`] or [`NodeError::Index`] when one cannot be opened (for the embedded
    /// index, also when another process holds it).
    pub async fn open(repo: &Repo) -> Result<Self, NodeError> {
        let filter = &repo.config.filter;
        let metered = storage::open(repo)?;
        let store_stats = metered.stats();
        let store: Arc<dyn ObjectStore> = Arc::new(metered);
        #[allow(clippy::type_complexity)]
        let (catalog, pins, ipni_state, pg, feed, origin): (
            Arc<dyn BlockIndex>,
            Arc<dyn PinStore>,
            Arc<dyn IpniStore>,
            _,
            _,
            _,
        ) = match &repo.config.index {
            IndexConfig::Fjall {
                path,
                cache_bytes,
                max_open_files,
            } => {
                let dir = repo.resolve(path);
                let options = hydrant_index::FjallOptions {
                    cache_bytes: *cache_bytes,
                    max_open_files: *max_open_files,
                };
                let index = FjallIndex::open_with(&dir, options).map_err(|e| NodeError::Index {
                    what: dir.display().to_string(),
                    detail: e.to_string(),
                })?;
                let origin = dir.display().to_string();
                let pins = Arc::new(index.clone());
                (
                    Arc::new(index.clone()),
                    pins,
                    Arc::new(index.clone()),
                    None,
                    Feed::Fjall(index),
                    origin,
                )
            }
            IndexConfig::Postgres(config) => {
                let index = PgIndex::new(connect_pg(repo, config).await?);
                let origin = format!(
                    "{} schema {}",
                    crate::config::redact_password(&config.url),
                    config.schema
                );
                let feed = Feed::Pg(index.clone());
                let pins = Arc::new(index.clone());
                (
                    Arc::new(index.clone()),
                    pins,
                    Arc::new(index.clone()),
                    Some(index),
                    feed,
                    origin,
                )
            }
        };
        let fjall = match &feed {
            Feed::Fjall(index) => Some(index.clone()),
            Feed::Pg(_) => None,
        };
        // Replicas on one database share the store: they share the snapshot too.
        let shared = match &repo.config.index {
            IndexConfig::Postgres(config) => Some((
                store.clone(),
                object_store::path::Path::from(format!(
                    "{SHARED_SNAPSHOT_PREFIX}/{}.snapshot",
                    config.schema
                )),
            )),
            IndexConfig::Fjall { .. } => None,
        };
        let snapshots = filter.enabled.then(|| Snapshots {
            path: repo.dir.join(SNAPSHOT_FILE),
            feed,
            origin,
            interval: (filter.snapshot_interval_secs > 0)
                .then(|| Duration::from_secs(filter.snapshot_interval_secs)),
            shared,
        });
        // Timed under the filter: only the lookups that reach the index.
        let index_stats = Arc::new(IndexStats::default());
        let metered: Arc<dyn BlockLookup> =
            Arc::new(MeteredIndex::new(catalog.clone(), index_stats.clone()));
        let filtered = filter.enabled.then(|| {
            FilteredIndex::new(
                metered.clone(),
                catalog.clone(),
                Arc::new(PresenceFilter::new(hydrant_index::filter::FilterConfig {
                    expected_blocks: filter.expected_blocks,
                    false_positive_rate: filter.false_positive_rate,
                })),
            )
        });
        let index: Arc<dyn BlockLookup> = match &filtered {
            Some(f) => Arc::new(f.clone()),
            None => metered,
        };
        let denylists = Arc::new(
            crate::stores::denylists::Denylists::load(&repo.dir).map_err(NodeError::Denylist)?,
        );
        let index: Arc<dyn BlockLookup> = Arc::new(crate::stores::denylists::DenyingLookup {
            inner: index,
            lists: denylists.clone(),
        });
        let read = &repo.config.read;
        let blockstore = Arc::new(CarBlockstore::new(
            index.clone(),
            store.clone(),
            hydrant_blockstore::ReadConfig {
                max_gap: read.max_gap_bytes,
                max_range: repo.config.read_max_range_bytes(),
                verify: repo.config.read_verify(),
                cache_bytes: repo.config.read_cache_bytes(),
                concurrent_reads: repo.config.read_concurrent_reads(),
            },
        ));
        let mut ingester = Ingester::new(store.clone(), catalog.clone(), IngestConfig::default());
        if let Some(filtered) = &filtered {
            ingester = ingester.with_observer(Arc::new(filtered.clone()));
        }
        let ingester = Arc::new(ingester);
        Ok(Self {
            index,
            catalog,
            pins,
            ipni_state,
            ipni_stats: Arc::default(),
            filtered,
            fjall,
            pg,
            snapshots,
            store,
            store_stats,
            blockstore,
            ingester,
            budget: repo.config.limits.budget(),
            index_stats,
            ingest_stats: Arc::default(),
            main_peers: Arc::default(),
            denylists,
            local_store: match &repo.config.storage {
                crate::config::StorageConfig::Local { path } => Some(repo.resolve(path)),
                crate::config::StorageConfig::S3(_) => None,
            },
        })
    }

    /// The rules of a sweep of this node's store ([`SweepConfig::for_store`]; with `serving`,
    /// [`SweepConfig::while_serving`]: ingests may run meanwhile).
    pub fn sweep_config(&self, serving: bool) -> hydrant_ingest::SweepConfig {
        let (root, shared) = (self.local_store.clone(), self.pg.is_some());
        if serving {
            hydrant_ingest::SweepConfig::while_serving(root, shared)
        } else {
            hydrant_ingest::SweepConfig::for_store(root, shared)
        }
    }

    /// The Bitswap server's configuration from `[bitswap]`.
    pub fn bitswap_config(&self, config: &Config) -> hydrant_bitswap::BitswapConfig {
        hydrant_bitswap::BitswapConfig {
            max_wantlist_entries_per_peer: config.bitswap.max_wantlist_entries,
            max_outstanding_bytes_per_peer: config.bitswap.max_outstanding_bytes_per_peer,
            max_inbound_streams: config.bitswap.max_inbound_streams,
            max_inbound_streams_per_peer: config.bitswap.max_inbound_streams_per_peer,
            max_concurrent_lookups: config.bitswap.max_concurrent_lookups,
            inbound_idle_timeout: Duration::from_secs(config.bitswap.inbound_idle_timeout_secs),
            write_timeout: Duration::from_secs(config.bitswap.write_timeout_secs),
            outbound_idle_timeout: Duration::from_millis(config.bitswap.outbound_idle_timeout_ms),
            budget: self.budget.clone(),
            budget_wait: Duration::from_millis(config.limits.budget_wait_ms),
            ..Default::default()
        }
    }

    /// The trustless gateway's HTTP router over this node's blocks. A CAR stream reads ahead
    /// as many bytes as its request's share of the budget holds (`limits.gateway_request_bytes`,
    /// in blocks of the largest size it has seen): the share is then what the stream holds, and
    /// small blocks are still read many to a coalesced range.
    pub fn gateway_router(&self, config: &Config) -> axum::Router {
        hydrant_gateway::router(
            self.blockstore.clone(),
            hydrant_gateway::GatewayConfig {
                prefetch_bytes: Some(config.limits.gateway_request_bytes),
                ..Default::default()
            },
        )
    }
}

/// Connects the pool of `[index] kind = "postgres"` and applies migrations.
///
/// # Errors
/// [`NodeError::Index`] naming the database (never the password) and the reason.
pub async fn connect_pg(repo: &Repo, config: &PostgresConfig) -> Result<PgPool, NodeError> {
    let failed = |detail: String| NodeError::Index {
        what: format!("PostgreSQL (schema {})", config.schema),
        detail,
    };
    let mut url = config.url.clone();
    if !config.password_file.as_os_str().is_empty() {
        let path = repo.resolve(&config.password_file);
        crate::repo::warn_if_exposed(&path, "PostgreSQL password");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| failed(format!("password file {}: {e}", path.display())))?;
        let password = text.lines().next().unwrap_or_default();
        // Appended as a quoted key=value pair, which only the key=value form accepts.
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Err(failed(
                "password_file needs the key=value connection form (host=... user=... \
                 dbname=...), not a URL"
                    .into(),
            ));
        }
        let quoted = password.replace('\\', "\\\\").replace('\'', "\\'");
        url = format!("{url} password='{quoted}'");
    }
    let pool = PoolConfig {
        max_size: config.pool_size,
        schema: config.schema.clone(),
        wait_timeout: Duration::from_secs(config.wait_timeout_secs),
        connect_timeout: Duration::from_secs(config.connect_timeout_secs),
        statement_timeout: Some(Duration::from_secs(config.statement_timeout_secs)),
    };
    PgPool::connect(&url, &pool)
        .await
        .map_err(|e| failed(e.to_string()))
}
