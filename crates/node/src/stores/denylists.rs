//! Denylists (issue 17, item 3): the compact `.deny` lists of IPIP-383
//! (`../shared/specs/compact-denylist-format.md`, parsed and matched by `hydrant-denylist`)
//! applied on every path that serves or names content.
//!
//! - **Where lists come from:** every `*.deny` file in `<repository>/denylists/`, read at
//!   start-up (a list that does not parse refuses the start, naming the file and line) and
//!   again whenever a file there is added, changed or removed ([`Denylists::reload_if_changed`],
//!   polled by the daemon every `[denylist] reload_secs`; a list that does not parse then keeps
//!   the lists in force and is logged). URLs in `[denylist] urls` are fetched into that directory
//!   at start-up and every `[denylist] fetch_secs`.
//! - **Where they apply:** the index every server asks ([`DenyingLookup`] wraps it): a denied
//!   block has no location, so Bitswap answers DONT_HAVE (never the block), the gateway and the
//!   Kubo RPC API do not find it, the DHT and the Delegated Routing API do not name this node as
//!   its provider. The gateway also answers 410 Gone (or 451 when the rule's `status` hint says
//!   so) for a denied CID or CID+path ([`crate::http::denylist`]), and the announcer skips
//!   denied keys. The read cache is emptied when the lists change, so no cached copy is served.
//! - Denied content stays stored until it is deleted; a denylist only stops serving it.
//! - `hydrant_denylist_refusals_total{list}` counts refusals per list.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;
use cid::Cid;
use hydrant_denylist::{Denial, Denylist, DenylistSet, Verdict};
use hydrant_index::{BlockLocation, BlockLookup, IndexError, Multihash};

/// The directory of the repository that holds the `.deny` files.
pub const DENYLIST_DIR: &str = "denylists";

/// Largest `.deny` file read, bytes (the parser bounds rules and lines on its own).
const MAX_LIST_BYTES: u64 = 512 * 1024 * 1024;

/// What a directory held at the last load: each `.deny` file with its modification time and
/// length.
type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

/// The lists in force, reloadable, with their refusal counters.
pub struct Denylists {
    dir: PathBuf,
    set: RwLock<Arc<DenylistSet>>,
    seen: Mutex<Fingerprint>,
    refusals: Mutex<BTreeMap<Arc<str>, u64>>,
}

impl std::fmt::Debug for Denylists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Denylists")
            .field("dir", &self.dir)
            .field("lists", &self.summary())
            .finish()
    }
}

impl Denylists {
    /// The lists of `<repo_dir>/denylists/*.deny` (none when the directory does not exist).
    ///
    /// # Errors
    /// A message naming the file (and the line, from the parser) when one cannot be read or
    /// does not parse: the node refuses to start rather than serve what a list denies.
    pub fn load(repo_dir: &Path) -> Result<Self, String> {
        let dir = repo_dir.join(DENYLIST_DIR);
        let seen = fingerprint(&dir)?;
        let set = read_lists(&seen)?;
        Ok(Self {
            dir,
            set: RwLock::new(Arc::new(set)),
            seen: Mutex::new(seen),
            refusals: Mutex::default(),
        })
    }

    /// The directory the lists are read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the lists again when a `.deny` file was added, changed or removed since the last
    /// load; returns whether they changed.
    ///
    /// # Errors
    /// A message naming the file and line when a list does not parse: the lists in force stay.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let now = fingerprint(&self.dir)?;
        if *crate::lock(&self.seen) == now {
            return Ok(false);
        }
        let set = read_lists(&now)?;
        *self
            .set
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
        *crate::lock(&self.seen) = now;
        Ok(true)
    }

    fn current(&self) -> Arc<DenylistSet> {
        self.set
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether `/ipfs/{cid}/{path}` is denied (`path` percent-decoded, `""` for the CID
    /// itself); a denial is counted for its list.
    pub fn check(&self, cid: &Cid, path: &str) -> Option<Denial> {
        match self.current().check(cid, path) {
            Verdict::Allowed => None,
            Verdict::Denied(denial) => {
                *crate::lock(&self.refusals)
                    .entry(denial.list.clone())
                    .or_default() += 1;
                Some(denial)
            }
        }
    }

    /// Whether the block with `multihash` is denied (rules match CIDs by multihash).
    pub fn check_multihash(&self, multihash: &Multihash) -> Option<Denial> {
        self.check(&Cid::new_v1(0x55, *multihash), "")
    }

    /// Refusals so far, per list name.
    pub fn refusals(&self) -> BTreeMap<Arc<str>, u64> {
        crate::lock(&self.refusals).clone()
    }

    /// The lists in force: (name, rules).
    pub fn summary(&self) -> Vec<(String, usize)> {
        self.current()
            .lists()
            .iter()
            .map(|l| (l.name().to_owned(), l.rule_count()))
            .collect()
    }
}

fn fingerprint(dir: &Path) -> Result<Fingerprint, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("reading {}: {e}", dir.display())),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "deny") {
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push((path, meta.modified().ok(), meta.len()));
    }
    files.sort();
    Ok(files)
}

