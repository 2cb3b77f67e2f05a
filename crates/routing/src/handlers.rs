//! Request handlers. Spec sections are cited on each handler; status decisions live in
//! `error.rs`.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::accept::{ResponseFormat, negotiate};
use crate::error::{RouterError, RoutingError};
use crate::filter::{
    AddrFilter, ProtocolFilter, apply_filters, parse_addr_filter, parse_protocol_filter,
};
use crate::ids::{parse_cid, parse_dht_key, parse_peer_id};
use crate::record::Record;
use crate::{ContentRouter, RecordStream, RoutingConfig};

pub(crate) struct AppState {
    pub(crate) router: Arc<dyn ContentRouter>,
    pub(crate) config: RoutingConfig,
    lookups: Arc<Semaphore>,
}

impl AppState {
    pub(crate) fn new(router: Arc<dyn ContentRouter>, config: RoutingConfig) -> Self {
        AppState {
            router,
            lookups: Arc::new(Semaphore::new(config.max_concurrent_lookups)),
            config,
        }
    }
}

/// The parts of a lookup request shared by both endpoints.
struct Query {
    format: ResponseFormat,
    addrs: Option<AddrFilter>,
    protocols: Option<ProtocolFilter>,
}

/// Reads `filter-addrs` / `filter-protocols` (repeated parameters are joined as one list)
/// and `Accept`.
fn parse_query(
    config: &RoutingConfig,
    raw: Option<&str>,
    headers: &HeaderMap,
) -> Result<Query, RoutingError> {
    let raw = raw.unwrap_or("");
    if raw.len() > config.max_query_len {
        return Err(RoutingError::QueryTooLong(raw.len(), config.max_query_len));
    }
    let mut fa = String::new();
    let mut fp = String::new();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        let target = match k.as_ref() {
            "filter-addrs" => &mut fa,
            "filter-protocols" => &mut fp,
            _ => continue,
        };
        target.push(',');
        target.push_str(&v);
    }
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok());
    Ok(Query {
        format: negotiate(accept),
        addrs: parse_addr_filter(&fa)?,
        protocols: parse_protocol_filter(&fp)?,
    })
}

/// `GET /routing/v1/providers/{cid}` (http-routing-v1.md § "Content Routing API"); NDJSON
/// is streamed (§ "Streaming").
pub(crate) async fn providers(
    State(st): State<Arc<AppState>>,
    Path(cid): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let cid = parse_cid(&cid).map_err(RoutingError::InvalidCid)?;
        let q = parse_query(&st.config, raw.as_deref(), &headers)?;
        let limit = limit(&st.config, q.format);
        let router = st.router.clone();
        if q.format == ResponseFormat::NdJson {
            return respond_stream(&st, q, router.provider_stream(cid, limit), limit).await;
        }
        let records = lookup(&st, async move { router.find_providers(&cid, limit).await }).await?;
        let records = filter(&q, records, limit);
        Ok::<_, RoutingError>(respond(&st.config, &q, "Providers", records))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /routing/v1/peers/{peer-id}` (http-routing-v1.md § "Peer Routing API").
pub(crate) async fn peers(
    State(st): State<Arc<AppState>>,
    Path(peer): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let peer = parse_peer_id(&peer).map_err(RoutingError::InvalidPeerId)?;
        let q = parse_query(&st.config, raw.as_deref(), &headers)?;
        let limit = limit(&st.config, q.format);
        let router = st.router.clone();
        let records = lookup(&st, async move { router.find_peers(&peer, limit).await }).await?;
        let records = filter(&q, records, limit);
        Ok::<_, RoutingError>(respond(&st.config, &q, "Peers", records))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /routing/v1/dht/closest/peers/{key}` (http-routing-v1.md § "DHT Routing API"): at
/// most [`RoutingConfig::max_closest_peers`], nearest first, in JSON or NDJSON (written
/// once the walk has ended: the answer is sorted by distance); 404 when none is found.
pub(crate) async fn closest_peers(
    State(st): State<Arc<AppState>>,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let key = parse_dht_key(&key).map_err(RoutingError::InvalidKey)?;
        let q = parse_query(&st.config, raw.as_deref(), &headers)?;
        let limit = limit(&st.config, q.format).min(st.config.max_closest_peers);
        let router = st.router.clone();
        let records = lookup(&st, async move { router.closest_peers(&key, limit).await }).await?;
        let records = filter(&q, records, limit);
        if records.is_empty() {
            return Err(RoutingError::NoPeersFound);
        }
        Ok::<_, RoutingError>(respond(&st.config, &q, "Peers", records))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

fn limit(config: &RoutingConfig, format: ResponseFormat) -> usize {
    match format {
        ResponseFormat::Json => config.max_json_records,
        ResponseFormat::NdJson => config.max_ndjson_records,
    }
}

/// Runs a router call under the concurrency bound and the timeout.
pub(crate) async fn lookup<T>(
    st: &AppState,
    fut: impl Future<Output = Result<T, RouterError>>,
) -> Result<T, RoutingError> {
    let _permit = lookup_permit(st)?;
    match tokio::time::timeout(st.config.lookup_timeout, fut).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(RouterError::Timeout.into()),
    }
}

/// A slot of [`RoutingConfig::max_concurrent_lookups`], or 503 + `Retry-After`.
fn lookup_permit(st: &AppState) -> Result<OwnedSemaphorePermit, RoutingError> {
    st.lookups.clone().try_acquire_owned().map_err(|_| {
        RouterError::Overloaded {
            retry_after: st.config.busy_retry_after,
        }
        .into()
    })
}

/// The first `limit` records, those the filters drop removed.
fn filter(q: &Query, records: Vec<Record>, limit: usize) -> Vec<Record> {
    records
        .into_iter()
        .take(limit)
        .filter_map(|r| apply_filters(r, q.addrs.as_ref(), q.protocols.as_ref()))
        .collect()
}

/// Encodes the records with the headers of § "Response Headers".
fn respond(config: &RoutingConfig, q: &Query, list_field: &str, records: Vec<Record>) -> Response {
    let body = match q.format {
        ResponseFormat::Json => {
            let list: Vec<serde_json::Value> = records.iter().map(Record::to_json).collect();
            let mut obj = serde_json::Map::new();
            obj.insert(list_field.to_string(), serde_json::Value::Array(list));
            serde_json::to_vec(&obj).expect("JSON values always serialize")
        }
        ResponseFormat::NdJson => records.iter().flat_map(ndjson_line).collect(),
    };
    lookup_response(config, q.format, !records.is_empty(), Body::from(body))
}

/// One NDJSON line: the record's JSON and `\n`.
fn ndjson_line(record: &Record) -> Vec<u8> {
    let mut out = serde_json::to_vec(&record.to_json()).expect("JSON values always serialize");
    out.push(b'\n');
    out
}

/// A 200 with `body` and the headers of § "Response Headers": `max-age` by whether
/// anything was `found`.
fn lookup_response(
    config: &RoutingConfig,
    format: ResponseFormat,
    found: bool,
    body: Body,
) -> Response {
    let max_age = if found {
        config.found_max_age
    } else {
        config.not_found_max_age
    };
    let ttl = config.max_ttl.as_secs();
    let cache = format!(
        "public, max-age={}, stale-while-revalidate={ttl}, stale-if-error={ttl}",
        max_age.as_secs()
    );
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.media_type()),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&cache).expect("ASCII header value"),
    );
    h.insert(
        header::LAST_MODIFIED,
        HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now()))
            .expect("ASCII header value"),
    );
    resp
}

