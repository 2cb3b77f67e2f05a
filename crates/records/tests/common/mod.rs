//! Builders of real, signed records for the integration tests: every record is made the way
//! ../shared/specs/ipns-record.md, "Record Creation" (and "... with Legacy SignatureV1")
//! describes, with libp2p keys.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hydrant_records::{IPNS_PREFIX, IpnsEntry, PK_PREFIX, SIGNATURE_V2_PREFIX, ValidityType};
use ipld_core::ipld::Ipld;
use libp2p_identity::{Keypair, PeerId, ecdsa, secp256k1};
use prost::Message;

/// A fixed instant used as `now`: 2030-01-01T00:00:00Z.
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_893_456_000)
}

/// RFC 3339 text of `now() + offset_secs`, with nanoseconds, as Go's boxo writes it.
pub fn eol_text(offset_secs: i64, nanos: u32) -> String {
    let base = 1_893_456_000i64 + offset_secs;
    chrono::DateTime::from_timestamp(base, nanos)
        .expect("in range")
        .format("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string()
}

pub fn ed25519(seed: u8) -> Keypair {
    Keypair::ed25519_from_bytes([seed; 32]).expect("32-byte seed")
}

pub fn secp256k1_key(seed: u8) -> Keypair {
    let secret = secp256k1::SecretKey::try_from_bytes([seed; 32]).expect("valid scalar");
    secp256k1::Keypair::from(secret).into()
}

pub fn ecdsa_key(seed: u8) -> Keypair {
    let secret = ecdsa::SecretKey::try_from_bytes([seed; 32]).expect("valid scalar");
    ecdsa::Keypair::from(secret).into()
}

pub fn rsa_key() -> Keypair {
    let mut der = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/rsa-2048.pk8"
    ))
    .expect("testdata/rsa-2048.pk8");
    Keypair::rsa_from_pkcs8(&mut der).expect("PKCS#8 RSA key")
}

pub fn peer_id(key: &Keypair) -> PeerId {
    key.public().to_peer_id()
}

pub fn ipns_key(key: &Keypair) -> Vec<u8> {
    [IPNS_PREFIX, &peer_id(key).to_bytes()].concat()
}

pub fn pk_key(key: &Keypair) -> Vec<u8> {
    [PK_PREFIX, &peer_id(key).to_bytes()].concat()
}

/// The logical fields of a record, and how to package it.
#[derive(Clone, Debug)]
pub struct Fields {
    pub value: Vec<u8>,
    pub validity: Vec<u8>,
    pub validity_type: u64,
    pub sequence: u64,
    pub ttl: u64,
    /// Extra entries for the DAG-CBOR map.
    pub extra: BTreeMap<String, Ipld>,
    /// Write the V1 protobuf fields and signatureV1.
    pub v1: bool,
    /// Write `pubKey`.
    pub pub_key: bool,
}

impl Fields {
    pub fn new(sequence: u64, eol_offset_secs: i64) -> Self {
        Self {
            value: b"/ipfs/bafkqaddwgevxmmraojswg33smq".to_vec(),
            validity: eol_text(eol_offset_secs, 123_456_789).into_bytes(),
            validity_type: 0,
            sequence,
            ttl: 300_000_000_000,
            extra: BTreeMap::new(),
            v1: true,
            pub_key: false,
        }
    }
}

/// `IpnsEntry.data`: the DAG-CBOR map of the five fields plus extras (keys sorted by
/// serde_ipld_dagcbor in the canonical length-first order).
pub fn data_cbor(fields: &Fields) -> Vec<u8> {
    let mut map = fields.extra.clone();
    map.insert("Value".into(), Ipld::Bytes(fields.value.clone()));
    map.insert("Validity".into(), Ipld::Bytes(fields.validity.clone()));
    map.insert(
        "ValidityType".into(),
        Ipld::Integer(i128::from(fields.validity_type)),
    );
    map.insert(
        "Sequence".into(),
        Ipld::Integer(i128::from(fields.sequence)),
    );
    map.insert("TTL".into(), Ipld::Integer(i128::from(fields.ttl)));
    serde_ipld_dagcbor::to_vec(&Ipld::Map(map)).expect("encodable")
}

/// Signs and packages a record per "Record Creation" (plus the V1 steps when `fields.v1`).
pub fn entry(key: &Keypair, fields: &Fields) -> IpnsEntry {
    let data = data_cbor(fields);
    let signature_v2 = key
        .sign(&[SIGNATURE_V2_PREFIX, &data].concat())
        .expect("signable");
    let mut entry = IpnsEntry {
        signature_v2: Some(signature_v2),
        data: Some(data),
        ..IpnsEntry::default()
    };
    if fields.pub_key {
        entry.pub_key = Some(key.public().encode_protobuf());
    }
    if fields.v1 {
        entry.value = Some(fields.value.clone());
        entry.validity = Some(fields.validity.clone());
        entry.validity_type = Some(ValidityType::Eol as i32);
        entry.sequence = Some(fields.sequence);
        entry.ttl = Some(fields.ttl);
        // value || validity || string(validityType), as go-ipns and js-ipns wrote it.
        let v1 = [fields.value.as_slice(), &fields.validity, b"EOL"].concat();
        entry.signature_v1 = Some(key.sign(&v1).expect("signable"));
    }
    entry
}

pub fn record(key: &Keypair, fields: &Fields) -> Vec<u8> {
    entry(key, fields).encode_to_vec()
}
