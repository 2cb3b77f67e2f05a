//! Links of a block, by codec.
//!
//! Spec: unixfs.md § "`dag-pb` Node" for DAG-PB; the DAG-CBOR (tag 42) and DAG-JSON (`{"/": …}`)
//! link forms that path-gateway.md § "Traversing through DAG-JSON and DAG-CBOR" refers to.

use std::fmt;

use cid::Cid;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::DagError;
use crate::pb::PbNode;

/// Multicodec of raw blocks (no links).
pub const CODEC_RAW: u64 = 0x55;
/// Multicodec of DAG-PB.
pub const CODEC_DAG_PB: u64 = 0x70;
/// Multicodec of DAG-CBOR.
pub const CODEC_DAG_CBOR: u64 = 0x71;
/// Multicodec of DAG-JSON.
pub const CODEC_DAG_JSON: u64 = 0x0129;
/// Multicodec of plain CBOR (no links: tag 42 has no meaning there).
pub const CODEC_CBOR: u64 = 0x51;
/// Multicodec of plain JSON (no links).
pub const CODEC_JSON: u64 = 0x0200;
/// Multicodec of `libp2p-key` (a public key, no links).
pub const CODEC_LIBP2P_KEY: u64 = 0x72;
/// Multihash code of the identity "hash" (the digest is the data itself).
pub const MULTIHASH_IDENTITY: u64 = 0x00;

/// The CIDs a block links to, in the order they appear in the block (the order a DFS walk
/// follows: "car-order=dfs", trustless-gateway.md § "CAR `order`").
///
/// - dag-pb (0x70): `PBNode.Links[].Hash`, in link order;
/// - raw (0x55), cbor (0x51), json (0x0200), libp2p-key (0x72): no links;
/// - dag-cbor (0x71): every tag-42 CID anywhere in the value, in encoded order;
/// - dag-json (0x0129): every `{"/": "<cid>"}` anywhere in the value, in encoded order.
///
/// Any other codec is an error rather than "no links": a caller that cannot see a block's
/// links must decide for itself whether treating it as a leaf is acceptable
/// ([`crate::DagWalker`] does, see there).
///
/// # Errors
/// [`DagError::InvalidDagPb`], [`DagError::InvalidDagCbor`], [`DagError::InvalidDagJson`]
/// when the block does not decode under its codec; [`DagError::UnsupportedCodec`] for any
/// other codec.
pub fn links(cid: &Cid, data: &[u8]) -> Result<Vec<Cid>, DagError> {
    match cid.codec() {
        CODEC_DAG_PB => Ok(PbNode::decode(cid, data)?
            .links
            .into_iter()
            .map(|l| l.cid)
            .collect()),
        CODEC_RAW | CODEC_CBOR | CODEC_JSON | CODEC_LIBP2P_KEY => Ok(Vec::new()),
        CODEC_DAG_CBOR => serde_ipld_dagcbor::from_slice::<LinkList>(data)
            .map(|l| l.0)
            .map_err(|e| DagError::InvalidDagCbor {
                cid: *cid,
                reason: e.to_string(),
            }),
        CODEC_DAG_JSON => serde_ipld_dagjson::from_slice::<LinkList>(data)
            .map(|l| l.0)
            .map_err(|e| DagError::InvalidDagJson {
                cid: *cid,
                reason: e.to_string(),
            }),
        codec => Err(DagError::UnsupportedCodec { cid: *cid, codec }),
    }
}

/// Deserializes any IPLD value, keeping only its links, in encoded order.
///
/// Unlike `ipld_core::ipld::Ipld` (whose maps are `BTreeMap`s and so re-sorted), this sees map
/// entries in the order the block has them, which is what a DFS walk must follow. Both
/// serde_ipld_dagcbor and serde_ipld_dagjson hand a CID to `visit_newtype_struct` and bound
/// nesting depth themselves.
pub(crate) struct LinkList(pub(crate) Vec<Cid>);

impl<'de> Deserialize<'de> for LinkList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LinkVisitor)
    }
}

struct LinkVisitor;

