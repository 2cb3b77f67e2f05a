//! Bitswap wire format (specs/bitswap-protocol.md, "Wire Format" of 1.0.0, 1.1.0 and 1.2.0):
//! protocol IDs, the protobuf message and its typed view, CID prefixes, and the
//! unsigned-varint length-prefixed framing ("Protocol Format").

use bytes::Bytes;
use cid::{Cid, Version};
use futures::{AsyncWrite, AsyncWriteExt as _};
pub use hydrant_frame::{FrameError, read_frame, read_frame_body, read_frame_len};
use libp2p::StreamProtocol;
use prost::Message as _;
use prost::encoding::encoded_len_varint;

/// Largest Bitswap message, in bytes (specs/bitswap-protocol.md, "Protocol Format": "All
/// protocol messages MUST be less than or equal to 4MiB in size").
///
/// On read, a message body longer than this is refused before any buffer is allocated. On write,
/// the whole frame (length prefix included) stays within this size, so that peers which count
/// the prefix accept it too.
pub const MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// Most wantlist entries accepted in one message; a message with more is a protocol error.
///
/// Twice [`crate::MAX_WANTLIST_ENTRIES_PER_PEER`], so a full wantlist at the per-peer bound plus
/// as many cancels still fits. Bounds the memory of one decoded message (about 100 bytes per
/// entry).
pub const MAX_WANTLIST_ENTRIES_PER_MESSAGE: usize = 16_384;

/// Most blocks accepted in one message, the 1.0.0 `blocks` and the 1.1.0+ `payload` fields
/// together; a message with more is a protocol error. A server is sent wants, not blocks; this
/// leaves room for a client's message of small blocks.
pub const MAX_BLOCKS_PER_MESSAGE: usize = 4_096;

/// Most block presences accepted in one message: one per want of a full wantlist.
pub const MAX_PRESENCES_PER_MESSAGE: usize = MAX_WANTLIST_ENTRIES_PER_MESSAGE;

/// Longest multihash digest in a CID, in bytes (the `S` of `cid::Cid<64>`).
const MAX_DIGEST_LEN: u64 = 64;

/// Bytes reserved in a response for the `pendingBytes` field (tag + longest int32 varint).
const PENDING_BYTES_FIELD_RESERVE: usize = 11;

/// A Bitswap protocol version, one per protocol ID (specs/bitswap-protocol.md, "Bitswap
/// Protocol Versions").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// `/ipfs/bitswap`: the unversioned ID, spoken as 1.0.0.
    Legacy,
    /// `/ipfs/bitswap/1.0.0`: CIDv0 only; blocks in the `blocks` field.
    V1_0_0,
    /// `/ipfs/bitswap/1.1.0`: any CID; blocks in the `payload` field with a CID prefix.
    V1_1_0,
    /// `/ipfs/bitswap/1.2.0`: adds WANT_HAVE, `send_dont_have`, block presences and
    /// `pendingBytes`.
    V1_2_0,
}

impl ProtocolVersion {
    /// Every version, newest first (the order to offer them in).
    pub const ALL: [ProtocolVersion; 4] = [
        ProtocolVersion::V1_2_0,
        ProtocolVersion::V1_1_0,
        ProtocolVersion::V1_0_0,
        ProtocolVersion::Legacy,
    ];

    /// The protocol ID negotiated on a libp2p stream, e.g. `/ipfs/bitswap/1.2.0`.
    pub const fn protocol(self) -> StreamProtocol {
        match self {
            ProtocolVersion::Legacy => StreamProtocol::new("/ipfs/bitswap"),
            ProtocolVersion::V1_0_0 => StreamProtocol::new("/ipfs/bitswap/1.0.0"),
            ProtocolVersion::V1_1_0 => StreamProtocol::new("/ipfs/bitswap/1.1.0"),
            ProtocolVersion::V1_2_0 => StreamProtocol::new("/ipfs/bitswap/1.2.0"),
        }
    }

    /// Whether blocks travel in `payload` with a CID prefix (1.1.0 and later), so CIDv1
    /// blocks can be sent. Otherwise they go in `blocks` and only CIDv0 blocks can be sent.
    pub const fn supports_payload(self) -> bool {
        matches!(self, ProtocolVersion::V1_1_0 | ProtocolVersion::V1_2_0)
    }

