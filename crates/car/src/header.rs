//! CAR headers: the CARv1 DAG-CBOR header (carv1.md "Header"), the CARv2 pragma and fixed
//! header (carv2.md "Pragma", "Header"), and the CARv1 header encoder.

use cid::Cid;
use ipld_core::ipld::Ipld;

use crate::error::CarError;
use crate::varint;

/// The 11-byte CARv2 pragma: varint(10) then DAG-CBOR `{"version": 2}` (carv2.md "Pragma").
pub(crate) const PRAGMA: [u8; 11] = [
    0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x02,
];
/// Length of the CARv2 pragma, bytes.
pub(crate) const PRAGMA_LEN: u64 = PRAGMA.len() as u64;
/// Length of the fixed CARv2 header that follows the pragma, bytes.
pub(crate) const V2_HEADER_LEN: usize = 40;
/// Offset of the `data_offset` field, bytes from the start of the pragma.
const DATA_OFFSET_FIELD: u64 = PRAGMA_LEN + 16;
/// Offset of the `data_size` field, bytes from the start of the pragma.
const DATA_SIZE_FIELD: u64 = PRAGMA_LEN + 24;
/// Offset of the `index_offset` field, bytes from the start of the pragma.
pub(crate) const INDEX_OFFSET_FIELD: u64 = PRAGMA_LEN + 32;
/// Largest offset or size accepted in a CARv2 header (as go-car: it must fit an `i64`).
const MAX_V2_FIELD: u64 = i64::MAX as u64;

/// The header of a CAR file, as emitted first by [`crate::CarDecoder`].
///
/// For a CARv1, `version` is 1 and `v2` is `None`. For a CARv2, `version` is 2, `v2` holds the
/// fixed CARv2 header and `roots` come from the CARv1 header inside the data payload.
/// `roots` may be empty: the spec asks writers for one or more roots but readers here accept
/// none (carv1.md "Number of roots"), as js-car does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarHeader {
    /// 1 or 2.
    pub version: u8,
    /// Root CIDs in header order, possibly empty.
    pub roots: Vec<Cid>,
    /// The CARv2 header, for a CARv2 file.
    pub v2: Option<V2Header>,
}

/// The fixed 40-byte CARv2 header that follows the pragma (carv2.md "Header").
///
/// All offsets are absolute bytes from the first byte of the pragma. The decoder has checked
/// that `data_offset >= 51`, that every field is at most `i64::MAX` (as go-car), and that
/// `index_offset` is 0 or at least `data_offset + data_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V2Header {
    /// The 16 characteristics bytes read big-endian, so that the spec's "left-most bit"
    /// (`fully-indexed`) is bit 127. Other bits are reserved; they are accepted and kept.
    pub characteristics: u128,
    /// Where the inner CARv1 payload starts, bytes.
    pub data_offset: u64,
    /// Length of the inner CARv1 payload, bytes.
    pub data_size: u64,
    /// Where the index starts, bytes; 0 when there is none.
    pub index_offset: u64,
}

impl V2Header {
    /// The `fully-indexed` characteristic bit (carv2.md "Characteristics").
    pub const FULLY_INDEXED: u128 = 1 << 127;

    /// One past the last byte of the data payload: `data_offset + data_size`, bytes.
    pub fn data_end(&self) -> u64 {
        // Both fields are at most i64::MAX (checked on decode), so this cannot overflow.
        self.data_offset.saturating_add(self.data_size)
    }

    /// Whether the file says it carries an index (`index_offset != 0`).
    pub fn has_index(&self) -> bool {
        self.index_offset != 0
    }

    /// Whether the `fully-indexed` characteristic is set.
    pub fn is_fully_indexed(&self) -> bool {
        self.characteristics & Self::FULLY_INDEXED != 0
    }

    /// Parses and checks the 40 bytes after the pragma.
    pub(crate) fn parse(bytes: &[u8; V2_HEADER_LEN]) -> Result<Self, CarError> {
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let mut ch = [0u8; 16];
        ch.copy_from_slice(&bytes[..16]);
        let header = V2Header {
            characteristics: u128::from_be_bytes(ch),
            data_offset: u64_at(16),
            data_size: u64_at(24),
            index_offset: u64_at(32),
        };
        for (value, field, name) in [
            (header.data_offset, DATA_OFFSET_FIELD, "data offset"),
            (header.data_size, DATA_SIZE_FIELD, "data size"),
            (header.index_offset, INDEX_OFFSET_FIELD, "index offset"),
        ] {
            if value > MAX_V2_FIELD {
                return Err(CarError::InvalidV2Header {
                    offset: field,
                    reason: format!("{name} {value} exceeds 2^63-1"),
                });
            }
        }
        let min = PRAGMA_LEN + V2_HEADER_LEN as u64;
        if header.data_offset < min {
            return Err(CarError::InvalidV2Header {
                offset: DATA_OFFSET_FIELD,
                reason: format!(
                    "data offset {} overlaps the pragma and header (minimum {min})",
                    header.data_offset
                ),
            });
        }
        if header.has_index() && header.index_offset < header.data_end() {
            return Err(CarError::InvalidV2Header {
                offset: INDEX_OFFSET_FIELD,
                reason: format!(
                    "index offset {} is inside the data payload ending at {}",
                    header.index_offset,
                    header.data_end()
                ),
            });
        }
        Ok(header)
    }
}