/// Streams `records` as NDJSON (§ "Streaming"). The lookup slot is held, and
/// [`RoutingConfig::lookup_timeout`] counted, until the stream ends. The first record (or
/// the end, or an error) is awaited before answering, so that a lookup failing at once
/// still gets its status; after that an error, or the timeout, ends the body early (the
/// records written stand). `limit` bounds the records taken from the router, before the
/// filters, as for JSON.
async fn respond_stream(
    st: &AppState,
    q: Query,
    records: RecordStream,
    limit: usize,
) -> Result<Response, RoutingError> {
    let permit = lookup_permit(st)?;
    let deadline = tokio::time::Instant::now() + st.config.lookup_timeout;
    let Query {
        format,
        addrs,
        protocols,
    } = q;
    let mut records = records
        .take(limit)
        .filter_map(move |r| {
            futures::future::ready(match r {
                Ok(r) => apply_filters(r, addrs.as_ref(), protocols.as_ref()).map(Ok),
                Err(e) => Some(Err(e)),
            })
        })
        .boxed();
    let first = match tokio::time::timeout_at(deadline, records.next()).await {
        Err(_) => return Err(RouterError::Timeout.into()),
        Ok(Some(Err(e))) => return Err(e.into()),
        Ok(Some(Ok(first))) => Some(first),
        Ok(None) => None,
    };
    let found = first.is_some();
    let lines = futures::stream::iter(first.map(Ok))
        .chain(records)
        .take_until(tokio::time::sleep_until(deadline))
        .scan(permit, |_permit, r| {
            futures::future::ready(match r {
                Ok(record) => Some(Ok::<_, std::convert::Infallible>(ndjson_line(&record))),
                Err(e) => {
                    tracing::debug!(error = %e, "routing stream ended by an error");
                    None
                }
            })
        });
    Ok(lookup_response(
        &st.config,
        format,
        found,
        Body::from_stream(lines),
    ))
}

/// CORS preflight (http-routing-v1.md § "CORS and Web Browsers"): 204; the CORS headers
/// themselves are added by [`add_cors`].
pub(crate) async fn preflight() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    resp
}

/// Adds `Access-Control-Allow-Origin: *` and `Access-Control-Allow-Methods: GET, OPTIONS` to
/// every routing response (http-routing-v1.md § "CORS and Web Browsers").
pub(crate) async fn add_cors(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, OPTIONS"),
    );
    resp
}

/// A method other than GET/HEAD/OPTIONS on a lookup path: 501 (§ "Error Codes").
pub(crate) async fn method_not_implemented() -> Response {
    RoutingError::NotImplemented("this method").into_response()
}

/// Any other path under `/routing/v1`: 400 (§ "Error Codes").
pub(crate) async fn unknown_path() -> Response {
    RoutingError::UnknownPath.into_response()
}
