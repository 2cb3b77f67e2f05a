//! The repository as a whole: `version`, `datastore_spec`, `repo.lock`.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::flatfs::Shard;
use crate::pins::{self, KuboPin};

/// Repo version written by Kubo 0.18 (fs-repo-migrations 12-to-13).
pub const MIN_REPO_VERSION: u32 = 13;
/// Newest repo version known here: Kubo 0.38 (17-to-18). Versions 13 to 18 changed only
/// `config`, never the blockstore or the pinner's records.
pub const MAX_REPO_VERSION: u32 = 18;

/// Why a Kubo repository cannot be read. Every variant names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum KuboError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `version` is not a number in [`MIN_REPO_VERSION`]..=[`MAX_REPO_VERSION`].
    #[error(
        "{path}: repo version {found:?} is not supported: import-kubo reads versions \
         {MIN_REPO_VERSION} (Kubo 0.18) to {MAX_REPO_VERSION} (Kubo 0.38); run that Kubo once \
         (`ipfs repo migrate`) to bring the repository to a supported version"
    )]
    Version {
        /// The `version` file.
        path: PathBuf,
        /// Its contents, trimmed.
        found: String,
    },
    /// `datastore_spec` is not Kubo's default flatfs + LevelDB mount.
    #[error(
        "{path}: only Kubo's default datastore (flatfs for /blocks, levelds for /) can be \
         imported; this repository uses {found}"
    )]
    Spec {
        /// The `datastore_spec` file.
        path: PathBuf,
        /// What it holds instead, e.g. `badgerds`.
        found: String,
    },
    /// A live Kubo holds `repo.lock`.
    #[error("{path}: a running Kubo holds this repository; stop it (`ipfs shutdown`) first")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// `blocks/SHARDING` names a shard function other than flatfs's three.
    #[error("{path}: unknown flatfs shard function {found:?}")]
    Sharding {
        /// The `SHARDING` file.
        path: PathBuf,
        /// Its contents.
        found: String,
    },
    /// The LevelDB datastore could not be opened or read.
    #[error("{path}: LevelDB: {detail}")]
    LevelDb {
        /// The datastore directory.
        path: PathBuf,
        /// The reader's error.
        detail: String,
    },
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KuboError + '_ {
    move |source| KuboError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An opened Kubo repository (see the crate docs): checked, never written.
#[derive(Debug, Clone)]
pub struct KuboRepo {
    root: PathBuf,
    /// The repo version from `version`.
    pub version: u32,
    blocks: PathBuf,
    datastore: PathBuf,
    /// The flatfs shard function from `blocks/SHARDING`.
    pub shard: Shard,
}

impl KuboRepo {
    /// Opens the repository at `root` (the `IPFS_PATH` directory).
    ///
    /// # Errors
    /// [`KuboError::Locked`] when a live process holds `repo.lock` (a stale file is fine);
    /// [`KuboError::Version`]; [`KuboError::Spec`] for a datastore other than the default;
    /// [`KuboError::Sharding`]; [`KuboError::Io`] for a missing or unreadable file.
    pub fn open(root: &Path) -> Result<Self, KuboError> {
        check_unlocked(&root.join("repo.lock"))?;
        let version_path = root.join("version");
        let text = std::fs::read_to_string(&version_path).map_err(io_error(&version_path))?;
        let version = text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|v| (MIN_REPO_VERSION..=MAX_REPO_VERSION).contains(v))
            .ok_or_else(|| KuboError::Version {
                path: version_path.clone(),
                found: text.trim().to_owned(),
            })?;
        let spec_path = root.join("datastore_spec");
        let spec = std::fs::read_to_string(&spec_path).map_err(io_error(&spec_path))?;
        let (blocks, datastore) = parse_spec(&spec).map_err(|found| KuboError::Spec {
            path: spec_path.clone(),
            found,
        })?;
        let (blocks, datastore) = (root.join(blocks), root.join(datastore));
        let sharding = blocks.join("SHARDING");
        let text = std::fs::read_to_string(&sharding).map_err(io_error(&sharding))?;
        let shard = Shard::parse(&text).ok_or_else(|| KuboError::Sharding {
            path: sharding.clone(),
            found: text.trim().to_owned(),
        })?;
        Ok(Self {
            root: root.to_owned(),
            version,
            blocks,
            datastore,
            shard,
        })
    }

    /// The repository directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The flatfs directory (`blocks/` by default).
    pub fn blocks_dir(&self) -> &Path {
        &self.blocks
    }

    /// The LevelDB directory (`datastore/` by default).
    pub fn datastore_dir(&self) -> &Path {
        &self.datastore
    }

    /// The pins recorded by the pinner, in key order. Reads a copy of the datastore made in
    /// `scratch` (removed before returning).
    ///
    /// # Errors
    /// [`KuboError::Io`] copying; [`KuboError::LevelDb`]. A record that does not decode is
    /// returned as an `Err` element, not a failure of the whole list.
    pub fn pins(
        &self,
        scratch: &Path,
    ) -> Result<Vec<Result<KuboPin, pins::PinDecodeError>>, KuboError> {
        pins::read_pins(&self.datastore, scratch)
    }
}

