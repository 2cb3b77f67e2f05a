//! Validation and bounded storage of the Kademlia DHT's value records.
//!
//! The IPFS DHT stores values under two namespaces only (../shared/specs/kad-dht.md, "Value
//! Storage and Retrieval"); everything else MUST be rejected:
//!
//! - `/ipns/<binary peer ID>`: a signed `IpnsEntry`, verified per
//!   ../shared/specs/ipns-record.md, "Record Verification" (see [`validate_ipns`]).
//! - `/pk/<binary peer ID>`: a protobuf-encoded public key that hashes to that peer ID
//!   (kad-dht.md, "Public Keys"; see [`validate_public_key`]).
//!
//! [`validate`] dispatches on the key, [`select`] picks the better of two valid records for one
//! key (ipns-record.md, "Protocol"/"Overview": the higher sequence wins), and [`RecordStore`]
//! keeps validated records within a record-count and byte budget.
//!
//! Key types: Ed25519 (MUST), RSA (SHOULD), Secp256k1 and ECDSA (MAY) all verify, through
//! `libp2p-identity` (the crate `libp2p::identity` re-exports) with its `rsa`, `secp256k1` and
//! `ecdsa` features on; they added about a minute to a cold build, mostly `k256`/`p256`.

mod cbor;
mod error;
mod ipns;
mod pk;
mod store;

use std::cmp::Ordering;
use std::time::SystemTime;

pub use cbor::MAX_DATA_DEPTH;
pub use error::RecordError;
pub use ipns::{
    IpnsEntry, IpnsRecord, MAX_IPNS_RECORD_SIZE, SIGNATURE_V2_PREFIX, ValidityType, sign_ipns,
    validate_ipns,
};
pub use pk::{MAX_PUBLIC_KEY_RECORD_SIZE, PublicKeyRecord, validate_public_key};
pub use store::{PutOutcome, RecordStore, StoreLimits};

/// Key prefix of IPNS records: `/ipns/` followed by the binary IPNS name (ipns-record.md,
/// "Routing Record").
pub const IPNS_PREFIX: &[u8] = b"/ipns/";

/// Key prefix of public-key records: `/pk/` followed by the binary peer ID (kad-dht.md, "Public
/// Keys").
pub const PK_PREFIX: &[u8] = b"/pk/";

/// Largest DHT record key accepted, in bytes. Real keys are a prefix plus a peer ID of at most
/// a few dozen bytes; the bound only caps what a hostile peer can make us hash and hold.
pub const MAX_KEY_SIZE: usize = 256;

/// Largest value [`validate`] accepts in any namespace, in bytes (10 KiB).
pub const MAX_RECORD_SIZE: usize = MAX_IPNS_RECORD_SIZE;

/// A record that passed [`validate`]: which namespace it belongs to, and its decoded fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValidRecord {
    /// A verified `/ipns/` record.
    Ipns(IpnsRecord),
    /// A verified `/pk/` record.
    PublicKey(PublicKeyRecord),
}

impl ValidRecord {
    /// The full DHT key this record was validated under (`/ipns/…` or `/pk/…`), in bytes.
    pub fn key(&self) -> Vec<u8> {
        let (prefix, id) = match self {
            Self::Ipns(record) => (IPNS_PREFIX, record.name()),
            Self::PublicKey(record) => (PK_PREFIX, record.peer_id()),
        };
        [prefix, id].concat()
    }

    /// The value bytes exactly as validated; what a GET_VALUE reply carries.
    pub fn raw(&self) -> &[u8] {
        match self {
            Self::Ipns(record) => record.raw(),
            Self::PublicKey(record) => record.raw(),
        }
    }

    /// When the record itself stops being valid: the IPNS EOL, or `None` for `/pk/` records,
    /// which carry no expiry of their own.
    pub fn eol(&self) -> Option<SystemTime> {
        match self {
            Self::Ipns(record) => Some(record.eol()),
            Self::PublicKey(_) => None,
        }
    }
}

