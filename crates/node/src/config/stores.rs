//! The sections of what the node stores and reads: `[storage]`, `[index]`, `[read]`,
//! `[filter]` and `[shutdown]`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
        /// Bytes of the database's block cache (decompressed table and index blocks), at
        /// least 1 MiB. Default 32 MiB (enough for 10^8 blocks; BENCHMARKS.md, "Scale").
        #[serde(default = "default_fjall_cache_bytes")]
        cache_bytes: u64,
        /// Most table files kept open at once (counted in the file-descriptor budget), 16 to
        /// 65,536. Default 128. A lookup in a table whose file was closed reopens it.
        #[serde(default = "default_fjall_max_open_files")]
        max_open_files: usize,
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
            cache_bytes: default_fjall_cache_bytes(),
            max_open_files: default_fjall_max_open_files(),
        }
    }
}

fn default_fjall_cache_bytes() -> u64 {
    hydrant_index::FJALL_CACHE_BYTES
}

fn default_fjall_max_open_files() -> usize {
    hydrant_index::FJALL_MAX_OPEN_FILES
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
    /// replicas, and for CARs they deleted (the read cache is emptied then; this poll runs
    /// even with the filter off).
    pub poll_interval_ms: u64,
    /// Seconds between snapshots of the filter (`filter.snapshot` in the repository) while the
    /// node runs, written only when CARs were committed since the last one; a clean stop always
    /// writes one. After a crash the next start loads the last snapshot if the index has not
    /// changed since (embedded index) or catches up from it (PostgreSQL), instead of scanning
    /// the index. With a PostgreSQL index each snapshot also goes to the object store
    /// (`filter-snapshots/<schema>.snapshot`) for replicas starting without a local one. 0: only
    /// at a clean stop. At most 86400; default 600.
    pub snapshot_interval_secs: u64,
}

impl Default for FilterConfig {
    fn default() -> Self {
        let d = hydrant_index::filter::FilterConfig::default();
        Self {
            enabled: true,
            expected_blocks: d.expected_blocks,
            false_positive_rate: d.false_positive_rate,
            poll_interval_ms: 1000,
            snapshot_interval_secs: 600,
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

/// `[gc]`: periodic garbage collection ([`crate::stores::delete::gc`]): every CAR none of whose
/// roots is pinned is deleted, then the store is swept. Off by default: deleting is the
/// operator's decision.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct GcConfig {
    /// Seconds between runs, the first one this long after start-up; 0 (the default) turns
    /// periodic runs off (`hydrant gc` and `POST /api/v1/gc` still work).
    pub interval_secs: u64,
}

/// `[denylist]`: the `.deny` files of `<repository>/denylists/` (see
/// [`crate::stores::denylists`]), reloaded without a restart, and lists fetched from URLs into
/// that directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DenylistConfig {
    /// Seconds between checks of the directory for added, changed or removed lists; at least
    /// 1. Default 10.
    pub reload_secs: u64,
    /// `http(s)://` URLs of `.deny` lists, fetched at start-up and every `fetch_secs` into the
    /// directory (as `url-<hash>.deny`); a failed fetch keeps the last copy. Default none.
    pub urls: Vec<String>,
    /// Seconds between fetches of `urls`; at least 60. Default 3600.
    pub fetch_secs: u64,
}

impl Default for DenylistConfig {
    fn default() -> Self {
        Self {
            reload_secs: 10,
            urls: Vec::new(),
            fetch_secs: 3600,
        }
    }
}

/// `url` with the password of a `user:password@` URL or a `password=...` pair replaced by `***`.
pub fn redact_password(url: &str) -> String {
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