fn read_lists(files: &Fingerprint) -> Result<DenylistSet, String> {
    let mut lists = Vec::with_capacity(files.len());
    for (path, _, len) in files {
        if *len > MAX_LIST_BYTES {
            return Err(format!(
                "{}: {len} bytes, more than the {MAX_LIST_BYTES} a denylist may have",
                path.display()
            ));
        }
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        lists.push(Denylist::parse(&name, text).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    Ok(DenylistSet::sorted_by_name(lists))
}

/// The index as the servers see it: a denied block has no location (see the module docs).
pub struct DenyingLookup {
    /// The index.
    pub inner: Arc<dyn BlockLookup>,
    /// The lists in force.
    pub lists: Arc<Denylists>,
}

#[async_trait]
impl BlockLookup for DenyingLookup {
    async fn locations(&self, multihash: &Multihash) -> Result<Vec<BlockLocation>, IndexError> {
        if self.lists.check_multihash(multihash).is_some() {
            return Ok(Vec::new());
        }
        self.inner.locations(multihash).await
    }

    async fn contains(&self, multihash: &Multihash) -> Result<bool, IndexError> {
        if self.lists.check_multihash(multihash).is_some() {
            return Ok(false);
        }
        self.inner.contains(multihash).await
    }

    async fn locations_many(
        &self,
        multihashes: &[Multihash],
    ) -> Result<Vec<Vec<BlockLocation>>, IndexError> {
        let mut found = self.inner.locations_many(multihashes).await?;
        for (multihash, locations) in multihashes.iter().zip(found.iter_mut()) {
            if !locations.is_empty() && self.lists.check_multihash(multihash).is_some() {
                locations.clear();
            }
        }
        Ok(found)
    }
}

/// Keeps the lists current until `stop`: fetches `[denylist] urls` now and every `fetch_secs`,
/// and reloads the directory every `reload_secs`, emptying the read cache when the lists
/// changed (so no cached copy of a newly denied block is served).
pub(crate) async fn keep_current(
    services: crate::stores::services::Services,
    config: crate::config::DenylistConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let lists = services.denylists.clone();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap_or_default();
    let mut reload = tokio::time::interval(std::time::Duration::from_secs(config.reload_secs));
    let mut fetch = tokio::time::interval(std::time::Duration::from_secs(config.fetch_secs));
    for tick in [&mut reload, &mut fetch] {
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        let fetch_now = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = fetch.tick(), if !config.urls.is_empty() => true,
            _ = reload.tick() => false,
        };
        if fetch_now {
            for url in &config.urls {
                if let Err(e) = fetch_list(&client, url, lists.dir()).await {
                    tracing::warn!(%url, error = %e, "fetching a denylist failed; the last copy stays");
                }
            }
        }
        match lists.reload_if_changed() {
            Ok(true) => {
                services.blockstore.clear_cache();
                tracing::info!(lists = ?lists.summary(), "denylists reloaded");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "a denylist does not parse; the lists in force stay")
            }
        }
    }
}

/// Downloads the list at `url` (at most [`MAX_LIST_BYTES`]) into `dir` as
/// `url-<first 8 bytes of SHA-256(url), hex>.deny`, replacing the last copy atomically.
async fn fetch_list(client: &reqwest::Client, url: &str, dir: &Path) -> Result<(), String> {
    use futures::StreamExt as _;
    use sha2::Digest as _;
    let response = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
        if body.len() as u64 > MAX_LIST_BYTES {
            return Err(format!("larger than {MAX_LIST_BYTES} bytes"));
        }
    }
    let name = format!(
        "url-{}.deny",
        hex::encode(&sha2::Sha256::digest(url.as_bytes())[..8])
    );
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    crate::repo::write_atomic(&dir.join(name), &body).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_load_reload_and_refuse_bad_files() {
        let repo = tempfile::tempdir().unwrap();
        let none = Denylists::load(repo.path()).unwrap();
        assert!(none.summary().is_empty(), "no directory: no lists");

        let cid: Cid = "bafkreidgvpkjawlxz6sffxzwgooowe5yt7i6wsyg236mfoks77nywkptdq"
            .parse()
            .unwrap();
        let dir = repo.path().join(DENYLIST_DIR);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a.deny"), format!("/ipfs/{cid}\n")).unwrap();
        let lists = Denylists::load(repo.path()).unwrap();
        assert_eq!(lists.check(&cid, "").map(|d| d.line), Some(1));
        assert!(lists.check_multihash(cid.hash()).is_some());
        assert_eq!(lists.refusals().get("a.deny"), Some(&2));
        assert!(!lists.reload_if_changed().unwrap(), "nothing changed");

        // A bad list keeps the lists in force; fixing it takes effect.
        std::fs::write(dir.join("b.deny"), "/ipfs/not-a-cid\n").unwrap();
        let error = lists.reload_if_changed().unwrap_err();
        assert!(
            error.contains("b.deny") && error.contains("line 1"),
            "{error}"
        );
        assert!(lists.check(&cid, "").is_some());
        assert!(
            Denylists::load(repo.path()).is_err(),
            "a bad list refuses the start"
        );
        std::fs::remove_file(dir.join("b.deny")).unwrap();
        std::fs::remove_file(dir.join("a.deny")).unwrap();
        assert!(lists.reload_if_changed().unwrap());
        assert!(
            lists.check(&cid, "").is_none(),
            "the removed list no longer applies"
        );
    }
}
