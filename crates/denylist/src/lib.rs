//! Content blocking with compact denylists (`.deny` files): parsing and matching of the format
//! of IPIP-383, ../shared/specs/compact-denylist-format.md. Sans-I/O: the caller reads the
//! files and asks [`Denylist::check`] / [`DenylistSet::check`] before serving content.
//!
//! # The format
//!
//! ```text
//! version: 1
//! name: Example list
//! hints:
//!   status: 451
//! ---
//! # A CID: blocked by multihash (its CIDv0 and every CIDv1 of the same multihash).
//! /ipfs/bafybeihvvulpp4evxj7x7armbqcyg6uezzuig6jp3lktpbovlqfkuqeuoq
//! # One path under a CID, then everything under `photos` but one file.
//! /ipfs/QmecDgNqCRirkc3Cjz9eoRBNwXGckJ9WvTdmY16HP88768/my/path
//! /ipfs/QmecDgNqCRirkc3Cjz9eoRBNwXGckJ9WvTdmY16HP88768/photos/* status:410
//! !/ipfs/QmecDgNqCRirkc3Cjz9eoRBNwXGckJ9WvTdmY16HP88768/photos/cat.jpg
//! # A DNSLink name, an IPNS key (by multihash), a double hash (sha2-256 of `b58-mh/path`).
//! /ipns/domain.example
//! /ipns/k51qzi5uqu5dhmzyv3zac033i7rl9hkgczxyl81lwoukda2htteop7d3x0y1mf
//! //QmSju6XPmYLG611rmK7rEeCMFVuL6EHpqyvmEU6oGx3GR8
//! ```
//!
//! Rules ("Block item"): `/ipfs/CID` (the CID itself; `CID` may be a bare base58btc
//! multihash), `/ipfs/CID/PATH` (that exact path), `/ipfs/CID/PATH*` (every path starting
//! with `PATH` as a string; `/ipfs/CID/*` includes the CID itself), the same three under
//! `/ipns/NAME`, and `//DOUBLE-HASH` in its modern
//! (base58btc multihash) and legacy (sha2-256 hex) forms. A `!` in front negates a rule, and
//! the rule on the latest line among those that match decides ("Negated rules"). Paths in
//! rules are %-decoded; paths given to the checks are already decoded; leading and trailing
//! `/` do not matter on either side.
//!
//! # Choices where the spec is open
//!
//! - **Bad lines**: [`BadLines::Reject`] (the default) refuses the whole list with an error
//!   naming the line; [`BadLines::Skip`] drops the line and keeps its error for logging
//!   ([`Denylist::skipped`]). A bad header always refuses the list (the spec says so).
//! - **Header**: a small YAML subset (see [`Header`]); only `version: 1` is accepted.
//! - **Hints**: the spec defines none. Hydrant reads one, `status`, `410` (default) or `451`,
//!   from the header's `hints:` map or after a rule (`status:451`); the rule's own wins.
//!   Other hints are ignored; a bad `status` value is a bad line (or a header error).
//! - **Path-only rules** (`/PATH`) are commented out in the spec and refused here.
//! - **Double hashes**: the modern form accepts sha2-256, sha2-512, blake2b-256, blake2b-512
//!   and blake3 (32 bytes), full length only, so a check computes at most five hashes; a
//!   text that reads both as base58btc multihash and as 64 hex digits makes both rules. For
//!   `/ipns/NAME/PATH`, `/PATH` is appended to the modern and legacy inputs as for `/ipfs/`.
//! - **IPNS names** that are CIDs or base58btc multihashes match by multihash; domains match
//!   case-insensitively.
//! - **Several lists** ([`DenylistSet`]): later lists override earlier ones; the set is
//!   checked from the last list back and the first list with a matching rule decides.
//!
//! # Limits
//!
//! Lines: [`MAX_LINE_BYTES`] (2 MiB with the `\n`, the spec's); header: [`MAX_HEADER_BYTES`]
//! (1 MiB, the spec's; a header that does not end within it is read as block items); rules:
//! [`DEFAULT_MAX_RULES`]; stored bytes: [`DEFAULT_MAX_STORED_BYTES`]. All in
//! [`ParseOptions`]. A check costs a few hash-map look-ups (one more per distinct length of
//! `*` rules on the same target) and, when the list has double hashes, one hash of the
//! request per hash function in use; never a scan of the rules.
//!
//! # Public API
//!
//! - [`Denylist::parse`], [`Denylist::parse_with`], [`Denylist::append`]: read a list.
//! - [`Denylist::check`], [`Denylist::check_ipns`]: [`Verdict::Allowed`] or
//!   [`Verdict::Denied`] with a [`Denial`] (list, line, [`Status`]).
//! - [`DenylistSet`]: several lists, later ones overriding earlier ones.
//! - [`parse_rule`]: one line into a [`Rule`], for tools.
//!
//! ```
//! use hydrant_denylist::{Denylist, Verdict};
//! let list = Denylist::parse(
//!     "custom.deny",
//!     "/ipfs/QmecDgNqCRirkc3Cjz9eoRBNwXGckJ9WvTdmY16HP88768/photos/*\n\
//!      !/ipfs/QmecDgNqCRirkc3Cjz9eoRBNwXGckJ9WvTdmY16HP88768/photos/cat.jpg\n",
//! )
//! .unwrap();
//! // CIDv1 of the same multihash.
//! let cid = "bafybeihrw75yfhdx5qsqgesdnxejtjybscwuclpusvxkuttep6h7pkgmze".parse().unwrap();
//! assert!(list.check(&cid, "/photos/dog.jpg").is_denied());
//! assert_eq!(list.check(&cid, "/photos/cat.jpg"), Verdict::Allowed);
//! assert_eq!(list.check(&cid, "/other"), Verdict::Allowed);
//! ```

mod error;
mod header;
mod list;
mod rule;
mod set;

pub use error::{LineError, LineErrorKind, ParseError};
pub use header::Header;
pub use list::{
    BadLines, DEFAULT_MAX_REPORTED_ERRORS, DEFAULT_MAX_RULES, DEFAULT_MAX_STORED_BYTES, Denial,
    Denylist, MAX_HEADER_BYTES, MAX_LINE_BYTES, ParseOptions, Verdict,
};
pub use rule::{IpnsName, Mh, PathPattern, Rule, RuleKind, STATUS_HINT, Status, parse_rule};
pub use set::DenylistSet;