    /// Whether WANT_HAVE, `send_dont_have`, block presences and `pendingBytes` exist (1.2.0).
    pub const fn supports_presences(self) -> bool {
        matches!(self, ProtocolVersion::V1_2_0)
    }
}

/// What a wantlist entry asks for (specs/bitswap-protocol.md, 1.2.0 `WantType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum WantType {
    /// WANT_BLOCK: send the block (wire value 0, the default and the only kind before 1.2.0).
    #[default]
    Block,
    /// WANT_HAVE: say whether the block is held (wire value 1).
    Have,
}

impl WantType {
    fn from_wire(value: i32) -> Option<Self> {
        match value {
            0 => Some(WantType::Block),
            1 => Some(WantType::Have),
            _ => None,
        }
    }

    fn to_wire(self) -> i32 {
        match self {
            WantType::Block => 0,
            WantType::Have => 1,
        }
    }
}

/// One wantlist entry (specs/bitswap-protocol.md, `Wantlist.Entry`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantlistEntry {
    /// The block wanted (field `block`: the CID bytes; a bare multihash for CIDv0).
    pub cid: Cid,
    /// Relative priority; higher is answered first (field `priority`).
    pub priority: i32,
    /// Whether this entry revokes an earlier want for `cid` (field `cancel`).
    pub cancel: bool,
    /// Block or Have (field `wantType`, 1.2.0; Block before).
    pub want_type: WantType,
    /// Whether the sender wants a DONT_HAVE when the block is absent (field `sendDontHave`,
    /// 1.2.0).
    pub send_dont_have: bool,
}

/// The prefix of a CID: everything but the digest (specs/bitswap-protocol.md, 1.1.0
/// `Block.prefix`). On the wire: version, codec, multihash code and digest length, each an
/// unsigned varint; CIDv0 is written `[0x00, 0x70, 0x12, 0x20]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CidPrefix {
    /// CID version.
    pub version: Version,
    /// Multicodec of the block's content (0x70 dag-pb for CIDv0).
    pub codec: u64,
    /// Multihash function code (0x12 sha2-256, 0xb220 blake2b-256, 0x1e blake3, 0x00 identity).
    pub multihash_code: u64,
    /// Digest length in bytes (at most 64).
    pub digest_len: u8,
}

/// A block sent in the 1.1.0+ `payload` field: CID prefix and bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadBlock {
    /// The block's CID prefix; with the data it gives back the CID ([`CidPrefix::to_cid`]).
    pub prefix: CidPrefix,
    /// The block's bytes.
    pub data: Bytes,
}

/// Whether a peer holds a block (specs/bitswap-protocol.md, 1.2.0 `BlockPresenceType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PresenceType {
    /// HAVE (wire value 0).
    Have,
    /// DONT_HAVE (wire value 1).
    DontHave,
}

/// A HAVE or DONT_HAVE for one CID (specs/bitswap-protocol.md, 1.2.0 `BlockPresence`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockPresence {
    /// The block the answer is about.
    pub cid: Cid,
    /// HAVE or DONT_HAVE.
    pub presence: PresenceType,
}

/// A Bitswap message, typed (specs/bitswap-protocol.md, 1.2.0 `Message`, which includes the
/// 1.0.0 and 1.1.0 fields). `Message::default()` is the empty message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Wantlist entries (field `wantlist.entries`).
    pub wantlist: Vec<WantlistEntry>,
    /// Whether `wantlist` replaces the sender's whole wantlist (field `wantlist.full`).
    pub full: bool,
    /// 1.0.0 blocks: bytes only, the CID is the CIDv0 of their sha2-256 (field `blocks`).
    pub blocks: Vec<Bytes>,
    /// 1.1.0+ blocks with their CID prefix (field `payload`).
    pub payload: Vec<PayloadBlock>,
    /// 1.2.0 HAVE / DONT_HAVE answers (field `blockPresences`).
    pub block_presences: Vec<BlockPresence>,
    /// 1.2.0: bytes the sender still has queued for the receiver (field `pendingBytes`).
    pub pending_bytes: i32,
}

