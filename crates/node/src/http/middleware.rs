//! What both HTTP listeners (the gateway and the API) do around every request, in one
//! middleware ([`layer`]):
//!
//! - **Request ID.** The client's `x-request-id` when it is 1 to [`MAX_REQUEST_ID_LEN`]
//!   characters of `[A-Za-z0-9._-]`, else a fresh 16-hex-digit random one. It is returned in the
//!   `x-request-id` response header and recorded in the request's span.
//! - **One `tracing` span per request**, `request{id, method, route}`: `route` is the matched
//!   route template (`/ipfs/{*path}`, `/api/v1/cars`, `unmatched`), never the request's path,
//!   and `method` one of the standard methods or `other`, so no client bytes other than a
//!   validated request ID reach the log. Answers with status 5xx are logged at `warn`, 4xx at
//!   `debug`.
//! - **The request ID in every error body** (status >= 400; `HEAD` gets GET's headers, so its
//!   `Content-Length` counts it): a line
//!   `request-id: <id>` appended to `text/plain` bodies, a `"request_id"` field added to JSON
//!   objects, and an empty body replaced by the line. Error bodies are short fixed texts; one
//!   larger than [`MAX_ERROR_BODY`] is left as it is.
//! - **A timeout** until the response head is ready (the body may stream for longer): past it
//!   the handler is dropped and the answer is 504 (with `Retry-After` on the gateway). Some
//!   routes can be exempted (uploads).
//! - **Metrics** ([`HttpStats`]): requests by outcome, latency to the response head, and on
//!   the gateway requests by type and bytes of response bodies.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tracing::Instrument;

use crate::stores::meters::{Buckets, LATENCY_BUCKETS};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Header carrying the request ID, in requests (optional) and in every response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest client-supplied request ID kept, in characters; a longer one is replaced.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Largest error body that gets the request ID added, in bytes.
pub const MAX_ERROR_BODY: usize = 64 * 1024;

/// Route label of requests that matched no route.
const UNMATCHED: &str = "unmatched";

/// Which listener a [`layer`] serves: decides the metrics and the error body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The trustless gateway and the routing API.
    Gateway,
    /// The admin and ingest API.
    Api,
}

/// Settings of one listener's [`layer`].
#[derive(Debug, Clone)]
pub struct LayerConfig {
    /// Which listener.
    pub listener: Listener,
    /// Time allowed until the response head is ready; `None`: no limit.
    pub timeout: Option<Duration>,
    /// `(method, route template)` pairs the timeout does not apply to.
    pub timeout_exempt: &'static [(Method, &'static str)],
    /// The config field named in the 504 answer, e.g. `gateway.request_timeout_secs`.
    pub timeout_field: &'static str,
}

#[derive(Clone)]
struct LayerState {
    config: Arc<LayerConfig>,
    stats: Arc<HttpStats>,
}

/// Wraps every route of `router` (fallback included) in the request-ID, span, error-body,
/// timeout and metrics middleware. Call it after every route is added (and after merging).
pub fn layer(router: axum::Router, config: LayerConfig, stats: Arc<HttpStats>) -> axum::Router {
    let state = LayerState {
        config: Arc::new(config),
        stats,
    };
    router.layer(axum::middleware::from_fn_with_state(state, observe))
}

/// What kind of gateway request: the `type` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Block,
    Car,
    /// The path gateway's deserialized answers: files, directory listings, dag-json/dag-cbor
    /// and json/cbor blocks.
    Deserialized,
    Tar,
    Other,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Block,
        Kind::Car,
        Kind::Deserialized,
        Kind::Tar,
        Kind::Other,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::Block => "block",
            Kind::Car => "car",
            Kind::Deserialized => "deserialized",
            Kind::Tar => "tar",
            Kind::Other => "other",
        }
    }

    /// The format the gateway negotiates for this request (`format` query, `Accept`);
    /// `other` for anything but a well-formed `/ipfs/` request.
    fn of(route: Option<&str>, req: &Request) -> Kind {
        if route != Some("/ipfs/{*path}") {
            return Kind::Other;
        }
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        match hydrant_gateway::negotiate(req.uri().query(), accept) {
            Ok(n) => match n.format {
                hydrant_gateway::Format::Raw => Kind::Block,
                hydrant_gateway::Format::Car(_) => Kind::Car,
                hydrant_gateway::Format::Tar => Kind::Tar,
                _ => Kind::Deserialized,
            },
            Err(_) => Kind::Other,
        }
    }
}

/// The `outcome` label of a status: `found` (1xx to 3xx), `not_found` (404, 410), `shed`
/// (429, 503), `bad_request` (other 4xx), `error` (other 5xx).
pub fn outcome(status: StatusCode) -> &'static str {
    match status.as_u16() {
        404 | 410 => "not_found",
        429 | 503 => "shed",
        400..=499 => "bad_request",
        500..=599 => "error",
        _ => "found",
    }
}

