//! Content-path resolution, one block at a time (sans I/O).
//!
//! Spec: path-gateway.md § "Content resolution" (UnixFS pathing, DAG-CBOR/DAG-JSON pathing),
//! unixfs.md § "`dag-pb` `Directory` Path Resolution", § "`dag-pb` `HAMTDirectory` Path
//! Resolution", § "`dag-pb` `File` Path Resolution".

use cid::Cid;
use ipld_core::ipld::Ipld;

use crate::error::DagError;
use crate::links::{CODEC_DAG_CBOR, CODEC_DAG_JSON, CODEC_DAG_PB};
use crate::pb::{DataType, PbNode, UnixFsData};

/// Bits of the HAMT name hash (murmur3-x64-64): a HAMT lookup can descend at most
/// `64 / log2(fanout)` levels (8 for fanout 256) before the hash is used up.
pub const HAMT_HASH_BITS: u32 = 64;

/// The state of resolving one path segment through the shards of a HAMT directory: which
/// bits of the name's hash the shards above have used. Start each segment with
/// `HamtCursor::default()`; [`resolve_path`] resets it when a segment is consumed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HamtCursor {
    hash: Option<u64>,
    consumed: u32,
}

/// What one block says about the rest of a content path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathStep {
    /// The first `consumed` segments resolved inside this block to a link to `cid`;
    /// resolution continues at `cid` with the remaining segments.
    Link {
        /// The block the path continues at.
        cid: Cid,
        /// How many segments this block used (at least 1 except for a DAG-CBOR/DAG-JSON
        /// block that is a bare link).
        consumed: usize,
    },
    /// The first segment continues in HAMT sub-shard `cid`: fetch it and call again with
    /// the same segments and cursor.
    Shard(Cid),
    /// Segment number `segment` (0-based, in the slice given) names nothing in this block.
    NotFound {
        /// Index of the missing segment.
        segment: usize,
    },
    /// Segment number `segment` asks to go below something that has no children: a UnixFS
    /// file or symlink, a raw block, or a scalar inside DAG-CBOR/DAG-JSON. (Symlinks are not
    /// followed.)
    NotTraversable {
        /// Index of the offending segment.
        segment: usize,
    },
    /// The path ran out inside a DAG-CBOR/DAG-JSON block at a value that is not a link
    /// (path-gateway.md: "Implementations should return HTTP 501").
    EndsInsideBlock,
}

/// Resolves as much of `segments` (non-empty, already percent-decoded) as block `cid` (bytes
/// `data`) allows.
///
/// - dag-pb UnixFS directory (or DAG-PB without UnixFS data): the first link whose `Name`
///   equals the segment;
/// - dag-pb HAMT shard: murmur3-x64-64 of the segment, `log2(fanout)` bits per level taken
///   most significant first, bucket prefix in upper-case hex; the link named prefix+name is
///   the entry, the link named prefix alone is a sub-shard ([`PathStep::Shard`]);
/// - dag-pb file/symlink, raw: [`PathStep::NotTraversable`];
/// - dag-cbor/dag-json: map keys and list indices inside the block until a link is reached.
///
/// # Errors
/// A decoding error when the block is invalid for its codec, or a HAMT shard has invalid
/// UnixFS data; [`DagError::UnsupportedCodec`] for codecs other than dag-pb, raw, dag-cbor,
/// dag-json.
pub fn resolve_path(
    cid: &Cid,
    data: &[u8],
    segments: &[String],
    cursor: &mut HamtCursor,
) -> Result<PathStep, DagError> {
    let Some(segment) = segments.first() else {
        return Ok(PathStep::EndsInsideBlock);
    };
    match cid.codec() {
        CODEC_DAG_PB => {
            let node = PbNode::decode(cid, data)?;
            let ufs = match node.data.as_deref() {
                Some(d) => UnixFsData::decode(cid, d).ok(),
                None => None,
            };
            match ufs.as_ref().map(|u| u.data_type) {
                Some(DataType::HamtShard) => {
                    // `ufs` is Some here; `decode` validated the fanout.
                    let ufs = ufs.as_ref().ok_or_else(|| DagError::InvalidUnixFs {
                        cid: *cid,
                        reason: "missing HAMT data".into(),
                    })?;
                    hamt_step(cid, &node, ufs, segment, cursor)
                }
                Some(DataType::Directory) | None => {
                    *cursor = HamtCursor::default();
                    Ok(node
                        .links
                        .iter()
                        .find(|l| l.name.as_deref() == Some(segment.as_str()))
                        .map_or(PathStep::NotFound { segment: 0 }, |l| PathStep::Link {
                            cid: l.cid,
                            consumed: 1,
                        }))
                }
                Some(_) => Ok(PathStep::NotTraversable { segment: 0 }),
            }
        }
        CODEC_DAG_CBOR => {
            let value: Ipld =
                serde_ipld_dagcbor::from_slice(data).map_err(|e| DagError::InvalidDagCbor {
                    cid: *cid,
                    reason: e.to_string(),
                })?;
            Ok(ipld_step(&value, segments))
        }
        CODEC_DAG_JSON => {
            let value: Ipld =
                serde_ipld_dagjson::from_slice(data).map_err(|e| DagError::InvalidDagJson {
                    cid: *cid,
                    reason: e.to_string(),
                })?;
            Ok(ipld_step(&value, segments))
        }
        crate::links::CODEC_RAW => Ok(PathStep::NotTraversable { segment: 0 }),
        codec => Err(DagError::UnsupportedCodec { cid: *cid, codec }),
    }
}

