//! DAG-PB (`PBNode`/`PBLink`) and UnixFS `Data` protobuf messages, decoded with
//! hand-written `prost` derives (there is no `protoc` in this workspace).
//!
//! Spec: `unixfs.md` § "`dag-pb` Node" (both message definitions are copied there).

use bytes::Bytes;
use cid::Cid;
use prost::Message;

use crate::error::DagError;

/// Largest HAMT `fanout` accepted (unixfs.md § "HAMT Structure and Parameters": "MUST limit
/// the fanout parameter to a maximum of 1024").
pub const MAX_HAMT_FANOUT: u64 = 1024;

/// Wire form of `PBLink` (unixfs.md § "`dag-pb` Node").
#[derive(Clone, PartialEq, Message)]
struct RawPbLink {
    #[prost(bytes = "bytes", optional, tag = "1")]
    hash: Option<Bytes>,
    #[prost(string, optional, tag = "2")]
    name: Option<String>,
    #[prost(uint64, optional, tag = "3")]
    tsize: Option<u64>,
}

/// Wire form of `PBNode` (unixfs.md § "`dag-pb` Node").
#[derive(Clone, PartialEq, Message)]
struct RawPbNode {
    #[prost(bytes = "bytes", optional, tag = "1")]
    data: Option<Bytes>,
    #[prost(message, repeated, tag = "2")]
    links: Vec<RawPbLink>,
}

/// Wire form of UnixFS `UnixTime`.
#[derive(Clone, PartialEq, Message)]
struct RawUnixTime {
    #[prost(int64, optional, tag = "1")]
    seconds: Option<i64>,
    #[prost(fixed32, optional, tag = "2")]
    fractional_nanoseconds: Option<u32>,
}

/// Wire form of UnixFS `Data` (unixfs.md § "`dag-pb` Node").
#[derive(Clone, PartialEq, Message)]
struct RawData {
    #[prost(int32, optional, tag = "1")]
    r#type: Option<i32>,
    #[prost(bytes = "bytes", optional, tag = "2")]
    data: Option<Bytes>,
    #[prost(uint64, optional, tag = "3")]
    filesize: Option<u64>,
    #[prost(uint64, repeated, packed = "false", tag = "4")]
    blocksizes: Vec<u64>,
    #[prost(uint64, optional, tag = "5")]
    hash_type: Option<u64>,
    #[prost(uint64, optional, tag = "6")]
    fanout: Option<u64>,
    #[prost(uint32, optional, tag = "7")]
    mode: Option<u32>,
    #[prost(message, optional, tag = "8")]
    mtime: Option<RawUnixTime>,
}

/// One decoded DAG-PB link (`PBLink`).
///
/// Spec: unixfs.md § "`dag-pb` Node".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PbLink {
    /// Target of the link (`Hash`, CIDv0 or CIDv1 bytes on the wire).
    pub cid: Cid,
    /// `Name`, if present (an absent name and an empty name are kept apart).
    pub name: Option<String>,
    /// `Tsize`: cumulative size in bytes of the linked DAG, if present.
    pub tsize: Option<u64>,
}

/// One decoded DAG-PB node (`PBNode`): its links in block order and its opaque `Data`.
///
/// Spec: unixfs.md § "`dag-pb` Node".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PbNode {
    /// `Links`, in the order they appear in the block.
    pub links: Vec<PbLink>,
    /// `Data`, if present (for UnixFS, a protobuf `Data` message: see [`UnixFsData::decode`]).
    pub data: Option<Bytes>,
}

