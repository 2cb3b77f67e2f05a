//! `/pk/` records: a public key stored under its peer ID (../shared/specs/kad-dht.md,
//! "Public Keys" and its "Validation").

use libp2p_identity::{PeerId, PublicKey};

use crate::error::RecordError;

/// Largest `/pk/` value accepted, in bytes: the IPNS 10 KiB bound, which fits a protobuf-encoded
/// 8192-bit RSA key with room to spare.
pub const MAX_PUBLIC_KEY_RECORD_SIZE: usize = 10 * 1024;

/// A verified `/pk/` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKeyRecord {
    pub(crate) peer_id: Vec<u8>,
    pub(crate) raw: Vec<u8>,
    pub(crate) public_key: PublicKey,
}

impl PublicKeyRecord {
    /// The binary peer ID (multihash) after `/pk/` in the key.
    pub fn peer_id(&self) -> &[u8] {
        &self.peer_id
    }

    /// The protobuf-encoded public key, exactly as validated.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The decoded public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
}

/// Verifies `raw` as the `/pk/` record for `peer_id` (the bytes after `/pk/`): `raw` must be a
/// protobuf-encoded libp2p public key whose derived peer ID equals `peer_id` byte for byte
/// (kad-dht.md, "Public Keys", "Validation").
///
/// # Errors
/// [`RecordError::RecordTooLarge`] over [`MAX_PUBLIC_KEY_RECORD_SIZE`];
/// [`RecordError::InvalidName`] when `peer_id` is not a binary peer ID;
/// [`RecordError::InvalidPublicKey`] when `raw` does not decode;
/// [`RecordError::PublicKeyMismatch`] when it decodes to another peer's key.
pub fn validate_public_key(peer_id: &[u8], raw: &[u8]) -> Result<PublicKeyRecord, RecordError> {
    if raw.len() > MAX_PUBLIC_KEY_RECORD_SIZE {
        return Err(RecordError::RecordTooLarge {
            size: raw.len(),
            max: MAX_PUBLIC_KEY_RECORD_SIZE,
        });
    }
    let expected = PeerId::from_bytes(peer_id).map_err(|err| RecordError::InvalidName {
        reason: err.to_string(),
    })?;
    let public_key = PublicKey::try_decode_protobuf(raw)?;
    if public_key.to_peer_id() != expected {
        return Err(RecordError::PublicKeyMismatch);
    }
    Ok(PublicKeyRecord {
        peer_id: peer_id.to_vec(),
        raw: raw.to_vec(),
        public_key,
    })
}
