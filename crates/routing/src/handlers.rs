//! Request handlers. Spec sections are cited on each handler; status decisions live in
//! `error.rs`.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::accept::{ResponseFormat, negotiate};
use crate::error::{RouterError, RoutingError};
use crate::filter::{
    AddrFilter, ProtocolFilter, apply_filters, parse_addr_filter, parse_protocol_filter,
};
use crate::ids::{parse_cid, parse_peer_id};
use crate::record::Record;
use crate::{ContentRouter, RoutingConfig};

pub(crate) struct AppState {
    router: Arc<dyn ContentRouter>,
    config: RoutingConfig,
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

/// `GET /routing/v1/providers/{cid}` (http-routing-v1.md § "Content Routing API").
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
        let records = lookup(&st, async move { router.find_providers(&cid, limit).await }).await?;
        Ok::<_, RoutingError>(respond(&st.config, &q, "Providers", records, limit))
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
        Ok::<_, RoutingError>(respond(&st.config, &q, "Peers", records, limit))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

fn limit(config: &RoutingConfig, format: ResponseFormat) -> usize {
    match format {
        ResponseFormat::Json => config.max_json_records,
        ResponseFormat::NdJson => config.max_ndjson_records,
    }
}

/// Runs a lookup under the concurrency bound and the timeout.
async fn lookup(
    st: &AppState,
    fut: impl Future<Output = Result<Vec<Record>, RouterError>>,
) -> Result<Vec<Record>, RoutingError> {
    let Ok(_permit) = st.lookups.clone().try_acquire_owned() else {
        return Err(RouterError::Overloaded {
            retry_after: st.config.busy_retry_after,
        }
        .into());
    };
    match tokio::time::timeout(st.config.lookup_timeout, fut).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(RouterError::Timeout.into()),
    }
}

/// Truncates, filters and encodes the records with the headers of § "Response Headers".
fn respond(
    config: &RoutingConfig,
    q: &Query,
    list_field: &str,
    records: Vec<Record>,
    limit: usize,
) -> Response {
    let records: Vec<Record> = records
        .into_iter()
        .take(limit)
        .filter_map(|r| apply_filters(r, q.addrs.as_ref(), q.protocols.as_ref()))
        .collect();
    let body = match q.format {
        ResponseFormat::Json => {
            let list: Vec<serde_json::Value> = records.iter().map(Record::to_json).collect();
            let mut obj = serde_json::Map::new();
            obj.insert(list_field.to_string(), serde_json::Value::Array(list));
            serde_json::to_vec(&obj).expect("JSON values always serialize")
        }
        ResponseFormat::NdJson => {
            let mut out = Vec::new();
            for r in &records {
                serde_json::to_writer(&mut out, &r.to_json())
                    .expect("JSON values always serialize");
                out.push(b'\n');
            }
            out
        }
    };
    let max_age = if records.is_empty() {
        config.not_found_max_age
    } else {
        config.found_max_age
    };
    let ttl = config.max_ttl.as_secs();
    let cache = format!(
        "public, max-age={}, stale-while-revalidate={ttl}, stale-if-error={ttl}",
        max_age.as_secs()
    );
    let mut resp = (StatusCode::OK, Body::from(body)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(q.format.media_type()),
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

/// `/routing/v1/ipns/{name}`: not implemented, 501 (§ "Error Codes", § "IPNS API").
pub(crate) async fn ipns() -> Response {
    RoutingError::NotImplemented("the IPNS API").into_response()
}

/// `/routing/v1/dht/closest/peers/{key}`: optional, not implemented, 501 (§ "DHT Routing
/// API").
pub(crate) async fn dht() -> Response {
    RoutingError::NotImplemented("the DHT routing API").into_response()
}

/// Any other path under `/routing/v1`: 400 (§ "Error Codes").
pub(crate) async fn unknown_path() -> Response {
    RoutingError::UnknownPath.into_response()
}