/// Errors of [`CidPrefix::parse`] and [`CidPrefix::to_cid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// A varint is malformed or the prefix ends early.
    #[error("malformed varint in CID prefix")]
    Varint,
    /// The version is neither 0 nor 1.
    #[error("unsupported CID version {0}")]
    UnsupportedVersion(u64),
    /// A version 0 prefix that is not `[0x00, 0x70, 0x12, 0x20]`.
    #[error("CIDv0 prefix must be dag-pb sha2-256 with a 32-byte digest")]
    InvalidV0,
    /// The digest length is over 64 bytes.
    #[error("digest length {0} is over 64 bytes")]
    DigestTooLong(u64),
    /// Bytes follow the four varints.
    #[error("{0} trailing bytes after the CID prefix")]
    TrailingBytes(usize),
    /// The block cannot be hashed as the prefix asks (unsupported function, or a digest
    /// length outside the rule of [`hydrant_blocks::verify`]).
    #[error(transparent)]
    Digest(#[from] hydrant_blocks::DigestError),
}

/// A CID field that is not exactly one valid CID.
#[derive(Debug, thiserror::Error)]
pub enum InvalidCid {
    /// The bytes do not start with a valid CID.
    #[error(transparent)]
    Cid(#[from] cid::Error),
    /// Bytes follow a valid CID.
    #[error("{0} trailing bytes after the CID")]
    TrailingBytes(usize),
}

/// Errors of [`decode_message`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not a protobuf `Message`.
    #[error("invalid protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// More wantlist entries, blocks or block presences than accepted
    /// ([`MAX_WANTLIST_ENTRIES_PER_MESSAGE`], [`MAX_BLOCKS_PER_MESSAGE`],
    /// [`MAX_PRESENCES_PER_MESSAGE`]); counted before anything is decoded.
    #[error("{count} {what}, more than the {max} accepted")]
    TooMany {
        /// `"wantlist entries"`, `"blocks"` or `"block presences"`.
        what: &'static str,
        /// How many the message holds (up to a malformed field).
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A wantlist entry's `block` is not a CID.
    #[error("wantlist entry {index}: invalid CID: {source}")]
    WantCid {
        /// Index of the entry in the wantlist.
        index: usize,
        /// Why the CID is invalid.
        #[source]
        source: InvalidCid,
    },
    /// A wantlist entry's `wantType` is neither Block (0) nor Have (1).
    #[error("wantlist entry {index}: unknown want type {value}")]
    WantType {
        /// Index of the entry in the wantlist.
        index: usize,
        /// The value received.
        value: i32,
    },
    /// A payload block's prefix is invalid.
    #[error("payload block {index}: {source}")]
    Prefix {
        /// Index of the block in `payload`.
        index: usize,
        /// Why the prefix is invalid.
        #[source]
        source: PrefixError,
    },
    /// A block presence's `cid` is not a CID.
    #[error("block presence {index}: invalid CID: {source}")]
    PresenceCid {
        /// Index of the presence.
        index: usize,
        /// Why the CID is invalid.
        #[source]
        source: InvalidCid,
    },
    /// A block presence's `type` is neither Have (0) nor DontHave (1).
    #[error("block presence {index}: unknown presence type {value}")]
    PresenceType {
        /// Index of the presence.
        index: usize,
        /// The value received.
        value: i32,
    },
}

/// The protobuf schema of specs/bitswap-protocol.md, 1.2.0 (a superset of 1.0.0 and 1.1.0).
/// Enums are kept as `int32`, which is the same on the wire.
mod pb {
    use bytes::Bytes;

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Message {
        #[prost(message, optional, tag = "1")]
        pub wantlist: Option<Wantlist>,
        #[prost(bytes = "bytes", repeated, tag = "2")]
        pub blocks: Vec<Bytes>,
        #[prost(message, repeated, tag = "3")]
        pub payload: Vec<Block>,
        #[prost(message, repeated, tag = "4")]
        pub block_presences: Vec<BlockPresence>,
        #[prost(int32, tag = "5")]
        pub pending_bytes: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Wantlist {
        #[prost(message, repeated, tag = "1")]
        pub entries: Vec<Entry>,
        #[prost(bool, tag = "2")]
        pub full: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Entry {
        #[prost(bytes = "bytes", tag = "1")]
        pub block: Bytes,
        #[prost(int32, tag = "2")]
        pub priority: i32,
        #[prost(bool, tag = "3")]
        pub cancel: bool,
        #[prost(int32, tag = "4")]
        pub want_type: i32,
        #[prost(bool, tag = "5")]
        pub send_dont_have: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Block {
        #[prost(bytes = "bytes", tag = "1")]
        pub prefix: Bytes,
        #[prost(bytes = "bytes", tag = "2")]
        pub data: Bytes,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct BlockPresence {
        #[prost(bytes = "bytes", tag = "1")]
        pub cid: Bytes,
        #[prost(int32, tag = "2")]
        pub r#type: i32,
    }
}

impl CidPrefix {
    /// The prefix of `cid`.
    pub fn of(cid: &Cid) -> Self {
        CidPrefix {
            version: cid.version(),
            codec: cid.codec(),
            multihash_code: cid.hash().code(),
            digest_len: cid.hash().size(),
        }
    }

    /// The wire bytes: four unsigned varints (version, codec, multihash code, digest length).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        let mut buf = unsigned_varint::encode::u64_buffer();
        for value in [
            u64::from(self.version),
            self.codec,
            self.multihash_code,
            u64::from(self.digest_len),
        ] {
            out.extend_from_slice(unsigned_varint::encode::u64(value, &mut buf));
        }
        out
    }

    /// Parses wire bytes written by [`CidPrefix::to_bytes`] (or by any Bitswap 1.1.0+ peer).
    /// Outside input: this is a fuzz entry point.
    ///
    /// # Errors
    /// [`PrefixError`] for a malformed varint, an unknown version, a CIDv0 prefix other than
    /// dag-pb/sha2-256/32, a digest over 64 bytes, or trailing bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, PrefixError> {
        let mut rest = bytes;
        let mut next = || -> Result<u64, PrefixError> {
            let (value, tail) =
                unsigned_varint::decode::u64(rest).map_err(|_| PrefixError::Varint)?;
            // Varints must be minimal: `unsigned-varint` lets a 10-byte encoding whose high bits
            // overflow u64 through (found by fuzzing), which would not round-trip.
            let used = &rest[..rest.len() - tail.len()];
            if used != unsigned_varint::encode::u64(value, &mut [0; 10]) {
                return Err(PrefixError::Varint);
            }
            rest = tail;
            Ok(value)
        };
        let version = next()?;
        let codec = next()?;
        let multihash_code = next()?;
        let digest_len = next()?;
        if !rest.is_empty() {
            return Err(PrefixError::TrailingBytes(rest.len()));
        }
        let version = match version {
            0 => {
                if (codec, multihash_code, digest_len) != (0x70, 0x12, 0x20) {
                    return Err(PrefixError::InvalidV0);
                }
                Version::V0
            }
            1 => Version::V1,
            other => return Err(PrefixError::UnsupportedVersion(other)),
        };
        if digest_len > MAX_DIGEST_LEN {
            return Err(PrefixError::DigestTooLong(digest_len));
        }
        Ok(CidPrefix {
            version,
            codec,
            multihash_code,
            digest_len: digest_len as u8,
        })
    }

    /// The CID of `data` under this prefix: hashes `data` with the prefix's multihash function,
    /// truncated to the prefix's digest length, by the same rule that ingest and block reads
    /// verify with ([`hydrant_blocks::digest`]).
    ///
    /// # Errors
    /// [`PrefixError::Digest`] for an unsupported function or a digest length outside the
    /// rule (for identity: other than the data's length).
    pub fn to_cid(&self, data: &[u8]) -> Result<Cid, PrefixError> {
        let hash = hydrant_blocks::digest(self.multihash_code, usize::from(self.digest_len), data)?;
        Cid::new(self.version, self.codec, hash).map_err(|_| PrefixError::InvalidV0)
    }
}

/// The Bitswap 1.1.0 CID prefix of `cid` (version, codec, multihash code, digest length as
/// unsigned varints); `[0x00, 0x70, 0x12, 0x20]` for CIDv0.
pub fn cid_prefix(cid: &Cid) -> Vec<u8> {
    CidPrefix::of(cid).to_bytes()
}

/// The CID of a payload block from its prefix bytes and data (the inverse of [`cid_prefix`]).
///
/// # Errors
/// [`PrefixError`] as in [`CidPrefix::parse`] and [`CidPrefix::to_cid`].
pub fn cid_from_prefix(prefix: &[u8], data: &[u8]) -> Result<Cid, PrefixError> {
    CidPrefix::parse(prefix)?.to_cid(data)
}

/// Parses exactly one CID from `bytes` (a bare 34-byte sha2-256 multihash is CIDv0).
fn parse_cid(bytes: &[u8]) -> Result<Cid, InvalidCid> {
    let cid = Cid::try_from(bytes)?;
    let used = cid.encoded_len();
    if used != bytes.len() {
        return Err(InvalidCid::TrailingBytes(bytes.len().saturating_sub(used)));
    }
    Ok(cid)
}

/// What a message body holds, counted before it is decoded ([`measure_message`]): enough to
/// know what decoding it will allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageShape {
    /// Length of the body, in bytes.
    pub len: usize,
    /// Wantlist entries.
    pub entries: usize,
    /// Blocks of the 1.0.0 `blocks` field.
    pub blocks: usize,
    /// Blocks of the 1.1.0+ `payload` field.
    pub payload: usize,
    /// Block presences.
    pub presences: usize,
}

/// Heap bytes one allocation may cost beyond its contents (allocator header and rounding).
const ALLOCATION_OVERHEAD: usize = 64;

/// Bytes reserved for decoding whatever the counts (the `Wantlist`, vector headers).
const DECODE_FIXED_BYTES: usize = 4096;

impl MessageShape {
    /// The largest message a peer may legitimately send a server: a body of
    /// [`MAX_MESSAGE_SIZE`] bytes holding a full wantlist.
    pub const FULL_WANTLIST: MessageShape = MessageShape {
        len: MAX_MESSAGE_SIZE,
        entries: MAX_WANTLIST_ENTRIES_PER_MESSAGE,
        blocks: 0,
        payload: 0,
        presences: 0,
    };

