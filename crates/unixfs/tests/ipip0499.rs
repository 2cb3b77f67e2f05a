//! The IPIP-0499 fixture table (ipip-0499-unixfs-cid-profiles.md § "Test fixtures"), rebuilt
//! from the inputs Kubo's `test/cli/cid_profiles_test.go` generates them from:
//! - small file: the 11 bytes `hello world`;
//! - files at / over chunk size and at / over max links: Kubo's deterministic bytes
//!   ([`common::Deterministic`]) with seeds `chunk-v0-seed`, `chunk-v1-seed`, `v0-seed`,
//!   `v1-2025-seed`;
//! - directories at / over the HAMT threshold: N files each holding `x`, named by
//!   `createDeterministicFiles` (bytes of the `1MiB` deterministic stream of seed
//!   `hamt-unixfs-v0-2015` / `hamt-unixfs-v1-2025`, `nameLen` at a time, each byte mapped to
//!   `AlphabetEasy[b % 39]`);
//! - the empty directory (unixfs.md § "Appendix: Test Vectors").
//!
//! The 1 GiB v1 files (1024 × 1 MiB, and + 1 byte) are imported in one pass over the same
//! bytes.

mod common;

use common::{Deterministic, import_deterministic};
use hydrant_unixfs::{
    DataType, DirectoryBuilder, FileImporter, ImportProfile, Metadata, PbNode, UnixFsData,
    symlink_block,
};

const V0: ImportProfile = ImportProfile::unixfs_v0_2015();
const V1: ImportProfile = ImportProfile::unixfs_v1_2025();

fn small(profile: &ImportProfile, bytes: &[u8]) -> String {
    let mut file = FileImporter::new(profile, Metadata::default()).unwrap();
    drop(file.push(bytes));
    file.finish().cid.to_string()
}

