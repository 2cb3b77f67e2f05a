//! The exporter against the reference JS exporter (`ipfs-unixfs-exporter` 16.2.2, pinned in
//! `interop/package.json`; the version Helia uses), through
//! `interop/bin/unixfs-export-reference.mjs`: DAGs made by the importer are read on both
//! sides; file bytes (whole and ranges), directory listings (names, CIDs, Tsizes, types,
//! file sizes) and the paths of whole trees must be equal. Node runs once per test. Needs
//! `node` and `interop/node_modules` (`scripts/interop.sh install`); fails, never skips,
//! without them.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

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

/// Runs the reference script once on `blocks` and `ops`; one JSON value per op.
fn reference(blocks: &Blocks, ops: &[Value]) -> Vec<Value> {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let input = json!({
        "blocks": blocks.iter().map(|(c, b)| json!([c.to_string(), hex(b)])).collect::<Vec<_>>(),
        "ops": ops,
    })
    .to_string();
    let lines: Vec<Value> =
        common::run_reference("unixfs-export-reference.mjs", "ipfs-unixfs-exporter", input)
            .iter()
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
    compare_paths(blocks, root, &dirs, &files, ranges);
}

/// Compares cat of `files` (relative path, size), ls of `dirs` and the tree of `root`.
fn compare_paths(
    blocks: &Blocks,
    root: Cid,
    dirs: &[String],
    files: &[(String, usize)],
    ranges: bool,
) {
    let (ops, expected) = plan(
        blocks,
        root,
        dirs,
        files,
        if ranges { usize::MAX } else { 0 },
    );
    check(blocks, &ops, expected);
}

