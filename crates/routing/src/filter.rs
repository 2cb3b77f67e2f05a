//! IPIP-484 filters: `?filter-addrs` and `?filter-protocols`.
//!
//! Spec: ../shared/specs/http-routing-v1.md § "`filter-addrs` (providers request query
//! parameter)" and § "`filter-protocols` (providers request query parameter)"; the peers
//! endpoint uses the same rules (§ "`filter-addrs` (peers request query parameter)").
//!
//! Semantics implemented (all comparisons case-insensitive):
//! - A parameter that is absent, or has no non-empty entries, does not filter.
//! - `filter-addrs`: each address is kept when it contains none of the `!name` protocols
//!   and, if there are positive names, at least one of them. A record whose `Addrs` is
//!   empty (unknown) is kept only when the list has `unknown`; a record that had addresses
//!   and has none left is omitted. `unknown` is not a positive name: `filter-addrs=unknown`
//!   keeps every address.
//! - `filter-protocols`: a record is kept when one of its `Protocols` equals one of the
//!   names; a record with no `Protocols` (unknown) only when the list has `unknown`. A kept
//!   record is returned unchanged (all its protocols). `!` has no meaning here: the names
//!   are opaque strings.
//! - Filters apply to `peer` records only; records of other schemas are outside their scope
//!   and pass through unchanged.

use libp2p::Multiaddr;

use crate::record::{PeerRecord, Record};

/// The keyword that selects records whose addresses or protocols are unknown (empty).
pub const UNKNOWN: &str = "unknown";

/// Longest name in a filter list (the spec's limit for transfer protocol names, also
/// applied to multiaddr protocol names).
pub const MAX_FILTER_NAME_LEN: usize = 63;

/// Most entries in one filter list (both parameters counted separately).
pub const MAX_FILTER_ENTRIES: usize = 64;

/// Why a filter parameter is rejected (422).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// More than [`MAX_FILTER_ENTRIES`] entries.
    #[error("{param} has {count} entries, the limit is {MAX_FILTER_ENTRIES}")]
    TooManyEntries {
        /// `filter-addrs` or `filter-protocols`.
        param: &'static str,
        /// Entries given.
        count: usize,
    },
    /// An entry longer than [`MAX_FILTER_NAME_LEN`] bytes.
    #[error("{param} entry is {len} bytes long, the limit is {MAX_FILTER_NAME_LEN}")]
    NameTooLong {
        /// `filter-addrs` or `filter-protocols`.
        param: &'static str,
        /// Length of the entry in bytes.
        len: usize,
    },
}

/// A parsed `filter-addrs` list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddrFilter {
    /// Names without `!`, lowercased (`unknown` excluded).
    pub positive: Vec<String>,
    /// Names given with `!`, without it, lowercased.
    pub negative: Vec<String>,
    /// `unknown` was in the list.
    pub include_unknown: bool,
}

/// A parsed `filter-protocols` list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProtocolFilter {
    /// The names, lowercased (`unknown` excluded).
    pub names: Vec<String>,
    /// `unknown` was in the list.
    pub include_unknown: bool,
}

fn split(param: &'static str, value: &str) -> Result<Vec<String>, FilterError> {
    let entries: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if entries.len() > MAX_FILTER_ENTRIES {
        return Err(FilterError::TooManyEntries {
            param,
            count: entries.len(),
        });
    }
    entries
        .into_iter()
        .map(|e| {
            if e.len() > MAX_FILTER_NAME_LEN {
                Err(FilterError::NameTooLong {
                    param,
                    len: e.len(),
                })
            } else {
                Ok(e.to_lowercase())
            }
        })
        .collect()
}

/// Parses a (percent-decoded) `filter-addrs` value: comma-separated multiaddr protocol
/// names, `!name` for exclusion, `unknown`. Empty entries and surrounding spaces are
/// ignored.
///
/// Returns `None` when there is nothing to filter on. Errors: [`FilterError`] on more than
/// [`MAX_FILTER_ENTRIES`] entries or an entry over [`MAX_FILTER_NAME_LEN`] bytes.
pub fn parse_addr_filter(value: &str) -> Result<Option<AddrFilter>, FilterError> {
    let entries = split("filter-addrs", value)?;
    if entries.is_empty() {
        return Ok(None);
    }
    let mut f = AddrFilter::default();
    for e in entries {
        if e == UNKNOWN {
            f.include_unknown = true;
        } else if let Some(neg) = e.strip_prefix('!') {
            if !neg.is_empty() {
                f.negative.push(neg.to_string());
            }
        } else {
            f.positive.push(e);
        }
    }
    Ok(Some(f))
}

