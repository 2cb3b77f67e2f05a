//! One block item (compact-denylist-format.md, "Block item", "Negated rules", "Hints").

use cid::Cid;
use cid::multibase::Base;
use multihash::Multihash;
use multihash_codetable::{Code, MultihashDigest as _};
use percent_encoding::percent_decode_str;

use crate::error::{LineErrorKind, excerpt};

/// A multihash of up to 64 digest bytes, as `cid` uses.
pub type Mh = Multihash<64>;

/// HTTP status answered for a denied item: Hydrant's `status` hint (the spec defines no hint;
/// this one is ours, written `status:451` after a rule or `status: 451` under the header's
/// `hints:`). Without it, [`Status::Gone`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Status {
    /// 410 Gone: the default for a blocked item.
    #[default]
    Gone,
    /// 451 Unavailable For Legal Reasons.
    UnavailableForLegalReasons,
}

impl Status {
    /// The HTTP status code: 410 or 451.
    #[must_use]
    pub fn code(self) -> u16 {
        match self {
            Status::Gone => 410,
            Status::UnavailableForLegalReasons => 451,
        }
    }

    /// Reads a `status` hint value: `410` or `451`.
    ///
    /// # Errors
    /// [`LineErrorKind::InvalidStatus`] for any other value.
    pub fn from_hint(value: &str) -> Result<Status, LineErrorKind> {
        match value {
            "410" => Ok(Status::Gone),
            "451" => Ok(Status::UnavailableForLegalReasons),
            _ => Err(LineErrorKind::InvalidStatus {
                value: excerpt(value),
            }),
        }
    }
}

/// The name of the hint that sets [`Status`].
pub const STATUS_HINT: &str = "status";

/// The path part of an `/ipfs/` or `/ipns/` rule, %-decoded, without leading or trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathPattern {
    /// The decoded path without leading or trailing `/`; empty for the root (the CID or name
    /// itself).
    pub path: String,
    /// `true` for a rule ending in `*` ("IPFS-Path-Prefix-Rule"): matches every path that
    /// starts with `path` as a string (so `ab*` and `ab/*` both match `ab`, `ab/c` and `abc`,
    /// as the spec says they are equivalent).
    pub prefix: bool,
}

/// An IPNS name in a rule or a request ("`/ipns/NAME`").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IpnsName {
    /// A CID (e.g. a base36 libp2p-key CIDv1) or a base58btc multihash (a peer ID): matched
    /// by its multihash.
    Multihash(Mh),
    /// A DNSLink domain name, lower-cased (DNS names are case-insensitive).
    Domain(String),
}

/// What a rule blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    /// `/ipfs/CID[/PATH][*]`: by the CID's multihash (CIDv0 and every CIDv1 of the same
    /// multihash alike), and path. `CID` may also be a bare base58btc multihash.
    Ipfs {
        /// The multihash of the rule's CID.
        multihash: Mh,
        /// The path; empty and not a prefix for the CID-rule `/ipfs/CID`.
        path: PathPattern,
    },
    /// `/ipns/NAME[/PATH][*]`.
    Ipns {
        /// The name.
        name: IpnsName,
        /// The path; empty and not a prefix for the name itself.
        path: PathPattern,
    },
    /// `//DOUBLE-HASH`: at least one of the two forms is set; both when the text reads as
    /// both ("In a case where implementation cannot distinguish ... MUST create deny rules for
    /// both").
    DoubleHash {
        /// Modern form: a base58btc multihash of the request's hashing input.
        modern: Option<Mh>,
        /// Legacy form: a sha2-256 digest, hex in the file, of `CIDV1_BASE32/PATH`.
        legacy: Option<[u8; 32]>,
    },
}

/// A parsed block item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `true` for a negated rule (`!` prefix): matching items are allowed ("Negated rules").
    pub allow: bool,
    /// What the rule matches.
    pub kind: RuleKind,
    /// The rule's own hints (`key:value` tokens after the rule), in order.
    pub hints: Vec<(String, String)>,
}

