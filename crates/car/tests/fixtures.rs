//! Real CAR files made by other projects (testdata/fixtures, see its SOURCES.md): every valid one
//! decodes fully and verifies; every known-bad one is refused with the expected error and offset;
//! results do not depend on how the input is split into chunks.

use cid::Cid;
use hydrant_car::{
    CarDecoder, CarError, CarHeader, Event, Limits, Part, Section, encode_section,
    encode_v1_header, verify_block,
};
use hydrant_testkit::{BAD_FIXTURE_CARS, fixture, valid_fixture_cars};
use multihash_codetable::{Code, MultihashDigest};
use proptest::prelude::*;

/// Everything a decode produced: the events before the end, and how it ended.
#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Event>,
    result: Result<(), CarError>,
}

/// Decodes `input` split at the given chunk lengths (cycled), draining after every push.
fn decode_split(input: &[u8], chunk_lens: &[usize]) -> Outcome {
    let mut dec = CarDecoder::new(Limits::default());
    let mut events = Vec::new();
    let mut rest = input;
    let mut lens = chunk_lens.iter().cycle();
    while !rest.is_empty() {
        let n = (*lens.next().expect("non-empty")).clamp(1, rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        dec.push(piece);
        loop {
            match dec.next_event() {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        events,
                        result: Err(e),
                    };
                }
            }
        }
    }
    let result = dec.finish();
    if result.is_ok() {
        assert_eq!(dec.bytes_consumed(), input.len() as u64);
    }
    Outcome { events, result }
}

fn decode(input: &[u8], chunk: usize) -> Outcome {
    decode_split(input, &[chunk])
}

fn header_and_sections(outcome: &Outcome) -> (&CarHeader, Vec<&Section>) {
    let Some(Event::Header(h)) = outcome.events.first() else {
        panic!("no header first: {outcome:?}");
    };
    let sections = outcome.events[1..]
        .iter()
        .map(|e| match e {
            Event::Section(s) => s,
            Event::Header(_) => panic!("second header"),
        })
        .collect();
    (h, sections)
}

#[test]
fn every_valid_fixture_decodes_fully_and_verifies() {
    let valid = valid_fixture_cars();
    assert_eq!(valid.len(), 41, "fixture set changed: {valid:?}");
    for f in &valid {
        let bytes = fixture(f);
        let whole = decode(&bytes, bytes.len());
        assert_eq!(whole.result, Ok(()), "{f}");
        let (header, sections) = header_and_sections(&whole);
        assert!(!sections.is_empty(), "{f} has no sections");
        assert_eq!(header.version == 2, header.v2.is_some(), "{f}");
        let mut next = None;
        for s in &sections {
            verify_block(&s.cid, &s.data).unwrap_or_else(|e| panic!("{f}: {e}"));
            let at = s.data_offset as usize;
            assert_eq!(&bytes[at..at + s.data.len()], &s.data[..], "{f}");
            if let Some(expected) = next {
                assert_eq!(s.section_offset, expected, "{f}: sections are contiguous");
            }
            next = Some(s.data_offset + s.data.len() as u64);
        }
        // One byte at a time gives exactly the same events and result.
        assert_eq!(decode(&bytes, 1), whole, "{f}: 1-byte chunks differ");
    }
}

#[test]
fn section_offsets_frame_the_cid_exactly() {
    for f in valid_fixture_cars() {
        let bytes = fixture(&f);
        let outcome = decode(&bytes, 1 << 20);
        for s in header_and_sections(&outcome).1 {
            let start = s.section_offset as usize;
            let (len, rest) = unsigned_varint::decode::u64(&bytes[start..]).expect("length varint");
            let varint_len = bytes.len() - start - rest.len();
            let cid_at = start + varint_len;
            assert_eq!(s.data_offset as usize, cid_at + s.cid.encoded_len(), "{f}");
            assert_eq!(
                &bytes[cid_at..s.data_offset as usize],
                &s.cid.to_bytes()[..]
            );
            assert_eq!(len as usize, s.cid.encoded_len() + s.data.len(), "{f}");
        }
    }
}

#[test]
fn v1_headers_re_encode_byte_for_byte() {
    for f in valid_fixture_cars() {
        let bytes = fixture(&f);
        let outcome = decode(&bytes, 1 << 20);
        let (header, sections) = header_and_sections(&outcome);
        if header.v2.is_some() {
            continue;
        }
        let first = sections[0].section_offset as usize;
        assert_eq!(encode_v1_header(&header.roots), &bytes[..first], "{f}");
    }
}