impl PbNode {
    /// Decodes a DAG-PB block.
    ///
    /// `cid` is only used to give errors their context.
    ///
    /// # Errors
    /// [`DagError::InvalidDagPb`] when the bytes are not a `PBNode` protobuf, a link has no
    /// `Hash`, or a `Hash` is not a valid CID.
    pub fn decode(cid: &Cid, block: &[u8]) -> Result<Self, DagError> {
        let raw = RawPbNode::decode(block).map_err(|e| DagError::InvalidDagPb {
            cid: *cid,
            reason: e.to_string(),
        })?;
        let mut links = Vec::with_capacity(raw.links.len());
        for (index, link) in raw.links.into_iter().enumerate() {
            let hash = link.hash.ok_or_else(|| DagError::InvalidDagPb {
                cid: *cid,
                reason: format!("link {index} has no Hash"),
            })?;
            let target = Cid::try_from(hash.as_ref()).map_err(|e| DagError::InvalidDagPb {
                cid: *cid,
                reason: format!("link {index} Hash is not a CID: {e}"),
            })?;
            links.push(PbLink {
                cid: target,
                name: link.name,
                tsize: link.tsize,
            });
        }
        Ok(PbNode {
            links,
            data: raw.data,
        })
    }

    /// Encodes this node in the canonical DAG-PB byte order: every `PBLink` in order, then
    /// `Data` when present.
    ///
    /// Spec: unixfs.md § "`dag-pb` Node".
    pub fn encode(&self) -> Vec<u8> {
        encode_dag_pb(&self.links, self.data.as_deref())
    }
}

/// Canonical DAG-PB bytes of a node: every `PBLink` (`Hash`, `Name`, `Tsize`, each written
/// when present) in the given order, then `Data` when it is `Some` (UnixFS nodes always have
/// one). prost writes fields in tag order (`Data` = 1 before `Links` = 2), so `Data` is
/// appended separately.
///
/// Spec: DAG-PB canonical form (Links before Data), as boxo and `@ipld/dag-pb` encode.
pub(crate) fn encode_dag_pb(links: &[PbLink], data: Option<&[u8]>) -> Vec<u8> {
    let mut out = RawPbNode {
        data: None,
        links: links
            .iter()
            .map(|l| RawPbLink {
                hash: Some(Bytes::from(l.cid.to_bytes())),
                name: l.name.clone(),
                tsize: l.tsize,
            })
            .collect(),
    }
    .encode_to_vec();
    if let Some(data) = data {
        // Field 1 (Data), wire type 2: appended after the links, as canonical DAG-PB wants.
        RawPbNode {
            data: Some(Bytes::copy_from_slice(data)),
            links: Vec::new(),
        }
        .encode(&mut out)
        .unwrap_or_default();
    }
    out
}

/// UnixFS node type (`Data.Type`).
///
/// Spec: unixfs.md § "`dag-pb` Node" (`enum DataType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    /// `Raw = 0`: legacy file data wrapped in DAG-PB (read as a file).
    Raw,
    /// `Directory = 1`: a flat directory, entries are the node's links.
    Directory,
    /// `File = 2`: a file, possibly chunked across its links.
    File,
    /// `Metadata = 3`: reserved.
    Metadata,
    /// `Symlink = 4`: a symbolic link, target in `Data.Data`.
    Symlink,
    /// `HAMTShard = 5`: one shard of a HAMT-sharded directory.
    HamtShard,
}

impl DataType {
    fn from_wire(value: i32) -> Option<Self> {
        Some(match value {
            0 => Self::Raw,
            1 => Self::Directory,
            2 => Self::File,
            3 => Self::Metadata,
            4 => Self::Symlink,
            5 => Self::HamtShard,
            _ => return None,
        })
    }

    fn to_wire(self) -> i32 {
        match self {
            Self::Raw => 0,
            Self::Directory => 1,
            Self::File => 2,
            Self::Metadata => 3,
            Self::Symlink => 4,
            Self::HamtShard => 5,
        }
    }

    /// True for the two types whose node holds file bytes (`File` and legacy `Raw`).
    pub fn is_file(self) -> bool {
        matches!(self, Self::File | Self::Raw)
    }
}

