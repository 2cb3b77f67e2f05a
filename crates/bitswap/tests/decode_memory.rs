//! What decoding a Bitswap message allocates stays within what the reader charges the memory
//! budget for it (hardening round two, item 5). dhat's heap profiler, in its testing mode,
//! measures the heap's peak while [`decode_message`] runs: the deterministic form of "peak
//! RSS".
//!
//! Before counting came first, a 4 MiB message of empty wantlist entries (2 bytes each)
//! decoded to about two million structs, some 100 MiB, before its entry count was checked,
//! while the reader had charged 8 MiB for it. Now the body is measured first: that message is
//! refused having allocated nothing, and the largest accepted messages allocate at most
//! [`MessageShape::decoded_bytes`], the second charge the reader takes.

use cid::Cid;
use hydrant_bitswap::{
    BlockPresence, DecodeError, MAX_BLOCKS_PER_MESSAGE, MAX_MESSAGE_SIZE,
    MAX_PRESENCES_PER_MESSAGE, MAX_WANTLIST_ENTRIES_PER_MESSAGE, Message, MessageShape,
    PresenceType, WantType, WantlistEntry, decode_message, measure_message,
};
use multihash_codetable::{Code, MultihashDigest};

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

/// A protobuf key byte for a length-delimited field with a small number.
fn len_key(field: u8) -> u8 {
    field << 3 | 2
}

fn varint(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A body of [`MAX_MESSAGE_SIZE`] bytes: one wantlist of empty entries.
fn empty_entries_body() -> Vec<u8> {
    let entries = (MAX_MESSAGE_SIZE - 8) / 2;
    let mut body = vec![len_key(1)];
    varint(entries * 2, &mut body);
    for _ in 0..entries {
        body.extend([len_key(1), 0]);
    }
    assert!(body.len() <= MAX_MESSAGE_SIZE);
    body
}

/// Distinct CIDs with 64-byte digests (sha2-512), the largest a CID may carry.
fn long_cids(n: usize) -> Vec<Cid> {
    (0..n as u64)
        .map(|i| Cid::new_v1(0x55, Code::Sha2_512.digest(&i.to_le_bytes())))
        .collect()
}

/// The largest messages accepted, one per repeated field, each at its count limit.
fn largest_accepted() -> Vec<(&'static str, Message)> {
    let wants = long_cids(MAX_WANTLIST_ENTRIES_PER_MESSAGE)
        .into_iter()
        .map(|cid| WantlistEntry {
            cid,
            priority: i32::MAX,
            cancel: false,
            want_type: WantType::Have,
            send_dont_have: true,
        })
        .collect();
    let presences = long_cids(MAX_PRESENCES_PER_MESSAGE)
        .into_iter()
        .map(|cid| BlockPresence {
            cid,
            presence: PresenceType::DontHave,
        })
        .collect();
    let blocks = (0..MAX_BLOCKS_PER_MESSAGE)
        .map(|i| bytes::Bytes::from(vec![i as u8; 1000]))
        .collect();
    vec![
        (
            "full wantlist",
            Message {
                wantlist: wants,
                full: true,
                ..Default::default()
            },
        ),
        (
            "presences",
            Message {
                block_presences: presences,
                ..Default::default()
            },
        ),
        (
            "1.0.0 blocks",
            Message {
                blocks,
                ..Default::default()
            },
        ),
    ]
}

/// One test, so no other test's thread allocates while the peak is measured.
#[test]
fn decoding_allocates_at_most_what_the_reader_charges() {
    let body = empty_entries_body();
    let (refused, peak) = peak_during(|| decode_message(&body));
    assert!(
        matches!(
            refused,
            Err(DecodeError::TooMany {
                what: "wantlist entries",
                ..
            })
        ),
        "{refused:?}"
    );
    // The reader has charged the body's length and nothing more.
    assert!(
        peak < 4096,
        "refusing {} bytes of empty entries allocated {peak} bytes",
        body.len()
    );

    for (what, message) in largest_accepted() {
        let body = message.encode();
        assert!(
            body.len() <= MAX_MESSAGE_SIZE,
            "{what}: {} bytes",
            body.len()
        );
        let shape = measure_message(&body).unwrap();
        let (decoded, peak) = peak_during(|| decode_message(&body).unwrap());
        assert_eq!(decoded, message, "{what}");
        assert!(
            peak <= shape.decoded_bytes(),
            "{what}: decoding allocated {peak} bytes, the reader charges {}",
            shape.decoded_bytes()
        );
        drop(decoded);
    }
    // The reader's minimum budget admits the largest wantlist message.
    assert!(
        MessageShape::FULL_WANTLIST.decoded_bytes() >= {
            let body = largest_accepted().swap_remove(0).1.encode();
            measure_message(&body).unwrap().decoded_bytes()
        }
    );
}