#[test]
fn missing_block_fixtures_are_valid_cars() {
    for f in [
        "go-car/cmd-simple-unixfs-missing-blocks.car",
        "gateway-conformance/trustless_gateway_car-file-3k-and-3-blocks-missing-block.car",
    ] {
        assert_eq!(decode(&fixture(f), 100).result, Ok(()), "{f}");
    }
}

fn json_cid(v: &serde_json::Value) -> Cid {
    v["/"]
        .as_str()
        .expect("cid string")
        .parse()
        .expect("valid CID")
}

#[test]
fn ipld_fixtures_match_their_json_description() {
    for name in ["carv1-basic", "carv2-basic"] {
        let json: serde_json::Value =
            serde_json::from_slice(&fixture(&format!("ipld/{name}.json"))).expect("json");
        let outcome = decode(&fixture(&format!("ipld/{name}.car")), 100);
        assert_eq!(outcome.result, Ok(()), "{name}");
        let (header, sections) = header_and_sections(&outcome);

        let roots: Vec<Cid> = json["header"]["roots"]
            .as_array()
            .expect("roots")
            .iter()
            .map(json_cid)
            .collect();
        assert_eq!(header.roots, roots, "{name}");
        let version = json["header"]["version"].as_u64().expect("version");
        assert_eq!(u64::from(header.version), version, "{name}");
        if let Some(v2) = header.v2 {
            assert_eq!(Some(v2.data_offset), json["header"]["dataOffset"].as_u64());
            assert_eq!(Some(v2.data_size), json["header"]["dataSize"].as_u64());
            assert_eq!(
                Some(v2.index_offset),
                json["header"]["indexOffset"].as_u64()
            );
            assert_eq!(v2.characteristics, 0);
        }

        let blocks = json["blocks"].as_array().expect("blocks");
        assert_eq!(sections.len(), blocks.len(), "{name}");
        for (s, b) in sections.iter().zip(blocks) {
            assert_eq!(s.cid, json_cid(&b["cid"]), "{name}");
            assert_eq!(Some(s.section_offset), b["offset"].as_u64(), "{name}");
            let section_len = s.data_offset + s.data.len() as u64 - s.section_offset;
            assert_eq!(Some(section_len), b["length"].as_u64(), "{name}");
            assert_eq!(Some(s.data_offset), b["blockOffset"].as_u64(), "{name}");
            assert_eq!(
                Some(s.data.len() as u64),
                b["blockLength"].as_u64(),
                "{name}"
            );
        }
    }
}

#[test]
fn known_bad_fixtures_fail_with_the_expected_error() {
    let bad = |f: &str| {
        let outcome = decode(&fixture(f), 4096);
        let again = decode(&fixture(f), 1);
        assert_eq!(outcome, again, "{f}: chunking changed the outcome");
        outcome
    };

    // Header length varint e0 e0 e0 e0 a7 06: about 220 GB.
    let o = bad("go-car/cmd-badheaderlength.car");
    assert!(o.events.is_empty());
    assert!(matches!(
        o.result,
        Err(CarError::HeaderTooLarge { offset: 0, .. })
    ));

    // A valid 17-byte header with no roots, then the same lying varint as a section length.
    let o = bad("go-car/cmd-badsectionlength.car");
    assert_eq!(o.events.len(), 1);
    assert!(matches!(
        o.result,
        Err(CarError::SectionTooLarge { offset: 18, .. })
    ));

    // 16 bytes whose header length says 18: cut short inside the header.
    let o = bad("go-car/sample-corrupt-pragma.car");
    assert_eq!(
        o.result,
        Err(CarError::Truncated {
            offset: 0,
            part: Part::Header,
            end: 16
        })
    );

    // 1048 good sections, then one whose length runs past the end of the file.
    let o = bad("go-car/sample-v1-tailing-corrupt-section.car");
    assert_eq!(o.events.len(), 1 + 1048);
    assert_eq!(
        o.result,
        Err(CarError::Truncated {
            offset: 479_518,
            part: Part::Section,
            end: 479_894
        })
    );

    // data_offset 0xffff_ffff_ffff_faae overflows; the index offset is inside the payload.
    let o = bad("go-car/sample-v2-corrupt-data-and-index.car");
    assert!(o.events.is_empty());
    assert!(matches!(
        o.result,
        Err(CarError::InvalidV2Header { offset: 27, .. })
    ));

    // {version: 42}, no roots.
    let o = bad("go-car/sample-rootless-v42.car");
    assert_eq!(
        o.result,
        Err(CarError::UnsupportedVersion {
            offset: 0,
            version: 42
        })
    );

    // Every error message names its offset.
    for f in BAD_FIXTURE_CARS {
        let err = decode(&fixture(f), 4096).result.expect_err(f);
        assert!(
            err.to_string().contains(&err.offset().to_string()),
            "{f}: {err}"
        );
    }
}

