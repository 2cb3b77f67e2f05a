//! `/ipns/` records: the `IpnsEntry` protobuf and its verification
//! (../shared/specs/ipns-record.md, "Record Serialization Format" and "Record Verification").

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use ipld_core::ipld::Ipld;
use libp2p_identity::{PeerId, PublicKey};

use crate::cbor::{MAX_DATA_DEPTH, check_well_formed};
use crate::error::{RecordError, shown, system_time};

/// Largest serialized `IpnsEntry` accepted, in bytes: 10 KiB (ipns-record.md, "Record Size
/// Limit").
pub const MAX_IPNS_RECORD_SIZE: usize = 10 * 1024;

/// Prefix of the bytes signed by `signatureV2` (ipns-record.md, "Record Creation", step 5).
pub const SIGNATURE_V2_PREFIX: &[u8] = b"ipns-signature:";

/// Multihash code of the identity hash, which inlines small public keys in names.
const IDENTITY_MULTIHASH: u64 = 0x00;

/// `IpnsEntry.validityType` (ipns-record.md, "Record Serialization Format").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ValidityType {
    /// The record is valid until the RFC 3339 time in `validity`.
    Eol = 0,
}

/// The `IpnsEntry` protobuf message, field for field (ipns-record.md, "Record Serialization
/// Format"). Fields 1–6 are the legacy V1 copies; 8 and 9 are mandatory in practice.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IpnsEntry {
    /// Legacy V1 copy of `data[Value]`.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub value: Option<Vec<u8>>,
    /// Legacy V1 signature; never used for verification.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub signature_v1: Option<Vec<u8>>,
    /// Legacy V1 copy of `data[ValidityType]`.
    #[prost(enumeration = "ValidityType", optional, tag = "3")]
    pub validity_type: Option<i32>,
    /// Legacy V1 copy of `data[Validity]`.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub validity: Option<Vec<u8>>,
    /// Legacy V1 copy of `data[Sequence]`.
    #[prost(uint64, optional, tag = "5")]
    pub sequence: Option<u64>,
    /// Legacy V1 copy of `data[TTL]`, in nanoseconds.
    #[prost(uint64, optional, tag = "6")]
    pub ttl: Option<u64>,
    /// Protobuf-encoded libp2p public key, for names that do not inline theirs.
    #[prost(bytes = "vec", optional, tag = "7")]
    pub pub_key: Option<Vec<u8>>,
    /// Signature over `b"ipns-signature:" || data`.
    #[prost(bytes = "vec", optional, tag = "8")]
    pub signature_v2: Option<Vec<u8>>,
    /// DAG-CBOR map holding `Value`, `Validity`, `ValidityType`, `Sequence`, `TTL`.
    #[prost(bytes = "vec", optional, tag = "9")]
    pub data: Option<Vec<u8>>,
}

/// A verified IPNS record: the fields of its signed `data`, plus the bytes it arrived as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpnsRecord {
    pub(crate) name: Vec<u8>,
    pub(crate) raw: Vec<u8>,
    pub(crate) value: Vec<u8>,
    pub(crate) sequence: u64,
    pub(crate) ttl: Duration,
    pub(crate) eol: SystemTime,
    pub(crate) eol_text: String,
}

impl IpnsRecord {
    /// The IPNS name: the binary peer ID (multihash) after `/ipns/` in the key.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The serialized `IpnsEntry`, exactly as validated (at most 10 KiB).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The signed `data[Value]`, normally a content path such as `/ipfs/<cid>`.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The signed `data[Sequence]`.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The signed `data[TTL]` (a caching hint; the spec counts it in nanoseconds).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The signed `data[Validity]` as a time: the record is invalid from this instant on.
    pub fn eol(&self) -> SystemTime {
        self.eol
    }

    /// The signed `data[Validity]` text, RFC 3339.
    pub fn eol_text(&self) -> &str {
        &self.eol_text
    }
}

