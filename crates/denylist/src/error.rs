//! Errors of parsing a denylist: a whole-list [`ParseError`] and a per-line [`LineError`].

/// What is wrong with one block-item line (compact-denylist-format.md, "Block item").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineErrorKind {
    /// The line, with its `\n`, is longer than the limit ("File syntax": 2 MiB).
    #[error("line of {len} bytes (with its newline) is over the {max}-byte limit")]
    TooLong {
        /// Length of the line in bytes, counting the `\n`.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The line is not UTF-8 ("File syntax": a denylist is a UTF-8 text file).
    #[error("line is not valid UTF-8")]
    NotUtf8,
    /// The rule starts with neither `/ipfs/`, `/ipns/` nor `//` (path-only rules are not part
    /// of the published spec and are refused).
    #[error("unknown rule {rule:?}: expected /ipfs/CID[/PATH], /ipns/NAME[/PATH] or //DOUBLE-HASH")]
    UnknownRule {
        /// The first characters of the rule (at most 64).
        rule: String,
    },
    /// A `!` with no rule after it.
    #[error("`!` without a rule")]
    EmptyNegation,
    /// `/ipfs/` followed by something that is not a CID.
    #[error("invalid CID {cid:?}: {reason}")]
    InvalidCid {
        /// The first characters of the text (at most 64).
        cid: String,
        /// Why the CID did not parse.
        reason: String,
    },
    /// `/ipns/` followed by neither a CID, a base58btc multihash nor a domain name.
    #[error("invalid IPNS name {name:?}: not a CID, a base58btc multihash or a domain name")]
    InvalidIpnsName {
        /// The first characters of the name (at most 64).
        name: String,
    },
    /// The path does not decode (RFC 3986 %-encoding) to UTF-8.
    #[error("path does not %-decode to UTF-8")]
    InvalidPath,
    /// `//` followed by neither a base58btc multihash nor 64 hex digits.
    #[error(
        "invalid double hash {hash:?}: neither a base58btc multihash nor a sha2-256 hex digest"
    )]
    InvalidDoubleHash {
        /// The first characters of the text (at most 64).
        hash: String,
    },
    /// A `//` multihash whose hash function is not supported, or whose digest is truncated.
    #[error(
        "double hash uses hash function 0x{code:x} with a {size}-byte digest; supported: sha2-256, sha2-512, blake2b-256, blake2b-512, blake3 (32 bytes), full length"
    )]
    UnsupportedHash {
        /// The multihash code.
        code: u64,
        /// The digest length in bytes.
        size: u8,
    },
    /// A token after the rule that is not a `key:value` hint ("Hints").
    #[error("hint {token:?} is not key:value")]
    InvalidHint {
        /// The first characters of the token (at most 64).
        token: String,
    },
    /// The `status` hint is not `410` or `451`.
    #[error("status hint {value:?}: expected 410 or 451")]
    InvalidStatus {
        /// The first characters of the value (at most 64).
        value: String,
    },
}

/// A bad line: its 1-based line number in the file (header lines count) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct LineError {
    /// 1-based line number in the file.
    pub line: u32,
    /// What is wrong.
    pub kind: LineErrorKind,
}

/// Errors of [`Denylist::parse`](crate::Denylist::parse) and
/// [`Denylist::append`](crate::Denylist::append): the list is refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The header (the lines before `---`) is not the YAML this crate reads
    /// ("Header": "If parsing the header fails, abort and signal an error").
    #[error("header, line {line}: {reason}")]
    Header {
        /// 1-based line number of the offending header line.
        line: u32,
        /// What is wrong.
        reason: String,
    },
    /// The header's `version` is not `1` ("Header": implementations SHOULD reject versions
    /// they do not support).
    #[error("header, line {line}: unsupported denylist version {version:?} (only 1 is supported)")]
    UnsupportedVersion {
        /// 1-based line number of the `version` field.
        line: u32,
        /// The version as written (at most 64 characters).
        version: String,
    },
    /// A bad block-item line, with [`BadLines::Reject`](crate::BadLines::Reject).
    #[error(transparent)]
    Line(#[from] LineError),
    /// More rules than [`ParseOptions::max_rules`](crate::ParseOptions::max_rules).
    #[error("line {line}: more than {max} rules")]
    TooManyRules {
        /// 1-based line number of the first rule over the limit.
        line: u32,
        /// The limit.
        max: usize,
    },
    /// The rules' stored keys (targets and paths) are over
    /// [`ParseOptions::max_stored_bytes`](crate::ParseOptions::max_stored_bytes).
    #[error("line {line}: rules hold more than {max} bytes")]
    TooManyBytes {
        /// 1-based line number of the rule that went over.
        line: u32,
        /// The limit in bytes.
        max: usize,
    },
    /// More than `u32::MAX` lines.
    #[error("more than {} lines", u32::MAX)]
    TooManyLines,
}

/// Cuts user text for an error message: at most 64 characters.
pub(crate) fn excerpt(text: &str) -> String {
    text.chars().take(64).collect()
}