    /// At most what [`decode_message`] allocates for this body, in bytes (the body itself not
    /// included): every `bytes` field copied once (at most the body's length), one allocation
    /// per copied field, prost's vectors of wire structs (which grow by doubling, so up to
    /// twice their contents), and the typed vectors they are converted into.
    pub fn decoded_bytes(&self) -> u64 {
        use std::mem::size_of;
        let per_entry =
            2 * size_of::<pb::Entry>() + size_of::<WantlistEntry>() + ALLOCATION_OVERHEAD;
        let per_block = 2 * size_of::<Bytes>() + ALLOCATION_OVERHEAD;
        let per_payload =
            2 * size_of::<pb::Block>() + size_of::<PayloadBlock>() + 2 * ALLOCATION_OVERHEAD;
        let per_presence =
            2 * size_of::<pb::BlockPresence>() + size_of::<BlockPresence>() + ALLOCATION_OVERHEAD;
        (self.len
            + DECODE_FIXED_BYTES
            + self.entries * per_entry
            + self.blocks * per_block
            + self.payload * per_payload
            + self.presences * per_presence) as u64
    }
}

/// Counts what a message body holds without decoding it (nothing is allocated per field), and
/// refuses it when it holds more than a message may; see [`hydrant_frame::count_fields`].
/// Outside input: reached through [`decode_message`], a fuzz entry point.
///
/// # Errors
/// [`DecodeError::TooMany`] past [`MAX_WANTLIST_ENTRIES_PER_MESSAGE`] entries,
/// [`MAX_BLOCKS_PER_MESSAGE`] blocks or [`MAX_PRESENCES_PER_MESSAGE`] presences.
pub fn measure_message(body: &[u8]) -> Result<MessageShape, DecodeError> {
    let [entries, blocks, payload, presences] =
        hydrant_frame::count_fields(body, [&[1, 1], &[2], &[3], &[4]]);
    let refuse = |what, count, max| {
        if count > max {
            Err(DecodeError::TooMany { what, count, max })
        } else {
            Ok(())
        }
    };
    refuse(
        "wantlist entries",
        entries,
        MAX_WANTLIST_ENTRIES_PER_MESSAGE,
    )?;
    refuse("blocks", blocks + payload, MAX_BLOCKS_PER_MESSAGE)?;
    refuse("block presences", presences, MAX_PRESENCES_PER_MESSAGE)?;
    Ok(MessageShape {
        len: body.len(),
        entries,
        blocks,
        payload,
        presences,
    })
}

/// Decodes one Bitswap message body (the bytes after the length prefix). Outside input: this
/// is a fuzz entry point. Every version's fields are decoded whatever the protocol; the caller
/// ignores those its version lacks. The body is measured first ([`measure_message`]), so what
/// decoding allocates is bounded by [`MessageShape::decoded_bytes`] before prost allocates
/// anything.
///
/// # Errors
/// [`DecodeError::TooMany`] (see [`measure_message`]); [`DecodeError`] when the bytes are not a
/// protobuf `Message` or hold an invalid CID, CID prefix, want type or presence type.
pub fn decode_message(bytes: &[u8]) -> Result<Message, DecodeError> {
    measure_message(bytes)?;
    let raw = pb::Message::decode(bytes)?;
    let (entries, full) = match raw.wantlist {
        Some(w) => (w.entries, w.full),
        None => (Vec::new(), false),
    };
    let mut wantlist = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let cid =
            parse_cid(&entry.block).map_err(|source| DecodeError::WantCid { index, source })?;
        let want_type = WantType::from_wire(entry.want_type).ok_or(DecodeError::WantType {
            index,
            value: entry.want_type,
        })?;
        wantlist.push(WantlistEntry {
            cid,
            priority: entry.priority,
            cancel: entry.cancel,
            want_type,
            send_dont_have: entry.send_dont_have,
        });
    }
    let mut payload = Vec::with_capacity(raw.payload.len());
    for (index, block) in raw.payload.into_iter().enumerate() {
        let prefix = CidPrefix::parse(&block.prefix)
            .map_err(|source| DecodeError::Prefix { index, source })?;
        payload.push(PayloadBlock {
            prefix,
            data: block.data,
        });
    }
    let mut block_presences = Vec::with_capacity(raw.block_presences.len());
    for (index, presence) in raw.block_presences.into_iter().enumerate() {
        let cid = parse_cid(&presence.cid)
            .map_err(|source| DecodeError::PresenceCid { index, source })?;
        let presence = match presence.r#type {
            0 => PresenceType::Have,
            1 => PresenceType::DontHave,
            value => return Err(DecodeError::PresenceType { index, value }),
        };
        block_presences.push(BlockPresence { cid, presence });
    }
    Ok(Message {
        wantlist,
        full,
        blocks: raw.blocks,
        payload,
        block_presences,
        pending_bytes: raw.pending_bytes,
    })
}