impl<'de> Visitor<'de> for LinkVisitor {
    type Value = LinkList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any IPLD value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<LinkList, E> {
        Ok(LinkList(Vec::new()))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<LinkList, E> {
        Ok(LinkList(Vec::new()))
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<LinkList, E> {
        Ok(LinkList(Vec::new()))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<LinkList, E> {
        Ok(LinkList(Vec::new()))
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<LinkList, E> {
        Ok(LinkList(Vec::new()))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<LinkList, E> {
        Ok(LinkList(Vec::new()))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<LinkList, E> {
        Ok(LinkList(Vec::new()))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<LinkList, E> {
        Ok(LinkList(Vec::new()))
    }
    fn visit_none<E: de::Error>(self) -> Result<LinkList, E> {
        Ok(LinkList(Vec::new()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<LinkList, E> {
        Ok(LinkList(Vec::new()))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<LinkList, D::Error> {
        LinkList::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LinkList, A::Error> {
        let mut out = Vec::new();
        while let Some(LinkList(links)) = seq.next_element()? {
            out.extend(links);
        }
        Ok(LinkList(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LinkList, A::Error> {
        let mut out = Vec::new();
        while map.next_key::<IgnoredAny>()?.is_some() {
            let LinkList(links) = map.next_value()?;
            out.extend(links);
        }
        Ok(LinkList(out))
    }

    /// Both IPLD serde codecs use a newtype struct for exactly one thing: a CID.
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<LinkList, D::Error> {
        struct CidBytes;
        impl Visitor<'_> for CidBytes {
            type Value = Cid;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("CID bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Cid, E> {
                Cid::try_from(v).map_err(|e| E::custom(format!("invalid CID: {e}")))
            }
        }
        let cid = d.deserialize_bytes(CidBytes)?;
        Ok(LinkList(vec![cid]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::PbLink;
    use ipld_core::ipld::Ipld;
    use multihash_codetable::{Code, MultihashDigest};
    use std::collections::BTreeMap;

    fn cid(codec: u64, data: &[u8]) -> Cid {
        Cid::new_v1(codec, Code::Sha2_256.digest(data))
    }

    #[test]
    fn raw_has_no_links_and_unknown_codec_is_an_error() {
        assert!(links(&cid(CODEC_RAW, b"x"), b"x").unwrap().is_empty());
        let git = cid(0x78, b"x");
        assert!(matches!(
            links(&git, b"x"),
            Err(DagError::UnsupportedCodec { codec: 0x78, .. })
        ));
    }

    #[test]
    fn dag_pb_links_in_block_order() {
        let (a, b) = (cid(CODEC_RAW, b"a"), cid(CODEC_RAW, b"b"));
        let node = PbNode {
            links: vec![
                PbLink {
                    cid: b,
                    name: Some("z".into()),
                    tsize: None,
                },
                PbLink {
                    cid: a,
                    name: Some("y".into()),
                    tsize: None,
                },
            ],
            data: None,
        };
        let bytes = node.encode();
        assert_eq!(
            links(&cid(CODEC_DAG_PB, &bytes), &bytes).unwrap(),
            vec![b, a]
        );
    }

    #[test]
    fn dag_cbor_links_nested_in_encoded_order() {
        let (a, b, c) = (
            cid(CODEC_RAW, b"a"),
            cid(CODEC_RAW, b"b"),
            cid(CODEC_RAW, b"c"),
        );
        // DAG-CBOR sorts keys length-first: "z" is encoded before "aa", although a BTreeMap
        // would visit "aa" first.
        let mut inner = BTreeMap::new();
        inner.insert(
            "k".to_string(),
            Ipld::List(vec![Ipld::Link(b), Ipld::Integer(3)]),
        );
        let mut map = BTreeMap::new();
        map.insert("z".to_string(), Ipld::Link(a));
        map.insert("aa".to_string(), Ipld::Map(inner));
        map.insert("bb".to_string(), Ipld::Link(c));
        let bytes = serde_ipld_dagcbor::to_vec(&Ipld::Map(map)).unwrap();
        let got = links(&cid(CODEC_DAG_CBOR, &bytes), &bytes).unwrap();
        assert_eq!(got, vec![a, b, c]);
    }

    #[test]
    fn dag_json_links() {
        let a = cid(CODEC_RAW, b"a");
        let text = format!(r#"{{"x":[{{"/":"{a}"}},{{"/":{{"bytes":"AQI"}}}}],"y":1}}"#);
        let got = links(&cid(CODEC_DAG_JSON, text.as_bytes()), text.as_bytes()).unwrap();
        assert_eq!(got, vec![a]);
    }

    #[test]
    fn invalid_dag_cbor_is_an_error() {
        let c = cid(CODEC_DAG_CBOR, b"\xff");
        assert!(matches!(
            links(&c, b"\xff"),
            Err(DagError::InvalidDagCbor { .. })
        ));
    }
}
