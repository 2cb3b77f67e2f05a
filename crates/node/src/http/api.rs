//! The admin and ingest HTTP API (loopback by default).
//!
//! | method and path | does |
//! | --- | --- |
//! | `GET /api/v1/id` | the [`DaemonInfo`] of this daemon |
//! | `GET /healthz` | liveness: 200 while the process serves HTTP |
//! | `GET /readyz` | readiness ([`crate::http::health::Readiness`] as JSON): 200 when ready, 503 when not |
//! | `PUT /api/v1/cars[?pin=false]` | ingests the CAR in the request body (streamed) and pins its roots (unless `pin=false`); answers an `IngestSummary` with `pinned` (the CIDs pinned) |
//! | `POST /api/v1/cars/index?key=KEY[&pin=false]` | indexes the CAR already stored under object key `KEY`, in place; pins as `PUT` |
//! | `GET /api/v1/cars?after=KEY&limit=N` | committed CARs, ordered by key, at most `limit` (<= 1000) |
//! | `DELETE /api/v1/cars/{key}` | deletes the CAR (`cars/<blake3>.car`) unless a root is pinned (409): `{"deleted": record}`; see [`crate::stores::delete`] |
//! | `POST /api/v1/gc` | deletes every CAR with no pinned root, then sweeps the store: `{"deleted": [records], "bytes", "sweep"}` |
//! | `GET /api/v1/pins`, `GET`/`POST`/`DELETE /api/v1/pins/{cid}` | pins: see [`crate::http::pins`] |
//! | `GET /api/v1/dht/heads` | the DHT heads and the main peer: index, peer ID, addresses, DHT protocols served, connected peers |
//! | `GET /api/v1/dht/heads/{peer_id}/peers` | peers connected to one head |
//! | `GET /api/v1/dht/routing-table` | both routing tables: `dht` (`wan`, `lan`), peer ID, addresses per peer |
//! | `GET /api/v1/dht/providers?after=CURSOR&limit=N` | stored provider records, paged (`next` is the cursor) |
//! | `GET /api/v1/dht/lookup/{cid}` | providers of a CID: our data first, then a DHT walk |
//! | `GET /metrics` | Prometheus metrics (see [`crate::http::metrics`]) |
//! | `POST /api/v0/...` | Kubo's RPC API, as Kubo answers it: see [`crate::http::kubo`] |
//!
//! The `/api/v1/dht/*` paths answer 404 when `dht.enabled = false`.
//!
//! With `api.token_file` set ([`ApiToken`]), every request except `/healthz` and `/readyz`
//! needs `Authorization: Bearer <token>`; without it the answer is 401 with
//! `WWW-Authenticate: Bearer`. The token is compared in constant time (of SHA-256 digests).
//!
//! Errors are JSON `{"error": "..."}`: 400 for a bad CAR (the message names the problem and the
//! byte offset), 401 without the token, 422 for a pin of an incomplete DAG, 413 past `api.max_upload_bytes`, 500 for a server-side
//! failure (details only in the log), 504 past `api.request_timeout_secs` (ingests are exempt).
//! Every error body also carries the request ID (`request_id`, see [`crate::http`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use futures::{StreamExt, TryStreamExt};
use hydrant_ingest::IngestError;
use serde::Deserialize;

use crate::http::error::ApiError;
use crate::http::pins;
pub use crate::http::state::{ApiState, ApiToken};
use crate::p2p::dht::DhtService;
use crate::repo::DaemonInfo;

/// Most CAR records one `GET /api/v1/cars` returns.
pub const MAX_LIST_LIMIT: usize = 1000;

/// Routes `api.request_timeout_secs` does not apply to: ingests take as long as the CAR, and
/// dropping one half-way would only waste the work done.
const UNTIMED_ROUTES: &[(Method, &str)] = &[
    (Method::PUT, "/api/v1/cars"),
    (Method::POST, "/api/v1/cars/index"),
    // Walks the whole DAG first.
    (Method::POST, "/api/v1/pins/{cid}"),
    // Deletes CARs one by one, then lists the store.
    (Method::POST, "/api/v1/gc"),
    (Method::POST, "/api/v0/repo/gc"),
    // The Kubo RPC's uploads, and its pin (a DAG walk).
    (Method::POST, "/api/v0/add"),
    (Method::POST, "/api/v0/block/put"),
    (Method::POST, "/api/v0/dag/import"),
    (Method::POST, "/api/v0/pin/add"),
];

