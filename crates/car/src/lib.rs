//! # hydrant-car: CAR decoding, encoding and block verification
//!
//! Decodes CARv1 and CARv2 files as a stream of events, encodes CARv1, and checks that a
//! block hashes to its CID. Sans-I/O: the core never reads or writes anything itself;
//! [`CarReader`] is a small optional wrapper over `tokio::io::AsyncRead`.
//!
//! Specs (in `shared/specs/`): `carv1.md` ("Format Description": header, sections, CID byte
//! decoding) and `carv2.md` ("Pragma", "Header", "Characteristics", "CARv1 data payload",
//! "Index payload"); block size limit from `bitswap-protocol.md` "Block Sizes".
//!
//! ## Public API
//!
//! - [`CarDecoder`]: `new(Limits)`, `push(&[u8])`, `next_event() -> Result<Option<Event>,
//!   CarError>`, `finish() -> Result<(), CarError>`, `bytes_consumed() -> u64`.
//! - [`Event`] = [`Event::Header`]\([`CarHeader`]) then [`Event::Section`]\([`Section`])s;
//!   [`V2Header`] for CARv2 files.
//! - [`verify_block`]`(&Cid, &[u8]) -> Result<(), VerifyError>`.
//! - [`encode_v1_header`]`(&[Cid]) -> Vec<u8>`, [`encode_section`]`(&Cid, &[u8], &mut Vec<u8>)`.
//! - [`Limits`], [`MAX_BLOCK_SIZE`], [`MAX_HEADER_SIZE`], [`MAX_CID_SIZE`].
//! - Errors: [`CarError`] (every variant carries the absolute byte `offset`), [`Part`],
//!   [`VerifyError`].
//! - [`CarReader`], [`ReadError`], [`READ_CHUNK_SIZE`]: async convenience.
//!
//! ## Decisions where the specs leave room
//!
//! - **Offsets** in events and errors are absolute in the whole input; for a CARv2 they count
//!   from the pragma, not from the inner CARv1 payload.
//! - **Roots**: an empty `roots` array is accepted on read (carv1.md "Number of roots" is
//!   unresolved; js-car accepts it, go-car refuses it). Keys other than `version` and
//!   `roots` in the header are ignored. The version is checked first: `{version: 42}` is
//!   [`CarError::UnsupportedVersion`].
//! - **Zero blocks**: a CARv1 with a header and no sections is accepted ("Zero blocks" is
//!   unresolved).
//! - **Zero-length sections**: a section whose length varint is 0 is read as the end of the
//!   data, but only if every byte after it, up to the end of the input (CARv1) or of the data
//!   payload (CARv2), is zero. This accepts files padded with zeros, as go-car's
//!   `ZeroLengthSectionAsEOF` option does (fixtures `sample-v1-with-zero-len-section*.car`),
//!   while a non-zero byte after it is [`CarError::NonZeroPadding`]: no block can hide behind
//!   the marker and be silently dropped.
//! - **Strict encodings**: length varints must be minimal and at most 10 bytes; CIDs must be
//!   canonically encoded (re-encoding gives the same bytes); a CARv2 header's offsets must fit
//!   an `i64` (as go-car), `data_offset >= 51`, and a non-zero `index_offset` must not be
//!   inside the payload. The CARv2 index is not decoded, only skipped; its offset must be
//!   before the end of input.
//! - **Verification** is separate from decoding ([`verify_block`]) so callers can hash in
//!   parallel; the decoder never hands out a block it has not framed correctly, but it does
//!   not hash it.
//!
//! ## Memory
//!
//! The decoder buffers at most one header ([`Limits::max_header_size`]) or one section
//! ([`MAX_CID_SIZE`] + [`Limits::max_block_size`]) plus the rest of the last pushed chunk, as
//! long as the caller drains [`CarDecoder::next_event`] after each push. Blocks are returned
//! as [`bytes::Bytes`] slices of that buffer, without further copies.

mod decoder;
mod encode;
mod error;
mod header;
mod reader;
mod varint;

pub use decoder::{CarDecoder, Event, Section};
pub use encode::encode_section;
pub use error::{CarError, Part};
pub use header::{CarHeader, V2Header, cbor_head, encode_v1_header};
/// The block verifier, re-exported from the block seam so CAR readers find it here too.
pub use hydrant_blocks::{VerifyError, verify_block};
pub use reader::{CarReader, READ_CHUNK_SIZE, ReadError};

/// Largest block accepted by default, bytes: 2 MiB (bitswap-protocol.md "Block Sizes").
pub const MAX_BLOCK_SIZE: usize = 2 * 1024 * 1024;

/// Largest CARv1 header accepted by default, bytes: 1 MiB (about 27 000 CIDv1 roots).
pub const MAX_HEADER_SIZE: usize = 1024 * 1024;

/// Largest digest in a CID this crate handles, bytes (the `cid` crate's `Cid` = `Cid<64>`).
pub const MAX_DIGEST_SIZE: usize = 64;

/// Largest encoded CID that can start a section, bytes: version (1) + codec varint (10) +
/// multihash code varint (10) + digest size (1) + [`MAX_DIGEST_SIZE`].
pub const MAX_CID_SIZE: usize = 1 + 10 + 10 + 1 + MAX_DIGEST_SIZE;

/// Size limits applied while decoding; they bound the decoder's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest block (section data after the CID), bytes. Default [`MAX_BLOCK_SIZE`].
    pub max_block_size: usize,
    /// Largest CARv1 header (DAG-CBOR bytes after the length varint), bytes. Applies to the
    /// inner header of a CARv2 too. Default [`MAX_HEADER_SIZE`].
    pub max_header_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_block_size: MAX_BLOCK_SIZE,
            max_header_size: MAX_HEADER_SIZE,
        }
    }
}
