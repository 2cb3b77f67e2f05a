//! Rule kinds, negation, hints, bad lines, limits and sets of lists.

use cid::Cid;
use hydrant_denylist::{
    BadLines, Denylist, DenylistSet, LineError, LineErrorKind, ParseError, ParseOptions, Status,
    Verdict,
};
use proptest::prelude::*;

const A: &str = "QmecDgNqCRirkc3Cjz9eoRBNwXGckJ9WvTdmY16HP88768";
const B: &str = "QmVTF1yEejXd9iMgoRTFDxBv7HAz9kuZcQNBzHrceuK9HR";

fn cid(s: &str) -> Cid {
    s.parse().unwrap()
}

fn denial(v: Verdict) -> (u32, u16) {
    match v {
        Verdict::Denied(d) => (d.line, d.status.code()),
        Verdict::Allowed => panic!("allowed"),
    }
}

fn line_error(e: ParseError) -> LineError {
    match e {
        ParseError::Line(l) => l,
        e => panic!("not a line error: {e}"),
    }
}

#[test]
fn exact_path_rule_blocks_that_path_only() {
    let l = Denylist::parse("t", format!("/ipfs/{A}/a/b\n")).unwrap();
    let a = cid(A);
    for p in ["/a/b", "a/b", "/a/b/", "//a/b//"] {
        assert!(l.check(&a, p).is_denied(), "{p}");
    }
    for p in ["", "/a", "/a/b/c", "/a/bc", "/a/c", "/A/b"] {
        assert_eq!(l.check(&a, p), Verdict::Allowed, "{p}");
    }
    assert_eq!(l.check(&cid(B), "/a/b"), Verdict::Allowed);
    // The same multihash through a CIDv1 of another codec.
    assert!(l.check(&Cid::new_v1(0x71, *a.hash()), "/a/b").is_denied());
}

#[test]
fn star_root_blocks_the_cid_and_every_path() {
    let l = Denylist::parse("t", format!("/ipfs/{A}/*\n")).unwrap();
    let a = cid(A);
    for p in ["", "/", "/x", "/x/y"] {
        assert!(l.check(&a, p).is_denied(), "{p}");
    }
    assert_eq!(l.check(&cid(B), "/x"), Verdict::Allowed);
}

#[test]
fn percent_encoded_rule_paths_match_decoded_requests() {
    let l = Denylist::parse("t", format!("/ipfs/{A}/caf%C3%A9/a%20b*\n")).unwrap();
    assert!(l.check(&cid(A), "/café/a b").is_denied());
    assert!(l.check(&cid(A), "/café/a bc").is_denied());
    assert_eq!(l.check(&cid(A), "/caf%C3%A9/a%20b"), Verdict::Allowed);
}

#[test]
fn several_prefix_lengths_on_one_cid() {
    let text = format!("/ipfs/{A}/a*\n!/ipfs/{A}/ab*\n/ipfs/{A}/abc*\n!/ipfs/{A}/abcd\n");
    let l = Denylist::parse("t", text).unwrap();
    let a = cid(A);
    assert_eq!(denial(l.check(&a, "/a")).0, 1);
    assert_eq!(denial(l.check(&a, "/aX")).0, 1);
    assert_eq!(l.check(&a, "/ab"), Verdict::Allowed);
    assert_eq!(l.check(&a, "/abX"), Verdict::Allowed);
    assert_eq!(denial(l.check(&a, "/abc")).0, 3);
    assert_eq!(denial(l.check(&a, "/abcde")).0, 3);
    assert_eq!(l.check(&a, "/abcd"), Verdict::Allowed);
    assert_eq!(l.check(&a, ""), Verdict::Allowed);
}

