//! Error types: [`CarError`] for decoding.

use cid::Cid;

/// The part of a CAR file in which a problem was found (used by [`CarError::Truncated`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The CARv1 header (or the CARv2 pragma, which has the same shape), carv1.md "Header".
    Header,
    /// The fixed 40-byte CARv2 header after the pragma, carv2.md "Header".
    V2Header,
    /// One `varint | CID | block` section, carv1.md "Data".
    Section,
    /// The CARv2 data payload as a whole: the input ended before `data_offset + data_size`,
    /// carv2.md "CARv1 data payload".
    Payload,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::Header => "CAR header",
            Part::V2Header => "CARv2 header",
            Part::Section => "section",
            Part::Payload => "CARv2 data payload",
        })
    }
}

/// Why a CAR byte stream was rejected by [`crate::CarDecoder`].
///
/// Every variant carries `offset`: the absolute byte offset in the whole input (for a CARv2,
/// counted from the first byte of the pragma) at which the problem was found. For a damaged
/// length prefix, header or section that is the offset of its first byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CarError {
    /// The input ended in the middle of `part` (which starts at `offset`); `end` is the total
    /// number of bytes received.
    #[error("input ended at byte {end} inside the {part} starting at offset {offset}")]
    Truncated {
        /// Start of the incomplete part, bytes.
        offset: u64,
        /// What was incomplete.
        part: Part,
        /// Total input length, bytes.
        end: u64,
    },
    /// A length varint longer than 10 bytes or above `u64::MAX`.
    #[error("length varint at offset {offset} overflows 64 bits")]
    VarintOverflow {
        /// Start of the varint, bytes.
        offset: u64,
    },
    /// A length varint padded with trailing zero groups (not the minimal encoding).
    #[error("length varint at offset {offset} is not minimally encoded")]
    NonMinimalVarint {
        /// Start of the varint, bytes.
        offset: u64,
    },
    /// The header length prefix is larger than [`crate::Limits::max_header_size`].
    #[error("header at offset {offset} claims {len} bytes, over the limit of {limit}")]
    HeaderTooLarge {
        /// Start of the header's length varint, bytes.
        offset: u64,
        /// Claimed header length, bytes.
        len: u64,
        /// The limit in force, bytes.
        limit: usize,
    },
    /// The header is not valid DAG-CBOR or not a `{version, roots}` map (carv1.md "Header").
    #[error("invalid CAR header at offset {offset}: {reason}")]
    InvalidHeader {
        /// Start of the header's length varint, bytes.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The header's `version` is neither 1 nor (for the outer header) the CARv2 pragma.
    #[error("unsupported CAR version {version} in the header at offset {offset}")]
    UnsupportedVersion {
        /// Start of the header's length varint, bytes.
        offset: u64,
        /// The version found.
        version: i128,
    },
    /// A header with `version: 2` that is not byte-for-byte the CARv2 pragma (carv2.md "Pragma").
    #[error("header at offset {offset} says version 2 but is not the CARv2 pragma")]
    InvalidPragma {
        /// Start of the header, bytes (always 0).
        offset: u64,
    },
    /// A CARv2 header field is out of range or inconsistent (carv2.md "Header").
    #[error("invalid CARv2 header field at offset {offset}: {reason}")]
    InvalidV2Header {
        /// Offset of the offending field, bytes.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The CARv2 `index_offset` points at or past the end of the input.
    #[error(
        "CARv2 index offset {index_offset} (field at offset {offset}) is outside the {end}-byte input"
    )]
    IndexOutOfRange {
        /// Offset of the `index_offset` field, bytes (always 43).
        offset: u64,
        /// The index offset claimed, bytes.
        index_offset: u64,
        /// Total input length, bytes.
        end: u64,
    },
    /// A CARv2 inner header or section starting at `offset` does not end inside the data payload.
    #[error(
        "the item at offset {offset} runs past the end of the CARv2 data payload at {payload_end}"
    )]
    ExceedsPayload {
        /// Start of the header or section, bytes.
        offset: u64,
        /// `data_offset + data_size`, bytes.
        payload_end: u64,
    },
    /// A section length above the largest CID plus [`crate::Limits::max_block_size`].
    #[error("section at offset {offset} claims {len} bytes, over the limit of {limit}")]
    SectionTooLarge {
        /// Start of the section, bytes.
        offset: u64,
        /// Claimed section length (CID plus block), bytes.
        len: u64,
        /// The limit in force, bytes.
        limit: u64,
    },
    /// The section length is too short to hold the CID it starts with.
    #[error("section at offset {offset} is {len} bytes, shorter than its CID")]
    SectionShorterThanCid {
        /// Start of the section, bytes.
        offset: u64,
        /// The section length, bytes.
        len: u64,
    },
    /// The bytes at the start of a section are not a valid, canonically encoded CID.
    #[error("invalid CID at offset {offset}: {reason}")]
    InvalidCid {
        /// Start of the CID, bytes.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A block larger than [`crate::Limits::max_block_size`].
    #[error(
        "block {cid} in the section at offset {offset} is {size} bytes, over the limit of {limit}"
    )]
    BlockTooLarge {
        /// Start of the section, bytes.
        offset: u64,
        /// The block's CID.
        cid: Cid,
        /// Block size, bytes.
        size: u64,
        /// The limit in force, bytes.
        limit: usize,
    },
    /// A non-zero byte after a zero-length section. A zero-length section is accepted only as the
    /// start of zero padding up to the end of the data (see the crate docs).
    #[error(
        "non-zero byte at offset {offset} after the zero-length section at {zero_section_offset}"
    )]
    NonZeroPadding {
        /// The first non-zero byte, bytes.
        offset: u64,
        /// Where the zero-length section was, bytes.
        zero_section_offset: u64,
    },
    /// [`crate::CarDecoder::finish`] was called while complete events were still buffered:
    /// the caller must drain [`crate::CarDecoder::next_event`] until `Ok(None)` first.
    #[error("finish() called with undrained events at offset {offset}")]
    UndrainedInput {
        /// Offset of the first undrained item, bytes.
        offset: u64,
    },
}

impl CarError {
    /// The absolute byte offset at which the problem was found (see the type docs).
    pub fn offset(&self) -> u64 {
        match self {
            CarError::Truncated { offset, .. }
            | CarError::VarintOverflow { offset }
            | CarError::NonMinimalVarint { offset }
            | CarError::HeaderTooLarge { offset, .. }
            | CarError::InvalidHeader { offset, .. }
            | CarError::UnsupportedVersion { offset, .. }
            | CarError::InvalidPragma { offset }
            | CarError::InvalidV2Header { offset, .. }
            | CarError::IndexOutOfRange { offset, .. }
            | CarError::ExceedsPayload { offset, .. }
            | CarError::SectionTooLarge { offset, .. }
            | CarError::SectionShorterThanCid { offset, .. }
            | CarError::InvalidCid { offset, .. }
            | CarError::BlockTooLarge { offset, .. }
            | CarError::NonZeroPadding { offset, .. }
            | CarError::UndrainedInput { offset } => *offset,
        }
    }
}
