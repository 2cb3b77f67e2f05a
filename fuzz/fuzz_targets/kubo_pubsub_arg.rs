//! Fuzz target: the multibase `arg` of Kubo's RPC pub/sub calls (`hydrant_node::fuzzing`).
//!
//! Input: any bytes, taken as the query argument (lossy UTF-8, as a URL query decodes).
//! Checks: no panic; an accepted argument is base64url (`u`) and re-encodes to itself (less
//! any `=` padding); any bytes encoded with `multibase` decode back to themselves.
#![no_main]

use hydrant_node::fuzzing::{multibase, pubsub_decode_arg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let arg = String::from_utf8_lossy(data);
    if let Ok(bytes) = pubsub_decode_arg(&arg) {
        assert!(arg.starts_with('u'));
        assert_eq!(multibase(&bytes), arg.trim_end_matches('='));
    }
    assert_eq!(pubsub_decode_arg(&multibase(data)).unwrap(), data);
});
