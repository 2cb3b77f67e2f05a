//! `/ipns/` validation and `select`, against records signed in the test exactly as
//! ../shared/specs/ipns-record.md describes.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::*;
use hydrant_records::{
    Choice, IPNS_PREFIX, IpnsEntry, MAX_IPNS_RECORD_SIZE, RecordError, ValidRecord, select,
    validate,
};
use ipld_core::ipld::Ipld;
use prost::Message;

/// An edit applied to a signed entry.
type Mutation = Box<dyn Fn(&mut IpnsEntry)>;

fn ipns(result: Result<ValidRecord, RecordError>) -> hydrant_records::IpnsRecord {
    match result {
        Ok(ValidRecord::Ipns(record)) => record,
        other => panic!("expected a valid IPNS record, got {other:?}"),
    }
}

#[test]
fn v1_v2_ed25519_record_validates_and_exposes_signed_fields() {
    let key = ed25519(1);
    let mut fields = Fields::new(7, 3600);
    fields.ttl = 42_000_000_000;
    let raw = record(&key, &fields);
    let record = ipns(validate(&ipns_key(&key), &raw, now()));
    assert_eq!(record.value(), fields.value.as_slice());
    assert_eq!(record.sequence(), 7);
    assert_eq!(record.ttl(), Duration::from_secs(42));
    assert_eq!(record.raw(), raw.as_slice());
    assert_eq!(record.name(), peer_id(&key).to_bytes().as_slice());
    assert_eq!(
        record.eol().duration_since(UNIX_EPOCH).unwrap(),
        Duration::new(1_893_456_000 + 3600, 123_456_789)
    );
    assert_eq!(record.eol_text().as_bytes(), fields.validity.as_slice());
}

#[test]
fn data_is_canonical_dag_cbor_with_length_first_keys() {
    let data = data_cbor(&Fields::new(0, 60));
    // Map of 5, then the shortest key "TTL" first, as the spec's example shows.
    assert_eq!(data[0], 0xa5);
    assert_eq!(&data[1..5], b"\x63TTL");
}

#[test]
fn v2_only_record_validates() {
    let key = ed25519(2);
    let mut fields = Fields::new(1, 60);
    fields.v1 = false;
    let entry = entry(&key, &fields);
    assert!(entry.value.is_none() && entry.signature_v1.is_none());
    ipns(validate(&ipns_key(&key), &entry.encode_to_vec(), now()));
}

#[test]
fn unknown_data_fields_are_ignored() {
    let key = ed25519(3);
    let mut fields = Fields::new(1, 60);
    fields
        .extra
        .insert("_custom".into(), Ipld::String("x".into()));
    ipns(validate(&ipns_key(&key), &record(&key, &fields), now()));
}

#[test]
fn every_key_type_verifies() {
    // Secp256k1 keys are inlined in the name; ECDSA and RSA ones are too big and need pubKey.
    for (label, key, pub_key) in [
        ("ed25519 with redundant pubKey", ed25519(4), true),
        ("secp256k1 inline", secp256k1_key(5), false),
        ("ecdsa", ecdsa_key(6), true),
        ("rsa", rsa_key(), true),
    ] {
        let mut fields = Fields::new(3, 60);
        fields.pub_key = pub_key;
        let result = validate(&ipns_key(&key), &record(&key, &fields), now());
        assert!(
            matches!(result, Ok(ValidRecord::Ipns(_))),
            "{label}: {result:?}"
        );
    }
}

#[test]
fn hashed_name_without_pub_key_is_refused() {
    for key in [ecdsa_key(7), rsa_key()] {
        let err = validate(&ipns_key(&key), &record(&key, &Fields::new(1, 60)), now()).unwrap_err();
        assert!(matches!(err, RecordError::MissingPublicKey), "{err}");
    }
}

