//! The Kubo RPC commands that read IPLD DAGs: `dag/get` (one node as DAG-JSON) and
//! `dag/export` (a CARv1 of a whole DAG), answered as Kubo (`core/commands/dag/`) answers
//! them.
//!
//! Specs: DAG-JSON (ipld.io/specs/codecs/dag-json: bytes as `{"/": {"bytes": "<base64, no
//! padding>"}}`, links as `{"/": "<cid>"}`), the DAG-PB data model (ipld.io/specs/codecs/
//! dag-pb: `{"Data"?, "Links": [{"Hash", "Name"?, "Tsize"?}]}`), CARv1 (car.md).

use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use cid::Cid;
use futures::TryStreamExt as _;
use hydrant_unixfs::{HamtCursor, PathStep, PbNode, resolve_path};
use ipld_core::ipld::Ipld;

use super::read::{CODEC_DAG_PB, CODEC_RAW, fetch_block, resolve_cid};
use super::{KuboError, Params, byte_stream, ipfs_path};
use crate::http::state::ApiState;

/// Multicodec of dag-cbor blocks.
const CODEC_DAG_CBOR: u64 = 0x71;
/// Multicodec of dag-json blocks.
const CODEC_DAG_JSON: u64 = 0x0129;

/// Most blocks `dag/get` reads to resolve one path (links followed plus HAMT shards).
const MAX_PATH_BLOCKS: usize = 4096;

/// Block `data` of `cid` as its IPLD data model: raw → bytes; dag-pb → its data model (above);
/// dag-cbor and dag-json → decoded.
///
/// # Errors
/// [`KuboError::Failed`] naming the CID for an undecodable block or an unsupported codec.
pub(crate) fn decode_node(cid: &Cid, data: &[u8]) -> Result<Ipld, KuboError> {
    let invalid = |e: String| KuboError::Failed(format!("block {cid} does not decode: {e}"));
    match cid.codec() {
        CODEC_RAW => Ok(Ipld::Bytes(data.to_vec())),
        CODEC_DAG_PB => {
            let node = PbNode::decode(cid, data).map_err(|e| invalid(e.to_string()))?;
            Ok(dag_pb_model(&node))
        }
        CODEC_DAG_CBOR => {
            serde_ipld_dagcbor::from_slice::<Ipld>(data).map_err(|e| invalid(e.to_string()))
        }
        CODEC_DAG_JSON => {
            serde_ipld_dagjson::from_slice::<Ipld>(data).map_err(|e| invalid(e.to_string()))
        }
        codec => Err(KuboError::Failed(format!(
            "block {cid}: codec 0x{codec:x} is not supported by dag/get (dag-pb, raw, dag-cbor \
             and dag-json are)"
        ))),
    }
}

/// The DAG-PB data model of a node: `Data` only when present, each link's `Name` and `Tsize`
/// only when present.
pub(crate) fn dag_pb_model(node: &PbNode) -> Ipld {
    let mut map = std::collections::BTreeMap::new();
    if let Some(data) = &node.data {
        map.insert("Data".to_owned(), Ipld::Bytes(data.to_vec()));
    }
    let links = node
        .links
        .iter()
        .map(|link| {
            let mut l = std::collections::BTreeMap::new();
            l.insert("Hash".to_owned(), Ipld::Link(link.cid));
            if let Some(name) = &link.name {
                l.insert("Name".to_owned(), Ipld::String(name.clone()));
            }
            if let Some(tsize) = link.tsize {
                l.insert("Tsize".to_owned(), Ipld::Integer(i128::from(tsize)));
            }
            Ipld::Map(l)
        })
        .collect();
    map.insert("Links".to_owned(), Ipld::List(links));
    Ipld::Map(map)
}

