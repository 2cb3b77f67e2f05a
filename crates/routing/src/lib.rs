//! hydrant-routing: the Delegated Routing V1 HTTP API server (providers, peers, IPNS, DHT
//! closest peers), as an axum [`Router`] over a [`ContentRouter`] trait, plus a small
//! [`RoutingClient`].
//!
//! Spec: ../shared/specs/http-routing-v1.md (§ "Content Routing API", § "Peer Routing API",
//! § "IPNS API", § "DHT Routing API", § "Streaming", § "Error Codes", § "CORS and Web
//! Browsers", § "Known Schemas", and the IPIP-484 `filter-addrs` / `filter-protocols`
//! parameters).
//!
//! Behaviour in short:
//! - `GET /routing/v1/providers/{cid}` and `GET /routing/v1/peers/{peer-id}`: 200 with
//!   `{"Providers":[…]}` / `{"Peers":[…]}` (`application/json`, at most
//!   [`RoutingConfig::max_json_records`], default 100), or one record per line
//!   (`application/x-ndjson`, only when asked for explicitly, at most
//!   [`RoutingConfig::max_ndjson_records`]). No results is 200 with an empty list (the spec:
//!   404 "SHOULD NOT be returned"). `HEAD` is answered like `GET` without a body.
//! - NDJSON is streamed: the server waits for the first record (or the end, or an error,
//!   which still gets its status), sends the headers, then writes each record as
//!   [`ContentRouter::provider_stream`] yields it, until the router ends the stream,
//!   `limit` records were written or [`RoutingConfig::lookup_timeout`] passes. A client
//!   that disconnects drops the stream, which cancels the lookup behind it.
//! - `GET /routing/v1/ipns/{name}` (`name`: a peer ID, as a `libp2p-key` CIDv1 or base58):
//!   200 with the record (`application/vnd.ipfs.ipns-record`, `Etag`, `Cache-Control` from
//!   the record's TTL and remaining validity, `Expires` at its EOL), 404 when none is held,
//!   406 unless `Accept` names the record type, 400 for a bad name.
//!   `PUT /routing/v1/ipns/{name}`: the body (at most [`MAX_IPNS_RECORD_SIZE`], 10 KiB) is
//!   verified for `name` ([`hydrant_records::validate_ipns`]: signature, key matching the
//!   name, validity) and stored with [`ContentRouter::put_ipns`]: 200; 400 for an invalid,
//!   expired, oversized or worse record (lower sequence than the one held); 406 when
//!   `Content-Type` is not the record type.
//! - `GET /routing/v1/dht/closest/peers/{key}` (`key`: a CID or a peer ID): the peers
//!   [`ContentRouter::closest_peers`] returns, nearest first, at most
//!   [`RoutingConfig::max_closest_peers`] (20, the DHT's k) in JSON or NDJSON; 404 when
//!   there are none (the spec's "must"), 422 for a bad key.
//! - Headers: `Content-Type`, `Vary: Accept`, `Last-Modified` (time of the lookup),
//!   `Cache-Control: public, max-age=<300 s found | 15 s empty>, stale-while-revalidate=<48 h>,
//!   stale-if-error=<48 h>`, `Access-Control-Allow-Origin: *`,
//!   `Access-Control-Allow-Methods: GET, OPTIONS`; `OPTIONS` answers CORS preflights (204).
//! - A bad CID / peer ID / filter: 422 with a text body naming the problem (the spec's code
//!   for a request that does not conform to schema or semantic constraints).
//! - A router without IPNS or DHT support (the trait's default methods) and methods a path
//!   does not define: 501. Any other path under `/routing/v1/`: 400 (§ "Error Codes").
//! - Lookups are bounded: at most [`RoutingConfig::max_concurrent_lookups`] at once (more:
//!   503 with `Retry-After`), each cut at [`RoutingConfig::lookup_timeout`] (504). Router
//!   errors map to 503 + `Retry-After` (overloaded), 504 (timeout), 500 (internal).
//!
//! Public API:
//! - [`router`]`(Arc<dyn ContentRouter>, RoutingConfig) -> axum::Router`
//! - [`ContentRouter`] (`find_providers`, `provider_stream`, `find_peers`, `closest_peers`,
//!   `get_ipns`, `put_ipns`), [`RecordStream`], [`RouterError`], [`RoutingError`]
//! - [`Record`], [`PeerRecord`], [`UnknownRecord`]
//! - pure parsers: [`negotiate`], [`parse_cid`], [`parse_peer_id`], [`parse_addr_filter`],
//!   [`parse_protocol_filter`], [`apply_filters`], [`parse_dht_key`], [`accepts_ipns_record`]
//! - [`RoutingClient`]: queries another server's providers / peers endpoints; it is itself a
//!   [`ContentRouter`].

mod accept;
mod client;
mod error;
mod filter;
mod handlers;
mod ids;
mod ipns;
mod record;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::routing::{any, get};
use cid::Cid;
use futures::StreamExt as _;
use futures::stream::BoxStream;
pub use hydrant_records::{IpnsRecord, MAX_IPNS_RECORD_SIZE, PutOutcome};
use libp2p::PeerId;