/// `flock`s `path` without waiting to learn whether a live Kubo holds it (go-fs-lock locks
/// the file with `flock(LOCK_EX)`); the lock is released at once. A missing file is unlocked.
fn check_unlocked(path: &Path) -> Result<(), KuboError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(path)(e)),
    };
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(KuboError::Locked {
            path: path.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io_error(path)(e)),
    }
}

/// The flatfs and LevelDB paths of Kubo's default `datastore_spec` (`{"type": "mount",
/// "mounts": [{"mountpoint": "/blocks", "type": "flatfs", "path", ...}, {"mountpoint": "/",
/// "type": "levelds", "path", ...}]}`, the `measure` wrappers of older configs stripped by
/// Kubo before writing it). `Err` describes what it holds instead.
fn parse_spec(text: &str) -> Result<(String, String), String> {
    let spec: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("a file that is not JSON ({e})"))?;
    if spec["type"] != "mount" {
        return Err(format!("datastore type {}", spec["type"]));
    }
    let mounts = spec["mounts"].as_array().cloned().unwrap_or_default();
    let find = |mountpoint: &str, kind: &str| -> Result<String, String> {
        let mount = mounts
            .iter()
            .find(|m| m["mountpoint"] == mountpoint)
            .ok_or_else(|| format!("no {mountpoint} mount"))?;
        if mount["type"] != kind {
            return Err(format!("{} for {mountpoint}", mount["type"]));
        }
        match mount["path"].as_str() {
            Some(path) if !path.is_empty() && !path.contains("..") && !path.starts_with('/') => {
                Ok(path.to_owned())
            }
            _ => Err(format!("the {mountpoint} mount's path {}", mount["path"])),
        }
    };
    if mounts.len() != 2 {
        return Err(format!("{} mounts", mounts.len()));
    }
    Ok((find("/blocks", "flatfs")?, find("/", "levelds")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_SPEC: &str = r#"{"mounts":[{"mountpoint":"/blocks","path":"blocks","shardFunc":"/repo/flatfs/shard/v1/next-to-last/2","type":"flatfs"},{"mountpoint":"/","path":"datastore","type":"levelds"}],"type":"mount"}"#;

    #[test]
    fn default_spec_is_accepted_others_are_explained() {
        assert_eq!(
            parse_spec(DEFAULT_SPEC).unwrap(),
            ("blocks".into(), "datastore".into())
        );
        let badger =
            r#"{"mounts":[{"mountpoint":"/","path":"badgerds","type":"badgerds"}],"type":"mount"}"#;
        assert_eq!(parse_spec(badger).unwrap_err(), "1 mounts");
        let pebble = DEFAULT_SPEC.replace("levelds", "pebbleds");
        assert_eq!(parse_spec(&pebble).unwrap_err(), "\"pebbleds\" for /");
        let escape = DEFAULT_SPEC.replace("\"blocks\",", "\"../x\",");
        assert!(parse_spec(&escape).unwrap_err().contains("path"));
    }

    fn repo_with(version: &str, spec: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("version"), version).unwrap();
        std::fs::write(dir.path().join("datastore_spec"), spec).unwrap();
        std::fs::create_dir(dir.path().join("blocks")).unwrap();
        std::fs::write(
            dir.path().join("blocks/SHARDING"),
            "/repo/flatfs/shard/v1/next-to-last/2\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn versions_outside_13_to_18_are_refused() {
        for ok in ["13", "14\n", "18"] {
            let dir = repo_with(ok, DEFAULT_SPEC);
            assert!(KuboRepo::open(dir.path()).is_ok(), "version {ok}");
        }
        for bad in ["12", "19", "", "x"] {
            let dir = repo_with(bad, DEFAULT_SPEC);
            let err = KuboRepo::open(dir.path()).unwrap_err();
            assert!(matches!(err, KuboError::Version { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn a_held_lock_is_refused_a_stale_one_is_not() {
        let dir = repo_with("14", DEFAULT_SPEC);
        let lock = dir.path().join("repo.lock");
        std::fs::write(&lock, "").unwrap();
        KuboRepo::open(dir.path()).expect("a stale lock file");
        let holder = File::open(&lock).unwrap();
        holder.lock().unwrap();
        let err = KuboRepo::open(dir.path()).unwrap_err();
        assert!(matches!(err, KuboError::Locked { .. }), "{err}");
    }
}