/// Parses one line of the block-item section (compact-denylist-format.md, "Block item").
/// Returns `Ok(None)` for a blank line or a `#` comment. Leading and trailing whitespace and a
/// trailing `\r` are ignored; the rule and its hints are separated by spaces or tabs.
///
/// # Errors
/// A [`LineErrorKind`] saying what is wrong (never [`LineErrorKind::TooLong`] or
/// [`LineErrorKind::NotUtf8`], which the list parser checks).
pub fn parse_rule(line: &str) -> Result<Option<Rule>, LineErrorKind> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut tokens = line.split_ascii_whitespace();
    let Some(first) = tokens.next() else {
        return Ok(None);
    };
    let (allow, rule) = match first.strip_prefix('!') {
        Some("") => return Err(LineErrorKind::EmptyNegation),
        Some(rest) => (true, rest),
        None => (false, first),
    };
    let mut hints = Vec::new();
    for token in tokens {
        match token.split_once(':') {
            Some((key, value)) if !key.is_empty() => hints.push((key.to_owned(), value.to_owned())),
            _ => {
                return Err(LineErrorKind::InvalidHint {
                    token: excerpt(token),
                });
            }
        }
    }
    let kind = if let Some(hash) = rule.strip_prefix("//") {
        parse_double_hash(hash)?
    } else if let Some(rest) = rule.strip_prefix("/ipfs/") {
        let (cid_text, path) = split_target(rest);
        // A CID, or a base58btc multihash ("When users want to block by multihash directly,
        // they must base58btc-encoded multihashes"): sha2-256 ones read as CIDv0 already.
        let multihash = match Cid::try_from(cid_text) {
            Ok(cid) => *cid.hash(),
            Err(e) => b58_multihash(cid_text).ok_or_else(|| LineErrorKind::InvalidCid {
                cid: excerpt(cid_text),
                reason: e.to_string(),
            })?,
        };
        RuleKind::Ipfs {
            multihash,
            path: parse_path(path)?,
        }
    } else if let Some(rest) = rule.strip_prefix("/ipns/") {
        let (name, path) = split_target(rest);
        let name = ipns_name(name).ok_or_else(|| LineErrorKind::InvalidIpnsName {
            name: excerpt(name),
        })?;
        RuleKind::Ipns {
            name,
            path: parse_path(path)?,
        }
    } else {
        return Err(LineErrorKind::UnknownRule {
            rule: excerpt(rule),
        });
    };
    Ok(Some(Rule { allow, kind, hints }))
}

/// Splits `TARGET[/PATH]` at the first `/`.
fn split_target(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('/') {
        Some((target, path)) => (target, Some(path)),
        None => (rest, None),
    }
}

/// Reads the path after `/ipfs/CID/` or `/ipns/NAME/`: a trailing `*` makes it a prefix (before
/// %-decoding, so `%2A` is a literal `*`), then leading and trailing `/` are dropped and the
/// rest is %-decoded.
fn parse_path(path: Option<&str>) -> Result<PathPattern, LineErrorKind> {
    let Some(path) = path else {
        return Ok(PathPattern {
            path: String::new(),
            prefix: false,
        });
    };
    let (path, prefix) = match path.strip_suffix('*') {
        Some(p) => (p, true),
        None => (path, false),
    };
    let trimmed = path.trim_matches('/');
    let decoded = percent_decode_str(trimmed)
        .decode_utf8()
        .map_err(|_| LineErrorKind::InvalidPath)?;
    Ok(PathPattern {
        path: decoded.into_owned(),
        prefix,
    })
}

/// Classifies an IPNS name: a CID, else a base58btc multihash, else a domain name (ASCII
/// letters, digits, `-`, `_`, `.`; at most 253 bytes), lower-cased. `None` for anything else.
pub(crate) fn ipns_name(name: &str) -> Option<IpnsName> {
    if name.is_empty() {
        return None;
    }
    if let Some(mh) = name_multihash(name) {
        return Some(IpnsName::Multihash(mh));
    }
    let domain_like = name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    domain_like.then(|| IpnsName::Domain(name.to_ascii_lowercase()))
}

/// The multihash of an IPNS name that is a CID or a base58btc multihash.
pub(crate) fn name_multihash(name: &str) -> Option<Mh> {
    if let Ok(cid) = Cid::try_from(name) {
        return Some(*cid.hash());
    }
    b58_multihash(name)
}

/// A base58btc multihash (no multibase prefix), if `text` is one.
fn b58_multihash(text: &str) -> Option<Mh> {
    let bytes = Base::Base58Btc.decode(text).ok()?;
    Mh::from_bytes(&bytes).ok()
}

/// Hash functions a modern double hash may use: the ones `multihash-codetable` computes here,
/// each with its full digest length.
pub(crate) fn supported_hash(mh: &Mh) -> Option<Code> {
    let code = Code::try_from(mh.code()).ok()?;
    (usize::from(mh.size()) == code.digest(b"").digest().len()).then_some(code)
}

