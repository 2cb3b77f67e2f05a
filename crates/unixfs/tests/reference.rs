//! The importer against the reference JS importer (`ipfs-unixfs-importer` 17.1.1, pinned in
//! `interop/package.json`), through `interop/bin/unixfs-reference.mjs`: the same trees are
//! built here and there, and the root CIDs and cumulative sizes must be equal. Node runs
//! once per test for all its trees. Needs `node` and `interop/node_modules`
//! (`scripts/interop.sh install`); fails, never skips, without them.
//!
//! The one known difference between JS and boxo, where this crate follows boxo (Kubo): the
//! HAMT estimate of a directory with a non-empty subdirectory (JS counts its link as 0 bytes
//! while the subdirectory is being built, see `crate::importer`). It is pinned by
//! `known_difference_subdirectory_in_hamt_estimate`; elsewhere, directories near the
//! threshold hold files, symlinks and empty directories only.

mod common;

use common::Deterministic;
use hydrant_unixfs::{
    DirectoryBuilder, FileImporter, HamtEstimation, ImportProfile, Imported, Metadata,
    symlink_block,
};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

/// A tree to import.
#[derive(Clone, Debug)]
enum Node {
    /// `size` deterministic bytes of `seed` ([`Deterministic`]).
    File {
        size: u64,
        seed: String,
    },
    /// Entries by name (unique).
    Dir(Vec<(String, Node)>),
    Symlink(String),
    /// `node` (not a `Meta`) with UnixFS 1.5 metadata.
    Meta(Metadata, Box<Node>),
}

/// Parameters over a named profile; `None` keeps the profile's value.
#[derive(Clone, Debug, Default)]
struct Params {
    cid_version: Option<u8>,
    raw_leaves: Option<bool>,
    chunk_size: Option<usize>,
    max_links: Option<usize>,
    hamt_threshold: Option<u64>,
    hamt_estimation: Option<HamtEstimation>,
    hamt_fanout: Option<u16>,
}

#[derive(Clone, Debug)]
struct Case {
    what: String,
    profile: &'static str,
    params: Params,
    tree: Node,
}

impl Case {
    fn profile(&self) -> ImportProfile {
        let mut p = ImportProfile::by_name(self.profile).expect("known profile");
        let q = &self.params;
        p.cid_version = q.cid_version.unwrap_or(p.cid_version);
        p.raw_leaves = q.raw_leaves.unwrap_or(p.raw_leaves);
        p.chunk_size = q.chunk_size.unwrap_or(p.chunk_size);
        p.max_links = q.max_links.unwrap_or(p.max_links);
        p.hamt_threshold = q.hamt_threshold.or(p.hamt_threshold);
        p.hamt_estimation = q.hamt_estimation.unwrap_or(p.hamt_estimation);
        p.hamt_fanout = q.hamt_fanout.unwrap_or(p.hamt_fanout);
        p
    }

    fn to_json(&self) -> Value {
        let q = &self.params;
        let mut params = serde_json::Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                params.insert(k.to_string(), v);
            }
        };
        put("cidVersion", q.cid_version.map(|v| json!(v)));
        put("rawLeaves", q.raw_leaves.map(|v| json!(v)));
        put("chunkSize", q.chunk_size.map(|v| json!(v)));
        put("maxLinks", q.max_links.map(|v| json!(v)));
        put("hamtThreshold", q.hamt_threshold.map(|v| json!(v)));
        put(
            "hamtEstimation",
            q.hamt_estimation.map(|e| match e {
                HamtEstimation::LinksBytes => json!("links-bytes"),
                HamtEstimation::BlockBytes => json!("block-bytes"),
            }),
        );
        put(
            "hamtFanoutBits",
            q.hamt_fanout.map(|f| json!(f.trailing_zeros())),
        );
        json!({ "profile": self.profile, "params": params, "tree": node_json(&self.tree) })
    }
}

fn node_json(node: &Node) -> Value {
    match node {
        Node::File { size, seed } => json!({ "file": { "size": size, "seed": seed } }),
        Node::Symlink(target) => json!({ "symlink": target }),
        Node::Dir(entries) => json!({
            "dir": entries.iter().map(|(n, c)| json!([n, node_json(c)])).collect::<Vec<_>>()
        }),
        Node::Meta(meta, node) => {
            let mut v = node_json(node);
            if let Some(mode) = meta.mode {
                v["mode"] = json!(mode);
            }
            if let Some((secs, nanos)) = meta.mtime {
                v["mtime"] = json!([secs, nanos]);
            }
            v
        }
    }
}

