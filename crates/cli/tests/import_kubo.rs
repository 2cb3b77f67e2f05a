//! `hydrant import-kubo` (issue 19, item 4) against a repository made by a real Kubo (v0.22,
//! embedded in the `kubo-python` wheel: `scripts/kubo-python.sh` installs it once,
//! `scripts/kubo-repo.py` adds files and a directory, pins them, adds one more file and unpins
//! it, and stops the node):
//!
//! - everything imports: every pinned CID, and the unpinned file, served by the gateway of a
//!   daemon started afterwards with the bytes of the manifest; the pins carry over;
//! - a second run imports nothing and reports every pin as already imported;
//! - a block file corrupted on disk is reported as corrupt and not served, the pin above it is
//!   skipped naming it, the rest imports;
//! - the Kubo repository's files are byte for byte the same afterwards;
//! - a partial import (`--pinned-only`) is finished by the next run;
//! - an unsupported repo version or datastore, or a live Kubo's lock, is refused with the reason.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cid::Cid;
use common::{Ports, Replica, hydrant_bin, run_json};
use sha2::{Digest, Sha256};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One entry of the manifest `scripts/kubo-repo.py` writes.
#[derive(Debug, serde::Deserialize)]
struct Entry {
    name: String,
    cid: String,
    pinned: bool,
    /// Path under the CID ("" for the CID itself) -> file under the output holding its bytes.
    files: BTreeMap<String, String>,
}

#[derive(Debug, serde::Deserialize)]
struct Manifest {
    entries: Vec<Entry>,
}

/// Makes a Kubo repository in `dir/repo` with the real Kubo; returns its path and manifest.
fn kubo_repo(dir: &Path) -> (PathBuf, Manifest) {
    let python = Command::new(workspace().join("scripts/kubo-python.sh"))
        .output()
        .unwrap();
    assert!(
        python.status.success(),
        "scripts/kubo-python.sh: {}",
        String::from_utf8_lossy(&python.stderr)
    );
    let python = String::from_utf8(python.stdout).unwrap();
    let made = Command::new(python.trim())
        .arg(workspace().join("scripts/kubo-repo.py"))
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "scripts/kubo-repo.py: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let manifest = std::fs::read(dir.join("manifest.json")).unwrap();
    (dir.join("repo"), serde_json::from_slice(&manifest).unwrap())
}

/// Every file under `root` (relative path -> SHA-256 of its bytes and its permissions), and
/// every directory.
fn tree(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap().to_owned();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                out.insert(relative, "dir".into());
                dirs.push(path);
            } else {
                let digest: String = Sha256::digest(std::fs::read(&path).unwrap())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
                out.insert(relative, format!("{digest} {mode:o}"));
            }
        }
    }
    out
}

/// A fresh Hydrant repository (no DHT) in `dir/hydrant`.
fn hydrant_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("hydrant");
    run_json(hydrant(&repo).args(["init", "--json"]));
    std::fs::write(repo.join("config.toml"), "[dht]\nenabled = false\n").unwrap();
    repo
}

fn hydrant(repo: &Path) -> Command {
    let mut command = Command::new(hydrant_bin());
    command.arg("--repo").arg(repo);
    command
}

fn import(repo: &Path, kubo: &Path) -> serde_json::Value {
    run_json(hydrant(repo).args(["import-kubo", "--json"]).arg(kubo))
}

/// GET `{gateway}/ipfs/{cid}/{path}`: status and body.
async fn fetch(gateway: &str, cid: &str, path: &str) -> (u16, Vec<u8>) {
    let url = if path.is_empty() {
        format!("{gateway}/ipfs/{cid}")
    } else {
        format!("{gateway}/ipfs/{cid}/{path}")
    };
    let answer = reqwest::get(&url).await.unwrap();
    let status = answer.status().as_u16();
    (
        status,
        answer.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
    )
}

