//! Unit and property tests of the DAG walker, on small DAGs built here.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use cid::Cid;
use ipld_core::ipld::Ipld;
use multihash_codetable::{Code, MultihashDigest};
use proptest::prelude::*;

use super::*;
use crate::links::{CODEC_DAG_CBOR, CODEC_DAG_PB, CODEC_RAW};
use crate::pb::{PbLink, PbNode, UnixFsData};

#[derive(Default)]
struct Store(HashMap<Cid, Vec<u8>>);

impl Store {
    fn put(&mut self, codec: u64, data: Vec<u8>) -> Cid {
        let cid = Cid::new_v1(codec, Code::Sha2_256.digest(&data));
        self.0.insert(cid, data);
        cid
    }
    fn raw(&mut self, data: &[u8]) -> Cid {
        self.put(CODEC_RAW, data.to_vec())
    }
    fn pb(&mut self, ufs: UnixFsData, links: &[(Cid, Option<&str>)]) -> Cid {
        let node = PbNode {
            links: links
                .iter()
                .map(|(cid, name)| PbLink {
                    cid: *cid,
                    name: name.map(str::to_string),
                    tsize: None,
                })
                .collect(),
            data: Some(Bytes::from(ufs.encode())),
        };
        self.put(CODEC_DAG_PB, node.encode())
    }
    /// A dag-pb File over `leaves` (each a raw leaf with its size).
    fn file(&mut self, leaves: &[(Cid, u64)]) -> Cid {
        let mut ufs = UnixFsData::new(DataType::File);
        ufs.blocksizes = leaves.iter().map(|l| l.1).collect();
        ufs.filesize = ufs.blocksizes.iter().sum();
        let links: Vec<_> = leaves.iter().map(|l| (l.0, None)).collect();
        self.pb(ufs, &links)
    }
    fn dir(&mut self, entries: &[(&str, Cid)]) -> Cid {
        let links: Vec<_> = entries.iter().map(|(n, c)| (*c, Some(*n))).collect();
        self.pb(UnixFsData::new(DataType::Directory), &links)
    }
    fn walk(&self, mut walker: DagWalker) -> Result<Vec<Cid>, DagError> {
        let mut out = Vec::new();
        while let Some(cid) = walker.next_wanted() {
            let data = self.0.get(&cid).expect("test DAG complete");
            out.push(cid);
            walker.on_block(&cid, data)?;
        }
        Ok(out)
    }
}

/// 5 raw leaves of 256, 256, 256, 256, 2 bytes under one dag-pb File (1026 bytes), like the
/// gateway-conformance "multiblock.txt".
fn multiblock(store: &mut Store) -> (Cid, Vec<Cid>) {
    let leaves: Vec<(Cid, u64)> = [256usize, 256, 256, 256, 2]
        .iter()
        .enumerate()
        .map(|(i, n)| (store.raw(&vec![i as u8; *n]), *n as u64))
        .collect();
    let root = store.file(&leaves);
    (root, leaves.iter().map(|l| l.0).collect())
}

#[test]
fn all_scope_is_dfs_left_to_right() {
    let mut s = Store::default();
    let (a, b, c) = (s.raw(b"a"), s.raw(b"b"), s.raw(b"c"));
    let f = s.file(&[(b, 1), (c, 1)]);
    let sub = s.dir(&[("f", f)]);
    let root = s.dir(&[("a", a), ("sub", sub), ("z", c)]);
    let got = s.walk(DagWalker::new(root, DagScope::All, true)).unwrap();
    assert_eq!(got, vec![root, a, sub, f, b, c, c]);
    let got = s.walk(DagWalker::new(root, DagScope::All, false)).unwrap();
    assert_eq!(got, vec![root, a, sub, f, b, c]);
}

#[test]
fn block_scope_is_root_only() {
    let mut s = Store::default();
    let (root, _) = multiblock(&mut s);
    assert_eq!(
        s.walk(DagWalker::new(root, DagScope::Block, false))
            .unwrap(),
        vec![root]
    );
}

#[test]
fn entity_scope_file_dir_hamt_and_cbor() {
    let mut s = Store::default();
    let (file, leaves) = multiblock(&mut s);
    let dir = s.dir(&[("f", file)]);
    // file: whole file
    let got = s
        .walk(DagWalker::new(file, DagScope::Entity, false))
        .unwrap();
    assert_eq!(got[0], file);
    assert_eq!(&got[1..], &leaves[..]);
    // directory: the directory block only
    assert_eq!(
        s.walk(DagWalker::new(dir, DagScope::Entity, false))
            .unwrap(),
        vec![dir]
    );
    // HAMT: shards, not entries
    let mut hamt = UnixFsData::new(DataType::HamtShard);
    hamt.fanout = Some(256);
    hamt.hash_type = Some(0x22);
    let sub = s.pb(hamt.clone(), &[(file, Some("0Bf"))]);
    let root = s.pb(hamt, &[(dir, Some("00dir")), (sub, Some("0A"))]);
    assert_eq!(
        s.walk(DagWalker::new(root, DagScope::Entity, false))
            .unwrap(),
        vec![root, sub]
    );
    // dag-cbor: the block only, even with links
    let doc = Ipld::List(vec![Ipld::Link(file)]);
    let cbor = s.put(CODEC_DAG_CBOR, serde_ipld_dagcbor::to_vec(&doc).unwrap());
    assert_eq!(
        s.walk(DagWalker::new(cbor, DagScope::Entity, false))
            .unwrap(),
        vec![cbor]
    );
    assert_eq!(
        s.walk(DagWalker::new(cbor, DagScope::All, false)).unwrap(),
        vec![
            cbor, file, leaves[0], leaves[1], leaves[2], leaves[3], leaves[4]
        ]
    );
}