/// Builds `node` with this crate; files are pushed in slices of varying sizes.
fn build(profile: &ImportProfile, node: &Node) -> Imported {
    build_with(profile, node, Metadata::default())
}

fn build_with(profile: &ImportProfile, node: &Node, meta: Metadata) -> Imported {
    match node {
        Node::Meta(meta, node) => build_with(profile, node, *meta),
        Node::File { size, seed } => {
            let mut file = FileImporter::new(profile, meta).unwrap();
            let bytes = Deterministic::new(*size, seed).into_vec();
            // Slices of 1, 7, chunk - 1, chunk, chunk + 1, 3 chunks + 5 bytes, in turn.
            let c = profile.chunk_size;
            let pattern = [1, 7, c.saturating_sub(1).max(1), c, c + 1, 3 * c + 5];
            let (mut at, mut i) = (0, 0);
            while at < bytes.len() {
                let n = pattern[i % pattern.len()].min(bytes.len() - at);
                drop(file.push(&bytes[at..at + n]));
                at += n;
                i += 1;
            }
            let done = file.finish();
            assert_eq!(done.blocks.last().map(|b| b.cid), Some(done.cid));
            done
        }
        Node::Symlink(target) => symlink_block(profile, target, meta).unwrap(),
        Node::Dir(entries) => {
            let mut dir = DirectoryBuilder::new(profile, meta).unwrap();
            for (name, child) in entries {
                let child = build(profile, child);
                dir.add(name, child.cid, child.size).unwrap();
            }
            dir.finish().unwrap()
        }
    }
}

/// Root CID and cumulative size of every case, from the JS importer (one node process).
fn reference(cases: &[Case]) -> Vec<(String, u64)> {
    let input = Value::Array(cases.iter().map(Case::to_json).collect()).to_string();
    let lines: Vec<(String, u64)> =
        common::run_reference("unixfs-reference.mjs", "ipfs-unixfs-importer", input)
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["cid"].as_str().unwrap().to_string(),
                    v["size"].as_u64().unwrap(),
                )
            })
            .collect();
    assert_eq!(lines.len(), cases.len(), "one line per case");
    lines
}

