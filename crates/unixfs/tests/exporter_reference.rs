//! The exporter against the reference JS exporter (`ipfs-unixfs-exporter` 16.2.2, pinned in
//! `interop/package.json`; the version Helia uses), through
//! `interop/bin/unixfs-export-reference.mjs`: DAGs made by the importer are read on both
//! sides; file bytes (whole and ranges), directory listings (names, CIDs, Tsizes, types,
//! file sizes) and the paths of whole trees must be equal. Node runs once per test. Needs
//! `node` and `interop/node_modules` (`scripts/interop.sh install`); fails, never skips,
//! without them.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use bytes::Bytes;
use cid::Cid;
use hydrant_unixfs::exporter::{
    EntryType, ExportError, TreeEntryKind, TreeEvent, export_tree_with, list_dir_with,
    read_file_with, resolve_with,
};
use hydrant_unixfs::{
    DataType, DirectoryBuilder, FileImporter, ImportProfile, Imported, Metadata, PbLink, PbNode,
    UnixFsData, symlink_block,
};
use multihash_codetable::{Code, MultihashDigest};
use serde_json::{Value, json};

#[derive(Clone, Debug)]
enum Tree {
    File(Vec<u8>),
    Dir(Vec<(String, Tree)>),
    Symlink(String),
}

type Blocks = HashMap<Cid, Bytes>;

fn import(blocks: &mut Blocks, p: &ImportProfile, tree: &Tree) -> Imported {
    let done = match tree {
        Tree::File(bytes) => {
            let mut f = FileImporter::new(p, Metadata::default()).unwrap();
            let mut all = f.push(bytes);
            let mut done = f.finish();
            all.append(&mut done.blocks);
            done.blocks = all;
            done
        }
        Tree::Dir(entries) => {
            let mut d = DirectoryBuilder::new(p, Metadata::default()).unwrap();
            for (name, child) in entries {
                let c = import(blocks, p, child);
                d.add(name, c.cid, c.size).unwrap();
            }
            d.finish().unwrap()
        }
        Tree::Symlink(t) => symlink_block(p, t, Metadata::default()).unwrap(),
    };
    for b in &done.blocks {
        blocks.insert(b.cid, b.data.clone());
    }
    done
}

/// Deterministic bytes (an LCG), `n` of them.
fn bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect()
}

/// Paths (relative, `/`-joined) of every directory and file in `tree`.
fn paths(tree: &Tree, base: &str, dirs: &mut Vec<String>, files: &mut Vec<(String, usize)>) {
    match tree {
        Tree::File(b) => files.push((base.to_string(), b.len())),
        Tree::Symlink(_) => {}
        Tree::Dir(entries) => {
            dirs.push(base.to_string());
            for (name, child) in entries {
                let p = if base.is_empty() {
                    name.clone()
                } else {
                    format!("{base}/{name}")
                };
                paths(child, &p, dirs, files);
            }
        }
    }
}

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// Runs the reference script once on `blocks` and `ops`; one JSON value per op.
fn reference(blocks: &Blocks, ops: &[Value]) -> Vec<Value> {
    let dir = interop_dir();
    let hint = "run `scripts/interop.sh install` (needs node >= 20 and npm) to install \
                interop/node_modules with ipfs-car (and its ipfs-unixfs-exporter)";
    assert!(
        dir.join("node_modules/ipfs-unixfs-exporter").is_dir(),
        "interop/node_modules/ipfs-unixfs-exporter is missing: {hint}"
    );
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let input = json!({
        "blocks": blocks.iter().map(|(c, b)| json!([c.to_string(), hex(b)])).collect::<Vec<_>>(),
        "ops": ops,
    })
    .to_string();
    let mut child = Command::new("node")
        .arg("bin/unixfs-export-reference.mjs")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node ({e}): {hint}"));
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "unixfs-export-reference.mjs failed: {}\n({hint})",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), ops.len(), "one line per op");
    lines
}

fn getter(blocks: &Blocks) -> impl FnMut(&Cid) -> Result<Option<Bytes>, ExportError> + '_ {
    |c| Ok(blocks.get(c).cloned())
}

fn js_type(t: &str) -> &str {
    match t {
        "hamt-sharded-directory" => "directory",
        t => t,
    }
}

fn rust_type(t: EntryType) -> &'static str {
    match t {
        EntryType::Directory => "directory",
        EntryType::File => "file",
        EntryType::Raw => "raw",
        EntryType::Symlink => "symlink",
        EntryType::Unknown => "unknown",
    }
}