#[test]
fn tampering_with_any_signed_field_breaks_the_signature() {
    let key = ed25519(8);
    let fields = Fields::new(5, 3600);
    let good = entry(&key, &fields);
    let tampered: Vec<(&str, Fields)> = vec![
        (
            "Value",
            Fields {
                value: b"/ipfs/evil".to_vec(),
                ..fields.clone()
            },
        ),
        (
            "Validity",
            Fields {
                validity: eol_text(7200, 0).into_bytes(),
                ..fields.clone()
            },
        ),
        (
            "Sequence",
            Fields {
                sequence: 6,
                ..fields.clone()
            },
        ),
        (
            "TTL",
            Fields {
                ttl: 1,
                ..fields.clone()
            },
        ),
        (
            "ValidityType",
            Fields {
                validity_type: 1,
                ..fields.clone()
            },
        ),
    ];
    for (field, changed) in tampered {
        let mut forged = good.clone();
        forged.data = Some(data_cbor(&changed));
        let err = validate(&ipns_key(&key), &forged.encode_to_vec(), now()).unwrap_err();
        assert!(
            matches!(err, RecordError::InvalidSignature),
            "{field}: {err}"
        );
    }
    let mut forged = good.clone();
    if let Some(sig) = forged.signature_v2.as_mut() {
        sig[0] ^= 1;
    }
    let err = validate(&ipns_key(&key), &forged.encode_to_vec(), now()).unwrap_err();
    assert!(matches!(err, RecordError::InvalidSignature), "{err}");
}

#[test]
fn record_signed_by_another_key_is_refused() {
    let owner = ed25519(9);
    let other = ed25519(10);
    let raw = record(&other, &Fields::new(1, 60));
    let err = validate(&ipns_key(&owner), &raw, now()).unwrap_err();
    assert!(matches!(err, RecordError::InvalidSignature), "{err}");

    // A pubKey that does not hash to the name is refused before any signature check.
    let mut fields = Fields::new(1, 60);
    fields.pub_key = true;
    let err = validate(&ipns_key(&owner), &record(&other, &fields), now()).unwrap_err();
    assert!(matches!(err, RecordError::PublicKeyMismatch), "{err}");

    let ecdsa_owner = ecdsa_key(11);
    let err = validate(
        &ipns_key(&ecdsa_owner),
        &record(&ecdsa_key(12), &fields),
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, RecordError::PublicKeyMismatch), "{err}");
}

#[test]
fn v1_fields_must_match_data() {
    let key = ed25519(13);
    let good = entry(&key, &Fields::new(5, 3600));
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "Value",
            Box::new(|e| e.value = Some(b"/ipfs/other".to_vec())),
        ),
        (
            "Validity",
            Box::new(|e| e.validity = Some(eol_text(99, 0).into_bytes())),
        ),
        ("ValidityType", Box::new(|e| e.validity_type = Some(1))),
        ("Sequence", Box::new(|e| e.sequence = Some(4))),
        ("TTL", Box::new(|e| e.ttl = Some(7))),
        // With V1 present, a missing copy counts as empty/zero, as in boxo.
        ("Validity", Box::new(|e| e.validity = None)),
        ("Sequence", Box::new(|e| e.sequence = None)),
    ];
    for (field, mutate) in cases {
        let mut forged = good.clone();
        mutate(&mut forged);
        let err = validate(&ipns_key(&key), &forged.encode_to_vec(), now()).unwrap_err();
        assert!(
            matches!(err, RecordError::V1Mismatch { field: f } if f == field),
            "{field}: {err}"
        );
    }
    // signatureV1 itself is never verified: a broken one does not matter.
    let mut broken_v1 = good.clone();
    broken_v1.signature_v1 = Some(vec![0; 64]);
    ipns(validate(&ipns_key(&key), &broken_v1.encode_to_vec(), now()));
}

#[test]
fn expired_records_are_refused() {
    let key = ed25519(14);
    for offset in [-3600, -1] {
        let err = validate(
            &ipns_key(&key),
            &record(&key, &Fields::new(1, offset)),
            now(),
        )
        .unwrap_err();
        assert!(
            matches!(err, RecordError::Expired { .. }),
            "{offset}: {err}"
        );
    }
    // EOL exactly at `now` is not "bigger than the current time".
    let mut fields = Fields::new(1, 0);
    fields.validity = eol_text(0, 0).into_bytes();
    let err = validate(&ipns_key(&key), &record(&key, &fields), now()).unwrap_err();
    assert!(matches!(err, RecordError::Expired { .. }), "{err}");
    // One nanosecond later is still valid.
    fields.validity = eol_text(0, 1).into_bytes();
    ipns(validate(&ipns_key(&key), &record(&key, &fields), now()));
}