/// DAG-CBOR/DAG-JSON pathing inside one decoded value (path-gateway.md § "Traversing through
/// DAG-JSON and DAG-CBOR").
fn ipld_step(root: &Ipld, segments: &[String]) -> PathStep {
    if let Ipld::Link(cid) = root {
        return PathStep::Link {
            cid: *cid,
            consumed: 0,
        };
    }
    let mut cur = root;
    for (i, seg) in segments.iter().enumerate() {
        let next = match cur {
            Ipld::Map(map) => map.get(seg.as_str()),
            Ipld::List(list) => seg.parse::<usize>().ok().and_then(|n| list.get(n)),
            _ => return PathStep::NotTraversable { segment: i },
        };
        match next {
            None => return PathStep::NotFound { segment: i },
            Some(Ipld::Link(cid)) => {
                return PathStep::Link {
                    cid: *cid,
                    consumed: i + 1,
                };
            }
            Some(v) => cur = v,
        }
    }
    PathStep::EndsInsideBlock
}

fn hamt_step(
    cid: &Cid,
    node: &PbNode,
    ufs: &UnixFsData,
    segment: &str,
    cursor: &mut HamtCursor,
) -> Result<PathStep, DagError> {
    let invalid = |reason: &str| DagError::InvalidUnixFs {
        cid: *cid,
        reason: reason.to_string(),
    };
    let fanout = ufs
        .fanout
        .ok_or_else(|| invalid("HAMT shard without fanout"))?;
    let hex_width = ufs
        .hamt_prefix_len()
        .ok_or_else(|| invalid("HAMT shard without fanout"))?;
    let bits = fanout.trailing_zeros();
    let hash = *cursor
        .hash
        .get_or_insert_with(|| murmur3_x64_64(segment.as_bytes()));
    if cursor.consumed + bits > HAMT_HASH_BITS {
        *cursor = HamtCursor::default();
        return Ok(PathStep::NotFound { segment: 0 });
    }
    // Most significant bits first (the hash's big-endian bytes, read left to right).
    let index = (hash << cursor.consumed) >> (HAMT_HASH_BITS - bits);
    cursor.consumed += bits;
    let prefix = format!("{index:0hex_width$X}");
    for link in &node.links {
        let Some(rest) = link.name.as_deref().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        if rest.is_empty() {
            return Ok(PathStep::Shard(link.cid));
        }
        if rest == segment {
            *cursor = HamtCursor::default();
            return Ok(PathStep::Link {
                cid: link.cid,
                consumed: 1,
            });
        }
    }
    *cursor = HamtCursor::default();
    Ok(PathStep::NotFound { segment: 0 })
}

