//! Hydrant's own Kademlia DHT (../shared/specs/kad-dht.md), protocol `/ipfs/kad/1.0.0` or the
//! LAN DHT's `/ipfs/lan/kad/1.0.0` (one per service, [`DhtConfig::protocol`]),
//! wire-compatible with go-libp2p-kad-dht and libp2p-kad. One service serves many DHT server
//! identities ("heads", like hydra-booster) that share one routing table, and admits a peer
//! to that table only after it answered one of our requests.
//!
//! Layout (every module private, its public items re-exported here):
//! - `protocol`: [`PROTOCOL`], [`LAN_PROTOCOL`]; the prost structs [`proto`]; the typed [`Request`] and
//!   [`Response`] with `encode_request(&Request) -> Vec<u8>`, `encode_response(&Response) ->
//!   Vec<u8>` (≤ 16 KiB), `decode_request(&[u8]) -> Result<Request, DecodeError>`,
//!   `decode_response(&[u8], MessageType) -> Result<Response, DecodeError>`;
//!   `read_frame(&mut R, max) -> Result<Option<Vec<u8>>, FrameError>`, [`write_frame`],
//!   [`frame`]; limits [`MAX_FRAME_SIZE`] (64 KiB), [`MAX_KEY_LEN`] (80),
//!   [`MAX_PEERS_PER_MESSAGE`] (20), [`MAX_ADDRS_PER_PEER`] (16).
//! - `kbucket`: `Key::{from_peer, from_bytes}`, [`Distance`], `RoutingTable::new(&[PeerId],
//!   TableConfig)`, `insert_verified(peer, addrs, now) -> InsertOutcome`,
//!   `record_failure(&peer, now)`, `evict(&peer, now)`, `add_candidate`, `take_candidates`,
//!   `candidate_failed`, `closest(&Key, n, exclude) -> Vec<(PeerId, Vec<Multiaddr>)>`,
//!   suspects (peers whose request stalled or failed, skipped by lookups until they answer):
//!   `mark_suspect(peer, now)`, `is_suspect(&peer, now)`, `closest_for_lookup(&Key, n, now)`,
//!   `due_for_liveness(now)`, `stale_buckets(now) -> Vec<BucketId>`,
//!   `random_key_in_bucket(bucket, tries, entropy)`, `mark_refreshed`.
//! - `query`: `Lookup::new(target, seeds, QueryConfig)`, `.stop_after_providers(n)`,
//!   `next_action(now) -> Action {Send(peer), Wait, Finished}`, `on_success(&peer, closer,
//!   providers)`, `on_failure(&peer)`, `next_deadline()`, `stalled()`, `take_stalled()`,
//!   `set_stall_timeout(d)`, `into_result() -> LookupResult`; `QueryConfig { alpha, k,
//!   request_timeout, stall_timeout, min_stall_timeout }` (requests unanswered after the
//!   stall timeout stop counting toward α and stop holding up the end); [`RttEstimator`]
//!   (SRTT/RTTVAR of answered requests) gives that stall timeout, clamped to
//!   `min_stall_timeout ..= stall_timeout`.
//! - `heads`: `head_keypair(&[u8; 32], index, fleet_size) -> Result<Keypair, HeadError>`.
//! - `seams`: what the node supplies: traits [`ProviderLookup`], [`ProviderSink`],
//!   [`ValueStore`] (default [`RejectAllValues`]; [`NoProviders`] for no providers),
//!   [`Dialer`] (with [`ChannelDialer`] + [`handle_dial_request`] for the swarm task), and
//!   [`HeadHandle`], one head to serve.
//! - `config`, `error`, `stats`: [`DhtConfig`] (`default()`, `wan()`, `lan()`), [`AddressPolicy`]
//!   (go-libp2p-kad-dht's WAN / LAN peer and address filters; `admits`, `filter`, `queries`),
//!   [`REQUEST_CHARGE`] (the budget an inbound request holds), [`DhtError`] and [`RequestError`], [`DhtStats`] (atomics).
//! - `inbound`: [`InboundHandler`], the rules for answering inbound requests without I/O
//!   ([`Refusal`] when a request is refused).
//! - `service`: `Dht::spawn(DhtConfig, Vec<HeadHandle>, Arc<dyn ProviderLookup>,
//!   Arc<dyn ProviderSink>, Arc<dyn ValueStore>) -> Result<DhtHandle, DhtError>` starts the
//!   tasks (accept loops, maintenance; their rules are documented on [`Dht`]).
//! - `handle`: [`DhtHandle`]`::{bootstrap, find_node, get_providers, provider_stream,
//!   provide, provide_as, refresh, routing_table, contains, stats, heads, shutdown}`.

mod config;
mod error;
mod handle;
mod heads;
mod inbound;
mod kbucket;
mod protocol;
mod query;
mod seams;
mod service;
mod stats;

pub use config::{AddressPolicy, DhtConfig, REQUEST_CHARGE};
pub use error::{DhtError, RequestError};
pub use handle::DhtHandle;
pub use heads::{
    HeadError, MAX_FLEET_SIZE, MAX_TRIES_PER_HEAD, head_keypair, head_prefix, key_prefix,
    prefix_bits,
};
pub use inbound::{InboundHandler, Refusal};
pub use kbucket::{
    BucketId, Distance, DiversityLimits, FailureOutcome, InsertOutcome, K, Key, RejectReason,
    RoutingTable, TableConfig, entropy,
};
pub use protocol::{
    ConnectionType, DecodeError, FrameError, LAN_PROTOCOL, MAX_ADDRS_ON_WIRE, MAX_ADDRS_PER_PEER,
    MAX_ADDRS_PER_PEER_OUT, MAX_DECODED_BYTES, MAX_FRAME_SIZE, MAX_KEY_LEN,
    MAX_OUTBOUND_FRAME_SIZE, MAX_PEERS_ON_WIRE, MAX_PEERS_PER_MESSAGE, MessageType, PROTOCOL,
    PeerInfo, Record, Request, Response, decode_request, decode_response, encode_request,
    encode_response, frame, proto, read_frame, write_frame,
};
pub use query::{
    Action, BETA, FoundPeer, Lookup, LookupResult, MAX_LOOKUP_PEERS, MAX_LOOKUP_PROVIDERS,
    QueryConfig, RttEstimator,
};
pub use seams::{
    ChannelDialer, DIAL_CHANNEL_CAPACITY, DialRequest, Dialer, HeadHandle, LookupError,
    NoProviders, ProviderInfo, ProviderLookup, ProviderSink, RejectAllValues, ValueStore,
    handle_dial_request,
};
pub use service::Dht;
pub use stats::DhtStats;

use std::sync::{Mutex, MutexGuard};

/// Locks `m`; a poisoned lock is taken as it is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
