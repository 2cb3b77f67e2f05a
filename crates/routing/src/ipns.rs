//! `GET` and `PUT /routing/v1/ipns/{name}`.
//!
//! Spec: ../shared/specs/http-routing-v1.md § "IPNS API" (status codes, `Etag`,
//! `Cache-Control`, `Expires`, `Last-Modified`, `Vary`); records are verified per
//! ../shared/specs/ipns-record.md, "Record Verification" ([`validate_ipns`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hydrant_records::{IpnsRecord, MAX_IPNS_RECORD_SIZE, PutOutcome, validate_ipns};
use libp2p::PeerId;

use crate::DEFAULT_IPNS_MAX_AGE;
use crate::accept::parse_q;
use crate::error::RoutingError;
use crate::handlers::{AppState, lookup};
use crate::ids::parse_peer_id;

/// `application/vnd.ipfs.ipns-record`, the media type of a serialized IPNS record.
pub const MEDIA_IPNS_RECORD: &str = "application/vnd.ipfs.ipns-record";

/// Whether the values of a request's `Accept` headers name [`MEDIA_IPNS_RECORD`] with a
/// q-value above 0 (case-insensitive; other parameters ignored). Wildcards do not count: the
/// spec's 406 asks the client to "retry with `Accept: application/vnd.ipfs.ipns-record`", as
/// boxo's server does. At most 32 media ranges are read.
pub fn accepts_ipns_record<'a>(accept_values: impl IntoIterator<Item = &'a str>) -> bool {
    accept_values
        .into_iter()
        .flat_map(|v| v.split(','))
        .take(32)
        .any(|range| {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            media.eq_ignore_ascii_case(MEDIA_IPNS_RECORD)
                && !parts.any(|p| {
                    p.split_once('=').is_some_and(|(k, v)| {
                        k.trim().eq_ignore_ascii_case("q") && parse_q(v.trim()).unwrap_or(0) == 0
                    })
                })
        })
}

/// The `{name}` path parameter: a peer ID (400 otherwise, § "IPNS API").
fn parse_name(name: &str) -> Result<PeerId, RoutingError> {
    parse_peer_id(name).map_err(RoutingError::InvalidIpnsName)
}

/// `GET /routing/v1/ipns/{name}`: the record held for `name` with the spec's caching
/// headers; 404 without one, 406 unless `Accept` names the record type.
pub(crate) async fn get(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let name = parse_name(&name)?;
        let accept = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok());
        if !accepts_ipns_record(accept) {
            return Err(RoutingError::NotAcceptable(
                "retry with Accept: application/vnd.ipfs.ipns-record",
            ));
        }
        let router = st.router.clone();
        let record = lookup(&st, async move { router.get_ipns(&name).await })
            .await?
            .ok_or(RoutingError::IpnsNotFound)?;
        Ok(record_response(&record, SystemTime::now()))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// The 200 answer of a GET: the record's bytes and § "IPNS API" "Response Headers".
/// `max-age` is the record's TTL in whole seconds (60 when 0), never past its EOL;
/// `stale-while-revalidate` / `stale-if-error` the seconds left until its EOL.
fn record_response(record: &IpnsRecord, now: SystemTime) -> Response {
    let left = record
        .eol()
        .duration_since(now)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let ttl = match record.ttl().as_secs() {
        0 => DEFAULT_IPNS_MAX_AGE.as_secs(),
        secs => secs,
    };
    let cache = format!(
        "public, max-age={}, stale-while-revalidate={left}, stale-if-error={left}",
        ttl.min(left)
    );
    let hash = blake3::hash(record.raw());
    let etag = format!("\"{}\"", &hash.to_hex()[..32]);
    let mut resp = (StatusCode::OK, Body::from(record.raw().to_vec())).into_response();
    let h = resp.headers_mut();
    let date = |t: SystemTime| {
        HeaderValue::from_str(&httpdate::fmt_http_date(t)).expect("ASCII header value")
    };
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(MEDIA_IPNS_RECORD),
    );
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex is ASCII"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&cache).expect("ASCII header value"),
    );
    h.insert(header::EXPIRES, date(record.eol()));
    h.insert(header::LAST_MODIFIED, date(now));
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    resp
}

/// `PUT /routing/v1/ipns/{name}`: verifies the body as the record of `name` and stores it
/// through the router; 200 when stored (or identical to the one held), 400 when invalid,
/// over [`MAX_IPNS_RECORD_SIZE`] or worse than the one held, 406 for another
/// `Content-Type`. The body is read up to one byte past the limit, never further.
pub(crate) async fn put(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let name = parse_name(&name)?;
        let media = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::trim);
        if !media.is_some_and(|m| m.eq_ignore_ascii_case(MEDIA_IPNS_RECORD)) {
            return Err(RoutingError::NotAcceptable(
                "retry with Content-Type: application/vnd.ipfs.ipns-record",
            ));
        }
        let raw: Bytes = axum::body::to_bytes(body, MAX_IPNS_RECORD_SIZE)
            .await
            .map_err(|_| {
                RoutingError::InvalidIpnsRecord(format!(
                    "the body is larger than {MAX_IPNS_RECORD_SIZE} bytes, the IPNS record limit"
                ))
            })?;
        let record = validate_ipns(&name.to_bytes(), &raw, SystemTime::now())
            .map_err(|e| RoutingError::InvalidIpnsRecord(e.to_string()))?;
        let router = st.router.clone();
        match lookup(&st, async move { router.put_ipns(record).await }).await? {
            PutOutcome::Stored => Ok(StatusCode::OK.into_response()),
            PutOutcome::KeptExisting => Err(RoutingError::IpnsRecordOutdated),
        }
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_must_name_the_record_type() {
        assert!(accepts_ipns_record([MEDIA_IPNS_RECORD]));
        assert!(accepts_ipns_record([
            "text/html, Application/Vnd.Ipfs.Ipns-Record;q=0.5"
        ]));
        assert!(accepts_ipns_record(["*/*", MEDIA_IPNS_RECORD]));
        assert!(!accepts_ipns_record([]));
        assert!(!accepts_ipns_record(["*/*"]));
        assert!(!accepts_ipns_record(["application/json"]));
        assert!(!accepts_ipns_record([
            "application/vnd.ipfs.ipns-record;q=0"
        ]));
        assert!(!accepts_ipns_record([
            "application/vnd.ipfs.ipns-record; q=0.000"
        ]));
        assert!(!accepts_ipns_record([
            "application/vnd.ipfs.ipns-record;q=x"
        ]));
    }
}