#[test]
fn malformed_signed_data_gives_named_errors() {
    let key = ed25519(15);
    let base = Fields::new(1, 60);
    let sign_data = |data: Vec<u8>| {
        let mut entry = IpnsEntry {
            signature_v2: Some(
                key.sign(&[hydrant_records::SIGNATURE_V2_PREFIX, &data].concat())
                    .unwrap(),
            ),
            data: Some(data),
            ..IpnsEntry::default()
        };
        entry.pub_key = None;
        validate(&ipns_key(&key), &entry.encode_to_vec(), now())
    };

    let err = sign_data(b"\xff not cbor".to_vec()).unwrap_err();
    assert!(matches!(err, RecordError::MalformedData { .. }), "{err}");

    let err = sign_data(serde_ipld_dagcbor::to_vec(&Ipld::List(vec![])).unwrap()).unwrap_err();
    assert!(matches!(err, RecordError::MalformedData { .. }), "{err}");

    let mut deep = vec![0x81u8; 5_000];
    deep.push(0);
    let err = sign_data(deep).unwrap_err();
    assert!(matches!(err, RecordError::MalformedData { .. }), "{err}");

    for field in ["Value", "Validity", "ValidityType", "Sequence", "TTL"] {
        let full = data_cbor(&base);
        let Ipld::Map(mut map) = serde_ipld_dagcbor::from_slice::<Ipld>(&full).unwrap() else {
            unreachable!()
        };
        map.remove(field);
        let err =
            sign_data(serde_ipld_dagcbor::to_vec(&Ipld::Map(map.clone())).unwrap()).unwrap_err();
        assert!(
            matches!(err, RecordError::MissingField { field: f } if f == field),
            "{err}"
        );

        map.insert(field.to_owned(), Ipld::String("wrong".into()));
        let err =
            sign_data(serde_ipld_dagcbor::to_vec(&Ipld::Map(map.clone())).unwrap()).unwrap_err();
        assert!(
            matches!(err, RecordError::WrongFieldType { field: f, .. } if f == field),
            "{err}"
        );
    }

    let negative = {
        let Ipld::Map(mut map) = serde_ipld_dagcbor::from_slice::<Ipld>(&data_cbor(&base)).unwrap()
        else {
            unreachable!()
        };
        map.insert("Sequence".into(), Ipld::Integer(-1));
        serde_ipld_dagcbor::to_vec(&Ipld::Map(map)).unwrap()
    };
    let err = sign_data(negative).unwrap_err();
    assert!(
        matches!(
            err,
            RecordError::WrongFieldType {
                field: "Sequence",
                ..
            }
        ),
        "{err}"
    );

    let mut v2_only = base.clone();
    v2_only.v1 = false;
    v2_only.validity_type = 1;
    let err = sign_data(data_cbor(&v2_only)).unwrap_err();
    assert!(
        matches!(err, RecordError::UnsupportedValidityType(1)),
        "{err}"
    );

    v2_only.validity_type = 0;
    v2_only.validity = b"next tuesday".to_vec();
    let err = sign_data(data_cbor(&v2_only)).unwrap_err();
    assert!(matches!(err, RecordError::InvalidValidity { .. }), "{err}");
}

#[test]
fn missing_signature_or_data_is_refused() {
    let key = ed25519(16);
    let good = entry(&key, &Fields::new(1, 60));
    for (mutate, expected) in [
        (
            Box::new(|e: &mut IpnsEntry| e.signature_v2 = None) as Mutation,
            "sig",
        ),
        (
            Box::new(|e: &mut IpnsEntry| e.signature_v2 = Some(vec![])),
            "sig",
        ),
        (Box::new(|e: &mut IpnsEntry| e.data = None), "data"),
        (Box::new(|e: &mut IpnsEntry| e.data = Some(vec![])), "data"),
    ] {
        let mut forged = good.clone();
        mutate(&mut forged);
        let err = validate(&ipns_key(&key), &forged.encode_to_vec(), now()).unwrap_err();
        let ok = match expected {
            "sig" => matches!(err, RecordError::MissingSignatureV2),
            _ => matches!(err, RecordError::MissingData),
        };
        assert!(ok, "{expected}: {err}");
    }
    // An empty value is an IpnsEntry with nothing in it.
    let err = validate(&ipns_key(&key), b"", now()).unwrap_err();
    assert!(matches!(err, RecordError::MissingSignatureV2), "{err}");
    let err = validate(&ipns_key(&key), b"\x0a\xff", now()).unwrap_err();
    assert!(matches!(err, RecordError::MalformedProtobuf(_)), "{err}");
}

