//! Advertisement metadata: which transports serve the advertised content (ipni.md,
//! "Metadata"; go-libipni `metadata`).
//!
//! Metadata is a sequence of protocols sorted by multicodec code, each starting with its code
//! as an unsigned varint. Bitswap (0x0900) is the code alone; every other protocol go-libipni
//! knows (and its `Unknown`) continues with an unsigned-varint length and that many bytes;
//! the trustless IPFS gateway (0x0920) has an empty payload, so it is `a0 12 00`.

use crate::advertisement::MAX_METADATA_LEN;

/// `transport-bitswap`.
pub const TRANSPORT_BITSWAP: u64 = 0x0900;
/// `transport-graphsync-filecoinv1`.
pub const TRANSPORT_GRAPHSYNC_FILECOINV1: u64 = 0x0910;
/// `transport-ipfs-gateway-http`.
pub const TRANSPORT_IPFS_GATEWAY_HTTP: u64 = 0x0920;
/// `transport-filecoin-piece-http`.
pub const TRANSPORT_FILECOIN_PIECE_HTTP: u64 = 0x0930;

/// One protocol entry of the metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Bitswap: `80 12` (go-libipni `metadata.Bitswap`).
    Bitswap,
    /// The trustless IPFS HTTP gateway: `a0 12 00` (go-libipni `metadata.IpfsGatewayHttp`).
    IpfsGatewayHttp,
    /// Any other protocol, kept as go-libipni's `metadata.Unknown` keeps it.
    Other {
        /// Its multicodec code.
        code: u64,
        /// The bytes after the code: none, or a length and that many bytes.
        payload: Vec<u8>,
    },
}

/// Why metadata bytes could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// No protocol at all (go-libipni: "at least one transport must be specified").
    #[error("metadata names no transport")]
    Empty,
    /// More than [`MAX_METADATA_LEN`] bytes.
    #[error("metadata is {size} bytes, more than the {max}-byte limit")]
    TooLarge {
        /// Size in bytes.
        size: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A protocol code or length is not a valid unsigned varint.
    #[error("bad varint at byte {offset}")]
    Varint {
        /// Where the varint starts.
        offset: usize,
    },
    /// A protocol's payload ends early (or its length is missing).
    #[error("protocol {} (0x{code:x}) is truncated", code_name(*code).unwrap_or("unknown"))]
    Truncated {
        /// The protocol's code.
        code: u64,
    },
    /// The gateway protocol's payload is not empty.
    #[error("transport-ipfs-gateway-http carries a payload")]
    GatewayPayload,
}

/// The multicodec table name of a transport code this crate knows, `None` for others.
pub fn code_name(code: u64) -> Option<&'static str> {
    match code {
        TRANSPORT_BITSWAP => Some("transport-bitswap"),
        TRANSPORT_GRAPHSYNC_FILECOINV1 => Some("transport-graphsync-filecoinv1"),
        TRANSPORT_IPFS_GATEWAY_HTTP => Some("transport-ipfs-gateway-http"),
        TRANSPORT_FILECOIN_PIECE_HTTP => Some("transport-filecoin-piece-http"),
        0x01e0 => Some("http"),
        _ => None,
    }
}

impl Protocol {
    /// The protocol's multicodec code.
    pub fn code(&self) -> u64 {
        match self {
            Self::Bitswap => TRANSPORT_BITSWAP,
            Self::IpfsGatewayHttp => TRANSPORT_IPFS_GATEWAY_HTTP,
            Self::Other { code, .. } => *code,
        }
    }

    /// The protocol's multicodec name, `None` for codes this crate does not know.
    pub fn name(&self) -> Option<&'static str> {
        code_name(self.code())
    }
}

/// Reads an unsigned varint, refusing any that does not re-encode to the same bytes:
/// `unsigned-varint` accepts a 10-byte varint whose top bits overflow 64 bits, which
/// go-varint refuses (`ErrOverflow`); non-minimal forms are refused by both.
fn read_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (v, rest) = unsigned_varint::decode::u64(bytes).ok()?;
    let mut buf = unsigned_varint::encode::u64_buffer();
    let used = bytes.len() - rest.len();
    (unsigned_varint::encode::u64(v, &mut buf) == &bytes[..used]).then_some((v, rest))
}

fn push_varint(out: &mut Vec<u8>, v: u64) {
    let mut buf = unsigned_varint::encode::u64_buffer();
    out.extend_from_slice(unsigned_varint::encode::u64(v, &mut buf));
}