fn presence_to_pb(presence: &BlockPresence) -> pb::BlockPresence {
    pb::BlockPresence {
        cid: Bytes::from(presence.cid.to_bytes()),
        r#type: match presence.presence {
            PresenceType::Have => 0,
            PresenceType::DontHave => 1,
        },
    }
}

impl Message {
    fn to_pb(&self) -> pb::Message {
        let wantlist = (self.full || !self.wantlist.is_empty()).then(|| pb::Wantlist {
            entries: self
                .wantlist
                .iter()
                .map(|e| pb::Entry {
                    block: Bytes::from(e.cid.to_bytes()),
                    priority: e.priority,
                    cancel: e.cancel,
                    want_type: e.want_type.to_wire(),
                    send_dont_have: e.send_dont_have,
                })
                .collect(),
            full: self.full,
        });
        pb::Message {
            wantlist,
            blocks: self.blocks.clone(),
            payload: self
                .payload
                .iter()
                .map(|b| pb::Block {
                    prefix: Bytes::from(b.prefix.to_bytes()),
                    data: b.data.clone(),
                })
                .collect(),
            block_presences: self.block_presences.iter().map(presence_to_pb).collect(),
            pending_bytes: self.pending_bytes,
        }
    }

    /// The protobuf body, without length prefix.
    pub fn encode(&self) -> Vec<u8> {
        self.to_pb().encode_to_vec()
    }

