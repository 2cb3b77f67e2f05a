//! Unit tests of the importer: the balanced layout's shape, HAMT bucket indices and link
//! names, and HAMTs read back with this crate's own path resolver.

use std::collections::HashMap;

use cid::Cid;

use super::dir::{bucket_index, bucket_prefix};
use super::*;
use crate::links::CODEC_RAW;
use crate::path::murmur3_x64_64;
use crate::pb::PbNode;
use crate::{HamtCursor, PathStep, resolve_path};

fn tiny(chunk: usize, links: usize, raw: bool) -> ImportProfile {
    ImportProfile {
        chunk_size: chunk,
        max_links: links,
        raw_leaves: raw,
        ..ImportProfile::unixfs_v1_2025()
    }
}

/// What the tree under `cid` looks like: leaf depths (left to right) and content.
struct Walk<'a> {
    blocks: &'a HashMap<Cid, Bytes>,
    max_links: usize,
    depths: Vec<usize>,
    content: Vec<u8>,
}

impl Walk<'_> {
    /// Walks `cid` at `depth`; returns (leaves under it, file bytes under it, Tsize).
    fn node(&mut self, cid: &Cid, depth: usize) -> (usize, u64, u64) {
        let data = &self.blocks[cid];
        if cid.codec() == CODEC_RAW {
            self.depths.push(depth);
            self.content.extend_from_slice(data);
            return (1, data.len() as u64, data.len() as u64);
        }
        let node = PbNode::decode(cid, data).unwrap();
        let ufs = UnixFsData::decode(cid, node.data.as_ref().unwrap()).unwrap();
        assert_eq!(ufs.data_type, DataType::File);
        if node.links.is_empty() {
            self.depths.push(depth);
            self.content.extend_from_slice(&ufs.data);
            assert_eq!(ufs.filesize, ufs.data.len() as u64);
            return (1, ufs.filesize, data.len() as u64);
        }
        assert!(node.links.len() <= self.max_links, "too many links");
        assert_eq!(ufs.blocksizes.len(), node.links.len());
        let (mut leaves, mut bytes, mut tsize) = (Vec::new(), 0, data.len() as u64);
        for (link, blocksize) in node.links.iter().zip(&ufs.blocksizes) {
            assert_eq!(link.name.as_deref(), Some(""));
            let (l, b, t) = self.node(&link.cid, depth + 1);
            assert_eq!(link.tsize, Some(t), "Tsize is the child's cumulative size");
            assert_eq!(*blocksize, b, "blocksizes[i] is the child's file bytes");
            leaves.push(l);
            bytes += b;
            tsize += t;
        }
        // Balanced: every child but the last is a full subtree of the same height.
        let full = leaves[0];
        assert!(leaves[..leaves.len() - 1].iter().all(|l| *l == full));
        assert!(*leaves.last().unwrap() <= full);
        assert_eq!(ufs.filesize, bytes);
        (leaves.iter().sum(), bytes, tsize)
    }
}

#[test]
fn balanced_layout_shape() {
    for raw in [true, false] {
        for links in [2usize, 3, 5] {
            for size in 0..=130usize {
                let profile = tiny(1, links, raw);
                let bytes: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
                let mut file = FileImporter::new(&profile, Metadata::default()).unwrap();
                let mut blocks = Vec::new();
                for piece in bytes.chunks(3) {
                    blocks.extend(file.push(piece));
                }
                let done = file.finish();
                blocks.extend(done.blocks.iter().cloned());
                // Children before parents, the root last.
                let mut known = HashMap::new();
                for b in &blocks {
                    for l in crate::links(&b.cid, &b.data).unwrap() {
                        assert!(known.contains_key(&l), "child after parent");
                    }
                    known.insert(b.cid, b.data.clone());
                }
                assert_eq!(blocks.last().unwrap().cid, done.cid);
                let mut walk = Walk {
                    blocks: &known,
                    max_links: links,
                    depths: Vec::new(),
                    content: Vec::new(),
                };
                let (leaves, len, tsize) = walk.node(&done.cid, 0);
                assert_eq!(walk.content, bytes);
                assert_eq!((len, tsize), (size as u64, done.size));
                assert_eq!(leaves, size.max(1));
                // All leaves at the same depth: the smallest d with links^d >= leaves.
                let mut depth = 0;
                while links.pow(depth) < leaves {
                    depth += 1;
                }
                let depth = depth as usize;
                assert!(
                    walk.depths.iter().all(|d| *d == depth),
                    "{size}: {walk:?}",
                    walk = walk.depths
                );
            }
        }
    }
}

