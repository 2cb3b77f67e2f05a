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
        }
    }
}

/// `[gateway]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address of the trustless gateway listener. Port 0 picks a free port.
    pub listen: SocketAddr,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
        }
    }
}

/// `[api]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address of the admin/ingest API listener; keep it on loopback.
    pub listen: SocketAddr,
    /// Largest CAR accepted by `PUT /api/v1/cars`, in bytes.
    pub max_upload_bytes: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:5001".parse().expect("valid address"),
            max_upload_bytes: 64 * 1024 * 1024 * 1024,
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
    /// Largest single coalesced range read, in bytes.
    pub max_range_bytes: u64,
    /// Re-hash every block read from storage before serving it.
    pub verify: bool,
}

impl Default for ReadConfig {
    fn default() -> Self {
        Self {
            max_gap_bytes: 64 * 1024,
            max_range_bytes: 8 * 1024 * 1024,
            verify: true,
        }
    }
}

/// `[bitswap]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BitswapConfig {
    /// Most wantlist entries kept per peer; wants past it are ignored.
    pub max_wantlist_entries: usize,
    /// Most bytes of blocks queued or in flight per peer.
    pub max_outstanding_bytes_per_peer: usize,
}

impl Default for BitswapConfig {
    fn default() -> Self {
        let d = hydrant_bitswap::BitswapConfig::default();
        Self {
            max_wantlist_entries: d.max_wantlist_entries_per_peer,
            max_outstanding_bytes_per_peer: d.max_outstanding_bytes_per_peer,
        }
    }
}

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
        if self.read.max_range_bytes < hydrant_car::MAX_BLOCK_SIZE as u64 {
            return Err(refuse(
                "read.max_range_bytes",
                &self.read.max_range_bytes,
                "must be at least the largest block, 2097152 bytes (2 MiB)",
            ));
        }
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
    fn unknown_field_is_refused_with_its_name() {
        let err = Config::from_toml("[swarm]\nlisten_on = []\n").unwrap_err();
        assert!(err.to_string().contains("listen_on"), "{err}");
    }

    #[test]
    fn refused_values_explain_themselves() {
        let mut c = Config::default();
        c.read.max_range_bytes = 1024;
        let err = c.validate().unwrap_err();
        assert_eq!(err.field, "read.max_range_bytes");
        assert!(err.to_string().contains("2 MiB"), "{err}");

        let mut c = Config::default();
        c.swarm.listen.clear();
        assert_eq!(c.validate().unwrap_err().field, "swarm.listen");
    }
}
