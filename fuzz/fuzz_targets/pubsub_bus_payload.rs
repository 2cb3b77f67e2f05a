//! Fuzz target: the replicas' pub/sub notifications (`hydrant_pg::pubsub_wire`), which a
//! replica reads from PostgreSQL `NOTIFY` payloads and `pubsub_messages` rows.
//!
//! Input: bytes taken both as a payload (when UTF-8) and as a frame. Checks: no panic; a frame
//! that decodes re-encodes to its input; an inline payload re-made from what was parsed
//! parses to the same thing.
#![no_main]

use bytes::Bytes;
use hydrant_pg::BusMessage;
use hydrant_pg::pubsub_wire::{Payload, inline_payload, parse_payload};
use libfuzzer_sys::fuzz_target;

fn check_frame(frame: &Bytes) {
    if let Ok(msg) = BusMessage::decode_frame(frame) {
        assert_eq!(msg.encode_frame().as_ref(), Some(frame));
    }
}

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    check_frame(&bytes);
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok((replica, carried)) = parse_payload(text)
    {
        if let Payload::Inline(frame) = carried {
            check_frame(&frame);
            let again = inline_payload(replica, &frame);
            assert_eq!(parse_payload(&again), Ok((replica, Payload::Inline(frame))));
        }
    }
});
