//! Fuzz target: the compact denylist parser and matcher (`hydrant_denylist`).
//!
//! Input: the bytes of a `.deny` file. Parses it with bad lines rejected and with bad lines
//! skipped, checks a few requests, and feeds every line to `parse_rule`. Checks: no panic; a
//! list accepted strictly is accepted when skipping too, with the same rules and nothing
//! skipped; a list made of one plain `/ipfs/CID/PATH` rule denies that path for every CID of
//! the rule's multihash.
#![no_main]

use cid::Cid;
use hydrant_denylist::{BadLines, Denylist, ParseOptions, RuleKind, parse_rule};
use libfuzzer_sys::fuzz_target;

const CID: &str = "QmecDgNqCRirkc3Cjz9eoRBNwXGckJ9WvTdmY16HP88768";

fuzz_target!(|data: &[u8]| {
    let cid: Cid = CID.parse().unwrap();
    let strict = Denylist::parse("fuzz.deny", data);
    let skip = Denylist::parse_with(
        "fuzz.deny",
        data,
        ParseOptions {
            bad_lines: BadLines::Skip,
            ..ParseOptions::default()
        },
    );
    if let Ok(strict) = &strict {
        let skip = skip.as_ref().expect("accepted strictly but refused when skipping");
        assert_eq!(strict.rule_count(), skip.rule_count());
        assert_eq!(skip.skipped_lines(), 0);
    }
    if let Ok(list) = &skip {
        for path in ["", "/", "/a", "/a/b*", "test"] {
            let _ = list.check(&cid, path);
            let _ = list.check_ipns("domain.example", path);
            let _ = list.check_ipns(CID, path);
        }
    }

    let text = String::from_utf8_lossy(data);
    for line in text.lines().take(64) {
        let Ok(Some(rule)) = parse_rule(line) else {
            continue;
        };
        if let RuleKind::Ipfs { multihash, path } = &rule.kind
            && !rule.allow
            && !path.prefix
            && rule.hints.iter().all(|(k, _)| k != "status")
        {
            let list = Denylist::parse("one.deny", line).expect("a rule parse_rule accepts");
            for codec in [0x55, 0x70, 0x71] {
                let c = Cid::new_v1(codec, *multihash);
                assert!(list.check(&c, &path.path).is_denied());
            }
        }
    }
});
