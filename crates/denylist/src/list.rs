//! One parsed denylist and its matcher.

use std::collections::HashMap;
use std::sync::Arc;

use cid::Cid;
use cid::multibase::Base;
use multihash_codetable::{Code, MultihashDigest as _};

use crate::error::{LineError, LineErrorKind, ParseError};
use crate::header::{Header, parse_header};
use crate::rule::{
    IpnsName, RuleKind, STATUS_HINT, Status, name_multihash, parse_rule, supported_hash,
};

/// Longest line accepted, in bytes, counting its `\n` (compact-denylist-format.md, "File
/// syntax": "Lines should not be longer than 2MiB including the "\n" delimiter").
pub const MAX_LINE_BYTES: usize = 2 * 1024 * 1024;

/// Largest header, in bytes, counting the `---` line ("Header": 1 MiB). When no `---` line
/// ends within this many bytes, the list has no header and every line is a block item.
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;

/// Default [`ParseOptions::max_rules`]: 4 Mi rules. A rule costs about 60 to 100 bytes of
/// memory plus its path, so a full list holds a few hundred MB.
pub const DEFAULT_MAX_RULES: usize = 4 * 1024 * 1024;

/// Default [`ParseOptions::max_stored_bytes`]: 256 MiB of rule keys (multihashes, names and
/// paths), bounding what long paths can add to [`DEFAULT_MAX_RULES`].
pub const DEFAULT_MAX_STORED_BYTES: usize = 256 * 1024 * 1024;

/// Default [`ParseOptions::max_reported_errors`]: skipped lines whose errors are kept.
pub const DEFAULT_MAX_REPORTED_ERRORS: usize = 100;

/// What to do with a bad block-item line (the spec leaves it to implementations: "Abort
/// parsing and return a general error OR Continue processing the list, discarding
/// unrecognized rules").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadLines {
    /// Refuse the whole list with [`ParseError::Line`] naming the first bad line. The default:
    /// a list that does not mean what its author thinks should be fixed, not half-applied.
    #[default]
    Reject,
    /// Skip the line; [`Denylist::skipped_lines`] counts it and [`Denylist::skipped`] keeps
    /// the first [`ParseOptions::max_reported_errors`] errors for the caller to log.
    Skip,
}

/// Limits and policy of [`Denylist::parse_with`]. Header errors, [`ParseError::TooManyRules`]
/// and [`ParseError::TooManyBytes`] refuse the list whatever [`BadLines`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseOptions {
    /// Longest line in bytes, counting its `\n`; default [`MAX_LINE_BYTES`].
    pub max_line_bytes: usize,
    /// Largest header in bytes, counting the `---` line; default [`MAX_HEADER_BYTES`].
    pub max_header_bytes: usize,
    /// Most rules (block items, negated or not) in the list, [`Denylist::append`] included;
    /// default [`DEFAULT_MAX_RULES`].
    pub max_rules: usize,
    /// Most bytes of stored rule keys (multihash bytes, names, paths) in the list; default
    /// [`DEFAULT_MAX_STORED_BYTES`].
    pub max_stored_bytes: usize,
    /// What to do with a bad line; default [`BadLines::Reject`].
    pub bad_lines: BadLines,
    /// With [`BadLines::Skip`], how many line errors are kept; default
    /// [`DEFAULT_MAX_REPORTED_ERRORS`].
    pub max_reported_errors: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            max_line_bytes: MAX_LINE_BYTES,
            max_header_bytes: MAX_HEADER_BYTES,
            max_rules: DEFAULT_MAX_RULES,
            max_stored_bytes: DEFAULT_MAX_STORED_BYTES,
            bad_lines: BadLines::Reject,
            max_reported_errors: DEFAULT_MAX_REPORTED_ERRORS,
        }
    }
}

/// The answer of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No rule denies the item (none matched, or the last matching one is negated).
    Allowed,
    /// A rule denies the item.
    Denied(Denial),
}

impl Verdict {
    /// `true` for [`Verdict::Denied`].
    #[must_use]
    pub fn is_denied(&self) -> bool {
        matches!(self, Verdict::Denied(_))
    }
}

/// Which rule denied an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The list's name as given to [`Denylist::parse`] (e.g. its file name).
    pub list: Arc<str>,
    /// 1-based line number of the rule in that list.
    pub line: u32,
    /// The HTTP status to answer: 410 unless a `status` hint says 451.
    pub status: Status,
}

