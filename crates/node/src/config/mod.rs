//! `config.toml`: every field documented, human-readable, unknown fields refused.
//!
//! The file written by `hydrant init` ([`DEFAULT_CONFIG`]) lists every field with its default and
//! its meaning; a missing field takes the default. Values are validated by [`Config::validate`]
//! at start-up, which explains every refused value.

mod ipni;
mod network;
mod pubsub;
mod stores;
#[cfg(test)]
mod tests;
mod validate;

pub use ipni::*;
pub use network::*;
pub use pubsub::*;
pub use stores::*;

use serde::{Deserialize, Serialize};

/// The documented default configuration, written by `hydrant init`.
pub const DEFAULT_CONFIG: &str = include_str!("default_config.toml");

/// The whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// libp2p: listen addresses and connection handling.
    pub swarm: SwarmConfig,
    /// The trustless HTTP gateway.
    pub gateway: GatewayConfig,
    /// The admin/ingest HTTP API.
    pub api: ApiConfig,
    /// Where CAR files are stored.
    pub storage: StorageConfig,
    /// Where the block index lives.
    pub index: IndexConfig,
    /// How blocks are read from stored CARs.
    pub read: ReadConfig,
    /// The Bitswap server.
    pub bitswap: BitswapConfig,
    /// The Kademlia DHT heads and client.
    pub dht: DhtConfig,
    /// The provider-record store shared by the heads.
    pub providers: ProvidersConfig,
    /// The in-memory presence filter in front of the index.
    pub filter: FilterConfig,
    /// Graceful shutdown (SIGTERM / Ctrl-C).
    pub shutdown: ShutdownConfig,
    /// Periodic garbage collection of unpinned CARs.
    pub gc: GcConfig,
    /// Denylists (IPIP-383 `.deny` files) and where to fetch them.
    pub denylist: DenylistConfig,
    /// The memory budget shared by Bitswap, the gateway and the DHT.
    pub limits: LimitsConfig,
    /// IPNI publishing and announcements.
    pub ipni: IpniConfig,
    /// GossipSub and Kubo's RPC pub/sub calls.
    pub pubsub: PubSubConfig,
}

/// `[limits]`: one memory budget for the data held on behalf of remote peers (Bitswap messages
/// being read, wantlists, blocks being sent, gateway responses, DHT requests). When it is full,
/// new work is refused explicitly: Bitswap streams are reset and wants dropped unanswered (the
/// peer re-sends them; a stored block is never answered DONT_HAVE), the gateway answers 503 with
/// `Retry-After`, DHT streams are reset. Caches (`read.cache_bytes`, the presence filter) are
/// sized on their own and not part of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// The budget, in bytes. At least 16 MiB (one 4 MiB Bitswap message being decoded plus one
    /// 2 MiB block being sent, with room for the gateway); default 512 MiB.
    pub memory_budget_bytes: u64,
    /// Percent of the budget that Bitswap wantlists may take together (320 bytes per want), so
    /// that wants cannot crowd out the blocks that answer them. The share is also kept for them,
    /// so lookups filling the rest never shed wants. 1 to 90, leaving at least
    /// [`Self::MIN_UNRESERVED`]; default 25.
    pub wantlists_percent: u8,
    /// Bytes reserved per gateway request while it is answered (at least one 2 MiB block, at
    /// most half of what the wantlists' share leaves); default 4 MiB.
    pub gateway_request_bytes: u64,
    /// Milliseconds a Bitswap stream waits for budget for its next message before it is reset;
    /// default 1000.
    pub budget_wait_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            memory_budget_bytes: 512 * 1024 * 1024,
            wantlists_percent: 25,
            gateway_request_bytes: 4 * 1024 * 1024,
            budget_wait_ms: 1000,
        }
    }
}

impl LimitsConfig {
    /// The least budget that serves anything, in bytes.
    pub const MIN_MEMORY_BUDGET: u64 = 16 * 1024 * 1024;

    /// The least part of the budget left to the other holders once the wantlists' share is
    /// kept, in bytes: one 4 MiB Bitswap message being read (charged twice) and one 2 MiB block
    /// being sent.
    pub const MIN_UNRESERVED: u64 = 12 * 1024 * 1024;

    /// The wantlists' share of the budget, in bytes (`wantlists_percent` of it).
    pub fn wantlists_share(&self) -> u64 {
        self.memory_budget_bytes / 100 * u64::from(self.wantlists_percent)
    }

    /// The budget these settings describe: the wantlists' share is both their cap and a
    /// reservation, so lookups filling the rest never shed wants.
    pub fn budget(&self) -> hydrant_budget::MemoryBudget {
        use hydrant_budget::Holder::BitswapWantlists;
        let budget = hydrant_budget::MemoryBudget::new(self.memory_budget_bytes);
        budget.set_cap(BitswapWantlists, self.wantlists_share());
        budget.set_reserved(BitswapWantlists, self.wantlists_share());
        budget
    }
}

/// File descriptors set aside beyond the connection limits and the embedded databases' files,
/// for everything else the process opens: listening sockets, stored CARs being read, database
/// and S3 connections, the runtime's own.
pub const DESCRIPTOR_RESERVE: u64 = 256;
/// Longest accepted `*_timeout_secs` of HTTP requests and SQL statements, in seconds.
pub const MAX_TIMEOUT_SECS: u64 = 3600;