#[test]
fn negation_order_matters() {
    // Allow before deny: the deny wins. Deny, allow, deny again: the last deny wins.
    let text = format!("!/ipfs/{A}\n/ipfs/{A}\n/ipfs/{B}\n!/ipfs/{B}\n/ipfs/{B}/*\n");
    let l = Denylist::parse("t", text).unwrap();
    assert_eq!(denial(l.check(&cid(A), "")).0, 2);
    assert_eq!(denial(l.check(&cid(B), "")).0, 5);
    // A repeated rule: the later line is reported.
    let l = Denylist::parse("t", format!("/ipfs/{A}\n/ipfs/{A}\n")).unwrap();
    assert_eq!(denial(l.check(&cid(A), "")).0, 2);
    // A negated double hash undoes a plain rule.
    let dh = "//QmX9dhRcQcKUw3Ws8485T5a9dtjrSCQaUAHnG4iK9i4ceM";
    let l = Denylist::parse("t", format!("/ipfs/{B}\n!{dh}\n")).unwrap();
    assert_eq!(l.check(&cid(B), ""), Verdict::Allowed);
}

#[test]
fn status_hints() {
    let text = format!(
        "hints:\n  status: 451\n---\n/ipfs/{A}\n/ipfs/{B} status:410 other:x\n/ipns/a.example status:451\n"
    );
    let l = Denylist::parse("t", text).unwrap();
    assert_eq!(denial(l.check(&cid(A), "")), (4, 451));
    assert_eq!(denial(l.check(&cid(B), "")), (5, 410));
    assert_eq!(denial(l.check_ipns("a.example", "")), (6, 451));
    let l = Denylist::parse("t", format!("/ipfs/{A} status:451\n/ipfs/{B}\n")).unwrap();
    assert_eq!(denial(l.check(&cid(A), "")), (1, 451));
    assert_eq!(denial(l.check(&cid(B), "")), (2, 410));
    match l.check(&cid(B), "") {
        Verdict::Denied(d) => assert_eq!(d.status, Status::Gone),
        Verdict::Allowed => unreachable!(),
    }
    // A bad status value: a bad line, or a header error for the global hint.
    let e = line_error(Denylist::parse("t", format!("\n/ipfs/{A} status:404\n")).unwrap_err());
    assert_eq!(e.line, 2);
    assert!(matches!(e.kind, LineErrorKind::InvalidStatus { .. }));
    let e = Denylist::parse("t", "name: x\nhints:\n  status: 200\n---\n").unwrap_err();
    assert!(matches!(e, ParseError::Header { line: 3, .. }), "{e}");
}

#[test]
fn bad_lines_name_their_line_number() {
    let text = format!("# comment\n\n/ipfs/{A}\n/ipfs/notacid\n/ipns/a.example\n");
    let e = line_error(Denylist::parse("t", &text).unwrap_err());
    assert_eq!(e.line, 4);
    assert!(matches!(e.kind, LineErrorKind::InvalidCid { .. }));
    assert!(
        e.to_string().starts_with("line 4: invalid CID \"notacid\""),
        "{e}"
    );

    // Header lines count.
    let e = line_error(Denylist::parse("t", "name: x\n---\nfoo\n").unwrap_err());
    assert_eq!(e.line, 3);
    assert!(matches!(e.kind, LineErrorKind::UnknownRule { .. }));

    // Not UTF-8.
    let e = line_error(Denylist::parse("t", b"/ipns/a.b\n/ipns/\xff\n".as_slice()).unwrap_err());
    assert_eq!((e.line, e.kind), (2, LineErrorKind::NotUtf8));

    // With BadLines::Skip: kept rules work, errors are reported, at most max_reported_errors.
    let opts = ParseOptions {
        bad_lines: BadLines::Skip,
        max_reported_errors: 2,
        ..ParseOptions::default()
    };
    let text = format!("bad1\n/ipfs/{A}\nbad2\n//zz\n!\n/ipns/a.example\n");
    let l = Denylist::parse_with("t", text, opts).unwrap();
    assert_eq!(l.skipped_lines(), 4);
    let lines: Vec<u32> = l.skipped().iter().map(|e| e.line).collect();
    assert_eq!(lines, [1, 3]);
    assert_eq!(l.rule_count(), 2);
    assert!(l.check(&cid(A), "").is_denied());
    assert!(l.check_ipns("a.example", "").is_denied());
}

