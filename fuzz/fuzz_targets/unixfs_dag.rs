//! Fuzz target: the block decoders of `hydrant_unixfs`.
//!
//! Input layout: byte 0 picks the CID (bits 0-1: codec dag-pb 0x70, dag-cbor 0x71,
//! dag-json 0x0129, raw 0x55; bit 2: CIDv0 when dag-pb), byte 1 mod 64 is the length of a
//! content path taken from the end of the input (lossy UTF-8, split on `/`), the rest is the
//! block. Calls `links`, `PbNode::decode`, `UnixFsData::decode` (on the block and on a decoded
//! node's `Data`) and `resolve_path`. Checks: no panic; `PbNode` and `UnixFsData` re-encode to
//! an equal value; for dag-pb, `links` agrees with `PbNode::decode`.
#![no_main]

use cid::Cid;
use hydrant_unixfs::{HamtCursor, PbNode, UnixFsData, links, resolve_path};
use libfuzzer_sys::fuzz_target;
use multihash::Multihash;

const CODECS: [u64; 4] = [0x70, 0x71, 0x0129, 0x55];

fn make_cid(selector: u8) -> Cid {
    let codec = CODECS[usize::from(selector & 3)];
    let digest = [selector; 32];
    let hash = Multihash::<64>::wrap(0x12, &digest).expect("32-byte digest fits");
    if codec == 0x70 && selector & 4 != 0 {
        Cid::new_v0(hash).expect("sha2-256 CIDv0")
    } else {
        Cid::new_v1(codec, hash)
    }
}

fn check_unixfs(cid: &Cid, bytes: &[u8]) {
    let Ok(ufs) = UnixFsData::decode(cid, bytes) else {
        return;
    };
    let _ = ufs.hamt_prefix_len();
    let again = UnixFsData::decode(cid, &ufs.encode())
        .unwrap_or_else(|e| panic!("re-encoded UnixFS Data does not decode: {e}"));
    // `encode` writes `filesize` for file types only (documented); compare modulo that.
    let mut expected = ufs.clone();
    if !expected.data_type.is_file() {
        expected.filesize = 0;
    }
    assert_eq!(expected, again, "UnixFsData does not round-trip");
}

fuzz_target!(|data: &[u8]| {
    let [selector, path_len, rest @ ..] = data else {
        return;
    };
    let cid = make_cid(*selector);
    let path_len = usize::from(*path_len % 64).min(rest.len());
    let (block, path) = rest.split_at(rest.len() - path_len);

    let linked = links(&cid, block);

    if cid.codec() == 0x70 {
        let node = PbNode::decode(&cid, block);
        match (&node, &linked) {
            (Ok(n), Ok(l)) => {
                let from_node: Vec<Cid> = n.links.iter().map(|l| l.cid).collect();
                assert_eq!(&from_node, l, "links() differs from PbNode::decode links");
            }
            (Err(_), Err(_)) => {}
            _ => panic!("links() and PbNode::decode disagree on validity"),
        }
        if let Ok(n) = node {
            let again = PbNode::decode(&cid, &n.encode())
                .unwrap_or_else(|e| panic!("re-encoded PbNode does not decode: {e}"));
            assert_eq!(n, again, "PbNode does not round-trip");
            if let Some(d) = &n.data {
                check_unixfs(&cid, d);
            }
        }
    }
    check_unixfs(&cid, block);

    let path = String::from_utf8_lossy(path);
    let segments: Vec<String> = path.split('/').map(str::to_string).collect();
    let mut cursor = HamtCursor::default();
    // Follow HAMT shards within this same block a few times (a shard linking to itself).
    for _ in 0..4 {
        match resolve_path(&cid, block, &segments, &mut cursor) {
            Ok(hydrant_unixfs::PathStep::Shard(_)) => continue,
            _ => break,
        }
    }
});