/// A decoded UnixFS `Data` message (the content of `PBNode.Data`).
///
/// Spec: unixfs.md § "`dag-pb` Node", § "`dag-pb` `File`", § "`dag-pb` `HAMTDirectory`".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnixFsData {
    /// `Type` (required).
    pub data_type: DataType,
    /// `Data`: file bytes held in this node (File/Raw), symlink target, or HAMT bitfield.
    pub data: Bytes,
    /// `filesize` in bytes (absent is read as 0, per spec).
    pub filesize: u64,
    /// `blocksizes`: bytes of file content under each link, same length as `Links` for files.
    pub blocksizes: Vec<u64>,
    /// `hashType` for HAMT shards (0x22, murmur3-x64-64, in practice).
    pub hash_type: Option<u64>,
    /// `fanout` for HAMT shards (a power of two, at most [`MAX_HAMT_FANOUT`]).
    pub fanout: Option<u64>,
    /// `mode` (UnixFS 1.5), if present.
    pub mode: Option<u32>,
    /// `mtime` seconds and nanoseconds (UnixFS 1.5), if present.
    pub mtime: Option<(i64, u32)>,
}

impl UnixFsData {
    /// Decodes the UnixFS `Data` message held in a DAG-PB node's `Data` field.
    ///
    /// `cid` is only used to give errors their context.
    ///
    /// # Errors
    /// [`DagError::InvalidUnixFs`] when the bytes are not a `Data` protobuf, `Type` is missing
    /// or unknown, or a HAMT `fanout` is not a power of two between 8 and [`MAX_HAMT_FANOUT`].
    pub fn decode(cid: &Cid, bytes: &[u8]) -> Result<Self, DagError> {
        let invalid = |reason: String| DagError::InvalidUnixFs { cid: *cid, reason };
        let raw = RawData::decode(bytes).map_err(|e| invalid(e.to_string()))?;
        let wire_type = raw
            .r#type
            .ok_or_else(|| invalid("Data.Type is missing".into()))?;
        let data_type = DataType::from_wire(wire_type)
            .ok_or_else(|| invalid(format!("unknown Data.Type {wire_type}")))?;
        if data_type == DataType::HamtShard {
            match raw.fanout {
                Some(f) if f.is_power_of_two() && (8..=MAX_HAMT_FANOUT).contains(&f) => {}
                other => return Err(invalid(format!("invalid HAMT fanout {other:?}"))),
            }
        }
        Ok(UnixFsData {
            data_type,
            data: raw.data.unwrap_or_default(),
            filesize: raw.filesize.unwrap_or(0),
            blocksizes: raw.blocksizes,
            hash_type: raw.hash_type,
            fanout: raw.fanout,
            mode: raw.mode,
            mtime: raw.mtime.map(|t| {
                (
                    t.seconds.unwrap_or(0),
                    t.fractional_nanoseconds.unwrap_or(0),
                )
            }),
        })
    }

    /// Encodes this message (for tests and, later, the importer).
    pub fn encode(&self) -> Vec<u8> {
        RawData {
            r#type: Some(self.data_type.to_wire()),
            data: (!self.data.is_empty()).then(|| self.data.clone()),
            filesize: self.data_type.is_file().then_some(self.filesize),
            blocksizes: self.blocksizes.clone(),
            hash_type: self.hash_type,
            fanout: self.fanout,
            mode: self.mode,
            // unixfs.md § "`mtime` Field": `FractionalNanoseconds` is absent when 0.
            mtime: self.mtime.map(|(s, n)| RawUnixTime {
                seconds: Some(s),
                fractional_nanoseconds: (n != 0).then_some(n),
            }),
        }
        .encode_to_vec()
    }

    /// A plain `Data` of the given type with every optional field empty.
    pub fn new(data_type: DataType) -> Self {
        UnixFsData {
            data_type,
            data: Bytes::new(),
            filesize: 0,
            blocksizes: Vec::new(),
            hash_type: None,
            fanout: None,
            mode: None,
            mtime: None,
        }
    }