/// The first 64 bits (`h1`) of MurmurHash3 x64 128 with seed 0: the HAMT hash function
/// (multihash 0x22, "murmur3-x64-64").
pub(crate) fn murmur3_x64_64(data: &[u8]) -> u64 {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    fn fmix(mut k: u64) -> u64 {
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    }
    let (mut h1, mut h2) = (0u64, 0u64);
    let mut chunks = data.chunks_exact(16);
    for block in &mut chunks {
        let mut k1 = u64::from_le_bytes(block[..8].try_into().unwrap_or([0; 8]));
        let mut k2 = u64::from_le_bytes(block[8..].try_into().unwrap_or([0; 8]));
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    let tail = chunks.remainder();
    let (mut k1, mut k2) = (0u64, 0u64);
    for (i, b) in tail.iter().enumerate() {
        if i < 8 {
            k1 ^= u64::from(*b) << (8 * i);
        } else {
            k2 ^= u64::from(*b) << (8 * (i - 8));
        }
    }
    if tail.len() > 8 {
        h2 ^= k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
    }
    if !tail.is_empty() {
        h1 ^= k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
    }
    let len = data.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix(h1);
    h2 = fmix(h2);
    h1.wrapping_add(h2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::PbLink;
    use bytes::Bytes;
    use multihash_codetable::{Code, MultihashDigest};
    use std::collections::BTreeMap;

    fn cid(codec: u64, data: &[u8]) -> Cid {
        Cid::new_v1(codec, Code::Sha2_256.digest(data))
    }

    #[test]
    fn murmur3_known_values() {
        assert_eq!(murmur3_x64_64(b""), 0);
        // MurmurHash3_x64_128("hello", seed 0), first 64 bits.
        assert_eq!(murmur3_x64_64(b"hello"), 0xcbd8_a7b3_41bd_9b02);
    }

    #[test]
    fn murmur3_matches_the_spec_hamt_example() {
        // unixfs.md § "HAMT Directory Path Resolution": "470.txt" is in bucket 0x00 at the
        // first level and 0x6E at the second (fanout 256).
        let h = murmur3_x64_64(b"470.txt");
        assert_eq!(h >> 56, 0x00);
        assert_eq!((h >> 48) & 0xff, 0x6e);
    }

    #[test]
    fn directory_lookup_and_file_is_not_traversable() {
        let file = cid(0x55, b"f");
        let dir = PbNode {
            links: vec![PbLink {
                cid: file,
                name: Some("a.txt".into()),
                tsize: None,
            }],
            data: Some(Bytes::from(UnixFsData::new(DataType::Directory).encode())),
        };
        let bytes = dir.encode();
        let dcid = cid(0x70, &bytes);
        let mut cur = HamtCursor::default();
        let segs = vec!["a.txt".to_string(), "x".to_string()];
        assert_eq!(
            resolve_path(&dcid, &bytes, &segs, &mut cur).unwrap(),
            PathStep::Link {
                cid: file,
                consumed: 1
            }
        );
        assert_eq!(
            resolve_path(&dcid, &bytes, &["b".to_string()], &mut cur).unwrap(),
            PathStep::NotFound { segment: 0 }
        );
        assert_eq!(
            resolve_path(&file, b"f", &["b".to_string()], &mut cur).unwrap(),
            PathStep::NotTraversable { segment: 0 }
        );
    }

    #[test]
    fn dag_cbor_pathing_inside_block() {
        let target = cid(0x55, b"t");
        let mut files = BTreeMap::new();
        files.insert("single".to_string(), Ipld::Link(target));
        files.insert("n".to_string(), Ipld::Integer(1));
        let mut doc = BTreeMap::new();
        doc.insert("files".to_string(), Ipld::Map(files));
        let bytes = serde_ipld_dagcbor::to_vec(&Ipld::Map(doc)).unwrap();
        let c = cid(0x71, &bytes);
        let mut cur = HamtCursor::default();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            resolve_path(&c, &bytes, &s(&["files", "single", "more"]), &mut cur).unwrap(),
            PathStep::Link {
                cid: target,
                consumed: 2
            }
        );
        assert_eq!(
            resolve_path(&c, &bytes, &s(&["files"]), &mut cur).unwrap(),
            PathStep::EndsInsideBlock
        );
        assert_eq!(
            resolve_path(&c, &bytes, &s(&["files", "nope"]), &mut cur).unwrap(),
            PathStep::NotFound { segment: 1 }
        );
        assert_eq!(
            resolve_path(&c, &bytes, &s(&["files", "n", "x"]), &mut cur).unwrap(),
            PathStep::NotTraversable { segment: 2 }
        );
    }
}