/// Routes answered without the token: load balancers probe them.
const OPEN_ROUTES: [&str; 2] = ["/healthz", "/readyz"];

/// Middleware: 401 unless the request carries the token, except on [`OPEN_ROUTES`].
async fn require_token(State(token): State<Arc<ApiToken>>, req: Request, next: Next) -> Response {
    let open = req
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| OPEN_ROUTES.contains(&p.as_str()));
    if open || token.accepts(req.headers().get(header::AUTHORIZATION)) {
        return next.run(req).await;
    }
    ApiError::Unauthorized.into_response()
}

/// The API router.
pub fn router(state: ApiState) -> axum::Router {
    let token = state.token.clone();
    let stats = state.http.clone();
    let timeout = state.request_timeout;
    let router = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/id", get(id))
        .route("/api/v1/cars", put(put_car).get(list_cars))
        .route("/api/v1/cars/index", post(index_stored))
        .route("/api/v1/cars/{*key}", delete(delete_car))
        .route("/api/v1/gc", post(gc))
        .route("/api/v1/pins", get(pins::list))
        .route(
            "/api/v1/pins/{cid}",
            get(pins::get_one).post(pins::add).delete(pins::remove),
        )
        .route("/api/v1/dht/heads", get(dht_heads))
        .route("/api/v1/dht/heads/{peer_id}/peers", get(dht_head_peers))
        .route("/api/v1/dht/routing-table", get(dht_routing_table))
        .route("/api/v1/dht/providers", get(dht_providers))
        .route("/api/v1/dht/lookup/{cid}", get(dht_lookup))
        .route("/metrics", get(metrics))
        .route("/api/v1/debug/memory", get(crate::http::memory::report))
        .merge(crate::http::kubo::routes())
        .layer(DefaultBodyLimit::disable())
        .with_state(state);
    let router = match token {
        Some(token) => router.layer(axum::middleware::from_fn_with_state(token, require_token)),
        None => router,
    };
    crate::http::layer(
        router,
        crate::http::LayerConfig {
            listener: crate::http::Listener::Api,
            timeout: Some(timeout),
            timeout_exempt: UNTIMED_ROUTES,
            timeout_field: "api.request_timeout_secs",
        },
        stats,
    )
}

async fn id(State(state): State<ApiState>) -> Json<DaemonInfo> {
    Json((*state.info).clone())
}

async fn readyz(State(state): State<ApiState>) -> Response {
    let readiness = state.health.readiness().await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

/// `?pin=false` leaves an ingested CAR's roots unpinned (they are pinned by default).
#[derive(Deserialize)]
struct PinQuery {
    pin: Option<bool>,
}

#[derive(Deserialize)]
struct IndexQuery {
    key: String,
}

async fn index_stored(
    State(state): State<ApiState>,
    Query(q): Query<IndexQuery>,
    Query(pin): Query<PinQuery>,
) -> Response {
    let ticket = state.services.ingest_stats.start();
    let result = state
        .services
        .ingester
        .index_stored(&q.key, Some(ticket.progress()))
        .await;
    answer(ingested(&state, ticket, result, pin.pin.unwrap_or(true)).await)
}

/// The end of an ingest through the API, for every route that ingests (`/api/v1` and the Kubo
/// RPC's): counted, announced, roots pinned (when `pin`); the summary with `"pinned": [CIDs]`
/// or the [`ApiError`].
pub(crate) async fn ingested(
    state: &ApiState,
    ticket: crate::stores::meters::IngestTicket,
    result: Result<hydrant_ingest::IngestSummary, IngestError>,
    pin: bool,
) -> Result<serde_json::Value, ApiError> {
    ticket.finish(&result);
    let summary = result.map_err(|e| ApiError::ingest(e, state.max_upload_bytes))?;
    if let (Some(dht), true) = (&state.dht, state.announce_roots) {
        dht.announce_car(&summary.car_key, &summary.roots);
    }
    crate::stores::pins::with_pinned_roots(&state.services, &summary, pin)
        .await
        .map_err(|e| ApiError::internal("the CAR was stored but pinning its roots failed", e))
}

fn answer(result: Result<serde_json::Value, ApiError>) -> Response {
    match result {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn put_car(
    State(state): State<ApiState>,
    Query(pin): Query<PinQuery>,
    body: Body,
) -> Response {
    let limit = state.max_upload_bytes;
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let stream = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .and_then(move |chunk| {
            let total =
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
            std::future::ready(if total > limit {
                Err(std::io::Error::new(
                    std::io::ErrorKind::FileTooLarge,
                    "upload too large",
                ))
            } else {
                Ok(chunk)
            })
        });
    let reader = tokio_util::io::StreamReader::new(Box::pin(idle_limited(
        stream,
        state.upload_idle_timeout,
    )));
    let ticket = state.services.ingest_stats.start();
    let result = state
        .services
        .ingester
        .ingest(reader, Some(ticket.progress()))
        .await;
    answer(ingested(&state, ticket, result, pin.pin.unwrap_or(true)).await)
}

/// `stream`, ended with a [`std::io::ErrorKind::TimedOut`] error when no item arrives for
/// `idle` (`api.upload_idle_timeout_secs`): the ingest then fails and removes its staging
/// object, and the client gets 408. Time between items only: a slow upload that keeps moving
/// is never cut.
pub(crate) fn idle_limited<S, T>(
    stream: S,
    idle: std::time::Duration,
) -> impl futures::Stream<Item = std::io::Result<T>> + Send
where
    S: futures::Stream<Item = std::io::Result<T>> + Send + Unpin,
{
    futures::stream::unfold(Some(stream), move |stream| async move {
        let mut stream = stream?;
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(item)) => Some((item, Some(stream))),
            Ok(None) => None,
            Err(_) => {
                let stalled = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no bytes of the upload arrived for {} s (api.upload_idle_timeout_secs)",
                        idle.as_secs()
                    ),
                );
                Some((Err(stalled), None))
            }
        }
    })
}

