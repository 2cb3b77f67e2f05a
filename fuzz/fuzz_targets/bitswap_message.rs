//! Fuzz target: the Bitswap wire parsers of `hydrant_bitswap`.
//!
//! - `decode_message(data)`; on success `Message::encode` then `decode_message` again must give
//!   an equal message, and encoding is stable;
//! - `CidPrefix::parse(data)`; on success `to_bytes` gives back the input (varints are minimal)
//!   and parses to the same prefix;
//! - `cid_from_prefix(prefix, block)` with the input split at a point chosen by byte 0; on
//!   success the CID's prefix is the one parsed;
//! - `read_frame` over the input as a stream (length-prefixed messages), each body decoded.
#![no_main]

use hydrant_bitswap::{CidPrefix, cid_from_prefix, cid_prefix, decode_message, read_frame};
use libfuzzer_sys::fuzz_target;

fn message_roundtrip(data: &[u8]) {
    let Ok(msg) = decode_message(data) else {
        return;
    };
    let encoded = msg.encode();
    let again = decode_message(&encoded)
        .unwrap_or_else(|e| panic!("re-encoded message does not decode: {e}"));
    assert_eq!(msg, again, "decode(encode(m)) != m");
    assert_eq!(encoded, again.encode(), "encoding is not stable");
    let frame = msg.encode_frame();
    assert!(frame.ends_with(&encoded), "frame body differs from encode()");
}

fn prefix_roundtrip(data: &[u8]) {
    let Ok(prefix) = CidPrefix::parse(data) else {
        return;
    };
    let bytes = prefix.to_bytes();
    assert_eq!(bytes, data, "CidPrefix::parse accepted a non-canonical prefix");
    assert_eq!(CidPrefix::parse(&bytes).ok(), Some(prefix), "prefix does not round-trip");
}

fn split_prefix(data: &[u8]) {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(k).min(rest.len());
    let (prefix, block) = rest.split_at(at);
    let Ok(cid) = cid_from_prefix(prefix, block) else {
        return;
    };
    let parsed = CidPrefix::parse(prefix).expect("cid_from_prefix accepted an invalid prefix");
    assert_eq!(CidPrefix::of(&cid), parsed, "CID prefix differs from the parsed prefix");
    assert_eq!(cid_prefix(&cid), prefix, "cid_prefix differs from the input prefix");
    assert_eq!(
        parsed.to_cid(block).ok(),
        Some(cid),
        "CidPrefix::to_cid differs from cid_from_prefix"
    );
}

fn frames(data: &[u8]) {
    let mut reader = data;
    futures::executor::block_on(async {
        // Small bound so that the TooLarge path is reached too.
        while let Ok(Some(body)) = read_frame(&mut reader, 1024).await {
            assert!(body.len() <= 1024, "read_frame returned more than max_len");
            message_roundtrip(&body);
        }
    });
}

fuzz_target!(|data: &[u8]| {
    message_roundtrip(data);
    prefix_roundtrip(data);
    split_prefix(data);
    frames(data);
});
