//! hydrant-gateway: the HTTP path gateway over the [`Blockstore`] seam that Bitswap reads
//! through too: trustless responses (raw blocks and CAR streams) and deserialized ones
//! (UnixFS files, directory listings, dag-json/dag-cbor/json/cbor blocks, tar); the CAR
//! streaming that `hydrant export` reuses; the tar writer ([`tar`]) the Kubo RPC `get`
//! reuses.
//!
//! Spec: `trustless-gateway.md` (the whole document: `GET`/`HEAD /ipfs/{cid}[/{path}]`,
//! `format`, `Accept`, `dag-scope`, `entity-bytes`, `car-version`/`car-order`/`car-dups`,
//! response headers, status codes, probe paths) and `path-gateway.md` (deserialized
//! responses, `Range`, `filename`/`download`, directory index, shared headers and status
//! codes; `/ipns/` excepted).
//!
//! Behaviour in short:
//! - `?format=raw` or `Accept: application/vnd.ipld.raw` on `/ipfs/{cid}`: the block.
//! - `?format=car` or `Accept: application/vnd.ipld.car[; version=1][; order=dfs|unk]
//!   [; dups=y|n]`: a CARv1 with the requested CID as its single root, blocks in DFS order,
//!   answered as `application/vnd.ipld.car; version=1; order=dfs; dups=n|y` (default
//!   `dups=n`). A content path is resolved before the status is sent (404 when it does not
//!   exist); its blocks come first, then the `dag-scope` (or `entity-bytes`) of the
//!   terminus. A block missing once streaming has begun cuts the response short: the body
//!   ends with a transport error, never with a clean end (see [`car_stream`]).
//! - No trustless format (`?format=raw|car` or the matching `Accept`): a deserialized response
//!   (path-gateway.md § "Response Payload"; see `deserialized.rs` for the behaviour per
//!   codec and UnixFS type): files streamed with ranges, directories redirected to their
//!   `/` then `index.html` or an HTML listing, symlinks as their target, dag-json, dag-cbor,
//!   json and cbor blocks as is (`?format=dag-json|dag-cbor|json|cbor`), `?format=tar`. A
//!   format needing a codec conversion is 406 (IPIP-0524); `Accept` listing only CAR
//!   variants this gateway cannot produce is 406.
//! - Identity CIDs (`bafkqaaa` probe) are served from the CID itself and never written as
//!   CAR blocks. `/ipns/` answers 501.
//! - Status codes are decided in one place (`error.rs`); bodies are short fixed texts.
//!
//! Decisions where the specs leave room:
//! - `entity-bytes` entirely outside the file answers the root block alone (the spec's MUST
//!   "equivalent to dag-scope=block"), not its SHOULD-400; `entity-bytes` with an explicit
//!   `dag-scope` still means `entity`.
//! - A raw block request with a content path is 400 (trustless-gateway.md: "only
//!   `/ipfs/{cid}` is supported"); `.`/`..` segments are 400; UnixFS symlinks are not followed
//!   (a path below one is 404).
//! - CAR ETags are strong (`"<cid>.car.<scope>.<hash of path and parameters>"`): the output is
//!   deterministic. `If-None-Match` is answered from the request alone, before any read.
//! - Blocks are served as the blockstore returns them (it verifies them when `read.verify`).
//! - A `dag-scope=all` CAR sends a stored CAR's own sections, as stored, while they are the
//!   walk's next blocks (checked one by one, hashed when the store verifies reads); see
//!   [`CarStreamOptions::passthrough`] and DESIGN.md § "Gateway passthrough of stored CAR
//!   sections". The bytes are those the block-by-block path writes.
//! - `Cache-Control: only-if-cached` turns a missing root into 412 instead of 404.
//!
//! Public API:
//! - [`router`]`(Arc<dyn Blockstore>, GatewayConfig) -> axum::Router`
//! - [`car_stream`]`(Arc<dyn Blockstore>, CarRequest, CarStreamOptions) -> impl
//!   Stream<Item = Result<Bytes, CarStreamError>>`, [`CarRequest`], [`CarStreamOptions`],
//!   [`CarStreamError`]
//! - [`GatewayConfig`], [`GatewayError`], [`RequestError`]
//! - outside-input parsers (fuzz targets): [`negotiate`], [`parse_content_path`],
//!   [`parse_range`]; content types: [`content_type_for_name`], [`sniff_content_type`]
//! - [`tar`]: ustar/PAX headers of a UnixFS tree's entries

