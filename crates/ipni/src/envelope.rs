//! The libp2p signed envelope (go-libp2p `core/record/envelope.go`, RFC 0002 "Signed
//! Envelopes"), as go-libipni uses it for advertisement signatures.
//!
//! Wire form: the protobuf `Envelope { public_key = 1 (a libp2p PublicKey message),
//! payload_type = 2, payload = 3, signature = 5 }`. The signature covers
//! `uvarint(len(domain)) ‖ domain ‖ uvarint(len(payload_type)) ‖ payload_type ‖
//! uvarint(len(payload)) ‖ payload`.

use libp2p_identity::{Keypair, PeerId, PublicKey};
use prost::Message as _;

use crate::{SignError, VerifyError};

/// The envelope protobuf. Fields are encoded in tag order, empty ones omitted (proto3), as
/// go's protobuf marshaller does.
#[derive(Clone, PartialEq, prost::Message)]
struct EnvelopeProto {
    #[prost(bytes = "vec", tag = "1")]
    public_key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    payload_type: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    payload: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    signature: Vec<u8>,
}

/// The bytes an envelope's signature covers.
fn signed_buffer(domain: &str, payload_type: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(domain.len() + payload_type.len() + payload.len() + 30);
    for field in [domain.as_bytes(), payload_type, payload] {
        let mut len = unsigned_varint::encode::usize_buffer();
        out.extend_from_slice(unsigned_varint::encode::usize(field.len(), &mut len));
        out.extend_from_slice(field);
    }
    out
}

/// Signs `payload` into a marshalled envelope (go-libp2p `record.Seal` + `Envelope.Marshal`).
pub(crate) fn seal(
    domain: &str,
    payload_type: &str,
    payload: &[u8],
    key: &Keypair,
) -> Result<Vec<u8>, SignError> {
    let signature = key.sign(&signed_buffer(domain, payload_type.as_bytes(), payload))?;
    Ok(EnvelopeProto {
        public_key: key.public().encode_protobuf(),
        payload_type: payload_type.as_bytes().to_vec(),
        payload: payload.to_vec(),
        signature,
    }
    .encode_to_vec())
}

/// Opens a marshalled envelope, checks its signature with the key it carries and its payload
/// type, and returns the signer and the payload (go-libp2p `record.ConsumeTypedEnvelope`).
pub(crate) fn consume(
    domain: &str,
    payload_type: &'static str,
    envelope: &[u8],
) -> Result<(PeerId, Vec<u8>), VerifyError> {
    if envelope.is_empty() {
        return Err(VerifyError::NoSignature);
    }
    let env = EnvelopeProto::decode(envelope)?;
    let key = PublicKey::try_decode_protobuf(&env.public_key)?;
    if !key.verify(
        &signed_buffer(domain, &env.payload_type, &env.payload),
        &env.signature,
    ) {
        return Err(VerifyError::BadSignature);
    }
    if env.payload_type != payload_type.as_bytes() {
        return Err(VerifyError::PayloadType {
            expected: payload_type,
            found: String::from_utf8_lossy(&env.payload_type)
                .chars()
                .take(64)
                .collect(),
        });
    }
    Ok((key.to_peer_id(), env.payload))
}
