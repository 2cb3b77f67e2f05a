//! The exporter against the importer: trees of every shape go in through the importer and
//! must come back out unchanged (bytes, names, symlinks, metadata); range reads fetch only
//! the blocks covering the range; missing and corrupt blocks give the documented errors.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use cid::Cid;
use hydrant_unixfs::exporter::{
    DirEntry, EntryType, ExportError, FileReader, FileStep, TreeEntryKind, TreeEvent,
    export_tree_with, list_dir_with, read_file_with, resolve_with,
};
use hydrant_unixfs::{
    DataType, DirectoryBuilder, FileImporter, ImportProfile, Imported, Metadata, PbLink, PbNode,
    UnixFsData, symlink_block,
};
use multihash_codetable::{Code, MultihashDigest};
use proptest::prelude::*;

/// Blocks by CID, with a log of the CIDs fetched.
#[derive(Default)]
struct Store {
    blocks: HashMap<Cid, Bytes>,
    fetched: RefCell<Vec<Cid>>,
}

impl Store {
    fn put_all(&mut self, imported: &Imported) {
        for b in &imported.blocks {
            self.blocks.insert(b.cid, b.data.clone());
        }
    }

    fn get(&self) -> impl FnMut(&Cid) -> Result<Option<Bytes>, ExportError> + '_ {
        move |cid| {
            self.fetched.borrow_mut().push(*cid);
            Ok(self.blocks.get(cid).cloned())
        }
    }

    fn put(&mut self, cid: Cid, data: Vec<u8>) {
        self.blocks.insert(cid, Bytes::from(data));
    }
}

/// A tree to import.
#[derive(Clone, Debug)]
enum Tree {
    File(Vec<u8>),
    Dir(Metadata, BTreeMap<String, Tree>),
    Symlink(String),
}

/// What the exporter gives back, by relative path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Out {
    Dir(Option<u32>, Option<(i64, u32)>),
    File(Vec<u8>),
    Symlink(String),
}

fn import(store: &mut Store, profile: &ImportProfile, tree: &Tree) -> Imported {
    match tree {
        Tree::File(bytes) => {
            let mut f = FileImporter::new(profile, Metadata::default()).unwrap();
            let mut blocks = Vec::new();
            // Push in uneven slices.
            for piece in bytes.chunks(7) {
                blocks.extend(f.push(piece));
            }
            let mut done = f.finish();
            blocks.append(&mut done.blocks);
            done.blocks = blocks;
            store.put_all(&done);
            done
        }
        Tree::Dir(meta, entries) => {
            let mut d = DirectoryBuilder::new(profile, *meta).unwrap();
            for (name, child) in entries {
                let c = import(store, profile, child);
                d.add(name, c.cid, c.size).unwrap();
            }
            let done = d.finish().unwrap();
            store.put_all(&done);
            done
        }
        Tree::Symlink(target) => {
            let done = symlink_block(profile, target, Metadata::default()).unwrap();
            store.put_all(&done);
            done
        }
    }
}

fn expected(tree: &Tree, path: &str, out: &mut BTreeMap<String, Out>) {
    match tree {
        Tree::File(b) => {
            out.insert(path.to_string(), Out::File(b.clone()));
        }
        Tree::Symlink(t) => {
            out.insert(path.to_string(), Out::Symlink(t.clone()));
        }
        Tree::Dir(meta, entries) => {
            out.insert(
                path.to_string(),
                Out::Dir(meta.mode.map(|m| m & 0o7777), meta.mtime),
            );
            for (name, child) in entries {
                let p = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}/{name}")
                };
                expected(child, &p, out);
            }
        }
    }
}