/// Every `outcome` label value, in documentation order.
pub const OUTCOMES: [&str; 5] = ["found", "not_found", "shed", "bad_request", "error"];

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// The client's request ID when acceptable, else a fresh one.
fn request_id(headers: &HeaderMap) -> Arc<str> {
    match headers.get(REQUEST_ID_HEADER).map(HeaderValue::as_bytes) {
        Some(id) if valid_request_id(id) => {
            Arc::from(std::str::from_utf8(id).expect("checked ASCII"))
        }
        _ => fresh_request_id(),
    }
}

/// 1 to [`MAX_REQUEST_ID_LEN`] bytes of `[A-Za-z0-9._-]`.
fn valid_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// 16 random hex digits (SipHash of a counter under per-process random keys).
fn fresh_request_id() -> Arc<str> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    Arc::from(format!("{:016x}", hasher.finish()))
}

async fn observe(State(state): State<LayerState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let config = &state.config;
    let id = request_id(req.headers());
    let route: Option<Arc<str>> = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| Arc::from(p.as_str()));
    let route_label = route.as_deref().unwrap_or(UNMATCHED);
    let method = req.method().clone();
    let kind = match config.listener {
        Listener::Gateway => Kind::of(route.as_deref(), &req),
        Listener::Api => Kind::Other,
    };
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = method_label(&method),
        route = route_label,
    );
    let exempt = config
        .timeout_exempt
        .iter()
        .any(|(m, r)| *m == method && Some(*r) == route.as_deref());
    // HEAD is answered as GET, then its body is dropped here (`as_head`): the headers are
    // exactly GET's, including the length of an error body with its request ID.
    if method == Method::HEAD {
        *req.method_mut() = Method::GET;
    }
    let handled = next.run(req).instrument(span.clone());
    let mut response = match config.timeout.filter(|_| !exempt) {
        Some(limit) => match tokio::time::timeout(limit, handled).await {
            Ok(response) => response,
            Err(_) => timeout_response(config, limit),
        },
        None => handled.await,
    };
    let status = response.status();
    let elapsed = started.elapsed();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    {
        let _entered = span.enter();
        // 503 is an answer Hydrant chose (budget full, not ready yet): counted in the metrics,
        // and at warn it would flood the log exactly when the node is under load.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::debug!(
                status = status.as_u16(),
                elapsed_ms = elapsed.as_millis() as u64,
                "request shed or not ready"
            );
        } else if status == StatusCode::NOT_IMPLEMENTED {
            // A request for what Hydrant does not serve (`/ipns/`, a UnixFS path without a
            // trustless format): the client chose it, so it must not fill the log at warn.
            tracing::debug!(
                status = status.as_u16(),
                elapsed_ms = elapsed.as_millis() as u64,
                "request for an unsupported feature"
            );
        } else if status.is_server_error() {
            tracing::warn!(
                status = status.as_u16(),
                elapsed_ms = elapsed.as_millis() as u64,
                "request failed"
            );
        } else if status.is_client_error() {
            tracing::debug!(
                status = status.as_u16(),
                elapsed_ms = elapsed.as_millis() as u64,
                "request refused"
            );
        }
    }
    if status.as_u16() >= 400 {
        response = with_id_in_body(response, &id, config.listener).await;
    }
    if method == Method::HEAD {
        response = as_head(response);
    }
    match config.listener {
        Listener::Gateway => {
            state.stats.gateway_observe(kind, status, elapsed);
            if method != Method::HEAD {
                response = state.stats.count_body(response);
            }
        }
        Listener::Api => state.stats.api_observe(route_label, status, elapsed),
    }
    response
}

fn timeout_response(config: &LayerConfig, limit: Duration) -> Response {
    let message = format!(
        "the response was not ready within {} s ({})",
        limit.as_secs(),
        config.timeout_field
    );
    match config.listener {
        Listener::Gateway => {
            let status = StatusCode::GATEWAY_TIMEOUT;
            let retry = hydrant_gateway::retry_after(status)
                .map(|secs| (header::RETRY_AFTER, HeaderValue::from(secs)));
            (
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )],
                retry.into_iter().collect::<axum::http::HeaderMap>(),
                format!("{message}\n"),
            )
                .into_response()
        }
        Listener::Api => crate::http::error::ApiError::Timeout(message).into_response(),
    }
}

