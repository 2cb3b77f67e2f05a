//! The one error type of this crate.

use std::time::SystemTime;

/// Why a DHT value record was refused, or why the store could not take it.
///
/// Every variant names what is wrong; none of them is produced by a panic, whatever bytes
/// arrive from the network.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The key is not in the `/ipns/` or `/pk/` namespace (kad-dht.md, "Value Storage and
    /// Retrieval": records with other prefixes MUST be rejected). `namespace` is the key's
    /// first path segment (lossy UTF-8, at most 64 bytes shown).
    #[error("unsupported record namespace {namespace:?}: only /ipns/ and /pk/ are accepted")]
    UnsupportedNamespace {
        /// The key's leading segment, e.g. `"/foo/"`, shortened for display.
        namespace: String,
    },

    /// The key is longer than [`crate::MAX_KEY_SIZE`] bytes.
    #[error("record key is {size} bytes, more than the {max}-byte limit")]
    KeyTooLarge {
        /// Size of the key in bytes.
        size: usize,
        /// The limit in bytes.
        max: usize,
    },

    /// The value is larger than [`crate::MAX_RECORD_SIZE`] bytes (ipns-record.md, "Record Size
    /// Limit"; the same bound is applied to `/pk/` values).
    #[error("record value is {size} bytes, more than the {max}-byte limit")]
    RecordTooLarge {
        /// Size of the value in bytes.
        size: usize,
        /// The limit in bytes.
        max: usize,
    },

    /// The bytes after `/ipns/` or `/pk/` are not a binary peer ID (an identity or sha2-256
    /// multihash).
    #[error("record key does not hold a binary peer ID: {reason}")]
    InvalidName {
        /// What the multihash parser reported.
        reason: String,
    },

    /// The value is not a decodable `IpnsEntry` protobuf.
    #[error("IPNS record is not a valid IpnsEntry protobuf: {0}")]
    MalformedProtobuf(#[from] prost::DecodeError),

    /// `IpnsEntry.signatureV2` is absent or empty (ipns-record.md, "Record Verification", step 2).
    #[error("IPNS record has no signatureV2")]
    MissingSignatureV2,

    /// `IpnsEntry.data` is absent or empty (ipns-record.md, "Record Verification", step 2).
    #[error("IPNS record has no data field")]
    MissingData,

    /// The record carries no `pubKey` and the name is not an identity multihash, so there is no
    /// key to verify with (ipns-record.md, "Record Verification", step 3).
    #[error("IPNS record has no pubKey and the name does not inline a public key")]
    MissingPublicKey,

    /// A public key (the `pubKey` field, the key inlined in the name, or a `/pk/` value) is not
    /// a valid protobuf-encoded libp2p public key of a supported type.
    #[error("invalid public key: {0}")]
    InvalidPublicKey(#[from] libp2p_identity::DecodingError),

    /// The public key does not hash to the peer ID in the record's key.
    #[error("public key does not match the peer ID in the record key")]
    PublicKeyMismatch,

    /// `signatureV2` does not verify over `b"ipns-signature:" || data` with the record's key
    /// (ipns-record.md, "Record Verification", steps 5–6).
    #[error("IPNS signatureV2 does not verify")]
    InvalidSignature,

    /// `IpnsEntry.data` is not well-formed DAG-CBOR, is nested too deeply, or is not a map.
    #[error("IPNS data is not a valid DAG-CBOR map: {reason}")]
    MalformedData {
        /// What is wrong with the CBOR.
        reason: String,
    },

    /// A mandatory field of `IpnsEntry.data` is absent (ipns-record.md, "Record Fields").
    #[error("IPNS data has no {field} field")]
    MissingField {
        /// The DAG-CBOR key, e.g. `"Validity"`.
        field: &'static str,
    },

    /// A field of `IpnsEntry.data` has the wrong CBOR type or is outside its range.
    #[error("IPNS data field {field} is not {expected}")]
    WrongFieldType {
        /// The DAG-CBOR key, e.g. `"Sequence"`.
        field: &'static str,
        /// What was expected, e.g. `"an unsigned 64-bit integer"`.
        expected: &'static str,
    },

    /// `ValidityType` is not 0 (EOL), the only defined value (ipns-record.md, "Validity Type").
    #[error("unsupported IPNS ValidityType {0}: only 0 (EOL) is defined")]
    UnsupportedValidityType(u64),

    /// `Validity` is not an RFC 3339 timestamp (ipns-record.md, "Validity").
    #[error("IPNS Validity {value:?} is not an RFC 3339 timestamp")]
    InvalidValidity {
        /// The field as text (lossy UTF-8, at most 64 bytes shown).
        value: String,
    },

    /// The record's EOL is not after `now` (ipns-record.md, "Record Verification", step 8).
    #[error("IPNS record expired at {eol}")]
    Expired {
        /// The record's `Validity` text.
        eol: String,
    },

    /// A legacy V1 protobuf field differs from its signed copy in `data` (ipns-record.md,
    /// "Record Verification", step 7).
    #[error("IPNS V1 field {field} does not match data[{field}]")]
    V1Mismatch {
        /// The DAG-CBOR key whose protobuf copy differs, e.g. `"Value"`.
        field: &'static str,
    },

    /// [`crate::select`] was given records for two different keys.
    #[error("cannot select between records for different keys")]
    KeyMismatch,

    /// The store is at its record-count or byte limit and refuses a new key (or a larger
    /// replacement). Existing records are never evicted to make room.
    #[error("record store is full ({records} records, {bytes} bytes held)")]
    StoreFull {
        /// Records held.
        records: usize,
        /// Bytes (keys plus values) held.
        bytes: usize,
    },

    /// The record's expiry cannot be represented as a [`SystemTime`] on this platform.
    #[error("IPNS Validity {eol} is outside the representable time range")]
    TimeOutOfRange {
        /// The record's `Validity` text.
        eol: String,
    },
}

/// Shortens outside bytes for display in an error: lossy UTF-8, at most 64 bytes.
pub(crate) fn shown(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    let cut = &bytes[..bytes.len().min(MAX)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > MAX {
        text.push('…');
    }
    text
}

/// Converts seconds and nanoseconds since the Unix epoch (possibly negative seconds) into a
/// `SystemTime`, or `None` when the platform cannot represent it.
pub(crate) fn system_time(secs: i64, nanos: u32) -> Option<SystemTime> {
    use std::time::{Duration, UNIX_EPOCH};
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(secs.unsigned_abs(), nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))?
            .checked_add(Duration::from_nanos(u64::from(nanos)))
    }
}