/// Compares every case; reports all mismatches at once.
fn compare(cases: &[Case]) {
    let expected = reference(cases);
    let mut failures = Vec::new();
    for (case, (cid, size)) in cases.iter().zip(&expected) {
        let got = build(&case.profile(), &case.tree);
        if got.cid.to_string() != *cid || got.size != *size {
            failures.push(format!(
                "{} [{}]: ours {} ({} B), reference {cid} ({size} B)",
                case.what, case.profile, got.cid, got.size
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn file(size: u64, seed: &str) -> Node {
    Node::File {
        size,
        seed: seed.to_string(),
    }
}

fn dir(entries: Vec<(&str, Node)>) -> Node {
    Node::Dir(
        entries
            .into_iter()
            .map(|(n, c)| (n.to_string(), c))
            .collect(),
    )
}

const PROFILES: [&str; 2] = ["unixfs-v1-2025", "unixfs-v0-2015"];

/// File sizes around every boundary of the balanced layout, for `chunk` and `links`.
fn boundary_sizes(chunk: u64, links: u64) -> Vec<u64> {
    let mut sizes = vec![0, 1, chunk - 1, chunk, chunk + 1, 2 * chunk];
    for k in [links, links * links] {
        sizes.extend([k * chunk - 1, k * chunk, k * chunk + 1]);
    }
    sizes.push(links * links * chunk + chunk * links + 1);
    sizes.push(links * links * links * chunk + 17);
    sizes
}

#[test]
fn files_cross_every_layout_boundary() {
    let mut cases = Vec::new();
    for profile in PROFILES {
        for (chunk, links) in [(256u64, 4u64), (100, 3), (1, 2)] {
            for raw in [false, true] {
                for version in [0u8, 1] {
                    if version == 0 && profile == "unixfs-v1-2025" && raw {
                        continue; // covered by the v0 profile with raw leaves
                    }
                    for size in boundary_sizes(chunk, links) {
                        if chunk == 1 && size > 40 {
                            continue;
                        }
                        cases.push(Case {
                            what: format!(
                                "file {size} B, chunk {chunk}, {links} links, raw {raw}, v{version}"
                            ),
                            profile,
                            params: Params {
                                cid_version: Some(version),
                                raw_leaves: Some(raw),
                                chunk_size: Some(usize::try_from(chunk).unwrap()),
                                max_links: Some(usize::try_from(links).unwrap()),
                                ..Params::default()
                            },
                            tree: file(size, &format!("seed-{size}")),
                        });
                    }
                }
            }
        }
    }
    // The real profiles on a few MiB (several leaves; the 1 GiB boundary is in ipip0499.rs).
    for (profile, size) in [
        ("unixfs-v1-2025", 3 * 1_048_576 + 5),
        ("unixfs-v1-2025", 1_048_575),
        ("unixfs-v0-2015", 5 * 262_144 + 1),
        ("unixfs-v0-2015", 262_143),
    ] {
        cases.push(Case {
            what: format!("file {size} B, profile defaults"),
            profile,
            params: Params::default(),
            tree: file(size, "big"),
        });
    }
    compare(&cases);
}

/// Awkward names: unicode (NFC and NFD spellings are different names), case, punctuation,
/// spaces, a 255-byte name, names whose byte order differs from other orders.
fn awkward_names() -> Vec<&'static str> {
    vec![
        "a",
        "B",
        "_",
        "a.b",
        "a-b",
        "a0",
        "A",
        "é",
        "e\u{301}",
        "日本語.txt",
        "emoji 🎉",
        "with space",
        " leading",
        "trailing ",
        "%20",
        "#hash?q=1&x",
        "back\\slash",
        "quote\"'",
        ".hidden",
        "-dash",
        "tab\tin",
        "new\nline",
        "ÿ",
        "\u{7f}",
        "z",
    ]
}

#[test]
fn directories_symlinks_and_names() {
    let long = "n".repeat(255);
    let mut names: Vec<(String, Node)> = awkward_names()
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), file(i as u64 * 37, n)))
        .collect();
    names.push((long, file(3, "long")));
    let nested_empty = dir(vec![
        ("empty", dir(vec![])),
        (
            "deeper",
            dir(vec![("still", dir(vec![("empty", dir(vec![]))]))]),
        ),
    ]);
    let trees = vec![
        ("empty root directory", dir(vec![])),
        ("nested empty directories", nested_empty.clone()),
        ("awkward names", Node::Dir(names)),
        (
            "symlinks",
            dir(vec![
                ("rel", Node::Symlink("../x/y".into())),
                ("abs", Node::Symlink("/etc/passwd".into())),
                ("uni", Node::Symlink("日本/é".into())),
                ("self", Node::Symlink(".".into())),
                ("f", file(10, "f")),
            ]),
        ),
        ("root symlink", Node::Symlink("target/of/link".into())),
        (
            "mixed tree",
            dir(vec![
                (
                    "docs",
                    dir(vec![("a.txt", file(600, "a")), ("e", nested_empty)]),
                ),
                ("big", file(2000, "big")),
                ("zero", file(0, "zero")),
                ("l", Node::Symlink("docs/a.txt".into())),
            ]),
        ),
    ];
    let mut cases = Vec::new();
    for profile in PROFILES {
        for (what, tree) in &trees {
            cases.push(Case {
                what: (*what).to_string(),
                profile,
                params: Params {
                    chunk_size: Some(256),
                    max_links: Some(3),
                    ..Params::default()
                },
                tree: tree.clone(),
            });
        }
    }
    compare(&cases);
}

/// Flat-node estimate of a directory of these entries, the profile's way.
fn estimate(profile: &ImportProfile, entries: &[(String, Node)]) -> u64 {
    let mut d = DirectoryBuilder::new(profile, Metadata::default()).unwrap();
    for (name, node) in entries {
        let child = build(profile, node);
        d.add(name, child.cid, child.size).unwrap();
    }
    d.estimated_size()
}

#[test]
fn hamt_threshold_both_sides() {
    let mut cases = Vec::new();
    for profile in PROFILES {
        for estimation in [HamtEstimation::BlockBytes, HamtEstimation::LinksBytes] {
            for (count, fanout) in [(40usize, 256u16), (300, 256), (60, 16), (30, 8)] {
                let entries: Vec<(String, Node)> = (0..count)
                    .map(|i| {
                        let node = if i % 7 == 3 {
                            Node::Symlink(format!("t{i}"))
                        } else {
                            file(i as u64 % 50, &format!("s{i}"))
                        };
                        (format!("entry-{i:03}-{}", "x".repeat(i % 5)), node)
                    })
                    .collect();
                let base = Case {
                    what: String::new(),
                    profile,
                    params: Params {
                        chunk_size: Some(16),
                        max_links: Some(4),
                        hamt_estimation: Some(estimation),
                        hamt_fanout: Some(fanout),
                        ..Params::default()
                    },
                    tree: Node::Dir(entries.clone()),
                };
                let size = estimate(&base.profile(), &entries);
                for (threshold, side) in [(size, "at (flat)"), (size - 1, "one over (HAMT)")] {
                    let mut case = base.clone();
                    case.what = format!(
                        "{count} entries, {estimation:?} = {size}, threshold {threshold}: \
                         {side}, fanout {fanout}"
                    );
                    case.params.hamt_threshold = Some(threshold);
                    cases.push(case);
                }
            }
        }
        // A sharded directory holding a sharded subdirectory, an empty one and a flat one.
        let many = |prefix: &str, n: usize| -> Node {
            Node::Dir(
                (0..n)
                    .map(|i| (format!("{prefix}{i}"), file(i as u64, prefix)))
                    .collect(),
            )
        };
        let mut top: Vec<(String, Node)> = (0..200)
            .map(|i| (format!("f{i}"), file(5, "top")))
            .collect();
        top.push(("sub-hamt".into(), many("s", 150)));
        top.push(("sub-flat".into(), many("t", 2)));
        top.push(("sub-empty".into(), dir(vec![])));
        cases.push(Case {
            what: "nested HAMTs".into(),
            profile,
            params: Params {
                chunk_size: Some(64),
                hamt_threshold: Some(1000),
                ..Params::default()
            },
            tree: Node::Dir(top),
        });
    }
    compare(&cases);
}

/// Random small trees, sizes and parameters against the reference, in one node call. Every
/// non-empty directory holds a file, and the HAMT threshold is either 1 byte (every
/// non-empty directory is sharded) or unreachable, so that JS's estimate of subdirectories
/// (see the module docs) cannot matter.
#[test]
fn random_trees_match_reference() {
    let name = || proptest::string::string_regex("[a-zA-Z0-9 ._é日🎉-]{1,10}").unwrap();
    let leaf = proptest::prop_oneof![
        4 => (0u64..3000, "[a-z]{1,4}").prop_map(|(size, seed)| Node::File { size, seed }),
        1 => "[a-z/.]{1,12}".prop_map(Node::Symlink),
    ];
    let tree = leaf.prop_recursive(3, 24, 6, move |inner| {
        (
            proptest::collection::btree_map(name(), inner, 0..6),
            (0u64..2000, "[a-z]{1,4}"),
        )
            .prop_map(|(entries, (size, seed))| {
                let mut entries: Vec<(String, Node)> = entries
                    .into_iter()
                    .filter(|(n, _)| n != "." && n != "..")
                    .collect();
                if !entries.is_empty() && entries.iter().all(|(_, c)| matches!(c, Node::Dir(_))) {
                    entries.push(("\u{1}file".into(), Node::File { size, seed }));
                }
                Node::Dir(entries)
            })
    });
    let params = (
        0u8..2,
        proptest::bool::ANY,
        1usize..300,
        2usize..6,
        proptest::bool::ANY,
        proptest::bool::ANY,
        proptest::sample::select(vec![8u16, 16, 256]),
    );
    let case = (proptest::sample::select(PROFILES.to_vec()), params, tree);
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let mut cases = Vec::new();
    for i in 0..32 {
        let (profile, (version, raw, chunk, links, shard, blocks, fanout), tree) =
            case.new_tree(&mut runner).unwrap().current();
        cases.push(Case {
            what: format!("random case {i}: {tree:?}"),
            profile,
            params: Params {
                cid_version: Some(version),
                raw_leaves: Some(raw),
                chunk_size: Some(chunk),
                max_links: Some(links),
                hamt_threshold: Some(if shard { 1 } else { 1 << 40 }),
                hamt_estimation: Some(if blocks {
                    HamtEstimation::BlockBytes
                } else {
                    HamtEstimation::LinksBytes
                }),
                hamt_fanout: Some(fanout),
            },
            tree,
        });
    }
    compare(&cases);
}

/// UnixFS 1.5 metadata on files (dag-pb leaves, as Kubo requires), directories, HAMT roots
/// and symlinks (mtime only, as Kubo writes). Modes are not JS's defaults (0644 files, 0755
/// directories), which JS leaves out and boxo writes. Files here have one level of links:
/// see `known_differences_file_metadata` for the others.
#[test]
fn metadata_on_roots() {
    let meta = |mode: Option<u32>, secs: i64, nanos: u32| Metadata {
        mode,
        mtime: Some((secs, nanos)),
    };
    let with = |m: Metadata, n: Node| Node::Meta(m, Box::new(n));
    let tree = with(
        meta(Some(0o700), 1_700_000_000, 5),
        dir(vec![
            (
                "leaves",
                with(meta(Some(0o4755), -5, 999_999_999), file(1000, "m")),
            ),
            ("plain", file(10, "p")),
            (
                "link",
                with(meta(None, 1_234, 0), Node::Symlink("plain".into())),
            ),
            ("sub", with(meta(Some(0o711), 0, 1), dir(vec![]))),
            (
                "hamt",
                with(
                    meta(Some(0o750), 42, 0),
                    Node::Dir((0..60).map(|i| (format!("h{i}"), file(i, "h"))).collect()),
                ),
            ),
        ]),
    );
    let mut cases = Vec::new();
    for profile in PROFILES {
        cases.push(Case {
            what: "metadata".into(),
            profile,
            params: Params {
                raw_leaves: Some(false),
                chunk_size: Some(256),
                max_links: Some(4),
                hamt_threshold: Some(1000),
                ..Params::default()
            },
            tree: tree.clone(),
        });
    }
    compare(&cases);
}

/// The one known difference, pinned so that a change on either side is noticed: JS leaves a
/// non-empty subdirectory out of its parent's HAMT estimate (its link is counted as 0 bytes
/// until the subdirectory is flushed), boxo counts it. A directory of files plus one
/// subdirectory, with the threshold one byte under boxo's estimate, is a HAMT here (as in
/// Kubo) and flat in JS.
#[test]
fn known_difference_subdirectory_in_hamt_estimate() {
    let mut cases = Vec::new();
    let mut flat_cids = Vec::new();
    for profile in PROFILES {
        // The subdirectory first: JS puts its (empty) entry, then replaces it by a directory
        // being built, whose link it then counts as 0 bytes while the files are added.
        let mut entries = vec![("subdir".to_string(), dir(vec![("inner", file(3, "i"))]))];
        entries.extend((0..20).map(|i| (format!("file-{i}"), file(i, "d"))));
        let mut case = Case {
            what: format!("files and a subdirectory, {profile}"),
            profile,
            params: Params::default(),
            tree: Node::Dir(entries.clone()),
        };
        let full = estimate(&case.profile(), &entries);
        case.params.hamt_threshold = Some(full - 1);
        let ours = build(&case.profile(), &case.tree);
        let mut flat_profile = case.profile();
        flat_profile.hamt_threshold = None;
        let flat = build(&flat_profile, &case.tree);
        assert_ne!(ours.cid, flat.cid, "ours is sharded");
        flat_cids.push(flat.cid.to_string());
        cases.push(case);
    }
    let js = reference(&cases);
    for (((cid, _), flat), case) in js.iter().zip(&flat_cids).zip(&cases) {
        assert_eq!(cid, flat, "JS keeps the directory flat: {}", case.what);
    }
}

/// Two more known differences, in files with metadata, where JS departs from boxo (which puts
/// the metadata on the root node only, `SetFileAttributes`):
/// - a file of one dag-pb leaf: JS wraps the *encoded leaf block* as the root's `Data`
///   (`filesize` then counts the protobuf framing); boxo adds the metadata to the leaf;
/// - a file of two or more levels: JS also writes the metadata on every intermediate node.
#[test]
fn known_differences_file_metadata() {
    let meta = Metadata {
        mode: Some(0o600),
        mtime: Some((1, 0)),
    };
    let params = Params {
        raw_leaves: Some(false),
        chunk_size: Some(256),
        max_links: Some(4),
        ..Params::default()
    };
    let cases: Vec<Case> = [100u64, 3000]
        .iter()
        .map(|size| Case {
            what: format!("{size}-byte file with metadata"),
            profile: "unixfs-v1-2025",
            params: params.clone(),
            tree: Node::Meta(meta, Box::new(file(*size, "k"))),
        })
        .collect();
    let js = reference(&cases);
    for (case, (cid, size)) in cases.iter().zip(&js) {
        let ours = build(&case.profile(), &case.tree);
        assert_ne!(ours.cid.to_string(), *cid, "{}: JS now agrees", case.what);
        assert!(ours.size < *size, "{}: JS writes more bytes", case.what);
    }
}