/// GET's `response` as the answer to HEAD (RFC 9110 § 9.3.2): the same headers, with the
/// body's length when it is known (as GET sends it) and none when GET streams, and no body.
fn as_head(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    if let Some(length) = body.size_hint().exact() {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    // An empty body of unknown length: an exact 0 would make the router claim
    // `Content-Length: 0`.
    let none = futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>();
    Response::from_parts(parts, Body::from_stream(none))
}

/// `response` with the request ID added to its (small) body; see the module docs.
async fn with_id_in_body(response: Response, id: &str, listener: Listener) -> Response {
    let (mut parts, body) = response.into_parts();
    let small = body
        .size_hint()
        .upper()
        .is_some_and(|n| n <= MAX_ERROR_BODY as u64);
    if !small {
        return Response::from_parts(parts, body);
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BODY).await else {
        // A body that failed to produce its bytes: answer with the ID alone.
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::from(format!("request-id: {id}\n")));
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let new_body = if bytes.is_empty() {
        let (value, text) = match listener {
            Listener::Api => (
                "application/json",
                format!("{}\n", serde_json::json!({ "request_id": id })),
            ),
            Listener::Gateway => ("text/plain; charset=utf-8", format!("request-id: {id}\n")),
        };
        parts
            .headers
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
        Some(text.into_bytes())
    } else if content_type.starts_with("text/plain") {
        let mut text = bytes.to_vec();
        if !text.ends_with(b"\n") {
            text.push(b'\n');
        }
        text.extend_from_slice(format!("request-id: {id}\n").as_bytes());
        Some(text)
    } else if content_type.starts_with("application/json") {
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(mut object)) => {
                object.insert("request_id".into(), id.into());
                Some(serde_json::to_vec(&object).expect("a JSON value serialises"))
            }
            _ => None,
        }
    } else {
        None
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = match new_body {
        Some(b) => Body::from(b),
        None => Body::from(bytes),
    };
    Response::from_parts(parts, body)
}

/// Buckets of the HTTP latency histograms, in seconds.
const HTTP_BUCKETS: Buckets = Buckets(LATENCY_BUCKETS);