#[test]
fn bad_names_are_refused() {
    let raw = record(&ed25519(17), &Fields::new(1, 60));
    let mut trailing = ipns_key(&ed25519(17));
    trailing.push(0);
    for key in [
        IPNS_PREFIX.to_vec(),
        [IPNS_PREFIX, b"\x12\x20short"].concat(),
        trailing,
    ] {
        let err = validate(&key, &raw, now()).unwrap_err();
        assert!(
            matches!(err, RecordError::InvalidName { .. }),
            "{key:?}: {err}"
        );
    }
}

#[test]
fn size_limit_is_10_kib_inclusive() {
    let key = ed25519(18);
    let sized = |pad: usize| {
        let mut fields = Fields::new(1, 60);
        fields
            .extra
            .insert("_pad".into(), Ipld::Bytes(vec![7; pad]));
        record(&key, &fields)
    };
    let base = sized(0).len();
    let at_limit = (MAX_IPNS_RECORD_SIZE.saturating_sub(base + 16)..MAX_IPNS_RECORD_SIZE)
        .map(sized)
        .find(|raw| raw.len() == MAX_IPNS_RECORD_SIZE)
        .expect("some padding hits the limit exactly");
    ipns(validate(&ipns_key(&key), &at_limit, now()));

    let over = sized(MAX_IPNS_RECORD_SIZE);
    let err = validate(&ipns_key(&key), &over, now()).unwrap_err();
    assert!(
        matches!(err, RecordError::RecordTooLarge { size, max } if size == over.len() && max == MAX_IPNS_RECORD_SIZE),
        "{err}"
    );
}

#[test]
fn select_prefers_sequence_then_eol_then_bytes() {
    let key = ed25519(19);
    let name = ipns_key(&key);
    let valid = |fields: &Fields| validate(&name, &record(&key, fields), now()).unwrap();

    let old_long = valid(&Fields::new(1, 40_000));
    let new_short = valid(&Fields::new(2, 60));
    assert_eq!(select(&old_long, &new_short).unwrap(), Choice::Second);
    assert_eq!(select(&new_short, &old_long).unwrap(), Choice::First);

    let same_seq_later = valid(&Fields::new(2, 120));
    assert_eq!(select(&new_short, &same_seq_later).unwrap(), Choice::Second);
    assert_eq!(select(&same_seq_later, &new_short).unwrap(), Choice::First);

    // Same sequence and EOL, different value: the bytewise greater record wins either way round.
    let mut other = Fields::new(2, 120);
    other.value = b"/ipfs/bafkqaaa".to_vec();
    let twin = valid(&other);
    let greater_first = same_seq_later.raw() > twin.raw();
    let expected = if greater_first {
        Choice::First
    } else {
        Choice::Second
    };
    assert_eq!(select(&same_seq_later, &twin).unwrap(), expected);
    let flipped = if greater_first {
        Choice::Second
    } else {
        Choice::First
    };
    assert_eq!(select(&twin, &same_seq_later).unwrap(), flipped);

    // Identical records keep the first.
    assert_eq!(select(&twin, &twin.clone()).unwrap(), Choice::First);

    // Different names cannot be compared.
    let stranger_key = ed25519(20);
    let stranger = validate(
        &ipns_key(&stranger_key),
        &record(&stranger_key, &Fields::new(9, 60)),
        now(),
    )
    .unwrap();
    assert!(matches!(
        select(&twin, &stranger),
        Err(RecordError::KeyMismatch)
    ));
}
