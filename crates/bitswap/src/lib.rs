//! Bitswap server: answers other peers' wantlists with blocks, HAVE and DONT_HAVE from a
//! [`hydrant_blocks::Blockstore`], over libp2p streams.
//!
//! Implements specs/bitswap-protocol.md: Bitswap 1.0.0, 1.1.0 and 1.2.0 as a server (this crate
//! never asks for blocks). It interoperates with boxo (Go) and Helia (JS): wants arrive on
//! streams the peer opens; answers go out on a stream this server opens to the peer with the
//! protocol the peer used.
//!
//! Layout, as rust-libp2p protocol crates:
//! - `protocol` (public items re-exported here): protocol IDs ([`ProtocolVersion`]), the typed
//!   [`Message`] and its codec ([`decode_message`], [`Message::encode_frame`]), CID prefixes
//!   ([`cid_prefix`], [`cid_from_prefix`]), and the length-prefixed framing ([`read_frame`],
//!   [`write_frame`]) with [`MAX_MESSAGE_SIZE`] (4 MiB) checked before allocating;
//! - `engine` (private): the sans-I/O decision engine (per-peer wantlists bounded by
//!   [`MAX_WANTLIST_ENTRIES_PER_PEER`], priority order, round robin between peers, a per-peer
//!   budget of [`MAX_OUTSTANDING_BYTES_PER_PEER`] queued bytes, packing into messages);
//! - `service` (public items re-exported here): [`Bitswap::spawn`] runs the server on a
//!   `libp2p_stream::Control` and returns a [`BitswapHandle`] ([`BitswapHandle::stats`],
//!   [`BitswapHandle::shutdown`]), configured by [`BitswapConfig`].
//!
//! Store errors are never answered as DONT_HAVE: such wants get no answer (counted in
//! [`BitswapStats::store_errors`]), so the peer asks again.
//!
//! ```no_run
//! # async fn run(swarm: &libp2p::Swarm<libp2p_stream::Behaviour>,
//! #              store: std::sync::Arc<dyn hydrant_blocks::Blockstore>) {
//! use hydrant_bitswap::{Bitswap, BitswapConfig};
//! let handle = Bitswap::spawn(swarm.behaviour().new_control(), store, BitswapConfig::default())
//!     .expect("bitswap protocols free");
//! // ... drive the swarm ...
//! println!("{:?}", handle.stats());
//! handle.shutdown().await;
//! # }
//! ```
//!
//! Parsers of outside bytes (fuzz entry points): [`decode_message`], [`CidPrefix::parse`],
//! [`cid_from_prefix`], [`read_frame`].

mod engine;
mod protocol;
mod service;

pub use engine::{MAX_OUTSTANDING_BYTES_PER_PEER, MAX_WANTLIST_ENTRIES_PER_PEER, WantOutcomes};
pub use protocol::{
    BlockPresence, CidPrefix, DecodeError, FrameError, InvalidCid, MAX_BLOCKS_PER_MESSAGE,
    MAX_MESSAGE_SIZE, MAX_PRESENCES_PER_MESSAGE, MAX_WANTLIST_ENTRIES_PER_MESSAGE, Message,
    MessageShape, PayloadBlock, PrefixError, PresenceType, ProtocolVersion, WantType,
    WantlistEntry, cid_from_prefix, cid_prefix, decode_message, measure_message, read_frame,
    read_frame_body, read_frame_len, write_frame,
};
pub use service::{
    Bitswap, BitswapConfig, BitswapError, BitswapHandle, BitswapStats,
    DEFAULT_WANT_HAVE_REPLACE_SIZE, EVENT_QUEUE_CAPACITY, WANT_ENTRY_BYTES,
};
