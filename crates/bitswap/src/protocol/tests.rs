use super::*;
use hydrant_blocks::DigestError;
use multihash::Multihash;
use multihash_codetable::{Code, MultihashDigest as _};
use proptest::prelude::*;

fn sha256_cid(codec: u64, data: &[u8]) -> Cid {
    Cid::new_v1(codec, Code::Sha2_256.digest(data))
}

#[test]
fn cidv0_prefix_is_fixed() {
    let cid = Cid::new_v0(Code::Sha2_256.digest(b"hello")).unwrap();
    assert_eq!(cid_prefix(&cid), vec![0x00, 0x70, 0x12, 0x20]);
    assert_eq!(
        cid_from_prefix(&[0x00, 0x70, 0x12, 0x20], b"hello").unwrap(),
        cid
    );
}

#[test]
fn cidv1_blake2b_prefix() {
    let cid = Cid::new_v1(0x55, Code::Blake2b256.digest(b"data"));
    // version 1, raw 0x55, blake2b-256 0xb220 as varint [0xa0, 0xe4, 0x02], length 32.
    assert_eq!(cid_prefix(&cid), vec![0x01, 0x55, 0xa0, 0xe4, 0x02, 0x20]);
    assert_eq!(cid_from_prefix(&cid_prefix(&cid), b"data").unwrap(), cid);
    assert_ne!(cid_from_prefix(&cid_prefix(&cid), b"other").unwrap(), cid);
}

#[test]
fn prefix_errors() {
    assert_eq!(
        CidPrefix::parse(&[0x00, 0x55, 0x12, 0x20]),
        Err(PrefixError::InvalidV0)
    );
    assert_eq!(
        CidPrefix::parse(&[0x02, 0x55, 0x12, 0x20]),
        Err(PrefixError::UnsupportedVersion(2))
    );
    assert_eq!(
        CidPrefix::parse(&[0x01, 0x55, 0x12, 0x41]),
        Err(PrefixError::DigestTooLong(65))
    );
    assert_eq!(
        CidPrefix::parse(&[0x01, 0x55, 0x12, 0x20, 0x00]),
        Err(PrefixError::TrailingBytes(1))
    );
    assert_eq!(
        CidPrefix::parse(&[0x01, 0x55, 0x12]),
        Err(PrefixError::Varint)
    );
    // Found by fuzzing: a 10-byte varint whose high bits overflow u64, and a non-minimal one.
    let overflowing = [
        1, 0, 0xfe, 0xf0, 0xff, 0xfe, 0xf0, 0xff, 0xff, 0xfe, 0xf0, 0x10, 1,
    ];
    assert_eq!(CidPrefix::parse(&overflowing), Err(PrefixError::Varint));
    let overflowing = [
        1, 0x8a, 0x8a, 0x8a, 0x8a, 0xb3, 0x8a, 0x8a, 0x9a, 0xf7, 0x2b, 0x12, 0x20,
    ];
    assert_eq!(CidPrefix::parse(&overflowing), Err(PrefixError::Varint));
    assert_eq!(
        CidPrefix::parse(&[0x01, 0xd5, 0x00, 0x12, 0x20]),
        Err(PrefixError::Varint)
    );
    assert!(matches!(
        cid_from_prefix(&[0x01, 0x55, 0x12, 0x21], b"x"),
        Err(PrefixError::Digest(DigestError::Length {
            len: 33,
            max: 32,
            ..
        }))
    ));
    assert_eq!(
        cid_from_prefix(&[0x01, 0x55, 0x99, 0x01, 0x20], b"x"),
        Err(PrefixError::Digest(DigestError::UnsupportedHash(0x99)))
    );
    // Identity: digest is the data.
    let cid = cid_from_prefix(&[0x01, 0x55, 0x00, 0x03], b"abc").unwrap();
    assert_eq!(cid.hash().digest(), b"abc");
    assert!(cid_from_prefix(&[0x01, 0x55, 0x00, 0x04], b"abc").is_err());
    // Truncated sha2-256: 20 bytes and more, as ingest and reads accept
    // (hydrant_blocks::verify); shorter is refused on every path.
    let cid = cid_from_prefix(&[0x01, 0x55, 0x12, 0x14], b"abc").unwrap();
    assert_eq!(
        cid.hash().digest(),
        &Code::Sha2_256.digest(b"abc").digest()[..20]
    );
    assert_eq!(hydrant_blocks::verify_block(&cid, b"abc"), Ok(()));
    assert!(matches!(
        cid_from_prefix(&[0x01, 0x55, 0x12, 0x10], b"abc"),
        Err(PrefixError::Digest(DigestError::Length {
            len: 16,
            min: 20,
            ..
        }))
    ));
}

