//! Pins (issue 16, item 4) through the CLI on a repository (no daemon) and through the API and
//! the CLI with a daemon running: ingest pins a CAR's roots unless `--pin=false`; `pin add` pins
//! a complete DAG and refuses an incomplete one naming the first missing block, pinning
//! nothing; `pin ls` lists; `pin rm` unpins.

mod common;

use std::path::Path;
use std::process::Command;

use cid::Cid;
use common::{Ports, Replica, hydrant_bin, run_json};
use multihash_codetable::{Code, MultihashDigest};

/// A DAG-CBOR root (a list of links) over raw leaves `data`, as a CARv1 holding the root and
/// the leaves whose `keep` flag is set: the root, the leaves and the CAR bytes.
fn cbor_dag(data: &[&[u8]], keep: &[bool]) -> (Cid, Vec<Cid>, Vec<u8>) {
    let leaves: Vec<Cid> = data
        .iter()
        .map(|d| Cid::new_v1(0x55, Code::Sha2_256.digest(d)))
        .collect();
    let mut root_block = vec![0x80 | u8::try_from(leaves.len()).unwrap()];
    for leaf in &leaves {
        let bytes = leaf.to_bytes();
        root_block.extend([
            0xd8,
            0x2a,
            0x58,
            u8::try_from(bytes.len() + 1).unwrap(),
            0x00,
        ]);
        root_block.extend(bytes);
    }
    let root = Cid::new_v1(0x71, Code::Sha2_256.digest(&root_block));
    let mut car = hydrant_car::encode_v1_header(&[root]);
    hydrant_car::encode_section(&root, &root_block, &mut car);
    for ((leaf, d), keep) in leaves.iter().zip(data).zip(keep) {
        if *keep {
            hydrant_car::encode_section(leaf, d, &mut car);
        }
    }
    (root, leaves, car)
}

fn hydrant(repo: &Path) -> Command {
    let mut command = Command::new(hydrant_bin());
    command.arg("--repo").arg(repo);
    command
}

fn ingest(repo: &Path, car: &[u8], extra: &[&str]) -> serde_json::Value {
    let file = repo.with_extension("car");
    std::fs::write(&file, car).unwrap();
    run_json(
        hydrant(repo)
            .args(["ingest", "--json"])
            .args(extra)
            .arg(&file),
    )
}

fn pins(repo: &Path) -> Vec<serde_json::Value> {
    let out = hydrant(repo)
        .args(["pin", "ls", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn roots_are_pinned_and_incomplete_dags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    run_json(hydrant(&repo).args(["init", "--json"]));
    std::fs::write(repo.join("config.toml"), "[dht]\nenabled = false\n").unwrap();

    // Offline: ingest pins the roots by default, not with --pin=false.
    let (complete, _, car) = cbor_dag(&[b"leaf one", b"leaf two"], &[true, true]);
    let summary = ingest(&repo, &car, &[]);
    assert_eq!(summary["pinned"], serde_json::json!([complete.to_string()]));
    let (partial, leaves, car) = cbor_dag(&[b"kept leaf", b"absent leaf"], &[true, false]);
    let summary = ingest(&repo, &car, &["--pin=false"]);
    assert_eq!(summary["pinned"], serde_json::json!([]));
    let listed = pins(&repo);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["cid"], complete.to_string());

    // An incomplete DAG is refused, naming the missing block; nothing is pinned.
    let out = hydrant(&repo)
        .args(["pin", "add"])
        .arg(partial.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&leaves[1].to_string()), "{stderr}");
    assert_eq!(pins(&repo).len(), 1);

    // Unpin offline, then pin again with a name.
    let removed = run_json(
        hydrant(&repo)
            .args(["pin", "rm", "--json"])
            .arg(complete.to_string()),
    );
    assert_eq!(removed["removed"], true);
    assert!(pins(&repo).is_empty());
    let added = run_json(
        hydrant(&repo)
            .args(["pin", "add", "--json", "--name", "docs"])
            .arg(complete.to_string()),
    );
    assert_eq!(added["new"], true);
    assert_eq!(added["pin"]["name"], "docs");

    // With a daemon: the API and the CLI through it.
    let daemon = Replica::start(&repo, Ports::free());
    let api = &daemon.info.api_url;
    let http = reqwest::Client::new();
    let answer = http
        .post(format!("{api}/api/v1/pins/{partial}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 422);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains(&leaves[1].to_string()),
        "{body}"
    );
    // The missing leaf arrives; now the DAG pins.
    let (_, _, leaf_car) = cbor_dag(&[b"kept leaf", b"absent leaf"], &[false, true]);
    let summary = daemon.ingest(&leaf_car).await;
    assert_eq!(
        summary["pinned"],
        serde_json::json!([partial.to_string()]),
        "roots pinned by the API"
    );
    let answer: serde_json::Value = http
        .post(format!("{api}/api/v1/pins/{partial}?name=later"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["new"], false, "already pinned by the ingest");
    assert_eq!(answer["pin"]["name"], "later");
    let listed = pins(&repo);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let removed = run_json(
        hydrant(&repo)
            .args(["pin", "rm", "--json"])
            .arg(partial.to_string()),
    );
    assert_eq!(removed["removed"], true);
    let status = http
        .get(format!("{api}/api/v1/pins/{partial}"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    let page: serde_json::Value = http
        .get(format!("{api}/api/v1/pins"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["pins"][0]["cid"], complete.to_string());
    assert_eq!(page["pins"].as_array().unwrap().len(), 1);
    assert_eq!(page["next"], serde_json::Value::Null);
}