/// Counters and histograms of both HTTP listeners, rendered by [`crate::http::metrics`].
#[derive(Debug)]
pub struct HttpStats {
    gateway_requests: Family<Vec<(&'static str, &'static str)>, Counter>,
    gateway_latency: Family<Vec<(&'static str, &'static str)>, Histogram, Buckets>,
    gateway_body_bytes: Counter,
    api_requests: Family<Vec<(&'static str, String)>, Counter>,
    api_latency: Family<Vec<(&'static str, String)>, Histogram, Buckets>,
    /// Connections of both listeners, kept by [`crate::http::serve`].
    pub connections: crate::http::serve::ConnectionStats,
}

impl Default for HttpStats {
    fn default() -> Self {
        let stats = Self {
            gateway_requests: Family::default(),
            gateway_latency: Family::new_with_constructor(HTTP_BUCKETS),
            gateway_body_bytes: Counter::default(),
            api_requests: Family::default(),
            api_latency: Family::new_with_constructor(HTTP_BUCKETS),
            connections: Default::default(),
        };
        // Every gateway series exists from the start (zero), so rates work from the first
        // scrape.
        for kind in Kind::ALL {
            for outcome in OUTCOMES {
                let _ = stats
                    .gateway_requests
                    .get_or_create(&vec![("type", kind.label()), ("outcome", outcome)]);
            }
            let _ = stats
                .gateway_latency
                .get_or_create(&vec![("type", kind.label())]);
        }
        stats
    }
}

impl HttpStats {
    fn gateway_observe(&self, kind: Kind, status: StatusCode, elapsed: Duration) {
        self.gateway_requests
            .get_or_create(&vec![("type", kind.label()), ("outcome", outcome(status))])
            .inc();
        self.gateway_latency
            .get_or_create(&vec![("type", kind.label())])
            .observe(elapsed.as_secs_f64());
    }

    fn api_observe(&self, route: &str, status: StatusCode, elapsed: Duration) {
        self.api_requests
            .get_or_create(&vec![
                ("route", route.to_owned()),
                ("outcome", outcome(status).to_owned()),
            ])
            .inc();
        self.api_latency
            .get_or_create(&vec![("route", route.to_owned())])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts the body's bytes: at once when its size is known, else as it streams.
    fn count_body(&self, response: Response) -> Response {
        let (parts, body) = response.into_parts();
        if let Some(n) = body.size_hint().exact() {
            self.gateway_body_bytes.inc_by(n);
            return Response::from_parts(parts, body);
        }
        let counter = self.gateway_body_bytes.clone();
        let counted = body.into_data_stream().map(move |chunk| {
            if let Ok(bytes) = &chunk {
                counter.inc_by(bytes.len() as u64);
            }
            chunk
        });
        Response::from_parts(parts, Body::from_stream(counted))
    }

    /// Registers the HTTP metrics (see the table in [`crate::http::metrics`]).
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "gateway_requests",
            "Gateway listener requests by type (block, car, other) and outcome",
            self.gateway_requests.clone(),
        );
        r.register(
            "gateway_request_duration_seconds",
            "Gateway listener: seconds until the response head was ready, by type",
            self.gateway_latency.clone(),
        );
        r.register(
            "gateway_response_body_bytes",
            "Gateway listener: bytes of response bodies (GET), streamed CARs as they are sent",
            self.gateway_body_bytes.clone(),
        );
        r.register(
            "api_requests",
            "API listener requests by route template and outcome",
            self.api_requests.clone(),
        );
        r.register(
            "api_request_duration_seconds",
            "API listener: seconds until the response head was ready, by route template",
            self.api_latency.clone(),
        );
        self.connections.register(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_request_ids_are_kept_only_when_safe() {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc-DEF_1.2"));
        assert_eq!(&*request_id(&h), "abc-DEF_1.2");
        for bad in ["has space", "semi;colon", "", "ünï"] {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(bad) {
                h.insert(REQUEST_ID_HEADER, v);
            }
            let id = request_id(&h);
            assert_ne!(&*id, bad);
            assert_eq!(id.len(), 16);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        let long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_str(&long).unwrap());
        assert_ne!(&*request_id(&h), long);
        let max = "a".repeat(MAX_REQUEST_ID_LEN);
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_str(&max).unwrap());
        assert_eq!(&*request_id(&h), max);
        assert_ne!(fresh_request_id(), fresh_request_id());
    }

    #[test]
    fn outcomes_follow_the_status() {
        for (status, label) in [
            (200, "found"),
            (206, "found"),
            (304, "found"),
            (404, "not_found"),
            (410, "not_found"),
            (429, "shed"),
            (503, "shed"),
            (400, "bad_request"),
            (401, "bad_request"),
            (422, "bad_request"),
            (500, "error"),
            (502, "error"),
            (504, "error"),
        ] {
            assert_eq!(outcome(StatusCode::from_u16(status).unwrap()), label);
        }
    }

    /// Serves `router` on a free loopback port and sends one `Connection: close` request;
    /// returns the whole raw response.
    async fn exchange(router: axum::Router, request: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn slow_responses_are_cut_with_504_except_exempt_routes() {
        async fn slow() -> &'static str {
            tokio::time::sleep(Duration::from_millis(400)).await;
            "done"
        }
        let router = |listener| {
            layer(
                axum::Router::new()
                    .route("/slow", axum::routing::get(slow).put(slow))
                    .route("/fast", axum::routing::get(|| async { "ok" })),
                LayerConfig {
                    listener,
                    timeout: Some(Duration::from_millis(50)),
                    timeout_exempt: &[(Method::PUT, "/slow")],
                    timeout_field: "gateway.request_timeout_secs",
                },
                Arc::default(),
            )
        };
        let cut = exchange(
            router(Listener::Gateway),
            "GET /slow HTTP/1.1\r\nHost: x\r\nx-request-id: slow-1\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(cut.starts_with("HTTP/1.1 504 "), "{cut}");
        assert!(cut.contains("x-request-id: slow-1\r\n"), "{cut}");
        assert!(cut.contains("retry-after: "), "{cut}");
        assert!(
            cut.ends_with(
                "the response was not ready within 0 s (gateway.request_timeout_secs)\n\
                 request-id: slow-1\n"
            ),
            "{cut}"
        );
        let api = exchange(
            router(Listener::Api),
            "GET /slow HTTP/1.1\r\nHost: x\r\nx-request-id: slow-2\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(api.starts_with("HTTP/1.1 504 "), "{api}");
        assert!(api.contains("\"request_id\":\"slow-2\""), "{api}");
        let exempt = exchange(
            router(Listener::Api),
            "PUT /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(exempt.starts_with("HTTP/1.1 200 "), "{exempt}");
        assert!(exempt.ends_with("done"), "{exempt}");
        let fast = exchange(
            router(Listener::Gateway),
            "GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(fast.starts_with("HTTP/1.1 200 "), "{fast}");
    }

    #[tokio::test]
    async fn error_bodies_get_the_id_once_in_their_format() {
        let text = (StatusCode::NOT_FOUND, "block not found\n").into_response();
        let out = with_id_in_body(text, "id1", Listener::Gateway).await;
        let body = axum::body::to_bytes(out.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"block not found\nrequest-id: id1\n");

        let json = (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({ "error": "bad CAR" })),
        )
            .into_response();
        let out = with_id_in_body(json, "id2", Listener::Api).await;
        assert!(!out.headers().contains_key(header::CONTENT_LENGTH));
        let body = axum::body::to_bytes(out.into_body(), 1024).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({ "error": "bad CAR", "request_id": "id2" })
        );

        let empty = StatusCode::METHOD_NOT_ALLOWED.into_response();
        let out = with_id_in_body(empty, "id3", Listener::Gateway).await;
        let body = axum::body::to_bytes(out.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"request-id: id3\n");
    }
}