#[test]
fn entity_bytes_pick_the_minimal_blocks() {
    // The expectations of gateway-conformance TestTrustlessCarEntityBytes.
    let mut s = Store::default();
    let (file, l) = multiblock(&mut s);
    let walk = |range: &str| {
        let range: EntityBytes = range.parse().unwrap();
        s.walk(DagWalker::with_entity_bytes(file, range, false))
            .unwrap()
    };
    let with_root = |ls: &[Cid]| [&[file][..], ls].concat();
    assert_eq!(walk("0:*"), with_root(&l));
    assert_eq!(walk("512:*"), with_root(&l[2..]));
    assert_eq!(walk("512:1023"), with_root(&l[2..4]));
    assert_eq!(walk("512:-256"), with_root(&l[2..4]));
    assert_eq!(walk("-5:*"), with_root(&l[3..]));
    assert_eq!(walk("-9999:*"), with_root(&l));
    assert_eq!(walk("-9999:-3"), with_root(&l[..4]));
    assert_eq!(walk("0:0"), with_root(&l[..1]));
    assert_eq!(walk("1025:1025"), with_root(&l[4..]));
    // entirely outside the file: the root block alone
    assert_eq!(walk("2000:*"), vec![file]);
    assert_eq!(walk("0:-2000"), vec![file]);
}

#[test]
fn entity_bytes_in_nested_file_uses_offsets() {
    let mut s = Store::default();
    let (inner1, l1) = multiblock(&mut s); // bytes 0..1026
    let (inner2, l2) = multiblock(&mut s); // same content: same CIDs
    assert_eq!(inner1, inner2);
    let tail = s.raw(b"xyz"); // bytes 2052..2055
    let root = s.file(&[(inner1, 1026), (inner2, 1026), (tail, 3)]);
    let range: EntityBytes = "1030:2052".parse().unwrap();
    let got = s
        .walk(DagWalker::with_entity_bytes(root, range, true))
        .unwrap();
    // second copy from byte 4 (its leaf 0) to its end, then the first byte of tail
    let mut want = vec![root, inner2];
    want.extend_from_slice(&l2);
    want.push(tail);
    assert_eq!(got, want);
    let _ = l1;
}

#[test]
fn blocksizes_mismatch_is_an_error_in_range_mode() {
    let mut s = Store::default();
    let a = s.raw(b"a");
    let mut ufs = UnixFsData::new(DataType::File);
    ufs.blocksizes = vec![1, 1];
    let bad = s.pb(ufs, &[(a, None)]);
    let r = s.walk(DagWalker::with_entity_bytes(
        bad,
        "0:*".parse().unwrap(),
        false,
    ));
    assert!(
        matches!(r, Err(DagError::BlocksizesMismatch { .. })),
        "{r:?}"
    );
}

#[test]
fn identity_blocks_are_not_emitted_but_followed() {
    let mut s = Store::default();
    let leaf = s.raw(b"leaf");
    let node = PbNode {
        links: vec![PbLink {
            cid: leaf,
            name: None,
            tsize: None,
        }],
        data: None,
    }
    .encode();
    let ident = Cid::new_v1(
        CODEC_DAG_PB,
        multihash::Multihash::<64>::wrap(0, &node).unwrap(),
    );
    let root = s.dir(&[("i", ident), ("l", leaf)]);
    assert_eq!(
        s.walk(DagWalker::new(root, DagScope::All, true)).unwrap(),
        vec![root, leaf, leaf]
    );
    // an identity root (the bafkqaaa probe) wants nothing at all
    let empty = Cid::new_v1(CODEC_RAW, multihash::Multihash::<64>::wrap(0, b"").unwrap());
    assert_eq!(empty.to_string(), "bafkqaaa");
    assert!(
        DagWalker::new(empty, DagScope::All, true)
            .next_wanted()
            .is_none()
    );
}

#[test]
fn wrong_block_is_refused_and_walk_can_continue() {
    let mut s = Store::default();
    let a = s.raw(b"a");
    let root = s.dir(&[("a", a)]);
    let mut w = DagWalker::new(root, DagScope::All, false);
    assert_eq!(w.next_wanted(), Some(root));
    assert_eq!(w.next_wanted(), Some(root));
    let err = w.on_block(&a, b"a").unwrap_err();
    assert!(matches!(err, DagError::UnexpectedBlock { expected: Some(e), .. } if *e == root));
    w.on_block(&root, &s.0[&root]).unwrap();
    assert_eq!(w.upcoming(8).collect::<Vec<_>>(), vec![a]);
    assert_eq!(w.next_wanted(), Some(a));
}