/// The ops to send to JS and the answers Hydrant gives: cat of every file of `files`
/// (relative path, size), also ranged for the first `ranged` of them, ls of every directory
/// of `dirs`, and the tree of `root`.
fn plan(
    blocks: &Blocks,
    root: Cid,
    dirs: &[String],
    files: &[(String, usize)],
    ranged: usize,
) -> (Vec<Value>, Vec<Value>) {
    let at = |p: &str| {
        if p.is_empty() {
            root.to_string()
        } else {
            format!("{root}/{p}")
        }
    };
    let mut ops = Vec::new();
    let mut expect_rust = Vec::new();
    for (i, (p, len)) in files.iter().enumerate() {
        let ranges = i < ranged;
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
    for p in dirs {
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
    (ops, expect_rust)
}

/// Runs `ops` in JS (one node call) and compares with `expect_rust`; reports every
/// difference at once.
fn check(blocks: &Blocks, ops: &[Value], expect_rust: Vec<Value>) {
    let js = reference(blocks, ops);
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

/// The roots and blocks of a CARv1 file (carv1.md: varint-prefixed dag-cbor header, then
/// varint-prefixed CID + data sections).
fn read_car(path: &std::path::Path) -> (Vec<Cid>, Blocks) {
    fn varint(b: &[u8], pos: &mut usize) -> usize {
        let (mut v, mut shift) = (0usize, 0);
        loop {
            let x = b[*pos];
            *pos += 1;
            v |= usize::from(x & 0x7f) << shift;
            if x & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut pos = 0;
    let len = varint(&bytes, &mut pos);
    let header: ipld_core::ipld::Ipld =
        serde_ipld_dagcbor::from_slice(&bytes[pos..pos + len]).unwrap();
    pos += len;
    let ipld_core::ipld::Ipld::Map(h) = header else {
        panic!("CAR header")
    };
    let Some(ipld_core::ipld::Ipld::List(roots)) = h.get("roots") else {
        panic!("roots")
    };
    let roots = roots
        .iter()
        .map(|r| match r {
            ipld_core::ipld::Ipld::Link(c) => *c,
            _ => panic!("root"),
        })
        .collect();
    let mut blocks = Blocks::new();
    while pos < bytes.len() {
        let len = varint(&bytes, &mut pos);
        let mut section = std::io::Cursor::new(&bytes[pos..pos + len]);
        let cid = Cid::read_bytes(&mut section).unwrap();
        let at = pos + usize::try_from(section.position()).unwrap();
        blocks.insert(cid, Bytes::copy_from_slice(&bytes[at..pos + len]));
        pos += len;
    }
    (roots, blocks)
}

fn fixture(name: &str) -> std::path::PathBuf {
    // testdata/fixtures at the workspace root (as hydrant-testkit finds it).
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/fixtures/gateway-conformance")
        .join(name)
}

/// Kubo-made DAGs from the gateway conformance fixtures (a HAMT of multi-block files,
/// mixed raw and dag-pb leaves, duplicate files, a symlink, percent-encoded names):
/// exported whole, every directory listed and every file read (whole and ranged), compared
/// with JS.
#[test]
fn gateway_conformance_fixtures() {
    let (mut ops, mut expected, mut all) = (Vec::new(), Vec::new(), Blocks::new());
    for name in [
        "trustless_gateway_car-single-layer-hamt-with-multi-block-files.car",
        "trustless_gateway_car-subdir-with-mixed-block-files.car",
        "trustless_gateway_car-dir-with-duplicate-files.car",
        "path_gateway_unixfs-dir-with-files.car",
        "path_gateway_unixfs-symlink.car",
        "path_gateway_unixfs-dir-with-percent-encoded-filename.car",
    ] {
        let (roots, blocks) = read_car(&fixture(name));
        let root = roots[0];
        let (mut dirs, mut files) = (Vec::new(), Vec::new());
        let mut current = None;
        export_tree_with(root, getter(&blocks), |ev| {
            match ev {
                TreeEvent::Entry(e) => match &e.kind {
                    TreeEntryKind::Directory => dirs.push(e.path.clone()),
                    TreeEntryKind::File(r) => {
                        files.push((e.path.clone(), 0usize));
                        current = Some((files.len() - 1, r.size().unwrap()));
                    }
                    TreeEntryKind::Symlink(_) => {}
                },
                TreeEvent::Bytes(b) => {
                    let (i, _) = current.unwrap();
                    files[i].1 += b.len();
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            !dirs.is_empty() || !files.is_empty(),
            "{name}: nothing exported"
        );
        // 64 files of each fixture read whole, 8 of them ranged (JS resolves each op's path
        // from the root, ~6 ms an op through the HAMT); every file is read by the tree
        // export above and listed with its size by `ls`.
        files.truncate(64);
        let (mut o, mut e) = plan(&blocks, root, &dirs, &files, 8);
        ops.append(&mut o);
        expected.append(&mut e);
        all.extend(blocks);
    }
    check(&all, &ops, expected);
}

/// unixfs.md § "Range Requests with Missing Blocks": the middle block of the 3 KiB file is
/// missing; the first and last KiB read, a range touching the middle names its CID.
#[test]
fn range_requests_with_missing_blocks() {
    let (roots, blocks) = read_car(&fixture(
        "trustless_gateway_car-file-3k-and-3-blocks-missing-block.car",
    ));
    let root = roots[0];
    assert_eq!(
        root.to_string(),
        "QmYhmPjhFjYFyaoiuNzYv8WGavpSRDwdHWe5B4M5du5Rtk"
    );
    let node = PbNode::decode(&root, &blocks[&root]).unwrap();
    let middle = node.links[1].cid;
    assert!(!blocks.contains_key(&middle));
    let read = |offset, length| {
        let mut v = Vec::new();
        let mut fetched = Vec::new();
        read_file_with(
            root,
            "file-3k",
            offset,
            Some(length),
            |c: &Cid| {
                fetched.push(*c);
                Ok(blocks.get(c).cloned())
            },
            |b| {
                v.extend_from_slice(&b);
                Ok(())
            },
        )
        .map(|_| (v, fetched))
    };
    let (first, fetched) = read(0, 1024).unwrap();
    assert_eq!((first.len(), fetched.len()), (1024, 2));
    assert_eq!(
        fetched[1].to_string(),
        "QmPKt7ptM2ZYSGPUc8PmPT2VBkLDK3iqpG9TBJY7PCE9rF"
    );
    let (last, fetched) = read(2048, 1024).unwrap();
    assert_eq!((last.len(), fetched.len()), (1024, 2));
    assert_eq!(
        fetched[1].to_string(),
        "QmWXY482zQdwecnfBsj78poUUuPXvyw2JAFAEMw4tzTavV"
    );
    match read(1000, 100) {
        Err(ExportError::MissingBlock { cid, path }) => {
            assert_eq!(cid, middle);
            assert_eq!(path, "file-3k");
        }
        other => panic!("{other:?}"),
    }
}