/// The answer to a failed deletion.
pub(crate) fn delete_failed(e: crate::stores::delete::DeleteError) -> ApiError {
    use crate::stores::delete::DeleteError;
    match e {
        e @ DeleteError::NotFound(_) => ApiError::NotFound(e.to_string()),
        e @ DeleteError::Pinned { .. } => ApiError::Conflict(e.to_string()),
        e => ApiError::internal("the deletion failed; see the server's log", e),
    }
}

async fn delete_car(State(state): State<ApiState>, Path(key): Path<String>) -> Response {
    match crate::stores::delete::delete_car(&state.services, &key).await {
        Ok(record) => Json(serde_json::json!({ "deleted": record })).into_response(),
        Err(e) => delete_failed(e).into_response(),
    }
}

async fn gc(State(state): State<ApiState>) -> Response {
    let sweep = state.services.sweep_config(true);
    match crate::stores::delete::gc(&state.services, &sweep).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => delete_failed(e).into_response(),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

async fn list_cars(State(state): State<ApiState>, Query(q): Query<ListQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_LIST_LIMIT);
    match state
        .services
        .catalog
        .list_cars(q.after.as_deref(), limit)
        .await
    {
        Ok(cars) => Json(cars).into_response(),
        Err(e) => ApiError::internal("index error; see the server log", e).into_response(),
    }
}

fn dht_of(state: &ApiState) -> Result<&Arc<DhtService>, Response> {
    state.dht.as_ref().ok_or_else(|| {
        ApiError::NotFound("the DHT is disabled (dht.enabled = false)".into()).into_response()
    })
}

/// One member of the DHT service in `GET /api/v1/dht/heads`.
#[derive(serde::Serialize)]
struct MemberJson {
    /// Fleet index of the head; absent for the main (Bitswap) peer.
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u32>,
    role: &'static str,
    peer_id: String,
    addrs: Vec<String>,
    /// The DHT protocols it serves (WAN, then LAN).
    protocols: Vec<String>,
    connected_peers: usize,
}

async fn dht_heads(State(state): State<ApiState>) -> Response {
    let dht = match dht_of(&state) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let protocols: Vec<String> = dht
        .sides()
        .iter()
        .map(|(_, h)| h.protocol().to_string())
        .collect();
    let members: Vec<MemberJson> = dht
        .members
        .iter()
        .map(|m| MemberJson {
            index: m.index,
            role: if m.index.is_some() { "head" } else { "main" },
            peer_id: m.peer_id.to_string(),
            addrs: m.addrs.iter().map(ToString::to_string).collect(),
            protocols: protocols.clone(),
            connected_peers: m.connected_peers().len(),
        })
        .collect();
    Json(members).into_response()
}