    /// The body with its unsigned-varint length prefix, ready to write on a stream. The caller
    /// keeps it within [`MAX_MESSAGE_SIZE`] if the peer is to accept it.
    pub fn encode_frame(&self) -> Vec<u8> {
        frame(&self.to_pb())
    }
}

fn frame(message: &pb::Message) -> Vec<u8> {
    let len = message.encoded_len();
    let mut out = Vec::with_capacity(len + encoded_len_varint(len as u64));
    let mut buf = unsigned_varint::encode::usize_buffer();
    out.extend_from_slice(unsigned_varint::encode::usize(len, &mut buf));
    message.encode(&mut out).expect("a Vec grows to fit");
    out
}

/// Writes `frame` (a length-prefixed message from [`Message::encode_frame`]) and flushes.
///
/// # Errors
/// The stream's I/O error.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &[u8],
) -> std::io::Result<()> {
    writer.write_all(frame).await?;
    writer.flush().await
}

/// What a response message holds, for accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ResponseCounts {
    /// Blocks (in `blocks` or `payload`).
    pub blocks: u64,
    /// Bytes of block data.
    pub block_bytes: u64,
    /// HAVE presences.
    pub haves: u64,
    /// DONT_HAVE presences.
    pub dont_haves: u64,
}

/// Packs blocks and presences into one response message for `version`, refusing any item that
/// would take the frame (length prefix included) past `max_frame` bytes.
pub(crate) struct ResponseBuilder {
    version: ProtocolVersion,
    max_frame: usize,
    body_len: usize,
    message: pb::Message,
    counts: ResponseCounts,
}