/// Validates a DHT value record for `key` (bytes, at most [`MAX_KEY_SIZE`]) and `value` (bytes,
/// at most [`MAX_RECORD_SIZE`]) as of `now`.
///
/// Implements ../shared/specs/kad-dht.md, "Value Storage and Retrieval" (only `/ipns/` and
/// `/pk/`), with ../shared/specs/ipns-record.md, "Record Verification" for `/ipns/` and
/// kad-dht.md, "Public Keys" / "Validation" for `/pk/`.
///
/// # Errors
/// [`RecordError::KeyTooLarge`], [`RecordError::UnsupportedNamespace`], and whatever
/// [`validate_ipns`] or [`validate_public_key`] reports. Never panics, whatever the bytes.
pub fn validate(key: &[u8], value: &[u8], now: SystemTime) -> Result<ValidRecord, RecordError> {
    if key.len() > MAX_KEY_SIZE {
        return Err(RecordError::KeyTooLarge {
            size: key.len(),
            max: MAX_KEY_SIZE,
        });
    }
    if let Some(name) = key.strip_prefix(IPNS_PREFIX) {
        return validate_ipns(name, value, now).map(ValidRecord::Ipns);
    }
    if let Some(peer_id) = key.strip_prefix(PK_PREFIX) {
        return validate_public_key(peer_id, value).map(ValidRecord::PublicKey);
    }
    Err(RecordError::UnsupportedNamespace {
        namespace: namespace_of(key),
    })
}

/// The leading `/segment/` of a key, for error messages.
fn namespace_of(key: &[u8]) -> String {
    let end = key
        .iter()
        .skip(1)
        .position(|byte| *byte == b'/')
        .map_or(key.len(), |at| at + 2);
    error::shown(&key[..end])
}

/// Which of the two records given to [`select`] is preferred.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The first argument.
    First,
    /// The second argument.
    Second,
}

/// Picks the better of two valid records for the same key.
///
/// For IPNS (ipns-record.md, "Protocol"/"Overview": records are compared by sequence), following
/// the reference implementations (boxo's `selectRecord`, js-ipns's `ipnsSelector`): the higher
/// `Sequence` wins; on equal sequences the later EOL wins; on equal EOLs the bytewise greater
/// serialized record wins, so every node picks the same one. Identical records give
/// [`Choice::First`]. Two valid `/pk/` records for one key hold the same key, so
/// [`Choice::First`] is returned.
///
/// # Errors
/// [`RecordError::KeyMismatch`] when the records are for different keys.
pub fn select(first: &ValidRecord, second: &ValidRecord) -> Result<Choice, RecordError> {
    match (first, second) {
        (ValidRecord::Ipns(a), ValidRecord::Ipns(b)) if a.name() == b.name() => {
            let ordering = a
                .sequence()
                .cmp(&b.sequence())
                .then_with(|| a.eol().cmp(&b.eol()))
                .then_with(|| a.raw().cmp(b.raw()));
            Ok(if ordering == Ordering::Less {
                Choice::Second
            } else {
                Choice::First
            })
        }
        (ValidRecord::PublicKey(a), ValidRecord::PublicKey(b)) if a.peer_id() == b.peer_id() => {
            Ok(Choice::First)
        }
        _ => Err(RecordError::KeyMismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_is_the_first_segment() {
        assert_eq!(namespace_of(b"/v/abc"), "/v/");
        assert_eq!(namespace_of(b"/ipns"), "/ipns");
        assert_eq!(namespace_of(b""), "");
        assert_eq!(namespace_of(b"noslash"), "noslash");
    }

    #[test]
    fn other_namespaces_are_refused_by_name() {
        for key in [
            &b"/v/key"[..],
            b"/ipfs/x",
            b"/IPNS/x",
            b"ipns/x",
            b"",
            b"/pk",
        ] {
            let err = validate(key, b"value", SystemTime::UNIX_EPOCH).unwrap_err();
            assert!(
                matches!(err, RecordError::UnsupportedNamespace { .. }),
                "{key:?}: {err}"
            );
        }
    }

    #[test]
    fn oversized_keys_are_refused_before_anything_else() {
        let mut key = IPNS_PREFIX.to_vec();
        key.resize(MAX_KEY_SIZE + 1, 0);
        let err = validate(&key, b"", SystemTime::UNIX_EPOCH).unwrap_err();
        assert!(matches!(err, RecordError::KeyTooLarge { size, .. } if size == MAX_KEY_SIZE + 1));
    }
}