/// Exports the tree under `root`, checking that every directory comes before its contents.
fn export(store: &Store, root: Cid) -> Result<BTreeMap<String, Out>, ExportError> {
    let mut out = BTreeMap::new();
    let mut order = Vec::new();
    let mut current: Option<String> = None;
    export_tree_with(root, store.get(), |ev| {
        match ev {
            TreeEvent::Entry(e) => {
                order.push(e.path.clone());
                let o = match &e.kind {
                    TreeEntryKind::Directory => Out::Dir(e.mode, e.mtime),
                    TreeEntryKind::File(_) => Out::File(Vec::new()),
                    TreeEntryKind::Symlink(t) => {
                        Out::Symlink(String::from_utf8_lossy(t).into_owned())
                    }
                };
                assert!(out.insert(e.path.clone(), o).is_none(), "{} twice", e.path);
                current = Some(e.path.clone());
            }
            TreeEvent::Bytes(b) => {
                assert!(!b.is_empty());
                let p = current.as_ref().unwrap();
                let Some(Out::File(v)) = out.get_mut(p) else {
                    panic!("bytes for {p}")
                };
                v.extend_from_slice(&b);
            }
        }
        Ok(())
    })?;
    // Parents before children.
    for (i, p) in order.iter().enumerate() {
        if let Some((parent, _)) = p.rsplit_once('/') {
            assert!(
                order[..i].iter().any(|q| q == parent),
                "{p} before {parent}"
            );
        } else if !p.is_empty() {
            assert_eq!(order[0], "");
        }
    }
    Ok(out)
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.é日本 -]{1,6}".prop_filter("restricted", |n| n != "." && n != "..")
}

fn metadata() -> impl Strategy<Value = Metadata> {
    (
        proptest::option::of(0u32..0o10000),
        proptest::option::of((0i64..2_000_000_000, 0u32..1_000_000_000)),
    )
        .prop_map(|(mode, mtime)| Metadata { mode, mtime })
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Tree::File),
        1 => "[a-z/.]{0,12}".prop_map(Tree::Symlink),
    ];
    leaf.prop_recursive(4, 40, 8, |inner| {
        (
            metadata(),
            proptest::collection::btree_map(name(), inner, 0..8),
        )
            .prop_map(|(m, e)| Tree::Dir(m, e))
    })
}

