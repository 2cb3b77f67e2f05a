//! Every example of compact-denylist-format.md, checked exactly.

use cid::Cid;
use cid::multibase::Base;
use hydrant_denylist::{Denylist, Status, Verdict};
use multihash_codetable::{Code, MultihashDigest as _};

/// The "Example" section's list, verbatim.
const SPEC_EXAMPLE: &str = r#"version: 1
name: Example IPFSCorp blocking list
description: A collection of bad things we have found in the universe
author: abuse-ipfscorp@example.com
hints:
  hint: value
  hint2: value2
---
# Blocking by CID is codec-agnostic (blocks by multihash).
# Does not block subpaths per se, but might stop an implementation
# from resolving subpaths if this block is not retrievable.
/ipfs/bafybeihvvulpp4evxj7x7armbqcyg6uezzuig6jp3lktpbovlqfkuqeuoq

# Blocking by subpath (equivalent rules)
/ipfs/Qmah2YDTfrox4watLCr3YgKyBwvjq8FJZEFdWY6WtJ3Xt2/test*
/ipfs/QmTuvSQbEDR3sarFAN9kAeXBpiBCyYYNxdxciazBba11eC/test/*

# Block some subpaths with exceptions: last-matching-rule wins (!)
/ipfs/QmUboz9UsQBDeS6Tug1U8jgoFkgYxyYood9NDyVURAY9pK/blocked*
!/ipfs/QmUboz9UsQBDeS6Tug1U8jgoFkgYxyYood9NDyVURAY9pK/blockednot
!/ipfs/QmUboz9UsQBDeS6Tug1U8jgoFkgYxyYood9NDyVURAY9pK/blocked/not
!/ipfs/QmUboz9UsQBDeS6Tug1U8jgoFkgYxyYood9NDyVURAY9pK/blocked/exceptions*

# Block DNSLink domain name
/ipns/domain.example

# Block DNSLink domain name and path
/ipns/domain2.example/path

# Block IPNS key - blocks wrapped multihash.
/ipns/k51qzi5uqu5dhmzyv3zac033i7rl9hkgczxyl81lwoukda2htteop7d3x0y1mf

# Double-hash CID block using sha2-256 hashing
# base58btc-sha256-multihash(QmVTF1yEejXd9iMgoRTFDxBv7HAz9kuZcQNBzHrceuK9HR)
# Blocks bafybeidjwik6im54nrpfg7osdvmx7zojl5oaxqel5cmsz46iuelwf5acja
# and QmVTF1yEejXd9iMgoRTFDxBv7HAz9kuZcQNBzHrceuK9HR etc. by multihash
//QmX9dhRcQcKUw3Ws8485T5a9dtjrSCQaUAHnG4iK9i4ceM

# Double-hash Path block using blake3 hashing
# base58btc-blake3-multihash(gW7Nhu4HrfDtphEivm3Z9NNE7gpdh5Tga8g6JNZc1S8E47/path)
# Blocks /ipfs/bafyb4ieqht3b2rssdmc7sjv2cy2gfdilxkfh7623nvndziyqnawkmo266a/path
# /ipfs/bafyb4ieqht3b2rssdmc7sjv2cy2gfdilxkfh7623nvndziyqnawkmo266a/path
# /ipfs/f01701e20903cf61d46521b05f926ba1634628d0bba8a7ffb5b6d5a3ca310682ca63b5ef0/path etc...
# But not /path2
//gW813G35CnLsy7gRYYHuf63hrz71U1xoLFDVeV7actx6oX

# Legacy CID double-hash block
# sha256(bafybeiefwqslmf6zyyrxodaxx4vwqircuxpza5ri45ws3y5a62ypxti42e/)
# blocks only this CID
//d9d295bde21f422d471a90f2a37ec53049fdf3e5fa3ee2e8f20e10003da429e7

# Legacy DNSLink double-hash block
# sha256(bad-domain-name.tld/)
//c555c4de78827ba42527dd3dc5398db38d6c0a8c345a88e0158b2d100f317e50

# Legacy Path double-hash block
# Blocks bafybeiefwqslmf6zyyrxodaxx4vwqircuxpza5ri45ws3y5a62ypxti42e/path
# but not any other paths.
//3f8b9febd851873b3774b937cce126910699ceac56e72e64b866f8e258d09572

"#;

fn cid(s: &str) -> Cid {
    s.parse().unwrap()
}

fn b58(bytes: &[u8]) -> String {
    Base::Base58Btc.encode(bytes)
}

fn list() -> Denylist {
    Denylist::parse("example.deny", SPEC_EXAMPLE).unwrap()
}

/// The line of `needle` in the example (1-based).
fn line_of(needle: &str) -> u32 {
    let at = SPEC_EXAMPLE
        .lines()
        .position(|l| l == needle)
        .unwrap_or_else(|| panic!("{needle} not in the example"));
    u32::try_from(at + 1).unwrap()
}

#[track_caller]
fn denied_at(v: Verdict, line: u32) {
    match v {
        Verdict::Denied(d) => {
            assert_eq!(d.line, line, "denied by the wrong line");
            assert_eq!(&*d.list, "example.deny");
            assert_eq!(d.status, Status::Gone);
        }
        Verdict::Allowed => panic!("allowed, expected a denial by line {line}"),
    }
}

#[test]
fn example_header() {
    let l = list();
    let h = l.header();
    assert_eq!(h.version, 1);
    assert_eq!(h.name.as_deref(), Some("Example IPFSCorp blocking list"));
    assert_eq!(h.author.as_deref(), Some("abuse-ipfscorp@example.com"));
    assert_eq!(h.hints.get("hint2").map(String::as_str), Some("value2"));
    assert_eq!(l.rule_count(), 15);
    assert_eq!(
        usize::try_from(l.line_count()).unwrap(),
        SPEC_EXAMPLE.lines().count()
    );
}

#[test]
fn example_cid_rule_blocks_by_multihash_only_the_root() {
    let l = list();
    let line = line_of("/ipfs/bafybeihvvulpp4evxj7x7armbqcyg6uezzuig6jp3lktpbovlqfkuqeuoq");
    let v1 = cid("bafybeihvvulpp4evxj7x7armbqcyg6uezzuig6jp3lktpbovlqfkuqeuoq");
    denied_at(l.check(&v1, ""), line);
    denied_at(l.check(&v1, "/"), line);
    // The CIDv0 and a raw-codec CIDv1 of the same multihash.
    let v0 = Cid::new_v0(*v1.hash()).unwrap();
    denied_at(l.check(&v0, ""), line);
    denied_at(l.check(&Cid::new_v1(0x55, *v1.hash()), ""), line);
    denied_at(l.check(&cid(&v0.to_string()), ""), line);
    // Not its subpaths (the path resolver's view), nor the same name under /ipns/.
    assert_eq!(l.check(&v1, "/a"), Verdict::Allowed);
    assert_eq!(l.check_ipns(&v1.to_string(), ""), Verdict::Allowed);
    // A CID whose text differs in the last character is another multihash.
    let other = cid("bafybeihvvulpp4evxj7x7armbqcyg6uezzuig6jp3lktpbovlqfkuqeuoa");
    assert_ne!(other.hash(), v1.hash());
    assert_eq!(l.check(&other, ""), Verdict::Allowed);
}

#[test]
fn example_prefix_rules_are_equivalent() {
    let l = list();
    for (root, rule) in [
        (
            "Qmah2YDTfrox4watLCr3YgKyBwvjq8FJZEFdWY6WtJ3Xt2",
            "/ipfs/Qmah2YDTfrox4watLCr3YgKyBwvjq8FJZEFdWY6WtJ3Xt2/test*",
        ),
        (
            "QmTuvSQbEDR3sarFAN9kAeXBpiBCyYYNxdxciazBba11eC",
            "/ipfs/QmTuvSQbEDR3sarFAN9kAeXBpiBCyYYNxdxciazBba11eC/test/*",
        ),
    ] {
        let line = line_of(rule);
        let c = cid(root);
        let v1 = Cid::new_v1(0x70, *c.hash());
        for path in ["test", "/test", "/test/", "/test/a", "/test/a/b", "testing"] {
            denied_at(l.check(&c, path), line);
            denied_at(l.check(&v1, path), line);
        }
        for path in ["", "/", "/tes", "/other/test", "/Test"] {
            assert_eq!(l.check(&c, path), Verdict::Allowed, "{root} {path}");
        }
    }
}

#[test]
fn example_exceptions_last_matching_rule_wins() {
    let l = list();
    let c = cid("QmUboz9UsQBDeS6Tug1U8jgoFkgYxyYood9NDyVURAY9pK");
    let line = line_of("/ipfs/QmUboz9UsQBDeS6Tug1U8jgoFkgYxyYood9NDyVURAY9pK/blocked*");
    for path in [
        "/blocked",
        "/blocked/x",
        "/blockedfoo",
        "/blocked/not/deeper",
        "/blockednot/x",
    ] {
        denied_at(l.check(&c, path), line);
    }
    for path in [
        "/blockednot",
        "/blocked/not",
        "/blocked/not/",
        "/blocked/exceptions",
        "/blocked/exceptions/a/b",
        "/blocked/exceptionsX",
        "/",
        "/other",
    ] {
        assert_eq!(l.check(&c, path), Verdict::Allowed, "{path}");
    }
}

#[test]
fn example_ipns_rules() {
    let l = list();
    let dom = line_of("/ipns/domain.example");
    denied_at(l.check_ipns("domain.example", ""), dom);
    denied_at(l.check_ipns("Domain.EXAMPLE", "/"), dom);
    assert_eq!(l.check_ipns("domain.example", "/x"), Verdict::Allowed);
    assert_eq!(l.check_ipns("sub.domain.example", ""), Verdict::Allowed);
    assert_eq!(l.check_ipns("domain.exampl", ""), Verdict::Allowed);

    let dom2 = line_of("/ipns/domain2.example/path");
    denied_at(l.check_ipns("domain2.example", "/path"), dom2);
    denied_at(l.check_ipns("domain2.example", "path/"), dom2);
    assert_eq!(l.check_ipns("domain2.example", ""), Verdict::Allowed);
    assert_eq!(l.check_ipns("domain2.example", "/path2"), Verdict::Allowed);
    assert_eq!(l.check_ipns("domain2.example", "/path/x"), Verdict::Allowed);

    let key = line_of("/ipns/k51qzi5uqu5dhmzyv3zac033i7rl9hkgczxyl81lwoukda2htteop7d3x0y1mf");
    let k = cid("k51qzi5uqu5dhmzyv3zac033i7rl9hkgczxyl81lwoukda2htteop7d3x0y1mf");
    denied_at(
        l.check_ipns(
            "k51qzi5uqu5dhmzyv3zac033i7rl9hkgczxyl81lwoukda2htteop7d3x0y1mf",
            "",
        ),
        key,
    );
    // The same key as a base58btc peer ID, and as a base32 CIDv1: the wrapped multihash.
    let peer_id = b58(&k.hash().to_bytes());
    assert!(peer_id.starts_with("12D3Koo"), "{peer_id}");
    denied_at(l.check_ipns(&peer_id, ""), key);
    denied_at(
        l.check_ipns(&k.to_string_of_base(Base::Base32Lower).unwrap(), ""),
        key,
    );
    // Not the same multihash under /ipfs/.
    assert_eq!(l.check(&k, ""), Verdict::Allowed);
}

#[test]
fn example_modern_sha256_double_hash() {
    // The double hash is sha2-256 of the base58btc multihash, exactly.
    let mh = Code::Sha2_256.digest(b"QmVTF1yEejXd9iMgoRTFDxBv7HAz9kuZcQNBzHrceuK9HR");
    assert_eq!(
        b58(&mh.to_bytes()),
        "QmX9dhRcQcKUw3Ws8485T5a9dtjrSCQaUAHnG4iK9i4ceM"
    );

    let l = list();
    let line = line_of("//QmX9dhRcQcKUw3Ws8485T5a9dtjrSCQaUAHnG4iK9i4ceM");
    let v1 = cid("bafybeidjwik6im54nrpfg7osdvmx7zojl5oaxqel5cmsz46iuelwf5acja");
    let v0 = cid("QmVTF1yEejXd9iMgoRTFDxBv7HAz9kuZcQNBzHrceuK9HR");
    assert_eq!(v1.hash(), v0.hash());
    denied_at(l.check(&v1, ""), line);
    denied_at(l.check(&v0, ""), line);
    denied_at(l.check(&Cid::new_v1(0x55, *v0.hash()), ""), line);
    assert_eq!(l.check(&v0, "/a"), Verdict::Allowed);
    // An IPNS name whose multihash it is (NameSystem: hash the b58 multihash).
    denied_at(
        l.check_ipns("QmVTF1yEejXd9iMgoRTFDxBv7HAz9kuZcQNBzHrceuK9HR", ""),
        line,
    );
}

#[test]
fn example_modern_blake3_path_double_hash() {
    let c = cid("bafyb4ieqht3b2rssdmc7sjv2cy2gfdilxkfh7623nvndziyqnawkmo266a");
    assert_eq!(
        b58(&c.hash().to_bytes()),
        "gW7Nhu4HrfDtphEivm3Z9NNE7gpdh5Tga8g6JNZc1S8E47"
    );
    let mh = Code::Blake3_256.digest(b"gW7Nhu4HrfDtphEivm3Z9NNE7gpdh5Tga8g6JNZc1S8E47/path");
    assert_eq!(
        b58(&mh.to_bytes()),
        "gW813G35CnLsy7gRYYHuf63hrz71U1xoLFDVeV7actx6oX"
    );

    let l = list();
    let line = line_of("//gW813G35CnLsy7gRYYHuf63hrz71U1xoLFDVeV7actx6oX");
    let hex = cid("f01701e20903cf61d46521b05f926ba1634628d0bba8a7ffb5b6d5a3ca310682ca63b5ef0");
    assert_eq!(hex, c);
    denied_at(l.check(&c, "/path"), line);
    denied_at(l.check(&c, "path/"), line);
    denied_at(l.check(&hex, "/path"), line);
    denied_at(l.check(&Cid::new_v1(0x55, *c.hash()), "/path"), line);
    assert_eq!(l.check(&c, "/path2"), Verdict::Allowed);
    assert_eq!(l.check(&c, ""), Verdict::Allowed);
    assert_eq!(l.check(&c, "/path/x"), Verdict::Allowed);
}

#[test]
fn example_legacy_double_hashes() {
    let sha = |s: &str| {
        Code::Sha2_256
            .digest(s.as_bytes())
            .digest()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let base = "bafybeiefwqslmf6zyyrxodaxx4vwqircuxpza5ri45ws3y5a62ypxti42e";
    assert_eq!(
        sha(&format!("{base}/")),
        "d9d295bde21f422d471a90f2a37ec53049fdf3e5fa3ee2e8f20e10003da429e7"
    );
    assert_eq!(
        sha("bad-domain-name.tld/"),
        "c555c4de78827ba42527dd3dc5398db38d6c0a8c345a88e0158b2d100f317e50"
    );
    assert_eq!(
        sha(&format!("{base}/path")),
        "3f8b9febd851873b3774b937cce126910699ceac56e72e64b866f8e258d09572"
    );

    let l = list();
    let c = cid(base);
    let cid_line = line_of("//d9d295bde21f422d471a90f2a37ec53049fdf3e5fa3ee2e8f20e10003da429e7");
    let path_line = line_of("//3f8b9febd851873b3774b937cce126910699ceac56e72e64b866f8e258d09572");
    let dns_line = line_of("//c555c4de78827ba42527dd3dc5398db38d6c0a8c345a88e0158b2d100f317e50");
    denied_at(l.check(&c, ""), cid_line);
    // The CIDv0 converts to the same CIDv1 base32: blocked too.
    denied_at(l.check(&Cid::new_v0(*c.hash()).unwrap(), ""), cid_line);
    // "It can only block by CID and not by multihash": another codec is not blocked.
    assert_eq!(l.check(&Cid::new_v1(0x55, *c.hash()), ""), Verdict::Allowed);
    denied_at(l.check(&c, "/path"), path_line);
    assert_eq!(l.check(&c, "/path2"), Verdict::Allowed);
    assert_eq!(l.check(&c, "/other"), Verdict::Allowed);
    assert_eq!(
        l.check(&Cid::new_v1(0x55, *c.hash()), "/path"),
        Verdict::Allowed
    );
    denied_at(l.check_ipns("bad-domain-name.tld", ""), dns_line);
    denied_at(l.check_ipns("BAD-domain-name.tld", "/"), dns_line);
    assert_eq!(l.check_ipns("bad-domain-name.tld", "/x"), Verdict::Allowed);
    assert_eq!(l.check_ipns("good-domain-name.tld", ""), Verdict::Allowed);
}

#[test]
fn note_kubo_double_hash_example() {
    // "Convert any CID to its multihash" and "create a second multihash".
    let c = cid("bafybeihrw75yfhdx5qsqgesdnxejtjybscwuclpusvxkuttep6h7pkgmze");
    assert_eq!(
        b58(&c.hash().to_bytes()),
        "QmecDgNqCRirkc3Cjz9eoRBNwXGckJ9WvTdmY16HP88768"
    );
    let mh = Code::Sha2_256.digest(b"QmecDgNqCRirkc3Cjz9eoRBNwXGckJ9WvTdmY16HP88768/my/path");
    assert_eq!(
        b58(&mh.to_bytes()),
        "QmSju6XPmYLG611rmK7rEeCMFVuL6EHpqyvmEU6oGx3GR8"
    );

    let l = Denylist::parse(
        "d.deny",
        "//QmSju6XPmYLG611rmK7rEeCMFVuL6EHpqyvmEU6oGx3GR8\n",
    )
    .unwrap();
    assert!(l.check(&c, "/my/path").is_denied());
    assert!(
        l.check(
            &cid("QmecDgNqCRirkc3Cjz9eoRBNwXGckJ9WvTdmY16HP88768"),
            "my/path"
        )
        .is_denied()
    );
    assert_eq!(l.check(&c, "/my/path2"), Verdict::Allowed);
    assert_eq!(l.check(&c, "/my"), Verdict::Allowed);
    assert_eq!(l.check(&c, ""), Verdict::Allowed);
}

#[test]
fn introduction_echo_line() {
    // `echo /ipfs/Qm... >> custom.deny`: a file of one line without a header.
    let l = Denylist::parse(
        "custom.deny",
        "/ipfs/QmecDgNqCRirkc3Cjz9eoRBNwXGckJ9WvTdmY16HP88768\n",
    )
    .unwrap();
    assert_eq!(l.header().version, 1);
    let v = l.check(
        &cid("bafybeihrw75yfhdx5qsqgesdnxejtjybscwuclpusvxkuttep6h7pkgmze"),
        "",
    );
    assert!(matches!(v, Verdict::Denied(d) if d.line == 1));
}

#[test]
fn negated_rules_example() {
    let text = "/ipfs/QmecDgNqCRirkc3Cjz9eoRBNwXGckJ9WvTdmY16HP88768/photo*\n\
                !/ipfs/QmecDgNqCRirkc3Cjz9eoRBNwXGckJ9WvTdmY16HP88768/photo123.jpg\n\
                !/ipns/my.domain\n\
                /ipns/my.domain\n";
    let l = Denylist::parse("n.deny", text).unwrap();
    let c = cid("QmecDgNqCRirkc3Cjz9eoRBNwXGckJ9WvTdmY16HP88768");
    assert!(l.check(&c, "/photo1.jpg").is_denied());
    assert!(l.check(&c, "/photos/x").is_denied());
    assert_eq!(l.check(&c, "/photo123.jpg"), Verdict::Allowed);
    // "/ipns/my.domain stays blocked because the deny rule happens AFTER the allow one".
    assert!(matches!(l.check_ipns("my.domain", ""), Verdict::Denied(d) if d.line == 4));
}

#[test]
fn cid_rule_by_base58btc_multihash() {
    // "/ipfs/CID": "When users want to block by multihash directly, they must
    // base58btc-encoded multihashes": here a blake3 one, which is not a CIDv0.
    let l = Denylist::parse(
        "m.deny",
        "/ipfs/gW7Nhu4HrfDtphEivm3Z9NNE7gpdh5Tga8g6JNZc1S8E47/a\n",
    )
    .unwrap();
    let c = cid("bafyb4ieqht3b2rssdmc7sjv2cy2gfdilxkfh7623nvndziyqnawkmo266a");
    assert!(l.check(&c, "/a").is_denied());
    assert!(l.check(&Cid::new_v1(0x55, *c.hash()), "a").is_denied());
    assert_eq!(l.check(&c, ""), Verdict::Allowed);
}
