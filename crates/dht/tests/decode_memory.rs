//! What decoding a DHT message allocates stays within [`MAX_DECODED_BYTES`], the part of
//! [`hydrant_dht::REQUEST_CHARGE`] an inbound request holds for it (hardening round two,
//! item 5). dhat's heap profiler, in its testing mode, measures the heap's peak while a
//! message is decoded.
//!
//! Before peers and addresses were counted first, a 64 KiB frame of empty peer entries
//! (2 bytes each) decoded to 32,768 structs, 1.75 MiB at its peak, against a charge of
//! 192 KiB.

use hydrant_dht::{
    MAX_ADDRS_ON_WIRE, MAX_DECODED_BYTES, MAX_FRAME_SIZE, MAX_PEERS_ON_WIRE, MessageType,
    decode_request, decode_response, proto,
};
use prost::Message as _;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

/// The heap's peak, in bytes, of what `f` allocated (blocks allocated before are not counted).
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let profiler = dhat::Profiler::builder().testing().build();
    let out = f();
    let peak = dhat::HeapStats::get().max_bytes as u64;
    drop(profiler);
    (out, peak)
}

/// A peer with a valid Ed25519 peer ID and `addrs` addresses.
fn peer(i: u8, addrs: usize) -> proto::Peer {
    let key = libp2p::identity::Keypair::ed25519_from_bytes([i; 32]).unwrap();
    proto::Peer {
        id: key.public().to_peer_id().to_bytes(),
        addrs: (0..addrs)
            .map(|a| {
                format!("/ip4/10.0.{}.{}/tcp/4001", a / 256, a % 256)
                    .parse::<libp2p::Multiaddr>()
                    .unwrap()
                    .to_vec()
            })
            .collect(),
        connection: 0,
    }
}

/// One test, so no other test's thread allocates while the peak is measured.
#[test]
fn decoding_allocates_at_most_what_a_request_is_charged() {
    // A frame of empty closer-peer entries: refused having allocated almost nothing.
    let mut empty = proto::Message {
        r#type: 4, // FIND_NODE
        key: vec![1; 32],
        ..Default::default()
    }
    .encode_to_vec();
    while empty.len() + 2 <= MAX_FRAME_SIZE {
        empty.extend([8 << 3 | 2, 0]);
    }
    let (refused, peak) = peak_during(|| decode_response(&empty, MessageType::FindNode));
    assert!(
        matches!(refused, Err(hydrant_dht::DecodeError::TooMany { .. })),
        "{refused:?}"
    );
    assert!(
        peak < 4096,
        "refusing {} bytes allocated {peak}",
        empty.len()
    );

    // The largest accepted: both lists full of peers, the addresses at their limit.
    let per_peer = MAX_ADDRS_ON_WIRE / (2 * MAX_PEERS_ON_WIRE);
    let peers: Vec<_> = (0..MAX_PEERS_ON_WIRE)
        .map(|i| peer(i as u8, per_peer))
        .collect();
    let full = proto::Message {
        r#type: 3, // GET_PROVIDERS
        key: vec![1; 34],
        closer_peers: peers.clone(),
        provider_peers: peers,
        ..Default::default()
    }
    .encode_to_vec();
    assert!(full.len() <= MAX_FRAME_SIZE, "{} bytes", full.len());
    let (decoded, peak) = peak_during(|| decode_response(&full, MessageType::GetProviders));
    assert!(decoded.is_ok(), "{decoded:?}");
    assert!(
        peak <= MAX_DECODED_BYTES as u64,
        "decoding allocated {peak} bytes, more than {MAX_DECODED_BYTES}"
    );
    drop(decoded);
    // An ADD_PROVIDER request as large is within the same bound.
    let request = proto::Message {
        r#type: 2,
        key: vec![1; 34],
        provider_peers: (0..MAX_PEERS_ON_WIRE)
            .map(|i| peer(i as u8, 2 * per_peer))
            .collect(),
        ..Default::default()
    }
    .encode_to_vec();
    assert!(request.len() <= MAX_FRAME_SIZE);
    let (decoded, peak) = peak_during(|| decode_request(&request));
    assert!(decoded.is_ok(), "{decoded:?}");
    assert!(peak <= MAX_DECODED_BYTES as u64, "{peak}");
}
