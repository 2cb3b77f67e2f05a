//! `config.toml`: every field documented, human-readable, unknown fields refused.
//!
//! The file written by `hydrant init` ([`DEFAULT_CONFIG`]) lists every field with its default and
//! its meaning; a missing field takes the default. Values are validated by [`Config::validate`]
//! at start-up, which explains every refused value.

use std::net::SocketAddr;
use std::path::PathBuf;

use libp2p::Multiaddr;
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
    /// The memory budget shared by Bitswap, the gateway and the DHT.
    pub limits: LimitsConfig,
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

/// `[swarm]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SwarmConfig {
    /// Multiaddrs to listen on (TCP and WebSocket). Port 0 picks a free port.
    pub listen: Vec<Multiaddr>,
    /// Extra multiaddrs to announce to peers (e.g. a public address behind NAT).
    pub announce: Vec<Multiaddr>,
    /// Seconds a connection without streams stays open.
    pub idle_connection_timeout_secs: u64,
    /// Most simultaneous connections (inbound and outbound together).
    pub max_connections: u32,
    /// Most simultaneous connections with one peer; more are refused, so one peer cannot
    /// take the connections (and their buffers) of many. 1 to `max_connections`; default 4.
    pub max_connections_per_peer: u32,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        Self {
            listen: vec![
                "/ip4/0.0.0.0/tcp/4001".parse().expect("valid multiaddr"),
                "/ip4/0.0.0.0/tcp/4002/ws".parse().expect("valid multiaddr"),
            ],
            announce: Vec::new(),
            idle_connection_timeout_secs: 60,
            max_connections: 1024,
            max_connections_per_peer: 4,
        }
    }
}

/// `[gateway]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address of the trustless gateway listener. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Seconds a request may take until its response head is ready (a CAR body may stream for
    /// longer); past it the answer is 504 with `Retry-After`. 1 to 3600.
    pub request_timeout_secs: u64,
    /// Seconds a response may wait for its client to accept any byte; past it the connection
    /// is closed and the response's memory released (a client that stopped reading). 1 to
    /// 3600; default 30.
    pub write_timeout_secs: u64,
    /// Responses in progress from one client address (an IPv6 /64) at once; more are answered
    /// 429 with `Retry-After`. One address holds at most this many times
    /// `limits.gateway_request_bytes` of the budget. Behind a reverse proxy every client has
    /// the proxy's address: raise it there. 1 to 65536; default 16.
    pub max_requests_per_ip: u32,
    /// Seconds a connection may take to send a request's head (request line and headers),
    /// counted from when the server waits for one: from the connection's start, or from the end
    /// of the previous response on a keep-alive connection, so it is also the idle timeout of a
    /// keep-alive connection. Past it the connection is closed (a slowloris client, an idle
    /// client). 1 to 3600; default 10.
    pub header_read_timeout_secs: u64,
    /// Open connections to this listener; one more is answered 503 with `Retry-After` and
    /// closed. Each takes a file descriptor: see [`Config::descriptors_needed`]. 1 to 1048576;
    /// default 2048.
    pub max_connections: u32,
    /// Open connections from one client address (an IPv6 /64); one more is answered 429 and
    /// closed, so one client cannot take the listener's connections. Behind a reverse proxy
    /// raise it as `max_requests_per_ip`. 1 to `max_connections`; default 128.
    pub max_connections_per_ip: u32,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            request_timeout_secs: 60,
            write_timeout_secs: 30,
            max_requests_per_ip: 16,
            header_read_timeout_secs: 10,
            max_connections: 2048,
            max_connections_per_ip: 128,
        }
    }
}

/// `[api]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address of the admin/ingest API listener. A non-loopback address is refused unless
    /// `token_file` is set: the API can ingest, and `/metrics` describes the node.
    pub listen: SocketAddr,
    /// Largest CAR accepted by `PUT /api/v1/cars`, in bytes.
    pub max_upload_bytes: u64,
    /// A file whose first line is the API's bearer token (at least
    /// [`MIN_API_TOKEN_LEN`] visible ASCII characters), relative to the repository unless
    /// absolute; read once at start-up. With a token, every API request except `GET /healthz`
    /// and `GET /readyz` needs `Authorization: Bearer <token>` (else 401). Empty: no token
    /// (then `listen` must be a loopback address).
    pub token_file: PathBuf,
    /// Seconds a request may take until its response head is ready; past it the answer is 504.
    /// Not applied to ingests (`PUT /api/v1/cars`, `POST /api/v1/cars/index`), which take as
    /// long as the CAR does. 1 to 3600.
    pub request_timeout_secs: u64,
    /// Seconds an upload (`PUT /api/v1/cars`) may go without receiving a byte; past it the
    /// upload ends with 408 and its staging object is removed. A slow upload that keeps moving
    /// is never cut. 1 to 3600; default 30.
    pub upload_idle_timeout_secs: u64,
    /// As `gateway.header_read_timeout_secs`, for this listener. Default 10.
    pub header_read_timeout_secs: u64,
    /// As `gateway.max_connections`, for this listener. Default 256.
    pub max_connections: u32,
    /// As `gateway.max_connections_per_ip`, for this listener (health probes and the CLI share
    /// an address with other clients less often than gateway users). Default 64.
    pub max_connections_per_ip: u32,
}

/// Fewest characters of an API token (`api.token_file`).
pub const MIN_API_TOKEN_LEN: usize = 16;

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:5001".parse().expect("valid address"),
            max_upload_bytes: 64 * 1024 * 1024 * 1024,
            token_file: PathBuf::new(),
            request_timeout_secs: 60,
            upload_idle_timeout_secs: 30,
            header_read_timeout_secs: 10,
            max_connections: 256,
            max_connections_per_ip: 64,
        }
    }
}

/// `[storage]`: the object store holding CAR files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum StorageConfig {
    /// A local directory.
    Local {
        /// Directory, relative to the repository unless absolute.
        path: PathBuf,
    },
    /// An S3-compatible bucket (AWS S3, Garage, MinIO, Ceph RGW).
    S3(S3Config),
}

