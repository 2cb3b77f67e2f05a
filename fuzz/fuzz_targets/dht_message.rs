//! Fuzz target: the Kademlia DHT wire parsers and the value-record validator.
//!
//! - `decode_request(data)`; on success `encode_request` then `decode_request` gives an equal
//!   request;
//! - `decode_response(data, t)` for every message type;
//! - `read_frame` over the input as a stream (length-prefixed messages), each body decoded as
//!   a request;
//! - `hydrant_records::validate(key, value)` with the input split at a point chosen by byte 0
//!   (the PUT_VALUE path: IPNS and `/pk/` records), which must never panic, and whatever it
//!   accepts must be the exact input.
#![no_main]

use std::time::{Duration, SystemTime};

use hydrant_dht::{
    MessageType, decode_request, decode_response, encode_request, read_frame,
};
use libfuzzer_sys::fuzz_target;

const TYPES: [MessageType; 6] = [
    MessageType::PutValue,
    MessageType::GetValue,
    MessageType::AddProvider,
    MessageType::GetProviders,
    MessageType::FindNode,
    MessageType::Ping,
];

fn request_roundtrip(data: &[u8]) {
    let Ok(request) = decode_request(data) else {
        return;
    };
    let encoded = encode_request(&request);
    let again = decode_request(&encoded)
        .unwrap_or_else(|e| panic!("re-encoded request does not decode: {e}"));
    assert_eq!(request, again, "decode(encode(r)) != r");
}

fn records(data: &[u8]) {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(k).min(rest.len());
    let (key, value) = rest.split_at(at);
    // A fixed clock: 2026-01-01, so EOL checks are deterministic.
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    if let Ok(record) = hydrant_records::validate(key, value, now) {
        assert_eq!(record.raw(), value, "accepted record is not the input");
    }
}

fuzz_target!(|data: &[u8]| {
    request_roundtrip(data);
    for t in TYPES {
        let _ = decode_response(data, t);
    }
    let mut reader = data;
    futures::executor::block_on(async {
        while let Ok(Some(body)) = read_frame(&mut reader, 4096).await {
            assert!(body.len() <= 4096, "read_frame returned more than max_len");
            request_roundtrip(&body);
        }
    });
    records(data);
});