/// Compares cat (whole and ranges), ls of every directory and the tree of `root` with JS.
fn compare(blocks: &Blocks, root: Cid, tree: &Tree, ranges: bool) {
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    paths(tree, "", &mut dirs, &mut files);
    let at = |p: &str| {
        if p.is_empty() {
            root.to_string()
        } else {
            format!("{root}/{p}")
        }
    };
    let mut ops = Vec::new();
    let mut expect_rust = Vec::new();
    for (p, len) in &files {
        let len = *len as u64;
        let mut wanted = vec![
            (None, None),
            (Some(len / 3), Some(len / 2 + 1)),
            (Some(len.saturating_sub(1)), None),
        ];
        wanted.push((Some(1), Some(len)));
        // JS refuses an offset past the end (Hydrant reads nothing there).
        wanted.retain(|r| r.0.is_none_or(|o| o <= len) && (ranges || r.0.is_none()));
        for (offset, length) in wanted {
            ops.push(json!({"cat": at(p), "offset": offset, "length": length}));
            let r = resolve_with(root, p, getter(blocks)).unwrap();
            let mut v = Vec::new();
            let size = read_file_with(r.cid, p, offset.unwrap_or(0), length, getter(blocks), |b| {
                v.extend_from_slice(&b);
                Ok(())
            })
            .unwrap();
            let hex: String = v.iter().map(|x| format!("{x:02x}")).collect();
            expect_rust.push(json!({"cid": r.cid.to_string(), "size": size, "bytes": hex}));
        }
    }
    for p in &dirs {
        ops.push(json!({"ls": at(p)}));
        let r = resolve_with(root, p, getter(blocks)).unwrap();
        let entries = list_dir_with(r.cid, p, true, getter(blocks)).unwrap();
        let entries: Vec<Value> = entries
            .iter()
            .map(|e| {
                json!({
                    "name": e.name, "cid": e.cid.to_string(), "tsize": e.tsize.unwrap_or(0),
                    "type": rust_type(e.kind), "size": e.filesize,
                })
            })
            .collect();
        expect_rust.push(json!({"cid": r.cid.to_string(), "entries": entries}));
    }
    ops.push(json!({"tree": root.to_string()}));
    let mut tree_paths = Vec::new();
    export_tree_with(root, getter(blocks), |ev| {
        if let TreeEvent::Entry(e) = ev {
            let t = match &e.kind {
                TreeEntryKind::Directory => "directory",
                TreeEntryKind::File(_) if e.cid.codec() == 0x55 => "raw",
                TreeEntryKind::File(_) => "file",
                TreeEntryKind::Symlink(_) => "symlink",
            };
            tree_paths.push((e.path.clone(), t.to_string()));
        }
        Ok(())
    })
    .unwrap();
    tree_paths.sort();
    expect_rust.push(json!({"paths": tree_paths}));

    let js = reference(blocks, &ops);
    let mut failures = Vec::new();
    for ((op, mut j), r) in ops.iter().zip(js).zip(expect_rust) {
        // Normalise JS: listing sorted by name, types without the HAMT distinction, sizes
        // only for files; tree paths sorted.
        if let Some(entries) = j.get_mut("entries").and_then(Value::as_array_mut) {
            entries.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
            for e in entries.iter_mut() {
                let t = js_type(e["type"].as_str().unwrap()).to_string();
                if !matches!(t.as_str(), "file" | "raw") {
                    e["size"] = Value::Null;
                }
                e["type"] = Value::String(t);
            }
        }
        if let Some(paths) = j.get_mut("paths").and_then(Value::as_array_mut) {
            for p in paths.iter_mut() {
                p[1] = Value::String(js_type(p[1].as_str().unwrap()).to_string());
            }
            paths.sort_by_key(|p| p[0].as_str().unwrap().to_string());
        }
        if j != r {
            failures.push(format!("{op}\n  js:   {j}\n  rust: {r}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn sample_tree() -> Tree {
    let mut hamt: Vec<(String, Tree)> = (0..40)
        .map(|i| (format!("entry-{i:02}"), Tree::File(bytes(i * 7, i as u32))))
        .collect();
    hamt.push((
        "zz sub".into(),
        Tree::Dir(vec![("x".into(), Tree::File(bytes(33, 9)))]),
    ));
    Tree::Dir(vec![
        (
            "a".into(),
            Tree::Dir(vec![
                ("big.bin".into(), Tree::File(bytes(1000, 1))),
                ("empty".into(), Tree::File(Vec::new())),
                ("link".into(), Tree::Symlink("big.bin".into())),
                ("one".into(), Tree::File(vec![7])),
            ]),
        ),
        ("empty dir".into(), Tree::Dir(Vec::new())),
        ("many".into(), Tree::Dir(hamt)),
        ("ünïcødé 日本.txt".into(), Tree::File(bytes(95, 3))),
    ])
}

fn check_profile(p: ImportProfile) {
    let mut blocks = Blocks::new();
    let tree = sample_tree();
    let root = import(&mut blocks, &p, &tree);
    compare(&blocks, root.cid, &tree, true);
}

/// CIDv0, dag-pb leaves, 10-byte chunks, 3 links a node (deep files), HAMTs of fanout 16.
#[test]
fn v0_dag_pb_leaves_deep_files_and_hamt() {
    let mut p = ImportProfile::unixfs_v0_2015();
    p.chunk_size = 10;
    p.max_links = 3;
    p.hamt_threshold = Some(500);
    p.hamt_fanout = 16;
    check_profile(p);
}

/// CIDv1, raw leaves, 16-byte chunks, 4 links a node, HAMTs of fanout 256.
#[test]
fn v1_raw_leaves_and_hamt() {
    let mut p = ImportProfile::unixfs_v1_2025();
    p.chunk_size = 16;
    p.max_links = 4;
    p.hamt_threshold = Some(400);
    check_profile(p);
}

/// A hand-made file whose root carries data before its children (dag-pb and raw leaves)
/// and a directory holding it.
#[test]
fn internal_node_with_data() {
    let sha = |codec, d: &[u8]| Cid::new_v1(codec, Code::Sha2_256.digest(d));
    let mut blocks = Blocks::new();
    let raw = sha(0x55, b"defg");
    blocks.insert(raw, Bytes::from_static(b"defg"));
    let mut leaf = UnixFsData::new(DataType::File);
    leaf.data = Bytes::from_static(b"hij");
    leaf.filesize = 3;
    let leaf_bytes = PbNode {
        links: vec![],
        data: Some(Bytes::from(leaf.encode())),
    }
    .encode();
    let leaf_cid = sha(0x70, &leaf_bytes);
    blocks.insert(leaf_cid, Bytes::from(leaf_bytes));
    let mut u = UnixFsData::new(DataType::File);
    u.data = Bytes::from_static(b"abc");
    u.filesize = 10;
    u.blocksizes = vec![4, 3];
    let link = |cid, tsize| PbLink {
        cid,
        name: Some(String::new()),
        tsize: Some(tsize),
    };
    let root_bytes = PbNode {
        links: vec![link(raw, 4), link(leaf_cid, 9)],
        data: Some(Bytes::from(u.encode())),
    }
    .encode();
    let file = sha(0x70, &root_bytes);
    blocks.insert(file, Bytes::from(root_bytes.clone()));
    let mut d =
        DirectoryBuilder::new(&ImportProfile::unixfs_v1_2025(), Metadata::default()).unwrap();
    d.add("f", file, root_bytes.len() as u64 + 13).unwrap();
    let dir = d.finish().unwrap();
    for b in &dir.blocks {
        blocks.insert(b.cid, b.data.clone());
    }
    let tree = Tree::Dir(vec![("f".into(), Tree::File(b"abcdefghij".to_vec()))]);
    // Whole reads only: see below for ranges.
    compare(&blocks, dir.cid, &tree, false);
    // Known difference: ipfs-unixfs-exporter 16.2.2 places the children of a node that also
    // carries data as if the data were not there in ranged reads (offset 4, length 2 gives
    // "hi" instead of "ef"), and never settles some others (offset 3 length 6, offset 9:
    // node exits 13). Hydrant follows the spec (own data, then the children). Pinned so a
    // JS fix shows up here.
    let js = reference(
        &blocks,
        &[json!({"cat": file.to_string(), "offset": 4, "length": 2})],
    );
    assert_eq!(js[0]["bytes"], "6869", "JS changed: {}", js[0]);
    for (offset, length, want) in [
        (4, Some(2), &b"ef"[..]),
        (3, Some(6), b"defghi"),
        (9, None, b"j"),
        (0, None, b"abcdefghij"),
    ] {
        let mut v = Vec::new();
        read_file_with(file, "f", offset, length, getter(&blocks), |b| {
            v.extend_from_slice(&b);
            Ok(())
        })
        .unwrap();
        assert_eq!(v, want, "offset {offset} length {length:?}");
    }
}