/// `[storage] kind = "s3"`: an S3-compatible bucket. Credentials come from
/// `credentials_file`, else from the environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`); they are never logged.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Endpoint URL, e.g. `http://127.0.0.1:3900` for Garage; empty for AWS S3 (from the
    /// region). `http://` endpoints are allowed (keep them on a private network).
    pub endpoint: String,
    /// Region name (Garage's default is `garage`).
    pub region: String,
    /// Address buckets as `endpoint/bucket/key` (path style; Garage and MinIO need it) rather
    /// than `bucket.endpoint/key`.
    pub path_style: bool,
    /// A TOML file with `access_key_id`, `secret_access_key` and optionally `session_token`
    /// (relative to the repository unless absolute). Empty: use the environment.
    pub credentials_file: PathBuf,
    /// Seconds one request may take, body included, before it fails.
    pub request_timeout_secs: u64,
    /// Seconds opening a connection may take.
    pub connect_timeout_secs: u64,
    /// Retries of a failed request (with backoff, within `request_timeout_secs` in all).
    pub max_retries: usize,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            endpoint: String::new(),
            region: "us-east-1".into(),
            path_style: false,
            credentials_file: PathBuf::new(),
            request_timeout_secs: 30,
            connect_timeout_secs: 5,
            max_retries: 2,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self::Local {
            path: PathBuf::from("objects"),
        }
    }
}

/// `[index]`: the block index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum IndexConfig {
    /// The embedded fjall database.
    Fjall {
        /// Directory, relative to the repository unless absolute.
        path: PathBuf,
    },
    /// A PostgreSQL database shared by replicas.
    Postgres(PostgresConfig),
}

/// `[index] kind = "postgres"`: the block index (and, with `providers.kind = "postgres"`, the
/// provider records) in a PostgreSQL database. Migrations are applied at start-up.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// Connection string: `postgresql://user@host:port/db` or `host=... user=... dbname=...`
    /// (a `host` starting with `/` is a Unix socket directory). Prefer `password_file` to a
    /// password in the URL; either way it is never logged.
    pub url: String,
    /// A file holding the password (first line; relative to the repository unless absolute).
    /// Empty: none, or the one in `url`.
    pub password_file: PathBuf,
    /// Schema of Hydrant's tables (created if missing).
    pub schema: String,
    /// Most pooled connections of this process.
    pub pool_size: usize,
    /// Seconds opening a connection may take.
    pub connect_timeout_secs: u64,
    /// Seconds a query waits for a free pooled connection before failing.
    pub wait_timeout_secs: u64,
    /// Seconds one SQL statement may run before the server cancels it (the session's
    /// `statement_timeout`). Committing, aborting or cleaning up a CAR's rows and schema
    /// migrations are exempt: their time grows with the CAR. 1 to 3600.
    pub statement_timeout_secs: u64,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            password_file: PathBuf::new(),
            schema: "public".into(),
            pool_size: 16,
            connect_timeout_secs: 5,
            wait_timeout_secs: 5,
            statement_timeout_secs: 30,
        }
    }
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &"<redacted>")
            .field("password_file", &self.password_file)
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("statement_timeout_secs", &self.statement_timeout_secs)
            .finish_non_exhaustive()
    }
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self::Fjall {
            path: PathBuf::from("index"),
        }
    }
}

/// `[read]`: ranged reads from stored CARs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReadConfig {
    /// Two wanted blocks of one CAR at most this many bytes apart are read with one range.
    pub max_gap_bytes: u64,
    /// Largest single coalesced range read, in bytes (at least 2 MiB, the largest block). Unset
    /// (the default): by storage kind, [`Config::read_max_range_bytes`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_range_bytes: Option<u64>,
    /// Re-hash every block read from storage before serving it (a mismatch is a store error,
    /// never served). Unset (the default): by storage kind, [`Config::read_verify`]: off for
    /// `local`, on for `s3`. `true` re-hashes on local storage too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
    /// Bytes of recently read blocks kept in memory; 0 turns the read cache off. Unset (the
    /// default): by storage kind, [`Config::read_cache_bytes`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_bytes: Option<u64>,
    /// Most ranged reads one batch of lookups (a Bitswap batch, a gateway read-ahead) has in
    /// flight at once; each holds up to the range size. Unset (the default): by storage kind,
    /// [`Config::read_concurrent_reads`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrent_reads: Option<usize>,
}

/// Default largest range read from local storage, in bytes (2 MiB, the largest block).
pub const LOCAL_MAX_RANGE_BYTES: u64 = hydrant_car::MAX_BLOCK_SIZE as u64;
/// Default largest range read from an object store over the network, in bytes (8 MiB).
pub const S3_MAX_RANGE_BYTES: u64 = 8 * 1024 * 1024;

/// Default ranged reads in flight per batch on local storage.
pub const LOCAL_CONCURRENT_READS: usize = 2;
/// Default ranged reads in flight per batch on an object store over the network.
pub const S3_CONCURRENT_READS: usize = 8;

/// Default read cache for an object store over the network (`storage.kind = "s3"`), in bytes:
/// a hit saves a ranged GET (tens of milliseconds and a billed request).
pub const S3_READ_CACHE_BYTES: u64 = 256 * 1024 * 1024;

impl Default for ReadConfig {
    fn default() -> Self {
        Self {
            max_gap_bytes: 64 * 1024,
            max_range_bytes: None,
            verify: None,
            cache_bytes: None,
            concurrent_reads: None,
        }
    }
}

/// `[filter]`: the presence filter, an in-memory Bloom filter of the blocks present, so that a
/// want for an absent block costs no index query and no object-store request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// Use the filter (built from the index at start-up, before the node reports ready).
    pub enabled: bool,
    /// Fewest blocks the filter is sized for: each build sizes it for twice the blocks in the
    /// index, at least this many, and it is rebuilt twice as large when it fills.
    pub expected_blocks: u64,
    /// Fraction of absent blocks the filter lets through to the index, in (0, 0.5].
    pub false_positive_rate: f64,
    /// Milliseconds between polls of a shared (PostgreSQL) index for CARs committed by other
    /// replicas.
    pub poll_interval_ms: u64,
}