fn parse_double_hash(text: &str) -> Result<RuleKind, LineErrorKind> {
    let legacy = (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())).then(|| {
        let mut out = [0u8; 32];
        for (i, pair) in text.as_bytes().chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16).unwrap_or(0);
            let lo = (pair[1] as char).to_digit(16).unwrap_or(0);
            out[i] = u8::try_from(hi * 16 + lo).unwrap_or(0);
        }
        out
    });
    let mut unsupported = None;
    let modern = match Base::Base58Btc
        .decode(text)
        .ok()
        .and_then(|b| Mh::from_bytes(&b).ok())
    {
        Some(mh) if supported_hash(&mh).is_some() => Some(mh),
        Some(mh) => {
            unsupported = Some(LineErrorKind::UnsupportedHash {
                code: mh.code(),
                size: mh.size(),
            });
            None
        }
        None => None,
    };
    if modern.is_none() && legacy.is_none() {
        return Err(
            unsupported.unwrap_or_else(|| LineErrorKind::InvalidDoubleHash {
                hash: excerpt(text),
            }),
        );
    }
    Ok(RuleKind::DoubleHash { modern, legacy })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(line: &str) -> RuleKind {
        parse_rule(line).unwrap().unwrap().kind
    }

    #[test]
    fn comments_and_blanks() {
        assert_eq!(parse_rule(""), Ok(None));
        assert_eq!(parse_rule("   \t"), Ok(None));
        assert_eq!(parse_rule("# /ipfs/x"), Ok(None));
        assert_eq!(parse_rule("  # indented comment\r"), Ok(None));
    }

    #[test]
    fn paths() {
        let cid = "QmecDgNqCRirkc3Cjz9eoRBNwXGckJ9WvTdmY16HP88768";
        let p = |s: &str| match kind(&format!("/ipfs/{cid}{s}")) {
            RuleKind::Ipfs { path, .. } => (path.path, path.prefix),
            k => panic!("{k:?}"),
        };
        assert_eq!(p(""), (String::new(), false));
        assert_eq!(p("/"), (String::new(), false));
        assert_eq!(p("/*"), (String::new(), true));
        assert_eq!(p("/ab*"), ("ab".into(), true));
        assert_eq!(p("/ab/*"), ("ab".into(), true));
        assert_eq!(p("/ab/"), ("ab".into(), false));
        assert_eq!(p("/a%20b/c%2A"), ("a b/c*".into(), false));
        assert_eq!(p("/caf%C3%A9"), ("café".into(), false));
        assert_eq!(
            parse_rule(&format!("/ipfs/{cid}/%FF")),
            Err(LineErrorKind::InvalidPath)
        );
    }

    #[test]
    fn negation_and_hints() {
        let r = parse_rule("!/ipns/Example.COM/x status:451 other:y\t z:")
            .unwrap()
            .unwrap();
        assert!(r.allow);
        assert_eq!(
            r.kind,
            RuleKind::Ipns {
                name: IpnsName::Domain("example.com".into()),
                path: PathPattern {
                    path: "x".into(),
                    prefix: false
                }
            }
        );
        assert_eq!(
            r.hints,
            vec![
                ("status".into(), "451".into()),
                ("other".into(), "y".into()),
                ("z".into(), String::new())
            ]
        );
        assert_eq!(parse_rule("!"), Err(LineErrorKind::EmptyNegation));
        assert!(matches!(
            parse_rule("/ipns/a.b nohint"),
            Err(LineErrorKind::InvalidHint { .. })
        ));
        assert!(matches!(
            parse_rule("/ipns/a.b :x"),
            Err(LineErrorKind::InvalidHint { .. })
        ));
    }

    #[test]
    fn bad_rules() {
        for (line, want) in [
            ("ipfs/Qm", "UnknownRule"),
            ("/my/path", "UnknownRule"),
            ("/ipfs/", "InvalidCid"),
            ("/ipfs/notacid/x", "InvalidCid"),
            ("/ipns/", "InvalidIpnsName"),
            ("/ipns/bad%name", "InvalidIpnsName"),
            ("//", "InvalidDoubleHash"),
            ("//xyz0", "InvalidDoubleHash"),
            ("!!/ipns/a.b", "UnknownRule"),
        ] {
            let e = parse_rule(line).unwrap_err();
            assert!(format!("{e:?}").starts_with(want), "{line}: {e:?}");
        }
        // An identity multihash is not a double hash.
        let identity = Base::Base58Btc.encode(Mh::wrap(0, b"abc").unwrap().to_bytes());
        assert!(matches!(
            parse_rule(&format!("//{identity}")),
            Err(LineErrorKind::UnsupportedHash { code: 0, size: 3 })
        ));
        // A truncated sha2-256 is refused too.
        let short = Base::Base58Btc.encode(Mh::wrap(0x12, &[7; 20]).unwrap().to_bytes());
        assert!(matches!(
            parse_rule(&format!("//{short}")),
            Err(LineErrorKind::UnsupportedHash {
                code: 0x12,
                size: 20
            })
        ));
    }

    #[test]
    fn status_hint_values() {
        assert_eq!(Status::from_hint("410"), Ok(Status::Gone));
        assert_eq!(Status::from_hint("451").map(Status::code), Ok(451));
        assert!(Status::from_hint("404").is_err());
        assert_eq!(Status::default().code(), 410);
    }
}
