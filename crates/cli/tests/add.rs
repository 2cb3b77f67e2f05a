//! `hydrant add` (issue 16) on a repository without a daemon: what is stored and pinned, what
//! `--only-hash` and hidden files change, and bad input refused with nothing stored or pinned;
//! then `get`, `ls` and `cat` through the daemon give the tree back.
//! The CIDs themselves are checked against the reference importer in `crates/unixfs` and, on
//! real files through a daemon, in `interop/test/add*.test.mjs`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Ports, Replica, committed_cars, hydrant_bin, run_json};

fn hydrant(repo: &Path) -> Command {
    let mut command = Command::new(hydrant_bin());
    command.arg("--repo").arg(repo);
    command
}

fn add(repo: &Path, args: &[&str], path: &Path) -> Output {
    hydrant(repo)
        .args(["add", "--json"])
        .args(args)
        .arg(path)
        .output()
        .unwrap()
}

/// The JSON lines of a successful `add --json`.
fn lines(out: &Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn entry<'a>(lines: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("no entry {name} in {lines:?}"))
}

#[tokio::test]
async fn add_stores_pins_and_refuses_bad_input_whole() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    run_json(hydrant(&repo).args(["init", "--json"]));
    std::fs::write(repo.join("config.toml"), "[dht]\nenabled = false\n").unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("a.txt"), b"hello\n").unwrap();
    std::fs::write(tree.join("sub/b.bin"), vec![7u8; 300_000]).unwrap();
    std::os::unix::fs::symlink("a.txt", tree.join("link")).unwrap();
    std::fs::write(tree.join(".hidden"), b"secret").unwrap();
    std::fs::write(tree.join("sub/empty"), b"").unwrap();

    // --only-hash stores nothing; hidden files change the root only with -H.
    let hashed = lines(&add(&repo, &["-r", "-n"], &tree));
    let root = entry(&hashed, "tree")["cid"].clone();
    assert!(hashed.iter().all(|l| l["name"] != "tree/.hidden"));
    let with_hidden = lines(&add(&repo, &["-r", "-n", "-H"], &tree));
    assert_ne!(entry(&with_hidden, "tree")["cid"], root);
    assert!(with_hidden.iter().any(|l| l["name"] == "tree/.hidden"));

    // Standard input, with Kubo's `ipfs add --cid-version=0` (dag-pb leaves): Kubo's well-known
    // CID of "hello\n", the same under the legacy profile.
    for args in [
        &["--cid-version", "0"][..],
        &["--profile", "unixfs-v0-2015"],
    ] {
        let mut child = hydrant(&repo)
            .args(["add", "-n", "-Q"])
            .args(args)
            .arg("-")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"hello\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN",
            "{args:?}"
        );
    }

    // A directory needs -r; a FIFO anywhere in the tree fails the whole add, naming it.
    let out = add(&repo, &[], &tree);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("use -r"));
    let fifo = tree.join("sub/pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let out = add(&repo, &["-r"], &tree);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&fifo.display().to_string()) && stderr.contains("FIFO"),
        "{stderr}"
    );
    std::fs::remove_file(&fifo).unwrap();

    // Stored: one CAR rooted at the directory, its root pinned, the same CIDs as --only-hash.
    let stored = lines(&add(&repo, &["-r"], &tree));
    assert_eq!(entry(&stored, "tree")["cid"], root);
    let car = stored.last().unwrap();
    assert_eq!(car["roots"], serde_json::json!([root]));
    assert_eq!(car["pinned"], serde_json::json!([root]));
    let unpinned = lines(&add(&repo, &["--pin=false"], &tree.join("a.txt")));
    assert_eq!(unpinned.last().unwrap()["pinned"], serde_json::json!([]));

    // Nothing of the failed adds was stored or pinned.
    let daemon = Replica::start(&repo, Ports::free());
    let cars = committed_cars(&daemon.info.api_url).await;
    assert_eq!(cars.len(), 2, "{cars:?}");
    let pins: serde_json::Value = reqwest::get(format!("{}/api/v1/pins", daemon.info.api_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pins["pins"].as_array().unwrap().len(), 1, "{pins}");
    // The file reads back through the gateway, bytes identical.
    let a = entry(&stored, "tree/a.txt")["cid"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = reqwest::get(format!("{}/ipfs/{a}?format=raw", daemon.info.gateway_url))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], b"hello\n");

    // And back out through the daemon: get (bytes identical, symlink kept, the empty file
    // included), ls, cat with a range.
    let out = dir.path().join("out");
    let got = hydrant(&repo)
        .args(["get", "-o"])
        .arg(&out)
        .arg(root.as_str().unwrap())
        .output()
        .unwrap();
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    for file in ["a.txt", "sub/b.bin", "sub/empty"] {
        assert_eq!(
            std::fs::read(out.join(file)).unwrap(),
            std::fs::read(tree.join(file)).unwrap(),
            "{file}"
        );
    }
    assert_eq!(
        std::fs::read_link(out.join("link")).unwrap(),
        Path::new("a.txt")
    );
    assert!(!out.join(".hidden").exists());
    let listed = hydrant(&repo)
        .args(["ls", &format!("{}/sub", root.as_str().unwrap())])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains(" 300000 b.bin\n") && listed.contains(" 0 empty\n"),
        "{listed}"
    );
    let cat = hydrant(&repo)
        .args(["cat", "--offset", "1", "--length", "3"])
        .arg(format!("/ipfs/{}/a.txt", root.as_str().unwrap()))
        .output()
        .unwrap();
    assert_eq!(cat.stdout, b"ell");
}