/// What a CARv1-shaped header turned out to be.
pub(crate) enum Decoded {
    /// A CARv1 header with its roots.
    V1(Vec<Cid>),
    /// Exactly the CARv2 pragma.
    V2Pragma,
}

/// Decodes the DAG-CBOR header block `body` (without its length varint) found at `offset`.
///
/// `outer` is true for the first header of the input, where the CARv2 pragma is allowed.
/// The version is checked before the roots, so `{version: 42}` reports the version.
/// Keys other than `version` and `roots` are ignored.
pub(crate) fn decode_header(body: &[u8], offset: u64, outer: bool) -> Result<Decoded, CarError> {
    if outer && body == &PRAGMA[1..] {
        return Ok(Decoded::V2Pragma);
    }
    let invalid = |reason: String| CarError::InvalidHeader { offset, reason };
    let ipld: Ipld =
        serde_ipld_dagcbor::from_slice(body).map_err(|e| invalid(format!("not DAG-CBOR: {e}")))?;
    let Ipld::Map(map) = ipld else {
        return Err(invalid("not a map".into()));
    };
    match map.get("version") {
        Some(Ipld::Integer(1)) => {}
        Some(Ipld::Integer(2)) if outer => return Err(CarError::InvalidPragma { offset }),
        Some(Ipld::Integer(version)) => {
            return Err(CarError::UnsupportedVersion {
                offset,
                version: *version,
            });
        }
        Some(_) => return Err(invalid("version is not an integer".into())),
        None => return Err(invalid("no version".into())),
    }
    let Some(Ipld::List(list)) = map.get("roots") else {
        return Err(invalid("roots is missing or not a list".into()));
    };
    let roots = list
        .iter()
        .map(|item| match item {
            Ipld::Link(cid) => Ok(*cid),
            _ => Err(invalid("a root is not a CID".into())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Decoded::V1(roots))
}

/// Encodes a CARv1 header: the length varint followed by the DAG-CBOR map
/// `{"roots": [roots...], "version": 1}` in canonical key order (carv1.md "Header").
///
/// Output is byte-identical to go-car's for the same roots. `roots` may be empty, which this
/// crate's decoder accepts but go-car's reader refuses; the spec asks for one or more.
pub fn encode_v1_header(roots: &[Cid]) -> Vec<u8> {
    let mut body = Vec::with_capacity(16 + roots.len() * 45);
    body.push(0xa2); // map(2)
    cbor_head(3, 5, &mut body);
    body.extend_from_slice(b"roots");
    cbor_head(4, roots.len() as u64, &mut body);
    for root in roots {
        body.extend_from_slice(&[0xd8, 0x2a]); // tag(42)
        let cid = root.to_bytes();
        cbor_head(2, cid.len() as u64 + 1, &mut body);
        body.push(0x00); // the multibase identity prefix DAG-CBOR links carry
        body.extend_from_slice(&cid);
    }
    cbor_head(3, 7, &mut body);
    body.extend_from_slice(b"version");
    body.push(0x01);

    let mut out = Vec::with_capacity(body.len() + varint::MAX_VARINT_LEN);
    varint::encode(body.len() as u64, &mut out);
    out.extend_from_slice(&body);
    out
}

/// Appends a CBOR initial byte for `major` type (0 to 7) with argument `value`, in its
/// shortest form (RFC 8949 § 3, as DAG-CBOR requires). Shared by the CAR header encoder and
/// the IPNI announce message.
pub fn cbor_head(major: u8, value: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    match value {
        0..=23 => out.push(m | value as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, value as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(value as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(value as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(data_offset: u64, data_size: u64, index_offset: u64) -> [u8; 40] {
        let mut b = [0u8; 40];
        b[16..24].copy_from_slice(&data_offset.to_le_bytes());
        b[24..32].copy_from_slice(&data_size.to_le_bytes());
        b[32..40].copy_from_slice(&index_offset.to_le_bytes());
        b
    }

    #[test]
    fn v2_header_checks() {
        let ok = V2Header::parse(&header_bytes(51, 100, 151)).expect("valid");
        assert_eq!(ok.data_end(), 151);
        assert!(ok.has_index());
        assert!(!ok.is_fully_indexed());
        assert!(V2Header::parse(&header_bytes(51, 100, 0)).is_ok());

        let err = V2Header::parse(&header_bytes(50, 100, 0)).expect_err("overlap");
        assert!(matches!(err, CarError::InvalidV2Header { offset: 27, .. }));
        let err = V2Header::parse(&header_bytes(51, u64::MAX, 0)).expect_err("huge size");
        assert!(matches!(err, CarError::InvalidV2Header { offset: 35, .. }));
        let err = V2Header::parse(&header_bytes(51, 100, 150)).expect_err("index in payload");
        assert!(matches!(err, CarError::InvalidV2Header { offset: 43, .. }));
    }

    #[test]
    fn fully_indexed_is_first_bit() {
        let mut b = header_bytes(51, 1, 0);
        b[0] = 0x80;
        let h = V2Header::parse(&b).expect("valid");
        assert!(h.is_fully_indexed());
        assert_eq!(h.characteristics, V2Header::FULLY_INDEXED);
    }

    #[test]
    fn cbor_heads_are_shortest() {
        for (value, len) in [
            (0u64, 1),
            (23, 1),
            (24, 2),
            (255, 2),
            (256, 3),
            (65_536, 5),
            (1 << 32, 9),
        ] {
            let mut out = Vec::new();
            cbor_head(4, value, &mut out);
            assert_eq!(out.len(), len, "value {value}");
        }
    }
}