/// Parses a (percent-decoded) `filter-protocols` value: comma-separated transfer protocol
/// names and `unknown`. Empty entries and surrounding spaces are ignored.
///
/// Returns `None` when there is nothing to filter on. Errors: as [`parse_addr_filter`].
pub fn parse_protocol_filter(value: &str) -> Result<Option<ProtocolFilter>, FilterError> {
    let entries = split("filter-protocols", value)?;
    if entries.is_empty() {
        return Ok(None);
    }
    let mut f = ProtocolFilter::default();
    for e in entries {
        if e == UNKNOWN {
            f.include_unknown = true;
        } else {
            f.names.push(e);
        }
    }
    Ok(Some(f))
}

impl AddrFilter {
    /// Whether one address passes: it has none of the negative protocols and, when there
    /// are positive ones, at least one of them.
    pub fn allows(&self, addr: &Multiaddr) -> bool {
        let has = |name: &String| addr.iter().any(|p| p.tag().eq_ignore_ascii_case(name));
        if self.negative.iter().any(has) {
            return false;
        }
        self.positive.is_empty() || self.positive.iter().any(has)
    }

    /// The record's addresses that pass, or `None` when the record is to be omitted (it
    /// had addresses and none pass, or it had none and `unknown` was not asked for).
    pub fn apply(&self, addrs: &[Multiaddr]) -> Option<Vec<Multiaddr>> {
        if addrs.is_empty() {
            return self.include_unknown.then(Vec::new);
        }
        let kept: Vec<Multiaddr> = addrs.iter().filter(|a| self.allows(a)).cloned().collect();
        (!kept.is_empty()).then_some(kept)
    }
}

impl ProtocolFilter {
    /// Whether a record with these protocols passes.
    pub fn allows(&self, protocols: &[String]) -> bool {
        if protocols.is_empty() {
            return self.include_unknown;
        }
        protocols
            .iter()
            .any(|p| self.names.iter().any(|n| p.to_lowercase() == *n))
    }
}

