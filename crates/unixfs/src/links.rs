//! Links of a block, by codec.
//!
//! Spec: unixfs.md § "`dag-pb` Node" for DAG-PB; the DAG-CBOR (tag 42) and DAG-JSON (`{"/": …}`)
//! link forms that path-gateway.md § "Traversing through DAG-JSON and DAG-CBOR" refers to.

use std::fmt;

use cid::Cid;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::DagError;
use crate::pb::PbNode;

pub(crate) use hydrant_blocks::codes::{
    CBOR as CODEC_CBOR, DAG_CBOR as CODEC_DAG_CBOR, DAG_JSON as CODEC_DAG_JSON,
    DAG_PB as CODEC_DAG_PB, IDENTITY as MULTIHASH_IDENTITY, JSON as CODEC_JSON,
    LIBP2P_KEY as CODEC_LIBP2P_KEY, RAW as CODEC_RAW,
};

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
        CODEC_DAG_CBOR => cbor_links(data).map_err(|reason| DagError::InvalidDagCbor {
            cid: *cid,
            reason: reason.into(),
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

/// The tag-42 CIDs of one DAG-CBOR item, in encoded order, found by skipping over the CBOR
/// structure without building values (RFC 8949 § 3: major types, lengths, tags).
///
/// Deliberately lenient where link extraction does not need strictness: text strings are not
/// checked for UTF-8 (real Filecoin chain blocks in go-car's fixtures carry non-UTF-8 text and
/// every IPLD implementation in the field walks them), and map key order is not checked. It is
/// strict where a wrong answer could follow: indefinite lengths (forbidden by DAG-CBOR), a tag
/// 42 that does not wrap a byte string holding `0x00` + a CID, truncation, and trailing bytes
/// are errors. Runs in time linear in the block: every step consumes at least one byte.
fn cbor_links(data: &[u8]) -> Result<Vec<Cid>, &'static str> {
    fn head(data: &[u8], pos: &mut usize) -> Result<(u8, u64), &'static str> {
        let first = *data.get(*pos).ok_or("truncated")?;
        *pos += 1;
        let (major, info) = (first >> 5, first & 0x1f);
        let width = match info {
            0..=23 => return Ok((major, u64::from(info))),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            31 => return Err("indefinite length (not allowed in DAG-CBOR)"),
            _ => return Err("reserved additional information"),
        };
        let bytes = data.get(*pos..*pos + width).ok_or("truncated")?;
        *pos += width;
        Ok((
            major,
            bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
        ))
    }
    fn skip(data: &[u8], pos: &mut usize, len: u64) -> Result<(), &'static str> {
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| pos.checked_add(len))
            .filter(|end| *end <= data.len())
            .ok_or("truncated")?;
        *pos = end;
        Ok(())
    }

    let mut links = Vec::new();
    let mut pos = 0;
    let mut items: u64 = 1;
    while items > 0 {
        items -= 1;
        let (major, arg) = head(data, &mut pos)?;
        match major {
            0 | 1 | 7 => {}
            2 | 3 => skip(data, &mut pos, arg)?,
            4 => items = items.checked_add(arg).ok_or("too many items")?,
            5 => {
                let pairs = arg.checked_mul(2).ok_or("too many items")?;
                items = items.checked_add(pairs).ok_or("too many items")?;
            }
            6 if arg == 42 => {
                let (inner, len) = head(data, &mut pos)?;
                let start = pos;
                skip(data, &mut pos, len)?;
                let bytes = &data[start..pos];
                if inner != 2 || bytes.first() != Some(&0) {
                    return Err("tag 42 must wrap a byte string starting with 0x00");
                }
                let cid = Cid::try_from(&bytes[1..]).map_err(|_| "tag 42 holds an invalid CID")?;
                links.push(cid);
            }
            6 => items += 1,
            _ => unreachable!("a major type has 3 bits"),
        }
    }
    if pos != data.len() {
        return Err("trailing bytes after the first item");
    }
    Ok(links)
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

#[cfg(test)]
mod cbor_tests {
    use super::*;
    use multihash_codetable::{Code, MultihashDigest};

    fn cid(n: u8) -> Cid {
        Cid::new_v1(CODEC_RAW, Code::Sha2_256.digest(&[n]))
    }

    #[test]
    fn dag_cbor_links_come_in_encoded_order() {
        // {"z": [link 1, {"a": link 2}], "b": link 3}, keys in DAG-CBOR canonical order ("b" < "z").
        let value = ipld_core::ipld!({"z": [cid(1), {"a": cid(2)}], "b": cid(3)});
        let bytes = serde_ipld_dagcbor::to_vec(&value).unwrap();
        let block = Cid::new_v1(CODEC_DAG_CBOR, Code::Sha2_256.digest(&bytes));
        assert_eq!(links(&block, &bytes).unwrap(), vec![cid(3), cid(1), cid(2)]);
    }

    #[test]
    fn non_utf8_text_does_not_hide_links() {
        // [text(2) = ff fe, tag 42 bytes(0x00 ++ cid)]
        let link = cid(9).to_bytes();
        let mut bytes = vec![
            0x82,
            0x62,
            0xff,
            0xfe,
            0xd8,
            0x2a,
            0x58,
            (link.len() + 1) as u8,
            0x00,
        ];
        bytes.extend_from_slice(&link);
        assert_eq!(cbor_links(&bytes).unwrap(), vec![cid(9)]);
    }

    #[test]
    fn malformed_cbor_is_an_error() {
        assert!(cbor_links(&[0x9f]).is_err(), "indefinite array");
        assert!(cbor_links(&[0x82, 0x01]).is_err(), "truncated array");
        assert!(cbor_links(&[0x01, 0x02]).is_err(), "trailing bytes");
        assert!(
            cbor_links(&[0xd8, 0x2a, 0x41, 0x01]).is_err(),
            "tag 42 without 0x00"
        );
        assert!(cbor_links(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(0u8.., 0..64)) {
            let _ = cbor_links(&bytes);
        }
    }
}