/// `value` as DAG-JSON, the way Kubo's encoder (go-ipld-prime `dagjson`) writes it: no
/// whitespace, map keys sorted length first then bytewise (RFC 7049 canonical order), bytes
/// as `{"/":{"bytes":"<standard base64, no padding>"}}`, links as `{"/":"<cid>"}` (CIDv0 in
/// base58, CIDv1 in base32).
pub(crate) fn dag_json(value: &Ipld, out: &mut String) {
    match value {
        Ipld::Null => out.push_str("null"),
        Ipld::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Ipld::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Ipld::Float(f) => out.push_str(&serde_json::to_string(f).unwrap_or_else(|_| "null".into())),
        Ipld::String(s) => out.push_str(&serde_json::to_string(s).expect("strings serialize")),
        Ipld::Bytes(b) => {
            let encoded = cid::multibase::encode(cid::multibase::Base::Base64, b);
            // Drop the multibase prefix `m`.
            let _ = write!(out, r#"{{"/":{{"bytes":"{}"}}}}"#, &encoded[1..]);
        }
        Ipld::Link(cid) => {
            let _ = write!(out, r#"{{"/":"{cid}"}}"#);
        }
        Ipld::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                dag_json(item, out);
            }
            out.push(']');
        }
        Ipld::Map(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(key).expect("strings serialize"));
                out.push(':');
                dag_json(&map[key], out);
            }
            out.push('}');
        }
    }
}

/// The value an IPLD path names: blocks are crossed by links (dag-pb through UnixFS names
/// and HAMT shards, dag-cbor/dag-json through map keys and list indices), as Kubo's
/// `ResolvePath`; a path ending at a link gives the linked node; the rest of a path that ends
/// inside a block (at a value that is not a link) is taken inside that node.
async fn resolve_value(state: &ApiState, mut cid: Cid, path: &str) -> Result<Ipld, KuboError> {
    let store = &state.services.blockstore;
    let mut segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let mut cursor = HamtCursor::default();
    let mut at = cid.to_string();
    for _ in 0..MAX_PATH_BLOCKS {
        let data = fetch_block(store, &cid).await?;
        if segments.is_empty() {
            return decode_node(&cid, &data);
        }
        let step = resolve_path(&cid, &data, &segments, &mut cursor)
            .map_err(|e| KuboError::Failed(format!("{at}: {e}")))?;
        match step {
            PathStep::Link {
                cid: next,
                consumed,
            } => {
                for segment in segments.drain(..consumed) {
                    at.push('/');
                    at.push_str(&segment);
                }
                cid = next;
                cursor = HamtCursor::default();
            }
            PathStep::Shard(next) => cid = next,
            PathStep::NotFound { segment } => {
                return Err(KuboError::Failed(format!(
                    "{at}: no link named {:?} under {cid}",
                    segments[segment]
                )));
            }
            PathStep::NotTraversable { segment } => {
                return Err(KuboError::Failed(format!(
                    "{at}: cannot resolve {:?}: nothing below it in {cid}",
                    segments[segment]
                )));
            }
            PathStep::EndsInsideBlock => {
                let mut value = decode_node(&cid, &data)?;
                for segment in &segments {
                    value = match value {
                        Ipld::Map(mut map) => map.remove(segment),
                        Ipld::List(mut list) => segment
                            .parse::<usize>()
                            .ok()
                            .filter(|i| *i < list.len())
                            .map(|i| list.swap_remove(i)),
                        _ => None,
                    }
                    .ok_or_else(|| {
                        KuboError::Failed(format!("{at}: no field {segment:?} in {cid}"))
                    })?;
                }
                return Ok(value);
            }
        }
    }
    Err(KuboError::Client(format!(
        "{path:?}: more than {MAX_PATH_BLOCKS} blocks to resolve"
    )))
}

