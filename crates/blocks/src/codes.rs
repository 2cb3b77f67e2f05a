//! Multicodec codes Hydrant uses, defined once for every crate.
//!
//! Spec: `../shared/specs/multicodec-table.csv` (the `code` column; the names are the table's).

/// `raw`: raw binary blocks (no links).
pub const RAW: u64 = 0x55;
/// `dag-pb`: MerkleDAG protobuf (UnixFS).
pub const DAG_PB: u64 = 0x70;
/// `dag-cbor`: MerkleDAG CBOR.
pub const DAG_CBOR: u64 = 0x71;
/// `dag-json`: MerkleDAG JSON.
pub const DAG_JSON: u64 = 0x0129;
/// `cbor`: plain CBOR (tag 42 has no meaning there: no links).
pub const CBOR: u64 = 0x51;
/// `json`: plain JSON (no links).
pub const JSON: u64 = 0x0200;
/// `libp2p-key`: a libp2p public key (the codec of peer-ID CIDs and IPNS names).
pub const LIBP2P_KEY: u64 = 0x72;

/// Multihash `identity`: the digest is the data itself.
pub const IDENTITY: u64 = 0x00;
/// Multihash `sha2-256`.
pub const SHA2_256: u64 = 0x12;
/// Multihash `sha2-512`.
pub const SHA2_512: u64 = 0x13;
/// Multihash `blake3` (32-byte output by default).
pub const BLAKE3: u64 = 0x1e;
/// Multihash `blake2b-256`.
pub const BLAKE2B_256: u64 = 0xb220;
/// Multihash `blake2b-512`.
pub const BLAKE2B_512: u64 = 0xb240;