/// Encodes metadata as go-libipni's `Metadata.MarshalBinary`: protocols sorted by code
/// (stable), each as described in the module docs.
pub fn encode(protocols: &[Protocol]) -> Vec<u8> {
    let mut sorted: Vec<&Protocol> = protocols.iter().collect();
    sorted.sort_by_key(|p| p.code());
    let mut out = Vec::new();
    for p in sorted {
        push_varint(&mut out, p.code());
        match p {
            Protocol::Bitswap => {}
            Protocol::IpfsGatewayHttp => out.push(0),
            Protocol::Other { payload, .. } => out.extend_from_slice(payload),
        }
    }
    out
}

/// The metadata of a provider serving over Bitswap only: `80 12`.
pub fn bitswap() -> Vec<u8> {
    encode(&[Protocol::Bitswap])
}

/// The metadata of a provider serving the trustless gateway over HTTP only: `a0 12 00`.
pub fn ipfs_gateway_http() -> Vec<u8> {
    encode(&[Protocol::IpfsGatewayHttp])
}

/// Decodes metadata as go-libipni's `Metadata.UnmarshalBinary` with the default context:
/// Bitswap and the gateway are checked; other codes (named by [`Protocol::name`] when known)
/// are read as a length and that many bytes and kept as [`Protocol::Other`]. Go-libipni
/// additionally decodes graphsync's DAG-CBOR payload; this does not.
///
/// # Errors
///
/// [`MetadataError`] naming the failing protocol code; never panics.
pub fn decode(bytes: &[u8]) -> Result<Vec<Protocol>, MetadataError> {
    if bytes.len() > MAX_METADATA_LEN {
        return Err(MetadataError::TooLarge {
            size: bytes.len(),
            max: MAX_METADATA_LEN,
        });
    }
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let offset = bytes.len() - rest.len();
        let (code, after) = read_varint(rest).ok_or(MetadataError::Varint { offset })?;
        rest = after;
        if code == TRANSPORT_BITSWAP {
            out.push(Protocol::Bitswap);
            continue;
        }
        let len_offset = bytes.len() - rest.len();
        let len_error = if rest.is_empty() {
            MetadataError::Truncated { code }
        } else {
            MetadataError::Varint { offset: len_offset }
        };
        let (len, after) = read_varint(rest).ok_or(len_error)?;
        let len = usize::try_from(len).map_err(|_| MetadataError::Truncated { code })?;
        if after.len() < len {
            return Err(MetadataError::Truncated { code });
        }
        let payload_end = (rest.len() - after.len()) + len;
        if code == TRANSPORT_IPFS_GATEWAY_HTTP {
            if len != 0 {
                return Err(MetadataError::GatewayPayload);
            }
            out.push(Protocol::IpfsGatewayHttp);
        } else {
            out.push(Protocol::Other {
                code,
                payload: rest[..payload_end].to_vec(),
            });
        }
        rest = &rest[payload_end..];
    }
    if out.is_empty() {
        return Err(MetadataError::Empty);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        assert_eq!(bitswap(), [0x80, 0x12]);
        assert_eq!(ipfs_gateway_http(), [0xa0, 0x12, 0x00]);
        assert_eq!(
            encode(&[Protocol::IpfsGatewayHttp, Protocol::Bitswap]),
            [0x80, 0x12, 0xa0, 0x12, 0x00]
        );
    }

    #[test]
    fn round_trip_and_unknown() {
        let graphsync = Protocol::Other {
            code: TRANSPORT_GRAPHSYNC_FILECOINV1,
            payload: vec![2, 0xa0, 0xf5],
        };
        let all = vec![
            Protocol::Bitswap,
            graphsync.clone(),
            Protocol::IpfsGatewayHttp,
        ];
        assert_eq!(decode(&encode(&all)).unwrap(), all);
        assert_eq!(graphsync.name(), Some("transport-graphsync-filecoinv1"));
        // The web3.storage fixtures' `gID0AQ`: code 0x3d0000 with no length after it.
        let err = decode(&[0x80, 0x80, 0xf4, 0x01]).unwrap_err();
        assert_eq!(err, MetadataError::Truncated { code: 0x3d_0000 });
        assert_eq!(err.to_string(), "protocol unknown (0x3d0000) is truncated");
        assert_eq!(decode(&[]), Err(MetadataError::Empty));
        assert_eq!(
            decode(&[0xa0, 0x12, 0x01, 0x00]),
            Err(MetadataError::GatewayPayload)
        );
    }
}