#[test]
fn blocks_come_out_as_soon_as_finished() {
    let profile = tiny(4, 2, true);
    let mut file = FileImporter::new(&profile, Metadata::default()).unwrap();
    // A full chunk waits for one more byte (it may be the whole file).
    assert!(file.push(&[1; 4]).is_empty());
    assert_eq!(file.push(&[2]).len(), 1);
    // Leaf 2 (its chunk is now followed by more bytes), leaf 3 straight from the slice, and
    // the node of leaves 1-2 (level 0 was full when leaf 3 arrived).
    let out = file.push(&[3; 8]);
    assert_eq!(out.len(), 3);
    assert_eq!(crate::links(&out[2].cid, &out[2].data).unwrap().len(), 2);
    assert_eq!(file.content_len(), 13);
    let done = file.finish();
    // Last leaf (1 byte), node of leaves 3-4, root.
    assert_eq!(done.blocks.len(), 3);
}

#[test]
fn empty_files_as_kubo_makes_them() {
    let v1 = FileImporter::new(&ImportProfile::unixfs_v1_2025(), Metadata::default()).unwrap();
    let done = v1.finish();
    assert_eq!(
        done.cid.to_string(),
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    );
    assert_eq!(done.size, 0);
    let v0 = FileImporter::new(&ImportProfile::unixfs_v0_2015(), Metadata::default()).unwrap();
    let done = v0.finish();
    assert_eq!(
        done.cid.to_string(),
        "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    );
    assert_eq!(done.size, 6);
}

#[test]
fn bucket_indices_and_prefixes() {
    // unixfs.md § "HAMT Directory Path Resolution": "470.txt" is in bucket 0x00, then 0x6E.
    let h = murmur3_x64_64(b"470.txt");
    assert_eq!(bucket_index(h, 0, 8), Some(0x00));
    assert_eq!(bucket_index(h, 8, 8), Some(0x6e));
    assert_eq!(bucket_prefix(0x6e, 256), "6E");
    assert_eq!(bucket_prefix(0, 256), "00");
    assert_eq!(bucket_prefix(5, 16), "5");
    assert_eq!(bucket_prefix(5, 8), "5");
    assert_eq!(bucket_prefix(0x3ff, 1024), "3FF");
    assert_eq!(bucket_prefix(7, 1024), "007");
    // Bits are taken most significant first, and run out after 64.
    assert_eq!(bucket_index(u64::MAX, 60, 4), Some(0xf));
    assert_eq!(bucket_index(u64::MAX, 64, 4), None);
    assert_eq!(bucket_index(0x8000_0000_0000_0000, 0, 3), Some(4));
}

#[test]
fn hamt_links_are_named_by_bucket_and_resolve() {
    for fanout in [8u16, 256, 1024] {
        let profile = ImportProfile {
            hamt_threshold: Some(0),
            hamt_fanout: fanout,
            ..ImportProfile::unixfs_v1_2025()
        };
        let target = symlink_block(&profile, "t", Metadata::default()).unwrap();
        let mut dir = DirectoryBuilder::new(&profile, Metadata::default()).unwrap();
        let names: Vec<String> = (0..300).map(|i| format!("name-{i}")).collect();
        for n in &names {
            dir.add(n, target.cid, target.size).unwrap();
        }
        let done = dir.finish().unwrap();
        let blocks: HashMap<Cid, Bytes> = done
            .blocks
            .iter()
            .map(|b| (b.cid, b.data.clone()))
            .collect();
        let width = bucket_prefix(u64::from(fanout) - 1, fanout).len();
        let mut sub_shards = 0;
        for b in &done.blocks {
            let node = PbNode::decode(&b.cid, &b.data).unwrap();
            let ufs = UnixFsData::decode(&b.cid, node.data.as_ref().unwrap()).unwrap();
            assert_eq!(ufs.data_type, DataType::HamtShard);
            assert_eq!(
                (ufs.fanout, ufs.hash_type),
                (Some(u64::from(fanout)), Some(0x22))
            );
            let mut previous = None;
            for link in &node.links {
                let name = link.name.as_deref().unwrap();
                let index = u64::from_str_radix(&name[..width], 16).unwrap();
                assert_eq!(
                    &name[..width],
                    bucket_prefix(index, fanout),
                    "uppercase, padded"
                );
                assert!(previous < Some(index), "links in bucket order");
                previous = Some(index);
                // The bitfield (big-endian, bit i = bucket i) has this bucket set.
                let bits = &ufs.data;
                let byte = usize::try_from(index / 8).unwrap();
                assert!(byte < bits.len() && bits[bits.len() - 1 - byte] & (1 << (index % 8)) != 0);
                if name.len() == width {
                    sub_shards += 1;
                }
            }
            assert_eq!(
                ufs.data
                    .iter()
                    .map(|b| b.count_ones() as usize)
                    .sum::<usize>(),
                node.links.len()
            );
            assert_ne!(ufs.data.first(), Some(&0), "no leading zero byte");
        }
        assert!(sub_shards > 0, "300 names in {fanout} buckets collide");
        // Every name resolves through the shards with the crate's own reader.
        for n in &names {
            let (mut at, mut cursor) = (done.cid, HamtCursor::default());
            loop {
                match resolve_path(&at, &blocks[&at], std::slice::from_ref(n), &mut cursor) {
                    Ok(PathStep::Shard(next)) => at = next,
                    Ok(PathStep::Link { cid, .. }) => {
                        assert_eq!(cid, target.cid);
                        break;
                    }
                    other => panic!("{n}: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn directories_sort_names_bytewise_and_sum_tsizes() {
    let profile = ImportProfile::unixfs_v1_2025();
    let leaf = symlink_block(&profile, "x", Metadata::default()).unwrap();
    let mut dir = DirectoryBuilder::new(&profile, Metadata::default()).unwrap();
    for n in ["b", "a", "B", "é", "aa", "_"] {
        dir.add(n, leaf.cid, leaf.size).unwrap();
    }
    assert!(matches!(
        dir.add("a", leaf.cid, 1),
        Err(ImportError::DuplicateName(_))
    ));
    for bad in ["", ".", "..", "a/b", "nul\0"] {
        assert!(matches!(
            dir.add(bad, leaf.cid, 1),
            Err(ImportError::InvalidName(_))
        ));
    }
    let done = dir.finish().unwrap();
    let block = &done.blocks[0];
    let node = PbNode::decode(&block.cid, &block.data).unwrap();
    let names: Vec<&str> = node
        .links
        .iter()
        .map(|l| l.name.as_deref().unwrap())
        .collect();
    assert_eq!(names, ["B", "_", "a", "aa", "b", "é"]);
    assert_eq!(done.size, block.data.len() as u64 + 6 * leaf.size);
}

#[test]
fn metadata_goes_on_the_root_only() {
    let meta = Metadata {
        mode: Some(0o100_644),
        mtime: Some((1_700_000_000, 0)),
    };
    let profile = tiny(4, 2, false);
    let mut file = FileImporter::new(&profile, meta).unwrap();
    let mut blocks = file.push(&[9; 10]);
    let done = file.finish();
    blocks.extend(done.blocks);
    for b in &blocks {
        let node = PbNode::decode(&b.cid, &b.data).unwrap();
        let ufs = UnixFsData::decode(&b.cid, node.data.as_ref().unwrap()).unwrap();
        let root = b.cid == done.cid;
        assert_eq!(
            ufs.mode,
            root.then_some(0o644),
            "mode bits only, on the root"
        );
        assert_eq!(ufs.mtime, root.then_some((1_700_000_000, 0)));
    }
    // A single dag-pb leaf is the root and carries it too; raw leaves cannot (Kubo refuses).
    let mut file = FileImporter::new(&profile, meta).unwrap();
    drop(file.push(b"abcd"));
    let done = file.finish();
    let b = &done.blocks[0];
    let node = PbNode::decode(&b.cid, &b.data).unwrap();
    let ufs = UnixFsData::decode(&b.cid, node.data.as_ref().unwrap()).unwrap();
    assert_eq!(ufs.mode, Some(0o644));
    assert!(matches!(
        FileImporter::new(&tiny(4, 2, true), meta),
        Err(ImportError::MetadataWithRawLeaves)
    ));
    // Directories (and HAMT roots) carry both; symlinks only the mtime, as Kubo.
    let dir = DirectoryBuilder::new(&profile, meta)
        .unwrap()
        .finish()
        .unwrap();
    let b = &dir.blocks[0];
    let ufs = UnixFsData::decode(
        &b.cid,
        PbNode::decode(&b.cid, &b.data)
            .unwrap()
            .data
            .as_ref()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (ufs.mode, ufs.mtime),
        (Some(0o644), Some((1_700_000_000, 0)))
    );
    let link = symlink_block(&profile, "t", meta).unwrap();
    let b = &link.blocks[0];
    let ufs = UnixFsData::decode(
        &b.cid,
        PbNode::decode(&b.cid, &b.data)
            .unwrap()
            .data
            .as_ref()
            .unwrap(),
    )
    .unwrap();
    assert_eq!((ufs.mode, ufs.mtime), (None, Some((1_700_000_000, 0))));
    // Nanoseconds are written only when not 0.
    let with_nanos = Metadata {
        mode: None,
        mtime: Some((5, 7)),
    };
    let link = symlink_block(&profile, "t", with_nanos).unwrap();
    assert!(
        link.blocks[0].data.len()
            > symlink_block(
                &profile,
                "t",
                Metadata {
                    mode: None,
                    mtime: Some((5, 0))
                }
            )
            .unwrap()
            .blocks[0]
                .data
                .len()
    );
}

#[test]
fn invalid_profiles_are_refused() {
    let base = ImportProfile::unixfs_v0_2015();
    for bad in [
        ImportProfile {
            cid_version: 2,
            ..base
        },
        ImportProfile { hash: 0x13, ..base },
        ImportProfile {
            chunk_size: 0,
            ..base
        },
        ImportProfile {
            chunk_size: MAX_CHUNK_SIZE + 1,
            ..base
        },
        ImportProfile {
            max_links: 1,
            ..base
        },
        ImportProfile {
            hamt_fanout: 4,
            ..base
        },
        ImportProfile {
            hamt_fanout: 2048,
            ..base
        },
        ImportProfile {
            hash: 0x99,
            cid_version: 1,
            ..base
        },
    ] {
        assert!(
            FileImporter::new(&bad, Metadata::default()).is_err(),
            "{bad:?}"
        );
    }
    let sha512 = ImportProfile {
        hash: 0x13,
        ..ImportProfile::unixfs_v1_2025()
    };
    let mut f = FileImporter::new(&sha512, Metadata::default()).unwrap();
    drop(f.push(b"x"));
    assert_eq!(f.finish().cid.hash().code(), 0x13);
}