impl Default for FilterConfig {
    fn default() -> Self {
        let d = hydrant_index::filter::FilterConfig::default();
        Self {
            enabled: true,
            expected_blocks: d.expected_blocks,
            false_positive_rate: d.false_positive_rate,
            poll_interval_ms: 1000,
        }
    }
}

/// `[shutdown]`: what happens on SIGTERM or Ctrl-C.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// Seconds to drain: readiness turns false and listeners close at once; in-flight Bitswap
    /// and HTTP responses get this long to finish before the process exits.
    pub drain_timeout_secs: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_timeout_secs: 10,
        }
    }
}

/// `[bitswap]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BitswapConfig {
    /// Most wantlist entries kept per peer; wants past it are ignored.
    pub max_wantlist_entries: usize,
    /// Most bytes of blocks queued or in flight per peer (its share of the memory budget).
    pub max_outstanding_bytes_per_peer: usize,
    /// Most inbound streams read at once over all peers; more are reset.
    pub max_inbound_streams: usize,
    /// Most inbound streams read at once from one peer; more are reset.
    pub max_inbound_streams_per_peer: usize,
    /// Most batches of wants looked up in the store at once.
    pub max_concurrent_lookups: usize,
    /// Seconds an inbound stream may go without a complete message before it is closed.
    pub inbound_idle_timeout_secs: u64,
    /// Seconds to open the outbound stream or write one message; a peer slower than this
    /// (e.g. one that stopped reading) is dropped, its memory released and, on a timeout, its
    /// connection closed.
    pub write_timeout_secs: u64,
    /// Milliseconds the outbound stream stays open without an answer to send (below Helia's
    /// 5 s receive timeout).
    pub outbound_idle_timeout_ms: u64,
}

impl Default for BitswapConfig {
    fn default() -> Self {
        let d = hydrant_bitswap::BitswapConfig::default();
        Self {
            max_wantlist_entries: d.max_wantlist_entries_per_peer,
            max_outstanding_bytes_per_peer: d.max_outstanding_bytes_per_peer,
            max_inbound_streams: d.max_inbound_streams,
            max_inbound_streams_per_peer: d.max_inbound_streams_per_peer,
            max_concurrent_lookups: d.max_concurrent_lookups,
            inbound_idle_timeout_secs: d.inbound_idle_timeout.as_secs(),
            write_timeout_secs: d.write_timeout.as_secs(),
            outbound_idle_timeout_ms: d.outbound_idle_timeout.as_millis() as u64,
        }
    }
}

/// `[dht]`: the Kademlia DHT server heads and the client side (../shared/specs/kad-dht.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DhtConfig {
    /// Run the DHT at all (heads, routing-table maintenance, announcing roots).
    pub enabled: bool,
    /// DHT server identities ("heads") this process runs, each a libp2p peer on its own port.
    pub heads: u32,
    /// Index of this process's first head within the fleet: its heads are
    /// `first_head .. first_head + heads`.
    pub first_head: u32,
    /// Heads in the whole fleet (all machines); head IDs are spread evenly over the keyspace for
    /// this many. 0 means `heads` (one machine).
    pub fleet_size: u32,
    /// 64 hex characters (32 bytes) from which head identities are derived. Empty: derived from
    /// the node's identity key, so replicas sharing the key share the heads.
    pub seed: String,
    /// IP address the heads listen on.
    pub listen_ip: std::net::IpAddr,
    /// Head `i` of this process listens on TCP port `port_base + i`; 0 picks free ports.
    pub port_base: u16,
    /// Peers to bootstrap the routing table from (multiaddrs ending in `/p2p/<peer ID>`).
    pub bootstrap: Vec<Multiaddr>,
    /// Announce (ADD_PROVIDER) the roots of every ingested CAR, and re-announce them every
    /// `reprovide_interval_secs`.
    pub announce_roots: bool,
    /// Announce every block, not just roots (heads answer for every block anyway).
    pub announce_all_blocks: bool,
    /// Seconds between re-announcements (22 h; provider records live 48 h).
    pub reprovide_interval_secs: u64,
}

/// The public IPFS bootstrap peers (as shipped by Kubo).
pub const PUBLIC_BOOTSTRAP: &[&str] = &[
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
    "/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
];

impl Default for DhtConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            heads: 4,
            first_head: 0,
            fleet_size: 0,
            seed: String::new(),
            listen_ip: "0.0.0.0".parse().expect("valid address"),
            port_base: 4101,
            bootstrap: PUBLIC_BOOTSTRAP
                .iter()
                .map(|a| a.parse().expect("valid multiaddr"))
                .collect(),
            announce_roots: true,
            announce_all_blocks: false,
            reprovide_interval_secs: 22 * 3600,
        }
    }
}

impl DhtConfig {
    /// The fleet size in effect (`fleet_size`, or `heads` when 0).
    pub fn fleet(&self) -> u32 {
        if self.fleet_size == 0 {
            self.heads
        } else {
            self.fleet_size
        }
    }

    /// The configured seed as 32 bytes, or `None` when empty.
    ///
    /// # Errors
    /// A message when the text is not 64 hex characters.
    pub fn seed_bytes(&self) -> Result<Option<[u8; 32]>, String> {
        if self.seed.is_empty() {
            return Ok(None);
        }
        let bytes = hex::decode(&self.seed).map_err(|e| e.to_string())?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(Some)
            .map_err(|_| format!("{} bytes, not 32", bytes.len()))
    }
}