mod car_stream;
mod deserialized;
mod error;
mod handlers;
mod passthrough;
mod request;
pub mod tar;

use std::sync::Arc;

use axum::Router;
use axum::routing::{MethodFilter, any, on};
use hydrant_blocks::Blockstore;
use hydrant_unixfs::WalkerLimits;

pub use car_stream::{
    CarRequest, CarStreamError, CarStreamOptions, DEFAULT_PASSTHROUGH_CHUNK,
    DEFAULT_PREFETCH_WINDOW, car_stream,
};
pub use deserialized::{
    ByteRange, DEFAULT_MAX_LISTING_ENTRIES, MAX_RANGES, Ranges, TarBody, content_type_for_name,
    parse_range, sniff_content_type,
};
pub use error::{GatewayError, retry_after};
pub use request::{
    CarParams, ContentPath, Format, MEDIA_CAR, MEDIA_CBOR, MEDIA_DAG_CBOR, MEDIA_DAG_JSON,
    MEDIA_JSON, MEDIA_RAW, MEDIA_TAR, Negotiated, RequestError, negotiate, parse_content_path,
};

/// Default bound on path segments after the CID (trustless-gateway.md § "Security
/// Considerations": "SHOULD validate path components to prevent ... resource exhaustion
/// from deeply nested paths").
pub const DEFAULT_MAX_PATH_SEGMENTS: usize = 64;

/// Default bound on blocks read to resolve a content path (segments plus HAMT shards).
pub const DEFAULT_MAX_PATH_BLOCKS: usize = 256;

/// Settings of the gateway. Built by the node crate from its config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Most blocks read ahead of the one being sent in a CAR stream (default
    /// [`DEFAULT_PREFETCH_WINDOW`] = 16). Memory per stream is at most this many blocks
    /// (2 MiB each at most).
    pub prefetch_window: usize,
    /// Bytes a CAR stream reads ahead, when bounded (default `None`); see
    /// [`CarStreamOptions::prefetch_bytes`].
    pub prefetch_bytes: Option<u64>,
    /// Memory bounds of each CAR stream's DAG walk (pending CIDs, distinct blocks for
    /// `dups=n`).
    pub walker_limits: WalkerLimits,
    /// Most path segments accepted after the CID (default [`DEFAULT_MAX_PATH_SEGMENTS`]);
    /// more is 400.
    pub max_path_segments: usize,
    /// Most blocks read while resolving a content path (default
    /// [`DEFAULT_MAX_PATH_BLOCKS`]); more is 400.
    pub max_path_blocks: usize,
    /// Pass stored CAR sections through when they are the walk's blocks in order (default
    /// `true`); see [`CarStreamOptions::passthrough`].
    pub passthrough: bool,
    /// Most entries of a directory listed as HTML (default [`DEFAULT_MAX_LISTING_ENTRIES`]);
    /// a bigger directory is 501 (its entries are kept in memory to be sorted: about 150
    /// bytes each, so the default bounds a listing to about 10 MiB). Checked after each
    /// block read (a flat directory is one block of at most 2 MiB, a HAMT one shard at a
    /// time).
    pub max_listing_entries: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            prefetch_window: DEFAULT_PREFETCH_WINDOW,
            prefetch_bytes: None,
            walker_limits: WalkerLimits::default(),
            max_path_segments: DEFAULT_MAX_PATH_SEGMENTS,
            max_path_blocks: DEFAULT_MAX_PATH_BLOCKS,
            passthrough: true,
            max_listing_entries: DEFAULT_MAX_LISTING_ENTRIES,
        }
    }
}

/// The gateway's routes: `GET` and `HEAD` on `/ipfs/{cid}[/{path}]` (trustless and
/// deserialized responses), and a 501 on `/ipns/…`. Other paths are left to the caller's
/// router (merge this one into it).
///
/// Spec: trustless-gateway.md § "HTTP API", path-gateway.md § "HTTP API".
pub fn router(blocks: Arc<dyn Blockstore>, config: GatewayConfig) -> Router {
    let state = Arc::new(handlers::AppState { blocks, config });
    Router::new()
        .route(
            "/ipfs/{*path}",
            on(MethodFilter::GET.or(MethodFilter::HEAD), handlers::ipfs),
        )
        .route("/ipns/{*path}", any(handlers::ipns))
        .with_state(state)
}