/// `POST /api/v0/dag/get?arg=<cid>[/path][&output-codec=dag-json]`: the node (or the value
/// the path names inside it) as DAG-JSON ([`dag_json`]), no trailing newline, as a byte
/// stream (`text/plain`, `X-Stream-Output: 1`), as Kubo answers. dag-pb nodes in their data
/// model (`{"Data":{"/":{"bytes":"..."}},"Links":[{"Hash":{"/":"<cid>"},"Name":"...",
/// "Tsize":n}]}`), raw blocks as bytes (`{"/":{"bytes":"..."}}`), dag-cbor and dag-json as
/// decoded.
///
/// Errors: 400 for a bad argument or an `output-codec` other than `dag-json` (named); 500
/// for a missing block (Kubo's message), a path naming nothing, an undecodable block or an
/// unsupported codec.
pub(crate) async fn dag_get(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Response, KuboError> {
    let arg = params.arg("ref")?;
    let codec = params.get("output-codec").unwrap_or("dag-json");
    if codec != "dag-json" {
        return Err(KuboError::Client(format!(
            "output-codec {codec:?} is not supported by Hydrant (only dag-json)"
        )));
    }
    let (root, path) = ipfs_path(arg)?;
    let value = resolve_value(&state, root, path).await?;
    let mut out = String::new();
    dag_json(&value, &mut out);
    Ok(byte_stream("text/plain", Body::from(out)))
}

/// `POST /api/v0/dag/export?arg=<cid>`: the CARv1 of the whole DAG under the CID (one root,
/// blocks depth first, each once: car.md, as the trustless gateway's `dag-scope=all`), as a
/// byte stream (`application/vnd.ipld.car`, `X-Stream-Output: 1`), as Kubo answers. A path
/// (`CID/a/b`) exports the DAG it resolves to.
///
/// Errors: 400 for a bad argument; 500 with Kubo's message when the root block is missing
/// (checked before the first byte); a block missing further down cuts the stream.
pub(crate) async fn dag_export(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Response, KuboError> {
    let arg = params.arg("root")?;
    let store = &state.services.blockstore;
    let root = resolve_cid(store, arg).await?;
    fetch_block(store, &root).await?;
    let stream = crate::stores::export::car_stream(&state.services, root).map_err(move |e| {
        tracing::warn!(%root, error = %e, "dag/export stream cut short");
        std::io::Error::other(e.to_string())
    });
    Ok(byte_stream(
        "application/vnd.ipld.car",
        Body::from_stream(stream),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use hydrant_unixfs::PbLink;

    #[test]
    fn kubo_dag_json_of_dag_pb_matches_kubo() {
        let leaf: Cid = "QmWATWQ7fVPP2EFGu71UkfnqhYXDYH566qy47CnJDgvs8u"
            .parse()
            .unwrap();
        let node = PbNode {
            links: vec![
                PbLink {
                    cid: leaf,
                    name: Some("hello.txt".into()),
                    tsize: Some(12),
                },
                PbLink {
                    cid: leaf,
                    name: None,
                    tsize: None,
                },
            ],
            data: Some(Bytes::from_static(&[8, 1])),
        };
        let mut out = String::new();
        dag_json(&dag_pb_model(&node), &mut out);
        assert_eq!(
            out,
            r#"{"Data":{"/":{"bytes":"CAE"}},"Links":[{"Hash":{"/":"QmWATWQ7fVPP2EFGu71UkfnqhYXDYH566qy47CnJDgvs8u"},"Name":"hello.txt","Tsize":12},{"Hash":{"/":"QmWATWQ7fVPP2EFGu71UkfnqhYXDYH566qy47CnJDgvs8u"}}]}"#
        );
        let empty = PbNode {
            links: vec![],
            data: None,
        };
        let mut out = String::new();
        dag_json(&dag_pb_model(&empty), &mut out);
        assert_eq!(out, r#"{"Links":[]}"#);
    }

    #[test]
    fn kubo_dag_json_sorts_keys_length_first_and_encodes_values() {
        let cbor = serde_ipld_dagcbor::to_vec(&ipld_core::ipld!({
            "bb": 1,
            "a": [true, null, -3, "x\"y"],
            "ccc": Ipld::Bytes(vec![0xff, 0xfe, 0xfd, 0xfc]),
        }))
        .unwrap();
        let cid = Cid::new_v1(
            CODEC_DAG_CBOR,
            hydrant_blocks::digest(0x12, 32, &cbor).unwrap(),
        );
        let value = decode_node(&cid, &cbor).unwrap();
        let mut out = String::new();
        dag_json(&value, &mut out);
        assert_eq!(
            out,
            r#"{"a":[true,null,-3,"x\"y"],"bb":1,"ccc":{"/":{"bytes":"//79/A"}}}"#
        );
        let raw = Cid::new_v1(CODEC_RAW, hydrant_blocks::digest(0x12, 32, b"hi").unwrap());
        let mut out = String::new();
        dag_json(&decode_node(&raw, b"hi").unwrap(), &mut out);
        assert_eq!(out, r#"{"/":{"bytes":"aGk"}}"#);
    }
}
