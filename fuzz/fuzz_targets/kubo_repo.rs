//! Fuzz target: the parsers of a Kubo repository's bytes (`hydrant_kubo`).
//!
//! Input: the first byte picks the parser, the rest is its input: a dspinner pin record
//! (`decode_pin`), a flatfs file name (`flatfs::parse_key`), or a `SHARDING` file
//! (`Shard::parse`, then `Shard::dir` of a key). Checks: no panic; a decoded pin re-encodes (as
//! dspinner writes it) to a record that decodes to the same pin; a parsed key is the canonical
//! name of its multihash; a shard directory has the shard's length.
#![no_main]

use hydrant_kubo::Shard;
use hydrant_kubo::flatfs::{key_of, parse_key};
use hydrant_kubo::pins::{PinMode, decode_pin, encode_pin};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, input)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(pin) = decode_pin("id", input) {
                let mode = u8::from(pin.mode == PinMode::Direct);
                let again = encode_pin(&pin.cid, mode, Some(&pin.name));
                assert_eq!(decode_pin("id", &again), Ok(pin));
            }
        }
        1 => {
            let Ok(key) = std::str::from_utf8(input) else {
                return;
            };
            if let Some(multihash) = parse_key(key) {
                assert_eq!(key_of(&multihash), key);
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(input) else {
                return;
            };
            let (sharding, key) = text.split_once('\n').unwrap_or((text, "CIQA"));
            if let Some(shard) = Shard::parse(sharding) {
                let n = match shard {
                    Shard::Prefix(n) | Shard::Suffix(n) | Shard::NextToLast(n) => n,
                };
                assert_eq!(shard.dir(key).chars().count(), n);
            }
        }
    }
});
