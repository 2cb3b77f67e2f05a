//! The repository directory: configuration, identity, data, and the running daemon's address file.
//!
//! ```text
//! <repo>/config.toml     documented configuration (see config.rs)
//! <repo>/identity.key    Ed25519 keypair, libp2p protobuf encoding, mode 0600
//! <repo>/objects/        the local object store (CAR files), unless configured elsewhere
//! <repo>/index/          the embedded block index, unless configured elsewhere
//! <repo>/api.json        written by a running daemon: what it bound (see DaemonInfo)
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use libp2p::identity::Keypair;

use serde::{Deserialize, Serialize};

use crate::config::{Config, DEFAULT_CONFIG};

/// File names inside the repository.
pub const CONFIG_FILE: &str = "config.toml";
/// The identity key file.
pub const IDENTITY_FILE: &str = "identity.key";
/// The running daemon's address file.
pub const API_FILE: &str = "api.json";

/// Errors opening or creating a repository.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The repository does not exist.
    #[error("no Hydrant repository at {0} (run `hydrant init`, or `hydrant daemon` creates one)")]
    Missing(PathBuf),
    /// The config file does not parse.
    #[error("{path}: {detail}")]
    BadConfig {
        /// The config file.
        path: PathBuf,
        /// The parser's explanation, naming the field.
        detail: String,
    },
    /// The config file parses but a value is refused.
    #[error("{path}: {source}")]
    Refused {
        /// The config file.
        path: PathBuf,
        /// The refused value and why.
        #[source]
        source: crate::config::ConfigError,
    },
    /// The identity key file is not a valid key.
    #[error("{path}: not a libp2p private key: {detail}")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// The decoder's explanation.
        detail: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RepoError + '_ {
    move |source| RepoError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An opened repository.
#[derive(Debug, Clone)]
pub struct Repo {
    /// The repository directory.
    pub dir: PathBuf,
    /// The parsed, validated configuration.
    pub config: Config,
    /// The node's identity.
    pub keypair: Keypair,
}

impl Repo {
    /// Creates a repository at `dir` with the default config and a new Ed25519 identity.
    /// Returns `Ok(false)` without touching anything when one already exists.
    ///
    /// # Errors
    /// [`RepoError::Io`] when the directory or files cannot be written.
    pub fn init(dir: &Path) -> Result<bool, RepoError> {
        let config = dir.join(CONFIG_FILE);
        if config.exists() {
            return Ok(false);
        }
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let key_path = dir.join(IDENTITY_FILE);
        if !key_path.exists() {
            let key = Keypair::generate_ed25519()
                .to_protobuf_encoding()
                .expect("ed25519 keys encode");
            write_private(&key_path, &key)?;
        }
        write_atomic(&config, DEFAULT_CONFIG.as_bytes())?;
        Ok(true)
    }

    /// Opens the repository at `dir`.
    ///
    /// # Errors
    /// [`RepoError::Missing`] when there is none, or the reason its files are unusable.
    pub fn open(dir: &Path) -> Result<Self, RepoError> {
        let config_path = dir.join(CONFIG_FILE);
        if !config_path.exists() {
            return Err(RepoError::Missing(dir.to_owned()));
        }
        let text = std::fs::read_to_string(&config_path).map_err(io_err(&config_path))?;
        let config = Config::from_toml(&text).map_err(|e| RepoError::BadConfig {
            path: config_path.clone(),
            detail: e.to_string(),
        })?;
        config.validate().map_err(|source| RepoError::Refused {
            path: config_path.clone(),
            source,
        })?;
        let key_path = dir.join(IDENTITY_FILE);
        warn_if_exposed(&key_path, "identity key");
        let key = std::fs::read(&key_path).map_err(io_err(&key_path))?;
        let keypair = Keypair::from_protobuf_encoding(&key).map_err(|e| RepoError::BadKey {
            path: key_path.clone(),
            detail: e.to_string(),
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            config,
            keypair,
        })
    }

    /// `path` resolved against the repository directory (absolute paths stay as they are).
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.dir.join(path)
    }
}

/// Logs a warning when the secret file at `path` (`what`: "identity key", "API token", ...) can
/// be read by users other than its owner (any of the mode bits 0o077), as OpenSSH does for
/// private keys, and returns the warning's text. A warning rather than a refusal: secrets
/// mounted by orchestrators (Kubernetes secret volumes default to 0644) would otherwise stop
/// the node; the file's owner decides. `None` when the file is private or cannot be inspected
/// (reading it reports that).
pub fn warn_if_exposed(path: &Path, what: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return None;
    }
    let text = format!(
        "the {what} file {} has mode {mode:o}: other users can read it; `chmod 600` it so \
         only its owner can",
        path.display()
    );
    tracing::warn!(file = %path.display(), mode = format!("{mode:o}"), "{text}");
    Some(text)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers never see half a file.
///
/// # Errors
/// [`RepoError::Io`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RepoError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), RepoError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    file.write_all(bytes).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secret_files_readable_by_others_are_named_in_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "secret").unwrap();
        for (mode, warned) in [(0o600, false), (0o400, false), (0o640, true), (0o644, true)] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let warning = warn_if_exposed(&file, "API token");
            assert_eq!(warning.is_some(), warned, "mode {mode:o}: {warning:?}");
            if let Some(text) = warning {
                assert!(text.contains("chmod 600") && text.contains(&format!("{mode:o}")));
            }
        }
    }

    #[test]
    fn init_creates_private_key_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let repo_dir = dir.path().join("repo");
        assert!(Repo::init(&repo_dir).unwrap());
        let mode = std::fs::metadata(repo_dir.join(IDENTITY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let first = Repo::open(&repo_dir).unwrap();
        assert!(!Repo::init(&repo_dir).unwrap());
        let second = Repo::open(&repo_dir).unwrap();
        assert_eq!(
            first.keypair.public().to_peer_id(),
            second.keypair.public().to_peer_id()
        );
    }

    #[test]
    fn open_missing_and_bad_config_explain() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Repo::open(dir.path()).unwrap_err(),
            RepoError::Missing(_)
        ));
        Repo::init(dir.path()).unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "[read]\nmax_range_bytes = 10\n",
        )
        .unwrap();
        let err = Repo::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("read.max_range_bytes"), "{err}");
    }
}

/// What a running daemon bound: printed as one JSON line on stdout at start-up and written to
/// `<repo>/api.json` ([`API_FILE`]), so scripts and the CLI can find it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// The node's peer ID (base58btc, `12D3Koo...`).
    pub peer_id: String,
    /// Swarm multiaddrs actually listened on, each ending in `/p2p/<peer_id>`.
    pub swarm_addrs: Vec<String>,
    /// Base URL of the trustless gateway, e.g. `http://127.0.0.1:8080`.
    pub gateway_url: String,
    /// Base URL of the API, e.g. `http://127.0.0.1:5001`.
    pub api_url: String,
    /// Multiaddrs of the DHT heads (each ending in `/p2p/<head peer ID>`); empty without DHT.
    #[serde(default)]
    pub dht_heads: Vec<String>,
}