fn profile() -> impl Strategy<Value = ImportProfile> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        1usize..40,
        2usize..5,
        proptest::option::of(0u64..400),
        prop_oneof![Just(8u16), Just(16), Just(256)],
    )
        .prop_map(|(v1, cidv1, raw, chunk, links, threshold, fanout)| {
            let mut p = if v1 {
                ImportProfile::unixfs_v1_2025()
            } else {
                ImportProfile::unixfs_v0_2015()
            };
            p.cid_version = u8::from(cidv1);
            p.raw_leaves = raw;
            p.chunk_size = chunk;
            p.max_links = links;
            p.hamt_threshold = threshold;
            p.hamt_fanout = fanout;
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Import then export gives back exactly the input tree.
    #[test]
    fn round_trip(profile in profile(), meta in metadata(), entries in proptest::collection::btree_map(name(), tree(), 0..12)) {
        let tree = Tree::Dir(meta, entries);
        let mut store = Store::default();
        let root = import(&mut store, &profile, &tree);
        let mut want = BTreeMap::new();
        expected(&tree, "", &mut want);
        let got = export(&store, root.cid).unwrap();
        prop_assert_eq!(got, want);
        // Every file resolves by path and reads the same on its own; every directory lists.
        let mut all = BTreeMap::new();
        expected(&tree, "", &mut all);
        for (path, o) in &all {
            let r = resolve_with(root.cid, path, store.get()).unwrap();
            match o {
                Out::File(bytes) => {
                    let mut v = Vec::new();
                    let size = read_file_with(r.cid, path, 0, None, store.get(), |b| { v.extend_from_slice(&b); Ok(()) }).unwrap();
                    prop_assert_eq!(size, bytes.len() as u64);
                    prop_assert_eq!(&v, bytes);
                }
                Out::Dir(..) => {
                    let listed = list_dir_with(r.cid, path, true, store.get()).unwrap();
                    let names: Vec<&str> = listed.iter().map(|e| e.name.as_str()).collect();
                    let prefix = if path.is_empty() { String::new() } else { format!("{path}/") };
                    let want: Vec<&str> = all.keys()
                        .filter_map(|k| k.strip_prefix(&prefix))
                        .filter(|k| !k.is_empty() && !k.contains('/'))
                        .collect();
                    prop_assert_eq!(names, want);
                    for e in &listed {
                        let child = &all[&format!("{prefix}{}", e.name)];
                        match child {
                            Out::File(b) => {
                                prop_assert!(matches!(e.kind, EntryType::File | EntryType::Raw));
                                prop_assert_eq!(e.filesize, Some(b.len() as u64));
                            }
                            Out::Dir(..) => prop_assert_eq!(e.kind, EntryType::Directory),
                            Out::Symlink(_) => prop_assert_eq!(e.kind, EntryType::Symlink),
                        }
                    }
                }
                Out::Symlink(_) => {}
            }
        }
    }

    /// A range read equals the slice of the input and fetches exactly the leaves covering
    /// it, plus only internal nodes above them.
    #[test]
    fn range_reads_fetch_only_covering_blocks(
        raw in any::<bool>(), chunk in 1usize..16, links in 2usize..4,
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        offset in 0u64..450, length in proptest::option::of(0u64..450),
    ) {
        let mut p = ImportProfile::unixfs_v0_2015();
        p.raw_leaves = raw;
        p.chunk_size = chunk;
        p.max_links = links;
        let mut store = Store::default();
        let file = import(&mut store, &p, &Tree::File(bytes.clone()));
        let mut got = Vec::new();
        read_file_with(file.cid, "f", offset, length, store.get(), |b| { got.extend_from_slice(&b); Ok(()) }).unwrap();
        let len = bytes.len() as u64;
        let a = offset.min(len);
        let b = length.map_or(len, |l| offset.saturating_add(l).min(len));
        let b = b.max(a);
        prop_assert_eq!(&got[..], &bytes[a as usize..b as usize]);
        let fetched = store.fetched.borrow().clone();
        let is_leaf = |c: &Cid| c.codec() == 0x55
            || PbNode::decode(c, &store.blocks[c]).unwrap().links.is_empty();
        let leaves = fetched.iter().filter(|c| is_leaf(c)).count() as u64;
        let want_leaves = if len <= chunk as u64 {
            1 // the root is the only block, always read
        } else if a == b {
            0
        } else {
            (b - 1) / chunk as u64 - a / chunk as u64 + 1
        };
        prop_assert_eq!(leaves, want_leaves, "fetched {:?}", fetched);
        // Every internal node fetched (but the root) has a fetched child. (Equal chunks are
        // one block, fetched once per occurrence: the leaf count above counts occurrences.)
        for c in fetched.iter().filter(|c| !is_leaf(c) && **c != file.cid) {
            let node = PbNode::decode(c, &store.blocks[c]).unwrap();
            prop_assert!(node.links.iter().any(|l| fetched.contains(&l.cid)));
        }
    }
}

fn sha(codec: u64, data: &[u8]) -> Cid {
    Cid::new_v1(codec, Code::Sha2_256.digest(data))
}

/// A dag-pb file node block.
fn file_node(data: &[u8], filesize: u64, links: &[(Cid, u64)]) -> (Cid, Vec<u8>) {
    let mut u = UnixFsData::new(DataType::File);
    u.data = Bytes::copy_from_slice(data);
    u.filesize = filesize;
    u.blocksizes = links.iter().map(|l| l.1).collect();
    let node = PbNode {
        links: links
            .iter()
            .map(|(c, s)| PbLink {
                cid: *c,
                name: Some(String::new()),
                tsize: Some(*s),
            })
            .collect(),
        data: Some(Bytes::from(u.encode())),
    };
    let bytes = node.encode();
    (sha(0x70, &bytes), bytes)
}

fn read_all(store: &Store, cid: Cid) -> Result<Vec<u8>, ExportError> {
    let mut v = Vec::new();
    read_file_with(cid, "f", 0, None, store.get(), |b| {
        v.extend_from_slice(&b);
        Ok(())
    })?;
    Ok(v)
}

#[test]
fn internal_node_data_comes_before_children_and_identity_leaves_are_read_inline() {
    let mut store = Store::default();
    let leaf = sha(0x55, b"def");
    store.put(leaf, b"def".to_vec());
    let ident = Cid::new_v1(0x55, multihash::Multihash::wrap(0, b"ghi").unwrap());
    let (root, bytes) = file_node(b"abc", 9, &[(leaf, 3), (ident, 3)]);
    store.put(root, bytes);
    assert_eq!(read_all(&store, root).unwrap(), b"abcdefghi");
    assert!(
        !store.fetched.borrow().contains(&ident),
        "identity CID fetched"
    );
    // A range inside the root's own data and the identity leaf only.
    store.fetched.borrow_mut().clear();
    let mut v = Vec::new();
    read_file_with(root, "f", 1, Some(1), store.get(), |b| {
        v.extend_from_slice(&b);
        Ok(())
    })
    .unwrap();
    assert_eq!(v, b"b");
    assert_eq!(*store.fetched.borrow(), vec![root]);
}

#[test]
fn size_disagreements_are_errors() {
    let mut store = Store::default();
    let leaf = sha(0x55, b"def");
    store.put(leaf, b"def".to_vec());
    // filesize says 7, data + blocksizes say 6.
    let (bad_filesize, b) = file_node(b"abc", 7, &[(leaf, 3)]);
    store.put(bad_filesize, b);
    let e = read_all(&store, bad_filesize).unwrap_err();
    assert!(
        matches!(e, ExportError::SizeMismatch { cid, expected: 7, actual: 6, .. } if cid == bad_filesize),
        "{e}"
    );
    // blocksizes says 4, the leaf has 3.
    let (bad_blocksize, b) = file_node(b"abc", 7, &[(leaf, 4)]);
    store.put(bad_blocksize, b);
    let e = read_all(&store, bad_blocksize).unwrap_err();
    assert!(
        matches!(e, ExportError::SizeMismatch { cid, expected: 4, actual: 3, .. } if cid == leaf),
        "{e}"
    );
    // blocksizes and links of different lengths.
    let mut u = UnixFsData::new(DataType::File);
    u.filesize = 3;
    u.blocksizes = vec![3, 0];
    let node = PbNode {
        links: vec![PbLink {
            cid: leaf,
            name: None,
            tsize: None,
        }],
        data: Some(Bytes::from(u.encode())),
    };
    let b = node.encode();
    let c = sha(0x70, &b);
    store.put(c, b);
    let e = read_all(&store, c).unwrap_err();
    assert!(
        matches!(&e, ExportError::Dag { .. }) && e.cid() == Some(&c),
        "{e}"
    );
}

/// A small tree: `a/b.txt` (3 chunks), `a/link` -> `b.txt`, `c` (empty dir).
fn small_tree(store: &mut Store, profile: &ImportProfile) -> (Imported, Tree) {
    let mut a = BTreeMap::new();
    a.insert("b.txt".to_string(), Tree::File(b"0123456789".to_vec()));
    a.insert("link".to_string(), Tree::Symlink("b.txt".into()));
    let mut root = BTreeMap::new();
    root.insert("a".to_string(), Tree::Dir(Metadata::default(), a));
    root.insert(
        "c".to_string(),
        Tree::Dir(Metadata::default(), BTreeMap::new()),
    );
    let tree = Tree::Dir(Metadata::default(), root);
    (import(store, profile, &tree), tree)
}

fn tiny(raw: bool) -> ImportProfile {
    let mut p = ImportProfile::unixfs_v0_2015();
    p.chunk_size = 4;
    p.max_links = 2;
    p.raw_leaves = raw;
    p
}

#[test]
fn resolve_errors_name_the_segment_and_the_cid() {
    let mut store = Store::default();
    let (root, _) = small_tree(&mut store, &tiny(false));
    let a = resolve_with(root.cid, "a", store.get()).unwrap().cid;
    let e = resolve_with(root.cid, "a/nope/x", store.get()).unwrap_err();
    match &e {
        ExportError::NotFound { segment, cid, path } => {
            assert_eq!(segment, "nope");
            assert_eq!(*cid, a);
            assert_eq!(*path, format!("{}/a", root.cid));
        }
        _ => panic!("{e}"),
    }
    let e = resolve_with(root.cid, "a/b.txt/x", store.get()).unwrap_err();
    assert!(
        matches!(&e, ExportError::NotADirectory { segment, .. } if segment == "x"),
        "{e}"
    );
    let e = resolve_with(root.cid, "a/../../a", store.get()).unwrap_err();
    assert!(matches!(e, ExportError::InvalidPath { .. }), "{e}");
    let r = resolve_with(root.cid, "./a/../a//b.txt", store.get()).unwrap();
    assert_eq!(r.name.as_deref(), Some("b.txt"));
    // `ls` and `cat` of the wrong kind.
    let e = list_dir_with(r.cid, "x", false, store.get()).unwrap_err();
    assert!(
        matches!(
            e,
            ExportError::WrongType {
                wanted: "directory",
                ..
            }
        ),
        "{e}"
    );
    let e = read_all(&store, a).unwrap_err();
    assert!(
        matches!(
            e,
            ExportError::WrongType {
                found: "directory",
                wanted: "file",
                ..
            }
        ),
        "{e}"
    );
    // A missing directory block on the path.
    store.blocks.remove(&a);
    let e = resolve_with(root.cid, "a/b.txt", store.get()).unwrap_err();
    assert!(
        matches!(&e, ExportError::MissingBlock { cid, path } if *cid == a && path.ends_with("/a")),
        "{e}"
    );
}

#[test]
fn missing_and_corrupt_blocks_are_named() {
    for raw in [false, true] {
        let mut store = Store::default();
        let (root, _) = small_tree(&mut store, &tiny(raw));
        let file = resolve_with(root.cid, "a/b.txt", store.get()).unwrap().cid;
        // The file's leaves: drop the last one.
        let mut leaves = Vec::new();
        read_file_with(
            file,
            "f",
            0,
            None,
            |c: &Cid| {
                leaves.push(*c);
                Ok(store.blocks.get(c).cloned())
            },
            |_| Ok(()),
        )
        .unwrap();
        let last = *leaves.last().unwrap();
        let saved = store.blocks.remove(&last).unwrap();
        let e = export(&store, root.cid).unwrap_err();
        assert!(
            matches!(&e, ExportError::MissingBlock { cid, path } if *cid == last && path == "a/b.txt"),
            "{e}"
        );
        // Corrupt: garbage where the leaf was.
        store
            .blocks
            .insert(last, Bytes::from_static(b"\xff\xff\xff"));
        let e = export(&store, root.cid).unwrap_err();
        if raw {
            // A raw leaf of the wrong length.
            assert!(
                matches!(&e, ExportError::SizeMismatch { cid, .. } if *cid == last),
                "{e}"
            );
        } else {
            assert!(
                matches!(&e, ExportError::Dag { path, .. } if path == "a/b.txt"),
                "{e}"
            );
            assert_eq!(e.cid(), Some(&last));
        }
        store.blocks.insert(last, saved);
        // Corrupt directory block.
        let a = resolve_with(root.cid, "a", store.get()).unwrap().cid;
        store.blocks.insert(a, Bytes::from_static(b"\x0a\x02\x08"));
        let e = list_dir_with(a, "a", false, store.get()).unwrap_err();
        assert_eq!(e.cid(), Some(&a), "{e}");
        let e = resolve_with(root.cid, "a/b.txt", store.get()).unwrap_err();
        assert!(
            matches!(&e, ExportError::Dag { .. }) && e.cid() == Some(&a),
            "{e}"
        );
    }
}

#[test]
fn hamt_listing_is_flattened_sorted_and_resolvable() {
    let mut p = ImportProfile::unixfs_v1_2025();
    p.hamt_threshold = Some(0);
    p.hamt_fanout = 8;
    let mut store = Store::default();
    let mut entries = BTreeMap::new();
    for i in 0..200 {
        entries.insert(format!("f{i}"), Tree::File(format!("{i}").into_bytes()));
    }
    let root = import(&mut store, &p, &Tree::Dir(Metadata::default(), entries));
    let top = PbNode::decode(&root.cid, &store.blocks[&root.cid]).unwrap();
    let u = UnixFsData::decode(&root.cid, top.data.as_deref().unwrap()).unwrap();
    assert_eq!(u.data_type, DataType::HamtShard);
    let listed: Vec<DirEntry> = list_dir_with(root.cid, "d", false, store.get()).unwrap();
    let mut names: Vec<String> = (0..200).map(|i| format!("f{i}")).collect();
    names.sort();
    assert_eq!(
        listed.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
        names
    );
    assert!(
        listed
            .iter()
            .all(|e| e.kind == EntryType::Raw && e.tsize.is_some())
    );
    for i in [0, 57, 199] {
        let r = resolve_with(root.cid, &format!("f{i}"), store.get()).unwrap();
        assert_eq!(
            read_all(&store, r.cid).unwrap(),
            format!("{i}").into_bytes()
        );
    }
    let e = resolve_with(root.cid, "f200", store.get()).unwrap_err();
    assert!(
        matches!(&e, ExportError::NotFound { segment, .. } if segment == "f200"),
        "{e}"
    );
}

#[test]
fn file_reader_memory_is_bounded_by_the_stack() {
    let mut p = ImportProfile::unixfs_v0_2015();
    p.chunk_size = 1;
    p.max_links = 3;
    let bytes: Vec<u8> = (0..2000u32).map(|i| i as u8).collect();
    let mut store = Store::default();
    let file = import(&mut store, &p, &Tree::File(bytes.clone()));
    let mut f = FileReader::new(file.cid, "f", 0, None);
    let (mut out, mut max_pending) = (Vec::new(), 0);
    loop {
        max_pending = max_pending.max(f.pending());
        match f.next().unwrap() {
            FileStep::Need(c) => f.on_block(&c, &store.blocks[&c]).unwrap(),
            FileStep::Bytes(b) => {
                assert!(b.len() <= 1);
                out.extend_from_slice(&b);
            }
            FileStep::Done => break,
        }
    }
    assert_eq!(out, bytes);
    // 2000 leaves, 3 links a node: 7 levels, at most 2 pending per level plus one.
    assert!(max_pending <= 2 * 7 + 1, "{max_pending}");
}

#[test]
fn invalid_names_are_refused_for_export() {
    let mut store = Store::default();
    let leaf = sha(0x55, b"x");
    store.put(leaf, b"x".to_vec());
    for bad in ["..", ".", "", "a/b", "a\0b"] {
        let node = PbNode {
            links: vec![PbLink {
                cid: leaf,
                name: Some(bad.into()),
                tsize: Some(1),
            }],
            data: Some(Bytes::from(UnixFsData::new(DataType::Directory).encode())),
        };
        let b = node.encode();
        let c = sha(0x70, &b);
        store.put(c, b);
        let e = export(&store, c).unwrap_err();
        assert!(
            matches!(&e, ExportError::InvalidName { name, .. } if name == bad),
            "{e}"
        );
        let e = list_dir_with(c, "d", false, store.get()).unwrap_err();
        assert!(matches!(e, ExportError::InvalidName { .. }), "{e}");
    }
}

#[test]
fn file_and_symlink_metadata_is_exposed() {
    let p = tiny(false);
    let meta = Metadata {
        mode: Some(0o640),
        mtime: Some((1_700_000_000, 5)),
    };
    let mut store = Store::default();
    let mut f = FileImporter::new(&p, meta).unwrap();
    let mut blocks = f.push(b"0123456789");
    let mut file = f.finish();
    blocks.append(&mut file.blocks);
    file.blocks = blocks;
    store.put_all(&file);
    let link = symlink_block(&p, "x/y", meta).unwrap();
    store.put_all(&link);
    let mut d = DirectoryBuilder::new(&p, Metadata::default()).unwrap();
    d.add("f", file.cid, file.size).unwrap();
    d.add("l", link.cid, link.size).unwrap();
    let dir = d.finish().unwrap();
    store.put_all(&dir);
    let mut seen = Vec::new();
    export_tree_with(dir.cid, store.get(), |ev| {
        if let TreeEvent::Entry(e) = ev {
            seen.push((e.path.clone(), e.mode, e.mtime));
            if let TreeEntryKind::File(r) = &e.kind {
                assert_eq!(r.size(), Some(10));
            }
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(
        seen,
        vec![
            (String::new(), None, None),
            ("f".into(), Some(0o640), Some((1_700_000_000, 5))),
            // Kubo writes only the mtime of a symlink.
            ("l".into(), None, Some((1_700_000_000, 5))),
        ]
    );
    let listed = list_dir_with(dir.cid, "d", true, store.get()).unwrap();
    assert_eq!(listed[0].mode, Some(0o640));
    assert_eq!(listed[0].filesize, Some(10));
    assert_eq!(listed[1].kind, EntryType::Symlink);
    assert_eq!(listed[1].mtime, Some((1_700_000_000, 5)));
    // Without fetching children, dag-pb entries are of unknown type and nothing is fetched
    // but the directory.
    store.fetched.borrow_mut().clear();
    let listed = list_dir_with(dir.cid, "d", false, store.get()).unwrap();
    assert!(
        listed
            .iter()
            .all(|e| e.kind == EntryType::Unknown && e.filesize.is_none())
    );
    assert_eq!(*store.fetched.borrow(), vec![dir.cid]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A corrupted block (one byte changed, same CID) anywhere in a DAG never panics any
    /// machine: each returns bytes/entries or an error.
    #[test]
    fn corrupt_blocks_never_panic(
        raw in any::<bool>(), threshold in proptest::option::of(0u64..200),
        which in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), byte in any::<u8>(),
    ) {
        let mut p = tiny(raw);
        p.hamt_threshold = threshold;
        p.hamt_fanout = 8;
        let mut store = Store::default();
        let (root, _) = small_tree(&mut store, &p);
        let mut cids: Vec<Cid> = store.blocks.keys().copied().collect();
        cids.sort();
        let victim = *which.get(&cids);
        let mut data = store.blocks[&victim].to_vec();
        if !data.is_empty() {
            let i = at.index(data.len());
            data[i] = byte;
        }
        store.put(victim, data);
        let _ = export_tree_with(root.cid, store.get(), |_| Ok(()));
        for path in ["", "a", "a/b.txt", "a/link", "c"] {
            if let Ok(r) = resolve_with(root.cid, path, store.get()) {
                let _ = list_dir_with(r.cid, path, true, store.get());
                let _ = read_file_with(r.cid, path, 3, Some(4), store.get(), |_| Ok(()));
            }
        }
    }

    /// Arbitrary bytes as a dag-pb or raw root never panic any machine.
    #[test]
    fn arbitrary_roots_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), pb in any::<bool>()) {
        let mut store = Store::default();
        let cid = sha(if pb { 0x70 } else { 0x55 }, &bytes);
        store.put(cid, bytes);
        let _ = export_tree_with(cid, store.get(), |_| Ok(()));
        let _ = list_dir_with(cid, "x", true, store.get());
        let _ = read_file_with(cid, "x", 0, None, store.get(), |_| Ok(()));
        let _ = resolve_with(cid, "a/b", store.get());
    }
}

/// A chain of HAMT shards (fanout 8, each linking the next as bucket `0`) deeper than the
/// 64 hash bits allow (21 levels of 3 bits) is refused, not walked.
#[test]
fn hamt_deeper_than_its_hash_is_refused() {
    let mut store = Store::default();
    let leaf = sha(0x55, b"x");
    store.put(leaf, b"x".to_vec());
    let shard = |links: Vec<PbLink>| {
        let mut u = UnixFsData::new(DataType::HamtShard);
        u.fanout = Some(8);
        u.hash_type = Some(0x22);
        u.data = Bytes::from_static(&[1]);
        let b = PbNode {
            links,
            data: Some(Bytes::from(u.encode())),
        }
        .encode();
        (sha(0x70, &b), b)
    };
    let build = |store: &mut Store, levels: usize| {
        let (mut cid, b) = shard(vec![PbLink {
            cid: leaf,
            name: Some("0name".into()),
            tsize: Some(1),
        }]);
        store.put(cid, b);
        for _ in 1..levels {
            let (c, b) = shard(vec![PbLink {
                cid,
                name: Some("0".into()),
                tsize: Some(1),
            }]);
            store.put(c, b);
            cid = c;
        }
        cid
    };
    let ok = build(&mut store, 21);
    let listed = list_dir_with(ok, "d", false, store.get()).unwrap();
    assert_eq!(listed.len(), 1);
    let deep = build(&mut store, 22);
    let e = list_dir_with(deep, "d", false, store.get()).unwrap_err();
    assert!(
        matches!(e, ExportError::LimitExceeded { limit: 21, .. }),
        "{e}"
    );
    let e = export_tree_with(deep, store.get(), |_| Ok(())).unwrap_err();
    assert!(
        matches!(e, ExportError::LimitExceeded { limit: 21, .. }),
        "{e}"
    );
}