#[test]
fn zero_length_section_ends_data_only_before_zero_padding() {
    for (f, sections, zero_at) in [
        ("go-car/sample-v1-with-zero-len-section.car", 1049, 479_907),
        ("go-car/sample-v1-with-zero-len-section2.car", 20, 20_819),
    ] {
        let mut bytes = fixture(f);
        let o = decode(&bytes, 1000);
        assert_eq!(o.result, Ok(()), "{f}");
        assert_eq!(o.events.len(), 1 + sections, "{f}");

        // A non-zero byte anywhere after the zero-length section is refused.
        for at in [zero_at + 1, bytes.len() - 1] {
            let saved = bytes[at];
            bytes[at] = 1;
            for chunk in [1, 1000, bytes.len()] {
                assert_eq!(
                    decode(&bytes, chunk).result,
                    Err(CarError::NonZeroPadding {
                        offset: at as u64,
                        zero_section_offset: zero_at as u64
                    }),
                    "{f} at {at}, chunk {chunk}"
                );
            }
            bytes[at] = saved;
        }
    }
}

/// Fixtures small or odd enough to split many ways in property tests.
const SPLIT_FIXTURES: &[&str] = &[
    "ipld/carv1-basic.car",
    "ipld/carv2-basic.car",
    "go-car/sample-rw-bs-v2.car",
    "go-car/sample-unixfs-v2.car",
    "go-car/cmd-simple-unixfs.car",
    "go-car/cmd-badsectionlength.car",
    "go-car/sample-corrupt-pragma.car",
    "gateway-conformance/path_gateway_dag-plain-json.car",
    "gateway-conformance/trustless_gateway_car-dir-with-dag-cbor-with-links.car",
];

fn raw_cid(code: Code, data: &[u8]) -> Cid {
    Cid::new_v1(0x55, code.digest(data))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any split of the input into chunks gives the same events and the same ending.
    #[test]
    fn chunk_splits_do_not_change_the_outcome(
        which in 0..SPLIT_FIXTURES.len(),
        lens in proptest::collection::vec(1usize..700, 1..40),
    ) {
        let bytes = fixture(SPLIT_FIXTURES[which]);
        prop_assert_eq!(decode_split(&bytes, &lens), decode(&bytes, bytes.len()));
    }

    /// Damaged inputs never panic and are chunking-invariant, errors and offsets included.
    #[test]
    fn damaged_inputs_are_chunking_invariant(
        which in 0..SPLIT_FIXTURES.len(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        lens in proptest::collection::vec(1usize..300, 1..10),
    ) {
        let mut bytes = fixture(SPLIT_FIXTURES[which]);
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let whole = decode(&bytes, bytes.len().max(1));
        prop_assert_eq!(decode_split(&bytes, &lens), whole);
    }

    /// encode_v1_header + encode_section round-trip through the decoder, in any chunking.
    #[test]
    fn encoded_cars_round_trip(
        roots in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 0..30),
        blocks in proptest::collection::vec(
            (prop::sample::select(vec![Code::Sha2_256, Code::Sha2_512, Code::Blake2b256, Code::Blake3_256]),
             proptest::collection::vec(any::<u8>(), 0..300)),
            0..20,
        ),
        lens in proptest::collection::vec(1usize..500, 1..10),
    ) {
        let roots: Vec<Cid> = roots.iter().map(|r| raw_cid(Code::Sha2_256, r)).collect();
        let blocks: Vec<(Cid, Vec<u8>)> =
            blocks.into_iter().map(|(code, data)| (raw_cid(code, &data), data)).collect();
        let mut file = encode_v1_header(&roots);
        let mut offsets = Vec::new();
        for (cid, data) in &blocks {
            offsets.push(file.len() as u64);
            encode_section(cid, data, &mut file);
        }

        let outcome = decode_split(&file, &lens);
        prop_assert_eq!(&outcome.result, &Ok(()));
        let (header, sections) = header_and_sections(&outcome);
        prop_assert_eq!(&header.roots, &roots);
        prop_assert_eq!(header.version, 1);
        prop_assert_eq!(sections.len(), blocks.len());
        for ((s, (cid, data)), offset) in sections.iter().zip(&blocks).zip(offsets) {
            prop_assert_eq!(&s.cid, cid);
            prop_assert_eq!(&s.data[..], &data[..]);
            prop_assert_eq!(s.section_offset, offset);
            prop_assert!(verify_block(&s.cid, &s.data).is_ok());
        }
    }
}