pub use accept::{MEDIA_JSON, MEDIA_NDJSON, ResponseFormat, negotiate};
pub use client::{ClientConfig, ClientError, RoutingClient};
pub use error::{RouterError, RoutingError};
pub use filter::{
    AddrFilter, FilterError, MAX_FILTER_ENTRIES, MAX_FILTER_NAME_LEN, ProtocolFilter, UNKNOWN,
    apply_filters, parse_addr_filter, parse_protocol_filter,
};
pub use ids::{
    IdError, LIBP2P_KEY_CODEC, MAX_ID_LEN, parse_cid, parse_dht_key, parse_peer_id, peer_id_to_cid,
};
pub use ipns::{MEDIA_IPNS_RECORD, accepts_ipns_record};
pub use record::{PeerRecord, Record, RecordError, SCHEMA_PEER, UnknownRecord};

/// Records as a router finds them: each item a record or the error that ended the lookup.
/// Dropping the stream cancels the lookup behind it.
pub type RecordStream = BoxStream<'static, Result<Record, RouterError>>;

/// Where records come from: the DHT, the local provider store, an indexer, or a mix.
///
/// Implementations should stop at `limit` records; the server truncates longer answers
/// anyway, and filters (`filter-addrs`, `filter-protocols`) are applied after the lookup,
/// so a filtered response can hold fewer than `limit` records. Only the two lookups are
/// required; the other methods default to [`RouterError::NotSupported`] (501) or to a
/// wrapper of the required ones.
#[async_trait]
pub trait ContentRouter: Send + Sync + 'static {
    /// Records of peers that provide `cid` (usually `peer` records), at most `limit`.
    ///
    /// Errors: [`RouterError`]; an empty result is not an error.
    async fn find_providers(&self, cid: &Cid, limit: usize) -> Result<Vec<Record>, RouterError>;

    /// [`ContentRouter::find_providers`] as a stream, for `application/x-ndjson` answers
    /// (§ "Streaming"): a router that learns providers one by one (a DHT walk) should yield
    /// each as soon as it is known. The default waits for `find_providers` and yields its
    /// records. An `Err` item ends the answer.
    fn provider_stream(self: Arc<Self>, cid: Cid, limit: usize) -> RecordStream {
        futures::stream::once(async move { self.find_providers(&cid, limit).await })
            .flat_map(|found| match found {
                Ok(records) => futures::stream::iter(records.into_iter().map(Ok)).boxed(),
                Err(e) => futures::stream::iter([Err(e)]).boxed(),
            })
            .boxed()
    }

    /// Records for `peer` (its addresses and protocols), at most `limit`.
    ///
    /// Errors: [`RouterError`]; an unknown peer is `Ok(vec![])`.
    async fn find_peers(&self, peer: &PeerId, limit: usize) -> Result<Vec<Record>, RouterError>;

    /// The peers closest to `key` (multihash bytes: a CID's multihash or a peer ID) in the
    /// DHT's XOR metric, nearest first, at most `limit` (§ "DHT Routing API").
    ///
    /// Errors: [`RouterError::NotSupported`] by default (501); an empty result is not an
    /// error (the server answers it with 404, as the spec requires).
    async fn closest_peers(&self, key: &[u8], limit: usize) -> Result<Vec<Record>, RouterError> {
        let _ = (key, limit);
        Err(RouterError::NotSupported)
    }

    /// The IPNS record held for `name`, still valid (§ "IPNS API"); `Ok(None)` when there
    /// is none.
    ///
    /// Errors: [`RouterError::NotSupported`] by default (501).
    async fn get_ipns(&self, name: &PeerId) -> Result<Option<IpnsRecord>, RouterError> {
        let _ = name;
        Err(RouterError::NotSupported)
    }

    /// Stores `record`, already verified for its name by the server, unless the record
    /// held for that name is better (higher sequence): then
    /// [`PutOutcome::KeptExisting`], answered 400 (§ "IPNS API").
    ///
    /// Errors: [`RouterError::NotSupported`] by default (501); [`RouterError::Overloaded`]
    /// when the store is full (503).
    async fn put_ipns(&self, record: IpnsRecord) -> Result<PutOutcome, RouterError> {
        let _ = record;
        Err(RouterError::NotSupported)
    }
}