/// `[providers]`: the provider-record store (records received by ADD_PROVIDER, 48 h each).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProvidersConfig {
    /// `"fjall"` (embedded, at `path`), `"memory"` (lost on restart, at most `max_records`) or
    /// `"postgres"` (in the `[index]` database, shared by replicas; needs `index.kind =
    /// "postgres"`).
    pub kind: String,
    /// Directory of the embedded store, relative to the repository unless absolute.
    pub path: PathBuf,
    /// Most records of the memory store.
    pub max_records: usize,
    /// Records waiting to be written; when full, new ADD_PROVIDER records are dropped (counted).
    pub queue_capacity: usize,
    /// Most records written in one batch.
    pub batch_size: usize,
    /// Longest wait before a partial batch is written, milliseconds.
    pub batch_interval_ms: u64,
    /// Seconds between sweeps of expired records.
    pub gc_interval_secs: u64,
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        Self {
            kind: "fjall".into(),
            path: PathBuf::from("providers"),
            max_records: 1_000_000,
            queue_capacity: 65_536,
            batch_size: 1024,
            batch_interval_ms: 100,
            gc_interval_secs: 600,
        }
    }
}

/// `url` with the password of a `user:password@` URL or a `password=...` pair replaced by `***`.
fn redact_password(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@')
            && let Some((user, _)) = userinfo.split_once(':')
        {
            return format!("{scheme}://{user}:***@{host}");
        }
        return url.to_owned();
    }
    url.split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some(("password", _)) => "password=***".to_owned(),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks one listener's `max_connections` and `max_connections_per_ip` (their field names).