#[test]
fn decode_rejects_bad_fields() {
    let good = sha256_cid(0x55, b"a");
    let mut raw = pb::Message {
        wantlist: Some(pb::Wantlist {
            entries: vec![pb::Entry {
                block: Bytes::from(vec![1, 2, 3]),
                ..Default::default()
            }],
            full: false,
        }),
        ..Default::default()
    };
    assert!(matches!(
        decode_message(&raw.encode_to_vec()),
        Err(DecodeError::WantCid { index: 0, .. })
    ));
    let mut bytes = good.to_bytes();
    bytes.push(0);
    raw.wantlist.as_mut().unwrap().entries[0].block = Bytes::from(bytes);
    assert!(matches!(
        decode_message(&raw.encode_to_vec()),
        Err(DecodeError::WantCid {
            source: InvalidCid::TrailingBytes(1),
            ..
        })
    ));
    raw.wantlist.as_mut().unwrap().entries[0].block = Bytes::from(good.to_bytes());
    raw.wantlist.as_mut().unwrap().entries[0].want_type = 2;
    assert!(matches!(
        decode_message(&raw.encode_to_vec()),
        Err(DecodeError::WantType { index: 0, value: 2 })
    ));
    let raw = pb::Message {
        block_presences: vec![pb::BlockPresence {
            cid: Bytes::from(good.to_bytes()),
            r#type: 7,
        }],
        ..Default::default()
    };
    assert!(matches!(
        decode_message(&raw.encode_to_vec()),
        Err(DecodeError::PresenceType { index: 0, value: 7 })
    ));
    assert!(matches!(
        decode_message(&[0xff, 0xff]),
        Err(DecodeError::Protobuf(_))
    ));
}

#[test]
fn too_many_entries_is_refused() {
    let cid = sha256_cid(0x55, b"a");
    let message = Message {
        wantlist: vec![
            WantlistEntry {
                cid,
                priority: 1,
                cancel: false,
                want_type: WantType::Block,
                send_dont_have: false,
            };
            MAX_WANTLIST_ENTRIES_PER_MESSAGE + 1
        ],
        ..Default::default()
    };
    assert!(matches!(
        decode_message(&message.encode()),
        Err(DecodeError::TooMany {
            what: "wantlist entries",
            ..
        })
    ));
}

#[tokio::test]
async fn messages_of_exactly_the_size_limit_are_read() {
    // Announces MAX + 1 bytes but sends none: refused without reading further.
    let mut prefix = unsigned_varint::encode::usize_buffer();
    let prefix = unsigned_varint::encode::usize(MAX_MESSAGE_SIZE + 1, &mut prefix).to_vec();
    let mut reader = futures::io::Cursor::new(prefix);
    assert!(matches!(
        read_frame(&mut reader, MAX_MESSAGE_SIZE).await,
        Err(FrameError::TooLarge { .. })
    ));
    // Exactly MAX is accepted.
    let mut data = unsigned_varint::encode::usize(
        MAX_MESSAGE_SIZE,
        &mut unsigned_varint::encode::usize_buffer(),
    )
    .to_vec();
    data.resize(data.len() + MAX_MESSAGE_SIZE, 7);
    let mut reader = futures::io::Cursor::new(data);
    assert_eq!(
        read_frame(&mut reader, MAX_MESSAGE_SIZE)
            .await
            .unwrap()
            .unwrap()
            .len(),
        MAX_MESSAGE_SIZE
    );
    assert!(
        read_frame(&mut reader, MAX_MESSAGE_SIZE)
            .await
            .unwrap()
            .is_none()
    );
}

#[test]
fn builder_respects_version_and_size() {
    let v0 = Cid::new_v0(Code::Sha2_256.digest(b"v0")).unwrap();
    let v1 = sha256_cid(0x55, b"xyz");
    let data = Bytes::from_static(b"xyz");
    let mut b = ResponseBuilder::new(ProtocolVersion::V1_0_0, MAX_MESSAGE_SIZE);
    assert_eq!(b.add_block(&v1, &data), Err(AddError::Unsupported));
    assert_eq!(
        b.add_presence(&v0, PresenceType::Have),
        Err(AddError::Unsupported)
    );
    assert_eq!(b.add_block(&v0, &data), Ok(()));
    let decoded = decode_message(&b.finish(5)[1..]).unwrap();
    assert_eq!(decoded.blocks, vec![data.clone()]);
    assert!(decoded.payload.is_empty());
    assert_eq!(decoded.pending_bytes, 0);

    let mut b = ResponseBuilder::new(ProtocolVersion::V1_1_0, MAX_MESSAGE_SIZE);
    assert_eq!(
        b.add_presence(&v0, PresenceType::Have),
        Err(AddError::Unsupported)
    );
    assert_eq!(b.add_block(&v1, &data), Ok(()));
    let decoded = decode_message(&b.finish(5)[1..]).unwrap();
    assert_eq!(
        decoded.payload[0]
            .prefix
            .to_cid(&decoded.payload[0].data)
            .unwrap(),
        v1
    );

    let mut b = ResponseBuilder::new(ProtocolVersion::V1_2_0, 64);
    assert_eq!(
        b.add_block(&v1, &Bytes::from(vec![0u8; 64])),
        Err(AddError::Full)
    );
    assert!(b.is_empty());
    assert_eq!(b.add_presence(&v1, PresenceType::DontHave), Ok(()));
    assert_eq!(b.counts().dont_haves, 1);
}