/// What a list remembers of a rule: 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) line: u32,
    pub(crate) allow: bool,
    pub(crate) status: Status,
}

/// Namespaces of the path-rule keys.
const NS_IPFS: u8 = 0;
const NS_IPNS_MH: u8 = 1;
const NS_IPNS_DOMAIN: u8 = 2;

/// A request's target, for matching.
enum Target<'a> {
    /// `/ipfs/CID`.
    Ipfs(&'a Cid),
    /// `/ipns/NAME` where NAME is a CID or a multihash; the CIDv1 for the legacy hash.
    IpnsKey(Cid),
    /// `/ipns/domain`, lower-cased.
    IpnsDomain(String),
}

impl Target<'_> {
    /// The start of a path-rule key: namespace, target bytes, `/`. Multihashes are
    /// self-delimiting and domain names hold no `/`, so keys of different targets never
    /// collide.
    fn base_key(&self) -> Vec<u8> {
        let (ns, bytes) = match self {
            Target::Ipfs(cid) => (NS_IPFS, cid.hash().to_bytes()),
            Target::IpnsKey(cid) => (NS_IPNS_MH, cid.hash().to_bytes()),
            Target::IpnsDomain(d) => (NS_IPNS_DOMAIN, d.as_bytes().to_vec()),
        };
        let mut key = Vec::with_capacity(bytes.len() + 2);
        key.push(ns);
        key.extend_from_slice(&bytes);
        key.push(b'/');
        key
    }

    /// The modern double-hash input ("`//DOUBLE-HASH`"): `b58-multihash[/PATH]` for a CID or
    /// an IPNS key, `/ipns/NAME[/PATH]` for a domain.
    fn modern_input(&self, path: &str) -> String {
        let mut s = match self {
            Target::Ipfs(cid) => Base::Base58Btc.encode(cid.hash().to_bytes()),
            Target::IpnsKey(cid) => Base::Base58Btc.encode(cid.hash().to_bytes()),
            Target::IpnsDomain(d) => format!("/ipns/{d}"),
        };
        if !path.is_empty() {
            s.push('/');
            s.push_str(path);
        }
        s
    }

    /// The legacy double-hash input: `CIDV1_BASE32/PATH` (the `/` kept for an empty path), or
    /// `domain/PATH`.
    fn legacy_input(&self, path: &str) -> String {
        let mut s = match self {
            Target::Ipfs(cid) => v1_base32(cid),
            Target::IpnsKey(cid) => v1_base32(cid),
            Target::IpnsDomain(d) => d.clone(),
        };
        s.push('/');
        s.push_str(path);
        s
    }
}

fn v1_base32(cid: &Cid) -> String {
    Cid::new_v1(cid.codec(), *cid.hash()).to_string()
}

/// libp2p-key, the codec of IPNS names as CIDv1.
const LIBP2P_KEY: u64 = 0x72;

/// A parsed denylist: its header and its rules, indexed for checks that cost a few hash-map
/// look-ups (one per distinct prefix-rule length of the target, plus one hash per double-hash
/// function in use), never a scan of the rules.
///
/// Matching follows "Negated rules": of all the rules that match a request, the one on the
/// latest line decides; a negated (`!`) one allows, any other denies.
#[derive(Debug, Clone)]
pub struct Denylist {
    name: Arc<str>,
    header: Header,
    options: ParseOptions,
    global_status: Status,
    /// Path rules without `*`, keyed by [`Target::base_key`] + path.
    exact: HashMap<Box<[u8]>, Entry>,
    /// Prefix (`*`) path rules, keyed the same way.
    prefix: HashMap<Box<[u8]>, Entry>,
    /// For each base key with prefix rules, the distinct prefix lengths, ascending.
    prefix_lens: HashMap<Box<[u8]>, Vec<u32>>,
    /// Modern double hashes, keyed by multihash bytes.
    modern: HashMap<Box<[u8]>, Entry>,
    /// The hash functions of `modern`.
    modern_codes: Vec<Code>,
    /// Legacy sha2-256 double hashes.
    legacy: HashMap<[u8; 32], Entry>,
    rules: usize,
    stored_bytes: usize,
    lines: u32,
    skipped: Vec<LineError>,
    skipped_lines: usize,
}

