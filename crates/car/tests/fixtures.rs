//! Real CAR files made by other projects (testdata/fixtures, see its SOURCES.md): every valid one
//! decodes and verifies; every known-bad one is refused with the expected error.

use hydrant_car::{CarDecoder, CarError, Event, Limits, VerifyError, verify_block};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/fixtures");

/// Known-bad inputs (SOURCES.md). The two "missing block" CARs are valid CARs of incomplete DAGs.
const BAD: &[&str] = &[
    "go-car/cmd-badheaderlength.car",
    "go-car/cmd-badsectionlength.car",
    "go-car/sample-corrupt-pragma.car",
    "go-car/sample-v1-tailing-corrupt-section.car",
    "go-car/sample-v2-corrupt-data-and-index.car",
    "go-car/sample-rootless-v42.car",
];

#[derive(Debug)]
enum Failure {
    Car(CarError),
    Verify(u64, VerifyError),
}

fn decode(path: &str, chunk: usize) -> Result<(hydrant_car::CarHeader, usize), Failure> {
    let bytes = std::fs::read(format!("{FIXTURES}/{path}")).unwrap();
    let mut d = CarDecoder::new(Limits::default());
    let mut header = None;
    let mut blocks = 0;
    let mut handle = |e: Event| -> Result<(), Failure> {
        match e {
            Event::Header(h) => header = Some(h),
            Event::Section(s) => {
                verify_block(&s.cid, &s.data).map_err(|e| Failure::Verify(s.section_offset, e))?;
                assert_eq!(
                    &bytes[s.data_offset as usize..][..s.data.len()],
                    &s.data[..]
                );
                blocks += 1;
            }
        }
        Ok(())
    };
    for piece in bytes.chunks(chunk) {
        d.push(piece);
        while let Some(e) = d.next_event().map_err(Failure::Car)? {
            handle(e)?;
        }
    }
    d.finish().map_err(Failure::Car)?;
    Ok((header.expect("a header"), blocks))
}

fn all_fixtures() -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["go-car", "gateway-conformance", "ipld"] {
        for entry in std::fs::read_dir(format!("{FIXTURES}/{dir}")).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".car") {
                out.push(format!("{dir}/{name}"));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_valid_fixture_decodes_and_verifies() {
    let valid: Vec<String> = all_fixtures()
        .into_iter()
        .filter(|f| !BAD.contains(&f.as_str()))
        .collect();
    assert!(valid.len() >= 40, "fixtures missing: {}", valid.len());
    for f in &valid {
        let (header, blocks) =
            decode(f, 1 << 20).unwrap_or_else(|e| panic!("{f} should decode: {e:?}"));
        assert!(blocks > 0, "{f} has no blocks");
        let (again, blocks_again) = decode(f, 61).unwrap();
        assert_eq!(
            (header, blocks),
            (again, blocks_again),
            "{f}: chunking changed the result"
        );
    }
}

#[test]
fn ipld_fixture_roots_match_their_json_description() {
    for name in ["carv1-basic", "carv2-basic"] {
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{FIXTURES}/ipld/{name}.json")).unwrap(),
        )
        .unwrap();
        let expected: Vec<String> = json["header"]["roots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["/"].as_str().unwrap().to_string())
            .collect();
        let (header, blocks) = decode(&format!("ipld/{name}.car"), 100).unwrap();
        let roots: Vec<String> = header.roots.iter().map(ToString::to_string).collect();
        assert_eq!(roots, expected, "{name}");
        let sections = json["blocks"].as_array().map_or(0, Vec::len);
        if sections > 0 {
            assert_eq!(blocks, sections, "{name}");
        }
    }
}

#[test]
fn known_bad_fixtures_are_refused_with_the_right_error() {
    let check = |f: &str, ok: &dyn Fn(&Failure) -> bool| {
        let err = decode(f, 4096).expect_err(f);
        assert!(ok(&err), "{f}: unexpected error {err:?}");
        let msg = match &err {
            Failure::Car(e) => e.to_string(),
            Failure::Verify(offset, e) => format!("{e} at {offset}"),
        };
        assert!(
            msg.contains("byte") || msg.contains(" at "),
            "{f}: no offset in {msg}"
        );
    };
    check("go-car/cmd-badheaderlength.car", &|e| {
        matches!(e, Failure::Car(CarError::BadHeaderLength { offset: 0, .. }))
    });
    check("go-car/cmd-badsectionlength.car", &|e| {
        matches!(
            e,
            Failure::Car(CarError::BadSectionLength { .. } | CarError::Truncated { .. })
        )
    });
    // 16 bytes whose header declares 18: the header is cut short.
    check("go-car/sample-corrupt-pragma.car", &|e| {
        matches!(
            e,
            Failure::Car(CarError::Truncated {
                offset: 0,
                what: "the header"
            })
        )
    });
    check("go-car/sample-v1-tailing-corrupt-section.car", &|e| {
        matches!(
            e,
            Failure::Car(CarError::Truncated {
                what: "a section",
                ..
            })
        )
    });
    check("go-car/sample-v2-corrupt-data-and-index.car", &|e| {
        matches!(e, Failure::Car(_) | Failure::Verify(..))
    });
    check("go-car/sample-rootless-v42.car", &|e| {
        matches!(
            e,
            Failure::Car(CarError::UnsupportedVersion {
                version: 42,
                offset: 0
            })
        )
    });
}

#[test]
fn zero_length_section_ends_data_only_before_zero_padding() {
    for f in [
        "go-car/sample-v1-with-zero-len-section.car",
        "go-car/sample-v1-with-zero-len-section2.car",
    ] {
        decode(f, 1000).unwrap_or_else(|e| panic!("{f}: {e:?}"));
        // The same file with a non-zero byte in the padding is refused.
        let mut bytes = std::fs::read(format!("{FIXTURES}/{f}")).unwrap();
        let last = bytes.len() - 1;
        bytes[last] = 1;
        let mut d = CarDecoder::new(Limits::default());
        d.push(&bytes);
        let err = loop {
            match d.next_event() {
                Ok(Some(_)) => continue,
                Ok(None) => break d.finish().unwrap_err(),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(err, CarError::DataAfterZeroLengthSection { .. }),
            "{f}: {err:?}"
        );
    }
}