/// Why [`ResponseBuilder`] refused an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AddError {
    /// The item does not fit in what is left of this message.
    Full,
    /// The peer's protocol version cannot carry this item (CIDv1 block before 1.1.0, presence
    /// before 1.2.0).
    Unsupported,
}

fn field_len(inner: usize) -> usize {
    1 + encoded_len_varint(inner as u64) + inner
}

impl ResponseBuilder {
    pub(crate) fn new(version: ProtocolVersion, max_frame: usize) -> Self {
        ResponseBuilder {
            version,
            max_frame,
            body_len: 0,
            message: pb::Message::default(),
            counts: ResponseCounts::default(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.body_len == 0
    }

    pub(crate) fn counts(&self) -> ResponseCounts {
        self.counts
    }

    fn fits(&self, extra: usize) -> bool {
        let body = self.body_len + extra + PENDING_BYTES_FIELD_RESERVE;
        body + encoded_len_varint(body as u64) <= self.max_frame
    }

    pub(crate) fn add_block(&mut self, cid: &Cid, data: &Bytes) -> Result<(), AddError> {
        if self.version.supports_payload() {
            let block = pb::Block {
                prefix: Bytes::from(cid_prefix(cid)),
                data: data.clone(),
            };
            let extra = field_len(block.encoded_len());
            if !self.fits(extra) {
                return Err(AddError::Full);
            }
            self.body_len += extra;
            self.message.payload.push(block);
        } else {
            if cid.version() != Version::V0 {
                return Err(AddError::Unsupported);
            }
            let extra = field_len(data.len());
            if !self.fits(extra) {
                return Err(AddError::Full);
            }
            self.body_len += extra;
            self.message.blocks.push(data.clone());
        }
        self.counts.blocks += 1;
        self.counts.block_bytes += data.len() as u64;
        Ok(())
    }

    pub(crate) fn add_presence(
        &mut self,
        cid: &Cid,
        presence: PresenceType,
    ) -> Result<(), AddError> {
        if !self.version.supports_presences() {
            return Err(AddError::Unsupported);
        }
        let pb = presence_to_pb(&BlockPresence {
            cid: *cid,
            presence,
        });
        let extra = field_len(pb.encoded_len());
        if !self.fits(extra) {
            return Err(AddError::Full);
        }
        self.body_len += extra;
        self.message.block_presences.push(pb);
        match presence {
            PresenceType::Have => self.counts.haves += 1,
            PresenceType::DontHave => self.counts.dont_haves += 1,
        }
        Ok(())
    }

    /// The framed message; `pending_bytes` is written only for 1.2.0 peers.
    pub(crate) fn finish(mut self, pending_bytes: u64) -> Vec<u8> {
        if self.version.supports_presences() {
            self.message.pending_bytes = i32::try_from(pending_bytes).unwrap_or(i32::MAX);
        }
        let out = frame(&self.message);
        debug_assert!(out.len() <= self.max_frame, "response frame over the limit");
        out
    }
}

#[cfg(test)]
mod tests;