impl Denylist {
    /// Parses a denylist with the default [`ParseOptions`] (spec limits, bad lines refuse the
    /// list). `name` names the list in [`Denial`]s (e.g. its file name); `text` is the file's
    /// bytes (UTF-8).
    ///
    /// # Errors
    /// See [`Denylist::parse_with`].
    pub fn parse(name: &str, text: impl AsRef<[u8]>) -> Result<Denylist, ParseError> {
        Denylist::parse_with(name, text, ParseOptions::default())
    }

    /// Parses a denylist (compact-denylist-format.md, "File syntax"): an optional header up to
    /// a `---` line within the first [`ParseOptions::max_header_bytes`], then one block item
    /// per `\n`-separated line. Lines are numbered from 1 at the top of the file.
    ///
    /// # Errors
    /// [`ParseError::Header`] or [`ParseError::UnsupportedVersion`] for a bad header;
    /// [`ParseError::Line`] for the first bad line with [`BadLines::Reject`];
    /// [`ParseError::TooManyRules`], [`ParseError::TooManyBytes`], [`ParseError::TooManyLines`]
    /// when a limit is reached.
    pub fn parse_with(
        name: &str,
        text: impl AsRef<[u8]>,
        options: ParseOptions,
    ) -> Result<Denylist, ParseError> {
        let text = text.as_ref();
        // Look for `---` within the header limit; keep those lines (at most one per byte of
        // the limit) for the header parser.
        let mut lines: Vec<&[u8]> = Vec::new();
        let mut header_len = 0usize;
        let mut header_end = None;
        for line in split_lines(text) {
            header_len = header_len.saturating_add(line.len() + 1);
            if header_len > options.max_header_bytes {
                break;
            }
            if line.trim_ascii() == b"---" {
                header_end = Some(lines.len());
                break;
            }
            lines.push(line);
        }
        let header = match header_end {
            Some(end) => parse_header(&lines[..end])?,
            None => Header {
                version: 1,
                ..Header::default()
            },
        };
        let global_status = match header.hints.get(STATUS_HINT) {
            Some(v) => Status::from_hint(v).map_err(|kind| ParseError::Header {
                line: header_line_of_hint(&lines, header_end.unwrap_or(0)),
                reason: kind.to_string(),
            })?,
            None => Status::Gone,
        };
        let mut list = Denylist {
            name: name.into(),
            header,
            options,
            global_status,
            exact: HashMap::new(),
            prefix: HashMap::new(),
            prefix_lens: HashMap::new(),
            modern: HashMap::new(),
            modern_codes: Vec::new(),
            legacy: HashMap::new(),
            rules: 0,
            stored_bytes: 0,
            lines: 0,
            skipped: Vec::new(),
            skipped_lines: 0,
        };
        let first = header_end.map_or(0, |end| end + 1);
        drop(lines);
        list.lines = u32::try_from(first).map_err(|_| ParseError::TooManyLines)?;
        list.add_lines(split_lines(text).skip(first))?;
        Ok(list)
    }

    /// Parses more block items appended to the list's file, numbering them after the lines
    /// already read (the spec's append-only lists: "watching denylists for new items"). `text`
    /// should hold whole lines; a last line without `\n` counts as a line. Limits and
    /// [`BadLines`] are those the list was parsed with.
    ///
    /// # Errors
    /// As [`Denylist::parse_with`], but never a header error. On error the rules of the lines
    /// before the bad one are kept.
    pub fn append(&mut self, text: impl AsRef<[u8]>) -> Result<(), ParseError> {
        self.add_lines(split_lines(text.as_ref()))
    }

