//! Hydrant's own Kademlia DHT (../shared/specs/kad-dht.md), protocol `/ipfs/kad/1.0.0`,
//! wire-compatible with go-libp2p-kad-dht and libp2p-kad. One service serves many DHT server
//! identities ("heads", like hydra-booster) that share one routing table, and admits a peer
//! to that table only after it answered one of our requests.
//!
//! Public API:
//! - [`protocol`]: [`protocol::PROTOCOL`]; the prost structs [`protocol::proto`];
//!   `encode_request(&Request) -> Vec<u8>`, `encode_response(&Response) -> Vec<u8>` (≤ 16 KiB),
//!   `decode_request(&[u8]) -> Result<Request, DecodeError>`,
//!   `decode_response(&[u8], MessageType) -> Result<Response, DecodeError>`;
//!   `read_frame(&mut R, max) -> Result<Option<Vec<u8>>, FrameError>`, `write_frame`, `frame`;
//!   limits `MAX_FRAME_SIZE` (64 KiB), `MAX_KEY_LEN` (80), `MAX_PEERS_PER_MESSAGE` (20),
//!   `MAX_ADDRS_PER_PEER` (16).
//! - [`kbucket`]: `Key::{from_peer, from_bytes}`, `Distance`, `RoutingTable::new(&[PeerId],
//!   TableConfig)`, `insert_verified(peer, addrs, now) -> InsertOutcome`,
//!   `record_failure(&peer, now)`, `evict(&peer, now)`, `add_candidate`, `take_candidates`,
//!   `candidate_failed`, `closest(&Key, n, exclude) -> Vec<(PeerId, Vec<Multiaddr>)>`,
//!   `due_for_liveness(now)`, `stale_buckets(now) -> Vec<BucketId>`,
//!   `random_key_in_bucket(bucket, tries, entropy)`, `mark_refreshed`.
//! - [`query`]: `Lookup::new(target, seeds, QueryConfig)`, `.stop_after_providers(n)`,
//!   `next_action(now) -> Action {Send(peer), Wait, Finished}`, `on_success(&peer, closer,
//!   providers)`, `on_failure(&peer)`, `next_deadline()`, `stalled()`, `into_result() ->
//!   LookupResult`; `QueryConfig { alpha, k, request_timeout, stall_timeout }` (requests
//!   unanswered after `stall_timeout` stop counting toward α and stop holding up the end).
//! - [`heads`]: `head_keypair(&[u8; 32], index, fleet_size) -> Result<Keypair, HeadError>`.
//! - [`network`]: `Dht::spawn(DhtConfig, Vec<HeadHandle>, Arc<dyn ProviderLookup>,
//!   Arc<dyn ProviderSink>, Arc<dyn ValueStore>) -> Result<DhtHandle, DhtError>`;
//!   `DhtHandle::{bootstrap, find_node, get_providers, provide, provide_as, refresh,
//!   routing_table, contains, stats, heads, shutdown}`; traits `ProviderLookup`,
//!   `ProviderSink`, `ValueStore` (default `RejectAllValues`), `Dialer` (with
//!   `ChannelDialer` + `handle_dial_request` for the swarm task); `InboundHandler` (the
//!   inbound rules without I/O); `DhtStats` (atomics).

pub mod heads;
pub mod kbucket;
pub mod network;
pub mod protocol;
pub mod query;