fn validate_connections(
    (max_field, max): (&'static str, u32),
    (per_ip_field, per_ip): (&'static str, u32),
) -> Result<(), ConfigError> {
    if !(1..=MAX_LISTENER_CONNECTIONS).contains(&max) {
        return Err(ConfigError {
            field: max_field,
            value: max.to_string(),
            reason: "use 1 to 1048576: 0 would refuse every connection".into(),
        });
    }
    if !(1..=max).contains(&per_ip) {
        return Err(ConfigError {
            field: per_ip_field,
            value: per_ip.to_string(),
            reason: format!("use 1 to {max_field} ({max}): 0 would refuse every connection"),
        });
    }
    Ok(())
}

/// File descriptors set aside beyond the connection limits and the embedded databases' files,
/// for everything else the process opens: listening sockets, stored CARs being read, database
/// and S3 connections, the runtime's own.
pub const DESCRIPTOR_RESERVE: u64 = 256;

/// Most connections one HTTP listener may be configured to hold.
const MAX_LISTENER_CONNECTIONS: u32 = 1 << 20;

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
        if matches!(self.index, IndexConfig::Fjall { .. }) {
            let files = hydrant_index::FJALL_MAX_OPEN_FILES as u64;
            terms.push(("index files".into(), files));
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

    /// Checks values that parse but would make the node useless or unsafe.
    ///
    /// # Errors
    /// The first refused value, with an explanation and the safe range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let refuse = |field, value: &dyn std::fmt::Display, reason: &str| ConfigError {
            field,
            value: value.to_string(),
            reason: reason.to_string(),
        };
        if self.swarm.listen.is_empty() {
            return Err(refuse(
                "swarm.listen",
                &"[]",
                "no listen address: peers could not reach Bitswap; give at least one multiaddr",
            ));
        }
        if self.swarm.max_connections == 0 {
            return Err(refuse(
                "swarm.max_connections",
                &0,
                "zero connections would accept nothing; use at least 1 (default 1024)",
            ));
        }
        if !(1..=self.swarm.max_connections).contains(&self.swarm.max_connections_per_peer) {
            return Err(refuse(
                "swarm.max_connections_per_peer",
                &self.swarm.max_connections_per_peer,
                "use 1 to swarm.max_connections (default 4): zero accepts nothing",
            ));
        }
        if !self.api.listen.ip().is_loopback() && self.api.token_file.as_os_str().is_empty() {
            return Err(refuse(
                "api.listen",
                &self.api.listen,
                "the admin API and /metrics would be open to the network; keep api.listen on \
                 127.0.0.1/::1 or set api.token_file",
            ));
        }
        for (field, secs) in [
            (
                "gateway.request_timeout_secs",
                self.gateway.request_timeout_secs,
            ),
            ("api.request_timeout_secs", self.api.request_timeout_secs),
            (
                "api.upload_idle_timeout_secs",
                self.api.upload_idle_timeout_secs,
            ),
            (
                "gateway.header_read_timeout_secs",
                self.gateway.header_read_timeout_secs,
            ),
            (
                "api.header_read_timeout_secs",
                self.api.header_read_timeout_secs,
            ),
        ] {
            if !(1..=MAX_TIMEOUT_SECS).contains(&secs) {
                return Err(refuse(
                    field,
                    &secs,
                    "use 1 to 3600 seconds: 0 would end every request at once, and a longer \
                     wait holds a connection and its memory for a client that gave up",
                ));
            }
        }
        self.validate_gateway()?;
        validate_connections(
            ("gateway.max_connections", self.gateway.max_connections),
            (
                "gateway.max_connections_per_ip",
                self.gateway.max_connections_per_ip,
            ),
        )?;
        validate_connections(
            ("api.max_connections", self.api.max_connections),
            (
                "api.max_connections_per_ip",
                self.api.max_connections_per_ip,
            ),
        )?;
        if self.read_max_range_bytes() < hydrant_car::MAX_BLOCK_SIZE as u64 {
            return Err(refuse(
                "read.max_range_bytes",
                &self.read_max_range_bytes(),
                "must be at least the largest block, 2097152 bytes (2 MiB)",
            ));
        }
        if self.read_concurrent_reads() == 0 {
            return Err(refuse(
                "read.concurrent_reads",
                &0,
                "zero would never read a block; use at least 1 (unset: 2 for local, 8 for s3)",
            ));
        }
        self.validate_stores()?;
        if self.bitswap.max_wantlist_entries == 0 {
            return Err(refuse(
                "bitswap.max_wantlist_entries",
                &0,
                "zero would ignore every want; use at least 1 (default 8192)",
            ));
        }
        if self.bitswap.max_outstanding_bytes_per_peer < hydrant_car::MAX_BLOCK_SIZE {
            return Err(refuse(
                "bitswap.max_outstanding_bytes_per_peer",
                &self.bitswap.max_outstanding_bytes_per_peer,
                "must hold at least one 2 MiB block (2097152 bytes)",
            ));
        }
        self.validate_limits()?;
        self.validate_dht()
    }

    fn validate_gateway(&self) -> Result<(), ConfigError> {
        let g = &self.gateway;
        if !(1..=MAX_TIMEOUT_SECS).contains(&g.write_timeout_secs) {
            return Err(ConfigError {
                field: "gateway.write_timeout_secs",
                value: g.write_timeout_secs.to_string(),
                reason: "use 1 to 3600 seconds (default 30): 0 would cut off every response that \
                         fills the socket, and a longer wait lets a client that stopped reading \
                         hold its memory"
                    .into(),
            });
        }
        if !(1..=65_536).contains(&g.max_requests_per_ip) {
            return Err(ConfigError {
                field: "gateway.max_requests_per_ip",
                value: g.max_requests_per_ip.to_string(),
                reason: "use 1 to 65536 (default 16): 0 would answer every request 429".into(),
            });
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let refuse = |field, value: &dyn std::fmt::Display, reason: &str| ConfigError {
            field,
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let b = &self.bitswap;
        for (field, value) in [
            ("bitswap.max_inbound_streams", b.max_inbound_streams),
            (
                "bitswap.max_inbound_streams_per_peer",
                b.max_inbound_streams_per_peer,
            ),
            ("bitswap.max_concurrent_lookups", b.max_concurrent_lookups),
        ] {
            if value == 0 {
                return Err(refuse(
                    field,
                    &0,
                    "zero would accept connections but answer no want; use at least 1",
                ));
            }
        }
        if b.max_inbound_streams_per_peer > b.max_inbound_streams {
            return Err(refuse(
                "bitswap.max_inbound_streams_per_peer",
                &b.max_inbound_streams_per_peer,
                "must not exceed bitswap.max_inbound_streams",
            ));
        }
        for (field, value) in [
            (
                "bitswap.inbound_idle_timeout_secs",
                b.inbound_idle_timeout_secs,
            ),
            ("bitswap.write_timeout_secs", b.write_timeout_secs),
        ] {
            if !(1..=3600).contains(&value) {
                return Err(refuse(
                    field,
                    &value,
                    "use 1 to 3600 seconds: shorter than a round trip drops every peer, longer \
                     lets a stalled peer hold its memory",
                ));
            }
        }
        if !(100..=60_000).contains(&b.outbound_idle_timeout_ms) {
            return Err(refuse(
                "bitswap.outbound_idle_timeout_ms",
                &b.outbound_idle_timeout_ms,
                "use 100 to 60000 ms (default 3000; below Helia's 5 s receive timeout)",
            ));
        }
        let l = &self.limits;
        if l.memory_budget_bytes < LimitsConfig::MIN_MEMORY_BUDGET {
            return Err(refuse(
                "limits.memory_budget_bytes",
                &l.memory_budget_bytes,
                "below one message: at least 16777216 bytes (16 MiB) are needed to read one \
                 4 MiB Bitswap message and send one 2 MiB block; default 536870912 (512 MiB)",
            ));
        }
        if !(1..=90).contains(&l.wantlists_percent) {
            return Err(refuse(
                "limits.wantlists_percent",
                &l.wantlists_percent,
                "use 1 to 90 percent (default 25): wantlists need some room, and blocks the rest",
            ));
        }
        let rest = l.memory_budget_bytes - l.wantlists_share();
        if rest < LimitsConfig::MIN_UNRESERVED {
            return Err(refuse(
                "limits.wantlists_percent",
                &l.wantlists_percent,
                "leaves too little of limits.memory_budget_bytes for the rest: the part not kept \
                 for wantlists must hold one 4 MiB Bitswap message being read and one 2 MiB \
                 block being sent, at least 12582912 bytes (12 MiB); lower the percentage or \
                 raise the budget",
            ));
        }
        if l.gateway_request_bytes < hydrant_car::MAX_BLOCK_SIZE as u64
            || l.gateway_request_bytes > rest / 2
        {
            return Err(refuse(
                "limits.gateway_request_bytes",
                &l.gateway_request_bytes,
                "use at least one 2 MiB block (2097152) and at most half of the budget the \
                 wantlists' share leaves (default 4194304)",
            ));
        }
        if l.budget_wait_ms > 60_000 {
            return Err(refuse(
                "limits.budget_wait_ms",
                &l.budget_wait_ms,
                "use 0 to 60000 ms (default 1000)",
            ));
        }
        Ok(())
    }

    fn validate_stores(&self) -> Result<(), ConfigError> {
        let refuse = |field, value: &dyn std::fmt::Display, reason: &str| ConfigError {
            field,
            value: value.to_string(),
            reason: reason.to_string(),
        };
        if let StorageConfig::S3(s3) = &self.storage {
            if s3.bucket.is_empty() {
                return Err(refuse(
                    "storage.bucket",
                    &"\"\"",
                    "an S3 store needs a bucket name",
                ));
            }
            if !s3.endpoint.is_empty()
                && !s3.endpoint.starts_with("http://")
                && !s3.endpoint.starts_with("https://")
            {
                return Err(refuse(
                    "storage.endpoint",
                    &s3.endpoint,
                    "must be an http:// or https:// URL, or empty for AWS S3",
                ));
            }
            if s3.request_timeout_secs == 0 || s3.connect_timeout_secs == 0 {
                return Err(refuse(
                    "storage.request_timeout_secs",
                    &s3.request_timeout_secs,
                    "request_timeout_secs and connect_timeout_secs must be at least 1",
                ));
            }
        }
        if let IndexConfig::Postgres(pg) = &self.index {
            if pg.url.is_empty() {
                return Err(refuse(
                    "index.url",
                    &"\"\"",
                    "a PostgreSQL index needs a connection URL",
                ));
            }
            if pg.pool_size == 0 {
                return Err(refuse(
                    "index.pool_size",
                    &0,
                    "a pool of zero connections could answer nothing; use at least 1 (default 16)",
                ));
            }
            if pg.connect_timeout_secs == 0 || pg.wait_timeout_secs == 0 {
                return Err(refuse(
                    "index.connect_timeout_secs",
                    &pg.connect_timeout_secs,
                    "connect_timeout_secs and wait_timeout_secs must be at least 1",
                ));
            }
            if !(1..=MAX_TIMEOUT_SECS).contains(&pg.statement_timeout_secs) {
                return Err(refuse(
                    "index.statement_timeout_secs",
                    &pg.statement_timeout_secs,
                    "use 1 to 3600 seconds (default 30): 0 would let a stuck query hold its \
                     pooled connection forever",
                ));
            }
        }
        let f = &self.filter;
        if f.enabled {
            if !(f.false_positive_rate > 0.0 && f.false_positive_rate <= 0.5) {
                return Err(refuse(
                    "filter.false_positive_rate",
                    &f.false_positive_rate,
                    "must be in (0, 0.5] (default 0.001)",
                ));
            }
            if f.expected_blocks == 0 {
                return Err(refuse(
                    "filter.expected_blocks",
                    &0,
                    "use at least 1 (default 100000); the filter grows as needed",
                ));
            }
            if f.poll_interval_ms < 100 {
                return Err(refuse(
                    "filter.poll_interval_ms",
                    &f.poll_interval_ms,
                    "use at least 100 ms (default 1000)",
                ));
            }
        }
        if self.shutdown.drain_timeout_secs == 0 || self.shutdown.drain_timeout_secs > 3600 {
            return Err(refuse(
                "shutdown.drain_timeout_secs",
                &self.shutdown.drain_timeout_secs,
                "use 1 to 3600 seconds (default 10)",
            ));
        }
        Ok(())
    }

    fn validate_dht(&self) -> Result<(), ConfigError> {
        let refuse = |field, value: &dyn std::fmt::Display, reason: String| ConfigError {
            field,
            value: value.to_string(),
            reason,
        };
        let d = &self.dht;
        if !d.enabled {
            return Ok(());
        }
        let max = hydrant_dht::MAX_FLEET_SIZE;
        if d.heads == 0 || d.heads > max {
            return Err(refuse(
                "dht.heads",
                &d.heads,
                format!("use 1 to {max} heads (or dht.enabled = false to run no DHT)"),
            ));
        }
        if d.fleet() > max || d.first_head.saturating_add(d.heads) > d.fleet() {
            return Err(refuse(
                "dht.fleet_size",
                &d.fleet_size,
                format!(
                    "heads {}..{} must lie within the fleet (at most {max} heads)",
                    d.first_head,
                    u64::from(d.first_head) + u64::from(d.heads)
                ),
            ));
        }
        if let Err(e) = d.seed_bytes() {
            return Err(refuse(
                "dht.seed",
                &format!("{:?}", d.seed),
                format!("must be empty or 64 hex characters (32 bytes): {e}"),
            ));
        }
        if d.port_base != 0 && u32::from(d.port_base) + d.heads > 65_536 {
            return Err(refuse(
                "dht.port_base",
                &d.port_base,
                format!(
                    "ports {}..{} do not fit below 65536",
                    d.port_base,
                    u32::from(d.port_base) + d.heads
                ),
            ));
        }
        if d.reprovide_interval_secs == 0 || d.reprovide_interval_secs >= 48 * 3600 {
            return Err(refuse(
                "dht.reprovide_interval_secs",
                &d.reprovide_interval_secs,
                "must be between 1 and 172799: provider records expire after 48 h (default 79200, 22 h)".into(),
            ));
        }
        for addr in &d.bootstrap {
            if !matches!(
                addr.iter().last(),
                Some(libp2p::multiaddr::Protocol::P2p(_))
            ) {
                return Err(refuse(
                    "dht.bootstrap",
                    addr,
                    "every bootstrap address must end in /p2p/<peer ID>".into(),
                ));
            }
        }
        let p = &self.providers;
        if !["fjall", "memory", "postgres"].contains(&p.kind.as_str()) {
            return Err(refuse(
                "providers.kind",
                &p.kind,
                "must be \"fjall\", \"memory\" or \"postgres\"".into(),
            ));
        }
        if p.kind == "postgres" && !matches!(self.index, IndexConfig::Postgres(_)) {
            return Err(refuse(
                "providers.kind",
                &p.kind,
                "\"postgres\" keeps provider records in the index's database: set \
                 index.kind = \"postgres\" too"
                    .into(),
            ));
        }
        if p.queue_capacity == 0 || p.batch_size == 0 || p.batch_interval_ms == 0 {
            return Err(refuse(
                "providers.queue_capacity",
                &p.queue_capacity,
                "queue_capacity, batch_size and batch_interval_ms must all be at least 1".into(),
            ));
        }
        if p.batch_size > hydrant_providers::MAX_PUT_BATCH {
            return Err(refuse(
                "providers.batch_size",
                &p.batch_size,
                format!("at most {}", hydrant_providers::MAX_PUT_BATCH),
            ));
        }
        if p.kind == "memory" && p.max_records == 0 {
            return Err(refuse(
                "providers.max_records",
                &0,
                "the memory store needs room for at least 1 record".into(),
            ));
        }
        if p.gc_interval_secs == 0 {
            return Err(refuse(
                "providers.gc_interval_secs",
                &0,
                "use at least 1 second (default 600)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_parses_to_defaults() {
        let parsed = Config::from_toml(DEFAULT_CONFIG).expect("default config parses");
        assert_eq!(parsed, Config::default());
        parsed.validate().expect("defaults are valid");
    }

    #[test]
    fn the_read_cache_defaults_by_storage_kind_and_an_explicit_value_wins() {
        let local = Config::default();
        assert_eq!(local.read_cache_bytes(), 0, "local storage: the page cache");
        let s3 = Config::from_toml("[storage]\nkind = \"s3\"\nbucket = \"b\"\n").unwrap();
        assert_eq!(s3.read_cache_bytes(), S3_READ_CACHE_BYTES);
        for (toml, bytes) in [
            ("[read]\ncache_bytes = 1048576\n", 1_048_576),
            (
                "[read]\ncache_bytes = 0\n[storage]\nkind = \"s3\"\nbucket = \"b\"\n",
                0,
            ),
        ] {
            assert_eq!(Config::from_toml(toml).unwrap().read_cache_bytes(), bytes);
        }
    }

    #[test]
    fn read_ranges_default_by_storage_kind_and_an_explicit_value_wins() {
        assert_eq!(Config::default().read_max_range_bytes(), 2 * 1024 * 1024);
        let s3 = "[storage]\nkind = \"s3\"\nbucket = \"b\"\n";
        assert_eq!(
            Config::from_toml(s3).unwrap().read_max_range_bytes(),
            8 * 1024 * 1024
        );
        let set = Config::from_toml("[read]\nmax_range_bytes = 4194304\n").unwrap();
        assert_eq!(set.read_max_range_bytes(), 4 * 1024 * 1024);
        assert_eq!(Config::default().read_concurrent_reads(), 2);
        assert_eq!(Config::from_toml(s3).unwrap().read_concurrent_reads(), 8);
        let zero = Config::from_toml("[read]\nconcurrent_reads = 0\n").unwrap();
        assert_eq!(zero.validate().unwrap_err().field, "read.concurrent_reads");
    }

    #[test]
    fn read_verify_defaults_by_storage_kind_and_an_explicit_value_wins() {
        assert!(
            !Config::default().read_verify(),
            "local: verified at ingest"
        );
        let s3 = "[storage]\nkind = \"s3\"\nbucket = \"b\"\n";
        assert!(Config::from_toml(s3).unwrap().read_verify());
        let on = Config::from_toml("[read]\nverify = true\n").unwrap();
        assert!(on.read_verify());
        let off = Config::from_toml(&format!("[read]\nverify = false\n{s3}")).unwrap();
        assert!(!off.read_verify());
    }

    #[test]
    fn passwords_are_redacted_for_display() {
        assert_eq!(
            redact_password("postgresql://hydrant:s3cret@db:5432/hydrant"),
            "postgresql://hydrant:***@db:5432/hydrant"
        );
        assert_eq!(
            redact_password("host=/run/pg user=h password=s3cret dbname=x"),
            "host=/run/pg user=h password=*** dbname=x"
        );
        let c =
            Config::from_toml("[index]\nkind = \"postgres\"\nurl = \"postgresql://u:pw@h/db\"\n")
                .unwrap();
        let shown = toml::to_string(&c.redacted()).unwrap();
        assert!(!shown.contains("pw@"), "{shown}");
        assert!(!format!("{c:?}").contains("pw@"));
    }

    #[test]
    fn s3_and_postgres_sections_parse_and_are_checked() {
        let c = Config::from_toml(
            "[storage]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:3900\"\n\
             region = \"garage\"\npath_style = true\n\
             [index]\nkind = \"postgres\"\nurl = \"host=/tmp dbname=x\"\n\
             [providers]\nkind = \"postgres\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        let StorageConfig::S3(s3) = &c.storage else {
            panic!("not s3")
        };
        assert_eq!(s3.request_timeout_secs, 30, "defaults fill the rest");
        let typo = Config::from_toml("[storage]\nkind = \"s3\"\nbuckett = \"b\"\n").unwrap_err();
        assert!(typo.to_string().contains("buckett"), "{typo}");
        let err = Config::from_toml("[storage]\nkind = \"s3\"\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(err.field, "storage.bucket");
        let err = Config::from_toml("[providers]\nkind = \"postgres\"\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(err.field, "providers.kind");
        assert!(err.reason.contains("index.kind"), "{err}");
        let mut c = Config::default();
        c.filter.false_positive_rate = 0.0;
        assert_eq!(
            c.validate().unwrap_err().field,
            "filter.false_positive_rate"
        );
    }

    #[test]
    fn unknown_field_is_refused_with_its_name() {
        let err = Config::from_toml("[swarm]\nlisten_on = []\n").unwrap_err();
        assert!(err.to_string().contains("listen_on"), "{err}");
    }

    #[test]
    fn refused_values_explain_themselves() {
        let mut c = Config::default();
        c.read.max_range_bytes = Some(1024);
        let err = c.validate().unwrap_err();
        assert_eq!(err.field, "read.max_range_bytes");
        assert!(err.to_string().contains("2 MiB"), "{err}");

        let mut c = Config::default();
        c.swarm.listen.clear();
        assert_eq!(c.validate().unwrap_err().field, "swarm.listen");
    }

    #[test]
    fn api_off_loopback_needs_a_token_file() {
        for listen in ["0.0.0.0:5001", "[::]:5001", "192.0.2.7:5001"] {
            let mut c = Config::default();
            c.api.listen = listen.parse().unwrap();
            let err = c.validate().unwrap_err();
            assert_eq!(err.field, "api.listen");
            assert!(
                err.to_string().contains(
                    "the admin API and /metrics would be open to the network; keep api.listen \
                     on 127.0.0.1/::1 or set api.token_file"
                ),
                "{err}"
            );
            c.api.token_file = "api-token".into();
            c.validate()
                .expect("a token file makes any address acceptable");
        }
        let mut c = Config::default();
        c.api.listen = "[::1]:5001".parse().unwrap();
        c.validate().expect("IPv6 loopback needs no token");
    }

    /// Every refused `[limits]` and `[bitswap]` value, from the TOML an operator would write,
    /// with the field and the explanation the operator sees.
    #[test]
    fn budget_and_bitswap_values_that_would_serve_nothing_are_refused() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "[limits]\nmemory_budget_bytes = 1048576",
                "limits.memory_budget_bytes",
                "below one message: at least 16777216 bytes",
            ),
            (
                "[limits]\nwantlists_percent = 0",
                "limits.wantlists_percent",
                "use 1 to 90 percent",
            ),
            (
                "[limits]\nwantlists_percent = 95",
                "limits.wantlists_percent",
                "use 1 to 90 percent",
            ),
            (
                "[limits]\ngateway_request_bytes = 1024",
                "limits.gateway_request_bytes",
                "at least one 2 MiB block",
            ),
            (
                "[limits]\nmemory_budget_bytes = 16777216\ngateway_request_bytes = 8388608",
                "limits.gateway_request_bytes",
                "at most half of the budget the wantlists' share leaves",
            ),
            (
                "[limits]\nmemory_budget_bytes = 16777216\nwantlists_percent = 50",
                "limits.wantlists_percent",
                "the part not kept for wantlists must hold one 4 MiB Bitswap message",
            ),
            (
                "[limits]\nbudget_wait_ms = 600000",
                "limits.budget_wait_ms",
                "use 0 to 60000 ms",
            ),
            (
                "[bitswap]\nmax_wantlist_entries = 0",
                "bitswap.max_wantlist_entries",
                "zero would ignore every want",
            ),
            (
                "[bitswap]\nmax_outstanding_bytes_per_peer = 1000",
                "bitswap.max_outstanding_bytes_per_peer",
                "at least one 2 MiB block",
            ),
            (
                "[bitswap]\nmax_inbound_streams = 0",
                "bitswap.max_inbound_streams",
                "zero would accept connections but answer no want",
            ),
            (
                "[bitswap]\nmax_inbound_streams_per_peer = 0",
                "bitswap.max_inbound_streams_per_peer",
                "zero would accept connections but answer no want",
            ),
            (
                "[bitswap]\nmax_inbound_streams = 8\nmax_inbound_streams_per_peer = 9",
                "bitswap.max_inbound_streams_per_peer",
                "must not exceed bitswap.max_inbound_streams",
            ),
            (
                "[bitswap]\nmax_concurrent_lookups = 0",
                "bitswap.max_concurrent_lookups",
                "zero would accept connections but answer no want",
            ),
            (
                "[bitswap]\nwrite_timeout_secs = 0",
                "bitswap.write_timeout_secs",
                "shorter than a round trip",
            ),
            (
                "[bitswap]\ninbound_idle_timeout_secs = 7200",
                "bitswap.inbound_idle_timeout_secs",
                "use 1 to 3600 seconds",
            ),
            (
                "[bitswap]\noutbound_idle_timeout_ms = 10",
                "bitswap.outbound_idle_timeout_ms",
                "use 100 to 60000 ms",
            ),
            (
                "[gateway]\nwrite_timeout_secs = 0",
                "gateway.write_timeout_secs",
                "use 1 to 3600 seconds (default 30): 0 would cut off",
            ),
            (
                "[gateway]\nwrite_timeout_secs = 3601",
                "gateway.write_timeout_secs",
                "use 1 to 3600 seconds",
            ),
            (
                "[gateway]\nmax_requests_per_ip = 0",
                "gateway.max_requests_per_ip",
                "use 1 to 65536 (default 16)",
            ),
            (
                "[gateway]\nmax_requests_per_ip = 65537",
                "gateway.max_requests_per_ip",
                "use 1 to 65536",
            ),
            (
                "[swarm]\nmax_connections = 0",
                "swarm.max_connections",
                "zero connections would accept nothing",
            ),
            (
                "[swarm]\nmax_connections_per_peer = 0",
                "swarm.max_connections_per_peer",
                "use 1 to swarm.max_connections",
            ),
            (
                "[swarm]\nmax_connections = 8\nmax_connections_per_peer = 16",
                "swarm.max_connections_per_peer",
                "use 1 to swarm.max_connections",
            ),
        ];
        for (toml, field, reason) in cases {
            let err = Config::from_toml(toml).unwrap().validate().expect_err(toml);
            assert_eq!(err.field, *field, "{toml}");
            let message = err.to_string();
            assert!(message.contains(reason), "{toml}: {message}");
            assert!(
                message.starts_with(&format!("config: {field} = ")),
                "{message}"
            );
        }
        // The smallest accepted budget serves: Bitswap takes it.
        let c = Config::from_toml("[limits]\nmemory_budget_bytes = 16777216").unwrap();
        c.validate().unwrap();
        let budget = c.limits.budget();
        assert_eq!(budget.limit(), 16 * 1024 * 1024);
        assert_eq!(
            budget.cap(hydrant_budget::Holder::BitswapWantlists),
            16 * 1024 * 1024 / 100 * 25
        );
    }

    #[test]
    fn timeouts_are_refused_outside_one_second_to_an_hour() {
        type Setter = fn(&mut Config, u64);
        let set: [(&str, Setter); 4] = [
            ("api.upload_idle_timeout_secs", |c, v| {
                c.api.upload_idle_timeout_secs = v
            }),
            ("gateway.request_timeout_secs", |c, v| {
                c.gateway.request_timeout_secs = v
            }),
            ("api.request_timeout_secs", |c, v| {
                c.api.request_timeout_secs = v
            }),
            ("index.statement_timeout_secs", |c, v| {
                let IndexConfig::Postgres(pg) = &mut c.index else {
                    unreachable!()
                };
                pg.statement_timeout_secs = v;
            }),
        ];
        for (field, apply) in set {
            let mut c =
                Config::from_toml("[index]\nkind = \"postgres\"\nurl = \"host=/tmp\"\n").unwrap();
            c.validate().expect("defaults are valid");
            for bad in [0, MAX_TIMEOUT_SECS + 1] {
                apply(&mut c, bad);
                let err = c.validate().unwrap_err();
                assert_eq!(err.field, field);
                assert!(
                    err.to_string().contains(&format!(
                        "{field} = {bad} is refused: use 1 to 3600 seconds"
                    )),
                    "{err}"
                );
            }
            apply(&mut c, 1);
            c.validate().expect("1 s is accepted");
        }
        let c = Config::from_toml(
            "[gateway]\nrequest_timeout_secs = 5\n[api]\nrequest_timeout_secs = 7\n",
        )
        .unwrap();
        assert_eq!(
            (c.gateway.request_timeout_secs, c.api.request_timeout_secs),
            (5, 7)
        );
    }
}