#[test]
fn crlf_and_whitespace() {
    let text = format!("name: x\r\n---\r\n  /ipfs/{A}/p  \r\n\t!/ipfs/{A}/q*\r\n");
    let l = Denylist::parse("t", text).unwrap();
    assert_eq!(l.header().name.as_deref(), Some("x"));
    assert_eq!(denial(l.check(&cid(A), "/p")).0, 3);
    assert_eq!(l.rule_count(), 2);
}

#[test]
fn header_errors_refuse_the_list() {
    let e = Denylist::parse("t", "version: 2\n---\n").unwrap_err();
    assert!(matches!(e, ParseError::UnsupportedVersion { line: 1, .. }));
    // Rules before a `---` are read as a header, which is then not YAML: refused (spec).
    let e = Denylist::parse("t", format!("/ipfs/{A}\n---\n")).unwrap_err();
    assert!(matches!(e, ParseError::Header { line: 1, .. }), "{e}");
    // Even with BadLines::Skip.
    let opts = ParseOptions {
        bad_lines: BadLines::Skip,
        ..ParseOptions::default()
    };
    assert!(Denylist::parse_with("t", "a b c\n---\n", opts).is_err());
    // Empty header and empty file.
    let l = Denylist::parse("t", "---\n").unwrap();
    assert_eq!((l.rule_count(), l.line_count()), (0, 1));
    let l = Denylist::parse("t", "").unwrap();
    assert_eq!((l.rule_count(), l.line_count()), (0, 0));
}

#[test]
fn header_over_the_limit_is_read_as_rules() {
    let opts = ParseOptions {
        max_header_bytes: 16,
        ..ParseOptions::default()
    };
    // `---` ends within 16 bytes: a header.
    let l = Denylist::parse_with("t", "name: short\n---\n", opts.clone()).unwrap();
    assert_eq!(l.header().name.as_deref(), Some("short"));
    // Not within 16 bytes: no header; the first line is a bad rule.
    let e = line_error(
        Denylist::parse_with("t", "name: a longer name\n---\n", opts.clone()).unwrap_err(),
    );
    assert_eq!(e.line, 1);
    // With Skip, both lines are skipped and the rest is read.
    let opts = ParseOptions {
        bad_lines: BadLines::Skip,
        ..opts
    };
    let text = format!("name: a longer name\n---\n/ipfs/{A}\n");
    let l = Denylist::parse_with("t", text, opts).unwrap();
    assert_eq!(l.skipped_lines(), 2);
    assert_eq!(l.header().name, None);
    assert_eq!(denial(l.check(&cid(A), "")).0, 3);
}

#[test]
fn limits() {
    // Line length, counting the newline.
    let ok = format!("/ipfs/{A}/12345");
    assert_eq!(ok.len(), 58);
    let opts = ParseOptions {
        max_line_bytes: 59,
        ..ParseOptions::default()
    };
    Denylist::parse_with("t", format!("{ok}\n"), opts.clone()).unwrap();
    Denylist::parse_with("t", &ok, opts.clone()).unwrap();
    let e = line_error(Denylist::parse_with("t", format!("#\n{ok}6\n"), opts).unwrap_err());
    assert_eq!(
        (e.line, e.kind),
        (2, LineErrorKind::TooLong { len: 60, max: 59 })
    );

    // The spec's 2 MiB.
    let long = format!("/ipfs/{A}/{}", "x".repeat(hydrant_denylist::MAX_LINE_BYTES));
    let e = line_error(Denylist::parse("t", &long).unwrap_err());
    assert!(matches!(
        e.kind,
        LineErrorKind::TooLong { max: 2_097_152, .. }
    ));

    // Rule count: even with Skip, going over refuses the list.
    let opts = ParseOptions {
        max_rules: 2,
        bad_lines: BadLines::Skip,
        ..ParseOptions::default()
    };
    let text = format!("/ipfs/{A}\n# c\n/ipfs/{B}\n/ipns/a.b\n");
    let e = Denylist::parse_with("t", &text, opts.clone()).unwrap_err();
    assert_eq!(e, ParseError::TooManyRules { line: 4, max: 2 });
    let mut l = Denylist::parse_with("t", format!("/ipfs/{A}\n"), opts).unwrap();
    l.append(format!("/ipfs/{B}\n")).unwrap();
    assert_eq!(
        l.append("/ipns/a.b\n").unwrap_err(),
        ParseError::TooManyRules { line: 3, max: 2 }
    );

    // Stored bytes.
    let opts = ParseOptions {
        max_stored_bytes: 100,
        ..ParseOptions::default()
    };
    let text = format!("/ipfs/{A}/{}\n", "p".repeat(100));
    let e = Denylist::parse_with("t", text, opts).unwrap_err();
    assert!(matches!(e, ParseError::TooManyBytes { line: 1, max: 100 }));
}