/// Applies both filters to one record: `None` when it is omitted, else the record with
/// only its passing addresses (protocols unchanged). Non-`peer` records are returned
/// unchanged.
pub fn apply_filters(
    record: Record,
    addrs: Option<&AddrFilter>,
    protocols: Option<&ProtocolFilter>,
) -> Option<Record> {
    let Record::Peer(peer) = record else {
        return Some(record);
    };
    if let Some(pf) = protocols
        && !pf.allows(&peer.protocols)
    {
        return None;
    }
    let Some(af) = addrs else {
        return Some(Record::Peer(peer));
    };
    let kept = af.apply(&peer.addrs)?;
    Some(Record::Peer(PeerRecord {
        addrs: kept,
        ..peer
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::PeerId;
    use libp2p::identity::Keypair;
    use proptest::prelude::*;

    fn ma(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    fn af(s: &str) -> AddrFilter {
        parse_addr_filter(s).unwrap().unwrap()
    }

    fn pf(s: &str) -> ProtocolFilter {
        parse_protocol_filter(s).unwrap().unwrap()
    }

    fn peer_id() -> PeerId {
        Keypair::ed25519_from_bytes([3; 32])
            .unwrap()
            .public()
            .to_peer_id()
    }

    fn rec(addrs: &[&str], protos: &[&str]) -> Record {
        Record::Peer(PeerRecord::new(
            peer_id(),
            addrs.iter().map(|a| ma(a)).collect(),
            protos.iter().map(|p| p.to_string()).collect(),
        ))
    }

    fn addrs_of(r: &Option<Record>) -> Vec<String> {
        match r {
            Some(Record::Peer(p)) => p.addrs.iter().map(|a| a.to_string()).collect(),
            _ => panic!("expected a peer record, got {r:?}"),
        }
    }

    const TCP4: &str = "/ip4/1.2.3.4/tcp/4001";
    const QUIC6: &str = "/ip6/::1/udp/4001/quic-v1";
    const WT: &str = "/ip4/1.2.3.4/udp/4001/quic-v1/webtransport";

    #[test]
    fn parsing_splits_lowercases_and_separates() {
        let f = af(" TCP,!ip6,,unknown,!QUIC-v1 ");
        assert_eq!(f.positive, vec!["tcp"]);
        assert_eq!(f.negative, vec!["ip6", "quic-v1"]);
        assert!(f.include_unknown);
        assert_eq!(parse_addr_filter(""), Ok(None));
        assert_eq!(parse_addr_filter(" , ,"), Ok(None));
        assert_eq!(parse_protocol_filter(""), Ok(None));
        let p = pf("transport-bitswap,Unknown,!x");
        assert_eq!(p.names, vec!["transport-bitswap", "!x"]);
        assert!(p.include_unknown);
    }

    #[test]
    fn parsing_is_bounded() {
        let long = "a".repeat(MAX_FILTER_NAME_LEN + 1);
        assert!(matches!(
            parse_protocol_filter(&long),
            Err(FilterError::NameTooLong { len: 64, .. })
        ));
        let many = vec!["tcp"; MAX_FILTER_ENTRIES + 1].join(",");
        assert!(matches!(
            parse_addr_filter(&many),
            Err(FilterError::TooManyEntries { count: 65, .. })
        ));
        let ok = vec!["tcp"; MAX_FILTER_ENTRIES].join(",");
        assert!(parse_addr_filter(&ok).is_ok());
    }

    #[test]
    fn positive_addr_filter_is_logical_or() {
        let r = apply_filters(
            rec(&[TCP4, QUIC6, WT], &[]),
            Some(&af("tcp,webtransport")),
            None,
        );
        assert_eq!(addrs_of(&r), vec![TCP4, WT]);
    }

    #[test]
    fn negative_addr_filter_is_logical_and() {
        let r = apply_filters(
            rec(&[TCP4, QUIC6, WT], &[]),
            Some(&af("!ip6,!quic-v1")),
            None,
        );
        assert_eq!(addrs_of(&r), vec![TCP4]);
    }

    #[test]
    fn positive_and_negative_combined() {
        // quic-v1 but not webtransport, not ip6.
        let r = apply_filters(
            rec(&[TCP4, QUIC6, WT, "/ip4/5.6.7.8/udp/1/quic-v1"], &[]),
            Some(&af("quic-v1,!webtransport,!ip6")),
            None,
        );
        assert_eq!(addrs_of(&r), vec!["/ip4/5.6.7.8/udp/1/quic-v1"]);
    }

    #[test]
    fn provider_with_no_matching_addr_is_omitted_even_with_unknown() {
        assert_eq!(
            apply_filters(rec(&[TCP4], &[]), Some(&af("webrtc-direct")), None),
            None
        );
        assert_eq!(
            apply_filters(rec(&[TCP4], &[]), Some(&af("webrtc-direct,unknown")), None),
            None
        );
    }

    #[test]
    fn unknown_addrs_kept_only_with_unknown_keyword() {
        assert_eq!(apply_filters(rec(&[], &[]), Some(&af("tcp")), None), None);
        assert_eq!(apply_filters(rec(&[], &[]), Some(&af("!ip6")), None), None);
        let r = apply_filters(rec(&[], &[]), Some(&af("tcp,unknown")), None);
        assert_eq!(addrs_of(&r), Vec::<String>::new());
        // `unknown` alone is not a positive filter: known addresses all stay.
        let r = apply_filters(rec(&[TCP4, QUIC6], &[]), Some(&af("unknown")), None);
        assert_eq!(addrs_of(&r), vec![TCP4, QUIC6]);
    }

    #[test]
    fn addr_filter_is_case_insensitive() {
        let r = apply_filters(rec(&[TCP4, QUIC6], &[]), Some(&af("TCP")), None);
        assert_eq!(addrs_of(&r), vec![TCP4]);
    }

    #[test]
    fn protocol_filter_keeps_record_unchanged() {
        let original = rec(
            &[TCP4],
            &["transport-bitswap", "transport-ipfs-gateway-http"],
        );
        let r = apply_filters(original.clone(), None, Some(&pf("TRANSPORT-BITSWAP")));
        assert_eq!(r, Some(original.clone()));
        assert_eq!(
            apply_filters(original, None, Some(&pf("transport-graphsync"))),
            None
        );
    }

    #[test]
    fn protocol_filter_unknown_keyword() {
        let empty = rec(&[TCP4], &[]);
        assert_eq!(
            apply_filters(empty.clone(), None, Some(&pf("transport-bitswap"))),
            None
        );
        assert_eq!(
            apply_filters(empty.clone(), None, Some(&pf("transport-bitswap,unknown"))),
            Some(empty)
        );
        // `unknown` does not admit records that do list protocols.
        let bs = rec(&[TCP4], &["transport-bitswap"]);
        assert_eq!(apply_filters(bs, None, Some(&pf("unknown"))), None);
    }

    #[test]
    fn both_filters_must_pass() {
        let r = rec(&[TCP4, QUIC6], &["transport-bitswap"]);
        let out = apply_filters(
            r.clone(),
            Some(&af("quic-v1")),
            Some(&pf("transport-bitswap")),
        );
        assert_eq!(addrs_of(&out), vec![QUIC6]);
        assert_eq!(apply_filters(r, Some(&af("quic-v1")), Some(&pf("x"))), None);
    }

    #[test]
    fn unknown_schemas_pass_through() {
        let u = Record::from_json(serde_json::json!({"Schema":"bitswap","ID":"x"})).unwrap();
        assert_eq!(
            apply_filters(u.clone(), Some(&af("tcp")), Some(&pf("transport-bitswap"))),
            Some(u)
        );
    }

    const NAMES: &[&str] = &[
        "ip4",
        "ip6",
        "tcp",
        "udp",
        "quic-v1",
        "webtransport",
        "tls",
        "ws",
        "dns4",
        "p2p",
    ];

    fn arb_addr() -> impl Strategy<Value = Multiaddr> {
        prop_oneof![
            Just(ma(TCP4)),
            Just(ma(QUIC6)),
            Just(ma(WT)),
            Just(ma("/dns4/example.com/tcp/443/tls/ws")),
            Just(ma("/ip6/::2/tcp/1")),
            Just(ma("/ip4/9.9.9.9/udp/9/quic-v1")),
        ]
    }

    fn arb_filter() -> impl Strategy<Value = String> {
        prop::collection::vec(
            (any::<bool>(), prop::sample::select(NAMES), any::<bool>()),
            0..5,
        )
        .prop_map(|v| {
            v.into_iter()
                .map(|(neg, n, upper)| {
                    let n = if upper {
                        n.to_uppercase()
                    } else {
                        n.to_string()
                    };
                    if neg { format!("!{n}") } else { n }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,300}") {
            let _ = parse_addr_filter(&s);
            let _ = parse_protocol_filter(&s);
        }

        /// Every kept address satisfies the rule stated in the spec, every dropped one
        /// breaks it, order is preserved, and the provider is omitted exactly when nothing
        /// is left.
        #[test]
        fn addr_filter_matches_spec_rule(
            addrs in prop::collection::vec(arb_addr(), 1..6),
            filter in arb_filter(),
        ) {
            let Some(f) = parse_addr_filter(&filter).unwrap() else {
                return Ok(());
            };
            let lower = filter.to_lowercase();
            let neg: Vec<&str> = lower.split(',').filter_map(|e| e.strip_prefix('!')).collect();
            let pos: Vec<&str> = lower.split(',').filter(|e| !e.starts_with('!') && !e.is_empty()).collect();
            let rule = |a: &Multiaddr| {
                let names: Vec<&str> = a.iter().map(|p| p.tag()).collect();
                !neg.iter().any(|n| names.contains(n))
                    && (pos.is_empty() || pos.iter().any(|n| names.contains(n)))
            };
            let expected: Vec<Multiaddr> = addrs.iter().filter(|a| rule(a)).cloned().collect();
            let out = apply_filters(rec_from(addrs.clone(), vec![]), Some(&f), None);
            if expected.is_empty() {
                prop_assert_eq!(out, None);
            } else {
                let Some(Record::Peer(p)) = out else { panic!("omitted") };
                prop_assert_eq!(p.addrs, expected);
            }
        }

        /// A protocol-filtered record is either omitted or returned byte-for-byte equal.
        #[test]
        fn protocol_filter_never_changes_records(
            protos in prop::collection::vec(prop::sample::select(&["transport-bitswap", "a", "B", "unknown"][..]), 0..4),
            filter in prop::collection::vec(prop::sample::select(&["transport-bitswap", "b", "unknown", "z"][..]), 1..4),
        ) {
            let f = parse_protocol_filter(&filter.join(",")).unwrap().unwrap();
            let r = rec_from(vec![ma(TCP4)], protos.iter().map(|s| s.to_string()).collect());
            let expected_kept = if protos.is_empty() {
                filter.contains(&"unknown")
            } else {
                protos.iter().any(|p| filter.iter().any(|n| *n != "unknown" && p.eq_ignore_ascii_case(n)))
            };
            match apply_filters(r.clone(), None, Some(&f)) {
                Some(out) => { prop_assert!(expected_kept); prop_assert_eq!(out, r); }
                None => prop_assert!(!expected_kept),
            }
        }
    }

    fn rec_from(addrs: Vec<Multiaddr>, protos: Vec<String>) -> Record {
        Record::Peer(PeerRecord::new(peer_id(), addrs, protos))
    }
}