/// A refused configuration value, with the reason and the accepted range.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("config: {field} = {value} is refused: {reason}")]
pub struct ConfigError {
    /// Dotted field name, e.g. `read.max_range_bytes`.
    pub field: &'static str,
    /// The refused value as written.
    pub value: String,
    /// Why, and what would be accepted.
    pub reason: String,
}

impl Config {
    /// File descriptors the configured limits may hold at once, term by term (what sets each,
    /// and the count): every libp2p swarm (the main one and one per DHT head) up to
    /// `swarm.max_connections`, each HTTP listener up to its `max_connections`, the files each
    /// embedded fjall database keeps open, and [`DESCRIPTOR_RESERVE`]. Their sum must fit under
    /// the process's descriptor limit.
    pub fn descriptors_needed(&self) -> Vec<(String, u64)> {
        let heads = if self.dht.enabled { self.dht.heads } else { 0 };
        let mut terms = vec![
            (
                format!(
                    "swarm.max_connections x (1 + dht.heads) = {} x {}",
                    self.swarm.max_connections,
                    1 + heads
                ),
                u64::from(self.swarm.max_connections) * u64::from(1 + heads),
            ),
            (
                "gateway.max_connections".into(),
                u64::from(self.gateway.max_connections),
            ),
            (
                "api.max_connections".into(),
                u64::from(self.api.max_connections),
            ),
        ];
        if let IndexConfig::Fjall { max_open_files, .. } = self.index {
            terms.push(("index.max_open_files".into(), max_open_files as u64));
        }
        if self.providers.kind == "fjall" {
            let files = hydrant_providers::FJALL_MAX_OPEN_FILES as u64;
            terms.push(("provider store files".into(), files));
        }
        terms.push((
            "sockets and files of storage, database and runtime".into(),
            DESCRIPTOR_RESERVE,
        ));
        terms
    }

    /// Bytes of the read cache: `read.cache_bytes` when set, else by storage kind: none for
    /// `local` (the OS page cache already holds recently read CAR bytes, and a second copy in
    /// the process would only double the memory; a miss costs a `pread` and a re-hash), and
    /// [`S3_READ_CACHE_BYTES`] for `s3`, where a miss costs a ranged GET over the network.
    pub fn read_cache_bytes(&self) -> u64 {
        self.read.cache_bytes.unwrap_or(match self.storage {
            StorageConfig::Local { .. } => 0,
            StorageConfig::S3(_) => S3_READ_CACHE_BYTES,
        })
    }

    /// Largest coalesced range read, in bytes: `read.max_range_bytes` when set, else by storage
    /// kind: [`LOCAL_MAX_RANGE_BYTES`] for `local`, where a read is a `pread` from the page
    /// cache and a larger range only holds more memory while it is served (peak RSS serving a
    /// 64 MiB file: 67 MiB with 8 MiB ranges, 55 MiB with 2 MiB, same speed; BENCHMARKS.md, P2),
    /// and [`S3_MAX_RANGE_BYTES`] for `s3`, where every range is a GET with a round trip.
    pub fn read_max_range_bytes(&self) -> u64 {
        self.read.max_range_bytes.unwrap_or(match self.storage {
            StorageConfig::Local { .. } => LOCAL_MAX_RANGE_BYTES,
            StorageConfig::S3(_) => S3_MAX_RANGE_BYTES,
        })
    }

    /// Ranged reads in flight per batch of lookups: `read.concurrent_reads` when set, else by
    /// storage kind: [`LOCAL_CONCURRENT_READS`] for `local`, where a read is a copy from the
    /// page cache and more at once only hold more memory (a batch then holds at most 4 MiB of
    /// reads), and [`S3_CONCURRENT_READS`] for `s3`, where each read waits a network round trip.
    pub fn read_concurrent_reads(&self) -> usize {
        self.read.concurrent_reads.unwrap_or(match self.storage {
            StorageConfig::Local { .. } => LOCAL_CONCURRENT_READS,
            StorageConfig::S3(_) => S3_CONCURRENT_READS,
        })
    }

    /// Whether blocks read from storage are re-hashed before they are served: `read.verify`
    /// when set, else by storage kind. Off for `local`: every block was hashed at ingest and
    /// the CAR, named by its BLAKE3, is written once in a directory only this node writes, so
    /// a second hash costs CPU on every read (sha2-256 of each block served) for no defence
    /// the filesystem does not already give. On for `s3`: the bucket can be written by others
    /// and bytes cross the network. DESIGN.md, "Serving", records the rule.
    pub fn read_verify(&self) -> bool {
        self.read.verify.unwrap_or(match self.storage {
            StorageConfig::Local { .. } => false,
            StorageConfig::S3(_) => true,
        })
    }

    /// This configuration with secrets replaced by `***` (the password in a PostgreSQL
    /// connection string), for display.
    pub fn redacted(&self) -> Self {
        let mut shown = self.clone();
        if let IndexConfig::Postgres(pg) = &mut shown.index {
            pg.url = redact_password(&pg.url);
        }
        shown
    }

    /// Parses a config file's text.
    ///
    /// # Errors
    /// The TOML error, naming the line and the unknown or mistyped field.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}