    fn add_lines<'a>(&mut self, lines: impl Iterator<Item = &'a [u8]>) -> Result<(), ParseError> {
        for raw in lines {
            self.lines = self.lines.checked_add(1).ok_or(ParseError::TooManyLines)?;
            let line = self.lines;
            if let Err(kind) = self.add_line(raw, line) {
                let error = LineError { line, kind };
                match self.options.bad_lines {
                    BadLines::Reject => return Err(error.into()),
                    BadLines::Skip => {
                        self.skipped_lines += 1;
                        if self.skipped.len() < self.options.max_reported_errors {
                            self.skipped.push(error);
                        }
                    }
                }
            }
            if self.rules > self.options.max_rules {
                return Err(ParseError::TooManyRules {
                    line,
                    max: self.options.max_rules,
                });
            }
            if self.stored_bytes > self.options.max_stored_bytes {
                return Err(ParseError::TooManyBytes {
                    line,
                    max: self.options.max_stored_bytes,
                });
            }
        }
        Ok(())
    }

    fn add_line(&mut self, raw: &[u8], line: u32) -> Result<(), LineErrorKind> {
        if raw.len() + 1 > self.options.max_line_bytes {
            return Err(LineErrorKind::TooLong {
                len: raw.len() + 1,
                max: self.options.max_line_bytes,
            });
        }
        let text = std::str::from_utf8(raw).map_err(|_| LineErrorKind::NotUtf8)?;
        let Some(rule) = parse_rule(text)? else {
            return Ok(());
        };
        let mut status = self.global_status;
        for (key, value) in &rule.hints {
            if key == STATUS_HINT {
                status = Status::from_hint(value)?;
            }
        }
        let entry = Entry {
            line,
            allow: rule.allow,
            status,
        };
        self.rules += 1;
        match rule.kind {
            RuleKind::Ipfs { multihash, path } => {
                let target = multihash.to_bytes();
                self.add_path_rule(NS_IPFS, &target, &path.path, path.prefix, entry);
            }
            RuleKind::Ipns { name, path } => {
                let (ns, target) = match name {
                    IpnsName::Multihash(mh) => (NS_IPNS_MH, mh.to_bytes()),
                    IpnsName::Domain(d) => (NS_IPNS_DOMAIN, d.into_bytes()),
                };
                self.add_path_rule(ns, &target, &path.path, path.prefix, entry);
            }
            RuleKind::DoubleHash { modern, legacy } => {
                if let Some(mh) = modern {
                    if let Some(code) = supported_hash(&mh)
                        && !self.modern_codes.contains(&code)
                    {
                        self.modern_codes.push(code);
                    }
                    let key = mh.to_bytes();
                    self.stored_bytes += key.len();
                    self.modern.insert(key.into(), entry);
                }
                if let Some(digest) = legacy {
                    self.stored_bytes += digest.len();
                    self.legacy.insert(digest, entry);
                }
            }
        }
        Ok(())
    }

    fn add_path_rule(&mut self, ns: u8, target: &[u8], path: &str, prefix: bool, entry: Entry) {
        let mut key = Vec::with_capacity(target.len() + path.len() + 2);
        key.push(ns);
        key.extend_from_slice(target);
        key.push(b'/');
        let base_len = key.len();
        key.extend_from_slice(path.as_bytes());
        self.stored_bytes += key.len();
        if prefix {
            // `path` fits in a line, so in u32.
            let len = u32::try_from(path.len()).unwrap_or(u32::MAX);
            let lens = self.prefix_lens.entry(key[..base_len].into()).or_default();
            if let Err(at) = lens.binary_search(&len) {
                lens.insert(at, len);
                self.stored_bytes += 4;
            }
            self.prefix.insert(key.into(), entry);
        } else {
            self.exact.insert(key.into(), entry);
        }
    }

    /// Checks `/ipfs/CID/PATH`. `path` is the decoded path after the CID (`""` or `"/"` for
    /// the CID itself, `"a/b"` or `"/a/b/"` alike); leading and trailing `/` are ignored.
    ///
    /// Rules matched: `/ipfs/` rules on the CID's multihash (whatever the CID version, codec
    /// or base) whose path equals `path` or, for `*` rules, is a prefix of it; modern double
    /// hashes of `b58-multihash[/PATH]`; legacy double hashes of `CIDV1_BASE32/PATH`.
    ///
    /// A block-level check (the spec's BlockService) is `check(cid, "")`: it sees the
    /// CID-rule `/ipfs/CID` and `/ipfs/CID/*`. The CID-rule does not deny `check(cid, "a")`;
    /// callers that resolve a path check its root CID as a block too ("`/ipfs/CID/PATH*`",
    /// warning).
    #[must_use]
    pub fn check(&self, cid: &Cid, path: &str) -> Verdict {
        self.verdict(self.decide_ipfs(cid, path))
    }

    /// Checks `/ipns/NAME/PATH`. `name` is a CID (a libp2p-key CIDv1 such as `k51...`), a
    /// base58btc multihash (a peer ID such as `12D3Koo...`), both matched by multihash, or a
    /// DNSLink domain (matched case-insensitively). `path` as in [`Denylist::check`]; the
    /// spec's NameSystem check is `check_ipns(name, "")`.
    ///
    /// Double hashes: modern of `b58-multihash[/PATH]` or `/ipns/NAME[/PATH]`, legacy of
    /// `CIDV1_BASE32/PATH` (the libp2p-key CIDv1 of a multihash name) or `NAME/PATH`.
    #[must_use]
    pub fn check_ipns(&self, name: &str, path: &str) -> Verdict {
        self.verdict(self.decide_ipns(name, path))
    }

    fn verdict(&self, entry: Option<Entry>) -> Verdict {
        match entry {
            Some(e) if !e.allow => Verdict::Denied(Denial {
                list: self.name.clone(),
                line: e.line,
                status: e.status,
            }),
            _ => Verdict::Allowed,
        }
    }

    pub(crate) fn decide_ipfs(&self, cid: &Cid, path: &str) -> Option<Entry> {
        self.decide(&Target::Ipfs(cid), path)
    }

    pub(crate) fn decide_ipns(&self, name: &str, path: &str) -> Option<Entry> {
        let target = if let Ok(cid) = Cid::try_from(name) {
            let codec = if cid.version() == cid::Version::V0 {
                LIBP2P_KEY
            } else {
                cid.codec()
            };
            Target::IpnsKey(Cid::new_v1(codec, *cid.hash()))
        } else if let Some(mh) = name_multihash(name) {
            Target::IpnsKey(Cid::new_v1(LIBP2P_KEY, mh))
        } else {
            Target::IpnsDomain(name.to_ascii_lowercase())
        };
        self.decide(&target, path)
    }

    /// The latest-line rule matching `target` + `path`, if any.
    fn decide(&self, target: &Target<'_>, path: &str) -> Option<Entry> {
        let path = path.trim_matches('/');
        let mut best: Option<Entry> = None;
        let mut consider = |e: Option<&Entry>| {
            if let Some(&e) = e
                && best.is_none_or(|b| e.line > b.line)
            {
                best = Some(e);
            }
        };
        if !self.exact.is_empty() || !self.prefix.is_empty() {
            let mut key = target.base_key();
            let base_len = key.len();
            key.extend_from_slice(path.as_bytes());
            consider(self.exact.get(&key[..]));
            if let Some(lens) = self.prefix_lens.get(&key[..base_len]) {
                for &len in lens {
                    let len = len as usize;
                    if len > path.len() {
                        break;
                    }
                    consider(self.prefix.get(&key[..base_len + len]));
                }
            }
        }
        if !self.modern.is_empty() {
            let input = target.modern_input(path);
            for code in &self.modern_codes {
                consider(
                    self.modern
                        .get(&code.digest(input.as_bytes()).to_bytes()[..]),
                );
            }
        }
        if !self.legacy.is_empty() {
            let input = target.legacy_input(path);
            let digest = Code::Sha2_256.digest(input.as_bytes());
            if let Ok(d) = <[u8; 32]>::try_from(digest.digest()) {
                consider(self.legacy.get(&d));
            }
        }
        best
    }

    /// The list's name, as given to [`Denylist::parse`].
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn name_arc(&self) -> Arc<str> {
        self.name.clone()
    }

    /// The header (defaults when the file has none).
    #[must_use]
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Number of rules read (negated ones included; a rule repeated on a later line counts
    /// again, though only the later one is kept).
    #[must_use]
    pub fn rule_count(&self) -> usize {
        self.rules
    }

    /// Number of lines read, header included.
    #[must_use]
    pub fn line_count(&self) -> u32 {
        self.lines
    }

    /// With [`BadLines::Skip`]: the errors of the first
    /// [`ParseOptions::max_reported_errors`] skipped lines, for the caller to log.
    #[must_use]
    pub fn skipped(&self) -> &[LineError] {
        &self.skipped
    }

    /// With [`BadLines::Skip`]: how many lines were skipped.
    #[must_use]
    pub fn skipped_lines(&self) -> usize {
        self.skipped_lines
    }
}

/// Splits at `\n`; a final `\n` does not start another line.
fn split_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    body.split(|&b| b == b'\n')
        .take(if text.is_empty() { 0 } else { usize::MAX })
}

/// The 1-based line of `status:` inside the header, for an error message; the `---` line when
/// it cannot be told.
fn header_line_of_hint(lines: &[&[u8]], end: usize) -> u32 {
    let at = lines[..end]
        .iter()
        .position(|l| {
            let t = l.trim_ascii();
            t.starts_with(b"status:") && l.first() == Some(&b' ')
        })
        .unwrap_or(end);
    u32::try_from(at + 1).unwrap_or(u32::MAX)
}