    /// Width in hex characters of the bucket prefix of HAMT link names
    /// (`len(format!("{:X}", fanout - 1))`: 2 for fanout 256, 3 for 1024), or `None` when this
    /// is not a HAMT shard.
    ///
    /// Spec: unixfs.md § "HAMT Structure and Parameters".
    pub fn hamt_prefix_len(&self) -> Option<usize> {
        if self.data_type != DataType::HamtShard {
            return None;
        }
        let fanout = self.fanout?;
        Some(format!("{:X}", fanout - 1).len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multihash_codetable::{Code, MultihashDigest};

    fn raw_cid(data: &[u8]) -> Cid {
        Cid::new_v1(0x55, Code::Sha2_256.digest(data))
    }

    #[test]
    fn pbnode_roundtrip_keeps_link_order_and_fields() {
        let node = PbNode {
            links: vec![
                PbLink {
                    cid: raw_cid(b"b"),
                    name: Some("b".into()),
                    tsize: Some(1),
                },
                PbLink {
                    cid: raw_cid(b"a"),
                    name: None,
                    tsize: None,
                },
            ],
            data: Some(Bytes::from_static(b"\x08\x01")),
        };
        let bytes = node.encode();
        let back = PbNode::decode(&raw_cid(b"x"), &bytes).unwrap();
        assert_eq!(back, node);
    }

    #[test]
    fn pbnode_rejects_bad_link_hash() {
        // PBNode { Links: [ PBLink { Hash: 0xff } ] }
        let bytes = [0x12, 0x03, 0x0a, 0x01, 0xff];
        let err = PbNode::decode(&raw_cid(b"x"), &bytes).unwrap_err();
        assert!(matches!(err, DagError::InvalidDagPb { .. }), "{err}");
    }

    proptest::proptest! {
        /// Any PbNode survives encode/decode unchanged.
        #[test]
        fn pbnode_roundtrip_prop(
            links in proptest::collection::vec(
                (proptest::collection::vec(proptest::num::u8::ANY, 0..8),
                 proptest::option::of("[a-z0-9]{0,8}"),
                 proptest::option::of(proptest::num::u64::ANY)),
                0..6),
            data in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..32)),
        ) {
            let node = PbNode {
                links: links.into_iter().map(|(seed, name, tsize)| PbLink {
                    cid: raw_cid(&seed), name, tsize,
                }).collect(),
                data: data.map(Bytes::from),
            };
            let back = PbNode::decode(&raw_cid(b"x"), &node.encode()).unwrap();
            proptest::prop_assert_eq!(back, node);
        }

        /// Outside bytes never panic any decoder of this crate.
        #[test]
        fn decoders_are_total(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let cid = raw_cid(b"x");
            let _ = PbNode::decode(&cid, &bytes);
            let _ = UnixFsData::decode(&cid, &bytes);
            for codec in [0x55, 0x70, 0x71, 0x0129, 0x78] {
                let c = Cid::new_v1(codec, Code::Sha2_256.digest(&bytes));
                let _ = crate::links(&c, &bytes);
                let mut cursor = crate::HamtCursor::default();
                let _ = crate::resolve_path(&c, &bytes, &["a".to_string(), "0".to_string()], &mut cursor);
            }
        }
    }

    #[test]
    fn unixfs_rejects_missing_type_and_huge_fanout() {
        let cid = raw_cid(b"x");
        assert!(UnixFsData::decode(&cid, &[]).is_err());
        let mut d = UnixFsData::new(DataType::HamtShard);
        d.fanout = Some(4096);
        assert!(UnixFsData::decode(&cid, &d.encode()).is_err());
        d.fanout = Some(256);
        let back = UnixFsData::decode(&cid, &d.encode()).unwrap();
        assert_eq!(back.hamt_prefix_len(), Some(2));
        d.fanout = Some(1024);
        assert_eq!(d.hamt_prefix_len(), Some(3));
    }
}