/// Default [`RoutingConfig::max_json_records`]: the spec's "SHOULD be limited to 100".
pub const DEFAULT_MAX_JSON_RECORDS: usize = 100;
/// Default [`RoutingConfig::max_ndjson_records`].
pub const DEFAULT_MAX_NDJSON_RECORDS: usize = 1000;
/// Default `max-age` of a response with records (the spec's example: 5 minutes).
pub const DEFAULT_FOUND_MAX_AGE: Duration = Duration::from_secs(300);
/// Default `max-age` of a response without records (the spec's example: 15 seconds).
pub const DEFAULT_NOT_FOUND_MAX_AGE: Duration = Duration::from_secs(15);
/// Default `stale-while-revalidate` / `stale-if-error`: 48 h, the Amino DHT provider
/// record expiration the spec cites.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(172_800);
/// Default [`RoutingConfig::max_closest_peers`]: the Amino DHT's bucket size k, the spec's
/// limit for `/routing/v1/dht/closest/peers/{key}`.
pub const DEFAULT_MAX_CLOSEST_PEERS: usize = 20;
/// `max-age` of an IPNS record whose TTL is 0 or absent (§ "IPNS API": 60 s).
pub const DEFAULT_IPNS_MAX_AGE: Duration = Duration::from_secs(60);

/// Settings of the routing API. Built by the node crate from its config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoutingConfig {
    /// Most records in an `application/json` response, and the `limit` passed to the
    /// router for it (default [`DEFAULT_MAX_JSON_RECORDS`] = 100).
    pub max_json_records: usize,
    /// Most records in an `application/x-ndjson` response (default
    /// [`DEFAULT_MAX_NDJSON_RECORDS`] = 1000).
    pub max_ndjson_records: usize,
    /// Lookups running at once; a request beyond this is 503 with `Retry-After`
    /// (default 64).
    pub max_concurrent_lookups: usize,
    /// A lookup still running after this is abandoned with 504 (default 30 s).
    pub lookup_timeout: Duration,
    /// `Retry-After` sent when [`Self::max_concurrent_lookups`] is reached (default 5 s).
    pub busy_retry_after: Duration,
    /// Longest query string accepted, in bytes (default 4096); longer is 422.
    pub max_query_len: usize,
    /// `max-age` of a 200 with at least one record (default 300 s).
    pub found_max_age: Duration,
    /// `max-age` of a 200 with no records (default 15 s).
    pub not_found_max_age: Duration,
    /// `stale-while-revalidate` and `stale-if-error` (default 48 h).
    pub max_ttl: Duration,
    /// Most peers in a closest-peers answer, JSON or NDJSON (default
    /// [`DEFAULT_MAX_CLOSEST_PEERS`] = 20).
    pub max_closest_peers: usize,
    /// Serve `/routing/v1/ipns/{name}` from the [`ContentRouter`] (default `true`). Set to
    /// `false` when another router serving that path is merged next to this one (axum
    /// panics on two routers registering the same path).
    pub ipns_route: bool,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            max_json_records: DEFAULT_MAX_JSON_RECORDS,
            max_ndjson_records: DEFAULT_MAX_NDJSON_RECORDS,
            max_concurrent_lookups: 64,
            lookup_timeout: Duration::from_secs(30),
            busy_retry_after: Duration::from_secs(5),
            max_query_len: 4096,
            found_max_age: DEFAULT_FOUND_MAX_AGE,
            not_found_max_age: DEFAULT_NOT_FOUND_MAX_AGE,
            max_ttl: DEFAULT_MAX_TTL,
            max_closest_peers: DEFAULT_MAX_CLOSEST_PEERS,
            ipns_route: true,
        }
    }
}

/// The routing API's routes, all under `/routing/v1/`: providers and peers lookups, IPNS
/// GET/PUT (unless [`RoutingConfig::ipns_route`] is off), DHT closest peers, 400 for other
/// paths there. No fallback is set, so the result merges into the gateway's router; a more
/// specific route merged next to it takes precedence over the catch-all 400.
///
/// Spec: http-routing-v1.md § "Content Routing API", § "Peer Routing API", § "IPNS API",
/// § "DHT Routing API", § "Error Codes", § "CORS and Web Browsers".
pub fn router(router: Arc<dyn ContentRouter>, config: RoutingConfig) -> Router {
    let state = Arc::new(handlers::AppState::new(router, config));
    let mut r = Router::new();
    if config.ipns_route {
        r = r.route(
            "/routing/v1/ipns/{name}",
            get(ipns::get)
                .put(ipns::put)
                .options(handlers::preflight)
                .fallback(handlers::method_not_implemented),
        );
    }
    r.route(
        "/routing/v1/providers/{cid}",
        get(handlers::providers)
            .options(handlers::preflight)
            .fallback(handlers::method_not_implemented),
    )
    .route(
        "/routing/v1/peers/{peer_id}",
        get(handlers::peers)
            .options(handlers::preflight)
            .fallback(handlers::method_not_implemented),
    )
    .route(
        "/routing/v1/dht/closest/peers/{key}",
        get(handlers::closest_peers)
            .options(handlers::preflight)
            .fallback(handlers::method_not_implemented),
    )
    .route("/routing/v1", any(handlers::unknown_path))
    .route("/routing/v1/", any(handlers::unknown_path))
    .route("/routing/v1/{*rest}", any(handlers::unknown_path))
    .layer(axum::middleware::map_response(handlers::add_cors))
    .with_state(state)
}