fn block_files(kubo: &Path) -> usize {
    tree(&kubo.join("blocks"))
        .keys()
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_kubo_repository_imports_completely_then_resumes_as_already_imported() {
    let dir = tempfile::tempdir().unwrap();
    let (kubo, manifest) = kubo_repo(&dir.path().join("kubo"));
    let before = tree(&kubo);
    let repo = hydrant_repo(dir.path());

    let first = import(&repo, &kubo);
    let pinned: Vec<&Entry> = manifest.entries.iter().filter(|e| e.pinned).collect();
    assert_eq!(
        first["repo_version"], 14,
        "Kubo 0.22 writes repo version 14"
    );
    assert_eq!(first["imported"]["pins"], pinned.len(), "{first}");
    assert_eq!(first["skipped"]["pins"], serde_json::json!([]), "{first}");
    assert_eq!(first["corrupt"], serde_json::json!([]), "{first}");
    let blocks = first["imported"]["blocks"].as_u64().unwrap();
    let unpinned = first["imported"]["unpinned_blocks"].as_u64().unwrap();
    assert!(
        unpinned >= 1,
        "loose.bin is not pinned (nor are the directories Kubo's adder leaves): {first}"
    );
    assert_eq!(
        (blocks + unpinned) as usize,
        block_files(&kubo),
        "every block file is imported once: {first}"
    );
    assert!(blocks > 10, "big.bin is chunked: {first}");
    assert_eq!(tree(&kubo), before, "the Kubo repository is unchanged");

    // Again: nothing new, every pin already there, no block file read twice.
    let second = import(&repo, &kubo);
    assert_eq!(second["imported"]["pins"], 0, "{second}");
    assert_eq!(second["imported"]["unpinned_blocks"], 0, "{second}");
    assert_eq!(
        second["imported"]["cars"],
        serde_json::json!([]),
        "{second}"
    );
    let skipped = second["skipped"]["pins"].as_array().unwrap();
    assert_eq!(skipped.len(), pinned.len(), "{second}");
    assert!(
        skipped.iter().all(|p| p["reason"] == "already_imported"),
        "{second}"
    );
    assert_eq!(
        second["skipped"]["blocks_already_in_hydrant"],
        block_files(&kubo),
        "{second}"
    );
    assert_eq!(tree(&kubo), before, "the Kubo repository is unchanged");

    let pins = hydrant(&repo)
        .args(["pin", "ls", "--json"])
        .output()
        .unwrap();
    let mut pinned_cids: Vec<String> = String::from_utf8(pins.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["cid"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    pinned_cids.sort();
    let mut expected: Vec<String> = pinned.iter().map(|e| e.cid.clone()).collect();
    expected.sort();
    assert_eq!(pinned_cids, expected);

    let daemon = Replica::start(&repo, Ports::free());
    let source = dir.path().join("kubo");
    for entry in &manifest.entries {
        for (path, file) in &entry.files {
            let (status, body) = fetch(&daemon.info.gateway_url, &entry.cid, path).await;
            assert_eq!(status, 200, "{} {path}", entry.name);
            assert!(
                body == std::fs::read(source.join(file)).unwrap(),
                "{} {path}: bytes differ",
                entry.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_block_is_reported_and_skipped_and_the_rest_imports() {
    let dir = tempfile::tempdir().unwrap();
    let (kubo, manifest) = kubo_repo(&dir.path().join("kubo"));
    let big = manifest
        .entries
        .iter()
        .find(|e| e.name == "big.bin")
        .unwrap();
    let root: Cid = big.cid.parse().unwrap();

    // Flip one byte of big.bin's second leaf, in Kubo's blockstore.
    let kubo_repo = hydrant_kubo::KuboRepo::open(&kubo).unwrap();
    let path_of = |cid: &Cid| {
        hydrant_kubo::flatfs::block_path(kubo_repo.blocks_dir(), kubo_repo.shard, cid.hash())
    };
    let root_block = std::fs::read(path_of(&root)).unwrap();
    let leaves = hydrant_unixfs::links(&root, &root_block).unwrap();
    assert!(leaves.len() > 2, "big.bin has several leaves");
    let leaf = leaves[1];
    let leaf_path = path_of(&leaf);
    let mut bytes = std::fs::read(&leaf_path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&leaf_path, &bytes).unwrap();
    let before = tree(&kubo);

    let repo = hydrant_repo(dir.path());
    let summary = import(&repo, &kubo);
    assert_eq!(
        summary["corrupt"],
        serde_json::json!([{"cid": leaf.to_string(), "path": leaf_path}]),
        "{summary}"
    );
    assert_eq!(
        summary["skipped"]["pins"],
        serde_json::json!([{
            "cid": big.cid,
            "mode": "recursive",
            "name": "",
            "reason": "corrupt_block",
            "detail": format!("block {leaf} ({}) does not match its hash", leaf_path.display()),
        }]),
        "{summary}"
    );
    let pinned = manifest.entries.iter().filter(|e| e.pinned).count();
    assert_eq!(summary["imported"]["pins"], pinned - 1, "{summary}");
    let imported = summary["imported"]["blocks"].as_u64().unwrap()
        + summary["imported"]["unpinned_blocks"].as_u64().unwrap();
    assert_eq!(
        imported as usize,
        block_files(&kubo) - 1,
        "every block but the corrupt one, big.bin's good blocks among the unpinned: {summary}"
    );
    assert_eq!(tree(&kubo), before, "the Kubo repository is unchanged");

    let daemon = Replica::start(&repo, Ports::free());
    let gateway = &daemon.info.gateway_url;
    let (status, _) = fetch(gateway, &format!("{leaf}?format=raw"), "").await;
    assert_eq!(status, 404, "the corrupt block is not imported");
    let (status, _) = fetch(gateway, &format!("{}?format=raw", leaves[0]), "").await;
    assert_eq!(status, 200, "a good leaf of the skipped pin is");
    let source = dir.path().join("kubo");
    for entry in manifest.entries.iter().filter(|e| e.name != "big.bin") {
        for (path, file) in &entry.files {
            let (status, body) = fetch(gateway, &entry.cid, path).await;
            assert_eq!(status, 200, "{} {path}", entry.name);
            assert!(body == std::fs::read(source.join(file)).unwrap());
        }
    }
}

#[test]
fn a_partial_import_is_finished_by_the_next_run_without_repeating_it() {
    let dir = tempfile::tempdir().unwrap();
    let (kubo, manifest) = kubo_repo(&dir.path().join("kubo"));
    let repo = hydrant_repo(dir.path());
    let pinned = manifest.entries.iter().filter(|e| e.pinned).count();

    // A run that stops after the pins (as an interrupted one would, before the last CAR).
    let partial = run_json(
        hydrant(&repo)
            .args(["import-kubo", "--json", "--pinned-only"])
            .arg(&kubo),
    );
    assert_eq!(partial["imported"]["pins"], pinned, "{partial}");
    assert_eq!(partial["imported"]["unpinned_blocks"], 0, "{partial}");
    assert_eq!(partial["skipped"]["unpinned"], true, "{partial}");

    let rest = import(&repo, &kubo);
    assert_eq!(rest["imported"]["pins"], 0, "{rest}");
    assert_eq!(
        rest["skipped"]["pins"].as_array().unwrap().len(),
        pinned,
        "{rest}"
    );
    assert_eq!(
        rest["skipped"]["blocks_already_in_hydrant"], partial["imported"]["blocks"],
        "the pinned blocks are not read again: {rest}"
    );
    let unpinned = rest["imported"]["unpinned_blocks"].as_u64().unwrap();
    assert!(unpinned >= 1, "{rest}");
    assert_eq!(
        partial["imported"]["blocks"].as_u64().unwrap() + unpinned,
        block_files(&kubo) as u64,
        "{rest}"
    );
}

#[test]
fn repositories_that_cannot_be_read_faithfully_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let repo = hydrant_repo(dir.path());
    let kubo = dir.path().join("kubo");
    std::fs::create_dir_all(kubo.join("blocks")).unwrap();
    std::fs::write(
        kubo.join("blocks/SHARDING"),
        "/repo/flatfs/shard/v1/next-to-last/2\n",
    )
    .unwrap();
    let default_spec = r#"{"mounts":[{"mountpoint":"/blocks","path":"blocks","shardFunc":"/repo/flatfs/shard/v1/next-to-last/2","type":"flatfs"},{"mountpoint":"/","path":"datastore","type":"levelds"}],"type":"mount"}"#;
    let badger_spec =
        r#"{"mounts":[{"mountpoint":"/","path":"badgerds","type":"badgerds"}],"type":"mount"}"#;
    let refused = |version: &str, spec: &str, expected: &str| {
        std::fs::write(kubo.join("version"), version).unwrap();
        std::fs::write(kubo.join("datastore_spec"), spec).unwrap();
        let out = hydrant(&repo)
            .arg("import-kubo")
            .arg(&kubo)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{version} {spec}");
        assert!(stderr.contains(expected), "{stderr}");
    };
    refused("12", default_spec, "repo version \"12\" is not supported");
    refused("19", default_spec, "repo version \"19\" is not supported");
    refused("14", badger_spec, "only Kubo's default datastore");
    let lock = std::fs::File::create(kubo.join("repo.lock")).unwrap();
    lock.lock().unwrap();
    refused("14", default_spec, "a running Kubo holds this repository");
}