#[test]
fn append_continues_line_numbers() {
    let mut l = Denylist::parse("t", "name: x\n---\n# first\n").unwrap();
    assert_eq!(l.line_count(), 3);
    l.append(format!("/ipfs/{A}\n")).unwrap();
    assert_eq!(denial(l.check(&cid(A), "")).0, 4);
    l.append(format!("!/ipfs/{A}\n")).unwrap();
    assert_eq!(l.check(&cid(A), ""), Verdict::Allowed);
    let e = line_error(l.append("oops\n").unwrap_err());
    assert_eq!(e.line, 6);
}

#[test]
fn ipns_path_rules() {
    let text = "/ipns/a.example/docs/*\n!/ipns/a.example/docs/public\n\
                /ipns/12D3KooWLyiJWueSLNPD11Sbey4hvitvGFCKPeRUUPmL8pncWJbh/x\n";
    let l = Denylist::parse("t", text).unwrap();
    assert!(l.check_ipns("a.example", "/docs").is_denied());
    assert!(l.check_ipns("A.Example", "/docs/secret").is_denied());
    assert_eq!(l.check_ipns("a.example", "/docs/public"), Verdict::Allowed);
    assert_eq!(l.check_ipns("a.example", ""), Verdict::Allowed);
    assert_eq!(l.check_ipns("b.example", "/docs"), Verdict::Allowed);
    let peer = "12D3KooWLyiJWueSLNPD11Sbey4hvitvGFCKPeRUUPmL8pncWJbh";
    assert!(l.check_ipns(peer, "/x").is_denied());
    assert_eq!(l.check_ipns(peer, ""), Verdict::Allowed);
    // The same key as a libp2p-key CIDv1.
    let mh = cid_multihash_of_peer(peer);
    let k = Cid::new_v1(0x72, mh).to_string();
    assert!(l.check_ipns(&k, "/x").is_denied());
    // A domain is not confused with /ipfs/.
    assert_eq!(l.check(&Cid::new_v1(0x72, mh), "/x"), Verdict::Allowed);
}

fn cid_multihash_of_peer(peer: &str) -> cid::multihash::Multihash<64> {
    let bytes = cid::multibase::Base::Base58Btc.decode(peer).unwrap();
    cid::multihash::Multihash::from_bytes(&bytes).unwrap()
}

#[test]
fn set_later_lists_override_earlier_ones() {
    let first = Denylist::parse("a.deny", format!("/ipfs/{A}/*\n/ipfs/{B}\n")).unwrap();
    let second = Denylist::parse("b.deny", format!("!/ipfs/{A}/ok\n/ipns/x.example\n")).unwrap();
    let set = DenylistSet::sorted_by_name(vec![second, first]);
    let names: Vec<&str> = set.lists().iter().map(Denylist::name).collect();
    assert_eq!(names, ["a.deny", "b.deny"]);
    match set.check(&cid(A), "/bad") {
        Verdict::Denied(d) => assert_eq!((&*d.list, d.line), ("a.deny", 1)),
        Verdict::Allowed => panic!(),
    }
    assert_eq!(set.check(&cid(A), "/ok"), Verdict::Allowed);
    match set.check(&cid(B), "") {
        Verdict::Denied(d) => assert_eq!((&*d.list, d.line), ("a.deny", 2)),
        Verdict::Allowed => panic!(),
    }
    match set.check_ipns("x.example", "") {
        Verdict::Denied(d) => assert_eq!((&*d.list, d.line), ("b.deny", 2)),
        Verdict::Allowed => panic!(),
    }
    assert_eq!(set.check_ipns("y.example", ""), Verdict::Allowed);
    assert_eq!(DenylistSet::new().check(&cid(A), ""), Verdict::Allowed);

    let mut set = DenylistSet::new();
    set.push(Denylist::parse("z.deny", "").unwrap());
    set.lists_mut()[0].append(format!("/ipfs/{B}\n")).unwrap();
    assert!(set.check(&cid(B), "").is_denied());
}