/// Creates a signed IPNS record for the name of `key` pointing at `value` (normally
/// `/ipfs/<cid>`): `sequence`, valid until `eol` (written as RFC 3339 with nanoseconds, UTC),
/// caching hint `ttl`. Follows ../shared/specs/ipns-record.md, "Record Creation" (V2 signature
/// over the DAG-CBOR `data`) and also writes the V1 fields and `signatureV1` as boxo does, so
/// older readers accept it. RSA keys, whose peer IDs do not inline the key, get `pubKey`.
///
/// Returns the serialized `IpnsEntry` (what `PUT /routing/v1/ipns/{name}` and DHT PUT_VALUE
/// carry), or `None` when `key` cannot sign or `eol` is outside RFC 3339's range.
pub fn sign_ipns(
    key: &libp2p_identity::Keypair,
    value: &[u8],
    sequence: u64,
    eol: SystemTime,
    ttl: Duration,
) -> Option<Vec<u8>> {
    let eol: chrono::DateTime<chrono::Utc> = eol.into();
    let validity = eol
        .format("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string()
        .into_bytes();
    let ttl = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
    let data = BTreeMap::from([
        ("Value".to_owned(), Ipld::Bytes(value.to_vec())),
        ("Validity".to_owned(), Ipld::Bytes(validity.clone())),
        (
            "ValidityType".to_owned(),
            Ipld::Integer(ValidityType::Eol as i128),
        ),
        ("Sequence".to_owned(), Ipld::Integer(i128::from(sequence))),
        ("TTL".to_owned(), Ipld::Integer(i128::from(ttl))),
    ]);
    let data = serde_ipld_dagcbor::to_vec(&Ipld::Map(data)).ok()?;
    let signature_v2 = key.sign(&[SIGNATURE_V2_PREFIX, &data].concat()).ok()?;
    // value || validity || "EOL", as go-ipns and js-ipns signed V1.
    let signature_v1 = key.sign(&[value, &validity, b"EOL"].concat()).ok()?;
    let public = key.public();
    let inlined = {
        let peer_id = public.to_peer_id();
        let multihash: &multihash::Multihash<64> = peer_id.as_ref();
        multihash.code() == IDENTITY_MULTIHASH
    };
    let entry = IpnsEntry {
        value: Some(value.to_vec()),
        signature_v1: Some(signature_v1),
        validity_type: Some(ValidityType::Eol as i32),
        validity: Some(validity),
        sequence: Some(sequence),
        ttl: Some(ttl),
        pub_key: (!inlined).then(|| public.encode_protobuf()),
        signature_v2: Some(signature_v2),
        data: Some(data),
    };
    Some(prost::Message::encode_to_vec(&entry))
}

/// The five mandatory fields of `IpnsEntry.data`, decoded.
struct SignedData {
    value: Vec<u8>,
    validity: Vec<u8>,
    validity_type: u64,
    sequence: u64,
    ttl: u64,
}

/// Verifies `raw` as the IPNS record for `name` (the binary peer ID after `/ipns/`), as of `now`.
///
/// Implements ../shared/specs/ipns-record.md, "Record Verification", steps 1–8, with one
/// deliberate reordering: the signature (steps 5–6) is checked before `data` is decoded
/// (step 4), so unsigned bytes never reach the CBOR decoder. The set of accepted records is
/// the same. All five `data` fields are required ("Record Fields": implementations MUST include
/// them); V1 protobuf fields, when `signatureV1` or `value` is present, must equal their `data`
/// copies, an absent one counting as empty/zero as in the reference implementation (boxo).
///
/// # Errors
/// [`RecordError::RecordTooLarge`] over 10 KiB; [`RecordError::InvalidName`] when `name` is not
/// a peer ID; [`RecordError::MalformedProtobuf`]; [`RecordError::MissingSignatureV2`],
/// [`RecordError::MissingData`]; [`RecordError::MissingPublicKey`],
/// [`RecordError::InvalidPublicKey`], [`RecordError::PublicKeyMismatch`];
/// [`RecordError::InvalidSignature`]; [`RecordError::MalformedData`],
/// [`RecordError::MissingField`], [`RecordError::WrongFieldType`];
/// [`RecordError::V1Mismatch`]; [`RecordError::UnsupportedValidityType`],
/// [`RecordError::InvalidValidity`], [`RecordError::TimeOutOfRange`],
/// [`RecordError::Expired`].
pub fn validate_ipns(name: &[u8], raw: &[u8], now: SystemTime) -> Result<IpnsRecord, RecordError> {
    // Step 1: size before parsing.
    if raw.len() > MAX_IPNS_RECORD_SIZE {
        return Err(RecordError::RecordTooLarge {
            size: raw.len(),
            max: MAX_IPNS_RECORD_SIZE,
        });
    }
    let peer_id = PeerId::from_bytes(name).map_err(|err| RecordError::InvalidName {
        reason: err.to_string(),
    })?;
    let entry = <IpnsEntry as prost::Message>::decode(raw)?;

    // Step 2.
    let signature = entry
        .signature_v2
        .as_deref()
        .filter(|sig| !sig.is_empty())
        .ok_or(RecordError::MissingSignatureV2)?;
    let data = entry
        .data
        .as_deref()
        .filter(|data| !data.is_empty())
        .ok_or(RecordError::MissingData)?;

    // Step 3.
    let public_key = extract_public_key(&entry, &peer_id)?;

    // Steps 5–6.
    let mut signed = Vec::with_capacity(SIGNATURE_V2_PREFIX.len() + data.len());
    signed.extend_from_slice(SIGNATURE_V2_PREFIX);
    signed.extend_from_slice(data);
    if !public_key.verify(&signed, signature) {
        return Err(RecordError::InvalidSignature);
    }

    // Step 4.
    let fields = decode_data(data)?;

    // Step 7.
    if entry.signature_v1.is_some() || entry.value.is_some() {
        check_v1_matches(&entry, &fields)?;
    }

    // Step 8.
    if fields.validity_type != ValidityType::Eol as u64 {
        return Err(RecordError::UnsupportedValidityType(fields.validity_type));
    }
    let eol_text = std::str::from_utf8(&fields.validity)
        .map_err(|_| RecordError::InvalidValidity {
            value: shown(&fields.validity),
        })?
        .to_owned();
    let eol = parse_rfc3339(&eol_text)?;
    if eol <= now {
        return Err(RecordError::Expired { eol: eol_text });
    }

    Ok(IpnsRecord {
        name: name.to_vec(),
        raw: raw.to_vec(),
        value: fields.value,
        sequence: fields.sequence,
        ttl: Duration::from_nanos(fields.ttl),
        eol,
        eol_text,
    })
}

/// ipns-record.md, "Record Verification", step 3: `pubKey` when present (it must hash to the
/// name, as in boxo's `ExtractPublicKey`), otherwise the key inlined in an identity-multihash
/// name.
fn extract_public_key(entry: &IpnsEntry, peer_id: &PeerId) -> Result<PublicKey, RecordError> {
    if let Some(encoded) = entry.pub_key.as_deref().filter(|key| !key.is_empty()) {
        let key = PublicKey::try_decode_protobuf(encoded)?;
        if key.to_peer_id() != *peer_id {
            return Err(RecordError::PublicKeyMismatch);
        }
        return Ok(key);
    }
    let multihash: &multihash::Multihash<64> = peer_id.as_ref();
    if multihash.code() != IDENTITY_MULTIHASH {
        return Err(RecordError::MissingPublicKey);
    }
    Ok(PublicKey::try_decode_protobuf(multihash.digest())?)
}

/// Decodes `IpnsEntry.data` after a bounded well-formedness check (see [`crate::cbor`]).
fn decode_data(data: &[u8]) -> Result<SignedData, RecordError> {
    check_well_formed(data, MAX_DATA_DEPTH)
        .map_err(|reason| RecordError::MalformedData { reason })?;
    let document: Ipld =
        serde_ipld_dagcbor::from_slice(data).map_err(|err| RecordError::MalformedData {
            reason: err.to_string(),
        })?;
    let Ipld::Map(map) = document else {
        return Err(RecordError::MalformedData {
            reason: "the top-level item is not a map".to_owned(),
        });
    };
    Ok(SignedData {
        value: bytes_field(&map, "Value")?,
        validity: bytes_field(&map, "Validity")?,
        validity_type: u64_field(&map, "ValidityType")?,
        sequence: u64_field(&map, "Sequence")?,
        ttl: u64_field(&map, "TTL")?,
    })
}

fn bytes_field(map: &BTreeMap<String, Ipld>, field: &'static str) -> Result<Vec<u8>, RecordError> {
    match map.get(field) {
        None => Err(RecordError::MissingField { field }),
        Some(Ipld::Bytes(bytes)) => Ok(bytes.clone()),
        Some(_) => Err(RecordError::WrongFieldType {
            field,
            expected: "a byte string",
        }),
    }
}

fn u64_field(map: &BTreeMap<String, Ipld>, field: &'static str) -> Result<u64, RecordError> {
    match map.get(field) {
        None => Err(RecordError::MissingField { field }),
        Some(Ipld::Integer(int)) => u64::try_from(*int).map_err(|_| RecordError::WrongFieldType {
            field,
            expected: "an unsigned 64-bit integer",
        }),
        Some(_) => Err(RecordError::WrongFieldType {
            field,
            expected: "an unsigned 64-bit integer",
        }),
    }
}

/// ipns-record.md, "Record Verification", step 7.
fn check_v1_matches(entry: &IpnsEntry, fields: &SignedData) -> Result<(), RecordError> {
    if entry.value.as_deref().unwrap_or_default() != fields.value.as_slice() {
        return Err(RecordError::V1Mismatch { field: "Value" });
    }
    if entry.validity.as_deref().unwrap_or_default() != fields.validity.as_slice() {
        return Err(RecordError::V1Mismatch { field: "Validity" });
    }
    // An enum read from the wire is an i32; a negative one can never match.
    let v1_type = u64::try_from(entry.validity_type.unwrap_or_default()).ok();
    if v1_type != Some(fields.validity_type) {
        return Err(RecordError::V1Mismatch {
            field: "ValidityType",
        });
    }
    if entry.sequence.unwrap_or_default() != fields.sequence {
        return Err(RecordError::V1Mismatch { field: "Sequence" });
    }
    if entry.ttl.unwrap_or_default() != fields.ttl {
        return Err(RecordError::V1Mismatch { field: "TTL" });
    }
    Ok(())
}

/// Parses an RFC 3339 timestamp with up to nanosecond precision (ipns-record.md, "Validity").
fn parse_rfc3339(text: &str) -> Result<SystemTime, RecordError> {
    let parsed =
        chrono::DateTime::parse_from_rfc3339(text).map_err(|_| RecordError::InvalidValidity {
            value: shown(text.as_bytes()),
        })?;
    system_time(parsed.timestamp(), parsed.timestamp_subsec_nanos()).ok_or_else(|| {
        RecordError::TimeOutOfRange {
            eol: text.to_owned(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn rfc3339_keeps_nanoseconds_and_offsets() {
        let t = parse_rfc3339("1970-01-01T00:00:01.000000001Z").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap(), Duration::new(1, 1));
        let offset = parse_rfc3339("1970-01-01T01:00:01+01:00").unwrap();
        assert_eq!(
            offset.duration_since(UNIX_EPOCH).unwrap(),
            Duration::new(1, 0)
        );
        let before_epoch = parse_rfc3339("1969-12-31T23:59:59.5Z").unwrap();
        assert_eq!(
            UNIX_EPOCH.duration_since(before_epoch).unwrap(),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn signed_records_validate_with_their_fields() {
        let key = libp2p_identity::Keypair::ed25519_from_bytes([3; 32]).unwrap();
        let name = key.public().to_peer_id().to_bytes();
        let now = UNIX_EPOCH + Duration::from_secs(1_893_456_000);
        let eol = now + Duration::new(3600, 5);
        let ttl = Duration::from_secs(42);
        let raw = sign_ipns(&key, b"/ipfs/bafkqaaa", 7, eol, ttl).unwrap();
        let record = validate_ipns(&name, &raw, now).unwrap();
        assert_eq!(record.value(), b"/ipfs/bafkqaaa");
        assert_eq!(record.sequence(), 7);
        assert_eq!(record.ttl(), ttl);
        assert_eq!(record.eol(), eol);
        let other = libp2p_identity::Keypair::ed25519_from_bytes([4; 32]).unwrap();
        let other_name = other.public().to_peer_id().to_bytes();
        assert!(validate_ipns(&other_name, &raw, now).is_err());
        assert!(matches!(
            validate_ipns(&name, &raw, eol),
            Err(RecordError::Expired { .. })
        ));
    }

    #[test]
    fn rfc3339_rejects_other_formats() {
        for text in [
            "",
            "2030-01-01",
            "2030-01-01T00:00:00",
            "tomorrow",
            "2030-13-01T00:00:00Z",
        ] {
            assert!(
                matches!(
                    parse_rfc3339(text),
                    Err(RecordError::InvalidValidity { .. })
                ),
                "{text:?} parsed"
            );
        }
    }
}
