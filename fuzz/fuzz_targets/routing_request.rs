//! Fuzz target: the request parsers of the Delegated Routing V1 API (`hydrant_routing`).
//!
//! Input: lossy UTF-8 split on `\n` into `id \n filter-addrs \n filter-protocols \n accept`.
//! Calls `parse_cid`, `parse_peer_id`, `parse_dht_key`, `parse_addr_filter`,
//! `parse_protocol_filter`, `negotiate`, `accepts_ipns_record`, and `apply_filters` on a
//! fixed record. Checks: no panic; a parsed peer ID re-parses from its base58 text to the
//! same ID and is its own DHT key; the protocol filter never changes a record it keeps.
#![no_main]

use hydrant_routing::{
    PeerRecord, Record, accepts_ipns_record, apply_filters, negotiate, parse_addr_filter,
    parse_cid, parse_dht_key, parse_peer_id, parse_protocol_filter,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.split('\n');
    let id = fields.next().unwrap_or_default();
    let addrs = fields.next().unwrap_or_default();
    let protocols = fields.next().unwrap_or_default();
    let accept = fields.next().unwrap_or_default();

    let _ = parse_cid(id);
    let _ = parse_dht_key(id);
    if let Ok(peer) = parse_peer_id(id) {
        assert_eq!(parse_peer_id(&peer.to_base58()).ok(), Some(peer));
        assert_eq!(parse_dht_key(&peer.to_base58()).ok(), Some(peer.to_bytes()));
    }
    let _ = negotiate(accept.split(','));
    let _ = accepts_ipns_record(accept.split('\t'));

    let record = Record::Peer(PeerRecord {
        id: "12D3KooWLyiJWueSLNPD11Sbey4hvitvGFCKPeRUUPmL8pncWJbh".parse().unwrap(),
        addrs: vec![
            "/ip4/127.0.0.1/tcp/4001".parse().unwrap(),
            "/ip4/127.0.0.1/udp/4001/quic-v1".parse().unwrap(),
        ],
        protocols: vec!["transport-bitswap".into()],
        extra: Default::default(),
    });
    let addr_filter = parse_addr_filter(addrs).ok().flatten();
    let protocol_filter = parse_protocol_filter(protocols).ok().flatten();
    let _ = apply_filters(record.clone(), addr_filter.as_ref(), None);
    if let Some(kept) = apply_filters(record.clone(), None, protocol_filter.as_ref()) {
        assert_eq!(kept, record, "the protocol filter changed a record it kept");
    }
});