#[test]
fn limits_are_enforced() {
    let mut s = Store::default();
    let leaves: Vec<Cid> = (0..10u8).map(|i| s.raw(&[i])).collect();
    let entries: Vec<(String, Cid)> = leaves
        .iter()
        .enumerate()
        .map(|(i, c)| (i.to_string(), *c))
        .collect();
    let refs: Vec<(&str, Cid)> = entries.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    let root = s.dir(&refs);
    let limits = WalkerLimits {
        max_pending: 5,
        max_seen: 100,
    };
    let r = s.walk(DagWalker::new(root, DagScope::All, false).with_limits(limits));
    assert!(matches!(
        r,
        Err(DagError::LimitExceeded {
            what: "pending links",
            ..
        })
    ));
    let limits = WalkerLimits {
        max_pending: 100,
        max_seen: 4,
    };
    let r = s.walk(DagWalker::new(root, DagScope::All, false).with_limits(limits));
    assert!(matches!(
        r,
        Err(DagError::LimitExceeded {
            what: "distinct blocks",
            ..
        })
    ));
    // with dups the seen set is not used
    assert_eq!(
        s.walk(DagWalker::new(root, DagScope::All, true).with_limits(limits))
            .unwrap()
            .len(),
        11
    );
}

#[test]
fn entity_bytes_parsing() {
    let ok = |s: &str, from, to| assert_eq!(s.parse::<EntityBytes>(), Ok(EntityBytes { from, to }));
    ok("0:*", 0, None);
    ok("-1024:*", -1024, None);
    ok("499:-1000", 499, Some(-1000));
    ok("0:0", 0, Some(0));
    for bad in ["", "1", "a:b", "5:4", "-1:-5", "1:*x", "1:2:3", "*:5"] {
        assert!(bad.parse::<EntityBytes>().is_err(), "{bad}");
    }
    assert_eq!("entity".parse::<DagScope>(), Ok(DagScope::Entity));
    assert!("ALL".parse::<DagScope>().is_err());
}

/// Reference: recursive DFS over the links of each block.
fn reference_dfs(s: &Store, cid: Cid, dups: bool, seen: &mut HashSet<Cid>, out: &mut Vec<Cid>) {
    if !dups && !seen.insert(cid) {
        return;
    }
    out.push(cid);
    for child in crate::links(&cid, &s.0[&cid]).unwrap() {
        reference_dfs(s, child, dups, seen, out);
    }
}

proptest! {
    /// Random DAGs (nodes only link to earlier nodes, so sharing is common): the walker's
    /// order is the reference DFS; dups=n is the reference with later repeats removed; every
    /// block reachable is emitted.
    #[test]
    fn walker_matches_reference_dfs(
        leaves in 1usize..6,
        nodes in proptest::collection::vec(proptest::collection::vec(any::<prop::sample::Index>(), 0..4), 1..8),
    ) {
        let mut s = Store::default();
        let mut made: Vec<Cid> = (0..leaves).map(|i| s.raw(&[i as u8])).collect();
        for (n, kids) in nodes.iter().enumerate() {
            let kids: Vec<(Cid, Option<&str>)> = kids.iter().map(|ix| (*ix.get(&made), None)).collect();
            let mut ufs = UnixFsData::new(DataType::Directory);
            ufs.mode = Some(n as u32); // keep nodes distinct
            let c = s.pb(ufs, &kids);
            made.push(c);
        }
        let root = *made.last().unwrap();
        for dups in [true, false] {
            let mut want = Vec::new();
            reference_dfs(&s, root, dups, &mut HashSet::new(), &mut want);
            let got = s.walk(DagWalker::new(root, DagScope::All, dups)).unwrap();
            prop_assert_eq!(&got, &want);
            if !dups {
                let distinct: HashSet<_> = got.iter().collect();
                prop_assert_eq!(distinct.len(), got.len());
            }
        }
    }

    /// entity-bytes over a random file of raw leaves emits exactly the leaves that overlap
    /// the resolved range, in order.
    #[test]
    fn entity_bytes_matches_overlap(
        sizes in proptest::collection::vec(0u64..50, 1..8),
        from in -200i64..200,
        to in proptest::option::of(-200i64..200),
    ) {
        let range = EntityBytes { from, to };
        let mut s = Store::default();
        let leaves: Vec<(Cid, u64)> = sizes.iter().enumerate()
            .map(|(i, n)| (s.raw(&vec![i as u8; *n as usize]), *n)).collect();
        let file = s.file(&leaves);
        let total: u64 = sizes.iter().sum();
        let got = s.walk(DagWalker::with_entity_bytes(file, range, true)).unwrap();
        let mut want = vec![file];
        if let Some((first, last)) = range.resolve(total) {
            prop_assert!(first <= last && last < total);
            let mut pos = 0;
            for (cid, n) in &leaves {
                if *n > 0 && pos <= last && pos + n > first { want.push(*cid); }
                pos += n;
            }
        }
        prop_assert_eq!(got, want);
    }
}