#[test]
fn small_file_hello_world() {
    assert_eq!(
        small(&V0, b"hello world"),
        "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
    );
    assert_eq!(
        small(&V1, b"hello world"),
        "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    );
}

#[test]
fn files_at_and_over_chunk_size() {
    let cases = [
        (
            V0,
            262_144,
            "QmWmRj3dFDZdb6ABvbmKhEL6TmPbAfBZ1t5BxsEyJrcZhE",
        ),
        (
            V0,
            262_145,
            "QmYyLxtzZyW22zpoVAtKANLRHpDjZtNeDjQdJrcQNWoRkJ",
        ),
        (
            V1,
            1_048_576,
            "bafkreiacndfy443ter6qr2tmbbdhadvxxheowwf75s6zehscklu6ezxmta",
        ),
        (
            V1,
            1_048_577,
            "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64",
        ),
    ];
    for (profile, size, expected) in cases {
        let seed = if profile.cid_version == 0 {
            "chunk-v0-seed"
        } else {
            "chunk-v1-seed"
        };
        let got = import_deterministic(&profile, size, seed, 65_536);
        assert_eq!(got.cid.to_string(), expected, "{size} bytes");
    }
}

#[test]
fn files_at_and_over_max_links_v0() {
    let size = 174 * 262_144;
    let at = import_deterministic(&V0, size, "v0-seed", 100_000);
    assert_eq!(
        at.cid.to_string(),
        "QmUbBALi174SnogsUzLpYbD4xPiBSFANF4iztWCsHbMKh2"
    );
    let over = import_deterministic(&V0, size + 1, "v0-seed", 100_000);
    assert_eq!(
        over.cid.to_string(),
        "QmV81WL765sC8DXsRhE5fJv2rwhS4icHRaf3J9Zk5FdRnW"
    );
}

/// 1 GiB and 1 GiB + 1 byte, both fed from one pass of the generator.
#[test]
fn files_at_and_over_max_links_v1() {
    let size: u64 = 1024 * 1_048_576;
    let mut at = FileImporter::new(&V1, Metadata::default()).unwrap();
    let mut over = FileImporter::new(&V1, Metadata::default()).unwrap();
    let mut source = Deterministic::new(size + 1, "v1-2025-seed");
    let mut buf = vec![0u8; 1 << 20];
    let mut fed = 0u64;
    loop {
        let n = source.fill(&mut buf);
        if n == 0 {
            break;
        }
        let for_at = usize::try_from((size - fed.min(size)).min(n as u64)).unwrap();
        drop(at.push(&buf[..for_at]));
        drop(over.push(&buf[..n]));
        fed += n as u64;
    }
    assert_eq!(
        at.finish().cid.to_string(),
        "bafybeihmf37wcuvtx4hpu7he5zl5qaf2ineo2lqlfrapokkm5zzw7zyhvm"
    );
    assert_eq!(
        over.finish().cid.to_string(),
        "bafybeibdsi225ugbkmpbdohnxioyab6jsqrmkts3twhpvfnzp77xtzpyhe"
    );
}

/// Kubo's `createDeterministicFiles`: `count` names, the last `last_len` long, the others
/// `len`; each file holds `x`.
fn hamt_dir(
    profile: &ImportProfile,
    seed: &str,
    count: usize,
    len: usize,
    last_len: usize,
) -> (String, u32) {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz01234567890-_";
    let mut names = Deterministic::new(1 << 20, seed);
    let x = {
        let mut f = FileImporter::new(profile, Metadata::default()).unwrap();
        drop(f.push(b"x"));
        f.finish()
    };
    let mut dir = DirectoryBuilder::new(profile, Metadata::default()).unwrap();
    for i in 0..count {
        let n = if i == count - 1 { last_len } else { len };
        let mut buf = vec![0u8; n];
        assert_eq!(names.fill(&mut buf), n);
        let name: String = buf
            .iter()
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect();
        dir.add(&name, x.cid, x.size).unwrap();
    }
    let done = dir.finish().unwrap();
    let root = done.blocks.last().unwrap();
    let node = PbNode::decode(&root.cid, &root.data).unwrap();
    let data = UnixFsData::decode(&root.cid, node.data.as_ref().unwrap()).unwrap();
    let kind = match data.data_type {
        DataType::Directory => 1,
        DataType::HamtShard => 5,
        _ => 0,
    };
    if kind == 1 && profile.cid_version == 1 {
        // block-bytes: the flat block is exactly at the threshold.
        assert_eq!(root.data.len(), 262_144);
    }
    (done.cid.to_string(), kind)
}

#[test]
fn directories_at_and_over_hamt_threshold() {
    assert_eq!(
        hamt_dir(&V0, "hamt-unixfs-v0-2015", 4096, 30, 30),
        (
            "QmX5GtRk3TSSEHtdrykgqm4eqMEn3n2XhfkFAis5fjyZmN".to_string(),
            1
        )
    );
    assert_eq!(
        hamt_dir(&V0, "hamt-unixfs-v0-2015", 4033, 31, 31),
        (
            "QmeMiJzmhpJAUgynAcxTQYek5PPKgdv3qEvFsdV3XpVnvP".to_string(),
            5
        )
    );
    assert_eq!(
        hamt_dir(&V1, "hamt-unixfs-v1-2025", 4766, 11, 21),
        (
            "bafybeic3h7rwruealwxkacabdy45jivq2crwz6bufb5ljwupn36gicplx4".to_string(),
            1
        )
    );
    assert_eq!(
        hamt_dir(&V1, "hamt-unixfs-v1-2025", 4766, 11, 22),
        (
            "bafybeiegvuterwurhdtkikfhbxcldohmxp566vpjdofhzmnhv6o4freidu".to_string(),
            5
        )
    );
}

#[test]
fn empty_directory_vectors() {
    for (profile, expected) in [
        (V0, "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"),
        (
            V1,
            "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354",
        ),
    ] {
        let dir = DirectoryBuilder::new(&profile, Metadata::default()).unwrap();
        assert_eq!(dir.finish().unwrap().cid.to_string(), expected);
    }
}

/// The symlink of the gateway-conformance fixture `symlink.car`
/// (`QmWvY6FaqFMS89YAQ9NAPjVP4WZKA1qbHbicc9HeSKQTgt`) is a directory whose contents are not
/// in the spec; this checks the encoding of a symlink node against the unixfs.md rule
/// (Type = 4, Data = target, no filesize) instead.
#[test]
fn symlink_node_shape() {
    let link = symlink_block(&V0, "foo", Metadata::default()).unwrap();
    let block = &link.blocks[0];
    assert_eq!(
        &block.data[..],
        &[0x0a, 0x07, 0x08, 0x04, 0x12, 0x03, b'f', b'o', b'o']
    );
    assert_eq!(link.size, 9);
}