#[test]
fn legacy_double_hash_hex_is_case_insensitive() {
    // A 64-digit hex string never also reads as a supported base58btc multihash (those are
    // 46 to 91 characters long but never 64 with a non-zero first byte), so the spec's "create
    // deny rules for both" case cannot arise with the supported hash functions.
    let l = Denylist::parse(
        "t",
        "//D9D295BDE21F422D471A90F2A37EC53049FDF3E5FA3EE2E8F20E10003DA429E7\n",
    )
    .unwrap();
    let c = cid("bafybeiefwqslmf6zyyrxodaxx4vwqircuxpza5ri45ws3y5a62ypxti42e");
    assert!(l.check(&c, "").is_denied());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let opts = ParseOptions { bad_lines: BadLines::Skip, ..ParseOptions::default() };
        if let Ok(l) = Denylist::parse_with("p", &bytes, opts) {
            let _ = l.check(&cid(A), "/x");
            let _ = l.check_ipns("a.example", "");
        }
        let _ = Denylist::parse("p", &bytes);
    }

    #[test]
    fn parsing_rule_like_text_never_panics(
        lines in proptest::collection::vec(
            "(!)?(/ipfs/|/ipns/|//|#|---|version: |hints:|  )?[A-Za-z0-9%*/:. !#-]{0,60}",
            0..12,
        ),
        path in "[a-z/*]{0,12}",
    ) {
        let text = lines.join("\n");
        let opts = ParseOptions { bad_lines: BadLines::Skip, ..ParseOptions::default() };
        if let Ok(l) = Denylist::parse_with("p", &text, opts) {
            let _ = l.check(&cid(A), &path);
            let _ = l.check_ipns("a.example", &path);
            let _ = l.check_ipns(A, &path);
        }
    }

    #[test]
    fn a_path_rule_matches_exactly_its_path(seg in "[a-z]{1,8}", other in "[a-z]{1,8}") {
        let l = Denylist::parse("p", format!("/ipfs/{A}/{seg}\n")).unwrap();
        prop_assert!(l.check(&cid(A), &seg).is_denied());
        prop_assert_eq!(l.check(&cid(A), &other).is_denied(), seg == other);
        prop_assert!(!l.check(&cid(B), &seg).is_denied());
    }
}

#[test]
fn many_rules_each_check_is_a_lookup() {
    use multihash_codetable::{Code, MultihashDigest as _};
    let cids: Vec<Cid> = (0u32..20_000)
        .map(|i| Cid::new_v1(0x55, Code::Sha2_256.digest(&i.to_be_bytes())))
        .collect();
    let mut text = String::new();
    for (i, c) in cids.iter().enumerate() {
        text.push_str(&format!("/ipfs/{c}/f{i}*\n"));
    }
    let l = Denylist::parse("big", text).unwrap();
    assert_eq!(l.rule_count(), 20_000);
    for (i, c) in cids.iter().enumerate().step_by(997) {
        assert_eq!(
            denial(l.check(c, &format!("/f{i}/x"))).0,
            u32::try_from(i + 1).unwrap()
        );
        assert_eq!(l.check(c, "/g"), Verdict::Allowed);
        assert_eq!(l.check(c, ""), Verdict::Allowed);
    }
}