async fn dht_head_peers(State(state): State<ApiState>, Path(peer_id): Path<String>) -> Response {
    let dht = match dht_of(&state) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let Some(member) = dht
        .members
        .iter()
        .find(|m| m.peer_id.to_string() == peer_id)
    else {
        return ApiError::NotFound(format!("no head with peer ID {peer_id}")).into_response();
    };
    let peers: Vec<String> = member
        .connected_peers()
        .iter()
        .map(ToString::to_string)
        .collect();
    Json(peers).into_response()
}

async fn dht_routing_table(State(state): State<ApiState>) -> Response {
    let dht = match dht_of(&state) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let peers: Vec<serde_json::Value> = dht
        .sides()
        .into_iter()
        .flat_map(|(side, handle)| {
            handle
                .routing_table()
                .into_iter()
                .map(move |(peer, addrs)| {
                    serde_json::json!({
                        "dht": side.label(),
                        "peer_id": peer.to_string(),
                        "addrs": addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    })
                })
        })
        .collect();
    Json(peers).into_response()
}

/// Cursor text of `GET /api/v1/dht/providers`: `<key hex>.<peer ID>`.
fn cursor_text(c: &hydrant_providers::Cursor) -> String {
    format!("{}.{}", hex::encode(&c.key), c.provider)
}

fn parse_cursor(text: &str) -> Option<hydrant_providers::Cursor> {
    let (key, peer) = text.split_once('.')?;
    Some(hydrant_providers::Cursor {
        key: hex::decode(key).ok()?,
        provider: peer.parse().ok()?,
    })
}

#[derive(Deserialize)]
struct ProvidersQuery {
    after: Option<String>,
    limit: Option<usize>,
}

async fn dht_providers(State(state): State<ApiState>, Query(q): Query<ProvidersQuery>) -> Response {
    let dht = match dht_of(&state) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let after = match q.after.as_deref().map(parse_cursor) {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => {
            return ApiError::BadRequest(
                "after: expected the `next` value of a previous page (<key hex>.<peer ID>)".into(),
            )
            .into_response();
        }
    };
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_LIST_LIMIT);
    let now = hydrant_providers::unix_now();
    match dht.store.list(after.as_ref(), now, limit).await {
        Ok(page) => {
            let records: Vec<serde_json::Value> = page
                .records
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "key": hex::encode(&r.key),
                        "cid": multihash_cid(&r.key),
                        "provider": r.provider.to_string(),
                        "addrs": r.addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "expires_at": r.expires_at,
                    })
                })
                .collect();
            Json(serde_json::json!({
                "records": records,
                "next": page.next.as_ref().map(cursor_text),
            }))
            .into_response()
        }
        Err(e) => ApiError::internal("provider store error; see the server log", e).into_response(),
    }
}

/// The key as a CIDv1 (raw codec) string when it is a multihash, for display.
fn multihash_cid(key: &[u8]) -> Option<String> {
    let mh = hydrant_index::Multihash::from_bytes(key).ok()?;
    Some(cid::Cid::new_v1(0x55, mh).to_string())
}

async fn dht_lookup(State(state): State<ApiState>, Path(cid): Path<String>) -> Response {
    let dht = match dht_of(&state) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let cid: cid::Cid = match cid.parse() {
        Ok(c) => c,
        Err(e) => {
            return ApiError::BadRequest(format!("invalid CID {cid:?}: {e}")).into_response();
        }
    };
    let key = cid.hash().to_bytes();
    let lookup = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        dht.get_providers(&key, 20),
    )
    .await;
    let providers = match lookup {
        Ok(Ok(p)) => p,
        Ok(Err(hydrant_dht::DhtError::NoPeers)) => Vec::new(),
        Ok(Err(e)) => {
            return ApiError::internal("the DHT lookup failed; see the server log", e)
                .into_response();
        }
        Err(_) => {
            return ApiError::Timeout("the DHT lookup did not finish within 30 s".into())
                .into_response();
        }
    };
    let out: Vec<serde_json::Value> = providers
        .iter()
        .map(|p| {
            serde_json::json!({
                "peer_id": p.peer.to_string(),
                "addrs": p.addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(serde_json::json!({ "cid": cid.to_string(), "providers": out })).into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::http::metrics::render(&state),
    )
        .into_response()
}
