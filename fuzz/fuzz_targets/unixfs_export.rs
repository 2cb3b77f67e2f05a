//! Fuzz target: the UnixFS exporter's state machines (`hydrant_unixfs::exporter`).
//!
//! Input layout: byte 0 picks the root CID as in `unixfs_dag` (bits 0-1: codec dag-pb, dag-cbor,
//! dag-json, raw; bit 2: CIDv0 when dag-pb), byte 1 mod 64 is the length of a content path
//! taken from the end of the input, bytes 2-3 an offset and byte 4 a length for ranged reads;
//! the rest is the one block every wanted CID is answered with (so a node linking to anything
//! links to itself). Runs `Resolver`, `FileReader` (whole and ranged), `DirLister` and
//! `TreeExporter` for at most 256 steps each. Checks: no panic; every error names a CID or a
//! path (its `Display` is not empty).
#![no_main]

use bytes::Bytes;
use cid::Cid;
use hydrant_unixfs::exporter::{
    DirLister, ExportError, FileReader, FileStep, Resolver, TreeExporter, TreeStep,
};
use libfuzzer_sys::fuzz_target;
use multihash::Multihash;

const CODECS: [u64; 4] = [0x70, 0x71, 0x0129, 0x55];
const STEPS: usize = 256;

fn make_cid(selector: u8) -> Cid {
    let codec = CODECS[usize::from(selector & 3)];
    let hash = Multihash::<64>::wrap(0x12, &[selector; 32]).expect("32-byte digest fits");
    if codec == 0x70 && selector & 4 != 0 {
        Cid::new_v0(hash).expect("sha2-256 CIDv0")
    } else {
        Cid::new_v1(codec, hash)
    }
}

fn named(e: &ExportError) {
    assert!(!e.to_string().is_empty(), "an error without a message");
}

fuzz_target!(|data: &[u8]| {
    let [selector, path_len, o1, o2, len, rest @ ..] = data else {
        return;
    };
    let root = make_cid(*selector);
    let path_len = usize::from(*path_len % 64).min(rest.len());
    let (block, path) = rest.split_at(rest.len() - path_len);
    let path = String::from_utf8_lossy(path).into_owned();
    let block = Bytes::copy_from_slice(block);

    if let Ok(mut resolver) = Resolver::new(root, &path) {
        for _ in 0..STEPS {
            match resolver.next_wanted() {
                Ok(Some(cid)) => {
                    if let Err(e) = resolver.on_block(&cid, &block) {
                        named(&e);
                        break;
                    }
                }
                Ok(None) => {
                    if let Err(e) = resolver.finish() {
                        named(&e);
                    }
                    break;
                }
                Err(e) => {
                    named(&e);
                    break;
                }
            }
        }
    }

    let offset = u64::from(u16::from_le_bytes([*o1, *o2]));
    for (offset, length) in [(0, None), (offset, Some(u64::from(*len)))] {
        let mut reader = FileReader::new(root, path.clone(), offset, length);
        for _ in 0..STEPS {
            match reader.next() {
                Ok(FileStep::Need(cid)) => {
                    if let Err(e) = reader.on_block(&cid, &block) {
                        named(&e);
                        break;
                    }
                }
                Ok(FileStep::Bytes(_)) => {}
                Ok(FileStep::Done) => break,
                Err(e) => {
                    named(&e);
                    break;
                }
            }
        }
    }

    let mut lister = DirLister::new(root, path.clone(), true);
    for _ in 0..STEPS {
        match lister.next_wanted() {
            Ok(Some(cid)) => {
                if let Err(e) = lister.on_block(&cid, &block) {
                    named(&e);
                    break;
                }
            }
            Ok(None) => {
                if let Err(e) = lister.finish() {
                    named(&e);
                }
                break;
            }
            Err(e) => {
                named(&e);
                break;
            }
        }
    }

    let mut tree = TreeExporter::new(root);
    for _ in 0..STEPS {
        match tree.next() {
            Ok(TreeStep::Need(cid)) => {
                if let Err(e) = tree.on_block(&cid, &block) {
                    named(&e);
                    break;
                }
            }
            Ok(TreeStep::Entry(_)) => {}
            Ok(TreeStep::Done) => break,
            Err(e) => {
                named(&e);
                break;
            }
        }
    }
});