fn arb_cid() -> impl Strategy<Value = Cid> {
    prop_oneof![
        any::<Vec<u8>>().prop_map(|d| Cid::new_v0(Code::Sha2_256.digest(&d)).unwrap()),
        (any::<u64>(), any::<Vec<u8>>())
            .prop_map(|(c, d)| Cid::new_v1(c, Code::Blake2b256.digest(&d))),
        (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(c, d)| Cid::new_v1(c, Multihash::wrap(0, &d).unwrap())),
    ]
}

fn arb_entry() -> impl Strategy<Value = WantlistEntry> {
    (
        arb_cid(),
        any::<i32>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(cid, priority, cancel, have, send_dont_have)| WantlistEntry {
                cid,
                priority,
                cancel,
                want_type: if have {
                    WantType::Have
                } else {
                    WantType::Block
                },
                send_dont_have,
            },
        )
}

fn arb_message() -> impl Strategy<Value = Message> {
    (
        proptest::collection::vec(arb_entry(), 0..8),
        any::<bool>(),
        proptest::collection::vec(any::<Vec<u8>>(), 0..3),
        proptest::collection::vec((arb_cid(), any::<Vec<u8>>()), 0..3),
        proptest::collection::vec((arb_cid(), any::<bool>()), 0..3),
        any::<i32>(),
    )
        .prop_map(
            |(wantlist, full, blocks, payload, presences, pending_bytes)| Message {
                wantlist,
                full,
                blocks: blocks.into_iter().map(Bytes::from).collect(),
                payload: payload
                    .into_iter()
                    .map(|(cid, data)| PayloadBlock {
                        prefix: CidPrefix::of(&cid),
                        data: Bytes::from(data),
                    })
                    .collect(),
                block_presences: presences
                    .into_iter()
                    .map(|(cid, have)| BlockPresence {
                        cid,
                        presence: if have {
                            PresenceType::Have
                        } else {
                            PresenceType::DontHave
                        },
                    })
                    .collect(),
                pending_bytes,
            },
        )
}

proptest! {
    #[test]
    fn message_roundtrip(message in arb_message()) {
        let decoded = decode_message(&message.encode()).unwrap();
        prop_assert_eq!(decoded, message);
    }

    #[test]
    fn frame_roundtrip(message in arb_message()) {
        let frame = message.encode_frame();
        let body = futures::executor::block_on(read_frame(&mut futures::io::Cursor::new(frame), MAX_MESSAGE_SIZE)).unwrap().unwrap();
        prop_assert_eq!(decode_message(&body).unwrap(), message);
    }

    #[test]
    fn prefix_roundtrip(cid in arb_cid()) {
        let prefix = cid_prefix(&cid);
        prop_assert_eq!(CidPrefix::parse(&prefix).unwrap(), CidPrefix::of(&cid));
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_message(&bytes);
        let _ = CidPrefix::parse(&bytes);
    }

    #[test]
    fn builder_frames_stay_within_limit(
        sizes in proptest::collection::vec(0usize..300, 1..20),
        max in 40usize..1000,
    ) {
        let mut builder = ResponseBuilder::new(ProtocolVersion::V1_2_0, max);
        for (i, size) in sizes.iter().enumerate() {
            let data = Bytes::from(vec![i as u8; *size]);
            let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(&data));
            if builder.add_block(&cid, &data).is_err() {
                let frame = std::mem::replace(&mut builder, ResponseBuilder::new(ProtocolVersion::V1_2_0, max)).finish(u64::MAX);
                prop_assert!(frame.len() <= max);
                let _ = builder.add_block(&cid, &data);
            }
            let _ = builder.add_presence(&cid, PresenceType::Have);
        }
        let frame = builder.finish(i32::MAX as u64);
        prop_assert!(frame.len() <= max);
    }
}
